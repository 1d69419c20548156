//! The Windows binary run for real: `tagstrap.exe` (the release build
//! `.ci/release` ships) under Debian's wine, one prefix per test, with
//! testkit's stand-in `powershell.exe` recording how tagstrap started it
//! (`testkit::wine` says what the stand-ins are and why they are needed).
//! The servers are the real ones the Linux tests use, on loopback: Squid
//! with basic auth, OpenBao holding the proxy password, an HTTPS origin with
//! a test CA on 127.0.0.2 (127.0.0.1 is always in the no-proxy list).
//!
//! Exit codes are read as a Windows launcher reads them, through
//! `%ERRORLEVEL%` in `cmd`, and from the report: wine's own exit status is
//! the code mod 256. Also here: the Linux binary's `--help` names the Unix
//! paths, as the Windows one names `%ProgramData%`.

#![cfg(unix)]

mod common;

use common::{proxy_and_store, secret_forms, PROXY_VARS};
use testkit::wine::{z_path, Wine, WineRun};
use testkit::{Bao, Origin, Reply, Squid, TestCa};

const USER: &str = "svc-agent";
/// Holds characters a naive proxy URL or command line would break on.
const PASSWORD: &str = "w1n-p@ss:/w0rd";
const ORIGIN_IP: &str = "127.0.0.2";
/// The state directory the tests name, in each test's own prefix.
const STATE: &str = r"C:\tagstrap-test\state";
/// A PowerShell script, as the stand-in will find it in the state dir.
const SCRIPT: &str = "Write-Output 'installing the agent'\r\nexit 0\r\n";

/// The exact command line of SPEC §7 for a script at `path`, as
/// `GetCommandLineW` shows it: Rust quotes the program name.
fn powershell_line(path: &str) -> String {
    format!("\"powershell.exe\" -NoProfile -NonInteractive -ExecutionPolicy Bypass -File {path}")
}

/// The ERROR lines of a run's stderr.
fn error_lines(run: &WineRun) -> Vec<&str> {
    run.stderr.lines().filter(|l| l.contains("ERROR")).collect()
}

fn report(wine: &Wine, state: &str) -> serde_json::Value {
    let path = wine.c_path(&format!(r"{state}\last-run.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the report is JSON")
}

/// Asserts no form of `secret` is in the run's output or its report.
fn assert_no_leak(run: &WineRun, report: &serde_json::Value, secret: &str) {
    let report = report.to_string();
    for form in secret_forms(secret) {
        for (what, text) in [
            ("stdout", &run.stdout),
            ("stderr", &run.stderr),
            ("report", &report),
        ] {
            assert!(
                !text.contains(&form),
                "{what} holds the secret ({form:?}):\n{text}"
            );
        }
    }
}

fn assert_code(run: &WineRun, code: i32) {
    assert_eq!(run.code, code, "%ERRORLEVEL%\n{run:#?}");
    // What Linux sees of it: why the test reads %ERRORLEVEL% instead.
    assert_eq!(run.wine_status, Some(code % 256), "wine's status\n{run:#?}");
}

/// Squid with basic auth allowing CONNECT to the origin's port, OpenBao
/// holding `stored` as `PROXY_PASS` (`common::proxy_and_store`), and the
/// HTTPS origin serving SCRIPT.
struct World {
    ca: TestCa,
    squid: Squid,
    bao: Bao,
    origin: Origin,
}

impl World {
    fn new(stored: &str) -> World {
        let ca = TestCa::new();
        let reserved = Origin::builder(Some(&ca))
            .bind_ip(ORIGIN_IP.parse().unwrap())
            .reserve();
        let (squid, bao) = proxy_and_store(USER, PASSWORD, stored, reserved.port());
        let origin = reserved
            .route("/install.ps1", vec![], Reply::ok(SCRIPT))
            .start();
        World {
            ca,
            squid,
            bao,
            origin,
        }
    }

    /// `tagstrap.exe run` with the proxy tags, the store in the
    /// environment and the test CA; `extra` after them.
    fn run(&self, wine: &Wine, extra: &[&str]) -> WineRun {
        let ca = z_path(self.ca.ca_pem_path());
        let mut args = vec!["run", "--state-dir", STATE, "--ca-file", &ca];
        args.extend_from_slice(extra);
        self.tagstrap(wine, &args)
    }

    /// `tagstrap.exe ARGS --source none` and the proxy and script tags,
    /// with the store's address and token in the environment.
    fn tagstrap(&self, wine: &Wine, args: &[&str]) -> WineRun {
        let proxy = format!("rs_agent:http_proxy={}", self.squid.proxy_addr());
        let user = format!("rs_agent:http_proxy_user={USER}");
        let url = format!(
            "rs_agent:powershell_url={}",
            self.origin.url("/install.ps1")
        );
        let mut args = args.to_vec();
        args.extend_from_slice(&[
            "--source",
            "none",
            "--tag",
            &proxy,
            "--tag",
            &user,
            "--tag",
            "rs_agent:http_proxy_password=cred:PROXY_PASS",
            "--tag",
            &url,
        ]);
        let token = self.bao.root_token();
        wine.tagstrap(
            &args,
            &[("VAULT_ADDR", &self.bao.addr()), ("VAULT_TOKEN", &token)],
        )
    }
}

/// `tagstrap.exe run` of a `file:///C:/…` script with no proxy.
fn run_file(wine: &Wine, extra: &[&str]) -> WineRun {
    let script = wine.c_path(r"C:\agent\install.ps1");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(&script, SCRIPT).unwrap();
    let mut args = vec![
        "run",
        "--source",
        "none",
        "--state-dir",
        STATE,
        "--tag",
        "rs_agent:powershell_url=file:///C:/agent/install.ps1",
    ];
    args.extend_from_slice(extra);
    wine.tagstrap(&args, &[])
}

#[test]
fn version_and_help_show_the_windows_defaults() {
    let wine = Wine::cached();
    let version = wine.tagstrap(&["--version"], &[]);
    assert_code(&version, 0);
    assert_eq!(
        version.stdout.trim(),
        format!("tagstrap {}", env!("CARGO_PKG_VERSION"))
    );
    for args in [&["--help"][..], &["run", "--help"], &["plan", "--help"]] {
        let help = wine.tagstrap(args, &[]);
        assert_code(&help, 0);
        let text = help.stdout.replace('\n', " ");
        let words: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if args[0] == "--help" {
            for default in [
                r"default %ProgramData%\tagstrap\tags",
                r"default %ProgramData%\tagstrap\config.toml",
            ] {
                assert!(
                    words.contains(default),
                    "{args:?} lacks {default:?}:\n{}",
                    help.stdout
                );
            }
        } else {
            for default in [
                r"[default: %ProgramData%\tagstrap\tags when present]",
                r"[default: %ProgramData%\tagstrap\config.toml when present]",
                r"[default: %ProgramData%\tagstrap\state]",
            ] {
                assert!(
                    words.contains(default),
                    "{args:?} lacks {default:?}:\n{}",
                    help.stdout
                );
            }
        }
        for unix in ["/var/lib", "/etc/tagstrap"] {
            assert!(
                !help.stdout.contains(unix),
                "{args:?} shows {unix}:\n{}",
                help.stdout
            );
        }
    }
}

#[test]
fn the_linux_help_shows_the_unix_defaults() {
    for args in [&["--help"][..], &["run", "--help"]] {
        let out = std::process::Command::new(common::BIN)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let words = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        let expected: &[&str] = if args[0] == "--help" {
            &[
                "default /etc/tagstrap/tags",
                "default /etc/tagstrap/config.toml",
            ]
        } else {
            &[
                "[default: /etc/tagstrap/tags when present]",
                "[default: /etc/tagstrap/config.toml when present]",
                "[default: /var/lib/tagstrap]",
            ]
        };
        for default in expected {
            assert!(
                words.contains(default),
                "{args:?} lacks {default:?}:\n{stdout}"
            );
        }
        assert!(!stdout.contains("ProgramData"), "{args:?}:\n{stdout}");
    }
}

#[test]
fn plan_is_redacted_and_shows_the_programdata_state_dir() {
    let world = World::new(PASSWORD);
    let wine = Wine::cached();
    let token = world.bao.root_token();
    let plan = world.tagstrap(&wine, &["plan"]);
    assert_code(&plan, 0);
    assert!(error_lines(&plan).is_empty(), "{plan:#?}");
    let state = r"C:\ProgramData\tagstrap\state";
    for needle in [
        USER,
        "cred:PROXY_PASS",
        &world.squid.proxy_addr(),
        "/install.ps1",
        state,
    ] {
        assert!(
            plan.stdout.contains(needle),
            "plan lacks {needle:?}:\n{}",
            plan.stdout
        );
    }
    for form in secret_forms(PASSWORD).into_iter().chain([token]) {
        assert!(
            !plan.stdout.contains(&form) && !plan.stderr.contains(&form),
            "{plan:#?}"
        );
    }
    // plan downloads nothing, runs nothing and writes nothing.
    assert_eq!(world.origin.hits("/install.ps1"), 0);
    assert!(wine.powershell_runs().is_empty());
    assert!(!wine.c_path(r"C:\ProgramData\tagstrap").exists());
}

#[test]
fn a_proxied_run_starts_powershell_with_the_fixed_command_line_and_the_proxy_environment() {
    let world = World::new(PASSWORD);
    let wine = Wine::cached();
    let run = world.run(&wine, &[]);

    assert_code(&run, 0);
    assert!(error_lines(&run).is_empty(), "{run:#?}");
    let path = format!(r"{STATE}\script\install.ps1");
    assert_eq!(wine.powershell_runs(), [powershell_line(&path)]);
    assert_eq!(wine.powershell_script().as_deref(), Some(SCRIPT));
    assert!(
        run.stdout
            .contains(&format!("stand-in powershell: ran {path}")),
        "the script's output reaches tagstrap's stdout:\n{run:#?}"
    );
    assert_eq!(world.origin.hits("/install.ps1"), 1);
    let log = world.squid.access_log();
    assert!(
        log.lines()
            .any(|l| l.contains("CONNECT") && l.contains(USER)),
        "the download went through Squid as {USER}:\n{log}"
    );

    // Windows names are one variable whatever their case: `http_proxy` and
    // `HTTP_PROXY` are the same one there, as the script would read it.
    let env = wine.powershell_env();
    let value = |name: &str| {
        env.iter().find_map(|line| {
            let (n, v) = line.split_once('=')?;
            n.eq_ignore_ascii_case(name).then(|| v.to_string())
        })
    };
    let proxy_url = format!(
        "http://{USER}:{}@{}",
        secret_forms(PASSWORD)[1],
        world.squid.proxy_addr()
    );
    for name in &PROXY_VARS[..4] {
        assert_eq!(
            value(name).as_deref(),
            Some(proxy_url.as_str()),
            "{name} in {env:#?}"
        );
    }
    for name in &PROXY_VARS[4..] {
        let list = value(name).unwrap_or_else(|| panic!("{name} in {env:#?}"));
        for host in ["localhost", "127.0.0.1", "169.254.169.254"] {
            assert!(list.split(',').any(|h| h == host), "{name}={list}");
        }
    }
    for gone in ["VAULT_TOKEN", "VAULT_ADDR"] {
        assert!(
            !env.iter()
                .any(|line| line.to_ascii_uppercase().starts_with(&format!("{gone}="))),
            "the script saw {gone}: {env:#?}"
        );
    }
    let token = world.bao.root_token();
    assert!(!env.iter().any(|line| line.contains(&token)), "{env:#?}");

    let report = report(&wine, STATE);
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["script"]["exit_code"], 0);
    assert_no_leak(&run, &report, PASSWORD);
    assert_no_leak(&run, &report, &token);
}

#[test]
fn exit_codes_0_3010_and_1001_pass_through_errorlevel_and_the_report() {
    let wine = Wine::cached();
    for code in [0, 3010, 1001] {
        wine.set_powershell_exit(code);
        let run = run_file(&wine, &[]);
        assert_code(&run, code);
        let report = report(&wine, STATE);
        assert_eq!(report["exit_code"], code, "{report:#}");
        assert_eq!(report["script"]["exit_code"], code, "{report:#}");
        assert_eq!(report["script"]["route"], "file", "{report:#}");
        assert_eq!(report["script"]["url"], "file:///C:/agent/install.ps1");
    }
    let path = format!(r"{STATE}\script\install.ps1");
    assert_eq!(wine.powershell_runs(), vec![powershell_line(&path); 3]);
    assert_eq!(wine.powershell_script().as_deref(), Some(SCRIPT));
}

#[test]
fn a_wrong_proxy_password_is_77_with_one_line_naming_the_credential() {
    let world = World::new("not-the-password");
    let wine = Wine::cached();
    let run = world.run(&wine, &[]);

    assert_code(&run, 77);
    let errors = error_lines(&run);
    assert_eq!(errors.len(), 1, "exactly one error line:\n{run:#?}");
    assert!(
        errors[0].contains("407") && errors[0].contains("PROXY_PASS"),
        "{}",
        errors[0]
    );
    assert!(wine.powershell_runs().is_empty(), "nothing ran");
    assert_eq!(world.origin.hits("/install.ps1"), 0);
    let report = report(&wine, STATE);
    assert_eq!(report["exit_code"], 77);
    assert_no_leak(&run, &report, "not-the-password");
    assert_no_leak(&run, &report, &world.bao.root_token());
}

#[test]
fn once_runs_the_script_once_per_instance() {
    let wine = Wine::cached();
    let once = ["--once", "--instance-id", "i-0123456789abcdef0"];
    let first = run_file(&wine, &once);
    assert_code(&first, 0);
    let second = run_file(&wine, &once);
    assert_code(&second, 0);
    assert!(error_lines(&second).is_empty(), "{second:#?}");
    assert!(
        second
            .stderr
            .contains("already ran on instance i-0123456789abcdef0"),
        "{second:#?}"
    );
    let path = format!(r"{STATE}\script\install.ps1");
    assert_eq!(wine.powershell_runs(), [powershell_line(&path)], "ran once");
    let marker = wine.c_path(&format!(r"{STATE}\once\i-0123456789abcdef0"));
    assert!(marker.is_file(), "no marker at {}", marker.display());
}

#[test]
fn without_flags_the_config_tags_and_state_are_under_programdata() {
    let wine = Wine::cached();
    let home = wine.c_path(r"C:\ProgramData\tagstrap");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("tags"),
        "rs_agent:powershell_url=file:///C:/agent/install.ps1\n",
    )
    .unwrap();
    std::fs::write(home.join("config.toml"), "deadline = \"42\"\n").unwrap();
    let script = wine.c_path(r"C:\agent\install.ps1");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(&script, SCRIPT).unwrap();
    wine.set_powershell_exit(3010);

    let plan = wine.tagstrap(&["plan", "--source", "none"], &[]);
    assert_code(&plan, 0);
    // The tag from the default tags file, the deadline from the default
    // config file, the default state dir.
    for needle in [
        r"C:\ProgramData\tagstrap\tags",
        "file:///C:/agent/install.ps1",
        "deadline 42 s",
        r"C:\ProgramData\tagstrap\state",
    ] {
        assert!(
            plan.stdout.contains(needle),
            "plan lacks {needle:?}:\n{plan:#?}"
        );
    }

    let run = wine.tagstrap(&["run", "--source", "none"], &[]);
    assert_code(&run, 3010);
    let state = r"C:\ProgramData\tagstrap\state";
    assert_eq!(
        wine.powershell_runs(),
        [powershell_line(&format!(r"{state}\script\install.ps1"))]
    );
    let report = report(&wine, state);
    assert_eq!(report["exit_code"], 3010);
    assert_eq!(report["script"]["tag"], "rs_agent:powershell_url");
    // The state went to the default place only.
    assert!(!wine.c_path(STATE).exists());
}
