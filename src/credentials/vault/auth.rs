//! How tagstrap authenticates to Vault/OpenBao: a token (`VAULT_TOKEN`), a
//! token file, or an AppRole login with a secret ID read from a file (the
//! usual "secret zero" of a boot). Tokens and secret IDs are `SecretString`s
//! from the moment they are read; a token or secret-ID file that its group or
//! others can read is refused (see [`crate::credentials::secret_file`]).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};

use super::client::{Request, VaultClient};
use crate::credentials::secret_file;
use crate::error::{Class, Error, Result};
use crate::net::classify::{status_class, StatusClass};
use crate::net::retry::{self, Failure, Tries};

/// Where the token comes from. `Debug` shows no secret: the token is a
/// `SecretString`, and the files are only named.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token given directly; `from` names where, e.g. `$VAULT_TOKEN`.
    Token {
        token: SecretString,
        from: &'static str,
    },
    /// A file holding a token, e.g. `$CREDENTIALS_DIRECTORY/vault-token`.
    TokenFile(PathBuf),
    /// An AppRole login.
    AppRole(AppRole),
}

/// An AppRole login: the role ID is an identifier, the secret ID is the secret.
#[derive(Debug, Clone)]
pub struct AppRole {
    /// The auth method's mount, `approle` by default.
    pub mount: String,
    pub role_id: String,
    pub secret_id_file: PathBuf,
}

impl VaultAuth {
    /// For messages: where the token came from.
    pub(crate) fn describe(&self) -> String {
        match self {
            VaultAuth::Token { from, .. } => format!("the token in {from}"),
            VaultAuth::TokenFile(path) => format!("the token in {}", path.display()),
            VaultAuth::AppRole(role) => format!(
                "the token of the AppRole login at auth/{} with the secret ID in {}",
                role.mount.trim_matches('/'),
                role.secret_id_file.display()
            ),
        }
    }

    /// The token to send: read, or obtained by logging in (with retries).
    pub(crate) async fn token(
        &self,
        client: &VaultClient,
        budget: Duration,
    ) -> Result<SecretString> {
        match self {
            VaultAuth::Token { token, .. } => Ok(token.clone()),
            VaultAuth::TokenFile(path) => secret_file::read(
                path,
                "the store token file",
                "write the Vault/OpenBao token into it (mode 0600), or set VAULT_TOKEN",
            ),
            VaultAuth::AppRole(role) => role.login(client, budget).await,
        }
    }
}

impl AppRole {
    fn login_path(&self) -> String {
        format!("auth/{}/login", self.mount.trim_matches('/'))
    }

    async fn login(&self, client: &VaultClient, budget: Duration) -> Result<SecretString> {
        let secret_id = secret_file::read(
            &self.secret_id_file,
            "the AppRole secret-ID file",
            "deliver the secret ID to this file (mode 0600) before tagstrap runs",
        )?;
        let path = self.login_path();
        let what = format!("AppRole login at {path} on {}", client.describe());
        let mut tries = Tries::default();
        let token = retry::retry(&what, budget, &mut tries, |_| {
            self.login_once(client, &path, &secret_id)
        })
        .await?;
        tracing::info!("logged in to the store with AppRole ({path})");
        Ok(token)
    }

    async fn login_once(
        &self,
        client: &VaultClient,
        path: &str,
        secret_id: &SecretString,
    ) -> std::result::Result<SecretString, Failure> {
        let body = serde_json::json!({
            "role_id": self.role_id,
            "secret_id": secret_id.expose_secret(),
        });
        let answer = client
            .send(&Request {
                method: Method::POST,
                path,
                query: None,
                token: None,
                body: Some(&body),
            })
            .await?;
        drop(body);
        let status = answer.status;
        let from = super::client::shown_address(&answer.from).to_string();
        let why = answer
            .errors(&[secret_id.expose_secret(), &self.role_id])
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let secret_id_file = self.secret_id_file.display();
        let asked = format!("the AppRole login at {path}");
        let fail = |class, message| {
            Err(Failure::Permanent(Error::status(
                class,
                status,
                asked.as_str(),
                from.as_str(),
                message,
            )))
        };
        match (status_class(status), status) {
            (StatusClass::Success, _) => {}
            (_, 400) | (StatusClass::Denied, _) => {
                return fail(
                    Class::Refused,
                    format!(
                        "the AppRole login at {path} on {from} was refused with {status}{why}: \
                         check the role ID, and that the secret ID in {secret_id_file} is current \
                         (secret IDs expire and may be used up)"
                    ),
                )
            }
            (StatusClass::NotFound, _) => {
                return fail(
                    Class::Config,
                    format!(
                        "{from} has no AppRole auth method at {path} ({status}{why}): enable it \
                         (bao auth enable approle) or set [vault.approle] mount"
                    ),
                )
            }
            _ => {
                return fail(
                    Class::Unavailable,
                    format!("the AppRole login at {path} on {from} answered {status}{why}"),
                )
            }
        }
        let token = answer
            .json()
            .and_then(|json| {
                json.get("auth")?
                    .get("client_token")?
                    .as_str()
                    .map(str::to_string)
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Failure::Permanent(Error::Unavailable(format!(
                    "the AppRole login at {path} on {from} answered without auth.client_token: is \
                     it a Vault/OpenBao server?"
                )))
            })?;
        Ok(SecretString::from(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_the_source_never_the_secret() {
        let token = VaultAuth::Token {
            token: SecretString::from("hvs.SECRETTOKEN"),
            from: "$VAULT_TOKEN",
        };
        assert_eq!(token.describe(), "the token in $VAULT_TOKEN");
        assert!(!format!("{token:?}").contains("SECRETTOKEN"));
        let role = VaultAuth::AppRole(AppRole {
            mount: "/approle/".into(),
            role_id: "role-1".into(),
            secret_id_file: "/run/secret-id".into(),
        });
        assert_eq!(
            role.describe(),
            "the token of the AppRole login at auth/approle with the secret ID in /run/secret-id"
        );
    }
}
