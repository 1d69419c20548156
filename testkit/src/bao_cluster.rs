//! A real OpenBao HA cluster (integrated Raft storage) on 127.0.0.1.
//!
//! [`BaoCluster::start`]`(n)` runs `n` `bao server -config=...` processes,
//! each with its own temp dir (config, Raft data, logs), API port and
//! cluster port (free ports, retried on `address already in use`), no TLS
//! on the API listener. Then, all through the HTTP API:
//!
//! 1. `PUT /v1/sys/init` on node 0 (1 key share, threshold 1), `PUT
//!    /v1/sys/unseal`, wait until `/v1/sys/health` says 200 (active);
//! 2. mount KV v2 at `secret/` (not mounted outside dev mode) — *before* the
//!    others join, see the quirks;
//! 3. for every other node: `PUT /v1/sys/storage/raft/join` with
//!    `leader_api_addr` = node 0, then unseal it;
//! 4. wait until node 0 is still active, every other node answers
//!    `/v1/sys/health` with 429 (unsealed standby) and names node 0 in
//!    `/v1/sys/leader`, and `/v1/sys/storage/raft/configuration` lists `n`
//!    servers, all voters.
//!
//! The root token and the unseal key come back in the `sys/init` response
//! and only ever travel in HTTP bodies/headers; nothing secret is on a
//! command line. `HOME` is the node's temp dir and `BAO_*`/`VAULT_*`
//! variables that would change the server are removed from its environment.
//!
//! Config per node:
//!
//! ```hcl
//! storage "raft" {
//!   path    = "<tmp>/nodeI/raft"
//!   node_id = "nodeI"
//!   performance_multiplier = 1
//! }
//! listener "tcp" {
//!   address         = "127.0.0.1:PORT"
//!   cluster_address = "127.0.0.1:CPORT"
//!   tls_disable     = true
//! }
//! api_addr     = "http://127.0.0.1:PORT"
//! cluster_addr = "https://127.0.0.1:CPORT"
//! # only with BaoClusterBuilder::disable_standby_reads():
//! disable_standby_reads = true
//! ```
//!
//! and `BAO_RAFT_AUTOPILOT_DISABLE=1` in the environment.
//!
//! * `performance_multiplier = 1` (an integer; 1 is the smallest valid
//!   value, the default is 5) scales hashicorp/raft's defaults by 1 instead
//!   of 5: heartbeat timeout 1 s, election timeout 1 s, leader lease 0.5 s.
//!   That is the fastest failover OpenBao allows; the first election after
//!   a node starts still uses 3x those timeouts.
//! * Autopilot is disabled because with it, joined nodes are non-voters for
//!   `server_stabilization_time` (10 s by default; even with 0 s and 100 ms
//!   autopilot intervals the promotion took ~3 s here), and a cluster whose
//!   leader dies before the promotion cannot elect anyone. Without
//!   autopilot, `raft/join` adds voters directly. Clients see no
//!   difference (autopilot only manages membership; dead-server cleanup is
//!   off by default anyway).
//!
//! # Quirks found (OpenBao 2.7.2, 2 cores, loopback)
//! * `disable_mlock` is gone in OpenBao 2.x: the server logs `unknown or
//!   unsupported field disable_mlock found in configuration`, so it is not
//!   written.
//! * Start-up of a 3-node cluster: 2.8–4.6 s in total (the upper end with
//!   two clusters and other tests starting in parallel). Process start
//!   0.3 s; `sys/init` alone takes 1.2–2 s (the single-node Raft bootstrap
//!   waits out an election timeout); each join + unseal returns in ~10 ms,
//!   but a joined node needs ~1 s more before it reports as an unsealed
//!   standby. With autopilot on it was 5.5–7 s. See
//!   [`BaoCluster::startup_time`].
//! * **Standbys serve reads themselves** (OpenBao 2.x "standby reads", on by
//!   default with Raft; the log says `entering read-enabled standby mode`):
//!   `GET /v1/secret/data/x` on a standby answers 200 with the data from
//!   its own replica, with or without `X-Vault-No-Request-Forwarding`.
//!   Writes are forwarded to the active node (200 as if sent there), and so
//!   is any request whose token the standby cannot check locally (a token
//!   with `num_uses`, or one created so recently that it has not reached
//!   the standby yet). Consequences:
//!   * read-after-write lag: right after a write through the leader, a
//!     standby answered `404 {"errors":[]}` for up to ~100 ms (new secret),
//!     and a brand-new token was forwarded (or, with the no-forwarding
//!     header, redirected) — [`BaoCluster::put_kv2`] and
//!     [`BaoCluster::create_token`] therefore wait until every live node
//!     answers them locally;
//!   * a KV v2 mount created while standbys are up makes them answer `400
//!     {"errors":["Waiting for the primary to upgrade from non-versioned to
//!     versioned data. This backend will be unavailable for a brief period
//!     and will resume service when the primary is finished."]}` for ~1 s;
//!     mounting before the joins avoids that.
//! * With `disable_standby_reads = true`
//!   ([`BaoClusterBuilder::disable_standby_reads`]) a standby forwards
//!   every request to the active node over the cluster port and returns
//!   its answer (200 for a KV read, with the same body as the active node).
//! * `X-Vault-No-Request-Forwarding: <any non-empty value>` on a request
//!   that a standby would forward (a write; with `disable_standby_reads`
//!   also a read) makes it answer `307 Temporary Redirect`, empty body
//!   (`Content-Length: 0`), `Location:` = the active node's `api_addr`
//!   scheme and host + the request's path + its raw query string, e.g.
//!   `http://127.0.0.1:PORT/v1/secret/data/x?y=1`. A request the standby
//!   serves itself (a read with standby reads on) is answered normally
//!   (200) despite the header.
//! * Leader SIGKILLed, until a survivor is active (3 nodes):
//!   * standby reads on (default): the survivors keep answering KV reads
//!     with **200 and the data** during the whole window and after it;
//!   * `disable_standby_reads`: the survivors answer a KV read at once
//!     (~2 ms) with **`307`, empty body, `Location: http://<dead
//!     leader>/v1/...`** (forwarding fails, so they fall back to the
//!     redirect, header or not); right after the election the *other*
//!     survivor answers `500 {"errors":["local node not active but active
//!     cluster node not found"]}` for ~0.2 s, then 200;
//!   * in both modes a write (or anything else that would be forwarded)
//!     gets that same `307` to the dead leader; `/v1/sys/health` stays 429
//!     on the survivors and `/v1/sys/leader` keeps naming the dead leader
//!     (`"is_self":false`) until the new leader is there;
//!   * election time (kill -> a survivor's `/v1/sys/health` is 200):
//!     **2.5–5 s** when the leader is killed within a few seconds of
//!     `start()` returning (measured 2.6–4.9 s), **1.4–2.6 s** once the
//!     cluster has run for ~7 s. A node uses 3x the Raft timeouts (3 s
//!     heartbeat timeout) for its first election, until 3–6 s after it
//!     joined; the first survivor to time out is then refused in the
//!     pre-vote by the other one, which has not timed out yet ("rejecting
//!     pre-vote request since we have a leader"), and the election waits
//!     for the second one. [`BaoCluster::wait_for_leader`] adds ~70 ms until
//!     the other survivor names the new leader.
//!
//!   The `cluster_smoke` tests print the figures of the current run
//!   (`cargo test -p testkit --test cluster_smoke -- --nocapture`).
//! * `PUT /v1/sys/storage/raft/autopilot/configuration` on a node started
//!   with `BAO_RAFT_AUTOPILOT_DISABLE` gets no answer at all (the handler
//!   panics, Go's HTTP server closes the connection; the node keeps
//!   running): do not call it on these clusters.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bao::{create_token_via, kv2_path, string_fields};
use crate::util::{self, HttpResponse, Proc};

const PROC_TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// Environment variables that would change how a node runs or which
/// server a `bao` process talks to; removed from every node's environment.
const ENV_TO_CLEAR: &[&str] = &[
    "BAO_ADDR",
    "VAULT_ADDR",
    "BAO_TOKEN",
    "VAULT_TOKEN",
    "BAO_API_ADDR",
    "VAULT_API_ADDR",
    "BAO_CLUSTER_ADDR",
    "VAULT_CLUSTER_ADDR",
    "BAO_RAFT_NODE_ID",
    "VAULT_RAFT_NODE_ID",
    "BAO_RAFT_PATH",
    "VAULT_RAFT_PATH",
    "BAO_RAFT_RETRY_JOIN_AS_NON_VOTER",
    "VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER",
    "VAULT_RAFT_AUTOPILOT_DISABLE",
    "BAO_LOG_LEVEL",
    "VAULT_LOG_LEVEL",
];

struct Node {
    proc: Arc<Mutex<Option<Proc>>>,
    port: u16,
    cluster_port: u16,
    dir: PathBuf,
}

/// Options for a [`BaoCluster`]; see [`BaoCluster::builder`].
#[derive(Clone, Debug)]
pub struct BaoClusterBuilder {
    nodes: usize,
    standby_reads: bool,
}

impl BaoClusterBuilder {
    /// Write `disable_standby_reads = true` into every node's config:
    /// standbys then forward reads to the active node too (and redirect
    /// them with `307` when asked with `X-Vault-No-Request-Forwarding`, or
    /// when the active node is unreachable).
    pub fn disable_standby_reads(mut self) -> Self {
        self.standby_reads = false;
        self
    }

    /// Start the cluster (see the module docs); panics with the nodes' logs
    /// if it is not settled within 60 s.
    pub fn start(self) -> BaoCluster {
        assert!(self.nodes >= 1, "a cluster needs at least one node");
        util::start_with_retries("bao cluster", || BaoCluster::try_start(&self))
    }
}

/// A running OpenBao Raft cluster; every node is killed on Drop.
pub struct BaoCluster {
    nodes: Vec<Node>,
    token: String,
    unseal_key: String,
    standby_reads: bool,
    startup: Duration,
    dir: tempfile::TempDir,
}

fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

impl BaoCluster {
    /// [`BaoCluster::builder`]`(n).start()`: `n` nodes, standby reads on
    /// (OpenBao's default). Node 0 is the active node when this returns.
    pub fn start(n: usize) -> BaoCluster {
        Self::builder(n).start()
    }

    pub fn builder(n: usize) -> BaoClusterBuilder {
        BaoClusterBuilder {
            nodes: n,
            standby_reads: true,
        }
    }

    fn try_start(opts: &BaoClusterBuilder) -> Result<BaoCluster, (bool, String)> {
        let t0 = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("testkit-baocluster-")
            .tempdir()
            .expect("create bao cluster temp dir");
        let mut used = Vec::new();
        let mut port = || loop {
            let p = util::free_port();
            if !used.contains(&p) {
                used.push(p);
                return p;
            }
        };
        let mut nodes = Vec::new();
        for i in 0..opts.nodes {
            let node_dir = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(node_dir.join("raft")).expect("create node raft dir");
            nodes.push(Node {
                proc: Arc::new(Mutex::new(None)),
                port: port(),
                cluster_port: port(),
                dir: node_dir,
            });
        }
        let mut c = BaoCluster {
            nodes,
            token: String::new(),
            unseal_key: String::new(),
            standby_reads: opts.standby_reads,
            startup: Duration::ZERO,
            dir,
        };
        for i in 0..c.nodes.len() {
            c.spawn_node(i);
        }
        // Every node answers HTTP (501: not initialised, sealed) or died.
        for i in 0..c.nodes.len() {
            let up = util::poll_until(PROC_TIMEOUT, POLL, || {
                if c.health(i).is_some() {
                    return Some(true);
                }
                if !c.is_alive(i) {
                    return Some(false);
                }
                None
            });
            if up != Some(true) {
                c.stop();
                let logs = c.logs();
                return Err((logs.contains("address already in use"), logs));
            }
        }
        match c.form() {
            Ok(()) => {
                c.startup = t0.elapsed();
                Ok(c)
            }
            Err(e) => {
                c.stop();
                Err((false, format!("{e}\n{}", c.logs())))
            }
        }
    }

    fn spawn_node(&self, i: usize) {
        let n = &self.nodes[i];
        let mut cfg = format!(
            r#"storage "raft" {{
  path = "{raft}"
  node_id = "node{i}"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "https://127.0.0.1:{cport}"
"#,
            raft = n.dir.join("raft").display(),
            port = n.port,
            cport = n.cluster_port,
        );
        if !self.standby_reads {
            cfg.push_str("disable_standby_reads = true\n");
        }
        let cfg_path = n.dir.join("bao.hcl");
        util::write_file(&cfg_path, cfg.as_bytes(), 0o600);
        let bin = std::env::var_os("TESTKIT_BAO_BIN").unwrap_or_else(|| "bao".into());
        let mut cmd = Command::new(bin);
        cmd.arg("server")
            .arg(format!("-config={}", cfg_path.display()))
            .env("HOME", &n.dir)
            .env("BAO_RAFT_AUTOPILOT_DISABLE", "1")
            .current_dir(&n.dir);
        for k in ENV_TO_CLEAR {
            cmd.env_remove(k);
        }
        let stdout = std::fs::File::create(n.dir.join("stdout.log")).expect("stdout.log");
        let stderr = std::fs::File::create(n.dir.join("stderr.log")).expect("stderr.log");
        let proc = Proc::spawn(cmd, false, stdout, stderr)
            .unwrap_or_else(|e| panic!("spawn bao (is it on PATH?): {e}"));
        *n.proc.lock().unwrap() = Some(proc);
    }

    /// Init + unseal node 0, mount `secret/`, join and unseal the others,
    /// wait until settled.
    fn form(&mut self) -> Result<(), String> {
        let r = self.try_api_node(
            0,
            "PUT",
            "/v1/sys/init",
            None,
            Some(&json!({ "secret_shares": 1, "secret_threshold": 1 })),
        )?;
        if r.status != 200 {
            return Err(format!("sys/init -> {}: {}", r.status, r.text()));
        }
        let v = json_of(&r);
        self.token = v["root_token"].as_str().unwrap_or_default().to_string();
        self.unseal_key = v["keys_base64"][0].as_str().unwrap_or_default().to_string();
        if self.token.is_empty() || self.unseal_key.is_empty() {
            return Err("sys/init: no root_token / keys_base64 in the answer".into());
        }
        self.unseal_node(0)?;
        util::poll_until(PROC_TIMEOUT, POLL, || {
            (self.health(0) == Some(200)).then_some(())
        })
        .ok_or("node 0 did not become active")?;

        let r = self.try_api_node(0, "GET", "/v1/sys/mounts", Some(&self.token), None)?;
        if json_of(&r)["data"]["secret/"].is_null() {
            let r = self.try_api_node(
                0,
                "POST",
                "/v1/sys/mounts/secret",
                Some(&self.token),
                Some(&json!({ "type": "kv", "options": { "version": "2" } })),
            )?;
            if r.status != 204 && r.status != 200 {
                return Err(format!("mount secret/ -> {}: {}", r.status, r.text()));
            }
        }

        let leader_addr = self.addr(0);
        for i in 1..self.nodes.len() {
            let r = self.try_api_node(
                i,
                "PUT",
                "/v1/sys/storage/raft/join",
                None,
                Some(&json!({ "leader_api_addr": leader_addr })),
            )?;
            if r.status != 200 || json_of(&r)["joined"] != json!(true) {
                return Err(format!("node {i} raft/join -> {}: {}", r.status, r.text()));
            }
            self.unseal_node(i)?;
        }

        let n = self.nodes.len();
        let settled = util::poll_until(SETTLE_TIMEOUT, POLL, || {
            if self.health(0) != Some(200) {
                return None;
            }
            for i in 1..n {
                if self.health(i) != Some(429) || self.leader_address_seen_by(i) != leader_addr {
                    return None;
                }
            }
            let r = self
                .try_api_node(
                    0,
                    "GET",
                    "/v1/sys/storage/raft/configuration",
                    Some(&self.token),
                    None,
                )
                .ok()?;
            let v = json_of(&r);
            let servers = v["data"]["config"]["servers"].as_array()?;
            (servers.len() == n && servers.iter().all(|s| s["voter"] == json!(true))).then_some(())
        });
        settled.ok_or_else(|| "cluster did not settle within 60 s".to_string())
    }

    fn unseal_node(&self, i: usize) -> Result<(), String> {
        let r = self.try_api_node(
            i,
            "PUT",
            "/v1/sys/unseal",
            None,
            Some(&json!({ "key": self.unseal_key })),
        )?;
        if r.status != 200 {
            return Err(format!("node {i} sys/unseal -> {}: {}", r.status, r.text()));
        }
        Ok(())
    }

    /// `leader_address` from node `i`'s `/v1/sys/leader` ("" if unknown).
    fn leader_address_seen_by(&self, i: usize) -> String {
        self.try_api_node(i, "GET", "/v1/sys/leader", None, None)
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| json_of(&r)["leader_address"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Status of node `i`'s `GET /v1/sys/health` (200 active, 429 standby,
    /// 501 not initialised, 503 sealed); `None` if dead or unreachable.
    pub fn health(&self, i: usize) -> Option<u16> {
        if !self.is_alive(i) {
            return None;
        }
        util::http_request(self.nodes[i].port, "GET", "/v1/sys/health", &[], None)
            .ok()
            .map(|r| r.status)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `"http://127.0.0.1:PORT"` of every node, in node order (dead ones
    /// included).
    pub fn addrs(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.addr(i)).collect()
    }

    /// `"http://127.0.0.1:PORT"` of node `i` (its `api_addr`).
    pub fn addr(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].port)
    }

    /// API port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    pub fn root_token(&self) -> String {
        self.token.clone()
    }

    /// Whether the nodes were started with standby reads (the default).
    pub fn standby_reads(&self) -> bool {
        self.standby_reads
    }

    /// How long [`BaoCluster::start`] took (processes up -> settled).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The cluster's temp dir (one `nodeI/` per node).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Index of the node whose `/v1/sys/health` answers 200 (active) now.
    pub fn leader(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.health(i) == Some(200))
    }

    /// Wait until a node is active *and* every other live node names it in
    /// `/v1/sys/leader` (so requests to any node behave normally again);
    /// returns its index. Polls every 20 ms; panics with the logs after
    /// `timeout`.
    pub fn wait_for_leader(&self, timeout: Duration) -> usize {
        util::poll_until(timeout, POLL, || {
            let l = self.leader()?;
            let addr = self.addr(l);
            (0..self.nodes.len())
                .filter(|&i| i != l && self.is_alive(i))
                .all(|i| self.leader_address_seen_by(i) == addr)
                .then_some(l)
        })
        .unwrap_or_else(|| panic!("no settled leader within {timeout:?}\n{}", self.logs()))
    }

    /// SIGKILL node `i` (and reap it). It stays dead. Idempotent.
    pub fn kill(&self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.lock().unwrap().take() {
            p.kill();
        }
    }

    /// A `'static` closure doing [`BaoCluster::kill`]`(i)`, e.g. for
    /// [`crate::Relay::on_first_connection`].
    pub fn killer(&self, i: usize) -> impl FnOnce() + Send + 'static {
        let proc = self.nodes[i].proc.clone();
        move || {
            if let Some(mut p) = proc.lock().unwrap().take() {
                p.kill();
            }
        }
    }

    /// Whether node `i`'s process is running.
    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i]
            .proc
            .lock()
            .unwrap()
            .as_mut()
            .is_some_and(|p| p.is_running())
    }

    /// Every node's stdout and stderr, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            out.push_str(&format!(
                "=== node{i} (api {}, cluster {}) ===\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
                n.port,
                n.cluster_port,
                util::read_lossy(&n.dir.join("stdout.log")),
                util::read_lossy(&n.dir.join("stderr.log"))
            ));
        }
        out
    }

    fn try_api_node(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<HttpResponse, String> {
        self.try_api_node_local(i, method, path, token, body, false)
    }

    /// With `local_only`, adds `X-Vault-No-Request-Forwarding: true` so that
    /// a standby answers from its own replica or redirects (307) rather than
    /// forwarding to the active node.
    fn try_api_node_local(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        local_only: bool,
    ) -> Result<HttpResponse, String> {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(t) = token {
            headers.push(("X-Vault-Token", t));
        }
        if local_only {
            headers.push(("X-Vault-No-Request-Forwarding", "true"));
        }
        let body = body.map(|b| serde_json::to_vec(b).expect("json"));
        util::http_request(self.nodes[i].port, method, path, &headers, body.as_deref())
            .map_err(|e| format!("node {i}: {method} {path}: {e}"))
    }

    /// One API call to node `i` (same shape as [`crate::Bao::api`]).
    pub fn api_node(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> HttpResponse {
        self.try_api_node(i, method, path, token, body)
            .unwrap_or_else(|e| panic!("bao {e}\n{}", self.logs()))
    }

    /// One API call to the current active node (waits up to 30 s for one;
    /// same shape as [`crate::Bao::api`]).
    pub fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> HttpResponse {
        let l = self
            .leader()
            .unwrap_or_else(|| self.wait_for_leader(Duration::from_secs(30)));
        self.api_node(l, method, path, token, body)
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

    /// Wait until `check(i, local_only)` holds on every live node.
    /// `local_only` is true when standbys serve reads themselves: the check
    /// must then not let a standby forward the request (a standby that does
    /// not know a token yet forwards requests made with it, which would hide
    /// the lag). Without standby reads every request is forwarded to the
    /// active node, so there is no lag to wait for.
    fn wait_replicated(&self, what: &str, check: impl Fn(usize, bool) -> bool) {
        let local_only = self.standby_reads;
        let ok = util::poll_until(REPLICATION_TIMEOUT, Duration::from_millis(10), || {
            (0..self.nodes.len())
                .filter(|&i| self.is_alive(i))
                .all(|i| check(i, local_only))
                .then_some(())
        });
        if ok.is_none() {
            panic!(
                "{what} not visible on every node after 10 s\n{}",
                self.logs()
            );
        }
    }

    /// Write a KV v2 secret through the active node (`POST
    /// /v1/{mount}/data/{path}`, as root), then wait until every live node
    /// reads that version (standbys serve reads from their own replica).
    pub fn put_kv2(&self, mount: &str, path: &str, fields: &[(&str, &str)]) {
        let url = kv2_path(mount, path);
        let r = self.api_ok("POST", &url, &json!({ "data": string_fields(fields) }));
        let version = json_of(&r)["data"]["version"].clone();
        self.wait_replicated(&format!("{url} version {version}"), |i, local| {
            self.try_api_node_local(i, "GET", &url, Some(&self.token), None, local)
                .is_ok_and(|r| {
                    r.status == 200 && json_of(&r)["data"]["metadata"]["version"] == version
                })
        });
    }

    /// Write `policy_hcl` as a new ACL policy and create a token (TTL 1 h)
    /// with it plus `default` (an empty `policy_hcl`: `default` only), via
    /// the active node; returns once every live node accepts the token
    /// (`auth/token/lookup-self` 200).
    pub fn create_token(&self, policy_hcl: &str) -> String {
        let token = create_token_via(|m, p, b| self.api_ok(m, p, b), policy_hcl);
        self.wait_replicated("new token", |i, local| {
            self.try_api_node_local(
                i,
                "GET",
                "/v1/auth/token/lookup-self",
                Some(&token),
                None,
                local,
            )
            .is_ok_and(|r| r.status == 200)
        });
        token
    }

    /// Kill every node now (Drop does the same).
    pub fn stop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

impl Drop for BaoCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for BaoCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaoCluster")
            .field("addrs", &self.addrs())
            .field("standby_reads", &self.standby_reads)
            .finish_non_exhaustive()
    }
}
