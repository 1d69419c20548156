//! Running the real `tagstrap` binary in tests: a clean environment (no
//! system proxy, no Vault variables from the developer's shell), a private
//! state directory, and the checks every test makes on its output.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_tagstrap");

/// One invocation of tagstrap, built up step by step; the subcommand is
/// chosen when it runs, so the same set-up serves `run`, `plan` and `tags`.
pub struct Tagstrap {
    args: Vec<std::ffi::OsString>,
    envs: Vec<(String, std::ffi::OsString)>,
    pub state: TempDir,
}

impl Tagstrap {
    /// `tagstrap SUBCOMMAND --source none --state-dir <temp>` with an empty
    /// environment but for PATH, so that nothing from the machine leaks in,
    /// and empty config and tags files, so that neither does /etc/tagstrap.
    pub fn new(subcommand: &str) -> Tagstrap {
        let state = tempfile::tempdir().unwrap();
        let config = write_file(state.path(), "empty.toml", "");
        let tags = write_file(state.path(), "empty.tags", "");
        let mut t = Tagstrap {
            args: vec![subcommand.into()],
            envs: Vec::new(),
            state,
        };
        t = t
            .arg("--source")
            .arg("none")
            .arg("--config")
            .arg(config)
            .arg("--tags-file")
            .arg(tags);
        let state_dir = t.state_dir();
        t.arg("--state-dir").arg(state_dir)
    }

    pub fn tag(self, key: &str, value: &str) -> Tagstrap {
        self.arg("--tag").arg(format!("{key}={value}"))
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Tagstrap {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Tagstrap {
        self.envs
            .push((key.to_string(), value.as_ref().to_os_string()));
        self
    }

    pub fn vault(self, addr: &str, token: &str) -> Tagstrap {
        self.env("VAULT_ADDR", addr).env("VAULT_TOKEN", token)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state.path().join("state")
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(&self.args)
            .stdin(Stdio::null());
        for (k, v) in &self.envs {
            command.env(k, v);
        }
        command
    }

    pub fn run(self) -> Run {
        let started = std::time::Instant::now();
        let output = self.command().output().unwrap();
        Run::from_output(output, self.state, started.elapsed())
    }

    /// The same set-up, with another subcommand.
    pub fn run_as(mut self, subcommand: &str) -> Run {
        self.args[0] = subcommand.into();
        self.run()
    }

    pub fn spawn(self) -> (Child, TempDir) {
        let child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (child, self.state)
    }
}

/// What a run left behind.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub state: TempDir,
    pub elapsed: std::time::Duration,
}

impl Run {
    pub fn from_output(output: Output, state: TempDir, elapsed: std::time::Duration) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            state,
            elapsed,
        }
    }

    pub fn report(&self) -> String {
        std::fs::read_to_string(self.state.path().join("state/last-run.json")).unwrap_or_default()
    }

    pub fn report_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.report()).expect("a report")
    }

    /// The ERROR lines on stderr.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains("ERROR"))
            .collect()
    }

    /// Asserts the exit code and that exactly one error line says `needle`.
    pub fn assert_error(&self, code: i32, needle: &str) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        let errors = self.error_lines();
        assert_eq!(errors.len(), 1, "exactly one error line:\n{}", self.stderr);
        assert!(
            errors[0].contains(needle),
            "the error line should say {needle:?}:\n{}",
            errors[0]
        );
        self
    }

    pub fn assert_success(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(self.error_lines().is_empty(), "{}", self.stderr);
        self
    }

    /// Asserts that no form of `secret` appears in stdout, stderr or the report.
    pub fn assert_no_leak(&self, secret: &str) -> &Run {
        for form in secret_forms(secret) {
            for (what, text) in [
                ("stdout", &self.stdout),
                ("stderr", &self.stderr),
                ("report", &self.report()),
            ] {
                assert!(
                    !text.contains(&form),
                    "{what} holds the secret ({form:?}):\n{text}"
                );
            }
        }
        self
    }

    /// Count of tries tagstrap logged as failed.
    pub fn failed_tries(&self) -> usize {
        self.stderr
            .lines()
            .filter(|l| l.contains("failed:") && l.contains("next try in"))
            .count()
    }
}

/// The secret as it could appear: plain, percent-encoded, base64 of user:secret is checked by callers.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let encoded: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    vec![secret.to_string(), encoded]
}

/// Writes a script for the origin to serve, or a file to point file:// at.
pub fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A local script that proves it ran by creating `ran` next to itself.
pub struct Witness {
    dir: TempDir,
}

impl Witness {
    pub fn new() -> Witness {
        Witness::with_check("")
    }

    /// A witness that runs only when its `http_proxy` is exactly
    /// `http://USER:PASSWORD@proxy_addr` (percent-encoded): proof that the
    /// credentials were resolved right. It compares hashes, so the script
    /// file holds no secret.
    pub fn expecting_proxy(proxy_addr: &str, user: &str, password: &str) -> Witness {
        let expected = format!(
            "http://{}:{}@{proxy_addr}",
            secret_forms(user).pop().unwrap(),
            secret_forms(password).pop().unwrap()
        );
        Witness::with_check(&format!(
            "h=$(printf '%s' \"$http_proxy\" | sha256sum | cut -d' ' -f1)\n\
             [ \"$h\" = {} ] || {{ echo 'witness: http_proxy is not the expected URL' >&2; exit 3; }}\n",
            sha256_hex(expected.as_bytes())
        ))
    }

    fn with_check(check: &str) -> Witness {
        let dir = tempfile::tempdir().unwrap();
        let ran = dir.path().join("ran");
        write_file(
            dir.path(),
            "install.sh",
            &format!("#!/bin/sh\n{check}touch '{}'\n", ran.display()),
        );
        Witness { dir }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("install.sh").display())
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("install.sh")).unwrap()
    }

    pub fn ran(&self) -> bool {
        self.dir.path().join("ran").exists()
    }
}

/// Writes `content` to `dir/name` with `mode` (a secret file for a test).
#[cfg(unix)]
pub fn write_secret(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = write_file(dir, name, content);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}
