//! tagstrap's no-proxy reading against a model of curl's matcher written
//! from curl's rules (`fuzz/src/curl_noproxy.rs`, the fuzz target's oracle),
//! in CI: first the model against curl's own unit table (so the oracle is
//! known to be curl), then tagstrap against the model over a grid of entry
//! forms, the fuzz corpus and the inputs fuzzing found.

#![cfg(unix)]

#[path = "../fuzz/src/curl_noproxy.rs"]
mod curl_noproxy;
#[path = "../fuzz/src/no_proxy_oracle.rs"]
mod no_proxy_oracle;

use std::path::Path;

use curl_noproxy::check_noproxy;
use no_proxy_oracle::{check, parse_case};
use tagstrap::proxy::ListOrigin;

/// The rows of curl's unit test 1614 (tests/data/no_proxy/curl_unit1614.tsv:
/// host, list, curl's answer).
fn unit1614() -> Vec<(String, String, bool)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/no_proxy/curl_unit1614.tsv");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            assert_eq!(fields.len(), 3, "{l:?}");
            let answer = match fields[2] {
                "TRUE" | "direct" | "1" => true,
                "FALSE" | "proxy" | "0" => false,
                other => panic!("answer {other:?} in {l:?}"),
            };
            (fields[0].to_string(), fields[1].to_string(), answer)
        })
        .collect()
}

#[test]
fn the_model_answers_every_row_of_curls_unit_table_as_curl_does() {
    let rows = unit1614();
    assert!(rows.len() > 80, "{} rows", rows.len());
    for (host, list, want) in &rows {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        assert_eq!(
            check_noproxy(host, list),
            *want,
            "model: {host:?} in {list:?}"
        );
    }
    println!("model: {} rows of curl's unit1614 agree", rows.len());
}

/// Entry forms: names, addresses, ranges, and what curl reads as nothing.
const FORMS: &[&str] = &[
    "example.com",
    ".example.com",
    "Example.COM.",
    "corp",
    "a-b_c.corp",
    "xn--bcher-kva.example",
    "localhost",
    "*.corp",
    "*",
    "proxy.corp:8080",
    "10.0.0.0/8",
    "10.1.2.3",
    "10.1.2.3/32",
    "10.0.0.0/0",
    "0.0.0.0/0",
    "192.168.0.0/16",
    "192.168.0.1/31",
    "10.0.0.5.",
    "10.1.2",
    "010.0.0.1",
    "10.0.0.0/33",
    "10.0.0.0/08",
    "1.2.3.4/128",
    "10.0.0.5:3128",
    "::1",
    "[::1]",
    "fd00::/8",
    "::/0",
    "2001:db8::/32",
    "2001:DB8::1",
    "::ffff:10.1.2.3",
    "fe80::1/64",
    "::1/129",
    "[::1]:443",
    "fd00::1/00",
    "ex%ample",
    ".",
    "..",
    "a..b",
    "10.0.0.0/",
    "/8",
    "bücher.example",
    "10.0.0.0/8a",
];

#[test]
fn tagstrap_reads_every_entry_form_and_every_pair_as_the_model_of_curl_does() {
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut run = |lists: &[(ListOrigin, &str)]| {
        cases += 1;
        if let Err(e) = check(lists, "") {
            failures.push(e);
        }
    };
    for a in FORMS {
        run(&[(ListOrigin::Tag, a)]);
        run(&[(ListOrigin::Environment("no_proxy"), a)]);
        for b in FORMS {
            let pair = format!("{a},{b}");
            run(&[(ListOrigin::Tag, &pair)]);
            run(&[(ListOrigin::Environment("no_proxy"), &pair)]);
            run(&[
                (ListOrigin::Tag, a),
                (ListOrigin::Environment("no_proxy"), b),
            ]);
        }
    }
    for list in [
        "a.corp b.corp",
        " a.corp , b.corp ",
        ",a.corp,",
        "a.corp,,b.corp",
        " *",
        "* ",
        "*,a",
        "a,*",
        "a\tb",
    ] {
        run(&[(ListOrigin::Tag, list)]);
        run(&[(ListOrigin::Environment("NO_PROXY"), list)]);
    }
    println!("grid: {cases} lists checked against the model of curl");
    assert!(
        failures.is_empty(),
        "{} disagreements, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}

#[test]
fn the_fuzz_corpus_and_what_fuzzing_found_agree_with_the_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut checked = 0;
    for dir in ["corpus/no_proxy", "artifacts-found/no_proxy"] {
        let Ok(files) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for file in files {
            let path = file.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            if let Some((lists, host)) = parse_case(text) {
                checked += 1;
                if let Err(e) = check(&lists, host) {
                    panic!("{}: {e}", path.display());
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} inputs");
    println!("fuzz inputs: {checked} agree with the model of curl");
}
