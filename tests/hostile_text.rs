//! Hostile text in tags, paths and instance IDs (SPEC §1, §8): a value that
//! holds a control character or a Unicode format character is refused (65)
//! with the code point named, and nothing from outside is ever printed raw,
//! so no value can forge a log line, start a line of `plan` or `tags`, or
//! make a line read differently from its bytes.
//!
//! The checks here are written independently of tagstrap's own
//! `util::text`: a line is clean when it holds no `char::is_control`
//! character and none of the format and separator characters below.

mod common;

use common::{write_file, Run, Tagstrap, Witness};

/// Format (Cf) and separator (Zl, Zp) characters these tests plant, and
/// others of the same kinds that a clean line must not hold either.
const INVISIBLE: &[char] = &[
    '\u{ad}',
    '\u{200b}',
    '\u{200c}',
    '\u{200d}',
    '\u{200e}',
    '\u{200f}',
    '\u{202a}',
    '\u{202b}',
    '\u{202c}',
    '\u{202d}',
    '\u{202e}',
    '\u{2028}',
    '\u{2029}',
    '\u{2060}',
    '\u{2066}',
    '\u{2067}',
    '\u{2068}',
    '\u{2069}',
    '\u{feff}',
    '\u{e0041}',
];

fn raw_char(line: &str) -> Option<char> {
    line.chars()
        .find(|c| c.is_control() || INVISIBLE.contains(c))
}

/// Every line of stdout is clean, and every line of stderr is a whole log
/// event: it starts with the text format's timestamp (`2026-…T…Z`), or is
/// a JSON object, and is clean.
fn assert_every_line_clean(run: &Run, json: bool) {
    for line in run.stdout.lines() {
        assert_eq!(raw_char(line), None, "raw character on stdout: {line:?}");
    }
    for line in run.stderr.lines() {
        assert_eq!(raw_char(line), None, "raw character on stderr: {line:?}");
        if json {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON event per line ({e}): {line:?}"));
            assert!(event.get("level").is_some(), "{line:?}");
        } else {
            let stamp = line.get(..11).unwrap_or("");
            assert!(
                stamp.len() == 11
                    && stamp[..4].bytes().all(|b| b.is_ascii_digit())
                    && stamp.as_bytes()[4] == b'-'
                    && stamp.as_bytes()[10] == b'T',
                "a stderr line that does not start with a timestamp: {line:?}\n{}",
                run.stderr
            );
        }
    }
    // The report is JSON: every string in it, decoded, is clean.
    if !run.report().is_empty() {
        let mut strings = Vec::new();
        collect_strings(&run.report_json(), &mut strings);
        for s in strings {
            assert_eq!(raw_char(&s), None, "raw character in the report: {s:?}");
        }
    }
}

fn collect_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            collect_strings(v, out)
        }),
        _ => {}
    }
}

/// A value for each kind of tag, each holding `bad` somewhere in its middle.
fn tagged_values(bad: char) -> Vec<(&'static str, String)> {
    vec![
        ("rs_agent:http_proxy", format!("proxy{bad}.test:3128")),
        ("rs_agent:http_proxy_user", format!("svc{bad}user")),
        (
            "rs_agent:http_proxy_password",
            format!("cred:PROXY{bad}PASS"),
        ),
        ("rs_agent:http_no_proxy", format!(".corp,exa{bad}mple.com")),
        (
            "rs_agent:mime_shellscript",
            format!("https://repo.test/in{bad}stall.sh"),
        ),
        (
            "rs_agent:hashbang_shellscript",
            format!("https://h/a{bad}b"),
        ),
        ("rs_agent:mime_include_url", format!("https://h/a{bad}b")),
        ("rs_agent:powershell_url", format!("https://h/a{bad}.ps1")),
        (
            "rs_agent:mime_shellscript_sha256",
            format!("{}{bad}a", "a".repeat(62)),
        ),
        (
            "rs_agent:powershell_sha256",
            format!("b{bad}{}", "b".repeat(63)),
        ),
        ("rs_agent:type", format!("right_link{bad}lite")),
        ("rs_agent:some_future_key", format!("x{bad}y")),
    ]
}

#[test]
fn format_characters_in_every_kind_of_tag_value_are_refused_and_named() {
    for bad in ['\u{202e}', '\u{200b}', '\u{2066}', '\u{feff}', '\u{2028}'] {
        let named = format!("U+{:04X}", bad as u32);
        for (key, value) in tagged_values(bad) {
            for via_file in [false, true] {
                let witness = Witness::new();
                let mut t = Tagstrap::new("run");
                if via_file {
                    let dir = t.state.path().to_path_buf();
                    let file = write_file(&dir, "hostile.tags", &format!("{key}={value}\n"));
                    t = t.arg("--tags-file").arg(file);
                } else {
                    t = t.tag(key, &value);
                }
                // The witness's tag comes last on the command line, so it
                // overrides a hostile script tag: the refusal must come from
                // the hostile value itself, wherever it sits.
                let run = t.tag("rs_agent:mime_shellscript", &witness.url()).run();
                run.assert_error(65, &named);
                assert!(run.error_lines()[0].contains(key), "{}", run.stderr);
                assert!(!witness.ran(), "{key}: the script ran");
                assert_every_line_clean(&run, false);
            }
        }
    }
}

#[test]
fn control_characters_in_tag_values_are_refused_on_one_line() {
    // \n cannot sit inside a tags-file value (it ends the line), so those go
    // through --tag; \r, \t and ESC through both.
    for bad in ['\n', '\r', '\t', '\u{1b}', '\u{7f}', '\u{85}'] {
        let named = format!("U+{:04X}", bad as u32);
        for (key, value) in tagged_values(bad) {
            let witness = Witness::new();
            let run = Tagstrap::new("run")
                .tag(key, &value)
                .tag("rs_agent:mime_shellscript", &witness.url())
                .run();
            run.assert_error(65, &named);
            assert!(!witness.ran());
            assert_every_line_clean(&run, false);
            if bad != '\n' {
                let t = Tagstrap::new("plan");
                let file = write_file(t.state.path(), "t.tags", &format!("{key}={value}\n"));
                let run = t.arg("--tags-file").arg(file).run();
                run.assert_error(65, &named);
                assert_every_line_clean(&run, false);
            }
        }
    }
}

#[test]
fn a_hostile_key_is_refused_without_being_printed_raw() {
    for key in [
        "rs_agent:ty\u{1b}[2Jpe",
        "rs_agent:x\u{202e}y",
        "rs_agent:a\rb",
    ] {
        for json in [false, true] {
            let t = Tagstrap::new("tags");
            let file = write_file(t.state.path(), "t.tags", &format!("{key}=v\n"));
            let mut t = t.arg("--tags-file").arg(file);
            if json {
                t = t.arg("--log-format").arg("json");
            }
            let run = t.run();
            assert_eq!(run.code, 65, "{key:?}\n{}", run.stderr);
            assert_every_line_clean(&run, json);
        }
    }
}

#[test]
fn a_file_script_path_with_control_characters_is_shown_escaped_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    // A real file whose name holds a newline, ESC and a carriage return.
    let name = "in\nstall\u{1b}[2J\r.sh";
    let ran = dir.path().join("ran");
    let script = write_file(
        dir.path(),
        name,
        &format!("#!/bin/sh\ntouch '{}'\n", ran.display()),
    );
    let url = format!("file://{}/in%0Astall%1B[2J%0D.sh", dir.path().display());
    assert!(script.exists());

    let plan = Tagstrap::new("plan")
        .tag("rs_agent:mime_shellscript", &url)
        .run();
    plan.assert_success();
    assert_every_line_clean(&plan, false);
    assert!(
        plan.stdout.contains("in\\u{a}stall\\u{1b}[2J\\u{d}.sh"),
        "{}",
        plan.stdout
    );

    for json in [false, true] {
        let mut t = Tagstrap::new("run").tag("rs_agent:mime_shellscript", &url);
        if json {
            t = t.arg("--log-format").arg("json");
        }
        let run = t.run();
        run.assert_success();
        assert!(ran.exists(), "the script with the odd name ran");
        std::fs::remove_file(&ran).unwrap();
        assert_every_line_clean(&run, json);
    }

    // Missing: one error line, the path escaped.
    let missing = Tagstrap::new("run")
        .tag(
            "rs_agent:mime_shellscript",
            &format!("file://{}/no%0AINFO%20forged.sh", dir.path().display()),
        )
        .run();
    missing.assert_error(66, "no\\u{a}INFO forged.sh");
    assert_every_line_clean(&missing, false);
}

#[test]
fn an_instance_id_with_control_characters_never_forges_a_line() {
    let witness = Witness::new();
    let t = Tagstrap::new("run")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .arg("--once")
        .arg("--instance-id")
        .arg("i-1\n2026-01-01T00:00:00.000000Z  INFO forged\u{1b}[2J\t\r");
    let state = t.state_dir();
    let first = t.run();
    first.assert_success();
    assert!(witness.ran());
    assert_every_line_clean(&first, false);
    // The same ID again: the marker is found, and the skip message is clean.
    let again = Tagstrap::new("run")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .arg("--state-dir")
        .arg(&state)
        .arg("--once")
        .arg("--instance-id")
        .arg("i-1\n2026-01-01T00:00:00.000000Z  INFO forged\u{1b}[2J\t\r")
        .run();
    again.assert_success();
    assert!(again.stderr.contains("already ran"), "{}", again.stderr);
    assert_every_line_clean(&again, false);
    for json in [false, true] {
        let mut t = Tagstrap::new("plan")
            .tag("rs_agent:mime_shellscript", &witness.url())
            .arg("--once")
            .arg("--instance-id")
            .arg("i-\u{202e}1\n");
        if json {
            t = t.arg("--log-format").arg("json");
        }
        let plan = t.run();
        plan.assert_success();
        assert_every_line_clean(&plan, json);
    }
}

#[test]
fn operator_paths_with_control_characters_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, code) in [("--tags-file", 66), ("--config", 78), ("--ca-file", 66)] {
        let path = dir
            .path()
            .join("a\n2026-01-01T00:00:00Z  INFO forged\u{202e}");
        let run = Tagstrap::new("run")
            .tag("rs_agent:mime_shellscript", "https://h/i.sh")
            .arg(flag)
            .arg(&path)
            .run();
        run.assert_error(code, "a\\u{a}2026");
        assert_every_line_clean(&run, false);
    }
}

#[test]
fn a_pin_with_a_sign_is_refused() {
    let witness = Witness::new();
    let pin = common::sha256_hex(&witness.bytes());
    let signed = format!("+{}", &pin[1..]);
    let run = Tagstrap::new("run")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .tag("rs_agent:mime_shellscript_sha256", &signed)
        .run();
    run.assert_error(65, "64 hexadecimal digits");
    assert!(!witness.ran());
    // The real pin runs it: the refusal was the sign, not the witness.
    let ok = Tagstrap::new("run")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .tag("rs_agent:mime_shellscript_sha256", &pin)
        .run();
    ok.assert_success();
    assert!(witness.ran());
}

#[test]
fn a_host_holding_a_format_character_is_refused_wherever_it_comes_from() {
    let zwsp = "exa\u{200b}mple.com";
    let witness = Witness::new();
    let from_env = Tagstrap::new("run")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .env("https_proxy", format!("http://{zwsp}:3128"))
        .run();
    from_env.assert_error(65, "U+200B");
    assert!(
        from_env.error_lines()[0].contains("$https_proxy"),
        "{}",
        from_env.stderr
    );
    assert!(!witness.ran());
    assert_every_line_clean(&from_env, false);

    let endpoint = Tagstrap::new("tags")
        .arg("--source")
        .arg("aws")
        .arg("--metadata-endpoint")
        .arg(format!("http://{zwsp}/"))
        .run();
    endpoint.assert_error(
        64,
        "--metadata-endpoint: the URL holds the Unicode format character U+200B",
    );
    assert_every_line_clean(&endpoint, false);
}
