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
//! Each is run two ways: **real** ([`real`]: one process, one task per
//! instance, each a real `tagstrap::fetch::download` over loopback against
//! the small host of [`host`]) and **simulated** ([`model`]: a
//! discrete-event model of the same boot calling the real `wait_before`,
//! and what-ifs calling it with other constants). [`boot`] holds what the
//! host saw and the figures printed from it.
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
//! [`startup`]: `tagstrap --version` as a whole process, the release and
//! the static musl binary interleaved: wall time, peak RSS, size.

mod boot;
mod host;
mod model;
mod real;
mod startup;

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use tagstrap::net::retry::{
    Backoff, BACKOFF_BASE, BACKOFF_CAP, LATENESS_FLOOR, LATENESS_SHARE, MIN_WAIT,
};

use boot::Figures;
use common::args::Args;
use common::fail;

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
    let mut args = Args::new(USAGE);
    while let Some(flag) = args.flag() {
        let value = args.value(&flag);
        let number = |v: &str| -> f64 {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .unwrap_or_else(|| args.bad(&format!("{flag}: {v:?} is not a number")))
        };
        match flag.as_str() {
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
                        None => args.bad("--what-if wants BASE:CAP pairs"),
                    })
                    .collect()
            }
            "--only" => {
                opts.only = match value.as_str() {
                    "fleet" => Only::Fleet,
                    "sim" => Only::Sim,
                    "startup" => Only::Startup,
                    _ => args.bad("--only fleet|sim|startup"),
                }
            }
            _ => args.unknown(&flag),
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

#[derive(Clone, Copy)]
enum Schedule {
    /// Retry every so many seconds, ignoring Retry-After.
    Fixed(f64),
    /// tagstrap's own: the real `wait_before` (simulated) or the real
    /// `fetch::download` (real run).
    Tagstrap,
    /// The real `wait_before` with other constants (simulated only).
    WhatIf(Backoff),
}

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
    println!("{}", row(label, f));
}

/// One fleet's figures under [`print_header`]'s columns.
fn row(label: &str, f: &Figures) -> String {
    format!(
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
    )
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

fn main() {
    common::rusage::wrapper_if_asked();
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

    // First, while this process is small (see common::rusage::wrapper_if_asked).
    if matches!(opts.only, Only::All | Only::Startup) {
        startup::startup(&opts);
    }
    if matches!(opts.only, Only::All | Only::Fleet) {
        let real = real::run_real(&opts);
        print_goals(&opts, "real run", &real);
    }
    if matches!(opts.only, Only::All | Only::Sim) {
        let sim = model::run_sim(&opts);
        print_goals(&opts, "model", &sim);
    }
    println!("bench took {:.1} s", bench_start.elapsed().as_secs_f64());
}
