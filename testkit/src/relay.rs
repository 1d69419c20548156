//! A TCP relay on 127.0.0.1 in front of one target address.
//!
//! Tests put a [`Relay`] between a client and a server to act at the exact
//! moment the client connects ([`Relay::on_first_connection`], e.g. SIGKILL
//! an OpenBao leader) or to alter its HTTP/1.1 requests on the way
//! ([`Relay::inject_header`], e.g. `X-Vault-No-Request-Forwarding: true` so
//! that a real standby answers with its own `307` redirect).
//!
//! Like [`crate::Origin`], each relay runs its own single-threaded tokio
//! runtime on a dedicated background thread and is listening when
//! [`Relay::start`] returns. For each accepted client connection it opens
//! one connection to the target and pipes bytes both ways; responses are
//! never touched. Half-closes are passed on (client EOF -> `shutdown(WR)`
//! towards the target and vice versa).
//!
//! * If the target refuses the connection, the client connection is closed
//!   without an answer: the client sees EOF, or a reset (RST) when its
//!   request bytes had already arrived and were still unread (the kernel
//!   resets a socket closed with unread data).
//! * With headers to inject, every request head (up to `\r\n\r\n`, at most
//!   64 KiB) gets the header lines inserted right after the request line;
//!   bodies are passed through by `Content-Length`, so several requests on
//!   one keep-alive connection work. A request with `Transfer-Encoding`
//!   (chunked) cannot be delimited without parsing the chunks: the rest of
//!   that connection is then piped unchanged (no more injection). So is a
//!   head larger than 64 KiB.
//!
//! [`Relay::stop`] / Drop stop listening and drop every open connection.

use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

const MAX_HEAD: usize = 64 * 1024;

type Hook = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct Shared {
    hook: Mutex<Option<Hook>>,
    headers: Mutex<Vec<(String, String)>>,
    connections: AtomicUsize,
}

/// A running TCP relay `127.0.0.1:port -> target`; stops on Drop.
pub struct Relay {
    port: u16,
    target: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listen on a free 127.0.0.1 port and relay every connection to
    /// `target` (e.g. `"127.0.0.1:8200"` or a `SocketAddr`; resolved now,
    /// first address wins). Listening when this returns.
    pub fn start(target: impl ToSocketAddrs) -> Relay {
        let target = target
            .to_socket_addrs()
            .expect("resolve relay target")
            .next()
            .expect("relay target resolves to no address");
        let listener = StdTcpListener::bind(("127.0.0.1", 0)).expect("bind relay on port 0");
        listener
            .set_nonblocking(true)
            .expect("set listener nonblocking");
        let port = listener.local_addr().expect("local_addr").port();
        let shared = Arc::new(Shared::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("testkit-relay-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("relay runtime");
                rt.block_on(accept_loop(listener, target, sh, rx));
                // Dropping the runtime cancels every connection task.
                drop(rt);
            })
            .expect("spawn relay thread");
        Relay {
            port,
            target,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Run `hook` synchronously when the next client connection is accepted
    /// (the first one, if set right after [`Relay::start`]), before the
    /// relay connects to the target or forwards a byte. Runs at most once.
    /// The relay's runtime thread is blocked while it runs (other
    /// connections wait). Replaces a hook that has not run yet.
    pub fn on_first_connection(self, hook: impl FnOnce() + Send + 'static) -> Self {
        *self.shared.hook.lock().unwrap() = Some(Box::new(hook));
        self
    }

    /// Insert `name: value` after the request line of every HTTP/1.1
    /// request on connections accepted from now on. Several calls add
    /// several lines, in order.
    pub fn inject_header(self, name: &str, value: &str) -> Self {
        assert!(
            !name.is_empty()
                && !name.contains([':', '\r', '\n', ' '])
                && !value.contains(['\r', '\n']),
            "bad header {name:?}: {value:?}"
        );
        self.shared
            .headers
            .lock()
            .unwrap()
            .push((name.to_string(), value.to_string()));
        self
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `"http://127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The address connections are relayed to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
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

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr())
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

async fn accept_loop(
    listener: StdTcpListener,
    target: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((client, _)) => {
                    shared.connections.fetch_add(1, Ordering::SeqCst);
                    let hook = shared.hook.lock().unwrap().take();
                    if let Some(hook) = hook {
                        hook();
                    }
                    let headers = shared.headers.lock().unwrap().clone();
                    tokio::spawn(relay_conn(client, target, headers));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
        }
    }
}

async fn relay_conn(mut client: TcpStream, target: SocketAddr, inject: Vec<(String, String)>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        // Dropping `client` closes it (RST if it holds unread bytes).
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    if inject.is_empty() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        return;
    }
    let (cr, mut cw) = client.into_split();
    let (mut sr, sw) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    });
    let extra: String = inject
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let _ = forward_requests(cr, sw, extra.as_bytes()).await;
    let _ = down.await;
}

fn find(buf: &[u8], pat: &[u8]) -> Option<usize> {
    buf.windows(pat.len()).position(|w| w == pat)
}

/// `(content_length, has_transfer_encoding)` of a request head.
fn body_framing(head: &[u8]) -> (u64, bool) {
    let head = String::from_utf8_lossy(head);
    let mut len = 0;
    let mut te = false;
    for line in head.split("\r\n").skip(1) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let k = k.trim();
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().unwrap_or(0);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
        }
    }
    (len, te)
}

/// Client -> target: copy requests, inserting `extra` after each request
/// line. Ends with `shutdown(WR)` towards the target.
async fn forward_requests(
    mut cr: OwnedReadHalf,
    mut sw: OwnedWriteHalf,
    extra: &[u8],
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Empty lines between requests are allowed (and ignored) by servers.
        let blank = buf.chunks_exact(2).take_while(|c| *c == b"\r\n").count();
        if blank > 0 {
            sw.write_all(&buf[..blank * 2]).await?;
            buf.drain(..blank * 2);
        }
        let head_end = loop {
            if let Some(e) = find(&buf, b"\r\n\r\n") {
                break Some(e + 4);
            }
            if buf.len() > MAX_HEAD {
                break None;
            }
            if cr.read_buf(&mut buf).await? == 0 {
                sw.write_all(&buf).await?;
                return sw.shutdown().await;
            }
        };
        let Some(head_end) = head_end else {
            return pass_rest(cr, sw, buf).await;
        };
        let line_end = find(&buf[..head_end], b"\r\n").expect("head has a CRLF") + 2;
        let mut out = Vec::with_capacity(head_end + extra.len());
        out.extend_from_slice(&buf[..line_end]);
        out.extend_from_slice(extra);
        out.extend_from_slice(&buf[line_end..head_end]);
        sw.write_all(&out).await?;
        let (mut remaining, chunked) = body_framing(&buf[..head_end]);
        buf.drain(..head_end);
        if chunked {
            return pass_rest(cr, sw, buf).await;
        }
        let take = (remaining.min(buf.len() as u64)) as usize;
        sw.write_all(&buf[..take]).await?;
        buf.drain(..take);
        remaining -= take as u64;
        let mut chunk = vec![0u8; 64 * 1024];
        while remaining > 0 {
            let want = remaining.min(chunk.len() as u64) as usize;
            let n = cr.read(&mut chunk[..want]).await?;
            if n == 0 {
                return sw.shutdown().await;
            }
            sw.write_all(&chunk[..n]).await?;
            remaining -= n as u64;
        }
    }
}

/// Write what is buffered, then pipe the rest of the connection unchanged.
async fn pass_rest(
    mut cr: OwnedReadHalf,
    mut sw: OwnedWriteHalf,
    buf: Vec<u8>,
) -> std::io::Result<()> {
    sw.write_all(&buf).await?;
    tokio::io::copy(&mut cr, &mut sw).await?;
    sw.shutdown().await
}
