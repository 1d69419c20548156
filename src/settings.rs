//! Every setting, resolved once (SPEC §3): the command-line flag, then its
//! `TAGSTRAP_*` variable, then the config file, then the built-in default.
//! A bad flag or variable is exit 64, a bad config file exit 78, each naming
//! where the bad value was. Relative paths in the config file are relative to
//! the file's own directory.
//!
//! Layer: settings (with `cli`). It may import `credentials` (each store's
//! section), `tags` and everything below.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::cli::{CommonArgs, LogFormat, SourceChoice};
use crate::credentials::config::{store_settings, StoreFiles};
pub use crate::credentials::config::{StoreChoice, StoreSettings, StoreVar};
use crate::credentials::directory::config::DirectoryFile;
use crate::credentials::vault::config::VaultFile;
pub use crate::credentials::vault::config::{AppRoleSettings, VaultSettings};
use crate::error::{Error, Result};
use crate::tags::instance::Cloud;
use crate::tags::{Origin, Tag};
use crate::util::setting::pick;

pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
pub const DEFAULT_MAX_SCRIPT_BYTES: u64 = 16 * 1024 * 1024;
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The built-in locations: under /etc and /var/lib on Unix, under
/// %ProgramData%\tagstrap on Windows.
pub fn default_dir(kind: &str) -> PathBuf {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
        let base = PathBuf::from(base).join("tagstrap");
        if kind == "state" {
            base.join("state")
        } else {
            base
        }
    } else if kind == "state" {
        PathBuf::from("/var/lib/tagstrap")
    } else {
        PathBuf::from("/etc/tagstrap")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The tags files to read, and whether they were named (a named file
    /// must exist; the default one is read only when present).
    pub tags_files: Vec<PathBuf>,
    pub tags_files_named: bool,
    pub tags: Vec<Tag>,
    pub source: SourceChoice,
    pub metadata_endpoint: Option<Url>,
    pub config_path: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub deadline: Duration,
    pub max_script_bytes: u64,
    pub state_dir: PathBuf,
    pub log_format: LogFormat,
    pub once: bool,
    pub instance_id: Option<String>,
    /// `run --write-env`: where to write the proxy environment.
    pub write_env: Option<PathBuf>,
    pub verbose: u8,
    pub store: StoreSettings,
    /// Where `--source auto` reads DMI strings (`$TAGSTRAP_DMI_DIR`, for tests).
    pub dmi_dir: PathBuf,
    /// The OpenStack config drive device, instead of looking for the label
    /// (`$TAGSTRAP_CONFIG_DRIVE`).
    pub config_drive: Option<PathBuf>,
    /// `pass_env`: variables the script keeps although the rule of SPEC §4
    /// would remove them (checked by `proxy::ScriptEnvRule`), and where the
    /// list was written, for messages.
    pub pass_env: Vec<String>,
    pub pass_env_from: String,
}

/// The config file's keys: one per flag, plus `[vault]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    tags_files: Option<Vec<PathBuf>>,
    tags: Option<BTreeMap<String, String>>,
    source: Option<String>,
    metadata_endpoint: Option<String>,
    ca_file: Option<PathBuf>,
    deadline: Option<toml::Value>,
    max_script_bytes: Option<toml::Value>,
    state_dir: Option<PathBuf>,
    log_format: Option<String>,
    once: Option<bool>,
    instance_id: Option<String>,
    write_env: Option<PathBuf>,
    store: Option<String>,
    vault: Option<VaultFile>,
    directory: Option<DirectoryFile>,
    /// Only in the file, never from the environment (or a flag): what the
    /// downloaded script may see is a decision written down, and a
    /// `TAGSTRAP_*` variable would itself be removed from it.
    pass_env: Option<Vec<String>>,
}

impl Settings {
    /// `env` reads one environment variable; injected so that resolution is
    /// a pure function in tests.
    pub fn resolve(args: &CommonArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());

        let (config_path, file) = load_config(args, &var)?;
        let config = config_path.clone().unwrap_or_default();
        let base = config.parent().map(Path::to_path_buf).unwrap_or_default();
        let relative = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };

        let tags_files_var =
            var("TAGSTRAP_TAGS_FILE").map(|v| std::env::split_paths(&v).collect::<Vec<_>>());
        let named_files = pick(
            (!args.tags_files.is_empty()).then(|| args.tags_files.clone()),
            "--tags-file",
            tags_files_var,
            "TAGSTRAP_TAGS_FILE",
            file.tags_files
                .map(|files| files.into_iter().map(relative).collect()),
            "tags_files",
            &config,
        );
        let (tags_files, tags_files_named) = match named_files {
            Some(found) => (found.value, true),
            None => (vec![default_dir("config").join("tags")], false),
        };

        let tags = if !args.tags.is_empty() {
            args.tags
                .iter()
                .map(|t| Tag::parse_assignment(t, Origin::CommandLine))
                .collect::<Result<Vec<_>>>()?
        } else if let Some(lines) = var("TAGSTRAP_TAG") {
            lines
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|t| Tag::parse_assignment(t, Origin::Environment))
                .collect::<Result<Vec<_>>>()?
        } else {
            let origin = Origin::ConfigFile {
                path: config.clone(),
            };
            file.tags
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| Tag::new(k, v, origin.clone()))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| Error::Config(e.message().to_string()))?
        };

        let source = match pick(
            args.source.map(|s| s.name().to_string()),
            "--source",
            var("TAGSTRAP_SOURCE"),
            "TAGSTRAP_SOURCE",
            file.source,
            "source",
            &config,
        ) {
            None => SourceChoice::Auto,
            Some(found) => <SourceChoice as clap::ValueEnum>::from_str(&found.value, true)
                .map_err(|_| {
                    let names: Vec<&str> = <SourceChoice as clap::ValueEnum>::value_variants()
                        .iter()
                        .map(|choice| choice.name())
                        .collect();
                    found.error(format!("expected one of {}", names.join(", ")))
                })?,
        };

        let metadata_endpoint = match pick(
            args.metadata_endpoint.clone(),
            "--metadata-endpoint",
            var("TAGSTRAP_METADATA_ENDPOINT"),
            "TAGSTRAP_METADATA_ENDPOINT",
            file.metadata_endpoint,
            "metadata_endpoint",
            &config,
        ) {
            None => None,
            Some(found) => Some({
                // IDNA would drop a zero-width character from the host.
                if let Some(hidden) = crate::util::text::named_forbidden_char(&found.value) {
                    return Err(found.error(format!("the URL holds the {hidden}: remove it")));
                }
                Url::parse(&found.value)
                    .ok()
                    .filter(|u| match u.scheme() {
                        "http" | "https" => u.has_host(),
                        // A config drive's content, mounted or copied.
                        "file" => source == SourceChoice::Cloud(Cloud::OpenStack),
                        _ => false,
                    })
                    .ok_or_else(|| {
                        found.error(
                            "expected an http:// or https:// URL (or, with --source openstack, \
                             file:// and a config drive's directory)",
                        )
                    })?
            }),
        };

        let ca_file = pick(
            args.ca_file.clone(),
            "--ca-file",
            var("TAGSTRAP_CA_FILE").map(PathBuf::from),
            "TAGSTRAP_CA_FILE",
            file.ca_file.map(relative),
            "ca_file",
            &config,
        )
        .map(|f| f.value);

        let deadline = match pick(
            args.deadline.clone(),
            "--deadline",
            var("TAGSTRAP_DEADLINE"),
            "TAGSTRAP_DEADLINE",
            file.deadline.map(toml_scalar),
            "deadline",
            &config,
        ) {
            None => DEFAULT_DEADLINE,
            Some(found) => parse_seconds(&found.value).map_err(|reason| found.error(reason))?,
        };

        let max_script_bytes = match pick(
            args.max_script_bytes.clone(),
            "--max-script-bytes",
            var("TAGSTRAP_MAX_SCRIPT_BYTES"),
            "TAGSTRAP_MAX_SCRIPT_BYTES",
            file.max_script_bytes.map(toml_scalar),
            "max_script_bytes",
            &config,
        ) {
            None => DEFAULT_MAX_SCRIPT_BYTES,
            Some(found) => parse_bytes(&found.value).map_err(|reason| found.error(reason))?,
        };

        let state_dir = pick(
            args.state_dir.clone(),
            "--state-dir",
            var("TAGSTRAP_STATE_DIR").map(PathBuf::from),
            "TAGSTRAP_STATE_DIR",
            file.state_dir.map(relative),
            "state_dir",
            &config,
        )
        .map(|f| f.value)
        .unwrap_or_else(|| default_dir("state"));

        let log_format = match pick(
            args.log_format.map(|f| format!("{f:?}").to_lowercase()),
            "--log-format",
            var("TAGSTRAP_LOG_FORMAT"),
            "TAGSTRAP_LOG_FORMAT",
            file.log_format,
            "log_format",
            &config,
        ) {
            None => LogFormat::Text,
            Some(found) => <LogFormat as clap::ValueEnum>::from_str(&found.value, true)
                .map_err(|_| found.error("expected text or json"))?,
        };

        let once = if args.once {
            true
        } else if let Some(value) = var("TAGSTRAP_ONCE") {
            parse_bool(&value)
                .ok_or_else(|| Error::Usage("$TAGSTRAP_ONCE: expected true or false".into()))?
        } else {
            file.once.unwrap_or(false)
        };

        let instance_id = pick(
            args.instance_id.clone(),
            "--instance-id",
            var("TAGSTRAP_INSTANCE_ID"),
            "TAGSTRAP_INSTANCE_ID",
            file.instance_id,
            "instance_id",
            &config,
        )
        .map(|f| f.value);

        let write_env = pick(
            args.write_env.clone(),
            "--write-env",
            var("TAGSTRAP_WRITE_ENV").map(PathBuf::from),
            "TAGSTRAP_WRITE_ENV",
            file.write_env.map(relative),
            "write_env",
            &config,
        )
        .map(|f| f.value);

        let pass_env = file.pass_env.unwrap_or_default();
        let store = store_settings(
            StoreFiles {
                store: file.store,
                vault: file.vault.unwrap_or_default(),
                directory: file.directory.unwrap_or_default(),
            },
            &var,
            &relative,
            &config,
        )?;

        Ok(Settings {
            tags_files,
            tags_files_named,
            tags,
            source,
            metadata_endpoint,
            config_path,
            ca_file,
            deadline,
            max_script_bytes,
            state_dir,
            log_format,
            once,
            instance_id,
            write_env,
            verbose: args.verbose,
            store,
            dmi_dir: var("TAGSTRAP_DMI_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| crate::tags::detect::DMI_DIR.into()),
            config_drive: var("TAGSTRAP_CONFIG_DRIVE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            pass_env,
            pass_env_from: format!("pass_env in {}", config.display()),
        })
    }
}

/// Reads the config file: the one named by `--config` or `$TAGSTRAP_CONFIG`
/// (which must exist), else the default one when present.
fn load_config(
    args: &CommonArgs,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<PathBuf>, ConfigFile)> {
    let (path, named) = match (&args.config, var("TAGSTRAP_CONFIG")) {
        (Some(path), _) => (path.clone(), true),
        (None, Some(path)) => (PathBuf::from(path), true),
        (None, None) => (default_dir("config").join("config.toml"), false),
    };
    if !named && !path.exists() {
        return Ok((None, ConfigFile::default()));
    }
    let text = crate::util::fs::read_small_text(&path, MAX_CONFIG_BYTES, "config file")
        .map_err(|e| Error::Config(e.message().to_string()))?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        let detail = e.message().to_string();
        let at = e
            .span()
            .map(|span| format!(" (line {})", text[..span.start].matches('\n').count() + 1))
            .unwrap_or_default();
        Error::Config(format!("config file {}{at}: {detail}", path.display()))
    })?;
    Ok((Some(path), file))
}

fn toml_scalar(value: toml::Value) -> String {
    match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        other => format!("{other:?}"),
    }
}

/// Seconds, possibly fractional: "600", "2.5".
pub fn parse_seconds(text: &str) -> std::result::Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))
}

/// Bytes, with an optional binary suffix: "16777216", "16M", "16MiB", "512k".
pub fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits);
    let multiplier: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?} is not a size (e.g. 16777216 or 16M)")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a size (e.g. 16777216 or 16M)"))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::env_of;
    use std::cell::RefCell;

    fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::resolve(&CommonArgs::default(), &env_of(&[])).unwrap();
        assert_eq!(s.deadline, DEFAULT_DEADLINE);
        assert_eq!(s.max_script_bytes, DEFAULT_MAX_SCRIPT_BYTES);
        assert_eq!(s.source, SourceChoice::Auto);
        assert!(!s.tags_files_named);
        assert!(!s.once);
        assert_eq!(s.store.choice, StoreChoice::Auto);
        assert_eq!(s.store.vault.mount, "secret");
        assert_eq!(s.store.vault.kv_version, 2);
        assert!(s.store.vault.approle.is_none());
        assert!(s.store.directory.is_none());
    }

    #[test]
    fn flag_beats_variable_beats_file_beats_default() {
        let (_dir, path) = config(
            "deadline = 30\nmax_script_bytes = \"1M\"\nstate_dir = \"st\"\nsource = \"none\"\n",
        );
        let env = env_of(&[
            ("TAGSTRAP_CONFIG", path.to_str().unwrap()),
            ("TAGSTRAP_DEADLINE", "20"),
        ]);
        let mut args = CommonArgs::default();
        let s = Settings::resolve(&args, &env).unwrap();
        assert_eq!(s.deadline, Duration::from_secs(20), "variable over file");
        assert_eq!(s.max_script_bytes, 1 << 20, "file over default");
        assert_eq!(
            s.state_dir,
            path.parent().unwrap().join("st"),
            "relative to the config file"
        );
        assert_eq!(s.source, SourceChoice::None);
        args.deadline = Some("10".into());
        let s = Settings::resolve(&args, &env).unwrap();
        assert_eq!(s.deadline, Duration::from_secs(10), "flag over variable");
    }

    #[test]
    fn bad_values_name_where_they_came_from() {
        let args = CommonArgs {
            deadline: Some("soon".into()),
            ..CommonArgs::default()
        };
        let err = Settings::resolve(&args, &env_of(&[])).unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(err.message().starts_with("--deadline:"), "{err}");

        let err = Settings::resolve(
            &CommonArgs::default(),
            &env_of(&[("TAGSTRAP_MAX_SCRIPT_BYTES", "lots")]),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(
            err.message().starts_with("$TAGSTRAP_MAX_SCRIPT_BYTES:"),
            "{err}"
        );

        let (_dir, path) = config("log_format = \"xml\"\n");
        let err = Settings::resolve(
            &CommonArgs::default(),
            &env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.message().starts_with("log_format in"), "{err}");
    }

    #[test]
    fn bad_config_files_are_exit_78_with_the_line() {
        for (text, needle) in [
            ("deadline = 10\nbogus = 1\n", "line 2"),
            ("deadline = [\n", "line"),
            ("[vault]\nkv_version = 3\n", "kv_version"),
            // pass_env is a list of names, at the top level only.
            ("pass_env = \"LANG\"\n", "line 1"),
            ("[vault]\npass_env = [\"LANG\"]\n", "line 2"),
        ] {
            let (_dir, path) = config(text);
            let args = CommonArgs {
                config: Some(path),
                ..CommonArgs::default()
            };
            let err = Settings::resolve(&args, &env_of(&[])).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{text}");
            assert!(err.message().contains(needle), "{text}: {err}");
        }
        let args = CommonArgs {
            config: Some("/nonexistent/tagstrap.toml".into()),
            ..CommonArgs::default()
        };
        assert_eq!(
            Settings::resolve(&args, &env_of(&[]))
                .unwrap_err()
                .exit_code(),
            78
        );
    }

    #[test]
    fn tags_come_from_one_place_with_their_origin() {
        let (_dir, path) = config("[tags]\n\"rs_agent:type\" = \"from-file\"\n");
        let env = env_of(&[
            ("TAGSTRAP_CONFIG", path.to_str().unwrap()),
            ("TAGSTRAP_TAG", "rs_agent:type=from-env\nrs_agent:x=y\n"),
        ]);
        let s = Settings::resolve(&CommonArgs::default(), &env).unwrap();
        assert_eq!(s.tags.len(), 2);
        assert_eq!(s.tags[0].origin, Origin::Environment);
        let s = Settings::resolve(
            &CommonArgs::default(),
            &env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(s.tags[0].value, "from-file");
        let args = CommonArgs {
            tags: vec!["rs_agent:type=flag".into()],
            ..CommonArgs::default()
        };
        let s = Settings::resolve(&args, &env).unwrap();
        assert_eq!(
            (s.tags.len(), s.tags[0].origin.clone()),
            (1, Origin::CommandLine)
        );
    }

    #[test]
    fn sizes_and_seconds_parse() {
        assert_eq!(parse_bytes("16M").unwrap(), 16 << 20);
        assert_eq!(parse_bytes("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        for bad in ["", "0", "-1", "1T", "M", "99999999999999999999"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_seconds("2.5").unwrap(), Duration::from_millis(2500));
        for bad in ["-1", "NaN", "inf", "x"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vault_settings_prefer_the_environment() {
        let (_dir, path) = config(
            "[vault]\naddress = \"http://file:8200\"\nmount = \"kv\"\nfield = \"password\"\n",
        );
        let env = env_of(&[
            ("TAGSTRAP_CONFIG", path.to_str().unwrap()),
            ("VAULT_ADDR", "http://env-1:8200, http://env-2:8200"),
            ("VAULT_TOKEN", "t0ken"),
        ]);
        let s = Settings::resolve(&CommonArgs::default(), &env).unwrap();
        let v = &s.store.vault;
        assert_eq!(v.addresses, ["http://env-1:8200", "http://env-2:8200"]);
        assert_eq!(v.addresses_from, "$VAULT_ADDR");
        assert_eq!((v.mount.as_str(), v.field.as_str()), ("kv", "password"));
        assert!(!format!("{s:?}").contains("t0ken"));
    }

    #[test]
    fn store_sections_of_the_config_file_are_read() {
        let (dir, path) = config(
            "store = \"vault\"\n[vault]\naddress = [\"http://a:8200\", \"http://b:8200\"]\n\
             token_file = \"token\"\n[vault.approle]\nrole_id = \"r-1\"\nsecret_id_file = \"sid\"\n\
             [directory]\npath = \"creds\"\n",
        );
        let env = env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]);
        let s = Settings::resolve(&CommonArgs::default(), &env)
            .unwrap()
            .store;
        assert_eq!(s.choice, StoreChoice::Vault);
        assert_eq!(s.vault.addresses, ["http://a:8200", "http://b:8200"]);
        assert!(s.vault.addresses_from.starts_with("[vault] address in"));
        assert_eq!(s.vault.token_file, Some(dir.path().join("token")));
        let role = s.vault.approle.unwrap();
        assert_eq!(role.mount, "approle");
        assert_eq!(role.role_id.as_deref(), Some("r-1"));
        assert_eq!(role.secret_id_file, Some(dir.path().join("sid")));
        assert_eq!(s.directory.unwrap().0, dir.path().join("creds"));
        assert!(
            !s.vault.insecure_http,
            "plain http:// is allowed only when asked for"
        );

        let env = env_of(&[
            ("TAGSTRAP_CONFIG", path.to_str().unwrap()),
            ("TAGSTRAP_STORE", "directory"),
            ("TAGSTRAP_CREDENTIALS_DIR", "/run/c"),
            ("TAGSTRAP_VAULT_ROLE_ID", "r-2"),
            ("TAGSTRAP_VAULT_SECRET_ID_FILE", "/run/sid"),
            ("TAGSTRAP_VAULT_TOKEN_FILE", "/run/token"),
        ]);
        let s = Settings::resolve(&CommonArgs::default(), &env)
            .unwrap()
            .store;
        assert_eq!(s.choice, StoreChoice::Directory);
        assert_eq!(
            s.directory,
            Some(("/run/c".into(), "$TAGSTRAP_CREDENTIALS_DIR".into()))
        );
        let role = s.vault.approle.unwrap();
        assert_eq!(role.role_id.as_deref(), Some("r-2"));
        assert_eq!(role.secret_id_file, Some("/run/sid".into()));
        assert_eq!(s.vault.token_file, Some("/run/token".into()));
    }

    #[test]
    fn insecure_http_is_read_from_the_vault_section_only() {
        let (_dir, path) =
            config("[vault]\naddress = \"http://vault.corp:8200\"\ninsecure_http = true\n");
        let env = env_of(&[
            ("TAGSTRAP_CONFIG", path.to_str().unwrap()),
            ("VAULT_ADDR", "http://other.corp:8200"),
        ]);
        let s = Settings::resolve(&CommonArgs::default(), &env)
            .unwrap()
            .store;
        assert!(s.vault.insecure_http);
        assert_eq!(s.vault.addresses, ["http://other.corp:8200"]);
        let (_dir, path) = config("insecure_http = true\n");
        let env = env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]);
        let err = Settings::resolve(&CommonArgs::default(), &env).unwrap_err();
        assert_eq!(err.exit_code(), 78, "not a top-level key");
    }

    #[test]
    fn systemd_credentials_are_the_fallback_directory_and_token_file() {
        let env = env_of(&[("CREDENTIALS_DIRECTORY", "/run/credentials/tagstrap.service")]);
        let s = Settings::resolve(&CommonArgs::default(), &env)
            .unwrap()
            .store;
        let dir = PathBuf::from("/run/credentials/tagstrap.service");
        assert_eq!(
            s.directory,
            Some((dir.clone(), "$CREDENTIALS_DIRECTORY".into()))
        );
        assert_eq!(s.vault.default_token_file, Some(dir.join("vault-token")));
    }

    #[test]
    fn every_variable_read_for_the_store_is_recorded_with_whether_it_is_a_secret() {
        // Every name resolution asks the environment for, seen from outside.
        let asked = RefCell::new(Vec::<String>::new());
        let env = |name: &str| {
            asked.borrow_mut().push(name.to_string());
            None
        };
        for store in ["auto", "vault", "directory"] {
            let (_dir, path) = config(&format!("store = \"{store}\"\n"));
            let args = CommonArgs {
                config: Some(path),
                ..CommonArgs::default()
            };
            let s = Settings::resolve(&args, &env).unwrap();
            let recorded = &s.store.variables;
            let secret = |name: &str| recorded.iter().find(|v| v.name == name).map(|v| v.secret);
            for name in [
                "VAULT_TOKEN",
                "TAGSTRAP_VAULT_TOKEN_FILE",
                "TAGSTRAP_VAULT_SECRET_ID_FILE",
                "TAGSTRAP_VAULT_ROLE_ID",
                "CREDENTIALS_DIRECTORY",
                "TAGSTRAP_CREDENTIALS_DIR",
            ] {
                assert_eq!(secret(name), Some(true), "{store}: {name}");
            }
            for name in [
                "VAULT_ADDR",
                "VAULT_NAMESPACE",
                "VAULT_CACERT",
                "TAGSTRAP_STORE",
            ] {
                assert_eq!(secret(name), Some(false), "{store}: {name}");
            }
            // A variable read for anything but tagstrap's own settings went
            // through the record: the script's environment cannot miss it.
            for name in asked.borrow().iter() {
                assert!(
                    name.starts_with("TAGSTRAP_") || recorded.iter().any(|v| v.name == name),
                    "{name} is read but not recorded"
                );
            }
        }
    }

    #[test]
    fn pass_env_is_read_from_the_file() {
        let (_dir, path) = config("pass_env = [\"VAULT_NAMESPACE\", \"LANG\"]\n");
        let args = CommonArgs {
            config: Some(path.clone()),
            ..CommonArgs::default()
        };
        let s = Settings::resolve(&args, &env_of(&[])).unwrap();
        assert_eq!(s.pass_env, ["VAULT_NAMESPACE", "LANG"]);
        assert_eq!(s.pass_env_from, format!("pass_env in {}", path.display()));
        let s = Settings::resolve(&CommonArgs::default(), &env_of(&[])).unwrap();
        assert!(s.pass_env.is_empty());
    }

    #[test]
    fn bad_store_settings_name_their_place() {
        let err = Settings::resolve(
            &CommonArgs::default(),
            &env_of(&[("TAGSTRAP_STORE", "keyring")]),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(err.message().starts_with("$TAGSTRAP_STORE:"), "{err}");
        for text in [
            "store = \"keyring\"\n",
            "[vault]\naddress = 8200\n",
            "[vault.approle]\nsecret_id = \"inline\"\n",
            "[directory]\nmode = 1\n",
            "[vault]\ninsecure_http = \"yes\"\n",
        ] {
            let (_dir, path) = config(text);
            let env = env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]);
            let err = Settings::resolve(&CommonArgs::default(), &env).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{text}");
        }
    }
}
