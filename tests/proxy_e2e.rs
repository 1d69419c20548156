//! The main job end to end, against real servers started here on loopback: a
//! Squid with basic auth, an OpenBao dev server holding the proxy password, and
//! an HTTPS origin with a test CA. The origin listens on 127.0.0.2: 127.0.0.1
//! is in the no-proxy list tagstrap always adds, and these tests are about
//! going through the proxy (one of them uses 127.0.0.1 for exactly that reason).

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::{sha256_hex, Tagstrap};
use testkit::{Bao, Origin, Reply, ReservedOrigin, Squid, TestCa};

const USER: &str = "svc-agent";
/// Holds every character that breaks a naive proxy URL.
const PASSWORD: &str = "p@ss:/%w0rd";
const ORIGIN_IP: &str = "127.0.0.2";

struct World {
    ca: TestCa,
    squid: Squid,
    bao: Bao,
    out: tempfile::TempDir,
}

impl World {
    /// Squid allowing CONNECT only to `connect_ports`, OpenBao holding the
    /// password as `PROXY_PASS`.
    fn new(connect_ports: &[u16], ca: TestCa) -> World {
        let squid = Squid::builder()
            .basic_auth(USER, PASSWORD)
            .allow_connect_ports(connect_ports)
            .start();
        let bao = Bao::start();
        bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
        World {
            ca,
            squid,
            bao,
            out: tempfile::tempdir().unwrap(),
        }
    }

    /// tagstrap run with the proxy, user and credential tags, the store and the CA.
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

    /// The usual set-up: a world whose Squid allows CONNECT to an origin
    /// reserved on 127.0.0.2 (not listening until the test starts it).
    fn with_origin() -> (World, ReservedOrigin) {
        let ca = TestCa::new();
        let reserved = Origin::builder(Some(&ca)).bind_ip(origin_ip()).reserve();
        (World::new(&[reserved.port()], ca), reserved)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.out.path().join(name)
    }
}

fn origin_ip() -> IpAddr {
    ORIGIN_IP.parse().unwrap()
}

/// A script that records it ran.
fn witness_script(world: &World) -> String {
    format!("#!/bin/sh\ntouch '{}'\n", world.out("ran").display())
}

fn connects(log: &str) -> usize {
    log.lines().filter(|l| l.contains("CONNECT")).count()
}

#[test]
fn happy_path_the_script_reaches_the_origin_through_the_proxy_with_curl() {
    let (world, reserved) = World::with_origin();
    let port = reserved.port();
    let payload_url = format!("https://{ORIGIN_IP}:{port}/payload");
    let script = format!(
        "#!/bin/sh\nset -eu\n\
         curl -sS --fail --cacert '{ca}' -o '{out}' '{payload_url}'\n\
         echo \"no_proxy=$no_proxy\" > '{env}'\n",
        ca = world.ca.ca_pem_path().display(),
        out = world.out("payload").display(),
        env = world.out("env").display(),
    );
    let origin = reserved
        .route("/install.sh", vec![], Reply::ok(script))
        .route("/payload", vec![], Reply::ok("agent bits"))
        .start();

    let run = world.run(&origin.url("/install.sh")).run();

    run.assert_success().assert_no_leak(PASSWORD);
    assert_eq!(
        std::fs::read_to_string(world.out("payload")).unwrap(),
        "agent bits"
    );
    assert_eq!(origin.hits("/install.sh"), 1);
    assert_eq!(origin.hits("/payload"), 1);
    let log = world.squid.access_log();
    assert_eq!(
        connects(&log),
        2,
        "tagstrap's download and the script's curl both went through Squid:\n{log}"
    );
    assert!(
        log.lines()
            .filter(|l| l.contains("CONNECT"))
            .all(|l| l.contains(USER)),
        "{log}"
    );
    let env = std::fs::read_to_string(world.out("env")).unwrap();
    assert_eq!(
        env.trim(),
        "no_proxy=localhost,127.0.0.1,::1,[::1],169.254.169.254"
    );
    let report = run.report_json();
    assert_eq!(report["exit_code"], 0);
    assert_eq!(
        report["proxy"]["url"],
        format!("http://{}", world.squid.proxy_addr())
    );
    assert_eq!(report["credentials"][0], "cred:PROXY_PASS");
    assert_eq!(report["script"]["download"]["tries"], 1);
    assert!(report["script"]["route"]
        .as_str()
        .unwrap()
        .starts_with("proxy "));
}

#[test]
fn an_https_proxy_works_too() {
    let ca = TestCa::new();
    let reserved = Origin::builder(Some(&ca)).bind_ip(origin_ip()).reserve();
    let port = reserved.port();
    let squid = Squid::builder()
        .basic_auth(USER, PASSWORD)
        .allow_connect_ports(&[port])
        .https_port(&ca)
        .start();
    let bao = Bao::start();
    bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
    let out = tempfile::tempdir().unwrap();
    let ran = out.path().join("ran");
    let origin = reserved
        .route(
            "/install.sh",
            vec![],
            Reply::ok(format!("#!/bin/sh\ntouch '{}'\n", ran.display())),
        )
        .start();

    let run = Tagstrap::new("run")
        .tag("rs_agent:http_proxy", &squid.https_proxy_url())
        .tag("rs_agent:http_proxy_user", USER)
        .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
        .tag("rs_agent:mime_shellscript", &origin.url("/install.sh"))
        .vault(&bao.addr(), &bao.root_token())
        .arg("--ca-file")
        .arg(ca.ca_pem_path())
        .run();

    run.assert_success().assert_no_leak(PASSWORD);
    assert!(ran.exists());
    assert_eq!(connects(&squid.access_log()), 1);
}

#[test]
fn a_wrong_password_is_407_exit_77_at_once_naming_the_credential() {
    let (world, reserved) = World::with_origin();
    world
        .bao
        .put_kv2("secret", "PROXY_PASS", &[("value", "not-the-password")]);
    let origin = reserved
        .route("/install.sh", vec![], Reply::ok(witness_script(&world)))
        .start();

    let run = world
        .run(&origin.url("/install.sh"))
        .arg("--deadline")
        .arg("120")
        .arg("--log-format")
        .arg("json")
        .arg("-vv")
        .run();

    for line in run.stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every log line is JSON");
    }
    run.assert_error(77, "answered 407 Proxy Authentication Required")
        .assert_no_leak("not-the-password")
        .assert_no_leak(PASSWORD);
    assert!(run.error_lines()[0]
        .contains("check the credential cred:PROXY_PASS and the user svc-agent"));
    assert_eq!(run.failed_tries(), 0, "no retry storm:\n{}", run.stderr);
    assert!(
        run.elapsed < Duration::from_secs(60),
        "did not wait for the deadline"
    );
    assert_eq!(origin.hits("/install.sh"), 0);
    assert!(!world.out("ran").exists());
    // tagstrap's CONNECT and its probe: nothing more.
    assert!(
        connects(&world.squid.access_log()) <= 2,
        "{}",
        world.squid.access_log()
    );
}

#[test]
fn a_connect_refused_with_403_is_exit_77_naming_403() {
    let ca = TestCa::new();
    let reserved = Origin::builder(Some(&ca)).bind_ip(origin_ip()).reserve();
    let world = World::new(&[], ca); // no CONNECT port allowed
    let origin = reserved
        .route("/install.sh", vec![], Reply::ok(witness_script(&world)))
        .start();

    let run = world.run(&origin.url("/install.sh")).run();

    run.assert_error(77, "refused CONNECT 127.0.0.2")
        .assert_no_leak(PASSWORD);
    let line = run.error_lines()[0];
    assert!(line.contains("403 Forbidden"), "{line}");
    assert!(line.contains("ERR_ACCESS_DENIED"), "{line}");
    assert_eq!(run.failed_tries(), 0);
    assert_eq!(origin.hits("/install.sh"), 0);
}

#[test]
fn the_script_host_comes_up_late_and_the_script_starts_within_a_second() {
    let (world, reserved) = World::with_origin();
    let started_file = world.out("started");
    let script = format!("#!/bin/sh\ndate +%s.%N > '{}'\n", started_file.display());
    let reserved = reserved.route("/install.sh", vec![], Reply::ok(script));
    let url = reserved.url("/install.sh");

    let (child, state) = world.run(&url).spawn();
    let launched = std::time::Instant::now();
    // tagstrap is trying (and Squid answering 503 for the closed port)…
    assert!(world
        .squid
        .wait_for_access_log("CONNECT", Duration::from_secs(20)));
    // …and the host comes up 3 s after tagstrap started.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(launched.elapsed()));
    let origin = reserved.start();
    let up_at = SystemTime::now();

    let output = child.wait_with_output().unwrap();
    let run = common::Run::from_output(output, state, launched.elapsed());
    run.assert_success().assert_no_leak(PASSWORD);
    assert!(
        run.failed_tries() >= 3,
        "it retried while the host was down:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("it cannot reach the script host (yet)"),
        "{}",
        run.stderr
    );
    let started: f64 = std::fs::read_to_string(&started_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let up: f64 = up_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let delay = started - up;
    assert!(
        delay < 1.5,
        "the script started {delay:.2} s after the host came up"
    );
    assert_eq!(origin.hits("/install.sh"), 1);
}

#[test]
fn three_503s_then_200_succeeds_after_four_requests() {
    let (world, reserved) = World::with_origin();
    let origin = reserved
        .route(
            "/install.sh",
            vec![Reply::status(503), Reply::status(503), Reply::status(503)],
            Reply::ok(witness_script(&world)),
        )
        .start();

    let run = world.run(&origin.url("/install.sh")).run();

    run.assert_success();
    assert_eq!(origin.hits("/install.sh"), 4);
    assert_eq!(run.failed_tries(), 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("try 1 failed: 127.0.0.2 answered 503 Service Unavailable"),
        "{}",
        run.stderr
    );
    assert_eq!(run.report_json()["script"]["download"]["tries"], 4);
    assert!(world.out("ran").exists());
}

#[test]
fn retry_after_is_honoured() {
    let (world, reserved) = World::with_origin();
    let origin = reserved
        .route(
            "/install.sh",
            vec![Reply::status(429).with_header("Retry-After", "2")],
            Reply::ok(witness_script(&world)),
        )
        .start();

    let run = world.run(&origin.url("/install.sh")).run();

    run.assert_success();
    assert!(run.stderr.contains("next try in 2.00 s"), "{}", run.stderr);
    let requests = origin.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at.duration_since(requests[0].at);
    assert!(gap >= Duration::from_secs(2), "waited {gap:?}");
}

#[test]
fn a_404_is_exit_66_after_one_request() {
    let (world, reserved) = World::with_origin();
    let origin = reserved.start();

    let run = world.run(&origin.url("/missing.sh")).run();

    run.assert_error(66, "answered 404 Not Found");
    assert_eq!(origin.hits("/missing.sh"), 1);
}

#[test]
fn the_deadline_passing_is_exit_69_with_the_last_reason() {
    let (world, reserved) = World::with_origin();
    let origin = reserved
        .route("/install.sh", vec![], Reply::status(503))
        .start();

    let run = world
        .run(&origin.url("/install.sh"))
        .arg("--deadline")
        .arg("2")
        .run();

    run.assert_error(69, "gave up after")
        .assert_no_leak(PASSWORD);
    assert!(
        run.error_lines()[0].contains("127.0.0.2 answered 503"),
        "{}",
        run.stderr
    );
    assert!(origin.hits("/install.sh") >= 2);
    assert!(!world.out("ran").exists());
}

#[test]
fn a_checksum_mismatch_or_an_oversized_download_runs_nothing() {
    let (world, reserved) = World::with_origin();
    let script = witness_script(&world);
    let origin = reserved
        .route("/install.sh", vec![], Reply::ok(script.clone()))
        .route("/big.sh", vec![], Reply::Generated { len: 2 << 20 })
        .start();

    let run = world
        .run(&origin.url("/install.sh"))
        .tag(
            "rs_agent:mime_shellscript_sha256",
            &sha256_hex(b"something else"),
        )
        .run();
    run.assert_error(65, "does not match its pin");
    assert_eq!(origin.hits("/install.sh"), 1, "a mismatch is not retried");

    let run = world
        .run(&origin.url("/big.sh"))
        .arg("--max-script-bytes")
        .arg("1M")
        .run();
    run.assert_error(65, "larger than --max-script-bytes (1048576 bytes)");
    assert!(!world.out("ran").exists());

    let run = world
        .run(&origin.url("/install.sh"))
        .tag(
            "rs_agent:mime_shellscript_sha256",
            &sha256_hex(script.as_bytes()),
        )
        .run();
    run.assert_success();
    assert!(world.out("ran").exists(), "the right pin runs it");
}

#[test]
fn the_scripts_exit_code_is_passed_through() {
    let (world, reserved) = World::with_origin();
    let origin = reserved
        .route("/42.sh", vec![], Reply::ok("exit 42\n"))
        .route("/1003.sh", vec![], Reply::ok("#!/bin/sh\nexit 3\n"))
        .start();

    let run = world.run(&origin.url("/42.sh")).run();
    assert_eq!(run.code, 42, "{}", run.stderr);
    assert!(
        run.error_lines().is_empty(),
        "the script's failure is its own, not an error of tagstrap's"
    );
    assert_eq!(run.report_json()["exit_code"], 42);
    let run = world.run(&origin.url("/1003.sh")).run();
    assert_eq!(run.code, 3);
}

#[test]
fn a_no_proxy_host_is_fetched_directly() {
    let ca = TestCa::new();
    // 127.0.0.1 is always in the no-proxy list.
    let origin = Origin::builder(Some(&ca))
        .route("/install.sh", vec![], Reply::ok("exit 0\n"))
        .start();
    let world = World::new(&[origin.port()], ca);

    let run = world.run(&origin.url("/install.sh")).run();
    run.assert_success();
    assert_eq!(origin.hits("/install.sh"), 1);

    // And a host named by rs_agent:http_no_proxy.
    let other = Origin::builder(Some(&world.ca))
        .bind_ip(origin_ip())
        .route("/install.sh", vec![], Reply::ok("exit 0\n"))
        .start();
    let run = world
        .run(&other.url("/install.sh"))
        .tag("rs_agent:http_no_proxy", "127.0.0.0/24")
        .run();
    run.assert_success();
    assert_eq!(other.hits("/install.sh"), 1);
    assert_eq!(world.squid.access_log(), "", "Squid saw nothing");
    assert_eq!(run.report_json()["script"]["route"], "direct");
}

#[test]
fn plan_is_redacted_and_the_password_is_on_no_command_line_while_the_script_runs() {
    let (world, reserved) = World::with_origin();
    // The script signals that it runs, then waits until the test has looked
    // at every process's command line.
    let ready = world.out("ready");
    let go = world.out("go");
    for fifo in [&ready, &go] {
        assert!(std::process::Command::new("mkfifo")
            .arg(fifo)
            .status()
            .unwrap()
            .success());
    }
    let script = format!(
        "#!/bin/sh\necho running > '{}'\nread _ < '{}'\ncurl --version >/dev/null\n",
        ready.display(),
        go.display()
    );
    let origin = reserved
        .route("/install.sh", vec![], Reply::ok(script))
        .start();
    let url = origin.url("/install.sh");

    let plan = world.run(&url).run_as("plan");
    plan.assert_success().assert_no_leak(PASSWORD);
    assert!(
        plan.stdout.contains(&format!(
            "http_proxy=http://{USER}:***@{}",
            world.squid.proxy_addr()
        )),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("password:  cred:PROXY_PASS (resolved from the Vault/OpenBao store at"),
        "{}",
        plan.stdout
    );
    assert_eq!(origin.hits("/install.sh"), 0, "plan downloads nothing");

    let (mut child, state) = world.run(&url).arg("-vv").spawn();
    let launched = std::time::Instant::now();
    // Opening the FIFO blocks until the script opens it: do it on a thread,
    // so a tagstrap that fails before running the script fails the test
    // instead of hanging it.
    let (sender, receiver) = std::sync::mpsc::channel();
    let ready_path = ready.clone();
    std::thread::spawn(move || sender.send(std::fs::read_to_string(ready_path)));
    if receiver.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        panic!(
            "the script never ran:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut scanned = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            scanned += 1;
            let cmdline = String::from_utf8_lossy(&cmdline);
            for form in common::secret_forms(PASSWORD) {
                assert!(
                    !cmdline.contains(&form),
                    "{}: {cmdline}",
                    entry.path().display()
                );
            }
        }
    }
    assert!(scanned > 3);
    std::fs::write(&go, "go\n").unwrap();
    let run =
        common::Run::from_output(child.wait_with_output().unwrap(), state, launched.elapsed());
    run.assert_success().assert_no_leak(PASSWORD);
}

#[test]
fn a_pinned_http_script_goes_through_the_proxy_and_its_answers_are_the_proxys() {
    let reserved = Origin::builder(None).bind_ip(origin_ip()).reserve();
    let port = reserved.port();
    let squid = Squid::builder()
        .basic_auth(USER, PASSWORD)
        .allow_http_ports(&[port])
        .start();
    let bao = Bao::start();
    bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
    let out = tempfile::tempdir().unwrap();
    let ran = out.path().join("ran");
    let script = format!("#!/bin/sh\ntouch '{}'\n", ran.display());
    let pin = sha256_hex(script.as_bytes());
    let origin = reserved
        .route("/install.sh", vec![], Reply::ok(script))
        .start();
    let run = |password_secret: &str| {
        bao.put_kv2("secret", "PROXY_PASS", &[("value", password_secret)]);
        Tagstrap::new("run")
            .tag("rs_agent:http_proxy", &squid.proxy_addr())
            .tag("rs_agent:http_proxy_user", USER)
            .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
            .tag("rs_agent:mime_shellscript", &origin.url("/install.sh"))
            .tag("rs_agent:mime_shellscript_sha256", &pin)
            .vault(&bao.addr(), &bao.root_token())
            .run()
    };

    let wrong = run("wrong-password");
    wrong
        .assert_error(
            77,
            "answered 407 Proxy Authentication Required to the request for http://127.0.0.2",
        )
        .assert_no_leak("wrong-password");
    assert_eq!(origin.hits("/install.sh"), 0);

    let right = run(PASSWORD);
    right.assert_success().assert_no_leak(PASSWORD);
    assert!(ran.exists());
    assert_eq!(origin.hits("/install.sh"), 1);
    assert!(
        squid.wait_for_access_log("GET http://127.0.0.2", Duration::from_secs(10)),
        "{}",
        squid.access_log()
    );
}

#[test]
fn an_untrusted_script_host_is_refused_at_once_direct_or_through_the_proxy() {
    let (world, reserved) = World::with_origin();
    let origin = reserved
        .route("/install.sh", vec![], Reply::ok("exit 0\n"))
        .start();
    let direct = Origin::builder(Some(&world.ca))
        .route("/install.sh", vec![], Reply::ok("exit 0\n"))
        .start();
    for url in [origin.url("/install.sh"), direct.url("/install.sh")] {
        // The tags of World::run, without --ca-file: the test CA is unknown.
        let run = Tagstrap::new("run")
            .tag("rs_agent:http_proxy", &world.squid.proxy_addr())
            .tag("rs_agent:http_proxy_user", USER)
            .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
            .tag("rs_agent:mime_shellscript", &url)
            .vault(&world.bao.addr(), &world.bao.root_token())
            .run();
        run.assert_error(77, "TLS verification of")
            .assert_no_leak(PASSWORD);
        assert!(run.error_lines()[0].contains("--ca-file"), "{}", run.stderr);
        assert_eq!(run.failed_tries(), 0, "not retried:\n{}", run.stderr);
    }
    assert_eq!(direct.hits("/install.sh"), 0);
}
