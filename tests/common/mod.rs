//! Running the real `tagstrap` binary in tests: a clean environment (no
//! system proxy, no Vault variables from the developer's shell), a private
//! state directory, and the checks every test makes on its output.

#![allow(dead_code)]

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_tagstrap");

/// One invocation of tagstrap, built up step by step; the subcommand is
/// chosen when it runs, so the same set-up serves `run`, `plan` and `tags`.
pub struct Tagstrap {
    /// What runs: [`BIN`], or another build behind its launcher ([`Tagstrap::program`]).
    program: Vec<std::ffi::OsString>,
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
            program: vec![BIN.into()],
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

    /// Runs `argv` (a program and its first arguments, e.g. `qemu-aarch64
    /// BINARY` in tests/arm64.rs) with the same arguments instead of [`BIN`].
    pub fn program(mut self, argv: &[&std::ffi::OsStr]) -> Tagstrap {
        self.program = argv.iter().map(|a| a.to_os_string()).collect();
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

    /// The proxy tags for `squid` with `user` and the password as
    /// `cred:PROXY_PASS`, resolved from `bao` (see [`proxy_and_store`]).
    pub fn through_proxy(self, squid: &testkit::Squid, bao: &testkit::Bao, user: &str) -> Tagstrap {
        self.tag("rs_agent:http_proxy", &squid.proxy_addr())
            .tag("rs_agent:http_proxy_user", user)
            .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
            .vault(&bao.addr(), &bao.root_token())
    }

    /// `tagstrap SUBCOMMAND --source CLOUD --metadata-endpoint FAKE`.
    pub fn against(subcommand: &str, fake: &testkit::metadata::FakeMetadata) -> Tagstrap {
        Tagstrap::new(subcommand)
            .arg("--source")
            .arg(fake.cloud().name())
            .arg("--metadata-endpoint")
            .arg(fake.url())
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state.path().join("state")
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program[0]);
        command
            .args(&self.program[1..])
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

/// The file `--write-env` wrote at `path` (a host path, also into a test
/// tree): mode 0600 and exactly the [`PROXY_VARS`], the proxies `url` and
/// `no_proxy`, single-quoted. Compared without printing the file: it holds
/// the password. Returns its metadata (inode, mtime) for a rewrite check.
pub fn assert_env_file(path: &Path, url: &str, no_proxy: &str) -> std::fs::Metadata {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "{} mode",
        path.display()
    );
    let mut expected: Vec<String> = PROXY_VARS
        .iter()
        .map(|k| {
            let v = if k.eq_ignore_ascii_case("no_proxy") {
                no_proxy
            } else {
                url
            };
            format!("{k}='{v}'")
        })
        .collect();
    let content = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = content
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    expected.sort();
    lines.sort();
    let names = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| l.split('=').next().unwrap().to_string())
            .collect()
    };
    assert!(
        lines == expected,
        "{}: variables {:?} (values not shown), expected {:?} with the proxy URL and no_proxy",
        path.display(),
        names(&lines),
        names(&expected)
    );
    meta
}

/// Squid tunnelled CONNECTs to `target` (`IP:PORT`), and every CONNECT it
/// saw was that one, authenticated as `user`.
pub fn assert_connects(squid: &testkit::Squid, target: &str, user: &str) {
    let needle = format!("CONNECT {target} {user} ");
    assert!(
        squid.wait_for_access_log(&needle, Duration::from_secs(10)),
        "no {needle:?} in Squid's access.log:\n{}",
        squid.access_log()
    );
    let log = squid.access_log();
    for line in log.lines().filter(|l| l.contains(" CONNECT ")) {
        assert!(
            line.contains(&needle) && line.contains("TCP_TUNNEL/200"),
            "{log}"
        );
    }
}

/// A proxied run's servers: a Squid with basic auth for `user`/`password`
/// allowing CONNECT only to `connect_port`, and an OpenBao dev server
/// holding `stored` as `PROXY_PASS` (KV v2, field `value`): `password`
/// itself, or another for a run the proxy must refuse (407).
pub fn proxy_and_store(
    user: &str,
    password: &str,
    stored: &str,
    connect_port: u16,
) -> (testkit::Squid, testkit::Bao) {
    let squid = testkit::Squid::builder()
        .basic_auth(user, password)
        .allow_connect_ports(&[connect_port])
        .start();
    let bao = testkit::Bao::start();
    bao.put_kv2("secret", "PROXY_PASS", &[("value", stored)]);
    (squid, bao)
}

/// The variables tagstrap sets for the script when there is a proxy (SPEC
/// §4), in the order it sets them.
pub const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
];

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

/// The longest a [`Live`] waits for tagstrap to end or for its stdout to
/// close: a bound on a broken test, not a measure.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A tagstrap running in the background whose stderr the test reads line by
/// line as it comes; killed if the test fails before it ends.
pub struct Live {
    child: Child,
    pub state: Option<TempDir>,
    lines: Receiver<String>,
    /// Every stderr line read so far.
    pub log: Vec<String>,
    stdout: Receiver<String>,
    launched: Instant,
}

impl Live {
    pub fn spawn(t: Tagstrap) -> Live {
        let (mut child, state) = t.spawn();
        let launched = Instant::now();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = sender.send(line);
            }
        });
        let mut out = child.stdout.take().unwrap();
        let (sender, stdout) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            let _ = sender.send(s);
        });
        Live {
            child,
            state: Some(state),
            lines,
            log: Vec::new(),
            stdout,
            launched,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Reads the log until a new line holds `needle`; panics with the log so
    /// far if none does within `timeout` or tagstrap ends first.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no log line {needle:?} in {timeout:?}:\n{}",
                    self.log.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "tagstrap ended without logging {needle:?}:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// [`Live::wait_for_line`], or a line already read that holds `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        match self.log.iter().find(|l| l.contains(needle)) {
            Some(line) => line.clone(),
            None => self.wait_for_line(needle, timeout),
        }
    }

    /// Sends `signal` to tagstrap.
    #[cfg(unix)]
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the PID of a child this test started and has not
        // reaped, so the PID cannot be another process's.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Waits for tagstrap to end (within [`PATIENCE`]) and for its stdout to
    /// close: a process it started still holding stdout is a failure, not a
    /// hang.
    pub fn finish(mut self) -> Run {
        let until = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < until,
                "tagstrap did not end:\n{}",
                self.log.join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.launched.elapsed();
        let stdout = self.stdout.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            panic!(
                "something tagstrap started still holds its stdout:\n{}",
                self.log.join("\n")
            )
        });
        // Every line, up to stderr's end: what is still in the pipe when the
        // process is reaped (its error line, under load) is read, not lost.
        let until = Instant::now() + PATIENCE;
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.log.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "something tagstrap started still holds its stderr:\n{}",
                    self.log.join("\n")
                ),
            }
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: self.log.join("\n"),
            state: self.state.take().unwrap(),
            elapsed,
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Only when a test failed midway: do not leave tagstrap running.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
