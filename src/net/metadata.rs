//! The HTTP side every metadata source shares: a direct client (no proxy, no
//! redirects), one request at a time with its own short timeout, transient
//! statuses turned into retries, and answers read into memory with a cap.
//! What a non-transient status means is each cloud's own business.
//!
//! It sits in the toolkit, below both `tags` (each cloud's source reads the
//! instance's tags with it) and `credentials` (a store that opens with the
//! instance's own identity asks the same service for it).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::header::HeaderMap;
use reqwest::Method;
use url::Url;

use crate::error::{Class, Error, Result};
use crate::net::classify::{retry_after_header, status_class, StatusClass};
use crate::net::direct::{self, Peer};
use crate::net::retry::{self, Failure, Tries};
use crate::net::{http_client, HttpClient, Redirects};
use crate::util::text::shown;

/// Longest wait for one metadata answer. The service sits on the host's
/// hypervisor and answers in milliseconds; one that takes longer is not up
/// yet, or (AWS) its answer is being dropped by a hop limit, and a fresh try
/// is worth more than a long wait.
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read. GCE's attribute values, the largest of all, are
/// capped at 256 KiB by Google.
pub(crate) const MAX_ANSWER_BYTES: usize = 512 * 1024;

/// What is percent-encoded in one path segment: WHATWG's path-segment set
/// (controls, space, `"#<>?`{}`, `/`), and `%` itself, so that a key is
/// asked for exactly as the listing wrote it.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%');

/// How much of an error body's first line a message quotes.
const SAID_CHARS: usize = 200;

/// The words of the failure when a request timed out, for a source that
/// knows what that means on its cloud.
pub(crate) const NO_ANSWER: &str = "did not answer within";

/// The standard link-local address every one of these clouds serves its
/// metadata on. An address, not a name: DNS may not be up yet at boot.
pub(crate) const LINK_LOCAL_ENDPOINT: &str = "http://169.254.169.254";

/// "the aws metadata service at http://169.254.169.254": how messages name
/// a service, from the parsers as from the client.
pub(crate) fn describe(cloud: &str, from: &str) -> String {
    format!("the {cloud} metadata service at {}", shown(from))
}

/// A metadata service at one base URL.
pub(crate) struct MetadataClient {
    cloud: &'static str,
    base: Url,
    http: HttpClient,
    deadline: Duration,
    /// What it is asked for, when that is not the instance's tags: said in
    /// the line a read that gives up ends with ([`MetadataClient::asked_for`]).
    purpose: Option<&'static str>,
}

/// A non-transient answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    /// The path asked for, for messages.
    pub(crate) path: String,
}

impl MetadataClient {
    /// `endpoint` (from `--metadata-endpoint`) or the cloud's default. The
    /// client never uses a proxy: it is built without one, and reqwest's own
    /// reading of `http_proxy` is switched off in [`http_client`].
    pub(crate) fn new(
        cloud: &'static str,
        endpoint: Option<&Url>,
        default: &str,
        tls: &Arc<rustls::ClientConfig>,
        deadline: Duration,
    ) -> Result<MetadataClient> {
        let mut base = match endpoint {
            Some(url) => url.clone(),
            None => Url::parse(default).expect("the default endpoints are valid URLs"),
        };
        // A base with a path keeps it: requests go below it.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.set_query(None);
        Ok(MetadataClient {
            cloud,
            base,
            http: http_client(tls, None, Redirects::Manual, METADATA_TIMEOUT)?,
            deadline,
            purpose: None,
        })
    }

    /// The same client, saying in the line of a read that gives up what the
    /// service was asked for (e.g. "the instance's identity, to open the
    /// credential store"): with `--source none`, an operator would not
    /// otherwise know why tagstrap asked it at all.
    pub(crate) fn asked_for(mut self, purpose: &'static str) -> MetadataClient {
        self.purpose = Some(purpose);
        self
    }

    /// Runs a whole read with the retry engine until the deadline, and says
    /// how the tries went.
    pub(crate) async fn read<T, F, Fut>(&self, mut attempt: F) -> Result<(T, Tries)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, Failure>>,
    {
        let mut tries = Tries::default();
        let what = match self.purpose {
            Some(purpose) => format!("{}, asked for {purpose}", self.describe()),
            None => self.describe(),
        };
        let value = retry::retry(&what, self.deadline, &mut tries, |_| attempt()).await?;
        Ok((value, tries))
    }

    /// The base, as shown in messages: scheme, host and port.
    pub(crate) fn shown(&self) -> &str {
        let end = self.base[..url::Position::AfterPort].len();
        &self.base.as_str()[..end]
    }

    /// "the aws metadata service at http://169.254.169.254".
    pub(crate) fn describe(&self) -> String {
        describe(self.cloud, self.shown())
    }

    /// `path` (relative, e.g. "latest/meta-data/instance-id") below the base,
    /// then each of `segments` as one percent-encoded path segment (a tag key
    /// holds `:`, which must not be read as a scheme).
    pub(crate) fn url(&self, path: &str, segments: &[&str], query: Option<&str>) -> Url {
        let mut url = self
            .base
            .join(path)
            .expect("relative paths join onto an http(s) base");
        if !segments.is_empty() {
            // Encoded here and set as a path, not pushed as segments: the
            // URL parser drops a tab, CR or LF from a segment it is given,
            // so an AWS key "rs_agent:ty\tpe" would be asked for as
            // "rs_agent:type", another tag (found end to end,
            // tests/hostile_metadata.rs). `set_path` keeps `%XX` as it is.
            let mut path = url.path().trim_end_matches('/').to_string();
            for segment in segments {
                path.push('/');
                path.extend(utf8_percent_encode(segment, SEGMENT));
            }
            url.set_path(&path);
        }
        url.set_query(query);
        url
    }

    /// Sends one request and reads its answer. Transient statuses (SPEC §6)
    /// and failures to get an answer come back as [`Failure::Transient`].
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
    ) -> std::result::Result<Answer, Failure> {
        // Shown as `shown` shows it: a URL's path is percent-encoded, but
        // messages about a server's answers take no chances.
        let path = shown(url.path());
        let mut request = self
            .http
            .request(method.clone(), url)
            .timeout(METADATA_TIMEOUT);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let describe = self.describe();
        let service = format!("the {} metadata service", self.cloud);
        let peer = Peer {
            shown: self.shown(),
            role: &service,
            kind: &service,
            trust_hint: "pass the CA that signed its certificate with --ca-file",
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Err(Failure::busy(
                    format!(
                        "{describe} {NO_ANSWER} {} s to {method} {path}",
                        METADATA_TIMEOUT.as_secs()
                    ),
                    None,
                ))
            }
            Err(e) => return Err(direct::transport_failure(&peer, &e)),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if status_class(status) == StatusClass::Transient {
            return Err(Failure::busy(
                format!(
                    "{describe} answered {status} {} to {method} {path}",
                    reason(status)
                ),
                retry_after_header(&headers),
            ));
        }
        let body = direct::read_body(response, &peer, MAX_ANSWER_BYTES).await?;
        Ok(Answer {
            status,
            headers,
            body,
            path,
        })
    }

    /// A GET with these headers.
    pub(crate) async fn get(
        &self,
        url: Url,
        headers: &[(&str, &str)],
    ) -> std::result::Result<Answer, Failure> {
        self.send(Method::GET, url, headers).await
    }

    /// The final failure for an answer the source has no meaning for.
    pub(crate) fn unexpected(&self, answer: &Answer) -> Failure {
        let by = self.describe();
        Failure::Permanent(Error::status(
            Class::Unavailable,
            answer.status,
            answer.path.as_str(),
            by.as_str(),
            format!(
                "{by} answered {} {} to {}{}: not retried. Is --metadata-endpoint (or --source) \
                 right?",
                answer.status,
                reason(answer.status),
                answer.path,
                answer.said()
            ),
        ))
    }

    /// The answer's body as text; metadata is UTF-8 text.
    pub(crate) fn text(&self, answer: &Answer) -> std::result::Result<String, Failure> {
        String::from_utf8(answer.body.clone()).map_err(|_| {
            Failure::Permanent(Error::Input(format!(
                "{} sent {} that is not UTF-8 text",
                self.describe(),
                answer.path
            )))
        })
    }
}

impl Answer {
    /// " (it said: <the first line of the body>)", when the body says
    /// anything: a metadata service explains its 400s there. The line is the
    /// server's text, so it is shown as [`shown`] shows any outside value
    /// (a control or format character as `\u{…}`), never raw.
    pub(crate) fn said(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let first: String = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .chars()
            .take(SAID_CHARS)
            .collect();
        if first.is_empty() {
            String::new()
        } else {
            format!(" (it said: {})", shown(&first))
        }
    }

    /// Whether a response header has exactly this value.
    pub(crate) fn header_is(&self, name: &str, value: &str) -> bool {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == value)
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(endpoint: &str) -> MetadataClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = crate::net::tls::client_config(&[]).unwrap();
        let url = Url::parse(endpoint).unwrap();
        MetadataClient::new("aws", Some(&url), "http://x", &tls, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_segments() {
        let c = client("http://127.0.0.1:9/prefix?x=1");
        assert_eq!(c.shown(), "http://127.0.0.1:9");
        assert_eq!(
            c.url(
                "latest/meta-data/tags/instance",
                &["rs_agent:http_proxy"],
                None
            )
            .as_str(),
            "http://127.0.0.1:9/prefix/latest/meta-data/tags/instance/rs_agent:http_proxy"
        );
        assert_eq!(
            c.url("a/b", &["x/y z"], Some("api-version=1")).as_str(),
            "http://127.0.0.1:9/prefix/a/b/x%2Fy%20z?api-version=1"
        );
        // A key is asked for exactly as listed: tabs, line breaks, '%'.
        assert_eq!(
            c.url("t", &["rs_agent:ty\tp\re\n%41\u{1b}é"], None)
                .as_str(),
            "http://127.0.0.1:9/prefix/t/rs_agent:ty%09p%0De%0A%2541%1B%C3%A9"
        );
        let bare = client("http://127.0.0.1:9");
        assert_eq!(
            bare.url("openstack/latest/meta_data.json", &[], None)
                .as_str(),
            "http://127.0.0.1:9/openstack/latest/meta_data.json"
        );
    }

    #[test]
    fn what_a_service_said_is_shown_cleaned() {
        let answer = |body: &str| Answer {
            status: 400,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
            path: "/p".into(),
        };
        assert_eq!(answer("").said(), "");
        assert_eq!(
            answer("\n  bad \u{1b}[31mheader\nmore").said(),
            " (it said: bad \\u{1b}[31mheader)"
        );
        // A lone CR, a tab and a right-to-left override stay visible as
        // escapes instead of rewriting the line they are printed on.
        let said = answer("a\rINFO forged\tb\u{202e}c\u{85}d").said();
        assert_eq!(
            said,
            " (it said: a\\u{d}INFO forged\\u{9}b\\u{202e}c\\u{85}d)"
        );
        assert_eq!(crate::util::text::forbidden_char(&said), None);
    }
}
