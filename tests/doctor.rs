//! `tagstrap doctor` against each misconfiguration, with real servers on
//! loopback: a Squid (basic auth, or NTLM only, or refusing the port), an
//! OpenBao holding the password, and an HTTPS origin on 127.0.0.2 whose
//! certificate comes from the trusted test CA or from another one (what a
//! TLS-intercepting proxy looks like). Each test asserts the step lines, the
//! exit code of the first failure, and that no secret is printed. The
//! script steps follow `run`'s route: a script host in the no-proxy list (or
//! a local script) is checked directly, and a proxy that is down is then a
//! warning, not the failure.

mod common;

use common::{write_file, Run, Tagstrap};
use testkit::{Bao, Origin, Reply, ReservedOrigin, Squid, TestCa};

const USER: &str = "svc-doctor";
const PASSWORD: &str = "d0ct0r@p:ss/w0rd";
const ORIGIN_IP: &str = "127.0.0.2";

struct World {
    ca: TestCa,
    bao: Bao,
}

impl World {
    fn new() -> World {
        let bao = Bao::start();
        bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
        bao.put_kv2("secret", "WRONG", &[("value", "not-the-password")]);
        World {
            ca: TestCa::new(),
            bao,
        }
    }

    fn origin(&self, ca: &TestCa) -> ReservedOrigin {
        Origin::builder(Some(ca))
            .bind_ip(ORIGIN_IP.parse().unwrap())
            .reserve()
    }

    /// The usual set-up: an origin with the trusted CA's certificate, and a
    /// Squid with basic auth allowing CONNECT to it.
    fn proxied_origin(&self) -> (Squid, Origin) {
        let reserved = self.origin(&self.ca);
        let squid = self.squid(reserved.port());
        (squid, started(reserved))
    }

    fn squid(&self, port: u16) -> Squid {
        Squid::builder()
            .basic_auth(USER, PASSWORD)
            .allow_connect_ports(&[port])
            .start()
    }

    /// `tagstrap doctor` with the proxy tags, the store and the script URL.
    fn doctor(&self, proxy: &str, password_ref: &str, script: &str) -> Tagstrap {
        Tagstrap::new("doctor")
            .tag("rs_agent:http_proxy", proxy)
            .tag("rs_agent:http_proxy_user", USER)
            .tag("rs_agent:http_proxy_password", password_ref)
            .tag("rs_agent:mime_shellscript", script)
            .vault(&self.bao.addr(), &self.bao.root_token())
            .arg("--ca-file")
            .arg(self.ca.ca_pem_path())
    }
}

fn started(reserved: ReservedOrigin) -> Origin {
    reserved
        .route("/install.sh", vec![], Reply::ok("#!/bin/sh\nexit 0\n"))
        .start()
}

fn script_url(origin: &Origin) -> String {
    format!("https://{ORIGIN_IP}:{}/install.sh", origin.port())
}

/// The status word of each step, in order: ("ok", "tags"), …
fn steps(run: &Run) -> Vec<(String, String)> {
    run.stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

fn line<'a>(run: &'a Run, step: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(step))
        .unwrap_or_else(|| panic!("no {step} line in:\n{}", run.stdout))
}

fn expect(run: &Run, want: &[(&str, &str)]) {
    let got = steps(run);
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want, "{}\n{}", run.stdout, run.stderr);
    run.assert_no_leak(PASSWORD);
}

#[test]
fn every_step_is_ok_when_everything_is_right() {
    let world = World::new();
    let (squid, origin) = world.proxied_origin();
    let run = world
        .doctor(&squid.proxy_addr(), "cred:PROXY_PASS", &script_url(&origin))
        .run();
    run.assert_success();
    expect(
        &run,
        &[
            ("ok", "tags"),
            ("ok", "credentials"),
            ("ok", "no_proxy"),
            ("ok", "proxy"),
            ("ok", "connect"),
            ("ok", "tls"),
            ("ok", "script"),
        ],
    );
    assert!(line(&run, "credentials").contains("cred:PROXY_PASS resolved from"));
    assert!(line(&run, "tls").contains("issued by CN=testkit CA"));
    assert!(line(&run, "script").contains("answers 200 OK, 17 bytes"));
    assert_eq!(origin.hits("/install.sh"), 1, "one status request");
}

#[test]
fn a_wrong_password_is_a_407_that_names_the_credential() {
    let world = World::new();
    let (squid, origin) = world.proxied_origin();
    let run = world
        .doctor(&squid.proxy_addr(), "cred:WRONG", &script_url(&origin))
        .run();
    run.assert_error(77, "407");
    expect(
        &run,
        &[
            ("ok", "tags"),
            ("ok", "credentials"),
            ("ok", "no_proxy"),
            ("ok", "proxy"),
            ("FAIL", "connect"),
            ("skip", "tls"),
            ("skip", "script"),
        ],
    );
    assert!(
        line(&run, "connect").contains("cred:WRONG"),
        "{}",
        run.stdout
    );
    assert_eq!(origin.hits("/install.sh"), 0);
}

#[test]
fn a_proxy_that_offers_only_ntlm_is_unsupported_not_a_wrong_password() {
    let world = World::new();
    let reserved = world.origin(&world.ca);
    let squid = Squid::builder()
        .extra_config("auth_param ntlm program /usr/lib/squid/ntlm_fake_auth")
        .extra_config("auth_param ntlm children 2 startup=1 idle=1")
        .extra_config("acl ntlm_users proxy_auth REQUIRED")
        .extra_config("http_access deny !ntlm_users")
        .allow_connect_ports(&[reserved.port()])
        .start();
    let origin = started(reserved);
    let run = world
        .doctor(&squid.proxy_addr(), "cred:PROXY_PASS", &script_url(&origin))
        .run();
    run.assert_error(77, "offers only NTLM");
    assert!(
        line(&run, "connect").contains("ask for Basic"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_proxy_rule_that_forbids_the_port_is_a_403() {
    let world = World::new();
    let reserved = world.origin(&world.ca);
    // Squid allows CONNECT to another port only.
    let squid = world.squid(reserved.port().wrapping_add(1));
    let origin = started(reserved);
    let run = world
        .doctor(&squid.proxy_addr(), "cred:PROXY_PASS", &script_url(&origin))
        .run();
    run.assert_error(77, "403");
    assert!(
        line(&run, "connect").contains("ask the proxy's administrators"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_proxy_that_is_not_up_fails_at_tcp_and_skips_what_needs_it() {
    let world = World::new();
    let down = Origin::builder(None).reserve();
    let run = world
        .doctor(
            &format!("127.0.0.1:{}", down.port()),
            "cred:PROXY_PASS",
            "https://127.0.0.2:1/install.sh",
        )
        .run();
    run.assert_error(69, "nothing listens");
    expect(
        &run,
        &[
            ("ok", "tags"),
            ("ok", "credentials"),
            ("ok", "no_proxy"),
            ("FAIL", "proxy"),
            ("skip", "connect"),
            ("skip", "tls"),
            ("skip", "script"),
        ],
    );
}

#[test]
fn a_tls_intercepting_proxy_shows_as_an_untrusted_issuer_and_ca_file_fixes_it() {
    let world = World::new();
    let interceptor = TestCa::new();
    let reserved = world.origin(&interceptor);
    let squid = world.squid(reserved.port());
    let origin = started(reserved);
    let run = world
        .doctor(&squid.proxy_addr(), "cred:PROXY_PASS", &script_url(&origin))
        .run();
    run.assert_error(77, "--ca-file");
    let tls = line(&run, "tls");
    assert!(tls.starts_with("FAIL"), "{tls}");
    let issuer = format!("issued by CN={}", subject_cn(&interceptor));
    assert!(tls.contains(&issuer), "{tls} lacks {issuer}");

    // With the interceptor's CA trusted, the same set-up is fine.
    let both = tempfile::tempdir().unwrap();
    let bundle = write_file(
        both.path(),
        "bundle.pem",
        &format!("{}{}", world.ca.ca_pem(), interceptor.ca_pem()),
    );
    let run = world
        .doctor(&squid.proxy_addr(), "cred:PROXY_PASS", &script_url(&origin))
        .arg("--ca-file")
        .arg(&bundle)
        .run();
    run.assert_success();
}

/// The common name `TestCa` gives its certificate.
fn subject_cn(ca: &TestCa) -> String {
    let der = ca.ca_cert_der();
    let subject = tagstrap::net::x509::subject(&der).unwrap();
    subject
        .strip_prefix("CN=")
        .and_then(|s| s.split(", ").next())
        .unwrap()
        .to_string()
}

#[test]
fn a_script_url_that_is_not_there_is_66() {
    let world = World::new();
    let (squid, origin) = world.proxied_origin();
    let missing = format!("https://{ORIGIN_IP}:{}/missing.sh", origin.port());
    let run = world
        .doctor(&squid.proxy_addr(), "cred:PROXY_PASS", &missing)
        .run();
    run.assert_error(66, "404");
    expect(
        &run,
        &[
            ("ok", "tags"),
            ("ok", "credentials"),
            ("ok", "no_proxy"),
            ("ok", "proxy"),
            ("ok", "connect"),
            ("ok", "tls"),
            ("FAIL", "script"),
        ],
    );
}

#[test]
fn a_missing_credential_still_checks_the_proxy_over_tcp() {
    let world = World::new();
    let (squid, origin) = world.proxied_origin();
    let run = world
        .doctor(&squid.proxy_addr(), "cred:NOT_THERE", &script_url(&origin))
        .run();
    run.assert_error(66, "NOT_THERE");
    expect(
        &run,
        &[
            ("ok", "tags"),
            ("FAIL", "credentials"),
            ("ok", "proxy"),
            ("skip", "connect"),
            ("skip", "tls"),
            ("skip", "script"),
        ],
    );
}

#[test]
fn a_bad_tag_stops_at_the_first_step() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "bad.tags", "rs_agent:http_proxy=p:1\u{1b}[2J\n");
    let run = Tagstrap::new("doctor").arg("--tags-file").arg(&file).run();
    run.assert_error(65, "control character");
    assert_eq!(steps(&run)[0], ("FAIL".to_string(), "tags".to_string()));
    assert!(steps(&run)[1..].iter().all(|(s, _)| s == "skip"));
}

/// A port on 127.0.0.1 that nothing listens on: reserved, never started.
fn a_port_nothing_listens_on() -> (ReservedOrigin, String) {
    let down = Origin::builder(None).reserve();
    let addr = format!("127.0.0.1:{}", down.port());
    (down, addr)
}

/// The shipped example's shape: the script host is in the no-proxy list, so
/// `run` fetches it directly. A proxy that is down is then shown, as a
/// warning (the script's tools still use it for other hosts), not the
/// failure: the script steps run directly and all is well.
#[test]
fn a_script_host_in_no_proxy_is_checked_directly_while_the_proxy_is_down() {
    let world = World::new();
    let origin = started(world.origin(&world.ca));
    let (_down, proxy) = a_port_nothing_listens_on();
    let run = world
        .doctor(&proxy, "cred:PROXY_PASS", &script_url(&origin))
        .tag("rs_agent:http_no_proxy", ORIGIN_IP)
        .run();
    run.assert_success();
    expect(
        &run,
        &[
            ("ok", "tags"),
            ("ok", "credentials"),
            ("ok", "no_proxy"),
            ("warn", "proxy"),
            ("skip", "connect"),
            ("ok", "tls"),
            ("ok", "script"),
        ],
    );
    let warned = line(&run, "proxy");
    assert!(warned.contains("nothing listens"), "{warned}");
    assert!(
        warned.contains(&format!("{ORIGIN_IP} is reached directly (no_proxy)")),
        "{warned}"
    );
    assert!(warned.contains("outside no_proxy"), "{warned}");
    assert!(line(&run, "connect").contains("reached directly (no_proxy)"));
    assert!(line(&run, "script").contains("answers 200 OK, 17 bytes"));
    assert_eq!(origin.hits("/install.sh"), 1, "one status request, direct");
}

/// Route direct, and the script host is what is wrong: the failure, and the
/// exit code, are the script host's, not the (also down) proxy's.
#[test]
fn a_direct_script_host_that_fails_is_the_failure_with_its_own_code() {
    let world = World::new();
    let (_down, proxy) = a_port_nothing_listens_on();

    // Nothing listens on the script host's port: 69, on the tls step that
    // opens the direct connection, naming the script host.
    let gone = world.origin(&world.ca);
    let url = format!("https://{ORIGIN_IP}:{}/install.sh", gone.port());
    let run = world
        .doctor(&proxy, "cred:PROXY_PASS", &url)
        .tag("rs_agent:http_no_proxy", ORIGIN_IP)
        .run();
    run.assert_error(
        69,
        &format!("cannot connect to {ORIGIN_IP}:{}", gone.port()),
    );
    expect(
        &run,
        &[
            ("ok", "tags"),
            ("ok", "credentials"),
            ("ok", "no_proxy"),
            ("warn", "proxy"),
            ("skip", "connect"),
            ("FAIL", "tls"),
            ("skip", "script"),
        ],
    );
    // The line says the connection was direct, and why.
    let tls = line(&run, "tls");
    assert!(
        tls.contains(&format!(
            "cannot connect to {ORIGIN_IP}:{} directly (no_proxy): ",
            gone.port()
        )),
        "{tls}"
    );
    assert!(line(&run, "script").contains("needs the connection to the script host"));
    drop(gone);

    // The script host answers 404: 66, on the script step.
    let origin = started(world.origin(&world.ca));
    let missing = format!("https://{ORIGIN_IP}:{}/missing.sh", origin.port());
    let run = world
        .doctor(&proxy, "cred:PROXY_PASS", &missing)
        .tag("rs_agent:http_no_proxy", ORIGIN_IP)
        .run();
    run.assert_error(66, "404");
    expect(
        &run,
        &[
            ("ok", "tags"),
            ("ok", "credentials"),
            ("ok", "no_proxy"),
            ("warn", "proxy"),
            ("skip", "connect"),
            ("ok", "tls"),
            ("FAIL", "script"),
        ],
    );
}

/// Route through the proxy (a no-proxy list that does not match the script
/// host): as before, a proxy that is down is the failure and the script
/// steps wait for it; with the proxy up they go through its tunnel.
#[test]
fn a_script_host_outside_no_proxy_still_needs_the_proxy() {
    let world = World::new();
    let (_down, proxy) = a_port_nothing_listens_on();
    let elsewhere = "127.0.0.3,.example.internal";
    let run = world
        .doctor(&proxy, "cred:PROXY_PASS", "https://127.0.0.2:1/install.sh")
        .tag("rs_agent:http_no_proxy", elsewhere)
        .run();
    run.assert_error(69, "nothing listens");
    expect(
        &run,
        &[
            ("ok", "tags"),
            ("ok", "credentials"),
            ("ok", "no_proxy"),
            ("FAIL", "proxy"),
            ("skip", "connect"),
            ("skip", "tls"),
            ("skip", "script"),
        ],
    );
    for step in ["connect", "tls", "script"] {
        assert!(line(&run, step).ends_with("(needs the proxy)"), "{step}");
    }

    let (squid, origin) = world.proxied_origin();
    let run = world
        .doctor(&squid.proxy_addr(), "cred:PROXY_PASS", &script_url(&origin))
        .tag("rs_agent:http_no_proxy", elsewhere)
        .run();
    run.assert_success();
    assert!(
        line(&run, "connect").contains("opened a tunnel"),
        "{}",
        run.stdout
    );
    assert_eq!(origin.hits("/install.sh"), 1);
}

/// A script already on the image needs no route at all: the proxy being
/// down is a warning, and the script step checks the file.
#[test]
fn a_local_script_does_not_need_the_proxy() {
    let world = World::new();
    let (_down, proxy) = a_port_nothing_listens_on();
    let dir = tempfile::tempdir().unwrap();
    let script = write_file(dir.path(), "install.sh", "#!/bin/sh\nexit 0\n");
    let run = world
        .doctor(
            &proxy,
            "cred:PROXY_PASS",
            &format!("file://{}", script.display()),
        )
        .run();
    run.assert_success();
    expect(
        &run,
        &[
            ("ok", "tags"),
            ("ok", "credentials"),
            ("ok", "no_proxy"),
            ("warn", "proxy"),
            ("skip", "connect"),
            ("skip", "tls"),
            ("ok", "script"),
        ],
    );
    assert!(line(&run, "proxy").contains("the script is a local file"));
}
