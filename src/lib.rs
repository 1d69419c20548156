//! tagstrap as a library: the pipeline's stages, one module each, in the
//! order a run goes through them. `main.rs` only calls [`commands::main`].
//!
//! - [`settings`] (with [`cli`]): flags, `TAGSTRAP_*` variables, config file, defaults.
//! - [`tags`]: tags files, instance tags and `--tag`, merged; their meaning in [`tags::agent`].
//! - [`credentials`]: `cred:NAME` resolved from a credential store.
//! - [`proxy`]: the proxy URL, the no-proxy list and the script's environment.
//! - [`fetch`]: the download stage: routing, redirects hop by hop, streaming with the size cap and the pin.
//! - [`run`]: running the script; [`report`] and [`state`]: what is left on disk;
//!   `lock`: one run at a time per state directory; `stop`: the signals that stop a run.
//! - `pipeline`: the stages as functions that return values, and `run`'s
//!   sequence of them, which returns the run's record for the report.
//! - [`commands`]: the wiring (`main`, clap's errors, dispatch) and one file
//!   per command: `run`, `plan`, `tags`, and `doctor`, a table of steps run
//!   one at a time on the route `run` would take, each diagnosed.
//! - [`error`]: the one error type and its exit codes.
//! - [`net`]: the network toolkit below the stages: the HTTP client, TLS, retries, classification.
//! - [`util`]: the toolkit below every stage (showing outside text, opening
//!   and creating files safely, process hardening).

#![warn(unreachable_pub)]

pub mod cli;
pub mod commands;
pub mod credentials;
pub mod error;
pub mod fetch;
pub(crate) mod lock;
pub(crate) mod logging;
pub mod net;
pub(crate) mod pipeline;
pub mod proxy;
pub(crate) mod report;
pub(crate) mod run;
pub mod settings;
pub(crate) mod state;
pub(crate) mod stop;
pub mod tags;
pub mod util;

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::HashMap;

    /// An environment lookup over fixed pairs, for settings and proxy tests.
    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// A peer on a loopback port that reads the first connection's request
    /// and answers `answer`, then closes (or, with `reset`, resets it); its
    /// port. For the tests of what a garbled or missing answer means.
    pub(crate) async fn loopback_peer(answer: Vec<u8>, reset: bool) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let _ = tcp.read(&mut request).await;
            if reset {
                // Linger 0: dropping the socket sends a RST, not a FIN.
                #[allow(deprecated)]
                let _ = tcp.set_linger(Some(std::time::Duration::ZERO));
                return;
            }
            let _ = tcp.write_all(&answer).await;
            let _ = tcp.shutdown().await;
            // Drain until the client closes, so the close is a FIN, not a RST.
            let _ = tcp.read_to_end(&mut request).await;
        });
        port
    }
}
