//! The AWS identity against testkit's IMDSv2 fake, which serves the
//! instance role as IMDS does (and answers 401 without a session token).

use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;
use testkit::metadata::{AwsCredentials, AwsRoleSet, Cloud, FakeMetadata};
use url::Url;

use super::AwsIdentity;

const PROFILE: &str = "arn:aws:iam::123456789012:instance-profile/reader-profile";

fn keys(n: u8) -> AwsCredentials {
    AwsCredentials {
        access_key_id: format!("ASIAFAKE000000000{n:03}"),
        secret_access_key: format!("secret-{n}"),
        session_token: format!("token-{n}"),
    }
}

fn identity(fake: &FakeMetadata) -> AwsIdentity {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = crate::net::tls::client_config(&[]).unwrap();
    let url = Url::parse(&fake.url()).unwrap();
    AwsIdentity::new(Some(&url), &tls, Duration::from_secs(20)).unwrap()
}

fn role_reads(fake: &FakeMetadata) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path == "/latest/meta-data/iam/security-credentials/reader")
        .count()
}

#[tokio::test]
async fn the_role_credentials_are_read_once_and_named_in_describe() {
    let fake = FakeMetadata::builder(Cloud::Aws)
        .aws_role("reader", PROFILE, vec![AwsRoleSet::fresh(keys(1))])
        .start();
    let id = identity(&fake);
    assert_eq!(id.describe(), "the instance role");
    let c = id.credentials(false).await.unwrap();
    assert_eq!(c.role, "reader");
    assert_eq!(c.access_key_id.expose_secret(), "ASIAFAKE000000000001");
    assert_eq!(c.session_token.expose_secret(), "token-1");
    assert!(c.expiration.unwrap() > SystemTime::now());
    id.credentials(false).await.unwrap();
    assert_eq!(role_reads(&fake), 1, "fresh credentials are kept");
    assert_eq!(
        id.describe(),
        format!("role reader (instance profile {PROFILE})")
    );
    assert_eq!(id.region().await.unwrap(), "eu-west-1");
    assert!(fake.refused().is_empty(), "{:?}", fake.refused());
}

#[tokio::test]
async fn credentials_near_their_expiry_are_read_again_and_refresh_forces_it() {
    let near = AwsRoleSet {
        credentials: keys(1),
        expiration: SystemTime::now() + Duration::from_secs(60),
    };
    let fake = FakeMetadata::builder(Cloud::Aws)
        .aws_role(
            "reader",
            PROFILE,
            vec![near, AwsRoleSet::fresh(keys(2)), AwsRoleSet::fresh(keys(3))],
        )
        .start();
    let id = identity(&fake);
    let first = id.credentials(false).await.unwrap();
    assert_eq!(first.access_key_id.expose_secret(), "ASIAFAKE000000000001");
    let second = id.credentials(false).await.unwrap();
    assert_eq!(second.access_key_id.expose_secret(), "ASIAFAKE000000000002");
    assert_eq!(
        id.credentials(false)
            .await
            .unwrap()
            .access_key_id
            .expose_secret(),
        "ASIAFAKE000000000002"
    );
    let forced = id.credentials(true).await.unwrap();
    assert_eq!(forced.access_key_id.expose_secret(), "ASIAFAKE000000000003");
    assert_eq!(role_reads(&fake), 3);
}

#[tokio::test]
async fn no_role_is_77_with_the_command_that_attaches_one() {
    let fake = FakeMetadata::builder(Cloud::Aws).start();
    let err = identity(&fake).credentials(false).await.unwrap_err();
    assert_eq!(err.exit_code(), 77, "{err}");
    let message = err.message();
    assert!(message.contains("has no IAM role"), "{message}");
    assert!(
        message.contains("aws ec2 associate-iam-instance-profile"),
        "{message}"
    );
}

/// Vault's IAM login body, sent to testkit's stand-in for Vault's `aws`
/// auth method, which replays it to moto's STS (authentication on) as
/// Vault does: granted for the bound role only, with the server ID header
/// signed in.
#[test]
fn vaults_iam_login_body_is_accepted_for_the_bound_role_only() {
    use secrecy::SecretString;
    use testkit::{http_request, VaultAwsLogin};

    use super::sign::vault_iam_login_body;
    use super::RoleCredentials;

    let moto = testkit::Moto::builder("eu-west-1")
        .role("reader", &["sts:GetCallerIdentity"], 1)
        .role("other", &["sts:GetCallerIdentity"], 1)
        .start();
    let vault = VaultAwsLogin::builder(&moto, "web", &moto.role("reader").arn)
        .server_id("vault.example.com")
        .secret("PROXY_PASS", "pw-from-vault")
        .start();
    let credentials = |role: &str, secret: Option<&str>| {
        let c = &moto.role(role).credentials[0];
        RoleCredentials {
            role: role.into(),
            access_key_id: SecretString::from(c.access_key_id.clone()),
            secret_access_key: SecretString::from(
                secret.unwrap_or(&c.secret_access_key).to_string(),
            ),
            session_token: SecretString::from(c.session_token.clone()),
            expiration: None,
        }
    };
    let login = |c: &RoleCredentials, server_id: Option<&str>| {
        let body =
            vault_iam_login_body(c, Some("web"), None, server_id, SystemTime::now()).unwrap();
        http_request(
            vault.port(),
            "POST",
            "/v1/auth/aws/login",
            &[("Content-Type", "application/json")],
            Some(body.expose_secret().as_bytes()),
        )
        .unwrap()
    };

    let granted = login(&credentials("reader", None), Some("vault.example.com"));
    assert_eq!(granted.status, 200, "{}", granted.text());
    let json: serde_json::Value = serde_json::from_slice(&granted.body).unwrap();
    let token = json["auth"]["client_token"].as_str().unwrap().to_string();
    let secret = http_request(
        vault.port(),
        "GET",
        "/v1/secret/data/PROXY_PASS",
        &[("X-Vault-Token", &token)],
        None,
    )
    .unwrap();
    assert!(secret.text().contains("pw-from-vault"), "{}", secret.text());
    let revoked = http_request(
        vault.port(),
        "POST",
        "/v1/auth/token/revoke-self",
        &[("X-Vault-Token", &token)],
        None,
    )
    .unwrap();
    assert_eq!(revoked.status, 204);
    assert_eq!((vault.granted(), vault.revoked()), (1, 1));

    for (c, server_id, why) in [
        (credentials("reader", None), None, "missing header"),
        (
            credentials("reader", None),
            Some("other.example.com"),
            "but got",
        ),
        (
            credentials("other", None),
            Some("vault.example.com"),
            "does not belong to the role",
        ),
        (
            credentials("reader", Some("wrong-secret-key")),
            Some("vault.example.com"),
            "SignatureDoesNotMatch",
        ),
    ] {
        let refused = login(&c, server_id);
        assert_eq!(refused.status, 400, "{why}: {}", refused.text());
        assert!(refused.text().contains(why), "{why}: {}", refused.text());
    }
    assert_eq!(vault.granted(), 1);
}
