//! A real Squid forward proxy on 127.0.0.1.
//!
//! Runs `/usr/sbin/squid -N -d 1 -f CONF` (foreground, no daemon) with
//! everything — config, htpasswd file, TLS cert/key copies, pid file,
//! `cache.log`, `access.log`, stdout/stderr — in the instance's temp dir
//! (mode 0777, because Squid started as root drops to `cache_effective_user`
//! `proxy` on Debian and must write its logs there). No disk cache
//! (`cache deny all`), no ICP/HTCP/SNMP/pinger, `shutdown_lifetime 0`,
//! `connect_retries 0`, `forward_max_tries 1`, `connect_timeout 5 seconds`,
//! `dns_nameservers 127.0.0.1` (nothing leaves loopback; use IP literals or
//! names from /etc/hosts), `forwarded_for delete`, `buffered_logs off`.
//!
//! Access control: when [`SquidBuilder::basic_auth`] is set, every request
//! needs it (`407` + `Proxy-Authenticate: Basic realm="testkit"` otherwise).
//! Then CONNECT is allowed only to the ports of
//! [`SquidBuilder::allow_connect_ports`] on `127.0.0.1`, plain-HTTP
//! forwarding only to [`SquidBuilder::allow_http_ports`] on `127.0.0.1`;
//! everything else gets `403`.
//!
//! # Squid 5.7 behaviour found while building this (verified by tests/smoke.rs)
//! * `http_port 127.0.0.1:0` is rejected (`FATAL: http_port: Port cannot be
//!   0`), so the harness picks a free port (bind `127.0.0.1:0`, close) and
//!   retries with a new one if Squid then exits with `commBind ... (98)
//!   Address already in use` / `FATAL: Unable to open HTTP Socket`.
//!   Readiness = `cache.log` shows `Accepting HTTP Socket connections at ...
//!   local=127.0.0.1:PORT` (and the HTTPS one), written after listen().
//! * CONNECT to a port where nothing listens: `503 Service Unavailable` with
//!   `X-Squid-Error: ERR_CONNECT_FAIL 111` (111 = ECONNREFUSED), answered at
//!   once; the access.log line is `NONE_NONE/503 0 CONNECT 127.0.0.1:P user
//!   HIER_DIRECT/127.0.0.1 -`. Squid does NOT cache that failure: as soon as
//!   the origin listens, the next CONNECT gets `200`.
//! * CONNECT to a port not allowed: `403 Forbidden`, `X-Squid-Error:
//!   ERR_ACCESS_DENIED 0`. Missing/wrong credentials: `407 Proxy
//!   Authentication Required`, `X-Squid-Error: ERR_CACHE_ACCESS_DENIED 0`
//!   (checked before the port rules). Squid's error replies also carry
//!   `Server: squid/5.7`, `Via: 1.1 HOST (squid/5.7)` and `X-Cache: MISS from HOST`.
//! * Plain-HTTP GET to a closed port: `503` with `X-Squid-Error:
//!   ERR_CONNECT_FAIL 111` too.
//! * An access.log line is written when a transaction *ends*: for a CONNECT
//!   tunnel that is when the tunnel closes, and even for a plain request it
//!   can land a moment after the client got the response, so use
//!   [`Squid::wait_for_access_log`] rather than reading the log right after
//!   the client got its response.
//! * Shutdown on SIGTERM takes ~3 s even with `shutdown_lifetime 0`
//!   (internal 1 s shutdown phases), so the harness SIGKILLs instead.
//!   Killed with SIGKILL, Squid would orphan its `basic_ncsa_auth` helpers,
//!   and this machine's PID 1 reaps orphans only lazily (zombies linger for
//!   seconds). Therefore
//!   Squid runs as PID 1 of its own PID namespace (`unshare --pid --fork`,
//!   needs root): SIGKILLing it makes the kernel kill and reap the helpers.
//!   Without the privilege it falls back to killing its process group.
//! * Even with one worker Squid creates POSIX shared-memory segments
//!   `/dev/shm/SERVICE-cf__{metadata,queues,readers}.shm`. With the default
//!   service name `squid`, instances starting at the same moment fail with
//!   `FATAL: Ipc::Mem::Segment::create failed to shm_open(/squid-cf__queues.shm):
//!   (17) File exists`, so each instance runs with its own `-n tkPIDxN`, and
//!   the segments (left behind by SIGKILL) are removed on stop/Drop.
//! * Started as root, Squid switches to user `proxy`; `access.log` and
//!   `cache.log` are then owned by `proxy` with mode 0640 (root reads them).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::ca::TestCa;
use crate::util::{self, Proc};

const SQUID_BIN: &str = "/usr/sbin/squid";
const NCSA_AUTH: &str = "/usr/lib/squid/basic_ncsa_auth";
const START_TIMEOUT: Duration = Duration::from_secs(20);
static INSTANCE_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Builder for a [`Squid`].
#[derive(Clone, Default)]
pub struct SquidBuilder {
    auth: Option<(String, String)>,
    connect_ports: Vec<u16>,
    http_ports: Vec<u16>,
    tls: Option<(String, String)>,
    port: Option<u16>,
    tls_port: Option<u16>,
    extra: Vec<String>,
}

/// A running Squid; killed (and its temp dir removed) on Drop.
pub struct Squid {
    proc: Option<Proc>,
    service_name: String,
    port: u16,
    https_port: Option<u16>,
    dir: tempfile::TempDir,
}

impl SquidBuilder {
    /// Require basic auth for every request, with this one user (checked by
    /// `basic_ncsa_auth` against an apr1 htpasswd file). The password may
    /// contain any character but a newline; it is hashed by `openssl passwd
    /// -apr1 -stdin` fed through stdin, never on a command line.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        assert!(
            !user.is_empty() && !user.contains([':', '\n', '\r', ' ']),
            "basic auth user must be non-empty, without ':', spaces or newlines"
        );
        assert!(
            !password.contains(['\n', '\r']),
            "password must not contain newlines"
        );
        self.auth = Some((user.to_string(), password.to_string()));
        self
    }

    /// Allow CONNECT to these ports of 127.0.0.1 (default: none; others get 403).
    pub fn allow_connect_ports(mut self, ports: &[u16]) -> Self {
        self.connect_ports.extend_from_slice(ports);
        self
    }

    /// Allow plain-HTTP (absolute-form) forwarding to these ports of 127.0.0.1.
    pub fn allow_http_ports(mut self, ports: &[u16]) -> Self {
        self.http_ports.extend_from_slice(ports);
        self
    }

    /// Also listen with TLS (`https_port`) using the CA's loopback leaf, so
    /// clients speak TLS to the proxy (`curl --proxy https://...`).
    pub fn https_port(mut self, ca: &TestCa) -> Self {
        let (c, k) = ca.leaf_cert_and_key_pem();
        let cert = std::fs::read_to_string(c).expect("read leaf cert");
        let key = std::fs::read_to_string(k).expect("read leaf key");
        self.tls = Some((cert, key));
        self
    }

    /// Use this plain `http_port` (e.g. to restart a proxy on the port of a
    /// stopped one). Default: a free port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Use this port for the TLS listener (needs [`Self::https_port`]).
    pub fn https_port_number(mut self, port: u16) -> Self {
        self.tls_port = Some(port);
        self
    }

    /// Append a raw line to squid.conf (before the `http_access` rules).
    pub fn extra_config(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }

    /// Start Squid; returns when it accepts connections (panics with its
    /// logs if it does not within 20 s).
    pub fn start(self) -> Squid {
        let mut last_logs = String::new();
        for _attempt in 0..5 {
            match self.try_start() {
                Ok(s) => return s,
                Err((retry, logs)) => {
                    last_logs = logs;
                    if !retry {
                        break;
                    }
                    if self.port.is_some() || self.tls_port.is_some() {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        }
        panic!("squid did not start:\n{last_logs}");
    }

    /// Err((worth retrying with other ports, logs)).
    fn try_start(&self) -> Result<Squid, (bool, String)> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-squid-")
            .tempdir()
            .expect("create squid temp dir");
        util::chmod(dir.path(), 0o777);
        let d = dir.path();
        let port = self.port.unwrap_or_else(util::free_port);
        let https_port = self
            .tls
            .as_ref()
            .map(|_| self.tls_port.unwrap_or_else(util::free_port));

        let conf = self.config(d, port, https_port);
        util::write_file(&d.join("squid.conf"), conf.as_bytes(), 0o644);

        let stdout = std::fs::File::create(d.join("stdout.log")).expect("create stdout.log");
        let stderr = std::fs::File::create(d.join("stderr.log")).expect("create stderr.log");
        // Unique service name: Squid names its shared-memory segments
        // /dev/shm/NAME-cf__*.shm; with the default "squid", instances
        // starting at the same time collide (shm_open: File exists).
        let service_name = format!(
            "tk{}x{}",
            std::process::id(),
            INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = Command::new(SQUID_BIN);
        cmd.arg("-n")
            .arg(&service_name)
            .arg("-N")
            .arg("-d")
            .arg("1")
            .arg("-f")
            .arg(d.join("squid.conf"))
            .current_dir(d);
        let proc = Proc::spawn(cmd, true, stdout, stderr)
            .unwrap_or_else(|e| panic!("spawn {SQUID_BIN}: {e}"));
        let mut squid = Squid {
            proc: Some(proc),
            service_name,
            port,
            https_port,
            dir,
        };

        let want_http = "Accepting HTTP Socket connections at";
        let want_http_local = format!("local=127.0.0.1:{port} ");
        let want_https_local = https_port.map(|p| format!("local=127.0.0.1:{p} "));
        let cache_log = squid.dir.path().join("cache.log");
        let ready = util::poll_until(START_TIMEOUT, Duration::from_millis(5), || {
            let log = util::read_lossy(&cache_log);
            let http_ok = log
                .lines()
                .any(|l| l.contains(want_http) && l.contains(&want_http_local));
            let https_ok = match &want_https_local {
                None => true,
                Some(w) => log
                    .lines()
                    .any(|l| l.contains("Accepting HTTPS Socket connections at") && l.contains(w)),
            };
            if http_ok && https_ok {
                return Some(true);
            }
            let proc = squid.proc.as_mut().expect("proc");
            if proc.try_wait().is_some() {
                return Some(false);
            }
            None
        });
        if ready == Some(true) {
            return Ok(squid);
        }
        squid.stop();
        let logs = squid.logs();
        // Squid exited because a port was taken: retry (new ports if they
        // were picked here; a fixed port may be in use briefly).
        Err((logs.contains("Address already in use"), logs))
    }

    fn config(&self, d: &Path, port: u16, https_port: Option<u16>) -> String {
        let d = d.display();
        let mut c = String::new();
        let _ = writeln!(c, "http_port 127.0.0.1:{port}");
        if let (Some((cert, key)), Some(hp)) = (&self.tls, https_port) {
            let dir = PathBuf::from(d.to_string());
            util::write_file(&dir.join("tls-cert.pem"), cert.as_bytes(), 0o644);
            util::write_file(&dir.join("tls-key.pem"), key.as_bytes(), 0o644);
            let _ = writeln!(
                c,
                "https_port 127.0.0.1:{hp} tls-cert={d}/tls-cert.pem tls-key={d}/tls-key.pem"
            );
        }
        let _ = write!(
            c,
            "\
visible_hostname testkit-squid
pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log stdio:{d}/access.log
buffered_logs off
cache_store_log none
logfile_rotate 0
coredump_dir {d}
netdb_filename none
cache deny all
cache_mem 8 MB
memory_pools off
max_filedescriptors 4096
shutdown_lifetime 0 seconds
pinger_enable off
icp_port 0
htcp_port 0
snmp_port 0
dns_nameservers 127.0.0.1
dns_timeout 2 seconds
connect_retries 0
forward_max_tries 1
connect_timeout 5 seconds
forwarded_for delete
acl CONNECT method CONNECT
acl testkit_dst dst 127.0.0.0/8
"
        );
        if let Some((user, pass)) = &self.auth {
            let hash = apr1_hash(pass);
            util::write_file(
                &PathBuf::from(d.to_string()).join("passwd"),
                format!("{user}:{hash}\n").as_bytes(),
                0o644,
            );
            let _ = write!(
                c,
                "\
auth_param basic program {NCSA_AUTH} {d}/passwd
auth_param basic children 2 startup=1 idle=1
auth_param basic realm testkit
acl testkit_authed proxy_auth REQUIRED
"
            );
        }
        for line in &self.extra {
            let _ = writeln!(c, "{line}");
        }
        if self.auth.is_some() {
            c.push_str("http_access deny !testkit_authed\n");
        }
        if !self.connect_ports.is_empty() {
            let ports: Vec<String> = self.connect_ports.iter().map(|p| p.to_string()).collect();
            let _ = writeln!(c, "acl testkit_connect_ports port {}", ports.join(" "));
            c.push_str("http_access allow CONNECT testkit_connect_ports testkit_dst\n");
        }
        if !self.http_ports.is_empty() {
            let ports: Vec<String> = self.http_ports.iter().map(|p| p.to_string()).collect();
            let _ = writeln!(c, "acl testkit_http_ports port {}", ports.join(" "));
            c.push_str("http_access allow !CONNECT testkit_http_ports testkit_dst\n");
        }
        c.push_str("http_access deny all\n");
        c
    }
}

/// `$apr1$...` hash of `password` via `openssl passwd -apr1 -stdin`
/// (password on stdin only).
fn apr1_hash(password: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["passwd", "-apr1", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl passwd");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("{password}\n").as_bytes())
            .expect("write password to openssl");
    }
    let out = child.wait_with_output().expect("openssl passwd");
    assert!(
        out.status.success(),
        "openssl passwd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).expect("utf8 hash");
    let hash = hash.trim().to_string();
    assert!(
        hash.starts_with("$apr1$"),
        "unexpected openssl output {hash:?}"
    );
    hash
}

impl Squid {
    pub fn builder() -> SquidBuilder {
        SquidBuilder::default()
    }

    /// The plain `http_port`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS listener's port, if [`SquidBuilder::https_port`] was used.
    pub fn https_port(&self) -> Option<u16> {
        self.https_port
    }

    /// `"127.0.0.1:PORT"` (plain http_port).
    pub fn proxy_addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `"http://127.0.0.1:PORT"`.
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `"https://127.0.0.1:HTTPS_PORT"` (panics without a TLS listener).
    pub fn https_proxy_url(&self) -> String {
        format!(
            "https://127.0.0.1:{}",
            self.https_port.expect("squid has no https_port")
        )
    }

    /// Current contents of `access.log`, in Squid's default native format,
    /// one line per finished transaction:
    ///
    /// `TIME ELAPSED CLIENT CODE/STATUS BYTES METHOD URL USER HIERARCHY/PEER TYPE`
    ///
    /// e.g. `1795426910.553 11 127.0.0.1 TCP_TUNNEL/200 559 CONNECT
    /// 127.0.0.1:4443 alice HIER_DIRECT/127.0.0.1 -` or `... TCP_DENIED/407
    /// 3453 CONNECT 127.0.0.1:4443 - HIER_NONE/- text/html`. URL is
    /// `host:port` for CONNECT, the absolute URL for plain HTTP; USER is `-`
    /// without (valid) credentials. Lines are written unbuffered, but only
    /// when a transaction ends (a CONNECT tunnel: when it closes).
    pub fn access_log(&self) -> String {
        util::read_lossy(&self.dir.path().join("access.log"))
    }

    /// Wait until `access.log` contains `needle` (polls every 10 ms).
    pub fn wait_for_access_log(&self, needle: &str, timeout: Duration) -> bool {
        util::poll_until(timeout, Duration::from_millis(10), || {
            self.access_log().contains(needle).then_some(())
        })
        .is_some()
    }

    /// Current contents of `cache.log` (Squid's diagnostics).
    pub fn cache_log(&self) -> String {
        util::read_lossy(&self.dir.path().join("cache.log"))
    }

    /// cache.log, stdout/stderr and squid.conf, for failure messages.
    pub fn logs(&self) -> String {
        let d = self.dir.path();
        format!(
            "--- squid.conf ---\n{}\n--- cache.log ---\n{}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            util::read_lossy(&d.join("squid.conf")),
            util::read_lossy(&d.join("cache.log")),
            util::read_lossy(&d.join("stderr.log")),
            util::read_lossy(&d.join("stdout.log")),
        )
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the Squid process is still running.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.is_running())
    }

    /// Kill Squid now (SIGKILL, reaped; its ports are closed when this
    /// returns) to simulate "proxy down". The logs stay readable until Drop.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
            remove_shm_segments(&self.service_name);
        }
    }
}

/// Remove `/dev/shm/NAME-*` left behind by a SIGKILLed Squid.
fn remove_shm_segments(service_name: &str) {
    let prefix = format!("{service_name}-");
    if let Ok(rd) = std::fs::read_dir("/dev/shm") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Squid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Squid")
            .field("port", &self.port)
            .field("https_port", &self.https_port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}
