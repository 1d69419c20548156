//! Files, the safe way: how tagstrap opens a file it reads, creates a file it
//! writes, replaces a file atomically, and decides whether a directory is
//! private enough to hold what it runs as root (SPEC §8). Every other module
//! goes through these functions instead of `std::fs::File::open` and
//! `OpenOptions`, so each rule is written once:
//!
//! - **Inputs** must be regular files. A FIFO named as a tags file would block
//!   `open` itself (it waits for a writer) and then `read` (it waits for data),
//!   outside any `--deadline`; a device or socket is never what an operator
//!   meant. So an input is opened with `O_NONBLOCK` (which keeps `open` from
//!   waiting on a FIFO), checked with `fstat` on the open descriptor, and
//!   refused by name when it is not regular. A symbolic link to a regular file
//!   is fine: operators link configs into place, and the file read is the one
//!   `fstat` saw.
//! - **Outputs** are created new (`O_CREAT|O_EXCL|O_NOFOLLOW`), with their
//!   final mode given at creation, never opened through a symbolic link and
//!   never reused: a file or link someone else put at the name makes the
//!   create fail instead of being written through. Whole files are written to
//!   a temporary file of an unpredictable name in the same directory, synced
//!   and renamed into place, so a reader sees the old content or the new and a
//!   link at the final name is replaced, not followed.
//! - **Directories** that hold what tagstrap writes must be its alone: owned
//!   by its effective user, writable by nobody else, not a symbolic link. And
//!   every directory above one must keep others from renaming it away: owned
//!   by root or tagstrap's user, and not writable by group or others unless
//!   sticky (as `/tmp` is), the rule of OpenSSH's `StrictModes` and of sudo.
//!   Once a directory passes, nobody but root and tagstrap's user can change
//!   what a path inside it names, so the checks on the path hold for the
//!   operations on it that follow.
//!
//! On Windows files have ACLs, not mode bits, and the state directory inherits
//! those of `%ProgramData%` (writable by administrators only): the ownership
//! checks are no-ops there, and files are created new and renamed the same way.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::util::text::shown_path;

/// What a path names when it is not what was expected, for messages: "a
/// FIFO (named pipe)", "a directory", …
pub(crate) fn kind_of(file_type: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
    }
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Why an input file could not be opened.
#[derive(Debug)]
pub(crate) enum InputError {
    /// `open` (or `fstat`) failed: missing, permission denied, …
    Io(io::Error),
    /// The path names something other than a regular file: what it is.
    NotRegular(fs::FileType),
}

impl InputError {
    /// For a path that is not a regular file: what it is, as [`kind_of`]
    /// names it.
    #[cfg(test)]
    pub(crate) fn not_regular(&self) -> Option<&'static str> {
        match self {
            InputError::NotRegular(file_type) => Some(kind_of(file_type)),
            InputError::Io(_) => None,
        }
    }

    pub(crate) fn is_directory(&self) -> bool {
        matches!(self, InputError::NotRegular(t) if t.is_dir())
    }

    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, InputError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }

    pub(crate) fn is_permission_denied(&self) -> bool {
        matches!(self, InputError::Io(e) if e.kind() == io::ErrorKind::PermissionDenied)
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Io(e) => write!(f, "{e}"),
            InputError::NotRegular(file_type) => write!(
                f,
                "it is {}, not a regular file (tagstrap reads only regular files, which \
                 cannot block it)",
                kind_of(file_type)
            ),
        }
    }
}

/// Opens a file tagstrap reads, refusing anything but a regular file (see
/// the module's text). Symbolic links are followed: what counts is what the
/// open descriptor is.
pub(crate) fn open_input(path: &Path) -> std::result::Result<File, InputError> {
    // Refused before the open when the path already shows it: opening some
    // devices has effects of its own (a tape rewinds, a tty becomes ours).
    if let Ok(meta) = fs::metadata(path) {
        if !meta.is_file() {
            return Err(InputError::NotRegular(meta.file_type()));
        }
    }
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO swapped in after the check above must not make
        // `open` wait for a writer. O_NOCTTY: a terminal never becomes ours.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path).map_err(InputError::Io)?;
    // The descriptor is the authority: the path may have changed since.
    let meta = file.metadata().map_err(InputError::Io)?;
    if !meta.is_file() {
        return Err(InputError::NotRegular(meta.file_type()));
    }
    #[cfg(unix)]
    clear_nonblocking(&file).map_err(InputError::Io)?;
    Ok(file)
}

/// Linux ignores `O_NONBLOCK` on a regular file, but not every system need:
/// reads of an input are plain blocking reads everywhere.
#[cfg(unix)]
fn clear_nonblocking(file: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function's caller owns and keeps
    // open; F_GETFL/F_SETFL touch only its status flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads at most `max + 1` bytes of `file`: a result longer than `max` means
/// the file is too large, without reading all of it.
pub(crate) fn read_bounded(file: File, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a small UTF-8 file an operator named (a tags file, the config
/// file), refusing one that is too large, not text, or not a regular file.
/// A missing file is "not found" (66: a typo in a path is not malformed
/// input); anything else is bad input (65). `what` names the file in
/// messages ("tags file").
pub(crate) fn read_small_text(path: &Path, max: u64, what: &str) -> Result<String> {
    let shown = shown_path(path);
    let file = open_input(path).map_err(|e| match e {
        e if e.is_not_found() => {
            Error::NotFound(format!("{what} {shown} does not exist: check the path"))
        }
        InputError::NotRegular(file_type) => Error::Input(format!(
            "{what} {shown} is {}, not a regular file: tagstrap reads only regular files \
             (a FIFO or device could block the boot); point it at the file itself",
            kind_of(&file_type)
        )),
        e => Error::Input(format!("cannot read {what} {shown}: {e}")),
    })?;
    let bytes = read_bounded(file, max)
        .map_err(|e| Error::Input(format!("cannot read {what} {shown}: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(Error::Input(format!(
            "{what} {shown} is larger than {max} bytes: is it the right file?"
        )));
    }
    String::from_utf8(bytes).map_err(|_| Error::Input(format!("{what} {shown} is not UTF-8 text")))
}

/// Creates the file `path`, which must not exist in any form (not even as a
/// dangling symbolic link), with `mode` (0600, or 0700 for a script) from
/// the first instant. Nothing is ever written through a link, and a file
/// someone else prepared at the name is never reused.
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_EXCL already refuses a link at the name; O_NOFOLLOW says so
        // twice, for file systems that would not.
        options.mode(mode).custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path)?;
    // The umask can only have removed bits, but the mode is the contract:
    // set it exactly, on the descriptor.
    set_mode(&file, mode)?;
    Ok(file)
}

/// Replaces whatever tagstrap left at `path` (a temporary file of a try
/// that failed), never following it, and creates the file new as
/// [`create_new`] does. A name someone else re-creates in between makes the
/// create fail; it is never written through.
pub(crate) fn recreate(path: &Path, mode: u32) -> io::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_new(path, mode)
}

/// A name in `dir` that nobody can predict: `.{stem}.{16 hex digits}{suffix}`.
pub(crate) fn unpredictable_name(dir: &Path, stem: &str, suffix: &str) -> PathBuf {
    dir.join(format!(".{stem}.{:016x}{suffix}", rand::random::<u64>()))
}

/// Creates a new file of an unpredictable name in `dir` (see
/// [`create_new`]), and returns it with its path.
pub(crate) fn create_unpredictable(
    dir: &Path,
    stem: &str,
    mode: u32,
) -> io::Result<(File, PathBuf)> {
    // Another file at a random 64-bit name is someone guessing, or a bug;
    // a few tries are plenty.
    let mut last = None;
    for _ in 0..8 {
        let path = unpredictable_name(dir, stem, ".tmp");
        match create_new(&path, mode) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
}

/// Writes `bytes` to `path` atomically with `mode`: into a new temporary
/// file of an unpredictable name in the same directory, synced, renamed
/// over `path` (a symbolic link there is replaced, never followed), and the
/// directory synced, so that after a crash the file holds the old content
/// or the new.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let (mut file, temporary) = create_unpredictable(&dir, "tagstrap", mode)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            fs::rename(&temporary, path)
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    sync_dir(&dir)
}

/// Opens `path` for reading and writing, creating it (with `mode`) when it
/// does not exist, for a file that lives on between runs (a lock file).
/// Never through a symbolic link; the file found must be a regular file of
/// tagstrap's user with one link (a hard link to another file is refused, as
/// it would make this one that one), and gets `mode` again if it had another.
#[cfg_attr(not(unix), allow(unused_variables))]
pub(crate) fn open_or_create_private(path: &Path, mode: u32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        // Opens a symbolic link or junction itself instead of its target
        // (then refused below: it is not a regular file).
        const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(format!(
            "it is {}, not a regular file",
            kind_of(&meta.file_type())
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != effective_uid() {
            return Err(io::Error::other(format!(
                "it is owned by uid {}, not by {}",
                meta.uid(),
                user_name(effective_uid())
            )));
        }
        if meta.nlink() != 1 {
            return Err(io::Error::other(format!(
                "it has {} hard links; tagstrap uses only a file of its own",
                meta.nlink()
            )));
        }
        clear_nonblocking(&file)?;
        if meta.mode() & 0o7777 != mode {
            set_mode(&file, mode)?;
        }
    }
    Ok(file)
}

/// Creates the directory `path` with mode 0700; it must not exist yet (a
/// directory someone else made at the name is never taken for ours).
pub(crate) fn create_dir_new(path: &Path) -> io::Result<()> {
    dir_builder(false).create(path)
}

/// Creates `path` and its missing parents, each with mode 0700. Existing
/// ones are left as they are, for [`check_private_dir`] and
/// [`check_ancestors`] to judge.
pub(crate) fn create_dir_all_private(path: &Path) -> io::Result<()> {
    dir_builder(true).create(path)
}

fn dir_builder(recursive: bool) -> fs::DirBuilder {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(recursive);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
}

/// Makes a rename or a new file in `dir` survive a crash (Unix; Windows has
/// no directory handles to sync).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The directory a file is created in: its parent, or `.` for a bare name.
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg_attr(not(unix), allow(unused_variables))]
fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// The user tagstrap acts as.
#[cfg(unix)]
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// How `chown` names a user: `root`, else the number (which `chown`
/// accepts, and which needs no user database).
pub(crate) fn user_name(uid: u32) -> String {
    if uid == 0 {
        "root".to_string()
    } else {
        format!("uid {uid}")
    }
}

fn chown_name(uid: u32) -> String {
    if uid == 0 {
        "root".to_string()
    } else {
        uid.to_string()
    }
}

/// A directory that is not safe to hold what tagstrap writes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsafe {
    pub(crate) path: PathBuf,
    pub(crate) problem: Problem,
    /// Found above the directory itself (an ancestor), where the rule is
    /// the looser one of [`check_ancestors`].
    pub(crate) ancestor: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
// Found by the Unix checks (owner, mode bits) only.
#[cfg_attr(windows, allow(dead_code))]
pub(crate) enum Problem {
    SymbolicLink,
    /// It is something else: [`kind_of`]'s name.
    NotADirectory(&'static str),
    /// Owned by this uid, which is neither tagstrap's user (nor, for an
    /// ancestor, root).
    Owner {
        uid: u32,
        ours: u32,
    },
    /// Its group or others may write in it (for an ancestor: and it has no
    /// sticky bit); the mode found.
    Writable {
        mode: u32,
    },
}

impl Unsafe {
    /// What is wrong, as the end of a sentence about [`Unsafe::path`]: "is
    /// writable by group and others (mode 1777)".
    pub(crate) fn reason(&self) -> String {
        match &self.problem {
            Problem::SymbolicLink => "is a symbolic link".to_string(),
            Problem::NotADirectory(kind) => format!("is {kind}, not a directory"),
            Problem::Owner { uid, ours } if self.ancestor => format!(
                "is owned by uid {uid}, neither root nor tagstrap's user ({})",
                user_name(*ours)
            ),
            Problem::Owner { uid, ours } => format!(
                "is owned by uid {uid}, not by tagstrap's user ({})",
                user_name(*ours)
            ),
            Problem::Writable { mode } => {
                let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                    (true, true) => "group and others",
                    (true, false) => "its group",
                    _ => "others",
                };
                let sticky = if self.ancestor {
                    " without the sticky bit"
                } else {
                    ""
                };
                format!("is writable by {who}{sticky} (mode {mode:04o})")
            }
        }
    }

    /// The command that makes it safe: `chmod 700 /path`, `chown root /path`…
    pub(crate) fn fix(&self) -> String {
        let path = shown_path(&self.path);
        match &self.problem {
            Problem::SymbolicLink | Problem::NotADirectory(_) => {
                format!("replace it with a directory (mv {path} {path}.old; mkdir -m 700 {path})")
            }
            Problem::Owner { .. } if self.ancestor => format!("chown root {path}"),
            Problem::Owner { ours, .. } => format!("chown {} {path}", chown_name(*ours)),
            Problem::Writable { .. } if self.ancestor => {
                format!("chmod go-w {path} (or chmod +t {path} for a shared directory)")
            }
            Problem::Writable { .. } => format!("chmod 700 {path}"),
        }
    }
}

/// Why a directory check did not pass.
#[derive(Debug)]
#[cfg_attr(windows, allow(dead_code))]
pub(crate) enum DirError {
    /// It could not be examined (missing, permission denied, …).
    Io(PathBuf, io::Error),
    Unsafe(Unsafe),
}

/// Checks that `path` is a directory of tagstrap's alone: not a symbolic
/// link (examined with `lstat`, never followed), owned by tagstrap's
/// effective user, not writable by group or others.
pub(crate) fn check_private_dir(path: &Path) -> std::result::Result<(), DirError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(path).map_err(|e| DirError::Io(path.to_path_buf(), e))?;
        let problem = if meta.file_type().is_symlink() {
            Some(Problem::SymbolicLink)
        } else if !meta.is_dir() {
            Some(Problem::NotADirectory(kind_of(&meta.file_type())))
        } else if meta.uid() != effective_uid() {
            Some(Problem::Owner {
                uid: meta.uid(),
                ours: effective_uid(),
            })
        } else if meta.mode() & 0o022 != 0 {
            Some(Problem::Writable {
                mode: meta.mode() & 0o7777,
            })
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(DirError::Unsafe(Unsafe {
                path: path.to_path_buf(),
                problem,
                ancestor: false,
            }));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Checks every directory above `path`, as written and as it really is
/// (symbolic links resolved): each must be owned by root or tagstrap's
/// user, and not writable by group or others unless it has the sticky bit.
/// Otherwise another user could rename `path` away and put a directory of
/// their own in its place, whatever `path`'s own mode. `path` should be
/// absolute.
pub(crate) fn check_ancestors(path: &Path) -> std::result::Result<(), DirError> {
    #[cfg(unix)]
    {
        // As it really is (links resolved): the directories a link leads
        // through, named by their real names.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let real =
                fs::canonicalize(parent).map_err(|e| DirError::Io(parent.to_path_buf(), e))?;
            for dir in real.ancestors() {
                let meta =
                    fs::symlink_metadata(dir).map_err(|e| DirError::Io(dir.to_path_buf(), e))?;
                check_ancestor(dir, &meta)?;
            }
        }
        // As written: adds the directories that hold a link on the way,
        // whoever can write there can point the link elsewhere.
        for dir in path.ancestors().skip(1) {
            if dir.as_os_str().is_empty() {
                continue;
            }
            let meta = fs::metadata(dir).map_err(|e| DirError::Io(dir.to_path_buf(), e))?;
            check_ancestor(dir, &meta)?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(unix)]
fn check_ancestor(dir: &Path, meta: &fs::Metadata) -> std::result::Result<(), DirError> {
    use std::os::unix::fs::MetadataExt;
    let ours = effective_uid();
    let problem = if !meta.is_dir() {
        Some(Problem::NotADirectory(kind_of(&meta.file_type())))
    } else if meta.uid() != 0 && meta.uid() != ours {
        Some(Problem::Owner {
            uid: meta.uid(),
            ours,
        })
    } else if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
        Some(Problem::Writable {
            mode: meta.mode() & 0o7777,
        })
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(DirError::Unsafe(Unsafe {
            path: dir.to_path_buf(),
            problem,
            ancestor: true,
        })),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn an_input_must_be_a_regular_file_and_a_fifo_does_not_block_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let err = open_input(&fifo).unwrap_err();
        assert_eq!(err.not_regular(), Some("a FIFO (named pipe)"), "{err:?}");
        let err = open_input(dir.path()).unwrap_err();
        assert!(err.is_directory(), "{err:?}");
        let err = open_input(Path::new("/dev/null")).unwrap_err();
        assert_eq!(err.not_regular(), Some("a character device"), "{err:?}");
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = open_input(&socket).unwrap_err();
        assert_eq!(err.not_regular(), Some("a socket"), "{err:?}");

        // A link to a FIFO is the FIFO; a link to a file is the file.
        let to_fifo = dir.path().join("to-fifo");
        symlink(&fifo, &to_fifo).unwrap();
        assert!(matches!(
            open_input(&to_fifo).unwrap_err(),
            InputError::NotRegular(_)
        ));
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let to_file = dir.path().join("to-file");
        symlink(&file, &to_file).unwrap();
        let bytes = read_bounded(open_input(&to_file).unwrap(), 10).unwrap();
        assert_eq!(bytes, b"x");
        assert!(open_input(&dir.path().join("none"))
            .unwrap_err()
            .is_not_found());

        let err = read_small_text(&fifo, 10, "tags file").unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert!(err.message().contains("is a FIFO (named pipe)"), "{err}");
    }

    #[test]
    fn small_text_is_bounded_and_must_be_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        fs::write(&path, "12345").unwrap();
        assert_eq!(read_small_text(&path, 5, "t").unwrap(), "12345");
        assert_eq!(read_small_text(&path, 4, "t").unwrap_err().exit_code(), 65);
        fs::write(&path, b"\xff").unwrap();
        let err = read_small_text(&path, 4, "t").unwrap_err();
        assert!(err.message().contains("not UTF-8"), "{err}");
        let err = read_small_text(&dir.path().join("none"), 4, "t").unwrap_err();
        assert_eq!(err.exit_code(), 66);
    }

    #[test]
    fn create_new_never_writes_through_a_link_or_reuses_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        let link = dir.path().join("link");
        symlink(&victim, &link).unwrap();
        assert_eq!(
            create_new(&link, 0o600).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let dangling = dir.path().join("dangling");
        symlink(dir.path().join("would-be-created"), &dangling).unwrap();
        assert!(create_new(&dangling, 0o600).is_err());
        assert!(!dir.path().join("would-be-created").exists());
        let planted = dir.path().join("planted");
        fs::write(&planted, "").unwrap();
        chmod(&planted, 0o666);
        assert!(create_new(&planted, 0o600).is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "victim");

        // recreate removes the link itself, never its target.
        let mut file = recreate(&link, 0o700).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "victim");
        assert_eq!(mode(&link), 0o700);
    }

    #[test]
    fn the_mode_is_exact_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: umask only changes this process's file-creation mask.
        let old = unsafe { libc::umask(0o077) };
        let script = create_new(&dir.path().join("s"), 0o700);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        script.unwrap();
        assert_eq!(mode(&dir.path().join("s")), 0o700);
    }

    #[test]
    fn an_atomic_write_replaces_a_link_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        let path = dir.path().join("report.json");
        symlink(&victim, &path).unwrap();
        write_atomic(&path, b"{}", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "victim");
        assert!(!fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&path).unwrap(), "{}");
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // Two temporary names are never the same.
        assert_ne!(
            unpredictable_name(dir.path(), "x", ""),
            unpredictable_name(dir.path(), "x", "")
        );
    }

    #[test]
    fn a_long_lived_file_is_opened_only_when_it_is_ours() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("run.lock");
        open_or_create_private(&lock, 0o600).unwrap();
        assert_eq!(mode(&lock), 0o600);
        chmod(&lock, 0o644);
        open_or_create_private(&lock, 0o600).unwrap();
        assert_eq!(mode(&lock), 0o600, "made private again");

        let victim = dir.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        let victim_mode = mode(&victim);
        let link = dir.path().join("link.lock");
        symlink(&victim, &link).unwrap();
        assert!(open_or_create_private(&link, 0o600).is_err());
        let hard = dir.path().join("hard.lock");
        fs::hard_link(&victim, &hard).unwrap();
        let err = open_or_create_private(&hard, 0o600).unwrap_err();
        assert!(err.to_string().contains("hard links"), "{err}");
        assert_eq!(mode(&victim), victim_mode);
        let fifo = dir.path().join("fifo.lock");
        mkfifo(&fifo);
        let err = open_or_create_private(&fifo, 0o600).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    fn unsafe_of(result: std::result::Result<(), DirError>) -> Unsafe {
        match result {
            Err(DirError::Unsafe(u)) => u,
            other => panic!("expected an unsafe directory, got {other:?}"),
        }
    }

    #[test]
    fn a_private_directory_is_ours_alone_and_not_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        create_dir_all_private(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        check_private_dir(&state).unwrap();
        chmod(&state, 0o755);
        check_private_dir(&state).unwrap();

        chmod(&state, 0o1777);
        let u = unsafe_of(check_private_dir(&state));
        assert_eq!(u.problem, Problem::Writable { mode: 0o1777 });
        assert_eq!(u.reason(), "is writable by group and others (mode 1777)");
        assert_eq!(u.fix(), format!("chmod 700 {}", state.display()));
        chmod(&state, 0o770);
        assert_eq!(
            unsafe_of(check_private_dir(&state)).reason(),
            "is writable by its group (mode 0770)"
        );
        chmod(&state, 0o700);

        let link = dir.path().join("link");
        symlink(&state, &link).unwrap();
        assert_eq!(
            unsafe_of(check_private_dir(&link)).problem,
            Problem::SymbolicLink
        );
        std::os::unix::fs::chown(&state, Some(65534), None).unwrap();
        let u = unsafe_of(check_private_dir(&state));
        assert_eq!(
            u.reason(),
            "is owned by uid 65534, not by tagstrap's user (root)"
        );
        assert_eq!(u.fix(), format!("chown root {}", state.display()));
        assert!(matches!(
            check_private_dir(&dir.path().join("none")),
            Err(DirError::Io(..))
        ));
    }

    #[test]
    fn ancestors_may_be_shared_only_when_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        let state = shared.join("state");
        fs::create_dir(&state).unwrap();
        chmod(&shared, 0o1777);
        check_ancestors(&state).unwrap();
        chmod(&shared, 0o777);
        let u = unsafe_of(check_ancestors(&state));
        assert_eq!(u.path, shared);
        assert_eq!(
            u.reason(),
            "is writable by group and others without the sticky bit (mode 0777)"
        );
        assert!(u.fix().starts_with("chmod go-w "), "{}", u.fix());
        chmod(&shared, 0o755);
        std::os::unix::fs::chown(&shared, Some(65534), None).unwrap();
        let u = unsafe_of(check_ancestors(&state));
        assert!(u.reason().contains("uid 65534"), "{}", u.reason());

        // Through a link: the directories the link leads through count.
        std::os::unix::fs::chown(&shared, Some(0), None).unwrap();
        chmod(&shared, 0o777);
        let link = dir.path().join("link");
        symlink(&shared, &link).unwrap();
        assert_eq!(unsafe_of(check_ancestors(&link.join("state"))).path, shared);
        // A link held in a directory others can write: they could point it
        // elsewhere, so that directory counts too.
        chmod(&shared, 0o755);
        let private = dir.path().join("private");
        fs::create_dir(&private).unwrap();
        symlink(&private, shared.join("to-private")).unwrap();
        check_ancestors(&shared.join("to-private/state")).unwrap();
        chmod(&shared, 0o777);
        assert_eq!(
            unsafe_of(check_ancestors(&shared.join("to-private/state"))).path,
            shared
        );
        // /tmp (root, 1777) and the repository's target/ are fine.
        check_ancestors(&std::env::temp_dir().join("x")).unwrap();
        check_ancestors(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/x")
                .as_path(),
        )
        .unwrap();
    }

    #[test]
    fn a_new_directory_must_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        create_dir_new(&path).unwrap();
        assert_eq!(mode(&path), 0o700);
        assert_eq!(
            create_dir_new(&path).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
    }
}
