//! Running the downloaded script (SPEC §7). On Unix it runs directly when it
//! starts with `#!`, else with `/bin/sh`; on Windows with PowerShell. Its
//! output goes to tagstrap's own stdout and stderr, its stdin is empty (at
//! boot nobody answers a prompt), and it gets the proxied environment, which
//! is the only place the proxy password leaves tagstrap in clear.

use std::ffi::OsString;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};

/// The program and arguments that run a PowerShell script, as SPEC §7 fixes
/// them. A pure function, so it is tested on every platform.
pub fn powershell_command(script: &Path) -> (OsString, Vec<OsString>) {
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
pub fn unix_command(script: &Path, first_bytes: &[u8]) -> (OsString, Vec<OsString>) {
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
            Error::CannotExecute(format!("cannot open the script {}: {e}", script.display()))
        })?;
        file.read(&mut head).unwrap_or(0)
    };
    Ok(unix_command(script, &head[..n]))
}

/// Runs the script with `env` added to tagstrap's own environment, and
/// returns its exit code (128 + the signal when a signal ended it, as shells
/// report it).
pub async fn execute(script: &Path, env: &[(&'static str, SecretString)]) -> Result<i32> {
    let (program, args) = command_for(script)?;
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false);
    for (name, value) in env {
        command.env(name, value.expose_secret());
    }
    tracing::info!(program = %program.to_string_lossy(), "running {}", script.display());
    let mut child = command.spawn().map_err(|e| {
        Error::CannotExecute(format!(
            "cannot start the script {} with {}: {e}",
            script.display(),
            program.to_string_lossy()
        ))
    })?;
    let status = child
        .wait()
        .await
        .map_err(|e| Error::CannotExecute(format!("waiting for the script failed: {e}")))?;
    Ok(exit_code(status))
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
        assert_eq!(execute(&script, &[]).await.unwrap(), 3);
        std::fs::write(&script, "kill -TERM $$\n").unwrap();
        assert_eq!(execute(&script, &[]).await.unwrap(), 128 + 15);
        std::fs::write(&script, "test \"$X\" = 'a b'\n").unwrap();
        assert_eq!(
            execute(&script, &[("X", SecretString::from("a b"))])
                .await
                .unwrap(),
            0
        );
    }
}
