//! The proxy's login: the pair that `rs_agent:http_proxy_user` and
//! `rs_agent:http_proxy_password` name, resolved from the store. The user is
//! a plain name or a `cred:` reference; the password is always a reference
//! (the agent tags refuse anything else). This is the one place the two are
//! joined: the pipeline hands the pair to the proxy environment as it is.

use secrecy::{ExposeSecret, SecretString};

use super::{resolve, CredRef, CredentialStore};
use crate::error::Result;
use crate::tags::agent::UserSpec;

/// The proxy's user and password, resolved.
pub(crate) struct ProxyLogin {
    /// The user name itself: the tag's value, or the secret it names. A user
    /// name is not a secret once resolved: it goes into the proxy URL's
    /// user part as it is.
    pub(crate) user: String,
    /// How the user was given, for `plan` and the report: the plain name,
    /// or its `cred:` reference (never the value a reference resolved to).
    pub(crate) user_named: String,
    pub(crate) password: SecretString,
}

/// Resolves the user (when it is a reference), then the password, from
/// `store`; the first failure is the error, with its class (66 for a
/// missing secret, 77 denied, 69 unreachable).
pub(crate) async fn resolve_login(
    store: &dyn CredentialStore,
    user: &UserSpec,
    password: &CredRef,
) -> Result<ProxyLogin> {
    let (user, user_named) = match user {
        UserSpec::Plain(name) => (name.clone(), name.clone()),
        UserSpec::Cred(reference) => (
            resolve(store, reference).await?.expose_secret().to_string(),
            reference.to_string(),
        ),
    };
    let password = resolve(store, password).await?;
    Ok(ProxyLogin {
        user,
        user_named,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::util::BoxFuture;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A store over fixed pairs that remembers the order of its reads.
    struct Fixed {
        secrets: HashMap<&'static str, &'static str>,
        read: Mutex<Vec<String>>,
    }

    impl Fixed {
        fn of(pairs: &[(&'static str, &'static str)]) -> Fixed {
            Fixed {
                secrets: pairs.iter().copied().collect(),
                read: Mutex::new(Vec::new()),
            }
        }
    }

    impl CredentialStore for Fixed {
        fn describe(&self) -> String {
            "the fixed store".to_string()
        }

        fn get<'a>(&'a self, name: &'a CredRef) -> BoxFuture<'a, Result<SecretString>> {
            self.read.lock().unwrap().push(name.name().to_string());
            let found = self
                .secrets
                .get(name.name())
                .map(|v| SecretString::from(*v));
            Box::pin(async move {
                found.ok_or_else(|| Error::NotFound(format!("no credential {name}")))
            })
        }
    }

    fn reference(name: &str) -> CredRef {
        CredRef::parse(&format!("cred:{name}")).unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_plain_user_is_kept_and_only_the_password_is_read() {
        let store = Fixed::of(&[("PASS", "p@ss:/w")]);
        let user = UserSpec::Plain("svc".into());
        let login = resolve_login(&store, &user, &reference("PASS"))
            .await
            .unwrap();
        assert_eq!(login.user, "svc");
        assert_eq!(login.user_named, "svc");
        assert_eq!(login.password.expose_secret(), "p@ss:/w");
        assert_eq!(*store.read.lock().unwrap(), ["PASS"]);
    }

    #[tokio::test]
    async fn a_user_reference_is_resolved_first_and_named_by_its_reference() {
        let store = Fixed::of(&[("USER", "svc-from-store"), ("PASS", "pw")]);
        let user = UserSpec::Cred(reference("USER"));
        let login = resolve_login(&store, &user, &reference("PASS"))
            .await
            .unwrap();
        assert_eq!(login.user, "svc-from-store");
        assert_eq!(login.user_named, "cred:USER");
        assert_eq!(*store.read.lock().unwrap(), ["USER", "PASS"]);
    }

    #[tokio::test]
    async fn a_missing_secret_is_the_error_with_its_class() {
        let store = Fixed::of(&[("PASS", "pw")]);
        let user = UserSpec::Cred(reference("USER"));
        let error = resolve_login(&store, &user, &reference("PASS"))
            .await
            .err()
            .unwrap();
        assert!(matches!(error, Error::NotFound(_)), "{error:?}");
        assert_eq!(*store.read.lock().unwrap(), ["USER"], "stops at the first");

        // A secret the store holds but no header may carry: refused, 65.
        let store = Fixed::of(&[("PASS", "pw\n")]);
        let user = UserSpec::Plain("svc".into());
        let error = resolve_login(&store, &user, &reference("PASS"))
            .await
            .err()
            .unwrap();
        assert_eq!(error.exit_code(), 65);
    }
}
