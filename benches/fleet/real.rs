//! The real run: one process, one task per instance on a single-threaded
//! tokio runtime, each making real HTTP requests over loopback to the host
//! of [`crate::host`] (its own thread and runtime, like testkit's `Origin`,
//! but listening with a backlog of 4096 where the Origin has std's 128,
//! which dropped SYNs of the fixed fleet's bursts: see
//! [`crate::host::BACKLOG`]). The host logs each request's arrival when its
//! head has been read and answers by that time. A tagstrap instance is one
//! call of the real `tagstrap::fetch::download` for
//! `http://127.0.0.1:PORT/install.sh?i=ID` pinned to the script's sha256
//! (the pin is what allows `http://`): tagstrap's own HTTP client, status
//! classification (`503` → `Failure::busy` with the parsed `Retry-After`),
//! retry loop (`net::retry::retry`, `wait_before`, real tokio sleeps),
//! streaming to a private file and the pin check. A fixed instance uses the
//! same HTTP client (`fetch::http_client`) in a loop that sleeps
//! `--interval` after every answer that is not `200`. The `?i=ID` lets the
//! host tell each instance's first request from its retries.
//!
//! How faithful it was is printed with it: the machine's load average; the
//! kernel's listen-queue overflows and SYN retransmissions (non-zero: the
//! host did not keep up and some requests arrived 1 s late); how long the
//! first requests of all instances took to go out (all the clients share
//! one CPU thread, so a boot "at once" is spread over a few hundred ms,
//! which blurs the 100 ms figures); and how late a 10 ms timer fired on
//! the clients' and on the host's runtime (a fixed instance's every try is
//! that much later, so its waves drift and smear); and requests per second
//! of the run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tagstrap::fetch::{self, FetchOptions};
use tagstrap::net::retry::Tries;
use tagstrap::net::{self, Redirects};
use tagstrap::proxy::{NoProxy, ProxyEnvironment};
use tagstrap::tags::agent::{ScriptLocation, ScriptTag, MIME_SHELLSCRIPT};

use crate::boot::{sorted, Boot, Figures};
use crate::common::fail;
use crate::common::stats::Stats;
use crate::host::{Host, BACKLOG};
use crate::{
    fleet_label, fleets, print_header, print_row, secs, Opts, Schedule, DEADLINE, HEADER,
    MAX_SCRIPT_BYTES, SCRIPT,
};

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

/// "median / p90 / max ms" of timer lags.
fn lag_summary(lags: &[Duration]) -> String {
    let s = Stats::of(lags);
    format!(
        "{:.1} / {:.1} / {:.0} ms",
        s.median.as_secs_f64() * 1e3,
        s.p90.as_secs_f64() * 1e3,
        s.max.as_secs_f64() * 1e3
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
pub async fn timer_lag(stop: Arc<AtomicBool>) -> Vec<Duration> {
    const TICK: Duration = Duration::from_millis(10);
    let mut lags = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let asleep = Instant::now();
        tokio::time::sleep(TICK).await;
        lags.push(asleep.elapsed().saturating_sub(TICK));
    }
    lags
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

pub fn run_real(opts: &Opts) -> Vec<Figures> {
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
