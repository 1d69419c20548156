//! Proves each testkit server works, with curl and raw rustls/TCP clients.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::{generated_body, http_request, Bao, Origin, Reply, Squid, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "alice";
const PASSWORD: &str = "p@ss:w/rd %41 with spaces";

struct CurlOut {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `curl -q -sS ARGS` with `config` (curl `-K -` syntax) on stdin.
fn curl(args: &[&str], config: &str) -> CurlOut {
    let mut child = Command::new("curl")
        .arg("-q")
        .arg("-sS")
        .arg("-K")
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("curl");
    CurlOut {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// curl -K config line setting the proxy user, quoted for curl's parser.
/// curl percent-decodes `--proxy-user` (`%41` would become `A`), so `%` is
/// sent as `%25`.
fn proxy_user_config(user: &str, password: &str) -> String {
    let v = format!("{user}:{password}")
        .replace('%', "%25")
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!("proxy-user = \"{v}\"\n")
}

fn squid_with_auth(connect_ports: &[u16]) -> Squid {
    Squid::builder()
        .basic_auth(USER, PASSWORD)
        .allow_connect_ports(connect_ports)
        .start()
}

#[test]
fn origin_https_serves_queued_then_default_over_curl() {
    let ca = TestCa::new();
    let origin = Origin::builder(Some(&ca))
        .route(
            "/x",
            vec![
                Reply::ok("first"),
                Reply::status(503).with_header("Retry-After", "1"),
            ],
            Reply::ok("later"),
        )
        .start();
    assert!(origin.url("/x").starts_with("https://127.0.0.1:"));
    let cacert = ca.ca_pem_path().to_str().unwrap();
    let get = || {
        let o = curl(
            &[
                "--noproxy",
                "*",
                "--cacert",
                cacert,
                "-w",
                "\n%{http_code}",
                &origin.url("/x?q=1"),
            ],
            "",
        );
        assert_eq!(o.code, 0, "curl failed: {}", o.stderr);
        o.stdout
    };
    assert_eq!(get(), "first\n200");
    assert_eq!(get(), "\n503");
    assert_eq!(get(), "later\n200");
    assert_eq!(get(), "later\n200");
    assert_eq!(origin.hits("/x"), 4);
    assert_eq!(origin.hits("/other"), 0);
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/x");
    assert_eq!(reqs[0].target, "/x?q=1");
    assert!(reqs[0].header("User-Agent").unwrap().starts_with("curl/"));
    assert!(origin.started_at() <= reqs[0].at);

    let o = curl(
        &[
            "--noproxy",
            "*",
            "--cacert",
            cacert,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &origin.url("/nope"),
        ],
        "",
    );
    assert_eq!(o.stdout, "404");
}

#[test]
fn origin_https_rejects_clients_without_the_ca() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let origin = Origin::builder(Some(&ca))
        .route("/x", vec![], Reply::ok("x"))
        .start();
    let o = curl(
        &[
            "--noproxy",
            "*",
            "--cacert",
            other.ca_pem_path().to_str().unwrap(),
            &origin.url("/x"),
        ],
        "",
    );
    assert_eq!(o.code, 60, "expected a certificate error: {}", o.stderr);
}

#[tokio::test]
async fn origin_generated_body_over_raw_rustls() {
    let ca = TestCa::new();
    let len = 3 * 1024 * 1024 + 12345;
    let origin = Origin::builder(Some(&ca))
        .route("/big", vec![], Reply::Generated { len })
        .start();
    let connector = tokio_rustls::TlsConnector::from(ca.client_config());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", origin.port()))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).await.unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {len}\r\n")),
        "{head}"
    );
    assert_eq!(raw.len() - end, len as usize);
    assert!(raw[end..] == generated_body(len)[..], "body differs");
}

#[test]
fn origin_truncated_and_hang() {
    let ca = TestCa::new();
    let origin = Origin::builder(Some(&ca))
        .route(
            "/cut",
            vec![],
            Reply::Truncated {
                declared_len: 1000,
                body: vec![b'a'; 100],
            },
        )
        .route("/hang", vec![], Reply::Hang)
        .start();
    let cacert = ca.ca_pem_path().to_str().unwrap();
    let o = curl(
        &[
            "--noproxy",
            "*",
            "--cacert",
            cacert,
            "-o",
            "/dev/null",
            &origin.url("/cut"),
        ],
        "",
    );
    // 18 = partial file (56 = recv failure is also acceptable for TLS)
    assert!(
        o.code == 18 || o.code == 56,
        "curl code {}: {}",
        o.code,
        o.stderr
    );

    let t = Instant::now();
    let o = curl(
        &[
            "--noproxy",
            "*",
            "--cacert",
            cacert,
            "--max-time",
            "1",
            &origin.url("/hang"),
        ],
        "",
    );
    assert_eq!(o.code, 28, "expected timeout: {}", o.stderr);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(origin.hits("/hang"), 1);
}

#[test]
fn plain_origin_reserved_port_and_http_client() {
    let reserved = Origin::builder(None)
        .route("/a", vec![], Reply::ok("hello").with_header("X-Test", "1"))
        .reserve();
    let port = reserved.port();
    assert!(
        http_request(port, "GET", "/a", &[], None).is_err(),
        "not listening yet"
    );
    let origin = reserved.start();
    assert_eq!(origin.port(), port);
    assert_eq!(origin.url("a"), format!("http://127.0.0.1:{port}/a"));
    let r = http_request(port, "GET", "/a", &[], None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    assert_eq!(r.header("x-test"), Some("1"));
    let r = http_request(port, "HEAD", "/a", &[], None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("5"));
    let r = http_request(port, "POST", "/a", &[], Some(b"body")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        http_request(port, "GET", "/zzz", &[], None).unwrap().status,
        404
    );
    assert_eq!(origin.hits("/a"), 3);

    // Runtime route change, delayed reply.
    origin.set_route(
        "/a",
        vec![Reply::ok("slow").delayed(Duration::from_millis(200))],
        Reply::status(410),
    );
    let t = Instant::now();
    assert_eq!(
        http_request(port, "GET", "/a", &[], None).unwrap().text(),
        "slow"
    );
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        http_request(port, "GET", "/a", &[], None).unwrap().status,
        410
    );

    let mut origin = origin;
    origin.stop();
    assert!(
        http_request(port, "GET", "/a", &[], None).is_err(),
        "stopped"
    );
}

#[test]
fn squid_connect_with_auth_ok_wrong_password_and_forbidden_port() {
    let ca = TestCa::new();
    let origin = Origin::builder(Some(&ca))
        .route("/x", vec![], Reply::ok("through the proxy"))
        .start();
    let squid = squid_with_auth(&[origin.port()]);
    let cacert = ca.ca_pem_path().to_str().unwrap();
    let proxy = squid.proxy_url();

    // Right credentials: 200 through the tunnel.
    let o = curl(
        &[
            "--proxy",
            &proxy,
            "--cacert",
            cacert,
            "-w",
            "\n%{http_connect} %{http_code}",
            &origin.url("/x"),
        ],
        &proxy_user_config(USER, PASSWORD),
    );
    assert_eq!(o.code, 0, "{}\n{}", o.stderr, squid.logs());
    assert_eq!(o.stdout, "through the proxy\n200 200");
    assert_eq!(origin.hits("/x"), 1);
    let line = "TCP_TUNNEL/200";
    assert!(
        squid.wait_for_access_log(
            &format!("CONNECT 127.0.0.1:{} {USER} ", origin.port()),
            Duration::from_secs(5)
        ),
        "{}",
        squid.access_log()
    );
    assert!(squid.access_log().contains(line));

    // Wrong password: 407 on CONNECT, origin never reached.
    let o = curl(
        &[
            "--proxy",
            &proxy,
            "--cacert",
            cacert,
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            &origin.url("/x"),
        ],
        &proxy_user_config(USER, "wrong"),
    );
    assert_eq!(o.stdout, "407", "{}", o.stderr);
    // No credentials at all: 407 as well.
    let o = curl(
        &[
            "--proxy",
            &proxy,
            "--cacert",
            cacert,
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            &origin.url("/x"),
        ],
        "",
    );
    assert_eq!(o.stdout, "407");
    assert_eq!(origin.hits("/x"), 1);

    // Port not allowed: 403 with X-Squid-Error: ERR_ACCESS_DENIED.
    let other = Origin::builder(Some(&ca))
        .route("/x", vec![], Reply::ok("no"))
        .start();
    let o = curl(
        &[
            "--proxy",
            &proxy,
            "--cacert",
            cacert,
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            &other.url("/x"),
        ],
        &proxy_user_config(USER, PASSWORD),
    );
    assert!(o.stdout.ends_with("403"), "{}", o.stdout);
    assert!(
        o.stdout.contains("X-Squid-Error: ERR_ACCESS_DENIED"),
        "{}",
        o.stdout
    );
    assert_eq!(other.hits("/x"), 0);
    assert!(squid.wait_for_access_log("TCP_DENIED/403", Duration::from_secs(5)));
    assert!(squid.wait_for_access_log("TCP_DENIED/407", Duration::from_secs(5)));
}

#[test]
fn squid_connect_to_closed_port_is_503_then_200_once_origin_is_up() {
    let ca = TestCa::new();
    let reserved = Origin::builder(Some(&ca))
        .route("/x", vec![], Reply::ok("up"))
        .reserve();
    let squid = squid_with_auth(&[reserved.port()]);
    let cacert = ca.ca_pem_path().to_str().unwrap();
    let proxy = squid.proxy_url();
    let url = reserved.url("/x");
    let cfg = proxy_user_config(USER, PASSWORD);

    let t = Instant::now();
    let o = curl(
        &[
            "--proxy",
            &proxy,
            "--cacert",
            cacert,
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            &url,
        ],
        &cfg,
    );
    assert!(o.stdout.ends_with("503"), "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("X-Squid-Error: ERR_CONNECT_FAIL 111"),
        "{}",
        o.stdout
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "503 took {:?}",
        t.elapsed()
    );

    let origin = reserved.start();
    let t = Instant::now();
    let o = curl(
        &[
            "--proxy",
            &proxy,
            "--cacert",
            cacert,
            "-w",
            "\n%{http_connect}",
            &url,
        ],
        &cfg,
    );
    assert_eq!(o.stdout, "up\n200", "{}", o.stderr);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(origin.hits("/x"), 1);
    assert!(
        squid.wait_for_access_log("NONE_NONE/503", Duration::from_secs(5)),
        "{}",
        squid.access_log()
    );
}

#[test]
fn squid_plain_http_forwarding_and_no_auth() {
    let origin = Origin::builder(None)
        .route("/p", vec![], Reply::ok("plain"))
        .start();
    let squid = Squid::builder().allow_http_ports(&[origin.port()]).start();
    let o = curl(
        &[
            "--proxy",
            &squid.proxy_url(),
            "-w",
            "\n%{http_code}",
            &origin.url("/p"),
        ],
        "",
    );
    assert_eq!(o.stdout, "plain\n200", "{}", o.stderr);
    let req = &origin.requests()[0];
    assert_eq!(req.target, "/p");
    assert!(
        req.header("via").is_some_and(|v| v.contains("squid")),
        "{req:?}"
    );
    assert!(req.header("x-forwarded-for").is_none(), "{req:?}");
    assert!(
        squid.wait_for_access_log(
            &format!("GET http://127.0.0.1:{}/p - ", origin.port()),
            Duration::from_secs(5)
        ),
        "{}",
        squid.access_log()
    );
    // CONNECT not allowed anywhere by default.
    let o = curl(
        &[
            "--proxy",
            &squid.proxy_url(),
            "-p",
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            &origin.url("/p"),
        ],
        "",
    );
    assert_eq!(o.stdout, "403");
}

#[test]
fn squid_https_port_proxy() {
    let ca = TestCa::new();
    let origin = Origin::builder(Some(&ca))
        .route("/s", vec![], Reply::ok("tls in tls"))
        .start();
    let squid = Squid::builder()
        .basic_auth(USER, PASSWORD)
        .allow_connect_ports(&[origin.port()])
        .https_port(&ca)
        .start();
    let hp = squid.https_port().expect("https port");
    assert_ne!(hp, squid.port());
    let cacert = ca.ca_pem_path().to_str().unwrap();
    let o = curl(
        &[
            "--proxy",
            &squid.https_proxy_url(),
            "--proxy-cacert",
            cacert,
            "--cacert",
            cacert,
            "-w",
            "\n%{http_connect}",
            &origin.url("/s"),
        ],
        &proxy_user_config(USER, PASSWORD),
    );
    assert_eq!(
        o.stdout,
        "tls in tls\n200",
        "{}\n{}",
        o.stderr,
        squid.logs()
    );
    // The plain port still works too.
    let o = curl(
        &[
            "--proxy",
            &squid.proxy_url(),
            "--cacert",
            cacert,
            "-w",
            "\n%{http_connect}",
            &origin.url("/s"),
        ],
        &proxy_user_config(USER, PASSWORD),
    );
    assert_eq!(o.stdout, "tls in tls\n200", "{}", o.stderr);
}

#[test]
fn squid_stop_and_restart_on_same_port() {
    let origin = Origin::builder(None)
        .route("/r", vec![], Reply::ok("r"))
        .start();
    let mut squid = Squid::builder().allow_http_ports(&[origin.port()]).start();
    let port = squid.port();
    let get = || {
        curl(
            &[
                "--proxy",
                &format!("http://127.0.0.1:{port}"),
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &origin.url("/r"),
            ],
            "",
        )
    };
    assert_eq!(get().stdout, "200");
    // The log line is written when the transaction ends, which can be a
    // moment after curl got the response.
    assert!(squid.wait_for_access_log("TCP_MISS/200", Duration::from_secs(5)));
    assert!(squid.is_running());
    squid.stop();
    assert!(!squid.is_running());
    let o = get();
    assert_eq!(
        o.code, 7,
        "proxy down must refuse connections: {}",
        o.stderr
    );
    let squid2 = Squid::builder()
        .port(port)
        .allow_http_ports(&[origin.port()])
        .start();
    assert_eq!(squid2.port(), port);
    assert_eq!(get().stdout, "200");
    // Old logs still readable after stop().
    assert!(
        squid.access_log().contains("TCP_MISS/200"),
        "{}",
        squid.access_log()
    );
}

#[test]
fn squids_start_in_parallel() {
    let handles: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(|| Squid::builder().basic_auth("u", "p").start()))
        .collect();
    let squids: Vec<Squid> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ports: Vec<u16> = squids.iter().map(|s| s.port()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 3);
}

#[test]
fn bao_kv2_and_tokens() {
    let bao = Bao::start();
    assert!(bao.addr().starts_with("http://127.0.0.1:"));
    let root = bao.root_token();
    bao.put_kv2(
        "secret",
        "tagstrap/proxy",
        &[("password", "s3cr3t @:/% x"), ("user", "alice")],
    );
    let r = bao.api("GET", "/v1/secret/data/tagstrap/proxy", Some(&root), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["data"]["data"]["password"], "s3cr3t @:/% x");
    assert_eq!(v["data"]["data"]["user"], "alice");

    let nobody = bao.create_token("");
    let r = bao.api("GET", "/v1/secret/data/tagstrap/proxy", Some(&nobody), None);
    assert_eq!(r.status, 403, "{}", r.text());

    let reader = bao.create_token(r#"path "secret/data/tagstrap/*" { capabilities = ["read"] }"#);
    let r = bao.api("GET", "/v1/secret/data/tagstrap/proxy", Some(&reader), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = bao.api("GET", "/v1/secret/data/other", Some(&reader), None);
    assert_eq!(r.status, 403, "{}", r.text());

    // Unknown token -> 403 too.
    let r = bao.api("GET", "/v1/secret/data/tagstrap/proxy", Some("nope"), None);
    assert_eq!(r.status, 403);

    bao.mount_kv2("kv2");
    bao.put_kv2("kv2", "a/b", &[("k", "v")]);
    let r = bao.api("GET", "/v1/kv2/data/a/b", Some(&root), None);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn bao_stops_on_drop() {
    let bao = Bao::start();
    let port = bao.port();
    drop(bao);
    assert!(http_request(port, "GET", "/v1/sys/health", &[], None).is_err());
}

#[test]
fn bao_tls_kv2_roundtrip_over_https() {
    let bao = Bao::start_tls();
    let port = bao.port();
    assert_eq!(bao.addr(), format!("https://127.0.0.1:{port}"));
    let ca = bao.ca_pem_path().expect("TLS server has a CA");
    assert!(ca.starts_with(bao.dir()), "{}", ca.display());
    assert!(std::fs::read_to_string(&ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(bao.tls_client_config().is_some());
    // The port speaks TLS only: plain HTTP is refused with 400.
    let r = http_request(port, "GET", "/v1/sys/health", &[], None).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());

    let root = bao.root_token();
    bao.put_kv2("secret", "tagstrap/tls", &[("password", "tls s3cr3t @:/%")]);
    let r = bao.api("GET", "/v1/secret/data/tagstrap/tls", Some(&root), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["data"]["data"]["password"], "tls s3cr3t @:/%");

    let reader = bao.create_token(r#"path "secret/data/tagstrap/*" { capabilities = ["read"] }"#);
    let r = bao.api("GET", "/v1/secret/data/tagstrap/tls", Some(&reader), None);
    assert_eq!(r.status, 200, "{}", r.text());

    // Seal/unseal (health polled over TLS) keeps the data.
    bao.seal();
    bao.unseal();
    let r = bao.api("GET", "/v1/secret/data/tagstrap/tls", Some(&root), None);
    assert_eq!(r.status, 200, "{}", r.text());

    // A plain server has neither.
    let plain = Bao::start();
    assert!(plain.ca_pem_path().is_none());
    assert!(plain.tls_client_config().is_none());
}

#[test]
fn ca_server_config_is_usable_and_leaf_files_exist() {
    let ca = TestCa::new();
    let cfg: Arc<rustls::ServerConfig> = ca.server_config();
    assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
    let (cert, key) = ca.leaf_cert_and_key_pem();
    assert!(std::fs::read_to_string(cert)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(std::fs::read_to_string(key)
        .unwrap()
        .contains("PRIVATE KEY"));
    assert!(std::fs::read_to_string(ca.ca_pem_path())
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    // openssl agrees the leaf chains to the CA for 127.0.0.1.
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(ca.ca_pem_path())
        .args(["-verify_ip", "127.0.0.1"])
        .arg(ca.leaf_cert_and_key_pem().0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `GET path` over plain TCP to the origin and returns the stream,
/// positioned after the response head, with the head.
fn raw_get(origin: &Origin, path: &str) -> (std::net::TcpStream, String, Vec<u8>) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", origin.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the end of the head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let early_body = raw[end..].to_vec();
    (s, head, early_body)
}

#[test]
fn origin_reset_after_sends_the_body_then_an_rst() {
    use std::io::Read;
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 199) as u8).collect();
    let origin = Origin::builder(None)
        .route(
            "/reset",
            vec![],
            Reply::ResetAfter {
                declared_len: 100_000,
                body: body.clone(),
            },
        )
        .start();
    let (mut s, head, mut got) = raw_get(&origin, "/reset");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 100000\r\n"), "{head}");
    let mut buf = [0u8; 4096];
    let error = loop {
        match s.read(&mut buf) {
            Ok(0) => panic!(
                "a FIN (orderly close) after {} bytes, not an RST",
                got.len()
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    assert_eq!(got.len(), body.len(), "every byte arrives before the RST");
    assert!(got == body, "the body arrives intact");
    assert_eq!(origin.hits("/reset"), 1);
}

#[test]
fn origin_drip_sends_one_byte_per_interval() {
    use std::io::Read;
    let interval = Duration::from_millis(100);
    let body = b"drip!".to_vec();
    let origin = Origin::builder(None)
        .route(
            "/drip",
            vec![],
            Reply::Drip {
                body: body.clone(),
                interval,
            },
        )
        .start();
    let (mut s, head, early) = raw_get(&origin, "/drip");
    assert!(head.contains("Content-Length: 5\r\n"), "{head}");
    assert!(early.is_empty(), "no body byte comes with the head");
    // Each byte's arrival, against when the origin read the request.
    let mut arrivals = Vec::new();
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let at = Instant::now();
        for b in &buf[..n] {
            got.push(*b);
            arrivals.push(at);
        }
    }
    assert_eq!(got, body);
    let asked = origin.requests()[0].at;
    for (i, at) in arrivals.iter().enumerate() {
        let since = at.duration_since(asked);
        assert!(
            since >= interval * (i as u32 + 1),
            "byte {i} came {since:?} after the request, before its turn"
        );
    }
    let total = arrivals.last().unwrap().duration_since(asked);
    assert!(
        total < interval * 5 + Duration::from_secs(1),
        "paced, not stalled: {total:?}"
    );
}

#[test]
fn origin_paced_sends_a_large_body_in_timed_chunks() {
    use std::io::Read;
    let len = 1 << 20;
    let body = generated_body(len);
    let interval = Duration::from_millis(20);
    let origin = Origin::builder(None)
        .route(
            "/paced",
            vec![],
            Reply::Paced {
                body: body.clone(),
                chunk: 64 * 1024,
                interval,
            },
        )
        .start();
    let (mut s, head, mut got) = raw_get(&origin, "/paced");
    assert!(
        head.contains(&format!("Content-Length: {len}\r\n")),
        "{head}"
    );
    s.read_to_end(&mut got).unwrap();
    let done = Instant::now();
    assert!(got == body, "the body arrives intact");
    let took = done.duration_since(origin.requests()[0].at);
    assert!(took >= interval * 16, "16 chunks, 20 ms apart: {took:?}");
}
