//! Benchmarks of tagstrap's main path against real servers on loopback (an
//! OpenBao dev server holding the proxy password, a Squid with basic auth,
//! an HTTPS origin on 127.0.0.2 with a test CA — all from `testkit`). They
//! print figures; they assert nothing about timing. See bench/README.md.
//!
//! 1. `tagstrap run` against `bench/curl_main_path.sh` (the same steps done
//!    with curl and sed), interleaved, wall time min / median / p90.
//! 2. Peak RSS of `tagstrap run` while it downloads a 100 MiB script through
//!    the proxy, and of `tagstrap --version`.
//!
//! Run it with `bench/run` (builds the release binary first), or
//! `TAGSTRAP_BIN=... cargo bench --bench main_path -- [--runs N] [--warmup N] [--rss-runs N]`.
//! Linux only (wait4 rusage, and testkit's Squid).

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{Bao, Origin, Reply, Squid, TestCa};

mod common;
use common::args::Args;
use common::rusage::{measure, measure_isolated, Isolated, Measured};
use common::stats::{mib, ms, Stats};
use common::{fail, first_line, tagstrap_bin};

const USER: &str = "svc-bench";
/// Holds '@', ':' and '/' (tagstrap must percent-encode them in the proxy
/// URL), but no '"', '\' or '%' (see bench/curl_main_path.sh).
const PASSWORD: &str = "b3nch@p:ss/w0rd";
const SECRET: &str = "PROXY_PASS";
const ORIGIN_IP: &str = "127.0.0.2";
const TRIVIAL_SCRIPT: &[u8] = b"#!/bin/sh\nexit 0\n";
const BIG_LEN: usize = 100 << 20;
const MIB: f64 = (1u64 << 20) as f64;

struct Opts {
    runs: usize,
    warmup: usize,
    rss_runs: usize,
}

const USAGE: &str = "usage: main_path [--runs N (30)] [--warmup N (3)] [--rss-runs N (3)]
env: TAGSTRAP_BIN (default: $CARGO_TARGET_DIR or ./target, then release/tagstrap)";

fn parse_args() -> Opts {
    let mut opts = Opts {
        runs: 30,
        warmup: 3,
        rss_runs: 3,
    };
    let mut args = Args::new(USAGE);
    while let Some(flag) = args.flag() {
        let slot = match flag.as_str() {
            "--runs" => &mut opts.runs,
            "--warmup" => &mut opts.warmup,
            "--rss-runs" => &mut opts.rss_runs,
            _ => args.unknown(&flag),
        };
        *slot = args.parse(&flag);
    }
    if opts.runs == 0 || opts.rss_runs == 0 {
        fail("--runs and --rss-runs must be at least 1");
    }
    opts
}

/// The servers and the fixed inputs of every run.
struct World {
    bin: PathBuf,
    /// This bench binary (the RSS wrapper).
    exe: PathBuf,
    curl_script: PathBuf,
    ca: TestCa,
    origin: Origin,
    squid: Squid,
    bao: Bao,
    /// Empty config and tags files (so /etc/tagstrap is never read) and the
    /// per-run directories.
    work: tempfile::TempDir,
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Tagstrap,
    Curl,
}

impl World {
    fn empty_config(&self) -> PathBuf {
        self.work.path().join("empty.toml")
    }

    fn empty_tags(&self) -> PathBuf {
        self.work.path().join("empty.tags")
    }

    /// A clean environment: PATH and the store's address and token only.
    fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("VAULT_ADDR", self.bao.addr())
            .env("VAULT_TOKEN", self.bao.root_token())
            .stdin(Stdio::null());
        cmd
    }

    /// `tagstrap run` for `url`, state in `dir/state`, output to `dir/log`.
    fn tagstrap(&self, url: &str, dir: &Path, extra: &[&str]) -> Command {
        let mut cmd = self.command(&self.bin);
        cmd.arg("run")
            .args(["--source", "none"])
            .arg("--config")
            .arg(self.empty_config())
            .arg("--tags-file")
            .arg(self.empty_tags())
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--ca-file")
            .arg(self.ca.ca_pem_path())
            .arg("--tag")
            .arg(format!("rs_agent:http_proxy={}", self.squid.proxy_addr()))
            .arg("--tag")
            .arg(format!("rs_agent:http_proxy_user={USER}"))
            .arg("--tag")
            .arg(format!("rs_agent:http_proxy_password=cred:{SECRET}"))
            .arg("--tag")
            .arg(format!("rs_agent:mime_shellscript={url}"))
            .args(extra);
        log_to(&mut cmd, dir);
        cmd
    }

    /// bench/curl_main_path.sh for `url`, script saved in `dir/state`.
    fn curl(&self, url: &str, dir: &Path) -> Command {
        let mut cmd = self.command("/bin/sh");
        cmd.arg(&self.curl_script)
            .arg(self.squid.proxy_addr())
            .arg(USER)
            .arg(SECRET)
            .arg(self.ca.ca_pem_path())
            .arg(url)
            .arg(dir.join("state"));
        log_to(&mut cmd, dir);
        cmd
    }

    /// One run in a fresh directory (created before the clock starts,
    /// removed after); exits the bench with the run's output if it failed.
    fn run(&self, variant: Variant, url: &str, name: &str, extra: &[&str]) -> (Measured, PathBuf) {
        let dir = self.work.path().join(name);
        std::fs::create_dir(&dir).expect("create run dir");
        let mut cmd = match variant {
            Variant::Tagstrap => self.tagstrap(url, &dir, extra),
            Variant::Curl => self.curl(url, &dir),
        };
        let m = measure(&mut cmd);
        if !m.status.success() {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            fail(&format!("run {name} failed ({}):\n{log}", m.status));
        }
        (m, dir)
    }

    /// [`World::run`], with the peak RSS measured through the wrapper.
    fn run_isolated(
        &self,
        variant: Variant,
        url: &str,
        name: &str,
        extra: &[&str],
    ) -> (Isolated, PathBuf) {
        let dir = self.work.path().join(name);
        std::fs::create_dir(&dir).expect("create run dir");
        let cmd = match variant {
            Variant::Tagstrap => self.tagstrap(url, &dir, extra),
            Variant::Curl => self.curl(url, &dir),
        };
        let m = isolated(&cmd, self.command(&self.exe), &dir);
        if !m.status.success() {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            fail(&format!("run {name} failed ({}):\n{log}", m.status));
        }
        (m, dir)
    }
}

/// [`measure_isolated`] with the wrapper's output in `dir/log`, which is
/// shown if the wrapper fails.
fn isolated(cmd: &Command, mut wrapper: Command, dir: &Path) -> Isolated {
    log_to(&mut wrapper, dir);
    measure_isolated(cmd, wrapper, &dir.join("rusage")).unwrap_or_else(|status| {
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        fail(&format!("the RSS wrapper failed ({status}):\n{log}"));
    })
}

fn log_to(cmd: &mut Command, dir: &Path) {
    let log = File::create(dir.join("log")).expect("create log");
    let log2 = log.try_clone().expect("clone log fd");
    cmd.stdout(log).stderr(log2);
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// `#!/bin/sh\nexit 0\n` padded with comment lines to exactly `len` bytes:
/// a valid script, so both variants finish with exit 0 and the shell stops
/// reading at `exit 0` (only the download is big, not the run).
fn big_script(len: usize) -> Vec<u8> {
    let line = b"# padding padding padding padding padding padding padding pad\n";
    let mut body = Vec::with_capacity(len + line.len());
    body.extend_from_slice(TRIVIAL_SCRIPT);
    while body.len() < len {
        body.extend_from_slice(line);
    }
    body.truncate(len);
    body
}

fn main() {
    common::rusage::wrapper_if_asked();
    let opts = parse_args();
    let bin = tagstrap_bin();
    if !bin.is_file() {
        fail(&format!(
            "{} not found: run bench/run, or `cargo build --release --bin tagstrap` first, \
             or set TAGSTRAP_BIN",
            bin.display()
        ));
    }
    let curl_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/curl_main_path.sh");
    let bench_start = Instant::now();

    // The servers.
    let ca = TestCa::new();
    let origin = Origin::builder(Some(&ca))
        .bind_ip(ORIGIN_IP.parse().unwrap())
        .route("/install.sh", vec![], Reply::ok(TRIVIAL_SCRIPT))
        .route("/big.sh", vec![], Reply::ok(big_script(BIG_LEN)))
        .start();
    let squid = Squid::builder()
        .basic_auth(USER, PASSWORD)
        .allow_connect_ports(&[origin.port()])
        .start();
    let bao = Bao::start();
    bao.put_kv2("secret", SECRET, &[("value", PASSWORD)]);
    let work = tempfile::Builder::new()
        .prefix("tagstrap-bench-")
        .tempdir()
        .expect("temp dir");
    std::fs::write(work.path().join("empty.toml"), "").unwrap();
    std::fs::write(work.path().join("empty.tags"), "").unwrap();
    let world = World {
        bin,
        exe: std::env::current_exe().expect("current_exe"),
        curl_script,
        ca,
        origin,
        squid,
        bao,
        work,
    };
    let setup = bench_start.elapsed();

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("tagstrap main path on loopback: OpenBao KV v2 read, HTTPS download through");
    println!("Squid (CONNECT, basic auth) from an origin on {ORIGIN_IP}, run of `exit 0`");
    println!(
        "  tagstrap: {} ({})",
        world.bin.display(),
        first_line(&world.bin, "--version")
    );
    println!(
        "  baseline: bench/curl_main_path.sh with {}",
        first_line(Path::new("/usr/bin/curl"), "--version")
            .split(" (")
            .next()
            .unwrap_or("curl")
    );
    println!(
        "  {cpus} CPUs; servers started in {:.1} s",
        setup.as_secs_f64()
    );
    println!();

    // 1. tagstrap against the curl script, interleaved A B B A A B ...
    let url = world.origin.url("/install.sh");
    let mut wall = [Vec::new(), Vec::new()];
    let mut cpu = [Vec::new(), Vec::new()];
    let total = opts.warmup + opts.runs;
    for i in 0..total {
        let order = if i % 2 == 0 {
            [Variant::Tagstrap, Variant::Curl]
        } else {
            [Variant::Curl, Variant::Tagstrap]
        };
        for v in order {
            let k = (v == Variant::Curl) as usize;
            let (m, dir) = world.run(v, &url, &format!("main-{i}-{k}"), &[]);
            remove(&dir);
            if i >= opts.warmup {
                wall[k].push(m.wall);
                cpu[k].push(m.cpu);
            }
        }
    }
    // Both variants really went through the proxy to the origin.
    let hits = world.origin.hits("/install.sh");
    let connects = poll_connects(&world.squid, 2 * total);
    if hits != 2 * total || connects != 2 * total {
        fail(&format!(
            "expected {} downloads through Squid, origin saw {hits}, Squid logged {connects} CONNECTs",
            2 * total
        ));
    }

    let s = [Stats::of(&wall[0]), Stats::of(&wall[1])];
    let c = [Stats::of(&cpu[0]), Stats::of(&cpu[1])];
    println!(
        "main path ({} runs each after {} warm-ups, interleaved A B B A ...; \
         all {} downloads seen by the origin and in Squid's access.log)",
        opts.runs,
        opts.warmup,
        2 * total
    );
    println!(
        "{:<20}{:>11}{:>11}{:>11}{:>17}",
        "", "min", "median", "p90", "CPU (median)"
    );
    for (k, name) in ["tagstrap run", "curl shell script"].iter().enumerate() {
        println!(
            "{:<20}{:>11}{:>11}{:>11}{:>17}",
            name,
            ms(s[k].min, 1),
            ms(s[k].median, 1),
            ms(s[k].p90, 1),
            ms(c[k].median, 1)
        );
    }
    println!(
        "ratio tagstrap/curl (median wall time): {:.2}",
        s[0].median.as_secs_f64() / s[1].median.as_secs_f64()
    );
    println!();

    // 2. Peak RSS, through the wrapper (see wrapper_main).
    let mut floor = 0;
    let mut version_rss = 0;
    for i in 0..3 {
        let dir = world.work.path().join(format!("version-{i}"));
        std::fs::create_dir(&dir).expect("create run dir");
        let mut cmd = world.command(&world.bin);
        cmd.arg("--version");
        let m = isolated(&cmd, world.command(&world.exe), &dir);
        if !m.status.success() {
            fail(&format!("tagstrap --version failed ({})", m.status));
        }
        remove(&dir);
        version_rss = version_rss.max(m.max_rss_kib);
        floor = floor.max(m.floor_kib);
    }
    let big_url = world.origin.url("/big.sh");
    let mut t_rss = 0;
    let mut t_wall = Vec::new();
    let mut t_cpu = Vec::new();
    let mut t_download = Vec::new();
    let mut c_rss = 0;
    let mut c_wall = Vec::new();
    let mut c_cpu = Vec::new();
    for i in 0..opts.rss_runs {
        let (m, dir) = world.run_isolated(
            Variant::Tagstrap,
            &big_url,
            &format!("big-{i}-0"),
            &["--max-script-bytes", "200M"],
        );
        let (bytes, secs) = download_from_report(&dir.join("state/last-run.json"));
        if bytes != BIG_LEN as u64 {
            fail(&format!(
                "tagstrap's report says {bytes} bytes, not {BIG_LEN}"
            ));
        }
        remove(&dir);
        t_rss = t_rss.max(m.max_rss_kib);
        floor = floor.max(m.floor_kib);
        t_wall.push(m.wall);
        t_cpu.push(m.cpu);
        t_download.push(Duration::from_secs_f64(secs));

        let (m, dir) = world.run_isolated(Variant::Curl, &big_url, &format!("big-{i}-1"), &[]);
        let got = std::fs::metadata(dir.join("state/install.sh")).map_or(0, |m| m.len());
        if got != BIG_LEN as u64 {
            fail(&format!("the curl script saved {got} bytes, not {BIG_LEN}"));
        }
        remove(&dir);
        c_rss = c_rss.max(m.max_rss_kib);
        floor = floor.max(m.floor_kib);
        c_wall.push(m.wall);
        c_cpu.push(m.cpu);
    }
    let dl = Stats::of(&t_download).median;
    let big_mib = BIG_LEN as f64 / MIB;
    println!(
        "100 MiB through the proxy ({} runs each; peak RSS = largest of the runs, times = median):",
        opts.rss_runs
    );
    println!(
        "  tagstrap run:       peak RSS {}, download {:.2} s ({:.0} MiB/s), \
         whole run {:.2} s, CPU {:.2} s",
        mib(t_rss),
        dl.as_secs_f64(),
        big_mib / dl.as_secs_f64(),
        Stats::of(&t_wall).median.as_secs_f64(),
        Stats::of(&t_cpu).median.as_secs_f64()
    );
    println!(
        "  curl shell script:  peak RSS {} (largest of sh, curl, sed), \
         whole run {:.2} s, CPU {:.2} s",
        mib(c_rss),
        Stats::of(&c_wall).median.as_secs_f64(),
        Stats::of(&c_cpu).median.as_secs_f64()
    );
    println!("  tagstrap --version: peak RSS {}", mib(version_rss));
    println!(
        "  (measurement floor: the wrapper's own peak RSS, {})",
        mib(floor)
    );
    println!();
    println!("bench took {:.1} s", bench_start.elapsed().as_secs_f64());
}

/// Squid writes a CONNECT's access.log line when the tunnel closes, so wait
/// (up to 5 s) for the expected count.
fn poll_connects(squid: &Squid, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = squid.access_log();
        let n = log
            .lines()
            .filter(|l| l.contains(" CONNECT ") && l.contains(USER) && l.contains("/200 "))
            .count();
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (script.bytes, script.download.seconds) from tagstrap's last-run.json.
fn download_from_report(path: &Path) -> (u64, f64) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| fail(&format!("read {}: {e}", path.display())));
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| fail(&format!("parse {}: {e}", path.display())));
    let script = &v["script"];
    (
        script["bytes"].as_u64().unwrap_or(0),
        script["download"]["seconds"].as_f64().unwrap_or(f64::NAN),
    )
}
