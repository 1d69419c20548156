//! Deciding what a failure means (SPEC §5, §6): pure functions from a status
//! code or an error chain to "retry", "not found", "refused" and so on. Kept
//! apart from the I/O so every decision has a unit test.

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

/// What an HTTP status from a script host or store means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
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

pub fn status_class(status: u16) -> StatusClass {
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
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
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
pub fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, SystemTime::now()))
}

/// What an error from the HTTP client says, in the terms the decision needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFacts {
    /// Failed before a response: DNS, TCP, proxy tunnel, TLS handshake.
    pub connect: bool,
    pub timeout: bool,
    /// Failed while reading the body: reset or truncated.
    pub body: bool,
    /// The peer's certificate was not trusted (or our TLS refused the peer).
    pub untrusted: Option<String>,
    /// The innermost message, e.g. "Connection refused (os error 111)".
    pub detail: String,
}

impl ErrorFacts {
    pub fn of(error: &reqwest::Error) -> ErrorFacts {
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
                    facts.untrusted = Some(tls.to_string());
                }
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
pub fn untrusted_handshake(error: &std::io::Error) -> Option<&rustls::Error> {
    as_rustls(error).filter(|tls| is_trust_failure(tls))
}

/// Failures that another try cannot fix: the certificate chain itself.
pub fn is_trust_failure(error: &rustls::Error) -> bool {
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
}
