//! The last stages: the script tag required, the script downloaded into the
//! state directory, run, and its end made into the run's outcome (the
//! `--once` marker after a success; the error line of a run a signal
//! stopped).

use std::path::Path;
use std::time::Instant;

use super::collect::Collected;
use super::prepare::Prepared;
use crate::error::{Error, Result};
use crate::fetch::{self, FetchOptions};
use crate::net::retry::Tries;
use crate::proxy::ScriptEnv;
use crate::run::Interrupted;
use crate::settings::Settings;
use crate::state::StateDir;
use crate::stop::{Stage, Stop};
use crate::tags::agent::{AgentTags, Platform, ScriptTag};

/// The script tag, or what was read instead of one.
pub(crate) fn require_script<'a>(
    agent: &'a AgentTags,
    collected: &Collected,
) -> Result<&'a ScriptTag> {
    agent.script.as_ref().ok_or_else(|| {
        let key = match Platform::current() {
            Platform::Unix => crate::tags::agent::MIME_SHELLSCRIPT,
            Platform::Windows => crate::tags::agent::POWERSHELL_URL,
        };
        let read = if collected.sources.is_empty() {
            "no tags were found at all (no tags file, no instance tags, no --tag)".to_string()
        } else {
            format!("read: {}", collected.sources.join(", "))
        };
        Error::Input(format!(
            "no {key} tag names a script, so there is nothing to run ({read})"
        ))
    })
}

/// The download into the state directory, cancelled by a signal; with its
/// tries, also when it failed: the report says how hard it tried.
pub(crate) async fn download(
    settings: &Settings,
    state: &StateDir,
    prepared: &Prepared,
    script: &ScriptTag,
    stop: &Stop,
) -> (Tries, Result<fetch::Downloaded>) {
    let mut tries = Tries::default();
    let paths = state
        .ensure()
        .and_then(|()| state.script_paths(Platform::current() == Platform::Windows));
    let paths = match paths {
        Ok(paths) => paths,
        Err(error) => return (tries, Err(error)),
    };
    let options = FetchOptions {
        tls: prepared.tls.clone(),
        budget: settings.deadline,
        max_bytes: settings.max_script_bytes,
    };
    let downloaded = stop
        .unless(
            Stage::Download,
            fetch::download(script, &prepared.env, &options, paths, &mut tries),
        )
        .await;
    (tries, downloaded)
}

/// How the script ended.
pub(crate) struct Ran {
    /// Its own exit code (128 + N when a signal N ended it).
    pub(crate) code: i32,
    pub(crate) seconds: f64,
    /// Whether what it left in its process group was killed after a
    /// signal's grace.
    pub(crate) killed: bool,
    interrupted: Option<Interrupted>,
}

/// Runs the downloaded script with its environment; a signal is passed on
/// to its process group.
pub(crate) async fn execute(
    downloaded: &fetch::Downloaded,
    script_env: &ScriptEnv,
    stop: &Stop,
) -> Result<Ran> {
    let started = Instant::now();
    let finished = crate::run::execute(&downloaded.path, script_env, stop).await?;
    Ok(Ran {
        code: finished.code,
        seconds: started.elapsed().as_secs_f64(),
        killed: finished.interrupted.is_some_and(|i| i.killed),
        interrupted: finished.interrupted,
    })
}

impl Ran {
    /// The run's outcome: on exit 0 the `--once` marker is written (also
    /// when a signal came meanwhile: the script completed); the script's
    /// code, or the error of a run a signal stopped.
    pub(crate) fn conclude(
        self,
        downloaded: &fetch::Downloaded,
        marker: Option<&Path>,
    ) -> Result<i32> {
        let code = self.code;
        if code == 0 {
            if self.interrupted.is_none() {
                tracing::info!("the script exited 0");
            }
            if let Some(marker) = marker {
                let line = format!(
                    "{} sha256={}\n",
                    crate::report::now_rfc3339(),
                    fetch::hex(&downloaded.sha256)
                );
                crate::state::write_private(marker, line.as_bytes())?;
            }
        } else if self.interrupted.is_none() {
            tracing::warn!(
                exit_code = code,
                "the script exited {code}; tagstrap exits with the same code"
            );
        }
        match self.interrupted {
            Some(interrupted) => Err(stopped_while_the_script_ran(
                interrupted,
                code,
                marker.is_some(),
            )),
            None => Ok(code),
        }
    }
}

/// The error line of a run stopped while the script ran: what the script's
/// group got, how it ended, and whether the installation completed.
fn stopped_while_the_script_ran(interrupted: Interrupted, code: i32, once: bool) -> Error {
    let name = interrupted.signal.name;
    let grace = crate::run::SIGNAL_GRACE.as_secs();
    let marked = if once {
        " (its --once marker is written)"
    } else {
        ""
    };
    let how = match (code, interrupted.killed) {
        (0, false) => format!(
            "the script exited 0 within the {grace} s grace, so the installation completed\
             {marked}. Nothing to redo; find out what sent {name} (a service manager's stop \
             timeout?)"
        ),
        (0, true) => format!(
            "the script exited 0, so the installation completed{marked}, but what it left \
             running in its group ignored {name} for {grace} s and was killed (SIGKILL): check \
             that nothing it started was needed"
        ),
        (_, false) => format!(
            "the script ended with exit code {code} within the {grace} s grace, so the \
             installation did not complete: run tagstrap again"
        ),
        (_, true) => format!(
            "it was still running after the {grace} s grace and was killed (SIGKILL), so the \
             installation did not complete: run tagstrap again, and give it the time the script \
             needs before stopping it"
        ),
    };
    Error::Stopped {
        signal: interrupted.signal.number,
        message: format!(
            "tagstrap was stopped by {name} while the script ran; the script's process group got \
             {name} and {how}"
        ),
    }
}
