//! One GET to a cloud store's REST API with the instance identity's bearer
//! token, shared by the GCP Secret Manager and Azure Key Vault stores: sent
//! directly (never through the proxy, whose password the store holds), the
//! transient statuses of SPEC §6 (429, 5xx) and failures to get an answer
//! turned into retries, the answer read into memory with a cap. What a
//! final status means is each store's business, from its error body.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::address::shown_address;
use crate::error::Result;
use crate::net::classify::{retry_after_header, status_class, StatusClass};
use crate::net::direct::{self, Peer};
use crate::net::retry::Failure;
use crate::net::HttpClient;
use crate::util::text::shown;

/// A secret's answer is a small JSON document (GCP caps a secret at 64 KiB,
/// Azure at 25 KiB, before base64); a larger one is not such an answer.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// How much of an error message from the API a line quotes.
const SAID_CHARS: usize = 300;

/// A store API at one base URL.
pub(crate) struct BearerClient {
    base: Url,
    http: HttpClient,
    /// e.g. "GCP Secret Manager", for messages.
    kind: &'static str,
}

/// A final (not transient) answer.
pub(crate) struct BearerAnswer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl BearerClient {
    pub(crate) fn new(
        kind: &'static str,
        base: Url,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<BearerClient> {
        Ok(BearerClient {
            base,
            http: crate::net::direct::store_client(tls)?,
            kind,
        })
    }

    /// Scheme, host and port, for messages.
    pub(crate) fn shown(&self) -> &str {
        shown_address(&self.base)
    }

    /// The base's path, then `path` (already percent-encoded where it must
    /// be), then `query`.
    pub(crate) fn url(&self, path: &str, query: Option<&str>) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}/{}", url.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        url.set_query(query);
        url
    }

    /// One GET with `Authorization: Bearer`.
    pub(crate) async fn get(
        &self,
        url: Url,
        token: &SecretString,
    ) -> std::result::Result<BearerAnswer, Failure> {
        let shown = self.shown().to_string();
        let peer = Peer {
            shown: &shown,
            role: "the store",
            kind: self.kind,
            trust_hint: "pass the CA that signed its certificate with --ca-file",
        };
        let response = self
            .http
            .get(url)
            .header("Authorization", format!("Bearer {}", token.expose_secret()))
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| direct::transport_failure(&peer, &e))?;
        let status = response.status().as_u16();
        if status_class(status) == StatusClass::Transient {
            let retry_after = retry_after_header(response.headers());
            let said = direct::read_body(response, &peer, MAX_ANSWER_BYTES)
                .await
                .map(|body| error_said(&body, &[token.expose_secret()]))
                .unwrap_or_default();
            return Err(Failure::busy(
                format!("{} at {shown} answered {status}{said}", self.kind),
                retry_after,
            ));
        }
        let body = direct::read_body(response, &peer, MAX_ANSWER_BYTES).await?;
        Ok(BearerAnswer { status, body })
    }
}

/// How long before its expiry a token is no longer used: a request sent
/// with it must still arrive in time.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// A token (or what holds one) kept until shortly before it expires, then
/// asked for again: GCE's metadata server hands out tokens with as little
/// as five minutes left, and a run may retry a store for longer.
pub(crate) struct TokenCache<T> {
    slot: Mutex<Option<(Arc<T>, Instant)>>,
}

impl<T> TokenCache<T> {
    pub(crate) fn new() -> TokenCache<T> {
        TokenCache {
            slot: Mutex::new(None),
        }
    }

    /// The last one got, expired or not (for `describe()`).
    pub(crate) fn last(&self) -> Option<Arc<T>> {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().map(|(value, _)| value.clone())
    }

    /// Drops the kept one, so that the next [`TokenCache::get`] asks for a
    /// fresh one: the API refused it before its expiry (revoked, rotated).
    pub(crate) fn forget(&self) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The kept one while it is valid, else `fetch`'s: a value and the
    /// seconds it is valid for.
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<Arc<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, u64)>>,
    {
        {
            let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((value, until)) = slot.as_ref() {
                if Instant::now() < *until {
                    return Ok(value.clone());
                }
            }
        }
        let (value, seconds) = fetch().await?;
        let value = Arc::new(value);
        let until = Instant::now() + Duration::from_secs(seconds).saturating_sub(EXPIRY_MARGIN);
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((value.clone(), until));
        Ok(value)
    }
}

/// Whether a store's answer `status` calls for one fresh token before it is
/// taken as final: a 401, the first time in a read. A token can stop being
/// accepted before its expiry (revoked, rotated, a clock ahead of the
/// issuer's); asking the metadata service once more costs a request, and a
/// second 401 with a fresh token is the refusal it says it is (77). AWS's
/// stores do the same on `ExpiredToken`.
pub(crate) fn renew_once(status: u16, renewed: &std::sync::atomic::AtomicBool, kind: &str) -> bool {
    if status != 401 || renewed.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    tracing::info!("{kind} did not accept the access token (401): asking for a fresh one, once");
    true
}

/// " (it said: CODE: message)" from Google's and Azure's error bodies alike
/// (`{"error": {"code", "message", "status"}}`), cleaned and cut, and only
/// when it holds none of `secrets`; empty otherwise.
pub(crate) fn error_said(body: &[u8], secrets: &[&str]) -> String {
    let Some((code, message)) = error_parts(body) else {
        return String::new();
    };
    let mut text: String = message.chars().take(SAID_CHARS).collect();
    if !code.is_empty() {
        text = format!("{code}: {text}");
    }
    if secrets.iter().any(|s| !s.is_empty() && text.contains(s)) {
        return String::new();
    }
    format!(" (it said: {})", shown(text.trim()))
}

/// The error body's code (Google's `status`, else Azure's `code`) and
/// message.
pub(crate) fn error_parts(body: &[u8]) -> Option<(String, String)> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = json.get("error")?;
    let text = |key: &str| error.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let code = if text("status").is_empty() {
        text("code")
    } else {
        text("status")
    };
    let inner = error
        .get("innererror")
        .and_then(|i| i.get("code"))
        .and_then(|c| c.as_str());
    let code = match inner {
        Some(inner) if !inner.is_empty() => format!("{code}/{inner}"),
        _ => code.to_string(),
    };
    Some((code, text("message").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokens_are_kept_until_shortly_before_they_expire() {
        let cache = TokenCache::new();
        let fetches = std::sync::atomic::AtomicU32::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok((n, 300))
        };
        assert_eq!(*cache.get(fetch).await.unwrap(), 0);
        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(*cache.get(fetch).await.unwrap(), 0);
        tokio::time::advance(Duration::from_secs(41)).await;
        assert_eq!(*cache.get(fetch).await.unwrap(), 1, "renewed 60 s early");
        assert_eq!(cache.last().map(|v| *v), Some(1));
    }

    #[test]
    fn error_bodies_of_both_clouds_are_read_and_never_echo_a_secret() {
        let google =
            br#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(
            error_said(google, &[]),
            " (it said: PERMISSION_DENIED: Permission denied)"
        );
        let azure = br#"{"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}}"#;
        assert_eq!(error_parts(azure).unwrap().0, "Forbidden/ForbiddenByRbac");
        let leaky = br#"{"error":{"code":"X","message":"bad token ya29.abc"}}"#;
        assert_eq!(error_said(leaky, &["ya29.abc"]), "");
        assert_eq!(error_said(b"<html>", &[]), "");
        let hostile = br#"{"error":{"code":"X","message":"a\r\nINFO forged"}}"#;
        assert!(!error_said(hostile, &[]).contains('\n'));
    }
}
