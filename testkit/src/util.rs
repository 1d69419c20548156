//! Small helpers shared by the servers: files, ports, polling, processes.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub(crate) fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

pub(crate) fn write_file(path: &Path, data: &[u8], mode: u32) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    chmod(path, mode);
}

/// Contents of a file as (lossy) UTF-8; empty if it does not exist.
pub(crate) fn read_lossy(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    }
}

/// A port that was free on 127.0.0.1 a moment ago (bind `127.0.0.1:0`, note
/// the port, close). Another process may take it before you bind it: callers
/// that start servers on it retry with a new port if the bind fails.
pub fn free_port() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Two consecutive ports `p`, `p + 1` that were both free a moment ago.
pub(crate) fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let a = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        let p = a.local_addr().expect("local_addr").port();
        if p == u16::MAX {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("could not find two consecutive free ports on 127.0.0.1");
}

/// Runs `attempt` up to five times while it fails with `(true, logs)` (a
/// port clash worth another try); panics with the last logs otherwise.
pub(crate) fn start_with_retries<T>(
    what: &str,
    mut attempt: impl FnMut() -> Result<T, (bool, String)>,
) -> T {
    let mut last = String::new();
    for _ in 0..5 {
        match attempt() {
            Ok(started) => return started,
            Err((retry, logs)) => {
                last = logs;
                if !retry {
                    break;
                }
            }
        }
    }
    panic!("{what} did not start:\n{last}");
}

/// Call `f` every `interval` until it returns `Some`, or `timeout` passes.
pub(crate) fn poll_until<T>(
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(interval);
    }
}

/// 32 random hex characters from the kernel's CSPRNG.
pub(crate) fn random_hex() -> String {
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `unshare --pid --fork` works here (root, or user namespaces).
/// Checked once per process; `TESTKIT_NO_UNSHARE=1` disables it.
fn unshare_works() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        if std::env::var_os("TESTKIT_NO_UNSHARE").is_some_and(|v| v != "0") {
            return false;
        }
        Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// A child process tree that is killed (SIGKILL) and reaped on `kill()`/Drop.
///
/// With `tree = true` the program runs as PID 1 of a new PID namespace
/// (`unshare --pid --fork --kill-child PROGRAM ...`) when that is permitted:
/// killing it then makes the kernel kill *and reap* all of its descendants
/// (Squid's auth helpers), so nothing is left as a zombie (PID 1 of this
/// machine's container reaps orphans only lazily: they linger as zombies for
/// seconds). Without unshare, the program gets its own process group and the
/// whole group is SIGKILLed (its orphaned children are reaped by init,
/// eventually).
pub(crate) struct Proc {
    child: Option<Child>,
    via_unshare: bool,
}

impl Proc {
    /// Spawn `cmd` (stdin null, stdout/stderr to the given files) in its own
    /// process group; with `tree`, inside a new PID namespace (see above).
    pub(crate) fn spawn(
        cmd: Command,
        tree: bool,
        stdout: std::fs::File,
        stderr: std::fs::File,
    ) -> std::io::Result<Proc> {
        let via_unshare = tree && unshare_works();
        let mut final_cmd = if via_unshare {
            let mut u = Command::new("unshare");
            u.args(["--pid", "--fork", "--kill-child", "--"]);
            u.arg(cmd.get_program());
            u.args(cmd.get_args());
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => u.env(k, v),
                    None => u.env_remove(k),
                };
            }
            if let Some(d) = cmd.get_current_dir() {
                u.current_dir(d);
            }
            u
        } else {
            cmd
        };
        final_cmd
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        Ok(Proc {
            child: Some(final_cmd.spawn()?),
            via_unshare,
        })
    }

    /// `Some(status)` if the process has exited.
    pub(crate) fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    /// SIGKILL the tree and reap it. Idempotent.
    pub(crate) fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = child.id() as libc::pid_t;
        let kids = if self.via_unshare {
            children_of(pid)
        } else {
            Vec::new()
        };
        if !kids.is_empty() {
            // Kill the namespace's init (the real program): the kernel then
            // kills and reaps everything else in the namespace, and unshare
            // exits once its child is gone.
            for c in kids {
                // SAFETY: plain kill(2) on a pid we just read as our grandchild.
                unsafe { libc::kill(c, libc::SIGKILL) };
            }
            let exited = poll_until(Duration::from_secs(5), Duration::from_millis(2), || {
                child.try_wait().ok().flatten()
            });
            if exited.is_none() {
                // SAFETY: kill(2) on our own child's process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        } else {
            // No unshare (or it has not forked yet): kill the whole group.
            // SAFETY: kill(2) on the process group we created for the child.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// PIDs whose parent is `pid` (from /proc/PID/task/*/children, else a scan).
fn children_of(pid: libc::pid_t) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    let tasks = format!("/proc/{pid}/task");
    let mut found_file = false;
    if let Ok(rd) = std::fs::read_dir(&tasks) {
        for t in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                found_file = true;
                out.extend(
                    s.split_whitespace()
                        .filter_map(|x| x.parse::<libc::pid_t>().ok()),
                );
            }
        }
    }
    if !found_file {
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                    continue;
                };
                // "pid (comm) state ppid ..."; comm may contain spaces/parens.
                if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) {
                    let ppid = rest.split_whitespace().nth(1).and_then(|x| x.parse().ok());
                    if ppid == Some(pid) {
                        out.push(p);
                    }
                }
            }
        }
    }
    out
}

/// The first value of header `name` (case-insensitive) in a list whose
/// names are already lowercased.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// A response from [`http_request`].
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::util::find_header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal blocking HTTP/1.1 client over plain TCP to `127.0.0.1:port`
/// (`Connection: close`; handles Content-Length, chunked and close-delimited
/// bodies). For talking to [`crate::Bao`] or a plain-HTTP [`crate::Origin`].
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<HttpResponse> {
    use std::io::Write;
    let mut s = connect_loopback(port)?;
    s.write_all(&request_bytes(port, method, path, headers, body))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw, method.eq_ignore_ascii_case("HEAD"))
}

/// Like [`http_request`], but over TLS (rustls, the given client config) to
/// `https://127.0.0.1:port`; the server certificate must be valid for the
/// IP address `127.0.0.1`.
pub(crate) fn https_request(
    port: u16,
    tls: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<HttpResponse> {
    use std::io::Write;
    let name = rustls_pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let conn = rustls::ClientConnection::new(Arc::clone(tls), name)
        .map_err(|e| std::io::Error::other(format!("tls client: {e}")))?;
    let mut s = rustls::StreamOwned::new(conn, connect_loopback(port)?);
    s.write_all(&request_bytes(port, method, path, headers, body))?;
    s.flush()?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        // A peer that closes without close_notify: the response is still
        // usable when it is complete (parse_response checks the length of
        // Content-Length and chunked bodies).
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse_response(&raw, method.eq_ignore_ascii_case("HEAD"))
}

/// A rustls client config (ring provider, ALPN `http/1.1`) that trusts only
/// the certificates in the PEM file `ca_pem`.
pub(crate) fn client_config_from_pem(ca_pem: &Path) -> std::io::Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let err = |e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", ca_pem.display()),
        )
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).map_err(|e| err(&e))? {
        roots.add(cert.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
    }
    if roots.is_empty() {
        return Err(err(&"no certificate"));
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| err(&e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn connect_loopback(port: u16) -> std::io::Result<std::net::TcpStream> {
    let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    Ok(s)
}

/// The request head (`Connection: close`, `Content-Length` if a body) and
/// body as one buffer.
fn request_bytes(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    out
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

fn parse_response(raw: &[u8], head_only: bool) -> std::io::Result<HttpResponse> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of response head"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let mut resp = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    if head_only {
        return Ok(resp);
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut i = 0;
        loop {
            let line_end = rest[i..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk size line"))?;
            let size_str = String::from_utf8_lossy(&rest[i..i + line_end]);
            let size_str = size_str.split(';').next().unwrap_or("").trim().to_string();
            let size = usize::from_str_radix(&size_str, 16).map_err(|_| bad("bad chunk size"))?;
            i += line_end + 2;
            if size == 0 {
                break;
            }
            if rest.len() < i + size {
                return Err(bad("truncated chunk"));
            }
            resp.body.extend_from_slice(&rest[i..i + size]);
            i += size + 2;
        }
    } else if let Some(len) = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        if rest.len() < len {
            return Err(bad("truncated body"));
        }
        resp.body = rest[..len].to_vec();
    } else {
        resp.body = rest.to_vec();
    }
    Ok(resp)
}
