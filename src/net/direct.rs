//! Small requests sent directly, never through a proxy: the credential store
//! and the cloud's metadata service. Both read short answers into memory and
//! decide alike what a failure to get one means; the script download, which
//! streams and may go through the proxy, has its own rules in [`super`].

use std::sync::Arc;

use super::classify::{trust_hint, ErrorFacts};
use super::retry::Failure;
use super::{http_client, HttpClient, Redirects, MIN_READ_TIMEOUT};
use crate::error::{Error, Result};

/// The client every store's API is asked with (Vault/OpenBao, the AWS, GCP
/// and Azure stores): direct, never through the proxy whose password the
/// store holds; no redirect followed but by the caller, which decides where
/// its credential may go; and the shortest read timeout, since store answers
/// are small and quick and a silent store is stuck.
pub(crate) fn store_client(tls: &Arc<rustls::ClientConfig>) -> Result<HttpClient> {
    http_client(tls, None, Redirects::Manual, MIN_READ_TIMEOUT)
}

/// What a direct request talks to, for the messages of [`read_body`] and
/// [`transport_failure`].
pub(crate) struct Peer<'a> {
    /// Scheme, host and port, e.g. "http://169.254.169.254".
    pub(crate) shown: &'a str,
    /// Its role, e.g. "the store" or "the aws metadata service".
    pub(crate) role: &'a str,
    /// What it should be, e.g. "a Vault/OpenBao server".
    pub(crate) kind: &'a str,
    /// What to do when its certificate's issuer is unknown (the CA hint of
    /// [`trust_hint`]; other trust failures have hints of their own).
    pub(crate) trust_hint: &'a str,
}

/// Reads a whole answer of at most `max` bytes. A larger one is refused: the
/// peer is not what it should be.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    peer: &Peer<'_>,
    max: usize,
) -> std::result::Result<Vec<u8>, Failure> {
    let shown = peer.shown;
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > max {
                    return Err(Failure::Permanent(Error::Unavailable(format!(
                        "{shown} sent an answer larger than {max} bytes: is it {}?",
                        peer.kind
                    ))));
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(Failure::busy(
                    format!(
                        "{shown}: reading the answer failed: {}",
                        ErrorFacts::of(&e).detail
                    ),
                    None,
                ))
            }
        }
    }
}

/// What a request that got no answer means. No answer at all (refused,
/// reset, closed before a status line) is a peer that is not up yet, whose
/// recovery should be noticed at once: short waits. An answer that is not
/// HTTP is a peer that is up and broken (or not what it should be), and a
/// timeout is a peer that hangs: both back off rather than poll it several
/// times a second. An untrusted certificate is final.
pub(crate) fn transport_failure(peer: &Peer<'_>, error: &reqwest::Error) -> Failure {
    let facts = ErrorFacts::of(error);
    let shown = peer.shown;
    if let Some(untrusted) = &facts.untrusted {
        return Failure::Permanent(Error::Refused(format!(
            "TLS verification of {} at {shown} failed: {}",
            peer.role,
            trust_hint(untrusted, peer.trust_hint)
        )));
    }
    if facts.garbled {
        return Failure::busy(
            format!(
                "{shown} answered, but not in HTTP ({}): is it {}?",
                facts.detail, peer.kind
            ),
            None,
        );
    }
    if facts.connect {
        Failure::network_down(format!("{shown} is not reachable: {}", facts.detail))
    } else if !facts.timeout {
        Failure::network_down(format!("{shown} gave no answer: {}", facts.detail))
    } else {
        Failure::busy(format!("{shown}: {}", facts.detail), None)
    }
}

/// "a string", "a list", …: what a JSON value is, for messages that must not
/// show the value itself.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::retry::Class;

    /// A peer on a loopback port that answers `answer` to the first
    /// request, then closes; its URL.
    async fn peer(answer: Vec<u8>) -> String {
        let port = crate::test_support::loopback_peer(answer, false).await;
        format!("http://127.0.0.1:{port}/")
    }

    /// What one request to a peer answering `answer` fails with.
    async fn failure(answer: Vec<u8>) -> Failure {
        let tls = crate::net::tls::trusting_nothing().unwrap();
        let client = crate::net::http_client(
            &tls,
            None,
            crate::net::Redirects::Manual,
            crate::net::MIN_READ_TIMEOUT,
        )
        .unwrap();
        let url = peer(answer).await;
        let error = client.get(&url).send().await.unwrap_err();
        let peer = Peer {
            shown: "http://peer",
            role: "the peer",
            kind: "a test server",
            trust_hint: "CA-HINT",
        };
        transport_failure(&peer, &error)
    }

    fn class(failure: &Failure) -> Class {
        match failure {
            Failure::Transient(t) => t.class,
            Failure::Permanent(e) => panic!("expected a transient failure: {e}"),
        }
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_is_a_busy_server_and_a_silent_close_is_not() {
        let garbage = failure(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()).await;
        assert_eq!(class(&garbage), Class::ServerBusy);
        let Failure::Transient(t) = &garbage else {
            unreachable!()
        };
        assert!(
            t.reason
                .starts_with("http://peer answered, but not in HTTP"),
            "{}",
            t.reason
        );
        assert!(t.reason.ends_with("is it a test server?"), "{}", t.reason);

        // A head that never ends, past hyper's limit (about 400 KiB).
        let mut endless = b"HTTP/1.1 200 OK\r\nX-Filler: ".to_vec();
        endless.resize(endless.len() + 1024 * 1024, b'a');
        assert_eq!(class(&failure(endless).await), Class::ServerBusy);

        let closed = failure(Vec::new()).await;
        assert_eq!(class(&closed), Class::NetworkDown);
    }
}
