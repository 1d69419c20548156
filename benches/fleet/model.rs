//! The model: a discrete-event simulation of the same boot as the real
//! run. Every instance independently, requests taking no time, the waits
//! from the real `tagstrap::net::retry::wait_before` with a seeded uniform
//! random number, `--sim-runs` (50) seeds. The host in this model never
//! slows down and the instances really boot at the same instant, so it is
//! the schedule alone, free of the CPU limits of the real run. It also runs
//! **what-ifs** (`--what-if BASE:CAP,...`): the same function with other
//! constants ([`Backoff`]), not a copy of its formula.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use tagstrap::net::retry::{wait_before, Backoff, Failure, Transient};

use crate::boot::{sorted, Boot, Figures};
use crate::{
    fleet_label, fleets, print_header, print_row, row, secs, Opts, Schedule, DEADLINE, HEADER,
};

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
                Schedule::WhatIf(backoff) => backoff
                    .wait_before(number + 1, &failure, unit, Duration::from_secs_f64(t))
                    .as_secs_f64(),
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

pub fn run_sim(opts: &Opts) -> Vec<Figures> {
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
        let backoff = Backoff {
            base: Duration::from_secs_f64(base),
            cap: Duration::from_secs_f64(cap),
        };
        let s = simulate_many(opts, Schedule::WhatIf(backoff), None);
        let f = &s.mean;
        println!(
            "{}{:>8.2}{:>8.2}{:>8.2}",
            row(&format!("base {} s, cap {} s", secs(base), secs(cap)), f),
            f.peak_1s / fixed.peak_1s,
            f.retry_peak_100ms / fixed.retry_peak_100ms,
            f.all_done / fixed.all_done
        );
    }
    println!();
    figures
}
