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
use std::os::raw::{c_int, c_long};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use testkit::{Bao, Origin, Reply, Squid, TestCa};

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
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => continue,
            "--runs" => &mut opts.runs,
            "--warmup" => &mut opts.warmup,
            "--rss-runs" => &mut opts.rss_runs,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other:?}\n{USAGE}")),
        };
        *slot = args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| fail(&format!("{arg} needs a number\n{USAGE}")));
    }
    if opts.runs == 0 || opts.rss_runs == 0 {
        fail("--runs and --rss-runs must be at least 1");
    }
    opts
}

fn fail(msg: &str) -> ! {
    eprintln!("main_path: {msg}");
    std::process::exit(2);
}

// ---------------------------------------------------------------------------
// wait4(2): the rusage of one child (and of the children it waited for).
// Declared here because the root crate has no libc dependency; the layout is
// glibc's `struct rusage` on 64-bit Linux (2 timevals, then 14 longs).

#[repr(C)]
#[derive(Default)]
struct Timeval {
    tv_sec: c_long,
    tv_usec: c_long,
}

#[repr(C)]
#[derive(Default)]
struct Rusage {
    ru_utime: Timeval,
    ru_stime: Timeval,
    /// KiB on Linux.
    ru_maxrss: c_long,
    _rest: [c_long; 13],
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Rusage>() == 144);

extern "C" {
    fn wait4(pid: c_int, status: *mut c_int, options: c_int, rusage: *mut Rusage) -> c_int;
}

fn timeval(t: &Timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// One finished process.
struct Measured {
    status: ExitStatus,
    /// From just before spawn to the return of wait4.
    wall: Duration,
    /// User + system CPU of the process and the children it waited for.
    cpu: Duration,
    /// Largest resident set of the process or of one of the children it
    /// waited for (not a sum), KiB.
    max_rss_kib: u64,
}

/// Spawns `cmd` and reaps it with wait4, so the rusage is this child's own
/// (plus its waited-for descendants), not that of every child of the bench.
fn measure(cmd: &mut Command) -> Measured {
    let start = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(&format!("spawn {:?}: {e}", cmd.get_program())));
    let pid = child.id() as c_int;
    let mut status: c_int = 0;
    let mut ru = Rusage::default();
    loop {
        // SAFETY: `status` and `ru` are valid for writes and live across the
        // call; `pid` is our own unreaped child (std's Child is dropped
        // without waiting, so nothing else reaps it).
        let r = unsafe { wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            fail(&format!("wait4({pid}): {err}"));
        }
    }
    let wall = start.elapsed();
    drop(child);
    Measured {
        status: ExitStatus::from_raw(status),
        wall,
        cpu: timeval(&ru.ru_utime) + timeval(&ru.ru_stime),
        max_rss_kib: ru.ru_maxrss.max(0) as u64,
    }
}

/// argv[1] that turns this binary into the RSS wrapper.
const WRAPPER: &str = "--rusage-wrapper";

/// Why peak RSS is measured through a wrapper: on Linux a process's
/// `ru_maxrss` survives exec and starts from the high-water mark of the
/// address space it was (v)forked from. std spawns with vfork semantics, so
/// a child of this bench (which holds the 100 MiB reply body and the servers'
/// runtimes) would report at least the bench's own peak. A freshly exec'd
/// copy of this binary is small; the process it spawns starts from that
/// floor (the wrapper's VmHWM, reported), and its wait4 rusage then covers
/// only that process and the children it waited for.
///
/// `main_path --rusage-wrapper OUT PROGRAM ARGS...`: runs PROGRAM with this
/// process's environment and stdio, writes "MAXRSS_KIB FLOOR_KIB WALL_NS CPU_NS" to
/// OUT, exits with PROGRAM's code (128 + signal if a signal ended it).
fn wrapper_main(args: &[std::ffi::OsString]) -> ! {
    let [out, program, rest @ ..] = args else {
        fail("--rusage-wrapper OUT PROGRAM ARGS...");
    };
    let floor = vm_hwm_kib();
    let m = measure(Command::new(program).args(rest));
    std::fs::write(
        out,
        format!(
            "{} {floor} {} {}\n",
            m.max_rss_kib,
            m.wall.as_nanos(),
            m.cpu.as_nanos()
        ),
    )
    .unwrap_or_else(|e| fail(&format!("write {}: {e}", Path::new(out).display())));
    let code = m
        .status
        .code()
        .unwrap_or_else(|| 128 + m.status.signal().unwrap_or(0));
    std::process::exit(code);
}

/// VmHWM of this process (the peak RSS of its current address space), KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Peak RSS of one run, measured through the wrapper.
struct Isolated {
    status: ExitStatus,
    /// The wrapped process's own wall time (spawn to wait4, in the wrapper).
    wall: Duration,
    /// Its user + system CPU time (with the children it waited for).
    cpu: Duration,
    max_rss_kib: u64,
    /// The wrapper's own VmHWM when it spawned the process: the lowest
    /// figure `max_rss_kib` can show.
    floor_kib: u64,
}

/// Runs `cmd`'s program and arguments under the wrapper, which is started
/// as `clean` (the environment the program inherits) with output to `dir/log`.
fn measure_isolated(cmd: &Command, clean: Command, dir: &Path) -> Isolated {
    let out = dir.join("rusage");
    let mut w = clean;
    w.arg(WRAPPER)
        .arg(&out)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    log_to(&mut w, dir);
    let status = measure(&mut w).status;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let f: Vec<u64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [max_rss_kib, floor_kib, wall_ns, cpu_ns] = f[..] else {
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        fail(&format!("the RSS wrapper failed ({status}):\n{log}"));
    };
    Isolated {
        status,
        wall: Duration::from_nanos(wall_ns),
        cpu: Duration::from_nanos(cpu_ns),
        max_rss_kib,
        floor_kib,
    }
}

// ---------------------------------------------------------------------------

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
        let m = measure_isolated(&cmd, self.command(&self.exe), &dir);
        if !m.status.success() {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            fail(&format!("run {name} failed ({}):\n{log}", m.status));
        }
        (m, dir)
    }
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

// ---------------------------------------------------------------------------

struct Stats {
    min: Duration,
    median: Duration,
    p90: Duration,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut v = samples.to_vec();
    v.sort();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    // Nearest rank.
    let p90 = v[(n * 9).div_ceil(10).max(1) - 1];
    Stats {
        min: v[0],
        median,
        p90,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn first_line(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .env_clear()
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn default_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("release/tagstrap")
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == WRAPPER) {
        wrapper_main(&args[2..]);
    }
    let opts = parse_args();
    let bin = std::env::var_os("TAGSTRAP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(default_bin);
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

    let s = [stats(&wall[0]), stats(&wall[1])];
    let c = [stats(&cpu[0]), stats(&cpu[1])];
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
            ms(s[k].min),
            ms(s[k].median),
            ms(s[k].p90),
            ms(c[k].median)
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
        let m = measure_isolated(&cmd, world.command(&world.exe), &dir);
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
    let dl = stats(&t_download).median;
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
        stats(&t_wall).median.as_secs_f64(),
        stats(&t_cpu).median.as_secs_f64()
    );
    println!(
        "  curl shell script:  peak RSS {} (largest of sh, curl, sed), \
         whole run {:.2} s, CPU {:.2} s",
        mib(c_rss),
        stats(&c_wall).median.as_secs_f64(),
        stats(&c_cpu).median.as_secs_f64()
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
