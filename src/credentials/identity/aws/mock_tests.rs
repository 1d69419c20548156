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
