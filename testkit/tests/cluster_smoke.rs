//! Proves the OpenBao Raft cluster, the relay and the dev server's AppRole,
//! KV v1 and seal/unseal helpers work, and prints the failover figures
//! (run with `--nocapture` to see them).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{http_request, Bao, BaoCluster, HttpResponse, Origin, Relay, Reply};

const READ_POLICY: &str = r#"path "secret/data/tagstrap/*" { capabilities = ["read"] }"#;
const SECRET: &str = "/v1/secret/data/tagstrap/proxy";

fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn password(r: &HttpResponse) -> String {
    json_of(r)["data"]["data"]["password"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn get(
    port: u16,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    let mut h = vec![("X-Vault-Token", token)];
    h.extend_from_slice(extra);
    http_request(port, "GET", path, &h, None)
}

/// A KV read's outcome, compact: `"200"`, `"307 -> LOCATION"`, `"500 BODY"`,
/// `"ERR ..."`.
fn outcome(r: &std::io::Result<HttpResponse>) -> String {
    match r {
        Ok(r) if r.status == 200 => "200".to_string(),
        Ok(r) if r.status == 307 => format!(
            "307 -> {} (body {} bytes)",
            r.header("location").unwrap_or("-"),
            r.body.len()
        ),
        Ok(r) => format!("{} {}", r.status, r.text().trim()),
        Err(e) => format!("ERR {e}"),
    }
}

/// Reads `SECRET` from every survivor every ~10 ms from the kill until a
/// survivor is active; returns (election time, per-node distinct outcomes
/// with the time each first appeared).
fn watch_failover(
    c: &BaoCluster,
    killed_at: Instant,
    survivors: &[usize],
    token: &str,
) -> (Duration, Vec<(usize, Duration, String)>) {
    let mut seen: Vec<(usize, Duration, String)> = Vec::new();
    let mut last: Vec<String> = vec![String::new(); c.len()];
    let deadline = killed_at + Duration::from_secs(30);
    loop {
        for &i in survivors {
            let o = outcome(&get(c.port(i), SECRET, token, &[]));
            if o != last[i] {
                seen.push((i, killed_at.elapsed(), o.clone()));
                last[i] = o;
            }
        }
        if let Some(l) = c.leader() {
            assert!(survivors.contains(&l), "leader {l} is not a survivor");
            return (killed_at.elapsed(), seen);
        }
        assert!(
            Instant::now() < deadline,
            "no election in 30 s\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn cluster_with_standby_reads_serves_everywhere_and_fails_over() {
    let t = Instant::now();
    let c = BaoCluster::start(3);
    eprintln!(
        "[standby reads] cluster up in {:?} (start() measured {:?})",
        t.elapsed(),
        c.startup_time()
    );
    let root = c.root_token();
    assert_eq!(c.addrs().len(), 3);
    assert_eq!(c.leader(), Some(0));
    assert_eq!(c.health(1), Some(429));
    assert_eq!(c.health(2), Some(429));
    let r = c.api(
        "GET",
        "/v1/sys/storage/raft/configuration",
        Some(&root),
        None,
    );
    let servers = json_of(&r)["data"]["config"]["servers"].clone();
    let servers = servers.as_array().expect("servers");
    assert_eq!(servers.len(), 3, "{servers:?}");
    assert!(servers.iter().all(|s| s["voter"] == json!(true)));
    assert_eq!(
        servers
            .iter()
            .filter(|s| s["leader"] == json!(true))
            .count(),
        1
    );

    c.put_kv2("secret", "tagstrap/proxy", &[("password", "pw1")]);
    let reader = c.create_token(READ_POLICY);
    for i in 0..3 {
        let r = get(c.port(i), SECRET, &reader, &[]).unwrap();
        assert_eq!(r.status, 200, "node {i}: {}", r.text());
        assert_eq!(password(&r), "pw1");
    }

    // A standby serves reads itself even when asked not to forward...
    let nofwd = [("X-Vault-No-Request-Forwarding", "true")];
    let r = get(c.port(1), SECRET, &reader, &nofwd).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // ...but redirects a write to the active node's api_addr + path + query.
    let body = br#"{"data":{"password":"x"}}"#;
    let r = http_request(
        c.port(1),
        "POST",
        "/v1/secret/data/tagstrap/other?a=1",
        &[("X-Vault-Token", &root), nofwd[0]],
        Some(body),
    )
    .unwrap();
    assert_eq!(r.status, 307, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("{}/v1/secret/data/tagstrap/other?a=1", c.addr(0)).as_str())
    );
    assert!(r.body.is_empty());

    // The same through a Relay that injects the header.
    let relay = Relay::start(("127.0.0.1", c.port(2)))
        .inject_header("X-Vault-No-Request-Forwarding", "true");
    let r = http_request(
        relay.port(),
        "POST",
        "/v1/secret/data/tagstrap/other",
        &[("X-Vault-Token", &root)],
        Some(body),
    )
    .unwrap();
    assert_eq!(r.status, 307, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("{}/v1/secret/data/tagstrap/other", c.addr(0)).as_str())
    );
    let r = get(relay.port(), SECRET, &reader, &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(relay.connections(), 2);

    // SIGKILL the leader; the survivors keep answering reads.
    c.kill(0);
    let killed_at = Instant::now();
    assert!(!c.is_alive(0));
    let (election, seen) = watch_failover(&c, killed_at, &[1, 2], &reader);
    eprintln!("[standby reads] leader active again after {election:?}; reads seen:");
    for (i, at, o) in &seen {
        eprintln!("  node{i} +{at:?}: {o}");
    }
    assert!(
        seen.iter().all(|(_, _, o)| o == "200"),
        "survivors must keep serving reads: {seen:?}"
    );
    let new = c.wait_for_leader(Duration::from_secs(30));
    assert!(new == 1 || new == 2);
    eprintln!(
        "[standby reads] node{new} settled as leader after {:?}",
        killed_at.elapsed()
    );
    assert_eq!(c.health(0), None);
    for i in [1, 2] {
        let r = get(c.port(i), SECRET, &reader, &[]).unwrap();
        assert_eq!((r.status, password(&r)), (200, "pw1".to_string()));
    }
    // Writes work through the new leader and reach the other survivor.
    c.put_kv2("secret", "tagstrap/proxy", &[("password", "pw2")]);
    for i in [1, 2] {
        assert_eq!(
            password(&get(c.port(i), SECRET, &reader, &[]).unwrap()),
            "pw2"
        );
    }
    let r = c.api("GET", SECRET, Some(&reader), None);
    assert_eq!(password(&r), "pw2");
}

#[test]
fn cluster_without_standby_reads_redirects_and_relay_kills_leader_on_connect() {
    let c = BaoCluster::builder(3).disable_standby_reads().start();
    eprintln!("[no standby reads] cluster up in {:?}", c.startup_time());
    assert!(!c.standby_reads());
    c.put_kv2("secret", "tagstrap/proxy", &[("password", "pw1")]);
    let reader = c.create_token(READ_POLICY);
    // Standbys forward reads: 200 with the data.
    for i in 0..3 {
        let r = get(c.port(i), SECRET, &reader, &[]).unwrap();
        assert_eq!(
            (r.status, password(&r)),
            (200, "pw1".to_string()),
            "node {i}"
        );
    }
    // Asked not to forward, a standby redirects reads to the leader.
    let redirect = Relay::start(("127.0.0.1", c.port(1)))
        .inject_header("X-Vault-No-Request-Forwarding", "true");
    let r = get(
        redirect.port(),
        &format!("{SECRET}?version=1"),
        &reader,
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 307, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("{}{SECRET}?version=1", c.addr(0)).as_str())
    );
    assert!(r.body.is_empty());

    // A relay in front of the leader that SIGKILLs it when a client connects.
    let hook_runs = Arc::new(AtomicUsize::new(0));
    let kill0 = c.killer(0);
    let runs = hook_runs.clone();
    let relay = Relay::start(("127.0.0.1", c.port(0))).on_first_connection(move || {
        runs.fetch_add(1, Ordering::SeqCst);
        kill0();
    });
    let r = get(relay.port(), SECRET, &reader, &[]);
    let killed_at = Instant::now();
    assert!(
        r.is_err(),
        "the leader died before forwarding: {:?}",
        r.map(|r| r.status)
    );
    eprintln!(
        "[no standby reads] client through the killing relay: {}",
        outcome(&r)
    );
    assert_eq!(hook_runs.load(Ordering::SeqCst), 1);
    assert!(!c.is_alive(0));
    // Later connections: no hook, target refuses -> closed without answer.
    assert!(get(relay.port(), SECRET, &reader, &[]).is_err());
    assert_eq!(hook_runs.load(Ordering::SeqCst), 1);
    assert_eq!(relay.connections(), 2);

    let (election, seen) = watch_failover(&c, killed_at, &[1, 2], &reader);
    eprintln!("[no standby reads] leader active again after {election:?}; reads seen:");
    for (i, at, o) in &seen {
        eprintln!("  node{i} +{at:?}: {o}");
    }
    let dead = format!("307 -> {}{SECRET} (body 0 bytes)", c.addr(0));
    assert!(
        seen.iter()
            .all(|(_, _, o)| o == &dead || o == "200" || o.starts_with("500 ")),
        "{seen:?}"
    );
    let new = c.wait_for_leader(Duration::from_secs(30));
    eprintln!(
        "[no standby reads] node{new} settled as leader after {:?}",
        killed_at.elapsed()
    );
    for i in [1, 2] {
        let r = get(c.port(i), SECRET, &reader, &[]).unwrap();
        assert_eq!(
            (r.status, password(&r)),
            (200, "pw1".to_string()),
            "node {i}"
        );
    }
    // The redirect now points at the new leader.
    let standby = if new == 1 { 2 } else { 1 };
    let r = get(
        c.port(standby),
        SECRET,
        &reader,
        &[("X-Vault-No-Request-Forwarding", "1")],
    )
    .unwrap();
    assert_eq!(r.status, 307);
    assert_eq!(
        r.header("location"),
        Some(format!("{}{SECRET}", c.addr(new)).as_str())
    );
}

#[test]
fn relay_first_connection_hook_runs_once_and_forwards() {
    let origin = Origin::builder(None)
        .route("/a", vec![], Reply::ok("hello"))
        .start();
    let order = Arc::new(Mutex::new(Vec::<&str>::new()));
    let o2 = order.clone();
    let mut relay = Relay::start(origin.addr()).on_first_connection(move || {
        o2.lock().unwrap().push("hook");
    });
    assert_eq!(relay.addr(), format!("http://127.0.0.1:{}", relay.port()));
    assert_eq!(relay.target().to_string(), origin.addr());
    for _ in 0..3 {
        let r = http_request(relay.port(), "GET", "/a", &[], None).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "hello"));
        order.lock().unwrap().push("response");
    }
    assert_eq!(
        *order.lock().unwrap(),
        vec!["hook", "response", "response", "response"]
    );
    assert_eq!(relay.connections(), 3);
    assert_eq!(origin.hits("/a"), 3);
    // No header injection configured: requests arrive unchanged.
    assert!(origin.requests()[0]
        .header("x-vault-no-request-forwarding")
        .is_none());
    let port = relay.port();
    relay.stop();
    assert!(http_request(port, "GET", "/a", &[], None).is_err());
}

/// A keep-alive HTTP/1.1 server that answers each request with its head
/// and body echoed back (`HEAD\n--\nBODY`); one connection at a time.
fn echo_server() -> (u16, std::thread::JoinHandle<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = Vec::new();
        let mut served = 0;
        loop {
            let end = loop {
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).unwrap();
                if n == 0 {
                    return served;
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + len {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "body cut");
                buf.extend_from_slice(&chunk[..n]);
            }
            let mut body = head.into_bytes();
            body.extend_from_slice(b"--\n");
            body.extend_from_slice(&buf[end..end + len]);
            buf.drain(..end + len);
            let mut out =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            out.extend_from_slice(&body);
            s.write_all(&out).unwrap();
            served += 1;
        }
    });
    (port, h)
}

/// Read one `Content-Length` response from `s`; returns its body.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            if buf.len() >= p + 4 + len {
                let body = String::from_utf8_lossy(&buf[p + 4..p + 4 + len]).to_string();
                buf.drain(..p + 4 + len);
                return body;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "response cut: {}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn relay_injects_headers_into_every_request_on_a_keepalive_connection() {
    let (port, server) = echo_server();
    let relay = Relay::start(("127.0.0.1", port))
        .inject_header("X-Vault-No-Request-Forwarding", "true")
        .inject_header("X-Second", "2");
    let mut s = TcpStream::connect(("127.0.0.1", relay.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tricky = "a\r\n\r\nGET /not-a-request HTTP/1.1\r\n\r\n";
    // Two pipelined requests in one write, the second with a body that
    // looks like a request head.
    let first = "GET /one HTTP/1.1\r\nHost: x\r\n\r\n";
    let second = format!(
        "POST /two HTTP/1.1\r\nHost: x\r\ncontent-length: {}\r\n\r\n{tricky}",
        tricky.len()
    );
    s.write_all(format!("{first}{second}").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let b1 = read_response(&mut s, &mut buf);
    let b2 = read_response(&mut s, &mut buf);
    // A third one written in pieces (head split, body split).
    let body = "x".repeat(100_000);
    let third = format!(
        "PUT /three HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for piece in third.as_bytes().chunks(7_001) {
        s.write_all(piece).unwrap();
    }
    let b3 = read_response(&mut s, &mut buf);
    drop(s);
    assert_eq!(
        b1,
        "GET /one HTTP/1.1\r\nX-Vault-No-Request-Forwarding: true\r\nX-Second: 2\r\nHost: x\r\n\r\n--\n"
    );
    assert_eq!(
        b2,
        format!(
            "POST /two HTTP/1.1\r\nX-Vault-No-Request-Forwarding: true\r\nX-Second: 2\r\nHost: x\r\ncontent-length: {}\r\n\r\n--\n{tricky}",
            tricky.len()
        )
    );
    assert!(b3.starts_with(
        "PUT /three HTTP/1.1\r\nX-Vault-No-Request-Forwarding: true\r\nX-Second: 2\r\nHost: x\r\n"
    ));
    assert!(b3.ends_with(&format!("--\n{body}")));
    assert_eq!(server.join().unwrap(), 3);
    assert_eq!(relay.connections(), 1);
}

#[test]
fn bao_approle_kv1_and_seal_unseal() {
    let bao = Bao::start();
    let root = bao.root_token();
    bao.put_kv2("secret", "tagstrap/proxy", &[("password", "pw1")]);

    let (role_id, secret_id) = bao.create_approle("tagstrap", READ_POLICY);
    bao.enable_approle(); // idempotent
    let login = || {
        bao.api(
            "POST",
            "/v1/auth/approle/login",
            None,
            Some(&json!({ "role_id": role_id, "secret_id": secret_id })),
        )
    };
    let r = login();
    assert_eq!(r.status, 200, "{}", r.text());
    let token = json_of(&r)["auth"]["client_token"]
        .as_str()
        .expect("client_token")
        .to_string();
    let r = bao.api("GET", SECRET, Some(&token), None);
    assert_eq!((r.status, password(&r)), (200, "pw1".to_string()));
    let r = bao.api("GET", "/v1/secret/data/other", Some(&token), None);
    assert_eq!(r.status, 403);
    let r = bao.api(
        "POST",
        "/v1/auth/approle/login",
        None,
        Some(&json!({ "role_id": role_id, "secret_id": "wrong" })),
    );
    assert_eq!(r.status, 400, "{}", r.text());

    bao.mount_kv1("kv1");
    bao.put_kv1(
        "kv1",
        "tagstrap/proxy",
        &[("password", "v1pw"), ("user", "u")],
    );
    let r = bao.api("GET", "/v1/kv1/tagstrap/proxy", Some(&root), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        json_of(&r)["data"],
        json!({ "password": "v1pw", "user": "u" })
    );

    assert!(!bao.unseal_key().is_empty());
    bao.seal();
    let r = bao.api("GET", SECRET, Some(&token), None);
    assert_eq!(r.status, 503);
    assert_eq!(json_of(&r), json!({ "errors": ["Vault is sealed"] }));
    let r = bao.api("GET", "/v1/sys/health", None, None);
    assert_eq!((r.status, &json_of(&r)["sealed"]), (503, &json!(true)));
    bao.unseal();
    // Data and tokens survive the seal.
    let r = bao.api("GET", SECRET, Some(&token), None);
    assert_eq!((r.status, password(&r)), (200, "pw1".to_string()));
    assert_eq!(login().status, 200);
}
