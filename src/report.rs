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

use std::time::SystemTime;

use serde::Serialize;

use crate::error::Error;
use crate::net::retry::Tries;
use crate::state::{write_private, StateDir};

/// What was read from the metadata service, for the report and `--once`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceRead {
    pub source: &'static str,
    pub instance_id: Option<String>,
    pub from: String,
    pub tries: Tries,
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

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub tagstrap_version: &'static str,
    pub started_at: String,
    pub finished_at: String,
    pub seconds: f64,
    pub instance_id: Option<String>,
    /// The cloud source read, where, and how many tries it took.
    pub instance: Option<InstanceRead>,
    pub tags: Vec<ReportTag>,
    pub proxy: Option<ReportProxy>,
    pub no_proxy: Option<String>,
    pub credentials: Vec<String>,
    /// Where `--write-env` wrote the proxy environment.
    pub env_file: Option<String>,
    /// What the script's environment left out, kept and set (names only).
    pub script_env: Option<ReportScriptEnv>,
    pub script: Option<ReportScript>,
    pub exit_code: i32,
    /// The signal that stopped tagstrap (SPEC §8), when one did.
    pub signal: Option<i32>,
    pub error: Option<ReportError>,
}

#[derive(Debug, Serialize)]
pub struct ReportTag {
    pub key: String,
    pub value: String,
    pub origin: String,
}

#[derive(Debug, Serialize)]
pub struct ReportProxy {
    pub url: String,
    pub source: String,
}

/// The script's environment as SPEC §4 builds it, by name: never a value.
#[derive(Debug, Serialize)]
pub struct ReportScriptEnv {
    /// Tagstrap's variables the script did not get.
    pub removed: Vec<String>,
    /// Those `pass_env` kept although the rule removes them.
    pub kept: Vec<String>,
    /// The proxy variables tagstrap set.
    pub set: Vec<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub struct ReportScript {
    pub url: String,
    pub tag: String,
    pub route: Option<String>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub download: Tries,
    pub run_seconds: Option<f64>,
    /// The script's own exit code (128 + N when a signal N ended it).
    pub exit_code: Option<i32>,
    /// Whether tagstrap killed what was left of the script's process group
    /// after a signal's grace.
    pub killed: bool,
}

#[derive(Debug, Serialize)]
pub struct ReportError {
    pub kind: &'static str,
    pub message: String,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Report {
    pub fn start() -> Report {
        Report {
            tagstrap_version: env!("CARGO_PKG_VERSION"),
            started_at: now_rfc3339(),
            ..Report::default()
        }
    }

    pub fn fail(&mut self, error: &Error) {
        self.exit_code = error.exit_code();
        if let Error::Stopped { signal, .. } = error {
            self.signal = Some(*signal);
        }
        self.error = Some(ReportError {
            kind: error.kind(),
            message: error.message().to_string(),
        });
    }

    /// Writes the report; a failure to write it is logged, not fatal: the
    /// exit code already says what happened.
    pub fn write(mut self, state: &StateDir, started: std::time::Instant) {
        self.finished_at = now_rfc3339();
        self.seconds = started.elapsed().as_secs_f64();
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
