//! An OpenBao dev server (`bao server -dev`) on 127.0.0.1.
//!
//! In-memory storage, unsealed, no TLS, KV v2 mounted at `secret/`. The root
//! token is random per instance and passed through the environment
//! (`BAO_DEV_ROOT_TOKEN_ID`), not argv; `-dev-no-store-token` and a private
//! `HOME` keep it from writing `~/.vault-token`. Secrets and policies are
//! written through the HTTP API, never on a command line.
//!
//! The binary is `bao` from `PATH` (here a pyenv shim that `exec`s the
//! bundled Go binary, so the child we hold is the server itself), or
//! `$TESTKIT_BAO_BIN`.
//!
//! # Quirks found (OpenBao 2.7.2)
//! * `-dev-listen-address=127.0.0.1:0` does bind a random port, but the
//!   real port is logged nowhere (the banner says `127.0.0.1:0`), so the
//!   harness picks a free port itself. The dev cluster listener always
//!   takes API port + 1, so two consecutive free ports are picked; if the
//!   server then exits with `address already in use`, it retries with new
//!   ports.
//! * Readiness = `GET /v1/sys/health` answers 200 (polled every 20 ms).
//! * A bind failure exits at once (status 1) with `Error initializing
//!   listener of type tcp: ... bind: address already in use` on stdout.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{self, HttpResponse, Proc};

static POLICY_COUNTER: AtomicUsize = AtomicUsize::new(0);
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running OpenBao dev server; killed on Drop.
pub struct Bao {
    proc: Option<Proc>,
    port: u16,
    token: String,
    dir: tempfile::TempDir,
}

impl Bao {
    /// Start `bao server -dev` on a free 127.0.0.1 port with a random root
    /// token; returns when `/v1/sys/health` answers 200 (panics with the
    /// server's output after 30 s).
    pub fn start() -> Bao {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start() {
                Ok(b) => return b,
                Err((retry, logs)) => {
                    last = logs;
                    if !retry {
                        break;
                    }
                }
            }
        }
        panic!("bao dev server did not start:\n{last}");
    }

    fn try_start() -> Result<Bao, (bool, String)> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-bao-")
            .tempdir()
            .expect("create bao temp dir");
        let port = util::free_port_pair();
        let token = format!("testkit-{}", util::random_hex());
        let bin = std::env::var_os("TESTKIT_BAO_BIN").unwrap_or_else(|| "bao".into());
        let mut cmd = Command::new(bin);
        cmd.arg("server")
            .arg("-dev")
            .arg("-dev-no-store-token")
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env("BAO_DEV_ROOT_TOKEN_ID", &token)
            .env("HOME", dir.path())
            .current_dir(dir.path());
        for k in [
            "BAO_ADDR",
            "VAULT_ADDR",
            "BAO_TOKEN",
            "VAULT_TOKEN",
            "BAO_DEV_LISTEN_ADDRESS",
            "VAULT_DEV_LISTEN_ADDRESS",
            "VAULT_DEV_ROOT_TOKEN_ID",
            "BAO_API_ADDR",
            "VAULT_API_ADDR",
            "BAO_CLUSTER_ADDR",
            "VAULT_CLUSTER_ADDR",
        ] {
            cmd.env_remove(k);
        }
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).expect("stdout.log");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr.log");
        let proc = Proc::spawn(cmd, false, stdout, stderr)
            .unwrap_or_else(|e| panic!("spawn bao (is it on PATH?): {e}"));
        let mut bao = Bao {
            proc: Some(proc),
            port,
            token,
            dir,
        };
        let ready = util::poll_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Ok(r) = util::http_request(port, "GET", "/v1/sys/health", &[], None) {
                if r.status == 200 {
                    return Some(true);
                }
            }
            if bao.proc.as_mut().expect("proc").try_wait().is_some() {
                return Some(false);
            }
            None
        });
        if ready == Some(true) {
            return Ok(bao);
        }
        bao.stop();
        let logs = bao.logs();
        Err((logs.contains("address already in use"), logs))
    }

    /// `"http://127.0.0.1:PORT"` (what `VAULT_ADDR` / `BAO_ADDR` get).
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn root_token(&self) -> String {
        self.token.clone()
    }

    /// The server's stdout and stderr, for failure messages.
    pub fn logs(&self) -> String {
        let d = self.dir.path();
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            util::read_lossy(&d.join("stdout.log")),
            util::read_lossy(&d.join("stderr.log"))
        )
    }

    /// The instance's temp dir (its `HOME`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// One API call: `method` `/v1/...` with `X-Vault-Token: token` (if
    /// any) and a JSON body (if any).
    pub fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> HttpResponse {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(t) = token {
            headers.push(("X-Vault-Token", t));
        }
        let body = body.map(|b| serde_json::to_vec(b).expect("json"));
        util::http_request(self.port, method, path, &headers, body.as_deref())
            .unwrap_or_else(|e| panic!("bao {method} {path}: {e}\n{}", self.logs()))
    }

    fn api_ok(&self, method: &str, path: &str, body: &Value) -> HttpResponse {
        let r = self.api(method, path, Some(&self.token), Some(body));
        assert!(
            (200..300).contains(&r.status),
            "bao {method} {path} -> {}: {}",
            r.status,
            r.text()
        );
        r
    }

    /// Write a KV v2 secret: `POST /v1/{mount}/data/{path}` with
    /// `{"data": {fields}}`, as root. The dev server mounts KV v2 at `secret`.
    pub fn put_kv2(&self, mount: &str, path: &str, fields: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let mount = mount.trim_matches('/');
        let path = path.trim_matches('/');
        self.api_ok(
            "POST",
            &format!("/v1/{mount}/data/{path}"),
            &json!({ "data": data }),
        );
    }

    /// Mount a new KV v2 engine at `mount` (e.g. to test non-default mounts).
    pub fn mount_kv2(&self, mount: &str) {
        let mount = mount.trim_matches('/');
        self.api_ok(
            "POST",
            &format!("/v1/sys/mounts/{mount}"),
            &json!({ "type": "kv", "options": { "version": "2" } }),
        );
    }

    /// Write `policy_hcl` as a new ACL policy and create a token (TTL 1 h)
    /// with it plus the built-in `default` policy. An empty `policy_hcl`
    /// gives a token with only `default` (which cannot read `secret/`:
    /// 403 there).
    pub fn create_token(&self, policy_hcl: &str) -> String {
        let mut policies = vec!["default".to_string()];
        if !policy_hcl.trim().is_empty() {
            let name = format!("testkit-{}", POLICY_COUNTER.fetch_add(1, Ordering::Relaxed));
            self.api_ok(
                "PUT",
                &format!("/v1/sys/policies/acl/{name}"),
                &json!({ "policy": policy_hcl }),
            );
            policies.push(name);
        }
        let r = self.api_ok(
            "POST",
            "/v1/auth/token/create",
            &json!({ "policies": policies, "ttl": "1h" }),
        );
        let v: Value = serde_json::from_slice(&r.body).expect("token create json");
        v["auth"]["client_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no client_token in {v}"))
            .to_string()
    }

    /// Kill the server now (SIGKILL, reaped) to simulate "store down".
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Bao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bao")
            .field("addr", &self.addr())
            .finish_non_exhaustive()
    }
}
