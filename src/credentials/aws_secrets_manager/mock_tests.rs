//! The Secrets Manager store against a real moto server with request
//! authentication on (testkit::Moto): the signature, the key, the session
//! token and the role's policy are all checked. IMDS is testkit's fake,
//! handing out the role's temporary credentials; where moto cannot fail on
//! demand (an expired token, throttling), testkit::MotoFront stands in
//! front of it.

use secrecy::ExposeSecret;
use testkit::metadata::{AwsCredentials, AwsRoleSet};
use testkit::{Moto, MotoFront};

use super::config::AwsSecretsManagerSettings;
use crate::credentials::identity::aws::test_support::{imds, opened};
use crate::credentials::test_support::name;

const READ: &[&str] = &["secretsmanager:GetSecretValue"];

fn moto() -> Moto {
    Moto::builder("eu-west-1")
        .role("reader", READ, 2)
        .role("ssm-only", &["ssm:GetParameter"], 1)
        .secret("tagstrap/PROXY_PASS", "s3cret-sm")
        .secret(
            "tagstrap/JSON",
            r#"{"user":"u","password":"pw-json","n":1}"#,
        )
        .start()
}

fn settings(endpoint: &str) -> AwsSecretsManagerSettings {
    AwsSecretsManagerSettings {
        endpoint: Some(endpoint.to_string()),
        prefix: "tagstrap/".into(),
        version_stage: "AWSCURRENT".into(),
        config: "/etc/tagstrap/config.toml".into(),
        ..AwsSecretsManagerSettings::default()
    }
}

#[tokio::test]
async fn reads_the_secret_string_and_a_json_field_with_the_instance_role() {
    let moto = moto();
    let fake = imds(&moto, "reader", None);
    let store = opened(&fake, &settings(&moto.url()), super::open);
    let value = store.get(&name("cred:PROXY_PASS")).await.unwrap();
    assert_eq!(value.expose_secret(), "s3cret-sm");
    let described = store.describe();
    assert!(
        described.starts_with("AWS Secrets Manager at http://127.0.0.1:"),
        "{described}"
    );
    assert!(described.contains("(eu-west-1)"), "{described}");
    assert!(
        described.contains("role reader (instance profile arn:aws:iam::"),
        "{described}"
    );

    let mut with_field = settings(&moto.url());
    with_field.field = Some("password".into());
    let store = opened(&fake, &with_field, super::open);
    assert_eq!(
        store.get(&name("cred:JSON")).await.unwrap().expose_secret(),
        "pw-json"
    );
    with_field.field = Some("nope".into());
    let store = opened(&fake, &with_field, super::open);
    let missing = store.get(&name("cred:JSON")).await.unwrap_err();
    assert_eq!(missing.exit_code(), 66, "{missing}");
    assert!(missing.message().contains("no field \"nope\""), "{missing}");
    with_field.field = Some("n".into());
    let store = opened(&fake, &with_field, super::open);
    let number = store.get(&name("cred:JSON")).await.unwrap_err();
    assert_eq!(number.exit_code(), 65, "{number}");
    let not_json = store.get(&name("cred:PROXY_PASS")).await.unwrap_err();
    assert_eq!(not_json.exit_code(), 65, "{not_json}");
    for e in [missing, number, not_json] {
        assert!(
            !e.message().contains("pw-json") && !e.message().contains("s3cret"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn missing_is_66_denied_is_77_naming_the_permission_and_a_wrong_key_is_77() {
    let moto = moto();
    let fake = imds(&moto, "reader", None);
    let store = opened(&fake, &settings(&moto.url()), super::open);
    let missing = store.get(&name("cred:NOPE")).await.unwrap_err();
    assert_eq!(missing.exit_code(), 66, "{missing}");
    assert!(missing.message().contains("tagstrap/NOPE"), "{missing}");
    assert!(missing.message().contains("create-secret"), "{missing}");

    let other = imds(&moto, "ssm-only", None);
    let store = opened(&other, &settings(&moto.url()), super::open);
    let denied = store.get(&name("cred:PROXY_PASS")).await.unwrap_err();
    assert_eq!(denied.exit_code(), 77, "{denied}");
    let message = denied.message();
    assert!(message.contains("AccessDenied"), "{message}");
    assert!(
        message.contains(
            "secretsmanager:GetSecretValue on arn:aws:secretsmanager:eu-west-1:ACCOUNT:secret:tagstrap/PROXY_PASS-*"
        ),
        "{message}"
    );

    let good = &moto.role("reader").credentials[0];
    let wrong = AwsCredentials {
        secret_access_key: "not-the-secret-key".into(),
        ..good.clone()
    };
    let fake = imds(&moto, "reader", Some(vec![AwsRoleSet::fresh(wrong)]));
    let store = opened(&fake, &settings(&moto.url()), super::open);
    let bad = store.get(&name("cred:PROXY_PASS")).await.unwrap_err();
    assert_eq!(bad.exit_code(), 77, "{bad}");
    assert!(bad.message().contains("SignatureDoesNotMatch"), "{bad}");
    assert!(
        bad.message()
            .contains("refused the instance role's credentials"),
        "{bad}"
    );
    for e in [&missing, &denied, &bad] {
        for secret in [&good.secret_access_key, &good.session_token] {
            assert!(!e.message().contains(secret.as_str()), "{e}");
        }
    }
}

#[tokio::test]
async fn expired_credentials_are_read_again_once_and_throttling_is_retried() {
    let moto = moto();
    let front = MotoFront::start(&moto);
    let made = moto.role("reader");
    let (old, new) = (&made.credentials[0], &made.credentials[1]);
    front.expire_key(&old.access_key_id);
    let fake = imds(
        &moto,
        "reader",
        Some(vec![
            AwsRoleSet::expired(old.clone()),
            AwsRoleSet::fresh(new.clone()),
        ]),
    );
    let store = opened(&fake, &settings(&front.url()), super::open);
    front.throttle(2);
    let value = store.get(&name("cred:PROXY_PASS")).await.unwrap();
    assert_eq!(value.expose_secret(), "s3cret-sm");
    assert_eq!(front.answered(), 3, "two throttled, one expired");

    // Still expired after reading again: 77, and no loop.
    let stale = imds(&moto, "reader", Some(vec![AwsRoleSet::fresh(old.clone())]));
    let store = opened(&stale, &settings(&front.url()), super::open);
    let err = store.get(&name("cred:PROXY_PASS")).await.unwrap_err();
    assert_eq!(err.exit_code(), 77, "{err}");
    assert!(err.message().contains("clock"), "{err}");
}
