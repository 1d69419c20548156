//! Running the downloaded script (SPEC §7). On Unix it runs directly when it
//! starts with `#!`, else with `/bin/sh`; on Windows with PowerShell. Its
//! output goes to tagstrap's own stdout and stderr, its stdin is empty (at
//! boot nobody answers a prompt), and it gets exactly the environment
//! `proxy::ScriptEnvRule` built (SPEC §4: tagstrap's own without what
//! reaches the store, plus the proxy variables), which is the only place the
//! proxy password leaves tagstrap in clear. A signal
//! that stops tagstrap while the script runs is passed to the script's
//! process group, which is waited for (SPEC §8).
//!
//! Layer: run and report. It may import the download, the proxy environment
//! and everything below.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::error::{Error, Result};
use crate::proxy::ScriptEnv;
#[cfg(unix)]
use crate::stop::Later;
use crate::stop::{Signal, Stop};
use crate::util::text::shown_path;

/// The program and arguments that run a PowerShell script, as SPEC §7 fixes
/// them. A pure function, so it is tested on every platform.
pub(crate) fn powershell_command(script: &Path) -> (OsString, Vec<OsString>) {
    let args = [
        "-NoProfile",
        "-NonInteractive",
        "-ExecutionPolicy",
        "Bypass",
        "-File",
    ]
    .iter()
    .map(OsString::from)
    .chain(std::iter::once(script.as_os_str().to_os_string()))
    .collect();
    ("powershell.exe".into(), args)
}

/// The program and arguments that run a Unix script: itself when it has a
/// `#!` line, else `/bin/sh`.
pub(crate) fn unix_command(script: &Path, first_bytes: &[u8]) -> (OsString, Vec<OsString>) {
    if first_bytes.starts_with(b"#!") {
        (script.as_os_str().to_os_string(), Vec::new())
    } else {
        ("/bin/sh".into(), vec![script.as_os_str().to_os_string()])
    }
}

fn command_for(script: &Path) -> Result<(OsString, Vec<OsString>)> {
    if cfg!(windows) {
        return Ok(powershell_command(script));
    }
    let mut head = [0u8; 2];
    let n = {
        use std::io::Read;
        let mut file = std::fs::File::open(script).map_err(|e| {
            Error::CannotExecute(format!(
                "cannot open the script {}: {e}",
                crate::util::text::shown_path(script)
            ))
        })?;
        file.read(&mut head).unwrap_or(0)
    };
    Ok(unix_command(script, &head[..n]))
}

/// How long the script's process group is given to end after tagstrap
/// passed it a stopping signal, before the group is killed (SIGKILL). Long
/// enough for an install script's trap to clean up (let a package manager
/// finish the package it is unpacking, remove its own lock files); short
/// enough that tagstrap, report written, is gone well within the stop
/// timeouts of whatever sent the signal: systemd's default `TimeoutStopSec`
/// is 90 s. (Windows gives a console's close 5 s, less than this: there the
/// system may end tagstrap first, see docs/design.md.)
pub(crate) const SIGNAL_GRACE: Duration = Duration::from_secs(10);

/// How often the script's process group is checked while tagstrap waits for
/// its last members. Each check is one `kill(-pgid, 0)`; a member's end
/// usually wakes tagstrap at once (SIGCHLD: it is a subreaper), so this only
/// bounds the wait for a member whose parent is another member.
#[cfg(unix)]
const GROUP_CHECK: Duration = Duration::from_millis(100);

/// After SIGKILL, how long tagstrap waits for the kernel to end the group's
/// members and reaps them, before it gives up on one stuck in the kernel.
#[cfg(unix)]
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How the script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Finished {
    /// Its exit code (128 + the signal when a signal ended it, as shells
    /// report it).
    pub(crate) code: i32,
    /// Set when a signal stopped tagstrap while the script ran.
    pub(crate) interrupted: Option<Interrupted>,
}

/// A signal reached tagstrap while the script ran; it was passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interrupted {
    pub(crate) signal: Signal,
    /// Whether something of the script was still running after
    /// [`SIGNAL_GRACE`] and was killed.
    pub(crate) killed: bool,
}

/// Runs the script with `env` as its whole environment, and returns how it
/// ended.
///
/// On Unix the script leads a process group of its own, so that what it
/// starts can be reached as one: a signal that reaches tagstrap meanwhile
/// (`stop`) is passed to the whole group, and tagstrap waits up to
/// [`SIGNAL_GRACE`] for the group to end, then kills what is left, reaps it
/// and returns. While the script runs tagstrap is a child subreaper (Linux),
/// so the script's orphans become tagstrap's children and are reaped rather
/// than left as zombies under a PID 1 that may not reap. A script that exits
/// by itself is not touched further: an install script may rightly leave a
/// daemon running.
pub(crate) async fn execute(script: &Path, env: &ScriptEnv, stop: &Stop) -> Result<Finished> {
    let (program, args) = command_for(script)?;
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false);
    #[cfg(unix)]
    command.process_group(0);
    // Nothing inherited behind the rule's back: the computed list is all
    // the script gets.
    command.env_clear().envs(env.inherited().iter().cloned());
    for (name, value) in env.set() {
        command.env(name, value.expose_secret());
    }
    tracing::info!(program = %program.to_string_lossy(), "running {}", shown_path(script));
    #[cfg(target_os = "linux")]
    let _subreaper = Subreaper::become_one();
    let mut child = command.spawn().map_err(|e| {
        Error::CannotExecute(format!(
            "cannot start the script {} with {}: {e}",
            shown_path(script),
            program.to_string_lossy()
        ))
    })?;
    #[cfg(unix)]
    let group = child.id().map(|pid| pid as i32);
    let signal = tokio::select! {
        biased;
        status = child.wait() => {
            let status = status.map_err(wait_failed)?;
            #[cfg(unix)]
            if let Some(group) = group {
                // Members already gone that were reparented to tagstrap.
                reap_group(group);
            }
            return Ok(Finished { code: exit_code(status), interrupted: None });
        }
        signal = stop.first() => signal,
    };
    // Later signals are passed on too: the first decides the exit code.
    #[cfg(unix)]
    let ended = wind_down(&mut child, group, signal, stop.later()).await?;
    #[cfg(not(unix))]
    let ended = wind_down(&mut child, signal).await?;
    Ok(ended)
}

fn wait_failed(e: std::io::Error) -> Error {
    Error::CannotExecute(format!("waiting for the script failed: {e}"))
}

/// After `signal`: passes it (and later ones) to the group, waits the grace
/// for every member to end, kills what is left, reaps.
#[cfg(unix)]
async fn wind_down(
    child: &mut tokio::process::Child,
    group: Option<i32>,
    signal: Signal,
    mut later: Later,
) -> Result<Finished> {
    use tokio::time::{sleep, sleep_until, Instant};
    let Some(group) = group else {
        // Already reaped by tokio: nothing to pass the signal to.
        let status = child.wait().await.map_err(wait_failed)?;
        return Ok(Finished {
            code: exit_code(status),
            interrupted: Some(Interrupted {
                signal,
                killed: false,
            }),
        });
    };
    pass_on(group, signal);
    tracing::warn!(
        signal = signal.number,
        "passed {} to the script's process group {group}; waiting up to {} s for it to end",
        signal.name,
        SIGNAL_GRACE.as_secs()
    );
    let mut orphans = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
    let until = Instant::now() + SIGNAL_GRACE;
    let mut status = None;
    loop {
        // Only once tokio has reaped the script itself: reaping the group
        // before would take the script's status from tokio.
        if status.is_some() {
            reap_group(group);
            if group_gone(group) {
                break;
            }
        }
        tokio::select! {
            ended = child.wait(), if status.is_none() => status = Some(ended.map_err(wait_failed)?),
            signal = later.next() => {
                pass_on(group, signal);
                tracing::warn!("passed {} to the script's process group {group} too", signal.name);
            }
            () = orphan_ended(&mut orphans), if status.is_some() => {}
            () = sleep(GROUP_CHECK), if status.is_some() => {}
            () = sleep_until(until) => break,
        }
    }
    let killed = status.is_none() || !group_gone(group);
    if killed {
        tracing::warn!(
            "the script's process group {group} was still running {} s after {}: killing it (SIGKILL)",
            SIGNAL_GRACE.as_secs(),
            signal.name
        );
        // SAFETY: kill(2) with a negative PID signals the group; no memory
        // is involved.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    let status = match status {
        Some(status) => status,
        None => child.wait().await.map_err(wait_failed)?,
    };
    let until = Instant::now() + KILL_WAIT;
    loop {
        reap_group(group);
        if group_gone(group) {
            break;
        }
        if Instant::now() >= until {
            tracing::warn!(
                "members of the script's process group {group} are still there {} s after SIGKILL (stuck in the kernel?)",
                KILL_WAIT.as_secs()
            );
            break;
        }
        tokio::select! {
            () = orphan_ended(&mut orphans) => {}
            () = sleep(GROUP_CHECK) => {}
        }
    }
    Ok(Finished {
        code: exit_code(status),
        interrupted: Some(Interrupted { signal, killed }),
    })
}

/// The console delivers Ctrl-C and Ctrl-Break to every process attached to
/// it, the script included, so there is nothing to pass on: tagstrap waits
/// the grace for the script, then ends it. Windows has no process group to
/// kill as one: what the script started itself survives it (a Job object
/// would be needed; docs/design.md).
#[cfg(not(unix))]
async fn wind_down(child: &mut tokio::process::Child, signal: Signal) -> Result<Finished> {
    tracing::warn!(
        "waiting up to {} s for the script to end after {}",
        SIGNAL_GRACE.as_secs(),
        signal.name
    );
    let (status, killed) = match tokio::time::timeout(SIGNAL_GRACE, child.wait()).await {
        Ok(status) => (status.map_err(wait_failed)?, false),
        Err(_) => {
            tracing::warn!(
                "the script was still running {} s after {}: ending it",
                SIGNAL_GRACE.as_secs(),
                signal.name
            );
            let _ = child.start_kill();
            (child.wait().await.map_err(wait_failed)?, true)
        }
    };
    Ok(Finished {
        code: exit_code(status),
        interrupted: Some(Interrupted { signal, killed }),
    })
}

#[cfg(unix)]
fn pass_on(group: i32, signal: Signal) {
    // SAFETY: kill(2) with a negative PID signals the group; no memory is
    // involved. A group already gone (ESRCH) is what was wanted.
    unsafe { libc::kill(-group, signal.number) };
}

/// Whether no process of the group exists any more (not even a zombie).
#[cfg(unix)]
fn group_gone(group: i32) -> bool {
    // SAFETY: signal 0 sends nothing; it only checks for the group.
    let checked = unsafe { libc::kill(-group, 0) };
    checked == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Reaps every member of the group that is tagstrap's child and has ended.
#[cfg(unix)]
fn reap_group(group: i32) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) writes only the status integer passed to it.
        let pid = unsafe { libc::waitpid(-group, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}

/// Until the next SIGCHLD; never, without a listener.
#[cfg(unix)]
async fn orphan_ended(orphans: &mut Option<tokio::signal::unix::Signal>) {
    match orphans {
        Some(orphans) => {
            orphans.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Makes tagstrap a child subreaper while it lives (Linux): the script's
/// orphans are reparented to tagstrap, which can wait for them, instead of
/// to PID 1. Best effort: without it the orphans go to PID 1 as usual.
#[cfg(target_os = "linux")]
struct Subreaper;

#[cfg(target_os = "linux")]
impl Subreaper {
    fn become_one() -> Option<Subreaper> {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers.
        let set = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
        (set == 0).then_some(Subreaper)
    }
}

#[cfg(target_os = "linux")]
impl Drop for Subreaper {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0 as libc::c_ulong) };
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn powershell_gets_the_fixed_command_line() {
        let (program, args) = powershell_command(Path::new(
            r"C:\ProgramData\tagstrap\state\script\install.ps1",
        ));
        assert_eq!(program, "powershell.exe");
        let args: Vec<String> = args.into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            args,
            [
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass",
                "-File",
                r"C:\ProgramData\tagstrap\state\script\install.ps1"
            ]
        );
    }

    #[test]
    fn a_hashbang_script_runs_itself_and_others_run_with_sh() {
        let path = Path::new("/state/script/install");
        assert_eq!(unix_command(path, b"#!"), (path.as_os_str().into(), vec![]));
        assert_eq!(
            unix_command(path, b"ec"),
            ("/bin/sh".into(), vec![path.as_os_str().into()])
        );
        assert_eq!(
            unix_command(path, b""),
            ("/bin/sh".into(), vec![path.as_os_str().into()])
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_exit_code_and_signals_are_reported_as_shells_do() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "exit 3\n").unwrap();
        let never = Stop::never();
        let code = |finished: Finished| {
            assert_eq!(finished.interrupted, None);
            finished.code
        };
        let inherited = || std::env::vars_os().filter(|(name, _)| name != "X");
        let rule = crate::proxy::ScriptEnvRule::without_settings();
        let none = rule.apply(inherited(), Vec::new());
        assert_eq!(code(execute(&script, &none, &never).await.unwrap()), 3);
        std::fs::write(&script, "kill -TERM $$\n").unwrap();
        assert_eq!(
            code(execute(&script, &none, &never).await.unwrap()),
            128 + 15
        );
        std::fs::write(&script, "test \"$X\" = 'a b'\n").unwrap();
        let env = rule.apply(inherited(), vec![("X", SecretString::from("a b"))]);
        assert_eq!(code(execute(&script, &env, &never).await.unwrap()), 0);
    }
}
