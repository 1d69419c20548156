//! A scripted HTTP/1.1 origin server (HTTPS with a [`TestCa`] leaf, or plain
//! HTTP) on 127.0.0.1.
//!
//! Each [`Origin`] runs its own single-threaded tokio runtime on a dedicated
//! background thread, so it works the same from plain `#[test]` functions
//! and from `#[tokio::test]`. The listener is bound before `start()` returns
//! (no readiness wait needed). Every connection gets its own task; every
//! response carries `Connection: close` and the server closes the connection
//! after it (TLS: with `close_notify`), except for [`Reply::Truncated`]
//! (connection closed without `close_notify`, i.e. like a crashed server),
//! [`Reply::ResetAfter`] (TCP RST) and [`Reply::Hang`].
//!
//! Requests are routed on their path without the query string (a route
//! registered with a query string matches that exact target first). Unknown
//! paths get `404`. A [`Handler`] (see [`OriginBuilder::handler`]) sees every
//! request before the routes and can answer it itself. Request bodies
//! announced with `Content-Length` are read and discarded. Request heads are
//! limited to 64 KiB (`431` otherwise).
//!
//! [`Origin::stop`] / Drop stop listening and drop all open connections.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ca::TestCa;

/// Bytes per write of a [`Reply::Generated`] body.
pub const GENERATED_CHUNK: usize = 64 * 1024;
const MAX_HEAD: usize = 64 * 1024;

/// The byte at `offset` of every [`Reply::Generated`] body.
#[inline]
pub fn generated_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// The first `len` bytes of a [`Reply::Generated`] body (to compare with a
/// download or to hash it). Allocates `len` bytes: for very large bodies,
/// check with [`generated_byte`] while streaming instead.
pub fn generated_body(len: u64) -> Vec<u8> {
    (0..len).map(generated_byte).collect()
}

/// What the origin answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A normal response with `Content-Length` (unless `headers` carries its
    /// own `Content-Length`, which is then sent as is).
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// `200` with `Content-Length: len`; the body is generated on the fly in
    /// 64 KiB chunks (byte `i` is [`generated_byte`]`(i)`), so 100 MiB costs
    /// no memory.
    Generated { len: u64 },
    /// Headers claiming `Content-Length: declared_len`, then `body`, then the
    /// connection is closed (TCP FIN; no TLS `close_notify`).
    Truncated { declared_len: u64, body: Vec<u8> },
    /// Headers claiming `Content-Length: declared_len`, then `body`, then
    /// the connection is reset: once the peer's kernel has acknowledged every
    /// byte sent (or after 2 s), `SO_LINGER` 0 and close, so the peer gets a
    /// TCP RST (`ECONNRESET` after reading `body`) instead of a FIN, like a
    /// crashed host or a middlebox dropping the connection.
    ResetAfter { declared_len: u64, body: Vec<u8> },
    /// `200` with `Content-Length` of `body`, headers at once, then the body
    /// one byte at a time, each byte `interval` after the previous one (the
    /// first `interval` after the headers): a server or a link at 1 B/s.
    Drip { body: Vec<u8>, interval: Duration },
    /// Like [`Reply::Drip`] but `chunk` bytes per `interval`: a slow large
    /// body (e.g. 4 MiB in 64 KiB steps every 25 ms).
    Paced {
        body: Vec<u8>,
        chunk: usize,
        interval: Duration,
    },
    /// Reads the request and never answers (until the origin is dropped).
    Hang,
    /// Waits `delay`, then answers `reply` (e.g. for client timeouts).
    Delayed { delay: Duration, reply: Box<Reply> },
}

impl Reply {
    /// `200` with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Status {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// `code` with an empty body.
    pub fn status(code: u16) -> Reply {
        Reply::Status {
            status: code,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `code` with `body`.
    pub fn status_with_body(code: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Status {
            status: code,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Add a response header. Only for [`Reply::Status`] (also inside
    /// [`Reply::Delayed`]); panics for the other kinds.
    pub fn with_header(self, k: impl Into<String>, v: impl Into<String>) -> Reply {
        match self {
            Reply::Status {
                status,
                mut headers,
                body,
            } => {
                headers.push((k.into(), v.into()));
                Reply::Status {
                    status,
                    headers,
                    body,
                }
            }
            Reply::Delayed { delay, reply } => Reply::Delayed {
                delay,
                reply: Box::new(reply.with_header(k, v)),
            },
            other => panic!("Reply::with_header is only for Reply::Status, not {other:?}"),
        }
    }

    /// This reply, sent after `delay`.
    pub fn delayed(self, delay: Duration) -> Reply {
        Reply::Delayed {
            delay,
            reply: Box::new(self),
        }
    }
}

/// One request as the origin read it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The path, without query string (what routes and [`Origin::hits`] use).
    pub path: String,
    /// The request target as sent (origin-form, with query string).
    pub target: String,
    /// Header names lowercased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    /// When the request head had been read.
    pub at: Instant,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::util::find_header(&self.headers, name)
    }
}

/// Answers a request itself (`Some`) or leaves it to the routes (`None`);
/// see [`OriginBuilder::handler`]. Runs on the origin's runtime thread, so it
/// must not block for long.
pub type Handler = Arc<dyn Fn(&RecordedRequest) -> Option<Reply> + Send + Sync>;

#[derive(Clone, Debug)]
struct Route {
    queued: VecDeque<Reply>,
    then: Reply,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, Route>>,
    log: Mutex<Vec<RecordedRequest>>,
    handler: Option<Handler>,
}

impl Shared {
    fn reply_to(&self, req: &RecordedRequest) -> Reply {
        if let Some(reply) = self.handler.as_ref().and_then(|h| h(req)) {
            return reply;
        }
        self.next_reply(&req.target, &req.path)
    }

    fn next_reply(&self, target: &str, path: &str) -> Reply {
        let mut routes = self.routes.lock().unwrap();
        let route = if routes.contains_key(target) {
            routes.get_mut(target)
        } else {
            routes.get_mut(path)
        };
        match route {
            Some(r) => r.queued.pop_front().unwrap_or_else(|| r.then.clone()),
            None => Reply::status_with_body(404, "not found\n"),
        }
    }
}

/// Builder for an [`Origin`]; see [`Origin::builder`].
#[derive(Clone)]
pub struct OriginBuilder {
    tls: Option<Arc<rustls::ServerConfig>>,
    routes: HashMap<String, Route>,
    ip: IpAddr,
    handler: Option<Handler>,
}

/// An origin whose port is chosen but which does not listen yet
/// (connections to it are refused until [`ReservedOrigin::start`]).
pub struct ReservedOrigin {
    builder: OriginBuilder,
    port: u16,
}

/// A running origin server; stops on Drop.
pub struct Origin {
    ip: IpAddr,
    port: u16,
    tls: bool,
    shared: Arc<Shared>,
    started_at: Instant,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OriginBuilder {
    /// For `path`, answer the `queued` replies in order, then `then` for
    /// every later request. Replaces an earlier route for the same path.
    pub fn route(mut self, path: &str, queued: Vec<Reply>, then: Reply) -> Self {
        self.routes.insert(
            path.to_string(),
            Route {
                queued: queued.into(),
                then,
            },
        );
        self
    }

    /// Give every request to `f` first: `Some(reply)` is sent, `None` falls
    /// back to the routes. Replaces an earlier handler.
    pub fn handler(mut self, f: Handler) -> Self {
        self.handler = Some(f);
        self
    }

    /// Serve TLS with this config instead (e.g. a leaf from
    /// [`TestCa::issue`] for a wrong name).
    pub fn tls_config(mut self, cfg: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(cfg);
        self
    }

    /// Listen on another loopback address than 127.0.0.1 (e.g. 127.0.0.2,
    /// which is not in the default no-proxy list of tools, so clients go
    /// through a proxy to reach it). The CA's leaf covers 127.0.0.1–127.0.0.3.
    pub fn bind_ip(mut self, ip: IpAddr) -> Self {
        assert!(
            ip.is_loopback(),
            "testkit servers listen on loopback only, not {ip}"
        );
        self.ip = ip;
        self
    }

    /// Bind `IP:0` (127.0.0.1 unless [`OriginBuilder::bind_ip`]) and serve.
    /// Listening when this returns.
    pub fn start(self) -> Origin {
        let l = StdTcpListener::bind((self.ip, 0)).expect("bind origin on port 0");
        Origin::run(self, l)
    }

    /// Pick a free port now (bind `IP:0`, note the port, close) but do not
    /// listen yet.
    pub fn reserve(self) -> ReservedOrigin {
        let port = StdTcpListener::bind((self.ip, 0))
            .and_then(|l| l.local_addr())
            .expect("pick a free port")
            .port();
        ReservedOrigin {
            port,
            builder: self,
        }
    }
}

impl ReservedOrigin {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL the origin will have.
    pub fn url(&self, path: &str) -> String {
        make_url(self.builder.tls.is_some(), self.builder.ip, self.port, path)
    }

    /// Bind the reserved port (SO_REUSEADDR; retried for up to 5 s if it is
    /// busy, then panics) and serve.
    /// Routes can still be added before it starts.
    pub fn route(mut self, path: &str, queued: Vec<Reply>, then: Reply) -> Self {
        self.builder = self.builder.route(path, queued, then);
        self
    }

    pub fn start(self) -> Origin {
        let port = self.port;
        let ip = self.builder.ip;
        let mut last_err = None;
        let l = crate::util::poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
            // std sets SO_REUSEADDR on Unix listeners.
            match StdTcpListener::bind((ip, port)) {
                Ok(l) => Some(l),
                Err(e) => {
                    last_err = Some(e);
                    None
                }
            }
        })
        .unwrap_or_else(|| panic!("bind reserved origin port {port}: {last_err:?}"));
        Origin::run(self.builder, l)
    }
}

fn make_url(tls: bool, ip: IpAddr, port: u16, path: &str) -> String {
    let scheme = if tls { "https" } else { "http" };
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!(
        "{scheme}://{}{slash}{path}",
        std::net::SocketAddr::new(ip, port)
    )
}

impl Origin {
    /// `Some(ca)`: HTTPS with the CA's loopback leaf; `None`: plain HTTP.
    pub fn builder(ca: Option<&TestCa>) -> OriginBuilder {
        OriginBuilder {
            tls: ca.map(|c| c.server_config()),
            routes: HashMap::new(),
            ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            handler: None,
        }
    }

    fn run(b: OriginBuilder, listener: StdTcpListener) -> Origin {
        listener
            .set_nonblocking(true)
            .expect("set listener nonblocking");
        let port = listener.local_addr().expect("local_addr").port();
        let started_at = Instant::now();
        let shared = Arc::new(Shared {
            routes: Mutex::new(b.routes),
            log: Mutex::new(Vec::new()),
            handler: b.handler.clone(),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tls = b.tls.clone();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("testkit-origin-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("origin runtime");
                rt.block_on(accept_loop(listener, tls, sh, rx));
                // Dropping the runtime cancels every connection task.
                drop(rt);
            })
            .expect("spawn origin thread");
        Origin {
            ip: b.ip,
            port,
            tls: b.tls.is_some(),
            shared,
            started_at,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `"IP:PORT"`.
    pub fn addr(&self) -> String {
        std::net::SocketAddr::new(self.ip, self.port).to_string()
    }

    /// `"https://127.0.0.1:PORT/path"` (or `http://`).
    pub fn url(&self, path: &str) -> String {
        make_url(self.tls, self.ip, self.port, path)
    }

    /// Requests received for `path` (counted as soon as the head is read).
    /// Matches the path without query, or the exact target.
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path || r.target == path)
            .count()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().unwrap().clone()
    }

    /// When the origin began listening.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// Replace (or add) a route while running; same semantics as
    /// [`OriginBuilder::route`].
    pub fn set_route(&self, path: &str, queued: Vec<Reply>, then: Reply) {
        self.shared.routes.lock().unwrap().insert(
            path.to_string(),
            Route {
                queued: queued.into(),
                then,
            },
        );
    }

    /// Stop listening and drop all connections now (Drop does the same).
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("url", &self.url("/"))
            .finish_non_exhaustive()
    }
}

async fn accept_loop(
    listener: StdTcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let conn = match acceptor {
                            Some(a) => match a.accept(tcp).await {
                                Ok(s) => Conn::Tls(Box::new(s)),
                                Err(_) => return,
                            },
                            None => Conn::Plain(tcp),
                        };
                        let _ = serve(conn, shared).await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
        }
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read_buf(buf).await,
            Conn::Tls(s) => s.read_buf(buf).await,
        }
    }

    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(b).await,
            Conn::Tls(s) => s.write_all(b).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush().await,
            Conn::Tls(s) => s.flush().await,
        }
    }

    /// Orderly close (TLS: close_notify, then FIN).
    async fn close(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.shutdown().await,
        }
    }

    /// FIN without TLS close_notify.
    async fn close_abruptly(&mut self) -> std::io::Result<()> {
        self.flush().await?;
        match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.get_mut().0.shutdown().await,
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    /// Arms an abortive close: dropping the connection then sends a TCP RST
    /// instead of a FIN. Waits first (up to [`RESET_DRAIN`]) until the peer
    /// has acknowledged everything written, because an RST discards what
    /// is still in our send queue: so the peer reads every byte written,
    /// then gets `ECONNRESET`.
    async fn arm_reset(&mut self) -> std::io::Result<()> {
        self.flush().await?;
        let tcp = self.tcp();
        let until = Instant::now() + RESET_DRAIN;
        while unacknowledged(tcp) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // `set_zero_linger` needs tokio 1.50 and Cargo.toml asks for 1.47;
        // the deprecation is about linger > 0 blocking on drop, which a
        // linger of zero never does.
        #[allow(deprecated)]
        tcp.set_linger(Some(Duration::ZERO))
    }
}

/// Longest wait for the peer to acknowledge a [`Reply::ResetAfter`] body.
const RESET_DRAIN: Duration = Duration::from_secs(2);

/// Bytes written to `tcp` that the peer has not acknowledged yet
/// (`SIOCOUTQ`); 0 when it cannot be asked.
fn unacknowledged(tcp: &TcpStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut pending: libc::c_int = 0;
    // SAFETY: ioctl(2) SIOCOUTQ (= TIOCOUTQ) on a socket we own, writing one
    // int into `pending`.
    let rc = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::TIOCOUTQ, &mut pending) };
    if rc == 0 {
        pending
    } else {
        0
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        425 => "Too Early",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

async fn serve(mut conn: Conn, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(e) = find_head_end(&buf) {
            break e;
        }
        if buf.len() > MAX_HEAD {
            let r = Reply::status_with_body(431, "request head too large\n");
            write_reply(&mut conn, r, false).await?;
            return conn.close().await;
        }
        if conn.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end - 4]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        write_reply(&mut conn, Reply::status(400), false).await?;
        return conn.close().await;
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    // Absolute-form (as a proxy would get it) -> origin-form.
    let target = match target.find("://") {
        Some(i) => match target[i + 3..].find('/') {
            Some(j) => target[i + 3 + j..].to_string(),
            None => "/".to_string(),
        },
        None => target.to_string(),
    };
    let path = target.split('?').next().unwrap_or("").to_string();
    let req = RecordedRequest {
        method: method.to_string(),
        path,
        target,
        headers,
        at: Instant::now(),
    };
    let content_length: u64 = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let head_only = req.method.eq_ignore_ascii_case("HEAD");
    shared.log.lock().unwrap().push(req.clone());

    // Discard the request body, if any.
    let mut have = (buf.len() - head_end) as u64;
    while have < content_length {
        buf.clear();
        let n = conn.read_buf(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        have += n as u64;
    }

    let reply = shared.reply_to(&req);
    write_reply(&mut conn, reply, head_only).await
}

async fn write_reply(conn: &mut Conn, mut reply: Reply, head_only: bool) -> std::io::Result<()> {
    while let Reply::Delayed {
        delay,
        reply: inner,
    } = reply
    {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    match reply {
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            let mut has_len = false;
            for (k, v) in &headers {
                has_len |= k.eq_ignore_ascii_case("content-length");
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            if !has_len {
                head.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            head.push_str("Connection: close\r\n\r\n");
            let mut out = head.into_bytes();
            if !head_only {
                out.extend_from_slice(&body);
            }
            conn.write_all(&out).await?;
            conn.flush().await?;
            conn.close().await
        }
        Reply::Generated { len } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            );
            conn.write_all(head.as_bytes()).await?;
            if !head_only {
                // One period-251 pattern buffer; each chunk is a window of it.
                let pattern: Vec<u8> = (0..(GENERATED_CHUNK as u64 + 251))
                    .map(generated_byte)
                    .collect();
                let mut off = 0u64;
                while off < len {
                    let n = (len - off).min(GENERATED_CHUNK as u64) as usize;
                    let start = (off % 251) as usize;
                    conn.write_all(&pattern[start..start + n]).await?;
                    off += n as u64;
                }
            }
            conn.flush().await?;
            conn.close().await
        }
        Reply::Truncated { declared_len, body } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared_len}\r\nConnection: close\r\n\r\n"
            );
            conn.write_all(head.as_bytes()).await?;
            if !head_only {
                conn.write_all(&body).await?;
            }
            conn.close_abruptly().await
        }
        Reply::ResetAfter { declared_len, body } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared_len}\r\nConnection: close\r\n\r\n"
            );
            conn.write_all(head.as_bytes()).await?;
            if !head_only {
                conn.write_all(&body).await?;
            }
            // The caller drops the connection right after: RST.
            conn.arm_reset().await
        }
        Reply::Drip { body, interval } => write_paced(conn, &body, 1, interval, head_only).await,
        Reply::Paced {
            body,
            chunk,
            interval,
        } => write_paced(conn, &body, chunk, interval, head_only).await,
        Reply::Hang => std::future::pending().await,
        Reply::Delayed { .. } => unreachable!(),
    }
}

/// `200` with `Content-Length`, the head at once, then `chunk` bytes of
/// `body` every `interval`, each flushed on its own (for TLS: its own
/// record), then an orderly close.
async fn write_paced(
    conn: &mut Conn,
    body: &[u8],
    chunk: usize,
    interval: Duration,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.flush().await?;
    if !head_only {
        // Deadlines from the start, so the pace does not drift by the time
        // each write takes.
        let start = tokio::time::Instant::now();
        for (i, piece) in body.chunks(chunk.max(1)).enumerate() {
            tokio::time::sleep_until(start + interval * (i as u32 + 1)).await;
            conn.write_all(piece).await?;
            conn.flush().await?;
        }
    }
    conn.close().await
}
