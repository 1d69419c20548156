//! tagstrap's Linux boot integration under the real cloud-init of three
//! Debian generations: bookworm's 22.4, trixie's 25.1 and sid's 26.2 (at the
//! time of writing), each in a debootstrapped tree ([`Rootfs`],
//! [`Tree::CLOUD_INIT`]), a static tagstrap baked in at
//! `/usr/local/bin/tagstrap`, the NoCloud datasource seeded with the
//! repository's own user-data, and cloud-init booted in a chroot in private
//! namespaces the way the tree's own systemd units boot it
//! ([`Rootfs::cloud_init_boot`]). The tree shares the host's loopback, where
//! this test starts a Squid with basic auth, an OpenBao holding the proxy
//! password and an HTTPS origin serving the install script. The origin is
//! on 127.0.0.2: 127.0.0.1 is always in tagstrap's no-proxy list, and the
//! point is to go through the proxy.
//!
//! Every case runs on each release, as `bookworm::CASE`, `trixie::CASE` and
//! `sid::CASE` (the `on_each_release!` at the end), so a failure names the
//! release. Where the releases differ, each one's behaviour is asserted,
//! with the cloud-init change that explains it:
//! - how a boot runs: four stage processes up to 24.2; from 24.3 on one
//!   `cloud-init --all-stages` process that the four stage units start over
//!   Unix sockets (and sid's stream sockets sometimes lose the unit's
//!   reply, see [`World::boot_warned`]);
//! - warnings: 22.4 only logs them; 23.4 and later record them in
//!   `status.json` as recoverable errors, and `cloud-init status` then says
//!   `degraded done` and exits 2. A boot must record none, except the one
//!   about CloudStack's tags part, which 24.3 and later record twice;
//! - the same `make-mime` messages, the same stage commands (none
//!   deprecated), the same `result.json`; the log line about the unknown
//!   part comes from another logger name.
//!
//! The install script proves, inside the tree, that it ran (a line per run
//! in `/var/lib/agent/runs`) with the right proxy environment (it compares a
//! sha256 of `http_proxy`, so no file holds the password) and that `curl`
//! reaches the origin through the proxy with that environment.
//!
//! Needs root, `debootstrap`, the musl target and network access to
//! deb.debian.org for the first build of each tree (`.ci/install`). The
//! three trees build at the same time on first use: 189 s (trixie, sid) to
//! 207 s (bookworm) here, cold, all three at once on 2 busy cores
//! (bookworm alone: 68–74 s; trixie alone at a load of 6: 152 s); later
//! runs use the caches in `target/`, and the twelve tests then take 50–70 s.

mod common;

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use common::{secret_forms, sha256_hex};
use serde_json::json;
use testkit::metadata::{Cloud, FakeMetadata};
use testkit::rootfs::{text, Tree};
use testkit::{static_tagstrap, Bao, Origin, Reply, Rootfs, Squid, TestCa};

const USER: &str = "svc-agent";
/// Holds every character that breaks a naive proxy URL.
const PASSWORD: &str = "p@ss:/%w0rd";
const ORIGIN_IP: &str = "127.0.0.2";
const NO_PROXY: &str = "localhost,127.0.0.1,::1,[::1],169.254.169.254";
/// What the install script appends one line to per run.
const RUNS: &str = "/var/lib/agent/runs";
const PROXY_ENV: &str = "/etc/tagstrap/proxy.env";

/// Where the store's address and token come from in the tree.
#[derive(Clone, Copy, PartialEq)]
enum Store {
    /// `/etc/tagstrap/vault.env` (0600), sourced by the cloud-init part.
    VaultEnv,
    /// `[vault] address` in config.toml and the token in
    /// `/etc/tagstrap/vault-token`, loaded as a systemd credential.
    UnitCredential,
    /// No secret anywhere in the tree: config.toml names Vault's `jwt`
    /// login with the GCE identity token, which the (fake) GCE metadata
    /// server signs for this instance (dist/config/vault-jwt-gce.toml).
    Identity,
}

/// The servers on loopback and the tree that boots against them.
struct World {
    _ca: TestCa,
    origin: Origin,
    squid: Squid,
    _bao: Bao,
    /// The GCE metadata server of [`Store::Identity`].
    gce: Option<FakeMetadata>,
    /// The store token on the image, when there is one.
    token: Option<String>,
    rootfs: Rootfs,
    tree: Tree,
    /// The tree's cloud-init, major and minor.
    cloud_init: (u32, u32),
    started: Instant,
}

impl World {
    fn new(store: Store, tree: Tree) -> World {
        let started = Instant::now();
        // The musl build overlaps the tree's first build, and the tree comes
        // first so that the servers do not idle through that.
        let tagstrap = std::thread::spawn(static_tagstrap);
        let rootfs = Rootfs::of(tree);
        let ca = TestCa::new();
        let reserved = Origin::builder(Some(&ca))
            .bind_ip(ORIGIN_IP.parse::<IpAddr>().unwrap())
            .reserve();
        let port = reserved.port();
        let squid = Squid::builder()
            .basic_auth(USER, PASSWORD)
            .allow_connect_ports(&[port])
            .start();
        let bao = Bao::start();
        bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
        let token =
            bao.create_token(r#"path "secret/data/PROXY_PASS" { capabilities = ["read"] }"#);
        let origin = reserved
            .route(
                "/install.sh",
                vec![],
                Reply::ok(install_script(&squid.proxy_addr(), port)),
            )
            .route("/payload", vec![], Reply::ok("agent bits"))
            .start();

        let tagstrap = tagstrap.join().expect("the static tagstrap build");
        rootfs.install_binary(&tagstrap, "/usr/local/bin/tagstrap");
        // Where the packaged unit (dist/systemd/tagstrap.service) runs it.
        rootfs.install_binary(&tagstrap, "/usr/bin/tagstrap");
        rootfs.write("/etc/tagstrap/ca.pem", ca.ca_pem(), 0o644);
        rootfs.write(
            "/etc/tagstrap/tags",
            format!(
                "# baked into the image\n\
                 rs_agent:http_proxy={}\n\
                 rs_agent:http_proxy_user={USER}\n\
                 rs_agent:http_proxy_password=cred:PROXY_PASS\n\
                 rs_agent:mime_shellscript={}\n",
                squid.proxy_addr(),
                origin.url("/install.sh")
            ),
            0o644,
        );
        // A failure should end the test in a minute, not after the
        // default ten minutes of retries.
        let mut config = "ca_file = \"/etc/tagstrap/ca.pem\"\n\
                          source = \"none\"\n\
                          deadline = 60\n"
            .to_string();
        let mut gce = None;
        match store {
            Store::Identity => {
                // OpenBao trusts the key the metadata server signs with, and
                // role `boot` only for tokens made out to its audience.
                let key = testkit::jwt::SigningKey::generate();
                let root = bao.root_token();
                let ok = |method: &str, path: &str, body: serde_json::Value| {
                    let r = bao.api(method, path, Some(&root), Some(&body));
                    assert!((200..300).contains(&r.status), "{path}: {}", r.text());
                };
                let policy = r#"path "secret/data/PROXY_PASS" { capabilities = ["read"] }"#;
                ok(
                    "PUT",
                    "/v1/sys/policies/acl/boot",
                    json!({ "policy": policy }),
                );
                ok("POST", "/v1/sys/auth/jwt", json!({ "type": "jwt" }));
                let pubkeys = json!({ "jwt_validation_pubkeys": [key.public_pem()] });
                ok("POST", "/v1/auth/jwt/config", pubkeys);
                let role = json!({
                    "role_type": "jwt", "bound_audiences": ["tagstrap-boot"],
                    "user_claim": "sub", "token_policies": ["boot"],
                });
                ok("POST", "/v1/auth/jwt/role/boot", role);
                let fake = FakeMetadata::builder(Cloud::Gce).signing_key(key).start();
                config.push_str(&format!(
                    "metadata_endpoint = \"{}\"\n\n[vault]\naddress = \"{}\"\n\n\
                     [vault.jwt]\nrole = \"boot\"\ntoken = \"gce\"\naudience = \"tagstrap-boot\"\n",
                    fake.url(),
                    bao.addr()
                ));
                gce = Some(fake);
            }
            Store::VaultEnv => {
                rootfs.write(
                    "/etc/tagstrap/vault.env",
                    format!("VAULT_ADDR={}\nVAULT_TOKEN={token}\n", bao.addr()),
                    0o600,
                );
            }
            Store::UnitCredential => {
                config.push_str(&format!("\n[vault]\naddress = \"{}\"\n", bao.addr()));
                rootfs.write("/etc/tagstrap/vault-token", format!("{token}\n"), 0o600);
            }
        }
        rootfs.write("/etc/tagstrap/config.toml", config, 0o644);
        World {
            _ca: ca,
            origin,
            squid,
            _bao: bao,
            gce,
            token: (store != Store::Identity).then_some(token),
            cloud_init: rootfs.cloud_init_version(),
            rootfs,
            tree,
            started,
        }
    }

    /// One boot of instance `instance_id` under cloud-init: every stage
    /// exits 0, cloud-init records no error and, where it records them
    /// (23.4 and later), no warning.
    fn boot(&self, instance_id: &str, user_data: &[u8]) -> Vec<Output> {
        self.boot_warned(instance_id, user_data, &[])
    }

    /// [`World::boot`] where cloud-init 23.4 and later record exactly
    /// `warnings` (`"stage: WARNING: message"`, each matched as the start of
    /// one) among the recoverable errors of `status.json`.
    fn boot_warned(&self, instance_id: &str, user_data: &[u8], warnings: &[&str]) -> Vec<Output> {
        self.rootfs.seed_nocloud(instance_id, user_data);
        let started = Instant::now();
        let ran = self.rootfs.cloud_init_boot();
        let output_log = || {
            self.rootfs
                .read("/var/log/cloud-init-output.log")
                .unwrap_or_default()
        };
        for (what, out) in &ran {
            assert!(
                out.status.success(),
                "{what} ({instance_id}): {}\n--- cloud-init-output.log:\n{}",
                text(out),
                output_log()
            );
        }
        // What ran: each stage in its own process up to 24.2; from 24.3 on
        // one process (`cloud-init --all-stages`, canonical/cloud-init#5489)
        // that each stage's unit starts over its socket.
        let stdout = |i: usize| String::from_utf8_lossy(&ran[i].1.stdout).into_owned();
        let units: Vec<&str> = ran.iter().map(|(what, _)| what.as_str()).collect();
        let stages = ["init-local", "init", "modules:config", "modules:final"];
        if self.cloud_init < (24, 3) {
            assert_eq!(ran.len(), 4, "four stage units: {units:#?}");
            for (i, stage) in stages.iter().enumerate() {
                assert!(
                    stdout(i).contains(&format!(" running '{stage}' at ")),
                    "{}: {}",
                    ran[i].0,
                    stdout(i)
                );
            }
        } else {
            assert_eq!(
                ran.len(),
                5,
                "four stage units and the main one: {units:#?}"
            );
            assert!(
                units[4].ends_with("/usr/bin/cloud-init --all-stages"),
                "{units:#?}"
            );
            for (i, socket) in ["local", "network", "config", "final"].iter().enumerate() {
                let said = stdout(i);
                let done = format!("Completed socket interaction for boot stage {socket}");
                // Up to 25.2 the units use datagrams (`nc -Uu -W1`, trixie);
                // from 25.3 on a stream (`nc -U`, canonical/cloud-init#6339,
                // sid), and there the reply is sometimes lost: cloud-init
                // reads 5 bytes of the unit's "start\n" and closes with the
                // newline unread, which resets the connection, and nc (1.239
                // here) may quit before it reads the `echo ...; exit N` sent
                // just before; the unit then prints nothing and exits 0
                // whatever the stage did. Seen here with a Python server
                // doing the same: lost in 5 of 6 tries, never once it read
                // the newline. What the stages did is then in the main
                // process's exit status and status.json, checked below.
                let lossy = !ran[i].0.contains("nc -Uu ");
                assert!(
                    said.trim() == done || (lossy && said.is_empty()),
                    "{}: {said:?}",
                    ran[i].0
                );
            }
            let main = stdout(4);
            let at: Vec<Option<usize>> = stages
                .iter()
                .map(|stage| main.find(&format!(" running '{stage}' at ")))
                .collect();
            assert!(
                at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]),
                "the main process ran the four stages in order:\n{main}"
            );
        }
        assert_eq!(
            self.rootfs.cloud_init_errors(),
            Vec::<String>::new(),
            "cloud-init errors ({instance_id})"
        );
        let recorded = self.rootfs.cloud_init_recoverable_errors();
        if self.cloud_init < (23, 4) {
            // 22.4 records no warnings in status.json; they are in
            // cloud-init.log only.
            assert_eq!(recorded, None, "recoverable errors in 22.4's status.json");
        } else {
            let recorded = recorded.expect("recoverable_errors in status.json (23.4 and later)");
            let expected = recorded.len() == warnings.len()
                && warnings
                    .iter()
                    .zip(&recorded)
                    .all(|(w, r)| r.starts_with(w));
            assert!(
                expected,
                "cloud-init {:?} recorded {recorded:#?}, not {warnings:#?} ({instance_id})",
                self.cloud_init
            );
        }
        eprintln!(
            "boot of {instance_id} (cloud-init {}.{}): {} units in {:.1?}",
            self.cloud_init.0,
            self.cloud_init.1,
            ran.len(),
            started.elapsed()
        );
        ran.into_iter().map(|(_, out)| out).collect()
    }

    /// The instance IDs the install script ran for, in order.
    fn runs(&self) -> Vec<String> {
        let runs = self.rootfs.read(RUNS).unwrap_or_default();
        runs.lines()
            .map(|l| {
                assert!(
                    l.ends_with(&format!(" no_proxy={NO_PROXY}")),
                    "the script's no_proxy: {l}"
                );
                l.split_whitespace()
                    .next()
                    .unwrap()
                    .trim_start_matches("instance=")
                    .to_string()
            })
            .collect()
    }

    fn proxy_url(&self) -> String {
        format!(
            "http://{}:{}@{}",
            USER,
            secret_forms(PASSWORD).pop().unwrap(),
            self.squid.proxy_addr()
        )
    }

    /// `/etc/tagstrap/proxy.env` is 0600 and holds exactly the six variables.
    fn assert_proxy_env(&self) {
        let url = self.proxy_url();
        common::assert_env_file(&self.rootfs.path(PROXY_ENV), &url, NO_PROXY);
        // And sh reads it back as the same URL (hash only: no secret in argv or output).
        let out = self.rootfs.run(
            &[
                "sh",
                "-euc",
                "set -a; . /etc/tagstrap/proxy.env; set +a; \
                 printf '%s' \"$https_proxy\" | sha256sum | cut -d' ' -f1",
            ],
            &[],
        );
        assert!(out.status.success(), "sourcing {PROXY_ENV}: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            sha256_hex(url.as_bytes()),
            "sh -c '. {PROXY_ENV}' gives another https_proxy"
        );
    }

    /// Squid saw the CONNECTs to the origin, all authenticated as USER.
    fn assert_connects_through_squid(&self) {
        let origin = format!("{ORIGIN_IP}:{}", self.origin.port());
        common::assert_connects(&self.squid, &origin, USER);
    }

    /// No form of the password or the store token in cloud-init's logs, in
    /// `outputs`, or in any file under /etc/tagstrap, /var/lib/tagstrap
    /// or /var/lib/cloud that is not mode 0600.
    fn assert_no_leak(&self, outputs: &[Output]) {
        let mut forms = secret_forms(PASSWORD);
        if let Some(token) = &self.token {
            forms.extend(secret_forms(token));
        }
        forms.push(base64(format!("{USER}:{PASSWORD}").as_bytes()));
        let check = |what: &str, bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            for (i, form) in forms.iter().enumerate() {
                assert!(
                    !text.contains(form.as_str()),
                    "{what} holds a secret (form {i})"
                );
            }
        };
        for out in outputs {
            check("a command's stdout", &out.stdout);
            check("a command's stderr", &out.stderr);
        }
        for log in ["/var/log/cloud-init-output.log", "/var/log/cloud-init.log"] {
            if let Some(text) = self.rootfs.read(log) {
                check(log, text.as_bytes());
            }
        }
        for dir in ["/etc/tagstrap", "/var/lib/tagstrap", "/var/lib/cloud"] {
            for (path, mode) in files_under(&self.rootfs.path(dir)) {
                if mode & 0o777 != 0o600 {
                    check(
                        &format!("{} (mode {mode:o})", path.display()),
                        &std::fs::read(&path).unwrap(),
                    );
                }
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        eprintln!("test took {:.1?}", self.started.elapsed());
    }
}

/// The agent's install script as the origin serves it: it checks its proxy
/// environment (hashes only), fetches a payload with curl through that
/// proxy, and appends `instance=ID no_proxy=...` to [`RUNS`].
fn install_script(proxy_addr: &str, origin_port: u16) -> String {
    let expected = format!(
        "http://{USER}:{}@{proxy_addr}",
        secret_forms(PASSWORD).pop().unwrap()
    );
    format!(
        r#"#!/bin/sh
set -eu
fail() {{ echo "install.sh: $*" >&2; exit 3; }}
h=$(printf '%s' "${{http_proxy:-}}" | sha256sum | cut -d' ' -f1)
[ "$h" = {hash} ] || fail "http_proxy is not the expected URL"
[ "${{https_proxy:-}}" = "$http_proxy" ] || fail "https_proxy differs from http_proxy"
[ "${{HTTPS_PROXY:-}}" = "$http_proxy" ] || fail "HTTPS_PROXY differs from http_proxy"
[ "${{HTTP_PROXY:-}}" = "$http_proxy" ] || fail "HTTP_PROXY differs from http_proxy"
[ -n "${{no_proxy:-}}" ] || fail "no_proxy is not set"
[ "${{NO_PROXY:-}}" = "$no_proxy" ] || fail "NO_PROXY differs from no_proxy"
mkdir -p /var/lib/agent
curl -sS --fail --cacert /etc/tagstrap/ca.pem -o /var/lib/agent/payload https://{ORIGIN_IP}:{origin_port}/payload
[ "$(cat /var/lib/agent/payload)" = "agent bits" ] || fail "wrong payload"
id=$(cat /var/lib/cloud/data/instance-id 2>/dev/null || cat /etc/machine-id)
echo "instance=$id no_proxy=$no_proxy" >> {RUNS}
echo "install.sh: agent installed on $id"
"#,
        hash = sha256_hex(expected.as_bytes()),
    )
}

/// A file of this repository.
fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Regular files below `dir` (not following symlinks) with their modes.
fn files_under(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            out.extend(files_under(&entry.path()));
        } else if meta.is_file() {
            out.push((entry.path(), meta.permissions().mode()));
        }
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Three boots under cloud-init: the first runs the script, a reboot of the
/// same instance does not, a new instance does.
fn runs_once_per_instance_under_cloud_init(
    tree: Tree,
    store: Store,
    make_user_data: impl FnOnce(&Rootfs) -> Vec<u8>,
) {
    let world = World::new(store, tree);
    let user_data = &make_user_data(&world.rootfs);
    if store == Store::Identity {
        // The image holds names only: no token, no secret ID, no key.
        let mut baked: Vec<String> = files_under(&world.rootfs.path("/etc/tagstrap"))
            .into_iter()
            .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        baked.sort();
        assert_eq!(
            baked,
            ["ca.pem", "config.toml", "tags"],
            "the image's /etc/tagstrap"
        );
        assert!(!String::from_utf8_lossy(user_data).contains("VAULT_TOKEN="));
    }

    let first = world.boot("i-first", user_data);
    assert_eq!(world.runs(), ["i-first"]);
    if let Some(gce) = &world.gce {
        // The password came through the login with the instance's identity
        // token, asked for as the role's audience.
        assert!(
            gce.requests().iter().any(|r| r
                .target
                .contains("/service-accounts/default/identity?audience=tagstrap-boot&format=full")),
            "{:?}",
            gce.requests().iter().map(|r| &r.target).collect::<Vec<_>>()
        );
    }
    assert_eq!(world.origin.hits("/install.sh"), 1);
    world.assert_proxy_env();
    world.assert_connects_through_squid();
    world.assert_no_leak(&first);
    let output_log = world
        .rootfs
        .read("/var/log/cloud-init-output.log")
        .unwrap_or_default();
    assert!(
        output_log.contains("install.sh: agent installed on i-first"),
        "the script's output belongs in cloud-init's output log:\n{output_log}"
    );

    let reboot = world.boot("i-first", user_data);
    assert_eq!(world.runs(), ["i-first"], "a reboot ran the script again");
    assert_eq!(world.origin.hits("/install.sh"), 1);

    let second = world.boot("i-second", user_data);
    assert_eq!(world.runs(), ["i-first", "i-second"]);
    assert_eq!(world.origin.hits("/install.sh"), 2);
    world.assert_proxy_env();
    world.assert_no_leak(&[first, reboot, second].concat());
    assert!(
        !testkit::rootfs::tree_dir(world.tree)
            .join("etc/tagstrap")
            .exists(),
        "the test wrote into the cached tree"
    );
}

fn mime_shellscript_part_runs_tagstrap_once_per_instance(tree: Tree) {
    runs_once_per_instance_under_cloud_init(tree, Store::VaultEnv, |rootfs| {
        let part = repo_file("cloud-init/user-data.sh");
        let user_data = rootfs.make_mime(&[(&part, "x-shellscript")]);
        let text = String::from_utf8_lossy(&user_data);
        assert!(
            text.starts_with("Content-Type: multipart/mixed")
                && text.contains("Content-Type: text/x-shellscript")
                && text.contains("filename=\"user-data.sh\""),
            "{text}"
        );
        user_data
    });
}

/// With no secret on the image at all: the store opens with the instance's
/// own identity (Vault's jwt login with the GCE identity token).
fn cloud_config_runcmd_runs_tagstrap_once_per_instance_with_no_secret_on_the_image(tree: Tree) {
    runs_once_per_instance_under_cloud_init(tree, Store::Identity, |_| {
        let user_data = std::fs::read(repo_file("cloud-init/cloud-config.yaml")).unwrap();
        assert!(user_data.starts_with(b"#cloud-config\n"));
        user_data
    });
}

/// What of a systemd unit this test carries out itself.
#[derive(Debug, Default)]
struct Unit {
    exec_start: Vec<String>,
    environment: Vec<(String, String)>,
    /// `LoadCredential=ID:PATH`
    credentials: Vec<(String, String)>,
    umask: Option<String>,
    state_directory: Option<String>,
    state_directory_mode: Option<String>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut unit = Unit::default();
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            if line.starts_with('[') {
                section = line.to_string();
                continue;
            }
            if section != "[Service]" {
                continue;
            }
            let (key, value) = line.split_once('=').expect("KEY=VALUE");
            let value = value.trim();
            match key.trim() {
                "ExecStart" => {
                    assert!(unit.exec_start.is_empty(), "one ExecStart= in a oneshot");
                    unit.exec_start =
                        split_words(value.trim_start_matches(['-', '@', ':', '+', '!']));
                }
                "Environment" => {
                    unit.environment
                        .extend(split_words(value).into_iter().map(|kv| {
                            let (k, v) = kv.split_once('=').expect("Environment=K=V");
                            (k.to_string(), v.to_string())
                        }))
                }
                "LoadCredential" => {
                    let (id, path) = value.split_once(':').expect("LoadCredential=ID:PATH");
                    unit.credentials.push((id.to_string(), path.to_string()));
                }
                "UMask" => unit.umask = Some(value.to_string()),
                "StateDirectory" => unit.state_directory = Some(value.to_string()),
                "StateDirectoryMode" => unit.state_directory_mode = Some(value.to_string()),
                _ => {}
            }
        }
        unit
    }

    /// The command line that starts the unit's process inside the tree the
    /// way systemd would: umask, state directory, credentials in a private
    /// directory of the run's `/run`, then `exec` of `ExecStart=`.
    fn command(&self, name: &str) -> (Vec<String>, Vec<(String, String)>) {
        let creds = format!("/run/credentials/{name}");
        let mut script = String::from("set -eu\n");
        if let Some(umask) = &self.umask {
            script.push_str(&format!("umask {umask}\n"));
        }
        let mut env = self.environment.clone();
        if let Some(dir) = &self.state_directory {
            let mode = self.state_directory_mode.as_deref().unwrap_or("0755");
            script.push_str(&format!(
                "mkdir -p /var/lib/{dir}\nchmod {mode} /var/lib/{dir}\n"
            ));
            env.push(("STATE_DIRECTORY".into(), format!("/var/lib/{dir}")));
        }
        if !self.credentials.is_empty() {
            script.push_str(&format!(
                "mkdir -p -m 0755 /run/credentials\nmkdir -m 0700 {creds}\n"
            ));
            for (id, path) in &self.credentials {
                script.push_str(&format!(
                    "cp {path} {creds}/{id}\nchmod 0400 {creds}/{id}\n"
                ));
            }
            env.push(("CREDENTIALS_DIRECTORY".into(), creds));
        }
        script.push_str("exec \"$@\"\n");
        let mut argv = vec!["sh".into(), "-c".into(), script, "sh".into()];
        argv.extend(self.exec_start.iter().cloned());
        (argv, env)
    }
}

/// Words of a systemd command line or `Environment=` value: blanks split,
/// double or single quotes group.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(quote.is_none(), "unbalanced quotes in {s:?}");
    words.extend(word);
    words
}

fn baked_unit_command_line_runs_once_per_instance(tree: Tree) {
    // The packaged unit with the operator's token drop-in, as systemd merges them.
    let read = |rel: &str| std::fs::read_to_string(repo_file(rel)).unwrap();
    let unit = Unit::parse(&format!(
        "{}\n{}",
        read("dist/systemd/tagstrap.service"),
        read("dist/systemd/vault-token.conf")
    ));
    assert_eq!(
        unit.exec_start.first().map(String::as_str),
        Some("/usr/bin/tagstrap"),
        "{unit:?}"
    );
    assert!(
        unit.credentials
            .iter()
            .any(|(id, path)| id == "vault-token" && path == "/etc/tagstrap/vault-token"),
        "the unit loads the store token as a credential: {unit:?}"
    );
    let world = World::new(Store::UnitCredential, tree);
    let (argv, env) = unit.command("tagstrap.service");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let boot = |machine_id: &str| {
        world
            .rootfs
            .write("/etc/machine-id", format!("{machine_id}\n"), 0o444);
        let started = Instant::now();
        let out = world.rootfs.run(&argv, &env);
        assert!(
            out.status.success(),
            "the unit's ExecStart=: {}",
            text(&out)
        );
        eprintln!("unit run on {machine_id}: {:.1?}", started.elapsed());
        out
    };
    assert!(
        world
            .rootfs
            .read("/var/lib/cloud/data/instance-id")
            .is_none(),
        "no cloud-init here: the machine ID is the instance ID"
    );
    let first_id = "0123456789abcdef0123456789abcdef";
    let second_id = "fedcba9876543210fedcba9876543210";

    let first = boot(first_id);
    assert_eq!(world.runs(), [first_id]);
    world.assert_proxy_env();
    world.assert_connects_through_squid();
    let state = world.rootfs.path("/var/lib/tagstrap");
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let reboot = boot(first_id);
    assert_eq!(world.runs(), [first_id], "a reboot ran the script again");
    assert_eq!(world.origin.hits("/install.sh"), 1);
    world.assert_proxy_env();

    let second = boot(second_id);
    assert_eq!(world.runs(), [first_id, second_id]);
    assert_eq!(world.origin.hits("/install.sh"), 2);
    world.assert_no_leak(&[first, reboot, second]);
}

/// CloudStack under the real cloud-init: the user-data is what `cloud-init
/// devel make-mime --force` builds from a `text/x-tagstrap-tags` part and
/// the `text/x-shellscript` part that starts tagstrap
/// (`cloud-init/cloudstack-user-data.sh`), seeded through NoCloud and served
/// again, byte for byte, by a fake virtual router on loopback. The script
/// URL is only in the tags part (the image's tags file has the proxy and
/// its credentials), so the run proves the tags came from that part, end to
/// end. cloud-init skips the unknown part with a warning in its log and
/// records no error; 22.4 says `status: done` and exits 0, 25.1 and 26.2
/// record the warning and say `degraded done` with exit 2: what
/// docs/clouds.md tells.
fn cloudstack_tags_part_rides_beside_the_shell_part_under_cloud_init(tree: Tree) {
    let world = World::new(Store::VaultEnv, tree);
    world.rootfs.write(
        "/etc/tagstrap/tags",
        format!(
            "# baked into the image: no script URL here\n\
             rs_agent:http_proxy={}\n\
             rs_agent:http_proxy_user={USER}\n\
             rs_agent:http_proxy_password=cred:PROXY_PASS\n",
            world.squid.proxy_addr()
        ),
        0o644,
    );
    let dir = tempfile::tempdir().unwrap();
    let tags = dir.path().join("tagstrap.tags");
    std::fs::write(
        &tags,
        format!(
            "rs_agent:mime_shellscript={}\nrs_agent:type=from-the-user-data\n",
            world.origin.url("/install.sh")
        ),
    )
    .unwrap();
    let shell = repo_file("cloud-init/cloudstack-user-data.sh");
    let parts = [(&*tags, "x-tagstrap-tags"), (&*shell, "x-shellscript")];

    // make-mime knows no such type and refuses it unless forced.
    let refused = world.rootfs.make_mime_with(&parts, &[]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("override with --force"),
        "{}",
        text(&refused)
    );
    let made = world.rootfs.make_mime_with(&parts, &["--force"]);
    assert!(made.status.success(), "make-mime --force: {}", text(&made));
    let user_data = made.stdout;
    let shown = String::from_utf8_lossy(&user_data);
    assert!(
        shown.contains("Content-Type: text/x-tagstrap-tags")
            && shown.contains("Content-Type: text/x-shellscript"),
        "{shown}"
    );

    let router = testkit::metadata::FakeMetadata::builder(testkit::metadata::Cloud::CloudStack)
        .user_data(user_data.clone())
        .start();
    world
        .rootfs
        .write("/etc/tagstrap/cloudstack-router", router.url(), 0o644);

    // cloud-init has no handler for the tags part and warns about it. 22.4
    // logs that only; 23.4 and later also record it in status.json (the
    // "degraded" state, canonical/cloud-init#4500), and the single process
    // of 24.3 and later records it under the config stage as well (25.1
    // and 26.2 do; cloud-init.log has it once, and with each stage a
    // process of its own it is init's only).
    let unhandled = "WARNING: Unhandled unknown content-type (text/x-tagstrap-tags)";
    let warnings: &[&str] = if world.cloud_init >= (24, 3) {
        &[
            &format!("init: {unhandled}"),
            &format!("modules-config: {unhandled}"),
        ]
    } else {
        &[&format!("init: {unhandled}")]
    };
    let first = world.boot_warned("i-cloudstack", &user_data, warnings);
    assert_eq!(world.runs(), ["i-cloudstack"]);
    assert_eq!(world.origin.hits("/install.sh"), 1);
    world.assert_proxy_env();
    world.assert_connects_through_squid();
    assert!(
        router
            .requests()
            .iter()
            .any(|r| r.path == "/latest/user-data"),
        "tagstrap read the router's user-data"
    );
    let output_log = world
        .rootfs
        .read("/var/log/cloud-init-output.log")
        .unwrap_or_default();
    assert!(
        output_log.contains("cloudstack instance: 2 rs_agent: tags from"),
        "{output_log}"
    );

    // The same warning in cloud-init.log, once, on every release (the
    // logger's name is `__init__.py` in 22.4, `handlers` from 25.1 on).
    let log = world.rootfs.read("/var/log/cloud-init.log").unwrap();
    let logged: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Unhandled unknown content-type (text/x-tagstrap-tags)"))
        .collect();
    assert_eq!(
        logged.len(),
        1,
        "the warning about the tags part in cloud-init.log: {logged:?}"
    );
    assert!(logged[0].contains("[WARNING]: "), "{}", logged[0]);
    eprintln!("cloud-init.log: {}", logged[0]);
    let status = world.rootfs.run(
        &[
            "sh",
            "-c",
            "mkdir -p /run/cloud-init && \
             ln -s /var/lib/cloud/data/status.json /run/cloud-init/status.json && \
             ln -s /var/lib/cloud/data/result.json /run/cloud-init/result.json && \
             cloud-init status --long",
        ],
        &[],
    );
    let said = String::from_utf8_lossy(&status.stdout).into_owned();
    eprintln!("cloud-init status --long:\n{said}");
    assert!(said.contains("status: done\n"), "{said}");
    if world.cloud_init < (23, 4) {
        assert!(status.status.success(), "{}", text(&status));
        assert!(!said.contains("extended_status"), "{said}");
    } else {
        // 23.4 and later: `status: done` stays for compatibility, the
        // warning makes it "degraded" and the exit code 2 (cloud-init's
        // docs, "Why did `cloud-init status` start returning exit code
        // 2?"; Debian keeps upstream's code, Ubuntu patches it to 0).
        assert_eq!(status.status.code(), Some(2), "{}", text(&status));
        assert!(said.contains("extended_status: degraded done\n"), "{said}");
        assert!(said.contains("errors: []\n"), "{said}");
        let recoverable = said
            .split_once("recoverable_errors:\n")
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("no recoverable_errors in:\n{said}"));
        let listed: Vec<&str> = recoverable
            .lines()
            .filter(|l| l.trim_start().starts_with("- "))
            .collect();
        // Each stage's record, one after the other.
        assert_eq!(listed.len(), warnings.len(), "{said}");
        assert!(
            listed
                .iter()
                .all(|l| l.contains("Unhandled unknown content-type (text/x-tagstrap-tags)")),
            "{said}"
        );
    }

    let reboot = world.boot_warned("i-cloudstack", &user_data, warnings);
    assert_eq!(
        world.runs(),
        ["i-cloudstack"],
        "a reboot ran the script again"
    );
    world.assert_no_leak(&[first, reboot].concat());
}

/// One `#[test]` per case and release, `RELEASE::CASE`, so that a failure
/// names the release and the cases run in parallel as before; each release's
/// tree is built on its first use (module doc). A case is a function above
/// taking the [`Tree`].
macro_rules! on_each_release {
    ($cases:tt $($release:ident: $tree:expr;)*) => {
        $(cases_on!($release, $tree, $cases);)*

        /// A tree added to [`Tree::CLOUD_INIT`] gets the cases too.
        #[test]
        fn the_cases_run_on_every_cloud_init_tree() {
            assert_eq!([$($tree),*], Tree::CLOUD_INIT);
        }
    };
}

/// `mod RELEASE` with a `#[test]` per case ([`on_each_release!`]).
macro_rules! cases_on {
    ($release:ident, $tree:expr, [$($case:ident),* $(,)?]) => {
        mod $release {
            use super::*;
            $(
                #[test]
                fn $case() {
                    super::$case($tree);
                }
            )*
        }
    };
}

on_each_release! {
    [
        mime_shellscript_part_runs_tagstrap_once_per_instance,
        cloud_config_runcmd_runs_tagstrap_once_per_instance_with_no_secret_on_the_image,
        baked_unit_command_line_runs_once_per_instance,
        cloudstack_tags_part_rides_beside_the_shell_part_under_cloud_init,
    ]
    bookworm: Tree::BOOKWORM;
    trixie: Tree::TRIXIE;
    sid: Tree::SID;
}
