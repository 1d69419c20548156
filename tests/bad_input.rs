//! Every bad input: the exit code of SPEC §5, one clear error line, nothing
//! run, nothing leaked. The script these tests point at would leave a file
//! behind if it ever ran.

mod common;

use common::{sha256_hex, write_file, Tagstrap, Witness};

const PASSWORD: &str = "hunter2-p@ss:/%w0rd";

fn run_with(tags: &[(&str, &str)]) -> (common::Run, Witness) {
    let witness = Witness::new();
    let mut t = Tagstrap::new("run").tag("rs_agent:mime_shellscript", &witness.url());
    for (k, v) in tags {
        t = t.tag(k, v);
    }
    (t.run(), witness)
}

#[test]
fn the_witness_runs_when_nothing_is_wrong() {
    let (run, witness) = run_with(&[]);
    run.assert_success();
    assert!(
        witness.ran(),
        "otherwise the 'nothing ran' checks prove nothing"
    );
}

#[test]
fn a_plain_text_password_tag_is_refused_and_never_shown() {
    let (run, witness) = run_with(&[
        ("rs_agent:http_proxy", "proxy.test:3128"),
        ("rs_agent:http_proxy_user", "svc"),
        ("rs_agent:http_proxy_password", PASSWORD),
    ]);
    run.assert_error(
        65,
        "rs_agent:http_proxy_password (--tag): a proxy password must never be readable as a tag",
    )
    .assert_no_leak(PASSWORD);
    assert!(!witness.ran());
    // The report lists the tags, with the refused value hidden.
    let report = run.report_json();
    assert_eq!(report["exit_code"], 65);
    assert!(report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["value"] == "***"));
}

#[test]
fn unsupported_proxy_schemes_are_refused() {
    for proxy in [
        "socks5://p:1080",
        "socks5h://p:1080",
        "socks4://p:1080",
        "socks4a://p:1080",
    ] {
        let (run, witness) = run_with(&[("rs_agent:http_proxy", proxy)]);
        run.assert_error(65, "is not supported");
        assert!(!witness.ran(), "{proxy}");
    }
    let (run, witness) = run_with(&[("rs_agent:http_proxy", "http://wpad.corp/wpad.dat")]);
    run.assert_error(65, "proxy auto-config");
    assert!(!witness.ran());
}

#[test]
fn malformed_proxy_urls_are_refused_without_echoing_credentials() {
    for (proxy, needle) in [
        ("proxy.test", "no port"),
        ("http://proxy.test:99999", "1 to 65535"),
        ("http://proxy.test:3128/path", "no path"),
        ("::1:3128", "brackets"),
    ] {
        let (run, witness) = run_with(&[("rs_agent:http_proxy", proxy)]);
        run.assert_error(65, needle);
        assert!(!witness.ran(), "{proxy}");
    }
    let encoded = &common::secret_forms(PASSWORD)[1];
    let (run, _) = run_with(&[(
        "rs_agent:http_proxy",
        &format!("http://u:{encoded}@proxy.test"),
    )]);
    run.assert_error(65, "no port").assert_no_leak(PASSWORD);
}

#[test]
fn user_and_password_come_together_and_only_with_a_proxy() {
    let (run, witness) = run_with(&[
        ("rs_agent:http_proxy", "p:1"),
        ("rs_agent:http_proxy_user", "svc"),
    ]);
    run.assert_error(
        65,
        "rs_agent:http_proxy_user (--tag): is set without rs_agent:http_proxy_password",
    );
    assert!(!witness.ran());
    let (run, _) = run_with(&[
        ("rs_agent:http_proxy", "p:1"),
        ("rs_agent:http_proxy_password", "cred:P"),
    ]);
    run.assert_error(65, "is set without rs_agent:http_proxy_user");
    let (run, _) = run_with(&[
        ("rs_agent:http_proxy_user", "svc"),
        ("rs_agent:http_proxy_password", "cred:P"),
    ]);
    run.assert_error(65, "but rs_agent:http_proxy is not");
}

#[test]
fn control_characters_in_tags_are_refused() {
    let (run, witness) = run_with(&[("rs_agent:type", "lite\u{1b}[2J")]);
    run.assert_error(65, "control character U+001B");
    assert!(!witness.ran());

    let witness = Witness::new();
    let dir = tempfile::tempdir().unwrap();
    let tags = write_file(
        dir.path(),
        "tags",
        &format!(
            "rs_agent:mime_shellscript={}\nrs_agent:http_no_proxy=a\rb\n",
            witness.url()
        ),
    );
    let run = Tagstrap::new("run").arg("--tags-file").arg(&tags).run();
    run.assert_error(65, &format!("{}:2", tags.display()));
    assert!(!witness.ran());
}

#[test]
fn script_urls_must_use_an_allowed_scheme() {
    for (url, needle) in [
        ("ftp://repo.test/install.sh", "not allowed"),
        (
            "http://repo.test/install.sh",
            "http:// without rs_agent:mime_shellscript_sha256",
        ),
        ("https://user:pw@repo.test/install.sh", "holds a password"),
        ("file://fileserver/share/install.sh", "absolute local path"),
    ] {
        let run = Tagstrap::new("run")
            .tag("rs_agent:mime_shellscript", url)
            .run();
        run.assert_error(65, needle);
        assert!(run.report_json()["script"].is_null(), "{url}");
    }
}

#[test]
fn a_checksum_mismatch_runs_nothing() {
    let (run, witness) = run_with(&[("rs_agent:mime_shellscript_sha256", &"ab".repeat(32))]);
    run.assert_error(65, "does not match its pin");
    assert!(!witness.ran());
    assert!(
        !run.state.path().join("state/script/install").exists(),
        "no runnable file is left"
    );

    let witness = Witness::new();
    let good = sha256_hex(&witness.bytes());
    let run = Tagstrap::new("run")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .tag("rs_agent:mime_shellscript_sha256", &good.to_uppercase())
        .run();
    run.assert_success();
    assert!(
        witness.ran(),
        "a matching pin (in either case) runs the script"
    );
}

#[test]
fn a_malformed_pin_is_refused() {
    let (run, witness) = run_with(&[("rs_agent:mime_shellscript_sha256", "1234")]);
    run.assert_error(65, "64 hexadecimal digits");
    assert!(!witness.ran());
}

#[test]
fn an_oversized_script_runs_nothing() {
    let witness = Witness::new();
    let run = Tagstrap::new("run")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .arg("--max-script-bytes")
        .arg("10")
        .run();
    run.assert_error(65, "larger than --max-script-bytes (10 bytes)");
    assert!(!witness.ran());
}

#[test]
fn no_script_tag_means_nothing_to_run() {
    let run = Tagstrap::new("run").tag("rs_agent:type", "lite").run();
    run.assert_error(65, "no rs_agent:mime_shellscript tag names a script");
}

#[test]
fn conflicting_script_tags_are_refused() {
    let (run, witness) = run_with(&[("rs_agent:hashbang_shellscript", "https://other.test/x.sh")]);
    run.assert_error(65, "disagrees with");
    assert!(!witness.ran());
}

#[test]
fn a_missing_local_script_or_tags_file_is_not_found() {
    let run = Tagstrap::new("run")
        .tag(
            "rs_agent:mime_shellscript",
            "file:///nonexistent/install.sh",
        )
        .run();
    run.assert_error(66, "does not exist on this image");
    let run = Tagstrap::new("run")
        .arg("--tags-file")
        .arg("/nonexistent/tags")
        .run();
    run.assert_error(66, "tags file /nonexistent/tags does not exist");
}

#[test]
fn a_credential_without_a_store_is_a_configuration_error() {
    let (run, witness) = run_with(&[
        ("rs_agent:http_proxy", "proxy.test:3128"),
        ("rs_agent:http_proxy_user", "svc"),
        ("rs_agent:http_proxy_password", "cred:PROXY_PASS"),
    ]);
    run.assert_error(78, "no credential store is configured");
    assert!(!witness.ran());
}

#[test]
fn bad_command_lines_are_exit_64() {
    let run = Tagstrap::new("run").arg("--no-such-flag").run();
    assert_eq!(run.code, 64, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert!(run.stderr.contains("--no-such-flag"));

    let run = Tagstrap::new("run").arg("--deadline").arg("soon").run();
    run.assert_error(64, "--deadline: \"soon\" is not a number of seconds");
    let run = Tagstrap::new("run")
        .arg("--tag")
        .arg("no-equals-sign")
        .run();
    run.assert_error(64, "expected KEY=VALUE");
    let run = Tagstrap::new("run")
        .env("TAGSTRAP_MAX_SCRIPT_BYTES", "lots")
        .run();
    run.assert_error(64, "$TAGSTRAP_MAX_SCRIPT_BYTES");
    let run = Tagstrap::new("run").arg("--source").arg("mars").run();
    assert_eq!(run.code, 64);
}

#[test]
fn a_bad_config_file_is_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "config.toml",
        "deadline = 10\nno_such_key = true\n",
    );
    let run = Tagstrap::new("run").arg("--config").arg(&config).run();
    run.assert_error(78, "line 2");
    let config = write_file(dir.path(), "config2.toml", "max_script_bytes = \"huge\"\n");
    let run = Tagstrap::new("run").arg("--config").arg(&config).run();
    run.assert_error(78, "max_script_bytes in");
}

#[test]
fn an_unwritable_state_dir_is_exit_73() {
    let witness = Witness::new();
    let run = Tagstrap::new("run")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .arg("--state-dir")
        .arg("/proc/self/tagstrap")
        .run();
    run.assert_error(73, "--state-dir");
    assert!(!witness.ran());
}

#[test]
fn a_bad_ca_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = write_file(dir.path(), "ca.pem", "hello\n");
    let (witness, run) = {
        let witness = Witness::new();
        let run = Tagstrap::new("run")
            .tag("rs_agent:mime_shellscript", &witness.url())
            .arg("--ca-file")
            .arg(&not_pem)
            .run();
        (witness, run)
    };
    run.assert_error(65, "holds no PEM certificate");
    assert!(!witness.ran());
}

/// An entry of `rs_agent:http_no_proxy` that curl would read as matching
/// nothing, though it plainly means something, stops the run before
/// anything is fetched, saying what to write (SPEC §4: the script's tools
/// must read the list as tagstrap does).
#[test]
fn no_proxy_entries_curl_reads_as_nothing_are_refused_saying_what_to_write() {
    for (list, needle) in [
        ("*.corp", "write .corp"),
        (".corp,*", "`*` means every host only as the whole list"),
        ("proxy.corp:8080", "write proxy.corp"),
        ("[2001:db8::1]", "write 2001:db8::1"),
        ("10.0.0.5.", "write 10.0.0.5"),
        ("10.1.2", "a part of an address"),
        ("a.corp b.corp", "separate entries with commas"),
        ("10.0.0.0/33", "outside 0..=32"),
        ("bücher.example", "xn--bcher-kva.example"),
    ] {
        let (run, witness) = run_with(&[
            ("rs_agent:http_proxy", "proxy.test:3128"),
            ("rs_agent:http_no_proxy", list),
        ]);
        run.assert_error(65, "rs_agent:http_no_proxy (--tag): no-proxy entry")
            .assert_error(65, needle);
        assert!(!witness.ran(), "{list}");
    }
}
