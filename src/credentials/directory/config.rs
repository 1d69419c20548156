//! The directory store's settings: its `[directory] path` and
//! `TAGSTRAP_CREDENTIALS_DIR`, else systemd's `$CREDENTIALS_DIRECTORY`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::credentials::config::StoreEnv;
use crate::util::setting::{pick, Setting};

pub(crate) const PATH: Setting =
    Setting::var_and_key("[directory] path", "TAGSTRAP_CREDENTIALS_DIR");
/// systemd's, read last: a unit's `LoadCredential=` directory.
pub(crate) const SYSTEMD: Setting =
    Setting::var_only("credentials_directory", "CREDENTIALS_DIRECTORY");

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectoryFile {
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
    let var = env.secret(PATH.var_name()).map(PathBuf::from);
    pick(&PATH, None, var, file.path.map(relative), config)
        .map(|found| (found.value, found.from))
        .or_else(|| systemd_dir.map(|d| (d, format!("${}", SYSTEMD.var_name()))))
}
