//! The boot-time network race, for real (SPEC §6): tagstrap starts on an
//! instance whose network is not up yet, and must start the script soon
//! after it comes up.
//!
//! `testkit::BootRace` builds two network namespaces joined by a veth pair
//! (a private `10.250.x.y/30` per test: the cloud is `.1`, the instance
//! `.2`). In the cloud namespace: dnsmasq (`proxy.test`, `store.test`,
//! `script.test`), a real Squid with basic auth on `proxy.test:3128`, a
//! real OpenBao dev server on `store.test:8200` holding the proxy password,
//! and the HTTPS origin `script.test` serving a script that writes the time
//! it started. The real binary runs in the instance namespace (`ip netns
//! exec`, which puts `/etc/netns/NS/resolv.conf`, naming the cloud's
//! dnsmasq, in place of `/etc/resolv.conf`), reaching all three by name.
//! Its link is down and it has no address when tagstrap starts; three
//! seconds later the link comes up and gets its address, and only then
//! does DNS answer.
//!
//! The test prints the delay from link-up to the script's start, and checks
//! that tagstrap failed its first tries with short waits (the network is
//! down: at most 250 ms) and that the download went through Squid with the
//! password from OpenBao. Cleanup: `BootRace`'s Drop (also while a failed
//! assertion unwinds) kills the servers and deletes both namespaces and
//! `/etc/netns/NS/`; tagstrap is killed if it outlives its deadline.
//!
//! Needs root (namespaces, veth, setns, dnsmasq on port 53), `ip`, `dnsmasq`
//! (`dnsmasq-base`), `squid` and `bao` (`.ci/install`).

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::netns::{self, BootRace, Outage, PROXY_SECRET, PROXY_USER};

const BIN: &str = env!("CARGO_BIN_EXE_tagstrap");
/// How long after tagstrap's start the network comes up.
const NETWORK_DELAY: Duration = Duration::from_secs(3);
/// tagstrap's own deadline: long enough for the race, short enough that a
/// broken build fails the test in a minute.
const DEADLINE_SECONDS: u64 = 60;

/// `tagstrap run` on the instance, with nothing from this machine but PATH.
fn tagstrap(race: &BootRace) -> (Child, std::path::PathBuf) {
    let dir = race.dir();
    let empty = dir.join("empty");
    std::fs::write(&empty, "").unwrap();
    // The race's store is plain http:// by name (http://store.test:8200),
    // which SPEC §2 allows only when the config file says so.
    let config = dir.join("config.toml");
    std::fs::write(&config, "[vault]\ninsecure_http = true\n").unwrap();
    let log = dir.join("tagstrap.log");
    let out = File::create(&log).unwrap();
    let tag = |key: &str, value: &str| format!("--tag=rs_agent:{key}={value}");
    let mut command: Command = race.instance().exec(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VAULT_ADDR", race.store_addr())
        .env("VAULT_TOKEN", race.store_token())
        .args(["run", "--source", "none", "--config"])
        .arg(&config)
        .arg("--tags-file")
        .arg(&empty)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--ca-file")
        .arg(race.ca_pem_path())
        .args(["--deadline", &DEADLINE_SECONDS.to_string()])
        .arg(tag("http_proxy", &race.proxy()))
        .arg(tag("http_proxy_user", PROXY_USER))
        .arg(tag("http_proxy_password", &format!("cred:{PROXY_SECRET}")))
        .arg(tag("mime_shellscript", &race.script_url()))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    (command.spawn().expect("spawn ip netns exec tagstrap"), log)
}

/// Waits for `child` to exit, killing it after `limit`; its exit code.
fn wait(child: &mut Child, limit: Duration) -> Option<i32> {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The waits tagstrap announced: "... try N failed: ...; next try in X s".
fn announced_waits(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains(" failed: "))
        .filter_map(|l| {
            let rest = &l[l.find("; next try in ")? + "; next try in ".len()..];
            rest.split(' ').next()?.parse().ok()
        })
        .collect()
}

/// What one race showed.
struct Outcome {
    /// From link-up to the script's start.
    delay: Duration,
    /// The waits tagstrap announced after its failed tries.
    waits: Vec<f64>,
    log: String,
}

/// Starts tagstrap with the network down as `outage` says, brings the
/// network up after [`NETWORK_DELAY`], and checks what every race must
/// show: tagstrap succeeded, kept trying with short waits while the network
/// was down, and the script came through Squid with the password from
/// OpenBao.
fn race(outage: Outage) -> Outcome {
    if let Err(why) = netns::check_available() {
        panic!("this test builds network namespaces: {why} (run .ci/install, as root)");
    }
    let race = BootRace::start();
    race.take_down(outage);
    let (mut child, log_path) = tagstrap(&race);
    let started = Instant::now();

    // The race itself: the instance has no network for NETWORK_DELAY.
    std::thread::sleep(NETWORK_DELAY.saturating_sub(started.elapsed()));
    let up = race.link_up();
    let code = wait(&mut child, Duration::from_secs(DEADLINE_SECONDS + 10));
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        code,
        Some(0),
        "tagstrap should succeed once the network is up\n--- tagstrap ---\n{log}\n{}",
        race.logs()
    );

    let script_at = race
        .script_started()
        .unwrap_or_else(|| panic!("the script did not write its timestamp\n{log}"));
    let delay = script_at
        .duration_since(up.wall)
        .unwrap_or_else(|e| panic!("the script started {:?} before link-up", e.duration()));
    let waits = announced_waits(&log);
    println!(
        "boot race ({outage:?}): network up {:.2} s after tagstrap started (ip took {:.1} ms); \
         script started {:.0} ms after link-up; {} failed tries before, waits {:.2}..{:.2} s",
        up.at.duration_since(started).as_secs_f64(),
        up.took.as_secs_f64() * 1e3,
        delay.as_secs_f64() * 1e3,
        waits.len(),
        waits.iter().copied().fold(f64::INFINITY, f64::min),
        waits.iter().copied().fold(0.0, f64::max),
    );

    // While the network was down, tagstrap kept trying, with short waits.
    assert!(
        waits.iter().all(|&w| w <= 0.25),
        "with the network down every wait should be at most 250 ms: {waits:?}\n{log}"
    );
    let named = log
        .lines()
        .filter(|l| l.contains(" failed: "))
        .all(|l| l.contains("store.test") || l.contains("script.test"));
    assert!(
        named,
        "failures should name the store or the script:\n{log}"
    );

    // The download went through Squid, authenticated with the password from
    // OpenBao, and reached the origin once.
    let connect = format!("CONNECT {} {PROXY_USER} ", script_authority(&race));
    assert!(
        race.squid()
            .wait_for_access_log(&connect, Duration::from_secs(10)),
        "no authenticated CONNECT in Squid's access.log:\n{}",
        race.squid().access_log()
    );
    assert_eq!(race.origin().hits("/install.sh"), 1);
    assert!(race.store_connections() >= 1);
    Outcome { delay, waits, log }
}

/// The instance has no link and no address (before DHCP): every lookup
/// fails at once, so tagstrap tries every 20–250 ms.
#[test]
fn script_starts_soon_after_a_late_network_comes_up() {
    let Outcome { delay, waits, log } = race(Outage::Unreachable);
    assert!(
        waits.len() >= 5,
        "tagstrap should have failed several tries while the network was down:\n{log}"
    );
    // Not a timing goal (that is benches/recovery.rs), a sanity bound: well
    // under one DNS timeout (5 s) or a stuck connect (2 s) plus a wait.
    assert!(
        delay < Duration::from_millis(2500),
        "the script started {delay:?} after link-up\n{log}"
    );
}

/// The instance is configured but the cloud's end is down: packets vanish,
/// lookups hang until tagstrap's 2 s connect timeout (glibc's own is 5 s),
/// and ARP for the cloud's address is retried once a second. Those tries
/// are still "network down" (short waits), not a server to back off from.
#[test]
fn script_starts_soon_after_a_silent_network_comes_up() {
    let Outcome { delay, waits, log } = race(Outage::Silent);
    assert!(
        !waits.is_empty(),
        "the first try should have timed out while packets vanished:\n{log}"
    );
    // A sanity bound: one connect timeout (2 s) and ARP's 1 s retry at most,
    // never glibc's 5 s DNS timeout.
    assert!(
        delay < Duration::from_millis(3500),
        "the script started {delay:?} after link-up\n{log}"
    );
}

/// `script.test:PORT`, as Squid logs a CONNECT.
fn script_authority(race: &BootRace) -> String {
    let url = race.script_url();
    let rest = url.strip_prefix("https://").unwrap();
    rest[..rest.find('/').unwrap()].to_string()
}
