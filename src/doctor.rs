//! `tagstrap doctor`: the run's steps one at a time, each printed as one
//! line, `ok` or what failed and how to fix it, so an operator on a boot
//! that went wrong sees which link broke. Each step is tried once, with
//! short timeouts: a diagnosis, not a boot. The exit code is the first
//! failure's (SPEC §5); a step that needs a failed one is skipped.
//!
//! 1. tags: found, and from where;
//! 2. credentials: the `cred:` references resolved from the store (and a
//!    warning when the store is reached over plain http:// by
//!    `insecure_http`);
//! 3. proxy: reachable over TCP;
//! 4. connect: the proxy's answer to `CONNECT host:443` (407 with the
//!    `Proxy-Authenticate` schemes named: a proxy that offers only NTLM or
//!    Negotiate is unsupported, not a wrong password);
//! 5. tls: the script host's certificate and its issuer (an untrusted issuer
//!    is how a TLS-intercepting proxy shows: `--ca-file`; an expired
//!    certificate or one for other names gets its own hint);
//! 6. script: the script URL's status, redirects followed as `run` follows
//!    them, without downloading it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use url::Url;

use crate::app::{collect_tags, prepare, require_script, Prepared};
use crate::error::{Error, Result};
use crate::fetch::probe::{self, Probe};
use crate::fetch::{self, HopFailure};
use crate::net::classify::{status_class, trust_hint, ErrorFacts, StatusClass};
use crate::net::retry::Failure;
use crate::net::{self, tls, x509, Redirects, CONNECT_TIMEOUT};
use crate::proxy::{Proxy, ProxyUrl};
use crate::settings::Settings;
use crate::tags::agent::{redact_url, AgentTags, Platform, ScriptLocation, ScriptTag};

/// Longest wait for a CONNECT answer, a TLS handshake or a status line.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The lines printed so far, and the first failure.
struct Steps {
    first: Option<Error>,
}

impl Steps {
    fn ok(&self, step: &str, what: impl AsRef<str>) {
        println!("ok    {step:<12} {}", what.as_ref());
    }

    fn fail(&mut self, step: &str, error: Error) {
        println!("FAIL  {step:<12} {}", error.message());
        self.first.get_or_insert(error);
    }

    /// Not a failure, but something the operator should act on.
    fn warn(&self, step: &str, what: &str) {
        println!("warn  {step:<12} {what}");
    }

    fn skip(&self, step: &str, why: &str) {
        println!("skip  {step:<12} ({why})");
    }
}

pub async fn doctor(settings: &Settings) -> Result<()> {
    let mut steps = Steps { first: None };
    let all = ["credentials", "proxy", "connect", "tls", "script"];

    // 1. Tags.
    let collected = match collect_tags(settings).await {
        Ok(collected) => collected,
        Err(e) => {
            steps.fail("tags", e);
            all.iter().for_each(|s| steps.skip(s, "needs the tags"));
            return finish(steps);
        }
    };
    let agent = match AgentTags::from_tags(&collected.tags, Platform::current()) {
        Ok(agent) => agent,
        Err(e) => {
            steps.fail("tags", e);
            all.iter().for_each(|s| steps.skip(s, "needs the tags"));
            return finish(steps);
        }
    };
    let count = collected.tags.entries().count();
    let from = if collected.sources.is_empty() {
        "nowhere".to_string()
    } else {
        collected.sources.join(", ")
    };
    steps.ok("tags", format!("{count} rs_agent: tags from {from}"));
    let script = match require_script(&agent, &collected) {
        Ok(script) => Some(script.clone()),
        Err(e) => {
            steps.fail("tags", e);
            None
        }
    };

    // 2. Credentials (and the proxy environment they complete).
    let prepared = match prepare(settings, &collected.tags).await {
        Ok(prepared) => {
            let names = prepared.env.credential_refs();
            match (&prepared.store, names.is_empty()) {
                (Some(store), false) => {
                    // Allowed, so not a failure, but the line says it.
                    let in_clear = crate::credentials::open::in_clear(&settings.store)
                        .map(|warning| format!("; WARNING: {warning}"))
                        .unwrap_or_default();
                    steps.ok(
                        "credentials",
                        format!("{} resolved from {store}{in_clear}", names.join(" and ")),
                    )
                }
                _ => steps.ok("credentials", "none needed: no tag names a credential"),
            }
            if prepared.env.proxy.is_some() {
                steps.ok("no_proxy", prepared.env.no_proxy.env_value());
            }
            for warning in prepared.env.no_proxy_warnings() {
                steps.warn("no_proxy", &crate::util::text::shown(&warning.message));
            }
            Some(prepared)
        }
        Err(e) => {
            steps.fail("credentials", e);
            None
        }
    };

    // 3. The proxy over TCP: its address is known even when its password
    // is not.
    let proxy_url: Option<ProxyUrl> = match &prepared {
        Some(p) => p.env.proxy.as_ref().map(|proxy| proxy.url.clone()),
        None => agent.proxy.as_ref().map(|p| p.url.clone()),
    };
    let reachable = match &proxy_url {
        None => {
            steps.ok("proxy", "none: every connection is direct");
            true
        }
        Some(url) => match tcp_check(url).await {
            Ok(took) => {
                steps.ok(
                    "proxy",
                    format!(
                        "{} accepts TCP connections ({:.1} ms)",
                        url.authority(),
                        took.as_secs_f64() * 1e3
                    ),
                );
                true
            }
            Err(e) => {
                steps.fail("proxy", e);
                false
            }
        },
    };

    let (Some(prepared), Some(script)) = (prepared, script) else {
        for step in ["connect", "tls", "script"] {
            steps.skip(step, "needs the credentials and a script tag");
        }
        return finish(steps);
    };
    if !reachable {
        for step in ["connect", "tls", "script"] {
            steps.skip(step, "needs the proxy");
        }
        return finish(steps);
    }
    let url = match &script.location {
        ScriptLocation::File(path) => {
            steps.skip("connect", "the script is a local file");
            steps.skip("tls", "the script is a local file");
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => steps.ok(
                    "script",
                    format!(
                        "file://{} is on this image ({} bytes)",
                        path.display(),
                        m.len()
                    ),
                ),
                _ => steps.fail(
                    "script",
                    Error::NotFound(format!(
                        "the script file://{} does not exist on this image",
                        path.display()
                    )),
                ),
            }
            return finish(steps);
        }
        ScriptLocation::Remote(url) => url.clone(),
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let route = prepared.env.route(&host).cloned();

    // 4. CONNECT, and 5. TLS over the tunnel (or directly).
    if url.scheme() != "https" {
        steps.skip("connect", "the script URL is http://: no tunnel");
        steps.skip("tls", "the script URL is http://");
    } else {
        let target = fetch::connect_target(&url);
        let stream: Option<Box<dyn probe::Stream>> = match &route {
            Some(proxy) => {
                match probe::tunnel(&proxy.url, &target, &prepared.tls, STEP_TIMEOUT).await {
                    Ok(stream) => {
                        steps.ok(
                            "connect",
                            format!(
                                "the proxy {} opened a tunnel to {target}",
                                proxy.url.authority()
                            ),
                        );
                        Some(stream)
                    }
                    Err(probe) => {
                        steps.fail("connect", connect_error(proxy, &target, probe));
                        None
                    }
                }
            }
            None => {
                steps.skip("connect", &format!("{host} is reached directly (no_proxy)"));
                match TcpStream::connect(&target).await {
                    Ok(tcp) => Some(Box::new(tcp)),
                    Err(e) => {
                        steps.fail(
                            "tls",
                            Error::Unavailable(format!("cannot connect to {target}: {e}")),
                        );
                        None
                    }
                }
            }
        };
        let Some(stream) = stream else {
            if route.is_some() {
                steps.skip("tls", "needs the tunnel");
            }
            steps.skip("script", "needs the connection to the script host");
            return finish(steps);
        };
        match tls_check(stream, &host, &prepared.extra_roots).await {
            Ok(line) => steps.ok("tls", line),
            Err(e) => {
                steps.fail("tls", e);
                steps.skip("script", "needs TLS to the script host");
                return finish(steps);
            }
        }
    }

    // 6. The script URL's status.
    match status_check(&script, &url, &prepared).await {
        Ok(line) => steps.ok("script", line),
        Err(e) => steps.fail("script", e),
    }
    finish(steps)
}

fn finish(steps: Steps) -> Result<()> {
    match steps.first {
        None => Ok(()),
        Some(error) => Err(error),
    }
}

async fn tcp_check(url: &ProxyUrl) -> Result<Duration> {
    let started = Instant::now();
    let authority = url.authority();
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((url.host.as_str(), url.port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(Error::Unavailable(format!(
                "nothing listens on {authority} (connection refused): is the proxy up, and is \
                 the port in rs_agent:http_proxy right?"
            )))
        }
        Ok(Err(e)) => Err(Error::Unavailable(format!(
            "cannot connect to the proxy {authority}: {e}. Check the host name and the route to it"
        ))),
        Err(_) => Err(Error::Unavailable(format!(
            "the proxy {authority} did not accept a connection within {} s: a firewall dropping \
             packets, or a wrong address",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// What a failed tunnel means, in the words `run` uses.
fn connect_error(proxy: &Proxy, target: &str, probe: Probe) -> Error {
    match fetch::probe_failure(proxy, target, probe) {
        Failure::Permanent(error) => error,
        Failure::Transient(t) => Error::Unavailable(t.reason),
    }
}

/// A TLS handshake with the script host over `stream`, naming the issuer of
/// the certificate it presents, trusted or not.
async fn tls_check(
    stream: Box<dyn probe::Stream>,
    host: &str,
    extra: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<String> {
    let (config, seen) = tls::inspecting_config(extra)?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::Input(format!("{host} is not a valid TLS server name")))?;
    let handshake = tokio_rustls::TlsConnector::from(Arc::clone(&config)).connect(name, stream);
    let outcome = tokio::time::timeout(STEP_TIMEOUT, handshake).await;
    let issuer = seen
        .get()
        .and_then(|der| x509::issuer(&der))
        .unwrap_or_else(|| "an issuer that cannot be read".to_string());
    match outcome {
        Ok(Ok(_)) => Ok(format!(
            "{host} presents a trusted certificate issued by {issuer}"
        )),
        Ok(Err(e)) => Err(match net::classify::untrusted_handshake(&e) {
            Some(why) => Error::Refused(format!(
                "{host} presents a certificate issued by {issuer}: {}",
                trust_hint(
                    why,
                    "if that is your proxy's CA (a TLS-intercepting proxy), pass its \
                     certificate with --ca-file"
                )
            )),
            None => Error::Unavailable(format!("TLS with {host} failed: {e}")),
        }),
        Err(_) => Err(Error::Unavailable(format!(
            "{host} did not complete a TLS handshake within {} s",
            STEP_TIMEOUT.as_secs()
        ))),
    }
}

/// The script URL's status through the same route `run` takes, redirects
/// followed hop by hop as `run` follows them; the body is not read.
async fn status_check(script: &ScriptTag, url: &Url, prepared: &Prepared) -> Result<String> {
    let shown = redact_url(url);
    let redirects = if script.sha256.is_some() {
        Redirects::AllowHttp
    } else {
        Redirects::HttpsOnly
    };
    let client = net::http_client(
        &prepared.tls,
        fetch::route_of(&prepared.env),
        redirects,
        STEP_TIMEOUT,
    )?;
    let followed = fetch::get_following(&client, &prepared.env, url);
    let (hop, response) = match tokio::time::timeout(STEP_TIMEOUT, followed).await {
        Err(_) => {
            return Err(Error::Unavailable(format!(
                "{shown} did not answer within {} s",
                STEP_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(HopFailure::Refused(error))) => return Err(error),
        Ok(Err(HopFailure::Transport(hop, e))) => {
            let facts = ErrorFacts::of(&e);
            let at = fetch::show_url(&hop.url);
            return Err(match &facts.untrusted {
                Some(why) => Error::Refused(format!(
                    "TLS verification of {} failed: {}",
                    crate::util::text::shown(hop.url.host_str().unwrap_or_default()),
                    trust_hint(
                        why,
                        "if a proxy intercepts TLS, pass its CA certificate with --ca-file"
                    )
                )),
                None => {
                    Error::Unavailable(format!("the request for {at} failed: {}", facts.detail))
                }
            });
        }
        Ok(Ok(answered)) => answered,
    };
    // Where the answer came from, when a redirect led elsewhere.
    let shown = if hop.url == *url {
        shown
    } else {
        format!("{shown} (redirected to {})", fetch::show_url(&hop.url))
    };
    let status = response.status();
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("");
    let size = response
        .content_length()
        .map(|n| format!(", {n} bytes"))
        .unwrap_or_default();
    match status_class(code) {
        StatusClass::Success => Ok(format!("{shown} answers {code} {reason}{size}")),
        StatusClass::NotFound => Err(Error::NotFound(format!(
            "{shown} answers {code} {reason}: check the URL in the script tag"
        ))),
        StatusClass::Denied => Err(Error::Refused(format!(
            "{shown} answers {code} {reason}: the URL needs credentials or a signature this \
             instance does not have"
        ))),
        StatusClass::Transient => Err(Error::Unavailable(format!(
            "{shown} answers {code} {reason} now: `run` would retry it until the deadline"
        ))),
        StatusClass::ProxyAuth | StatusClass::Unexpected => Err(Error::Unavailable(format!(
            "{shown} answers {code} {reason}"
        ))),
    }
}
