//! The state directory (SPEC §7, §8): the downloaded script, the last-run
//! report, the `--once` markers, and any file a run keeps between runs (a
//! lock). This module is the only place that creates them, and the place
//! that decides the directory is tagstrap's alone.
//!
//! The directory holds what runs as root, so it must be tagstrap's alone:
//! created 0700 when missing, and otherwise refused (exit 73, naming the
//! fix) when it, or `script/` or `once/` inside it, is a symbolic link, is
//! owned by another user, or is writable by group or others. The directories
//! above it are checked too, as OpenSSH's `StrictModes` and sudo check them:
//! each owned by root or tagstrap's user and not writable by group or others
//! unless sticky (`/tmp` is fine). Without that, a private state directory
//! inside a directory another user can write could be renamed away and
//! replaced by his own between tagstrap's check and its use. Once all that
//! holds, nobody but root can change what a path in the directory names, so
//! the files in it are then opened by path.
//!
//! Every file is created new (never through a link, never reusing a file
//! found at the name) with its final mode, written, synced where it matters,
//! and renamed into place: see [`crate::util::fs`]. The `--write-env` file,
//! outside the state directory, follows the same rules for its directory.
//!
//! Layer: the state directory (with `lock`). It may import `stop` and the
//! toolkit.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::util::fs::{self as safe, DirError, Unsafe};
use crate::util::text::shown_path;

/// Longest marker file name kept as the instance ID itself; a longer ID is
/// hashed. `NAME_MAX` is 255 bytes on Linux's file systems.
const MAX_MARKER_NAME: usize = 255;

#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A relative path is made absolute now, so the script's path stays
    /// right whatever directory the script changes to.
    pub(crate) fn new(root: PathBuf) -> StateDir {
        let root = std::path::absolute(&root).unwrap_or(root);
        StateDir { root }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory (0700, parents too) if it does not exist, then
    /// checks that it is tagstrap's alone (see the module's text).
    pub(crate) fn ensure(&self) -> Result<()> {
        safe::create_dir_all_private(&self.root).map_err(|e| cant_create(&self.root, &e))?;
        check(&self.root, "the state directory", "--state-dir")
    }

    /// A private subdirectory, created 0700 when missing and checked like
    /// the state directory itself otherwise (never made private by a chmod,
    /// which would follow a link).
    fn subdir(&self, name: &str) -> Result<PathBuf> {
        self.ensure()?;
        let dir = self.root.join(name);
        match safe::create_dir_new(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(cant_create(&dir, &e)),
        }
        let what = format!("{name}/ in the state directory");
        match safe::check_private_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) => Err(refused(e, &what, "--state-dir")),
        }
    }

    /// Where the script is streamed to while it downloads (a new name nobody
    /// can predict, for each call), and where it is renamed to once complete
    /// and verified. Both are in `script/`, which only tagstrap's user can
    /// write, so nobody can change the script between its hash check and
    /// its start.
    ///
    /// Partial downloads found there are removed first: only `run` asks for
    /// these paths, and it holds the state directory's lock, so a partial
    /// file is one a killed run (SIGKILL, a power cut) left behind, and
    /// nobody is still writing it.
    pub(crate) fn script_paths(&self, windows: bool) -> Result<(PathBuf, PathBuf)> {
        let dir = self.subdir("script")?;
        remove_stale_partials(&dir);
        // PowerShell's -File wants a .ps1 name.
        let name = if windows { "install.ps1" } else { "install" };
        Ok((
            safe::unpredictable_name(&dir, name, ".partial"),
            dir.join(name),
        ))
    }

    pub(crate) fn report_path(&self) -> PathBuf {
        self.root.join("last-run.json")
    }

    /// The marker of `--once` for this instance ID, in `once/`. See
    /// [`marker_name`] for how an ID becomes a file name.
    pub(crate) fn marker_path(&self, instance_id: &str) -> Result<PathBuf> {
        Ok(self.subdir("once")?.join(marker_name(instance_id)))
    }

    /// Opens (creating it, 0600, when missing) a file of the state directory
    /// that lives on between runs, such as the lock file: after the directory
    /// is checked, never through a link, and only a regular file of
    /// tagstrap's user with a single link. `what` names it in messages ("the
    /// lock file"); one that is none of that was put there by someone else.
    pub(crate) fn open_private(&self, name: &str, what: &str) -> Result<File> {
        self.ensure()?;
        let path = self.root.join(name);
        safe::open_or_create_private(&path, 0o600).map_err(|e| {
            let planted = |how: &str| {
                Error::CantCreate(format!(
                    "{what} {} {how}, which tagstrap never makes: someone else has written in \
                     the state directory. Remove it (tagstrap creates it again) and check who \
                     can write in --state-dir",
                    shown_path(&path)
                ))
            };
            #[cfg(unix)]
            if e.raw_os_error() == Some(libc::ELOOP) {
                return planted("is a symbolic link");
            }
            match e.kind() {
                // The checks of open_or_create_private: what the file is.
                io::ErrorKind::Other => planted(&format!("is unusable ({e})")),
                _ => cant_create(&path, &e),
            }
        })
    }
}

/// Removes the partial downloads (`.install.*.partial`) in `dir`, best
/// effort: a leftover that cannot be removed costs only its disk space.
/// `remove_file` removes a link itself, never what it points to.
fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let partial = name.starts_with('.') && name.ends_with(".partial");
        if partial && entry.file_type().is_ok_and(|t| !t.is_dir()) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(
                    "removed {}, a partial download an earlier run left behind",
                    shown_path(&entry.path())
                ),
                Err(e) => tracing::debug!("cannot remove {}: {e}", shown_path(&entry.path())),
            }
        }
    }
}

/// The file name of an instance's marker. An ordinary ID (only
/// `[A-Za-z0-9._-]`, not `.` or `..`) is its own name, as earlier versions
/// wrote it (`once/i-0abc123`), so a marker survives an upgrade. Any other
/// ID is percent-encoded (every byte but `[A-Za-z0-9_-]`, `%` included), so
/// that it can never name another path (`a/b` is `a%2Fb`, `..` is `%2E%2E`)
/// and two IDs never share a marker (`a_b` stays `a_b`): an encoded name
/// always holds a `%`, which an ordinary one never does. A name longer than
/// a file name may be is `+sha256-` and the ID's hash (`+` appears in
/// neither other form).
pub(crate) fn marker_name(instance_id: &str) -> String {
    let ordinary = !instance_id.is_empty()
        && instance_id != "."
        && instance_id != ".."
        && instance_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let name = if ordinary {
        instance_id.to_string()
    } else {
        instance_id
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    if name.is_empty() {
        // The empty ID: a name no other ID encodes to (every `%` of an
        // encoded name is followed by two hex digits).
        return "%".to_string();
    }
    if name.len() <= MAX_MARKER_NAME {
        return name;
    }
    let hash: String = Sha256::digest(instance_id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("+sha256-{hash}")
}

/// Checks `dir` and the directories above it; `what` names it in the error
/// ("the state directory"), `flag` is the setting that chose it.
fn check(dir: &Path, what: &str, flag: &str) -> Result<()> {
    safe::check_ancestors(dir)
        .and_then(|()| safe::check_private_dir(dir))
        .map_err(|e| refused(e, what, flag))
}

/// The one error line for a directory that failed its check: what is wrong,
/// why it matters, and the command that fixes it.
fn refused(error: DirError, what: &str, flag: &str) -> Error {
    match error {
        DirError::Io(path, e) => Error::CantCreate(format!(
            "cannot examine {} ({what}): {e}; point {flag} at a directory tagstrap can use",
            shown_path(&path)
        )),
        DirError::Unsafe(found) => Error::CantCreate(unsafe_message(&found, what, flag)),
    }
}

fn unsafe_message(found: &Unsafe, what: &str, flag: &str) -> String {
    let path = shown_path(&found.path);
    let reason = found.reason();
    let fix = found.fix();
    if found.ancestor {
        format!(
            "{what} is inside {path}, which {reason}, so another user could move it away and put \
             his own in its place: {fix}, or point {flag} elsewhere"
        )
    } else {
        format!(
            "{what} {path} {reason}, so it is not tagstrap's alone and another user could change \
             what tagstrap writes or runs there as root: {fix}, or point {flag} at a directory \
             only tagstrap's user can write"
        )
    }
}

fn cant_create(path: &Path, e: &io::Error) -> Error {
    Error::CantCreate(format!(
        "cannot write {}: {e}; point --state-dir at a writable directory",
        shown_path(path)
    ))
}

/// Creates a new private file for writing, replacing what an earlier try
/// left at `path` (never following it): 0700 when `executable`, else 0600,
/// from the first instant. `path` must be in a directory tagstrap checked
/// ([`StateDir::script_paths`]).
pub(crate) fn create_private_file(path: &Path, executable: bool) -> Result<File> {
    let mode = if executable { 0o700 } else { 0o600 };
    safe::recreate(path, mode).map_err(|e| cant_create(path, &e))
}

/// Writes a whole private (0600) file atomically: a reader sees the old
/// content or the new, never half of it, and a link at `path` is replaced,
/// never written through. `path` must be in a directory tagstrap checked
/// ([`StateDir::report_path`], [`StateDir::marker_path`]).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    safe::write_atomic(path, bytes, 0o600).map_err(|e| cant_create(path, &e))
}

/// [`write_private`] for a file the operator named outside the state
/// directory, `flag` naming the setting in the error. Its directory must
/// exist and pass the state directory's checks (ours alone, and safe
/// directories above it): the file holds the proxy password.
pub(crate) fn write_private_named(path: &Path, bytes: &[u8], flag: &str) -> Result<()> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = safe::parent_dir(&path);
    let shown = shown_path(&path);
    if !dir.is_dir() {
        return Err(Error::CantCreate(format!(
            "cannot write {flag} {shown}: its directory {} does not exist; point {flag} at a \
             writable place",
            shown_path(&dir)
        )));
    }
    check(&dir, &format!("{flag} {shown}: its directory"), flag)?;
    safe::write_atomic(&path, bytes, 0o600).map_err(|e| {
        Error::CantCreate(format!(
            "cannot write {flag} {shown}: {e}; point {flag} at a writable place"
        ))
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn partial_downloads_a_killed_run_left_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let (first, script) = state.script_paths(false).unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        fs::write(&first, "half a script").unwrap();
        fs::write(&script, "#!/bin/sh\n").unwrap();
        let scripts = script.parent().unwrap();
        let link = scripts.join(".install.0000000000000000.partial");
        symlink(&victim, &link).unwrap();
        fs::write(scripts.join("notes"), "kept").unwrap();

        let (second, _) = state.script_paths(false).unwrap();
        assert_ne!(first, second);
        assert!(!first.exists(), "the stale partial is gone");
        assert!(
            fs::symlink_metadata(&link).is_err(),
            "a link is removed itself"
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(script.exists() && scripts.join("notes").exists());
    }

    #[test]
    fn everything_created_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let (partial, script) = state.script_paths(false).unwrap();
        assert_eq!(mode(state.root()), 0o700);
        assert_eq!(mode(partial.parent().unwrap()), 0o700);
        assert_eq!(script, state.root().join("script/install"));
        assert_ne!(
            partial,
            state.script_paths(false).unwrap().0,
            "unpredictable"
        );
        create_private_file(&partial, true).unwrap();
        assert_eq!(mode(&partial), 0o700);
        write_private(&state.report_path(), b"{}").unwrap();
        assert_eq!(mode(&state.report_path()), 0o600);
        let marker = state.marker_path("i-0abc").unwrap();
        assert_eq!(marker, state.root().join("once/i-0abc"));
        assert_eq!(mode(marker.parent().unwrap()), 0o700);
        let lock = state.open_private("run.lock", "the lock file").unwrap();
        drop(lock);
        assert_eq!(mode(&state.root().join("run.lock")), 0o600);
    }

    #[test]
    fn a_file_left_by_an_earlier_try_is_replaced_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "old").unwrap();
        chmod(&path, 0o666);
        create_private_file(&path, false).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn marker_names_never_name_another_path_and_never_collide() {
        // Ordinary IDs keep the name earlier versions gave them.
        for id in ["i-0abc123", "0123456789abcdef", "a_b", "a.b", "...", "a..b"] {
            assert_eq!(marker_name(id), id);
        }
        assert_eq!(marker_name(""), "%");
        assert_eq!(marker_name("."), "%2E");
        assert_eq!(marker_name(".."), "%2E%2E");
        assert_eq!(marker_name("a/b"), "a%2Fb");
        assert_eq!(marker_name("a%2Fb"), "a%252Fb");
        assert_eq!(marker_name("i-0abc/../x"), "i-0abc%2F%2E%2E%2Fx");
        assert_eq!(marker_name("é"), "%C3%A9");
        let long = "x".repeat(300);
        let hashed = marker_name(&long);
        assert!(
            hashed.starts_with("+sha256-") && hashed.len() == 72,
            "{hashed}"
        );
        assert_ne!(marker_name(&"y".repeat(300)), hashed);
        assert_eq!(marker_name(&"x".repeat(255)), "x".repeat(255));
        assert!(marker_name(&"/".repeat(100)).starts_with("+sha256-"));

        let ids = [
            "", "a/b", "a_b", "a%2Fb", "a%2fb", ".", "..", "%2E", "a b", "a\nb", "a\\b", "/", "%",
            "+",
        ];
        let names: std::collections::HashSet<String> = ids.iter().map(|i| marker_name(i)).collect();
        assert_eq!(names.len(), ids.len(), "{names:?}");
        for name in &names {
            assert!(!name.contains('/') && name != "." && name != "..", "{name}");
        }
    }

    #[test]
    fn a_state_dir_others_can_write_or_a_link_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        fs::create_dir(&root).unwrap();
        chmod(&root, 0o1777);
        let err = StateDir::new(root.clone()).ensure().unwrap_err();
        assert_eq!(err.exit_code(), 73);
        assert!(
            err.message().contains("(mode 1777)")
                && err
                    .message()
                    .contains(&format!("chmod 700 {}", root.display())),
            "{err}"
        );
        chmod(&root, 0o700);

        let link = dir.path().join("link");
        symlink(&root, &link).unwrap();
        let err = StateDir::new(link).ensure().unwrap_err();
        assert!(err.message().contains("is a symbolic link"), "{err}");

        // script/ a link to a directory elsewhere: refused, nothing created
        // there and its mode untouched.
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        chmod(&elsewhere, 0o755);
        symlink(&elsewhere, root.join("script")).unwrap();
        let err = StateDir::new(root.clone()).script_paths(false).unwrap_err();
        assert_eq!(err.exit_code(), 73);
        assert!(
            err.message().starts_with("script/ in the state directory"),
            "{err}"
        );
        assert_eq!(mode(&elsewhere), 0o755);
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

        fs::create_dir(root.join("once")).unwrap();
        chmod(&root.join("once"), 0o770);
        let err = StateDir::new(root).marker_path("i-1").unwrap_err();
        assert!(err.message().contains("chmod 700"), "{err}");
    }

    #[test]
    fn a_state_dir_inside_a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let err = StateDir::new(open.join("state")).ensure().unwrap_err();
        assert_eq!(err.exit_code(), 73);
        assert!(
            err.message()
                .contains(&format!("inside {}, which is writable", open.display())),
            "{err}"
        );
        chmod(&open, 0o1777);
        StateDir::new(open.join("state")).ensure().unwrap();
    }

    #[test]
    fn an_unwritable_state_dir_is_exit_73() {
        let err = StateDir::new("/proc/tagstrap-cannot-exist".into())
            .ensure()
            .unwrap_err();
        assert_eq!(err.exit_code(), 73);
        assert!(err.message().contains("--state-dir"), "{err}");
    }

    #[test]
    fn the_write_env_directory_must_be_ours_alone() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o1777);
        let err = write_private_named(&shared.join("proxy.env"), b"x", "--write-env").unwrap_err();
        assert_eq!(err.exit_code(), 73);
        assert!(
            err.message().contains("--write-env") && err.message().contains("chmod 700"),
            "{err}"
        );
        assert!(!shared.join("proxy.env").exists());
        let err = write_private_named(&dir.path().join("none/proxy.env"), b"x", "--write-env")
            .unwrap_err();
        assert!(err.message().contains("does not exist"), "{err}");
        let ok = dir.path().join("proxy.env");
        write_private_named(&ok, b"x", "--write-env").unwrap();
        assert_eq!(mode(&ok), 0o600);
    }
}
