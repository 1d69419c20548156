//! The SSM Parameter Store against a real moto server with request
//! authentication on (testkit::Moto), with the instance role's credentials
//! from testkit's IMDS fake.

use secrecy::ExposeSecret;
use testkit::Moto;

use super::config::AwsSsmSettings;
use crate::credentials::identity::aws::test_support::{imds, opened};
use crate::credentials::test_support::name;

fn settings(endpoint: &str) -> AwsSsmSettings {
    AwsSsmSettings {
        endpoint: Some(endpoint.to_string()),
        prefix: "/tagstrap/".into(),
        config: "/etc/tagstrap/config.toml".into(),
        ..AwsSsmSettings::default()
    }
}

#[tokio::test]
async fn secure_strings_are_read_plain_strings_refused_missing_66_denied_77() {
    let moto = Moto::builder("eu-west-1")
        .role("reader", &["ssm:GetParameter", "kms:Decrypt"], 1)
        .role("sm-only", &["secretsmanager:GetSecretValue"], 1)
        .parameter("/tagstrap/PROXY_PASS", "s3cret-ssm", "SecureString")
        .parameter("/tagstrap/PLAIN", "plain-value", "String")
        .start();
    let fake = imds(&moto, "reader", None);
    let store = opened(&fake, &settings(&moto.url()), super::open);
    let value = store.get(&name("cred:PROXY_PASS")).await.unwrap();
    assert_eq!(value.expose_secret(), "s3cret-ssm");
    assert!(store
        .describe()
        .starts_with("AWS SSM Parameter Store at http://127.0.0.1:"));

    let plain = store.get(&name("cred:PLAIN")).await.unwrap_err();
    assert_eq!(plain.exit_code(), 65, "{plain}");
    assert!(plain.message().contains("--type SecureString"), "{plain}");
    assert!(!plain.message().contains("plain-value"), "{plain}");

    let missing = store.get(&name("cred:NOPE")).await.unwrap_err();
    assert_eq!(missing.exit_code(), 66, "{missing}");
    assert!(missing.message().contains("/tagstrap/NOPE"), "{missing}");

    let mut versioned = settings(&moto.url());
    versioned.version = Some(1);
    let store = opened(&fake, &versioned, super::open);
    assert_eq!(
        store
            .get(&name("cred:PROXY_PASS"))
            .await
            .unwrap()
            .expose_secret(),
        "s3cret-ssm"
    );
    versioned.version = Some(7);
    let store = opened(&fake, &versioned, super::open);
    let no_version = store.get(&name("cred:PROXY_PASS")).await.unwrap_err();
    assert_eq!(no_version.exit_code(), 66, "{no_version}");

    let other = imds(&moto, "sm-only", None);
    let store = opened(&other, &settings(&moto.url()), super::open);
    let denied = store.get(&name("cred:PROXY_PASS")).await.unwrap_err();
    assert_eq!(denied.exit_code(), 77, "{denied}");
    let message = denied.message();
    assert!(
        message.contains(
            "ssm:GetParameter on arn:aws:ssm:eu-west-1:ACCOUNT:parameter/tagstrap/PROXY_PASS"
        ),
        "{message}"
    );
    assert!(message.contains("kms:Decrypt"), "{message}");
}
