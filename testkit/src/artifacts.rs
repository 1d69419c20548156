//! The release artifacts `.ci/release` leaves in `target/release-artifacts/`
//! (or `$CARGO_TARGET_DIR/release-artifacts/`), for the tests that check or
//! install what ships: the packages (tests/packages.rs, tests/systemd.rs),
//! the aarch64 binary (tests/arm64.rs), the man page and completions.
//!
//! The tests use the artifacts rather than building them, so that what they
//! check is byte for byte what is released; a missing one fails with the
//! command that makes it, never a silent pass.

use std::path::PathBuf;

/// The package version the artifacts' names carry (the crate's, release 1).
pub const VERSION: &str = "0.1.0";

/// `target/release-artifacts/NAME`; panics saying to run `.ci/release` when
/// it is missing.
pub fn artifact(name: &str) -> PathBuf {
    let path = crate::rootfs::target_dir()
        .join("release-artifacts")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run .ci/release (it builds every release artifact; needs .ci/install)",
        path.display()
    );
    path
}

/// The Debian package for `arch` (`amd64` or `arm64`): `tagstrap_0.1.0-1_ARCH.deb`.
pub fn deb(arch: &str) -> PathBuf {
    artifact(&format!("tagstrap_{VERSION}-1_{arch}.deb"))
}

/// The RPM package for `arch` (`x86_64` or `aarch64`): `tagstrap-0.1.0-1.ARCH.rpm`.
pub fn rpm(arch: &str) -> PathBuf {
    artifact(&format!("tagstrap-{VERSION}-1.{arch}.rpm"))
}

/// The static, stripped aarch64 Linux binary (`tagstrap-aarch64-linux-musl`).
pub fn aarch64_tagstrap() -> PathBuf {
    artifact("tagstrap-aarch64-linux-musl")
}

/// The static, stripped x86_64 Linux binary (`tagstrap-x86_64-linux-musl`).
pub fn x86_64_tagstrap() -> PathBuf {
    artifact("tagstrap-x86_64-linux-musl")
}

/// A packaging tool `.ci/install` builds into `target/ci-tools/bin/`
/// (`cargo-deb`, `cargo-generate-rpm`); panics saying to run `.ci/install`.
pub fn ci_tool(name: &str) -> PathBuf {
    let path = crate::rootfs::target_dir().join("ci-tools/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run .ci/install (it builds the packagers into target/ci-tools)",
        path.display()
    );
    path
}
