//! The fake OpenStack (Nova) metadata service: no header; only `GET` and
//! `HEAD`. It serves `fixtures/openstack/openstack/latest/` under every
//! version a current Nova lists, with the tags as `meta_data.json`'s `meta`;
//! and builds, from the same data, the config drive that stands in for the
//! service when an instance has none ([`FakeMetadataBuilder::write_config_drive`],
//! [`FakeMetadataBuilder::config_drive_image`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{is_read, read_json, read_tree, FakeMetadataBuilder, Service};
use crate::origin::{reason, RecordedRequest, Reply};

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

/// What the OpenStack fake serves.
#[derive(Clone, Debug)]
struct OpenStack {
    /// Files of `openstack/latest/` other than `meta_data.json`, by name.
    files: BTreeMap<String, String>,
    meta_data: Value,
}

pub(super) fn load(dir: &Path) -> Box<dyn Service> {
    let latest = dir.join("openstack/latest");
    let mut files = read_tree(&latest);
    files.remove(OPENSTACK_META_DATA);
    Box::new(OpenStack {
        files,
        meta_data: read_json(&latest.join(OPENSTACK_META_DATA)),
    })
}

impl Service for OpenStack {
    fn instance_id(&self) -> Option<String> {
        self.meta_data["uuid"].as_str().map(str::to_string)
    }

    fn set_instance_id(&mut self, id: &str) {
        self.meta_data["uuid"] = json!(id);
    }

    fn set_tag(&mut self, key: &str, value: &str) {
        let meta_data = &mut self.meta_data;
        if !meta_data["meta"].is_object() {
            meta_data["meta"] = json!({});
        }
        meta_data["meta"][key] = json!(value);
    }

    fn clear_tags(&mut self) {
        // Nova leaves `meta` out when the server has no metadata.
        if let Some(m) = self.meta_data.as_object_mut() {
            m.remove("meta");
        }
    }

    fn error(&self, status: u16) -> Reply {
        error_reply(status)
    }

    fn handle(&mut self, req: &RecordedRequest) -> Reply {
        openstack(&self.files, &self.meta_data, req)
    }
}

/// Nova's HTML error page.
fn error_reply(status: u16) -> Reply {
    let text = reason(status);
    Reply::status_with_body(
        status,
        format!(
            "<html>\n <head>\n  <title>{status} {text}</title>\n </head>\n <body>\n  <h1>{status} {text}</h1>\n </body>\n</html>"
        ),
    )
    .with_header("Content-Type", "text/html; charset=UTF-8")
}

fn openstack_body(meta_data: &Value) -> String {
    meta_data.to_string()
}

fn openstack(files: &BTreeMap<String, String>, meta_data: &Value, req: &RecordedRequest) -> Reply {
    let not_found = || error_reply(404);
    let text =
        |body: String| Reply::ok(body).with_header("Content-Type", "text/plain; charset=UTF-8");
    if !is_read(req) {
        return error_reply(405);
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

impl FakeMetadataBuilder {
    /// Writes what the OpenStack fake would serve as a config drive's
    /// content into `dir`: `dir/openstack/latest/meta_data.json` (the same
    /// JSON, with this builder's overrides) and the fixture's other files of
    /// `openstack/latest/`. Panics unless the cloud is OpenStack.
    pub fn write_config_drive(&self, dir: &Path) {
        let Some(OpenStack { files, meta_data }) = self.data.as_any().downcast_ref() else {
            panic!(
                "write_config_drive is OpenStack only, not {}",
                self.cloud.name()
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
