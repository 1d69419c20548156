//! How tagstrap authenticates to Vault/OpenBao, and the one login request
//! every login method shares.
//!
//! The choice, first match wins (made in `credentials::open`): a token
//! (`VAULT_TOKEN`), a token file, then one login method — AppRole
//! ([`approle`]), `jwt` ([`jwt`]: the GCE or Azure identity token, or a JWT
//! in a file), `cert` ([`cert`]: a TLS client certificate), `aws`
//! ([`aws`]: Vault's IAM login) — then `$CREDENTIALS_DIRECTORY/vault-token`.
//! Two login methods configured at once is a configuration error (78, "keep
//! one"): which one a boot used must never depend on an order nobody reads.
//!
//! Tokens, secret IDs and JWTs are `SecretString`s from the moment they are
//! read; a token, secret-ID, JWT or key file that its group or others can
//! read is refused (see [`crate::credentials::secret_file`]). A login's
//! token is revoked once the credentials are read (`VaultStore::close`),
//! after a failure or a signal too.

pub(crate) mod approle;
pub(crate) mod aws;
pub(crate) mod cert;
pub(crate) mod jwt;

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use secrecy::SecretString;

pub use self::approle::AppRole;
pub use self::aws::AwsLogin;
pub use self::cert::CertLogin;
pub use self::jwt::JwtLogin;
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
    /// A `jwt` login with a JWT the instance's identity (or a file) gives.
    Jwt(JwtLogin),
    /// A `cert` login: the TLS connection presents a client certificate.
    Cert(CertLogin),
    /// An `aws` (IAM) login: a signed `sts:GetCallerIdentity`.
    Aws(AwsLogin),
}

impl VaultAuth {
    /// For messages: where the token came from.
    pub(crate) fn describe(&self) -> String {
        match self {
            VaultAuth::Token { from, .. } => format!("the token in {from}"),
            VaultAuth::TokenFile(path) => format!("the token in {}", path.display()),
            login => format!("the token of {}", login.login().unwrap_or_default()),
        }
    }

    /// The login method, for a token that comes from a login: "the jwt
    /// login at auth/jwt as role boot with ...".
    pub(crate) fn login(&self) -> Option<String> {
        match self {
            VaultAuth::Token { .. } | VaultAuth::TokenFile(_) => None,
            VaultAuth::AppRole(role) => Some(role.describe()),
            VaultAuth::Jwt(login) => Some(login.describe()),
            VaultAuth::Cert(login) => Some(login.describe()),
            VaultAuth::Aws(login) => Some(login.describe()),
        }
    }

    /// Whether the token comes from a login tagstrap made, so it is
    /// tagstrap's to revoke once the credentials are read.
    pub(crate) fn logs_in(&self) -> bool {
        self.login().is_some()
    }

    /// The token to send: read, or obtained by logging in (with retries).
    pub(crate) async fn token(&self, client: &VaultClient, budget: Duration) -> Result<LoggedIn> {
        let token = match self {
            VaultAuth::Token { token, .. } => token.clone(),
            VaultAuth::TokenFile(path) => secret_file::read(
                path,
                "the store token file",
                "write the Vault/OpenBao token into it (mode 0600), or set VAULT_TOKEN",
            )?,
            VaultAuth::AppRole(role) => return role.login(client, budget).await,
            VaultAuth::Jwt(login) => return login.login(client, budget).await,
            VaultAuth::Cert(login) => return login.login(client, budget).await,
            VaultAuth::Aws(login) => return login.login(client, budget).await,
        };
        Ok(LoggedIn {
            token,
            identity: None,
        })
    }
}

/// How the metadata service is reached by the logins that ask it for the
/// instance's identity: `--metadata-endpoint` (or the cloud's address) with
/// the run's TLS roots, directly.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    pub(crate) endpoint: Option<url::Url>,
    pub(crate) tls: std::sync::Arc<rustls::ClientConfig>,
}

impl Metadata {
    /// The client of `cloud`'s metadata service, retrying until `budget`.
    pub(crate) fn client(
        &self,
        cloud: &'static str,
        budget: Duration,
    ) -> Result<crate::net::metadata::MetadataClient> {
        crate::credentials::identity::client(cloud, self.endpoint.as_ref(), &self.tls, budget)
    }
}

/// A token, and for a login that learns it, the identity it logged in as
/// (the instance role of an aws login), for `describe()`.
pub(crate) struct LoggedIn {
    pub(crate) token: SecretString,
    pub(crate) identity: Option<String>,
}

/// One login method's request: `POST auth/{mount}/login` with `body`.
pub(crate) struct Login<'a> {
    /// The method's name in messages: `AppRole`, `jwt`, `cert`, `aws`.
    pub(crate) method: &'a str,
    /// The method's type (`bao auth enable KIND`) and config section
    /// (`[vault.KIND]`).
    pub(crate) kind: &'a str,
    pub(crate) mount: &'a str,
    pub(crate) body: serde_json::Value,
    /// Texts that must never be echoed from the store's error messages.
    pub(crate) secrets: Vec<&'a str>,
    /// What to check when the store refuses the login.
    pub(crate) refused_fix: String,
}

impl Login<'_> {
    pub(crate) fn path(&self) -> String {
        login_path(self.mount)
    }
}

/// `auth/{mount}/login`.
pub(crate) fn login_path(mount: &str) -> String {
    format!("auth/{}/login", mount.trim_matches('/'))
}

/// Logs in with `login`, retrying what is transient until `budget`; the
/// answer's `auth.client_token` is the token.
pub(crate) async fn login(
    client: &VaultClient,
    budget: Duration,
    login: &Login<'_>,
) -> Result<LoggedIn> {
    let path = login.path();
    let what = format!("{} login at {path} on {}", login.method, client.describe());
    let mut tries = Tries::default();
    let token = retry::retry(&what, budget, &mut tries, |_| {
        login_once(client, &path, login)
    })
    .await?;
    tracing::info!(
        "logged in to the store with {} ({path})",
        match login.method {
            "AppRole" => "AppRole".to_string(),
            method => format!("the {method} login"),
        }
    );
    Ok(LoggedIn {
        token,
        identity: None,
    })
}

async fn login_once(
    client: &VaultClient,
    path: &str,
    login: &Login<'_>,
) -> std::result::Result<SecretString, Failure> {
    let answer = client
        .send(&Request {
            method: Method::POST,
            path,
            query: None,
            token: None,
            body: Some(&login.body),
        })
        .await?;
    let status = answer.status;
    let from = super::client::shown_address(&answer.from).to_string();
    let why = answer
        .errors(&login.secrets)
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    let (method, kind) = (login.method, login.kind);
    let asked = format!("the {method} login at {path}");
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
        // Vault and OpenBao answer 400 to a bad JWT, an unknown client
        // certificate, a bad signature: a refused login (SPEC §5).
        (_, 400) | (StatusClass::Denied, _) => {
            return fail(
                Class::Refused,
                format!(
                    "the {method} login at {path} on {from} was refused with {status}{why}: {}",
                    login.refused_fix
                ),
            )
        }
        (StatusClass::NotFound, _) => {
            return fail(
                Class::Config,
                format!(
                    "{from} has no {method} auth method at {path} ({status}{why}): enable it \
                     (bao auth enable {kind}) or set [vault.{kind}] mount"
                ),
            )
        }
        _ => {
            return fail(
                Class::Unavailable,
                format!("the {method} login at {path} on {from} answered {status}{why}"),
            )
        }
    }
    answer
        .json()
        .and_then(|json| {
            json.get("auth")?
                .get("client_token")?
                .as_str()
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty())
        .map(SecretString::from)
        .ok_or_else(|| {
            Failure::Permanent(Error::Unavailable(format!(
                "the {method} login at {path} on {from} answered without auth.client_token: is \
                 it a Vault/OpenBao server?"
            )))
        })
}

/// " as role R" for a login's description, or nothing when the store picks
/// the role.
pub(crate) fn as_role(role: &Option<String>) -> String {
    role.as_ref()
        .map(|r| format!(" as role {}", crate::util::text::shown(r)))
        .unwrap_or_default()
}

/// A mount as written in messages, `auth/{mount}`.
pub(crate) fn shown_mount(mount: &str) -> String {
    format!("auth/{}", mount.trim_matches('/'))
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
        assert!(!token.logs_in());
        let role = VaultAuth::AppRole(AppRole {
            mount: "/approle/".into(),
            role_id: "role-1".into(),
            secret_id_file: "/run/secret-id".into(),
        });
        assert_eq!(
            role.describe(),
            "the token of the AppRole login at auth/approle with the secret ID in /run/secret-id"
        );
        assert!(role.logs_in());
        assert_eq!(login_path("/jwt/"), "auth/jwt/login");
    }
}
