//! The network toolkit below every stage: the HTTP client with tagstrap's
//! TLS settings and timeouts, TLS roots (`tls`), certificate names for
//! messages (`x509`), the retry schedule (`retry`), what a status or a
//! transport error means (`classify`) and the small direct requests to the
//! store and the metadata service (`direct`). It imports only `error` and
//! `util`: the stages above (instance tags, credentials, the download) use
//! it, and the proxy decision reaches it as a [`ProxyRoute`].

pub(crate) mod classify;
pub(crate) mod direct;
pub(crate) mod metadata;
pub mod retry;
pub mod tls;
pub mod x509;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::error::{Error, Result};

/// Time to set up a TCP connection. Short, because a try that waits on a
/// dead link delays the start after the link comes up, and the kernel's own
/// SYN retransmission (1 s, then 3 s) is slower than a fresh try.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds of the longest silence while waiting for a response or reading its
/// body; see [`read_timeout`].
pub(crate) const MIN_READ_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest silence tolerated from a peer before the try is given up and
/// a fresh one made: a tenth of the deadline, between 5 and 30 s. A fixed
/// 30 s meant that one connection which accepted and then hung cost 30 s at
/// boot, and with a deadline under 30 s ended the run although the next
/// request would have been answered (tests/faults.rs); a slow drip is not
/// affected, since only silence counts.
pub fn read_timeout(deadline: Duration) -> Duration {
    (deadline / 10).clamp(MIN_READ_TIMEOUT, MAX_READ_TIMEOUT)
}

pub(crate) fn user_agent() -> String {
    format!("tagstrap/{}", env!("CARGO_PKG_VERSION"))
}

/// Which redirects the download stage's `get_following` follows for a client. reqwest itself
/// follows none, for any client (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Up to ten, to https:// only.
    HttpsOnly,
    /// Up to ten, to http:// too (a pinned script: the pin protects it).
    AllowHttp,
    /// None: the caller follows them itself (the store, whose token must be
    /// sent again, and only where it is safe to send it) or not at all (the
    /// metadata service).
    Manual,
}

/// reqwest's client, wrapped so that nothing can format it: reqwest's own
/// `Debug` of a client prints its proxies, and a proxy's `Debug` holds the
/// proxy password. This `Debug` shows only the proxy's host and port.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    via: Option<String>,
    redirects: Redirects,
}

impl std::ops::Deref for HttpClient {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.inner
    }
}

impl HttpClient {
    /// Which redirects this client's caller follows.
    pub(crate) fn redirects(&self) -> Redirects {
        self.redirects
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("proxy", &self.via.as_deref().unwrap_or("none"))
            .finish_non_exhaustive()
    }
}

/// Where a client's requests go when there is a proxy: through `url`
/// (the proxy, without credentials), authenticated with `basic_auth`,
/// unless `bypass` says a host goes direct. The proxy stage builds it from
/// its decision (`fetch::route_of`), so this toolkit needs nothing above it.
pub struct ProxyRoute {
    pub(crate) url: String,
    /// `host:port`, what `Debug` and messages show of the proxy.
    pub(crate) authority: String,
    pub(crate) basic_auth: Option<(String, SecretString)>,
    pub(crate) bypass: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

/// An HTTP client with tagstrap's TLS settings and timeouts. With a route,
/// each URL goes through the proxy unless its host bypasses it; without
/// one, everything goes direct (the store and the metadata service).
pub fn http_client(
    tls: &Arc<rustls::ClientConfig>,
    route: Option<ProxyRoute>,
    redirects: Redirects,
    read_timeout: Duration,
) -> Result<HttpClient> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_backend_preconfigured((**tls).clone())
        .http1_only()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(read_timeout)
        .user_agent(user_agent())
        // Never sent: the previous URL of a redirect may carry a signature.
        .referer(false)
        .redirect(reqwest::redirect::Policy::none());
    let mut via = None;
    if let Some(route) = route {
        via = Some(route.authority.clone());
        let (target, bypass) = (route.url, route.bypass);
        let mut intercept = reqwest::Proxy::custom(move |url: &Url| match url.host_str() {
            Some(host) if bypass(host) => None,
            _ => Some(target.clone()),
        });
        if let Some((user, password)) = &route.basic_auth {
            intercept = intercept.basic_auth(user, password.expose_secret());
        }
        builder = builder.proxy(intercept);
    }
    let inner = builder
        .build()
        .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))?;
    Ok(HttpClient {
        inner,
        via,
        redirects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_timeout_is_a_tenth_of_the_deadline_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(read_timeout(s(600)), s(30));
        assert_eq!(read_timeout(s(3600)), MAX_READ_TIMEOUT);
        assert_eq!(read_timeout(s(120)), s(12));
        assert_eq!(read_timeout(s(20)), MIN_READ_TIMEOUT);
        assert_eq!(read_timeout(Duration::ZERO), MIN_READ_TIMEOUT);
    }
}
