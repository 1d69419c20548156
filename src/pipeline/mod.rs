//! The pipeline: tags → credentials → proxy environment → fetch → run, as
//! stages that take what they need and return values ([`collect_tags`],
//! [`prepare`], [`require_script`], [`download`], [`execute`]), and
//! [`run`], which goes through them in `tagstrap run`'s order. `run` keeps
//! the facts of the run in a [`RunRecord`] (the report's own type: the
//! report is built from it at the end, and `report`, below, never imports a
//! stage), filled from what each stage returns, and hands it back by value
//! with the outcome. `plan`, `tags` and `doctor` call the same stages.
//!
//! - `collect`: the tags, layer by layer, and what the cloud source said.
//! - `prepare`: the agent tags, the proxy's login, the proxy environment,
//!   the script's environment and `--write-env`.
//! - `once`: `--once`'s instance ID and decision.
//! - `script`: the script tag, its download, its run and the outcome.
//!
//! Layer: pipeline. It may import run and report, the download, the proxy
//! environment, settings, credentials, tags, the state directory, signals
//! and the toolkit; only `commands` imports it.

mod collect;
mod once;
mod prepare;
mod script;

pub(crate) use self::collect::{collect_tags, Collected};
pub(crate) use self::prepare::{prepare, script_env_of, Prepared};
pub(crate) use self::script::require_script;

use std::path::PathBuf;

use self::once::Once;
use self::prepare::{prepare_until, write_env};
use self::script::{download, execute};
use crate::error::Result;
use crate::fetch;
use crate::proxy::{ScriptEnv, ScriptEnvRule};
use crate::report::{ReportProxy, ReportScript, ReportScriptEnv, ReportTag, RunRecord};
use crate::settings::Settings;
use crate::state::StateDir;
use crate::stop::{Stage, Stop};
use crate::tags::agent::ScriptTag;
use crate::tags::TagSet;

/// `tagstrap run`'s stages in order, `record` extended with what each one
/// returns; the record comes back with the outcome: the script's exit code,
/// `None` when `--once` finds the script already ran on this instance, or
/// the error that stopped the run. Every stage before the script is
/// cancelled by a signal (its error is 128+N); the script itself is stopped
/// by passing the signal on.
pub(crate) async fn run(
    settings: &Settings,
    rule: &ScriptEnvRule,
    state: &StateDir,
    stop: &Stop,
    mut record: RunRecord,
) -> (RunRecord, Result<Option<i32>>) {
    let outcome = async {
        let collected = stop.unless(Stage::Tags, collect_tags(settings)).await?;
        record.tags = recorded_tags(&collected.tags);
        let from_cloud = collected
            .instance
            .as_ref()
            .and_then(|i| i.instance_id.clone());
        record.instance_id = from_cloud.clone();
        record.instance = collected.instance.clone();
        let marker = match once::decide(settings, state, from_cloud)? {
            Once::Off => None,
            Once::Run { id, marker } => {
                record.instance_id = Some(id);
                Some(marker)
            }
            Once::AlreadyRan => {
                // `--write-env` still: later boot stages read the file on
                // every boot, and the password may have been rotated since.
                if let Some(path) = &settings.write_env {
                    let prepared = prepare_until(settings, &collected.tags, stop).await?;
                    write_env(path, &prepared.env)?;
                }
                return Ok(None);
            }
        };

        let prepared = prepare_until(settings, &collected.tags, stop).await?;
        prepared.env.log_no_proxy_warnings();
        if let Some(path) = &settings.write_env {
            write_env(path, &prepared.env)?;
            record.env_file = Some(path.display().to_string());
        }
        let script_env = script_env_of(rule, &prepared.env);
        record_prepared(&mut record, &prepared, &script_env);
        let script = require_script(&prepared.agent, &collected)?;
        let (shown, outcome) = script_stages(
            settings,
            state,
            &prepared,
            script,
            &script_env,
            marker,
            stop,
        )
        .await;
        record.script = Some(shown);
        outcome.map(Some)
    }
    .await;
    (record, outcome)
}

/// Download, execute, conclude: the script's part of the record (its
/// tries also when the download failed; how it ran once it did) with the
/// outcome.
async fn script_stages(
    settings: &Settings,
    state: &StateDir,
    prepared: &Prepared,
    script: &ScriptTag,
    script_env: &ScriptEnv,
    marker: Option<PathBuf>,
    stop: &Stop,
) -> (ReportScript, Result<i32>) {
    let mut shown = ReportScript {
        url: script.shown(),
        tag: script.key.to_string(),
        ..ReportScript::default()
    };
    let (tries, downloaded) = download(settings, state, prepared, script, stop).await;
    shown.download = tries;
    let downloaded = match downloaded {
        Ok(downloaded) => downloaded,
        Err(error) => return (shown, Err(error)),
    };
    shown.route = Some(downloaded.route.clone());
    shown.bytes = Some(downloaded.bytes);
    shown.sha256 = Some(fetch::hex(&downloaded.sha256));
    if let Some(signal) = stop.received() {
        // Came after the download: the script is not started at all.
        return (shown, Err(Stage::Download.stopped(signal)));
    }
    let ran = match execute(&downloaded, script_env, stop).await {
        Ok(ran) => ran,
        Err(error) => return (shown, Err(error)),
    };
    shown.run_seconds = Some(ran.seconds);
    shown.exit_code = Some(ran.code);
    shown.killed = ran.killed;
    (shown, ran.conclude(&downloaded, marker.as_deref()))
}

/// The tags as the report shows them: values redacted as `tags` shows them.
fn recorded_tags(set: &TagSet) -> Vec<ReportTag> {
    set.entries()
        .map(|e| ReportTag {
            key: e.tag.key.clone(),
            value: e.tag.shown_value(),
            origin: e.tag.origin.to_string(),
        })
        .collect()
}

/// The decided proxy, no-proxy list, credential names and script
/// environment (names only), for the record.
fn record_prepared(record: &mut RunRecord, prepared: &Prepared, script_env: &ScriptEnv) {
    record.proxy = prepared.env.proxy.as_ref().map(|p| ReportProxy {
        url: p.url.without_credentials(),
        source: p.source.to_string(),
    });
    record.no_proxy = prepared
        .env
        .proxy
        .as_ref()
        .map(|_| prepared.env.no_proxy.env_value());
    record.credentials = prepared.env.credential_refs();
    record.script_env = Some(ReportScriptEnv {
        removed: script_env.removed_names(),
        kept: script_env.kept_names(),
        set: script_env.set_names(),
    });
}
