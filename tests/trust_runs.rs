//! SPEC §8's two run boundaries, against the real binary: one `run` at a
//! time per state directory (a second waits, then honours `--once` as the
//! first left it), and a signal that stops tagstrap (SIGTERM, SIGINT,
//! SIGHUP) is passed to the script's process group, which is waited for and
//! killed after the grace, before tagstrap writes its report and exits
//! 128+N.
//!
//! The scripts are the test's instruments: they record their PIDs, when they
//! start and end, and wait on a FIFO the test writes to, so the test knows
//! what ran and in what order without timing anything. Every wait polls a
//! file or a log line that the processes produce.

#![cfg(target_os = "linux")]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{write_file, Live, Run, Tagstrap, Witness, PATIENCE};
use tempfile::TempDir;
use testkit::{Origin, Reply, TestCa};

const SCRIPT_TAG: &str = "rs_agent:mime_shellscript";
const PASSWORD: &str = "p@ss:/%w0rd";
// Every wait of these tests is bounded by common::PATIENCE (60 s): well
// above the 10 s grace, so only a broken tagstrap reaches it.

/// Polls until `ready` holds (a file the processes write, mostly).
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A directory for what the scripts record, and a FIFO they wait on.
struct Bench {
    dir: TempDir,
}

impl Bench {
    fn new() -> Bench {
        let bench = Bench {
            dir: tempfile::tempdir().unwrap(),
        };
        let fifo = bench.path("go");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo");
        bench
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `install.sh` with `body` after a `#!/bin/sh` line and
    /// `OUT=<this directory>`; returns its `file://` URL.
    fn script(&self, body: &str) -> String {
        let text = format!("#!/bin/sh\nOUT='{}'\n{body}", self.dir.path().display());
        let path = write_file(self.dir.path(), "install.sh", &text);
        format!("file://{}", path.display())
    }

    /// Lets one script waiting in `read < $OUT/go` go on. Opened without
    /// blocking: no reader is a test failure, not a hang.
    fn release(&self) {
        use std::os::unix::fs::OpenOptionsExt;
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.path("go"))
            .expect("a script waits on the FIFO");
        fifo.write_all(b"go\n").unwrap();
    }

    fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Lets every script still waiting on the FIFO go: after a failed test.
    fn release_all(&self) {
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(mut fifo) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.path("go"))
        {
            let _ = fifo.write_all(&b"go\n".repeat(16));
        }
    }

    /// A PID a script wrote (one line, complete).
    fn pid(&self, name: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.path(name)).ok()?;
        text.strip_suffix('\n')?.trim().parse().ok()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.release_all();
        }
    }
}

/// Whether a process exists, zombies included (a zombie has a /proc entry).
fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn state_path(root: &Path) -> PathBuf {
    root.join("state")
}

// One run at a time.

#[test]
fn two_once_runs_at_once_run_the_script_once() {
    let bench = Bench::new();
    let url = bench.script("echo \"$$\" >> \"$OUT/ran\"\nread line < \"$OUT/go\"\n");
    let shared = tempfile::tempdir().unwrap();
    let state = state_path(shared.path());
    let once = |t: Tagstrap| {
        t.arg("--once")
            .arg("--instance-id")
            .arg("i-0race")
            .arg("--state-dir")
            .arg(&state)
    };

    let first = Live::spawn(once(Tagstrap::new("run").tag(SCRIPT_TAG, &url)));
    wait_until("the first run's script started", || {
        bench.lines("ran").len() == 1
    });
    // The second run's tags come from a file that exists only once it
    // waits: had it read its tags before taking the lock, it would have
    // stopped on a missing tags file (66).
    let late = bench.path("late.tags");
    let mut second = Live::spawn(once(Tagstrap::new("run").arg("--tags-file").arg(&late)));
    let waiting = second.wait_for_log("is using the state directory", PATIENCE);
    assert!(
        waiting.contains(&format!(
            "another tagstrap run (PID {}, started ",
            first.pid()
        )),
        "{waiting}"
    );
    assert!(waiting.contains("waiting for it to finish"), "{waiting}");
    std::fs::write(&late, format!("{SCRIPT_TAG}={url}\n")).unwrap();
    bench.release();

    let first = first.finish();
    first.assert_success();
    let second = second.finish();
    second.assert_success();
    assert!(
        second
            .stderr
            .contains("--once: the script already ran on instance i-0race"),
        "{}",
        second.stderr
    );
    assert_eq!(bench.lines("ran").len(), 1, "the script ran exactly once");
    assert!(state.join("once/i-0race").exists());
    // The report is the run that ran the script.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("last-run.json")).unwrap())
            .unwrap();
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["instance_id"], "i-0race");
}

#[test]
fn two_plain_runs_at_once_run_one_after_the_other() {
    let bench = Bench::new();
    // Each run also leaves a daemon behind, as an install script may: it
    // must neither be killed by tagstrap nor hold the lock for the next run.
    let url = bench.script(
        "echo \"start $$ $(date +%s.%N)\" >> \"$OUT/log\"\n\
         sleep 600 </dev/null >/dev/null 2>&1 &\n\
         echo $! >> \"$OUT/daemons\"\n\
         read line < \"$OUT/go\"\n\
         echo \"end $$ $(date +%s.%N)\" >> \"$OUT/log\"\n",
    );
    let shared = tempfile::tempdir().unwrap();
    let state = state_path(shared.path());
    let plain = || {
        Tagstrap::new("run")
            .tag(SCRIPT_TAG, &url)
            .arg("--state-dir")
            .arg(&state)
    };

    let first = Live::spawn(plain());
    wait_until("the first script started", || bench.lines("log").len() == 1);
    let mut second = Live::spawn(plain());
    second.wait_for_log(&format!("(PID {}, started ", first.pid()), PATIENCE);
    assert_eq!(
        bench.lines("log").len(),
        1,
        "the second waits, runs nothing"
    );
    bench.release();
    first.finish().assert_success();
    wait_until("the second script started", || {
        bench.lines("log").len() == 3
    });
    bench.release();
    second.finish().assert_success();

    let log: Vec<Vec<String>> = bench
        .lines("log")
        .iter()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    let what: Vec<&str> = log.iter().map(|l| l[0].as_str()).collect();
    assert_eq!(what, ["start", "end", "start", "end"], "{log:?}");
    assert_eq!(
        log[0][1], log[1][1],
        "the first script ended first: {log:?}"
    );
    assert_ne!(log[1][1], log[2][1], "then the second began: {log:?}");
    let at = |i: usize| log[i][2].parse::<f64>().unwrap();
    assert!(at(1) <= at(2), "the runs overlap: {log:?}");

    let daemons: Vec<i32> = bench
        .lines("daemons")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(daemons.len(), 2);
    for pid in &daemons {
        assert!(exists(*pid), "the daemon {pid} a script left was killed");
    }
    for pid in daemons {
        // SAFETY: the daemon's PID, still alive as just checked.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[test]
fn a_run_that_waits_longer_than_its_deadline_is_73_naming_the_holder() {
    let bench = Bench::new();
    let url = bench.script("echo \"$$\" >> \"$OUT/ran\"\nread line < \"$OUT/go\"\n");
    let shared = tempfile::tempdir().unwrap();
    let state = state_path(shared.path());
    let first = Live::spawn(
        Tagstrap::new("run")
            .tag(SCRIPT_TAG, &url)
            .arg("--state-dir")
            .arg(&state),
    );
    wait_until("the first script started", || bench.lines("ran").len() == 1);
    let report_before = std::fs::read(state.join("last-run.json")).ok();

    let second = Live::spawn(
        Tagstrap::new("run")
            .tag(SCRIPT_TAG, &url)
            .arg("--state-dir")
            .arg(&state)
            .arg("--deadline")
            .arg("1"),
    )
    .finish();

    second.assert_error(
        73,
        &format!("another tagstrap run (PID {}, started ", first.pid()),
    );
    let line = second.error_lines()[0];
    assert!(
        line.contains("longer than this run's 1 s deadline"),
        "{line}"
    );
    assert!(line.contains(&format!("kill {}", first.pid())), "{line}");
    assert_eq!(bench.lines("ran").len(), 1, "the second ran nothing");
    assert_eq!(
        std::fs::read(state.join("last-run.json")).ok(),
        report_before,
        "the holder's report is left alone"
    );
    bench.release();
    first.finish().assert_success();
}

#[test]
fn a_lock_file_planted_as_a_link_is_refused_and_its_target_left_alone() {
    let witness = Witness::new();
    let outside = tempfile::tempdir().unwrap();
    let victim = write_file(outside.path(), "victim", "precious\n");
    for planted in ["symlink", "hardlink", "dangling"] {
        let t = Tagstrap::new("run").tag(SCRIPT_TAG, &witness.url());
        let state = t.state_dir();
        std::fs::create_dir(&state).unwrap();
        let lock = state.join("run.lock");
        let created = outside.path().join("created");
        match planted {
            "symlink" => std::os::unix::fs::symlink(&victim, &lock).unwrap(),
            "hardlink" => std::fs::hard_link(&victim, &lock).unwrap(),
            _ => std::os::unix::fs::symlink(&created, &lock).unwrap(),
        }
        let run = t.run();

        run.assert_error(73, "the lock file ");
        let line = run.error_lines()[0];
        assert!(line.contains("Remove it"), "{planted}: {line}");
        assert!(!witness.ran(), "{planted}: nothing ran");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(!created.exists(), "{planted}: created through the link");
        assert!(
            run.report().is_empty(),
            "{planted}: no report without the lock"
        );
    }
}

// Signals while the script runs.

/// The script's own PID, its background child's and that child's child
/// (all in the script's process group), as the script recorded them.
fn group_pids(bench: &Bench) -> [i32; 3] {
    let mut pids = [0; 3];
    wait_until("the script recorded its group", || {
        for (slot, name) in pids.iter_mut().zip(["script", "child", "grandchild"]) {
            match bench.pid(name) {
                Some(pid) => *slot = pid,
                None => return false,
            }
        }
        true
    });
    pids
}

/// Starts a background child, which starts a grandchild, records the three
/// PIDs, then does `then`. `child_setup` runs first in the child (e.g. to
/// ignore the signals there too).
fn group_script(bench: &Bench, setup: &str, child_setup: &str, then: &str) -> String {
    bench.script(&format!(
        "{setup}\n\
         sh -c '{child_setup} sleep 600 & echo $! > \"$0/grandchild\"; wait' \"$OUT\" &\n\
         echo $! > \"$OUT/child\"\n\
         echo $$ > \"$OUT/script\"\n\
         {then}\n"
    ))
}

const SIGNALS: [(i32, &str); 3] = [
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGHUP, "SIGHUP"),
];

/// Makes this test process stand in for a PID 1 that never reaps: as a
/// child subreaper it inherits the orphans of the processes it started, and
/// it never waits for them, so an orphan tagstrap did not reap itself stays
/// a zombie, which [`exists`] sees. (Idempotent and process-wide.)
fn lazy_init() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers.
    let set = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
    assert_eq!(set, 0, "PR_SET_CHILD_SUBREAPER");
}

/// Runs `scene` for each stopping signal at once (each has its own bench
/// and state directory), so the grace is waited out once, not three times.
fn for_each_signal(scene: fn(i32, &str)) {
    lazy_init();
    let threads: Vec<_> = SIGNALS
        .iter()
        .map(|&(number, name)| std::thread::spawn(move || scene(number, name)))
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// What every stopped run must show: the exit code, one error line, the
/// report, and no process of the script's group left.
fn assert_stopped(run: &Run, number: i32, name: &str, needle: &str, pids: &[i32]) {
    run.assert_error(128 + number, needle);
    let line = run.error_lines()[0];
    assert!(
        line.contains(&format!("tagstrap was stopped by {name} while the script ran; the script's process group got {name} and")),
        "{line}"
    );
    for pid in pids {
        assert!(
            !exists(*pid),
            "{name}: process {pid} of the script's group survived"
        );
    }
    let report = run.report_json();
    assert_eq!(report["signal"], number, "{}", run.report());
    assert_eq!(report["exit_code"], 128 + number);
    assert_eq!(report["error"]["kind"], "stopped");
}

#[test]
fn a_signal_while_the_script_runs_reaches_its_group_and_a_script_that_exits_on_it_ends() {
    for_each_signal(|number, name| {
        let bench = Bench::new();
        let url = group_script(&bench, "", "", "wait");
        let mut live = Live::spawn(Tagstrap::new("run").tag(SCRIPT_TAG, &url));
        let pids = group_pids(&bench);
        live.signal(number);
        live.wait_for_log(
            &format!("passed {name} to the script's process group {}", pids[0]),
            PATIENCE,
        );
        let run = live.finish();

        assert_stopped(
            &run,
            number,
            name,
            "installation did not complete: run tagstrap again",
            &pids,
        );
        let report = run.report_json();
        // The script itself died of the signal it was passed.
        assert_eq!(
            report["script"]["exit_code"],
            128 + number,
            "{}",
            run.report()
        );
        // sh starts background commands with SIGINT ignored (POSIX, without
        // job control), so those outlive a SIGINT and are killed after the
        // grace; SIGTERM and SIGHUP end them all.
        assert_eq!(
            report["script"]["killed"],
            number == libc::SIGINT,
            "{}",
            run.report()
        );
    });
}

#[test]
fn a_script_that_traps_the_signal_and_stays_is_killed_with_its_group_after_the_grace() {
    for_each_signal(|number, name| {
        let bench = Bench::new();
        let url = group_script(
            &bench,
            "trap 'echo \"$$\" >> \"$OUT/trapped\"' TERM INT HUP",
            "trap \"\" TERM INT HUP;",
            "while :; do sleep 1; done",
        );
        // With a proxy password in the script's environment, which must
        // not reach the error line or the report on this path either.
        let creds = bench.path("creds");
        std::fs::create_dir(&creds).unwrap();
        common::write_secret(&creds, "PROXY_PASS", PASSWORD, 0o400);
        let t = Tagstrap::new("run")
            .tag(SCRIPT_TAG, &url)
            .tag("rs_agent:http_proxy", "proxy.test:3128")
            .tag("rs_agent:http_proxy_user", "svc")
            .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
            .env("CREDENTIALS_DIRECTORY", &creds);
        let live = Live::spawn(t);
        let pids = group_pids(&bench);
        live.signal(number);
        let run = live.finish();

        assert_stopped(&run, number, name, "was killed (SIGKILL)", &pids);
        run.assert_no_leak(PASSWORD);
        assert_eq!(bench.lines("trapped").len(), 1, "{name} reached the script");
        let report = run.report_json();
        assert_eq!(report["script"]["killed"], true);
        assert_eq!(report["script"]["exit_code"], 128 + libc::SIGKILL);
        assert!(
            run.stderr.contains("was still running 10 s after"),
            "{}",
            run.stderr
        );
    });
}

#[test]
fn a_script_that_cleans_up_and_exits_0_within_the_grace_counts_as_run_for_once() {
    for_each_signal(|number, name| {
        let bench = Bench::new();
        let url = group_script(
            &bench,
            "trap 'kill \"$child\" \"$(cat \"$OUT/grandchild\")\"; wait; \
             echo cleaned >> \"$OUT/trapped\"; exit 0' TERM INT HUP",
            "",
            // The trap runs as soon as a trapped signal interrupts `wait`.
            "child=$!\nwait",
        );
        let once = || {
            Tagstrap::new("run")
                .tag(SCRIPT_TAG, &url)
                .arg("--once")
                .arg("--instance-id")
                .arg("i-0sig")
        };
        let live = Live::spawn(once());
        let pids = group_pids(&bench);
        live.signal(number);
        let run = live.finish();

        assert_stopped(&run, number, name, "exited 0 within the 10 s grace, so the installation completed (its --once marker is written)", &pids);
        assert_eq!(bench.lines("trapped"), ["cleaned"]);
        assert_eq!(run.report_json()["script"]["exit_code"], 0);
        assert_eq!(run.report_json()["script"]["killed"], false);
        let state = run.state.path().join("state");
        assert!(state.join("once/i-0sig").exists(), "the marker is written");
        // It completed: the next boot does not run it again.
        let again = once().arg("--state-dir").arg(&state).run();
        again.assert_success();
        assert!(again.stderr.contains("already ran"), "{}", again.stderr);
        assert_eq!(bench.lines("trapped").len(), 1);
    });
}

// Signals before the script.

#[test]
fn a_signal_during_a_slow_download_removes_the_partial_file_and_runs_nothing() {
    let ca = TestCa::new();
    let bench = Bench::new();
    let script = format!("#!/bin/sh\necho ran >> '{}'\n", bench.path("ran").display());
    let origin = Origin::builder(Some(&ca))
        .route(
            "/install.sh",
            vec![],
            Reply::Drip {
                body: script.into_bytes(),
                interval: Duration::from_millis(500),
            },
        )
        .start();
    for (number, name) in SIGNALS {
        let t = Tagstrap::new("run")
            .tag(SCRIPT_TAG, &origin.url("/install.sh"))
            .arg("--ca-file")
            .arg(ca.ca_pem_path());
        let live = Live::spawn(t);
        // The partial file's name is unpredictable (.install.<random>.partial).
        let script_dir = live.state.as_ref().unwrap().path().join("state/script");
        wait_until("the download has begun", || {
            std::fs::read_dir(&script_dir).ok().is_some_and(|entries| {
                entries.flatten().any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.ends_with(".partial") && e.metadata().is_ok_and(|m| m.len() > 0)
                })
            })
        });
        live.signal(number);
        let run = live.finish();

        run.assert_error(
            128 + number,
            &format!("tagstrap was stopped by {name} while it downloaded the script; nothing of it was kept and nothing was run"),
        );
        let dir = run.state.path().join("state/script");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{name}: {left:?} is left in script/");
        assert!(bench.lines("ran").is_empty(), "{name}: nothing ran");
        let report = run.report_json();
        assert_eq!(report["signal"], number);
        assert_eq!(report["error"]["kind"], "stopped");
        assert_eq!(report["script"]["download"]["tries"], 1);
    }
    assert_eq!(origin.hits("/install.sh"), 3, "one request per run");
}

#[test]
fn a_signal_while_the_metadata_service_hangs_ends_the_run_with_its_report() {
    let metadata = Origin::builder(None)
        .handler(std::sync::Arc::new(|_| Some(Reply::Hang)))
        .start();
    let witness = Witness::new();
    let t = Tagstrap::new("run")
        .tag(SCRIPT_TAG, &witness.url())
        .arg("--source")
        .arg("aws")
        .arg("--metadata-endpoint")
        .arg(metadata.url(""));
    let live = Live::spawn(t);
    wait_until("the metadata service is asked", || {
        !metadata.requests().is_empty()
    });
    live.signal(libc::SIGINT);
    let run = live.finish();

    run.assert_error(
        130,
        "tagstrap was stopped by SIGINT while it read the tags; nothing was run",
    );
    assert!(!witness.ran());
    let report = run.report_json();
    assert_eq!(report["signal"], 2);
    assert_eq!(report["exit_code"], 130);
    assert_eq!(report["error"]["kind"], "stopped");
}

#[test]
fn a_signal_while_the_store_answers_slowly_still_revokes_the_login_token() {
    const SECRET_ID: &str = "0f1e2d3c-secret-id";
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJpLTEifQ.c2lnbmF0dXJl";
    const TOKEN: &str = "s.login-token-to-revoke";
    // AppRole, and a jwt login (issue 14): each login's token is revoked.
    for method in ["approle", "jwt"] {
        let login = serde_json::json!({"auth": {"client_token": TOKEN}}).to_string();
        let store = Origin::builder(None)
            .route(
                &format!("/v1/auth/{method}/login"),
                vec![],
                Reply::ok(login),
            )
            .route("/v1/secret/data/PROXY_PASS", vec![], Reply::Hang)
            .route("/v1/auth/token/revoke-self", vec![], Reply::status(204))
            .start();
        let dir = tempfile::tempdir().unwrap();
        let secret_id = common::write_secret(dir.path(), "secret-id", SECRET_ID, 0o600);
        let jwt = common::write_secret(dir.path(), "jwt", JWT, 0o600);
        let witness = Witness::new();
        let t = Tagstrap::new("run")
            .tag("rs_agent:http_proxy", "127.0.0.1:9")
            .tag("rs_agent:http_proxy_user", "svc-agent")
            .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
            .tag(SCRIPT_TAG, &witness.url())
            .env("VAULT_ADDR", store.url(""));
        let t = match method {
            "approle" => t
                .env("TAGSTRAP_VAULT_ROLE_ID", "role-1")
                .env("TAGSTRAP_VAULT_SECRET_ID_FILE", &secret_id),
            _ => {
                let section = format!("[vault.jwt]\nfile = {:?}\n", jwt.display().to_string());
                t.arg("--config")
                    .arg(write_file(dir.path(), "config.toml", &section))
            }
        };
        let live = Live::spawn(t);
        wait_until("the credential is being read", || {
            store.hits("/v1/secret/data/PROXY_PASS") == 1
        });
        live.signal(libc::SIGTERM);
        let run = live.finish();

        run.assert_error(
            143,
            "tagstrap was stopped by SIGTERM while it read the proxy credentials from the store; nothing was run",
        )
        .assert_no_leak(SECRET_ID)
        .assert_no_leak(JWT)
        .assert_no_leak(TOKEN);
        assert_eq!(
            store.hits("/v1/auth/token/revoke-self"),
            1,
            "{method}: the login's token is revoked"
        );
        assert!(!witness.ran());
        assert_eq!(run.report_json()["signal"], 15);
    }
}

#[test]
fn a_signal_while_waiting_for_the_lock_ends_the_wait_and_leaves_the_holders_report() {
    let bench = Bench::new();
    let url = bench.script("echo \"$$\" >> \"$OUT/ran\"\nread line < \"$OUT/go\"\n");
    let shared = tempfile::tempdir().unwrap();
    let state = state_path(shared.path());
    let run = || {
        Tagstrap::new("run")
            .tag(SCRIPT_TAG, &url)
            .arg("--state-dir")
            .arg(&state)
    };
    let first = Live::spawn(run());
    wait_until("the first script started", || bench.lines("ran").len() == 1);
    let report_before = std::fs::read(state.join("last-run.json")).ok();
    let mut second = Live::spawn(run());
    second.wait_for_log("is using the state directory", PATIENCE);
    second.signal(libc::SIGHUP);
    let stopped = second.finish();

    stopped.assert_error(
        129,
        &format!(
            "tagstrap was stopped by SIGHUP while it waited for another tagstrap run (PID {}",
            first.pid()
        ),
    );
    assert_eq!(
        std::fs::read(state.join("last-run.json")).ok(),
        report_before,
        "the holder's report is left alone"
    );
    bench.release();
    first.finish().assert_success();
    assert_eq!(bench.lines("ran").len(), 1);
}
