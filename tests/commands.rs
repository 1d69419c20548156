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
        "no_proxy:  localhost,127.0.0.1,::1,169.254.169.254,.corp,10.0.0.0/8",
        "script:    https://repo.corp/install.sh?X-Sig=… (rs_agent:mime_shellscript, --tag)",
        "route:     direct (matches no_proxy)",
        "sha256:    not pinned",
        "  https_proxy=http://svc:***@proxy.test:3128",
        "  NO_PROXY=localhost,127.0.0.1,::1,169.254.169.254,.corp,10.0.0.0/8",
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
