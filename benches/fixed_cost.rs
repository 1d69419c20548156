//! What tagstrap costs by itself: `tagstrap run` with a `file://` script
//! that does `exit 0`, against `/bin/sh` running the same script, in
//! interleaved pairs so that the machine's drift hits both alike. Prints,
//! per binary and round, the median of the pairs' differences and of each
//! side. Several binaries (a before and an after) are alternated round by
//! round, so a slow minute of a shared machine does not favour either.
//!
//! ```text
//! cargo bench --bench fixed_cost -- [--pairs 200] [--rounds 2] [BINARY…]
//! ```
//!
//! Without a binary it measures `$TAGSTRAP_BIN` (what `bench/run fixed_cost`
//! builds), else the release build. docs/benchmarks.md
//! has the figures.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::stats::{ms, Stats};

const USAGE: &str = "usage: cargo bench --bench fixed_cost -- [--pairs N] [--rounds N] [BINARY...]";

struct Opts {
    pairs: usize,
    rounds: usize,
    binaries: Vec<PathBuf>,
}

fn parse_args() -> Opts {
    let mut opts = Opts {
        pairs: 200,
        rounds: 2,
        binaries: Vec::new(),
    };
    let mut args = common::args::Args::new(USAGE);
    while let Some(arg) = args.flag() {
        match arg.as_str() {
            "--pairs" => opts.pairs = args.parse("--pairs"),
            "--rounds" => opts.rounds = args.parse("--rounds"),
            other if other.starts_with('-') => args.unknown(other),
            path => opts.binaries.push(PathBuf::from(path)),
        }
    }
    if opts.binaries.is_empty() {
        opts.binaries.push(common::tagstrap_bin());
    }
    opts
}

/// Wall time of one child, started and waited for.
fn time(command: &mut Command) -> Duration {
    let started = Instant::now();
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    let took = started.elapsed();
    assert!(status.success(), "{command:?} failed: {status}");
    took
}

fn tagstrap_run(binary: &Path, dir: &Path, script: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["run", "--source", "none", "--log-format", "json"])
        .arg("--config")
        .arg(dir.join("empty"))
        .arg("--tags-file")
        .arg(dir.join("empty"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg(format!(
            "--tag=rs_agent:mime_shellscript=file://{}",
            script.display()
        ));
    command
}

fn main() {
    let opts = parse_args();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("install.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::write(dir.path().join("empty"), "").unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();

    println!(
        "fixed cost: tagstrap run (file:// script, exit 0) over /bin/sh running it, {} interleaved pairs, medians",
        opts.pairs
    );
    println!("| binary | round | tagstrap | sh | over sh | size |");
    println!("|---|---|---|---|---|---|");
    for round in 1..=opts.rounds {
        for binary in &opts.binaries {
            // One run first, so the page cache holds the binary for both.
            time(&mut tagstrap_run(binary, dir.path(), &script));
            let (mut ours, mut shs, mut over) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..opts.pairs {
                let t = time(&mut tagstrap_run(binary, dir.path(), &script));
                let s = time(Command::new("/bin/sh").arg(&script));
                ours.push(t);
                shs.push(s);
                over.push(t.saturating_sub(s));
            }
            let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
            println!(
                "| {} | {round} | {} | {} | {} | {size} bytes |",
                binary.display(),
                ms(Stats::of(&ours).median, 2),
                ms(Stats::of(&shs).median, 2),
                ms(Stats::of(&over).median, 2),
            );
        }
    }
}
