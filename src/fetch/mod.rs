//! Fetching the script (SPEC §6, §7): one function owns the whole download —
//! routing through the proxy or not, redirects, retries, what each failure
//! means, and streaming to a private file with the size cap and the sha256
//! computed on the way. Nothing is kept in memory but one chunk.
//!
//! Redirects are followed here, hop by hop ([`get_following`]), not by
//! reqwest: reqwest strips `Proxy-Authorization` from a redirect to another
//! host (so a proxied hop went out unauthenticated and the proxy's 407
//! blamed the right password) and sends the previous URL as `Referer` (a
//! presigned URL's signature, handed to the next host). Here every hop is a
//! first request to its URL: routed by the no-proxy list, authenticated to
//! the proxy when proxied, with no `Referer`, and checked against the scheme
//! rule (https only, http too for a pinned script).
//!
//! Layer: the download. It may import the proxy environment, `settings`,
//! `credentials`, `tags`, the state directory and the toolkit.

pub(crate) mod probe;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use url::Url;

use self::probe::Probe;
use crate::error::{Class, Error, Result};
use crate::net::classify::{status_class, trust_hint, ErrorFacts, StatusClass};
use crate::net::retry::{Failure, Tries};
use crate::net::{classify, http_client, read_timeout, retry, HttpClient, ProxyRoute, Redirects};
use crate::proxy::{Proxy, ProxyEnvironment};
use crate::state::create_private_file;
use crate::tags::agent::{redact_url, ScriptLocation, ScriptTag};
use crate::util::text::shown;

/// Longest time for the CONNECT probe after a failed tunnel.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed for one download; more is a loop.
pub(crate) const MAX_REDIRECTS: usize = 10;
/// What to do about a script host's certificate from an unknown CA.
const SCRIPT_CA_HINT: &str = "if a proxy intercepts TLS, pass its CA certificate with --ca-file";
/// The same for the proxy's own certificate (an https:// proxy).
const PROXY_CA_HINT: &str = "pass the proxy's CA certificate with --ca-file";

/// The proxy decision as the toolkit's client takes it: through the proxy,
/// with its credentials, unless the no-proxy list sends the host direct.
pub fn route_of(env: &ProxyEnvironment) -> Option<ProxyRoute> {
    let proxy = env.proxy.as_ref()?;
    let no_proxy = env.no_proxy.clone();
    Some(ProxyRoute {
        url: proxy.url.without_credentials(),
        authority: proxy.url.authority(),
        basic_auth: proxy
            .url
            .user
            .clone()
            .map(|user| (user, proxy.url.password.clone().unwrap_or_default())),
        bypass: Arc::new(move |host| no_proxy.matches(host)),
    })
}

/// One request of a download, after the redirects before it: its URL and
/// how it is reached.
#[derive(Debug, Clone)]
pub(crate) struct Hop<'a> {
    pub(crate) url: Url,
    /// The proxy it goes through; `None`: direct (the no-proxy list).
    pub(crate) proxy: Option<&'a Proxy>,
}

impl Hop<'_> {
    /// "proxy host:port" or "direct", for the report.
    pub(crate) fn route(&self) -> String {
        match self.proxy {
            Some(p) => format!("proxy {}", p.url.authority()),
            None => "direct".to_string(),
        }
    }

    /// The hop's host, as shown in messages.
    fn host(&self) -> String {
        shown(self.url.host_str().unwrap_or_default())
    }
}

/// Why [`get_following`] got no response to give.
#[derive(Debug)]
pub(crate) enum HopFailure<'a> {
    /// The request for this hop got no answer.
    Transport(Hop<'a>, reqwest::Error),
    /// A redirect that is not followed (65).
    Refused(Error),
}

/// A URL as messages and logs show it: no user, no query values
/// ([`redact_url`]), no hidden characters ([`shown`]); the one way a URL
/// reaches a message, a log line or the report from here.
pub(crate) fn show_url(url: &Url) -> String {
    shown(&redact_url(url))
}

/// GETs `url`, then each redirect's target in turn, as the client's
/// [`Redirects`] allow (at most [`MAX_REDIRECTS`]), each hop a request of its
/// own routed by `env` as a first request to it would be (see the module
/// doc). Returns the first answer that is not a redirect, and its hop.
pub(crate) async fn get_following<'a>(
    client: &HttpClient,
    env: &'a ProxyEnvironment,
    url: &Url,
) -> std::result::Result<(Hop<'a>, reqwest::Response), HopFailure<'a>> {
    let mut hop = Hop {
        url: url.clone(),
        proxy: env.route(url.host_str().unwrap_or_default()),
    };
    for followed in 0.. {
        let response = match client.get(hop.url.clone()).send().await {
            Ok(response) => response,
            Err(e) => return Err(HopFailure::Transport(hop, e)),
        };
        let status = response.status().as_u16();
        if client.redirects() == Redirects::Manual || !is_redirect(status) {
            return Ok((hop, response));
        }
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        let next = redirect_target(
            url,
            &hop.url,
            status,
            location,
            followed,
            client.redirects(),
        )
        .map_err(HopFailure::Refused)?;
        let proxy = env.route(next.host_str().unwrap_or_default());
        let next = Hop { url: next, proxy };
        tracing::info!(
            status,
            route = %next.route(),
            "{} redirects to {} ({status}); following it ({})",
            show_url(&hop.url),
            show_url(&next.url),
            next.route()
        );
        hop = next;
    }
    unreachable!("redirect_target ends the loop after MAX_REDIRECTS hops")
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where the redirect from `from` (after `followed` others, on the way from
/// `first`) leads, if `rule` lets it be followed. Pure, so every refusal has
/// a unit test.
fn redirect_target(
    first: &Url,
    from: &Url,
    status: u16,
    location: Option<&str>,
    followed: usize,
    rule: Redirects,
) -> Result<Url> {
    let script = show_url(first);
    let via = if followed == 0 {
        String::new()
    } else {
        format!(" (via {})", show_url(from))
    };
    let to = location
        .and_then(|location| from.join(location).ok())
        .ok_or_else(|| {
            Error::Input(format!(
                "the script {script}{via} answered {status} without a usable Location header: \
                 check the URL in the script tag"
            ))
        })?;
    let shown_to = show_url(&to);
    if followed >= MAX_REDIRECTS {
        return Err(Error::Input(format!(
            "the script {script} redirects more than {MAX_REDIRECTS} times (the last to \
             {shown_to}): check the URL in the script tag"
        )));
    }
    match (to.scheme(), rule) {
        ("https", _) | ("http", Redirects::AllowHttp) => Ok(to),
        ("http", _) => Err(Error::Input(format!(
            "the script {script}{via} redirects to {shown_to}, which is not https://: pin the \
             script's sha256 to allow http://"
        ))),
        _ => Err(Error::Input(format!(
            "the script {script}{via} redirects to {shown_to}, which is not https:// (nor \
             http://, which a pinned script may use): tagstrap follows no other scheme"
        ))),
    }
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
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
    pub(crate) sha256: [u8; 32],
    /// "proxy host:port", "direct" or "file".
    pub(crate) route: String,
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
            let what = format!("script {}", show_url(url));
            let route = Hop {
                url: url.clone(),
                proxy: env.route(url.host_str().unwrap_or_default()),
            }
            .route();
            tracing::info!(route = %route, "downloading {what} ({route})");
            let redirects = if script.sha256.is_some() {
                Redirects::AllowHttp
            } else {
                Redirects::HttpsOnly
            };
            let client = http_client(
                &options.tls,
                route_of(env),
                redirects,
                read_timeout(options.budget),
            )?;
            let attempt = Attempt {
                client: &client,
                url,
                env,
                tls: &options.tls,
                partial: &partial,
                max_bytes: options.max_bytes,
                budget: options.budget,
            };
            // The report's route is the last hop's: where the bytes came from.
            retry::retry(&what, options.budget, tries, |_| attempt.run()).await
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
    Ok(Downloaded {
        path,
        bytes,
        sha256,
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

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an answer that is not a success means, for `run` and `doctor`
/// alike: the one mapping from a status to an error (a proxy's own answer,
/// over plain http://, is named as the proxy's).
pub(crate) fn status_failure(
    hop: &Hop<'_>,
    class: StatusClass,
    status: u16,
    response: &reqwest::Response,
) -> Failure {
    let host = hop.host();
    let headers = response.headers();
    let reason = response.status().canonical_reason().unwrap_or("");
    // For plain http:// through a proxy the proxy answers in its own name;
    // Squid marks such answers with X-Squid-Error.
    let from_proxy = hop
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
            &format!("the request for {}", show_url(&hop.url)),
            &answer,
        );
    }
    let shown = show_url(&hop.url);
    let asked = format!("the script {shown}");
    let fail = |class, message| {
        Failure::Permanent(Error::status(
            class,
            status,
            asked.as_str(),
            host.as_str(),
            message,
        ))
    };
    match class {
        StatusClass::Transient => {
            Failure::busy(
                format!("{host} answered {status} {reason}"),
                classify::retry_after_header(headers),
            )
        }
        StatusClass::NotFound => fail(Class::NotFound, format!(
            "the script {shown} does not exist: {host} answered {status} {reason}. Check the URL in the script tag"
        )),
        StatusClass::Denied => fail(Class::Refused, format!(
            "{host} denied access to the script {shown} with {status} {reason}: the URL needs \
             credentials or a signature this instance does not have"
        )),
        StatusClass::ProxyAuth => fail(Class::Refused, format!(
            "{host} answered 407 although no proxy is used for it: is it a proxy?"
        )),
        StatusClass::Unexpected if status >= 500 => fail(Class::Unavailable, format!(
            "{host} answered {status} {reason} for the script {shown}, which is not worth retrying"
        )),
        StatusClass::Unexpected | StatusClass::Success => fail(Class::Input, format!(
            "{host} answered {status} {reason} for the script {shown}: check the URL in the script tag"
        )),
    }
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
    let shown = crate::util::text::shown_file_url(source);
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
    env: &'a ProxyEnvironment,
    tls: &'a Arc<rustls::ClientConfig>,
    partial: &'a Path,
    max_bytes: u64,
    budget: Duration,
}

impl Attempt<'_> {
    /// The script's size and sha256, and the route of the hop it came from.
    async fn run(&self) -> std::result::Result<((u64, [u8; 32]), String), Failure> {
        let (hop, response) = match get_following(self.client, self.env, self.url).await {
            Ok(answered) => answered,
            Err(HopFailure::Refused(error)) => return Err(Failure::Permanent(error)),
            Err(HopFailure::Transport(hop, e)) => {
                return Err(self.transport_failure(&hop, &e).await)
            }
        };
        let shown = show_url(&hop.url);
        let status = response.status().as_u16();
        match status_class(status) {
            StatusClass::Success => {}
            class => return Err(status_failure(&hop, class, status, &response)),
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
                            "the body from {} was cut short after {} bytes: {}",
                            hop.host(),
                            sink.written,
                            facts.detail
                        ),
                        None,
                    ));
                }
            }
        }
        Ok((sink.finish()?, hop.route()))
    }

    /// What a hop's request that got no response means.
    async fn transport_failure(&self, hop: &Hop<'_>, error: &reqwest::Error) -> Failure {
        let facts = ErrorFacts::of(error);
        let host = hop.host();
        if let Some(proxy) = hop.proxy {
            if facts.connect {
                if let Some(failure) = self.explain_with_probe(hop, proxy).await {
                    return failure;
                }
            }
        }
        if let Some(untrusted) = &facts.untrusted {
            return Failure::Permanent(Error::Refused(format!(
                "TLS verification of {host} failed: {}",
                trust_hint(untrusted, SCRIPT_CA_HINT)
            )));
        }
        if facts.garbled {
            // Over plain http:// through a proxy, the proxy is the one that
            // answered; through a tunnel (or direct), the script host.
            let who = match hop.proxy.filter(|_| hop.url.scheme() == "http") {
                Some(proxy) => format!("the proxy {}", proxy.url.authority()),
                None => host.clone(),
            };
            return Failure::busy(
                format!(
                    "{who} answered the request for {}, but not in HTTP ({})",
                    show_url(&hop.url),
                    facts.detail
                ),
                None,
            );
        }
        if facts.connect {
            let reason = match hop.proxy {
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

    /// Asks the proxy the CONNECT question of this hop again to learn its
    /// status. `None` when the tunnel itself works, so the failure lies
    /// beyond it.
    async fn explain_with_probe(&self, hop: &Hop<'_>, proxy: &Proxy) -> Option<Failure> {
        let authority = proxy.url.authority();
        if hop.url.scheme() != "https" {
            return Some(Failure::network_down(format!(
                "the proxy {authority} is not reachable"
            )));
        }
        let target = connect_target(&hop.url);
        match probe::connect(&proxy.url, &target, self.tls, PROBE_TIMEOUT).await {
            Probe::Answered(answer) if answer.status / 100 == 2 => None,
            probe => Some(probe_failure(proxy, &target, probe)),
        }
    }
}

/// `host:port` of a URL's host, as in a CONNECT line.
pub(crate) fn connect_target(url: &Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(addr)) => format!("[{addr}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    format!("{host}:{}", url.port_or_known_default().unwrap_or(443))
}

/// What a CONNECT to `target` that did not open a tunnel means.
pub(crate) fn probe_failure(proxy: &Proxy, target: &str, probe: Probe) -> Failure {
    let authority = proxy.url.authority();
    match probe {
        Probe::Answered(answer) => {
            proxy_answer_failure(proxy, &format!("CONNECT {target}"), &answer)
        }
        Probe::ProxyUnreachable(reason) => Failure::network_down(format!(
            "the proxy {authority} is not reachable ({reason}): not up yet, or no route to it"
        )),
        Probe::ProxyUntrusted(tls) => Failure::Permanent(Error::Refused(format!(
            "TLS verification of the proxy {authority} failed: {}",
            trust_hint(&tls, PROXY_CA_HINT)
        ))),
        // Something listens on the proxy's port and talks, but not HTTP: a
        // server failing (or not a proxy at all), so backoff, not the short
        // waits of a proxy that is not up yet.
        Probe::Garbled(what) => Failure::busy(
            format!(
                "the proxy {authority} answered CONNECT {target} with {what}: is {authority} \
                 an HTTP proxy?"
            ),
            None,
        ),
        Probe::Failed(reason) => Failure::network_down(format!("the proxy {authority}: {reason}")),
    }
}

/// What the proxy's own answer means: 407 and 403 are final (SPEC §5: 77);
/// 502/503/504 mean it cannot reach the host yet, which is retried like a
/// network that is still coming up.
/// `request` says what was asked, e.g. "CONNECT repo:443".
pub(crate) fn proxy_answer_failure(
    proxy: &Proxy,
    request: &str,
    answer: &probe::ConnectAnswer,
) -> Failure {
    let authority = proxy.url.authority();
    // The reason phrase and the headers are the proxy's words: shown, not raw.
    let status = format!("{} {}", answer.status, shown(&answer.reason));
    let squid = answer
        .squid_error
        .as_deref()
        .map(|e| format!(", {}", shown(e.split_whitespace().next().unwrap_or(e))))
        .unwrap_or_default();
    let fail = |class, message| {
        Failure::Permanent(Error::status(
            class,
            answer.status,
            request,
            &authority,
            message,
        ))
    };
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
                    shown(&answer.auth_schemes.join(", "))
                )
            } else {
                format!(
                    "the proxy {authority} answered 407 Proxy Authentication Required to {request}: \
                     it did not accept the credentials; {}",
                    proxy.what_to_check()
                )
            };
            fail(Class::Refused, message)
        }
        403 => fail(
            Class::Refused,
            format!(
                "the proxy {authority} refused {request} with {status}{squid}: its rules do \
             not allow this host and port; ask the proxy's administrators to allow it"
            ),
        ),
        502..=504 => Failure::network_down(format!(
            "the proxy {authority} answered {status}{squid} to {request}: it cannot \
             reach the script host (yet)"
        )),
        _ => fail(
            Class::Refused,
            format!("the proxy {authority} answered {status}{squid} to {request}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn redirects_follow_the_scheme_rule_within_limits() {
        let first = url("https://repo.test/i.sh?X-Amz-Signature=s3cr3t");
        let to = |location, rule| redirect_target(&first, &first, 302, Some(location), 0, rule);
        assert_eq!(
            to("https://cdn.test/i.sh", Redirects::HttpsOnly)
                .unwrap()
                .as_str(),
            "https://cdn.test/i.sh"
        );
        assert_eq!(
            to("/other.sh", Redirects::HttpsOnly).unwrap().as_str(),
            "https://repo.test/other.sh"
        );
        assert!(to("http://cdn.test/i.sh", Redirects::AllowHttp).is_ok());

        let plain = to("http://cdn.test/i.sh?sig=abc", Redirects::HttpsOnly).unwrap_err();
        assert_eq!(plain.exit_code(), 65);
        assert_eq!(
            plain.message(),
            "the script https://repo.test/i.sh?X-Amz-Signature=… redirects to \
             http://cdn.test/i.sh?sig=…, which is not https://: pin the script's sha256 to allow \
             http://"
        );
        for rule in [Redirects::HttpsOnly, Redirects::AllowHttp] {
            let other = to("ftp://cdn.test/i.sh", rule).unwrap_err();
            assert_eq!(other.exit_code(), 65);
            assert!(
                other.message().contains("follows no other scheme"),
                "{other}"
            );
        }

        let hop = url("https://cdn.test/x");
        let via = redirect_target(
            &first,
            &hop,
            301,
            Some("http://a.test/"),
            3,
            Redirects::HttpsOnly,
        )
        .unwrap_err();
        assert!(
            via.message()
                .contains("(via https://cdn.test/x) redirects to"),
            "{via}"
        );
        let looping = redirect_target(
            &first,
            &hop,
            302,
            Some("/x"),
            MAX_REDIRECTS,
            Redirects::AllowHttp,
        )
        .unwrap_err();
        assert_eq!(looping.exit_code(), 65);
        assert!(
            looping.message().contains("more than 10 times"),
            "{looping}"
        );
        let nowhere =
            redirect_target(&first, &hop, 302, None, 0, Redirects::HttpsOnly).unwrap_err();
        assert!(
            nowhere.message().contains("without a usable Location"),
            "{nowhere}"
        );
        for error in [plain, via, looping, nowhere] {
            assert!(!error.message().contains("s3cr3t"), "{error}");
        }
    }

    #[test]
    fn urls_in_messages_hide_query_values_and_hidden_characters() {
        // The query name as the URL writes it, still percent-encoded.
        let sneaky = url("https://repo.test/i.sh?a%0Ab=1");
        assert_eq!(show_url(&sneaky), "https://repo.test/i.sh?a%0Ab=…");
        let bidi = url("https://repo.test/i.sh?x=\u{202e}");
        assert_eq!(show_url(&bidi), "https://repo.test/i.sh?x=…");
    }

    #[test]
    fn a_proxy_answer_keeps_its_status_the_request_and_the_proxy() {
        let proxy = Proxy {
            url: crate::proxy::url::ProxyUrl::parse("proxy.corp:3128").unwrap(),
            source: crate::proxy::ProxySource::Environment("https_proxy"),
            credentials: crate::proxy::CredentialNames::default(),
        };
        for (status, code) in [(407, 77), (403, 77), (418, 77)] {
            let answer = probe::ConnectAnswer {
                status,
                reason: "No".into(),
                auth_schemes: Vec::new(),
                squid_error: None,
            };
            let Failure::Permanent(error) =
                proxy_answer_failure(&proxy, "CONNECT repo:443", &answer)
            else {
                panic!("{status} is final");
            };
            assert_eq!(error.exit_code(), code, "{error}");
            assert_eq!(
                error.status_fields(),
                Some((status, "CONNECT repo:443", "proxy.corp:3128")),
                "{error:?}"
            );
        }
        let busy = probe::ConnectAnswer {
            status: 503,
            reason: "Unavailable".into(),
            auth_schemes: Vec::new(),
            squid_error: None,
        };
        assert!(matches!(
            proxy_answer_failure(&proxy, "CONNECT repo:443", &busy),
            Failure::Transient(_)
        ));
    }
}
