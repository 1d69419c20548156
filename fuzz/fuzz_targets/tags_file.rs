//! `tags::file::parse` on arbitrary UTF-8: the text of `/etc/tagstrap/tags` or
//! of GCE's `rs_agent-tags` attribute, which anyone who can tag the instance
//! writes. It must never panic, and what it accepts must be safe to put into
//! an environment variable or a log line (SPEC §1).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagstrap::tags::file::parse;
use tagstrap::tags::{Origin, TagSet};

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = |line| Origin::File {
        path: "fuzz.tags".into(),
        line,
    };
    // The lines as the format defines them, to check each tag against the
    // line it claims to come from.
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();

    match parse(text, origin) {
        Ok(tags) => {
            let mut last_line = 0;
            for tag in &tags {
                let key = tag.key.as_str();
                let value = tag.value.as_str();
                assert!(!key.is_empty(), "accepted an empty key: {tag:?}");
                assert_eq!(key, key.trim_matches(is_blank), "key not trimmed");
                assert_eq!(value, value.trim_matches(is_blank), "value not trimmed");
                assert!(!key.contains('='), "key holds '=': {key:?}");
                assert!(
                    !key.chars().any(char::is_control),
                    "control character in key {key:?}"
                );
                assert!(
                    !value.chars().any(char::is_control),
                    "control character in value of {key:?}"
                );
                let Origin::File { line, .. } = tag.origin else {
                    panic!("origin changed: {:?}", tag.origin);
                };
                assert!(line > last_line, "line numbers not increasing");
                assert!(line <= lines.len(), "line {line} past the end");
                last_line = line;
                // The value is everything after the first '=' of its line.
                let (k, v) = lines[line - 1].split_once('=').expect("line without '='");
                assert_eq!(k.trim_matches(is_blank), key);
                assert_eq!(v.trim_matches(is_blank), value);
                // What `tags`, `plan` and Debug show of it must not panic either.
                let _ = tag.shown_value();
                let _ = format!("{tag:?}");
            }
            let tagged = lines
                .iter()
                .filter(|l| {
                    let t = l.trim_matches(is_blank);
                    !t.is_empty() && !t.starts_with('#')
                })
                .count();
            assert_eq!(tags.len(), tagged, "a tag line was skipped");
            let mut set = TagSet::new();
            set.layer(tags);
            for entry in set.entries() {
                assert!(entry.tag.key.starts_with(tagstrap::tags::PREFIX));
            }
        }
        Err(err) => {
            assert_eq!(err.exit_code(), 65, "{err}");
            // The message is a log line: no control character may reach it.
            assert!(
                !err.message().chars().any(char::is_control),
                "control character in the error message {:?}",
                err.message()
            );
        }
    }
});
