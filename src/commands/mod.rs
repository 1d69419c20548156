//! The commands, wired: `main` parses the command line (clap's errors are
//! usage errors, 64), resolves the settings, starts logging and the async
//! runtime, and `dispatch` runs one command, each in its own file:
//!
//! - `run`: the pipeline under the state directory's lock, and the report;
//! - `plan`: every stage up to the download, printed;
//! - `tags`: the merged tags and where each came from;
//! - `doctor`: a table of steps, each diagnosed on the route `run` takes.
//!
//! Layer: commands, the top one below `main`. It may import every layer:
//! the pipeline's stages, logging, settings and everything below them.
//! No command imports another's internals; what two share is a stage of
//! the pipeline.

mod doctor;
mod plan;
mod run;
mod tags;

use crate::cli::Command;
use crate::error::{Error, Result};
use crate::proxy::ScriptEnvRule;
use crate::settings::Settings;
use crate::stop::Stop;

/// Parses the command line, runs the command, and returns the process's exit
/// code, after one error line on stderr when it is not the script's own.
pub fn main() -> i32 {
    // Before anything is read: settings hold VAULT_TOKEN.
    let undumpable = crate::util::process::make_undumpable();
    let cli = match crate::cli::parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let args = cli.command.args();
    let settings = Settings::resolve(&args, &|name| std::env::var(name).ok());
    let (format, verbose) = match &settings {
        Ok(s) => (s.log_format, s.verbose),
        Err(_) => (
            args.log_format.unwrap_or(crate::cli::LogFormat::Text),
            args.verbose,
        ),
    };
    crate::logging::init(format, verbose);
    if let Err(e) = undumpable {
        tracing::warn!(
            "cannot mark the process non-dumpable ({e}): a core dump would hold secrets"
        );
    }
    let outcome = settings.and_then(|settings| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::CantCreate(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(dispatch(&cli.command, settings))
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(exit_code = error.exit_code(), "{}", error.message());
            error.exit_code()
        }
    }
}

/// clap's own errors are usage errors (64), printed as one line; help and
/// version go to stdout with 0.
fn clap_exit(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                crate::error::exit::USAGE
            } else {
                0
            }
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("bad command line");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!(
                "tagstrap: error: {} (see tagstrap --help)",
                crate::util::text::shown(first)
            );
            crate::error::exit::USAGE
        }
    }
}

/// Runs one command. Only `run` listens for signals: it is the one that
/// must stop in good order (SPEC §8); the others stop as the signal's
/// default action would have them.
async fn dispatch(command: &Command, settings: Settings) -> Result<i32> {
    // rustls needs a process-wide provider for the parts of the HTTP client
    // that do not take our configuration; ours is ring everywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `pass_env` is part of the config file: a bad entry is refused (78) by
    // every command before anything is read, as a bad key is.
    let script_env = ScriptEnvRule::from_settings(&settings)?;
    match command {
        Command::Run(_) => run::run(&settings, &script_env, Stop::listen()).await,
        Command::Plan(_) => plan::plan(&settings, &script_env).await.map(|()| 0),
        Command::Tags(_) => tags::tags(&settings).await.map(|()| 0),
        Command::Doctor(_) => doctor::doctor(&settings).await.map(|()| 0),
    }
}
