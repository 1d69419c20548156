//! What reading the instance tags costs, against testkit's fake metadata
//! services on loopback. Prints figures; asserts nothing about timing. See
//! bench/README.md.
//!
//! 1. `tagstrap tags --source CLOUD --metadata-endpoint FAKE` for each cloud,
//!    against `tagstrap tags --source none`, interleaved: wall time min /
//!    median / p90, and the HTTP requests one read takes.
//! 2. A metadata service that comes up late: the fake starts `--late` ms
//!    after tagstrap, and the figure is the time from the fake's start to
//!    tagstrap's exit (the cost of the retry schedule while nothing answers).
//!
//! Run it with `bench/run` or
//! `TAGSTRAP_BIN=... cargo bench --bench metadata -- [--runs N] [--late-runs N] [--late MS]`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{Cloud, FakeMetadata};

mod common;
use common::args::Args;
use common::stats::{ms, Stats};
use common::{fail, tagstrap_bin as bin};

const USAGE: &str = "usage: metadata [--runs N (30)] [--late-runs N (10)] [--late MS (1500)]
env: TAGSTRAP_BIN (default: $CARGO_TARGET_DIR or ./target, then release/tagstrap)";

struct Opts {
    runs: usize,
    late_runs: usize,
    late: Duration,
}

fn parse_args() -> Opts {
    let mut opts = Opts {
        runs: 30,
        late_runs: 10,
        late: Duration::from_millis(1500),
    };
    let mut args = Args::new(USAGE);
    while let Some(flag) = args.flag() {
        match flag.as_str() {
            "--runs" => opts.runs = args.parse::<usize>(&flag).max(1),
            "--late-runs" => opts.late_runs = args.parse::<usize>(&flag).max(1),
            "--late" => opts.late = Duration::from_millis(args.parse(&flag)),
            _ => args.unknown(&flag),
        }
    }
    opts
}

/// `tagstrap tags` with nothing from the machine: empty config and tags
/// file, one `--tag`, and the source arguments given.
fn tags_command(dir: &Path, source: &[String]) -> Command {
    let mut command = Command::new(bin());
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("tags")
        .arg("--config")
        .arg(dir.join("empty.toml"))
        .arg("--tags-file")
        .arg(dir.join("empty.tags"))
        .args(["--tag", "rs_agent:type=bench"])
        .args(source)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn timed(mut command: Command) -> Duration {
    let start = Instant::now();
    let status = command.status().unwrap_or_else(|e| fail(&format!("{e}")));
    if !status.success() {
        fail(&format!("tagstrap tags failed: {status}"));
    }
    start.elapsed()
}

fn source_args(cloud: Cloud, url: &str) -> Vec<String> {
    vec![
        "--source".into(),
        cloud.name().into(),
        "--metadata-endpoint".into(),
        url.into(),
    ]
}

fn main() {
    let opts = parse_args();
    if !bin().exists() {
        fail(&format!(
            "{} does not exist: run bench/run",
            bin().display()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.toml"), "").unwrap();
    std::fs::write(dir.path().join("empty.tags"), "").unwrap();
    let none = vec!["--source".to_string(), "none".to_string()];

    println!(
        "tagstrap tags, {} runs each, interleaved with --source none:",
        opts.runs
    );
    for cloud in Cloud::ALL {
        let fake = FakeMetadata::builder(cloud)
            .tag("rs_agent:http_proxy", "proxy.corp:3128")
            .tag("rs_agent:mime_shellscript", "https://repo.corp/install.sh")
            .start();
        let with = source_args(cloud, &fake.url());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..opts.runs {
            // A B B A …: drift hits both alike.
            if i % 2 == 0 {
                a.push(timed(tags_command(dir.path(), &with)));
                b.push(timed(tags_command(dir.path(), &none)));
            } else {
                b.push(timed(tags_command(dir.path(), &none)));
                a.push(timed(tags_command(dir.path(), &with)));
            }
        }
        let requests = fake.requests().len() / opts.runs;
        let (a, b) = (Stats::of(&a), Stats::of(&b));
        println!(
            "  {:9} min {:>8}  median {:>8}  p90 {:>8}   (none: median {:>8}; metadata adds {}; {requests} requests per read)",
            cloud.name(),
            ms(a.min, 1),
            ms(a.median, 1),
            ms(a.p90, 1),
            ms(b.median, 1),
            ms(a.median.saturating_sub(b.median), 1),
        );
        if !fake.refused().is_empty() {
            fail(&format!("the fake refused requests: {:?}", fake.refused()));
        }
    }

    println!();
    println!(
        "a metadata service that starts {} ms after tagstrap, {} runs (aws):",
        opts.late.as_millis(),
        opts.late_runs
    );
    let mut after_start = Vec::new();
    for _ in 0..opts.late_runs {
        let reserved = FakeMetadata::builder(Cloud::Aws).reserve();
        let args = source_args(Cloud::Aws, &reserved.url());
        let mut child = tags_command(dir.path(), &args).spawn().unwrap();
        std::thread::sleep(opts.late);
        let fake = reserved.start();
        let started = Instant::now();
        let status = child.wait().unwrap();
        after_start.push(started.elapsed());
        if !status.success() {
            fail("tagstrap tags failed against the late service");
        }
        drop(fake);
    }
    let s = Stats::of(&after_start);
    println!(
        "  from the service's start to tagstrap's exit: min {}  median {}  p90 {}  max {}",
        ms(s.min, 1),
        ms(s.median, 1),
        ms(s.p90, 1),
        ms(s.max, 1)
    );
}
