//! The fake GCE metadata server: everything under `/computeMetadata/` needs
//! `Metadata-Flavor: Google` exactly and no `X-Forwarded-For` (else `403`).
//! It serves `fixtures/gce/` as the tree the server lists (a directory only
//! at its URL with the trailing slash, `301` without), as text or, with
//! `alt=json` or `recursive=true`, as GCE's JSON; the tags are the
//! `rs_agent-tags` attribute, a tags file.
//!
//! The default service account (`identity.rs`) is served under
//! `instance/service-accounts/`: its email, scopes, OAuth access token
//! (`{access_token, expires_in, token_type}`) and identity tokens (RS256
//! JWTs for `audience=`, `format=standard|full`, in Google's claim shape).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::identity::Identity;
use super::{children, is_read, percent_decode, query, query_param, read_tree, Service};
use crate::origin::{reason, RecordedRequest, Reply};

const GCE_ROOT: &str = "computeMetadata/v1";
const GCE_INSTANCE_ID: &str = "computeMetadata/v1/instance/id";
const GCE_TAGS: &str = "computeMetadata/v1/instance/attributes/rs_agent-tags";

/// What the GCE fake serves, keyed by the path relative to `fixtures/gce/`.
#[derive(Clone, Debug)]
struct Gce {
    files: BTreeMap<String, String>,
    identity: Identity,
}

pub(super) fn load(dir: &Path) -> Box<dyn Service> {
    Box::new(Gce {
        files: read_tree(dir),
        identity: Identity::new(format!("ya29.c.fake-{}", crate::util::random_hex())),
    })
}

impl Service for Gce {
    fn instance_id(&self) -> Option<String> {
        self.files.get(GCE_INSTANCE_ID).cloned()
    }

    fn set_instance_id(&mut self, id: &str) {
        self.files
            .insert(GCE_INSTANCE_ID.to_string(), id.to_string());
    }

    fn set_tag(&mut self, key: &str, value: &str) {
        let text = self.files.entry(GCE_TAGS.to_string()).or_default();
        *text = tags_file_with(text, key, value);
    }

    fn clear_tags(&mut self) {
        self.files.remove(GCE_TAGS);
    }

    fn error(&self, status: u16) -> Reply {
        gce_reply(status, format!("{status} {}\n", reason(status)))
    }

    fn handle(&mut self, req: &RecordedRequest) -> Reply {
        gce(&self.files, &self.identity, req)
    }

    fn identity(&mut self) -> Option<&mut Identity> {
        Some(&mut self.identity)
    }
}

/// `text` (tags-file form) with the `key=` line replaced by `key=value`, or
/// that line appended.
fn tags_file_with(text: &str, key: &str, value: &str) -> String {
    let line = format!("{key}={value}");
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let existing = lines
        .iter_mut()
        .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with('=')));
    match existing {
        Some(l) => *l = line,
        None => {
            if lines.last().is_some_and(|l| l.is_empty()) {
                lines.pop();
            }
            lines.push(line);
            lines.push(String::new());
        }
    }
    lines.join("\n")
}

fn gce_reply(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    gce_typed(status, "application/text", body)
}

fn gce_typed(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
    Reply::status_with_body(status, body)
        .with_header("Metadata-Flavor", "Google")
        .with_header("Content-Type", content_type)
}

fn gce(files: &BTreeMap<String, String>, identity: &Identity, req: &RecordedRequest) -> Reply {
    let path = percent_decode(&req.path).unwrap_or_default();
    if !(path == "/computeMetadata" || path.starts_with("/computeMetadata/")) {
        return gce_reply(404, "Not Found\n");
    }
    if req.header("x-forwarded-for").is_some() {
        return gce_reply(
            403,
            "Requests with an X-Forwarded-For header are not allowed.\n",
        );
    }
    // Google compares the value exactly: "google" is refused too.
    if req.header("metadata-flavor") != Some("Google") {
        return gce_reply(403, "Missing required header: Metadata-Flavor\n");
    }
    if !is_read(req) {
        return gce_reply(405, "Method Not Allowed\n");
    }
    let rel = &path[1..];
    let trimmed = rel.trim_end_matches('/');
    if !(trimmed == GCE_ROOT || trimmed.starts_with(&format!("{GCE_ROOT}/"))) {
        return gce_reply(404, "Not Found\n");
    }
    let q = query(&req.target);
    let recursive = query_param(&q, "recursive") == Some("true");
    let json = match query_param(&q, "alt") {
        Some("json") => true,
        Some("text") | None => recursive,
        Some(_) => return gce_reply(400, "Invalid alt parameter\n"),
    };
    if let Some(rest) = trimmed.strip_prefix(SERVICE_ACCOUNTS) {
        return service_account(files, identity, rest, &q);
    }
    let in_attributes = trimmed.contains("/attributes/");
    if !rel.ends_with('/') {
        if let Some(v) = files.get(rel) {
            if json {
                let leaf = gce_leaf(v, in_attributes);
                return gce_typed(200, "application/json", leaf.to_string());
            }
            return gce_reply(200, v.clone());
        }
    }
    let dir = format!("{trimmed}/");
    let entries = children(files, &dir);
    if entries.is_empty() {
        return gce_reply(404, "Not Found\n");
    }
    if json {
        let tree = gce_tree(files, &dir, trimmed.ends_with("/attributes"));
        return gce_typed(200, "application/json", tree.to_string());
    }
    if !rel.ends_with('/') {
        // A directory is listed only at its URL with the trailing slash.
        let location = format!(
            "{}/{}",
            req.path,
            req.target.get(req.path.len()..).unwrap_or("")
        );
        return gce_reply(301, "").with_header("Location", location);
    }
    let listing: String = entries
        .into_iter()
        .map(|(name, dir)| {
            if dir {
                format!("{name}/\n")
            } else {
                format!("{name}\n")
            }
        })
        .collect();
    gce_reply(200, listing)
}

/// A leaf as GCE renders it in JSON: numbers for numeric built-in values,
/// strings otherwise (attribute values are always strings).
fn gce_leaf(v: &str, attribute: bool) -> Value {
    match v.parse::<u64>() {
        Ok(n) if !attribute => json!(n),
        _ => json!(v),
    }
}

/// A directory as GCE's `recursive=true` JSON: built-in names in camelCase,
/// attribute names as they are.
fn gce_tree(files: &BTreeMap<String, String>, dir: &str, attributes: bool) -> Value {
    let mut obj = Map::new();
    for (name, is_dir) in children(files, dir) {
        let value = if is_dir {
            gce_tree(files, &format!("{dir}{name}/"), name == "attributes")
        } else {
            gce_leaf(&files[&format!("{dir}{name}")], attributes)
        };
        let key = if attributes { name } else { camel_case(&name) };
        obj.insert(key, value);
    }
    Value::Object(obj)
}

fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        match c {
            '-' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

const SERVICE_ACCOUNTS: &str = "computeMetadata/v1/instance/service-accounts";
const SCOPES: &str = "https://www.googleapis.com/auth/cloud-platform\n";

/// The fixture file at `path` below `computeMetadata/v1/`, trimmed.
fn file<'a>(files: &'a BTreeMap<String, String>, path: &str) -> &'a str {
    files
        .get(&format!("{GCE_ROOT}/{path}"))
        .map(|s| s.trim())
        .unwrap_or("")
}

/// The service account's email: `tagstrap-vm@PROJECT.iam.gserviceaccount.com`.
fn email(files: &BTreeMap<String, String>) -> String {
    format!(
        "tagstrap-vm@{}.iam.gserviceaccount.com",
        file(files, "project/project-id")
    )
}

/// `instance/service-accounts` + `rest`: the listing, or one account's
/// `email`, `scopes`, `aliases`, `token` or `identity`.
fn service_account(
    files: &BTreeMap<String, String>,
    identity: &Identity,
    rest: &str,
    q: &[(String, String)],
) -> Reply {
    let not_found = || gce_reply(404, "Not Found\n");
    if !identity.attached {
        return not_found();
    }
    let email = email(files);
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        return gce_reply(200, format!("default/\n{email}/\n"));
    }
    let (account, what) = rest.split_once('/').unwrap_or((rest, ""));
    if account != "default" && account != email {
        return not_found();
    }
    match what {
        "" => gce_reply(200, "aliases\nemail\nidentity\nscopes\ntoken\n"),
        "email" => gce_reply(200, email),
        "aliases" => gce_reply(200, "default\n"),
        "scopes" => gce_reply(200, SCOPES),
        "token" => {
            let (_, exp) = identity.times(3599);
            let expires_in = exp.saturating_sub(crate::jwt::now());
            let body = json!({
                "access_token": identity.access_token,
                "expires_in": expires_in,
                "token_type": "Bearer",
            });
            gce_typed(200, "application/json", body.to_string())
        }
        "identity" => identity_token(files, identity, &email, q),
        _ => not_found(),
    }
}

/// An identity token as Google signs it: `format=standard` (the default)
/// or `full`, which adds `google.compute_engine`.
fn identity_token(
    files: &BTreeMap<String, String>,
    identity: &Identity,
    email: &str,
    q: &[(String, String)],
) -> Reply {
    let audience = query_param(q, "audience").unwrap_or("");
    if audience.is_empty() {
        return gce_reply(400, "non-empty audience parameter required\n");
    }
    let full = match query_param(q, "format") {
        None | Some("standard") => false,
        Some("full") => true,
        Some(_) => return gce_reply(400, "format must be standard or full\n"),
    };
    let (iat, exp) = identity.times(3600);
    // The account's unique ID: 21 digits, as Google's.
    let sub = "104567890123456789012";
    let mut claims = json!({
        "iss": "https://accounts.google.com",
        "aud": identity.audience(audience),
        "sub": sub,
        "azp": sub,
        "email": email,
        "email_verified": true,
        "iat": iat,
        "exp": exp,
    });
    if full {
        let zone = file(files, "instance/zone");
        claims["google"] = json!({
            "compute_engine": {
                "project_id": file(files, "project/project-id"),
                "project_number": file(files, "project/numeric-project-id").parse::<u64>().unwrap_or(0),
                "zone": zone.rsplit('/').next().unwrap_or(zone),
                "instance_id": file(files, "instance/id"),
                "instance_name": file(files, "instance/name"),
                "instance_creation_timestamp": iat - 86_400,
            }
        });
    }
    gce_reply(200, identity.sign(&claims))
}

#[cfg(test)]
mod identity_tests {
    use super::*;
    use crate::metadata::{Cloud, FakeMetadata};
    use crate::util::http_request;

    fn get(fake: &FakeMetadata, path: &str) -> crate::HttpResponse {
        let port = fake.url().rsplit(':').next().unwrap().parse().unwrap();
        http_request(port, "GET", path, &[("Metadata-Flavor", "Google")], None).unwrap()
    }

    #[test]
    fn the_service_account_serves_tokens_signed_in_googles_shape() {
        let fake = FakeMetadata::builder(Cloud::Gce).start();
        let base = "/computeMetadata/v1/instance/service-accounts/default";
        let token = get(&fake, &format!("{base}/token"));
        assert_eq!(token.status, 200);
        let body: Value = serde_json::from_str(&token.text()).unwrap();
        assert_eq!(body["access_token"], fake.access_token());
        let jwt = get(
            &fake,
            &format!("{base}/identity?audience=vault&format=full"),
        )
        .text();
        let claims = fake.signing_key().verify(&jwt).unwrap();
        assert_eq!(claims["aud"], "vault");
        assert_eq!(
            claims["google"]["compute_engine"]["project_id"],
            "example-project"
        );
        assert_eq!(get(&fake, &format!("{base}/identity")).status, 400);

        let none = FakeMetadata::builder(Cloud::Gce).no_identity().start();
        let get_none = get(&none, &format!("{base}/token"));
        assert_eq!(get_none.status, 404);
    }
}
