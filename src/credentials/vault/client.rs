//! The HTTP side of the Vault/OpenBao store: one try of one API request over
//! the list of store addresses (high availability).
//!
//! Each try walks the addresses in turn, starting with the one that answered
//! last. An address that is down, sealed, a standby without an active node, or
//! busy (any transient status of SPEC §6) hands the request to the next one;
//! the first answer that is not transient is the try's answer. When every
//! address failed, the try fails transiently and the retry loop waits: short
//! waits when none of them was reachable, backoff when they answered.
//!
//! A standby that redirects to the active node (307, what Vault and OpenBao do
//! when they do not forward the request themselves) is followed, with the
//! token sent again, up to [`MAX_REDIRECTS`] times, never from https://
//! down to http://, and to a plain http:// host that is not loopback only
//! with `[vault] insecure_http = true`: either would send the token in
//! clear where the operator did not allow it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub(crate) use crate::credentials::address::{is_loopback, shown_address};
use crate::error::{Error, Result};
use crate::net::classify::{retry_after_header, status_class, StatusClass};
use crate::net::direct;
use crate::net::retry::{Class, Failure, Transient};
use crate::net::HttpClient;
use crate::util::text;

/// Redirects followed within one address: a standby points at the active node,
/// which answers; more than that is a loop.
pub(crate) const MAX_REDIRECTS: usize = 3;
/// Vault's answers are small JSON documents; a larger answer is not one.
pub(crate) const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A non-transient answer, and the address it came from.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// The URL that answered (after redirects), for messages.
    pub(crate) from: Url,
}

impl Answer {
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Vault's own explanation (`{"errors": [...]}`), when it gave one and it
    /// does not contain any of `secrets`.
    pub(crate) fn errors(&self, secrets: &[&str]) -> Option<String> {
        let json = self.json()?;
        let errors: Vec<&str> = json
            .get("errors")?
            .as_array()?
            .iter()
            .filter_map(|e| e.as_str())
            .filter(|e| !e.is_empty())
            .collect();
        let text: String = errors.join("; ").chars().take(200).collect();
        let clean = !text.is_empty()
            && !text.chars().any(char::is_control)
            && secrets.iter().all(|s| s.is_empty() || !text.contains(s));
        clean.then_some(text)
    }
}

/// One request, as sent to every address.
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    /// The API path after `v1/`, e.g. `secret/data/PROXY_PASS`.
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) token: Option<&'a SecretString>,
    pub(crate) body: Option<&'a serde_json::Value>,
}

impl<'a> Request<'a> {
    pub(crate) fn get(path: &'a str, token: &'a SecretString) -> Request<'a> {
        Request {
            method: Method::GET,
            path,
            query: None,
            token: Some(token),
            body: None,
        }
    }
}

/// The store's addresses and the client that reaches them, directly.
pub(crate) struct VaultClient {
    addresses: Vec<Url>,
    http: HttpClient,
    namespace: Option<String>,
    /// `[vault] insecure_http`: redirects to plain http:// off loopback too.
    insecure_http: bool,
    /// The index of the address that answered last: tried first next time.
    preferred: AtomicUsize,
}

impl VaultClient {
    pub(crate) fn new(
        addresses: Vec<Url>,
        namespace: Option<String>,
        insecure_http: bool,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<VaultClient> {
        assert!(!addresses.is_empty(), "a store has at least one address");
        Ok(VaultClient {
            addresses,
            http: crate::net::direct::store_client(tls)?,
            namespace,
            insecure_http,
            preferred: AtomicUsize::new(0),
        })
    }

    /// "the Vault/OpenBao store at https://a:8200" (or "at a, b, c").
    pub(crate) fn describe(&self) -> String {
        let shown: Vec<&str> = self.addresses.iter().map(shown_address).collect();
        format!("the Vault/OpenBao store at {}", shown.join(", "))
    }

    /// One try of `request` over every address (see the module doc).
    pub(crate) async fn send(&self, request: &Request<'_>) -> std::result::Result<Answer, Failure> {
        let count = self.addresses.len();
        let first = self.preferred.load(Ordering::Relaxed) % count;
        let mut failed: Vec<Transient> = Vec::new();
        for index in (0..count).map(|i| (first + i) % count) {
            let address = &self.addresses[index];
            match self.send_to(address, request).await {
                Ok(answer) => {
                    if index != first {
                        tracing::info!("{} answers for the store now", shown_address(&answer.from));
                    }
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(Failure::Permanent(error)) => return Err(Failure::Permanent(error)),
                Err(Failure::Transient(transient)) => {
                    if count > 1 {
                        tracing::debug!("store address {}: {}", index + 1, transient.reason);
                    }
                    failed.push(transient);
                }
            }
        }
        Err(Failure::Transient(combine(failed)))
    }

    /// One address, following its redirects.
    async fn send_to(
        &self,
        address: &Url,
        request: &Request<'_>,
    ) -> std::result::Result<Answer, Failure> {
        let mut url = api_url(address, request.path, request.query)?;
        for hop in 0..=MAX_REDIRECTS {
            let mut builder = self
                .http
                .request(request.method.clone(), url.clone())
                .header("X-Vault-Request", "true");
            if let Some(token) = request.token {
                builder = builder.header("X-Vault-Token", token.expose_secret());
            }
            if let Some(namespace) = &self.namespace {
                builder = builder.header("X-Vault-Namespace", namespace);
            }
            if let Some(body) = request.body {
                builder = builder
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let shown = shown_address(&url).to_string();
            let response = match builder.send().await {
                Ok(response) => response,
                Err(e) => return Err(direct::transport_failure(&peer(&shown), &e)),
            };
            let status = response.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok());
                let next = redirect_target(&url, status, location, hop, self.insecure_http)?;
                tracing::debug!(
                    "{shown} redirected the request to {} (a standby pointing at the active node)",
                    shown_address(&next)
                );
                url = next;
                continue;
            }
            if status_class(status) == StatusClass::Transient {
                let retry_after = retry_after_header(response.headers());
                return Err(Failure::busy(
                    format!("{shown} answered {status}{}", meaning(status)),
                    retry_after,
                ));
            }
            let body = direct::read_body(response, &peer(&shown), MAX_ANSWER_BYTES).await?;
            return Ok(Answer {
                status,
                body,
                from: url,
            });
        }
        unreachable!("the loop returns on its last hop")
    }
}

/// `address` + `v1/` + `path`, keeping any path the address has (a store
/// behind a reverse proxy at `https://host/vault/`).
fn api_url(address: &Url, path: &str, query: Option<&str>) -> std::result::Result<Url, Failure> {
    let mut base = address.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let mut url = base.join(&format!("v1/{path}")).map_err(|e| {
        Failure::Permanent(Error::Config(format!(
            "cannot build the store URL for {path}: {e}"
        )))
    })?;
    url.set_query(query);
    Ok(url)
}

/// Where a redirect from `url` (its `hop`th) leads, if it may be followed:
/// never down from https://, and to plain http:// off loopback only with
/// `insecure_http` (the rule of the addresses themselves, SPEC §2).
fn redirect_target(
    url: &Url,
    status: u16,
    location: Option<&str>,
    hop: usize,
    insecure_http: bool,
) -> std::result::Result<Url, Failure> {
    let shown = text::shown(shown_address(url));
    let next = location
        .and_then(|location| url.join(location).ok())
        .ok_or_else(|| {
            Failure::Permanent(Error::Unavailable(format!(
                "{shown} answered {status} without a usable Location: is it a Vault/OpenBao server?"
            )))
        })?;
    if hop == MAX_REDIRECTS {
        return Err(Failure::Permanent(Error::Unavailable(format!(
            "{shown} redirected more than {MAX_REDIRECTS} times: check the store's api_addr \
             settings"
        ))));
    }
    let to = text::shown(shown_address(&next));
    let downgrade = url.scheme() == "https" && next.scheme() != "https";
    if downgrade || !matches!(next.scheme(), "http" | "https") {
        return Err(Failure::Permanent(Error::Refused(format!(
            "{shown} redirected to {to}, which would send the store token without TLS: set the \
             store's api_addr to https://"
        ))));
    }
    if next.scheme() == "http" && !is_loopback(&next) && !insecure_http {
        return Err(Failure::Permanent(Error::Config(format!(
            "a redirect from {shown}: the store address {to} is plain http:// to a host that is \
             not a loopback address, so the store token and the proxy password would cross the \
             network in clear; it was not followed. Set the store's api_addr to https://, or, if \
             the network is yours and that is known, set insecure_http = true in the [vault] \
             section of the config file"
        ))));
    }
    Ok(next)
}

fn peer(shown: &str) -> direct::Peer<'_> {
    direct::Peer {
        shown,
        role: "the store",
        kind: "a Vault/OpenBao server",
        trust_hint: "set VAULT_CACERT or --ca-file to the CA that signed its certificate",
    }
}

/// What a transient status from a store usually means.
fn meaning(status: u16) -> &'static str {
    match status {
        503 => " (sealed, or not ready yet)",
        500 | 502 => " (no active node yet?)",
        429 => " (a standby, or rate limited)",
        _ => "",
    }
}

/// One failure out of the failures of every address: "network down" only
/// when no address answered at all; the longest `Retry-After` any asked for.
fn combine(mut failed: Vec<Transient>) -> Transient {
    if failed.len() == 1 {
        return failed.remove(0);
    }
    let class = if failed.iter().all(|t| t.class == Class::NetworkDown) {
        Class::NetworkDown
    } else {
        Class::ServerBusy
    };
    let retry_after = failed.iter().filter_map(|t| t.retry_after).max();
    let reasons: Vec<String> = failed.into_iter().map(|t| t.reason).collect();
    Transient {
        reason: format!("no store address answered: {}", reasons.join("; ")),
        class,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn api_urls_keep_a_path_prefix_and_add_the_query() {
        let plain = Url::parse("https://vault:8200").unwrap();
        assert_eq!(
            api_url(&plain, "secret/data/P", None).unwrap().as_str(),
            "https://vault:8200/v1/secret/data/P"
        );
        let behind = Url::parse("https://gw.example/vault").unwrap();
        assert_eq!(
            api_url(&behind, "secret/metadata/P", Some("list=true"))
                .unwrap()
                .as_str(),
            "https://gw.example/vault/v1/secret/metadata/P?list=true"
        );
        assert_eq!(shown_address(&behind), "https://gw.example");
    }

    fn refused(result: std::result::Result<Url, Failure>) -> Error {
        match result {
            Err(Failure::Permanent(error)) => error,
            other => panic!("expected a permanent failure, got {other:?}"),
        }
    }

    #[test]
    fn redirects_are_followed_within_limits_and_never_down_to_http() {
        let standby = Url::parse("https://vault-2:8200/v1/secret/data/P").unwrap();
        let active = redirect_target(
            &standby,
            307,
            Some("https://vault-1:8200/v1/secret/data/P"),
            0,
            false,
        )
        .unwrap();
        assert_eq!(active.as_str(), "https://vault-1:8200/v1/secret/data/P");
        let relative = redirect_target(&standby, 307, Some("/v1/secret/data/Q"), 1, false).unwrap();
        assert_eq!(relative.as_str(), "https://vault-2:8200/v1/secret/data/Q");

        for insecure_http in [false, true] {
            let downgrade = refused(redirect_target(
                &standby,
                307,
                Some("http://vault-1:8200/v1/secret/data/P"),
                0,
                insecure_http,
            ));
            assert_eq!(downgrade.exit_code(), 77);
            assert!(downgrade.message().contains("without TLS"));
        }
        let local = Url::parse("http://127.0.0.1:8200/v1/x").unwrap();
        assert!(redirect_target(&local, 307, Some("http://127.0.0.2:8200/v1/x"), 0, false).is_ok());
        let other_scheme = refused(redirect_target(
            &local,
            307,
            Some("ftp://vault-1/v1/x"),
            0,
            true,
        ));
        assert_eq!(other_scheme.exit_code(), 77);
        let looping = refused(redirect_target(
            &standby,
            307,
            Some("/v1/x"),
            MAX_REDIRECTS,
            false,
        ));
        assert!(looping.message().contains("redirected more than 3 times"));
        let no_location = refused(redirect_target(&standby, 307, None, 0, false));
        assert!(no_location.message().contains("without a usable Location"));
    }

    #[test]
    fn a_redirect_to_plain_http_off_loopback_needs_insecure_http() {
        let local = Url::parse("http://127.0.0.1:8200/v1/x").unwrap();
        let away = Some("http://vault-1.corp:8200/v1/x");
        let error = refused(redirect_target(&local, 307, away, 0, false));
        assert_eq!(
            error.exit_code(),
            78,
            "refused as the address itself would be"
        );
        let message = error.message();
        assert!(
            message.contains("http://vault-1.corp:8200 is plain http://"),
            "{message}"
        );
        assert!(message.contains("insecure_http = true"), "{message}");
        assert!(message.contains("api_addr to https://"), "{message}");
        assert!(redirect_target(&local, 307, away, 0, true).is_ok());
    }

    fn transient(reason: &str, class: Class, retry_after: Option<u64>) -> Transient {
        Transient {
            reason: reason.into(),
            class,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn failures_of_all_addresses_combine_into_one() {
        let one = combine(vec![transient("a down", Class::NetworkDown, None)]);
        assert_eq!(one.reason, "a down");

        let down = combine(vec![
            transient("a down", Class::NetworkDown, None),
            transient("b down", Class::NetworkDown, None),
        ]);
        assert_eq!(down.class, Class::NetworkDown);
        assert_eq!(down.reason, "no store address answered: a down; b down");

        let mixed = combine(vec![
            transient("a down", Class::NetworkDown, None),
            transient("b 503", Class::ServerBusy, Some(2)),
            transient("c 429", Class::ServerBusy, Some(5)),
        ]);
        assert_eq!(mixed.class, Class::ServerBusy);
        assert_eq!(mixed.retry_after, Some(Duration::from_secs(5)));
    }

    #[test]
    fn vault_error_texts_are_shown_only_when_they_hold_no_secret() {
        let answer = |body: &str| Answer {
            status: 400,
            body: body.as_bytes().to_vec(),
            from: Url::parse("http://v").unwrap(),
        };
        assert_eq!(
            answer(r#"{"errors":["invalid role or secret ID"]}"#).errors(&["s3cr3t"]),
            Some("invalid role or secret ID".into())
        );
        assert_eq!(
            answer(r#"{"errors":["bad secret id s3cr3t"]}"#).errors(&["s3cr3t"]),
            None
        );
        assert_eq!(answer("not json").errors(&[]), None);
        assert_eq!(answer(r#"{"errors":[]}"#).errors(&[]), None);
    }
}
