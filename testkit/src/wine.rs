//! The Windows `tagstrap.exe` run for real under Debian's wine (8.0), with
//! two stand-ins built from C here (`wine/`, with MinGW's
//! `x86_64-w64-mingw32-gcc`):
//!
//! - `bcryptprimitives.dll`: Rust's standard library imports `ProcessPrng`
//!   from it, and wine 8 has no such DLL, so the exe would not start. Ours
//!   answers it with `BCryptGenRandom` (the system RNG, which is what
//!   `ProcessPrng` is on Windows). It sits in the prefix's `system32`.
//! - `powershell.exe`: wine's own is a stub that exits 0 without running
//!   anything, and no real PowerShell runs here. Ours records its command
//!   line exactly as received (`GetCommandLineW`), its environment and the
//!   script it was given, to files beside itself, and exits with the code a
//!   test wrote there ([`Wine::set_powershell_exit`]).
//!
//! # Where the stand-in PowerShell goes, and why there
//! tagstrap starts `powershell.exe` by name (SPEC §7) with an environment it
//! builds, `PATH` included. Rust's `Command` on Windows then searches the
//! child's `PATH` first, before the directory of the running exe, then
//! `system32` and the Windows directory (std's `resolve_exe`); wine's `PATH`
//! names `C:\windows\system32\WindowsPowershell\v1.0`, where wine keeps its
//! stub, as Windows keeps PowerShell there. Measured here: a stand-in next
//! to `tagstrap.exe` is not the one that runs; the stub is. So each test's
//! prefix gets the stand-in in the stub's place, which is also where the
//! real one is on Windows; tagstrap's search is the one it uses in
//! production.
//!
//! # The prefix, cached
//! `wine wineboot --init` in a new prefix takes 11–18 s here (2 shared
//! cores) and makes 692 MiB in 930 files (wine 8 copies its PE DLLs into
//! `system32`), so it is built once per machine into
//! `target/testkit-wine/wine-<key>/` (honouring
//! `CARGO_TARGET_DIR`), where `<key>` hashes `wine --version`, the mtime of
//! wine's `wine.inf` (what wine compares to decide a prefix needs an
//! update), both stand-ins' sources and [`RECIPE`]. It is built in
//! `.wine-<key>.building` under an `flock` on `wine-<key>.lock` (shared
//! with `rootfs`: `locked_cache`) and renamed into place when complete; the
//! build prints its time and size (past the test harness's capture, for the
//! CI log), and prunes the prefixes of other keys. `WINEDEBUG=-all` keeps
//! wine quiet; `WINEDLLOVERRIDES=mscoree,mshtml=` skips the Mono and Gecko
//! installers; no X display is needed (there is no `DISPLAY`).
//!
//! # One prefix per test
//! [`Wine::cached`] gives each test its own prefix: a copy whose directories
//! are new and whose files are hard links to the cache (`cp -al`, about
//! 60 ms), except the registry files, which wineserver rewrites and so are
//! real copies. Everything else a run writes is a new file (after a full
//! run of `tests/windows.rs` no file of the cache is newer than its build);
//! a file of the prefix is replaced, never written into, as the stand-in
//! PowerShell replaces wine's stub. Each copy has its own wineserver, killed on drop, so
//! tests run in parallel and a test's `C:\ProgramData` is its own. The copy
//! sits under `target/testkit-wine/run/` so the hard links stay on one
//! filesystem.
//!
//! # Exit codes
//! Wine's exit status seen from Linux is the Windows code mod 256, so 3010
//! would read as 194. [`Wine::tagstrap`] runs the exe from a `.bat` that
//! echoes `%ERRORLEVEL%` (the full 32-bit code) after it, as a Windows
//! launcher would see it, and returns both.
//!
//! Needs Debian's `wine` and `wine64` and MinGW (`gcc-mingw-w64-x86-64`),
//! and `rustup target add x86_64-pc-windows-gnu` (`.ci/install`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::rootfs::{fnv1a, locked_cache, release_build, run_with_timeout};

/// The Rust target of the Windows build.
pub const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";
/// Bumped when the prefix's build steps change in a way the key misses.
pub const RECIPE: u32 = 1;
/// Where every prefix copy has tagstrap, as an operator would install it.
pub const TAGSTRAP_EXE: &str = r"C:\Program Files\tagstrap\tagstrap.exe";
/// The directory of PowerShell in the prefix, relative to it (see the
/// module doc: Windows' place, on wine's `PATH`).
pub const POWERSHELL_DIR: &str = "drive_c/windows/system32/WindowsPowerShell/v1.0";
/// No Mono, no Gecko: their installers would ask.
const DLL_OVERRIDES: &str = "mscoree,mshtml=";
/// A wine command that has not finished by then is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// The line [`Wine::tagstrap`]'s batch file ends tagstrap's output with.
const EXIT_MARK: &str = "testkit-errorlevel=";

const BCRYPTPRIMITIVES_C: &str = include_str!("wine/bcryptprimitives.c");
const POWERSHELL_C: &str = include_str!("wine/powershell.c");

/// A test's own wine prefix (see the module doc), with tagstrap.exe and the
/// stand-ins in place.
pub struct Wine {
    prefix: PathBuf,
    batches: AtomicUsize,
    /// Dropped last: the prefix copy.
    _dir: tempfile::TempDir,
}

/// One `tagstrap.exe` run through `cmd /c` (see [`Wine::tagstrap`]).
#[derive(Debug)]
pub struct WineRun {
    /// `%ERRORLEVEL%` after tagstrap.exe: its whole exit code.
    pub code: i32,
    /// What Linux saw as wine's exit status (the code mod 256).
    pub wine_status: Option<i32>,
    /// tagstrap's stdout, without the batch file's `%ERRORLEVEL%` line.
    pub stdout: String,
    pub stderr: String,
}

impl Wine {
    /// A private copy of the cached prefix (built on first use).
    pub fn cached() -> Wine {
        let cache = cache_dir();
        let exe = tagstrap_exe();
        let base = cache.parent().expect("the cache has a parent").join("run");
        std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("create {}: {e}", base.display()));
        let dir = tempfile::tempdir_in(&base).expect("a temp dir for the prefix");
        let prefix = dir.path().join("prefix");
        let out = Command::new("cp")
            .arg("-al")
            .arg(cache.join("prefix"))
            .arg(&prefix)
            .output()
            .expect("spawn cp");
        assert!(
            out.status.success(),
            "cp -al the prefix: {}",
            crate::rootfs::text(&out)
        );
        // wineserver saves these in place: each copy has its own.
        for name in ["system.reg", "user.reg", "userdef.reg", ".update-timestamp"] {
            unshare_file(&prefix.join(name));
        }
        let powershell = prefix.join(POWERSHELL_DIR).join("powershell.exe");
        std::fs::remove_file(&powershell)
            .unwrap_or_else(|e| panic!("remove wine's {}: {e}", powershell.display()));
        copy(&cache.join("powershell.exe"), &powershell);
        let wine = Wine {
            prefix,
            batches: AtomicUsize::new(0),
            _dir: dir,
        };
        let installed = wine.c_path(TAGSTRAP_EXE);
        std::fs::create_dir_all(installed.parent().expect("a parent"))
            .expect("create Program Files\\tagstrap");
        copy(&exe, &installed);
        wine
    }

    /// The prefix (`WINEPREFIX`).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The Linux path of a `C:\...` path of this prefix.
    pub fn c_path(&self, windows: &str) -> PathBuf {
        let rest = windows
            .strip_prefix(r"C:\")
            .unwrap_or_else(|| panic!("{windows} is not on C:"));
        self.prefix.join("drive_c").join(rest.replace('\\', "/"))
    }

    /// `wine PROGRAM` in this prefix, with only wine's variables, `PATH`,
    /// `HOME` (the temp dir) and `LANG` from this process; add the test's own.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("wine");
        command
            .arg(program)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", self._dir.path())
            .env("LANG", "C.UTF-8")
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", DLL_OVERRIDES)
            .stdin(Stdio::null());
        command
    }

    /// Runs `command` (from [`Wine::command`]) with a timeout.
    pub fn output(&self, command: Command) -> Output {
        run_with_timeout(command, RUN_TIMEOUT)
    }

    /// Runs `tagstrap.exe ARGS` with `env` added to the environment, from a
    /// batch file run by `wine cmd /c` that echoes `%ERRORLEVEL%` after it:
    /// the exit code a Windows launcher sees, not wine's status mod 256.
    /// An argument may not hold `"` or `%` (cmd would read them).
    pub fn tagstrap(&self, args: &[&str], env: &[(&str, &str)]) -> WineRun {
        let mut line = format!("\"{TAGSTRAP_EXE}\"");
        for arg in args {
            assert!(
                !arg.contains(['"', '%', '\r', '\n']),
                "{arg:?} cannot pass through cmd"
            );
            line.push_str(&format!(" \"{arg}\""));
        }
        let n = self.batches.fetch_add(1, Ordering::Relaxed);
        let batch = format!(r"C:\testkit\run-{n}.bat");
        let path = self.c_path(&batch);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create C:\\testkit");
        // Separate lines: cmd expands %ERRORLEVEL% when it reads a line.
        let script = format!(
            "@echo off\r\n{line}\r\necho {EXIT_MARK}%ERRORLEVEL%\r\nexit /b %ERRORLEVEL%\r\n"
        );
        std::fs::write(&path, script).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let mut command = self.command("cmd");
        command.args(["/c", &batch]);
        for (k, v) in env {
            command.env(k, v);
        }
        let out = self.output(command);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (before, code) = match stdout.rfind(EXIT_MARK) {
            Some(at) => (
                &stdout[..at],
                stdout[at + EXIT_MARK.len()..].trim().parse().ok(),
            ),
            None => (stdout.as_str(), None),
        };
        let code = code.unwrap_or_else(|| {
            panic!(
                "the batch file printed no %ERRORLEVEL%:\n{}",
                crate::rootfs::text(&out)
            )
        });
        WineRun {
            code,
            wine_status: out.status.code(),
            stdout: before.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The code the stand-in PowerShell exits with from now on.
    pub fn set_powershell_exit(&self, code: i32) {
        let path = self.prefix.join(POWERSHELL_DIR).join("powershell.exit");
        std::fs::write(&path, code.to_string())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Each command line the stand-in PowerShell was started with, in order.
    pub fn powershell_runs(&self) -> Vec<String> {
        self.powershell_file("powershell.cmdline")
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The stand-in's environment at its last start, `NAME=value` each.
    pub fn powershell_env(&self) -> Vec<String> {
        self.powershell_file("powershell.env")
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The script (the `-File` argument) as the stand-in read it.
    pub fn powershell_script(&self) -> Option<String> {
        self.powershell_file("powershell.script")
    }

    fn powershell_file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.prefix.join(POWERSHELL_DIR).join(name)).ok()
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        // This prefix's wineserver and every process of it, before the
        // prefix goes.
        let _ = Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", &self.prefix)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl std::fmt::Debug for Wine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wine")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// A Linux path as wine's `Z:` drive (the whole file system) names it.
pub fn z_path(linux: &Path) -> String {
    let s = linux.to_str().expect("a UTF-8 path");
    assert!(s.starts_with('/'), "{s} is not absolute");
    format!("Z:{}", s.replace('/', r"\"))
}

/// `tagstrap.exe` built for [`WINDOWS_TARGET`] (release, as `.ci/release`
/// builds it), once per process.
pub fn tagstrap_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| release_build(WINDOWS_TARGET, "MinGW (gcc-mingw-w64-x86-64)"))
        .clone()
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}

/// Replaces a hard link with a copy of its own.
fn unshare_file(path: &Path) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    std::fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// What the cache key hashes (see the module doc).
fn recipe() -> String {
    let version = Command::new("wine")
        .arg("--version")
        .env("WINEDEBUG", "-all")
        .stdin(Stdio::null())
        .output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => panic!("wine --version failed: {}", crate::rootfs::text(&out)),
        Err(e) => panic!(
            "wine not found ({e}): the Windows tests need Debian's wine and wine64 (.ci/install)"
        ),
    };
    let inf = std::fs::metadata("/usr/share/wine/wine.inf")
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    format!(
        "{version}\nwine.inf {inf}\n{DLL_OVERRIDES}\n{RECIPE}\n{:016x}\n{:016x}\n",
        fnv1a(BCRYPTPRIMITIVES_C.as_bytes()),
        fnv1a(POWERSHELL_C.as_bytes())
    )
}

/// The cached prefix and stand-ins, built first if needed.
pub fn cache_dir() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let recipe = recipe();
        let name = format!("wine-{:016x}", fnv1a(recipe.as_bytes()));
        // Other wines' or older stand-ins' prefixes are pruned: 690 MiB each.
        locked_cache("testkit-wine", "wine", &name, |base, building| {
            build(base, building, &name, &recipe)
        })
    })
}

/// Builds the prefix and stand-ins into `building` (for `base/name`;
/// `locked_cache` holds the lock and renames it into place).
fn build(base: &Path, building: &Path, name: &str, recipe: &str) {
    let started = Instant::now();
    std::fs::create_dir_all(building)
        .unwrap_or_else(|e| panic!("create {}: {e}", building.display()));
    eprintln!(
        "testkit wine: building a wine prefix and the stand-ins in {} (about 15 s)",
        building.display()
    );
    let sources = building.join("src");
    std::fs::create_dir(&sources).expect("create src");
    let dll = building.join("bcryptprimitives.dll");
    mingw(
        &sources,
        "bcryptprimitives.c",
        BCRYPTPRIMITIVES_C,
        &["-shared"],
        &dll,
        &["-lbcrypt"],
    );
    mingw(
        &sources,
        "powershell.c",
        POWERSHELL_C,
        &["-municode"],
        &building.join("powershell.exe"),
        &["-lshell32"],
    );

    let prefix = building.join("prefix");
    let wine = |program: &str, args: &[&str]| {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_remove("DISPLAY")
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", DLL_OVERRIDES);
        let out = run_with_timeout(command, RUN_TIMEOUT);
        assert!(
            out.status.success(),
            "{program} {args:?} failed; are Debian's wine and wine64 installed (.ci/install)?\n{}",
            crate::rootfs::text(&out)
        );
    };
    wine("wine", &["wineboot", "--init"]);
    // wineboot returns before wineserver has saved the registry.
    wine("wineserver", &["-w"]);
    let system32 = prefix.join("drive_c/windows/system32");
    assert!(
        !system32.join("bcryptprimitives.dll").exists(),
        "this wine has its own bcryptprimitives.dll: is the stand-in still needed?"
    );
    copy(&dll, &system32.join("bcryptprimitives.dll"));
    assert!(
        prefix.join(POWERSHELL_DIR).join("powershell.exe").is_file(),
        "wine's prefix has no {POWERSHELL_DIR}/powershell.exe to stand in for"
    );
    std::fs::write(building.join("recipe"), recipe).expect("write the recipe stamp");
    // Past the test harness's capture (as rootfs does): the CI log (.ci/run)
    // shows what the prefix cost.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "testkit wine: built {} ({} MiB) in {:.1?}",
        base.join(name).display(),
        tree_bytes(building) >> 20,
        started.elapsed()
    );
}

/// Compiles one stand-in with MinGW.
fn mingw(dir: &Path, file: &str, source: &str, flags: &[&str], out: &Path, libs: &[&str]) {
    let src = dir.join(file);
    std::fs::write(&src, source).unwrap_or_else(|e| panic!("write {}: {e}", src.display()));
    let result = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-O2", "-s", "-Wall", "-Werror"])
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(&src)
        .args(libs)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("x86_64-w64-mingw32-gcc not found ({e}): install gcc-mingw-w64-x86-64 (.ci/install)")
        });
    assert!(
        result.status.success(),
        "building {file}:\n{}",
        crate::rootfs::text(&result)
    );
}

/// The bytes of the regular files under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.file_type() {
            Ok(t) if t.is_dir() => total += tree_bytes(&entry.path()),
            Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linux_path_is_on_the_z_drive() {
        assert_eq!(z_path(Path::new("/tmp/a b/c.pem")), r"Z:\tmp\a b\c.pem");
    }
}
