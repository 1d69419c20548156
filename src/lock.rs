//! One `run` at a time per state directory (SPEC §8). `run` takes an
//! exclusive lock on `<state-dir>/run.lock` before it reads anything else
//! there (the `--once` markers, the script) and before it reads the tags, and
//! keeps it until its report is written. A second `run` — cloud-init's shell
//! part and a baked boot unit can both start tagstrap at the same moment —
//! waits for the first within its own `--deadline`, saying for whom, and
//! then decides `--once` on what the first left behind.
//!
//! The lock is an advisory whole-file lock (`File::lock`: `flock` on Unix,
//! `LockFileEx` on Windows), so it is released by the kernel however the
//! holder ends, even by SIGKILL: a crashed run never leaves a stale lock.
//! Files std opens are close-on-exec, so the script and any daemon it leaves
//! behind do not inherit the lock.
//!
//! The holder writes its PID and start time into the file for the waiting
//! run's messages; that text is only shown (through [`shown`]), never
//! trusted.
//!
//! Layer: the state directory (with `state`). It may import `state`, `stop`
//! and the toolkit.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::state::StateDir;
use crate::stop::{Stage, Stop};
use crate::util::text::{shown, shown_path};

/// The lock file's name inside the state directory.
pub(crate) const LOCK_FILE: &str = "run.lock";

/// The state directory's lock, held while it lives.
#[derive(Debug)]
pub(crate) struct RunLock {
    // Never read: the open file is the lock; closing it releases the lock.
    _file: File,
}

/// Who holds the lock, as the holder wrote it: for messages only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) pid: Option<String>,
    pub(crate) started: Option<String>,
}

impl Holder {
    /// "another tagstrap run (PID 123, started 2026-…)".
    pub(crate) fn describe(&self) -> String {
        match (&self.pid, &self.started) {
            (Some(pid), Some(started)) => format!(
                "another tagstrap run (PID {}, started {})",
                shown(pid),
                shown(started)
            ),
            (Some(pid), None) => format!("another tagstrap run (PID {})", shown(pid)),
            _ => "another tagstrap run (its PID is not known yet)".to_string(),
        }
    }

    /// What the holder wrote: `pid=…` and `started=…` lines.
    pub(crate) fn parse(text: &str) -> Holder {
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Holder {
            pid: field("pid"),
            started: field("started"),
        }
    }
}

/// Takes the state directory's lock, waiting up to `deadline` for another
/// run to release it. `started_at` is this run's start, written for the
/// next waiter. A signal while waiting ends the wait (128+N); a wait longer
/// than the deadline is 73 naming the holder.
pub(crate) async fn acquire(
    state: &StateDir,
    deadline: Duration,
    started_at: &str,
    stop: &Stop,
) -> Result<RunLock> {
    let path = state.root().join(LOCK_FILE);
    let mut file = open_lock_file(state)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            file = wait_for(file, state, deadline, stop).await?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(&path, &e)),
    }
    write_holder(&mut file, started_at).map_err(|e| lock_error(&path, &e))?;
    Ok(RunLock { _file: file })
}

/// Waits for the holder to release the lock. The blocking `lock()` runs on a
/// plain thread, not tokio's blocking pool: a thread still waiting when this
/// run gives up would keep the runtime from shutting down. The kernel wakes
/// it the moment the holder ends, so nothing polls.
async fn wait_for(file: File, state: &StateDir, deadline: Duration, stop: &Stop) -> Result<File> {
    let root = state.root();
    let path = &root.join(LOCK_FILE);
    let holder = read_holder(&file);
    let who = holder.describe();
    tracing::info!(
        holder_pid = holder.pid.as_deref().unwrap_or(""),
        "{who} is using the state directory {}: waiting for it to finish (up to {} s, --deadline)",
        shown_path(root),
        deadline.as_secs_f64()
    );
    let waiting = Instant::now();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tagstrap-run-lock".into())
        .spawn(move || {
            let locked = file.lock().map(|()| file);
            // The receiver is gone when this run gave up waiting; the lock
            // taken meanwhile is released when the process exits.
            let _ = sender.send(locked);
        })
        .map_err(|e| lock_error(path, &e))?;
    let wait = async {
        match tokio::time::timeout(deadline, receiver).await {
            Ok(Ok(Ok(file))) => Ok(file),
            Ok(Ok(Err(e))) => Err(lock_error(path, &e)),
            Ok(Err(_)) => Err(lock_error(
                path,
                &std::io::Error::other("the waiting thread ended"),
            )),
            Err(_) => Err(timed_out(&read_holder_at(state), root, deadline)),
        }
    };
    let file = stop.unless(Stage::Lock { holder: &who }, wait).await?;
    tracing::info!(
        "the state directory is free after {:.1} s of waiting; going on",
        waiting.elapsed().as_secs_f64()
    );
    Ok(file)
}

fn timed_out(holder: &Holder, root: &Path, deadline: Duration) -> Error {
    let stop_it = match &holder.pid {
        Some(pid) => format!("if it is stuck, stop it (kill {})", shown(pid)),
        None => "if it is stuck, stop it".to_string(),
    };
    Error::CantCreate(format!(
        "{} kept the state directory {} for longer than this run's {} s deadline, so this run \
         did nothing: only one run at a time may use a state directory. Wait for that run to \
         finish ({stop_it}), then run tagstrap again, or raise --deadline",
        holder.describe(),
        shown_path(root),
        deadline.as_secs_f64()
    ))
}

fn lock_error(path: &Path, e: &std::io::Error) -> Error {
    Error::CantCreate(format!(
        "cannot lock {}: {e}; point --state-dir at a local directory that is tagstrap's alone",
        shown_path(path)
    ))
}

/// Opens (creating, 0600) the lock file for reading and writing, never
/// through a symbolic link and never truncating it: a link planted under that
/// name would otherwise let tagstrap create or rewrite a file elsewhere. Only
/// a regular file of tagstrap's user with one link is accepted
/// ([`StateDir::open_private`]), for the same reason (a hard link to another
/// file would be rewritten by [`write_holder`]).
fn open_lock_file(state: &StateDir) -> Result<File> {
    state.open_private(LOCK_FILE, "the lock file")
}

/// Writes `pid=…` and `started=…` in place: the file is rewritten from its
/// start and cut to length, through the handle already open (no new name is
/// resolved, so no link can redirect it).
fn write_holder(file: &mut File, started_at: &str) -> std::io::Result<()> {
    let text = format!("pid={}\nstarted={started_at}\n", std::process::id());
    file.seek(SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())?;
    file.set_len(text.len() as u64)?;
    file.flush()
}

fn read_holder(mut file: &File) -> Holder {
    let mut text = String::new();
    // On Windows the holder's lock keeps others from reading the file: the
    // holder is then not named.
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.take(4096).read_to_string(&mut text));
    Holder::parse(&text)
}

/// The holder now (it may have changed while this run waited).
fn read_holder_at(state: &StateDir) -> Holder {
    match open_lock_file(state) {
        Ok(file) => read_holder(&file),
        Err(_) => Holder::parse(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_what_it_wrote_and_shown_safely() {
        let holder = Holder::parse("pid=4242\nstarted=2026-05-01T10:00:00.000Z\n");
        assert_eq!(holder.pid.as_deref(), Some("4242"));
        assert_eq!(
            holder.describe(),
            "another tagstrap run (PID 4242, started 2026-05-01T10:00:00.000Z)"
        );
        assert_eq!(
            Holder::parse("").describe(),
            "another tagstrap run (its PID is not known yet)"
        );
        // Half written, or written by someone else: shown, never trusted.
        let forged = Holder::parse("pid=1\u{1b}[2J\u{202e}\nstarted=");
        assert_eq!(forged.started, None);
        assert_eq!(
            forged.describe(),
            "another tagstrap run (PID 1\\u{1b}[2J\\u{202e})"
        );
    }

    #[tokio::test]
    async fn a_free_lock_is_taken_and_says_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let lock = acquire(&state, Duration::from_secs(1), "T0", &Stop::never())
            .await
            .unwrap();
        let text = std::fs::read_to_string(state.root().join(LOCK_FILE)).unwrap();
        assert_eq!(
            Holder::parse(&text).pid,
            Some(std::process::id().to_string())
        );
        assert_eq!(Holder::parse(&text).started.as_deref(), Some("T0"));
        drop(lock);
        // Released: the next run takes it at once, and rewrites the holder.
        let _again = acquire(&state, Duration::from_secs(1), "T1", &Stop::never())
            .await
            .unwrap();
        let text = std::fs::read_to_string(state.root().join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("pid={}\nstarted=T1\n", std::process::id()));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_held_lock_is_waited_for_until_the_deadline_then_73_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let _held = acquire(&state, Duration::from_secs(1), "T0", &Stop::never())
            .await
            .unwrap();
        // flock locks belong to the open file: a second open in this process
        // conflicts like another process would.
        let err = acquire(&state, Duration::from_millis(100), "T1", &Stop::never())
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 73, "{err}");
        assert!(
            err.message()
                .contains(&format!("(PID {}, started T0)", std::process::id())),
            "{err}"
        );
        assert!(err.message().contains("kill "), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_never_followed_or_rewritten() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let opened = || open_lock_file(&StateDir::new(state.clone()));

        symlink(&victim, state.join(LOCK_FILE)).unwrap();
        let err = opened().unwrap_err();
        assert_eq!(err.exit_code(), 73);
        assert!(err.message().contains("a symbolic link"), "{err}");
        // A dangling link would have been created through.
        std::fs::remove_file(state.join(LOCK_FILE)).unwrap();
        symlink(dir.path().join("created"), state.join(LOCK_FILE)).unwrap();
        assert!(opened().is_err());
        assert!(!dir.path().join("created").exists());

        std::fs::remove_file(state.join(LOCK_FILE)).unwrap();
        std::fs::hard_link(&victim, state.join(LOCK_FILE)).unwrap();
        let err = opened().unwrap_err();
        assert!(err.message().contains("hard links"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }
}
