//! The commands other than `run`: `tags` and `plan` show what tagstrap
//! resolved and where it came from; `--help` and `--version` answer.

mod common;

use common::{write_file, Tagstrap};

#[test]
fn tags_shows_each_value_with_its_origin_and_what_it_overrode() {
    let dir = tempfile::tempdir().unwrap();
    let image = write_file(
        dir.path(),
        "image.tags",
        "# image\nrs_agent:http_proxy=image-proxy:3128\nrs_agent:type=lite\nName=not-ours\n",
    );
    let run = Tagstrap::new("tags")
        .arg("--tags-file")
        .arg(&image)
        .tag("rs_agent:http_proxy", "cli-proxy:8080")
        .tag("rs_agent:http_proxy_password", "plain-text-secret")
        .run();
    run.assert_success();
    let proxy = run
        .stdout
        .lines()
        .find(|l| l.starts_with("rs_agent:http_proxy "))
        .unwrap();
    assert!(proxy.contains("= cli-proxy:8080"), "{proxy}");
    assert!(proxy.contains("(--tag) overrides"), "{proxy}");
    assert!(proxy.contains(&format!("{}:2", image.display())), "{proxy}");
    let kind = run
        .stdout
        .lines()
        .find(|l| l.starts_with("rs_agent:type"))
        .unwrap();
    assert!(kind.contains(&format!("({}:3)", image.display())), "{kind}");
    assert!(
        !run.stdout.contains("Name"),
        "keys outside rs_agent: are not tagstrap's"
    );
    assert!(
        run.stderr.contains("does not start with rs_agent:"),
        "a person's typo is warned about"
    );
    run.assert_no_leak("plain-text-secret");
}

#[test]
fn plan_shows_the_environment_the_script_would_get() {
    let run = Tagstrap::new("plan")
        .tag(
            "rs_agent:http_proxy",
            "http://svc:url-secret@proxy.test:3128",
        )
        .tag("rs_agent:http_no_proxy", ".corp,10.0.0.0/8")
        .tag(
            "rs_agent:mime_shellscript",
            "https://repo.corp/install.sh?X-Sig=sig-secret",
        )
        .run();
    run.assert_success()
        .assert_no_leak("url-secret")
        .assert_no_leak("sig-secret");
    for expected in [
        "proxy:     http://proxy.test:3128 (from rs_agent:http_proxy (--tag))",
        "no_proxy:  localhost,127.0.0.1,::1,[::1],169.254.169.254,corp,.corp,10.0.0.0/8",
        "script:    https://repo.corp/install.sh?X-Sig=… (rs_agent:mime_shellscript, --tag)",
        "route:     direct (matches no_proxy)",
        "sha256:    not pinned",
        "  https_proxy=http://svc:***@proxy.test:3128",
        "  NO_PROXY=localhost,127.0.0.1,::1,[::1],169.254.169.254,corp,.corp,10.0.0.0/8",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected:?} in:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stderr.contains("holds credentials in its URL"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_system_proxy_is_the_fallback() {
    let run = Tagstrap::new("plan")
        .env("HTTPS_PROXY", "http://sys-proxy.test:3128/")
        .env("no_proxy", ".internal")
        .tag("rs_agent:mime_shellscript", "https://repo.test/install.sh")
        .run();
    run.assert_success();
    assert!(
        run.stdout
            .contains("proxy:     http://sys-proxy.test:3128 (from $HTTPS_PROXY)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(",.internal"), "{}", run.stdout);
}

#[test]
fn help_and_version_answer_with_exit_0() {
    let run = Tagstrap::new("run").run_as("--version");
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("tagstrap "), "{}", run.stdout);
    let run = Tagstrap::new("run").arg("--help").run();
    assert_eq!(run.code, 0);
    for needle in [
        "--tags-file",
        "TAGSTRAP_DEADLINE",
        "Exit codes:",
        "77  refused",
    ] {
        assert!(
            run.stdout.contains(needle),
            "--help lacks {needle}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn once_runs_the_script_once_per_instance_and_only_marks_success() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let exit_code = dir.path().join("exit");
    std::fs::write(&exit_code, "3").unwrap();
    let script = write_file(
        dir.path(),
        "install.sh",
        &format!(
            "#!/bin/sh\necho x >> '{}'\nexit \"$(cat '{}')\"\n",
            counter.display(),
            exit_code.display()
        ),
    );
    let state = tempfile::tempdir().unwrap();
    let run = |instance: &str| {
        Tagstrap::new("run")
            .tag(
                "rs_agent:mime_shellscript",
                &format!("file://{}", script.display()),
            )
            .arg("--state-dir")
            .arg(state.path())
            .arg("--once")
            .arg("--instance-id")
            .arg(instance)
            .run()
    };
    let runs = || {
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count()
    };

    assert_eq!(run("i-0abc").code, 3, "a failing script");
    assert_eq!(runs(), 1);
    std::fs::write(&exit_code, "0").unwrap();
    run("i-0abc").assert_success();
    assert_eq!(
        runs(),
        2,
        "a failure leaves no marker: the next boot tries again"
    );
    let skipped = run("i-0abc");
    skipped.assert_success();
    assert_eq!(runs(), 2, "the same instance does not run it again");
    assert!(
        skipped.stderr.contains("already ran on instance i-0abc"),
        "{}",
        skipped.stderr
    );
    run("i-0def").assert_success();
    assert_eq!(runs(), 3, "a new instance runs it");
}

/// `run --write-env` with the password from systemd credentials and a
/// witness that checks the proxy URL it gets.
fn write_env_run(creds: &std::path::Path, path: &std::path::Path) -> (Tagstrap, common::Witness) {
    let witness = common::Witness::expecting_proxy("proxy.test:3128", "svc", "p@ss:/%w0rd");
    let t = Tagstrap::new("run")
        .tag("rs_agent:http_proxy", "proxy.test:3128")
        .tag("rs_agent:http_proxy_user", "svc")
        .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
        .tag("rs_agent:http_no_proxy", ".corp")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .env("CREDENTIALS_DIRECTORY", creds)
        .arg("--write-env")
        .arg(path);
    (t, witness)
}

#[cfg(unix)]
#[test]
fn write_env_leaves_a_private_file_that_sh_reads_as_the_script_got_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    common::write_secret(&creds, "PROXY_PASS", "p@ss:/%w0rd", 0o400);
    let path = dir.path().join("proxy.env");

    let (t, witness) = write_env_run(&creds, &path);
    let run = t.arg("--once").arg("--instance-id").arg("i-1").run();
    run.assert_success().assert_no_leak("p@ss:/%w0rd");
    assert!(witness.ran());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(run.report_json()["env_file"], path.display().to_string());

    let expected = "http://svc:p%40ss%3A%2F%25w0rd@proxy.test:3128";
    for name in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "set -a; . '{}'; printf %s \"${name}\"",
                path.display()
            ))
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{name}");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("NO_PROXY='localhost,127.0.0.1,::1,[::1],169.254.169.254,corp,.corp'\n"),
        "{text}"
    );

    // A later boot of the same instance runs nothing but writes the file
    // again: later stages read it on every boot.
    std::fs::remove_file(&path).unwrap();
    let (t, witness) = write_env_run(&creds, &path);
    let state = run.state.path().join("state");
    let again = t
        .arg("--once")
        .arg("--instance-id")
        .arg("i-1")
        .arg("--state-dir")
        .arg(&state)
        .run();
    again.assert_success();
    assert!(!witness.ran(), "--once: not again");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn write_env_to_a_place_that_cannot_be_written_is_73_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    common::write_secret(&creds, "PROXY_PASS", "p@ss:/%w0rd", 0o400);
    let (t, witness) = write_env_run(&creds, &dir.path().join("missing/proxy.env"));
    let run = t.run();
    run.assert_error(73, "--write-env")
        .assert_no_leak("p@ss:/%w0rd");
    assert!(
        run.error_lines()[0].contains("does not exist"),
        "{}",
        run.stderr
    );
    assert!(!witness.ran());
}

/// An entry some of the script's clients cannot read is named once by each
/// command that shows the list, with the clients that will not honour it
/// (`clients`, for tools reading `--log-format json`) and what to add. The
/// image's own `no_proxy` is read as curl reads it: what curl ignores is
/// ignored with a warning, not refused.
#[test]
fn run_plan_and_doctor_each_name_an_entry_some_clients_cannot_read_once() {
    let witness = common::Witness::new();
    for command in ["run", "plan", "doctor"] {
        let run = Tagstrap::new(command)
            .arg("--log-format")
            .arg("json")
            .tag("rs_agent:http_proxy", "127.0.0.1:9")
            .tag("rs_agent:http_no_proxy", "10.0.0.0/8,fd00::/8,.corp")
            .tag("rs_agent:mime_shellscript", &witness.url())
            .run();
        let warnings: Vec<serde_json::Value> = run
            .stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("no_proxy_entry").is_some())
            .collect();
        if command == "doctor" {
            // doctor says it among its steps, once, rather than in the log.
            assert!(warnings.is_empty(), "{}", run.stderr);
            let lines: Vec<&str> = run
                .stdout
                .lines()
                .filter(|l| l.starts_with("warn  no_proxy     no-proxy entry "))
                .collect();
            assert_eq!(lines.len(), 2, "{}", run.stdout);
            assert!(lines[0].contains("10.0.0.0/8") && lines[0].contains("such as 10.0.0.1"));
            assert!(lines[1].contains("fd00::/8") && lines[1].contains("requests"));
            continue;
        }
        let named: Vec<(&str, &str)> = warnings
            .iter()
            .map(|w| {
                (
                    w["no_proxy_entry"].as_str().unwrap(),
                    w["clients"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("10.0.0.0/8", "curl<7.86,wget,urllib"),
                ("fd00::/8", "curl<8.18,wget,urllib,requests"),
            ],
            "{command}:\n{}",
            run.stderr
        );
        assert!(
            warnings[0]["message"]
                .as_str()
                .unwrap()
                .contains("such as 10.0.0.1"),
            "{command}: what to add"
        );
    }

    let run = Tagstrap::new("plan")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("no_proxy", "*.corp,.good.corp")
        .tag("rs_agent:mime_shellscript", "https://a.corp/install.sh")
        .run();
    run.assert_success();
    assert!(
        run.stdout.contains(
            "no_proxy:  localhost,127.0.0.1,::1,[::1],169.254.169.254,good.corp,.good.corp\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("route:     through the proxy 127.0.0.1:9"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains(
            "$no_proxy: no-proxy entry \"*.corp\" is read by curl as a name that matches no \
             host: write .corp; ignored, as curl ignores it"
        ),
        "{}",
        run.stderr
    );
}
