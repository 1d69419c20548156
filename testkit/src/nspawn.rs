//! A real systemd as PID 1: a [`Rootfs`] of the bookworm systemd tree
//! ([`BOOKWORM_SYSTEMD`]) booted under `systemd-nspawn`, for tests that run
//! a packaged unit end to end (tests/systemd.rs).
//!
//! # The tree
//! bookworm `minbase` with `systemd`, `systemd-sysv` (`/sbin/init`) and
//! `ca-certificates`: about 245 MiB, cached like every [`Tree`] (see
//! [`crate::rootfs`]; a cold build took 101 s in the first run of
//! tests/systemd.rs, 153 s by hand with other builds running; a boot to a
//! settled multi-user took 0.3–0.7 s, a poweroff 0.1–0.3 s). No D-Bus:
//! as root, `systemctl` and `journalctl` talk to systemd over its private
//! socket, and the tree boots to `running` with no failed unit without it
//! (`systemd-run` does need D-Bus; nothing here uses it).
//!
//! # Which copy nspawn boots
//! The test's own [`Rootfs`] overlay, booted with `-D` from inside the
//! overlay's mount namespace ([`Rootfs::mounted_command`]). Not nspawn's
//! `--ephemeral`: on ext4 (no btrfs snapshots) it copies the whole tree
//! for every boot, and it throws the copy away at exit, while a test needs
//! the same machine's disk for a second boot and the files written while
//! it was down (the package installed with `dpkg -i` in a chroot before
//! the first boot, as an image builder does). Not `--overlay=` on `/`
//! either: nspawn would mount it in the host's namespace, and the files
//! would not be there for [`Rootfs::path`] between boots. So one private
//! overlay lives as long as the test, nothing is mounted on the host, and
//! each [`Container`] is one boot of it.
//!
//! # How it boots
//! `systemd-nspawn --quiet --register=no --keep-unit --settings=no
//! --link-journal=no --boot --console=read-only -D TREE --machine=NAME
//! --uuid=ID`. The host's network namespace (no `--private-network`), so
//! servers on 127.0.0.x are reachable from inside. The console (a pty
//! whose output nspawn copies to its stdout) goes to a file: units with
//! `StandardOutput=journal+console` show there. `--register=no` and
//! `--keep-unit`: no machined or D-Bus on the host, so no `machinectl`
//! either. The machine ID is written to `/etc/machine-id` and passed as
//! `--uuid=`, so a second [`Container`] with the same ID is a second boot
//! of the same machine. `--link-journal=no` keeps the guest's journal in
//! its own `/var/log/journal`, away from the host's.
//!
//! Each container gets its own cgroup (`testkit-nspawn-NAME` below this
//! process's, in the unified hierarchy and, on a hybrid host such as this
//! one, `name=systemd`): with `--keep-unit` nspawn hands its own cgroup to
//! the guest's systemd, and two containers started from one test process
//! would otherwise share `init.scope` and `system.slice`, each systemd
//! killing the other's services. The cgroups are removed after the boot,
//! and those a killed test process left behind at the next boot.
//!
//! Boot is done when `systemctl is-system-running --wait` (run in the
//! guest with `nsenter --all`) answers a settled state: every job of the
//! boot transaction, oneshot units included, has finished. It is polled,
//! since the guest's systemd takes a moment to open its socket.
//!
//! # How it stops
//! SIGRTMIN+4 to the guest's PID 1 (systemd's "poweroff", what `systemctl
//! poweroff` asks for, without D-Bus), then nspawn exits 0 when the guest
//! is down; after 90 s the guest's PID 1 gets SIGKILL (the kernel kills its
//! whole PID namespace) and so does nspawn. [`Container::poweroff`] does
//! it and returns nspawn's status; `Drop` does it for a container a test
//! did not power off (a panic). nspawn is started with
//! `PR_SET_PDEATHSIG=SIGTERM`, which nspawn turns into an orderly shutdown
//! of the guest, so a killed test takes its container with it.
//!
//! Needs root and `systemd-nspawn` (Debian's `systemd-container`,
//! `.ci/install`).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::rootfs::{run_with_timeout, text, Rootfs, Tree};

/// Packages on top of `minbase` for [`BOOKWORM_SYSTEMD`]: as little as
/// boots cleanly to `multi-user.target` (module doc), and the CA bundle a
/// real image has.
pub const SYSTEMD_PACKAGES: &[&str] = &["systemd", "systemd-sysv", "ca-certificates"];

/// Debian 12 with systemd 252 as its init (module doc).
pub const BOOKWORM_SYSTEMD: Tree = Tree {
    name: "bookworm-systemd",
    suite: "bookworm",
    packages: SYSTEMD_PACKAGES,
};

/// A boot that has not settled by then fails the test.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// After SIGRTMIN+4, how long the guest gets to power off before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(90);
/// A command in the guest that has not finished by then is killed.
const EXEC_TIMEOUT: Duration = Duration::from_secs(120);
/// `PATH` for commands in the guest, as systemd gives services.
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Each container's cgroup is this and its machine name.
const CGROUP_PREFIX: &str = "testkit-nspawn-";
/// What `systemctl is-system-running` says while there is no answer yet.
const UNSETTLED: [&str; 4] = ["", "offline", "initializing", "starting"];

/// A fresh machine ID (32 hex digits, as `/etc/machine-id` holds).
pub fn machine_id() -> String {
    crate::util::random_hex()
}

/// One boot of a [`Rootfs`] with systemd as PID 1 (module doc). It borrows
/// the tree, so the tree outlives the boot.
pub struct Container<'r> {
    rootfs: &'r Rootfs,
    name: String,
    nspawn: Option<Child>,
    /// The guest's PID 1, as the host sees it.
    leader: u32,
    /// The settled state `systemctl is-system-running` gave.
    state: String,
    booted_in: Duration,
    console: PathBuf,
    cgroups: Vec<PathBuf>,
    status: Option<ExitStatus>,
    _dir: tempfile::TempDir,
}

impl<'r> Container<'r> {
    /// Boots `rootfs` as the machine `machine_id` and waits until the boot
    /// has settled (module doc); panics with the console if it does not.
    /// The container stops when the calling thread ends (the parent-death
    /// signal is per thread): keep it in the test's own thread.
    pub fn boot(rootfs: &'r Rootfs, machine_id: &str) -> Container<'r> {
        require_nspawn();
        assert!(
            machine_id.len() == 32 && machine_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "a machine ID is 32 hex digits: {machine_id:?}"
        );
        static BOOTS: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "testkit-{}-{}",
            std::process::id(),
            BOOTS.fetch_add(1, Ordering::Relaxed)
        );
        rootfs.write("/etc/machine-id", format!("{machine_id}\n"), 0o444);
        let dir = tempfile::Builder::new()
            .prefix("testkit-nspawn-")
            .tempdir()
            .expect("create nspawn temp dir");
        let console = dir.path().join("console.log");
        let log = std::fs::File::create(&console).expect("create console log");
        let cgroups = make_cgroups(&name);
        let procs: Vec<CString> = cgroups
            .iter()
            .map(|d| CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()))
            .collect::<Result<_, _>>()
            .expect("a cgroup path without NUL");

        let (mut cmd, tree) = rootfs.mounted_command("systemd-nspawn");
        cmd.args([
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--settings=no",
            "--link-journal=no",
            "--boot",
            "--console=read-only",
        ])
        .arg("--directory")
        .arg(tree)
        .arg(format!("--machine={name}"))
        .arg(format!("--uuid={machine_id}"))
        .env_clear()
        .env("PATH", GUEST_PATH)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup console log"))
        .stderr(log);
        // SAFETY: between fork and exec only prctl(2), open(2), write(2) and
        // close(2) on paths made before the fork: no allocation, no lock.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                for path in &procs {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn systemd-nspawn: {e}"));
        let mut container = Container {
            rootfs,
            leader: 0,
            state: String::new(),
            booted_in: Duration::ZERO,
            nspawn: Some(child),
            name,
            console,
            cgroups,
            status: None,
            _dir: dir,
        };
        container.leader = container.wait_for_leader(started);
        container.state = container.wait_until_settled(started);
        container.booted_in = started.elapsed();
        eprintln!(
            "testkit nspawn: {} ({machine_id}) booted to {:?} in {:.1?}",
            container.name, container.state, container.booted_in
        );
        container
    }

    /// The `--machine=` name, unique per boot.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The guest's PID 1 as the host sees it (for `nsenter -t PID -a`).
    pub fn leader(&self) -> u32 {
        self.leader
    }

    /// The settled state of the boot: `running`, or `degraded` when a unit
    /// failed.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// From starting nspawn to the settled boot.
    pub fn boot_time(&self) -> Duration {
        self.booted_in
    }

    /// The tree this boots.
    pub fn rootfs(&self) -> &'r Rootfs {
        self.rootfs
    }

    /// Runs `cmd` in the guest (`nsenter --all` into its PID 1's
    /// namespaces, root and working directory) with `PATH` only; killed
    /// after two minutes.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        assert!(!cmd.is_empty(), "an empty command");
        let mut c = Command::new("nsenter");
        c.arg(format!("--target={}", self.leader))
            .args(["--all", "--"])
            .args(cmd)
            .env_clear()
            .env("PATH", GUEST_PATH);
        run_with_timeout(c, EXEC_TIMEOUT)
    }

    /// `systemctl show UNIT -p P,...` as a map (every property asked for is
    /// there; systemd answers an unknown unit with its defaults).
    pub fn show(&self, unit: &str, properties: &[&str]) -> BTreeMap<String, String> {
        let out = self.exec(&["systemctl", "show", unit, "-p", &properties.join(",")]);
        assert!(
            out.status.success(),
            "systemctl show {unit}: {}",
            text(&out)
        );
        let shown: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for p in properties {
            assert!(shown.contains_key(*p), "systemctl show {unit}: no {p}");
        }
        shown
    }

    /// The messages of `unit` in this boot's journal (`journalctl -u UNIT
    /// -b -o cat`), one per line.
    pub fn journal(&self, unit: &str) -> String {
        let out = self.exec(&["journalctl", "--no-pager", "-b", "-o", "cat", "-u", unit]);
        assert!(out.status.success(), "journalctl -u {unit}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the guest wrote to its console so far, without the pty's
    /// carriage returns and the colours.
    pub fn console(&self) -> String {
        plain(&crate::util::read_lossy(&self.console))
    }

    /// Powers the guest off (module doc) and returns nspawn's exit status
    /// (0 for a clean poweroff).
    pub fn poweroff(mut self) -> ExitStatus {
        self.stop()
    }

    /// Stops the guest once; later calls return the same status.
    fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let mut child = self.nspawn.take().expect("nspawn is running");
        let started = Instant::now();
        let mut status = child.try_wait().ok().flatten();
        if status.is_none() {
            // SAFETY: kill(2). The leader is nspawn's child, and nspawn has
            // not exited (checked just now), so the PID is still the guest's.
            unsafe { libc::kill(self.leader as libc::pid_t, libc::SIGRTMIN() + 4) };
            status = crate::util::poll_until(STOP_TIMEOUT, Duration::from_millis(20), || {
                child.try_wait().ok().flatten()
            });
        }
        let status = status.unwrap_or_else(|| {
            eprintln!(
                "testkit nspawn: {} did not power off in {STOP_TIMEOUT:?}; killing it",
                self.name
            );
            // SAFETY: kill(2); SIGKILL to a PID namespace's init kills
            // every process in it.
            unsafe { libc::kill(self.leader as libc::pid_t, libc::SIGKILL) };
            let _ = child.kill();
            child.wait().expect("wait for killed nspawn")
        });
        remove_cgroups(&self.cgroups);
        // nspawn leaves its propagation directory when the host's /run is
        // not a tmpfs (it refuses to remove it then).
        let _ =
            std::fs::remove_dir_all(Path::new("/run/systemd/nspawn/propagate").join(&self.name));
        eprintln!(
            "testkit nspawn: {} stopped ({status}) in {:.1?}",
            self.name,
            started.elapsed()
        );
        self.status = Some(status);
        status
    }

    /// nspawn's child whose command is `systemd`: the guest's PID 1.
    fn wait_for_leader(&mut self, started: Instant) -> u32 {
        let nspawn = self.nspawn.as_ref().expect("nspawn").id();
        let found = crate::util::poll_until(BOOT_TIMEOUT, Duration::from_millis(10), || {
            if self.exited() {
                return Some(None);
            }
            children(nspawn)
                .into_iter()
                .find(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == "systemd")
                })
                .map(Some)
        });
        match found.flatten() {
            Some(pid) => pid,
            None => self.fail(&format!(
                "no systemd came up under nspawn in {:.1?}",
                started.elapsed()
            )),
        }
    }

    /// Polls `systemctl is-system-running --wait` in the guest until it
    /// answers a settled state.
    fn wait_until_settled(&mut self, started: Instant) -> String {
        let settled = crate::util::poll_until(BOOT_TIMEOUT, Duration::from_millis(50), || {
            if self.exited() {
                return Some(None);
            }
            let out = self.exec(&["systemctl", "is-system-running", "--wait"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (!UNSETTLED.contains(&state.as_str())).then_some(Some(state))
        });
        match settled.flatten() {
            Some(state) => state,
            None => self.fail(&format!(
                "the boot did not settle in {:.1?}",
                started.elapsed()
            )),
        }
    }

    /// Whether nspawn has exited (then its status is kept).
    fn exited(&mut self) -> bool {
        let status = self
            .nspawn
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if let Some(status) = status {
            self.nspawn = None;
            self.status = Some(status);
            remove_cgroups(&self.cgroups);
        }
        self.status.is_some()
    }

    fn fail(&mut self, why: &str) -> ! {
        if self.status.is_none() {
            self.stop();
        }
        panic!(
            "testkit nspawn: {}: {why} (nspawn: {:?})\n--- console:\n{}",
            self.name,
            self.status,
            self.console()
        )
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        if self.status.is_none() && self.nspawn.is_some() {
            self.stop();
        }
    }
}

impl std::fmt::Debug for Container<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("name", &self.name)
            .field("leader", &self.leader)
            .field("state", &self.state)
            .field("status", &self.status)
            .finish()
    }
}

fn require_nspawn() {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("systemd-nspawn").is_file()));
    assert!(
        found,
        "systemd-nspawn not found: install Debian's systemd-container (.ci/install)"
    );
}

/// The PIDs of `pid`'s children (every thread's).
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
    tasks
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Creates `testkit-nspawn-NAME` below this process's cgroup in the
/// unified hierarchy and in `name=systemd` where the host has it (module
/// doc); returns those made.
fn make_cgroups(name: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let unified = if Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        "/sys/fs/cgroup/unified"
    } else {
        "/sys/fs/cgroup"
    };
    let mut made = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let mount = match controllers {
            "" => unified,
            "name=systemd" => "/sys/fs/cgroup/systemd",
            _ => continue,
        };
        let parent = Path::new(mount).join(path.trim_start_matches('/'));
        sweep_cgroups(&parent);
        let dir = parent.join(format!("{CGROUP_PREFIX}{name}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => made.push(dir),
            Err(e) => panic!(
                "create the container's cgroup {}: {e} (nspawn needs a writable cgroup tree)",
                dir.display()
            ),
        }
    }
    made
}

/// Removes the cgroups left by containers of test processes that were
/// killed (nothing was left to remove them): `testkit-nspawn-testkit-PID-N`
/// in `parent` whose PID is gone.
fn sweep_cgroups(parent: &Path) {
    let stale: Vec<PathBuf> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix(CGROUP_PREFIX))
                .and_then(|n| n.strip_prefix("testkit-"))
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists())
        })
        .map(|e| e.path())
        .collect();
    for dir in stale {
        eprintln!(
            "testkit nspawn: removing {}, left by a killed test",
            dir.display()
        );
        remove_cgroups(&[dir]);
    }
}

/// Removes the container's cgroups, innermost first. The kernel frees a
/// cgroup a moment after its last process is reaped, so an `EBUSY` is
/// retried for a while.
fn remove_cgroups(dirs: &[PathBuf]) {
    fn remove(dir: &Path) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove(&entry.path())?;
            }
        }
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
    for dir in dirs {
        let removed =
            crate::util::poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
                remove(dir).ok()
            });
        if removed.is_none() {
            eprintln!("testkit nspawn: cannot remove cgroup {}", dir.display());
        }
    }
}

/// `s` without carriage returns and ANSI escape sequences.
fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\x1b' => {
                // CSI: ESC [ parameters final-byte (0x40..=0x7e).
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_loses_its_carriage_returns_and_colours() {
        assert_eq!(
            plain(
                "[\x1b[0;1;31mFAILED\x1b[0m] Failed to start \x1b[0;1;39mx.service\x1b[0m.\r\r\n"
            ),
            "[FAILED] Failed to start x.service.\n"
        );
    }

    #[test]
    fn the_systemd_tree_is_a_bookworm_tree_of_its_own() {
        assert_eq!(BOOKWORM_SYSTEMD.suite, Tree::BOOKWORM.suite);
        assert_ne!(BOOKWORM_SYSTEMD.name, Tree::BOOKWORM.name);
        assert!(!BOOKWORM_SYSTEMD.has_cloud_init());
        assert!(machine_id().len() == 32);
    }
}
