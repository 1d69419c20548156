//! The harness the benches share (`mod common;` in each, `#[path]` from a
//! bench in a folder): where the binary under test is, how a bench fails,
//! its command line ([`args`]), the rusage of one child reaped with
//! `wait4` and the peak-RSS wrapper ([`rusage`], Linux), and the
//! statistics and units the figures are printed in ([`stats`]). Everything
//! a bench measures lives in the bench; only what was copied between them
//! lives here.
//!
//! Each bench compiles its own copy of this module and uses part of it.

// Each bench uses part of the harness; the rest is dead code in that crate.
#![allow(dead_code)]

pub mod args;
pub mod rusage;
pub mod stats;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Prints `BENCH: message` and exits 2: a bench that cannot measure says
/// why and stops, rather than printing figures of something else.
pub fn fail(message: &str) -> ! {
    // The bench's own crate name (`fleet`, `main_path`, ...), since every
    // bench compiles this module into itself.
    eprintln!("{}: {message}", env!("CARGO_CRATE_NAME"));
    std::process::exit(2)
}

/// `$CARGO_TARGET_DIR`, else `target/` of this repository.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The binary named by the environment variable `var`, else `default`
/// below the target directory.
pub fn binary(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join(default))
}

/// The tagstrap measured: `TAGSTRAP_BIN` (set by bench/run), else the
/// release build.
pub fn tagstrap_bin() -> PathBuf {
    binary("TAGSTRAP_BIN", "release/tagstrap")
}

/// The first line `program ARG` prints (its version, say), or `?`.
pub fn first_line(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .env_clear()
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}
