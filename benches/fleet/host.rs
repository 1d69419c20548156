//! The script host of the real run: a minimal HTTP/1.1 server on
//! 127.0.0.1 that answers 503 (with `Retry-After` when asked) to every
//! request arriving in the first `--busy-seconds` after the boot, then 200
//! with the script, and logs each request's arrival and instance.

use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::fail;
use crate::real::timer_lag;
use crate::SCRIPT;

/// The host's listen backlog, as a web server has it (nginx asks for 511;
/// the kernel caps it at net.core.somaxconn). std listens with 128, and so
/// does testkit's Origin: against it the fixed fleet's synchronized burst of
/// 1000 connections overflowed the queue, the kernel dropped SYNs, and
/// those requests arrived 1 s late (the client's SYN retransmission), a
/// limit of the test server rather than of any schedule.
pub const BACKLOG: libc::c_int = 4096;

/// When a request's head had arrived at the host, and its instance (`?i=`).
pub type Arrival = (Instant, usize);

/// A minimal HTTP/1.1 script host on 127.0.0.1, with its own thread and
/// single-threaded runtime (like testkit's Origin, whose handler and
/// Connection: close behaviour it copies, but with [`BACKLOG`]). It reads a
/// request head, logs its arrival, answers 503 (with Retry-After when asked)
/// if the request arrived less than `busy` after the boot, else 200 with the
/// script, and closes the connection.
pub struct Host {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Arrival>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Duration>>>,
}

impl Host {
    pub fn start(
        boot_at: Arc<OnceLock<Instant>>,
        busy: Duration,
        retry_after: Option<u64>,
    ) -> Host {
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind the host");
        // Calling listen again on a listening socket only changes its backlog.
        // SAFETY: a plain syscall on the listener's own open descriptor.
        if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
            fail(&format!("listen: {}", std::io::Error::last_os_error()));
        }
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("host address");
        let retry_after = retry_after
            .map(|after| format!("Retry-After: {after}\r\n"))
            .unwrap_or_default();
        let busy_reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\n{retry_after}Content-Length: 5\r\n\
             Connection: close\r\n\r\nbusy\n"
        );
        let mut ok_reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            SCRIPT.len()
        )
        .into_bytes();
        ok_reply.extend_from_slice(SCRIPT);
        let replies: Arc<[Vec<u8>; 2]> = Arc::new([busy_reply.into_bytes(), ok_reply]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (host_log, host_stop) = (log.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("fleet-host".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("host runtime");
                runtime.block_on(async move {
                    let lag = tokio::spawn(timer_lag(host_stop.clone()));
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    while !host_stop.load(Ordering::SeqCst) {
                        match listener.accept().await {
                            Ok((tcp, _)) => {
                                let _ = tcp.set_nodelay(true);
                                tokio::spawn(serve(
                                    tcp,
                                    boot_at.clone(),
                                    busy,
                                    replies.clone(),
                                    host_log.clone(),
                                ));
                            }
                            // Out of descriptors, say: let connections finish.
                            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    lag.await.unwrap_or_default()
                })
                // Dropping the runtime drops every open connection.
            })
            .expect("spawn the host thread");
        Host {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the host; every request's arrival in log order, and the lags
    /// of the host's runtime.
    pub fn stop(mut self) -> (Vec<Arrival>, Vec<Duration>) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept so that the loop sees the flag.
        let _ = StdTcpStream::connect(self.addr);
        let lag = self
            .thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        (std::mem::take(&mut *self.log.lock().unwrap()), lag)
    }
}

async fn serve(
    mut tcp: tokio::net::TcpStream,
    boot_at: Arc<OnceLock<Instant>>,
    busy: Duration,
    replies: Arc<[Vec<u8>; 2]>,
    log: Arc<Mutex<Vec<Arrival>>>,
) {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > 16 * 1024 {
            return;
        }
        match tcp.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    };
    let at = Instant::now();
    // "GET /install.sh?i=ID HTTP/1.1"
    let line = buf[..head_end].split(|&b| b == b'\r').next().unwrap_or(&[]);
    let id = String::from_utf8_lossy(line)
        .split("i=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(usize::MAX);
    log.lock().unwrap().push((at, id));
    let still_busy = boot_at.get().is_none_or(|boot| at < *boot + busy);
    let reply = &replies[if still_busy { 0 } else { 1 }];
    if tcp.write_all(reply).await.is_ok() {
        let _ = tcp.shutdown().await;
    }
}
