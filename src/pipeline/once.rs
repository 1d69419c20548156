//! `--once`: the instance ID it keys on, and its decision (run, and mark the
//! instance after a success; or nothing to do, the script already ran).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::settings::Settings;
use crate::state::StateDir;
use crate::util::text::{shown, shown_path};

/// What `--once` decided.
pub(crate) enum Once {
    /// Not `--once`: run, mark nothing.
    Off,
    /// Run on instance `id`, and write `marker` after a success.
    Run { id: String, marker: PathBuf },
    /// The script already ran on this instance.
    AlreadyRan,
}

/// `--once`'s decision, from the cloud's instance ID when it gave one.
pub(crate) fn decide(
    settings: &Settings,
    state: &StateDir,
    from_cloud: Option<String>,
) -> Result<Once> {
    if !settings.once {
        return Ok(Once::Off);
    }
    let id = instance_id(settings, from_cloud)?;
    let marker = state.marker_path(&id)?;
    if !marker.exists() {
        return Ok(Once::Run { id, marker });
    }
    tracing::info!(instance_id = %shown(&id), "--once: the script already ran on instance {} (marker {}); nothing to do", shown(&id), shown_path(&marker));
    Ok(Once::AlreadyRan)
}

/// The instance ID for `--once`: the cloud's, else the flag's, else
/// cloud-init's, else the machine ID. An empty one is no ID: the cloud's is
/// skipped for the next source, the flag's is a bad command line (any other
/// ID, `..` or `a/b` included, is safe: `state::marker_name` encodes it).
fn instance_id(settings: &Settings, from_cloud: Option<String>) -> Result<String> {
    // An instance ID file (cloud-init's, the machine ID) is one short line.
    const MAX_ID_FILE_BYTES: u64 = 4096;
    let from_file = |path: &str| {
        crate::util::fs::read_small_text(Path::new(path), MAX_ID_FILE_BYTES, "instance ID file")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let from_cloud = from_cloud.filter(|id| !id.is_empty());
    if from_cloud.is_none() && settings.instance_id.as_deref() == Some("") {
        return Err(Error::Usage(
            "--once: the instance ID given (--instance-id, $TAGSTRAP_INSTANCE_ID or instance_id \
             in the config file) is empty: give a non-empty ID, or none to use cloud-init's or \
             the machine ID"
                .into(),
        ));
    }
    from_cloud
        .or_else(|| settings.instance_id.clone())
        .or_else(|| from_file("/var/lib/cloud/data/instance-id"))
        .or_else(|| from_file("/etc/machine-id"))
        .ok_or_else(|| {
            Error::Usage(
                "--once needs an instance ID, and none was found (no cloud source, no cloud-init \
                 instance-id, no /etc/machine-id): pass --instance-id"
                    .into(),
            )
        })
}
