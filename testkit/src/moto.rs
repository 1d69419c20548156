//! A real `moto_server` (PyPI `moto[server]`) on 127.0.0.1 with its request
//! authentication switched on, so that a request's SigV4 signature, its
//! access key, its session token and the role's IAM policy are all checked,
//! as AWS checks them.
//!
//! Set-up runs before authentication is on (moto's
//! `INITIAL_NO_AUTH_ACTION_COUNT` is infinite until `POST
//! /moto-api/reset-auth` sets it to 0): `moto_setup.py` (boto3, which moto
//! brings) creates the roles with their inline policies and instance
//! profiles, temporary credentials for each role with `sts:AssumeRole`
//! (moto verifies these once authentication is on, session token included;
//! its metadata endpoint's keys are not valid then), the secrets and the
//! SSM parameters. Moto evaluates a policy's actions but not its resources
//! (it asks for `*`), so the roles' policies say `"Resource": "*"`.
//!
//! [`MotoFront`] stands in front of it where moto cannot misbehave on
//! demand: it answers `ExpiredTokenException` to requests signed with one
//! access key, and `ThrottlingException` a number of times, and forwards
//! everything else byte for byte.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::metadata::AwsCredentials;
use crate::util::{self, Proc};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const SETUP: &str = include_str!("moto_setup.py");

/// A role to create: its name, the actions its policy allows (none: no
/// policy at all), and how many sets of temporary credentials to make.
#[derive(Clone, Debug)]
pub struct MotoRole {
    pub name: String,
    pub actions: Vec<String>,
    pub sets: usize,
}

/// What was created for a role.
#[derive(Clone, Debug)]
pub struct MadeRole {
    pub arn: String,
    pub instance_profile_arn: String,
    pub credentials: Vec<AwsCredentials>,
}

/// What to create before authentication is switched on.
#[derive(Clone, Debug, Default)]
pub struct MotoBuilder {
    region: String,
    roles: Vec<MotoRole>,
    secrets: Vec<(String, String)>,
    parameters: Vec<(String, String, String)>,
}

/// A running moto server with authentication on.
pub struct Moto {
    proc: Option<Proc>,
    port: u16,
    dir: tempfile::TempDir,
    roles: HashMap<String, MadeRole>,
    secret_arns: HashMap<String, String>,
    region: String,
}

impl MotoBuilder {
    /// A role whose policy allows `actions` on `*`, with `sets` sets of
    /// temporary credentials.
    pub fn role(mut self, name: &str, actions: &[&str], sets: usize) -> Self {
        self.roles.push(MotoRole {
            name: name.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
            sets: sets.max(1),
        });
        self
    }

    /// A Secrets Manager secret with a secret string.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.push((name.to_string(), value.to_string()));
        self
    }

    /// An SSM parameter of `kind` (`SecureString`, `String`).
    pub fn parameter(mut self, name: &str, value: &str, kind: &str) -> Self {
        self.parameters
            .push((name.to_string(), value.to_string(), kind.to_string()));
        self
    }

    /// Starts moto, creates everything, and switches authentication on.
    pub fn start(self) -> Moto {
        let mut moto = util::start_with_retries("moto_server", Moto::try_start);
        moto.region = self.region.clone();
        moto.set_up(&self);
        moto.auth_on();
        moto
    }
}

impl Moto {
    /// In `region` (the tests' IMDS fixture says `us-east-1`).
    pub fn builder(region: &str) -> MotoBuilder {
        MotoBuilder {
            region: region.to_string(),
            ..MotoBuilder::default()
        }
    }

    fn try_start() -> Result<Moto, (bool, String)> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-moto-")
            .tempdir()
            .expect("create moto temp dir");
        let port = util::free_port();
        let bin = std::env::var_os("TESTKIT_MOTO_BIN").unwrap_or_else(|| "moto_server".into());
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("HOME", dir.path())
            .current_dir(dir.path());
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "INITIAL_NO_AUTH_ACTION_COUNT",
        ] {
            cmd.env_remove(k);
        }
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).expect("stdout.log");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr.log");
        let proc = Proc::spawn(cmd, false, stdout, stderr)
            .unwrap_or_else(|e| panic!("spawn moto_server (pip install 'moto[server]'): {e}"));
        let mut moto = Moto {
            proc: Some(proc),
            port,
            dir,
            roles: HashMap::new(),
            secret_arns: HashMap::new(),
            region: String::new(),
        };
        let ready = util::poll_until(START_TIMEOUT, Duration::from_millis(50), || {
            if let Ok(r) = util::http_request(port, "GET", "/moto-api/data.json", &[], None) {
                if r.status == 200 {
                    return Some(true);
                }
            }
            if moto.proc.as_mut().expect("proc").try_wait().is_some() {
                return Some(false);
            }
            None
        });
        if ready == Some(true) {
            return Ok(moto);
        }
        moto.stop();
        let logs = moto.logs();
        Err((logs.contains("Address already in use"), logs))
    }

    fn set_up(&mut self, plan: &MotoBuilder) {
        let parameters: serde_json::Map<String, serde_json::Value> = plan
            .parameters
            .iter()
            .map(|(n, v, k)| (n.clone(), serde_json::json!([v, k])))
            .collect();
        let input = serde_json::json!({
            "endpoint": self.url(),
            "region": plan.region,
            "roles": plan.roles.iter().map(|r| serde_json::json!({
                "name": r.name, "actions": r.actions, "sets": r.sets,
            })).collect::<Vec<_>>(),
            "secrets": plan.secrets.iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect::<serde_json::Map<_, _>>(),
            "parameters": parameters,
        });
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SETUP)
            .env_remove("AWS_PROFILE")
            .env("HOME", self.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run python3 for moto's set-up");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.to_string().as_bytes())
            .expect("write the plan");
        let out = child.wait_with_output().expect("moto set-up");
        assert!(
            out.status.success(),
            "moto set-up failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        let made: serde_json::Value = serde_json::from_slice(&out.stdout).expect("set-up JSON");
        for (name, role) in made["roles"].as_object().expect("roles") {
            let text = |v: &serde_json::Value| v.as_str().expect("a string").to_string();
            let credentials = role["credentials"]
                .as_array()
                .expect("credentials")
                .iter()
                .map(|c| AwsCredentials {
                    access_key_id: text(&c["access_key_id"]),
                    secret_access_key: text(&c["secret_access_key"]),
                    session_token: text(&c["session_token"]),
                })
                .collect();
            self.roles.insert(
                name.clone(),
                MadeRole {
                    arn: text(&role["arn"]),
                    instance_profile_arn: text(&role["instance_profile_arn"]),
                    credentials,
                },
            );
        }
        for (name, arn) in made["secrets"].as_object().expect("secrets") {
            self.secret_arns
                .insert(name.clone(), arn.as_str().expect("arn").to_string());
        }
    }

    /// From now on every request must be signed by a known key.
    fn auth_on(&self) {
        let r = util::http_request(
            self.port,
            "POST",
            "/moto-api/reset-auth",
            &[("Content-Type", "text/plain")],
            Some(b"0"),
        )
        .expect("POST /moto-api/reset-auth");
        assert_eq!(r.status, 200, "reset-auth: {}", r.text());
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// A role made at set-up.
    pub fn role(&self, name: &str) -> &MadeRole {
        self.roles
            .get(name)
            .unwrap_or_else(|| panic!("no role {name} was made"))
    }

    /// A secret's ARN.
    pub fn secret_arn(&self, name: &str) -> &str {
        &self.secret_arns[name]
    }

    pub fn logs(&self) -> String {
        let d = self.dir.path();
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            util::read_lossy(&d.join("stdout.log")),
            util::read_lossy(&d.join("stderr.log"))
        )
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Moto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moto")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

/// What [`MotoFront`] does besides forwarding.
#[derive(Default)]
struct FrontRules {
    /// Requests signed with this access key ID get `ExpiredTokenException`.
    expired_key: Option<String>,
    /// This many requests get `ThrottlingException` first.
    throttle: usize,
}

/// A plain-HTTP server on 127.0.0.1 in front of a moto server: one request
/// per connection, answered by its rules or forwarded to moto as sent (the
/// signature stays valid: the Host header is the front's, which is what
/// the client signed) and moto's answer passed back.
pub struct MotoFront {
    port: u16,
    rules: Arc<Mutex<FrontRules>>,
    /// How many requests it answered itself.
    answered: Arc<AtomicUsize>,
}

impl MotoFront {
    pub fn start(moto: &Moto) -> MotoFront {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the moto front");
        let port = listener.local_addr().expect("local_addr").port();
        let rules = Arc::new(Mutex::new(FrontRules::default()));
        let answered = Arc::new(AtomicUsize::new(0));
        let (r, a, upstream) = (rules.clone(), answered.clone(), moto.port());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, a) = (r.clone(), a.clone());
                std::thread::spawn(move || serve(stream, upstream, &r, &a));
            }
        });
        MotoFront {
            port,
            rules,
            answered,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests signed with `access_key_id` get `ExpiredTokenException`.
    pub fn expire_key(&self, access_key_id: &str) {
        self.rules.lock().expect("rules").expired_key = Some(access_key_id.to_string());
    }

    /// The next `n` requests get `ThrottlingException` (400, JSON).
    pub fn throttle(&self, n: usize) {
        self.rules.lock().expect("rules").throttle = n;
    }

    /// How many requests the front answered itself (not moto).
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

fn serve(mut client: TcpStream, upstream: u16, rules: &Mutex<FrontRules>, answered: &AtomicUsize) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((head, body)) = read_request(&mut client) else {
        return;
    };
    let authorization = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let own = {
        let mut rules = rules.lock().expect("rules");
        if rules
            .expired_key
            .as_ref()
            .is_some_and(|k| authorization.contains(&format!("Credential={k}/")))
        {
            Some(
                r#"{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}"#,
            )
        } else if rules.throttle > 0 {
            rules.throttle -= 1;
            Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#)
        } else {
            None
        }
    };
    if let Some(json) = own {
        answered.fetch_add(1, Ordering::SeqCst);
        let reply = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        );
        let _ = client.write_all(reply.as_bytes());
        return;
    }
    // Forwarded with `Connection: close`, so moto's answer ends when it
    // closes and can be passed back as it is.
    let mut forwarded: String = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    forwarded.push_str("Connection: close\r\n\r\n");
    let Ok(mut moto) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if moto.write_all(forwarded.as_bytes()).is_err() || moto.write_all(&body).is_err() {
        return;
    }
    let mut answer = Vec::new();
    let _ = moto.read_to_end(&mut answer);
    let _ = client.write_all(&answer);
}

/// One request's head (without the final blank line) and its
/// `Content-Length` body.
pub(crate) fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = raw[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some((head, body))
}
