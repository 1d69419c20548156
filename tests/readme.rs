//! The README's set-up stays true: its first command is the one this test
//! runs (`fixtures/run-example`, from another directory, as a newcomer on
//! a fresh clone would after `cd`), it exits 0, and the environment the
//! README says the example script prints is what it prints.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The lines of the README's first `sh` block that are commands (not
/// comments, not blank).
fn setup_commands(readme: &str) -> Vec<String> {
    let setup = readme
        .split("## Set-up")
        .nth(1)
        .expect("the README has a Set-up section");
    let block = setup
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the Set-up section has an sh block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readmes_first_command_runs_the_main_job_and_prints_what_the_readme_says() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let commands = setup_commands(&readme);
    assert_eq!(
        commands,
        [
            "fixtures/run-example",
            ".ci/install && cargo test --workspace"
        ],
        "the README's two set-up commands changed: update this test with them"
    );
    // The values the README quotes after the block.
    let after = &readme[readme
        .find("The first prints")
        .expect("the README says what it prints")..];
    let quoted: Vec<&str> = ["https_proxy=", "no_proxy="]
        .iter()
        .map(|key| {
            let start = after
                .find(&format!("`{key}"))
                .expect("the README quotes it")
                + 1;
            let end = start + after[start..].find('`').unwrap();
            &after[start..end]
        })
        .collect();

    let state = Path::new(ROOT).join("target/example-state");
    let _ = std::fs::remove_file(state.join("last-run.json"));
    // From another directory, in a newcomer's environment: not the one
    // cargo gives tests (its CARGO_MANIFEST_DIR would also make ring's
    // build script run again, rebuilding the TLS stack), no proxy variables.
    let keep = [
        "PATH",
        "HOME",
        "RUSTUP_HOME",
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
    ];
    let out = Command::new(Path::new(ROOT).join("fixtures/run-example"))
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(std::env::vars_os().filter(|(k, _)| keep.iter().any(|keep| k == keep)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in quoted {
        assert!(
            stdout.lines().any(|l| l.trim() == line),
            "the example printed no {line:?}:\n{stdout}"
        );
    }
    assert!(stderr.contains("the script exited 0"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("last-run.json")).unwrap()).unwrap();
    assert_eq!(report["exit_code"], 0, "{report}");
}
