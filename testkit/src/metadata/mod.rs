//! Fake cloud metadata services (plain HTTP on loopback) that answer like the
//! documented APIs and enforce what the real services enforce, so a client
//! that skips a rule fails here as it would in the cloud:
//!
//! * AWS IMDSv2 in "required" mode: `PUT /latest/api/token` needs
//!   `X-aws-ec2-metadata-token-ttl-seconds` in 1..=21600 (else `400`) and no
//!   `X-Forwarded-For` (else `403`); every other request needs a known,
//!   unexpired `X-aws-ec2-metadata-token` (else `401`).
//! * GCE: everything under `/computeMetadata/` needs `Metadata-Flavor: Google`
//!   exactly and no `X-Forwarded-For` (else `403`).
//! * Azure IMDS: everything under `/metadata/` needs `Metadata: true` and no
//!   `X-Forwarded-For` (else `400`), and a known `api-version` query (else
//!   `400` with the newest versions), except `/metadata/versions`.
//! * OpenStack (Nova): no header; only `GET`/`HEAD`.
//!
//! Every cloud answers `405` to methods it does not serve. Each 4xx other
//! than `404` counts as a refusal ([`FakeMetadata::refused`]).
//!
//! The data comes from the fixture tree `fixtures/<cloud>/` (files in the
//! documented formats) with the builder's overrides on top; tags and the
//! instance ID can also change while the fake runs. Each fake is an
//! [`Origin`] whose [`Handler`] answers every request.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::origin::{reason, Handler, Origin, RecordedRequest, Reply, ReservedOrigin};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

const AWS_TOKEN_PATH: &str = "/latest/api/token";
const AWS_META: &str = "latest/meta-data";
const AWS_TAGS: &str = "latest/meta-data/tags/instance";
const AWS_INSTANCE_ID: &str = "latest/meta-data/instance-id";
/// The longest token lifetime IMDSv2 grants (6 hours).
const AWS_MAX_TTL: u64 = 21_600;

const GCE_ROOT: &str = "computeMetadata/v1";
const GCE_INSTANCE_ID: &str = "computeMetadata/v1/instance/id";
const GCE_TAGS: &str = "computeMetadata/v1/instance/attributes/rs_agent-tags";

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

const OPENSTACK_META_DATA: &str = "meta_data.json";
/// The metadata versions a current Nova lists under `/openstack`.
const OPENSTACK_VERSIONS: &[&str] = &[
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
    "latest",
];

/// A cloud whose metadata service can be faked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    Aws,
    Gce,
    Azure,
    OpenStack,
}

impl Cloud {
    pub const ALL: [Cloud; 4] = [Cloud::Aws, Cloud::Gce, Cloud::Azure, Cloud::OpenStack];

    /// `"aws"`, `"gce"`, `"azure"` or `"openstack"` (also the fixture
    /// directory's name).
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gce => "gce",
            Cloud::Azure => "azure",
            Cloud::OpenStack => "openstack",
        }
    }

    /// `fixtures/<cloud>/` of this workspace.
    pub fn fixture_dir(self) -> PathBuf {
        Path::new(FIXTURES).join(self.name())
    }
}

/// What one fake serves: the fixture tree with overrides applied. File maps
/// are keyed by the path relative to `fixtures/<cloud>/`, `/`-separated.
#[derive(Clone, Debug)]
enum Data {
    Aws {
        /// Everything but the tags.
        files: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
        tags_enabled: bool,
    },
    Gce {
        files: BTreeMap<String, String>,
    },
    Azure {
        doc: Value,
    },
    OpenStack {
        /// Files of `openstack/latest/` other than `meta_data.json`, by name.
        files: BTreeMap<String, String>,
        meta_data: Value,
    },
}

impl Data {
    fn load(cloud: Cloud) -> Data {
        let dir = cloud.fixture_dir();
        match cloud {
            Cloud::Aws => {
                let mut files = read_tree(&dir);
                let prefix = format!("{AWS_TAGS}/");
                let tags = files
                    .iter()
                    .filter_map(|(p, v)| Some((p.strip_prefix(&prefix)?.to_string(), v.clone())))
                    .collect();
                files.retain(|p, _| !p.starts_with(&prefix));
                Data::Aws {
                    files,
                    tags,
                    tags_enabled: true,
                }
            }
            Cloud::Gce => Data::Gce {
                files: read_tree(&dir),
            },
            Cloud::Azure => Data::Azure {
                doc: read_json(&dir.join("instance.json")),
            },
            Cloud::OpenStack => {
                let latest = dir.join("openstack/latest");
                let mut files = read_tree(&latest);
                files.remove(OPENSTACK_META_DATA);
                Data::OpenStack {
                    files,
                    meta_data: read_json(&latest.join(OPENSTACK_META_DATA)),
                }
            }
        }
    }

    fn cloud(&self) -> Cloud {
        match self {
            Data::Aws { .. } => Cloud::Aws,
            Data::Gce { .. } => Cloud::Gce,
            Data::Azure { .. } => Cloud::Azure,
            Data::OpenStack { .. } => Cloud::OpenStack,
        }
    }

    fn instance_id(&self) -> String {
        let id = match self {
            Data::Aws { files, .. } => files.get(AWS_INSTANCE_ID).cloned(),
            Data::Gce { files } => files.get(GCE_INSTANCE_ID).cloned(),
            Data::Azure { doc } => doc["compute"]["vmId"].as_str().map(str::to_string),
            Data::OpenStack { meta_data, .. } => meta_data["uuid"].as_str().map(str::to_string),
        };
        id.unwrap_or_default()
    }

    fn set_instance_id(&mut self, id: &str) {
        match self {
            Data::Aws { files, .. } => {
                files.insert(AWS_INSTANCE_ID.to_string(), id.to_string());
            }
            Data::Gce { files } => {
                files.insert(GCE_INSTANCE_ID.to_string(), id.to_string());
            }
            Data::Azure { doc } => doc["compute"]["vmId"] = json!(id),
            Data::OpenStack { meta_data, .. } => meta_data["uuid"] = json!(id),
        }
    }

    fn set_tag(&mut self, key: &str, value: &str) {
        match self {
            Data::Aws { tags, .. } => {
                tags.insert(key.to_string(), value.to_string());
            }
            Data::Gce { files } => {
                let text = files.entry(GCE_TAGS.to_string()).or_default();
                *text = tags_file_with(text, key, value);
            }
            Data::Azure { doc } => {
                let compute = &mut doc["compute"];
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
            Data::OpenStack { meta_data, .. } => {
                if !meta_data["meta"].is_object() {
                    meta_data["meta"] = json!({});
                }
                meta_data["meta"][key] = json!(value);
            }
        }
    }

    fn clear_tags(&mut self) {
        match self {
            Data::Aws { tags, .. } => tags.clear(),
            Data::Gce { files } => {
                files.remove(GCE_TAGS);
            }
            Data::Azure { doc } => {
                doc["compute"]["tagsList"] = json!([]);
                doc["compute"]["tags"] = json!("");
            }
            Data::OpenStack { meta_data, .. } => {
                // Nova leaves `meta` out when the server has no metadata.
                if let Some(m) = meta_data.as_object_mut() {
                    m.remove("meta");
                }
            }
        }
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

/// Every file under `dir`, keyed by its `/`-separated relative path.
fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if path.is_dir() {
                walk(&path, &format!("{prefix}{name}/"), out);
            } else {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                out.insert(format!("{prefix}{name}"), text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The direct children of directory `dir` (ending in `/`, or empty for the
/// root) in a file map, each with whether it is a directory.
fn children(files: &BTreeMap<String, String>, dir: &str) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for path in files.keys() {
        if let Some(rest) = path.strip_prefix(dir) {
            match rest.split_once('/') {
                Some((first, _)) => out.insert(first.to_string(), true),
                None => out.insert(rest.to_string(), false),
            };
        }
    }
    out
}

/// `%XX` decoded; `None` if the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap() * 16 + hex(l).unwrap()) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded query parameters of a request target.
fn query(target: &str) -> Vec<(String, String)> {
    let Some((_, q)) = target.split_once('?') else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |s: &str| percent_decode(&s.replace('+', " ")).unwrap_or_default();
            (d(k), d(v))
        })
        .collect()
}

fn query_param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// 56 characters of the base64 alphabet from the kernel's CSPRNG.
fn random_token() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut buf = [0u8; 56];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter()
        .map(|b| ALPHABET[(b & 63) as usize] as char)
        .collect()
}

fn status_of(reply: &Reply) -> u16 {
    match reply {
        Reply::Status { status, .. } => *status,
        _ => 0,
    }
}

fn is_read(req: &RecordedRequest) -> bool {
    req.method == "GET" || req.method == "HEAD"
}

/// A body in the shape of `cloud`'s error responses.
fn error_reply(cloud: Cloud, status: u16) -> Reply {
    let text = reason(status);
    match cloud {
        Cloud::Aws => aws_error(status),
        Cloud::Gce => gce_reply(status, format!("{status} {text}\n")),
        Cloud::Azure => azure_json(status, &json!({ "error": text })),
        Cloud::OpenStack => Reply::status_with_body(
            status,
            format!(
                "<html>\n <head>\n  <title>{status} {text}</title>\n </head>\n <body>\n  <h1>{status} {text}</h1>\n </body>\n</html>"
            ),
        )
        .with_header("Content-Type", "text/html; charset=UTF-8"),
    }
}

/// IMDS's XHTML error page (its real body, minus the DOCTYPE).
fn aws_error(status: u16) -> Reply {
    let title = format!("{status} - {}", reason(status));
    Reply::status_with_body(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
        ),
    )
    .with_header("Content-Type", "text/html")
}

fn aws_text(body: impl Into<Vec<u8>>) -> Reply {
    Reply::ok(body).with_header("Content-Type", "text/plain")
}

fn gce_reply(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    gce_typed(status, "application/text", body)
}

fn gce_typed(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
    Reply::status_with_body(status, body)
        .with_header("Metadata-Flavor", "Google")
        .with_header("Content-Type", content_type)
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

fn openstack_body(meta_data: &Value) -> String {
    meta_data.to_string()
}

/// A running fake's mutable state, shared with its handler.
struct State {
    data: Data,
    /// AWS session tokens and when they expire.
    tokens: HashMap<String, Instant>,
    answer_first: VecDeque<u16>,
    refused: Vec<(RecordedRequest, u16)>,
}

impl State {
    fn handle(&mut self, req: &RecordedRequest) -> Reply {
        if let Some(status) = self.answer_first.pop_front() {
            return error_reply(self.data.cloud(), status);
        }
        let reply = match &self.data {
            Data::Aws {
                files,
                tags,
                tags_enabled,
            } => aws(files, tags, *tags_enabled, &mut self.tokens, req),
            Data::Gce { files } => gce(files, req),
            Data::Azure { doc } => azure(doc, req),
            Data::OpenStack { files, meta_data } => openstack(files, meta_data, req),
        };
        let status = status_of(&reply);
        if (400..500).contains(&status) && status != 404 {
            self.refused.push((req.clone(), status));
        }
        reply
    }
}

fn aws(
    files: &BTreeMap<String, String>,
    tags: &BTreeMap<String, String>,
    tags_enabled: bool,
    tokens: &mut HashMap<String, Instant>,
    req: &RecordedRequest,
) -> Reply {
    let now = Instant::now();
    tokens.retain(|_, expiry| *expiry > now);
    if req.path == AWS_TOKEN_PATH {
        if req.method != "PUT" {
            return aws_error(405);
        }
        // A token PUT that passed a proxy is refused, so tokens cannot be
        // obtained through a misconfigured forwarder.
        if req.header("x-forwarded-for").is_some() {
            return aws_error(403);
        }
        let ttl = req
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|t| (1..=AWS_MAX_TTL).contains(t));
        let Some(ttl) = ttl else {
            return aws_error(400);
        };
        let token = random_token();
        tokens.insert(token.clone(), now + Duration::from_secs(ttl));
        return aws_text(token)
            .with_header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl.to_string());
    }
    if !is_read(req) {
        return aws_error(405);
    }
    let expiry = req
        .header("x-aws-ec2-metadata-token")
        .and_then(|t| tokens.get(t));
    let Some(expiry) = expiry else {
        return aws_error(401);
    };
    let left = expiry.saturating_duration_since(now).as_secs().to_string();
    let ok =
        |body: String| aws_text(body).with_header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", &left);

    let rel = req.path.trim_start_matches('/');
    let trimmed = rel.trim_end_matches('/');
    let in_tags =
        trimmed == "latest/meta-data/tags" || trimmed.starts_with("latest/meta-data/tags/");
    if in_tags {
        if !tags_enabled {
            return aws_error(404);
        }
        if trimmed == "latest/meta-data/tags" {
            return ok("instance".to_string());
        }
        if trimmed == AWS_TAGS {
            let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
            return ok(keys.join("\n"));
        }
        let key = rel
            .strip_prefix(AWS_TAGS)
            .and_then(|k| k.strip_prefix('/'))
            .and_then(percent_decode);
        return match key.and_then(|k| tags.get(&k)) {
            Some(v) => ok(v.clone()),
            None => aws_error(404),
        };
    }
    if !rel.ends_with('/') {
        if let Some(v) = files.get(rel) {
            return ok(v.clone());
        }
    }
    let mut entries: Vec<String> = children(files, &format!("{trimmed}/"))
        .into_iter()
        .map(|(name, dir)| if dir { format!("{name}/") } else { name })
        .collect();
    if trimmed == AWS_META && tags_enabled {
        entries.push("tags/".to_string());
        entries.sort();
    }
    if entries.is_empty() {
        return aws_error(404);
    }
    ok(entries.join("\n"))
}

fn gce(files: &BTreeMap<String, String>, req: &RecordedRequest) -> Reply {
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

fn azure(doc: &Value, req: &RecordedRequest) -> Reply {
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

fn openstack(files: &BTreeMap<String, String>, meta_data: &Value, req: &RecordedRequest) -> Reply {
    let not_found = || error_reply(Cloud::OpenStack, 404);
    let text =
        |body: String| Reply::ok(body).with_header("Content-Type", "text/plain; charset=UTF-8");
    if !is_read(req) {
        return error_reply(Cloud::OpenStack, 405);
    }
    let path = req.path.trim_end_matches('/');
    if path == "/openstack" {
        return text(OPENSTACK_VERSIONS.join("\n"));
    }
    let Some(rest) = path.strip_prefix("/openstack/") else {
        return not_found();
    };
    let (version, file) = rest.split_once('/').unwrap_or((rest, ""));
    if !OPENSTACK_VERSIONS.contains(&version) {
        return not_found();
    }
    if file.is_empty() {
        let mut names: Vec<&str> = files.keys().map(String::as_str).collect();
        names.push(OPENSTACK_META_DATA);
        names.sort();
        return text(names.join("\n"));
    }
    if req.path.ends_with('/') {
        return not_found();
    }
    let body = if file == OPENSTACK_META_DATA {
        openstack_body(meta_data)
    } else {
        match files.get(file) {
            Some(b) => b.clone(),
            None => return not_found(),
        }
    };
    Reply::ok(body).with_header("Content-Type", "application/json")
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builder for a [`FakeMetadata`]; see [`FakeMetadata::builder`].
#[derive(Clone, Debug)]
pub struct FakeMetadataBuilder {
    data: Data,
    answer_first: Vec<u16>,
    ip: IpAddr,
}

/// A running fake metadata service; stops on Drop.
pub struct FakeMetadata {
    origin: Origin,
    state: Arc<Mutex<State>>,
    cloud: Cloud,
}

/// A fake whose port is chosen but which refuses connections until
/// [`ReservedFakeMetadata::start`].
pub struct ReservedFakeMetadata {
    origin: ReservedOrigin,
    state: Arc<Mutex<State>>,
    cloud: Cloud,
}

impl FakeMetadata {
    /// A fake serving the fixture tree `fixtures/<cloud>/`.
    pub fn builder(cloud: Cloud) -> FakeMetadataBuilder {
        FakeMetadataBuilder {
            data: Data::load(cloud),
            answer_first: Vec::new(),
            ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        }
    }

    /// `"http://IP:PORT"` (no trailing slash): the `--metadata-endpoint`.
    pub fn url(&self) -> String {
        base_url(&self.origin.url(""))
    }

    pub fn cloud(&self) -> Cloud {
        self.cloud
    }

    /// The instance ID served from now on.
    pub fn instance_id(&self) -> String {
        lock(&self.state).data.instance_id()
    }

    /// Serve `id` as the instance ID for later requests.
    pub fn set_instance_id(&self, id: &str) {
        lock(&self.state).data.set_instance_id(id);
    }

    /// Add or replace one tag for later requests.
    pub fn set_tag(&self, key: &str, value: &str) {
        lock(&self.state).data.set_tag(key, value);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.origin.requests()
    }

    /// The requests refused for breaking the service's rules (every 4xx
    /// other than `404`, not counting [`FakeMetadataBuilder::answer_first`]),
    /// with the status sent.
    pub fn refused(&self) -> Vec<(RecordedRequest, u16)> {
        lock(&self.state).refused.clone()
    }
}

impl std::fmt::Debug for FakeMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeMetadata")
            .field("cloud", &self.cloud)
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

fn base_url(root: &str) -> String {
    root.trim_end_matches('/').to_string()
}

impl FakeMetadataBuilder {
    /// Add or replace one instance tag (on top of the fixture's).
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.data.set_tag(key, value);
        self
    }

    /// The instance has no tags: AWS lists none, GCE has no `rs_agent-tags`
    /// attribute, Azure has an empty `tagsList` and `tags`, OpenStack has no
    /// `meta`. Later [`FakeMetadataBuilder::tag`]s still apply.
    pub fn no_tags(mut self) -> Self {
        self.data.clear_tags();
        self
    }

    /// AWS only: "instance metadata tags" off, so `tags/instance` and below
    /// answer `404`. Panics for other clouds.
    pub fn tags_disabled(mut self) -> Self {
        match &mut self.data {
            Data::Aws { tags_enabled, .. } => *tags_enabled = false,
            other => panic!("tags_disabled is AWS only, not {}", other.cloud().name()),
        }
        self
    }

    pub fn instance_id(mut self, id: &str) -> Self {
        self.data.set_instance_id(id);
        self
    }

    /// The first requests (any path, valid or not) get these statuses in
    /// order, with a body shaped like the cloud's error bodies; then normal
    /// behaviour.
    pub fn answer_first(mut self, statuses: &[u16]) -> Self {
        self.answer_first.extend_from_slice(statuses);
        self
    }

    /// Listen on another loopback address than 127.0.0.1.
    pub fn bind_ip(mut self, ip: IpAddr) -> Self {
        self.ip = ip;
        self
    }

    /// Start serving; listening when this returns.
    pub fn start(self) -> FakeMetadata {
        let cloud = self.data.cloud();
        let (origin, state) = self.origin();
        FakeMetadata {
            origin: origin.start(),
            state,
            cloud,
        }
    }

    /// Pick the port now, serve only after [`ReservedFakeMetadata::start`].
    pub fn reserve(self) -> ReservedFakeMetadata {
        let cloud = self.data.cloud();
        let (origin, state) = self.origin();
        ReservedFakeMetadata {
            origin: origin.reserve(),
            state,
            cloud,
        }
    }

    fn origin(self) -> (crate::origin::OriginBuilder, Arc<Mutex<State>>) {
        let state = Arc::new(Mutex::new(State {
            data: self.data,
            tokens: HashMap::new(),
            answer_first: self.answer_first.into(),
            refused: Vec::new(),
        }));
        let shared = state.clone();
        let handler: Handler = Arc::new(move |req| Some(lock(&shared).handle(req)));
        let builder = Origin::builder(None).bind_ip(self.ip).handler(handler);
        (builder, state)
    }

    /// Writes what the OpenStack fake would serve as a config drive's
    /// content into `dir`: `dir/openstack/latest/meta_data.json` (the same
    /// JSON, with this builder's overrides) and the fixture's other files of
    /// `openstack/latest/`. Panics unless the cloud is OpenStack.
    pub fn write_config_drive(&self, dir: &Path) {
        let Data::OpenStack { files, meta_data } = &self.data else {
            panic!(
                "write_config_drive is OpenStack only, not {}",
                self.data.cloud().name()
            );
        };
        let latest = dir.join("openstack/latest");
        std::fs::create_dir_all(&latest)
            .unwrap_or_else(|e| panic!("create {}: {e}", latest.display()));
        let meta = std::iter::once((OPENSTACK_META_DATA, openstack_body(meta_data)));
        let others = files.iter().map(|(n, b)| (n.as_str(), b.clone()));
        for (name, body) in meta.chain(others) {
            let path = latest.join(name);
            std::fs::write(&path, body).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }

    /// Builds a 4 MiB ext4 image at `path`, labelled `config-2`, holding
    /// [`FakeMetadataBuilder::write_config_drive`]'s tree (`mkfs.ext4 -d`,
    /// from e2fsprogs). A real config drive is vfat or iso9660, but the test
    /// kernel has neither, so ext4 stands in: what a client looks for is
    /// the `config-2` label and the `openstack/latest/meta_data.json` path.
    /// Panics unless the cloud is OpenStack, or if mkfs.ext4 fails.
    pub fn config_drive_image(&self, path: &Path) {
        let tree = tempfile::Builder::new()
            .prefix("testkit-config-drive-")
            .tempdir()
            .expect("create temp dir");
        self.write_config_drive(tree.path());
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {}: {e}", path.display()),
        }
        // /sbin is not on every PATH.
        let candidates = ["mkfs.ext4", "/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"];
        let mut last_err = None;
        for program in candidates {
            let out = Command::new(program)
                .args(["-q", "-L", "config-2", "-d"])
                .arg(tree.path())
                .arg(path)
                .arg("4M")
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(o) if o.status.success() => return,
                Ok(o) => panic!(
                    "{program} for {} failed ({}): {}",
                    path.display(),
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => last_err = Some(e),
            }
        }
        panic!("mkfs.ext4 (e2fsprogs) not found: {last_err:?}");
    }
}

impl std::fmt::Debug for ReservedFakeMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReservedFakeMetadata")
            .field("cloud", &self.cloud)
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl ReservedFakeMetadata {
    /// The base URL the fake will have.
    pub fn url(&self) -> String {
        base_url(&self.origin.url(""))
    }

    /// Bind the reserved port and serve.
    pub fn start(self) -> FakeMetadata {
        FakeMetadata {
            origin: self.origin.start(),
            state: self.state,
            cloud: self.cloud,
        }
    }
}
