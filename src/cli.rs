//! The command line (SPEC §3). Only the shape of the arguments lives here;
//! their values are checked and merged with the environment and the config
//! file in [`crate::settings`], so a flag, its `TAGSTRAP_*` variable and its
//! config key share one parser and one error message.
//!
//! Layer: settings (with `settings`). It may import `tags` and everything
//! below.

use std::path::PathBuf;

pub(crate) use crate::tags::instance::SourceChoice;
use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Read rs_agent:* tags, fetch the proxy password from a credential store, \
build the proxied environment, then download the agent install script through the proxy and run it.";

/// The long help around this platform's built-in paths (those of
/// `settings::default_dir`, as `settings::defs` shows them).
macro_rules! long_about {
    ($tags:literal, $config:literal) => {
        concat!(
            "\
tagstrap runs at the very start of a cloud instance's life. It reads the instance's rs_agent:* \
tags, resolves cred:NAME references from a credential store (so that no secret is ever a tag), \
builds http_proxy/https_proxy/no_proxy for the install script, downloads the script through \
the proxy with retries that outlast the boot-time network race, and runs it.

Tags come from tags files (default ",
            $tags,
            "), then the instance's own tags (--source), \
then --tag, later ones overriding earlier ones key by key.

Every setting is read from, in order: the command-line flag, its TAGSTRAP_* variable, the config \
file (TOML, default ",
            $config,
            "), the built-in default."
        )
    };
}

#[cfg(not(windows))]
const LONG_ABOUT: &str = long_about!("/etc/tagstrap/tags", "/etc/tagstrap/config.toml");
#[cfg(windows)]
const LONG_ABOUT: &str = long_about!(
    r"%ProgramData%\tagstrap\tags",
    r"%ProgramData%\tagstrap\config.toml"
);

/// The exit codes, then this platform's examples.
macro_rules! exit_codes {
    ($examples:literal) => {
        concat!(
            "\
Exit codes:
  0   the script ran and exited 0
  64  bad command line
  65  bad input: malformed tag, proxy URL or pin; plain-text password tag; checksum mismatch; script too large
  66  not found: the script URL answered 404/410, or a named credential does not exist
  69  unavailable: the deadline passed while the network, proxy, store or script host kept failing
  73  the state directory cannot be written
  77  refused: proxy authentication failed (407), the proxy refused the CONNECT (403), access denied (401/403), untrusted TLS certificate
  78  bad configuration file, or no credential store configured
  126 the script could not be started
  other: the script's own exit code

Examples:
",
            $examples
        )
    };
}

#[cfg(not(windows))]
const EXIT_CODES: &str = exit_codes!(
    "  tagstrap plan --tags-file /etc/tagstrap/tags
  tagstrap run --source none --tag rs_agent:mime_shellscript=file:///opt/agent/install.sh
  VAULT_ADDR=https://vault.corp:8200 VAULT_TOKEN=... tagstrap run --once"
);
#[cfg(windows)]
const EXIT_CODES: &str = exit_codes!(
    r"  tagstrap plan --tags-file %ProgramData%\tagstrap\tags
  tagstrap run --source none --tag rs_agent:powershell_url=file:///C:/agent/install.ps1
  set VAULT_ADDR=https://vault.corp:8200 & set VAULT_TOKEN=... & tagstrap run --once"
);

/// The command line as clap parses it: the derived one, each flag's help
/// followed by its default, variable and config key from its setting's one
/// definition (`settings::defs`). Public for examples/manpage.rs, which
/// generates the man page and completions from it.
pub fn command() -> clap::Command {
    let mut command = <Cli as clap::CommandFactory>::command();
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    for name in names {
        command = command.mut_subcommand(name, |mut sub| {
            for setting in crate::settings::defs::ALL {
                if sub.get_arguments().any(|arg| arg.get_id() == setting.key) {
                    sub = sub.mut_arg(setting.key, |arg| {
                        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                        arg.help(format!("{help} {}", setting.help_suffix()))
                    });
                }
            }
            sub
        });
    }
    command
}

/// Parses the process's arguments with [`command`].
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    Cli::from_arg_matches(&command().try_get_matches()?)
}

#[derive(Debug, Parser)]
#[command(name = "tagstrap", version, about = ABOUT, long_about = LONG_ABOUT, after_long_help = EXIT_CODES)]
// A flag given twice (a unit's base arguments plus an override) takes its last value.
#[command(args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The main job: tags → credentials → environment → download → execute.
    ///
    /// Exits with the script's own exit code, or with one of the codes below
    /// after one error line saying what failed and what to do.
    #[command(after_long_help = EXIT_CODES)]
    Run(RunArgs),
    /// Resolve everything that needs no download (tags, credentials, proxy
    /// environment, script URL) and print it, secrets redacted.
    #[command(after_long_help = EXIT_CODES)]
    Plan(CommonArgs),
    /// Print the merged tags and where each value came from.
    #[command(after_long_help = EXIT_CODES)]
    Tags(CommonArgs),
    /// Check each step once (tags, credentials, proxy over TCP, CONNECT, TLS
    /// to the script host, the script URL) and say what is wrong.
    ///
    /// One line per step: ok, FAIL with what to do, or skip when an earlier
    /// step it needs failed. Exits with the first failure's code.
    #[command(after_long_help = EXIT_CODES)]
    Doctor(CommonArgs),
}

impl Command {
    /// The settings' flags; for `run`, with its own flags folded in.
    pub(crate) fn args(&self) -> CommonArgs {
        match self {
            Command::Run(run) => CommonArgs {
                write_env: run.write_env.clone(),
                ..run.common.clone()
            },
            Command::Plan(args) | Command::Tags(args) | Command::Doctor(args) => args.clone(),
        }
    }
}

/// `run`'s flags: the shared ones, and what only a run does.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,

    /// Also write the proxy environment to PATH (0600, NAME='value' lines
    /// that systemd's EnvironmentFile= and sh's `set -a; . PATH` both read),
    /// for later boot stages and services
    #[arg(long, value_name = "PATH")]
    pub(crate) write_env: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The flags shared by every command. All are optional here: the defaults
/// are applied in [`crate::settings`], after the environment and the file.
/// Each field's name is its setting's key in `settings::defs`, where its
/// variable, config key and default are defined; [`command`] adds those to
/// the help.
/// `Debug` shows `--tag` values redacted (a password typed into one).
#[derive(Clone, Default, Args)]
pub struct CommonArgs {
    /// A tags file, one key=value per line (repeatable; replaces the default)
    #[arg(long = "tags-file", value_name = "PATH")]
    pub tags_files: Vec<PathBuf>,

    /// One tag, overriding files and instance tags (repeatable)
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,

    /// Where instance tags come from
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub source: Option<SourceChoice>,

    /// Base URL of the metadata service (tests, unusual clouds)
    #[arg(long, value_name = "URL")]
    pub metadata_endpoint: Option<String>,

    /// Config file (TOML)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Extra PEM CA certificates trusted for the proxy, the script host and the
    /// credential store (TLS-intercepting proxies)
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Total time budget for all tries of one resource
    #[arg(long, value_name = "SECONDS")]
    pub deadline: Option<String>,

    /// Refuse a script larger than this; accepts K, M, G (binary) suffixes
    #[arg(long, value_name = "N")]
    pub max_script_bytes: Option<String>,

    /// Where the script, markers and the last-run report go
    #[arg(long, value_name = "PATH")]
    pub state_dir: Option<PathBuf>,

    /// Log lines on stderr
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Run the script once per instance ID: a later boot of the same instance
    /// does nothing
    #[arg(long)]
    pub once: bool,

    /// The instance ID for --once, when the cloud source gives none (default:
    /// cloud-init's instance-id, else /etc/machine-id)
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,

    /// More log lines (-v debug, -vv trace)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// `run --write-env`, carried here so that one settings resolution sees
    /// every flag; not a flag of `plan` or `tags`.
    #[arg(skip)]
    pub write_env: Option<PathBuf>,
}

impl std::fmt::Debug for CommonArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tags: Vec<String> = self
            .tags
            .iter()
            .map(|text| {
                match crate::tags::Tag::parse_assignment(text, crate::tags::Origin::CommandLine) {
                    Ok(tag) => format!("{}={}", tag.key, tag.shown_value()),
                    Err(_) => "***".to_string(),
                }
            })
            .collect();
        f.debug_struct("CommonArgs")
            .field("tags_files", &self.tags_files)
            .field("tags", &tags)
            .field("source", &self.source)
            .field("metadata_endpoint", &self.metadata_endpoint)
            .field("config", &self.config)
            .field("ca_file", &self.ca_file)
            .field("deadline", &self.deadline)
            .field("max_script_bytes", &self.max_script_bytes)
            .field("state_dir", &self.state_dir)
            .field("log_format", &self.log_format)
            .field("once", &self.once)
            .field("instance_id", &self.instance_id)
            .field("verbose", &self.verbose)
            .field("write_env", &self.write_env)
            .finish()
    }
}
