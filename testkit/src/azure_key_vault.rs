//! A fake Azure Key Vault, shaped like the documented data-plane REST API:
//! `GET /secrets/{name}[/{version}]?api-version=V` (a known version, else
//! 400 `BadParameter`), names of letters, digits and `-` only. The bearer
//! token must be an RS256 JWT signed by the key the Azure metadata fake
//! signs with, for the audience `https://vault.azure.net` and the fake's
//! tenant, not expired (401 `Unauthorized`, with Key Vault's
//! `WWW-Authenticate` challenge, otherwise), and its `appid` must hold
//! "Key Vault Secrets User" on this vault (403 `Forbidden` /
//! `ForbiddenByRbac` otherwise). Answers `{"value", "id", "attributes"}`,
//! or `{"error": {"code", "message", "innererror"}}`: 404
//! `SecretNotFound`, 429 `Throttled` (with `Retry-After`), 503. Plain HTTP
//! or HTTPS with the test CA; every request is recorded.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{json, Value};

use crate::ca::TestCa;
use crate::jwt::{now, SigningKey};
use crate::metadata::AZURE_TENANT as TENANT;
use crate::origin::{Origin, RecordedRequest, Reply};

const VERSIONS: &[&str] = &["7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6"];
const AUDIENCE: &str = "https://vault.azure.net";

#[derive(Clone, Debug)]
struct Data {
    vault: String,
    key: SigningKey,
    /// Client IDs granted "Key Vault Secrets User" on this vault.
    readers: BTreeSet<String>,
    secrets: BTreeMap<String, String>,
    answer_first: VecDeque<u16>,
}

/// Builder for a [`FakeKeyVault`].
#[derive(Clone, Debug)]
pub struct FakeKeyVaultBuilder {
    data: Data,
}

/// A running fake; stops on Drop.
pub struct FakeKeyVault {
    origin: Origin,
}

impl FakeKeyVault {
    /// The vault `name`, trusting tokens signed by [`SigningKey::shared`].
    pub fn builder(name: &str) -> FakeKeyVaultBuilder {
        FakeKeyVaultBuilder {
            data: Data {
                vault: name.to_string(),
                key: SigningKey::shared(),
                readers: BTreeSet::new(),
                secrets: BTreeMap::new(),
                answer_first: VecDeque::new(),
            },
        }
    }

    /// The vault's base URL (`[azure_key_vault] endpoint`), no trailing
    /// slash.
    pub fn url(&self) -> String {
        self.origin.url("").trim_end_matches('/').to_string()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.origin.requests()
    }
}

impl FakeKeyVaultBuilder {
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.data
            .secrets
            .insert(name.to_ascii_lowercase(), value.to_string());
        self
    }

    /// Grant the identity with this client ID "Key Vault Secrets User".
    pub fn reader(mut self, client_id: &str) -> Self {
        self.data.readers.insert(client_id.to_string());
        self
    }

    /// Trust tokens signed by this key instead.
    pub fn trusting(mut self, key: SigningKey) -> Self {
        self.data.key = key;
        self
    }

    /// The first requests get these statuses (429, 503, ...).
    pub fn answer_first(mut self, statuses: &[u16]) -> Self {
        self.data.answer_first.extend(statuses);
        self
    }

    pub fn start(self) -> FakeKeyVault {
        self.start_on(None)
    }

    /// Serve HTTPS with the CA's loopback leaf.
    pub fn start_with(self, ca: &TestCa) -> FakeKeyVault {
        self.start_on(Some(ca))
    }

    fn start_on(self, ca: Option<&TestCa>) -> FakeKeyVault {
        FakeKeyVault {
            origin: crate::gcp_secret_manager::serving(ca, self.data, handle),
        }
    }
}

fn error(status: u16, code: &str, message: &str, inner: Option<&str>) -> Reply {
    let mut error = json!({ "code": code, "message": message });
    if let Some(inner) = inner {
        error["innererror"] = json!({ "code": inner });
    }
    Reply::status_with_body(status, json!({ "error": error }).to_string())
        .with_header("Content-Type", "application/json; charset=utf-8")
}

fn unauthorized(message: &str) -> Reply {
    error(401, "Unauthorized", message, None).with_header(
        "WWW-Authenticate",
        format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", \
             resource=\"{AUDIENCE}\""
        ),
    )
}

fn query(target: &str) -> Vec<(&str, &str)> {
    target
        .split_once('?')
        .map(|(_, q)| q.split('&').filter_map(|p| p.split_once('=')).collect())
        .unwrap_or_default()
}

fn handle(data: &mut Data, req: &RecordedRequest) -> Reply {
    if let Some(status) = data.answer_first.pop_front() {
        return match status {
            429 => error(
                429,
                "Throttled",
                "Request was not processed because too many requests were received. Reason: A \
                 generic throttling rule was applied.",
                None,
            )
            .with_header("Retry-After", "1"),
            // A token no longer accepted, as Key Vault says it.
            401 => error(
                401,
                "Unauthorized",
                "AKV10022: Invalid audience or the token has expired.",
                None,
            ),
            s => error(s, "ServiceUnavailable", "The service is unavailable.", None),
        };
    }
    let version = query(&req.target)
        .into_iter()
        .find(|(k, _)| *k == "api-version")
        .map(|(_, v)| v);
    if !version.is_some_and(|v| VERSIONS.contains(&v)) {
        return error(
            400,
            "BadParameter",
            "The specified version is not recognized. Consider using the latest supported \
             version.",
            None,
        );
    }
    let Some(auth) = req.header("authorization") else {
        return unauthorized("AKV10000: Request is missing a Bearer or PoP token.");
    };
    let Some(claims) = auth
        .strip_prefix("Bearer ")
        .and_then(|jwt| data.key.verify(jwt))
    else {
        return unauthorized("AKV10032: Invalid issuer or signature.");
    };
    if let Some(reason) = token_fault(&claims) {
        return unauthorized(&reason);
    }
    let appid = claims["appid"].as_str().unwrap_or_default();
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let name = match parts.as_slice() {
        ["secrets", name] | ["secrets", name, _] => *name,
        _ => {
            return error(
                404,
                "NotFound",
                "The requested resource was not found.",
                None,
            )
        }
    };
    if req.method != "GET" {
        return error(405, "MethodNotAllowed", "The method is not allowed.", None);
    }
    if name.is_empty()
        || name.len() > 127
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return error(
            400,
            "BadParameter",
            "The request URI contains an invalid secret name.",
            None,
        );
    }
    if !data.readers.contains(appid) {
        let message = format!(
            "Caller is not authorized to perform action on resource.\r\nIf role assignments, \
             deny assignments or role definitions were changed recently, please observe \
             propagation time.\r\nCaller: appid={appid};oid={}\r\nAction: \
             'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: \
             '/subscriptions/.../vaults/{}/secrets/{name}'\r\nAssignment: (not found)",
            claims["oid"].as_str().unwrap_or_default(),
            data.vault
        );
        return error(403, "Forbidden", &message, Some("ForbiddenByRbac"));
    }
    // Key Vault names are case-insensitive.
    let Some(value) = data.secrets.get(&name.to_ascii_lowercase()) else {
        return error(
            404,
            "SecretNotFound",
            &format!(
                "A secret with (name/id) {name} was not found in this key vault. If you recently \
                 deleted this secret you may be able to recover it using the correct recovery \
                 command."
            ),
            None,
        );
    };
    let t = now();
    let body = json!({
        "value": value,
        "id": format!("https://{}.vault.azure.net/secrets/{name}/4387e9f3d6e14c459867679a90fd0f79", data.vault),
        "attributes": {
            "enabled": true,
            "created": t - 3600,
            "updated": t - 3600,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90
        },
        "tags": {}
    });
    Reply::ok(body.to_string()).with_header("Content-Type", "application/json; charset=utf-8")
}

/// Why Key Vault refuses these (signature-checked) claims, if it does.
fn token_fault(claims: &Value) -> Option<String> {
    let aud = claims["aud"].as_str().unwrap_or_default();
    if aud.trim_end_matches('/') != AUDIENCE {
        return Some(format!(
            "AKV10022: Invalid audience. Expected {AUDIENCE}, found: {aud}."
        ));
    }
    let issuer = format!("https://sts.windows.net/{TENANT}/");
    if claims["iss"] != issuer.as_str() || claims["tid"] != TENANT {
        return Some("AKV10032: Invalid issuer.".to_string());
    }
    let exp = claims["exp"].as_u64().unwrap_or(0);
    if exp <= now() {
        return Some("AKV10022: The token is expired.".to_string());
    }
    None
}
