//! Fake cloud metadata services (plain HTTP on loopback) that answer like the
//! documented APIs and enforce what the real services enforce, so a client
//! that skips a rule fails here as it would in the cloud. Each cloud is one
//! file beside this one, owning its paths, its rules and its error bodies:
//! `aws.rs` (IMDSv2), `gce.rs`, `azure.rs` (IMDS), `openstack.rs` (Nova,
//! and the config drive) and `cloudstack.rs` (the virtual router, whose
//! user-data carries the tags; public for its user-data builders). A new cloud is one more file, its [`Cloud`]
//! variant and its arm in `Cloud::wiring`.
//!
//! This file owns what they share: the server (each fake is an [`Origin`]
//! whose [`Handler`] hands every request to the cloud's `Service`), the
//! builder and its overrides, and the rules common to every cloud: each
//! answers `405` to methods it does not serve, each 4xx other than `404`
//! counts as a refusal ([`FakeMetadata::refused`]), and
//! [`FakeMetadataBuilder::answer_first`] answers with the cloud's own error
//! body.
//!
//! The data comes from the fixture tree `fixtures/<cloud>/` (files in the
//! documented formats) with the builder's overrides on top; tags and the
//! instance ID can also change while the fake runs.

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use crate::origin::{Handler, Origin, RecordedRequest, Reply, ReservedOrigin};

mod aws;
pub use aws::{AwsCredentials, AwsRoleSet};
mod azure;
pub mod cloudstack;
mod gce;
mod identity;

pub use azure::{SYSTEM_CLIENT_ID as AZURE_SYSTEM_CLIENT_ID, TENANT as AZURE_TENANT};
mod openstack;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

/// A cloud whose metadata service can be faked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    Aws,
    Gce,
    Azure,
    OpenStack,
    CloudStack,
}

impl Cloud {
    pub const ALL: [Cloud; 5] = [
        Cloud::Aws,
        Cloud::Gce,
        Cloud::Azure,
        Cloud::OpenStack,
        Cloud::CloudStack,
    ];

    /// The one place a cloud is wired in: its name (also its fixture
    /// directory's) and how its file loads that fixture.
    fn wiring(self) -> (&'static str, Loader) {
        match self {
            Cloud::Aws => ("aws", aws::load),
            Cloud::Gce => ("gce", gce::load),
            Cloud::Azure => ("azure", azure::load),
            Cloud::OpenStack => ("openstack", openstack::load),
            Cloud::CloudStack => ("cloudstack", cloudstack::load),
        }
    }

    /// `"aws"`, `"gce"`, `"azure"`, `"openstack"` or `"cloudstack"` (also
    /// the fixture directory's name).
    pub fn name(self) -> &'static str {
        self.wiring().0
    }

    /// `fixtures/<cloud>/` of this workspace.
    pub fn fixture_dir(self) -> PathBuf {
        Path::new(FIXTURES).join(self.name())
    }

    /// What the fake of this cloud serves: its fixture tree.
    fn load(self) -> Box<dyn Service> {
        (self.wiring().1)(&self.fixture_dir())
    }
}

/// A cloud file's `load`: its fixture directory in, its [`Service`] out.
type Loader = fn(&Path) -> Box<dyn Service>;

/// One cloud's fake: the data it serves (the fixture with overrides
/// applied) and how it answers. Implemented once per cloud file.
trait Service: Erased + Send + fmt::Debug {
    /// The instance ID served, if the data has one.
    fn instance_id(&self) -> Option<String>;
    fn set_instance_id(&mut self, id: &str);
    /// Add or replace one instance tag.
    fn set_tag(&mut self, key: &str, value: &str);
    /// The instance has no tags, in the form the cloud shows that.
    fn clear_tags(&mut self);
    /// A reply with `status` and a body in the shape of the cloud's error
    /// responses.
    fn error(&self, status: u16) -> Reply;
    /// The answer to one request, rules enforced.
    fn handle(&mut self, req: &RecordedRequest) -> Reply;
    /// The instance's own identity, for the clouds that serve one
    /// (`identity.rs`).
    fn identity(&mut self) -> Option<&mut identity::Identity> {
        None
    }
}

/// What a boxed [`Service`] needs that a cloud gets for free by deriving
/// `Clone`: cloning (the builder is `Clone`), and the concrete type back for
/// the overrides only one cloud has ([`FakeMetadataBuilder::tags_disabled`],
/// [`FakeMetadataBuilder::write_config_drive`]).
trait Erased {
    fn clone_box(&self) -> Box<dyn Service>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Service + Clone + 'static> Erased for T {
    fn clone_box(&self) -> Box<dyn Service> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Clone for Box<dyn Service> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
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

fn status_of(reply: &Reply) -> u16 {
    match reply {
        Reply::Status { status, .. } => *status,
        _ => 0,
    }
}

fn is_read(req: &RecordedRequest) -> bool {
    req.method == "GET" || req.method == "HEAD"
}

/// A running fake's mutable state, shared with its handler.
struct State {
    data: Box<dyn Service>,
    answer_first: VecDeque<u16>,
    refused: Vec<(RecordedRequest, u16)>,
}

impl State {
    fn handle(&mut self, req: &RecordedRequest) -> Reply {
        if let Some(status) = self.answer_first.pop_front() {
            return self.data.error(status);
        }
        let reply = self.data.handle(req);
        let status = status_of(&reply);
        if (400..500).contains(&status) && status != 404 {
            self.refused.push((req.clone(), status));
        }
        reply
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builder for a [`FakeMetadata`]; see [`FakeMetadata::builder`].
#[derive(Clone, Debug)]
pub struct FakeMetadataBuilder {
    cloud: Cloud,
    data: Box<dyn Service>,
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
            cloud,
            data: cloud.load(),
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
        lock(&self.state).data.instance_id().unwrap_or_default()
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
    /// `meta`, CloudStack's user-data has no tags part. Later
    /// [`FakeMetadataBuilder::tag`]s still apply.
    pub fn no_tags(mut self) -> Self {
        self.data.clear_tags();
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
        let cloud = self.cloud;
        let (origin, state) = self.origin();
        FakeMetadata {
            origin: origin.start(),
            state,
            cloud,
        }
    }

    /// Pick the port now, serve only after [`ReservedFakeMetadata::start`].
    pub fn reserve(self) -> ReservedFakeMetadata {
        let cloud = self.cloud;
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
            answer_first: self.answer_first.into(),
            refused: Vec::new(),
        }));
        let shared = state.clone();
        let handler: Handler = Arc::new(move |req| Some(lock(&shared).handle(req)));
        let builder = Origin::builder(None).bind_ip(self.ip).handler(handler);
        (builder, state)
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
