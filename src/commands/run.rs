//! `tagstrap run`: the pipeline under the state directory's lock, stopped
//! by a signal only in good order (SPEC §8), and the report written from the
//! run's record whatever the outcome.

use crate::error::Result;
use crate::pipeline;
use crate::proxy::ScriptEnvRule;
use crate::report::{Report, RunRecord};
use crate::settings::Settings;
use crate::state::StateDir;
use crate::stop::Stop;

/// One run at a time per state directory: the lock is taken before
/// anything is read and released once the report is written. No report
/// when the lock is not had (`last-run.json` is the holder's), nor when
/// `--once` finds nothing to do.
pub(super) async fn run(settings: &Settings, rule: &ScriptEnvRule, stop: Stop) -> Result<i32> {
    let state = StateDir::new(settings.state_dir.clone());
    let record = RunRecord::start();
    let lock = crate::lock::acquire(&state, settings.deadline, &record.started_at, &stop).await?;
    let (record, outcome) = pipeline::run(settings, rule, &state, &stop, record).await;
    let outcome = match outcome {
        Ok(Some(code)) => Ok(code),
        Ok(None) => return Ok(0),
        Err(error) => Err(error),
    };
    Report::finish(record, outcome.as_ref().copied()).write(&state);
    drop(lock);
    outcome
}
