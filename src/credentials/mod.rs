//! Credentials: `cred:NAME` references in tags, and the stores that resolve them
//! (SPEC §2). A store is one [`CredentialStore`] implementation in its own file;
//! the rest of the program sees only names going in and `SecretString`s coming
//! out.
//!
//! - [`vault`]: HashiCorp Vault / OpenBao KV (v1, v2), token or AppRole, HA.
//! - [`aws_secrets_manager`], [`aws_ssm`]: AWS Secrets Manager and SSM
//!   Parameter Store, opened with the instance role.
//! - [`directory`]: one file per secret, e.g. systemd's `$CREDENTIALS_DIRECTORY`.
//! - [`gcp_secret_manager`], [`azure_key_vault`]: the GCP and Azure secret
//!   stores, opened with the instance's identity; [`bearer`] is their one
//!   API request.
//! - [`identity`]: the instance's own cloud identity, which opens the cloud
//!   stores and the Vault logins that need no stored secret.
//! - [`secret_file`]: reading one private file, shared by both.
//! - [`address`]: the rule every store address follows (https://, or loopback,
//!   or `insecure_http`).
//! - [`config`]: which store, and each store's settings (its section parsed
//!   in its own folder).
//! - [`open`]: the store the settings choose.
//! - `login`: the proxy's user and password, resolved as one pair.
//! - [`reference`](mod@reference): the `cred:NAME` reference itself, a pure parser below
//!   the tags that carry it.
//!
//! Layer: credentials. It may import `tags`, the state directory, the pure
//! parsers and the toolkit; `reference` imports nothing of tagstrap's.

pub(crate) mod address;
pub(crate) mod aws_secrets_manager;
pub(crate) mod aws_ssm;
pub(crate) mod azure_key_vault;
pub(crate) mod bearer;
pub(crate) mod config;
pub(crate) mod directory;
pub(crate) mod gcp_secret_manager;
pub(crate) mod identity;
pub(crate) mod login;
pub(crate) mod open;
pub(crate) mod reference;
pub(crate) mod secret_file;
#[cfg(test)]
pub(crate) mod test_support;
pub mod vault;

pub(crate) use self::reference::CredRef;
pub use self::reference::REF_PREFIX;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};
use crate::util::BoxFuture;

/// A place secrets are read from. Implementations return the secret, or an
/// error whose class follows SPEC §5 (66 for a missing secret, 77 for denied
/// access, 69 when the store stayed unreachable until the deadline) and whose
/// message names the credential but never holds its value.
pub(crate) trait CredentialStore: Send + Sync {
    /// For messages: what and where the store is, e.g. "OpenBao/Vault at https://vault:8200".
    fn describe(&self) -> String;

    /// Reads one secret.
    fn get<'a>(&'a self, name: &'a CredRef) -> BoxFuture<'a, Result<SecretString>>;

    /// Called once every credential is read: a store that logged in ends its
    /// session here. Best effort; never fails the run.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Reads a secret and checks it can safely become part of an environment
/// variable and a header: neither empty nor holding a control character.
pub(crate) async fn resolve(store: &dyn CredentialStore, name: &CredRef) -> Result<SecretString> {
    let secret = store.get(name).await?;
    check_secret(
        secret.expose_secret(),
        &format!("credential {name} in {}", store.describe()),
        "store it as one line, without a trailing newline",
    )?;
    tracing::info!(credential = %name, store = %store.describe(), "credential resolved");
    Ok(secret)
}

/// The rule for every secret before it may become a header or an environment
/// variable: not empty, no control character. `subject` names it (never its
/// value); `fix` says what to do.
pub(crate) fn check_secret(value: &str, subject: &str, fix: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::Input(format!("{subject} is empty: {fix}")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::Input(format!(
            "{subject} holds a control character, which must not reach a header or an environment \
             variable: {fix}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_recognised_and_validated() {
        assert_eq!(CredRef::parse("svc-user").unwrap(), None);
        let r = CredRef::parse("cred:PROXY_PASS.v2-a").unwrap().unwrap();
        assert_eq!(r.name(), "PROXY_PASS.v2-a");
        assert_eq!(r.to_string(), "cred:PROXY_PASS.v2-a");
        for bad in [
            "cred:", "cred:.", "cred:..", "cred:a/b", "cred:a b", "cred:ü", "cred:a:b",
        ] {
            assert!(CredRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_secrets_and_control_characters_are_refused_without_echoing_them() {
        let subject = "credential cred:P in store";
        let empty = check_secret("", subject, "fix").unwrap_err();
        assert_eq!(empty.exit_code(), 65);
        let newline = check_secret("hunter2\n", subject, "fix").unwrap_err();
        assert_eq!(newline.exit_code(), 65);
        assert!(!newline.message().contains("hunter2"));
        assert!(newline.message().contains("cred:P"));
        check_secret("p@ss:/%w", subject, "fix").unwrap();
    }
}
