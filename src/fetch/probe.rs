//! A CONNECT of our own, sent when a tunnel through the proxy fails.
//!
//! The HTTP client reports every refused CONNECT except 407 as "tunnel
//! unsuccessful", without the status. An operator needs to know whether the
//! proxy said 403 (a rule forbids this host: ask the proxy's owners), 407 (the
//! password), or 502/503 (the proxy cannot reach the host yet: wait), so after
//! such a failure this module asks the proxy the same question and reads the
//! answer's status line and headers.
//!
//! It also tells apart a proxy port where nothing answers (not up yet: poll
//! it) from one where something answers, but not in HTTP ([`Probe::Garbled`]:
//! back off, it is up and broken or not a proxy at all).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::ServerName;
use secrecy::zeroize::Zeroizing;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy::url::{ProxyScheme, ProxyUrl};

/// Largest response head read from the proxy.
const MAX_HEAD: usize = 16 * 1024;

/// What the proxy answered to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectAnswer {
    pub(crate) status: u16,
    pub(crate) reason: String,
    /// The schemes of `Proxy-Authenticate` (e.g. "Basic", "NTLM").
    pub(crate) auth_schemes: Vec<String>,
    /// Squid's `X-Squid-Error` (e.g. "ERR_ACCESS_DENIED 0"), when present.
    pub(crate) squid_error: Option<String>,
}

#[derive(Debug)]
pub(crate) enum Probe {
    /// The proxy answered.
    Answered(ConnectAnswer),
    /// No TCP connection to the proxy: not up yet, or the network is down.
    ProxyUnreachable(String),
    /// The proxy's TLS certificate is not trusted.
    ProxyUntrusted(rustls::Error),
    /// Something answered, but not in HTTP: a status line that does not
    /// parse, or a head longer than [`MAX_HEAD`].
    Garbled(String),
    /// Connected, but no answer came: closed or reset before a whole head,
    /// TLS to the proxy failed, or a timeout.
    Failed(String),
}

/// Sends `CONNECT target` to the proxy with its credentials and reads the
/// answer, within `timeout`.
pub(crate) async fn connect(
    proxy: &ProxyUrl,
    target: &str,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Probe {
    match tokio::time::timeout(timeout, connect_inner(proxy, target, tls)).await {
        Ok(probe) => probe,
        Err(_) => Probe::Failed(format!(
            "the proxy did not answer CONNECT within {} s",
            timeout.as_secs()
        )),
    }
}

async fn connect_inner(proxy: &ProxyUrl, target: &str, tls: &Arc<rustls::ClientConfig>) -> Probe {
    match open(proxy, target, tls).await {
        Ok((answer, mut stream)) => {
            let _ = stream.shutdown().await;
            Probe::Answered(answer)
        }
        Err(probe) => probe,
    }
}

/// A byte stream to the script host through the proxy.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Opens a tunnel: `CONNECT target` with the proxy's credentials. On a 2xx
/// answer the stream is the tunnel, ready for TLS to the target (`doctor`
/// looks at the certificate on the other side).
pub(crate) async fn tunnel(
    proxy: &ProxyUrl,
    target: &str,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Box<dyn Stream>, Probe> {
    match tokio::time::timeout(timeout, open(proxy, target, tls)).await {
        Ok(Ok((answer, stream))) if answer.status / 100 == 2 => Ok(stream),
        Ok(Ok((answer, _))) => Err(Probe::Answered(answer)),
        Ok(Err(probe)) => Err(probe),
        Err(_) => Err(Probe::Failed(format!(
            "the proxy did not answer CONNECT within {} s",
            timeout.as_secs()
        ))),
    }
}

/// Connects to the proxy (TLS for an https:// proxy), sends CONNECT and reads
/// the answer's head, leaving the stream open.
async fn open(
    proxy: &ProxyUrl,
    target: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(ConnectAnswer, Box<dyn Stream>), Probe> {
    let tcp = match TcpStream::connect((proxy.host.as_str(), proxy.port)).await {
        Ok(tcp) => tcp,
        Err(e) => return Err(Probe::ProxyUnreachable(e.to_string())),
    };
    let request = connect_request(proxy, target);
    match proxy.scheme {
        ProxyScheme::Http => exchange(Box::new(tcp), &request).await,
        ProxyScheme::Https => {
            let Ok(name) = ServerName::try_from(proxy.host.clone()) else {
                return Err(Probe::Failed(
                    "the proxy's host is not a valid TLS server name".into(),
                ));
            };
            let mut config = (**tls).clone();
            config.alpn_protocols.clear();
            match tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
            {
                Ok(stream) => exchange(Box::new(stream), &request).await,
                Err(e) => Err(match crate::net::classify::untrusted_handshake(&e) {
                    Some(tls) => Probe::ProxyUntrusted(tls.clone()),
                    None => Probe::Failed(format!("TLS to the proxy failed: {e}")),
                }),
            }
        }
    }
}

fn connect_request(proxy: &ProxyUrl, target: &str) -> Zeroizing<Vec<u8>> {
    let mut request = Zeroizing::new(Vec::with_capacity(256));
    request.extend_from_slice(
        format!(
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: tagstrap/{}\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    if let Some(user) = &proxy.user {
        let password = proxy
            .password
            .as_ref()
            .map(|p| p.expose_secret())
            .unwrap_or("");
        let credentials = Zeroizing::new(format!("{user}:{password}"));
        let encoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes()),
        );
        request.extend_from_slice(b"Proxy-Authorization: Basic ");
        request.extend_from_slice(encoded.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request
}

/// Sends the CONNECT request and reads the answer's head one byte at a time,
/// so that nothing after its blank line is consumed: after a 200 that
/// belongs to the tunnel.
async fn exchange(
    mut stream: Box<dyn Stream>,
    request: &[u8],
) -> Result<(ConnectAnswer, Box<dyn Stream>), Probe> {
    if let Err(e) = stream.write_all(request).await {
        return Err(Probe::Failed(format!("sending CONNECT failed: {e}")));
    }
    let mut head = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(Probe::Garbled(format!(
                "an answer head longer than {} KiB",
                MAX_HEAD / 1024
            )));
        }
        match stream.read(&mut byte).await {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) if could_be_http(&head) => {
                return Err(Probe::Failed(format!(
                    "reading the CONNECT answer failed: {e}"
                )))
            }
            Err(_) => break,
        }
    }
    match parse_answer(&head) {
        Some(answer) => Ok((answer, stream)),
        None if !could_be_http(&head) => Err(Probe::Garbled("something that is not HTTP".into())),
        None if head.is_empty() => Err(Probe::Failed(
            "the proxy closed the connection before answering CONNECT".into(),
        )),
        None => Err(Probe::Failed(
            "the proxy closed the connection in the middle of its answer to CONNECT".into(),
        )),
    }
}

/// Whether `head` is, so far, the start of an HTTP/1 response: nothing yet,
/// a prefix of `HTTP/1.`, or a status line beginning with it. Anything else
/// means the peer talks, but not HTTP.
fn could_be_http(head: &[u8]) -> bool {
    const START: &[u8] = b"HTTP/1.";
    let n = head.len().min(START.len());
    head[..n] == START[..n]
}

/// The scheme of one `Proxy-Authenticate` value: "Basic" of
/// `Basic realm="corp"`, "NTLM" of `NTLM`.
pub(crate) fn auth_scheme(value: &str) -> Option<String> {
    value
        .split_whitespace()
        .next()
        .map(|scheme| scheme.trim_end_matches(',').to_string())
}

/// Parses a response head: the status line and the headers we care about.
pub(crate) fn parse_answer(head: &[u8]) -> Option<ConnectAnswer> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").trim().to_string();
    let mut answer = ConnectAnswer {
        status,
        reason,
        auth_schemes: Vec::new(),
        squid_error: None,
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("proxy-authenticate") {
            answer.auth_schemes.extend(auth_scheme(value));
        } else if name.eq_ignore_ascii_case("x-squid-error") {
            answer.squid_error = Some(value.to_string());
        }
    }
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed() {
        let head = b"HTTP/1.1 407 Proxy Authentication Required\r\nServer: squid/5.7\r\n\
                     Proxy-Authenticate: Basic realm=\"corp\"\r\nproxy-authenticate: NTLM\r\n\
                     X-Squid-Error: ERR_CACHE_ACCESS_DENIED 0\r\n\r\n";
        let answer = parse_answer(head).unwrap();
        assert_eq!(answer.status, 407);
        assert_eq!(answer.reason, "Proxy Authentication Required");
        assert_eq!(answer.auth_schemes, vec!["Basic", "NTLM"]);
        assert_eq!(
            answer.squid_error.as_deref(),
            Some("ERR_CACHE_ACCESS_DENIED 0")
        );
        let ok = parse_answer(b"HTTP/1.0 200 Connection established\r\n\r\n").unwrap();
        assert_eq!(ok.status, 200);
        assert!(parse_answer(b"SSH-2.0-OpenSSH\r\n").is_none());
        assert!(parse_answer(b"").is_none());
    }

    #[test]
    fn a_head_that_cannot_become_http_is_told_apart_from_one_cut_short() {
        assert!(could_be_http(b""));
        assert!(could_be_http(b"HTT"));
        assert!(could_be_http(b"HTTP/1.1 200 OK\r\nServer: x"));
        assert!(!could_be_http(b"SSH-2.0-OpenSSH\r\n"));
        assert!(!could_be_http(b"\x16\x03\x01"));
        assert!(!could_be_http(b"HTTP/2 200\r\n"));
    }

    async fn peer(answer: &'static [u8], reset: bool) -> ProxyUrl {
        let port = crate::test_support::loopback_peer(answer.to_vec(), reset).await;
        ProxyUrl::parse(&format!("127.0.0.1:{port}")).unwrap()
    }

    async fn probe_with(answer: &'static [u8], reset: bool) -> Probe {
        let tls = crate::net::tls::trusting_nothing().unwrap();
        let proxy = peer(answer, reset).await;
        connect(&proxy, "h:443", &tls, Duration::from_secs(10)).await
    }

    async fn probe(answer: &'static [u8]) -> Probe {
        probe_with(answer, false).await
    }

    #[tokio::test]
    async fn garbage_and_an_endless_head_are_garbled_a_silent_close_is_not() {
        assert!(matches!(
            probe(b"SSH-2.0-OpenSSH_9.2\r\n").await,
            Probe::Garbled(_)
        ));
        let endless: &'static [u8] = Box::leak(
            [
                b"HTTP/1.1 200 OK\r\nX-Filler: ".as_slice(),
                &[b'a'; 40 * 1024],
            ]
            .concat()
            .into_boxed_slice(),
        );
        match probe(endless).await {
            Probe::Garbled(why) => assert!(why.contains("longer than 16 KiB"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(probe(b"").await, Probe::Failed(_)));
        assert!(matches!(probe_with(b"", true).await, Probe::Failed(_)));
        assert!(matches!(probe(b"HTTP/1.1").await, Probe::Failed(_)));
        assert!(matches!(
            probe(b"HTTP/1.1 403 Forbidden\r\n\r\n").await,
            Probe::Answered(ConnectAnswer { status: 403, .. })
        ));
    }

    #[test]
    fn the_request_carries_basic_credentials() {
        let mut proxy = ProxyUrl::parse("p:3128").unwrap();
        proxy.user = Some("svc".into());
        proxy.password = Some("p@ss:/%".into());
        let request = connect_request(&proxy, "repo:443");
        let text = String::from_utf8(request.to_vec()).unwrap();
        assert!(text.starts_with("CONNECT repo:443 HTTP/1.1\r\nHost: repo:443\r\n"));
        let encoded = base64::engine::general_purpose::STANDARD.encode("svc:p@ss:/%");
        assert!(text.contains(&format!("Proxy-Authorization: Basic {encoded}\r\n")));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
