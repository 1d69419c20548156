//! Real Debian root filesystems (bookworm, trixie, sid) with Debian's own
//! `cloud-init`, or with another package list ([`Tree`]), for running
//! tagstrap's boot integration under the real thing.
//!
//! # What is built, and where it is cached
//! For each [`Tree`], `debootstrap --variant=minbase --include=PACKAGES SUITE
//! DIR http://deb.debian.org/debian`. The cloud-init trees,
//! `--include=cloud-init,python3-cffi-backend,iproute2,ca-certificates,curl`
//! ([`CLOUD_INIT_PACKAGES`]): bookworm 293 MiB and 12,900 files (cloud-init
//! 22.4.2), trixie 301 MiB (25.1.4), sid 336 MiB (26.2 at the time of
//! writing). `python3-cffi-backend` is
//! named because debootstrap does not resolve virtual packages:
//! `python3-cryptography` (cloud-init → oauthlib) needs
//! `python3-cffi-backend-api-*`, which only that package provides (on all
//! three releases), and
//! without it the build stops with cloud-init unconfigured. The downloaded
//! `.deb`s are deleted afterwards.
//!
//! Each tree is cached in `target/testkit-rootfs/<name>-<key>/` (honouring
//! `CARGO_TARGET_DIR`), where `<name>` is the tree's ([`Tree::name`]:
//! `bookworm`, `trixie`, `sid`, ...) and `<key>` hashes the suite, mirror,
//! variant, package list and [`RECIPE`] version, so changing any of them
//! builds a new tree. A build goes into `.<name>-<key>.building` and is
//! renamed into place only when it is complete, so a killed build never
//! leaves a half cache (the next build deletes the leftover). One build per
//! process and tree (a `OnceLock` each; different trees build at the same
//! time) and per machine (an `flock` on `<name>-<key>.lock`, so concurrent
//! test binaries wait for the first one). After a build, the trees of the
//! same name with another key are pruned (each under its own lock, skipped
//! while another process holds it), so a changed package list does not
//! leave the old 300 MiB behind.
//! A cold build took 68–74 s here (2 cores, deb.debian.org), mostly
//! downloading and unpacking; the three cloud-init trees built at once (as
//! the first run of `tests/cloud_init.rs` does) took 189 s (trixie, sid)
//! and 207 s (bookworm), on 2 cores other builds shared; trixie alone
//! 152 s at a load of 6. The build prints its time, past the test
//! harness's capture, so the CI log shows it. A killed test
//! takes its debootstrap down with it (`PR_SET_PDEATHSIG`). `debootstrap` comes from Debian's package of
//! that name (`.ci/install`).
//!
//! # One private copy per test
//! [`Rootfs::of`] gives each test its own writable view of the cached
//! tree: an overlayfs whose lower layer is the cache (never written) and
//! whose upper layer is in the test's temp dir. Measured here: the overlay
//! takes 7–14 ms, a `cp -a --reflink=auto` of the tree 1–5 s (ext4, no
//! reflinks; 2–3 s with two tests copying at once), so the copy is only the fallback where overlayfs is not
//! available (or `TESTKIT_ROOTFS_COPY=1`).
//!
//! # Why nothing is ever mounted on the host
//! The overlay is mounted inside a private mount namespace held by a small
//! holder process (`unshare --mount ... cat`, reading a pipe from this
//! process). The test reaches the merged tree through `/proc/<holder>/root`,
//! so [`Rootfs::path`] works with plain `std::fs`. When the `Rootfs` is
//! dropped, or this process dies, the pipe closes, the holder exits and the
//! kernel drops the namespace with its mount: nothing to unmount, nothing
//! left behind by a killed test. Every [`Rootfs::run`] then goes one level
//! deeper: `unshare --mount --uts --pid --fork --mount-proc=ROOT/proc`, a
//! tmpfs on `ROOT/run`, a read-only sysfs on `ROOT/sys`, then `chroot`. Those
//! mounts vanish with the command (a fresh `/run` per run is what a reboot
//! gives cloud-init); the hostname cloud-init sets stays in the UTS
//! namespace; every process it starts dies with the PID namespace. The
//! network is the host's, so servers on 127.0.0.x are reachable from inside.
//! `/dev` is the tree's own (debootstrap creates the usual device nodes).
//! debootstrap itself runs in a mount and PID namespace too, because it
//! mounts `/proc` and `/sys` into the target while it configures packages.
//!
//! Everything here needs root (chroot, mount namespaces), as CI has.
//!
//! # Image settings
//! Each copy gets `/etc/cloud/cloud.cfg.d/90-testkit-image.cfg` (what an
//! image builder would bake): `locale: C.UTF-8`, because Debian's
//! `locale-gen` ignores cloud-init's argument and the default `en_US.UTF-8`
//! then fails the `locale` module; `resize_rootfs: false` and `growpart`
//! off, so no stage ever looks at a host disk; from cloud-init 23.4 on also
//! `ssh_genkeytypes: []`, because a minimal tree has no `ssh-keygen` and
//! the `ssh` module would log a warning per key type, which 23.4 and later
//! count as recoverable errors ([`Rootfs::cloud_init_recoverable_errors`]):
//! a boot there records no warning at all. On 22.4, whose schema refuses an
//! empty list, those warnings stay in `cloud-init.log`; they are not errors.
//!
//! # How a boot runs its stages
//! [`Rootfs::cloud_init_boot`] runs what the tree's own systemd units run,
//! read from their `ExecStart=`, in one [`Rootfs::run`] (one `/run` for the
//! whole boot, as on a machine). Up to 24.2 (bookworm's 22.4) each of the
//! four units runs its stage as a process of its own (`cloud-init init
//! --local`, `cloud-init init`, `cloud-init modules --mode=config|final`).
//! From 24.3 on (trixie's 25.1, sid's 26.2) `cloud-init-main.service` runs
//! `cloud-init --all-stages`, one process that binds a Unix socket per stage
//! under `/run/cloud-init/share/`, and each stage's unit sends it `start`
//! with `nc` and runs the `exit N` it gets back when that stage is done
//! (cloud-init 24.3's "single process" change; the socket protocol is
//! `cloudinit/socket.py`). The old stage commands still work there (only
//! `modules --mode init`, unused at boot, is deprecated, since 24.1), but
//! they are not what such a machine boots with.
//!
//! # A static tagstrap
//! [`static_tagstrap`] builds `tagstrap` for `x86_64-unknown-linux-musl`
//! (release) once per process, so the same binary runs inside any tree,
//! and checks it has no ELF interpreter. Needs `rustup target add
//! x86_64-unknown-linux-musl` and Debian's `musl-tools` (`.ci/install`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where debootstrap downloads from.
pub const MIRROR: &str = "http://deb.debian.org/debian";
/// Packages on top of `minbase` for the cloud-init trees (see the module
/// doc for the cffi one, which trixie and sid still need). `iproute2`
/// because from trixie on cloud-init depends on `dhcpcd-base` instead of
/// `isc-dhcp-client`, which pulled it in on bookworm: without `ip`, the
/// `init` stage logs two warnings ("Could not print networks: missing 'ip'
/// and 'ifconfig' commands"), which cloud-init 23.4 and later count as
/// recoverable errors.
pub const CLOUD_INIT_PACKAGES: &[&str] = &[
    "cloud-init",
    "python3-cffi-backend",
    "iproute2",
    "ca-certificates",
    "curl",
];
/// Bumped when the build steps change in a way the package list does not show.
pub const RECIPE: u32 = 1;

/// One Debian tree: a release and the packages on top of `minbase`. Each
/// is cached on its own, under its `name` and a key of everything that
/// built it (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The cache directory's name before the key: `bookworm`, or
    /// `bookworm-systemd` for a second tree of the same release.
    pub name: &'static str,
    /// The Debian release debootstrap installs.
    pub suite: &'static str,
    /// Packages on top of `minbase`.
    pub packages: &'static [&'static str],
}

impl Tree {
    /// Debian 12, cloud-init 22.4.
    pub const BOOKWORM: Tree = Tree {
        name: "bookworm",
        suite: "bookworm",
        packages: CLOUD_INIT_PACKAGES,
    };
    /// Debian 13, cloud-init 25.1.
    pub const TRIXIE: Tree = Tree {
        name: "trixie",
        suite: "trixie",
        packages: CLOUD_INIT_PACKAGES,
    };
    /// Debian unstable, cloud-init 26.x at the time of writing.
    pub const SID: Tree = Tree {
        name: "sid",
        suite: "sid",
        packages: CLOUD_INIT_PACKAGES,
    };
    /// The cloud-init generations the boot tests run on.
    pub const CLOUD_INIT: [Tree; 3] = [Tree::BOOKWORM, Tree::TRIXIE, Tree::SID];

    /// Everything that built the tree, as stamped into it; its hash is the
    /// cache key.
    fn recipe(&self) -> String {
        format!(
            "{}\n{MIRROR}\nminbase\n{}\n{RECIPE}\n",
            self.suite,
            self.packages.join(",")
        )
    }

    /// `<name>-<key>`: the cache directory's name.
    fn dir_name(&self) -> String {
        format!("{}-{:016x}", self.name, fnv1a(self.recipe().as_bytes()))
    }

    /// Whether cloud-init is in the tree (then each copy gets the image's
    /// cloud-init settings).
    pub fn has_cloud_init(&self) -> bool {
        self.packages.contains(&"cloud-init")
    }
}

/// The systemd units of cloud-init's four stages, in boot order, as each
/// release names them: bookworm's `cloud-init.service` (the network stage)
/// is `cloud-init-network.service` from 24.3 on (trixie, sid).
pub const CLOUD_INIT_UNITS: [&[&str]; 4] = [
    &["cloud-init-local.service"],
    &["cloud-init-network.service", "cloud-init.service"],
    &["cloud-config.service"],
    &["cloud-final.service"],
];
/// From 24.3 on, this unit runs all four stages in one process
/// (`cloud-init --all-stages`), and each stage's unit only tells it to go on
/// (see [`Rootfs::cloud_init_boot`]).
pub const CLOUD_INIT_MAIN_UNIT: &str = "cloud-init-main.service";

/// A command inside the tree that has not finished by then is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// `PATH` inside the tree, as systemd gives services.
const CHROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The image-level cloud-init settings every copy gets (module doc).
const IMAGE_CFG: &str = "\
# testkit: what an image builder would bake in.
locale: C.UTF-8
resize_rootfs: false
growpart:
  mode: 'off'
";
/// Added to [`IMAGE_CFG`] for cloud-init 23.4 and later: no ssh host keys
/// (module doc). 22.4's schema wants at least one key type and logs
/// "Invalid cloud-config provided" for `[]`, and it counts no warnings, so
/// there the `ssh` module's are left alone.
const IMAGE_CFG_NO_SSH_KEYS: &str = "ssh_genkeytypes: []\n";

/// A test's own writable view of the cached tree (see the module doc).
pub struct Rootfs {
    /// The merged tree as this process sees it (`/proc/<holder>/root/...`
    /// for an overlay, the copy itself otherwise).
    root: PathBuf,
    /// The same tree as the chroot target, in the holder's namespace.
    chroot_dir: PathBuf,
    holder: Option<Holder>,
    setup: Duration,
    /// Dropped last: the upper and work layers, or the copy.
    _dir: tempfile::TempDir,
}

/// The process that holds the overlay's mount namespace.
struct Holder {
    child: Child,
    /// Closed on drop: the holder's `cat` ends, and the namespace with it.
    stdin: Option<ChildStdin>,
}

impl Rootfs {
    /// A private writable copy of `tree`'s cached tree (built on first use;
    /// see the module doc for how long that takes and where it goes).
    pub fn of(tree: Tree) -> Rootfs {
        require_root();
        let cache = &tree_dir(tree);
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("testkit-rootfs-")
            .tempdir()
            .expect("create rootfs temp dir");
        let force_copy = std::env::var_os("TESTKIT_ROOTFS_COPY").is_some_and(|v| v != "0");
        let overlay = if force_copy {
            Err("TESTKIT_ROOTFS_COPY is set".to_string())
        } else {
            mount_overlay(cache, dir.path())
        };
        let (root, chroot_dir, holder, how) = match overlay {
            Ok((holder, merged)) => {
                let root = Path::new("/proc")
                    .join(holder.child.id().to_string())
                    .join("root")
                    .join(merged.strip_prefix("/").expect("absolute temp dir"));
                (root, merged, Some(holder), "overlay")
            }
            Err(why) => {
                if !force_copy {
                    eprintln!("testkit rootfs: no overlay ({why}), copying the tree instead");
                }
                let copy = dir.path().join("root");
                let out = Command::new("cp")
                    .arg("-a")
                    .arg("--reflink=auto")
                    .arg(cache)
                    .arg(&copy)
                    .stdin(Stdio::null())
                    .output()
                    .expect("spawn cp");
                assert!(
                    out.status.success(),
                    "cp -a {}: {}",
                    cache.display(),
                    text(&out)
                );
                (copy.clone(), copy, None, "copy")
            }
        };
        let rootfs = Rootfs {
            root,
            chroot_dir,
            holder,
            setup: started.elapsed(),
            _dir: dir,
        };
        eprintln!(
            "testkit rootfs: private {how} of {} in {:.1?}",
            cache.display(),
            rootfs.setup
        );
        if tree.has_cloud_init() {
            rootfs.write(
                "/etc/cloud/cloud.cfg.d/90-testkit-image.cfg",
                rootfs.image_cfg(),
                0o644,
            );
        }
        rootfs
    }

    /// How long making this private copy took.
    pub fn setup_time(&self) -> Duration {
        self.setup
    }

    /// The host path of `rel` (`/etc/x` or `etc/x`) inside the tree.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Writes `content` to `rel` with `mode` (owner root), creating parent
    /// directories (0755) as needed; returns the host path.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        // Remove first: a file from the lower layer may have another mode,
        // and `write` keeps an existing file's mode until the chmod.
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        path
    }

    /// The contents of `rel` as (lossy) UTF-8, or `None` if it does not exist.
    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read(self.path(rel))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Copies the host file `src` to `dest` in the tree, mode 0755.
    pub fn install_binary(&self, src: &Path, dest: &str) {
        let bytes = std::fs::read(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
        self.write(dest, bytes, 0o755);
    }

    /// Seeds cloud-init's NoCloud datasource: `meta-data` (`instance-id`,
    /// `local-hostname`) and `user-data` in `/var/lib/cloud/seed/nocloud/`,
    /// and `/etc/cloud/cloud.cfg.d/99-test.cfg` limiting cloud-init to that
    /// datasource with networking left alone. A new `instance_id` makes the
    /// next stages a new instance's first boot.
    pub fn seed_nocloud(&self, instance_id: &str, user_data: &[u8]) {
        assert!(
            !instance_id.is_empty()
                && instance_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "instance id {instance_id:?}: use [A-Za-z0-9_.-]"
        );
        let seed = "/var/lib/cloud/seed/nocloud";
        self.write(
            &format!("{seed}/meta-data"),
            format!("instance-id: {instance_id}\nlocal-hostname: testkit-rootfs\n"),
            0o644,
        );
        self.write(&format!("{seed}/user-data"), user_data, 0o600);
        self.write(
            "/etc/cloud/cloud.cfg.d/99-test.cfg",
            "datasource_list: [NoCloud]\nnetwork: {config: disabled}\n",
            0o644,
        );
    }

    /// Runs `cmd` inside the tree (see the module doc for the namespaces and
    /// mounts) with an environment of `PATH` and `env` only, stdin empty;
    /// killed after 5 minutes.
    pub fn run(&self, cmd: &[&str], env: &[(&str, &str)]) -> Output {
        assert!(!cmd.is_empty(), "an empty command");
        let (mut command, root) = self.mounted_command("unshare");
        let root = root.to_str().expect("a UTF-8 temp dir path");
        command
            .args(["--mount", "--uts", "--pid", "--fork", "--kill-child"])
            .arg(format!("--mount-proc={root}/proc"))
            .args(["--", "sh", "-euc", IN_NAMESPACE, "sh", root])
            .args(cmd)
            .env_clear()
            .env("PATH", CHROOT_PATH)
            .envs(env.iter().copied());
        run_with_timeout(command, RUN_TIMEOUT)
    }

    /// `program` as a command that runs where the tree is mounted (in the
    /// overlay's mount namespace, through `nsenter`), and the tree's path
    /// there: for a tool that takes the tree as a directory of its own
    /// (`systemd-nspawn -D`, [`crate::nspawn`]).
    pub fn mounted_command(&self, program: &str) -> (Command, &Path) {
        let command = match &self.holder {
            Some(holder) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--target={}", holder.child.id()))
                    .args(["--mount", "--", program]);
                c
            }
            None => Command::new(program),
        };
        (command, &self.chroot_dir)
    }

    /// One boot's cloud-init, as this tree's systemd units run it (module
    /// doc): for each unit, in boot order, what ran (`UNIT: EXECSTART`) and
    /// its output. From 24.3 on, `cloud-init-main.service` comes last, with
    /// the single process's own output and exit status. All of it in one
    /// [`Rootfs::run`], so the boot has one fresh `/run`, as after a reboot.
    pub fn cloud_init_boot(&self) -> Vec<(String, Output)> {
        use std::os::unix::process::ExitStatusExt;
        let main = self.unit_exec_start(CLOUD_INIT_MAIN_UNIT);
        let mut args = vec!["sh", "-uc", CLOUD_INIT_BOOT, "sh", BOOT_DIR];
        let main_cmd = main.clone().unwrap_or_default();
        args.push(&main_cmd);
        let stages: Vec<(String, String)> = CLOUD_INIT_UNITS
            .iter()
            .map(|names| {
                names
                    .iter()
                    .find_map(|unit| Some((unit.to_string(), self.unit_exec_start(unit)?)))
                    .unwrap_or_else(|| panic!("none of {names:?} in the tree"))
            })
            .collect();
        args.extend(stages.iter().map(|(_, cmd)| cmd.as_str()));
        let _ = std::fs::remove_dir_all(self.path(BOOT_DIR));
        let out = self.run(&args, &[]);
        assert!(out.status.success(), "the boot script: {}", text(&out));
        let result = |name: &str| -> Output {
            let read = |ext: &str| std::fs::read(self.path(&format!("{BOOT_DIR}/{name}.{ext}")));
            let rc = read("rc").unwrap_or_else(|e| panic!("{BOOT_DIR}/{name}.rc: {e}"));
            let rc: i32 = String::from_utf8_lossy(&rc)
                .trim()
                .parse()
                .expect("an exit code");
            Output {
                status: ExitStatus::from_raw(rc << 8),
                stdout: read("out").unwrap_or_default(),
                stderr: read("err").unwrap_or_default(),
            }
        };
        let mut outputs: Vec<(String, Output)> = stages
            .iter()
            .enumerate()
            .map(|(i, (unit, cmd))| (format!("{unit}: {cmd}"), result(&i.to_string())))
            .collect();
        if let Some(cmd) = main {
            outputs.push((format!("{CLOUD_INIT_MAIN_UNIT}: {cmd}"), result("main")));
        }
        let _ = std::fs::remove_dir_all(self.path(BOOT_DIR));
        outputs
    }

    /// The `ExecStart=` of `unit` in the tree's `/lib/systemd/system`, or
    /// `None` without that unit. It must read the same as a shell command
    /// (the boot runs it with `sh -c`): no `%` specifiers, no `$`.
    fn unit_exec_start(&self, unit: &str) -> Option<String> {
        let text = self.read(&format!("/lib/systemd/system/{unit}"))?;
        let mut starts = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("ExecStart="));
        let cmd = starts
            .next()
            .unwrap_or_else(|| panic!("{unit}: no ExecStart="));
        assert!(starts.next().is_none(), "{unit}: more than one ExecStart=");
        assert!(
            !cmd.contains(['%', '$']) && !cmd.starts_with(['-', '@', ':', '+', '!']),
            "{unit}: ExecStart={cmd} is not a plain shell command"
        );
        Some(cmd.to_string())
    }

    /// The image's cloud-init settings for this tree's cloud-init.
    fn image_cfg(&self) -> String {
        let mut cfg = IMAGE_CFG.to_string();
        if self.cloud_init_version() >= (23, 4) {
            cfg.push_str(IMAGE_CFG_NO_SSH_KEYS);
        }
        cfg
    }

    /// This tree's cloud-init version, major and minor (`26.2-1` is
    /// `(26, 2)`), from dpkg's database.
    pub fn cloud_init_version(&self) -> (u32, u32) {
        let status = self
            .read("/var/lib/dpkg/status")
            .expect("/var/lib/dpkg/status");
        cloud_init_version_in(&status)
    }

    /// The errors cloud-init recorded for its last boot: each stage's
    /// `errors` in `/var/lib/cloud/data/status.json` (as `"stage: error"`),
    /// plus those of `result.json` (written when the final stage ends). A
    /// missing file is an error too, so an empty list means every stage ran
    /// and none failed. (`/run/cloud-init/` only links to these, and `/run`
    /// does not outlive a [`Rootfs::run`].)
    pub fn cloud_init_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let read = |name: &str| -> Result<serde_json::Value, String> {
            let rel = format!("/var/lib/cloud/data/{name}");
            let text = self
                .read(&rel)
                .ok_or_else(|| format!("no {rel}: cloud-init did not get that far"))?;
            serde_json::from_str(&text).map_err(|e| format!("{rel}: {e}"))
        };
        match read("status.json") {
            Ok(status) => {
                if let Some(stages) = status["v1"].as_object() {
                    for (stage, v) in stages {
                        for e in v["errors"].as_array().into_iter().flatten() {
                            errors.push(format!("{stage}: {}", json_text(e)));
                        }
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        match read("result.json") {
            Ok(result) => {
                for e in result["v1"]["errors"].as_array().into_iter().flatten() {
                    let e = json_text(e);
                    if !errors.iter().any(|seen| seen.ends_with(&e)) {
                        errors.push(format!("result: {e}"));
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        errors
    }

    /// The warnings (and worse) cloud-init logged in its last boot, which
    /// from 23.4 on it records in `status.json` as each stage's
    /// `recoverable_errors` (`{"WARNING": [...], "DEPRECATED": [...]}`), as
    /// `"stage: LEVEL: message"`; `None` where this cloud-init records no
    /// such thing (22.4 has no `recoverable_errors` at all, and its warnings
    /// are in `/var/log/cloud-init.log` only). cloud-init 23.4 made them
    /// count: `cloud-init status` then says `extended_status: degraded done`
    /// and exits 2 (23.4's "degraded" state, canonical/cloud-init#4500;
    /// its docs' "Failure states"). Ubuntu and RHEL patch that exit code
    /// back to 0; Debian's trixie and sid packages do not.
    pub fn cloud_init_recoverable_errors(&self) -> Option<Vec<String>> {
        let rel = "/var/lib/cloud/data/status.json";
        let text = self.read(rel)?;
        let status: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        recoverable_errors_in(&status)
    }

    /// The multipart user-data that `cloud-init devel make-mime -a FILE:TYPE
    /// ...` builds from `parts` (host files and short types such as
    /// `x-shellscript` or `cloud-config`), run inside the tree so the result
    /// is what this cloud-init itself produces.
    pub fn make_mime(&self, parts: &[(&Path, &str)]) -> Vec<u8> {
        let out = self.make_mime_with(parts, &[]);
        assert!(out.status.success(), "make-mime: {}", text(&out));
        out.stdout
    }

    /// `make-mime` with more arguments (`--force`, which a part type that
    /// cloud-init does not know needs), its whole output returned.
    pub fn make_mime_with(&self, parts: &[(&Path, &str)], args: &[&str]) -> Output {
        let dir = "/tmp/testkit-make-mime";
        let _ = std::fs::remove_dir_all(self.path(dir));
        // Relative names: make-mime puts the path as given into each part's
        // Content-Disposition filename.
        let mut cmd: Vec<String> = ["sh", "-c", MAKE_MIME, "sh", dir]
            .map(String::from)
            .to_vec();
        for (file, kind) in parts {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_else(|| panic!("a file name in {}", file.display()));
            assert!(!name.contains(':'), "make-mime splits on ':': {name}");
            let bytes =
                std::fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
            self.write(&format!("{dir}/{name}"), bytes, 0o644);
            cmd.push("-a".into());
            cmd.push(format!("{name}:{kind}"));
        }
        cmd.extend(args.iter().map(|a| a.to_string()));
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let out = self.run(&cmd, &[]);
        let _ = std::fs::remove_dir_all(self.path(dir));
        out
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if let Some(mut holder) = self.holder.take() {
            drop(holder.stdin.take());
            let exited =
                crate::util::poll_until(Duration::from_secs(5), Duration::from_millis(5), || {
                    holder.child.try_wait().ok().flatten()
                });
            if exited.is_none() {
                let _ = holder.child.kill();
            }
            let _ = holder.child.wait();
        }
    }
}

impl std::fmt::Debug for Rootfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rootfs")
            .field("root", &self.root)
            .field("overlay", &self.holder.is_some())
            .finish()
    }
}

/// The mounts each run makes in its own namespace before the chroot:
/// `$1` is the tree, the rest the command.
const IN_NAMESPACE: &str = r#"
r=$1; shift
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r/run"
mkdir -m 1777 "$r/run/lock"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
exec chroot "$r" "$@"
"#;

/// Where [`Rootfs::cloud_init_boot`] has each unit's output, `N.out`,
/// `N.err`, `N.rc` (and `main.*`) written, inside the tree.
const BOOT_DIR: &str = "/tmp/testkit-boot";

/// One boot ([`Rootfs::cloud_init_boot`]): `$1` the results directory, `$2`
/// the `ExecStart=` of `cloud-init-main.service` (empty before 24.3), the
/// rest the stage units' in boot order. The main process is started first
/// and each unit once the main process has bound its socket: all four
/// sockets are bound before it tells systemd it is ready (`READY=1`, what
/// `Type=notify` waits for before the stage units start), `final.sock`
/// last. The wait is a poll with a deadline, and it stops if the main
/// process dies: the units then fail on their own, and the boot with them.
const CLOUD_INIT_BOOT: &str = r#"
d=$1 main=$2; shift 2
mkdir -p "$d"
if [ -n "$main" ]; then
  sh -c "$main" </dev/null >"$d/main.out" 2>"$d/main.err" &
  pid=$!
  n=0
  while [ ! -S /run/cloud-init/share/final.sock ] && kill -0 "$pid" 2>/dev/null && [ "$n" -lt 6000 ]; do
    sleep 0.01; n=$((n + 1))
  done
fi
i=0
for cmd in "$@"; do
  rc=0
  sh -c "$cmd" </dev/null >"$d/$i.out" 2>"$d/$i.err" || rc=$?
  echo "$rc" >"$d/$i.rc"
  i=$((i + 1))
done
if [ -n "$main" ]; then
  rc=0
  wait "$pid" || rc=$?
  echo "$rc" >"$d/main.rc"
fi
"#;

/// `cloud-init devel make-mime` in `$1`, with the rest as its arguments.
const MAKE_MIME: &str = r#"cd "$1" && shift && exec cloud-init devel make-mime "$@""#;

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// [`Rootfs::cloud_init_recoverable_errors`] of a `status.json`.
fn recoverable_errors_in(status: &serde_json::Value) -> Option<Vec<String>> {
    let mut found = None;
    for (stage, v) in status["v1"].as_object()? {
        let Some(levels) = v.get("recoverable_errors") else {
            continue;
        };
        let list: &mut Vec<String> = found.get_or_insert_with(Vec::new);
        for (level, messages) in levels.as_object().into_iter().flatten() {
            for m in messages.as_array().into_iter().flatten() {
                list.push(format!("{stage}: {level}: {}", json_text(m)));
            }
        }
    }
    found
}

/// cloud-init's major and minor version in dpkg's `status` file.
fn cloud_init_version_in(status: &str) -> (u32, u32) {
    let version = status
        .split("\n\n")
        .find(|p| p.lines().any(|l| l == "Package: cloud-init"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("Version: ")))
        .expect("cloud-init in dpkg's status");
    // Without an epoch (`1:`), should one come.
    let version = version.split_once(':').map_or(version, |(_, v)| v);
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>());
    match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor),
        _ => panic!("cloud-init version {version:?}"),
    }
}

fn json_text(v: &serde_json::Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

fn require_root() {
    // SAFETY: geteuid(2) has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "testkit rootfs needs root (debootstrap, chroot, mount namespaces)"
    );
}

/// Mounts the overlay in a new mount namespace held by a child process;
/// returns it and the merged directory (a path in that namespace).
fn mount_overlay(lower: &Path, dir: &Path) -> Result<(Holder, PathBuf), String> {
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir(d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }
    // Overlay options are split on ',' and ':'.
    for p in [lower, &upper, &work] {
        let s = p.to_str().ok_or("a non-UTF-8 path")?;
        if s.contains([',', ':']) {
            return Err(format!("{s} holds ',' or ':'"));
        }
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount -t overlay overlay -o "$1" "$2" && echo mounted && exec cat >/dev/null"#)
        .args(["sh", &options])
        .arg(&merged)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn unshare: {e}"))?;
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let _ = stdout.read_line(&mut line);
    if line.trim() != "mounted" {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("mount -t overlay: {}", err.trim()));
    }
    let stdin = child.stdin.take();
    Ok((Holder { child, stdin }, merged))
}

/// Spawns `command` with stdin empty and its output captured; SIGKILLs it
/// if it has not exited after `timeout` (the output then ends with a note).
pub(crate) fn run_with_timeout(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", command.get_program()));
    let pump = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = pump(child.stdout.take().map(|s| Box::new(s) as _));
    let err = pump(child.stderr.take().map(|s| Box::new(s) as _));
    let finished = crate::util::poll_until(timeout, Duration::from_millis(10), || {
        child.try_wait().ok().flatten()
    });
    let status: ExitStatus = finished.unwrap_or_else(|| {
        // --kill-child: the namespace's processes die with unshare.
        let _ = child.kill();
        child.wait().expect("wait for killed child")
    });
    let stdout = out.join().unwrap_or_default();
    let mut stderr = err.join().unwrap_or_default();
    if finished.is_none() {
        let _ = writeln!(stderr, "testkit rootfs: killed after {timeout:?}");
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// `target/` of this workspace, or `$CARGO_TARGET_DIR`.
pub(crate) fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace")
        .to_path_buf();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => workspace.join(d),
        _ => workspace.join("target"),
    }
}

/// FNV-1a: a stable cache key (std's hashers may change between releases).
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `tree`'s cached tree, built first if needed: once per process and tree
/// (other trees build meanwhile), once per machine (the flock), and the
/// same name's trees of other keys pruned (module doc).
pub fn tree_dir(tree: Tree) -> PathBuf {
    type Slots = std::sync::Mutex<Vec<(Tree, std::sync::Arc<OnceLock<PathBuf>>)>>;
    static SLOTS: Slots = std::sync::Mutex::new(Vec::new());
    let slot = {
        let mut slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        match slots.iter().find(|(t, _)| *t == tree) {
            Some((_, slot)) => slot.clone(),
            None => {
                let slot = std::sync::Arc::new(OnceLock::new());
                slots.push((tree, slot.clone()));
                slot
            }
        }
    };
    slot.get_or_init(|| {
        require_root();
        locked_cache(
            "testkit-rootfs",
            tree.name,
            &tree.dir_name(),
            |base, building| build(base, building, tree),
        )
    })
    .clone()
}

/// `target/AREA/NAME`, built first when it is missing, under an `flock` on
/// `AREA/NAME.lock`: one build per machine, concurrent test binaries wait
/// for it. `build` gets `AREA` and the directory to build into,
/// `AREA/.NAME.building` (a killed build's leftover removed first: it held
/// the lock this one now holds), and returns once the build is complete;
/// only then is it renamed into place, so a half build is never found, and
/// `family`'s caches of other keys are pruned ([`prune`]). Shared by the
/// trees here and `crate::wine`.
pub(crate) fn locked_cache(
    area: &str,
    family: &str,
    name: &str,
    build: impl FnOnce(&Path, &Path),
) -> PathBuf {
    let base = target_dir().join(area);
    std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("create {}: {e}", base.display()));
    let dir = base.join(name);
    let lock = FileLock::acquire(&base.join(format!("{name}.lock")));
    if !dir.is_dir() {
        let building = base.join(format!(".{name}.building"));
        if building.exists() {
            std::fs::remove_dir_all(&building)
                .unwrap_or_else(|e| panic!("remove stale {}: {e}", building.display()));
        }
        build(&base, &building);
        std::fs::rename(&building, &dir)
            .unwrap_or_else(|e| panic!("rename {} into place: {e}", building.display()));
        prune(&base, family, name);
    }
    drop(lock);
    dir
}

/// Removes the trees of `name` built with another key than `keep`'s (an
/// older package list or recipe), with their logs, locks and killed
/// builds, so that the cache holds one tree per name. A tree whose lock
/// another process holds (a test of another checkout using it) is left for
/// a later build. Also prunes `crate::wine`'s prefixes (name `wine`).
pub(crate) fn prune(base: &Path, name: &str, keep: &str) {
    // `<name>-<key>`, `<name>-<key>.lock`/`.log`, `.<name>-<key>.building`
    // all belong to the tree `<name>-<key>`.
    let tree_of = |file: &str| -> Option<String> {
        let stem = file.trim_start_matches('.');
        let stem = [".lock", ".log", ".building"]
            .iter()
            .find_map(|ext| stem.strip_suffix(ext))
            .unwrap_or(stem);
        let key = stem.strip_prefix(name)?.strip_prefix('-')?;
        let is_key = key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit());
        (is_key && stem != keep).then(|| stem.to_string())
    };
    let mut old: Vec<String> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(tree_of))
        .collect();
    old.sort();
    old.dedup();
    for stem in old {
        let Some(lock) = FileLock::try_acquire(&base.join(format!("{stem}.lock"))) else {
            eprintln!("testkit rootfs: {stem} is in use, not pruned");
            continue;
        };
        for dir in [base.join(&stem), base.join(format!(".{stem}.building"))] {
            if dir.is_dir() {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    eprintln!("testkit rootfs: cannot prune {}: {e}", dir.display());
                    return;
                }
                eprintln!("testkit rootfs: pruned {}", dir.display());
            }
        }
        let _ = std::fs::remove_file(base.join(format!("{stem}.log")));
        // Last, while still held: a process that opens it after this
        // finds no tree and builds its own.
        let _ = std::fs::remove_file(base.join(format!("{stem}.lock")));
        drop(lock);
    }
}

/// An exclusive `flock` on a file, released on drop (or when the process dies).
struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// The lock if no other process holds it now.
    fn try_acquire(path: &Path) -> Option<FileLock> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ok()?;
        // SAFETY: flock(2) on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        (rc == 0).then_some(FileLock { _file: file })
    }

    fn acquire(path: &Path) -> FileLock {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let fd = file.as_raw_fd();
        // SAFETY: flock(2) on a descriptor this function owns.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            eprintln!(
                "testkit rootfs: waiting for another process building {}",
                path.display()
            );
            // SAFETY: as above, now blocking.
            let rc = unsafe { libc::flock(fd, libc::LOCK_EX) };
            assert_eq!(rc, 0, "flock {}", path.display());
        }
        FileLock { _file: file }
    }
}

/// Builds `tree` into `building` (for `base/<name>-<key>`; `locked_cache`
/// holds the lock and renames it into place).
fn build(base: &Path, building: &Path, tree: Tree) {
    let (name, recipe) = (&tree.dir_name(), &tree.recipe());
    let packages = tree.packages.join(",");
    let started = Instant::now();
    let log_path = base.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
    eprintln!(
        "testkit rootfs: building Debian {} with {packages} (debootstrap, about 70 s; log: {})",
        tree.suite,
        log_path.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--pid", "--fork", "--kill-child", "--"])
        .arg("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={packages}"))
        .arg(tree.suite)
        .arg(building)
        .arg(MIRROR)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log);
    // SAFETY: prctl(2) only, between fork and exec: debootstrap dies with
    // this process instead of writing into a tree the next build deletes.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("unshare not found (util-linux)")
        }
        Err(e) => panic!("spawn debootstrap: {e}"),
    };
    if !status.success() {
        let log = crate::util::read_lossy(&log_path);
        let detail = crate::util::read_lossy(&building.join("debootstrap/debootstrap.log"));
        panic!(
            "debootstrap failed ({status}); is it installed (.ci/install)?\n{}\n--- debootstrap.log:\n{}",
            tail(&log, 40),
            tail(&detail, 40)
        );
    }
    // The downloaded packages: a third of the tree, and never needed again.
    let archives = building.join("var/cache/apt/archives");
    for entry in std::fs::read_dir(&archives).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "deb") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    std::fs::write(building.join("etc/testkit-rootfs"), recipe).expect("write recipe stamp");
    // To stderr directly, not with eprintln!: the test harness keeps a
    // passing test's output to itself, and the CI log (.ci/run) must show
    // what each tree cost.
    let _ = writeln!(
        std::io::stderr(),
        "testkit rootfs: built {} in {:.1?}",
        base.join(name).display(),
        started.elapsed()
    );
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The musl target the static tagstrap is built for.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// `tagstrap` built static (`--release --target x86_64-unknown-linux-musl`)
/// from this workspace, once per process; panics if the binary has an ELF
/// interpreter (i.e. is dynamically linked).
pub fn static_tagstrap() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let started = Instant::now();
        let bin = release_build(MUSL_TARGET, "Debian's musl-tools");
        let elf = std::fs::read(&bin).unwrap_or_else(|e| panic!("read {}: {e}", bin.display()));
        assert!(
            !has_interpreter(&elf),
            "{} is dynamically linked (has PT_INTERP)",
            bin.display()
        );
        eprintln!(
            "testkit rootfs: static tagstrap ({} bytes) ready in {:.1?}",
            elf.len(),
            started.elapsed()
        );
        bin
    })
    .clone()
}

/// `cargo build --release --locked --target TARGET --bin tagstrap` in this
/// workspace (a no-op when it is up to date), and the binary's path; `needs`
/// names what the target needs besides `rustup target add` (.ci/install).
/// Shared by [`static_tagstrap`] and the Windows build (`crate::wine`).
pub(crate) fn release_build(target: &str, needs: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command.args([
        "build",
        "--release",
        "--locked",
        "--target",
        target,
        "--bin",
        "tagstrap",
    ]);
    // Not the variables cargo sets for a test process: ring's build script
    // reruns when CARGO_MANIFEST_DIR differs from the shell's (unset), and
    // with it the whole TLS stack and tagstrap, so .ci/release's fresh build
    // would be redone here, LTO and all.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_for_tests = [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
        ]
        .contains(&key.as_ref())
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE_");
        if set_for_tests {
            command.env_remove(key.as_ref());
        }
    }
    let out = command
        .current_dir(workspace)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cargo:?}: {e}"));
    assert!(
        out.status.success(),
        "cargo build --target {target} failed; it needs `rustup target add {target}` \
         and {needs} (.ci/install):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = if target.contains("windows") {
        "tagstrap.exe"
    } else {
        "tagstrap"
    };
    target_dir().join(target).join("release").join(exe)
}

/// Whether a 64-bit little-endian ELF file has a `PT_INTERP` program header.
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    assert!(
        elf.len() >= 64 && elf.starts_with(b"\x7fELF\x02\x01"),
        "not a 64-bit little-endian ELF file"
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        elf.get(o..o + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().expect("4 bytes")) == PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_has_an_interpreter_and_the_musl_build_has_none() {
        let sh = std::fs::read("/bin/sh").unwrap();
        assert!(has_interpreter(&sh));
        let musl = target_dir().join(MUSL_TARGET).join("release/tagstrap");
        if let Ok(elf) = std::fs::read(musl) {
            assert!(!has_interpreter(&elf));
        }
    }

    #[test]
    fn a_new_key_prunes_the_old_trees_of_its_name_and_nothing_else() {
        let base = tempfile::tempdir().unwrap();
        let b = base.path();
        let tree = Tree::BOOKWORM;
        let current = tree.dir_name();
        let (old, killed, busy) = (
            "bookworm-00000000000000aa",
            "bookworm-00000000000000bb",
            "bookworm-00000000000000cc",
        );
        let others = [
            current.clone(),
            "trixie-00000000000000aa".to_string(),
            "bookworm-systemd-00000000000000aa".to_string(),
            "bookworm-notakey".to_string(),
        ];
        for dir in others.iter().map(String::as_str).chain([old, busy]) {
            std::fs::create_dir_all(b.join(dir).join("etc")).unwrap();
            std::fs::write(b.join(format!("{dir}.lock")), "").unwrap();
            std::fs::write(b.join(format!("{dir}.log")), "log").unwrap();
        }
        std::fs::create_dir(b.join(format!(".{killed}.building"))).unwrap();
        std::fs::write(b.join(format!("{killed}.lock")), "").unwrap();
        // Another process (here: another open file) holds the busy tree.
        let held = FileLock::try_acquire(&b.join(format!("{busy}.lock"))).unwrap();

        prune(b, tree.name, &tree.dir_name());

        for gone in [
            old.to_string(),
            format!("{old}.lock"),
            format!("{old}.log"),
            format!(".{killed}.building"),
            format!("{killed}.lock"),
        ] {
            assert!(!b.join(&gone).exists(), "{gone} is still there");
        }
        for kept in others.iter().map(String::as_str).chain([busy]) {
            assert!(b.join(kept).join("etc").is_dir(), "{kept} was pruned");
            assert!(
                b.join(format!("{kept}.lock")).exists(),
                "{kept}.lock was removed"
            );
        }
        drop(held);
    }

    #[test]
    fn each_tree_has_its_own_cache_name() {
        let names: Vec<String> = Tree::CLOUD_INIT.iter().map(Tree::dir_name).collect();
        assert!(names[0].starts_with("bookworm-") && names[1].starts_with("trixie-"));
        assert!(names[2].starts_with("sid-"));
        let other = Tree {
            packages: &["systemd"],
            ..Tree::BOOKWORM
        };
        assert_ne!(other.dir_name(), Tree::BOOKWORM.dir_name());
        assert!(Tree::BOOKWORM.has_cloud_init() && !other.has_cloud_init());
    }

    #[test]
    fn the_cloud_init_version_comes_from_dpkg() {
        let status = |v: &str| {
            format!(
                "Package: cloud-guest-utils\nVersion: 0.33-1\n\n\
                 Package: cloud-init\nStatus: install ok installed\nVersion: {v}\n\n\
                 Package: curl\nVersion: 8.14.1-2\n"
            )
        };
        assert_eq!(cloud_init_version_in(&status("22.4.2-1+deb12u4")), (22, 4));
        assert_eq!(cloud_init_version_in(&status("25.1.4-1+deb13u1")), (25, 1));
        assert_eq!(cloud_init_version_in(&status("26.2-1")), (26, 2));
        assert_eq!(cloud_init_version_in(&status("1:27.1~rc1-1")), (27, 1));
    }

    #[test]
    fn recoverable_errors_are_none_before_23_4_and_listed_per_stage_after() {
        // The shapes of 22.4's and 26.2's status.json (trimmed).
        let old = serde_json::json!({"v1": {
            "datasource": "DataSourceNoCloud",
            "init": {"errors": [], "finished": 1.0, "start": 0.5},
            "modules-final": {"errors": [], "finished": 2.0, "start": 1.5},
            "stage": null,
        }});
        assert_eq!(recoverable_errors_in(&old), None);
        let new = serde_json::json!({"v1": {
            "datasource": "DataSourceNoCloud",
            "init": {"errors": [], "recoverable_errors": {
                "WARNING": ["Unhandled unknown content-type (text/x-tagstrap-tags)"],
                "DEPRECATED": ["`x` is deprecated"],
            }},
            "init-local": {"errors": [], "recoverable_errors": {}},
            "stage": null,
        }});
        assert_eq!(
            recoverable_errors_in(&new),
            Some(vec![
                "init: DEPRECATED: `x` is deprecated".to_string(),
                "init: WARNING: Unhandled unknown content-type (text/x-tagstrap-tags)".into(),
            ])
        );
        let clean = serde_json::json!({"v1": {"init": {"errors": [], "recoverable_errors": {}}}});
        assert_eq!(recoverable_errors_in(&clean), Some(vec![]));
    }

    #[test]
    fn the_cache_key_is_stable() {
        // Changing FNV would silently rebuild every cache.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
