//! Every setting, resolved once (SPEC §3): the command-line flag, then its
//! `TAGSTRAP_*` variable, then the config file, then the built-in default.
//! A bad flag or variable is exit 64, a bad config file exit 78, each naming
//! where the bad value was. Relative paths in the config file are relative to
//! the file's own directory.
//!
//! Each setting is defined once, in [`defs`]: its key, flag, variable and
//! default. `--help` is generated from those definitions (`cli`), and the
//! tests check clap's flags, the config file's keys and the table in
//! docs/configuration.md against them. Each value has one parser
//! (`parse.rs`), whichever place it came from. The credential stores define
//! and read their own settings in their folders; this module hands each its
//! section of the file.
//!
//! Layer: settings (with `cli`). It may import `credentials` (each store's
//! section), `tags` and everything below.

mod file;
mod parse;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::cli::{CommonArgs, LogFormat, SourceChoice};
use crate::credentials::config::{store_settings, StoreFiles};
pub(crate) use crate::credentials::config::{StoreSettings, StoreVar};
use crate::error::{Class, Result};
use crate::tags::{Origin, Tag};
use crate::util::setting::{pick, Found, Setting};
pub(crate) use parse::{parse_bytes, parse_seconds};

pub(crate) const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
pub(crate) const DEFAULT_MAX_SCRIPT_BYTES: u64 = 16 * 1024 * 1024;
pub(crate) const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// tagstrap's own settings, each defined once (the stores' are in their
/// folders). The key of one with a flag is also the clap id of that flag.
pub(crate) mod defs {
    use crate::util::setting::{InFile, Setting};

    // The built-in paths as help shows them are this platform's: what
    // `default_dir` gives, `%ProgramData%` left for the reader to expand.
    pub(crate) const TAGS_FILES: Setting =
        Setting::everywhere("tags_files", "--tags-file", "TAGSTRAP_TAGS_FILE")
            .var_form("a path list")
            .default(if cfg!(windows) {
                r"%ProgramData%\tagstrap\tags when present"
            } else {
                "/etc/tagstrap/tags when present"
            });
    pub(crate) const TAGS: Setting = Setting::everywhere("tags", "--tag", "TAGSTRAP_TAG")
        .in_file(InFile::Table)
        .var_form("one KEY=VALUE per line");
    pub(crate) const SOURCE: Setting =
        Setting::everywhere("source", "--source", "TAGSTRAP_SOURCE").default("auto");
    pub(crate) const METADATA_ENDPOINT: Setting = Setting::everywhere(
        "metadata_endpoint",
        "--metadata-endpoint",
        "TAGSTRAP_METADATA_ENDPOINT",
    );
    pub(crate) const CONFIG: Setting = Setting::everywhere("config", "--config", "TAGSTRAP_CONFIG")
        .in_file(InFile::No)
        .default(if cfg!(windows) {
            r"%ProgramData%\tagstrap\config.toml when present"
        } else {
            "/etc/tagstrap/config.toml when present"
        });
    pub(crate) const CA_FILE: Setting =
        Setting::everywhere("ca_file", "--ca-file", "TAGSTRAP_CA_FILE");
    pub(crate) const DEADLINE: Setting =
        Setting::everywhere("deadline", "--deadline", "TAGSTRAP_DEADLINE").default("600");
    pub(crate) const MAX_SCRIPT_BYTES: Setting = Setting::everywhere(
        "max_script_bytes",
        "--max-script-bytes",
        "TAGSTRAP_MAX_SCRIPT_BYTES",
    )
    .default("16M");
    pub(crate) const STATE_DIR: Setting =
        Setting::everywhere("state_dir", "--state-dir", "TAGSTRAP_STATE_DIR").default(
            if cfg!(windows) {
                r"%ProgramData%\tagstrap\state"
            } else {
                "/var/lib/tagstrap"
            },
        );
    pub(crate) const LOG_FORMAT: Setting =
        Setting::everywhere("log_format", "--log-format", "TAGSTRAP_LOG_FORMAT").default("text");
    pub(crate) const ONCE: Setting =
        Setting::everywhere("once", "--once", "TAGSTRAP_ONCE").var_form("true or false");
    pub(crate) const INSTANCE_ID: Setting =
        Setting::everywhere("instance_id", "--instance-id", "TAGSTRAP_INSTANCE_ID");
    pub(crate) const WRITE_ENV: Setting =
        Setting::everywhere("write_env", "--write-env", "TAGSTRAP_WRITE_ENV");
    /// `-v`; its variable is a log filter of its own, not a count.
    pub(crate) const VERBOSE: Setting = Setting::everywhere("verbose", "--verbose", "TAGSTRAP_LOG")
        .in_file(InFile::No)
        .var_form("a filter, e.g. debug");
    /// Where `--source auto` reads DMI strings: for tests.
    pub(crate) const DMI_DIR: Setting = Setting::var_only("dmi_dir", "TAGSTRAP_DMI_DIR");
    pub(crate) const CONFIG_DRIVE: Setting =
        Setting::var_only("config_drive", "TAGSTRAP_CONFIG_DRIVE");
    /// Only in the file, never from the environment (or a flag): what the
    /// downloaded script may see is a decision written down, and a
    /// `TAGSTRAP_*` variable would itself be removed from it.
    pub(crate) const PASS_ENV: Setting = Setting::file_only("pass_env");

    /// Every one of them, in the order of SPEC §3 and `--help`.
    pub(crate) const ALL: &[&Setting] = &[
        &TAGS_FILES,
        &TAGS,
        &SOURCE,
        &METADATA_ENDPOINT,
        &CONFIG,
        &CA_FILE,
        &DEADLINE,
        &MAX_SCRIPT_BYTES,
        &STATE_DIR,
        &LOG_FORMAT,
        &ONCE,
        &INSTANCE_ID,
        &WRITE_ENV,
        &VERBOSE,
        &DMI_DIR,
        &CONFIG_DRIVE,
        &PASS_ENV,
    ];
}

/// The built-in locations: under /etc and /var/lib on Unix, under
/// %ProgramData%\tagstrap on Windows.
pub(crate) fn default_dir(kind: &str) -> PathBuf {
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

/// Where a setting's value may come from besides its flag: the environment
/// (empty counts as unset) and the config file at `config`, whose relative
/// paths are relative to its directory.
struct Places<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    config: PathBuf,
    base: PathBuf,
}

impl Places<'_> {
    fn var(&self, setting: &Setting) -> Option<String> {
        (self.env)(setting.var_name()).filter(|v| !v.is_empty())
    }

    fn relative(&self, path: PathBuf) -> PathBuf {
        if path.is_relative() {
            self.base.join(path)
        } else {
            path
        }
    }

    /// The first of flag, variable and file value, and where it came from.
    fn find(
        &self,
        setting: &Setting,
        flag: Option<String>,
        file: Option<String>,
    ) -> Option<Found<String>> {
        pick(setting, flag, self.var(setting), file, &self.config)
    }

    /// The first value, read by `parse`; a bad one names its place.
    fn value<T>(
        &self,
        setting: &Setting,
        flag: Option<String>,
        file: Option<String>,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        self.find(setting, flag, file)
            .map(|found| parse(&found.value).map_err(|reason| found.error(reason)))
            .transpose()
    }

    /// The first path; the file's relative to the file.
    fn path(
        &self,
        setting: &Setting,
        flag: Option<PathBuf>,
        file: Option<PathBuf>,
    ) -> Option<PathBuf> {
        let var = self.var(setting).map(PathBuf::from);
        let file = file.map(|p| self.relative(p));
        pick(setting, flag, var, file, &self.config).map(|found| found.value)
    }
}

impl Settings {
    /// `env` reads one environment variable; injected so that resolution is
    /// a pure function in tests.
    pub fn resolve(args: &CommonArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
        use defs::*;
        let (config_path, file) = file::load(args.config.as_deref(), env)?;
        let config = config_path.clone().unwrap_or_default();
        let at = Places {
            env,
            base: config.parent().map(Path::to_path_buf).unwrap_or_default(),
            config,
        };

        let (tags_files, tags_files_named) = tags_files(args, &at, file.tags_files);
        let source = at
            .value(
                &SOURCE,
                args.source.map(|s| s.name().to_string()),
                file.source,
                parse::choice,
            )?
            .unwrap_or(SourceChoice::Auto);
        let log_format = at
            .value(
                &LOG_FORMAT,
                args.log_format.as_ref().map(parse::name_of),
                file.log_format,
                parse::choice,
            )?
            .unwrap_or(LogFormat::Text);
        let store = store_settings(
            StoreFiles {
                store: file.store,
                vault: file.vault.unwrap_or_default(),
                directory: file.directory.unwrap_or_default(),
                gcp_secret_manager: file.gcp_secret_manager.unwrap_or_default(),
                azure_key_vault: file.azure_key_vault.unwrap_or_default(),
                aws_secrets_manager: file.aws_secrets_manager.unwrap_or_default(),
                aws_ssm: file.aws_ssm.unwrap_or_default(),
            },
            env,
            &|p| at.relative(p),
            &at.config,
        )?;

        Ok(Settings {
            tags_files,
            tags_files_named,
            tags: tags(args, &at, file.tags)?,
            source,
            metadata_endpoint: at.value(
                &METADATA_ENDPOINT,
                args.metadata_endpoint.clone(),
                file.metadata_endpoint,
                |text| parse::endpoint(text, source),
            )?,
            config_path,
            ca_file: at.path(&CA_FILE, args.ca_file.clone(), file.ca_file),
            deadline: at
                .value(
                    &DEADLINE,
                    args.deadline.clone(),
                    file.deadline.map(|v| v.0),
                    parse_seconds,
                )?
                .unwrap_or(DEFAULT_DEADLINE),
            max_script_bytes: at
                .value(
                    &MAX_SCRIPT_BYTES,
                    args.max_script_bytes.clone(),
                    file.max_script_bytes.map(|v| v.0),
                    parse_bytes,
                )?
                .unwrap_or(DEFAULT_MAX_SCRIPT_BYTES),
            state_dir: at
                .path(&STATE_DIR, args.state_dir.clone(), file.state_dir)
                .unwrap_or_else(|| default_dir("state")),
            log_format,
            once: at
                .value(
                    &ONCE,
                    args.once.then(|| "true".to_string()),
                    file.once.map(|b| b.to_string()),
                    parse::boolean,
                )?
                .unwrap_or(false),
            instance_id: at
                .find(&INSTANCE_ID, args.instance_id.clone(), file.instance_id)
                .map(|found| found.value),
            write_env: at.path(&WRITE_ENV, args.write_env.clone(), file.write_env),
            verbose: args.verbose,
            store,
            dmi_dir: at
                .var(&DMI_DIR)
                .map_or_else(|| crate::tags::detect::DMI_DIR.into(), PathBuf::from),
            config_drive: at.var(&CONFIG_DRIVE).map(PathBuf::from),
            pass_env: file.pass_env.unwrap_or_default(),
            pass_env_from: format!("{} in {}", PASS_ENV.key, at.config.display()),
        })
    }
}

/// The tags files named by `--tags-file`, `$TAGSTRAP_TAGS_FILE` (a path
/// list) or `tags_files`, and whether they were named; else the default one.
fn tags_files(args: &CommonArgs, at: &Places, file: Option<Vec<PathBuf>>) -> (Vec<PathBuf>, bool) {
    let named = pick(
        &defs::TAGS_FILES,
        (!args.tags_files.is_empty()).then(|| args.tags_files.clone()),
        at.var(&defs::TAGS_FILES)
            .map(|v| std::env::split_paths(&v).collect()),
        file.map(|files| files.into_iter().map(|p| at.relative(p)).collect()),
        &at.config,
    );
    match named {
        Some(found) => (found.value, true),
        None => (vec![default_dir("config").join("tags")], false),
    }
}

/// The tags of `--tag`, else `$TAGSTRAP_TAG`, else the file's `[tags]`:
/// one place, never a mix, each tag with its origin.
fn tags(
    args: &CommonArgs,
    at: &Places,
    file: Option<std::collections::BTreeMap<String, String>>,
) -> Result<Vec<Tag>> {
    if !args.tags.is_empty() {
        return args
            .tags
            .iter()
            .map(|t| Tag::parse_assignment(t, Origin::CommandLine))
            .collect();
    }
    if let Some(lines) = at.var(&defs::TAGS) {
        return lines
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|t| Tag::parse_assignment(t, Origin::Environment))
            .collect();
    }
    let origin = Origin::ConfigFile {
        path: at.config.clone(),
    };
    file.unwrap_or_default()
        .iter()
        .map(|(k, v)| Tag::new(k, v, origin.clone()))
        .collect::<Result<Vec<_>>>()
        // A tag is bad input (65) wherever it was read, but one written in
        // the config file is a bad config file: 78, as every key of it is.
        .map_err(|e| e.relabeled(Class::Config))
}
