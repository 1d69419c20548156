//! Recovery latency after the boot-time network race: how long after the
//! network comes up does the install script start? Prints figures; asserts
//! nothing about timing (a run fails only if a client or its script fails).
//!
//! The world is `testkit::BootRace`, the same as tests/boot_race.rs: an
//! "instance" and a "cloud" network namespace joined by a veth pair (a
//! private `10.250.x.y/30`: the cloud `.1`, the instance `.2`), and in the
//! cloud dnsmasq, a real Squid with basic auth (`proxy.test:3128`), a real
//! OpenBao dev server holding the proxy password (`store.test:8200`) and the
//! HTTPS origin `script.test`, whose script writes `date +%s.%N` to a file.
//! Each client runs in the instance namespace (`ip netns exec`, with the
//! instance's resolv.conf naming the cloud's dnsmasq) and reaches all of
//! them by name. Before each run the network goes down (`--outage`):
//!
//! * `unreachable` (default): the instance's link is down with no address,
//!   as before DHCP: every send fails at once ("network is unreachable"),
//!   so every DNS lookup fails at once too;
//! * `silent`: the instance is configured and up, but the cloud's end is
//!   down: packets vanish, ARP for the cloud's address is retried every
//!   `retrans_time_ms` (1 s; `--arp-retrans-ms` changes it in the instance),
//!   lookups hang.
//!
//! `--delay` seconds plus a share of `--jitter` seconds after the client
//! started (the share changes from round to round, the same for every
//! variant of a round, so no client with a fixed retry period is favoured
//! by always meeting the link-up at the same phase), the outage ends (one
//! `ip -batch`), and the figure is the time from that `ip` command's return
//! to the timestamp the script wrote.
//!
//! * A — `tagstrap run`: the password from OpenBao, the script through
//!   Squid (CONNECT), TLS to the origin (`--ca-file`), run.
//! * B — curl with its own retries, the same steps: `curl --retry 10
//!   --retry-all-errors` reads the password from OpenBao, `sed` extracts it,
//!   a second such curl downloads the script through Squid (credentials in a
//!   config on stdin, `-K -`, never on argv), `chmod 700`, run it. curl's
//!   retry waits are 1 s, doubling.
//! * C — cloud-init's `#include` schedule (`read_file_or_url(url,
//!   timeout=5, retries=10)`, `sec_between=1`): up to 11 tries of `curl
//!   --max-time 5`, with `sleep 1` after each failed one, downloading the
//!   script through Squid and running it. `#include` cannot read a store, so
//!   C gets the credentials from the harness (environment, then a config on
//!   stdin): it has one resource to fetch where A and B have two.
//!
//! Runs are interleaved (A B C, B C A, C A B, ...) after `--warmup` runs of
//! each; every run gets fresh state and output directories. Reported per
//! variant: min / median / p95 (nearest rank) / max of the delay, and the
//! median of the failed tries each client reported (tagstrap's "try N
//! failed" lines, curl's "curl: (N)" errors). `--logs DIR` keeps every
//! run's client output with its link-up time. Afterwards the harness checks that Squid
//! logged an authenticated CONNECT and the origin a request for each run.
//!
//! Needs root (namespaces, veth, setns, dnsmasq on port 53), `ip`,
//! `dnsmasq`, `squid`, `bao`, `curl`, `sed` (`.ci/install`). Cleanup is
//! `BootRace`'s Drop: servers killed, both namespaces and `/etc/netns/NS/`
//! deleted; a client still running at its time limit is killed with its
//! process group.
//!
//! Run it with
//! `cargo build --release --bin tagstrap && TAGSTRAP_BIN=target/release/tagstrap
//! cargo bench --bench recovery -- [--runs N] [--warmup N] [--delay SECONDS]
//! [--jitter SECONDS] [--outage unreachable|silent] [--only A,B,C] [--logs DIR]
//! [--arp-retrans-ms MS]`.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use testkit::netns::{self, BootRace, Outage, PROXY_PASSWORD, PROXY_SECRET, PROXY_USER};

mod common;
use common::args::Args;
use common::stats::{ms, Stats};
use common::{fail, tagstrap_bin as bin};

const USAGE: &str =
    "usage: recovery [--runs N (20)] [--warmup N (1)] [--delay SECONDS (2)] [--jitter SECONDS (1)]
       [--outage unreachable|silent (unreachable)] [--only A,B,C] [--logs DIR]
       [--arp-retrans-ms MS (kernel default: 1000)]
env: TAGSTRAP_BIN (default: $CARGO_TARGET_DIR or ./target, then release/tagstrap)";

/// How long a client may take after link-up before the run counts as failed
/// (C's worst case is 11 tries of 5 s plus 10 s of sleeps).
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// B: the steps of `tagstrap run` with curl's own retries.
const CURL_RETRY: &str = r#"set -eu
pass=$(printf 'header = "X-Vault-Token: %s"\n' "$VAULT_TOKEN" |
    curl -q --fail --no-progress-meter --retry 10 --retry-all-errors -K - "$VAULT_ADDR/v1/secret/data/$SECRET" |
    sed -n 's/.*"data":{"data":{[^}]*"value":"\([^"\\]*\)".*/\1/p')
[ -n "$pass" ] || { echo "no value in secret/data/$SECRET" >&2; exit 1; }
printf 'proxy-user = "%s:%s"\n' "$PROXY_USER" "$pass" |
    curl -q --fail --no-progress-meter --retry 10 --retry-all-errors -K - --cacert "$CA" \
        --proxy "http://$PROXY" -o "$OUT/install.sh" "$URL"
chmod 700 "$OUT/install.sh"
exec "$OUT/install.sh"
"#;

/// C: cloud-init's `#include` schedule: 11 tries, 5 s each, 1 s between.
const CLOUD_INIT: &str = r#"try=1
while :; do
    if printf 'proxy-user = "%s"\n' "$PROXY_CREDENTIALS" |
        curl -q --fail --no-progress-meter --max-time 5 -K - --cacert "$CA" \
            --proxy "http://$PROXY" -o "$OUT/install.sh" "$URL"; then
        chmod 700 "$OUT/install.sh"
        exec "$OUT/install.sh"
    fi
    [ "$try" -lt 11 ] || exit 1
    try=$((try + 1))
    sleep 1
done
"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Tagstrap,
    CurlRetry,
    CloudInit,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Tagstrap, Variant::CurlRetry, Variant::CloudInit];

    fn letter(self) -> &'static str {
        match self {
            Variant::Tagstrap => "A",
            Variant::CurlRetry => "B",
            Variant::CloudInit => "C",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Tagstrap => "A tagstrap run",
            Variant::CurlRetry => "B curl --retry 10 --retry-all-errors",
            Variant::CloudInit => "C cloud-init #include (11 x 5 s, 1 s apart)",
        }
    }
}

struct Opts {
    runs: usize,
    warmup: usize,
    delay: Duration,
    jitter: Duration,
    outage: Outage,
    only: Vec<Variant>,
    /// Keep each run's client output here.
    logs: Option<PathBuf>,
    /// The instance's ARP retransmission time (kernel default 1000 ms).
    arp_retrans_ms: Option<u32>,
}

impl Opts {
    /// When the network comes up in round `n`: `--delay` plus a share of
    /// `--jitter` that differs from round to round (a golden-ratio sequence,
    /// spread evenly) but is the same for every variant of a round. A fixed
    /// delay would favour any client that retries on a fixed period: its
    /// tries would fall at the same phase of the link-up in every run.
    fn network_delay(&self, n: usize) -> Duration {
        let phase = (n as f64 * 0.618_033_988_749_895).fract();
        self.delay + self.jitter.mul_f64(phase)
    }
}

fn parse_args() -> Opts {
    let mut opts = Opts {
        runs: 20,
        warmup: 1,
        delay: Duration::from_secs(2),
        jitter: Duration::from_secs(1),
        outage: Outage::Unreachable,
        logs: None,
        arp_retrans_ms: None,
        only: Variant::ALL.to_vec(),
    };
    let mut args = Args::new(USAGE);
    while let Some(flag) = args.flag() {
        match flag.as_str() {
            "--runs" => opts.runs = args.parse(&flag),
            "--warmup" => opts.warmup = args.parse(&flag),
            "--delay" => opts.delay = Duration::from_secs_f64(args.parse::<f64>(&flag).max(0.0)),
            "--jitter" => opts.jitter = Duration::from_secs_f64(args.parse::<f64>(&flag).max(0.0)),
            "--outage" => {
                opts.outage = match args.value(&flag).as_str() {
                    "unreachable" => Outage::Unreachable,
                    "silent" => Outage::Silent,
                    other => args.bad(&format!("--outage {other:?}: unreachable or silent")),
                }
            }
            "--logs" => opts.logs = Some(PathBuf::from(args.value(&flag))),
            "--arp-retrans-ms" => opts.arp_retrans_ms = Some(args.parse(&flag)),
            "--only" => {
                let list = args.value(&flag);
                opts.only = Variant::ALL
                    .into_iter()
                    .filter(|v| list.split(',').any(|x| x.trim() == v.letter()))
                    .collect();
                if opts.only.is_empty() {
                    args.bad(&format!("--only {list:?}: a list of A, B, C"));
                }
            }
            _ => args.unknown(&flag),
        }
    }
    opts.runs = opts.runs.max(1);
    opts
}

/// The client of `variant` in the instance namespace, its output to `log`,
/// in its own process group. Only PATH comes from this machine.
fn client(race: &BootRace, variant: Variant, dir: &Path, log: &Path) -> Child {
    let program = match variant {
        Variant::Tagstrap => bin(),
        Variant::CurlRetry | Variant::CloudInit => PathBuf::from("/bin/sh"),
    };
    let mut command = race.instance().exec(program);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    match variant {
        Variant::Tagstrap => {
            let empty = dir.join("empty");
            std::fs::write(&empty, "").expect("write empty file");
            // The race's store is plain http:// by name, which SPEC §2
            // allows only when the config file says so.
            let config = dir.join("config.toml");
            std::fs::write(&config, "[vault]\ninsecure_http = true\n").expect("write config file");
            let tag = |key: &str, value: &str| format!("--tag=rs_agent:{key}={value}");
            command
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
                .arg(tag("http_proxy", &race.proxy()))
                .arg(tag("http_proxy_user", PROXY_USER))
                .arg(tag("http_proxy_password", &format!("cred:{PROXY_SECRET}")))
                .arg(tag("mime_shellscript", &race.script_url()));
        }
        Variant::CurlRetry => {
            command
                .env("VAULT_ADDR", race.store_addr())
                .env("VAULT_TOKEN", race.store_token())
                .env("SECRET", PROXY_SECRET)
                .env("PROXY_USER", PROXY_USER)
                .args(["-c", CURL_RETRY]);
        }
        Variant::CloudInit => {
            command
                .env(
                    "PROXY_CREDENTIALS",
                    format!("{PROXY_USER}:{PROXY_PASSWORD}"),
                )
                .args(["-c", CLOUD_INIT]);
        }
    }
    if variant != Variant::Tagstrap {
        command
            .env("CA", race.ca_pem_path())
            .env("PROXY", race.proxy())
            .env("URL", race.script_url())
            .env("OUT", dir);
    }
    let out = File::create(log).expect("create client log");
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup log"))
        .stderr(out)
        .process_group(0);
    command.spawn().expect("spawn the client")
}

/// Waits for `child`; kills its process group after `limit`. Exit code.
fn wait(child: &mut Child, limit: Duration) -> Option<i32> {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for client") {
            return status.code();
        }
        if Instant::now() >= end {
            // SAFETY: kill(2) on the process group this harness created.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Sample {
    delay: Duration,
    failed_tries: usize,
}

/// One run: link down, client started, link up after `delay`, client done.
fn run_once(race: &BootRace, opts: &Opts, variant: Variant, n: usize) -> Sample {
    let delay = opts.network_delay(n);
    race.take_down(opts.outage);
    race.clear_script_mark();
    let dir = race.dir().join(format!("run-{n}-{}", variant.letter()));
    std::fs::create_dir_all(&dir).expect("create run dir");
    let log = dir.join("client.log");
    let mut child = client(race, variant, &dir, &log);
    let started = Instant::now();
    std::thread::sleep(delay.saturating_sub(started.elapsed()));
    let up = race.link_up();
    let code = wait(&mut child, RUN_LIMIT);
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    if code != Some(0) {
        eprintln!(
            "recovery: run {n} of {} failed (exit {code:?})\n--- client ---\n{output}\n{}",
            variant.label(),
            race.logs()
        );
        std::process::exit(1);
    }
    let Some(script_at) = race.script_started() else {
        eprintln!(
            "recovery: run {n} of {}: no script timestamp\n{output}",
            variant.label()
        );
        std::process::exit(1);
    };
    let delay = script_at.duration_since(up.wall).unwrap_or_else(|_| {
        eprintln!("recovery: run {n}: the script started before link-up?");
        std::process::exit(1);
    });
    let tries = failed_tries(&output);
    if let Some(keep) = &opts.logs {
        let delay_ms = delay.as_secs_f64() * 1e3;
        let _ = std::fs::create_dir_all(keep);
        let _ = std::fs::write(
            keep.join(format!("run-{n:03}-{}.log", variant.letter())),
            format!(
                "{output}--- link up {:.3} s after start; script {delay_ms:.0} ms later\n",
                up.at.duration_since(started).as_secs_f64()
            ),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Sample {
        delay,
        failed_tries: tries,
    }
}

/// Failed tries the client reported: tagstrap's "try N failed: ..." lines,
/// curl's "curl: (N) ..." errors (one per failed transfer, retried or not).
fn failed_tries(output: &str) -> usize {
    output
        .lines()
        .filter(|l| (l.contains(": try ") && l.contains(" failed: ")) || l.starts_with("curl: ("))
        .count()
}

fn main() {
    let opts = parse_args();
    if let Err(why) = netns::check_available() {
        fail(&format!("{why} (run .ci/install, as root)"));
    }
    if opts.only.contains(&Variant::Tagstrap) && !bin().is_file() {
        fail(&format!(
            "no tagstrap binary at {} (cargo build --release --bin tagstrap, or set TAGSTRAP_BIN)",
            bin().display()
        ));
    }
    let began = Instant::now();
    let race = BootRace::start();
    println!(
        "world: instance {} / cloud {} ({} / {}), set up in {:.1} s; tagstrap {}",
        race.instance().name(),
        race.pair().cloud().name(),
        race.pair().instance_ip(),
        race.pair().cloud_ip(),
        began.elapsed().as_secs_f64(),
        bin().display()
    );

    if let Some(ms) = opts.arp_retrans_ms {
        let setting = format!("net.ipv4.neigh.eth0.retrans_time_ms={ms}");
        let status = race
            .instance()
            .exec("sysctl")
            .args(["-qw", &setting])
            .status()
            .expect("run sysctl");
        if !status.success() {
            fail(&format!(
                "sysctl -w {setting} failed in the instance namespace"
            ));
        }
    }
    let variants = &opts.only;
    for round in 0..opts.warmup {
        for &v in variants {
            run_once(&race, &opts, v, round);
        }
    }
    let mut samples: Vec<Vec<Sample>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..opts.runs {
        // A B C, B C A, C A B, ...: order effects hit every variant alike.
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            let n = opts.warmup + round;
            let sample = run_once(&race, &opts, variants[i], n);
            samples[i].push(sample);
        }
    }

    // Every run went through Squid, authenticated, and reached the origin.
    let want = (opts.warmup + opts.runs) * variants.len();
    let connect = format!("CONNECT {}", &race.script_url()["https://".len()..])
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let needle = format!("{connect} {PROXY_USER} ");
    let seen = || race.squid().access_log().matches(&needle).count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let hits = race.origin().hits("/install.sh");

    println!(
        "\nfrom link-up to the script's start; the network ({:?} before) came up {:.1} s + \
         0..{:.1} s after the client started ({} runs each after {} warm-up, interleaved):",
        opts.outage,
        opts.delay.as_secs_f64(),
        opts.jitter.as_secs_f64(),
        opts.runs,
        opts.warmup
    );
    println!(
        "{:<46} {:>8} {:>8} {:>8} {:>8}   failed tries (median)",
        "", "min", "median", "p95", "max"
    );
    for (v, s) in variants.iter().zip(&samples) {
        let delays: Vec<Duration> = s.iter().map(|x| x.delay).collect();
        let st = Stats::of(&delays);
        let mut tries: Vec<usize> = s.iter().map(|x| x.failed_tries).collect();
        tries.sort();
        let tries = tries[tries.len() / 2];
        println!(
            "{:<46} {:>8} {:>8} {:>8} {:>8}   {tries}",
            v.label(),
            ms(st.min, 0),
            ms(st.median, 0),
            ms(st.p95, 0),
            ms(st.max, 0)
        );
        if *v == Variant::Tagstrap {
            let goal =
                st.median <= Duration::from_millis(500) && st.p95 <= Duration::from_millis(1500);
            println!(
                "{:<46} goal median <= 500 ms and p95 <= 1500 ms: {}",
                "",
                if goal { "met" } else { "MISSED" }
            );
        }
    }
    println!(
        "\nSquid logged {} of {want} authenticated CONNECTs, the origin served {hits}; bench took {:.0} s",
        seen(),
        began.elapsed().as_secs_f64()
    );
    if seen() < want || hits != want {
        eprintln!(
            "recovery: not every run went through Squid to the origin\n{}",
            race.logs()
        );
        std::process::exit(1);
    }
}
