//! A fake GCP Secret Manager, shaped like the documented REST API v1: only
//! `GET /v1/projects/{project}/secrets/{secret}/versions/{version}:access`
//! (the project by ID or number, the version a number or `latest`), with
//! `Authorization: Bearer` checked against the access token the GCE
//! metadata fake handed out. Answers as Google does: `{"name", "payload":
//! {"data", "dataCrc32c"}}` (the CRC-32C an int64 as a decimal string), or
//! `{"error": {"code", "message", "status"}}` with `UNAUTHENTICATED` (401),
//! `PERMISSION_DENIED` (403, also for another project or a secret the
//! account may not read, "or it may not exist"), `NOT_FOUND` (404),
//! `RESOURCE_EXHAUSTED` (429), `UNAVAILABLE` (503). Plain HTTP or HTTPS with
//! the test CA; every request is recorded.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::json;

use crate::ca::TestCa;
use crate::origin::{Origin, RecordedRequest, Reply};

/// The project the fake serves, and its number.
pub const PROJECT: &str = "example-project";
pub const PROJECT_NUMBER: &str = "123456789012";

#[derive(Clone, Debug)]
struct Data {
    token: String,
    /// Each secret's versions, oldest first (version N is index N-1).
    secrets: BTreeMap<String, Vec<Vec<u8>>>,
    /// Secrets the service account has no `secretAccessor` role on.
    denied: BTreeSet<String>,
    corrupt_crc: bool,
    answer_first: VecDeque<u16>,
}

/// Builder for a [`FakeSecretManager`].
#[derive(Clone, Debug)]
pub struct FakeSecretManagerBuilder {
    data: Data,
}

/// A running fake; stops on Drop.
pub struct FakeSecretManager {
    origin: Origin,
}

impl FakeSecretManager {
    /// A fake of project [`PROJECT`] that accepts the bearer `token`.
    pub fn builder(token: &str) -> FakeSecretManagerBuilder {
        FakeSecretManagerBuilder {
            data: Data {
                token: token.to_string(),
                secrets: BTreeMap::new(),
                denied: BTreeSet::new(),
                corrupt_crc: false,
                answer_first: VecDeque::new(),
            },
        }
    }

    /// The API's base URL (`[gcp_secret_manager] endpoint`), no trailing
    /// slash.
    pub fn url(&self) -> String {
        self.origin.url("").trim_end_matches('/').to_string()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.origin.requests()
    }
}

impl FakeSecretManagerBuilder {
    /// Add a version to secret `id` (the newest is `latest`).
    pub fn secret(mut self, id: &str, value: &str) -> Self {
        self.data
            .secrets
            .entry(id.to_string())
            .or_default()
            .push(value.as_bytes().to_vec());
        self
    }

    /// The service account may not read secret `id` (403).
    pub fn deny(mut self, id: &str) -> Self {
        self.data.denied.insert(id.to_string());
        self
    }

    /// Every payload's `dataCrc32c` is off by one.
    pub fn corrupt_crc(mut self) -> Self {
        self.data.corrupt_crc = true;
        self
    }

    /// The first requests get these statuses (429, 503, ...) in Google's
    /// error shape.
    pub fn answer_first(mut self, statuses: &[u16]) -> Self {
        self.data.answer_first.extend(statuses);
        self
    }

    /// Serve HTTPS with the CA's loopback leaf.
    pub fn start_with(self, ca: &TestCa) -> FakeSecretManager {
        self.start_on(Some(ca))
    }

    /// Serve plain HTTP on 127.0.0.1.
    pub fn start(self) -> FakeSecretManager {
        self.start_on(None)
    }

    fn start_on(self, ca: Option<&TestCa>) -> FakeSecretManager {
        FakeSecretManager {
            origin: serving(ca, self.data, handle),
        }
    }
}

/// An origin (HTTPS with `ca`, else plain HTTP) whose every request
/// `handle` answers from `data`, kept behind a lock: the store fakes'
/// server.
pub(crate) fn serving<T: Send + 'static>(
    ca: Option<&TestCa>,
    data: T,
    handle: fn(&mut T, &RecordedRequest) -> Reply,
) -> Origin {
    let state = Mutex::new(data);
    Origin::builder(ca)
        .handler(Arc::new(move |req| {
            let mut data = state.lock().unwrap_or_else(|e| e.into_inner());
            Some(handle(&mut data, req))
        }))
        .start()
}

fn error(code: u16, status: &str, message: &str) -> Reply {
    let body = json!({ "error": { "code": code, "message": message, "status": status } });
    Reply::status_with_body(code, body.to_string())
        .with_header("Content-Type", "application/json; charset=UTF-8")
}

fn handle(data: &mut Data, req: &RecordedRequest) -> Reply {
    if let Some(status) = data.answer_first.pop_front() {
        return match status {
            429 => error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Access requests' and limit 'Access requests \
                 per minute' of service 'secretmanager.googleapis.com'",
            ),
            // A token no longer accepted (revoked, rotated), as Google says it.
            401 => error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, \
                 login cookie or other valid authentication credential.",
            ),
            _ => error(
                status,
                "UNAVAILABLE",
                "The service is currently unavailable.",
            ),
        };
    }
    let Some(rest) = req.path.strip_prefix("/v1/projects/") else {
        return error(404, "NOT_FOUND", "Requested entity was not found.");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let (project, secret, version) = match parts.as_slice() {
        [p, "secrets", s, "versions", v] => match v.strip_suffix(":access") {
            Some(v) => (*p, *s, v),
            None => return error(404, "NOT_FOUND", "Requested entity was not found."),
        },
        _ => return error(404, "NOT_FOUND", "Requested entity was not found."),
    };
    if req.method != "GET" {
        return error(
            405,
            "METHOD_NOT_ALLOWED",
            "Method not allowed for this resource.",
        );
    }
    let Some(auth) = req.header("authorization") else {
        return error(
            401,
            "UNAUTHENTICATED",
            "Request is missing required authentication credential. Expected OAuth 2 access \
             token, login cookie or other valid authentication credential.",
        );
    };
    if auth.strip_prefix("Bearer ") != Some(data.token.as_str()) {
        return error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
        );
    }
    let resource = format!("projects/{project}/secrets/{secret}/versions/{version}");
    let denied = || {
        error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.versions.access' denied for resource '{resource}' \
                 (or it may not exist)."
            ),
        )
    };
    if (project != PROJECT && project != PROJECT_NUMBER) || data.denied.contains(secret) {
        return denied();
    }
    let Some(versions) = data.secrets.get(secret) else {
        return error(
            404,
            "NOT_FOUND",
            &format!(
                "Secret [projects/{PROJECT_NUMBER}/secrets/{secret}] not found or has no versions."
            ),
        );
    };
    let number = match version {
        "latest" => versions.len(),
        v => match v.parse::<usize>() {
            Ok(n) if (1..=versions.len()).contains(&n) => n,
            _ => {
                return error(
                    404,
                    "NOT_FOUND",
                    &format!(
                        "Secret Version [projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{v}] \
                         not found."
                    ),
                )
            }
        },
    };
    let value = &versions[number - 1];
    let mut crc = u64::from(crc32c(value));
    if data.corrupt_crc {
        crc = crc.wrapping_add(1);
    }
    let body = json!({
        "name": format!("projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{number}"),
        "payload": {
            "data": base64::engine::general_purpose::STANDARD.encode(value),
            "dataCrc32c": crc.to_string(),
        }
    });
    Reply::ok(body.to_string()).with_header("Content-Type", "application/json; charset=UTF-8")
}

/// CRC-32C (Castagnoli, reflected 0x82F63B78), bit by bit: written apart
/// from tagstrap's, so each checks the other.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_value() {
        // RFC 3720 B.4 / the CRC catalogue: "123456789" → 0xE3069283.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
