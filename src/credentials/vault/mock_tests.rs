//! The Vault/OpenBao logins against a local fake shaped like the store's
//! login API (`POST /v1/auth/{mount}/login` answering `{"auth":
//! {"client_token"}}` or `{"errors": [...]}`): what each answer gives, that
//! transient answers are retried, that the store's error text is shown only
//! when it holds no secret, and that the token is revoked on `close`. The
//! logins against real OpenBao are in `tests/vault_logins.rs`.

use std::time::Duration;

use secrecy::ExposeSecret;
use testkit::{Origin, Reply};
use url::Url;

use super::auth::jwt::JwtSource;
use super::auth::{JwtLogin, VaultAuth};
use super::{VaultConfig, VaultStore};
use crate::credentials::{CredRef, CredentialStore};

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJpLTEifQ.c2lnbmF0dXJl";

/// A store logging in with a JWT file (mode 0600) at `store`.
fn store(store: &Origin, dir: &tempfile::TempDir) -> VaultStore {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let file = dir.path().join("jwt");
    std::fs::write(&file, JWT).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = VaultConfig {
        addresses: vec![Url::parse(&store.url("")).unwrap()],
        auth: VaultAuth::Jwt(JwtLogin {
            mount: "jwt".into(),
            role: Some("boot".into()),
            source: JwtSource::File(file),
        }),
        namespace: None,
        mount: "secret".into(),
        path_prefix: String::new(),
        field: "value".into(),
        kv_version: 2,
        insecure_http: false,
    };
    let tls = crate::net::tls::client_config(&[]).unwrap();
    VaultStore::new(config, &tls, Duration::from_secs(20)).unwrap()
}

fn name() -> CredRef {
    CredRef::parse("cred:PROXY_PASS").unwrap().unwrap()
}

const LOGIN: &str = "/v1/auth/jwt/login";
const SECRET: &str = "/v1/secret/data/PROXY_PASS";
const REVOKE: &str = "/v1/auth/token/revoke-self";

#[tokio::test]
async fn a_busy_login_is_retried_then_its_token_reads_and_is_revoked() {
    let granted = r#"{"auth":{"client_token":"s.granted","accessor":"a","policies":["p"]}}"#;
    let fake = Origin::builder(None)
        .route(LOGIN, vec![Reply::status(503)], Reply::ok(granted))
        .route(
            SECRET,
            vec![],
            Reply::ok(r#"{"data":{"data":{"value":"pw"}}}"#),
        )
        .route(REVOKE, vec![], Reply::status(204))
        .start();
    let dir = tempfile::tempdir().unwrap();
    let store = store(&fake, &dir);
    assert!(!store.describe().contains("logged in"), "before the login");
    let secret = store.get(&name()).await.unwrap();
    assert_eq!(secret.expose_secret(), "pw");
    assert_eq!(fake.hits(LOGIN), 2, "the 503 was retried");
    let sent = fake.requests();
    let read = sent.iter().find(|r| r.path == SECRET).unwrap();
    assert!(read
        .headers
        .iter()
        .any(|(k, v)| k == "x-vault-token" && v == "s.granted"));
    assert_eq!(
        store.describe(),
        format!(
            "the Vault/OpenBao store at {}, logged in with the jwt login at auth/jwt as role boot \
             with the JWT in {}",
            fake.url("").trim_end_matches('/'),
            dir.path().join("jwt").display()
        )
    );
    store.close().await;
    assert_eq!(fake.hits(REVOKE), 1, "the login's token is revoked");
}

#[tokio::test]
async fn each_login_answer_gives_its_exit_code_and_never_echoes_the_jwt() {
    let echoing = format!(r#"{{"errors":["error validating token {JWT}"]}}"#);
    for (reply, code, needle) in [
        (
            Reply::status_with_body(400, r#"{"errors":["invalid audience (aud) claim"]}"#),
            77,
            "refused with 400 (invalid audience (aud) claim): check that the role boot",
        ),
        (
            Reply::status_with_body(400, echoing),
            77,
            "refused with 400: check",
        ),
        (Reply::status(403), 77, "refused with 403"),
        (
            Reply::status(404),
            78,
            "has no jwt auth method at auth/jwt/login (404): enable it (bao auth enable jwt) or \
             set [vault.jwt] mount",
        ),
        (
            Reply::ok(r#"{"auth":null}"#),
            69,
            "answered without auth.client_token",
        ),
    ] {
        let fake = Origin::builder(None).route(LOGIN, vec![], reply).start();
        let dir = tempfile::tempdir().unwrap();
        let store = store(&fake, &dir);
        let error = store.get(&name()).await.unwrap_err();
        assert_eq!(error.exit_code(), code, "{error}");
        assert!(error.message().contains(needle), "{error}");
        assert!(!error.message().contains(JWT), "{error}");
        assert!(!format!("{error:?}").contains(JWT), "{error:?}");
        assert_eq!(fake.hits(LOGIN), 1, "not retried: {error}");
        assert_eq!(fake.hits(SECRET), 0);
        store.close().await;
        assert_eq!(fake.hits(REVOKE), 0, "no token, nothing to revoke");
    }
}
