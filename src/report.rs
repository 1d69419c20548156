//! The last-run report (SPEC §7): what `tagstrap run` used and what happened,
//! written as JSON, mode 0600, to `<state-dir>/last-run.json`, whether the run
//! succeeded or not. Built only from shown (redacted) values: it holds tag
//! values as `tagstrap tags` shows them, the proxy's host and port, credential
//! names, tries, timings and the exit code, never a secret. A run a signal
//! stopped says so: `signal` holds its number, `error.kind` is `stopped`, and
//! the script's part says how the script ended.
//!
//! Layer: run and report. It may import the download, the proxy environment
//! and everything below.

use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::error::Error;
use crate::net::retry::Tries;
use crate::state::{write_private, StateDir};

/// What was read from the metadata service, for the report and `--once`.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct InstanceRead {
    pub(crate) source: &'static str,
    pub(crate) instance_id: Option<String>,
    pub(crate) from: String,
    pub(crate) tries: Tries,
}

/// Every string of the report (keys too) as [`crate::util::text::shown`]
/// shows it: JSON would carry a format character (U+202E) raw, and a reader
/// of the file should see what a reader of the log sees.
fn shown_strings(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(crate::util::text::shown(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(shown_strings).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (crate::util::text::shown(&k), shown_strings(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The facts of one `run`, as the pipeline's stages found them: when it
/// started, the tags, the instance read, the proxy, the script's environment
/// and the script (its download's tries and its run's time). The pipeline
/// fills it from the values its stages return and hands it back with the
/// outcome; [`Report::finish`] adds the end. It lives here, below the
/// pipeline, so that the report never imports the stages.
#[derive(Debug, Serialize)]
pub(crate) struct RunRecord {
    pub(crate) started_at: String,
    /// For the run's length; not in the JSON (`seconds` is).
    #[serde(skip)]
    pub(crate) started: Instant,
    pub(crate) instance_id: Option<String>,
    /// The cloud source read, where, and how many tries it took.
    pub(crate) instance: Option<InstanceRead>,
    pub(crate) tags: Vec<ReportTag>,
    pub(crate) proxy: Option<ReportProxy>,
    pub(crate) no_proxy: Option<String>,
    pub(crate) credentials: Vec<String>,
    /// Where `--write-env` wrote the proxy environment.
    pub(crate) env_file: Option<String>,
    /// What the script's environment left out, kept and set (names only).
    pub(crate) script_env: Option<ReportScriptEnv>,
    pub(crate) script: Option<ReportScript>,
}

/// `last-run.json`: a run's record and how it ended. The record's fields are
/// flattened into it (the file has one level, as it always had; its keys are
/// written sorted, `serde_json`'s map having no order of its own).
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) tagstrap_version: &'static str,
    #[serde(flatten)]
    pub(crate) run: RunRecord,
    pub(crate) finished_at: String,
    pub(crate) seconds: f64,
    pub(crate) exit_code: i32,
    /// The signal that stopped tagstrap (SPEC §8), when one did.
    pub(crate) signal: Option<i32>,
    pub(crate) error: Option<ReportError>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReportTag {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) origin: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReportProxy {
    pub(crate) url: String,
    pub(crate) source: String,
}

/// The script's environment as SPEC §4 builds it, by name: never a value.
#[derive(Debug, Serialize)]
pub(crate) struct ReportScriptEnv {
    /// Tagstrap's variables the script did not get.
    pub(crate) removed: Vec<String>,
    /// Those `pass_env` kept although the rule removes them.
    pub(crate) kept: Vec<String>,
    /// The proxy variables tagstrap set.
    pub(crate) set: Vec<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct ReportScript {
    pub(crate) url: String,
    pub(crate) tag: String,
    pub(crate) route: Option<String>,
    pub(crate) bytes: Option<u64>,
    pub(crate) sha256: Option<String>,
    pub(crate) download: Tries,
    pub(crate) run_seconds: Option<f64>,
    /// The script's own exit code (128 + N when a signal N ended it).
    pub(crate) exit_code: Option<i32>,
    /// Whether tagstrap killed what was left of the script's process group
    /// after a signal's grace.
    pub(crate) killed: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReportError {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl RunRecord {
    /// A run starting now, nothing found yet.
    pub(crate) fn start() -> RunRecord {
        RunRecord {
            started_at: now_rfc3339(),
            started: Instant::now(),
            instance_id: None,
            instance: None,
            tags: Vec::new(),
            proxy: None,
            no_proxy: None,
            credentials: Vec::new(),
            env_file: None,
            script_env: None,
            script: None,
        }
    }
}

impl Report {
    /// The report of a run that ended now with `outcome`: the script's exit
    /// code, or tagstrap's error (and the signal, when one stopped it).
    pub(crate) fn finish(run: RunRecord, outcome: std::result::Result<i32, &Error>) -> Report {
        let (exit_code, signal, error) = match outcome {
            Ok(code) => (code, None, None),
            Err(error) => (
                error.exit_code(),
                match error {
                    Error::Stopped { signal, .. } => Some(*signal),
                    _ => None,
                },
                Some(ReportError {
                    kind: error.kind(),
                    message: error.message().to_string(),
                }),
            ),
        };
        Report {
            tagstrap_version: env!("CARGO_PKG_VERSION"),
            finished_at: now_rfc3339(),
            seconds: run.started.elapsed().as_secs_f64(),
            run,
            exit_code,
            signal,
            error,
        }
    }

    /// Writes the report; a failure to write it is logged, not fatal: the
    /// exit code already says what happened.
    pub(crate) fn write(self, state: &StateDir) {
        let path = state.report_path();
        let written = serde_json::to_value(&self)
            .and_then(|value| serde_json::to_vec_pretty(&shown_strings(value)))
            .map_err(|e| Error::CantCreate(e.to_string()))
            .and_then(|json| {
                state.ensure()?;
                write_private(&path, &json)
            });
        match written {
            Ok(()) => tracing::debug!("report written to {}", path.display()),
            Err(e) => tracing::warn!("the report was not written: {e}"),
        }
    }
}
