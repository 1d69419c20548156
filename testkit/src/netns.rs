//! The boot-time network race, for real: two network namespaces joined by a
//! veth pair, an "instance" whose link comes up late and a "cloud" that
//! serves it, by name, through its own DNS server.
//!
//! * [`Netns`] — one named network namespace (`ip netns add`), deleted on
//!   Drop with its `/etc/netns/NAME/` directory. [`Netns::enter`] moves the
//!   *current thread* into it (`setns(2)`) for the length of a closure, and
//!   back afterwards (also when the closure panics): sockets created and
//!   processes spawned meanwhile live in the namespace. That is how testkit's
//!   [`Squid`], [`Bao`] and [`Origin`], which bind `127.0.0.1`, run in the
//!   cloud without any change to them. [`Netns::exec`] builds `ip netns exec
//!   NAME PROGRAM`, which also bind-mounts `/etc/netns/NAME/resolv.conf`
//!   over `/etc/resolv.conf` for that program ([`Netns::set_resolv_conf`]).
//! * [`NetnsPair`] — an instance and a cloud namespace joined by a veth pair
//!   (`eth0` on both sides, created directly inside the namespaces, so no
//!   name can clash with the host's), with loopback up in both. The pair
//!   gets its own `/30` in `10.250.0.0/16` (`.1` the cloud, `.2` the
//!   instance); the namespaces are private, so the ranges need not differ
//!   between pairs, but they do, which keeps logs readable. The cloud's
//!   address is there from the start (servers bind it even while its link
//!   is down). The network is down in one of two ways ([`Outage`]):
//!   `Unreachable` (the default: the instance's end is down with no
//!   address, as before DHCP, so every send fails at once with "network is
//!   unreachable") or `Silent` (the instance is configured and up but the
//!   cloud's end is down: packets vanish, lookups and connects hang).
//!   [`NetnsPair::link_up`] ends the outage with one `ip -batch` process and
//!   says when it returned. The instance's `resolv.conf` names the cloud's
//!   address, with glibc's defaults (5 s timeout, 2 attempts).
//! * [`Dnsmasq`] — a real `dnsmasq` (Debian's `dnsmasq-base`) in a
//!   namespace, answering only for its host records (`--no-resolv
//!   --no-hosts --local=/test/`: other `.test` names get NXDOMAIN, the
//!   records' AAAA get NODATA, everything else REFUSED), on the addresses
//!   given, port 53. Its log (every query) is kept for failure messages.
//! * [`Forward`] — a TCP port forwarder inside a namespace, to publish a
//!   server that listens on `127.0.0.1` (the OpenBao dev server) on the
//!   cloud's address.
//! * [`BootRace`] — everything together: the pair, and in the cloud DNS
//!   (`proxy.test` and `store.test` -> the cloud's address, `script.test` ->
//!   `127.0.0.1`, which only Squid resolves: [`Origin`] listens on loopback
//!   only, here the cloud's), a real Squid with basic auth on
//!   `proxy.test:3128` (an extra `http_port` line; CONNECT allowed to the
//!   origin's port only), a real OpenBao dev server on `store.test:8200`
//!   (through a [`Forward`]) holding the proxy password, and the HTTPS
//!   origin `script.test` (a leaf for that name from a [`TestCa`]) serving
//!   `/install.sh`, a script that writes the time it started
//!   ([`BootRace::script_started`]).
//!
//! Needs root (namespaces, veth, `setns`, dnsmasq on port 53), `ip`
//! (iproute2) and `dnsmasq`; [`check_available`] says what is missing.
//! Namespaces are named `tk-PID-N-ROLE`; ones left by a test process that
//! was killed (so that Drop did not run) are deleted by the next process
//! that creates a pair. Deleting a namespace does not end processes inside
//! it: every server here is owned by a handle that kills it on Drop, and
//! [`BootRace`] drops them before the namespaces.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::util;
use crate::{Bao, Origin, Reply, Squid, TestCa};

const START_TIMEOUT: Duration = Duration::from_secs(20);
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Why the namespace tests cannot run here, if they cannot: not root, or
/// `ip` or `dnsmasq` missing, or `ip netns add` refused. Checked once per
/// process.
pub fn check_available() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            // SAFETY: geteuid(2) has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Err("network namespaces need root".into());
            }
            for (program, package) in [("ip", "iproute2"), ("dnsmasq", "dnsmasq-base")] {
                if find_program(program).is_none() {
                    return Err(format!("`{program}` is not installed (Debian: {package})"));
                }
            }
            let probe = format!("tk-{}-probe", std::process::id());
            let out = run_ip(&["netns", "add", &probe], None);
            let _ = run_ip(&["netns", "del", &probe], None);
            out.map(|_| ())
        })
        .clone()
}

/// `program` on `PATH`, or in the sbin directories (not on every user's PATH).
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn ip_program() -> PathBuf {
    find_program("ip").unwrap_or_else(|| PathBuf::from("ip"))
}

/// Runs `ip ARGS` (with `stdin`, for `-batch -`); Err(its stderr) on failure.
fn run_ip(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = Command::new(ip_program())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn ip: {e}"))?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("ip stdin");
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("write to ip: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn setns(fd: &File, what: &str) {
    // SAFETY: setns(2) on a namespace file descriptor we hold open; it only
    // changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        panic!("setns into {what}: {}", std::io::Error::last_os_error());
    }
}

/// Deletes the namespaces `tk-PID-…` of processes that no longer exist (a
/// test killed before its Drop ran). Once per process.
fn remove_stale_namespaces() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(dir) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("tk-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run_ip(&["netns", "del", &name], None);
                let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&name));
            }
        }
    });
}

/// A named network namespace; deleted (with `/etc/netns/NAME/`) on Drop.
pub struct Netns {
    name: String,
    fd: File,
}

impl Netns {
    /// `ip netns add tk-PID-N-ROLE`, with loopback up.
    pub fn create(role: &str) -> Netns {
        remove_stale_namespaces();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("tk-{}-{n}-{role}", std::process::id());
        run_ip(&["netns", "add", &name], None).unwrap_or_else(|e| panic!("{e}"));
        let fd = match File::open(Path::new("/run/netns").join(&name)) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = run_ip(&["netns", "del", &name], None);
                panic!("open /run/netns/{name}: {e}");
            }
        };
        let ns = Netns { name, fd };
        ns.ip("link set lo up");
        ns
    }

    /// The name `ip netns` knows it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on the current thread inside this namespace, then moves the
    /// thread back where it was (also if `f` panics). Listeners bound and
    /// processes spawned by `f` stay in the namespace; threads spawned by
    /// `f` start in it.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Back(File);
        impl Drop for Back {
            fn drop(&mut self) {
                setns(&self.0, "the thread's own namespace");
            }
        }
        let home = File::open("/proc/thread-self/ns/net").expect("open /proc/thread-self/ns/net");
        setns(&self.fd, &self.name);
        let _back = Back(home);
        f()
    }

    /// `ip netns exec NAME PROGRAM`: the program runs in the namespace, with
    /// `/etc/netns/NAME/*` bind-mounted over `/etc/*` (`ip` execs it: the
    /// child's PID is the program's).
    pub fn exec(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(ip_program());
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// `ip -n NAME -batch -` with `commands`, one per line; panics with
    /// `ip`'s error if one fails.
    pub fn ip(&self, commands: &str) {
        run_ip(&["-n", &self.name, "-batch", "-"], Some(commands))
            .unwrap_or_else(|e| panic!("in namespace {}: {e}\n{commands}", self.name));
    }

    /// Writes `/etc/netns/NAME/resolv.conf`, which `ip netns exec` puts in
    /// place of `/etc/resolv.conf`.
    pub fn set_resolv_conf(&self, text: &str) {
        let dir = Path::new("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        util::write_file(&dir.join("resolv.conf"), text.as_bytes(), 0o644);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.name));
        // Leave /etc/netns itself to `ip`; another test may be using it.
        if let Err(e) = run_ip(&["netns", "del", &self.name], None) {
            eprintln!("testkit: {e}");
        }
    }
}

impl std::fmt::Debug for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Netns").field(&self.name).finish()
    }
}

/// The moment [`NetnsPair::link_up`] returned.
#[derive(Clone, Copy, Debug)]
pub struct LinkUp {
    pub at: Instant,
    /// The same moment on the wall clock (to compare with a timestamp a
    /// script wrote with `date +%s.%N`).
    pub wall: SystemTime,
    /// How long the `ip` command bringing the link up took (the network
    /// became usable at some point within it).
    pub took: Duration,
}

/// An instance and a cloud namespace joined by a veth pair (see the module
/// documentation). Drop deletes both (and so the veth pair).
pub struct NetnsPair {
    instance: Netns,
    cloud: Netns,
    cloud_ip: Ipv4Addr,
    instance_ip: Ipv4Addr,
    /// `None`: up.
    outage: Mutex<Option<Outage>>,
}

/// The interface name on both sides.
const IFACE: &str = "eth0";

impl NetnsPair {
    /// Both namespaces, the veth pair, the cloud side configured and up, the
    /// instance side down with no address, and the instance's resolv.conf.
    pub fn new() -> NetnsPair {
        let instance = Netns::create("instance");
        let cloud = Netns::create("cloud");
        // A /30 per pair: 10.250.A.B with B a multiple of 4.
        let index = COUNTER.fetch_add(1, Ordering::Relaxed) % (1 << 14);
        let base = u32::from(Ipv4Addr::new(10, 250, 0, 0)) + (index << 2);
        let cloud_ip = Ipv4Addr::from(base + 1);
        let instance_ip = Ipv4Addr::from(base + 2);
        // Both ends are created directly in their namespaces, so the names
        // cannot clash with the host's interfaces or another pair's.
        run_ip(
            &[
                "link",
                "add",
                IFACE,
                "netns",
                cloud.name(),
                "type",
                "veth",
                "peer",
                "name",
                IFACE,
                "netns",
                instance.name(),
            ],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        cloud.ip(&format!(
            "addr add {cloud_ip}/30 dev {IFACE}\nlink set {IFACE} up\n"
        ));
        instance.set_resolv_conf(&format!(
            "# testkit::netns: the cloud's dnsmasq\nnameserver {cloud_ip}\n"
        ));
        NetnsPair {
            instance,
            cloud,
            cloud_ip,
            instance_ip,
            outage: Mutex::new(Some(Outage::Unreachable)),
        }
    }

    pub fn instance(&self) -> &Netns {
        &self.instance
    }

    pub fn cloud(&self) -> &Netns {
        &self.cloud
    }

    /// The cloud end's address (`.1` of the pair's /30).
    pub fn cloud_ip(&self) -> Ipv4Addr {
        self.cloud_ip
    }

    /// The address [`NetnsPair::link_up`] gives the instance (`.2`).
    pub fn instance_ip(&self) -> Ipv4Addr {
        self.instance_ip
    }

    /// The network comes up for the instance. After [`Outage::Unreachable`]:
    /// its end goes up, then gets its address (one `ip -batch` process).
    /// After [`Outage::Silent`]: the cloud's end goes up. Returns when done.
    pub fn link_up(&self) -> LinkUp {
        let start = Instant::now();
        let mut state = self.outage.lock().unwrap();
        match state.take() {
            Some(Outage::Unreachable) => self.instance.ip(&format!(
                "link set {IFACE} up\naddr add {}/30 dev {IFACE}\n",
                self.instance_ip
            )),
            Some(Outage::Silent) => self.cloud.ip(&format!("link set {IFACE} up\n")),
            None => {}
        }
        LinkUp {
            at: Instant::now(),
            wall: SystemTime::now(),
            took: start.elapsed(),
        }
    }

    /// The network goes away again, as [`Outage::Unreachable`]: the
    /// instance's address is removed and its end goes down.
    pub fn link_down(&self) {
        self.take_down(Outage::Unreachable);
    }

    /// The network goes away, in the way `outage` says (whatever the state
    /// before).
    pub fn take_down(&self, outage: Outage) {
        let mut state = self.outage.lock().unwrap();
        let instance_ip = self.instance_ip;
        match outage {
            Outage::Unreachable => {
                self.instance.ip(&format!(
                    "addr flush dev {IFACE}\nneigh flush dev {IFACE}\nlink set {IFACE} down\n"
                ));
                self.cloud.ip(&format!("link set {IFACE} up\n"));
            }
            Outage::Silent => {
                self.cloud.ip(&format!("link set {IFACE} down\n"));
                self.instance.ip(&format!(
                    "addr flush dev {IFACE}\nneigh flush dev {IFACE}\nlink set {IFACE} up\n\
                     addr add {instance_ip}/30 dev {IFACE}\n"
                ));
            }
        }
        *state = Some(outage);
    }
}

/// How the instance's network is down (see [`NetnsPair::take_down`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// The instance's link is down and it has no address, as before DHCP:
    /// every send fails at once ("network is unreachable"), so a DNS lookup
    /// fails at once too.
    Unreachable,
    /// The instance is configured and its link is up, but the cloud's end
    /// is down (no carrier): packets vanish. Like a port the cloud has not
    /// wired yet. ARP for the cloud's address is probed every
    /// `net.ipv4.neigh.eth0.retrans_time_ms` (1 s) and fails after three
    /// probes (a TCP connect then gets "no route to host", a lookup a local
    /// error); a packet sent meanwhile waits in the neighbour queue and goes
    /// out when a probe is answered, so after the outage any client waits
    /// for the next probe: up to 1 s.
    Silent,
}

impl Default for NetnsPair {
    fn default() -> Self {
        Self::new()
    }
}

/// A running `dnsmasq` in a namespace; killed on Drop.
pub struct Dnsmasq {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq in `ns` on port 53 of each `listen` address, answering
    /// A queries for `records` (and nothing else); returns once it answers
    /// on every address (panics with its log after 20 s).
    pub fn start(ns: &Netns, listen: &[Ipv4Addr], records: &[(&str, Ipv4Addr)]) -> Dnsmasq {
        assert!(!listen.is_empty() && !records.is_empty());
        let dir = tempfile::Builder::new()
            .prefix("testkit-dnsmasq-")
            .tempdir()
            .expect("create dnsmasq temp dir");
        let log = File::create(dir.path().join("dnsmasq.log")).expect("create dnsmasq.log");
        let program = find_program("dnsmasq").unwrap_or_else(|| PathBuf::from("dnsmasq"));
        let mut cmd = Command::new(program);
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--pid-file",
            "--port=53",
            "--bind-interfaces",
            "--local=/test/",
            "--log-queries",
            "--log-facility=-",
        ]);
        for ip in listen {
            cmd.arg(format!("--listen-address={ip}"));
        }
        for (name, ip) in records {
            cmd.arg(format!("--host-record={name},{ip}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .process_group(0);
        let child = ns
            .enter(|| cmd.spawn())
            .unwrap_or_else(|e| panic!("spawn dnsmasq: {e}"));
        let mut dns = Dnsmasq {
            child: Some(child),
            dir,
        };
        let (name, want) = records[0];
        for ip in listen {
            let server = SocketAddr::from((*ip, 53));
            let ok = util::poll_until(START_TIMEOUT, Duration::from_millis(10), || {
                if ns.enter(|| resolve_a(server, name)).ok() == Some(want) {
                    return Some(true);
                }
                let child = dns.child.as_mut().expect("child");
                child.try_wait().ok().flatten().map(|_| false)
            });
            if ok != Some(true) {
                panic!(
                    "dnsmasq does not answer {name} on {server}:\n{}",
                    dns.logs()
                );
            }
        }
        dns
    }

    /// dnsmasq's log: start-up, and every query with its answer.
    pub fn logs(&self) -> String {
        util::read_lossy(&self.dir.path().join("dnsmasq.log"))
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One DNS query (UDP, type A, 300 ms) for `name` to `server`: the first
/// address of the answer.
pub fn resolve_a(server: SocketAddr, name: &str) -> std::io::Result<Ipv4Addr> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let id: u16 = 0x7e57;
    let mut query = Vec::new();
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; 1 question
    for label in name.trim_end_matches('.').split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]); // root; A; IN
    let socket = UdpSocket::bind(("0.0.0.0", 0))?;
    socket.set_read_timeout(Some(Duration::from_millis(300)))?;
    socket.send_to(&query, server)?;
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf)?;
    let reply = &buf[..n];
    if n < 12 || reply[..2] != id.to_be_bytes() {
        return Err(bad("not our answer"));
    }
    if reply[3] & 0x0f != 0 {
        return Err(bad(&format!("rcode {}", reply[3] & 0x0f)));
    }
    // Skip the question, then find the first A record of the answers.
    let mut i = query.len();
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    for _ in 0..answers {
        // Name: a pointer (2 bytes) or labels.
        while i < n {
            let len = reply[i] as usize;
            if len & 0xc0 == 0xc0 {
                i += 2;
                break;
            }
            i += 1 + len;
            if len == 0 {
                break;
            }
        }
        if i + 10 > n {
            break;
        }
        let kind = u16::from_be_bytes([reply[i], reply[i + 1]]);
        let len = u16::from_be_bytes([reply[i + 8], reply[i + 9]]) as usize;
        i += 10;
        if kind == 1 && len == 4 && i + 4 <= n {
            return Ok(Ipv4Addr::new(
                reply[i],
                reply[i + 1],
                reply[i + 2],
                reply[i + 3],
            ));
        }
        i += len;
    }
    Err(bad("no A record in the answer"))
}

/// A TCP forwarder in a namespace: every connection to `listen` is piped
/// to `target` (both as seen inside the namespace). Stops on Drop.
pub struct Forward {
    listen: SocketAddr,
    listener: Arc<TcpListener>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Forward {
    /// Listening when this returns. A connection `target` refuses is closed
    /// at once (the client sees EOF).
    pub fn start(ns: &Netns, listen: SocketAddr, target: SocketAddr) -> Forward {
        let listener = ns
            .enter(|| TcpListener::bind(listen))
            .unwrap_or_else(|e| panic!("bind {listen} in {}: {e}", ns.name()));
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let nsfd = ns.fd.try_clone().expect("dup namespace fd");
        let nsname = ns.name().to_string();
        let thread = {
            let (listener, stop, open, accepted) = (
                listener.clone(),
                stop.clone(),
                open.clone(),
                accepted.clone(),
            );
            std::thread::Builder::new()
                .name(format!("testkit-forward-{}", listen.port()))
                .spawn(move || {
                    // The connections to the target are made from here.
                    setns(&nsfd, &nsname);
                    forward_loop(&listener, target, &stop, &open, &accepted);
                })
                .expect("spawn forward thread")
        };
        Forward {
            listen,
            listener,
            stop,
            open,
            accepted,
            thread: Some(thread),
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

fn forward_loop(
    listener: &TcpListener,
    target: SocketAddr,
    stop: &AtomicBool,
    open: &Mutex<Vec<TcpStream>>,
    accepted: &AtomicUsize,
) {
    loop {
        let client = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok((client, _)) = client else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let clones = (client.try_clone(), upstream.try_clone());
        let (Ok(client2), Ok(upstream2)) = clones else {
            continue;
        };
        {
            let mut open = open.lock().unwrap();
            open.retain(|s| s.peer_addr().is_ok());
            if let (Ok(a), Ok(b)) = (client.try_clone(), upstream.try_clone()) {
                open.push(a);
                open.push(b);
            }
        }
        std::thread::spawn(move || pipe(client, upstream));
        std::thread::spawn(move || pipe(upstream2, client2));
    }
}

/// Copies `from` to `to` until EOF, then half-closes `to`.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept(2) (it fails with EINVAL).
        // SAFETY: shutdown(2) on a socket this struct keeps open.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// The proxy's name, as the instance is told it.
pub const PROXY_HOST: &str = "proxy.test";
/// Squid's port on the cloud's address.
pub const PROXY_PORT: u16 = 3128;
/// The credential store's name.
pub const STORE_HOST: &str = "store.test";
/// The store's port on the cloud's address.
pub const STORE_PORT: u16 = 8200;
/// The script host's name (resolved by Squid only, to the cloud's loopback).
pub const SCRIPT_HOST: &str = "script.test";
/// The proxy user.
pub const PROXY_USER: &str = "svc-boot";
/// The proxy password in the store, at `secret/data/PROXY_PASS` field
/// `value`. Holds `@`, `:` and `/` (percent-encoded in a proxy URL), but no
/// `"` or `\` (it goes into curl configs as is).
pub const PROXY_PASSWORD: &str = "b00t@r4ce:pa/ss";
/// The credential name in the tags: `cred:PROXY_PASS`.
pub const PROXY_SECRET: &str = "PROXY_PASS";

/// The whole scenario: a [`NetnsPair`] and, in its cloud, DNS, Squid,
/// OpenBao and the script's origin (see the module documentation).
/// Drop stops the servers, then deletes the namespaces.
pub struct BootRace {
    // Fields drop in this order: servers first, the namespaces last.
    store: Forward,
    origin: Origin,
    squid: Squid,
    bao: Bao,
    dns: Dnsmasq,
    token: String,
    ca: TestCa,
    dir: tempfile::TempDir,
    pair: NetnsPair,
}

impl BootRace {
    /// Builds everything; the instance's link is down when this returns.
    pub fn start() -> BootRace {
        let pair = NetnsPair::new();
        let cloud = pair.cloud();
        let cloud_ip = pair.cloud_ip();
        let dir = tempfile::Builder::new()
            .prefix("testkit-bootrace-")
            .tempdir()
            .expect("create boot race temp dir");
        let dns = Dnsmasq::start(
            cloud,
            &[cloud_ip, Ipv4Addr::LOCALHOST],
            &[
                (PROXY_HOST, cloud_ip),
                (STORE_HOST, cloud_ip),
                (SCRIPT_HOST, Ipv4Addr::LOCALHOST),
            ],
        );
        let ca = TestCa::new();
        let leaf = ca.issue(&[SCRIPT_HOST]);
        let mark = dir.path().join("script-started");
        let script = format!("#!/bin/sh\ndate +%s.%N > '{}'\n", mark.display());
        let origin = cloud.enter(|| {
            Origin::builder(Some(&ca))
                .tls_config(ca.server_config_for_cert(&leaf))
                .route("/install.sh", vec![], Reply::ok(script))
                .start()
        });
        let squid = cloud.enter(|| {
            Squid::builder()
                .basic_auth(PROXY_USER, PROXY_PASSWORD)
                .allow_connect_ports(&[origin.port()])
                .extra_config(&format!("http_port {cloud_ip}:{PROXY_PORT}"))
                .start()
        });
        let want = format!("local={cloud_ip}:{PROXY_PORT} ");
        let listening = util::poll_until(START_TIMEOUT, Duration::from_millis(5), || {
            squid.cache_log().contains(&want).then_some(())
        });
        assert!(
            listening.is_some(),
            "squid does not listen on {cloud_ip}:{PROXY_PORT}:\n{}",
            squid.logs()
        );
        let (bao, token) = cloud.enter(|| {
            let bao = Bao::start();
            bao.put_kv2("secret", PROXY_SECRET, &[("value", PROXY_PASSWORD)]);
            let token = bao.create_token(&format!(
                "path \"secret/data/{PROXY_SECRET}\" {{ capabilities = [\"read\"] }}"
            ));
            (bao, token)
        });
        let store = Forward::start(
            cloud,
            SocketAddr::from((cloud_ip, STORE_PORT)),
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, bao.port())),
        );
        BootRace {
            store,
            origin,
            squid,
            bao,
            dns,
            token,
            ca,
            dir,
            pair,
        }
    }

    pub fn pair(&self) -> &NetnsPair {
        &self.pair
    }

    /// The instance's namespace (run clients with [`Netns::exec`]).
    pub fn instance(&self) -> &Netns {
        self.pair.instance()
    }

    /// See [`NetnsPair::link_up`].
    pub fn link_up(&self) -> LinkUp {
        self.pair.link_up()
    }

    /// See [`NetnsPair::link_down`].
    pub fn link_down(&self) {
        self.pair.link_down()
    }

    /// See [`NetnsPair::take_down`].
    pub fn take_down(&self, outage: Outage) {
        self.pair.take_down(outage)
    }

    /// `"proxy.test:3128"`.
    pub fn proxy(&self) -> String {
        format!("{PROXY_HOST}:{PROXY_PORT}")
    }

    /// `"http://store.test:8200"` (`VAULT_ADDR`).
    pub fn store_addr(&self) -> String {
        format!("http://{STORE_HOST}:{STORE_PORT}")
    }

    /// A token that may read the proxy password only (`VAULT_TOKEN`).
    pub fn store_token(&self) -> &str {
        &self.token
    }

    /// `"https://script.test:PORT/install.sh"`.
    pub fn script_url(&self) -> String {
        format!("https://{SCRIPT_HOST}:{}/install.sh", self.origin.port())
    }

    /// The CA that issued the script host's certificate (`--ca-file`).
    pub fn ca_pem_path(&self) -> &Path {
        self.ca.ca_pem_path()
    }

    /// When the script last started (the `date +%s.%N` it wrote), if it has
    /// since [`BootRace::clear_script_mark`].
    pub fn script_started(&self) -> Option<SystemTime> {
        let text = std::fs::read_to_string(self.mark()).ok()?;
        let seconds: f64 = text.trim().parse().ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds))
    }

    /// Forget the script's last start (before the next run).
    pub fn clear_script_mark(&self) {
        let _ = std::fs::remove_file(self.mark());
    }

    fn mark(&self) -> PathBuf {
        self.dir.path().join("script-started")
    }

    /// A private directory for the caller's files (state dirs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn squid(&self) -> &Squid {
        &self.squid
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn bao(&self) -> &Bao {
        &self.bao
    }

    pub fn dns(&self) -> &Dnsmasq {
        &self.dns
    }

    /// Connections the store's forwarder accepted (tries that reached it).
    pub fn store_connections(&self) -> usize {
        self.store.connections()
    }

    /// Every server's log, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "=== dnsmasq ===\n{}\n=== squid ===\n{}\n--- access.log ---\n{}\n=== bao ===\n{}",
            self.dns.logs(),
            self.squid.logs(),
            self.squid.access_log(),
            self.bao.logs()
        )
    }
}
