//! Start-up cost: `tagstrap --version` as a whole process (spawn to
//! `wait4`), `--startup-runs` (50) runs after 3 warm-ups, the release binary
//! (`TAGSTRAP_BIN`) and the static musl one (`TAGSTRAP_MUSL_BIN`, default
//! `target/x86_64-unknown-linux-musl/release/tagstrap`; skipped with a note
//! when missing) interleaved: min / median / p90 wall time, peak RSS, size.
//! Peak RSS is measured through a freshly exec'd copy of this bench
//! (`common::rusage::wrapper_if_asked`: on Linux `ru_maxrss` survives exec
//! and would start from this process's own peak); it runs first, while this
//! process is small.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::rusage::{measure, measure_isolated};
use crate::common::stats::{mib, ms, Stats};
use crate::common::{binary, fail, first_line};
use crate::Opts;

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
        // The wrapper's clean environment and null stdio are what
        // `bin --version` inherits.
        let mut wrapper = Command::new(&exe);
        wrapper
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let m = measure_isolated(&version_command(bin), wrapper, &out)
            .and_then(|m| {
                if m.status.success() {
                    Ok(m)
                } else {
                    Err(m.status)
                }
            })
            .unwrap_or_else(|status| {
                fail(&format!(
                    "{} --version under the wrapper failed ({status})",
                    bin.display()
                ))
            });
        rss = rss.max(m.max_rss_kib);
        floor = floor.max(m.floor_kib);
    }
    (rss, floor)
}

pub fn startup(opts: &Opts) {
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
        let s = Stats::of(&walls[k]);
        let (rss, fl) = version_rss(bin, 5, work.path());
        floor = floor.max(fl);
        let size = std::fs::metadata(bin).map_or(0, |m| m.len());
        println!(
            "  {name:<13}{:>10}{:>10}{:>10}{:>11}{:>15}  {} ({})",
            ms(s.min, 2),
            ms(s.median, 2),
            ms(s.p90, 2),
            mib(rss),
            size,
            bin.display(),
            first_line(bin, "--version")
        );
    }
    println!(
        "  (RSS measurement floor: the wrapper's own peak RSS, {})",
        mib(floor)
    );
    println!();
}
