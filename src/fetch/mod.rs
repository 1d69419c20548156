//! Fetching the script (SPEC §6, §7): one function owns the whole download —
//! routing through the proxy or not, retries, what each failure means, and
//! streaming to a private file with the size cap and the sha256 computed on
//! the way. Nothing is kept in memory but one chunk.

pub mod classify;
pub mod direct;
pub mod probe;
pub mod retry;
pub mod tls;
pub mod x509;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use url::Url;

use self::classify::{status_class, ErrorFacts, StatusClass};
use self::probe::Probe;
use self::retry::{Failure, Tries};
use crate::error::{Error, Result};
use crate::proxy::{Proxy, ProxyEnvironment};
use crate::state::create_private_file;
use crate::tags::agent::{redact_url, ScriptLocation, ScriptTag};

/// Time to set up a TCP connection. Short, because a try that waits on a
/// dead link delays the start after the link comes up, and the kernel's own
/// SYN retransmission (1 s, then 3 s) is slower than a fresh try.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds of the longest silence while waiting for a response or reading its
/// body; see [`read_timeout`].
pub const MIN_READ_TIMEOUT: Duration = Duration::from_secs(5);
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
/// Longest time for the CONNECT probe after a failed tunnel.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REDIRECTS: usize = 10;

pub fn user_agent() -> String {
    format!("tagstrap/{}", env!("CARGO_PKG_VERSION"))
}

/// Which redirects a client follows by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Up to ten, https:// only.
    HttpsOnly,
    /// Up to ten, http:// too (a pinned script: the pin protects it).
    AllowHttp,
    /// None: the caller follows them itself (the store, whose token must be
    /// sent again, and only where it is safe to send it).
    Manual,
}

/// reqwest's client, wrapped so that nothing can format it: reqwest's own
/// `Debug` of a client prints its proxies, and a proxy's `Debug` holds the
/// proxy password. This `Debug` shows only the proxy's host and port.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    via: Option<String>,
}

impl std::ops::Deref for HttpClient {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.inner
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("proxy", &self.via.as_deref().unwrap_or("none"))
            .finish_non_exhaustive()
    }
}

/// An HTTP client with tagstrap's TLS settings and timeouts. With a proxy
/// environment, each URL goes through the proxy unless its host matches the
/// no-proxy list; without one, everything goes direct (the store and the
/// metadata service).
pub fn http_client(
    tls: &Arc<rustls::ClientConfig>,
    route: Option<&ProxyEnvironment>,
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
        .redirect(redirect_policy(redirects));
    let mut via = None;
    if let Some(env) = route {
        if let Some(proxy) = &env.proxy {
            let no_proxy = env.no_proxy.clone();
            let target = proxy.url.without_credentials();
            via = Some(proxy.url.authority());
            let mut intercept = reqwest::Proxy::custom(move |url: &Url| match url.host_str() {
                Some(host) if no_proxy.matches(host) => None,
                _ => Some(target.clone()),
            });
            if let Some(user) = &proxy.url.user {
                let password = proxy
                    .url
                    .password
                    .as_ref()
                    .map(|p| p.expose_secret())
                    .unwrap_or("");
                intercept = intercept.basic_auth(user, password);
            }
            builder = builder.proxy(intercept);
        }
    }
    let inner = builder
        .build()
        .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))?;
    Ok(HttpClient { inner, via })
}

/// Follows up to ten redirects, never from https:// down to http:// unless
/// the script is pinned (then the pin protects it).
fn redirect_policy(redirects: Redirects) -> reqwest::redirect::Policy {
    if redirects == Redirects::Manual {
        return reqwest::redirect::Policy::none();
    }
    let allow_http = redirects == Redirects::AllowHttp;
    reqwest::redirect::Policy::custom(move |attempt| {
        let scheme = attempt.url().scheme();
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if scheme == "https" || (scheme == "http" && allow_http) {
            attempt.follow()
        } else {
            let to = redact_url(attempt.url());
            attempt.error(format!(
                "it redirects to {to}, which is not https:// (pin the script's sha256 to allow http://)"
            ))
        }
    })
}

/// What the caller of [`download`] needs.
pub struct FetchOptions {
    pub tls: Arc<rustls::ClientConfig>,
    pub budget: Duration,
    pub max_bytes: u64,
}

/// A complete, verified script on disk.
#[derive(Debug)]
pub struct Downloaded {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: [u8; 32],
    pub tries: Tries,
    /// "proxy host:port", "direct" or "file".
    pub route: String,
}

/// Downloads (or copies, for `file://`) the script to `paths.1`, via
/// `paths.0` while it streams. The final path exists only if the script is
/// complete, within the size cap, and matches its pin. `tries` counts the
/// tries as they happen, so a failed download's report has them too.
pub async fn download(
    script: &ScriptTag,
    env: &ProxyEnvironment,
    options: &FetchOptions,
    paths: (PathBuf, PathBuf),
    tries: &mut Tries,
) -> Result<Downloaded> {
    let (partial, path) = paths;
    let _partial = RemoveOnDrop(&partial);
    let outcome = match &script.location {
        ScriptLocation::File(source) => {
            tries.tries = 1;
            copy_local(source, &partial, options.max_bytes).map(|sink| (sink, "file".to_string()))
        }
        ScriptLocation::Remote(url) => {
            let what = format!("script {}", redact_url(url));
            let host = url.host_str().unwrap_or_default();
            let proxy = env.route(host);
            let route = match proxy {
                Some(p) => format!("proxy {}", p.url.authority()),
                None => "direct".to_string(),
            };
            tracing::info!(route = %route, "downloading {what} ({route})");
            let redirects = if script.sha256.is_some() {
                Redirects::AllowHttp
            } else {
                Redirects::HttpsOnly
            };
            let client = http_client(
                &options.tls,
                Some(env),
                redirects,
                read_timeout(options.budget),
            )?;
            let attempt = Attempt {
                client: &client,
                url,
                proxy,
                tls: &options.tls,
                partial: &partial,
                max_bytes: options.max_bytes,
                budget: options.budget,
            };
            retry::retry(&what, options.budget, tries, |_| attempt.run())
                .await
                .map(|sink| (sink, route))
        }
    };
    let ((bytes, sha256), route) = match outcome {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    if let Some(pin) = script.sha256 {
        if pin != sha256 {
            let _ = std::fs::remove_file(&partial);
            return Err(Error::Input(format!(
                "the script from {} does not match its pin: {} wants sha256 {}, the {bytes} bytes \
                 downloaded hash to {}. Nothing was run: update the pin or fix the script",
                script.shown(),
                pin_key(script),
                hex(&pin),
                hex(&sha256)
            )));
        }
    }
    std::fs::rename(&partial, &path).map_err(|e| {
        Error::CantCreate(format!("cannot move the script to {}: {e}", path.display()))
    })?;
    tracing::info!(bytes, sha256 = %hex(&sha256), tries = tries.tries, "script saved to {}", path.display());
    let tries = *tries;
    Ok(Downloaded {
        path,
        bytes,
        sha256,
        tries,
        route,
    })
}

/// Removes the partial file however [`download`] ends, also when its future
/// is dropped half way (a signal cancelled the run): nothing incomplete is
/// left where the script goes. After the rename there is nothing to remove.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

fn pin_key(script: &ScriptTag) -> &'static str {
    if script.key == crate::tags::agent::POWERSHELL_URL {
        crate::tags::agent::POWERSHELL_SHA256
    } else {
        crate::tags::agent::MIME_SHELLSCRIPT_SHA256
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Streams into a private executable file, refusing to grow past the cap,
/// hashing as it goes.
struct Sink {
    file: File,
    hasher: Sha256,
    written: u64,
    max: u64,
    path: PathBuf,
}

impl Sink {
    fn create(path: &Path, max: u64) -> Result<Sink> {
        Ok(Sink {
            file: create_private_file(path, true)?,
            hasher: Sha256::new(),
            written: 0,
            max,
            path: path.to_path_buf(),
        })
    }

    fn write(&mut self, chunk: &[u8], source: &str) -> Result<()> {
        self.written += chunk.len() as u64;
        if self.written > self.max {
            return Err(too_large(source, self.max));
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).map_err(|e| self.write_error(&e))
    }

    fn finish(mut self) -> Result<(u64, [u8; 32])> {
        // Synced before the rename that makes it the script: what runs after
        // a crash is the complete script or none.
        self.file
            .flush()
            .and_then(|()| self.file.sync_all())
            .map_err(|e| self.write_error(&e))?;
        Ok((self.written, self.hasher.finalize().into()))
    }

    fn write_error(&self, e: &std::io::Error) -> Error {
        Error::CantCreate(format!(
            "cannot write the script to {}: {e}",
            self.path.display()
        ))
    }
}

fn too_large(source: &str, max: u64) -> Error {
    Error::Input(format!(
        "the script from {source} is larger than --max-script-bytes ({max} bytes): nothing was \
         run. Is the URL right? If the script really is that large, raise --max-script-bytes"
    ))
}

fn copy_local(source: &Path, partial: &Path, max: u64) -> Result<(u64, [u8; 32])> {
    let shown = format!("file://{}", crate::util::text::shown_path(source));
    // A regular file only: a FIFO there would block the boot.
    let mut file = crate::util::fs::open_input(source).map_err(|e| match e {
        e if e.is_not_found() => {
            Error::NotFound(format!("the script {shown} does not exist on this image"))
        }
        e => Error::Input(format!("cannot read the script {shown}: {e}")),
    })?;
    let mut sink = Sink::create(partial, max)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::Input(format!("cannot read the script {shown}: {e}")))?;
        if n == 0 {
            break;
        }
        sink.write(&buf[..n], &shown)?;
    }
    sink.finish()
}

/// One try at the download; everything a try needs, borrowed.
struct Attempt<'a> {
    client: &'a HttpClient,
    url: &'a Url,
    proxy: Option<&'a Proxy>,
    tls: &'a Arc<rustls::ClientConfig>,
    partial: &'a Path,
    max_bytes: u64,
    budget: Duration,
}

impl Attempt<'_> {
    async fn run(&self) -> std::result::Result<(u64, [u8; 32]), Failure> {
        let shown = redact_url(self.url);
        let response = match self.client.get(self.url.clone()).send().await {
            Ok(response) => response,
            Err(e) => return Err(self.transport_failure(&e).await),
        };
        let status = response.status().as_u16();
        let host = self.url.host_str().unwrap_or_default();
        match status_class(status) {
            StatusClass::Success => {}
            class => return Err(self.status_failure(class, status, &response)),
        }
        if let Some(length) = response.content_length() {
            if length > self.max_bytes {
                return Err(Failure::Permanent(too_large(&shown, self.max_bytes)));
            }
        }
        let mut response = response;
        let mut sink = Sink::create(self.partial, self.max_bytes)?;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => sink.write(&chunk, &shown)?,
                Ok(None) => break,
                Err(e) => {
                    let facts = ErrorFacts::of(&e);
                    return Err(Failure::busy(
                        format!(
                            "the body from {host} was cut short after {} bytes: {}",
                            sink.written, facts.detail
                        ),
                        None,
                    ));
                }
            }
        }
        Ok(sink.finish()?)
    }

    fn status_failure(
        &self,
        class: StatusClass,
        status: u16,
        response: &reqwest::Response,
    ) -> Failure {
        let host = self.url.host_str().unwrap_or_default();
        let headers = response.headers();
        let reason = response.status().canonical_reason().unwrap_or("");
        // For plain http:// through a proxy the proxy answers in its own name;
        // Squid marks such answers with X-Squid-Error.
        let from_proxy = self
            .proxy
            .filter(|_| headers.contains_key("x-squid-error") || class == StatusClass::ProxyAuth);
        if let Some(proxy) = from_proxy {
            let answer = probe::ConnectAnswer {
                status,
                reason: reason.to_string(),
                auth_schemes: headers
                    .get_all("proxy-authenticate")
                    .iter()
                    .filter_map(|v| probe::auth_scheme(v.to_str().ok()?))
                    .collect(),
                squid_error: headers
                    .get("x-squid-error")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            };
            return proxy_answer_failure(
                proxy,
                &format!("the request for {}", redact_url(self.url)),
                &answer,
            );
        }
        let shown = redact_url(self.url);
        match class {
            StatusClass::Transient => {
                Failure::busy(
                    format!("{host} answered {status} {reason}"),
                    classify::retry_after_header(headers),
                )
            }
            StatusClass::NotFound => Failure::Permanent(Error::NotFound(format!(
                "the script {shown} does not exist: {host} answered {status} {reason}. Check the URL in the script tag"
            ))),
            StatusClass::Denied => Failure::Permanent(Error::Refused(format!(
                "{host} denied access to the script {shown} with {status} {reason}: the URL needs \
                 credentials or a signature this instance does not have"
            ))),
            StatusClass::ProxyAuth => Failure::Permanent(Error::Refused(format!(
                "{host} answered 407 although no proxy is used for it: is it a proxy?"
            ))),
            StatusClass::Unexpected if status >= 500 => Failure::Permanent(Error::Unavailable(format!(
                "{host} answered {status} {reason} for the script {shown}, which is not worth retrying"
            ))),
            StatusClass::Unexpected | StatusClass::Success => Failure::Permanent(Error::Input(format!(
                "{host} answered {status} {reason} for the script {shown}: check the URL in the script tag"
            ))),
        }
    }

    async fn transport_failure(&self, error: &reqwest::Error) -> Failure {
        let facts = ErrorFacts::of(error);
        let host = self.url.host_str().unwrap_or_default();
        if error.is_redirect() {
            return Failure::Permanent(Error::Input(format!(
                "the script {} cannot be fetched: {}",
                redact_url(self.url),
                facts.detail
            )));
        }
        if let Some(proxy) = self.proxy {
            if facts.connect {
                if let Some(failure) = self.explain_with_probe(proxy).await {
                    return failure;
                }
            }
        }
        if let Some(untrusted) = facts.untrusted {
            return Failure::Permanent(Error::Refused(format!(
                "TLS verification of {host} failed ({untrusted}). If a proxy intercepts TLS, pass \
                 its CA certificate with --ca-file"
            )));
        }
        if facts.connect {
            let reason = match self.proxy {
                Some(proxy) => format!(
                    "connecting through the proxy {} failed: {}",
                    proxy.url.authority(),
                    facts.detail
                ),
                None => format!("connecting to {host} failed: {}", facts.detail),
            };
            return Failure::network_down(reason);
        }
        if facts.timeout {
            return Failure::busy(
                format!(
                    "{host} stayed silent for {} s",
                    read_timeout(self.budget).as_secs()
                ),
                None,
            );
        }
        Failure::busy(
            format!("the request to {host} failed: {}", facts.detail),
            None,
        )
    }

    /// Asks the proxy the CONNECT question again to learn its status. `None`
    /// when the tunnel itself works, so the failure lies beyond it.
    async fn explain_with_probe(&self, proxy: &Proxy) -> Option<Failure> {
        let authority = proxy.url.authority();
        if self.url.scheme() != "https" {
            return Some(Failure::network_down(format!(
                "the proxy {authority} is not reachable"
            )));
        }
        let target = connect_target(self.url);
        match probe::connect(&proxy.url, &target, self.tls, PROBE_TIMEOUT).await {
            Probe::Answered(answer) if answer.status / 100 == 2 => None,
            probe => Some(probe_failure(proxy, &target, probe)),
        }
    }
}

/// `host:port` of a URL's host, as in a CONNECT line.
pub fn connect_target(url: &Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(addr)) => format!("[{addr}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    format!("{host}:{}", url.port_or_known_default().unwrap_or(443))
}

/// What a CONNECT to `target` that did not open a tunnel means.
pub fn probe_failure(proxy: &Proxy, target: &str, probe: Probe) -> Failure {
    let authority = proxy.url.authority();
    match probe {
        Probe::Answered(answer) => {
            proxy_answer_failure(proxy, &format!("CONNECT {target}"), &answer)
        }
        Probe::ProxyUnreachable(reason) => Failure::network_down(format!(
            "the proxy {authority} is not reachable ({reason}): not up yet, or no route to it"
        )),
        Probe::ProxyUntrusted(reason) => Failure::Permanent(Error::Refused(format!(
            "TLS verification of the proxy {authority} failed ({reason}): pass the proxy's CA \
             certificate with --ca-file"
        ))),
        Probe::Failed(reason) => Failure::network_down(format!("the proxy {authority}: {reason}")),
    }
}

/// What the proxy's own answer means: 407 and 403 are final (SPEC §5: 77);
/// 502/503/504 mean it cannot reach the host yet, which is retried like a
/// network that is still coming up.
/// `request` says what was asked, e.g. "CONNECT repo:443".
pub fn proxy_answer_failure(
    proxy: &Proxy,
    request: &str,
    answer: &probe::ConnectAnswer,
) -> Failure {
    let authority = proxy.url.authority();
    let status = format!("{} {}", answer.status, answer.reason);
    let squid = answer
        .squid_error
        .as_deref()
        .map(|e| format!(", {}", e.split_whitespace().next().unwrap_or(e)))
        .unwrap_or_default();
    match answer.status {
        407 => {
            let basic = answer
                .auth_schemes
                .iter()
                .any(|s| s.eq_ignore_ascii_case("basic"));
            let message = if !answer.auth_schemes.is_empty() && !basic {
                format!(
                    "the proxy {authority} answered 407 to {request} and offers only {} \
                     authentication, which tagstrap does not support: ask for Basic authentication \
                     for this client",
                    answer.auth_schemes.join(", ")
                )
            } else {
                format!(
                    "the proxy {authority} answered 407 Proxy Authentication Required to {request}: \
                     it did not accept the credentials; {}",
                    proxy.what_to_check()
                )
            };
            Failure::Permanent(Error::Refused(message))
        }
        403 => Failure::Permanent(Error::Refused(format!(
            "the proxy {authority} refused {request} with {status}{squid}: its rules do \
             not allow this host and port; ask the proxy's administrators to allow it"
        ))),
        502..=504 => Failure::network_down(format!(
            "the proxy {authority} answered {status}{squid} to {request}: it cannot \
             reach the script host (yet)"
        )),
        _ => Failure::Permanent(Error::Refused(format!(
            "the proxy {authority} answered {status}{squid} to {request}"
        ))),
    }
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
