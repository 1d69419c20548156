//! A hostile metadata service, end to end: the real `tagstrap` binary
//! against testkit's `FakeMetadata` for each cloud, serving a tag key, a
//! tag value or an instance ID that holds a newline, a carriage return, a
//! tab or ESC, or a `file://` script URL whose path decodes to them, through
//! `tagstrap tags`, `plan` and `run`; and, for CloudStack, a hostile
//! user-data (huge, cut short, two tags parts, a plain password tag).
//!
//! Each of those characters lets a value forge a log line (a second line
//! with its own timestamp and `INFO`) or rewrite the terminal. What is
//! asserted: the exit code (65 where a key or value is refused, which
//! nothing ran after; the others run or plan normally), and that no line of
//! stdout or stderr holds a raw control or format character, and every
//! stderr line starts with the log format's timestamp. The check is written
//! here on its own, not with tagstrap's `forbidden_char`, so that a mistake
//! there cannot hide one here; and the messages themselves must be clean,
//! whatever a guard in the log writer would add.

mod common;

use std::path::Path;

use common::{Run, Tagstrap, Witness};
use testkit::metadata::cloudstack::multipart;
use testkit::metadata::{Cloud, FakeMetadata, FakeMetadataBuilder};

/// The characters tried, with their names for messages.
const HOSTILE: [(char, &str); 4] = [
    ('\n', "newline"),
    ('\r', "carriage return"),
    ('\t', "tab"),
    ('\u{1b}', "ESC"),
];

/// What a forged line would look like, after the hostile character.
const FORGED: &str = "2026-01-01T00:00:00.000000Z  INFO forged";

/// A character no person should get raw: the C0 and C1 controls and DEL
/// (`char::is_control`), and the format and separator characters that
/// change how a line reads (bidirectional controls, zero-width characters,
/// the BOM, the soft hyphen, U+2028/U+2029).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

/// `2026-12-01T09:28:00.123456Z`: how the text log format starts a line.
fn starts_with_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() > 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
}

/// Every line of stdout and stderr is clean, and every stderr line is one
/// log line of tagstrap's: nothing was split off into a line of its own.
fn assert_clean(run: &Run, what: &str) {
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        // Split at '\n' only: `lines()` would drop a '\r' before it.
        for line in text.split('\n') {
            if let Some(c) = line.chars().find(|&c| is_hidden(c)) {
                panic!(
                    "{what}: {stream} holds U+{:04X} raw in the line {:?}\nstdout:\n{}\nstderr:\n{}",
                    c as u32, line, run.stdout, run.stderr
                );
            }
        }
    }
    for line in run.stderr.split('\n').filter(|l| !l.is_empty()) {
        assert!(
            starts_with_timestamp(line),
            "{what}: a stderr line that is not a log line of its own: {line:?}\nstderr:\n{}",
            run.stderr
        );
    }
}

fn fake(cloud: Cloud) -> FakeMetadataBuilder {
    FakeMetadata::builder(cloud)
}

/// `tags`, `plan` and `run` against one fake, each checked for clean output
/// and the exit code; `run` also for whether the script ran.
fn through_every_command(fake: &FakeMetadata, witness: &Witness, code: i32, what: &str) {
    for subcommand in ["tags", "plan", "run"] {
        let what = format!("{what}, tagstrap {subcommand}");
        let run = Tagstrap::against(subcommand, fake).run();
        assert_clean(&run, &what);
        if code == 0 {
            run.assert_success();
        } else {
            run.assert_error(code, "remove it");
        }
        if subcommand == "run" {
            assert_eq!(witness.ran(), code == 0, "{what}: ran\n{}", run.stderr);
        }
    }
}

/// A tag key holding the character: refused (65), named by code point.
/// IMDS lists one key per line, so a newline cuts an AWS key in two; the
/// first half is read, answers 404 (no such tag) and is gone, and the run
/// goes on. A GCE key with a newline cuts the attribute's line in two, and
/// the first half is a line without '=': refused too, as in CloudStack's
/// tags part, which is a tags file as well.
fn a_hostile_key(cloud: Cloud) {
    for (c, name) in HOSTILE {
        let witness = Witness::new();
        let key = format!("rs_agent:ty{c}{FORGED}");
        let fake = fake(cloud)
            .tag("rs_agent:mime_shellscript", &witness.url())
            .tag(&key, "x")
            .start();
        let what = format!("{} key with a {name}", cloud.name());
        match (cloud, c) {
            (Cloud::Aws, '\n') => through_every_command(&fake, &witness, 0, &what),
            (Cloud::Gce | Cloud::CloudStack, '\n') => {
                let run = Tagstrap::against("tags", &fake).run();
                assert_clean(&run, &what);
                run.assert_error(65, "without '='");
                let origin = format!("{} instance tags, line ", cloud.name());
                assert!(run.error_lines()[0].contains(&origin), "{what}");
            }
            _ => {
                through_every_command(&fake, &witness, 65, &what);
                let run = Tagstrap::against("tags", &fake).run();
                let code_point = format!("U+{:04X}", c as u32);
                run.assert_error(65, &code_point);
                // The key is quoted escaped, so the reader sees which one.
                assert!(
                    run.error_lines()[0].contains(&format!("rs_agent:ty\\u{{{:x}}}", c as u32)),
                    "{what}: {}",
                    run.stderr
                );
            }
        }
    }
}

/// A tag value holding the character: refused (65), nothing runs. A GCE
/// value with a newline cuts the attribute's line in two; the second half
/// is a line without '=' (CloudStack's tags part likewise).
fn a_hostile_value(cloud: Cloud) {
    for (c, name) in HOSTILE {
        let witness = Witness::new();
        let fake = fake(cloud)
            .tag("rs_agent:mime_shellscript", &witness.url())
            .tag("rs_agent:type", &format!("lite{c}{FORGED}"))
            .start();
        let what = format!("{} value with a {name}", cloud.name());
        if matches!(cloud, Cloud::Gce | Cloud::CloudStack) && c == '\n' {
            let run = Tagstrap::against("run", &fake).run();
            assert_clean(&run, &what);
            run.assert_error(65, "without '='");
            assert!(!witness.ran());
            continue;
        }
        through_every_command(&fake, &witness, 65, &what);
        let run = Tagstrap::against("tags", &fake).run();
        run.assert_error(65, &format!("U+{:04X}", c as u32));
        assert!(run.error_lines()[0].contains("rs_agent:type"), "{what}");
    }
}

/// An instance ID holding the character: tags, plan and run go on (the ID
/// names the instance, it is not acted on), `plan` shows it escaped, and
/// the report shows it escaped too.
fn a_hostile_instance_id(cloud: Cloud) {
    for (c, name) in HOSTILE {
        let witness = Witness::new();
        let id = format!("i-0a{c}{FORGED}\u{1b}[2J");
        let fake = fake(cloud)
            .tag("rs_agent:mime_shellscript", &witness.url())
            .instance_id(&id)
            .start();
        let what = format!("{} instance ID with a {name}", cloud.name());
        through_every_command(&fake, &witness, 0, &what);

        let plan = Tagstrap::against("plan", &fake).run();
        let shown = format!("i-0a\\u{{{:x}}}{FORGED}\\u{{1b}}[2J", c as u32);
        assert!(
            plan.stdout.contains(&shown),
            "{what}: plan shows {shown}:\n{}",
            plan.stdout
        );
        let run = Tagstrap::against("run", &fake).arg("--once").run();
        assert_clean(&run, &format!("{what}, run --once"));
        run.assert_success();
        // The report shows it as every other place does (SPEC §8: no field
        // quotes an outside value raw), escaped.
        assert_eq!(run.report_json()["instance_id"], shown.as_str(), "{what}");
    }
}

/// `file://` with `%0a`, `%0d`, `%09` and `%1b` in its path: a path a
/// script may really have, so it runs; every message shows it escaped.
fn a_file_url_with_hostile_escapes(cloud: Cloud) {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let name = format!("in\nst\r\tall\u{1b}[2J{FORGED}.sh");
    let script = dir.path().join(&name);
    std::fs::write(&script, format!("#!/bin/sh\ntouch '{}'\n", ran.display())).unwrap();
    make_executable(&script);
    let url = url::Url::from_file_path(&script).unwrap();
    assert!(
        url.as_str().contains("%0A") && url.as_str().contains("%1B"),
        "{url}"
    );
    let fake = fake(cloud)
        .tag("rs_agent:mime_shellscript", url.as_str())
        .start();
    let what = format!("{} file:// URL with %0A and %1B", cloud.name());
    for subcommand in ["tags", "plan", "run"] {
        let run = Tagstrap::against(subcommand, &fake).run();
        assert_clean(&run, &format!("{what}, tagstrap {subcommand}"));
        run.assert_success();
    }
    assert!(ran.exists(), "{what}: the script ran");
    let plan = Tagstrap::against("plan", &fake).run();
    assert!(
        plan.stdout.contains("in\\u{a}st\\u{d}\\u{9}all\\u{1b}[2J"),
        "{what}: plan shows the path escaped:\n{}",
        plan.stdout
    );
}

fn make_executable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[test]
fn aws_a_hostile_key() {
    a_hostile_key(Cloud::Aws);
}

#[test]
fn gce_a_hostile_key() {
    a_hostile_key(Cloud::Gce);
}

#[test]
fn azure_a_hostile_key() {
    a_hostile_key(Cloud::Azure);
}

#[test]
fn openstack_a_hostile_key() {
    a_hostile_key(Cloud::OpenStack);
}

#[test]
fn aws_a_hostile_value() {
    a_hostile_value(Cloud::Aws);
}

#[test]
fn gce_a_hostile_value() {
    a_hostile_value(Cloud::Gce);
}

#[test]
fn azure_a_hostile_value() {
    a_hostile_value(Cloud::Azure);
}

#[test]
fn openstack_a_hostile_value() {
    a_hostile_value(Cloud::OpenStack);
}

#[test]
fn aws_a_hostile_instance_id() {
    a_hostile_instance_id(Cloud::Aws);
}

#[test]
fn gce_a_hostile_instance_id() {
    a_hostile_instance_id(Cloud::Gce);
}

#[test]
fn azure_a_hostile_instance_id() {
    a_hostile_instance_id(Cloud::Azure);
}

#[test]
fn openstack_a_hostile_instance_id() {
    a_hostile_instance_id(Cloud::OpenStack);
}

#[test]
fn aws_a_file_url_with_hostile_escapes() {
    a_file_url_with_hostile_escapes(Cloud::Aws);
}

#[test]
fn gce_a_file_url_with_hostile_escapes() {
    a_file_url_with_hostile_escapes(Cloud::Gce);
}

#[test]
fn azure_a_file_url_with_hostile_escapes() {
    a_file_url_with_hostile_escapes(Cloud::Azure);
}

#[test]
fn openstack_a_file_url_with_hostile_escapes() {
    a_file_url_with_hostile_escapes(Cloud::OpenStack);
}

#[test]
fn cloudstack_a_hostile_key() {
    a_hostile_key(Cloud::CloudStack);
}

#[test]
fn cloudstack_a_hostile_value() {
    a_hostile_value(Cloud::CloudStack);
}

#[test]
fn cloudstack_a_hostile_instance_id() {
    a_hostile_instance_id(Cloud::CloudStack);
}

#[test]
fn cloudstack_a_file_url_with_hostile_escapes() {
    a_file_url_with_hostile_escapes(Cloud::CloudStack);
}

/// A CloudStack user-data with the witness's script in a tags part, then
/// `rest` appended inside the multipart (before its closing boundary).
fn cloudstack_user_data(witness: &Witness, tags: &str, rest: &[(&str, &str, &str)]) -> String {
    let tags = format!("rs_agent:mime_shellscript={}\n{tags}", witness.url());
    let mut parts = vec![("text/x-tagstrap-tags", "tagstrap.tags", tags.as_str())];
    parts.extend_from_slice(rest);
    multipart(&parts)
}

/// `run` refuses it with `code` and one error line saying `said`; nothing
/// ran (the witness's script is the one the user-data names), the output
/// is clean, and `secret` (if any) is nowhere.
fn cloudstack_refuses(
    witness: &Witness,
    user_data: impl Into<Vec<u8>>,
    code: i32,
    said: &str,
    secret: Option<&str>,
) {
    let fake = fake(Cloud::CloudStack).user_data(user_data).start();
    let run = Tagstrap::against("run", &fake).run();
    assert_clean(&run, said);
    run.assert_error(code, said);
    if let Some(secret) = secret {
        run.assert_no_leak(secret);
    }
    assert!(!witness.ran(), "{said}");
}

#[test]
fn cloudstack_a_hostile_user_data_is_refused_and_runs_nothing() {
    let witness = Witness::new();
    let shell = ("text/x-shellscript", "s", "#!/bin/sh\n");
    // Over the metadata answer cap (512 KiB): the router is not believed.
    let huge = cloudstack_user_data(&witness, "", &[("text/plain", "big", &"x".repeat(600_000))]);
    cloudstack_refuses(&witness, huge, 69, "larger than 524288 bytes", None);
    // Cut short: the closing boundary never comes.
    let whole = cloudstack_user_data(&witness, "", &[shell]);
    let cut = whole[..whole.rfind("--").unwrap()].to_string();
    cloudstack_refuses(&witness, cut, 65, "never comes", None);
    // Two tags parts: which one wins is not guessed.
    let two = cloudstack_user_data(
        &witness,
        "",
        &[
            ("text/x-tagstrap-tags", "more.tags", "rs_agent:type=x\n"),
            shell,
        ],
    );
    cloudstack_refuses(
        &witness,
        two,
        65,
        "more than one text/x-tagstrap-tags part",
        None,
    );
    // A plain password in a tag is refused like anywhere else, never shown.
    let password = "Hunter2-in-user-data";
    let plain = cloudstack_user_data(
        &witness,
        &format!(
            "rs_agent:http_proxy=proxy.corp:3128\nrs_agent:http_proxy_user=svc\n\
             rs_agent:http_proxy_password={password}\n"
        ),
        &[shell],
    );
    cloudstack_refuses(
        &witness,
        plain,
        65,
        "rs_agent:http_proxy_password",
        Some(password),
    );
    // Control characters in a tags part given base64, past the encoding.
    let hidden = "MIME-Version: 1.0\nContent-Type: text/x-tagstrap-tags\n\
                  Content-Transfer-Encoding: base64\n\ncnNfYWdlbnQ6dHlwZT1hG1sySmIK\n";
    cloudstack_refuses(&witness, hidden, 65, "U+001B", None);
    assert!(!witness.ran());
}

#[test]
fn cloudstack_a_user_data_that_is_not_mime_is_shown_escaped_and_ignored() {
    let witness = Witness::new();
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_file(
        dir.path(),
        "image.tags",
        &format!("rs_agent:mime_shellscript={}\n", witness.url()),
    );
    let fake = fake(Cloud::CloudStack)
        .user_data(format!("#!/bin/sh\u{1b}[2J\r{FORGED}\n"))
        .start();
    let run = Tagstrap::against("run", &fake)
        .arg("--tags-file")
        .arg(&file)
        .run();
    assert_clean(&run, "a non-MIME user-data");
    run.assert_success();
    assert!(run.stderr.contains("not MIME"), "{}", run.stderr);
    assert!(witness.ran());
}
