//! A stand-in for Vault's `aws` auth method, IAM type (OpenBao has none):
//! `POST /v1/auth/{mount}/login` takes the body Vault takes
//! (`iam_http_request_method`, base64 `iam_request_url`, `iam_request_body`
//! and `iam_request_headers`, and `role`), and does what Vault does with it:
//! checks the `X-Vault-AWS-IAM-Server-ID` header when one is configured
//! (present, equal, and among the signed headers), then replays the signed
//! request to STS (here: a [`crate::Moto`] with authentication on) with the
//! same method, path, headers and body and the client's `Host`, and grants a
//! token only when STS answers `GetCallerIdentity` with a principal of the
//! bound role (an `assumed-role/R/…` ARN is role `R`, as Vault reads it).
//! Otherwise 400 with Vault's `{"errors": [...]}`, or 403 for an unknown
//! role.
//!
//! The token reads the configured secrets at `GET /v1/secret/data/NAME`
//! (KV v2's shape) and is revoked by `POST /v1/auth/token/revoke-self`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine;

use crate::moto::read_request;

/// What the stand-in was told, and what it did.
#[derive(Default)]
struct State {
    mount: String,
    role: String,
    bound_arn: String,
    server_id: Option<String>,
    secrets: HashMap<String, String>,
    upstream: u16,
    tokens: Vec<String>,
    /// Every token granted, revoked or not.
    issued: Vec<String>,
    granted: usize,
    revoked: usize,
    /// Why each refused login was refused.
    refused: Vec<String>,
}

/// How the stand-in is configured before it starts.
pub struct VaultAwsBuilder {
    state: State,
}

/// A running stand-in.
pub struct VaultAwsLogin {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl VaultAwsBuilder {
    /// Requires `X-Vault-AWS-IAM-Server-ID: id`, signed.
    pub fn server_id(mut self, id: &str) -> Self {
        self.state.server_id = Some(id.to_string());
        self
    }

    /// The auth mount (default `aws`).
    pub fn mount(mut self, mount: &str) -> Self {
        self.state.mount = mount.to_string();
        self
    }

    /// A KV v2 secret at `secret/data/NAME` with field `value`.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.state
            .secrets
            .insert(name.to_string(), value.to_string());
        self
    }

    pub fn start(self) -> VaultAwsLogin {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the vault aws stand-in");
        let port = listener.local_addr().expect("local_addr").port();
        let state = Arc::new(Mutex::new(self.state));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        VaultAwsLogin { port, state }
    }
}

impl VaultAwsLogin {
    /// Vault role `role` bound to the IAM role `bound_arn`
    /// (`arn:aws:iam::ACCOUNT:role/NAME`), replaying to the STS of `moto`.
    pub fn builder(moto: &crate::Moto, role: &str, bound_arn: &str) -> VaultAwsBuilder {
        VaultAwsBuilder {
            state: State {
                mount: "aws".into(),
                role: role.to_string(),
                bound_arn: bound_arn.to_string(),
                upstream: moto.port(),
                ..State::default()
            },
        }
    }

    /// `http://127.0.0.1:PORT` (what `VAULT_ADDR` gets).
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Logins granted.
    pub fn granted(&self) -> usize {
        self.state.lock().expect("state").granted
    }

    /// Every token it granted (revoked ones too): what a test looks for in
    /// a leak scan.
    pub fn granted_tokens(&self) -> Vec<String> {
        self.state.lock().expect("state").issued.clone()
    }

    /// Tokens revoked with `revoke-self`.
    pub fn revoked(&self) -> usize {
        self.state.lock().expect("state").revoked
    }

    /// Why each refused login was refused.
    pub fn refused(&self) -> Vec<String> {
        self.state.lock().expect("state").refused.clone()
    }
}

fn reply(stream: &mut TcpStream, status: u16, body: &str) {
    let reason = crate::origin::reason(status);
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(text.as_bytes());
}

fn errors(message: &str) -> String {
    serde_json::json!({ "errors": [message] }).to_string()
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) {
    let Some((head, body)) = read_request(&mut stream) else {
        return;
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let token = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("x-vault-token")
            .then(|| v.trim().to_string())
    });
    let mount = state.lock().expect("state").mount.clone();
    let (status, answer) = if method == "POST" && path == format!("/v1/auth/{mount}/login") {
        login(state, &body)
    } else if method == "POST" && path == "/v1/auth/token/revoke-self" {
        let mut s = state.lock().expect("state");
        match token.and_then(|t| s.tokens.iter().position(|k| *k == t)) {
            Some(i) => {
                s.tokens.remove(i);
                s.revoked += 1;
                (204, String::new())
            }
            None => (403, errors("permission denied")),
        }
    } else if let (Some(name), "GET") = (path.strip_prefix("/v1/secret/data/"), method) {
        let s = state.lock().expect("state");
        if !token.is_some_and(|t| s.tokens.contains(&t)) {
            (403, errors("permission denied"))
        } else {
            match s.secrets.get(name) {
                Some(v) => (
                    200,
                    serde_json::json!({"data": {"data": {"value": v}, "metadata": {"version": 1}}})
                        .to_string(),
                ),
                None => (404, errors("")),
            }
        }
    } else {
        (404, errors("unsupported path"))
    };
    reply(&mut stream, status, &answer);
}

/// The login: Vault's checks, then STS's answer.
fn login(state: &Mutex<State>, body: &[u8]) -> (u16, String) {
    let refuse = |status: u16, why: String| {
        state.lock().expect("state").refused.push(why.clone());
        (status, errors(&why))
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return refuse(400, "failed to parse JSON input".into());
    };
    let (role, bound_arn, server_id, upstream) = {
        let s = state.lock().expect("state");
        (
            s.role.clone(),
            s.bound_arn.clone(),
            s.server_id.clone(),
            s.upstream,
        )
    };
    let asked_role = json["role"].as_str().unwrap_or_default();
    if asked_role != role {
        return refuse(403, format!("entry for role {asked_role:?} not found"));
    }
    let b64 = |field: &str| {
        json[field]
            .as_str()
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
    };
    let method = json["iam_http_request_method"].as_str().unwrap_or_default();
    let (Some(url), Some(request_body), Some(headers)) = (
        b64("iam_request_url").and_then(|u| String::from_utf8(u).ok()),
        b64("iam_request_body"),
        b64("iam_request_headers")
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok()),
    ) else {
        return refuse(400, "missing or malformed iam_request_* fields".into());
    };
    if method != "POST" {
        return refuse(400, format!("invalid iam_http_request_method {method:?}"));
    }
    // Go's http.Header: name → list of values (a bare string accepted too).
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in headers.as_object().into_iter().flatten() {
        match value {
            serde_json::Value::String(v) => pairs.push((name.clone(), v.clone())),
            serde_json::Value::Array(vs) => {
                for v in vs.iter().filter_map(|v| v.as_str()) {
                    pairs.push((name.clone(), v.to_string()));
                }
            }
            _ => return refuse(400, format!("header {name} is neither a string nor a list")),
        }
    }
    let header = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if let Some(expected) = server_id {
        let signed = header("authorization")
            .and_then(|a| {
                a.split("SignedHeaders=")
                    .nth(1)
                    .map(|s| s.split(',').next().unwrap_or("").to_ascii_lowercase())
            })
            .unwrap_or_default();
        match header("x-vault-aws-iam-server-id") {
            None => return refuse(400, "missing header \"X-Vault-AWS-IAM-Server-ID\"".into()),
            Some(v) if v != expected => {
                return refuse(400, format!("expected {expected:?} but got {v:?}"))
            }
            Some(_) if !signed.split(';').any(|h| h == "x-vault-aws-iam-server-id") => {
                return refuse(
                    400,
                    "vault header wasn't signed: x-vault-aws-iam-server-id".into(),
                )
            }
            Some(_) => {}
        }
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return refuse(400, format!("iam_request_url {url:?} is not https"));
    };
    let (host, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (status, answer) = match replay(upstream, host, target, &pairs, &request_body) {
        Some(r) => r,
        None => return refuse(400, "error making upstream request".into()),
    };
    if status != 200 {
        return refuse(
            400,
            format!(
                "error making upstream request: received error code {status} from STS: {answer}"
            ),
        );
    }
    let arn = element(&answer, "Arn").unwrap_or_default();
    if iam_role_arn(&arn) != bound_arn {
        return refuse(
            400,
            format!("IAM Principal {arn:?} does not belong to the role {role:?}"),
        );
    }
    let token = format!("hvs.aws-{}", crate::util::random_hex());
    let mut s = state.lock().expect("state");
    s.tokens.push(token.clone());
    s.issued.push(token.clone());
    s.granted += 1;
    (
        200,
        serde_json::json!({
            "auth": {
                "client_token": token,
                "accessor": "accessor",
                "policies": ["default", "tagstrap-read"],
                "lease_duration": 300,
                "renewable": false,
                "metadata": {"canonical_arn": bound_arn, "role": role},
            }
        })
        .to_string(),
    )
}

/// Sends the request as Vault does: to its STS endpoint (moto), with the
/// client's `Host`, headers and body. Its status and body.
fn replay(
    port: u16,
    host: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut request = format!("POST {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        if ["host", "content-length", "connection"].contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut sts = TcpStream::connect(("127.0.0.1", port)).ok()?;
    sts.write_all(request.as_bytes()).ok()?;
    sts.write_all(body).ok()?;
    let mut raw = Vec::new();
    sts.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Some((status, body.to_string()))
}

fn element(xml: &str, name: &str) -> Option<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml[start..end].trim().to_string())
}

/// `arn:aws:sts::123:assumed-role/R/session` → `arn:aws:iam::123:role/R`,
/// as Vault resolves the caller; other ARNs as they are.
fn iam_role_arn(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if let [_, partition, "sts", _, account, resource] = parts.as_slice() {
        if let Some(rest) = resource.strip_prefix("assumed-role/") {
            let role = rest.split('/').next().unwrap_or("");
            return format!("arn:{partition}:iam::{account}:role/{role}");
        }
    }
    arn.to_string()
}
