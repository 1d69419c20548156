//! Deciding what a failure means (SPEC §5, §6): pure functions from a status
//! code or an error chain to "retry", "not found", "refused" and so on, and
//! from a TLS verification failure to what the operator should do about it
//! ([`trust_hint`]). Kept apart from the I/O so every decision has a unit
//! test.

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use crate::util::text::shown;

/// What an HTTP status from a script host or store means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    Success,
    /// 408, 425, 429, 500, 502, 503, 504: try again later.
    Transient,
    /// 404, 410.
    NotFound,
    /// 401, 403: access denied.
    Denied,
    /// 407: the proxy wants (other) credentials.
    ProxyAuth,
    /// Any other status: not retried.
    Unexpected,
}

pub(crate) fn status_class(status: u16) -> StatusClass {
    match status {
        200 | 203 => StatusClass::Success,
        408 | 425 | 429 | 500 | 502 | 503 | 504 => StatusClass::Transient,
        404 | 410 => StatusClass::NotFound,
        401 | 403 => StatusClass::Denied,
        407 => StatusClass::ProxyAuth,
        _ => StatusClass::Unexpected,
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date.
/// Absurd values are capped at an hour; the deadline caps it further.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(3600);
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let when = httpdate::parse_http_date(value).ok()?;
            when.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX))
}

/// The wait a response's `Retry-After` header asks for, if any.
pub(crate) fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, SystemTime::now()))
}

/// What an error from the HTTP client says, in the terms the decision needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ErrorFacts {
    /// Failed before a response: DNS, TCP, proxy tunnel, TLS handshake.
    pub(crate) connect: bool,
    pub(crate) timeout: bool,
    /// Failed while reading the body: reset or truncated.
    pub(crate) body: bool,
    /// The peer answered, but not in HTTP: a status line or header that does
    /// not parse, or a head over the client's limit. Something listens and
    /// talks, so this is a server failing (backoff), not a network that is
    /// still down.
    pub(crate) garbled: bool,
    /// The peer's certificate was not trusted (or our TLS refused the peer).
    pub(crate) untrusted: Option<rustls::Error>,
    /// The innermost message, e.g. "Connection refused (os error 111)".
    pub(crate) detail: String,
}

impl ErrorFacts {
    pub(crate) fn of(error: &reqwest::Error) -> ErrorFacts {
        let mut facts = ErrorFacts {
            connect: error.is_connect(),
            timeout: error.is_timeout(),
            body: error.is_body() || error.is_decode(),
            ..ErrorFacts::default()
        };
        let mut innermost = None;
        let mut current: Option<&(dyn StdError + 'static)> = error.source();
        while let Some(e) = current {
            if let Some(tls) = as_rustls(e) {
                if is_trust_failure(tls) {
                    facts.untrusted = Some(tls.clone());
                }
            }
            // hyper is a direct dependency only for this downcast: reqwest
            // says "error sending request" for a peer that answered garbage
            // and for one that closed the connection alike. `is_parse` also
            // covers a head over the size limit (`is_parse_too_large` needs
            // hyper's server side compiled in; hyper's message tells them
            // apart in `detail`).
            if e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_parse)
            {
                facts.garbled = true;
            }
            innermost = Some(e.to_string());
            current = e.source().or_else(|| {
                e.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .map(|inner| inner as &(dyn StdError + 'static))
                    .filter(|inner| inner.to_string() != e.to_string())
            });
        }
        facts.detail = innermost.unwrap_or_else(|| "the request failed".into());
        facts
    }
}

/// The TLS error in `e`, also when it sits inside `io::Error`s (which hide
/// their payload from `source()`), however deeply they are nested.
fn as_rustls<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = e;
    loop {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = current.downcast_ref::<std::io::Error>()?.get_ref()?;
        current = inner as &(dyn StdError + 'static);
    }
}

/// The trust failure inside a TLS handshake's `io::Error` (tokio-rustls
/// wraps the `rustls::Error`, sometimes twice), if that is what it was.
pub(crate) fn untrusted_handshake(error: &std::io::Error) -> Option<&rustls::Error> {
    as_rustls(error).filter(|tls| is_trust_failure(tls))
}

/// Failures that another try cannot fix: the certificate chain itself.
pub(crate) fn is_trust_failure(error: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        error,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::AlertReceived(
                A::BadCertificate
                    | A::UnknownCA
                    | A::CertificateUnknown
                    | A::UnsupportedCertificate
            )
    )
}

/// What a TLS trust failure means and what to do about it, as the end of an
/// error line ("TLS verification of X failed: <this>"). Only an unknown
/// issuer gets `ca_hint` (the peer's way to add a CA, e.g. "pass its CA
/// certificate with --ca-file"): adding a CA cannot fix an expired
/// certificate or one made out for another host, and saying so would send
/// the operator the wrong way. The one place where the script download,
/// the store and metadata clients, the CONNECT probe and `doctor` word it.
pub(crate) fn trust_hint(error: &rustls::Error, ca_hint: &str) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = error else {
        return match error {
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA) => {
                format!("the peer ended the handshake with unknown_ca: {ca_hint}")
            }
            other => format!(
                "{}: the certificate this peer presents is not acceptable; fix it on the server",
                shown(&other.to_string())
            ),
        };
    };
    match cert {
        C::UnknownIssuer => {
            format!("its certificate is issued by a CA this instance does not trust: {ca_hint}")
        }
        C::Expired | C::ExpiredContext { .. } => {
            let when = match cert {
                C::ExpiredContext { time, not_after } => format!(
                    " on {}, and this instance's clock says {}",
                    http_date(*not_after),
                    http_date(*time)
                ),
                _ => String::new(),
            };
            format!(
                "its certificate expired{when}: renew the certificate on the server; at boot, \
                 also check this instance's clock (one not yet set by NTP or from the hardware \
                 clock makes valid certificates look expired)"
            )
        }
        C::NotValidYet | C::NotValidYetContext { .. } => {
            let when = match cert {
                C::NotValidYetContext { time, not_before } => format!(
                    " (not before {}, and this instance's clock says {})",
                    http_date(*not_before),
                    http_date(*time)
                ),
                _ => String::new(),
            };
            format!(
                "its certificate is not valid yet{when}: at boot the clock may be wrong (not yet \
                 set by NTP or from the hardware clock): check it; if the clock is right, the \
                 certificate was issued for the future"
            )
        }
        C::NotValidForName => "its certificate is made out for other names than the host in the \
             URL: check the host in the URL"
            .to_string(),
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = shown(&expected.to_str());
            let names: Vec<String> = presented.iter().map(|n| shown(presented_name(n))).collect();
            if names.is_empty() {
                format!(
                    "its certificate names no host, so not {expected}: check the host in the URL"
                )
            } else {
                format!(
                    "its certificate is for {}, not {expected}: check the host in the URL",
                    names.join(", ")
                )
            }
        }
        other => format!(
            "its certificate is not acceptable ({}): fix the certificate on the server",
            shown(&format!("{other:?}"))
        ),
    }
}

/// A name as webpki lists the names a certificate holds (`DnsName("x")`,
/// `IpAddress(10.0.0.1)`), without the wrapping.
fn presented_name(name: &str) -> &str {
    for (open, close) in [("DnsName(\"", "\")"), ("IpAddress(", ")")] {
        if let Some(inner) = name.strip_prefix(open).and_then(|n| n.strip_suffix(close)) {
            return inner;
        }
    }
    name
}

fn http_date(time: rustls::pki_types::UnixTime) -> String {
    httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(time.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_are_found_inside_nested_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let once = std::io::Error::new(std::io::ErrorKind::InvalidData, tls.clone());
        let twice = std::io::Error::other(once);
        let found = as_rustls(&twice).expect("found through two io::Errors");
        assert!(is_trust_failure(found));
        assert!(as_rustls(&tls).is_some());
        let plain = std::io::Error::other("connection reset");
        assert!(as_rustls(&plain).is_none());
    }

    #[test]
    fn statuses_are_classified_as_spec_says() {
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(status_class(s), StatusClass::Transient, "{s}");
        }
        for s in [404, 410] {
            assert_eq!(status_class(s), StatusClass::NotFound, "{s}");
        }
        for s in [401, 403] {
            assert_eq!(status_class(s), StatusClass::Denied, "{s}");
        }
        assert_eq!(status_class(407), StatusClass::ProxyAuth);
        assert_eq!(status_class(200), StatusClass::Success);
        for s in [204, 206, 400, 405, 501, 505] {
            assert_eq!(status_class(s), StatusClass::Unexpected, "{s}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("999999999", now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[test]
    fn certificate_failures_are_trust_failures_and_others_are_not() {
        use rustls::CertificateError;
        assert!(is_trust_failure(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        )));
        assert!(is_trust_failure(&rustls::Error::InvalidCertificate(
            CertificateError::Expired
        )));
        assert!(is_trust_failure(&rustls::Error::AlertReceived(
            rustls::AlertDescription::UnknownCA
        )));
        assert!(!is_trust_failure(&rustls::Error::AlertReceived(
            rustls::AlertDescription::InternalError
        )));
        assert!(!is_trust_failure(&rustls::Error::HandshakeNotComplete));
    }

    fn hint(cert: rustls::CertificateError) -> String {
        trust_hint(&rustls::Error::InvalidCertificate(cert), "CA-HINT")
    }

    #[test]
    fn only_an_unknown_issuer_gets_the_ca_hint() {
        use rustls::pki_types::{ServerName, UnixTime};
        use rustls::CertificateError as C;
        let unknown = hint(C::UnknownIssuer);
        assert!(unknown.ends_with(": CA-HINT"), "{unknown}");
        let alert = trust_hint(
            &rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
            "CA-HINT",
        );
        assert!(alert.ends_with("CA-HINT"), "{alert}");

        let expired = hint(C::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(978_307_200)),
        });
        assert!(
            expired.starts_with("its certificate expired on Mon, 01 Jan 2001 00:00:00 GMT"),
            "{expired}"
        );
        assert!(expired.contains("clock says Tue, 14 Nov 2023"), "{expired}");
        assert!(expired.contains("check this instance's clock"), "{expired}");
        assert!(hint(C::Expired).starts_with("its certificate expired: "));

        let early = hint(C::NotValidYetContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(0)),
            not_before: UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000)),
        });
        assert!(
            early.contains("not valid yet (not before Tue, 14 Nov 2023"),
            "{early}"
        );
        assert!(early.contains("the clock may be wrong"), "{early}");

        let named = hint(C::NotValidForNameContext {
            expected: ServerName::try_from("repo.test").unwrap(),
            presented: vec![
                "DnsName(\"other.test\")".into(),
                "DnsName(\"*.other\u{202e}.test\")".into(),
                "IpAddress(10.0.0.1)".into(),
            ],
        });
        assert_eq!(
            named,
            "its certificate is for other.test, *.other\\u{202e}.test, 10.0.0.1, not repo.test: \
             check the host in the URL"
        );
        assert!(hint(C::NotValidForName).contains("check the host in the URL"));

        for (cert, words) in [
            (
                C::ExpiredContext {
                    time: UnixTime::now(),
                    not_after: UnixTime::now(),
                },
                "expired",
            ),
            (C::NotValidForName, "other names"),
            (C::BadSignature, "not acceptable"),
            (C::Revoked, "not acceptable"),
        ] {
            let text = hint(cert);
            assert!(!text.contains("CA-HINT"), "{text}");
            assert!(text.contains(words), "{text}");
        }
    }
}
