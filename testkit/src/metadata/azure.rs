//! The fake Azure Instance Metadata Service: everything under `/metadata/`
//! needs `Metadata: true` and no `X-Forwarded-For` (else `400`), and a known
//! `api-version` query (else `400` with the newest versions), except
//! `/metadata/versions`. It serves `fixtures/azure/instance.json` as the
//! `/metadata/instance` document, as JSON or (`format=text`, leaves only)
//! as text; the tags are both its `tagsList` and its semicolon `tags`.

use std::path::Path;

use serde_json::{json, Value};

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
}

pub(super) fn load(dir: &Path) -> Box<dyn Service> {
    Box::new(Azure {
        doc: read_json(&dir.join("instance.json")),
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
        azure(&self.doc, req)
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
