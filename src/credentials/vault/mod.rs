//! HashiCorp Vault and OpenBao KV store (SPEC §2): `cred:NAME` reads
//! `{mount}/data/{prefix}NAME` (KV v2) or `{mount}/{prefix}NAME` (KV v1) and
//! returns its field (`value` by default). Reached directly, not through the
//! proxy: the proxy's password is what it holds.
//!
//! - [`client`]: the request over a list of addresses (high availability),
//!   following a standby's redirect to the active node.
//! - [`auth`]: the token, from `VAULT_TOKEN`, a token file, or a login
//!   (AppRole, jwt, cert, aws), revoked once the credentials are read.

pub mod auth;
pub(crate) mod client;
pub(crate) mod config;

#[cfg(all(test, unix))]
mod mock_tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use self::auth::VaultAuth;
use self::client::{Answer, Request, VaultClient};
use super::{CredRef, CredentialStore};
use crate::error::{Class, Error, Result};
use crate::net::classify::{status_class, StatusClass};
use crate::net::retry::{self, Failure, Tries};
use crate::util::BoxFuture;

/// Where and how to read secrets. `Debug` shows no token or secret ID.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Tried in turn; one is the usual case.
    pub addresses: Vec<Url>,
    pub auth: VaultAuth,
    pub namespace: Option<String>,
    pub mount: String,
    pub path_prefix: String,
    pub field: String,
    pub kv_version: u8,
    /// `[vault] insecure_http = true`: plain http:// to hosts that are not
    /// loopback is allowed, for the addresses and for a standby's redirect.
    pub insecure_http: bool,
}

pub(crate) struct VaultStore {
    config: VaultConfig,
    client: VaultClient,
    budget: Duration,
    /// The token, once read or logged in for: both credentials of a proxy
    /// (user and password) are read with one login.
    token: Mutex<Option<SecretString>>,
    /// Once logged in: the login, and whom the store took it for, as
    /// `describe()` names it after the reads (`doctor`'s credentials line).
    logged_in: Mutex<Option<String>>,
}

impl VaultStore {
    pub(crate) fn new(
        config: VaultConfig,
        tls: &Arc<rustls::ClientConfig>,
        budget: Duration,
    ) -> Result<VaultStore> {
        let client = VaultClient::new(
            config.addresses.clone(),
            config.namespace.clone(),
            config.insecure_http,
            tls,
        )?;
        Ok(VaultStore {
            config,
            client,
            budget,
            token: Mutex::new(None),
            logged_in: Mutex::new(None),
        })
    }

    fn prefix(&self) -> String {
        let prefix = self.config.path_prefix.trim_matches('/');
        if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        }
    }

    fn mount(&self) -> &str {
        self.config.mount.trim_matches('/')
    }

    /// The API path of a secret, e.g. `secret/data/PROXY_PASS`.
    pub(crate) fn secret_path(&self, name: &CredRef) -> String {
        let (mount, prefix) = (self.mount(), self.prefix());
        match self.config.kv_version {
            1 => format!("{mount}/{prefix}{}", name.name()),
            _ => format!("{mount}/data/{prefix}{}", name.name()),
        }
    }

    /// The path that lists what is under NAME, when NAME is a folder.
    fn list_path(&self, name: &CredRef) -> String {
        let (mount, prefix) = (self.mount(), self.prefix());
        match self.config.kv_version {
            1 => format!("{mount}/{prefix}{}", name.name()),
            _ => format!("{mount}/metadata/{prefix}{}", name.name()),
        }
    }

    async fn token(&self) -> Result<SecretString> {
        if let Some(token) = self.token.lock().expect("token lock").clone() {
            return Ok(token);
        }
        let logged_in = self.config.auth.token(&self.client, self.budget).await?;
        if let Some(login) = self.config.auth.login() {
            let by = logged_in
                .identity
                .map(|identity| format!(" ({identity})"))
                .unwrap_or_default();
            *self.logged_in.lock().expect("login lock") = Some(format!("{login}{by}"));
        }
        let token = logged_in.token;
        *self.token.lock().expect("token lock") = Some(token.clone());
        Ok(token)
    }

    async fn read_once(
        &self,
        name: &CredRef,
        path: &str,
        token: &SecretString,
    ) -> std::result::Result<SecretString, Failure> {
        let answer = self.client.send(&Request::get(path, token)).await?;
        let store = self.client.describe();
        let status = answer.status;
        match status_class(status) {
            StatusClass::Success => {}
            StatusClass::NotFound => {
                return Err(Failure::Permanent(self.not_found(name, path, token).await))
            }
            StatusClass::Denied => {
                return Err(Failure::Permanent(Error::status(
                    Class::Refused,
                    status,
                    format!("credential {name} ({path})"),
                    store.as_str(),
                    format!(
                        "{store} denied reading credential {name} ({path}) with {status}: check \
                         that {} is valid and that its policy allows read on {path}",
                        self.config.auth.describe()
                    ),
                )))
            }
            _ => {
                return Err(Failure::Permanent(Error::status(
                    Class::Unavailable,
                    status,
                    format!("credential {name} ({path})"),
                    store.as_str(),
                    format!("{store} answered {status} for credential {name} ({path})"),
                )))
            }
        }
        self.field(name, path, &answer).map_err(Failure::Permanent)
    }

    /// The secret's field, out of a 200 answer.
    fn field(&self, name: &CredRef, path: &str, answer: &Answer) -> Result<SecretString> {
        let store = self.client.describe();
        let body = answer.json().ok_or_else(|| {
            Error::Unavailable(format!(
                "{store}: the answer for {path} is not JSON: is the address a Vault/OpenBao server?"
            ))
        })?;
        let data = match self.config.kv_version {
            1 => body.get("data"),
            _ => body.get("data").and_then(|d| d.get("data")),
        };
        let field = &self.config.field;
        match data.and_then(|d| d.get(field)) {
            Some(serde_json::Value::String(value)) => Ok(SecretString::from(value.clone())),
            Some(other) => Err(Error::Input(format!(
                "credential {name}: the field {field:?} of {path} in {store} is {}, not a string: \
                 store the secret as a string",
                crate::net::direct::json_kind(other)
            ))),
            None if data.is_none() && self.config.kv_version == 2 => Err(Error::NotFound(format!(
                "credential {name}: {path} in {store} has no current version (deleted or \
                 destroyed?); if the mount is KV version 1, set [vault] kv_version = 1"
            ))),
            None => Err(Error::NotFound(format!(
                "credential {name}: the secret {path} in {store} has no field {field:?}: add it, \
                 or set [vault] field to the field that holds the secret"
            ))),
        }
    }

    /// The error for a 404: a plain "does not exist", or, when NAME is a
    /// folder of secrets (which a policy with `list` can tell), a pointer to
    /// the secrets inside it.
    async fn not_found(&self, name: &CredRef, path: &str, token: &SecretString) -> Error {
        let store = self.client.describe();
        let list_path = self.list_path(name);
        let listed = self
            .client
            .send(&Request {
                query: Some("list=true"),
                ..Request::get(&list_path, token)
            })
            .await;
        if let Ok(answer) = listed {
            let keys = answer
                .json()
                .and_then(|j| j.get("data")?.get("keys")?.as_array().cloned());
            if let (200, Some(keys)) = (answer.status, keys) {
                return Error::NotFound(format!(
                    "credential {name}: {path} in {store} is a folder holding {} entries, not a \
                     secret: name a secret inside it (set [vault] path_prefix to the folder and \
                     write cred:<secret>)",
                    keys.len()
                ));
            }
        }
        Error::NotFound(format!(
            "credential {name} does not exist: {store} has no secret at {path}. Create it (e.g. \
             bao kv put -mount={} {}{} {}=...) or fix the tag",
            self.mount(),
            self.prefix(),
            name.name(),
            self.config.field
        ))
    }
}

impl CredentialStore for VaultStore {
    /// The store, and after a login, the login and the identity it used.
    fn describe(&self) -> String {
        let store = self.client.describe();
        match &*self.logged_in.lock().expect("login lock") {
            Some(login) => format!("{store}, logged in with {login}"),
            None => store,
        }
    }

    fn get<'a>(&'a self, name: &'a CredRef) -> BoxFuture<'a, Result<SecretString>> {
        Box::pin(async move {
            let token = self.token().await?;
            let path = self.secret_path(name);
            let what = format!("credential {name} from {}", self.client.describe());
            let mut tries = Tries::default();
            retry::retry(&what, self.budget, &mut tries, |_| {
                self.read_once(name, &path, &token)
            })
            .await
        })
    }

    /// A token tagstrap logged in for is revoked once the credentials are
    /// read (one try, best effort): a boot should leave no live token behind.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if !self.config.auth.logs_in() {
                return;
            }
            let Some(token) = self.token.lock().expect("token lock").take() else {
                return;
            };
            let request = Request {
                method: reqwest::Method::POST,
                path: "auth/token/revoke-self",
                query: None,
                token: Some(&token),
                body: None,
            };
            match self.client.send(&request).await {
                Ok(answer) if answer.status == 204 || answer.status == 200 => {
                    tracing::debug!("revoked the login's token")
                }
                Ok(answer) => tracing::debug!(
                    "revoking the login's token answered {}; it expires with its TTL",
                    answer.status
                ),
                Err(_) => {
                    tracing::debug!("revoking the login's token failed; it expires with its TTL")
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(kv_version: u8, prefix: &str) -> VaultStore {
        let config = VaultConfig {
            addresses: vec![Url::parse("http://127.0.0.1:8200").unwrap()],
            auth: VaultAuth::Token {
                token: SecretString::from("s.token"),
                from: "$VAULT_TOKEN",
            },
            namespace: None,
            mount: "/kv/".into(),
            path_prefix: prefix.into(),
            field: "value".into(),
            kv_version,
            insecure_http: false,
        };
        VaultStore::new(
            config,
            &crate::net::tls::client_config(&[]).unwrap(),
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn secret_paths_follow_the_kv_version_and_prefix() {
        let name = CredRef::parse("cred:PROXY_PASS").unwrap().unwrap();
        assert_eq!(store(2, "").secret_path(&name), "kv/data/PROXY_PASS");
        assert_eq!(
            store(2, "/boot/agents/").secret_path(&name),
            "kv/data/boot/agents/PROXY_PASS"
        );
        assert_eq!(store(1, "boot").secret_path(&name), "kv/boot/PROXY_PASS");
        assert_eq!(
            store(2, "boot").list_path(&name),
            "kv/metadata/boot/PROXY_PASS"
        );
        assert_eq!(store(1, "").list_path(&name), "kv/PROXY_PASS");
    }

    #[test]
    fn debug_of_the_config_shows_no_token() {
        let config = store(2, "").config;
        assert!(!format!("{config:?}").contains("s.token"));
    }

    fn answer(body: &str) -> Answer {
        Answer {
            status: 200,
            body: body.as_bytes().to_vec(),
            from: Url::parse("http://127.0.0.1:8200").unwrap(),
        }
    }

    #[test]
    fn fields_are_taken_from_the_kv_answer_and_checked() {
        use secrecy::ExposeSecret;
        let name = CredRef::parse("cred:P").unwrap().unwrap();
        let v2 = store(2, "");
        let ok = v2
            .field(&name, "p", &answer(r#"{"data":{"data":{"value":"pw"}}}"#))
            .unwrap();
        assert_eq!(ok.expose_secret(), "pw");
        let number = v2
            .field(&name, "p", &answer(r#"{"data":{"data":{"value":42}}}"#))
            .unwrap_err();
        assert_eq!(number.exit_code(), 65);
        assert!(number.message().contains("a number, not a string"));
        let missing = v2
            .field(&name, "p", &answer(r#"{"data":{"data":{"other":"x"}}}"#))
            .unwrap_err();
        assert_eq!(missing.exit_code(), 66);
        assert!(missing.message().contains("no field \"value\""));
        assert!(!missing.message().contains("\"x\""));
        let v1_shape = v2
            .field(&name, "p", &answer(r#"{"data":{"value":"pw"}}"#))
            .unwrap_err();
        assert_eq!(v1_shape.exit_code(), 66);
        let v1 = store(1, "");
        let ok = v1
            .field(&name, "p", &answer(r#"{"data":{"value":"pw"}}"#))
            .unwrap();
        assert_eq!(ok.expose_secret(), "pw");
        let not_json = v1.field(&name, "p", &answer("<html>")).unwrap_err();
        assert_eq!(not_json.exit_code(), 69);
    }
}
