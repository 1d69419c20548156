//! The state directory: the downloaded script, the last-run report and the
//! `--once` markers. Every file and directory tagstrap creates is private
//! (files 0600, or 0700 for the script; directories 0700), and this module is
//! the only place that creates them.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A relative path is made absolute now, so the script's path stays
    /// right whatever directory the script changes to.
    pub fn new(root: PathBuf) -> StateDir {
        let root = std::path::absolute(&root).unwrap_or(root);
        StateDir { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory (0700) if it does not exist. An existing
    /// directory keeps its mode: `--state-dir` may name a shared place, and
    /// what tagstrap puts in it is private anyway.
    pub fn ensure(&self) -> Result<()> {
        create_private_dir(&self.root)
    }

    /// A private subdirectory, created (or made private again) on demand.
    fn subdir(&self, name: &str) -> Result<PathBuf> {
        self.ensure()?;
        let dir = self.root.join(name);
        create_private_dir(&dir)?;
        set_mode(&dir, 0o700)?;
        Ok(dir)
    }

    /// Where the script is streamed to while it downloads, and where it is
    /// moved once complete and verified.
    pub fn script_paths(&self, windows: bool) -> Result<(PathBuf, PathBuf)> {
        let dir = self.subdir("script")?;
        // PowerShell's -File wants a .ps1 name.
        let name = if windows { "install.ps1" } else { "install" };
        Ok((dir.join(format!("{name}.partial")), dir.join(name)))
    }

    pub fn report_path(&self) -> PathBuf {
        self.root.join("last-run.json")
    }

    pub fn marker_path(&self, instance_id: &str) -> Result<PathBuf> {
        let safe: String = instance_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(self.subdir("once")?.join(safe))
    }
}

/// Creates a directory (and its parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| cant_create(dir, &e))
}

fn cant_create(path: &Path, e: &std::io::Error) -> Error {
    Error::CantCreate(format!(
        "cannot write {}: {e}; point --state-dir at a writable directory",
        path.display()
    ))
}

#[cfg_attr(not(unix), allow(unused_variables))]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| cant_create(path, &e))?;
    }
    Ok(())
}

/// Creates (truncating) a private file for writing. `executable` gives 0700,
/// otherwise 0600. The mode is set at creation, so the file is never readable
/// by others, not even for an instant.
pub fn create_private_file(path: &Path, executable: bool) -> Result<File> {
    let mode = if executable { 0o700 } else { 0o600 };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let file = options.open(path).map_err(|e| cant_create(path, &e))?;
    // A file left by an earlier run keeps its old mode on open: set it again.
    set_mode(path, mode)?;
    Ok(file)
}

/// Writes a whole private (0600) file atomically: a reader sees the old
/// content or the new, never half of it.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = create_private_file(&temporary, false)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| cant_create(&temporary, &e))?;
    fs::rename(&temporary, path).map_err(|e| cant_create(path, &e))
}

/// [`write_private`] for a file the operator named outside the state
/// directory, `flag` naming the setting in the error.
pub fn write_private_named(path: &Path, bytes: &[u8], flag: &str) -> Result<()> {
    write_private(path, bytes).map_err(|_| {
        let why = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                format!("its directory {} does not exist", dir.display())
            }
            _ => "it is not writable here".to_string(),
        };
        Error::CantCreate(format!(
            "cannot write {flag} {}: {why}; point {flag} at a writable place",
            path.display()
        ))
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn everything_created_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let (partial, _) = state.script_paths(false).unwrap();
        assert_eq!(mode(state.root()), 0o700);
        assert_eq!(mode(partial.parent().unwrap()), 0o700);
        create_private_file(&partial, true).unwrap();
        assert_eq!(mode(&partial), 0o700);
        write_private(&state.report_path(), b"{}").unwrap();
        assert_eq!(mode(&state.report_path()), 0o600);
        let marker = state.marker_path("i-0abc/../x").unwrap();
        assert_eq!(marker.file_name().unwrap(), "i-0abc_.._x");
        assert_eq!(mode(marker.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_file_left_with_a_wide_mode_is_made_private_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        create_private_file(&path, false).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn an_unwritable_state_dir_is_exit_73() {
        let err = StateDir::new("/proc/tagstrap-cannot-exist".into())
            .ensure()
            .unwrap_err();
        assert_eq!(err.exit_code(), 73);
        assert!(err.message().contains("--state-dir"), "{err}");
    }
}
