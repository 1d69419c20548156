//! HashiCorp Vault and OpenBao KV store (SPEC §2): `cred:NAME` reads
//! `{mount}/data/{prefix}NAME` (KV v2) or `{mount}/{prefix}NAME` (KV v1) and
//! returns its field (`value` by default). Reached directly, not through the
//! proxy: the proxy's password is what it holds.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{CredRef, CredentialStore};
use crate::error::{Error, Result};
use crate::fetch::classify::{status_class, ErrorFacts, StatusClass};
use crate::fetch::retry::{self, Failure, Tries};
use crate::BoxFuture;

/// Where and how to read secrets. `Debug` shows no token (it is a `SecretString`).
#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub address: Url,
    pub token: SecretString,
    pub namespace: Option<String>,
    pub mount: String,
    pub path_prefix: String,
    pub field: String,
    pub kv_version: u8,
}

pub struct VaultStore {
    config: VaultConfig,
    client: reqwest::Client,
    budget: Duration,
}

impl VaultStore {
    pub fn new(
        config: VaultConfig,
        tls: &Arc<rustls::ClientConfig>,
        budget: Duration,
    ) -> Result<VaultStore> {
        let client = crate::fetch::http_client(tls, None, false)?;
        Ok(VaultStore {
            config,
            client,
            budget,
        })
    }

    /// The API path of a secret, e.g. `secret/data/PROXY_PASS`.
    pub fn secret_path(&self, name: &CredRef) -> String {
        let mount = self.config.mount.trim_matches('/');
        let prefix = self.config.path_prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        match self.config.kv_version {
            1 => format!("{mount}/{prefix}{}", name.name()),
            _ => format!("{mount}/data/{prefix}{}", name.name()),
        }
    }

    async fn read_once(
        &self,
        name: &CredRef,
        path: &str,
    ) -> std::result::Result<SecretString, Failure> {
        let url = self
            .config
            .address
            .join(&format!("v1/{path}"))
            .map_err(|e| Error::Config(format!("cannot build the store URL: {e}")))?;
        let mut request = self
            .client
            .get(url)
            .header("X-Vault-Token", self.config.token.expose_secret())
            .header("X-Vault-Request", "true");
        if let Some(namespace) = &self.config.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        let store = self.describe();
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let facts = ErrorFacts::of(&e);
                if let Some(untrusted) = facts.untrusted {
                    return Err(Failure::Permanent(Error::Refused(format!(
                        "TLS verification of {store} failed ({untrusted}): set VAULT_CACERT or --ca-file"
                    ))));
                }
                return Err(if facts.connect {
                    Failure::network_down(format!("{store} is not reachable: {}", facts.detail))
                } else {
                    Failure::busy(format!("{store}: {}", facts.detail), None)
                });
            }
        };
        let status = response.status().as_u16();
        match status_class(status) {
            StatusClass::Success => {}
            StatusClass::Transient => {
                let retry_after = crate::fetch::classify::retry_after_header(response.headers());
                let why = if status == 503 {
                    " (sealed, or not ready yet)"
                } else {
                    ""
                };
                return Err(Failure::busy(
                    format!("{store} answered {status}{why}"),
                    retry_after,
                ));
            }
            StatusClass::NotFound => {
                return Err(Failure::Permanent(Error::NotFound(format!(
                    "credential {name} does not exist: {store} has no secret at {path}. Create it \
                     (e.g. bao kv put -mount={} {} {}=...) or fix the tag",
                    self.config.mount,
                    name.name(),
                    self.config.field
                ))))
            }
            StatusClass::Denied => {
                return Err(Failure::Permanent(Error::Refused(format!(
                "{store} denied reading credential {name} ({path}) with {status}: check that the \
                     token is valid and its policy allows read on {path}"
            ))))
            }
            _ => {
                return Err(Failure::Permanent(Error::Unavailable(format!(
                    "{store} answered {status} for credential {name} ({path})"
                ))))
            }
        }
        let bytes = response.bytes().await.map_err(|e| {
            Failure::busy(
                format!(
                    "{store}: reading the answer for {path} failed: {}",
                    ErrorFacts::of(&e).detail
                ),
                None,
            )
        })?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
            Failure::Permanent(Error::Unavailable(format!(
                "{store}: the answer for {path} is not JSON: is VAULT_ADDR a Vault/OpenBao server?"
            )))
        })?;
        let data = match self.config.kv_version {
            1 => body.get("data"),
            _ => body.get("data").and_then(|d| d.get("data")),
        };
        match data.and_then(|d| d.get(&self.config.field)) {
            Some(serde_json::Value::String(value)) => Ok(SecretString::from(value.clone())),
            Some(_) => Err(Failure::Permanent(Error::Input(format!(
                "credential {name}: the field {:?} of {path} in {store} is not a string",
                self.config.field
            )))),
            None => Err(Failure::Permanent(Error::NotFound(format!(
                "credential {name}: the secret {path} in {store} has no field {:?}",
                self.config.field
            )))),
        }
    }
}

impl CredentialStore for VaultStore {
    fn describe(&self) -> String {
        let address = self.config.address.as_str().trim_end_matches('/');
        format!("the Vault/OpenBao store at {address}")
    }

    fn get<'a>(&'a self, name: &'a CredRef) -> BoxFuture<'a, Result<SecretString>> {
        Box::pin(async move {
            let path = self.secret_path(name);
            let what = format!("credential {name} from {}", self.describe());
            let mut tries = Tries::default();
            retry::retry(&what, self.budget, &mut tries, |_| {
                self.read_once(name, &path)
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(kv_version: u8, prefix: &str) -> VaultStore {
        let config = VaultConfig {
            address: Url::parse("http://127.0.0.1:8200").unwrap(),
            token: SecretString::from("s.token"),
            namespace: None,
            mount: "/kv/".into(),
            path_prefix: prefix.into(),
            field: "value".into(),
            kv_version,
        };
        VaultStore::new(
            config,
            &crate::fetch::tls::client_config(&[]).unwrap(),
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
    }

    #[test]
    fn debug_of_the_config_shows_no_token() {
        let config = store(2, "").config;
        assert!(!format!("{config:?}").contains("s.token"));
    }
}
