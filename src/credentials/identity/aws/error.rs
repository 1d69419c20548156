//! What an AWS error answer means, read from its type, never from its
//! status alone: the JSON APIs answer nearly every failure with 400 and
//! name it in `__type` (`com.amazonaws.secretsmanager#ResourceNotFoundException`,
//! or `Name:http://internal.amazon.com/…`) and in `x-amzn-ErrorType`; STS
//! and moto's query-protocol answers are XML (`<ErrorResponse><Error><Code>`),
//! and moto answers some failures with other statuses than AWS does. A pure
//! function, unit-tested on both shapes with mismatched statuses.

use reqwest::header::HeaderMap;

use crate::util::text::shown;

/// What the failure calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The credentials or their permissions: 77, naming the permission.
    Denied,
    /// The temporary credentials expired: read new ones once, then 77.
    Expired,
    /// The secret or parameter does not exist: 66.
    NotFound,
    /// Throttling, or the service failing (5xx): retried until the deadline.
    Retry,
    /// Anything else: a clear error, not retried.
    Other,
}

/// An AWS error answer, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwsError {
    pub(crate) kind: Kind,
    /// The error type without its namespace, e.g. `AccessDeniedException`.
    pub(crate) code: Option<String>,
    /// AWS's message (it names the principal and the action, never a
    /// secret), cut short and cleaned for a log line.
    pub(crate) message: Option<String>,
    pub(crate) status: u16,
}

/// How much of AWS's message is quoted.
const MESSAGE_CHARS: usize = 300;

/// A permission the role lacks.
const DENIED: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
];
/// The credentials themselves refused, not a permission: granting one
/// would not help. Also [`Kind::Denied`].
const REJECTED: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AuthFailure",
];
const EXPIRED: &[&str] = &["ExpiredTokenException", "ExpiredToken", "RequestExpired"];
const NOT_FOUND: &[&str] = &[
    "ResourceNotFoundException",
    "ParameterNotFound",
    "ParameterVersionNotFound",
];
const RETRY: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "InternalServiceError",
    "InternalServiceErrorException",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

impl AwsError {
    /// Whether the credentials themselves were refused (a bad signature,
    /// an unknown key), rather than a permission.
    pub(crate) fn credentials_rejected(&self) -> bool {
        self.kind == Kind::Denied && self.code.as_deref().is_some_and(|c| REJECTED.contains(&c))
    }

    /// "AccessDeniedException: User … is not authorized …", or the status
    /// when the answer named nothing.
    pub(crate) fn said(&self) -> String {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            (None, Some(message)) => format!("{}: {message}", self.status),
            (None, None) => format!("{} without an error type", self.status),
        }
    }
}

/// Classifies an error answer: its type from `x-amzn-ErrorType`, else the
/// JSON body's `__type` (or `code`), else the XML body's `<Code>`; the
/// status decides only when none names one (5xx: retried; 401/403: denied;
/// 429: retried).
pub(crate) fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> AwsError {
    let text = String::from_utf8_lossy(body);
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let field = |names: &[&str]| {
        let object = json.as_ref()?.as_object()?;
        names
            .iter()
            .find_map(|n| object.get(*n)?.as_str().map(str::to_string))
    };
    let header = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let code = header
        .or_else(|| field(&["__type", "code", "Code"]))
        .or_else(|| xml_element(&text, "Code"))
        .map(|c| bare_type(&c))
        .filter(|c| !c.is_empty());
    let message = field(&["message", "Message"])
        .or_else(|| xml_element(&text, "Message"))
        .map(|m| shown(&m.chars().take(MESSAGE_CHARS).collect::<String>()))
        .filter(|m| !m.is_empty());
    let kind = match code.as_deref() {
        Some(c) if DENIED.contains(&c) || REJECTED.contains(&c) => Kind::Denied,
        Some(c) if EXPIRED.contains(&c) => Kind::Expired,
        Some(c) if NOT_FOUND.contains(&c) => Kind::NotFound,
        Some(c) if RETRY.contains(&c) => Kind::Retry,
        _ if status >= 500 || status == 429 => Kind::Retry,
        None if status == 401 || status == 403 => Kind::Denied,
        _ => Kind::Other,
    };
    AwsError {
        kind,
        code: code.map(|c| shown(&c)),
        message,
        status,
    }
}

/// `com.amazonaws.ssm#ParameterNotFound` → `ParameterNotFound`;
/// `AccessDeniedException:http://internal.amazon.com/coral/…` →
/// `AccessDeniedException`.
fn bare_type(code: &str) -> String {
    let code = code.trim();
    let code = code.split(':').next().unwrap_or(code);
    let code = code.rsplit('#').next().unwrap_or(code);
    code.chars().take(100).collect()
}

/// The text of the first `<name>…</name>` element, unescaped for the five
/// XML entities: AWS's error documents are small and flat, and only the
/// code and the message are read.
fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    let value = text[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(status: u16, body: &str) -> AwsError {
        classify(status, &HeaderMap::new(), body.as_bytes())
    }

    fn xml(status: u16, code: &str) -> AwsError {
        let body = format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>{code}</Code><Message>it &amp; said</Message></Error>\
             <RequestId>r</RequestId></ErrorResponse>"
        );
        classify(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn json_types_decide_whatever_the_status() {
        let cases = [
            ("AccessDeniedException", Kind::Denied),
            ("UnrecognizedClientException", Kind::Denied),
            ("InvalidSignatureException", Kind::Denied),
            ("ExpiredTokenException", Kind::Expired),
            ("ResourceNotFoundException", Kind::NotFound),
            ("ParameterNotFound", Kind::NotFound),
            ("ThrottlingException", Kind::Retry),
            ("TooManyRequestsException", Kind::Retry),
            ("ValidationException", Kind::Other),
        ];
        for (code, kind) in cases {
            for status in [400, 403, 404, 500, 200] {
                let plain = json(status, &format!(r#"{{"__type":"{code}","message":"m"}}"#));
                let namespaced = json(
                    status,
                    &format!(r#"{{"__type":"com.amazonaws.secretsmanager#{code}","Message":"m"}}"#),
                );
                for e in [plain, namespaced] {
                    let expected = if kind == Kind::Other && status >= 500 {
                        Kind::Retry
                    } else {
                        kind
                    };
                    assert_eq!(e.kind, expected, "{code} {status}");
                    assert_eq!(e.code.as_deref(), Some(code));
                    assert_eq!(e.message.as_deref(), Some("m"));
                }
            }
        }
    }

    #[test]
    fn the_header_names_the_type_before_the_body() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amzn-ErrorType",
            "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/"
                .parse()
                .unwrap(),
        );
        let e = classify(400, &headers, br#"{"__type":"ThrottlingException"}"#);
        assert_eq!(e.kind, Kind::Denied);
        assert_eq!(e.code.as_deref(), Some("AccessDeniedException"));
    }

    #[test]
    fn xml_codes_decide_whatever_the_status() {
        for status in [400, 403, 404, 500] {
            assert_eq!(xml(status, "SignatureDoesNotMatch").kind, Kind::Denied);
            assert_eq!(xml(status, "InvalidClientTokenId").kind, Kind::Denied);
            assert_eq!(xml(status, "AccessDenied").kind, Kind::Denied);
            assert_eq!(xml(status, "ExpiredToken").kind, Kind::Expired);
            assert_eq!(xml(status, "Throttling").kind, Kind::Retry);
            assert_eq!(xml(status, "RequestLimitExceeded").kind, Kind::Retry);
            assert_eq!(xml(status, "ParameterNotFound").kind, Kind::NotFound);
        }
        let e = xml(403, "SignatureDoesNotMatch");
        assert!(e.credentials_rejected());
        assert!(!xml(403, "AccessDenied").credentials_rejected());
        assert_eq!(e.message.as_deref(), Some("it & said"));
        assert_eq!(e.said(), "SignatureDoesNotMatch: it & said");
    }

    #[test]
    fn the_status_decides_only_when_nothing_is_named() {
        assert_eq!(json(503, "busy").kind, Kind::Retry);
        assert_eq!(json(429, "").kind, Kind::Retry);
        assert_eq!(json(403, "<html>no</html>").kind, Kind::Denied);
        assert_eq!(json(400, "").kind, Kind::Other);
        assert_eq!(
            json(404, "").kind,
            Kind::Other,
            "a 404 alone is no missing secret"
        );
        assert_eq!(json(400, "").said(), "400 without an error type");
    }

    #[test]
    fn a_hostile_message_is_cleaned_and_cut() {
        let long = "x".repeat(1000);
        let e = json(
            400,
            &format!(r#"{{"__type":"AccessDenied\u001b[31m","message":"a\nb{long}"}}"#),
        );
        assert_eq!(e.kind, Kind::Other);
        assert!(!e.said().contains('\n'));
        assert!(!e.said().contains('\u{1b}'));
        assert!(e.message.unwrap().len() < 400);
    }
}
