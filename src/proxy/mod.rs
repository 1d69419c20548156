//! The proxied environment (SPEC §4): which proxy, with which credentials, for
//! which hosts. The same decision serves tagstrap's own download and the
//! variables given to the script, so both always agree.
//!
//! Layer: the proxy environment. `url` and `no_proxy` are pure parsers below
//! the tags; this module may import them, `tags`, `credentials`, `settings`
//! and the toolkit (`net`, `util`, `error`).

mod no_proxy;
mod script_env;
pub(crate) mod url;

pub(crate) use self::no_proxy::Warning;
pub use self::no_proxy::{ListOrigin, NoProxy, DEFAULT_ENTRIES};
pub(crate) use self::script_env::{ScriptEnv, ScriptEnvRule};
pub use self::url::ProxyUrl;

use secrecy::SecretString;

use crate::error::{Class, Error, Result};
use crate::tags::Origin;

/// The variables the script's tools read, all four set to the same URL.
pub(crate) const PROXY_VARS: [&str; 4] = ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"];
pub(crate) const NO_PROXY_VARS: [&str; 2] = ["no_proxy", "NO_PROXY"];
/// The system proxy variables, in the order SPEC §3 consults them when no tag
/// names a proxy.
pub(crate) const SYSTEM_PROXY_VARS: [&str; 4] =
    ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"];

/// Where the proxy came from.
#[derive(Debug, Clone)]
pub(crate) enum ProxySource {
    Tag(Origin),
    Environment(&'static str),
}

impl std::fmt::Display for ProxySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxySource::Tag(origin) => write!(f, "rs_agent:http_proxy ({origin})"),
            ProxySource::Environment(var) => write!(f, "${var}"),
        }
    }
}

/// How the user and password were given, for messages: the names of the
/// credentials (never their values), or that they sat in the URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct CredentialNames {
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Proxy {
    /// With the resolved user and password filled in.
    pub(crate) url: ProxyUrl,
    pub(crate) source: ProxySource,
    pub(crate) credentials: CredentialNames,
}

impl Proxy {
    /// What to check when the proxy answers 407, e.g. "the credential
    /// cred:PROXY_PASS (and user svc)".
    pub(crate) fn what_to_check(&self) -> String {
        match (&self.credentials.password, &self.url.user) {
            (Some(password), _) => format!(
                "check the credential {password} and the user {}",
                self.credentials.user.as_deref().unwrap_or("?")
            ),
            (None, Some(_)) => format!("check the user and password in {}", self.source),
            (None, None) => format!(
                "the proxy wants credentials: set rs_agent:http_proxy_user and \
                 rs_agent:http_proxy_password=cred:NAME (proxy from {})",
                self.source
            ),
        }
    }
}

/// The decided proxy (if any) and the no-proxy list.
#[derive(Debug, Clone)]
pub struct ProxyEnvironment {
    pub proxy: Option<Proxy>,
    pub no_proxy: NoProxy,
}

impl ProxyEnvironment {
    /// Falls back to the system proxy variables when no tag names a proxy.
    /// `env` reads a variable (injected, so the decision is testable).
    pub fn build(
        tagged: Option<Proxy>,
        no_proxy_tag: Option<&crate::tags::Tag>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ProxyEnvironment> {
        let mut lists: Vec<(ListOrigin, String)> = Vec::new();
        if let Some(tag) = no_proxy_tag {
            lists.push((ListOrigin::Tag, tag.value.clone()));
        }
        let proxy = match tagged {
            Some(proxy) => Some(proxy),
            None => {
                let system = system_proxy(env)?;
                if system.is_some() {
                    // The image's own bypass list goes with the image's own proxy.
                    lists.extend(NO_PROXY_VARS.iter().filter_map(|var| {
                        env(var)
                            .filter(|v| !v.trim().is_empty())
                            .map(|v| (ListOrigin::Environment(var), v))
                    }));
                }
                system
            }
        };
        let no_proxy = NoProxy::read(&lists).map_err(|reason| match no_proxy_tag {
            Some(tag) => Error::tag(
                &tag.key,
                &tag.origin,
                format!("{} ({}): {reason}", tag.key, tag.origin),
            ),
            None => Error::setting(Class::Input, "$no_proxy", format!("$no_proxy: {reason}")),
        })?;
        Ok(ProxyEnvironment { proxy, no_proxy })
    }

    /// What the script's clients will not read as tagstrap does, one line
    /// each (`run` and `plan`; `doctor` shows them as steps). Only a proxy
    /// makes the list mean anything.
    pub(crate) fn no_proxy_warnings(&self) -> &[Warning] {
        match self.proxy {
            Some(_) => self.no_proxy.warnings(),
            None => &[],
        }
    }

    /// Logs [`Self::no_proxy_warnings`], with the entry and the client ids
    /// as fields for `--log-format json`.
    pub(crate) fn log_no_proxy_warnings(&self) {
        for warning in self.no_proxy_warnings() {
            tracing::warn!(
                no_proxy_entry = %crate::util::text::shown(&warning.entry),
                clients = %warning.client_ids(),
                "{}",
                crate::util::text::shown(&warning.message)
            );
        }
    }

    /// The `cred:` references the proxy's user and password came from.
    pub(crate) fn credential_refs(&self) -> Vec<String> {
        self.proxy
            .iter()
            .flat_map(|p| [p.credentials.user.clone(), p.credentials.password.clone()])
            .flatten()
            .filter(|name| name.starts_with(crate::credentials::reference::REF_PREFIX))
            .collect()
    }

    /// The proxy for a request to `host`, or `None` to go direct.
    pub(crate) fn route(&self, host: &str) -> Option<&Proxy> {
        self.proxy.as_ref().filter(|_| !self.no_proxy.matches(host))
    }

    /// The variables for the script: the proxy URL with credentials under all
    /// four names, and the no-proxy list under both. Values are secrets until
    /// they are put into the child's environment.
    pub(crate) fn child_env(&self) -> Vec<(&'static str, SecretString)> {
        let Some(proxy) = &self.proxy else {
            return Vec::new();
        };
        let mut vars: Vec<(&'static str, SecretString)> = PROXY_VARS
            .iter()
            .map(|name| (*name, proxy.url.with_credentials()))
            .collect();
        let no_proxy = self.no_proxy.env_value();
        vars.extend(
            NO_PROXY_VARS
                .iter()
                .map(|name| (*name, SecretString::from(no_proxy.clone()))),
        );
        vars
    }

    /// The variables as a file both systemd's `EnvironmentFile=` and `sh`
    /// (`set -a; . FILE`) read: one `NAME='value'` per line. Single quotes
    /// mean the same to both; a value holding one (or a backslash, which
    /// systemd could read as an escape) is refused rather than guessed at.
    /// Without a proxy the file says so and sets nothing.
    pub(crate) fn env_file(&self) -> Result<SecretString> {
        use secrecy::ExposeSecret;
        let mut text = String::from(
            "# Written by tagstrap run --write-env: the proxy environment of this instance.\n\
             # Private (0600): the proxy URL holds the proxy password.\n",
        );
        if self.proxy.is_none() {
            text.push_str("# No proxy: nothing to set.\n");
        }
        for (name, value) in self.child_env() {
            let value = value.expose_secret();
            if value.contains(['\'', '\\']) {
                return Err(Error::Input(format!(
                    "--write-env: the value of {name} holds a quote or a backslash, which an \
                     environment file cannot carry the same way for systemd and sh"
                )));
            }
            text.push_str(&format!("{name}='{value}'\n"));
        }
        Ok(SecretString::from(text))
    }

    /// The same variables with the password shown as `***`, for `plan`.
    pub(crate) fn shown_env(&self) -> Vec<(&'static str, String)> {
        let Some(proxy) = &self.proxy else {
            return Vec::new();
        };
        let mut vars: Vec<(&'static str, String)> = PROXY_VARS
            .iter()
            .map(|name| (*name, proxy.url.to_string()))
            .collect();
        vars.extend(
            NO_PROXY_VARS
                .iter()
                .map(|name| (*name, self.no_proxy.env_value())),
        );
        vars
    }
}

fn system_proxy(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Proxy>> {
    for var in SYSTEM_PROXY_VARS {
        let Some(value) = env(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let url = ProxyUrl::parse(&value).map_err(|reason| {
            Error::setting(
                Class::Input,
                format!("${var}"),
                format!("${var} (used because no rs_agent:http_proxy tag names a proxy): {reason}"),
            )
        })?;
        tracing::info!("no rs_agent:http_proxy tag; using the proxy in ${var}");
        return Ok(Some(Proxy {
            url,
            source: ProxySource::Environment(var),
            credentials: CredentialNames::default(),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::env_of;
    use secrecy::ExposeSecret;

    fn tagged(url: &str) -> Proxy {
        Proxy {
            url: ProxyUrl::parse(url).unwrap(),
            source: ProxySource::Tag(Origin::CommandLine),
            credentials: CredentialNames::default(),
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_env_file_reads_back_in_sh_exactly_as_the_child_gets_it() {
        let proxy = tagged("http://svc:p%40ss%3A%2F%25w0rd%20x@proxy.corp:3128");
        let pe = ProxyEnvironment::build(Some(proxy), None, &env_of(&[])).unwrap();
        let text = pe.env_file().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.env");
        std::fs::write(&path, text.expose_secret()).unwrap();
        for (name, value) in pe.child_env() {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "set -a; . '{}'; printf %s \"${name}\"",
                    path.display()
                ))
                .env_clear()
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                value.expose_secret(),
                "{name}"
            );
        }
        assert!(text
            .expose_secret()
            .contains("no_proxy='localhost,127.0.0.1,::1,[::1],169.254.169.254'\n"));

        let none = ProxyEnvironment::build(None, None, &env_of(&[])).unwrap();
        let text = none.env_file().unwrap();
        assert!(text.expose_secret().contains("No proxy"));
        assert!(!text.expose_secret().contains('='));
    }

    #[test]
    fn the_tag_wins_over_the_system_variables() {
        let env = env_of(&[("https_proxy", "http://sys:1"), ("no_proxy", "sys.corp")]);
        let pe = ProxyEnvironment::build(Some(tagged("tag:2")), None, &env).unwrap();
        assert_eq!(pe.proxy.as_ref().unwrap().url.authority(), "tag:2");
        assert!(
            !pe.no_proxy.matches("sys.corp"),
            "the image's list goes with the image's proxy"
        );
    }

    #[test]
    fn system_variables_are_the_fallback_in_spec_order() {
        let env = env_of(&[
            ("HTTP_PROXY", "http://d:4"),
            ("http_proxy", "http://c:3"),
            ("HTTPS_PROXY", "http://b:2"),
            ("no_proxy", "sys.corp"),
        ]);
        let pe = ProxyEnvironment::build(None, None, &env).unwrap();
        let proxy = pe.proxy.as_ref().unwrap();
        assert_eq!(proxy.url.authority(), "b:2");
        assert!(matches!(
            proxy.source,
            ProxySource::Environment("HTTPS_PROXY")
        ));
        assert!(pe.no_proxy.matches("sys.corp"));
        let none = ProxyEnvironment::build(None, None, &env_of(&[])).unwrap();
        assert!(none.proxy.is_none());
        assert!(none.child_env().is_empty());
    }

    #[test]
    fn a_malformed_system_proxy_is_refused_by_name() {
        let err = ProxyEnvironment::build(None, None, &env_of(&[("https_proxy", "socks5://x:1")]))
            .unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert_eq!(err.setting_place(), Some("$https_proxy"), "{err:?}");
    }

    #[test]
    fn child_env_holds_the_encoded_credentials_and_shown_env_hides_them() {
        let mut proxy = tagged("http://p:3128");
        proxy.url.user = Some("svc".into());
        proxy.url.password = Some(SecretString::from("p@ss:/%"));
        let tag =
            crate::tags::Tag::new("rs_agent:http_no_proxy", ".corp", Origin::CommandLine).unwrap();
        let pe = ProxyEnvironment::build(Some(proxy), Some(&tag), &env_of(&[])).unwrap();
        let env: std::collections::HashMap<&str, String> = pe
            .child_env()
            .into_iter()
            .map(|(k, v)| (k, v.expose_secret().to_string()))
            .collect();
        for var in PROXY_VARS {
            assert_eq!(env[var], "http://svc:p%40ss%3A%2F%25@p:3128");
        }
        for var in NO_PROXY_VARS {
            assert_eq!(
                env[var],
                "localhost,127.0.0.1,::1,[::1],169.254.169.254,corp,.corp"
            );
        }
        assert!(!format!("{pe:?}").contains("p@ss"), "Debug shows no secret");
        for (_, shown) in pe.shown_env() {
            assert!(
                !shown.contains("p@ss") && !shown.contains("p%40ss"),
                "{shown}"
            );
        }
        assert!(pe.route("git.corp").is_none());
        assert!(pe.route("example.com").is_some());
    }
}
