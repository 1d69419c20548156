//! The script's environment (SPEC §4), built rather than inherited: the
//! script is downloaded from the network, and everything it starts inherits
//! what it is given, so it must never get what tagstrap used to reach the
//! credential store. What it gets is tagstrap's own environment minus
//!
//! - every `VAULT_*` and `TAGSTRAP_*` variable, used or not,
//! - `CREDENTIALS_DIRECTORY`,
//! - every variable the store settings consulted
//!   ([`crate::settings::StoreSettings::variables`]: today all covered by
//!   the two prefixes, but a store reading `AWS_*` is covered by the same
//!   record),
//!
//! except the names the config file's `pass_env` lists, plus the proxy
//! variables tagstrap sets ([`super::ProxyEnvironment::child_env`]), which
//! replace any of the same name. The decision is a pure function over a
//! snapshot of the environment ([`ScriptEnvRule::apply`]), so it is tested
//! on every platform for both name rules: Unix names are compared exactly,
//! Windows names without regard to case (`Vault_Token` is `VAULT_TOKEN`
//! there). Values are kept as the `OsString`s they were, so a value that is
//! not UTF-8 reaches the script unchanged.
//!
//! `pass_env` cannot hand the script a secret: an entry naming a variable
//! that holds one of the store's secrets or names where one is read
//! (`VAULT_TOKEN`, a token or secret-ID file, `$CREDENTIALS_DIRECTORY`) is
//! refused, whether or not this run used it: a token left in the
//! environment is a secret whichever store this boot happened to choose, so
//! tagstrap refuses rather than guesses. So is an entry naming a variable
//! tagstrap sets itself, and one that is not a name.

use std::ffi::{OsStr, OsString};

use secrecy::SecretString;

use super::{NO_PROXY_VARS, PROXY_VARS};
use crate::error::{Class, Error, Result};
use crate::settings::{Settings, StoreVar};
use crate::util::text::{named_forbidden_char, shown};

/// Removed whatever their name goes on with: the store's variables (Vault's
/// own and the CLI's) and tagstrap's settings, which name its store, its
/// token files and its state directory.
const REMOVED_PREFIXES: [&str; 2] = ["VAULT_", "TAGSTRAP_"];

/// Removed by name: systemd's credentials directory (it may hold the store
/// token as `vault-token`, and any other service credential).
const REMOVED_NAMES: [&str; 1] = ["CREDENTIALS_DIRECTORY"];

/// Refused in `pass_env` whatever the store settings consulted: the store's
/// token under its well-known name, which the agent's own tools (the vault
/// CLI, an SDK) would pick up.
const ALWAYS_SECRET: [&str; 1] = ["VAULT_TOKEN"];

/// How two variable names compare on a platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameCase {
    /// Unix: `Vault_Token` is another variable than `VAULT_TOKEN`.
    Sensitive,
    /// Windows: one variable, whatever the case of its letters.
    Insensitive,
}

impl NameCase {
    /// The rule of the platform tagstrap runs on.
    const PLATFORM: NameCase = if cfg!(windows) {
        NameCase::Insensitive
    } else {
        NameCase::Sensitive
    };

    /// The bytes two names are compared by. Without case, every letter is
    /// upper-cased where Unicode maps it to one letter: Windows folds
    /// letters one to one, and folding more than it does (say `ı` as `I`)
    /// only removes or refuses more, never less.
    fn key(self, name: &OsStr) -> Vec<u8> {
        match self {
            NameCase::Sensitive => name.as_encoded_bytes().to_vec(),
            NameCase::Insensitive => name
                .to_string_lossy()
                .chars()
                .map(|c| {
                    let mut upper = c.to_uppercase();
                    match (upper.next(), upper.next()) {
                        (Some(one), None) => one,
                        _ => c,
                    }
                })
                .collect::<String>()
                .into_bytes(),
        }
    }

    fn same(self, a: &OsStr, b: &str) -> bool {
        self.key(a) == self.key(OsStr::new(b))
    }

    fn has_prefix(self, name: &OsStr, prefix: &str) -> bool {
        self.key(name).starts_with(&self.key(OsStr::new(prefix)))
    }
}

/// The rule for one run: what is removed, and what `pass_env` keeps. Built
/// (and `pass_env` checked) once, before anything is read.
#[derive(Debug, Clone)]
pub(crate) struct ScriptEnvRule {
    case: NameCase,
    /// The variables the store settings consulted, removed by name.
    store: Vec<&'static str>,
    /// `pass_env`, checked, without duplicates.
    pass: Vec<String>,
}

impl ScriptEnvRule {
    /// The rule of these settings on this platform; a bad `pass_env` entry
    /// is a bad config file (78).
    pub(crate) fn from_settings(settings: &Settings) -> Result<ScriptEnvRule> {
        ScriptEnvRule::new(
            &settings.pass_env,
            &settings.pass_env_from,
            &settings.store.variables,
            NameCase::PLATFORM,
        )
    }

    /// `from` says where `pass_env` was written, for the error line, which
    /// names the entry and why it is refused, never a value.
    fn new(
        pass_env: &[String],
        from: &str,
        store: &[StoreVar],
        case: NameCase,
    ) -> Result<ScriptEnvRule> {
        let mut pass: Vec<String> = Vec::new();
        for entry in pass_env {
            refused(entry, store, case).map_or(Ok(()), |why| {
                Err(Error::setting(
                    Class::Config,
                    from,
                    format!("{from}: {why}"),
                ))
            })?;
            if !pass.iter().any(|p| case.same(OsStr::new(entry), p)) {
                pass.push(entry.clone());
            }
        }
        Ok(ScriptEnvRule {
            case,
            store: store.iter().map(|v| v.name).collect(),
            pass,
        })
    }

    /// The rule with no `pass_env` and no store variables, for the tests of
    /// the stages that use it.
    #[cfg(test)]
    pub(crate) fn without_settings() -> ScriptEnvRule {
        ScriptEnvRule::new(&[], "", &[], NameCase::PLATFORM).expect("nothing to refuse")
    }

    /// Whether the rule removes `name` (before `pass_env`).
    fn removes(&self, name: &OsStr) -> bool {
        REMOVED_PREFIXES
            .iter()
            .any(|prefix| self.case.has_prefix(name, prefix))
            || REMOVED_NAMES
                .iter()
                .chain(&self.store)
                .any(|removed| self.case.same(name, removed))
    }

    fn passes(&self, name: &OsStr) -> bool {
        self.pass.iter().any(|p| self.case.same(name, p))
    }

    /// The script's environment: `inherited` (tagstrap's own, in its order)
    /// filtered by the rule, and `set` (the proxy variables), which replace
    /// inherited variables of the same name.
    pub(crate) fn apply(
        &self,
        inherited: impl IntoIterator<Item = (OsString, OsString)>,
        set: Vec<(&'static str, SecretString)>,
    ) -> ScriptEnv {
        let mut env = ScriptEnv {
            inherited: Vec::new(),
            set,
            removed: Vec::new(),
            kept: Vec::new(),
            absent: Vec::new(),
        };
        let mut seen_passed = vec![false; self.pass.len()];
        for (name, value) in inherited {
            for (seen, p) in seen_passed.iter_mut().zip(&self.pass) {
                *seen |= self.case.same(&name, p);
            }
            if env.set.iter().any(|(set, _)| self.case.same(&name, set)) {
                continue;
            }
            if self.removes(&name) {
                if !self.passes(&name) {
                    env.removed.push(name);
                    continue;
                }
                env.kept.push(name.clone());
            }
            env.inherited.push((name, value));
        }
        env.absent = self
            .pass
            .iter()
            .zip(seen_passed)
            .filter(|(_, seen)| !seen)
            .map(|(p, _)| p.clone())
            .collect();
        env
    }
}

/// Why `entry` may not be in `pass_env`, as the error line says it; `None`
/// when it may. The entry is shown only when it is a name, never past an
/// `=` (that could be a value, a secret one even).
fn refused(entry: &str, store: &[StoreVar], case: NameCase) -> Option<String> {
    if let Some((name, _)) = entry.split_once('=') {
        return Some(format!(
            "an entry {} holds '=': pass_env lists names only, never values (what follows \
             the '=' is not shown): write the name alone",
            if name.is_empty() {
                "that starts with '='".to_string()
            } else {
                format!("starting {}", shown(name))
            }
        ));
    }
    let reason = if entry.is_empty() {
        "is empty: name a variable, or remove the entry".to_string()
    } else if let Some(hidden) = named_forbidden_char(entry) {
        format!("holds the {hidden}, so it is no variable name: remove it")
    } else if entry.contains(char::is_whitespace) {
        "holds a blank, so it is no variable name: write the name alone".to_string()
    } else if entry.contains(['*', '?']) {
        "is a pattern, and pass_env takes names only (a pattern would hand the script \
         variables nobody named): list each variable"
            .to_string()
    } else if PROXY_VARS
        .iter()
        .chain(&NO_PROXY_VARS)
        .any(|set| case.same(OsStr::new(entry), set))
    {
        "is a variable tagstrap sets (the proxy environment): the script always \
         gets tagstrap's value, remove it from pass_env"
            .to_string()
    } else if ALWAYS_SECRET
        .iter()
        .chain(store.iter().filter(|v| v.secret).map(|v| &v.name))
        .any(|secret| case.same(OsStr::new(entry), secret))
    {
        "holds a secret of the credential store, or names where tagstrap reads one, and the \
         downloaded script and what it starts must never get it: remove it from pass_env"
            .to_string()
    } else {
        return None;
    };
    Some(format!("{} {reason}", shown(entry)))
}

/// The environment the script gets, and what was decided about it. `Debug`
/// shows names only: an inherited value may be anybody's secret.
pub(crate) struct ScriptEnv {
    /// Tagstrap's own variables the script keeps, in their order.
    inherited: Vec<(OsString, OsString)>,
    /// The proxy variables: secrets until they go into the child.
    set: Vec<(&'static str, SecretString)>,
    removed: Vec<OsString>,
    /// Removed by the rule but kept by `pass_env`.
    kept: Vec<OsString>,
    /// `pass_env` names that were not set.
    absent: Vec<String>,
}

impl std::fmt::Debug for ScriptEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptEnv")
            .field(
                "inherited",
                &self.inherited.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("set", &self.set_names())
            .field("removed", &self.removed)
            .field("kept", &self.kept)
            .finish()
    }
}

/// Names for people: sorted, each as [`shown`] shows outside text.
fn shown_names<'a>(names: impl IntoIterator<Item = &'a OsString>) -> Vec<String> {
    let mut shown: Vec<String> = names
        .into_iter()
        .map(|n| crate::util::text::shown(&n.to_string_lossy()))
        .collect();
    shown.sort();
    shown
}

impl ScriptEnv {
    /// Tagstrap's own variables the script keeps, values as they were.
    pub(crate) fn inherited(&self) -> &[(OsString, OsString)] {
        &self.inherited
    }

    /// The variables tagstrap sets, after the inherited ones.
    pub(crate) fn set(&self) -> &[(&'static str, SecretString)] {
        &self.set
    }

    /// The names removed, for `plan`, the log and the report.
    pub(crate) fn removed_names(&self) -> Vec<String> {
        shown_names(&self.removed)
    }

    /// The names `pass_env` kept although the rule removes them.
    pub(crate) fn kept_names(&self) -> Vec<String> {
        shown_names(&self.kept)
    }

    /// The names tagstrap sets, in the order it sets them.
    pub(crate) fn set_names(&self) -> Vec<&'static str> {
        self.set.iter().map(|(name, _)| *name).collect()
    }

    /// `pass_env` names not in tagstrap's environment (nothing to keep).
    pub(crate) fn absent_pass_env(&self) -> &[String] {
        &self.absent
    }

    /// One line, names only: "removes VAULT_ADDR, VAULT_TOKEN; keeps
    /// (pass_env) VAULT_NAMESPACE; sets http_proxy, …".
    pub(crate) fn summary(&self) -> String {
        let list = |names: Vec<String>| names.join(", ");
        let mut line = match self.removed_names() {
            removed if removed.is_empty() => "removes nothing".to_string(),
            removed => format!("removes {}", list(removed)),
        };
        let kept = self.kept_names();
        if !kept.is_empty() {
            line.push_str(&format!("; keeps (pass_env) {}", list(kept)));
        }
        let set: Vec<String> = self.set_names().iter().map(|n| n.to_string()).collect();
        if set.is_empty() {
            line.push_str("; sets nothing (no proxy)");
        } else {
            line.push_str(&format!("; sets {}", list(set)));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn names(env: &ScriptEnv) -> Vec<String> {
        env.inherited()
            .iter()
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .collect()
    }

    /// What the store settings record, read the way `tagstrap` reads them.
    fn vault_vars() -> Vec<StoreVar> {
        let env = crate::test_support::env_of(&[]);
        Settings::resolve(&crate::cli::CommonArgs::default(), &env)
            .unwrap()
            .store
            .variables
    }

    fn rule(pass: &[&str], store: &[StoreVar], case: NameCase) -> Result<ScriptEnvRule> {
        let pass: Vec<String> = pass.iter().map(|p| p.to_string()).collect();
        ScriptEnvRule::new(&pass, "pass_env in /etc/tagstrap/config.toml", store, case)
    }

    fn proxy_vars() -> Vec<(&'static str, SecretString)> {
        PROXY_VARS
            .iter()
            .map(|n| (*n, SecretString::from("http://u:p%40ss@proxy:3128")))
            .chain(
                NO_PROXY_VARS
                    .iter()
                    .map(|n| (*n, SecretString::from("localhost"))),
            )
            .collect()
    }

    #[test]
    fn every_vault_and_tagstrap_variable_and_the_credentials_directory_are_removed() {
        let inherited = os(&[
            ("PATH", "/usr/bin"),
            ("VAULT_TOKEN", "s.token"),
            ("VAULT_ADDR", "https://vault:8200"),
            ("VAULT_ANYTHING_ELSE", "x"),
            ("TAGSTRAP_STATE_DIR", "/var/lib/tagstrap"),
            ("TAGSTRAP_", "bare prefix"),
            ("CREDENTIALS_DIRECTORY", "/run/credentials/t.service"),
            ("LANG", "C.UTF-8"),
            ("MY_VAULT_TOKEN", "not the prefix"),
            ("VAULT", "no underscore"),
        ]);
        for case in [NameCase::Sensitive, NameCase::Insensitive] {
            let env = rule(&[], &vault_vars(), case)
                .unwrap()
                .apply(inherited.clone(), Vec::new());
            assert_eq!(
                names(&env),
                ["PATH", "LANG", "MY_VAULT_TOKEN", "VAULT"],
                "{case:?}"
            );
            assert_eq!(
                env.removed_names(),
                [
                    "CREDENTIALS_DIRECTORY",
                    "TAGSTRAP_",
                    "TAGSTRAP_STATE_DIR",
                    "VAULT_ADDR",
                    "VAULT_ANYTHING_ELSE",
                    "VAULT_TOKEN"
                ]
            );
            assert!(env.kept_names().is_empty());
            assert_eq!(
                env.summary(),
                "removes CREDENTIALS_DIRECTORY, TAGSTRAP_, TAGSTRAP_STATE_DIR, VAULT_ADDR, \
                 VAULT_ANYTHING_ELSE, VAULT_TOKEN; sets nothing (no proxy)"
            );
        }
    }

    #[test]
    fn a_variable_the_store_settings_read_is_removed_whatever_its_name() {
        // A store of the future that reads AWS credentials from the
        // environment: nothing but its record makes them go.
        let store = [
            StoreVar {
                name: "AWS_SECRET_ACCESS_KEY",
                secret: true,
            },
            StoreVar {
                name: "AWS_REGION",
                secret: false,
            },
        ];
        let inherited = os(&[
            ("AWS_SECRET_ACCESS_KEY", "k"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_PROFILE", "not read by the store"),
        ]);
        let env = rule(&[], &store, NameCase::Sensitive)
            .unwrap()
            .apply(inherited.clone(), Vec::new());
        assert_eq!(names(&env), ["AWS_PROFILE"]);
        assert_eq!(env.removed_names(), ["AWS_REGION", "AWS_SECRET_ACCESS_KEY"]);
        // pass_env may keep the plain setting, never the secret.
        let env = rule(&["AWS_REGION"], &store, NameCase::Sensitive)
            .unwrap()
            .apply(inherited, Vec::new());
        assert_eq!(names(&env), ["AWS_REGION", "AWS_PROFILE"]);
        assert_eq!(env.kept_names(), ["AWS_REGION"]);
        let err = rule(&["AWS_SECRET_ACCESS_KEY"], &store, NameCase::Sensitive).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.message().contains("holds a secret"), "{err}");
    }

    #[test]
    fn windows_names_compare_without_case_and_unix_names_exactly() {
        let inherited = os(&[
            ("Vault_Token", "s.token"),
            ("tagstrap_state_dir", "x"),
            ("Credentials_Directory", "y"),
            ("Path", "C:\\Windows"),
        ]);
        let windows = rule(&[], &vault_vars(), NameCase::Insensitive)
            .unwrap()
            .apply(inherited.clone(), Vec::new());
        assert_eq!(names(&windows), ["Path"]);
        assert_eq!(windows.removed_names().len(), 3);
        // On Unix these are other variables, which tagstrap never read.
        let unix = rule(&[], &vault_vars(), NameCase::Sensitive)
            .unwrap()
            .apply(inherited.clone(), Vec::new());
        assert_eq!(names(&unix).len(), 4);

        // pass_env and the refusals follow the same rule.
        let windows = rule(&["vault_namespace"], &vault_vars(), NameCase::Insensitive)
            .unwrap()
            .apply(os(&[("VAULT_NAMESPACE", "team")]), Vec::new());
        assert_eq!(windows.kept_names(), ["VAULT_NAMESPACE"]);
        for refused in [
            "vault_token",
            "Http_Proxy",
            "no_PROXY",
            "credentials_directory",
        ] {
            let err = rule(&[refused], &vault_vars(), NameCase::Insensitive).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{refused}");
        }
        for allowed in ["vault_token", "Http_Proxy"] {
            assert!(
                rule(&[allowed], &vault_vars(), NameCase::Sensitive).is_ok(),
                "on Unix {allowed} is not the variable tagstrap reads or sets"
            );
        }
    }

    #[test]
    fn pass_env_keeps_a_named_variable_the_rule_would_remove() {
        let inherited = os(&[
            ("VAULT_NAMESPACE", "team"),
            ("TAGSTRAP_STATE_DIR", "/s"),
            ("VAULT_ADDR", "https://v"),
            ("LANG", "C"),
        ]);
        let env = rule(
            &["VAULT_NAMESPACE", "LANG", "NOT_SET", "VAULT_NAMESPACE"],
            &vault_vars(),
            NameCase::Sensitive,
        )
        .unwrap()
        .apply(inherited, proxy_vars());
        assert_eq!(names(&env), ["VAULT_NAMESPACE", "LANG"]);
        assert_eq!(
            env.kept_names(),
            ["VAULT_NAMESPACE"],
            "LANG was kept anyway"
        );
        assert_eq!(env.absent_pass_env(), ["NOT_SET"]);
        assert_eq!(
            env.summary(),
            "removes TAGSTRAP_STATE_DIR, VAULT_ADDR; keeps (pass_env) VAULT_NAMESPACE; sets \
             http_proxy, https_proxy, HTTP_PROXY, HTTPS_PROXY, no_proxy, NO_PROXY"
        );
    }

    #[test]
    fn secrets_are_refused_in_pass_env_even_when_this_run_did_not_use_them() {
        for store in [vault_vars(), Vec::new()] {
            let err = rule(&["LANG", "VAULT_TOKEN"], &store, NameCase::Sensitive).unwrap_err();
            assert_eq!(err.exit_code(), 78);
            assert_eq!(
                err.message(),
                "pass_env in /etc/tagstrap/config.toml: VAULT_TOKEN holds a secret of the \
                 credential store, or names where tagstrap reads one, and the downloaded script \
                 and what it starts must never get it: remove it from pass_env"
            );
        }
        for secret in ["TAGSTRAP_VAULT_TOKEN_FILE", "CREDENTIALS_DIRECTORY"] {
            let err = rule(&[secret], &vault_vars(), NameCase::Sensitive).unwrap_err();
            assert!(err.message().contains(secret), "{err}");
        }
        // A plain store setting may be kept.
        assert!(rule(&["VAULT_ADDR"], &vault_vars(), NameCase::Sensitive).is_ok());
    }

    #[test]
    fn malformed_entries_and_variables_tagstrap_sets_are_refused_by_name() {
        for (entry, needle) in [
            ("", "is empty"),
            ("VAULT_*", "is a pattern"),
            ("*", "is a pattern"),
            ("LANG?", "is a pattern"),
            ("MY VAR", "holds a blank"),
            (" LANG", "holds a blank"),
            ("A\0B", "control character U+0000"),
            ("A\u{202e}B", "Unicode format character U+202E"),
            ("https_proxy", "tagstrap sets"),
            ("NO_PROXY", "tagstrap sets"),
        ] {
            let err = rule(&[entry], &[], NameCase::Sensitive).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{entry:?}");
            let message = err.message();
            assert!(message.contains(needle), "{entry:?}: {message}");
            assert_eq!(
                err.setting_place(),
                Some("pass_env in /etc/tagstrap/config.toml"),
                "{err:?}"
            );
            assert!(
                crate::util::text::forbidden_char(message).is_none(),
                "{message:?}"
            );
        }
    }

    #[test]
    fn an_entry_with_a_value_is_refused_without_showing_the_value() {
        for entry in ["VAULT_TOKEN=s.Secr3t-value", "=s.Secr3t-value"] {
            let err = rule(&[entry], &[], NameCase::Sensitive).unwrap_err();
            assert_eq!(err.exit_code(), 78);
            assert!(err.message().contains("holds '='"), "{err}");
            assert!(!err.message().contains("Secr3t"), "{err}");
        }
    }

    #[test]
    fn the_proxy_variables_replace_inherited_ones_and_stay_secret() {
        let inherited = os(&[("http_proxy", "http://old:1"), ("Https_Proxy", "x")]);
        let env = rule(&[], &[], NameCase::Insensitive)
            .unwrap()
            .apply(inherited.clone(), proxy_vars());
        assert!(names(&env).is_empty(), "{env:?}");
        let unix = rule(&[], &[], NameCase::Sensitive)
            .unwrap()
            .apply(inherited, proxy_vars());
        assert_eq!(names(&unix), ["Https_Proxy"], "another variable on Unix");
        assert_eq!(unix.set().len(), 6);
        assert_eq!(
            unix.set()[0].1.expose_secret(),
            "http://u:p%40ss@proxy:3128"
        );
        assert!(!format!("{unix:?}").contains("p%40ss"), "{unix:?}");
        assert!(env.removed_names().is_empty(), "replaced, not removed");
    }

    #[test]
    fn debug_shows_names_never_values() {
        let env = rule(&[], &vault_vars(), NameCase::Sensitive)
            .unwrap()
            .apply(
                os(&[("DB_PASSWORD", "anybodys-secret"), ("VAULT_TOKEN", "s.t0k")]),
                Vec::new(),
            );
        let shown = format!("{env:?}");
        assert!(shown.contains("DB_PASSWORD") && shown.contains("VAULT_TOKEN"));
        assert!(!shown.contains("anybodys-secret") && !shown.contains("s.t0k"));
    }

    #[cfg(unix)]
    #[test]
    fn values_and_names_that_are_not_utf8_are_kept_as_they_are() {
        use std::os::unix::ffi::OsStringExt;
        let value = OsString::from_vec(vec![0x66, 0xff, 0xfe, 0x6f]);
        let name = OsString::from_vec(b"MY_\xffVAR".to_vec());
        let removed = OsString::from_vec(b"VAULT_\xff".to_vec());
        let env = rule(&[], &[], NameCase::Sensitive).unwrap().apply(
            vec![
                (OsString::from("LANG"), value.clone()),
                (name.clone(), value.clone()),
                (removed, value.clone()),
            ],
            Vec::new(),
        );
        assert_eq!(
            env.inherited(),
            [(OsString::from("LANG"), value.clone()), (name, value)]
        );
        assert_eq!(env.removed_names(), ["VAULT_\u{fffd}"]);
    }

    #[cfg(windows)]
    #[test]
    fn values_that_are_not_unicode_are_kept_as_they_are() {
        use std::os::windows::ffi::OsStringExt;
        // An unpaired surrogate: valid in a Windows environment, not UTF-16.
        let value = OsString::from_wide(&[0x66, 0xd800, 0x6f]);
        let env = rule(&[], &[], NameCase::PLATFORM)
            .unwrap()
            .apply(vec![(OsString::from("LANG"), value.clone())], Vec::new());
        assert_eq!(env.inherited(), [(OsString::from("LANG"), value)]);
    }

    #[test]
    fn the_platform_rule_is_the_platforms() {
        assert_eq!(NameCase::PLATFORM == NameCase::Insensitive, cfg!(windows));
    }
}
