//! An OpenBao dev server (`bao server -dev`) on 127.0.0.1.
//!
//! In-memory storage, unsealed, KV v2 mounted at `secret/`; plain HTTP
//! ([`Bao::start`]) or HTTPS with a generated CA ([`Bao::start_tls`]). The root
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
//! * The dev server prints `Unseal Key: <base64>` in its stdout banner, a
//!   few ms *after* `/v1/sys/health` first answers 200; the harness polls
//!   `stdout.log` for it after start-up (the key never leaves the temp dir
//!   and HTTP bodies).
//! * Dev mode does allow sealing: `PUT /v1/sys/seal` (root token) -> 204;
//!   while sealed `/v1/sys/health` is 503 (`"sealed":true`) and every other
//!   request (e.g. a KV read) is `503 {"errors":["Vault is sealed"]}`.
//!   `PUT /v1/sys/unseal` with the banner key -> 200 `"sealed":false`, and
//!   health is 200 again at once; the in-memory data survive (seal only
//!   drops the keys, the inmem storage lives as long as the process).
//! * AppRole is not mounted in dev mode (`sys/auth` has only `token/`).
//! * The `-dev-tls` listener asks for a client certificate without
//!   requiring one (`tls_disable_client_certs` is false), so the `cert`
//!   auth method works on it. It answers `400` "invalid certificate or no
//!   client certificate supplied" to a certificate of another CA, `400` "no
//!   chain matching all constraints" to one whose names a role does not
//!   allow, but `500` "failed to verify client's certificate: x509:
//!   certificate has expired or is not yet valid" to an expired one.
//! * An audit device cannot be enabled through the API: `PUT
//!   /v1/sys/audit/NAME` answers `400` "cannot enable audit device via API;
//!   use declarative, config-based audit device management instead" (unless
//!   the server config sets `unsafe_allow_api_audit_creation`). A config file
//!   with an `audit "file" "NAME" { options { ... } }` block, passed with
//!   `-config` next to `-dev`, enables it at start-up: `GET /v1/sys/audit`
//!   lists it, with the options as given. [`Bao::start_audited`] does that,
//!   with `log_raw = "true"`: each request and response is one JSON line,
//!   written (0600) before the response is sent, secrets in clear (the
//!   token a request carries at `auth.client_token`, a login's at
//!   `response.auth.client_token`, its body at `request.data`).
//!
//! ## TLS (`-dev-tls`)
//! * `bao server -dev -dev-tls -dev-tls-cert-dir=DIR` generates a fresh CA
//!   and a server cert per start. `DIR` must already exist: otherwise the
//!   server exits at once (status 1) with `stat DIR: no such file or
//!   directory` on stdout. Without `-dev-tls-cert-dir` it uses a new
//!   directory under `$TMPDIR`; the harness passes `<temp dir>/tls` (mode
//!   0700) so everything stays in the instance's temp dir.
//! * Files written: `vault-ca.pem` (0444, CA `CN=Vault Dev CA`, CA:TRUE),
//!   `vault-cert.pem` (0400, server cert only, not the chain) and
//!   `vault-key.pem` (0400), all ECDSA P-256. On a graceful shutdown the server deletes the three files
//!   (not the directory); after SIGKILL they stay until the temp dir goes.
//! * The server cert has `CN=<hostname>` and SANs `DNS:localhost`,
//!   `localhost4`, `localhost6`, `localhost.localdomain`, `<hostname>` and
//!   `IP:127.0.0.1` (no `::1`), valid from 1 minute ago for 1 year; it
//!   verifies against `vault-ca.pem` for IP 127.0.0.1 (openssl and rustls).
//! * The banner shows `Api Address: https://127.0.0.1:PORT`, `export
//!   BAO_CACERT='DIR/vault-ca.pem'`, and the `Unseal Key:` line as without
//!   TLS. The cluster listener is still API port + 1.
//! * A plain-HTTP request to the TLS port gets `400` (Go's "client sent an
//!   HTTP request to an HTTPS server"), never 200, so readiness polling
//!   must use TLS: the harness polls for `vault-ca.pem` until it parses,
//!   then polls `GET /v1/sys/health` over rustls until 200.
//!   With `Connection: close` the server ends each TLS connection with a
//!   proper `close_notify` (a clean EOF for rustls). The client offers only
//!   ALPN `http/1.1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{self, HttpResponse, Proc};

static POLICY_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `fields` as a JSON object of strings, the body of a KV write.
pub(crate) fn string_fields(fields: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

/// The API path of a KV v2 secret: `/v1/{mount}/data/{path}`.
pub(crate) fn kv2_path(mount: &str, path: &str) -> String {
    format!(
        "/v1/{}/data/{}",
        mount.trim_matches('/'),
        path.trim_matches('/')
    )
}

/// Writes `policy_hcl` (when not empty) as a new ACL policy and creates a
/// token (TTL 1 h) with it plus `default`, through `api_ok` (a root call
/// that asserts success). Shared by the dev server and the cluster.
pub(crate) fn create_token_via(
    api_ok: impl Fn(&str, &str, &Value) -> HttpResponse,
    policy_hcl: &str,
) -> String {
    let mut policies = vec!["default".to_string()];
    if !policy_hcl.trim().is_empty() {
        let name = format!("testkit-{}", POLICY_COUNTER.fetch_add(1, Ordering::Relaxed));
        api_ok(
            "PUT",
            &format!("/v1/sys/policies/acl/{name}"),
            &json!({ "policy": policy_hcl }),
        );
        policies.push(name);
    }
    let r = api_ok(
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
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running OpenBao dev server; killed on Drop.
pub struct Bao {
    proc: Option<Proc>,
    port: u16,
    token: String,
    unseal_key: String,
    /// `-dev-tls`: the generated CA file.
    ca_pem: Option<PathBuf>,
    /// `-dev-tls`: a client config trusting only that CA (loaded once the
    /// server has written it).
    tls: Option<Arc<rustls::ClientConfig>>,
    /// [`Bao::start_audited`]: the file audit device's log.
    audit_log: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl Bao {
    /// Start `bao server -dev` on a free 127.0.0.1 port with a random root
    /// token; returns when `/v1/sys/health` answers 200 (panics with the
    /// server's output after 30 s).
    pub fn start() -> Bao {
        Self::start_with(false)
    }

    /// Like [`Bao::start`], but with `-dev-tls`: the API is
    /// `https://127.0.0.1:PORT` with a certificate from a CA the server
    /// generates into `<temp dir>/tls` ([`Bao::ca_pem_path`]). [`Bao::api`]
    /// and the helpers talk TLS to it, trusting only that CA.
    pub fn start_tls() -> Bao {
        Self::start_with(true)
    }

    /// Like [`Bao::start`] (`tls` false) or [`Bao::start_tls`], with a file
    /// audit device `leak` logging raw (`log_raw = "true"`) to
    /// [`Bao::audit_log`]: every token, secret ID and JWT the server was
    /// sent or gave out, in clear, one JSON line per request and response.
    pub fn start_audited(tls: bool) -> Bao {
        util::start_with_retries("bao dev server", || Self::try_start(tls, true))
    }

    fn start_with(tls: bool) -> Bao {
        util::start_with_retries("bao dev server", || Self::try_start(tls, false))
    }

    fn try_start(tls: bool, audit: bool) -> Result<Bao, (bool, String)> {
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
        let ca_pem = tls.then(|| {
            // bao does not create the directory itself.
            let tls_dir = dir.path().join("tls");
            std::fs::create_dir(&tls_dir).expect("create bao tls dir");
            util::chmod(&tls_dir, 0o700);
            cmd.arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", tls_dir.display()));
            tls_dir.join("vault-ca.pem")
        });
        let audit_log = audit.then(|| {
            let log = dir.path().join("audit.log");
            let config = format!(
                "audit \"file\" \"leak\" {{\n  options {{\n    file_path = {:?}\n    \
                 log_raw = \"true\"\n  }}\n}}\n",
                log.display().to_string()
            );
            let file = dir.path().join("audit.hcl");
            std::fs::write(&file, config).expect("write bao audit config");
            cmd.arg(format!("-config={}", file.display()));
            log
        });
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
            unseal_key: String::new(),
            ca_pem,
            tls: None,
            audit_log,
            dir,
        };
        let ready = util::poll_until(START_TIMEOUT, Duration::from_millis(20), || {
            if bao.tls.is_none() {
                // The CA file appears (and may be half-written) shortly
                // after the start; it exists before the listener answers.
                if let Some(ca) = &bao.ca_pem {
                    bao.tls = util::client_config_from_pem(ca).ok();
                }
            }
            if bao.ca_pem.is_none() || bao.tls.is_some() {
                if let Ok(r) = bao.request("GET", "/v1/sys/health", &[], None) {
                    if r.status == 200 {
                        return Some(true);
                    }
                }
            }
            if bao.proc.as_mut().expect("proc").try_wait().is_some() {
                return Some(false);
            }
            None
        });
        if ready == Some(true) {
            // The banner (with the unseal key) follows readiness closely.
            let stdout = bao.dir.path().join("stdout.log");
            let key = util::poll_until(START_TIMEOUT, Duration::from_millis(5), || {
                util::read_lossy(&stdout)
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("Unseal Key:").map(str::trim))
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
            });
            if let Some(key) = key {
                bao.unseal_key = key;
                return Ok(bao);
            }
        }
        bao.stop();
        let logs = bao.logs();
        Err((logs.contains("address already in use"), logs))
    }

    /// `"http://127.0.0.1:PORT"`, or `"https://127.0.0.1:PORT"` for
    /// [`Bao::start_tls`] (what `VAULT_ADDR` / `BAO_ADDR` get).
    pub fn addr(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// For [`Bao::start_tls`]: the generated CA certificate (PEM,
    /// `<temp dir>/tls/vault-ca.pem`; what `VAULT_CACERT` / `BAO_CACERT`
    /// get). `None` for a plain-HTTP server.
    pub fn ca_pem_path(&self) -> Option<PathBuf> {
        self.ca_pem.clone()
    }

    /// For [`Bao::start_tls`]: a rustls client config (ring provider, ALPN
    /// `http/1.1`) that trusts only the generated CA. `None` without TLS.
    pub fn tls_client_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    /// One HTTP/1.1 request (`Connection: close`) to the API port, over TLS
    /// when the server has it.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> std::io::Result<HttpResponse> {
        match (&self.ca_pem, &self.tls) {
            (None, _) => util::http_request(self.port, method, path, headers, body),
            (Some(_), Some(tls)) => {
                util::https_request(self.port, tls, method, path, headers, body)
            }
            (Some(ca), None) => Err(std::io::Error::other(format!(
                "bao TLS CA {} not loaded yet",
                ca.display()
            ))),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// For [`Bao::start_audited`]: the raw audit log (JSON lines). `None`
    /// without an audit device.
    pub fn audit_log(&self) -> Option<&Path> {
        self.audit_log.as_deref()
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
    /// any) and a JSON body (if any); over TLS (trusting only the generated
    /// CA) for [`Bao::start_tls`].
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
        self.request(method, path, &headers, body.as_deref())
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

    /// How many tokens the server holds, counted through their accessors
    /// (as root): a test's proof that a login's token was revoked.
    pub fn live_tokens(&self) -> usize {
        let r = self.api("LIST", "/v1/auth/token/accessors", Some(&self.token), None);
        assert_eq!(r.status, 200, "list accessors: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).expect("accessors json");
        v["data"]["keys"].as_array().map_or(0, Vec::len)
    }

    /// Write a KV v2 secret: `POST /v1/{mount}/data/{path}` with
    /// `{"data": {fields}}`, as root. The dev server mounts KV v2 at `secret`.
    pub fn put_kv2(&self, mount: &str, path: &str, fields: &[(&str, &str)]) {
        self.api_ok(
            "POST",
            &kv2_path(mount, path),
            &json!({ "data": string_fields(fields) }),
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
        create_token_via(|m, p, b| self.api_ok(m, p, b), policy_hcl)
    }

    /// Write a policy named `name` (overwrites).
    fn put_policy(&self, name: &str, policy_hcl: &str) {
        self.api_ok(
            "PUT",
            &format!("/v1/sys/policies/acl/{name}"),
            &json!({ "policy": policy_hcl }),
        );
    }

    /// Mount the AppRole auth method at `auth/approle` unless it is there.
    pub fn enable_approle(&self) {
        let r = self.api("GET", "/v1/sys/auth", Some(&self.token), None);
        assert_eq!(r.status, 200, "bao GET /v1/sys/auth: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).expect("sys/auth json");
        if v["data"]["approle/"].is_null() {
            self.api_ok(
                "POST",
                "/v1/sys/auth/approle",
                &json!({ "type": "approle" }),
            );
        }
    }

    /// Create (or overwrite) AppRole `role` whose tokens get a new policy
    /// `policy_hcl` plus `default` (an empty `policy_hcl`: `default` only;
    /// token TTL 1 h), enabling AppRole if needed. Returns `(role_id,
    /// secret_id)` for `POST /v1/auth/approle/login`.
    pub fn create_approle(&self, role: &str, policy_hcl: &str) -> (String, String) {
        self.enable_approle();
        let mut policies = vec!["default".to_string()];
        if !policy_hcl.trim().is_empty() {
            let name = format!(
                "testkit-approle-{}",
                POLICY_COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            self.put_policy(&name, policy_hcl);
            policies.push(name);
        }
        let base = format!("/v1/auth/approle/role/{}", role.trim_matches('/'));
        self.api_ok(
            "POST",
            &base,
            &json!({ "token_policies": policies, "token_ttl": "1h", "token_max_ttl": "1h" }),
        );
        let r = self.api("GET", &format!("{base}/role-id"), Some(&self.token), None);
        assert_eq!(r.status, 200, "bao GET {base}/role-id: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).expect("role-id json");
        let role_id = v["data"]["role_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no role_id in {v}"))
            .to_string();
        let r = self.api_ok("POST", &format!("{base}/secret-id"), &json!({}));
        let v: Value = serde_json::from_slice(&r.body).expect("secret-id json");
        let secret_id = v["data"]["secret_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no secret_id in {v}"))
            .to_string();
        (role_id, secret_id)
    }

    /// Mount a KV v1 engine at `mount`.
    pub fn mount_kv1(&self, mount: &str) {
        let mount = mount.trim_matches('/');
        self.api_ok(
            "POST",
            &format!("/v1/sys/mounts/{mount}"),
            &json!({ "type": "kv", "options": { "version": "1" } }),
        );
    }

    /// Write a KV v1 secret: `POST /v1/{mount}/{path}` with `{fields}`, as
    /// root.
    pub fn put_kv1(&self, mount: &str, path: &str, fields: &[(&str, &str)]) {
        let data = string_fields(fields);
        let mount = mount.trim_matches('/');
        let path = path.trim_matches('/');
        self.api_ok("POST", &format!("/v1/{mount}/{path}"), &Value::Object(data));
    }

    /// The dev server's unseal key (from its stdout banner).
    pub fn unseal_key(&self) -> String {
        self.unseal_key.clone()
    }

    /// Seal the server (`PUT /v1/sys/seal` as root); returns once
    /// `/v1/sys/health` answers 503.
    pub fn seal(&self) {
        let r = self.api("PUT", "/v1/sys/seal", Some(&self.token), None);
        assert_eq!(r.status, 204, "bao PUT /v1/sys/seal: {}", r.text());
        self.wait_health(503, "sealed");
    }

    /// Unseal it again with the banner key (`PUT /v1/sys/unseal`); returns
    /// once `/v1/sys/health` answers 200.
    pub fn unseal(&self) {
        let r = self.api(
            "PUT",
            "/v1/sys/unseal",
            None,
            Some(&json!({ "key": self.unseal_key })),
        );
        assert_eq!(r.status, 200, "bao PUT /v1/sys/unseal: {}", r.text());
        self.wait_health(200, "unsealed");
    }

    fn wait_health(&self, status: u16, what: &str) {
        let ok = util::poll_until(START_TIMEOUT, Duration::from_millis(10), || {
            self.request("GET", "/v1/sys/health", &[], None)
                .ok()
                .filter(|r| r.status == status)
        });
        assert!(ok.is_some(), "bao not {what} after 30 s\n{}", self.logs());
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
