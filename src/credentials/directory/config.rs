//! The directory store's settings: its `[directory] path` and
//! `TAGSTRAP_CREDENTIALS_DIR`, else systemd's `$CREDENTIALS_DIRECTORY`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::credentials::config::StoreEnv;
use crate::util::setting::pick;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFile {
    path: Option<PathBuf>,
}

/// The credentials directory, and where it was named.
pub(crate) fn directory_settings(
    file: DirectoryFile,
    env: &StoreEnv,
    systemd_dir: Option<PathBuf>,
    relative: &dyn Fn(PathBuf) -> PathBuf,
    config: &Path,
) -> Option<(PathBuf, String)> {
    pick(
        None,
        "",
        env.secret("TAGSTRAP_CREDENTIALS_DIR").map(PathBuf::from),
        "TAGSTRAP_CREDENTIALS_DIR",
        file.path.map(relative),
        "[directory] path",
        config,
    )
    .map(|found| (found.value, found.from))
    .or_else(|| systemd_dir.map(|d| (d, "$CREDENTIALS_DIRECTORY".to_string())))
}
