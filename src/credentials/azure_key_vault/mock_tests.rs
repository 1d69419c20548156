//! The Azure Key Vault store against the Azure metadata fake (IMDS, whose
//! managed identity tokens are signed JWTs) and the Key Vault fake, which
//! checks each token's signature, audience, tenant, expiry and role.

use secrecy::ExposeSecret;
use testkit::jwt::SigningKey;
use testkit::metadata::{Cloud, FakeMetadata, AZURE_SYSTEM_CLIENT_ID};
use testkit::FakeKeyVault;

use super::config::azure_settings;
use crate::credentials::test_support::{name, open_section};
use crate::credentials::CredentialStore;
use crate::error::Result;

const USER_ID: &str = "7d2f1c9e-3b4a-4c5d-9e8f-0a1b2c3d4e5f";

fn store(section: &str, metadata: &str) -> Result<Box<dyn CredentialStore>> {
    open_section(section, metadata, azure_settings, super::open)
}

fn section(kv: &FakeKeyVault, more: &str) -> String {
    format!("vault = \"kv-web\"\nendpoint = {:?}\n{more}", kv.url())
}

#[tokio::test]
async fn a_secret_is_read_with_the_managed_identitys_token() {
    let meta = FakeMetadata::builder(Cloud::Azure).start();
    let kv = FakeKeyVault::builder("kv-web")
        .reader(AZURE_SYSTEM_CLIENT_ID)
        .secret("tagstrap-proxy-pass", "p@ss:/%w0rd")
        .start();
    let store = store(&section(&kv, "prefix = \"tagstrap-\""), &meta.url()).unwrap();
    assert!(!store.describe().contains(AZURE_SYSTEM_CLIENT_ID));
    let secret = store.get(&name("cred:proxy-pass")).await.unwrap();
    assert_eq!(secret.expose_secret(), "p@ss:/%w0rd");
    assert!(
        store.describe().contains(AZURE_SYSTEM_CLIENT_ID),
        "{}",
        store.describe()
    );
    assert_eq!(
        kv.requests()[0].target,
        "/secrets/tagstrap-proxy-pass?api-version=7.4"
    );
    let asked = &meta.requests()[0].target;
    assert!(
        asked.contains("resource=https%3A%2F%2Fvault.azure.net"),
        "{asked}"
    );
    assert!(!asked.contains("client_id"), "{asked}");
}

#[tokio::test]
async fn a_user_assigned_identity_is_asked_for_by_its_client_id() {
    let meta = FakeMetadata::builder(Cloud::Azure)
        .user_assigned_identity(USER_ID)
        .start();
    let kv = FakeKeyVault::builder("kv-web")
        .reader(USER_ID)
        .secret("P", "x")
        .start();
    let more = format!("client_id = \"{USER_ID}\"");
    let store = store(&section(&kv, &more), &meta.url()).unwrap();
    assert_eq!(
        store.get(&name("cred:P")).await.unwrap().expose_secret(),
        "x"
    );
    assert!(meta.requests()[0]
        .target
        .ends_with(&format!("&client_id={USER_ID}")));
    assert!(store.describe().contains(USER_ID));
}

#[tokio::test]
async fn denied_missing_and_unaccepted_tokens_have_their_exit_codes() {
    let meta = FakeMetadata::builder(Cloud::Azure).start();
    // The identity has no role on this vault.
    let kv = FakeKeyVault::builder("kv-web").secret("P", "x").start();
    let denied = store(&section(&kv, ""), &meta.url())
        .unwrap()
        .get(&name("cred:P"))
        .await
        .unwrap_err();
    assert_eq!(denied.exit_code(), 77, "{denied}");
    let message = denied.message();
    assert!(message.contains("Key Vault Secrets User"), "{message}");
    assert!(message.contains(AZURE_SYSTEM_CLIENT_ID), "{message}");
    assert!(message.contains("ForbiddenByRbac"), "{message}");

    let granted = FakeKeyVault::builder("kv-web")
        .reader(AZURE_SYSTEM_CLIENT_ID)
        .start();
    let missing = store(&section(&granted, ""), &meta.url())
        .unwrap()
        .get(&name("cred:P"))
        .await
        .unwrap_err();
    assert_eq!(missing.exit_code(), 66, "{missing}");
    assert!(
        missing.message().contains("az keyvault secret set"),
        "{missing}"
    );

    // Another tenant's key, an expired token, another audience: 401.
    let strangers = [
        FakeMetadata::builder(Cloud::Azure)
            .signing_key(SigningKey::generate())
            .start(),
        FakeMetadata::builder(Cloud::Azure).expired_tokens().start(),
        FakeMetadata::builder(Cloud::Azure)
            .token_audience("https://management.azure.com")
            .start(),
    ];
    for stranger in &strangers {
        let error = store(&section(&granted, ""), &stranger.url())
            .unwrap()
            .get(&name("cred:P"))
            .await
            .unwrap_err();
        assert_eq!(error.exit_code(), 77, "{error}");
        assert!(error.message().contains("401"), "{error}");
    }
    for e in [&denied, &missing] {
        assert_eq!(e.message().lines().count(), 1, "{e}");
    }
}

#[tokio::test]
async fn throttling_is_retried() {
    let meta = FakeMetadata::builder(Cloud::Azure).start();
    let kv = FakeKeyVault::builder("kv-web")
        .reader(AZURE_SYSTEM_CLIENT_ID)
        .secret("P", "x")
        .answer_first(&[429, 503])
        .start();
    let store = store(&section(&kv, ""), &meta.url()).unwrap();
    assert_eq!(
        store.get(&name("cred:P")).await.unwrap().expose_secret(),
        "x"
    );
    assert_eq!(kv.requests().len(), 3);
}

#[tokio::test]
async fn a_vm_without_a_managed_identity_is_refused_with_the_fix() {
    let meta = FakeMetadata::builder(Cloud::Azure).no_identity().start();
    let kv = FakeKeyVault::builder("kv-web").start();
    let error = store(&section(&kv, ""), &meta.url())
        .unwrap()
        .get(&name("cred:P"))
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), 77);
    assert!(error.message().contains("az vm identity assign"), "{error}");
    assert!(kv.requests().is_empty());
}

#[tokio::test]
async fn names_and_settings_key_vault_cannot_take_are_refused_before_any_request() {
    let meta = FakeMetadata::builder(Cloud::Azure).start();
    let kv = FakeKeyVault::builder("kv-web").start();
    let error = store(&section(&kv, ""), &meta.url())
        .unwrap()
        .get(&name("cred:PROXY_PASS"))
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), 65, "{error}");
    assert!(error.message().contains("Key Vault secret name"), "{error}");
    for bad in [
        "vault = \"kv_web\"",
        "vault = \"http://kv.corp\"",
        "endpoint = \"http://kv.corp\"\nvault = \"kv\"",
        "vault = \"kv\"\nclient_id = \"not a guid\"",
        "vault = \"kv\"\nprefix = \"a.b\"",
    ] {
        let error = store(bad, &meta.url()).err().unwrap();
        assert_eq!(error.exit_code(), 78, "{bad}");
        assert!(error.message().starts_with("[azure_key_vault] "), "{error}");
    }
    let none = store("", &meta.url()).err().unwrap();
    assert_eq!(none.exit_code(), 78);
    assert!(none.message().contains("[azure_key_vault] vault"), "{none}");
    // A name becomes the vault's URL.
    let named = store("vault = \"kv-web\"", &meta.url()).unwrap();
    assert!(
        named.describe().contains("https://kv-web.vault.azure.net"),
        "{}",
        named.describe()
    );
    assert!(kv.requests().is_empty());
    assert!(meta.requests().is_empty());
}

/// A token Key Vault stops accepting before its expiry (401) is replaced by
/// a fresh one from IMDS, once: a second 401 is the refusal.
#[tokio::test]
async fn a_token_refused_with_401_is_asked_for_again_once() {
    let token_reads = |meta: &FakeMetadata| {
        meta.requests()
            .iter()
            .filter(|r| r.path.ends_with("/identity/oauth2/token"))
            .count()
    };
    for (first, readable) in [(&[401][..], true), (&[401, 401][..], false)] {
        let meta = FakeMetadata::builder(Cloud::Azure).start();
        let kv = FakeKeyVault::builder("kv-web")
            .reader(AZURE_SYSTEM_CLIENT_ID)
            .secret("p", "p@ss")
            .answer_first(first)
            .start();
        let store = store(&section(&kv, ""), &meta.url()).unwrap();
        let read = store.get(&name("cred:p")).await;
        match read {
            Ok(secret) => {
                assert!(readable, "read after two 401s");
                assert_eq!(secret.expose_secret(), "p@ss");
            }
            Err(e) => {
                assert!(!readable, "{e}");
                assert_eq!(e.exit_code(), 77, "{e}");
            }
        }
        assert_eq!(token_reads(&meta), 2, "one fresh token after the 401");
        assert_eq!(kv.requests().len(), 2);
    }
}
