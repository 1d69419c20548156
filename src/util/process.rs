//! Process-wide hardening, done first thing in `commands::main`, before any
//! setting (and so `VAULT_TOKEN`) is read.
//!
//! tagstrap holds the store's token and the proxy password in memory. On
//! Linux a process is "dumpable" by default: a crash writes its memory to a
//! core file, and any process of the same user may `ptrace` it or read
//! `/proc/<pid>/environ` and `/proc/<pid>/mem`. Marking it non-dumpable
//! (`prctl(PR_SET_DUMPABLE, 0)`) stops all three: no core file is written,
//! and the kernel makes `/proc/<pid>/` root's, so only root (with
//! `CAP_SYS_PTRACE`) may look. The script tagstrap starts is a new program:
//! `execve` makes it dumpable again, so its own debugging is unaffected.

/// Marks this process non-dumpable (Linux). A failure is returned for the
/// caller to log, not to stop on: the hardening is a second line of defence.
#[cfg(target_os = "linux")]
pub(crate) fn make_undumpable() -> std::io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes an integer and touches no memory of ours.
    let done = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere there is no such switch (on Windows, only administrators and
/// the process's own user may read its memory, and no core files are
/// written by default): nothing to do.
#[cfg(not(target_os = "linux"))]
pub(crate) fn make_undumpable() -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_process_is_no_longer_dumpable() {
        // The test binary is a process of its own: marking it changes
        // nothing for other tests.
        super::make_undumpable().unwrap();
        // SAFETY: PR_GET_DUMPABLE takes no pointer.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }
}
