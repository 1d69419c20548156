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
//!
//! The steps are one table, `STEPS`: a name, what the step needs from the
//! ones before it (`Need`), and its function. One runner, [`doctor`],
//! skips a step whose need is unmet, naming the need, and prints what the
//! others say. The script steps take the route `run` takes
//! ([`ProxyEnvironment::route`](crate::proxy::ProxyEnvironment::route)): when
//! the script host matches the no-proxy list (or the script is a local
//! file), `run` never touches the proxy for it, so neither do they, and a
//! proxy that does not answer is a warning rather than the failure (the
//! script's own tools still use it for every other host).
//!
//! A status that is not a success means what it means to `run`:
//! `fetch::status_failure` is the one mapping.
//!
//! Layer: commands. It uses the pipeline's stages (tags, credentials and
//! proxy environment, the script tag) and every layer below them; nothing
//! of `run`'s.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use url::Url;

use crate::error::{Error, Result};
use crate::fetch::probe::{self, Probe};
use crate::fetch::{self, HopFailure};
use crate::net::classify::{status_class, trust_hint, ErrorFacts, StatusClass};
use crate::net::retry::Failure;
use crate::net::{self, tls, x509, Redirects, CONNECT_TIMEOUT};
use crate::pipeline::{collect_tags, prepare, require_script, Collected, Prepared};
use crate::proxy::{Proxy, ProxyUrl};
use crate::settings::Settings;
use crate::tags::agent::{redact_url, AgentTags, Platform, ScriptLocation, ScriptTag};
use crate::util::text::shown;

/// Longest wait for a CONNECT answer, a TLS handshake or a status line.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// One step: its name, what it needs from the steps before it (the first
/// unmet need is the reason it is skipped), and what it does.
struct Step {
    name: &'static str,
    needs: &'static [Need],
    check: Check,
}

/// A step's function: it reads what earlier steps found, adds what it finds,
/// and returns its lines (usually one; the tags and credentials steps say a
/// little more).
type Check = for<'a> fn(&'a Settings, &'a mut Found) -> Pin<Box<dyn Future<Output = Said> + 'a>>;

/// The run's steps, in the run's order.
const STEPS: &[Step] = &[
    Step {
        name: "tags",
        needs: &[],
        check: |settings, found| Box::pin(check_tags(settings, found)),
    },
    Step {
        name: "credentials",
        needs: &[Need::Tags],
        check: |settings, found| Box::pin(check_credentials(settings, found)),
    },
    Step {
        name: "proxy",
        needs: &[Need::Tags],
        check: |_, found| Box::pin(check_proxy(found)),
    },
    Step {
        name: "connect",
        needs: &[Need::Tags, Need::Prepared, Need::Proxy],
        check: |_, found| Box::pin(check_connect(found)),
    },
    Step {
        name: "tls",
        needs: &[Need::Tags, Need::Prepared, Need::Proxy, Need::Tunnel],
        check: |_, found| Box::pin(check_tls(found)),
    },
    Step {
        name: "script",
        needs: &[
            Need::Tags,
            Need::Prepared,
            Need::Proxy,
            Need::Connection,
            Need::Tls,
        ],
        check: |_, found| Box::pin(check_script(found)),
    },
];

/// What a step can need from the ones before it.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// The tags, read and valid.
    Tags,
    /// The proxy environment (so the credentials) and a script tag.
    Prepared,
    /// The proxy, when the script is fetched through it.
    Proxy,
    /// The tunnel, when the script is fetched through the proxy.
    Tunnel,
    /// A connection to the script host, through the proxy or direct.
    Connection,
    /// A TLS session with the script host, for an https:// script.
    Tls,
}

impl Need {
    fn met(self, found: &Found) -> bool {
        match self {
            Need::Tags => found.agent.is_some(),
            Need::Prepared => found.prepared.is_some() && found.script.is_some(),
            Need::Proxy => !found.proxy_down,
            Need::Tunnel => !found.tunnel_failed,
            Need::Connection => !found.unconnected,
            Need::Tls => !found.tls_failed,
        }
    }

    /// The skip line's reason.
    fn why(self) -> &'static str {
        match self {
            Need::Tags => "needs the tags",
            Need::Prepared => "needs the credentials and a script tag",
            Need::Proxy => "needs the proxy",
            Need::Tunnel => "needs the tunnel",
            Need::Connection => "needs the connection to the script host",
            Need::Tls => "needs TLS to the script host",
        }
    }
}

/// What the steps so far found, for the steps after them.
#[derive(Default)]
struct Found {
    collected: Option<Collected>,
    agent: Option<AgentTags>,
    script: Option<ScriptTag>,
    prepared: Option<Prepared>,
    /// The proxy the script is fetched through did not accept TCP.
    proxy_down: bool,
    /// The tunnel the connect step opened, for the tls step.
    tunnel: Option<Box<dyn probe::Stream>>,
    tunnel_failed: bool,
    /// No connection to the script host: the tunnel or the direct TCP
    /// connection failed.
    unconnected: bool,
    tls_failed: bool,
}

/// Where the script comes from, as far as the steps have found it.
enum Target<'a> {
    File(&'a Path),
    Remote {
        script: &'a ScriptTag,
        url: &'a Url,
        host: &'a str,
        prepared: &'a Prepared,
        /// The proxy `run` fetches it through; `None`: direct.
        route: Option<&'a Proxy>,
    },
}

impl Found {
    /// `None` until the tags and credentials steps have both succeeded.
    fn target(&self) -> Option<Target<'_>> {
        let prepared = self.prepared.as_ref()?;
        let script = self.script.as_ref()?;
        Some(match &script.location {
            ScriptLocation::File(path) => Target::File(path),
            ScriptLocation::Remote(url) => {
                let host = url.host_str().unwrap_or_default();
                Target::Remote {
                    script,
                    url,
                    host,
                    prepared,
                    route: prepared.env.route(host),
                }
            }
        })
    }

    /// Why `run` would not use the proxy for the script, when that is known:
    /// a local file needs no route; a remote script needs the proxy
    /// environment, so with the credentials unresolved the route is unknown
    /// and the proxy counts as needed, as `run` would stop there anyway.
    fn bypass(&self) -> Option<String> {
        if let ScriptLocation::File(_) = self.script.as_ref()?.location {
            return Some("the script is a local file".to_string());
        }
        match self.target()? {
            Target::Remote {
                host, route: None, ..
            } => Some(direct(host)),
            _ => None,
        }
    }
}

fn direct(host: &str) -> String {
    format!("{} is reached directly (no_proxy)", shown(host))
}

/// A step's lines.
type Said = Vec<Line>;

struct Line {
    step: &'static str,
    mark: Mark,
}

enum Mark {
    Ok(String),
    /// Not a failure, but something the operator should act on.
    Warn(String),
    Skip(String),
    Fail(Error),
}

fn ok(step: &'static str, what: impl Into<String>) -> Line {
    let mark = Mark::Ok(what.into());
    Line { step, mark }
}

fn warn(step: &'static str, what: impl Into<String>) -> Line {
    let mark = Mark::Warn(what.into());
    Line { step, mark }
}

fn skip(step: &'static str, why: impl Into<String>) -> Line {
    let mark = Mark::Skip(why.into());
    Line { step, mark }
}

fn fail(step: &'static str, error: Error) -> Line {
    let mark = Mark::Fail(error);
    Line { step, mark }
}

/// The runner: each step of `STEPS` in turn, skipped when a need is
/// unmet; the exit code is the first failure's.
pub(super) async fn doctor(settings: &Settings) -> Result<()> {
    let mut found = Found::default();
    let mut first = None;
    for step in STEPS {
        let said = match step.needs.iter().find(|need| !need.met(&found)) {
            Some(need) => vec![skip(step.name, need.why())],
            None => (step.check)(settings, &mut found).await,
        };
        for line in said {
            let step = line.step;
            match line.mark {
                Mark::Ok(what) => println!("ok    {step:<12} {what}"),
                Mark::Warn(what) => println!("warn  {step:<12} {what}"),
                Mark::Skip(why) => println!("skip  {step:<12} ({why})"),
                Mark::Fail(error) => {
                    println!("FAIL  {step:<12} {}", error.message());
                    first.get_or_insert(error);
                }
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// Step 1: the tags, and the script tag among them.
async fn check_tags(settings: &Settings, found: &mut Found) -> Said {
    let collected = match collect_tags(settings).await {
        Ok(collected) => collected,
        Err(e) => return vec![fail("tags", e)],
    };
    let agent = match AgentTags::from_tags(&collected.tags, Platform::current()) {
        Ok(agent) => agent,
        Err(e) => return vec![fail("tags", e)],
    };
    let count = collected.tags.entries().count();
    let from = if collected.sources.is_empty() {
        "nowhere".to_string()
    } else {
        collected.sources.join(", ")
    };
    let mut said = vec![ok("tags", format!("{count} rs_agent: tags from {from}"))];
    match require_script(&agent, &collected) {
        Ok(script) => found.script = Some(script.clone()),
        Err(e) => said.push(fail("tags", e)),
    }
    found.agent = Some(agent);
    found.collected = Some(collected);
    said
}

/// Step 2: the credentials, and the proxy environment they complete.
async fn check_credentials(settings: &Settings, found: &mut Found) -> Said {
    let Some(collected) = &found.collected else {
        return vec![skip("credentials", Need::Tags.why())];
    };
    let prepared = match prepare(settings, &collected.tags).await {
        Ok(prepared) => prepared,
        Err(e) => return vec![fail("credentials", e)],
    };
    let names = prepared.env.credential_refs();
    let mut said = vec![match (&prepared.store, names.is_empty()) {
        (Some(store), false) => {
            // Allowed, so not a failure, but the line says it.
            let in_clear = crate::credentials::open::in_clear(&settings.store)
                .map(|warning| format!("; WARNING: {warning}"))
                .unwrap_or_default();
            let names = names.join(" and ");
            ok(
                "credentials",
                format!("{names} resolved from {store}{in_clear}"),
            )
        }
        _ => ok("credentials", "none needed: no tag names a credential"),
    }];
    if prepared.env.proxy.is_some() {
        said.push(ok("no_proxy", prepared.env.no_proxy.env_value()));
    }
    for warning in prepared.env.no_proxy_warnings() {
        said.push(warn("no_proxy", shown(&warning.message)));
    }
    found.prepared = Some(prepared);
    said
}

/// Step 3: the proxy over TCP (its address is known even when its password
/// is not); a failure only when the script is fetched through it.
async fn check_proxy(found: &mut Found) -> Said {
    let url: Option<ProxyUrl> = match &found.prepared {
        Some(p) => p.env.proxy.as_ref().map(|proxy| proxy.url.clone()),
        None => found
            .agent
            .as_ref()
            .and_then(|a| a.proxy.as_ref())
            .map(|p| p.url.clone()),
    };
    let Some(url) = url else {
        return vec![ok("proxy", "none: every connection is direct")];
    };
    let error = match tcp_check(&url).await {
        Ok(took) => {
            let ms = took.as_secs_f64() * 1e3;
            let authority = url.authority();
            return vec![ok(
                "proxy",
                format!("{authority} accepts TCP connections ({ms:.1} ms)"),
            )];
        }
        Err(error) => error,
    };
    match found.bypass() {
        Some(why) => vec![warn(
            "proxy",
            format!(
                "{} (not a failure: {why}, but the script's own tools will use the proxy for \
                 every host outside no_proxy)",
                error.message()
            ),
        )],
        None => {
            found.proxy_down = true;
            vec![fail("proxy", error)]
        }
    }
}

/// Step 4: CONNECT through the proxy, when the script is fetched through it.
async fn check_connect(found: &mut Found) -> Said {
    let (url, prepared, proxy) = match found.target() {
        None => return vec![skip("connect", Need::Prepared.why())],
        Some(Target::File(_)) => return vec![skip("connect", "the script is a local file")],
        Some(Target::Remote { url, .. }) if url.scheme() != "https" => {
            return vec![skip("connect", "the script URL is http://: no tunnel")]
        }
        Some(Target::Remote {
            host, route: None, ..
        }) => return vec![skip("connect", direct(host))],
        Some(Target::Remote {
            url,
            prepared,
            route: Some(proxy),
            ..
        }) => (url, prepared, proxy),
    };
    let target = fetch::connect_target(url);
    let outcome = match probe::tunnel(&proxy.url, &target, &prepared.tls, STEP_TIMEOUT).await {
        Ok(stream) => Ok((stream, proxy.url.authority())),
        Err(probe) => Err(connect_error(proxy, &target, probe)),
    };
    match outcome {
        Ok((stream, authority)) => {
            found.tunnel = Some(stream);
            let line = format!("the proxy {authority} opened a tunnel to {target}");
            vec![ok("connect", line)]
        }
        Err(error) => {
            found.tunnel_failed = true;
            found.unconnected = true;
            vec![fail("connect", error)]
        }
    }
}

/// Step 5: TLS with the script host, over the tunnel or directly.
async fn check_tls(found: &mut Found) -> Said {
    let (url, host, extra, why_direct) = match found.target() {
        None => return vec![skip("tls", Need::Prepared.why())],
        Some(Target::File(_)) => return vec![skip("tls", "the script is a local file")],
        Some(Target::Remote { url, .. }) if url.scheme() != "https" => {
            return vec![skip("tls", "the script URL is http://")]
        }
        Some(Target::Remote {
            url,
            host,
            prepared,
            ..
        }) => (
            url.clone(),
            host.to_string(),
            prepared.extra_roots.clone(),
            // Why the route is direct, for a failure to say so.
            match prepared.env.proxy {
                Some(_) => "no_proxy",
                None => "no proxy is set",
            },
        ),
    };
    // The connect step left a tunnel when the route is the proxy; without
    // one the route is direct.
    let stream = match found.tunnel.take() {
        Some(tunnel) => tunnel,
        None => match direct_tcp(&fetch::connect_target(&url), why_direct).await {
            Ok(tcp) => Box::new(tcp),
            Err(error) => {
                found.unconnected = true;
                return vec![fail("tls", error)];
            }
        },
    };
    match tls_check(stream, &host, &extra).await {
        Ok(line) => vec![ok("tls", line)],
        Err(error) => {
            found.tls_failed = true;
            vec![fail("tls", error)]
        }
    }
}

/// Step 6: the script: on the image, or the URL's status.
async fn check_script(found: &mut Found) -> Said {
    match found.target() {
        None => vec![skip("script", Need::Prepared.why())],
        Some(Target::File(path)) => vec![match std::fs::metadata(path) {
            Ok(m) if m.is_file() => ok(
                "script",
                format!(
                    "{} is on this image ({} bytes)",
                    crate::util::text::shown_file_url(path),
                    m.len()
                ),
            ),
            _ => fail(
                "script",
                Error::NotFound(format!(
                    "the script file://{} does not exist on this image",
                    path.display()
                )),
            ),
        }],
        Some(Target::Remote {
            script,
            url,
            prepared,
            ..
        }) => vec![match status_check(script, url, prepared).await {
            Ok(line) => ok("script", line),
            Err(error) => fail("script", error),
        }],
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

/// A TCP connection to the script host itself (the route is direct), with
/// the connect timeout `run` uses: a host that drops packets is a diagnosis,
/// not a two-minute wait for the kernel to give up. A failure says it was
/// direct, and `why` (so an operator who expected the proxy sees why not).
async fn direct_tcp(target: &str, why: &str) -> Result<TcpStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(e)) => Err(Error::Unavailable(format!(
            "cannot connect to {target} directly ({why}): {e}"
        ))),
        Err(_) => Err(Error::Unavailable(format!(
            "cannot connect to {target} directly ({why}): no answer within {} s",
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
/// followed hop by hop as `run` follows them; the body is not read. What a
/// status other than success means is `run`'s `fetch::status_failure`.
async fn status_check(script: &ScriptTag, url: &Url, prepared: &Prepared) -> Result<String> {
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
                "{} did not answer within {} s",
                redact_url(url),
                STEP_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(HopFailure::Refused(error))) => return Err(error),
        Ok(Err(HopFailure::Transport(hop, e))) => return Err(transport_error(&hop.url, &e)),
        Ok(Ok(answered)) => answered,
    };
    // Where the answer came from, when a redirect led elsewhere.
    let shown_url = if hop.url == *url {
        redact_url(url)
    } else {
        format!(
            "{} (redirected to {})",
            redact_url(url),
            fetch::show_url(&hop.url)
        )
    };
    let status = response.status();
    let code = status.as_u16();
    match status_class(code) {
        StatusClass::Success => {
            let reason = status.canonical_reason().unwrap_or("");
            let size = response
                .content_length()
                .map(|n| format!(", {n} bytes"))
                .unwrap_or_default();
            Ok(format!("{shown_url} answers {code} {reason}{size}"))
        }
        class => Err(match fetch::status_failure(&hop, class, code, &response) {
            Failure::Permanent(error) => error,
            Failure::Transient(t) => Error::Unavailable(format!(
                "{} for {shown_url} now: `run` would retry it until the deadline",
                t.reason
            )),
        }),
    }
}

/// A request that got no answer: an untrusted certificate gets the hint,
/// anything else is unavailable.
fn transport_error(at: &Url, e: &reqwest::Error) -> Error {
    let facts = ErrorFacts::of(e);
    match &facts.untrusted {
        Some(why) => Error::Refused(format!(
            "TLS verification of {} failed: {}",
            shown(at.host_str().unwrap_or_default()),
            trust_hint(
                why,
                "if a proxy intercepts TLS, pass its CA certificate with --ca-file"
            )
        )),
        None => Error::Unavailable(format!(
            "the request for {} failed: {}",
            fetch::show_url(at),
            facts.detail
        )),
    }
}
