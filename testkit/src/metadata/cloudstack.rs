//! The fake CloudStack virtual router's metadata service: no header; only
//! `GET` and `HEAD`. It serves `fixtures/cloudstack/latest/meta-data/` as
//! the router does (a listing of names, each value as text) and
//! `/latest/user-data`: a MIME multipart as `cloud-init devel make-mime`
//! builds it, holding the tags (`fixtures/cloudstack/tagstrap.tags`, with
//! the builder's overrides) as the `text/x-tagstrap-tags` part and a
//! `text/x-shellscript` part that starts tagstrap. The user-data can also be
//! given whole ([`FakeMetadataBuilder::user_data`]), gzip'd
//! ([`FakeMetadataBuilder::gzip_user_data`]) or missing
//! ([`FakeMetadataBuilder::no_user_data`], a 404).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use base64::Engine;

use super::{children, is_read, read_tree, FakeMetadataBuilder, Service};
use crate::origin::{reason, RecordedRequest, Reply};

const META: &str = "latest/meta-data";
const INSTANCE_ID: &str = "latest/meta-data/instance-id";
const USER_DATA: &str = "latest/user-data";
const TAGS_FILE: &str = "tagstrap.tags";
/// The boundary of the user-data the fake builds, in make-mime's style.
pub const BOUNDARY: &str = "===============4650172894725630214==";
/// The shell part of the user-data the fake builds.
pub const SHELL_PART: &str = "#!/bin/sh\nexec tagstrap run --source cloudstack --once\n";

/// What the CloudStack fake serves.
#[derive(Clone, Debug)]
struct CloudStack {
    /// `latest/meta-data/…`, keyed by the path relative to the fixture.
    files: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    user_data: UserData,
    gzip: bool,
}

#[derive(Clone, Debug)]
enum UserData {
    /// Built from the tags (none: a MIME user-data without a tags part).
    Built,
    Given(Vec<u8>),
    Missing,
}

pub(super) fn load(dir: &Path) -> Box<dyn Service> {
    let mut files = read_tree(dir);
    let tags_file = files.remove(TAGS_FILE).unwrap_or_default();
    let tags = tags_file
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Box::new(CloudStack {
        files,
        tags,
        user_data: UserData::Built,
        gzip: false,
    })
}

impl Service for CloudStack {
    fn instance_id(&self) -> Option<String> {
        self.files.get(INSTANCE_ID).cloned()
    }

    fn set_instance_id(&mut self, id: &str) {
        self.files.insert(INSTANCE_ID.to_string(), id.to_string());
    }

    fn set_tag(&mut self, key: &str, value: &str) {
        self.tags.insert(key.to_string(), value.to_string());
    }

    fn clear_tags(&mut self) {
        self.tags.clear();
    }

    fn error(&self, status: u16) -> Reply {
        error_reply(status)
    }

    fn handle(&mut self, req: &RecordedRequest) -> Reply {
        if !is_read(req) {
            return error_reply(405);
        }
        let rel = req.path.trim_start_matches('/');
        let trimmed = rel.trim_end_matches('/');
        if trimmed == "latest" {
            return text("meta-data\nuser-data".into());
        }
        if trimmed == USER_DATA {
            return match self.user_data() {
                Some(body) => Reply::ok(body).with_header("Content-Type", "text/plain"),
                None => error_reply(404),
            };
        }
        if !rel.ends_with('/') {
            if let Some(v) = self.files.get(rel) {
                return text(v.clone());
            }
        }
        if trimmed == META || trimmed.starts_with(&format!("{META}/")) {
            let names: Vec<String> = children(&self.files, &format!("{trimmed}/"))
                .into_keys()
                .collect();
            if !names.is_empty() {
                return text(names.join("\n"));
            }
        }
        error_reply(404)
    }
}

impl CloudStack {
    /// `latest/user-data` as served, `None` for a 404.
    fn user_data(&self) -> Option<Vec<u8>> {
        let body = match &self.user_data {
            UserData::Missing => return None,
            UserData::Given(body) => body.clone(),
            UserData::Built => {
                let tags: String = self
                    .tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect();
                let mut parts = Vec::new();
                if !self.tags.is_empty() {
                    parts.push(("text/x-tagstrap-tags", "tagstrap.tags", tags.as_str()));
                }
                parts.push(("text/x-shellscript", "start-tagstrap.sh", SHELL_PART));
                multipart(&parts).into_bytes()
            }
        };
        Some(if self.gzip { gzip(&body) } else { body })
    }
}

/// A `multipart/mixed` of `(type, file name, text)` parts as make-mime
/// writes it: 7bit when a part is ASCII, else base64 of its UTF-8.
pub fn multipart(parts: &[(&str, &str, &str)]) -> String {
    let mut out =
        format!("Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\nMIME-Version: 1.0\n\n");
    for (mime_type, name, body) in parts {
        let (charset, encoding, body) = if body.is_ascii() {
            ("us-ascii", "7bit", body.to_string())
        } else {
            let encoded = base64::engine::general_purpose::STANDARD.encode(body);
            let lines: Vec<&str> = encoded
                .as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            ("utf-8", "base64", lines.join("\n") + "\n")
        };
        out.push_str(&format!(
            "--{BOUNDARY}\nContent-Type: {mime_type}; charset=\"{charset}\"\nMIME-Version: 1.0\n\
             Content-Transfer-Encoding: {encoding}\nContent-Disposition: attachment; \
             filename=\"{name}\"\n\n{body}\n"
        ));
    }
    out.push_str(&format!("--{BOUNDARY}--\n"));
    out
}

/// `body` gzip'd, as `gzip` on the command line would.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// The router's Apache error page.
fn error_reply(status: u16) -> Reply {
    let text = reason(status);
    Reply::status_with_body(
        status,
        format!(
            "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{status} {text}</title>\n</head><body>\n<h1>{text}</h1>\n</body></html>\n"
        ),
    )
    .with_header("Content-Type", "text/html; charset=iso-8859-1")
}

fn text(body: String) -> Reply {
    Reply::ok(body).with_header("Content-Type", "text/plain")
}

impl FakeMetadataBuilder {
    fn cloudstack(&mut self, what: &str) -> &mut CloudStack {
        let cloud = self.cloud;
        match self.data.as_any_mut().downcast_mut::<CloudStack>() {
            Some(cloudstack) => cloudstack,
            None => panic!("{what} is CloudStack only, not {}", cloud.name()),
        }
    }

    /// CloudStack only: serve exactly these bytes as `latest/user-data`.
    pub fn user_data(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.cloudstack("user_data").user_data = UserData::Given(body.into());
        self
    }

    /// CloudStack only: the instance has no user-data (`404`).
    pub fn no_user_data(mut self) -> Self {
        self.cloudstack("no_user_data").user_data = UserData::Missing;
        self
    }

    /// CloudStack only: the user-data is served gzip'd.
    pub fn gzip_user_data(mut self) -> Self {
        self.cloudstack("gzip_user_data").gzip = true;
        self
    }
}
