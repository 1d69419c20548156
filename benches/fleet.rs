//! Behaviour at fleet scale: what tagstrap's retry schedule does to a script
//! host when a whole fleet boots at once, against a fixed-interval retry; and
//! what one tagstrap process costs to start. Prints figures; asserts nothing
//! about timing (it fails only if an instance never gets its script).
//!
//! Run it with
//! `cargo build --release --bin tagstrap && TAGSTRAP_BIN=target/release/tagstrap cargo bench --bench fleet -- [OPTIONS]`
//! (`--help` lists the options). Linux only (wait4 rusage, /proc).
//!
//! # 1. A fleet booting at once against a host that answers 503
//!
//! The model: `--instances` N (1000) instances boot at the same instant and
//! each downloads the same script from one host. The host answers `503` to
//! every request that arrives in the first `--busy-seconds` (10) s, then
//! `200` with a 17-byte script. Every request is counted at the host by its
//! arrival time. Three fleets are compared:
//!
//! * **fixed**: every instance retries `--interval` (1) s after each failed
//!   try, ignoring `Retry-After` (`until curl -f URL; do sleep 1; done`,
//!   `curl --retry N --retry-delay 1`, cloud-init's `#include` with one
//!   second between tries). Plain `curl --retry` would back off from 1 s,
//!   doubling.
//! * **tagstrap**, the host sending no `Retry-After`: full-jitter backoff,
//!   `BACKOFF_BASE` 1 s doubling to `BACKOFF_CAP` 8 s, no step longer than a
//!   fifth of the time already spent (`LATENESS_SHARE`) but 2 s always allowed
//!   (`LATENESS_FLOOR`).
//! * **tagstrap**, the host sending `Retry-After: 5` (`--retry-after`) with
//!   each 503, which tagstrap honours as the wait.
//!
//! Each is run two ways:
//!
//! * **Real**: one process, one task per instance on a single-threaded tokio
//!   runtime, each making real HTTP requests over loopback to a small
//!   HTTP/1.1 host in this file (its own thread and runtime, like testkit's
//!   `Origin`, but listening with a backlog of 4096 where the Origin has
//!   std's 128, which dropped SYNs of the fixed fleet's bursts: see
//!   [`BACKLOG`]). The host logs each request's arrival when its head has
//!   been read and answers by that time. A tagstrap instance is one call of
//!   the real `tagstrap::fetch::download` for
//!   `http://127.0.0.1:PORT/install.sh?i=ID` pinned to the script's sha256
//!   (the pin is what allows `http://`): tagstrap's own HTTP client, status
//!   classification (`503` → `Failure::busy` with the parsed `Retry-After`),
//!   retry loop (`net::retry::retry`, `wait_before`, real tokio sleeps),
//!   streaming to a private file and the pin check. A fixed instance uses the
//!   same HTTP client (`fetch::http_client`) in a loop that sleeps
//!   `--interval` after every answer that is not `200`. The `?i=ID` lets the
//!   host tell each instance's first request from its retries.
//!
//!   How faithful it was is printed with it: the machine's load average; the
//!   kernel's listen-queue overflows and SYN retransmissions (non-zero: the
//!   host did not keep up and some requests arrived 1 s late); how long the
//!   first requests of all instances took to go out (all the clients share
//!   one CPU thread, so a boot "at once" is spread over a few hundred ms,
//!   which blurs the 100 ms figures); and how late a 10 ms timer fired on
//!   the clients' and on the host's runtime (a fixed instance's every try is
//!   that much later, so its waves drift and smear).
//! * **Simulated** (a discrete-event model of the same thing): every
//!   instance independently, requests taking no time, the waits from the
//!   real `wait_before` with a seeded uniform random number, `--sim-runs`
//!   (50) seeds. The host in this model never slows down and the instances
//!   really boot at the same instant, so it is the schedule alone, free of
//!   the CPU limits of the real run. It also runs **what-ifs** (`--what-if
//!   BASE:CAP,...`): the formula of `wait_before` with other constants,
//!   checked first to equal the real function at the current ones.
//!
//! Figures per fleet: total requests; the largest number of requests that
//! arrived in any 1 s window and in any 100 ms window (half-open windows
//! `[t, t + w)`), over all requests and over retries only (each instance's
//! first request left out: they all arrive together at boot whatever the
//! schedule); the mean rate (requests / time until all done); the time
//! from the boot until the last instance has its script; tries per
//! instance; and (real run) requests per second of the run.
//!
//! The project's goals, checked for both runs: tagstrap's peak (max in 1 s,
//! and in 100 ms) at most a fifth of the fixed-interval one, and its time
//! until all done at most 1.2 times the fixed-interval one. A last line gives
//! the lower bound that holds for any schedule: all N first requests arrive
//! at boot, within one window, and a fleet done by 1.2 times the fixed
//! fleet's time must also send N requests between the host's recovery and
//! then.
//!
//! # 2. Start-up cost
//!
//! `tagstrap --version` as a whole process (spawn to `wait4`), `--startup-runs`
//! (50) runs after 3 warm-ups, the release binary (`TAGSTRAP_BIN`) and the
//! static musl one (`TAGSTRAP_MUSL_BIN`, default
//! `target/x86_64-unknown-linux-musl/release/tagstrap`; skipped with a note
//! when missing) interleaved: min / median / p90 wall time, peak RSS, size.
//! Peak RSS is measured through a freshly exec'd copy of this bench (see
//! `wrapper_main`: on Linux `ru_maxrss` survives exec and would start from
//! this process's own peak); it runs first, while this process is small.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_long};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tagstrap::fetch::{self, FetchOptions};
use tagstrap::net::retry::{
    wait_before, Failure, Transient, Tries, BACKOFF_BASE, BACKOFF_CAP, LATENESS_FLOOR,
    LATENESS_SHARE, MIN_WAIT,
};
use tagstrap::net::{self, Redirects};
use tagstrap::proxy::{NoProxy, ProxyEnvironment};
use tagstrap::tags::agent::{ScriptLocation, ScriptTag, MIME_SHELLSCRIPT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCRIPT: &[u8] = b"#!/bin/sh\nexit 0\n";
/// tagstrap's default `--deadline`; the fixed loop gives up after as long.
const DEADLINE: Duration = Duration::from_secs(600);
const MAX_SCRIPT_BYTES: u64 = 16 << 20;

const USAGE: &str = "usage: fleet [--instances N (1000)] [--busy-seconds S (10)] [--interval S (1)]
             [--retry-after S (5)] [--sim-runs N (50)] [--what-if BASE:CAP,... (seconds)]
             [--startup-runs N (50)] [--only fleet|sim|startup]
env: TAGSTRAP_BIN (default: $CARGO_TARGET_DIR or ./target, then release/tagstrap),
     TAGSTRAP_MUSL_BIN (default: ... x86_64-unknown-linux-musl/release/tagstrap)";

#[derive(Clone, Copy, PartialEq)]
enum Only {
    All,
    Fleet,
    Sim,
    Startup,
}

struct Opts {
    instances: usize,
    busy: f64,
    interval: f64,
    retry_after: u64,
    sim_runs: usize,
    what_if: Vec<(f64, f64)>,
    startup_runs: usize,
    only: Only,
}

fn parse_args() -> Opts {
    let mut opts = Opts {
        instances: 1000,
        busy: 10.0,
        interval: 1.0,
        retry_after: 5,
        sim_runs: 50,
        what_if: vec![
            (0.25, 8.0),
            (0.25, 2.0),
            (1.0, 2.0),
            (1.0, 4.0),
            (1.0, 8.0),
            (2.0, 4.0),
            (5.0, 8.0),
            (5.0, 16.0),
        ],
        startup_runs: 50,
        only: Only::All,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--bench" {
            // cargo bench passes --bench to harness = false targets.
            continue;
        }
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("{arg} needs a value\n{USAGE}")));
        let number = |v: &str| -> f64 {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .unwrap_or_else(|| fail(&format!("{arg}: {v:?} is not a number\n{USAGE}")))
        };
        match arg.as_str() {
            "--instances" => opts.instances = number(&value) as usize,
            "--busy-seconds" => opts.busy = number(&value),
            "--interval" => opts.interval = number(&value),
            "--retry-after" => opts.retry_after = number(&value) as u64,
            "--sim-runs" => opts.sim_runs = number(&value) as usize,
            "--startup-runs" => opts.startup_runs = number(&value) as usize,
            "--what-if" => {
                opts.what_if = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|pair| match pair.split_once(':') {
                        Some((b, c)) => (number(b), number(c)),
                        None => fail(&format!("--what-if wants BASE:CAP pairs\n{USAGE}")),
                    })
                    .collect()
            }
            "--only" => {
                opts.only = match value.as_str() {
                    "fleet" => Only::Fleet,
                    "sim" => Only::Sim,
                    "startup" => Only::Startup,
                    _ => fail(&format!("--only fleet|sim|startup\n{USAGE}")),
                }
            }
            other => fail(&format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if opts.instances == 0 || opts.sim_runs == 0 || opts.startup_runs == 0 {
        fail("--instances, --sim-runs and --startup-runs must be at least 1");
    }
    if opts.interval < MIN_WAIT.as_secs_f64() {
        fail("--interval must be at least 0.02 s");
    }
    opts
}

fn fail(msg: &str) -> ! {
    eprintln!("fleet: {msg}");
    std::process::exit(2);
}

// ---------------------------------------------------------------------------
// The fleet's schedules and what the host saw.

#[derive(Clone, Copy)]
enum Schedule {
    /// Retry every so many seconds, ignoring Retry-After.
    Fixed(f64),
    /// tagstrap's own: the real `wait_before` (simulated) or the real
    /// `fetch::download` (real run).
    Tagstrap,
    /// The formula of `wait_before` with other constants (simulated only).
    WhatIf { base: f64, cap: f64 },
}

/// One fleet's boot, as the host and the instances saw it.
struct Boot {
    /// Arrival of every request at the host, seconds since the boot, sorted.
    arrivals: Vec<f64>,
    /// Arrivals of retries only (every request but each instance's first), sorted.
    retries: Vec<f64>,
    /// When each instance had its script, seconds since the boot; `None`
    /// if it gave up.
    done: Vec<Option<f64>>,
    tries: Vec<u32>,
}

/// The figures of one [`Boot`].
#[derive(Clone, Default)]
struct Figures {
    requests: f64,
    peak_1s: f64,
    peak_100ms: f64,
    retry_peak_1s: f64,
    retry_peak_100ms: f64,
    mean_rate: f64,
    all_done: f64,
    tries_mean: f64,
    tries_max: f64,
    gave_up: f64,
}

impl Boot {
    fn figures(&self) -> Figures {
        let all_done = self
            .done
            .iter()
            .map(|d| d.unwrap_or(f64::NAN))
            .fold(0.0, f64::max);
        let n = self.tries.len().max(1) as f64;
        Figures {
            requests: self.arrivals.len() as f64,
            peak_1s: max_in_window(&self.arrivals, 1.0) as f64,
            peak_100ms: max_in_window(&self.arrivals, 0.1) as f64,
            retry_peak_1s: max_in_window(&self.retries, 1.0) as f64,
            retry_peak_100ms: max_in_window(&self.retries, 0.1) as f64,
            mean_rate: self.arrivals.len() as f64 / all_done.max(1e-9),
            all_done,
            tries_mean: self.tries.iter().map(|&t| t as f64).sum::<f64>() / n,
            tries_max: self.tries.iter().copied().max().unwrap_or(0) as f64,
            gave_up: self.done.iter().filter(|d| d.is_none()).count() as f64,
        }
    }

    /// Requests arriving in [k, k + 1) s, up to the last one.
    fn per_second(&self) -> Vec<usize> {
        let last = self.arrivals.last().copied().unwrap_or(0.0);
        let mut counts = vec![0; last.floor() as usize + 1];
        let last_bucket = counts.len() - 1;
        for &t in &self.arrivals {
            counts[(t.max(0.0).floor() as usize).min(last_bucket)] += 1;
        }
        counts
    }
}

/// The most `sorted` times in any half-open window `[t, t + width)`; such
/// a window holds the most when it starts at one of the times.
fn max_in_window(sorted: &[f64], width: f64) -> usize {
    let mut end = 0;
    let mut best = 0;
    for (start, &t) in sorted.iter().enumerate() {
        while end < sorted.len() && sorted[end] < t + width {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

// ---------------------------------------------------------------------------
// The discrete-event model.

/// The formula of `wait_before` for a server-side failure without
/// Retry-After, with other constants (seconds); `elapsed` is the time
/// already spent.
fn what_if_wait(next_try: u32, base: f64, cap: f64, unit: f64, elapsed: f64) -> f64 {
    let exponent = next_try.saturating_sub(2).min(16);
    let lateness = (elapsed / f64::from(LATENESS_SHARE)).max(LATENESS_FLOOR.as_secs_f64());
    let ceiling = (base * f64::from(1u32 << exponent)).min(cap).min(lateness);
    (ceiling * unit.clamp(0.0, 1.0)).max(MIN_WAIT.as_secs_f64())
}

/// The what-ifs are only as good as this copy of the formula: it must give
/// what the real function gives at the real constants.
fn check_what_if_formula() {
    let busy = busy_transient(None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for next_try in 2..40 {
        for _ in 0..50 {
            let unit: f64 = rng.random();
            let elapsed: f64 = rng.random::<f64>() * 120.0;
            let real =
                wait_before(next_try, &busy, unit, Duration::from_secs_f64(elapsed)).as_secs_f64();
            let copy = what_if_wait(
                next_try,
                BACKOFF_BASE.as_secs_f64(),
                BACKOFF_CAP.as_secs_f64(),
                unit,
                elapsed,
            );
            if (real - copy).abs() > 1e-6 {
                fail(&format!(
                    "the what-if copy of wait_before no longer matches it (try {next_try}, \
                     unit {unit}: {real} s against {copy} s): update what_if_wait"
                ));
            }
        }
    }
}

/// What tagstrap's classification makes of a 503 (fetch::Attempt::status_failure).
fn busy_transient(retry_after: Option<Duration>) -> Transient {
    match Failure::busy("127.0.0.1 answered 503 Service Unavailable", retry_after) {
        Failure::Transient(t) => t,
        Failure::Permanent(_) => unreachable!("Failure::busy is transient"),
    }
}

/// One boot of the fleet in the model: each instance on its own (the host's
/// answer depends only on the time), requests taking no time, a request at
/// `busy` or later answered 200.
fn simulate(opts: &Opts, schedule: Schedule, retry_after: Option<u64>, seed: u64) -> Boot {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let failure = busy_transient(retry_after.map(Duration::from_secs));
    let budget = DEADLINE.as_secs_f64();
    let mut arrivals = Vec::new();
    let mut retries = Vec::new();
    let mut done = Vec::with_capacity(opts.instances);
    let mut tries = Vec::with_capacity(opts.instances);
    for _ in 0..opts.instances {
        let mut t = 0.0;
        let mut number = 1u32;
        let outcome = loop {
            arrivals.push(t);
            if number > 1 {
                retries.push(t);
            }
            if t >= opts.busy {
                break Some(t);
            }
            let unit: f64 = rng.random();
            let wait = match schedule {
                Schedule::Fixed(interval) => interval,
                Schedule::Tagstrap => {
                    wait_before(number + 1, &failure, unit, Duration::from_secs_f64(t))
                        .as_secs_f64()
                }
                Schedule::WhatIf { base, cap } => match retry_after {
                    Some(after) => (after as f64).max(MIN_WAIT.as_secs_f64()),
                    None => what_if_wait(number + 1, base, cap, unit, t),
                },
            };
            // net::retry::retry gives up when the wait reaches past the deadline.
            if t + wait >= budget {
                break None;
            }
            t += wait;
            number += 1;
        };
        done.push(outcome);
        tries.push(number);
    }
    Boot {
        arrivals: sorted(arrivals),
        retries: sorted(retries),
        done,
        tries,
    }
}

/// Mean of each figure over `--sim-runs` seeds, and the range of the peak
/// and of the time until all done.
struct SimFigures {
    mean: Figures,
    peak_range: (f64, f64),
    done_range: (f64, f64),
}

fn simulate_many(opts: &Opts, schedule: Schedule, retry_after: Option<u64>) -> SimFigures {
    let runs: Vec<Figures> = (0..opts.sim_runs as u64)
        .map(|seed| simulate(opts, schedule, retry_after, seed).figures())
        .collect();
    let n = runs.len() as f64;
    let mean_of = |f: fn(&Figures) -> f64| runs.iter().map(f).sum::<f64>() / n;
    let range_of = |f: fn(&Figures) -> f64| {
        runs.iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            })
    };
    SimFigures {
        mean: Figures {
            requests: mean_of(|f| f.requests),
            peak_1s: mean_of(|f| f.peak_1s),
            peak_100ms: mean_of(|f| f.peak_100ms),
            retry_peak_1s: mean_of(|f| f.retry_peak_1s),
            retry_peak_100ms: mean_of(|f| f.retry_peak_100ms),
            mean_rate: mean_of(|f| f.mean_rate),
            all_done: mean_of(|f| f.all_done),
            tries_mean: mean_of(|f| f.tries_mean),
            tries_max: range_of(|f| f.tries_max).1,
            gave_up: mean_of(|f| f.gave_up),
        },
        peak_range: range_of(|f| f.peak_1s),
        done_range: range_of(|f| f.all_done),
    }
}

// ---------------------------------------------------------------------------
// The real run.

/// Kernel counters of the listen queue and SYN retransmissions
/// (/proc/net/netstat, TcpExt), to tell whether loopback kept up.
fn tcp_ext() -> HashMap<String, u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let [names, values] = rows[..] else {
        return HashMap::new();
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

struct RealBoot {
    boot: Boot,
    /// How long the N first requests took to arrive: the run's resolution.
    first_wave: f64,
    listen_overflows: u64,
    syn_retransmits: u64,
    /// How late a 10 ms timer fired on the clients' runtime and on the
    /// host's: 0 in the model; large lags mean the CPU was the limit.
    client_lag: Vec<Duration>,
    host_lag: Vec<Duration>,
    /// The first reason an instance gave up, if one did.
    error: Option<String>,
}

/// The outcome of one instance: when it had its script (seconds since the
/// boot) or why not, and its tries.
type Outcome = (Result<f64, String>, u32);

fn real_boot(opts: &Opts, schedule: Schedule, retry_after: Option<u64>, work: &Path) -> RealBoot {
    let boot_at: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let host = Host::start(
        boot_at.clone(),
        Duration::from_secs_f64(opts.busy),
        retry_after,
    );

    let tls = net::tls::trusting_nothing().unwrap_or_else(|e| fail(e.message()));
    let env = ProxyEnvironment {
        proxy: None,
        no_proxy: NoProxy::with_defaults([]).unwrap_or_else(|e| fail(&e)),
    };
    let options = Arc::new(FetchOptions {
        tls: tls.clone(),
        budget: DEADLINE,
        max_bytes: MAX_SCRIPT_BYTES,
    });
    let pin: [u8; 32] = Sha256::digest(SCRIPT).into();
    let dir = work.join(format!("boot-{}", host.addr.port()));
    std::fs::create_dir(&dir).unwrap_or_else(|e| fail(&format!("create {}: {e}", dir.display())));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let before = tcp_ext();
    let client_stop = Arc::new(AtomicBool::new(false));
    let (outcomes, client_lag): (Vec<Outcome>, Vec<Duration>) = runtime.block_on(async {
        let start = Instant::now();
        boot_at.set(start).expect("one boot per host");
        let mut tasks = Vec::with_capacity(opts.instances);
        for id in 0..opts.instances {
            let url = format!("http://{}/install.sh?i={id}", host.addr);
            let task = match schedule {
                Schedule::Tagstrap => {
                    let script = ScriptTag {
                        key: MIME_SHELLSCRIPT,
                        origin: tagstrap::tags::Origin::CommandLine,
                        location: ScriptLocation::Remote(url.parse().expect("script URL")),
                        sha256: Some(pin),
                    };
                    let env = env.clone();
                    let options = options.clone();
                    let paths = (dir.join(format!("{id}.partial")), dir.join(id.to_string()));
                    tokio::spawn(async move {
                        let mut tries = Tries::default();
                        let outcome = fetch::download(&script, &env, &options, paths, &mut tries)
                            .await
                            .map(|_| start.elapsed().as_secs_f64())
                            .map_err(|e| e.message().to_string());
                        (outcome, tries.tries)
                    })
                }
                Schedule::Fixed(interval) => {
                    let tls = tls.clone();
                    let interval = Duration::from_secs_f64(interval);
                    tokio::spawn(fixed_instance(tls, url, interval, start))
                }
                Schedule::WhatIf { .. } => unreachable!("what-ifs are simulated only"),
            };
            tasks.push(task);
        }
        let lag = tokio::spawn(timer_lag(client_stop.clone()));
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.expect("instance task"));
        }
        client_stop.store(true, Ordering::SeqCst);
        (outcomes, lag.await.expect("lag probe"))
    });
    let after = tcp_ext();
    drop(runtime);
    // System-wide counters: other loopback traffic meanwhile counts too.
    let delta = |key: &str| {
        after
            .get(key)
            .unwrap_or(&0)
            .saturating_sub(*before.get(key).unwrap_or(&0))
    };
    let listen_overflows = delta("ListenOverflows").max(delta("ListenDrops"));
    let syn_retransmits = delta("TCPSynRetrans");

    let start = *boot_at.get().expect("boot time");
    let (log, host_lag) = host.stop();
    let _ = std::fs::remove_dir_all(&dir);

    // Arrivals, and each instance's first request told apart by its ?i=ID.
    let mut first_of: HashMap<usize, usize> = HashMap::new();
    let mut arrivals = Vec::with_capacity(log.len());
    for (k, &(at, id)) in log.iter().enumerate() {
        arrivals.push(at.saturating_duration_since(start).as_secs_f64());
        let first = first_of.entry(id).or_insert(k);
        if arrivals[k] < arrivals[*first] {
            *first = k;
        }
    }
    let first_wave = first_of.values().map(|&k| arrivals[k]).fold(0.0, f64::max);
    let mut is_first = vec![false; arrivals.len()];
    for &k in first_of.values() {
        is_first[k] = true;
    }
    let retries = arrivals
        .iter()
        .zip(&is_first)
        .filter(|(_, &first)| !first)
        .map(|(&t, _)| t)
        .collect();
    let error = outcomes.iter().find_map(|(r, _)| r.clone().err());
    let done = outcomes.iter().map(|(r, _)| r.clone().ok()).collect();
    let tries = outcomes.iter().map(|&(_, t)| t).collect();
    RealBoot {
        boot: Boot {
            arrivals: sorted(arrivals),
            retries: sorted(retries),
            done,
            tries,
        },
        first_wave,
        listen_overflows,
        syn_retransmits,
        client_lag,
        host_lag,
        error,
    }
}

// ---------------------------------------------------------------------------
// The script host of the real run.

/// The host's listen backlog, as a web server has it (nginx asks for 511;
/// the kernel caps it at net.core.somaxconn). std listens with 128, and so
/// does testkit's Origin: against it the fixed fleet's synchronized burst of
/// 1000 connections overflowed the queue, the kernel dropped SYNs, and
/// those requests arrived 1 s late (the client's SYN retransmission), a
/// limit of the test server rather than of any schedule.
const BACKLOG: c_int = 4096;

extern "C" {
    fn listen(fd: c_int, backlog: c_int) -> c_int;
}

/// When a request's head had arrived at the host, and its instance (`?i=`).
type Arrival = (Instant, usize);

/// A minimal HTTP/1.1 script host on 127.0.0.1, with its own thread and
/// single-threaded runtime (like testkit's Origin, whose handler and
/// Connection: close behaviour it copies, but with [`BACKLOG`]). It reads a
/// request head, logs its arrival, answers 503 (with Retry-After when asked)
/// if the request arrived less than `busy` after the boot, else 200 with the
/// script, and closes the connection.
struct Host {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Arrival>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Duration>>>,
}

impl Host {
    fn start(boot_at: Arc<OnceLock<Instant>>, busy: Duration, retry_after: Option<u64>) -> Host {
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind the host");
        // Calling listen again on a listening socket only changes its backlog.
        // SAFETY: a plain syscall on the listener's own open descriptor.
        if unsafe { listen(listener.as_raw_fd(), BACKLOG) } != 0 {
            fail(&format!("listen: {}", std::io::Error::last_os_error()));
        }
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("host address");
        let retry_after = retry_after
            .map(|after| format!("Retry-After: {after}\r\n"))
            .unwrap_or_default();
        let busy_reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\n{retry_after}Content-Length: 5\r\n\
             Connection: close\r\n\r\nbusy\n"
        );
        let mut ok_reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            SCRIPT.len()
        )
        .into_bytes();
        ok_reply.extend_from_slice(SCRIPT);
        let replies: Arc<[Vec<u8>; 2]> = Arc::new([busy_reply.into_bytes(), ok_reply]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (host_log, host_stop) = (log.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("fleet-host".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("host runtime");
                runtime.block_on(async move {
                    let lag = tokio::spawn(timer_lag(host_stop.clone()));
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    while !host_stop.load(Ordering::SeqCst) {
                        match listener.accept().await {
                            Ok((tcp, _)) => {
                                let _ = tcp.set_nodelay(true);
                                tokio::spawn(serve(
                                    tcp,
                                    boot_at.clone(),
                                    busy,
                                    replies.clone(),
                                    host_log.clone(),
                                ));
                            }
                            // Out of descriptors, say: let connections finish.
                            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    lag.await.unwrap_or_default()
                })
                // Dropping the runtime drops every open connection.
            })
            .expect("spawn the host thread");
        Host {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the host; every request's arrival in log order, and the lags
    /// of the host's runtime.
    fn stop(mut self) -> (Vec<Arrival>, Vec<Duration>) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept so that the loop sees the flag.
        let _ = StdTcpStream::connect(self.addr);
        let lag = self
            .thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        (std::mem::take(&mut *self.log.lock().unwrap()), lag)
    }
}

/// "median / p90 / max ms" of timer lags.
fn lag_summary(lags: &[Duration]) -> String {
    let (_, median, p90) = stats(lags);
    let max = lags.iter().max().copied().unwrap_or_default();
    format!(
        "{:.1} / {:.1} / {:.0} ms",
        median.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    )
}

/// The 1, 5 and 15 minute load averages of the machine.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// How late a 10 ms sleep wakes up, again and again until `stop`: the lag
/// of everything else on the same runtime thread.
async fn timer_lag(stop: Arc<AtomicBool>) -> Vec<Duration> {
    const TICK: Duration = Duration::from_millis(10);
    let mut lags = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let asleep = Instant::now();
        tokio::time::sleep(TICK).await;
        lags.push(asleep.elapsed().saturating_sub(TICK));
    }
    lags
}

async fn serve(
    mut tcp: tokio::net::TcpStream,
    boot_at: Arc<OnceLock<Instant>>,
    busy: Duration,
    replies: Arc<[Vec<u8>; 2]>,
    log: Arc<Mutex<Vec<Arrival>>>,
) {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > 16 * 1024 {
            return;
        }
        match tcp.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    };
    let at = Instant::now();
    // "GET /install.sh?i=ID HTTP/1.1"
    let line = buf[..head_end].split(|&b| b == b'\r').next().unwrap_or(&[]);
    let id = String::from_utf8_lossy(line)
        .split("i=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(usize::MAX);
    log.lock().unwrap().push((at, id));
    let still_busy = boot_at.get().is_none_or(|boot| at < *boot + busy);
    let reply = &replies[if still_busy { 0 } else { 1 }];
    if tcp.write_all(reply).await.is_ok() {
        let _ = tcp.shutdown().await;
    }
}

/// The fixed-interval instance: tagstrap's HTTP client, a try every
/// `interval` after any answer but 200 (or no answer), Retry-After ignored.
async fn fixed_instance(
    tls: Arc<rustls::ClientConfig>,
    url: String,
    interval: Duration,
    start: Instant,
) -> Outcome {
    let client = match net::http_client(
        &tls,
        None,
        Redirects::AllowHttp,
        net::read_timeout(DEADLINE),
    ) {
        Ok(c) => c,
        Err(e) => return (Err(e.message().to_string()), 0),
    };
    let mut tries = 0;
    loop {
        tries += 1;
        let ok = match client.get(&url).send().await {
            Ok(response) if response.status().as_u16() == 200 => response
                .bytes()
                .await
                .is_ok_and(|body| body.as_ref() == SCRIPT),
            Ok(_) | Err(_) => false,
        };
        if ok {
            return (Ok(start.elapsed().as_secs_f64()), tries);
        }
        if start.elapsed() + interval >= DEADLINE {
            return (Err(format!("no script after {tries} tries")), tries);
        }
        tokio::time::sleep(interval).await;
    }
}

// ---------------------------------------------------------------------------
// Printing the fleet figures.

fn fleets(opts: &Opts) -> [(&'static str, Schedule, Option<u64>); 3] {
    [
        ("fixed", Schedule::Fixed(opts.interval), None),
        ("tagstrap", Schedule::Tagstrap, None),
        ("tagstrap", Schedule::Tagstrap, Some(opts.retry_after)),
    ]
}

fn fleet_label(name: &str, schedule: Schedule, retry_after: Option<u64>) -> String {
    match (schedule, retry_after) {
        (Schedule::Fixed(i), _) => format!("fixed {} s (any R-A ignored)", secs(i)),
        (_, None) => format!("{name}, no Retry-After"),
        (_, Some(after)) => format!("{name}, Retry-After: {after}"),
    }
}

fn secs(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

const HEADER: &str = "max requests in any window: 1 s / 100 ms, all requests | retries only";

fn print_header() {
    println!(
        "  {:<30}{:>9}{:>8}{:>8}{:>9}{:>8}{:>9}{:>10}{:>12}",
        "", "requests", "1 s", "100 ms", "1 s", "100 ms", "mean/s", "all done", "tries/inst"
    );
}

fn print_row(label: &str, f: &Figures) {
    println!(
        "  {label:<30}{:>9.0}{:>8.0}{:>8.0}{:>9.0}{:>8.0}{:>9.0}{:>9.2}s{:>7.1} {:>4.0}",
        f.requests,
        f.peak_1s,
        f.peak_100ms,
        f.retry_peak_1s,
        f.retry_peak_100ms,
        f.mean_rate,
        f.all_done,
        f.tries_mean,
        f.tries_max
    );
}

fn run_real(opts: &Opts) -> Vec<Figures> {
    let work = tempfile::Builder::new()
        .prefix("tagstrap-fleet-")
        .tempdir()
        .expect("temp dir");
    println!(
        "real run: {} tasks on one tokio thread, each a real HTTP download over loopback from \
         a minimal HTTP/1.1 host (own thread, backlog {BACKLOG}); counted by arrival at the host",
        opts.instances
    );
    println!(
        "  tagstrap = tagstrap::fetch::download (its client, classification, retry loop and waits)"
    );
    println!(
        "  fixed    = the same HTTP client, a new try {} s after each failed one",
        secs(opts.interval)
    );
    println!(
        "  load average before the run: {} (the real run is only as good as the CPU it gets)",
        load_average()
    );
    println!("  ({HEADER}; tries/inst: mean max)");
    print_header();
    let mut figures = Vec::new();
    let mut timelines = Vec::new();
    let mut notes = Vec::new();
    for (name, schedule, retry_after) in fleets(opts) {
        let label = fleet_label(name, schedule, retry_after);
        let real = real_boot(opts, schedule, retry_after, work.path());
        let f = real.boot.figures();
        print_row(&label, &f);
        if let Some(error) = &real.error {
            fail(&format!(
                "{label}: {} instances gave up; first: {error}",
                f.gave_up
            ));
        }
        notes.push(format!(
            "  {label}: first requests of all {} arrived within {:.0} ms; {} listen-queue \
             overflows, {} SYN retransmissions;\n    a 10 ms timer fired late by (median / p90 / \
             max) {} on the clients' thread, {} on the host's",
            opts.instances,
            real.first_wave * 1e3,
            real.listen_overflows,
            real.syn_retransmits,
            lag_summary(&real.client_lag),
            lag_summary(&real.host_lag),
        ));
        timelines.push((label, real.boot.per_second()));
        figures.push(f);
    }
    println!("  requests arriving in each second [k, k+1) of the boot:");
    for (label, counts) in &timelines {
        let row: Vec<String> = counts.iter().map(|c| c.to_string()).collect();
        println!("  {label:<30}{}", row.join(" "));
    }
    for note in notes {
        println!("{note}");
    }
    println!();
    figures
}

fn run_sim(opts: &Opts) -> Vec<Figures> {
    check_what_if_formula();
    println!(
        "model: the same boot, each instance on its own, requests taking no time, the real \
         wait_before; mean over {} seeds",
        opts.sim_runs
    );
    println!("  ({HEADER}; tries/inst: mean max)");
    print_header();
    let mut figures = Vec::new();
    let mut ranges = Vec::new();
    for (name, schedule, retry_after) in fleets(opts) {
        let label = fleet_label(name, schedule, retry_after);
        let s = simulate_many(opts, schedule, retry_after);
        print_row(&label, &s.mean);
        ranges.push(format!(
            "  {label}: max in 1 s {:.0}..{:.0}, all done {:.2}..{:.2} s",
            s.peak_range.0, s.peak_range.1, s.done_range.0, s.done_range.1
        ));
        figures.push(s.mean);
    }
    println!("  range over the seeds:");
    for r in ranges {
        println!("{r}");
    }
    println!();

    let fixed = &figures[0];
    println!(
        "what-if (model): the wait_before formula with BACKOFF_BASE:BACKOFF_CAP, no Retry-After; \
         x = ratio to fixed {} s of: max in 1 s, max in 100 ms of retries, all done",
        secs(opts.interval)
    );
    println!(
        "  {:<30}{:>9}{:>8}{:>8}{:>9}{:>8}{:>9}{:>10}{:>12}{:>8}{:>8}{:>8}",
        "",
        "requests",
        "1 s",
        "100 ms",
        "1 s",
        "100 ms",
        "mean/s",
        "all done",
        "tries/inst",
        "x 1 s",
        "x r100",
        "x done"
    );
    for &(base, cap) in &opts.what_if {
        let s = simulate_many(opts, Schedule::WhatIf { base, cap }, None);
        let f = &s.mean;
        println!(
            "  {:<30}{:>9.0}{:>8.0}{:>8.0}{:>9.0}{:>8.0}{:>9.0}{:>9.2}s{:>7.1} {:>4.0}{:>8.2}{:>8.2}{:>8.2}",
            format!("base {} s, cap {} s", secs(base), secs(cap)),
            f.requests,
            f.peak_1s,
            f.peak_100ms,
            f.retry_peak_1s,
            f.retry_peak_100ms,
            f.mean_rate,
            f.all_done,
            f.tries_mean,
            f.tries_max,
            f.peak_1s / fixed.peak_1s,
            f.retry_peak_100ms / fixed.retry_peak_100ms,
            f.all_done / fixed.all_done
        );
    }
    println!();
    figures
}

/// The project's goals for tagstrap (no Retry-After, and Retry-After)
/// against the fixed interval, and why no schedule can meet both here.
fn print_goals(opts: &Opts, what: &str, f: &[Figures]) {
    let fixed = &f[0];
    println!(
        "goals ({what}): tagstrap's peak <= 0.20 x fixed's (max in 1 s, and in 100 ms), all done \
         <= 1.2 x fixed's"
    );
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    for (k, label) in [(1, "no Retry-After"), (2, "Retry-After")] {
        let t = &f[k];
        let p1 = t.peak_1s / fixed.peak_1s;
        let p100 = t.peak_100ms / fixed.peak_100ms;
        let done = t.all_done / fixed.all_done;
        println!(
            "  tagstrap, {label:<15} max in 1 s {p1:.2} x ({}), in 100 ms {p100:.2} x ({}); all \
             done {done:.2} x ({})   [retries only: 1 s {:.2} x, 100 ms {:.2} x]",
            verdict(p1 <= 0.2),
            verdict(p100 <= 0.2),
            verdict(done <= 1.2),
            t.retry_peak_1s / fixed.retry_peak_1s,
            t.retry_peak_100ms / fixed.retry_peak_100ms,
        );
    }
    // What any schedule must send: every instance's first request at boot
    // (all within one window), and, to be done by 1.2 x fixed's time, one
    // request per instance in [busy, 1.2 x fixed's all done].
    let n = opts.instances as f64;
    let by = 1.2 * fixed.all_done;
    let span = (by - opts.busy).max(0.0);
    let least_at_end = if span > 0.0 { n / span.ceil() } else { n };
    let least = n.max(least_at_end);
    println!(
        "  bound: any schedule sends the {n:.0} first requests at boot (one 1 s window), and one \
         done by {by:.2} s also sends {n:.0} in [{}, {by:.2}] s (>= {least_at_end:.0} in some 1 s \
         window):\n         its max in 1 s is >= {least:.0} = {:.2} x fixed's, so the two goals \
         {} together here",
        secs(opts.busy),
        least / fixed.peak_1s,
        if least / fixed.peak_1s > 0.2 {
            "cannot be met"
        } else {
            "might be met"
        }
    );
    println!();
}

// ---------------------------------------------------------------------------
// Start-up cost: wait4(2) gives the rusage of one child (and of the children
// it waited for). Declared here because the root crate has no libc
// dependency; the layout is glibc's `struct rusage` on 64-bit Linux.

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

struct Measured {
    status: ExitStatus,
    wall: Duration,
    max_rss_kib: u64,
}

/// Spawns `cmd` and reaps it with wait4, so the rusage is this child's own.
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
        max_rss_kib: ru.ru_maxrss.max(0) as u64,
    }
}

/// argv[1] that turns this binary into the RSS wrapper.
const WRAPPER: &str = "--rusage-wrapper";

/// `fleet --rusage-wrapper OUT PROGRAM ARGS...`: a fresh, small process that
/// runs PROGRAM and writes "MAXRSS_KIB FLOOR_KIB" to OUT. A child's
/// `ru_maxrss` starts from the high-water mark of the address space it was
/// (v)forked from, so it is measured from here, whose own peak (VmHWM, the
/// floor no figure can go below) is printed with it.
fn wrapper_main(args: &[std::ffi::OsString]) -> ! {
    let [out, program, rest @ ..] = args else {
        fail("--rusage-wrapper OUT PROGRAM ARGS...");
    };
    let floor = vm_hwm_kib();
    let m = measure(
        Command::new(program)
            .args(rest)
            .stdout(Stdio::null())
            .stdin(Stdio::null()),
    );
    std::fs::write(out, format!("{} {floor}\n", m.max_rss_kib))
        .unwrap_or_else(|e| fail(&format!("write {}: {e}", Path::new(out).display())));
    std::process::exit(
        m.status
            .code()
            .unwrap_or(128 + m.status.signal().unwrap_or(0)),
    );
}

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

fn version_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// (peak RSS, floor) of `bin --version` over `runs` runs, KiB.
fn version_rss(bin: &Path, runs: usize, work: &Path) -> (u64, u64) {
    let exe = std::env::current_exe().expect("current_exe");
    let out = work.join("rusage");
    let (mut rss, mut floor) = (0, 0);
    for _ in 0..runs {
        let m = measure(
            Command::new(&exe)
                .arg(WRAPPER)
                .arg(&out)
                .arg(bin)
                .arg("--version")
                .env_clear()
                .stdin(Stdio::null()),
        );
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let f: Vec<u64> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let (&[r, fl], true) = (&f[..], m.status.success()) else {
            fail(&format!(
                "{} --version under the wrapper failed ({})",
                bin.display(),
                m.status
            ));
        };
        rss = rss.max(r);
        floor = floor.max(fl);
    }
    (rss, floor)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn binary(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join(default))
}

fn first_line(program: &Path) -> String {
    Command::new(program)
        .arg("--version")
        .env_clear()
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn startup(opts: &Opts) {
    let release = binary("TAGSTRAP_BIN", "release/tagstrap");
    let musl = binary(
        "TAGSTRAP_MUSL_BIN",
        "x86_64-unknown-linux-musl/release/tagstrap",
    );
    if !release.is_file() {
        fail(&format!(
            "{} not found: run `cargo build --release --bin tagstrap` first, or set TAGSTRAP_BIN",
            release.display()
        ));
    }
    let mut bins = vec![("release", release)];
    if musl.is_file() {
        bins.push(("static musl", musl));
    } else {
        println!(
            "(no static musl binary at {}: `cargo build --release --target \
             x86_64-unknown-linux-musl --bin tagstrap`, or set TAGSTRAP_MUSL_BIN)",
            musl.display()
        );
    }
    let work = tempfile::Builder::new()
        .prefix("tagstrap-fleet-startup-")
        .tempdir()
        .expect("temp dir");
    // Interleaved, so drift hits both alike.
    let warmup = 3;
    let mut walls: Vec<Vec<Duration>> = vec![Vec::new(); bins.len()];
    for i in 0..warmup + opts.startup_runs {
        for k in 0..bins.len() {
            let k = if i % 2 == 0 { k } else { bins.len() - 1 - k };
            let m = measure(&mut version_command(&bins[k].1));
            if !m.status.success() {
                fail(&format!(
                    "{} --version failed ({})",
                    bins[k].1.display(),
                    m.status
                ));
            }
            if i >= warmup {
                walls[k].push(m.wall);
            }
        }
    }
    println!(
        "start-up: `tagstrap --version` as a whole process (spawn to wait4), {} runs each after \
         {warmup} warm-ups, interleaved; peak RSS = largest of 5 runs",
        opts.startup_runs
    );
    println!(
        "  {:<13}{:>10}{:>10}{:>10}{:>11}{:>15}  binary",
        "", "min", "median", "p90", "peak RSS", "size (bytes)"
    );
    let mut floor = 0;
    for (k, (name, bin)) in bins.iter().enumerate() {
        let s = stats(&walls[k]);
        let (rss, fl) = version_rss(bin, 5, work.path());
        floor = floor.max(fl);
        let size = std::fs::metadata(bin).map_or(0, |m| m.len());
        println!(
            "  {name:<13}{:>10}{:>10}{:>10}{:>11}{:>15}  {} ({})",
            ms(s.0),
            ms(s.1),
            ms(s.2),
            format!("{:.1} MiB", rss as f64 / 1024.0),
            size,
            bin.display(),
            first_line(bin)
        );
    }
    println!(
        "  (RSS measurement floor: the wrapper's own peak RSS, {:.1} MiB)",
        floor as f64 / 1024.0
    );
    println!();
}

/// (min, median, p90 nearest-rank).
fn stats(samples: &[Duration]) -> (Duration, Duration, Duration) {
    let mut v = samples.to_vec();
    v.sort();
    let n = v.len();
    if n == 0 {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    (v[0], median, v[(n * 9).div_ceil(10).max(1) - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == WRAPPER) {
        wrapper_main(&args[2..]);
    }
    let opts = parse_args();
    let bench_start = Instant::now();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "fleet: {} instances boot at once; the script host answers 503 for {} s, then 200 \
         ({}-byte script); {cpus} CPUs",
        opts.instances,
        secs(opts.busy),
        SCRIPT.len()
    );
    println!(
        "tagstrap's schedule: full jitter, BACKOFF_BASE {} ms doubling to BACKOFF_CAP {} s, no \
         step over 1/{LATENESS_SHARE} of the time spent (at least {} s); baseline: fixed {} s \
         interval",
        BACKOFF_BASE.as_millis(),
        secs(BACKOFF_CAP.as_secs_f64()),
        secs(LATENESS_FLOOR.as_secs_f64()),
        secs(opts.interval)
    );
    println!();

    // First, while this process is small (see wrapper_main).
    if matches!(opts.only, Only::All | Only::Startup) {
        startup(&opts);
    }
    if matches!(opts.only, Only::All | Only::Fleet) {
        let real = run_real(&opts);
        print_goals(&opts, "real run", &real);
    }
    if matches!(opts.only, Only::All | Only::Sim) {
        let sim = run_sim(&opts);
        print_goals(&opts, "model", &sim);
    }
    println!("bench took {:.1} s", bench_start.elapsed().as_secs_f64());
}
