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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{Cloud, FakeMetadata};

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
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| fail(USAGE))
        };
        match arg.as_str() {
            "--runs" => opts.runs = number().max(1) as usize,
            "--late-runs" => opts.late_runs = number().max(1) as usize,
            "--late" => opts.late = Duration::from_millis(number()),
            // cargo bench passes --bench.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => fail(USAGE),
        }
    }
    opts
}

fn fail(message: &str) -> ! {
    eprintln!("metadata: {message}");
    std::process::exit(2)
}

fn bin() -> PathBuf {
    std::env::var_os("TAGSTRAP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
                .join("release/tagstrap")
        })
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

struct Stats {
    min: Duration,
    median: Duration,
    p90: Duration,
    max: Duration,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut v = samples.to_vec();
    v.sort();
    let n = v.len();
    Stats {
        min: v[0],
        median: v[n / 2],
        p90: v[(n * 9).div_ceil(10).max(1) - 1],
        max: v[n - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
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
        let (a, b) = (stats(&a), stats(&b));
        println!(
            "  {:9} min {:>8}  median {:>8}  p90 {:>8}   (none: median {:>8}; metadata adds {}; {requests} requests per read)",
            cloud.name(),
            ms(a.min),
            ms(a.median),
            ms(a.p90),
            ms(b.median),
            ms(a.median.saturating_sub(b.median)),
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
    let s = stats(&after_start);
    println!(
        "  from the service's start to tagstrap's exit: min {}  median {}  p90 {}  max {}",
        ms(s.min),
        ms(s.median),
        ms(s.p90),
        ms(s.max)
    );
}
