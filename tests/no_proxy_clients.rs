//! The no-proxy list against the clients a script really runs (SPEC §4): for
//! every case (a host and a no-proxy list) tagstrap says whether it goes
//! direct and what it exports, then real curl, wget, Python's urllib and
//! requests are given that environment and the test watches where each goes.
//!
//! The cases are data, in `tests/data/no_proxy/`: curl's own unit table
//! (unit1614, with its CIDR rows), Go's x/net httpproxy table, and
//! tagstrap's own edge cases, each file citing where its facts come from.
//!
//! * tagstrap's decision: the real binary, `tagstrap plan` per case, with
//!   nothing from this machine but PATH. Its `route:` line is the decision,
//!   its `no_proxy:` line the exported value, its JSON warnings (fields
//!   `no_proxy_entry` and `clients`) the clients it says will not honour an
//!   entry. Exit 65 naming a "no-proxy entry" is a refused list; naming the
//!   script URL, a host the URL parser refuses ("bad URL").
//! * The clients run in a network namespace the test makes, with only `lo`
//!   up: the proxy is a loopback listener that records each request line
//!   and answers 403, the catcher one that records each connection. curl's
//!   direct attempts are pointed at the catcher with `--connect-to`,
//!   Python's by a resolver override; wget's fail (no DNS, no route), which
//!   is fine: a client went through the proxy iff the proxy saw a request
//!   while it ran (the attempts are one at a time).
//! * Asserted: tagstrap decides as curl's tables say (curl's answer for the
//!   list, or direct for a host the defaults tagstrap always adds cover);
//!   every client goes where tagstrap went, unless a warning for that list
//!   names the client (for curl: the installed version's class) or a
//!   host-form rule ([`HOST_FORM_RULES`]) excuses it. Go's answers are only
//!   counted. The counts are printed at the end, for the CI log.
//!
//! Needs root (namespaces), `ip`, curl, wget, python3 with requests
//! (`.ci/install`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use testkit::netns::{self, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_tagstrap");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/no_proxy");

// ---------------------------------------------------------------------------
// The cases

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Direct,
    Proxy,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Route::Direct => "direct",
            Route::Proxy => "proxy",
        })
    }
}

struct Case {
    /// `file:line`, for messages.
    origin: String,
    file: &'static str,
    /// As written: a name, an IPv4 address or a bracketed IPv6 address,
    /// each perhaps with `:port`, or a bare IPv6 address.
    host: String,
    list: String,
    /// The table's answer for the list as written (`-`: none).
    expected: Option<Route>,
}

const CURL_TABLE: &str = "curl_unit1614.tsv";
const GO_TABLE: &str = "go_httpproxy.tsv";
const EDGE_CASES: &str = "edge_cases.tsv";

fn load(file: &'static str) -> Vec<Case> {
    let path = Path::new(DATA).join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [host, list, expected] = fields[..] else {
            panic!("{file}:{}: not host<TAB>list<TAB>expected: {line:?}", n + 1);
        };
        let expected = match expected {
            "direct" => Some(Route::Direct),
            "proxy" => Some(Route::Proxy),
            "-" => None,
            other => panic!("{file}:{}: expected {other:?}", n + 1),
        };
        cases.push(Case {
            origin: format!("{file}:{}", n + 1),
            file,
            host: host.to_string(),
            list: list.to_string(),
            expected,
        });
    }
    cases
}

/// The URL's authority for a case's host: a bare IPv6 address in brackets.
fn authority(host: &str) -> String {
    if !host.starts_with('[') && host.matches(':').count() >= 2 {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The host without brackets or port.
fn bare_host(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() >= 2 {
        host
    } else {
        host.split(':').next().unwrap_or(host)
    }
}

/// Whether the entries tagstrap always adds (`localhost`, `127.0.0.1`,
/// `::1`, `169.254.169.254`: SPEC §4) cover `host` by curl's rules, so that
/// tagstrap rightly goes direct where the table, asked about the list alone,
/// says proxy. A name matches `localhost` and its subdomains (curl drops a
/// trailing dot); an address matches only itself, in any spelling (curl
/// compares IPv6 in binary and swallows a dot after an IPv4 address).
fn covered_by_defaults(host: &str) -> bool {
    let host = bare_host(host).to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            ip == Ipv4Addr::LOCALHOST
                || ip == Ipv6Addr::LOCALHOST
                || ip == Ipv4Addr::new(169, 254, 169, 254)
        }
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    }
}

// ---------------------------------------------------------------------------
// tagstrap's decision

#[derive(Debug)]
enum Plan {
    Decided {
        route: Route,
        exported: String,
        /// (entry, client ids) of each warning.
        warnings: Vec<(String, Vec<String>)>,
    },
    /// Exit 65 with the one error line naming a "no-proxy entry".
    Refused,
    /// Exit 65 naming the script URL: the URL parser refused the host.
    BadUrl,
}

/// `tagstrap plan` for one case, in the namespace (it reaches nothing, but
/// nothing in this test gets a chance to).
fn plan(ns: &Netns, state: &Path, empty: &Path, case: &Case, proxy: SocketAddr) -> Plan {
    let out = ns
        .exec(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["plan", "--log-format", "json", "--source", "none"])
        // Empty config and tags files: nothing from /etc/tagstrap.
        .arg("--config")
        .arg(empty)
        .arg("--tags-file")
        .arg(empty)
        .arg("--state-dir")
        .arg(state)
        .arg(format!("--tag=rs_agent:http_proxy={proxy}"))
        .arg(format!("--tag=rs_agent:http_no_proxy={}", case.list))
        .arg(format!(
            "--tag=rs_agent:mime_shellscript=https://{}/install.sh",
            authority(&case.host)
        ))
        .stdin(Stdio::null())
        .output()
        .expect("spawn tagstrap plan");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let field = |v: &serde_json::Value, name: &str| {
        v.get(name)
            .or_else(|| v.get("fields").and_then(|f| f.get(name)))
            .and_then(|f| f.as_str())
            .map(str::to_string)
    };
    match out.status.code() {
        Some(0) => {}
        Some(65) => {
            let errors: Vec<String> = logs
                .iter()
                .filter(|v| v["level"] == "ERROR")
                .filter_map(|v| field(v, "message"))
                .collect();
            let [error] = &errors[..] else {
                panic!(
                    "{}: plan exited 65 with {} error lines:\n{stderr}",
                    case.origin,
                    errors.len()
                );
            };
            if error.contains("no-proxy entry") {
                return Plan::Refused;
            }
            if error.contains("rs_agent:mime_shellscript") {
                return Plan::BadUrl;
            }
            panic!(
                "{}: plan exited 65 for another reason: {error}",
                case.origin
            );
        }
        code => panic!(
            "{}: plan exited {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            case.origin
        ),
    }
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{}: no {prefix:?} line in plan:\n{stdout}", case.origin))
            .to_string()
    };
    let route = line("route:");
    let route = if route == "direct (matches no_proxy)" {
        Route::Direct
    } else if route.starts_with("through the proxy") {
        Route::Proxy
    } else {
        panic!("{}: route {route:?}", case.origin)
    };
    let warnings = logs
        .iter()
        .filter(|v| v["level"] == "WARN")
        .filter_map(|v| {
            let entry = field(v, "no_proxy_entry")?;
            let clients = field(v, "clients")?;
            Some((
                entry,
                clients.split(',').map(|c| c.trim().to_string()).collect(),
            ))
        })
        .collect();
    Plan::Decided {
        route,
        exported: line("no_proxy:"),
        warnings,
    }
}

// ---------------------------------------------------------------------------
// The proxy and the catcher

/// A loopback listener in the namespace that records what each connection
/// shows (the proxy: the request line, then 403; the catcher: nothing, it
/// closes at once). A record is made before the answer, so a client that
/// has finished has been recorded. Stops on Drop.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    listener: Arc<TcpListener>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    fn start(ns: &Netns, proxy: bool) -> Recorder {
        let listener = ns
            .enter(|| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind 127.0.0.1:0 in the namespace");
        let addr = listener.local_addr().unwrap();
        let listener = Arc::new(listener);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (listener, seen) = (listener.clone(), seen.clone());
            std::thread::spawn(move || {
                // Fails once Drop shuts the socket down.
                while let Ok((stream, peer)) = listener.accept() {
                    if proxy {
                        let seen = seen.clone();
                        std::thread::spawn(move || answer_403(stream, &seen));
                    } else {
                        seen.lock().unwrap().push(peer.to_string());
                    }
                }
            })
        };
        Recorder {
            addr,
            seen,
            listener,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn since(&self, n: usize) -> Vec<String> {
        self.seen.lock().unwrap()[n..].to_vec()
    }
}

/// Records the request line (up to the blank line that ends the head), then
/// refuses: a client told 403 gives up, which ends its attempt.
fn answer_403(mut stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let line = head.lines().next().unwrap_or("(nothing)").to_string();
    seen.lock().unwrap().push(line);
    let _ = stream
        .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.shutdown(Shutdown::Both);
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Wakes the blocked accept(2), which then fails.
        // SAFETY: shutdown(2) on a socket this struct keeps open.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The clients

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Curl,
    Wget,
    Urllib,
    Requests,
}

const CLIENTS: [Client; 4] = [Client::Curl, Client::Wget, Client::Urllib, Client::Requests];

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Curl => "curl",
            Client::Wget => "wget",
            Client::Urllib => "urllib",
            Client::Requests => "requests",
        }
    }
}

/// The installed clients: their paths, versions, and the Python driver.
struct Clients {
    curl: PathBuf,
    curl_version: (u32, u32, u32),
    wget: PathBuf,
    wget_version: String,
    python_version: String,
    requests_version: String,
    python: Python,
}

impl Clients {
    /// Whether a warning's (or a host-form rule's) client ids name `client`;
    /// for curl, the classes the installed version is in.
    fn named(&self, client: Client, ids: &[impl AsRef<str>]) -> bool {
        ids.iter().any(|id| {
            let id = id.as_ref();
            match (client, id.strip_prefix("curl<")) {
                (Client::Curl, Some(below)) => self.curl_version < parse_version(below),
                (Client::Curl, None) => false,
                (other, _) => other.name() == id,
            }
        })
    }

    fn label(&self, client: Client) -> String {
        match client {
            Client::Curl => {
                let (a, b, c) = self.curl_version;
                format!("curl {a}.{b}.{c}")
            }
            Client::Wget => format!("wget {}", self.wget_version),
            Client::Urllib => format!("urllib (Python {})", self.python_version),
            Client::Requests => format!("requests {}", self.requests_version),
        }
    }
}

/// `7.88.1` → (7, 88, 1); missing parts are 0.
fn parse_version(text: &str) -> (u32, u32, u32) {
    let mut parts = text
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

fn find_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed (run .ci/install)"))
}

/// The first line a program prints for `ARGS`.
fn first_line(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The Python driver (`tests/data/no_proxy/python_clients.py`), one process
/// in the namespace for every case: a request line in, an answer line out.
struct Python {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: PathBuf,
}

impl Python {
    fn ask(&mut self, client: Client, url: &str, env: &[(&str, String)]) -> String {
        let env: serde_json::Map<String, serde_json::Value> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone().into()))
            .collect();
        let request = serde_json::json!({"client": client.name(), "url": url, "env": env});
        writeln!(self.stdin, "{request}").expect("write to the Python driver");
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).unwrap_or(0);
        if n == 0 {
            panic!(
                "the Python driver ended:\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        }
        let answer: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("Python driver said {line:?}: {e}"));
        answer["outcome"].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment every client gets: the proxy for both schemes, the
/// exported list in both spellings, PATH and a UTF-8 locale, nothing else.
fn client_env(proxy: SocketAddr, exported: &str) -> Vec<(&'static str, String)> {
    let proxy_url = format!("http://{proxy}");
    vec![
        ("https_proxy", proxy_url.clone()),
        ("http_proxy", proxy_url),
        ("no_proxy", exported.to_string()),
        ("NO_PROXY", exported.to_string()),
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("LANG", "C.UTF-8".to_string()),
    ]
}

/// The proxy, the catcher and the clients, in the namespace the test made.
struct Lab {
    proxy: Recorder,
    catcher: Recorder,
    clients: Clients,
}

/// What one client did for one case.
struct Attempt {
    route: Route,
    /// What the proxy and the catcher saw, and what the client said.
    detail: String,
}

impl Lab {
    fn start(ns: &Netns, dir: &Path) -> Lab {
        let proxy = Recorder::start(ns, true);
        let catcher = Recorder::start(ns, false);

        let curl = find_program("curl");
        let curl_line = first_line(&curl, &["--version"]);
        let curl_version = parse_version(curl_line.split_whitespace().nth(1).unwrap_or(""));
        let wget = find_program("wget");
        let wget_line = first_line(&wget, &["--version"]);
        let wget_version = wget_line
            .split_whitespace()
            .nth(2)
            .unwrap_or("?")
            .to_string();
        // The interpreter itself, not a wrapper (pyenv's shims need HOME):
        // it runs with a clean environment.
        let python3 = find_program("python3");
        let python_exe = first_line(&python3, &["-c", "import sys; print(sys.executable)"]);
        let stderr = dir.join("python.stderr");
        let mut child = ns
            .exec(&python_exe)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LANG", "C.UTF-8")
            .arg(Path::new(DATA).join("python_clients.py"))
            .arg(proxy.addr.port().to_string())
            .arg(catcher.addr.port().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn the Python driver");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut hello = String::new();
        stdout.read_line(&mut hello).unwrap();
        let hello: serde_json::Value = serde_json::from_str(&hello).unwrap_or_else(|_| {
            panic!(
                "the Python driver did not start:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        });
        let python_version = hello["python"].as_str().unwrap_or("?").to_string();
        let requests_version = hello["requests"]
            .as_str()
            .unwrap_or_else(|| {
                panic!("{python_exe} has no `requests` (run .ci/install: python3-requests)")
            })
            .to_string();
        Lab {
            proxy,
            catcher,
            clients: Clients {
                curl,
                curl_version,
                wget,
                wget_version,
                python_version,
                requests_version,
                python: Python {
                    child,
                    stdin,
                    stdout,
                    stderr,
                },
            },
        }
    }

    /// Runs `client` on `https://HOST/` with `exported` as its no-proxy
    /// list; the route is "proxy" iff the proxy saw a request meanwhile.
    fn attempt(&mut self, ns: &Netns, client: Client, host: &str, exported: &str) -> Attempt {
        let url = format!("https://{}/", authority(host));
        let env = client_env(self.proxy.addr, exported);
        let (proxy_before, catcher_before) = (self.proxy.count(), self.catcher.count());
        let said = match client {
            Client::Curl | Client::Wget => {
                let mut cmd = match client {
                    Client::Curl => {
                        let mut c = ns.exec(&self.clients.curl);
                        c.args(["-s", "-k", "-m", "5", "--connect-to"])
                            .arg(format!("::127.0.0.1:{}", self.catcher.addr.port()));
                        c
                    }
                    _ => {
                        let mut c = ns.exec(&self.clients.wget);
                        c.args(["-q", "-t", "1", "-T", "5", "--no-check-certificate"])
                            .args(["-O", "/dev/null"]);
                        c
                    }
                };
                let out = cmd
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .arg(&url)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap_or_else(|e| panic!("spawn {}: {e}", client.name()));
                format!(
                    "exit {:?} {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            }
            Client::Urllib | Client::Requests => self.clients.python.ask(client, &url, &env),
        };
        let to_proxy = self.proxy.since(proxy_before);
        let to_catcher = self.catcher.count() - catcher_before;
        Attempt {
            route: if to_proxy.is_empty() {
                Route::Direct
            } else {
                Route::Proxy
            },
            detail: format!(
                "proxy saw {to_proxy:?}, catcher {to_catcher} connection(s); {}: {said}",
                client.name()
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// What may excuse a client's disagreement

/// The clients' documented limits with some forms of the *host*, which
/// tagstrap cannot warn about (a warning is about an entry of the list; the
/// host is whatever URL the script fetches). One row per limit: the form,
/// the client ids it applies to (as in tagstrap's warnings), and why.
/// Nothing else excuses a disagreement.
#[allow(clippy::type_complexity)]
const HOST_FORM_RULES: &[(&str, fn(&str) -> bool, &[&str])] = &[
    // An IPv4 address with a trailing dot (`10.1.2.3.`): curl from 8.21
    // drops the dot and reads the address; older curl, wget, urllib and
    // requests take it for a name, so address and CIDR entries miss it.
    (
        "a trailing-dot IPv4 host is read as a name",
        |h| {
            h.strip_suffix('.')
                .is_some_and(|a| a.parse::<Ipv4Addr>().is_ok())
        },
        &["curl<8.21", "wget", "urllib", "requests"],
    ),
    // A name with a trailing dot (`a.corp.`): curl drops the dot before
    // matching; wget, urllib and requests compare it with the dot, so
    // `a.corp` does not match `a.corp.`.
    (
        "a trailing-dot name host is not matched",
        |h| {
            h.strip_suffix('.')
                .is_some_and(|a| !a.is_empty() && a.parse::<Ipv4Addr>().is_err())
        },
        &["wget", "urllib", "requests"],
    ),
    // An IPv6 address not written canonically (`0:0::1`, `FD00::1`): curl
    // normalizes the URL's host; wget, urllib and requests compare the
    // host's text with the entry's.
    (
        "an IPv6 host written non-canonically is compared as a string",
        |h| h.parse::<Ipv6Addr>().is_ok_and(|a| a.to_string() != h),
        &["wget", "urllib", "requests"],
    ),
    // An IPv4 address not written as four decimal numbers (`10.1.2`,
    // `0x0a.0.0.1`, `167772161`): URL parsers (WHATWG, which tagstrap uses,
    // and curl) turn it into the dotted quad; wget, urllib and requests
    // compare its text, so the address entry misses it.
    (
        "an IPv4 host not written as a dotted quad is compared as text",
        |h| {
            h.parse::<Ipv4Addr>().is_err()
                && !h.ends_with('.')
                && url::Url::parse(&format!("https://{h}/"))
                    .is_ok_and(|u| matches!(u.host(), Some(url::Host::Ipv4(_))))
        },
        &["wget", "urllib", "requests"],
    ),
];

/// The host-form rule that excuses `client` on `host`, if one does.
fn host_form_excuse(clients: &Clients, client: Client, host: &str) -> Option<&'static str> {
    let bare = bare_host(host);
    HOST_FORM_RULES
        .iter()
        .find(|(_, applies, ids)| applies(bare) && clients.named(client, ids))
        .map(|(why, _, _)| *why)
}

// ---------------------------------------------------------------------------
// The suite

#[derive(Default)]
struct Tally {
    agree: usize,
    warned: usize,
    host_form: usize,
    differ: usize,
}

/// The namespace every part of a test runs in: only `lo`, up
/// (`Netns::create` brings it up), and name lookups that fail at once
/// (nothing answers on 127.0.0.1:53) instead of asking this machine's
/// resolver.
fn namespace() -> Netns {
    if let Err(why) = netns::check_available() {
        panic!("this test builds network namespaces: {why} (run .ci/install, as root)");
    }
    let ns = Netns::create("noproxy");
    ns.set_resolv_conf("# tests/no_proxy_clients.rs: no DNS\nnameserver 127.0.0.1\n");
    ns
}

/// A 0700 state directory and an empty file (for `--config` and
/// `--tags-file`, so that nothing comes from /etc/tagstrap) in `dir`.
fn state_and_empty(dir: &Path) -> (PathBuf, PathBuf) {
    let state = dir.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, "").unwrap();
    (state, empty)
}

#[test]
fn the_clients_go_where_tagstrap_goes_with_the_list_it_exports() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (state, empty) = state_and_empty(dir.path());
    let ns = namespace();
    let mut lab = Lab::start(&ns, dir.path());
    let proxy = lab.proxy.addr;

    let cases: Vec<Case> = [CURL_TABLE, GO_TABLE, EDGE_CASES]
        .into_iter()
        .flat_map(load)
        .collect();
    let mut failures: Vec<String> = Vec::new();
    let (mut refused, mut bad_url) = (0, 0);
    let mut tallies: Vec<Tally> = CLIENTS.iter().map(|_| Tally::default()).collect();
    let (mut go_rows, mut go_differ, mut go_refused) = (0, 0, 0);
    let (mut curl_rows, mut curl_refused) = (0, 0);

    std::thread::scope(|scope| {
        // tagstrap decides the next cases while the clients try this one:
        // plan touches neither the proxy nor the catcher, so the counting
        // stays exact, and the suite takes half as long.
        let (plans, decided) = std::sync::mpsc::sync_channel(16);
        let (ns, cases, state, empty) = (&ns, &cases, &state, &empty);
        scope.spawn(move || {
            for case in cases {
                if plans.send(plan(ns, state, empty, case, proxy)).is_err() {
                    return; // the main thread panicked
                }
            }
        });

        for case in cases {
            let decision = decided.recv().expect("the plan thread ended early");
            let (route, exported, warnings) = match decision {
                Plan::Decided {
                    route,
                    exported,
                    warnings,
                } => (route, exported, warnings),
                Plan::Refused => {
                    refused += 1;
                    go_refused += usize::from(case.file == GO_TABLE && case.expected.is_some());
                    curl_refused += usize::from(case.file == CURL_TABLE);
                    continue;
                }
                Plan::BadUrl => {
                    bad_url += 1;
                    continue;
                }
            };
            let shown = format!(
                "{} host {:?} list {:?}: tagstrap goes {route}, exports no_proxy={exported:?}, \
                 warns {warnings:?}",
                case.origin, case.host, case.list
            );

            // tagstrap against the table it was built to follow.
            if let Some(table) = case.expected {
                if case.file == GO_TABLE {
                    go_rows += 1;
                    go_differ += usize::from(table != route);
                } else {
                    curl_rows += usize::from(case.file == CURL_TABLE);
                    let want = if covered_by_defaults(&case.host) {
                        Route::Direct
                    } else {
                        table
                    };
                    if want != route {
                        let why = if want != table {
                            ", the defaults cover the host"
                        } else {
                            ""
                        };
                        failures.push(format!(
                            "{shown}; curl's answer is {want} (the table says {table}{why})"
                        ));
                    }
                }
            }

            // Every client against tagstrap.
            for (&client, tally) in CLIENTS.iter().zip(tallies.iter_mut()) {
                let attempt = lab.attempt(ns, client, &case.host, &exported);
                if attempt.route == route {
                    tally.agree += 1;
                } else if warnings
                    .iter()
                    .any(|(_, ids)| lab.clients.named(client, ids))
                {
                    tally.warned += 1;
                } else if host_form_excuse(&lab.clients, client, &case.host).is_some() {
                    tally.host_form += 1;
                } else {
                    tally.differ += 1;
                    failures.push(format!(
                        "{shown}; {} goes {} ({})",
                        lab.clients.label(client),
                        attempt.route,
                        attempt.detail
                    ));
                }
            }
        }
    });

    let per_client: Vec<String> = CLIENTS
        .iter()
        .zip(&tallies)
        .map(|(&client, t)| {
            format!(
                "{}: {} agree, {} warned, {} host form, {} differ",
                lab.clients.label(client),
                t.agree,
                t.warned,
                t.host_form,
                t.differ
            )
        })
        .collect();
    // Written to stderr directly, not with println!: the test harness keeps
    // a passing test's printed output to itself, and the CI log (`cargo
    // test --workspace`, .ci/run) must show the counts.
    let _ = writeln!(
        std::io::stderr(),
        "no_proxy clients: {} cases ({refused} refused, {bad_url} bad URL); {}; \
         curl table: {curl_rows} rows checked against curl's answer ({curl_refused} refused); \
         go table: {go_differ} of {go_rows} differ from tagstrap (information; {go_refused} \
         refused); {:.1} s",
        cases.len(),
        per_client.join("; "),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} disagreement(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// End to end through `tagstrap run`: a `file://` script whose curl fetches
/// a host the list bypasses and one it does not. The proxy sees exactly one
/// CONNECT, for the second, and the catcher one connection, from the first:
/// the script's curl had the environment tagstrap exported.
#[test]
fn a_run_gives_the_scripts_curl_the_exported_list() {
    let dir = tempfile::tempdir().unwrap();
    let (state, empty) = state_and_empty(dir.path());
    let ns = namespace();
    let proxy = Recorder::start(&ns, true);
    let catcher = Recorder::start(&ns, false);
    let curl = find_program("curl");
    // The bypassed host is sent to the catcher (--connect-to); the other
    // goes as is, so the proxy's CONNECT names it.
    let script = dir.path().join("install.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             {curl} -s -k -m 5 --connect-to ::127.0.0.1:{catcher} https://repo.corp.example/\n\
             echo \"bypassed: curl exit $?\"\n\
             {curl} -s -k -m 5 https://elsewhere.example/\n\
             echo \"proxied: curl exit $?\"\n\
             echo \"no_proxy=$no_proxy\"\n",
            curl = curl.display(),
            catcher = catcher.addr.port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();

    let out = ns
        .exec(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["run", "--source", "none", "--config"])
        .arg(&empty)
        .arg("--tags-file")
        .arg(&empty)
        .arg("--state-dir")
        .arg(&state)
        .arg(format!("--tag=rs_agent:http_proxy={}", proxy.addr))
        .arg("--tag=rs_agent:http_no_proxy=.corp.example")
        .arg(format!(
            "--tag=rs_agent:mime_shellscript=file://{}",
            script.display()
        ))
        .stdin(Stdio::null())
        .output()
        .expect("spawn tagstrap run");
    let shown = format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "tagstrap run failed\n{shown}");
    assert_eq!(
        proxy.since(0),
        ["CONNECT elsewhere.example:443 HTTP/1.1"],
        "the proxy should see the one host the list does not bypass\n{shown}"
    );
    assert_eq!(
        catcher.count(),
        1,
        "the bypassed host should be reached directly\n{shown}"
    );
}
