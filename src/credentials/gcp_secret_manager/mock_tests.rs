//! The GCP Secret Manager store against the GCE metadata fake and the
//! Secret Manager fake (testkit), both shaped like Google's APIs: the
//! access token the metadata fake issues is the one the API fake accepts.

use secrecy::ExposeSecret;
use testkit::gcp_secret_manager::{FakeSecretManager, PROJECT_NUMBER};
use testkit::metadata::{Cloud, FakeMetadata};

use super::config::gcp_settings;
use crate::credentials::test_support::{name, open_section};
use crate::credentials::CredentialStore;
use crate::error::Result;

fn store(section: &str, metadata: &str) -> Result<Box<dyn CredentialStore>> {
    open_section(section, metadata, gcp_settings, super::open)
}

fn section(api: &FakeSecretManager, more: &str) -> String {
    format!("endpoint = {:?}\n{more}", api.url())
}

#[tokio::test]
async fn a_secret_is_read_with_the_service_accounts_token_and_its_crc_checked() {
    let meta = FakeMetadata::builder(Cloud::Gce).start();
    let api = FakeSecretManager::builder(&meta.access_token())
        .secret("tagstrap-PROXY_PASS", "old")
        .secret("tagstrap-PROXY_PASS", "p@ss:/%w0rd")
        .start();
    let store = store(&section(&api, "prefix = \"tagstrap-\""), &meta.url()).unwrap();
    assert!(
        !store.describe().contains("as service account"),
        "{}",
        store.describe()
    );
    let secret = store.get(&name("cred:PROXY_PASS")).await.unwrap();
    assert_eq!(secret.expose_secret(), "p@ss:/%w0rd");
    let requests = api.requests();
    assert_eq!(
        requests[0].path,
        "/v1/projects/example-project/secrets/tagstrap-PROXY_PASS/versions/latest:access"
    );
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {}", meta.access_token()).as_str())
    );
    // Once read, the store names the identity it used.
    let described = store.describe();
    assert!(
        described.contains("tagstrap-vm@example-project.iam.gserviceaccount.com"),
        "{described}"
    );
    assert!(!described.contains(&meta.access_token()));
    // The metadata server was asked directly, with its header.
    assert!(meta.refused().is_empty(), "{:?}", meta.refused());
}

#[tokio::test]
async fn the_project_and_version_can_be_set() {
    let meta = FakeMetadata::builder(Cloud::Gce).start();
    let api = FakeSecretManager::builder(&meta.access_token())
        .secret("P", "one")
        .secret("P", "two")
        .start();
    let more = format!("project = \"{PROJECT_NUMBER}\"\nversion = \"1\"");
    let store = store(&section(&api, &more), &meta.url()).unwrap();
    assert_eq!(
        store.get(&name("cred:P")).await.unwrap().expose_secret(),
        "one"
    );
    // The configured project is used: the metadata's is not asked for.
    assert!(!meta
        .requests()
        .iter()
        .any(|r| r.path.ends_with("project/project-id")));
}

#[tokio::test]
async fn denied_missing_and_corrupted_secrets_have_their_exit_codes() {
    let meta = FakeMetadata::builder(Cloud::Gce).start();
    let api = FakeSecretManager::builder(&meta.access_token())
        .secret("P", "x")
        .deny("P")
        .start();
    let denied = store(&section(&api, ""), &meta.url())
        .unwrap()
        .get(&name("cred:P"))
        .await
        .unwrap_err();
    assert_eq!(denied.exit_code(), 77);
    let message = denied.message();
    assert!(
        message.contains("roles/secretmanager.secretAccessor"),
        "{message}"
    );
    assert!(
        message.contains("gcloud secrets add-iam-policy-binding P"),
        "{message}"
    );
    assert!(
        message.contains("serviceAccount:tagstrap-vm@example-project.iam.gserviceaccount.com"),
        "{message}"
    );

    let other = store(&section(&api, "project = \"other-project\""), &meta.url())
        .unwrap()
        .get(&name("cred:Q"))
        .await
        .unwrap_err();
    assert_eq!(other.exit_code(), 77, "{other}");

    let missing = store(&section(&api, ""), &meta.url())
        .unwrap()
        .get(&name("cred:NOPE"))
        .await
        .unwrap_err();
    assert_eq!(missing.exit_code(), 66, "{missing}");
    assert!(
        missing.message().contains("gcloud secrets create NOPE"),
        "{missing}"
    );

    let corrupt = FakeSecretManager::builder(&meta.access_token())
        .secret("P", "x")
        .corrupt_crc()
        .start();
    let error = store(&section(&corrupt, ""), &meta.url())
        .unwrap()
        .get(&name("cred:P"))
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), 65, "{error}");
    assert!(error.message().contains("CRC32C"), "{error}");
    for e in [&denied, &other, &missing, &error] {
        assert!(!e.message().contains(&meta.access_token()), "{e}");
        assert_eq!(e.message().lines().count(), 1, "{e}");
    }
}

#[tokio::test]
async fn throttling_and_outages_are_retried() {
    let meta = FakeMetadata::builder(Cloud::Gce)
        .answer_first(&[503])
        .start();
    let api = FakeSecretManager::builder(&meta.access_token())
        .secret("P", "x")
        .answer_first(&[429, 503])
        .start();
    let store = store(&section(&api, ""), &meta.url()).unwrap();
    assert_eq!(
        store.get(&name("cred:P")).await.unwrap().expose_secret(),
        "x"
    );
    assert_eq!(api.requests().len(), 3);
}

#[tokio::test]
async fn an_instance_without_a_service_account_is_refused_with_the_fix() {
    let meta = FakeMetadata::builder(Cloud::Gce).no_identity().start();
    let api = FakeSecretManager::builder("t").secret("P", "x").start();
    let error = store(&section(&api, ""), &meta.url())
        .unwrap()
        .get(&name("cred:P"))
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), 77);
    assert!(
        error
            .message()
            .contains("gcloud compute instances set-service-account"),
        "{error}"
    );
    assert!(api.requests().is_empty());
}

#[tokio::test]
async fn a_token_the_api_does_not_accept_is_a_refusal() {
    let meta = FakeMetadata::builder(Cloud::Gce).start();
    let api = FakeSecretManager::builder("another-token")
        .secret("P", "x")
        .start();
    let error = store(&section(&api, ""), &meta.url())
        .unwrap()
        .get(&name("cred:P"))
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), 77, "{error}");
    assert!(error.message().contains("UNAUTHENTICATED"), "{error}");
}

#[tokio::test]
async fn names_that_cannot_be_secret_ids_and_bad_settings_are_refused_before_any_request() {
    let meta = FakeMetadata::builder(Cloud::Gce).start();
    let api = FakeSecretManager::builder(&meta.access_token()).start();
    let error = store(&section(&api, ""), &meta.url())
        .unwrap()
        .get(&name("cred:proxy.pass"))
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), 65, "{error}");
    assert!(error.message().contains("without '.'"), "{error}");
    for bad in [
        "endpoint = \"http://secrets.corp\"",
        "endpoint = \"https://user:pw@secrets.corp\"",
        "version = \"a b\"",
        "project = \"My Project\"",
        "prefix = \"a/b\"",
    ] {
        let error = store(bad, &meta.url()).err().unwrap();
        assert_eq!(error.exit_code(), 78, "{bad}");
        assert!(
            error.message().starts_with("[gcp_secret_manager] "),
            "{error}"
        );
        assert!(!error.message().contains("pw"), "{error}");
    }
    assert!(store(
        "endpoint = \"http://secrets.corp\"\ninsecure_http = true",
        &meta.url()
    )
    .is_ok());
    assert!(api.requests().is_empty());
    assert!(meta.requests().is_empty());
}

#[tokio::test]
async fn a_project_id_from_the_metadata_that_would_name_another_path_is_refused() {
    let origin = crate::credentials::test_support::serve(|r| {
        let body = match r.path.as_str() {
            "/computeMetadata/v1/instance/service-accounts/default/token" => {
                r#"{"access_token":"t","expires_in":60,"token_type":"Bearer"}"#
            }
            "/computeMetadata/v1/project/project-id" => "p/secrets/other",
            _ => "sa@p.iam.gserviceaccount.com",
        };
        testkit::Reply::ok(body).with_header("Metadata-Flavor", "Google")
    });
    let api = FakeSecretManager::builder("t").secret("P", "x").start();
    let error = store(&section(&api, ""), &origin.url(""))
        .unwrap()
        .get(&name("cred:P"))
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), 69, "{error}");
    assert!(
        error.message().contains("[gcp_secret_manager] project"),
        "{error}"
    );
    assert!(api.requests().is_empty());
}

#[tokio::test]
async fn a_token_near_its_expiry_is_asked_for_again_between_tries() {
    // 30 s left: under the margin, so each try asks for the token again.
    let origin = crate::credentials::test_support::serve(|r| {
        let body = match r.path.as_str() {
            "/computeMetadata/v1/instance/service-accounts/default/token" => {
                r#"{"access_token":"t","expires_in":30,"token_type":"Bearer"}"#
            }
            "/computeMetadata/v1/project/project-id" => "example-project",
            _ => "sa@p.iam.gserviceaccount.com",
        };
        testkit::Reply::ok(body).with_header("Metadata-Flavor", "Google")
    });
    let api = FakeSecretManager::builder("t")
        .secret("P", "x")
        .answer_first(&[503])
        .start();
    let store = store(&section(&api, ""), &origin.url("")).unwrap();
    assert_eq!(
        store.get(&name("cred:P")).await.unwrap().expose_secret(),
        "x"
    );
    let tokens = origin
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/token"))
        .count();
    assert_eq!(
        tokens, 3,
        "before the first try, then in each of the two tries"
    );
}

#[test]
fn a_plain_http_endpoint_off_loopback_is_warned_about_on_every_run() {
    use super::config::gcp_settings;
    let settings =
        |text: &str| gcp_settings(toml::from_str(text).unwrap(), std::path::Path::new("/c"));
    let plain = settings("endpoint = \"http://secrets.corp\"\ninsecure_http = true");
    let warning = super::in_clear(&plain).unwrap();
    assert!(warning.contains("http://secrets.corp"), "{warning}");
    assert!(
        warning.contains("[gcp_secret_manager] insecure_http"),
        "{warning}"
    );
    assert_eq!(
        super::in_clear(&settings(
            "endpoint = \"http://127.0.0.1:1\"\ninsecure_http = true"
        )),
        None
    );
    assert_eq!(super::in_clear(&settings("")), None);
    let kv = crate::credentials::azure_key_vault::config::azure_settings(
        toml::from_str("vault = \"http://kv.corp\"\ninsecure_http = true").unwrap(),
        std::path::Path::new("/c"),
    );
    assert!(crate::credentials::azure_key_vault::in_clear(&kv).is_some());
}

/// A token the API stops accepting before its expiry (401) is replaced by a
/// fresh one from the metadata server, once: a second 401 is the refusal.
#[tokio::test]
async fn a_token_refused_with_401_is_asked_for_again_once() {
    let token_reads = |meta: &FakeMetadata| {
        meta.requests()
            .iter()
            .filter(|r| r.path.ends_with("/service-accounts/default/token"))
            .count()
    };
    let meta = FakeMetadata::builder(Cloud::Gce).start();
    let api = FakeSecretManager::builder(&meta.access_token())
        .secret("P", "p@ss")
        .answer_first(&[401])
        .start();
    let opened = store(&section(&api, ""), &meta.url()).unwrap();
    let secret = opened.get(&name("cred:P")).await.unwrap();
    assert_eq!(secret.expose_secret(), "p@ss");
    assert_eq!(token_reads(&meta), 2, "a fresh token after the 401");
    assert_eq!(api.requests().len(), 2);

    let meta = FakeMetadata::builder(Cloud::Gce).start();
    let api = FakeSecretManager::builder(&meta.access_token())
        .secret("P", "p@ss")
        .answer_first(&[401, 401])
        .start();
    let opened = store(&section(&api, ""), &meta.url()).unwrap();
    let refused = opened.get(&name("cred:P")).await.unwrap_err();
    assert_eq!(refused.exit_code(), 77, "{refused}");
    assert!(
        refused.message().contains("access token was not accepted"),
        "{refused}"
    );
    assert_eq!(token_reads(&meta), 2, "one fresh token, not more");
    assert_eq!(api.requests().len(), 2);
}
