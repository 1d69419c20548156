//! Finding CloudStack's virtual router, the host that serves the metadata,
//! as cloud-init's `DataSourceCloudStack` finds it, in its order: the name
//! `data-server.` by the system resolver, then `SERVER_ADDRESS` in a
//! systemd-networkd lease, then `dhcp-server-identifier` in the newest
//! dhclient lease file. The router is the network's DNS and DHCP server, so
//! on CloudStack one of the three answers once the network is up.
//!
//! Unlike cloud-init, the default gateway is not a last resort: on a shared
//! or L2 network the gateway is an upstream router that is not CloudStack's,
//! and what it served as user-data would choose the script that runs as
//! root. When none of the three answers, the try fails with what was tried,
//! and the operator can name the router with `--metadata-endpoint`.
//!
//! The lease readers are pure functions over a file's text (fuzzed, with
//! the user-data reader, by `fuzz/fuzz_targets/cloudstack_answer.rs`); where
//! the leases are and how a name is resolved are fields of `RouterSearch`,
//! so the mock tests point them at fixtures and never resolve a name.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::util::text::{shown, shown_path};
use crate::util::BoxFuture;

/// The name CloudStack's virtual router answers for itself. Absolute (the
/// trailing dot), as CloudStack's documentation writes it: the resolver
/// does not walk the search domains, so the name is never sent to another
/// network's DNS as `data-server.corp.example`.
pub(crate) const DATA_SERVER: &str = "data-server.";
/// systemd-networkd's lease files, one per interface (named by ifindex).
pub(crate) const NETWORKD_LEASES: &str = "/run/systemd/netif/leases";
/// Where the distributions' dhclient keeps its lease files, in the order
/// cloud-init looks: Debian, Ubuntu and Alpine; its fallback; RHEL's
/// NetworkManager-run dhclient.
pub(crate) const DHCLIENT_LEASE_DIRS: [&str; 3] = [
    "/var/lib/dhcp",
    "/var/lib/dhclient",
    "/var/lib/NetworkManager",
];
/// Longest wait for the resolver: at boot, a DNS server that is not up yet
/// must not hold the try past the next one.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest lease file read: a lease is a few hundred bytes, and a
/// long-running dhclient appends one per renewal.
const MAX_LEASE_BYTES: u64 = 1024 * 1024;

/// Resolves a name to its addresses (the system resolver, or a test's).
pub(crate) type Resolve = Arc<dyn Fn(String) -> BoxFuture<'static, Vec<IpAddr>> + Send + Sync>;

/// Where the router is looked for.
#[derive(Clone)]
pub(crate) struct RouterSearch {
    pub(crate) resolve: Resolve,
    pub(crate) networkd_dir: PathBuf,
    pub(crate) dhclient_dirs: Vec<PathBuf>,
    /// The router's metadata port: 80, another only for tests.
    pub(crate) port: u16,
}

impl Default for RouterSearch {
    fn default() -> RouterSearch {
        RouterSearch {
            resolve: Arc::new(|name| Box::pin(system_resolve(name))),
            networkd_dir: PathBuf::from(NETWORKD_LEASES),
            dhclient_dirs: DHCLIENT_LEASE_DIRS.iter().map(PathBuf::from).collect(),
            port: 80,
        }
    }
}

/// The system resolver (getaddrinfo, off the async threads), bounded.
async fn system_resolve(name: String) -> Vec<IpAddr> {
    let lookup = tokio::net::lookup_host((name, 80));
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addresses)) => addresses.map(|a| a.ip()).collect(),
        _ => Vec::new(),
    }
}

/// Where the router was found, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) address: IpAddr,
    pub(crate) how: String,
}

impl RouterSearch {
    /// The router, or one line saying everything that was tried.
    pub(crate) async fn find(&self) -> Result<Found, String> {
        let found = |address, how: String| Ok(Found { address, how });
        if let Some(address) = (self.resolve)(DATA_SERVER.to_string())
            .await
            .into_iter()
            .next()
        {
            return found(address, format!("the DNS name {DATA_SERVER}"));
        }
        if let Some((address, file)) = self.in_networkd_leases() {
            return found(address, format!("SERVER_ADDRESS in {}", shown_path(&file)));
        }
        if let Some((address, file)) = self.in_dhclient_leases() {
            return found(
                address,
                format!("dhcp-server-identifier in {}", shown_path(&file)),
            );
        }
        let dirs: Vec<String> = self.dhclient_dirs.iter().map(|d| shown_path(d)).collect();
        Err(format!(
            "no CloudStack virtual router found: {DATA_SERVER} did not resolve, no \
             systemd-networkd lease in {} has a SERVER_ADDRESS, and no dhclient lease file in {} \
             has a dhcp-server-identifier. Is this a CloudStack instance with its network up? \
             Name the router with --metadata-endpoint http://ROUTER",
            shown_path(&self.networkd_dir),
            dirs.join(", ")
        ))
    }

    /// The first networkd lease, by file name (the ifindex) as cloud-init
    /// sorts them, that names a server.
    fn in_networkd_leases(&self) -> Option<(IpAddr, PathBuf)> {
        let mut files = lease_files(&self.networkd_dir, |_| true);
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files.into_iter().find_map(|(path, _)| {
            let text = read_lease(&path)?;
            networkd_server_address(&text).map(|a| (a, path))
        })
    }

    /// The newest dhclient lease file of the first directory that has one,
    /// and in it the latest lease that names a server.
    fn in_dhclient_leases(&self) -> Option<(IpAddr, PathBuf)> {
        let newest = self.dhclient_dirs.iter().find_map(|dir| {
            lease_files(dir, is_dhclient_lease)
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)))
        })?;
        let text = read_lease(&newest.0)?;
        dhclient_server_identifier(&text).map(|a| (a, newest.0))
    }
}

/// dhclient's lease files are `*.lease` or `*.leases` (`dhclient.eth0.leases`,
/// `dhclient-<uuid>-eth0.lease`), as cloud-init's fallback pattern has it.
fn is_dhclient_lease(name: &str) -> bool {
    name.len() > ".lease".len() && (name.ends_with(".lease") || name.ends_with(".leases"))
}

/// The regular files of `dir` whose names pass `keep`, with their mtimes.
fn lease_files(dir: &Path, keep: fn(&str) -> bool) -> Vec<(PathBuf, SystemTime)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(keep))
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            Some((e.path(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
        })
        .collect()
}

/// A lease file's text; an unreadable one is no lease (logged).
fn read_lease(path: &Path) -> Option<String> {
    match crate::util::fs::read_small_text(path, MAX_LEASE_BYTES, "DHCP lease file") {
        Ok(text) => Some(text),
        Err(e) => {
            tracing::debug!("skipping {}: {}", shown_path(path), shown(e.message()));
            None
        }
    }
}

/// `SERVER_ADDRESS=` of a systemd-networkd lease (`KEY=VALUE` lines, `#`
/// comments): the DHCP server's address. Pure: no I/O.
pub fn networkd_server_address(text: &str) -> Option<IpAddr> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(key, _)| key.trim() == "SERVER_ADDRESS")
        .find_map(|(_, value)| address(value))
}

/// `option dhcp-server-identifier A.B.C.D;` of the last `lease { … }` block
/// that has one: dhclient appends a block per lease, so the last is the
/// newest. A block cut off at the file's end (dhclient writing) is skipped.
/// Pure: no I/O.
pub fn dhclient_server_identifier(text: &str) -> Option<IpAddr> {
    let mut newest = None;
    let mut rest = text;
    while let Some(start) = find_lease_start(rest) {
        let body = &rest[start..];
        let Some(end) = body.find('}') else { break };
        if let Some(found) = body[..end].split(';').find_map(server_identifier) {
            newest = Some(found);
        }
        rest = &body[end + 1..];
    }
    newest
}

/// Where the body of the next `lease {` begins.
fn find_lease_start(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find("lease") {
        let after = from + at + "lease".len();
        let word_start = from + at == 0
            || text[..from + at]
                .chars()
                .next_back()
                .is_some_and(char::is_whitespace);
        let tail = text[after..].trim_start();
        if word_start && tail.starts_with('{') {
            return Some(text.len() - tail.len() + 1);
        }
        from = after;
    }
    None
}

/// One statement of a lease block, if it is the server identifier.
fn server_identifier(statement: &str) -> Option<IpAddr> {
    let mut words = statement.split_whitespace();
    if words.next()? != "option" || words.next()? != "dhcp-server-identifier" {
        return None;
    }
    let value = words.next()?;
    words.next().is_none().then_some(())?;
    address(value)
}

/// An IP address as a lease writes it (quotes tolerated).
fn address(value: &str) -> Option<IpAddr> {
    value.trim().trim_matches('"').parse().ok()
}
