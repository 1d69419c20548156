//! The fake Azure Instance Metadata Service: everything under `/metadata/`
//! needs `Metadata: true` and no `X-Forwarded-For` (else `400`), and a known
//! `api-version` query (else `400` with the newest versions), except
//! `/metadata/versions`. It serves `fixtures/azure/instance.json` as the
//! `/metadata/instance` document, as JSON or (`format=text`, leaves only)
//! as text; the tags are both its `tagsList` and its semicolon `tags`.
//!
//! The managed identity (`identity.rs`) is served at
//! `/metadata/identity/oauth2/token?resource=R[&client_id=ID]`: an RS256
//! access token in Entra ID's claim shape for the system-assigned identity
//! or a user-assigned one, or `400 invalid_request` "Identity not found".

use std::path::Path;

use serde_json::{json, Value};

use super::identity::Identity;
use super::{is_read, query, query_param, read_json, Service};
use crate::origin::{reason, RecordedRequest, Reply};

const AZURE_JSON: &str = "application/json; charset=utf-8";
const AZURE_TEXT: &str = "text/plain; charset=utf-8";
/// The `api-version`s Microsoft documents for IMDS; others get `400`.
const AZURE_VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2022-02-01",
    "2022-03-01",
    "2022-05-01",
    "2022-07-01",
    "2022-08-01",
    "2022-09-01",
    "2022-11-01",
    "2023-07-01",
    "2023-11-15",
    "2024-03-15",
    "2024-07-17",
    "2025-04-07",
];

/// What the Azure fake serves: the `/metadata/instance` document.
#[derive(Clone, Debug)]
struct Azure {
    doc: Value,
    identity: Identity,
}

pub(super) fn load(dir: &Path) -> Box<dyn Service> {
    Box::new(Azure {
        doc: read_json(&dir.join("instance.json")),
        identity: Identity::new(String::new()),
    })
}

impl Service for Azure {
    fn instance_id(&self) -> Option<String> {
        self.doc["compute"]["vmId"].as_str().map(str::to_string)
    }

    fn set_instance_id(&mut self, id: &str) {
        self.doc["compute"]["vmId"] = json!(id);
    }

    fn set_tag(&mut self, key: &str, value: &str) {
        let compute = &mut self.doc["compute"];
        if !compute["tagsList"].is_array() {
            compute["tagsList"] = json!([]);
        }
        let list = compute["tagsList"].as_array_mut().expect("tagsList array");
        match list.iter_mut().find(|t| t["name"] == key) {
            Some(t) => t["value"] = json!(value),
            None => list.push(json!({ "name": key, "value": value })),
        }
        // The semicolon form carries the same tags (ambiguous when a
        // name holds `:`, which is why tagsList exists).
        let joined: Vec<String> = list
            .iter()
            .map(|t| {
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                format!("{}:{}", s(&t["name"]), s(&t["value"]))
            })
            .collect();
        compute["tags"] = json!(joined.join(";"));
    }

    fn clear_tags(&mut self) {
        self.doc["compute"]["tagsList"] = json!([]);
        self.doc["compute"]["tags"] = json!("");
    }

    fn error(&self, status: u16) -> Reply {
        azure_json(status, &json!({ "error": reason(status) }))
    }

    fn handle(&mut self, req: &RecordedRequest) -> Reply {
        azure(&self.doc, &mut self.identity, req)
    }

    fn identity(&mut self) -> Option<&mut Identity> {
        Some(&mut self.identity)
    }
}

fn azure_json(status: u16, v: &Value) -> Reply {
    Reply::status_with_body(status, v.to_string()).with_header("Content-Type", AZURE_JSON)
}

fn azure_bad_version() -> Reply {
    let newest: Vec<&str> = AZURE_VERSIONS.iter().rev().take(3).copied().collect();
    azure_json(
        400,
        &json!({
            "error": "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds",
            "newest-versions": newest,
        }),
    )
}

fn azure(doc: &Value, identity: &mut Identity, req: &RecordedRequest) -> Reply {
    let not_found = || azure_json(404, &json!({ "error": "Not found" }));
    if !(req.path == "/metadata" || req.path.starts_with("/metadata/")) {
        return not_found();
    }
    if req.header("x-forwarded-for").is_some() {
        return azure_json(
            400,
            &json!({ "error": "Bad request. Requests with an X-Forwarded-For header are not allowed" }),
        );
    }
    if !req
        .header("metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return azure_json(
            400,
            &json!({ "error": "Bad request. Required metadata header not specified" }),
        );
    }
    if !is_read(req) {
        return azure_json(405, &json!({ "error": "Method not allowed" }));
    }
    let path = req.path.trim_end_matches('/');
    if path == "/metadata/versions" {
        return azure_json(200, &json!({ "apiVersions": AZURE_VERSIONS }));
    }
    let q = query(&req.target);
    if !query_param(&q, "api-version").is_some_and(|v| AZURE_VERSIONS.contains(&v)) {
        return azure_bad_version();
    }
    if path == TOKEN_PATH {
        return token(doc, identity, &q);
    }
    let text = match query_param(&q, "format") {
        None | Some("json") => false,
        Some("text") => true,
        Some(_) => {
            return azure_json(
                400,
                &json!({ "error": "Bad request. Unsupported format, use format=json or format=text" }),
            )
        }
    };
    let Some(rest) = path.strip_prefix("/metadata/instance") else {
        return not_found();
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return not_found();
    }
    let mut node = doc;
    for seg in rest.split('/').filter(|s| !s.is_empty()) {
        let next = match node {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return not_found(),
        }
    }
    if !text {
        return azure_json(200, node);
    }
    let body = match node {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(_) | Value::Number(_) => node.to_string(),
        Value::Object(_) | Value::Array(_) => {
            return azure_json(
                400,
                &json!({ "error": "Bad request. format=text is only supported for leaf nodes" }),
            )
        }
    };
    Reply::ok(body).with_header("Content-Type", AZURE_TEXT)
}

const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// The fake's Entra ID tenant.
pub const TENANT: &str = "5f0c1f5e-7b1a-4e4b-9a35-2d6c1c7e0a11";
/// The system-assigned identity's client (application) ID.
pub const SYSTEM_CLIENT_ID: &str = "0e2b6c3a-94b1-4d7e-8a55-1f3d2c9b7a60";

fn identity_error(description: &str) -> Reply {
    azure_json(
        400,
        &json!({ "error": "invalid_request", "error_description": description }),
    )
}

/// A managed identity token for `resource`, as IMDS answers it (every
/// number a decimal string), the token signed in Entra ID's shape; the same
/// answer again for the same resource and identity, as IMDS caches it.
fn token(doc: &Value, identity: &mut Identity, q: &[(String, String)]) -> Reply {
    let Some(resource) = query_param(q, "resource").filter(|r| !r.is_empty()) else {
        return identity_error("Required audience parameter not specified");
    };
    match issue(doc, identity, resource, query_param(q, "client_id")) {
        Ok(answer) => azure_json(200, &answer),
        Err(reply) => reply,
    }
}

/// The token answer for `resource` and `client_id` (cached), or IMDS's
/// error.
fn issue(
    doc: &Value,
    identity: &mut Identity,
    resource: &str,
    client_id: Option<&str>,
) -> Result<Value, Reply> {
    let key = (resource.to_string(), client_id.unwrap_or("").to_string());
    if let Some(answer) = identity.issued.get(&key) {
        return Ok(answer.clone());
    }
    let client_id = match client_id {
        Some(id) if identity.user_assigned.iter().any(|u| u == id) => id.to_string(),
        None if identity.attached => SYSTEM_CLIENT_ID.to_string(),
        // With no system-assigned identity and one user-assigned, IMDS
        // uses that one.
        None if identity.user_assigned.len() == 1 && !identity.attached => {
            identity.user_assigned[0].clone()
        }
        _ => return Err(identity_error("Identity not found")),
    };
    let (iat, exp) = identity.times(86_399);
    // The identity's object (principal) ID, distinct per client ID.
    let oid = format!("9a1e{}", client_id.get(4..).unwrap_or(""));
    let claims = json!({
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "aud": identity.audience(resource),
        "oid": oid,
        "sub": oid,
        "appid": client_id,
        "tid": TENANT,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "xms_mirid": doc["compute"]["resourceId"],
    });
    let answer = json!({
        "access_token": identity.sign(&claims),
        "client_id": client_id,
        "expires_in": exp.saturating_sub(crate::jwt::now()).to_string(),
        "expires_on": exp.to_string(),
        "ext_expires_in": "86399",
        "not_before": iat.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    });
    identity.issued.insert(key, answer.clone());
    Ok(answer)
}

impl crate::metadata::FakeMetadata {
    /// Azure: the access token IMDS hands out for `resource` (and the
    /// user-assigned `client_id`), issued now if it was not yet: what a
    /// test looks for in a leak scan. Panics if there is no such identity.
    pub fn managed_identity_token(&self, resource: &str, client_id: Option<&str>) -> String {
        let mut state = super::lock(&self.state);
        let azure = state
            .data
            .as_any_mut()
            .downcast_mut::<Azure>()
            .expect("managed_identity_token is Azure only");
        let answer = issue(&azure.doc, &mut azure.identity, resource, client_id)
            .unwrap_or_else(|_| panic!("no managed identity for {client_id:?}"));
        answer["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[cfg(test)]
mod identity_tests {
    use super::*;
    use crate::metadata::{Cloud, FakeMetadata};
    use crate::util::http_request;

    fn get(fake: &FakeMetadata, query: &str) -> crate::HttpResponse {
        let port = fake.url().rsplit(':').next().unwrap().parse().unwrap();
        let path = format!("{TOKEN_PATH}?api-version=2018-02-01{query}");
        http_request(port, "GET", &path, &[("Metadata", "true")], None).unwrap()
    }

    #[test]
    fn managed_identity_tokens_are_signed_for_the_resource() {
        let fake = FakeMetadata::builder(Cloud::Azure)
            .user_assigned_identity("11111111-2222-3333-4444-555555555555")
            .start();
        let answer = get(&fake, "&resource=https%3A%2F%2Fvault.azure.net");
        assert_eq!(answer.status, 200);
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        let claims = fake
            .signing_key()
            .verify(body["access_token"].as_str().unwrap())
            .unwrap();
        assert_eq!(claims["aud"], "https://vault.azure.net");
        assert_eq!(claims["appid"], SYSTEM_CLIENT_ID);
        let user = get(
            &fake,
            "&resource=r&client_id=11111111-2222-3333-4444-555555555555",
        );
        let body: Value = serde_json::from_slice(&user.body).unwrap();
        assert_eq!(body["client_id"], "11111111-2222-3333-4444-555555555555");
        let unknown = get(&fake, "&resource=r&client_id=nope");
        assert_eq!(unknown.status, 400);
        assert!(unknown.text().contains("Identity not found"));
        assert_eq!(get(&fake, "").status, 400);

        let none = FakeMetadata::builder(Cloud::Azure).no_identity().start();
        assert!(get(&none, "&resource=r")
            .text()
            .contains("Identity not found"));
    }
}
