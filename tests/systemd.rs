//! The packaged unit under a real systemd: Debian bookworm's systemd 252
//! as PID 1 in `systemd-nspawn` ([`Container`]), on the bookworm systemd
//! tree ([`BOOKWORM_SYSTEMD`]), with tagstrap's `.deb` installed by `dpkg
//! -i` in a chroot before the first boot, as an image builder does. The
//! operator's part is what an operator writes: `/etc/tagstrap/config.toml`
//! (the store's address, the test CA), `/etc/tagstrap/tags`, the store
//! token in `/etc/tagstrap/vault-token` (0600) and the drop-in that loads
//! it as a credential (`LoadCredential=`; the package's unit has none).
//!
//! The guest shares the host's loopback, where the test starts a Squid
//! with basic auth, an OpenBao holding the proxy password and an HTTPS
//! origin on 127.0.0.2 (127.0.0.1 is always in tagstrap's no-proxy list,
//! and the point is to go through the proxy) serving the install script.
//! The script checks its proxy environment (a sha256 only, so no file
//! holds the password) and appends the machine ID to [`RUNS`]; a second
//! unit of the test's, ordered `After=tagstrap.service` with
//! `EnvironmentFile=/etc/tagstrap/proxy.env` (no `-`: it fails if the file
//! is not there yet), records the sha256 of the `https_proxy` it got. A
//! third case seals the token with `systemd-creds` on the running machine
//! and boots it again with `LoadCredentialEncrypted=`; a fourth upgrades
//! to a release 2 whose packaged config changed.
//!
//! Needs root, `systemd-nspawn` and `debootstrap` (`.ci/install`), and the
//! `.deb` that `.ci/release` builds (`testkit::artifacts::deb`); the first run builds the tree (about two
//! minutes) and later ones use the cache in `target/`.

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{secret_forms, sha256_hex};
use testkit::nspawn::{self, Container, BOOKWORM_SYSTEMD};
use testkit::rootfs::text;
use testkit::{artifacts, Bao, Origin, Reply, Rootfs, Squid, TestCa};

const USER: &str = "svc-agent";
/// Holds every character that breaks a naive proxy URL.
const PASSWORD: &str = "p@ss:/%w0rd";
const ORIGIN_IP: &str = "127.0.0.2";
const NO_PROXY: &str = "localhost,127.0.0.1,::1,[::1],169.254.169.254";
/// What the install script appends `machine=ID` to, once per run.
const RUNS: &str = "/var/lib/agent/runs";
const PROXY_ENV: &str = "/etc/tagstrap/proxy.env";
const UNIT: &str = "tagstrap.service";
/// The operator's drop-in: the package's unit loads no credential.
const DROP_IN: &str = "/etc/systemd/system/tagstrap.service.d/vault-token.conf";
/// The test's unit that needs the proxy, and what it writes.
const CONSUMER: &str = "proxy-consumer.service";
const CONSUMER_SEEN: &str = "/var/lib/proxy-consumer/seen";
/// The unit's state the tests read.
const STATE: [&str; 4] = ["ActiveState", "SubState", "Result", "ExecMainStatus"];

/// The servers on loopback, and the tree with the package installed and
/// configured by the operator.
struct World {
    ca: TestCa,
    origin: Origin,
    squid: Squid,
    bao: Bao,
    token: String,
    /// What the store holds for the proxy password (the wrong one in the
    /// failing case).
    stored_password: String,
    deb: PathBuf,
    rootfs: Rootfs,
    started: Instant,
}

impl World {
    fn new(stored_password: &str) -> World {
        let started = Instant::now();
        let deb = artifacts::deb("amd64");
        let rootfs = Rootfs::of(BOOKWORM_SYSTEMD);

        let ca = TestCa::new();
        let reserved = Origin::builder(Some(&ca))
            .bind_ip(ORIGIN_IP.parse().unwrap())
            .reserve();
        let (squid, bao) =
            common::proxy_and_store(USER, PASSWORD, stored_password, reserved.port());
        let token =
            bao.create_token(r#"path "secret/data/PROXY_PASS" { capabilities = ["read"] }"#);
        let origin = reserved
            .route(
                "/install.sh",
                vec![],
                Reply::ok(install_script(&squid.proxy_addr())),
            )
            .start();

        let world = World {
            ca,
            origin,
            squid,
            bao,
            token,
            stored_password: stored_password.to_string(),
            deb,
            rootfs,
            started,
        };
        world.install_package();
        world.assert_package_layout();
        world.configure();
        world
    }

    /// `dpkg -i` of the package in a chroot: exit 0, nothing asked.
    fn install_package(&self) -> String {
        let out = self.dpkg_install(&self.deb, &[]);
        // stdin is empty: a conffile question would end dpkg with an error.
        assert!(out.status.success(), "dpkg -i: {}", text(&out));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `dpkg [OPTIONS] -i DEB` in a chroot, stdin empty.
    fn dpkg_install(&self, deb: &Path, options: &[&str]) -> std::process::Output {
        let bytes = std::fs::read(deb).unwrap();
        self.rootfs.write("/var/cache/tagstrap.deb", bytes, 0o644);
        let mut cmd = vec!["dpkg"];
        cmd.extend(options);
        cmd.extend(["-i", "/var/cache/tagstrap.deb"]);
        let out = self.rootfs.run(&cmd, &[]);
        std::fs::remove_file(self.rootfs.path("/var/cache/tagstrap.deb")).unwrap();
        out
    }

    /// What the package put in the tree: the binary, the unit enabled for
    /// multi-user with no credential of its own, commented examples.
    fn assert_package_layout(&self) {
        let bin = std::fs::metadata(self.rootfs.path("/usr/bin/tagstrap")).unwrap();
        assert_eq!(bin.permissions().mode() & 0o777, 0o755);
        let unit = self
            .rootfs
            .read("/usr/lib/systemd/system/tagstrap.service")
            .expect("the package's unit");
        for line in [
            "Type=oneshot",
            "RemainAfterExit=yes",
            "ExecStart=/usr/bin/tagstrap run --once --write-env /etc/tagstrap/proxy.env",
            "StateDirectory=tagstrap",
            "StandardOutput=journal+console",
        ] {
            assert!(unit.lines().any(|l| l.trim() == line), "no {line}:\n{unit}");
        }
        assert!(
            !unit.lines().any(|l| l.trim().starts_with("LoadCredential")),
            "the operator adds the credential:\n{unit}"
        );
        let wants = self
            .rootfs
            .path("/etc/systemd/system/multi-user.target.wants/tagstrap.service");
        let target = std::fs::read_link(&wants).expect("enabled at install");
        assert!(
            [
                "/lib/systemd/system/tagstrap.service",
                "/usr/lib/systemd/system/tagstrap.service"
            ]
            .iter()
            .any(|t| target == Path::new(t)),
            "{}",
            target.display()
        );
        for example in ["/etc/tagstrap/config.toml", "/etc/tagstrap/tags"] {
            let text = self.rootfs.read(example).expect("the example");
            assert!(
                text.lines()
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')),
                "{example} is a commented example:\n{text}"
            );
        }
        let conffiles = self.rootfs.read("/var/lib/dpkg/info/tagstrap.conffiles");
        let conffiles = conffiles.expect("the package's conffiles");
        assert!(
            conffiles.contains("/etc/tagstrap/config.toml\n")
                && conffiles.contains("/etc/tagstrap/tags\n"),
            "{conffiles}"
        );
        assert!(self.rootfs.read(PROXY_ENV).is_none(), "nothing written yet");
    }

    /// The operator's files, and the test's unit that needs the proxy.
    fn configure(&self) {
        let fs = &self.rootfs;
        fs.write("/etc/tagstrap/ca.pem", self.ca.ca_pem(), 0o644);
        fs.write("/etc/tagstrap/config.toml", self.config(), 0o644);
        fs.write(
            "/etc/tagstrap/tags",
            format!(
                "# the image's tags\n\
                 rs_agent:http_proxy={}\n\
                 rs_agent:http_proxy_user={USER}\n\
                 rs_agent:http_proxy_password=cred:PROXY_PASS\n\
                 rs_agent:mime_shellscript={}\n",
                self.squid.proxy_addr(),
                self.origin.url("/install.sh")
            ),
            0o644,
        );
        fs.write(
            "/etc/tagstrap/vault-token",
            format!("{}\n", self.token),
            0o600,
        );
        // The drop-in the package ships as an example, copied into place.
        let drop_in = fs
            .read("/usr/share/doc/tagstrap/examples/vault-token.conf")
            .expect("the package's example drop-in");
        assert!(
            drop_in
                .lines()
                .any(|l| l == "LoadCredential=vault-token:/etc/tagstrap/vault-token"),
            "{drop_in}"
        );
        fs.write(DROP_IN, drop_in, 0o644);
        fs.write("/usr/local/bin/proxy-consumer", CONSUMER_SCRIPT, 0o755);
        fs.write(
            &format!("/etc/systemd/system/{CONSUMER}"),
            CONSUMER_UNIT,
            0o644,
        );
        let wants = fs.path(&format!(
            "/etc/systemd/system/multi-user.target.wants/{CONSUMER}"
        ));
        std::os::unix::fs::symlink(format!("/etc/systemd/system/{CONSUMER}"), wants).unwrap();
    }

    /// The operator's config.toml: the store, the test CA, and a deadline
    /// that ends a failing test in a minute instead of ten.
    fn config(&self) -> String {
        format!(
            "# the operator's\nca_file = \"/etc/tagstrap/ca.pem\"\nsource = \"none\"\n\
             deadline = 60\n\n[vault]\naddress = \"{}\"\n",
            self.bao.addr()
        )
    }

    /// The machine IDs the install script ran on, in order.
    fn runs(&self) -> Vec<String> {
        let runs = self.rootfs.read(RUNS).unwrap_or_default();
        runs.lines()
            .map(|l| l.strip_prefix("machine=").expect("machine=ID").to_string())
            .collect()
    }

    fn proxy_url(&self) -> String {
        let encoded = secret_forms(PASSWORD).pop().unwrap();
        format!("http://{USER}:{encoded}@{}", self.squid.proxy_addr())
    }

    /// `/etc/tagstrap/proxy.env` is 0600 and holds exactly the six
    /// variables; returns its inode and mtime.
    fn assert_proxy_env(&self) -> (u64, i64, i64) {
        let path = self.rootfs.path(PROXY_ENV);
        let meta = common::assert_env_file(&path, &self.proxy_url(), NO_PROXY);
        (meta.ino(), meta.mtime(), meta.mtime_nsec())
    }

    /// Squid saw the script's download: CONNECTs to the origin, every one
    /// authenticated as USER and tunnelled.
    fn assert_connects_through_squid(&self) {
        let origin = format!("{ORIGIN_IP}:{}", self.origin.port());
        common::assert_connects(&self.squid, &origin, USER);
    }

    /// No form of the password, the stored value or the store token in
    /// `text`.
    fn assert_no_secret(&self, what: &str, text: &str) {
        let mut forms = secret_forms(PASSWORD);
        forms.extend(secret_forms(&self.stored_password));
        forms.extend(secret_forms(&self.token));
        for (i, form) in forms.iter().enumerate() {
            assert!(
                !text.contains(form.as_str()),
                "{what} holds a secret (form {i})"
            );
        }
    }

    /// The whole journal of the boot and the console: no secret.
    fn assert_no_leak(&self, guest: &Container) {
        let all = guest.exec(&["journalctl", "--no-pager", "-b", "-o", "cat"]);
        assert!(all.status.success(), "journalctl -b: {}", text(&all));
        self.assert_no_secret("the journal", &String::from_utf8_lossy(&all.stdout));
        self.assert_no_secret("the console", &guest.console());
    }
}

impl Drop for World {
    fn drop(&mut self) {
        eprintln!("test took {:.1?}", self.started.elapsed());
    }
}

/// The install script the origin serves: checks its proxy environment
/// (hash only) and appends the machine ID to [`RUNS`].
fn install_script(proxy_addr: &str) -> String {
    let encoded = secret_forms(PASSWORD).pop().unwrap();
    let expected = format!("http://{USER}:{encoded}@{proxy_addr}");
    format!(
        r#"#!/bin/sh
set -eu
h=$(printf '%s' "${{https_proxy:-}}" | sha256sum | cut -d' ' -f1)
[ "$h" = {hash} ] || {{ echo "install.sh: https_proxy is not the expected URL" >&2; exit 3; }}
[ "${{no_proxy:-}}" = "{NO_PROXY}" ] || {{ echo "install.sh: no_proxy is ${{no_proxy:-unset}}" >&2; exit 3; }}
mkdir -p /var/lib/agent
echo "machine=$(cat /etc/machine-id)" >> {RUNS}
echo "install.sh: agent installed"
"#,
        hash = sha256_hex(expected.as_bytes()),
    )
}

/// A service that needs the proxy, as dist/systemd/tagstrap.service tells
/// one to be written.
const CONSUMER_UNIT: &str = "\
[Unit]
Description=A service that needs the proxy (testkit)
After=tagstrap.service

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile=/etc/tagstrap/proxy.env
ExecStart=/usr/local/bin/proxy-consumer

[Install]
WantedBy=multi-user.target
";

/// Records the sha256 of the `https_proxy` it was given, and `no_proxy`.
const CONSUMER_SCRIPT: &str = r#"#!/bin/sh
set -eu
umask 077
mkdir -p /var/lib/proxy-consumer
h=$(printf '%s' "${https_proxy:-}" | sha256sum | cut -d' ' -f1)
printf 'https_proxy_sha256=%s\nno_proxy=%s\n' "$h" "${no_proxy:-}" > /var/lib/proxy-consumer/seen
"#;

/// `journal` has a line holding each of `steps`, in that order.
fn assert_steps(journal: &str, steps: &[&str]) {
    let mut lines = journal.lines();
    for step in steps {
        assert!(
            lines.any(|l| l.contains(step)),
            "no {step:?} (in this order) in the journal:\n{journal}"
        );
    }
}

/// The unit's state as `systemctl show` gives it.
fn unit_state(guest: &Container, unit: &str) -> [String; 4] {
    let shown = guest.show(unit, &STATE);
    STATE.map(|p| shown[p].clone())
}

#[test]
fn the_packaged_unit_runs_the_script_once_per_machine_under_systemd() {
    let world = World::new(PASSWORD);
    let machine = nspawn::machine_id();

    let guest = Container::boot(&world.rootfs, &machine);
    let journal = guest.journal(UNIT);
    assert_eq!(
        unit_state(&guest, UNIT),
        ["active", "exited", "success", "0"],
        "{UNIT}:\n{journal}\n--- console:\n{}",
        guest.console()
    );
    assert_eq!(guest.state(), "running", "{}", guest.console());
    assert_eq!(world.runs(), [machine.as_str()]);
    assert_eq!(world.origin.hits("/install.sh"), 1);
    world.assert_connects_through_squid();
    let first_env = world.assert_proxy_env();
    assert_steps(
        &journal,
        &[
            "INFO credential resolved credential=cred:PROXY_PASS",
            "INFO wrote the proxy environment to /etc/tagstrap/proxy.env (0600)",
            "INFO downloading script https://127.0.0.2:",
            "INFO running /var/lib/tagstrap/script/install",
            "install.sh: agent installed",
            "INFO the script exited 0",
        ],
    );
    assert!(
        guest.console().contains("INFO the script exited 0"),
        "the unit's lines on the console:\n{}",
        guest.console()
    );
    // The service ordered after tagstrap got the proxy from proxy.env.
    assert_eq!(
        unit_state(&guest, CONSUMER),
        ["active", "exited", "success", "0"]
    );
    assert_eq!(
        world.rootfs.read(CONSUMER_SEEN).unwrap(),
        format!(
            "https_proxy_sha256={}\nno_proxy={NO_PROXY}\n",
            sha256_hex(world.proxy_url().as_bytes())
        )
    );
    world.assert_no_leak(&guest);
    let times = guest.show(
        UNIT,
        &[
            "ExecMainStartTimestampMonotonic",
            "ExecMainExitTimestampMonotonic",
        ],
    );
    let micros = |k: &str| times[k].parse::<u64>().unwrap();
    eprintln!(
        "boot to {UNIT} done: {:.1?} (the unit itself: {} ms)",
        guest.boot_time(),
        (micros("ExecMainExitTimestampMonotonic") - micros("ExecMainStartTimestampMonotonic"))
            / 1000
    );
    eprintln!("{UNIT} journal, first boot:\n{journal}");
    assert!(guest.poweroff().success(), "nspawn's exit status");

    // An upgrade while the machine is down (the image rebuilt with the same
    // package): the operator's edits are kept without a question, and
    // the package puts no copy of its own beside them.
    let said = world.install_package();
    assert!(!said.contains("Configuration file"), "dpkg asked:\n{said}");
    assert_eq!(
        world.rootfs.read("/etc/tagstrap/config.toml").unwrap(),
        world.config()
    );
    assert!(world
        .rootfs
        .read("/etc/tagstrap/tags")
        .unwrap()
        .starts_with("# the image's tags\nrs_agent:http_proxy="));
    for dpkg_copy in [".dpkg-dist", ".dpkg-new", ".dpkg-old"] {
        for file in ["config.toml", "tags"] {
            let path = format!("/etc/tagstrap/{file}{dpkg_copy}");
            assert!(world.rootfs.read(&path).is_none(), "{path}");
        }
    }

    // The second boot of the same machine runs nothing, and still writes
    // proxy.env afresh for the services after it.
    let guest = Container::boot(&world.rootfs, &machine);
    let journal = guest.journal(UNIT);
    assert_eq!(
        unit_state(&guest, UNIT),
        ["active", "exited", "success", "0"],
        "{journal}"
    );
    assert_eq!(guest.state(), "running", "{}", guest.console());
    assert_eq!(
        world.runs(),
        [machine.as_str()],
        "a reboot ran the script again"
    );
    assert_eq!(world.origin.hits("/install.sh"), 1);
    let second_env = world.assert_proxy_env();
    assert_ne!(first_env, second_env, "{PROXY_ENV} was not rewritten");
    assert_eq!(
        unit_state(&guest, CONSUMER),
        ["active", "exited", "success", "0"]
    );
    assert_steps(
        &journal,
        &[
            &format!("INFO --once: the script already ran on instance {machine}"),
            "INFO wrote the proxy environment to /etc/tagstrap/proxy.env (0600)",
        ],
    );
    assert!(
        !journal.contains("downloading script") && !journal.contains("install.sh"),
        "the script ran on the second boot:\n{journal}"
    );
    world.assert_no_leak(&guest);
    eprintln!("{UNIT} journal, second boot:\n{journal}");
    assert!(guest.poweroff().success(), "nspawn's exit status");
}

#[test]
fn a_refused_proxy_password_leaves_the_unit_failed_with_one_error_line() {
    let world = World::new("not-the-password");
    let guest = Container::boot(&world.rootfs, &nspawn::machine_id());
    let journal = guest.journal(UNIT);
    let console = guest.console();
    assert_eq!(
        unit_state(&guest, UNIT),
        ["failed", "failed", "exit-code", "77"],
        "{journal}\n--- console:\n{console}"
    );
    assert_eq!(guest.state(), "degraded", "{console}");
    let errors: Vec<&str> = journal.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{journal}");
    assert!(
        errors[0].contains("answered 407 Proxy Authentication Required"),
        "{}",
        errors[0]
    );
    assert!(
        console.lines().any(|l| l.ends_with(errors[0])),
        "the error line on the console:\n{console}"
    );
    assert!(world.runs().is_empty(), "the script ran");
    assert_eq!(world.origin.hits("/install.sh"), 0);
    world.assert_no_leak(&guest);
    eprintln!("{UNIT} journal:\n{journal}");
    assert!(guest.poweroff().success(), "nspawn's exit status");
}

/// The encrypted variant the drop-in offers: on the machine, the token is
/// sealed with `systemd-creds` (the host key in
/// `/var/lib/systemd/credential.secret`; no TPM here), the plain file
/// deleted and the drop-in switched to `LoadCredentialEncrypted=`; at the
/// next boot systemd decrypts it for the unit alone, and tagstrap opens
/// the store with it to write `proxy.env` again.
#[test]
fn an_encrypted_credential_opens_the_store_at_the_next_boot() {
    let world = World::new(PASSWORD);
    let fs = &world.rootfs;
    let machine = nspawn::machine_id();
    let guest = Container::boot(fs, &machine);
    assert_eq!(
        unit_state(&guest, UNIT),
        ["active", "exited", "success", "0"]
    );
    let out = guest.exec(&[
        "systemd-creds",
        "encrypt",
        "--with-key=host",
        "--name=vault-token",
        "/etc/tagstrap/vault-token",
        "/etc/tagstrap/vault-token.cred",
    ]);
    assert!(
        out.status.success(),
        "systemd-creds encrypt: {}",
        text(&out)
    );
    std::fs::remove_file(fs.path("/etc/tagstrap/vault-token")).unwrap();
    let sealed = std::fs::read(fs.path("/etc/tagstrap/vault-token.cred")).unwrap();
    world.assert_no_secret(
        "the encrypted credential",
        &String::from_utf8_lossy(&sealed),
    );
    let drop_in = fs.read(DROP_IN).unwrap();
    let switched: String = drop_in
        .lines()
        .map(|l| match l {
            "LoadCredential=vault-token:/etc/tagstrap/vault-token" => format!("#{l}\n"),
            l if l.starts_with("#LoadCredentialEncrypted=") => format!("{}\n", &l[1..]),
            l => format!("{l}\n"),
        })
        .collect();
    assert!(
        switched
            .lines()
            .any(|l| l == "LoadCredentialEncrypted=vault-token:/etc/tagstrap/vault-token.cred"),
        "{switched}"
    );
    fs.write(DROP_IN, switched, 0o644);
    assert!(guest.poweroff().success(), "nspawn's exit status");
    let first_env = world.assert_proxy_env();

    let guest = Container::boot(fs, &machine);
    let journal = guest.journal(UNIT);
    assert_eq!(
        unit_state(&guest, UNIT),
        ["active", "exited", "success", "0"],
        "{journal}\n--- console:\n{}",
        guest.console()
    );
    assert_steps(
        &journal,
        &[
            "INFO credential resolved credential=cred:PROXY_PASS",
            "INFO wrote the proxy environment to /etc/tagstrap/proxy.env (0600)",
        ],
    );
    assert_ne!(
        world.assert_proxy_env(),
        first_env,
        "{PROXY_ENV} was not rewritten"
    );
    assert_eq!(world.runs(), [machine.as_str()]);
    world.assert_no_leak(&guest);
    assert!(guest.poweroff().success(), "nspawn's exit status");
}

/// Release 2 of the package (the release's .deb repacked as `0.1.0-2`)
/// whose own `config.toml` changed, over the operator's edited one: dpkg
/// would ask which to keep, and with an empty stdin the plain `dpkg -i`
/// fails on that question. An image build cannot answer, so it says ahead
/// what it wants: `--force-confdef --force-confold` (the package's default
/// where there is one, else the operator's file), as `apt-get -o
/// Dpkg::Options::=--force-confold` would. The operator's file is kept,
/// the package's new one lands beside it as `config.toml.dpkg-dist`, and
/// the upgraded machine boots and runs the unit.
#[test]
fn an_upgrade_whose_packaged_config_changed_keeps_the_operators_file() {
    let world = World::new(PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("deb");
    let repack = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("dpkg-deb")
            .args(args)
            .output()
            .expect("dpkg-deb (Debian's dpkg)");
        assert!(out.status.success(), "dpkg-deb {args:?}: {}", text(&out));
    };
    repack(&[OsStr::new("-R"), world.deb.as_os_str(), tree.as_os_str()]);
    let control = tree.join("DEBIAN/control");
    let text_of = std::fs::read_to_string(&control).unwrap();
    assert!(text_of.contains("\nVersion: 0.1.0-1\n"), "{text_of}");
    std::fs::write(
        &control,
        text_of.replace("\nVersion: 0.1.0-1\n", "\nVersion: 0.1.0-2\n"),
    )
    .unwrap();
    let packaged = tree.join("etc/tagstrap/config.toml");
    let mut release_2 = std::fs::read_to_string(&packaged).unwrap();
    release_2.push_str("# Release 2 documents one more setting here.\n");
    std::fs::write(&packaged, &release_2).unwrap();
    let deb_2 = dir.path().join("tagstrap_0.1.0-2_amd64.deb");
    repack(&[
        OsStr::new("--root-owner-group"),
        OsStr::new("-b"),
        tree.as_os_str(),
        deb_2.as_os_str(),
    ]);

    let asked = world.dpkg_install(&deb_2, &[]);
    assert!(!asked.status.success(), "dpkg -i: {}", text(&asked));
    assert!(
        text(&asked).contains("Configuration file '/etc/tagstrap/config.toml'"),
        "{}",
        text(&asked)
    );
    let out = world.dpkg_install(&deb_2, &["--force-confdef", "--force-confold"]);
    assert!(
        out.status.success(),
        "dpkg -i --force-confold: {}",
        text(&out)
    );
    let fs = &world.rootfs;
    assert_eq!(
        fs.read("/etc/tagstrap/config.toml").unwrap(),
        world.config()
    );
    assert_eq!(
        fs.read("/etc/tagstrap/config.toml.dpkg-dist").as_deref(),
        Some(release_2.as_str())
    );
    let status = fs.run(
        &["dpkg-query", "-W", "-f", "${Version} ${Status}", "tagstrap"],
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "0.1.0-2 install ok installed",
        "{}",
        text(&status)
    );

    let machine = nspawn::machine_id();
    let guest = Container::boot(fs, &machine);
    assert_eq!(
        unit_state(&guest, UNIT),
        ["active", "exited", "success", "0"],
        "{}",
        guest.journal(UNIT)
    );
    assert_eq!(world.runs(), [machine.as_str()]);
    world.assert_no_leak(&guest);
    assert!(guest.poweroff().success(), "nspawn's exit status");
}
