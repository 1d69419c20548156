//! The network trust boundaries (SPEC §2, §6, §8), attacked through the real
//! binary against real servers on loopback (and, for a store reached by
//! name, in the network namespaces of testkit's `BootRace`):
//!
//! - a credential store over plain `http://` on a host that is not loopback
//!   is refused before any request, unless `[vault] insecure_http = true`,
//!   which works with one warning per run and shows in `doctor`;
//! - the script download follows redirects hop by hop: no `Referer` (a
//!   presigned URL's signature stays with its host), each hop routed by the
//!   no-proxy list and authenticated to the proxy as a first request would
//!   be, the https-only rule (http too when pinned) with its own message,
//!   and a proxy's refusal naming the hop it refused;
//! - a peer that answers, but not in HTTP (garbage, an endless header), is
//!   backed off from like a failing server, not polled like a network that
//!   is down;
//! - a certificate that is expired, made out for other names, or from an
//!   unknown CA gets the hint that fits it, at the script host, the store
//!   and the proxy, in `run` and in `doctor`.
//!
//! Every refusal: its exit code, exactly one error line saying what and
//! what to do, nothing run, no secret in the output.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{sha256_hex, write_file, Run, Tagstrap, Witness};
use tagstrap::net::retry::{BACKOFF_BASE, LATENESS_FLOOR, NETWORK_DOWN_CAP};
use testkit::{Bao, IssuedCert, Origin, OriginBuilder, Reply, Squid, TestCa};

const USER: &str = "svc-agent";
/// Holds every character that breaks a naive proxy URL.
const PASSWORD: &str = "p@ss:/%w0rd-n3t";
const ORIGIN_IP: &str = "127.0.0.2";
const PIN_TAG: &str = "rs_agent:mime_shellscript_sha256";

fn origin_ip() -> IpAddr {
    ORIGIN_IP.parse().unwrap()
}

// --- Stores over plain http:// -------------------------------------------

/// `tagstrap run` with proxy tags whose password is `cred:PROXY_PASS`, and
/// a witness script (the proxy is never contacted: the script is a file).
fn run_with_credential() -> (Tagstrap, Witness) {
    let witness = Witness::new();
    let t = Tagstrap::new("run")
        .tag("rs_agent:http_proxy", "proxy.test:3128")
        .tag("rs_agent:http_proxy_user", USER)
        .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
        .tag("rs_agent:mime_shellscript", &witness.url());
    (t, witness)
}

#[test]
fn a_plain_http_store_off_loopback_is_refused_before_any_request() {
    const TOKEN: &str = "t0ken-plain-http";
    // `.invalid` never resolves (RFC 2606): a request would fail its tries
    // until the deadline (69), not stop at once with 78.
    let (t, witness) = run_with_credential();
    let run = t
        .vault("http://vault.invalid:8200", TOKEN)
        .arg("--deadline")
        .arg("30")
        .run();
    run.assert_error(
        78,
        "$VAULT_ADDR: the store address http://vault.invalid:8200 is plain http:// to a host \
         that is not a loopback address",
    )
    .assert_no_leak(TOKEN);
    let line = run.error_lines()[0];
    assert!(line.contains("Use https://"), "{line}");
    assert!(
        line.contains("set insecure_http = true in the [vault] section"),
        "{line}"
    );
    assert_eq!(run.failed_tries(), 0, "no try was made:\n{}", run.stderr);
    assert!(!witness.ran());

    // From the config file, the line names the file.
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "config.toml",
        "[vault]\naddress = \"http://vault.invalid:8200\"\n",
    );
    let (t, witness) = run_with_credential();
    let run = t
        .arg("--config")
        .arg(&config)
        .env("VAULT_TOKEN", TOKEN)
        .run();
    run.assert_error(
        78,
        &format!("[vault] address in {}: the store address", config.display()),
    )
    .assert_no_leak(TOKEN);
    assert!(!witness.ran());

    // Loopback needs no insecure_http: this one is tried (and unreachable).
    let port = testkit::free_port();
    let (t, witness) = run_with_credential();
    let run = t
        .vault(&format!("http://localhost:{port}"), TOKEN)
        .arg("--deadline")
        .arg("1")
        .run();
    run.assert_error(69, "is not reachable")
        .assert_no_leak(TOKEN);
    assert!(!witness.ran());
}

/// `tagstrap SUBCOMMAND` in the race's instance namespace with the race's
/// proxy, store and script, and `config` as the config file.
fn in_instance(race: &testkit::BootRace, subcommand: &str, config: &str) -> Run {
    use testkit::netns::{PROXY_SECRET, PROXY_USER};
    let dir = tempfile::tempdir_in(race.dir()).unwrap();
    let config = write_file(dir.path(), "config.toml", config);
    let empty = write_file(dir.path(), "empty.tags", "");
    let tag = |key: &str, value: &str| format!("--tag=rs_agent:{key}={value}");
    let started = std::time::Instant::now();
    let output = race
        .instance()
        .exec(common::BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VAULT_ADDR", race.store_addr())
        .env("VAULT_TOKEN", race.store_token())
        .args([
            subcommand,
            "--source",
            "none",
            "--deadline",
            "30",
            "--config",
        ])
        .arg(&config)
        .arg("--tags-file")
        .arg(&empty)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--ca-file")
        .arg(race.ca_pem_path())
        .arg(tag("http_proxy", &race.proxy()))
        .arg(tag("http_proxy_user", PROXY_USER))
        .arg(tag("http_proxy_password", &format!("cred:{PROXY_SECRET}")))
        .arg(tag("mime_shellscript", &race.script_url()))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run::from_output(output, dir, started.elapsed())
}

/// The store of the boot race is OpenBao at `http://store.test:8200`, by
/// name, across a veth pair: a plain-http store that is not on loopback.
#[test]
fn insecure_http_reaches_a_plain_http_store_by_name_with_one_warning_and_doctor_says_so() {
    if let Err(why) = testkit::netns::check_available() {
        panic!("this test builds network namespaces: {why} (run .ci/install, as root)");
    }
    let race = testkit::BootRace::start();
    race.link_up();
    let token = race.store_token().to_string();

    // Without insecure_http: refused, and the store saw no connection.
    let refused = in_instance(&race, "run", "");
    refused
        .assert_error(
            78,
            "the store address http://store.test:8200 is plain http://",
        )
        .assert_no_leak(&token)
        .assert_no_leak(testkit::netns::PROXY_PASSWORD);
    assert_eq!(race.store_connections(), 0, "no request reached the store");
    assert!(race.script_started().is_none(), "nothing ran");

    // With it: the run works, and says once that the secrets went in clear.
    let config = "[vault]\ninsecure_http = true\n";
    let run = in_instance(&race, "run", config);
    run.assert_success()
        .assert_no_leak(&token)
        .assert_no_leak(testkit::netns::PROXY_PASSWORD);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("in clear"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning per run:\n{}", run.stderr);
    assert!(
        warnings[0].contains(
            "the credential store at http://store.test:8200 is reached over plain http:// \
             ([vault] insecure_http = true): the store token and the proxy password cross the \
             network in clear"
        ),
        "{}",
        warnings[0]
    );
    assert!(race.store_connections() >= 1);
    assert!(race.script_started().is_some(), "{}", run.stderr);

    let doctor = in_instance(&race, "doctor", config);
    doctor
        .assert_success()
        .assert_no_leak(&token)
        .assert_no_leak(testkit::netns::PROXY_PASSWORD);
    let line = doctor
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("credentials"))
        .unwrap_or_else(|| panic!("no credentials line:\n{}", doctor.stdout));
    assert!(line.starts_with("ok"), "{line}");
    assert!(
        line.contains(
            "WARNING: the credential store at http://store.test:8200 is reached over plain http://"
        ),
        "{line}"
    );
}

// --- Redirects -------------------------------------------------------------

/// A Squid with basic auth, the store holding its password, the CA of the
/// origins.
struct World {
    ca: TestCa,
    squid: Squid,
    bao: Bao,
}

impl World {
    /// Squid allows CONNECT to `connect` and plain http:// to `http` (ports
    /// of 127.0.0.2).
    fn new(ca: TestCa, connect: &[u16], http: &[u16]) -> World {
        let squid = Squid::builder()
            .basic_auth(USER, PASSWORD)
            .allow_connect_ports(connect)
            .allow_http_ports(http)
            .start();
        let bao = Bao::start();
        bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
        World { ca, squid, bao }
    }

    fn run(&self, script_url: &str) -> Tagstrap {
        Tagstrap::new("run")
            .tag("rs_agent:http_proxy", &self.squid.proxy_addr())
            .tag("rs_agent:http_proxy_user", USER)
            .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
            .tag("rs_agent:mime_shellscript", script_url)
            .vault(&self.bao.addr(), &self.bao.root_token())
            .arg("--ca-file")
            .arg(self.ca.ca_pem_path())
    }
}

fn https_on(ip: IpAddr, ca: &TestCa) -> OriginBuilder {
    Origin::builder(Some(ca)).bind_ip(ip)
}

fn redirect_to(url: &str) -> Reply {
    Reply::status(302).with_header("Location", url)
}

/// A script that proves it ran by creating a file in `dir`.
fn witness_script(dir: &tempfile::TempDir) -> String {
    format!("#!/bin/sh\ntouch '{}'\n", dir.path().join("ran").display())
}

/// Squid's access log once the transaction naming `needle` is in it.
fn logged(squid: &Squid, needle: &str) -> String {
    assert!(
        squid.wait_for_access_log(needle, Duration::from_secs(10)),
        "{needle} not in Squid's access log:\n{}",
        squid.access_log()
    );
    squid.access_log()
}

#[test]
fn the_redirect_target_gets_no_referer_and_never_the_signature() {
    const SIGNATURE: &str = "S1gnature-0f-the-presigned-url";
    let ca = TestCa::new();
    let out = tempfile::tempdir().unwrap();
    let target = https_on(origin_ip(), &ca)
        .route("/final.sh", vec![], Reply::ok(witness_script(&out)))
        .start();
    let first = https_on(origin_ip(), &ca)
        .route("/install.sh", vec![], redirect_to(&target.url("/final.sh")))
        .start();
    let world = World::new(ca, &[first.port(), target.port()], &[]);

    let url = format!(
        "{}?X-Amz-Expires=60&X-Amz-Signature={SIGNATURE}",
        first.url("/install.sh")
    );
    let run = world.run(&url).run();

    run.assert_success()
        .assert_no_leak(PASSWORD)
        .assert_no_leak(SIGNATURE);
    assert!(out.path().join("ran").exists());
    let requests = target.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("referer"), None, "{:?}", requests[0]);
    for (name, value) in &requests[0].headers {
        assert!(!value.contains(SIGNATURE), "{name}: {value}");
    }
    assert!(
        run.stderr.contains(&format!(
            "{}?X-Amz-Expires=…&X-Amz-Signature=… redirects to {} (302)",
            first.url("/install.sh"),
            target.url("/final.sh")
        )),
        "the hop is logged, its query values hidden:\n{}",
        run.stderr
    );
    // Both hops went through the proxy, each authenticated.
    let log = logged(&world.squid, &format!("CONNECT {}", target.addr()));
    for origin in [&first, &target] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("CONNECT {}", origin.addr())))
            .unwrap_or_else(|| panic!("no CONNECT to {}:\n{log}", origin.addr()));
        assert!(line.contains(USER), "{line}");
    }
}

#[test]
fn a_pinned_https_to_http_redirect_through_the_proxy_authenticates_that_hop() {
    let ca = TestCa::new();
    let out = tempfile::tempdir().unwrap();
    let script = witness_script(&out);
    let plain = Origin::builder(None)
        .bind_ip(origin_ip())
        .route("/install.sh", vec![], Reply::ok(script.clone()))
        .start();
    let first = https_on(origin_ip(), &ca)
        .route(
            "/install.sh",
            vec![],
            redirect_to(&plain.url("/install.sh")),
        )
        .start();
    let world = World::new(ca, &[first.port()], &[plain.port()]);

    let run = world
        .run(&first.url("/install.sh"))
        .tag(PIN_TAG, &sha256_hex(script.as_bytes()))
        .run();

    // reqwest's own redirect handling sent this hop without
    // Proxy-Authorization: Squid answered 407, blaming the right password.
    run.assert_success().assert_no_leak(PASSWORD);
    assert!(out.path().join("ran").exists());
    assert_eq!(plain.hits("/install.sh"), 1);
    let hop = format!("GET {}", plain.url("/install.sh"));
    let log = logged(&world.squid, &hop);
    let line = log.lines().find(|l| l.contains(&hop)).unwrap();
    assert!(
        line.contains(&format!(" {USER} ")),
        "the hop is authenticated: {line}"
    );
    assert_eq!(plain.requests()[0].header("referer"), None);
    assert_eq!(
        run.report_json()["script"]["route"],
        format!("proxy {}", world.squid.proxy_addr())
    );
}

#[test]
fn an_unpinned_https_to_http_redirect_is_refused_saying_so() {
    let ca = TestCa::new();
    let plain = Origin::builder(None)
        .bind_ip(origin_ip())
        .route("/install.sh", vec![], Reply::ok("#!/bin/sh\nexit 0\n"))
        .start();
    let first = https_on(origin_ip(), &ca)
        .route(
            "/install.sh",
            vec![],
            redirect_to(&plain.url("/install.sh")),
        )
        .start();
    let world = World::new(ca, &[first.port()], &[plain.port()]);

    let run = world.run(&first.url("/install.sh")).run();

    run.assert_error(
        65,
        &format!(
            "the script {} redirects to {}, which is not https://: pin the script's sha256 to \
             allow http://",
            first.url("/install.sh"),
            plain.url("/install.sh")
        ),
    )
    .assert_no_leak(PASSWORD);
    assert_eq!(run.failed_tries(), 0, "not retried:\n{}", run.stderr);
    assert_eq!(first.hits("/install.sh"), 1);
    assert_eq!(
        plain.hits("/install.sh"),
        0,
        "the http:// hop was never asked"
    );
}

#[test]
fn a_redirect_to_a_no_proxy_host_goes_direct() {
    let ca = TestCa::new();
    let out = tempfile::tempdir().unwrap();
    // 127.0.0.1 is always in the no-proxy list.
    let local = Origin::builder(Some(&ca))
        .route("/final.sh", vec![], Reply::ok(witness_script(&out)))
        .start();
    let first = https_on(origin_ip(), &ca)
        .route("/install.sh", vec![], redirect_to(&local.url("/final.sh")))
        .start();
    // Squid would even tunnel to the local origin: the route decides.
    let world = World::new(ca, &[first.port(), local.port()], &[]);

    let run = world.run(&first.url("/install.sh")).run();

    run.assert_success().assert_no_leak(PASSWORD);
    assert!(out.path().join("ran").exists());
    assert_eq!(local.hits("/final.sh"), 1);
    let log = logged(&world.squid, &format!("CONNECT {}", first.addr()));
    assert!(
        !log.contains(&format!(":{}", local.port())),
        "the no-proxy hop went direct:\n{log}"
    );
    assert_eq!(run.report_json()["script"]["route"], "direct");
    assert!(
        run.stderr.contains("following it (direct)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_proxy_refusal_on_a_hop_names_that_hop() {
    let ca = TestCa::new();
    let forbidden_tls = https_on(origin_ip(), &ca)
        .route("/install.sh", vec![], Reply::ok("#!/bin/sh\nexit 0\n"))
        .start();
    let forbidden_plain = Origin::builder(None)
        .bind_ip(origin_ip())
        .route("/install.sh", vec![], Reply::ok("#!/bin/sh\nexit 0\n"))
        .start();
    let first = https_on(origin_ip(), &ca)
        .route(
            "/tls.sh",
            vec![],
            redirect_to(&forbidden_tls.url("/install.sh")),
        )
        .route(
            "/plain.sh",
            vec![],
            redirect_to(&forbidden_plain.url("/install.sh")),
        )
        .start();
    // Squid allows the first host only.
    let world = World::new(ca, &[first.port()], &[]);

    // A CONNECT refused on the hop is probed for the hop's host.
    let run = world.run(&first.url("/tls.sh")).run();
    run.assert_error(
        77,
        &format!(
            "refused CONNECT {} with 403 Forbidden",
            forbidden_tls.addr()
        ),
    )
    .assert_no_leak(PASSWORD);
    assert!(!run.error_lines()[0].contains(&first.url("/tls.sh")));

    // A plain http:// hop refused by the proxy names that hop's URL.
    let run = world
        .run(&first.url("/plain.sh"))
        .tag(PIN_TAG, &sha256_hex(b"#!/bin/sh\nexit 0\n"))
        .run();
    run.assert_error(
        77,
        &format!(
            "refused the request for {} with 403 Forbidden",
            forbidden_plain.url("/install.sh")
        ),
    )
    .assert_no_leak(PASSWORD);
    assert_eq!(run.failed_tries(), 0);
    assert_eq!(forbidden_tls.hits("/install.sh"), 0);
    assert_eq!(forbidden_plain.hits("/install.sh"), 0);
}

// --- Peers that answer, but not in HTTP --------------------------------------

/// A listener on 127.0.0.1 that reads each connection's request head, then
/// answers `answer` (bounded) and closes; counts its connections.
struct Junk {
    port: u16,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Junk {
    fn start(answer: Vec<u8>) -> Junk {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (connections.clone(), stop.clone());
        let answer = Arc::new(answer);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                std::thread::spawn(move || serve_junk(stream, &answer));
            }
        });
        Junk {
            port,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// A line no HTTP client takes for a status line.
    fn garbage() -> Junk {
        Junk::start(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\nProtocol mismatch.\r\n".to_vec())
    }

    /// A status line, then one header that never ends (`len` bytes of it).
    fn endless_header(len: usize) -> Junk {
        let mut answer = b"HTTP/1.1 200 Connection established\r\nX-Filler: ".to_vec();
        answer.resize(answer.len() + len, b'a');
        Junk::start(answer)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Junk {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_junk(mut stream: TcpStream, answer: &[u8]) {
    let limit = Some(Duration::from_secs(5));
    let _ = stream.set_read_timeout(limit);
    let _ = stream.set_write_timeout(limit);
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.write_all(answer);
    let _ = stream.shutdown(Shutdown::Write);
    // Until the client closes (or 5 s), so that closing is a FIN, not a RST
    // that could discard the answer before the client read it.
    let _ = std::io::copy(&mut stream, &mut std::io::sink());
}

/// The deadline of the garbage tests.
const JUNK_DEADLINE: Duration = Duration::from_secs(6);

/// The most failed tries backoff makes in [`JUNK_DEADLINE`], but for odds
/// under one in ten million. After a server-side failure, the wait before
/// try n is uniform (full jitter) up to min(BACKOFF_BASE·2^(n-2),
/// LATENESS_FLOOR) while less than 10 s have passed: 1 s, then 2 s, 2 s, …
/// So k failed tries need k waits summing to under 6 s; for k = 19 that is
/// the chance that 18 uniform numbers in [0, 1) sum to under 3 (plus one in
/// [0, 0.5)), which the Irwin–Hall distribution puts below 10⁻⁷. Polling as
/// if the network were down waits at most NETWORK_DOWN_CAP (250 ms) between
/// tries: at least 6 s / 250 ms = 24 tries, and some 44 on average.
const MAX_BACKOFF_TRIES: usize = 18;

/// "gave up after N tries": how many tries the run made.
fn tries_given_up(run: &Run) -> usize {
    let line = run.error_lines()[0];
    let rest = &line[line.find("gave up after ").expect(line) + "gave up after ".len()..];
    rest.split(' ').next().unwrap().parse().unwrap()
}

/// The run gave up at the deadline (69) after tries spaced by backoff,
/// each failure saying `why`.
fn assert_backed_off(run: &Run, why: &str) {
    assert_eq!(BACKOFF_BASE, Duration::from_secs(1), "the bound assumes it");
    assert_eq!(
        LATENESS_FLOOR,
        Duration::from_secs(2),
        "the bound assumes it"
    );
    let polling_at_least = (JUNK_DEADLINE.as_millis() / NETWORK_DOWN_CAP.as_millis()) as usize;
    assert!(MAX_BACKOFF_TRIES < polling_at_least);

    run.assert_error(69, "gave up after");
    assert!(run.error_lines()[0].contains(why), "{}", run.stderr);
    let failed = run.failed_tries();
    assert!(failed >= 2, "retried, not final:\n{}", run.stderr);
    assert!(
        failed <= MAX_BACKOFF_TRIES,
        "{failed} failed tries in {JUNK_DEADLINE:?}: that is polling, not backoff (polling would \
         make at least {polling_at_least}):\n{}",
        run.stderr
    );
    assert_eq!(tries_given_up(run), failed + 1, "{}", run.stderr);
    println!(
        "{why:?}: {failed} failed tries in {} s",
        JUNK_DEADLINE.as_secs()
    );
}

/// `tagstrap run` through `proxy` (no credentials) to a script host the
/// proxy never gets to tunnel to.
fn through_proxy(proxy: &str) -> Tagstrap {
    Tagstrap::new("run")
        .tag("rs_agent:http_proxy", proxy)
        .tag(
            "rs_agent:mime_shellscript",
            "https://127.0.0.2:9/install.sh",
        )
        .arg("--deadline")
        .arg(JUNK_DEADLINE.as_secs().to_string())
}

#[test]
fn garbage_on_the_proxy_port_is_backed_off_from_not_polled() {
    let junk = Junk::garbage();
    let run = through_proxy(&junk.addr()).run();
    assert_backed_off(
        &run,
        &format!(
            "the proxy {} answered CONNECT 127.0.0.2:9 with something that is not HTTP: is {} an \
             HTTP proxy?",
            junk.addr(),
            junk.addr()
        ),
    );
    // Each try: the client's tunnel, then the probe that asks again.
    assert_eq!(junk.connections(), 2 * tries_given_up(&run));
}

#[test]
fn an_endless_header_on_the_proxy_port_is_backed_off_from_not_polled() {
    let junk = Junk::endless_header(64 * 1024);
    let run = through_proxy(&junk.addr()).run();
    assert_backed_off(
        &run,
        &format!(
            "the proxy {} answered CONNECT 127.0.0.2:9 with an answer head longer than 16 KiB",
            junk.addr()
        ),
    );
    assert_eq!(junk.connections(), 2 * tries_given_up(&run));
}

#[test]
fn a_store_a_script_host_and_a_metadata_service_answering_garbage_are_backed_off_from() {
    const TOKEN: &str = "t0ken-junk-store";
    let deadline = JUNK_DEADLINE.as_secs().to_string();

    // The store: garbage, then a head larger than the client reads (hyper
    // gives up on a head over 400 KiB).
    for junk in [Junk::garbage(), Junk::endless_header(1024 * 1024)] {
        let (t, witness) = run_with_credential();
        let run = t
            .vault(&format!("http://{}", junk.addr()), TOKEN)
            .arg("--deadline")
            .arg(&deadline)
            .run();
        assert_backed_off(
            &run,
            &format!("http://{} answered, but not in HTTP", junk.addr()),
        );
        run.assert_no_leak(TOKEN);
        assert!(!witness.ran());
        assert_eq!(junk.connections(), tries_given_up(&run));
    }

    // The script host, direct (pinned http://).
    let junk = Junk::garbage();
    let url = format!("http://{}/install.sh", junk.addr());
    let run = Tagstrap::new("run")
        .tag("rs_agent:mime_shellscript", &url)
        .tag(PIN_TAG, &sha256_hex(b"x"))
        .arg("--deadline")
        .arg(&deadline)
        .run();
    assert_backed_off(
        &run,
        &format!("127.0.0.1 answered the request for {url}, but not in HTTP"),
    );

    // The metadata service.
    let junk = Junk::garbage();
    let run = Tagstrap::new("run")
        .arg("--source")
        .arg("aws")
        .arg("--metadata-endpoint")
        .arg(format!("http://{}", junk.addr()))
        .arg("--deadline")
        .arg(&deadline)
        .run();
    assert_backed_off(
        &run,
        &format!("http://{} answered, but not in HTTP", junk.addr()),
    );
}

#[test]
fn a_peer_that_closes_or_resets_before_answering_is_still_the_network_being_down() {
    // Accepts, reads the request, closes without a byte: polled, short waits.
    // At most NETWORK_DOWN_CAP (250 ms) between tries makes at least 12 in
    // 3 s, less the tries' own time; three quarters of that is still far
    // above the 3 or 4 that backoff (1 s, then 2 s steps) would make.
    let deadline = Duration::from_secs(3);
    let junk = Junk::start(Vec::new());
    let run = through_proxy(&junk.addr())
        .arg("--deadline")
        .arg(deadline.as_secs().to_string())
        .run();
    run.assert_error(69, "closed the connection before answering CONNECT");
    let polling = (deadline.as_millis() / NETWORK_DOWN_CAP.as_millis()) as usize * 3 / 4;
    println!(
        "closed before answering: {} failed tries in {} s",
        run.failed_tries(),
        deadline.as_secs()
    );
    assert!(
        run.failed_tries() >= polling,
        "short waits: {} failed tries in {deadline:?}:\n{}",
        run.failed_tries(),
        run.stderr
    );
}

// --- TLS hints ---------------------------------------------------------------

/// What each kind of bad certificate must say, and must not.
struct BadCert {
    name: &'static str,
    says: &'static [&'static str],
}

const EXPIRED: BadCert = BadCert {
    name: "expired",
    says: &[
        "its certificate expired on Mon, 31 Dec 2001 00:00:00 GMT, and this instance's clock says",
        "renew the certificate on the server; at boot, also check this instance's clock",
    ],
};
const NOT_YET_VALID: BadCert = BadCert {
    name: "not yet valid",
    says: &[
        "its certificate is not valid yet (not before Sun, 01 Jan 2090 00:00:00 GMT, and this \
         instance's clock says",
        "at boot the clock may be wrong",
    ],
};
const WRONG_NAME: BadCert = BadCert {
    name: "for other names",
    says: &[
        "its certificate is for other.test, *.other.test, not 127.0.0.2: check the host in the URL",
    ],
};
const UNKNOWN_ISSUER: BadCert = BadCert {
    name: "from an unknown CA",
    says: &["issued by a CA this instance does not trust", "--ca-file"],
};

/// The leaf for `kind`: from `ca`, which tagstrap trusts, except for the
/// unknown issuer, which comes from `other`.
fn leaf(kind: &BadCert, ca: &TestCa, other: &TestCa) -> (IssuedCert, bool) {
    match kind.name {
        "expired" => (ca.issue_expired(&[ORIGIN_IP]), true),
        "not yet valid" => (ca.issue_not_yet_valid(&[ORIGIN_IP]), true),
        "for other names" => (ca.issue(&["other.test", "*.other.test"]), true),
        _ => (other.issue(&[ORIGIN_IP]), false),
    }
}

fn assert_hint(text: &str, kind: &BadCert) {
    for words in kind.says {
        assert!(
            text.contains(words),
            "{}: {text} lacks {words:?}",
            kind.name
        );
    }
    if kind.name != UNKNOWN_ISSUER.name {
        assert!(
            !text.contains("--ca-file"),
            "{}: no CA hint: {text}",
            kind.name
        );
    }
}

#[test]
fn each_bad_script_host_certificate_gets_its_own_hint_in_run_and_doctor() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let kinds = [EXPIRED, NOT_YET_VALID, WRONG_NAME, UNKNOWN_ISSUER];
    let origins: Vec<Origin> = kinds
        .iter()
        .map(|kind| {
            let (cert, trusted_ca) = leaf(kind, &ca, &other);
            let issuer = if trusted_ca { &ca } else { &other };
            https_on(origin_ip(), &ca)
                .tls_config(issuer.server_config_for_cert(&cert))
                .route("/install.sh", vec![], Reply::ok("#!/bin/sh\nexit 0\n"))
                .start()
        })
        .collect();
    let ports: Vec<u16> = origins.iter().map(Origin::port).collect();
    let world = World::new(ca, &ports, &[]);

    for (kind, origin) in kinds.iter().zip(&origins) {
        let url = origin.url("/install.sh");
        let run = world.run(&url).run();
        run.assert_error(77, &format!("TLS verification of {ORIGIN_IP} failed: "))
            .assert_no_leak(PASSWORD);
        assert_hint(run.error_lines()[0], kind);
        assert_eq!(run.failed_tries(), 0, "{}: not retried", kind.name);

        let doctor = world.run(&url).run_as("doctor");
        assert_eq!(doctor.code, 77, "{}\n{}", doctor.stdout, doctor.stderr);
        doctor.assert_no_leak(PASSWORD);
        let tls = doctor
            .stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("tls"))
            .unwrap_or_else(|| panic!("no tls line:\n{}", doctor.stdout));
        assert!(tls.starts_with("FAIL"), "{tls}");
        assert_hint(tls, kind);
        assert_eq!(origin.hits("/install.sh"), 0, "{}", kind.name);
    }
}

#[test]
fn a_store_and_a_proxy_with_bad_certificates_get_the_hint_that_fits() {
    let ca = TestCa::new();
    // A TLS server posing as the store whose certificate names other hosts:
    // the handshake fails before any request, so what serves is moot.
    let wrong_name = ca.issue(&["vault.other.test"]);
    let store = Origin::builder(Some(&ca))
        .tls_config(ca.server_config_for_cert(&wrong_name))
        .start();
    let (t, witness) = run_with_credential();
    let run = t
        .vault(&format!("https://127.0.0.1:{}", store.port()), "t0ken-tls")
        .arg("--ca-file")
        .arg(ca.ca_pem_path())
        .run();
    run.assert_error(
        77,
        &format!(
            "TLS verification of the store at https://127.0.0.1:{} failed: its certificate is \
             for vault.other.test, not 127.0.0.1: check the host in the URL",
            store.port()
        ),
    )
    .assert_no_leak("t0ken-tls");
    assert!(!run.error_lines()[0].contains("VAULT_CACERT"));
    assert!(!witness.ran());
    assert!(store.requests().is_empty(), "the token was never sent");

    // An https:// proxy whose certificate has expired.
    let expired = ca.issue_expired(&["127.0.0.1"]);
    let proxy = Origin::builder(Some(&ca))
        .tls_config(ca.server_config_for_cert(&expired))
        .start();
    let proxy_url = format!("https://127.0.0.1:{}", proxy.port());
    let run = Tagstrap::new("run")
        .tag("rs_agent:http_proxy", &proxy_url)
        .tag(
            "rs_agent:mime_shellscript",
            "https://127.0.0.2:9/install.sh",
        )
        .arg("--ca-file")
        .arg(ca.ca_pem_path())
        .run();
    run.assert_error(
        77,
        &format!(
            "TLS verification of the proxy 127.0.0.1:{} failed: its certificate expired on Mon, \
             31 Dec 2001",
            proxy.port()
        ),
    );
    assert!(
        !run.error_lines()[0].contains("--ca-file"),
        "{}",
        run.stderr
    );
    assert_eq!(run.failed_tries(), 0);

    let doctor = Tagstrap::new("doctor")
        .tag("rs_agent:http_proxy", &proxy_url)
        .tag(
            "rs_agent:mime_shellscript",
            "https://127.0.0.2:9/install.sh",
        )
        .arg("--ca-file")
        .arg(ca.ca_pem_path())
        .run();
    assert_eq!(doctor.code, 77, "{}\n{}", doctor.stdout, doctor.stderr);
    let connect = doctor
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("connect"))
        .unwrap_or_else(|| panic!("no connect line:\n{}", doctor.stdout));
    assert!(connect.starts_with("FAIL"), "{connect}");
    assert!(connect.contains("its certificate expired on"), "{connect}");
}
