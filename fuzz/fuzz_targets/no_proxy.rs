//! The no-proxy list on arbitrary UTF-8: `rs_agent:http_no_proxy` and the
//! system's `no_proxy`. The input is split at newlines: every line but the
//! last is a list given to `NoProxy::with_defaults`, the last line is a host
//! to match. It must never panic; the defaults always bypass the proxy; and
//! the list given to the script (`env_value`) must mean what tagstrap's own
//! matching means, or the script's curl and tagstrap's download would route
//! the same host differently (SPEC §4).

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use tagstrap::proxy::{NoProxy, DEFAULT_ENTRIES};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts: Vec<&str> = text.split('\n').collect();
    let host = if parts.len() > 1 { parts.pop() } else { None };
    let lists = parts;
    let entries: Vec<&str> = lists
        .iter()
        .flat_map(|l| l.split([',', ' ', '\t']))
        .filter(|e| !e.is_empty())
        .collect();

    let np = match NoProxy::with_defaults(lists.iter().copied()) {
        Ok(np) => np,
        Err(reason) => {
            assert!(reason.contains("no-proxy entry"), "{reason}");
            assert!(
                !reason.chars().any(char::is_control),
                "control character in the error {reason:?}"
            );
            // Refused because of one entry, which is refused on its own too.
            assert!(
                entries
                    .iter()
                    .any(|e| NoProxy::with_defaults([*e]).is_err()),
                "list refused, but every entry is accepted alone"
            );
            return;
        }
    };

    for default in DEFAULT_ENTRIES {
        assert!(np.matches(default), "default {default} not matched");
    }
    for extra in ["LOCALHOST", "localhost.", "[::1]", "0:0:0:0:0:0:0:1"] {
        assert!(np.matches(extra), "default form {extra} not matched");
    }
    let value = np.env_value();
    assert!(
        value.starts_with("localhost,127.0.0.1,::1,169.254.169.254"),
        "defaults not first: {value}"
    );
    assert!(
        value.bytes().all(|b| b.is_ascii_graphic()),
        "no_proxy value is not printable ASCII: {value:?}"
    );

    // What the script gets, read back, is the same list.
    let again = NoProxy::with_defaults([value.as_str()])
        .unwrap_or_else(|e| panic!("env_value {value:?} is refused when read back: {e}"));
    assert_eq!(again.env_value(), value, "env_value is not stable");

    let mut hosts: Vec<String> = Vec::new();
    if let Some(host) = host {
        hosts.push(host.to_string());
    }
    for entry in value.split(',').chain(entries.iter().copied()) {
        hosts.extend(derived_hosts(entry));
    }
    for host in &hosts {
        let (before, after) = (np.matches(host), again.matches(host));
        assert_eq!(
            before, after,
            "host {host:?}: tagstrap matches {before}, the list in no_proxy ({value:?}) matches {after}"
        );
        assert_eq!(
            np.matches(host),
            np.matches(&host.to_ascii_uppercase()),
            "matching {host:?} depends on case"
        );
    }

    // An entry that is a host (or host:port) bypasses that host.
    for entry in &entries {
        if let Some(host) = host_of_entry(entry) {
            assert!(
                np.matches(&host),
                "entry {entry:?} is accepted but does not match {host:?} (no_proxy={value:?})"
            );
        }
    }
});

/// The host an entry names, when it names one: `host`, `host:port`, `.host`,
/// `*.host`, an address (with a port or a trailing dot) or `[v6]:port`; not a
/// range or `*`, and not `.1.2.3.4`: a suffix never matches an address, for
/// curl either.
fn host_of_entry(entry: &str) -> Option<String> {
    let entry = entry.trim();
    if entry.contains('/') || entry == "*" || NoProxy::with_defaults([entry]).is_err() {
        return None;
    }
    if entry.parse::<IpAddr>().is_ok() {
        return Some(entry.to_string());
    }
    if let Some(inside) = entry.strip_prefix('[').and_then(|e| e.split_once(']')) {
        return Some(format!("[{}]", inside.0));
    }
    let name = match entry.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => entry,
    };
    let suffix = name.starts_with('.') || name.starts_with("*.");
    let name = name.trim_start_matches(['*', '.']);
    if suffix && name.trim_end_matches('.').parse::<IpAddr>().is_ok() {
        return None;
    }
    (!name.is_empty()).then(|| name.to_string())
}

/// Hosts near an entry, where a difference in matching would show.
fn derived_hosts(entry: &str) -> Vec<String> {
    let entry = entry.trim();
    let mut hosts = vec![entry.to_string()];
    let bare = entry.trim_start_matches(['*', '.']);
    hosts.push(bare.to_string());
    hosts.push(format!("sub.{bare}"));
    hosts.push(format!("x{bare}"));
    hosts.push(format!("{bare}."));
    if let Some((name, _port)) = entry.rsplit_once(':') {
        hosts.push(name.to_string());
    }
    if let Some((addr, _bits)) = entry.split_once('/') {
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        hosts.push(addr.to_string());
        match addr.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => {
                let n = u32::from(a);
                hosts.push(std::net::Ipv4Addr::from(n.wrapping_add(1)).to_string());
                hosts.push(std::net::Ipv4Addr::from(n ^ 0x8000_0000).to_string());
            }
            Ok(IpAddr::V6(a)) => {
                let n = u128::from(a);
                hosts.push(std::net::Ipv6Addr::from(n.wrapping_add(1)).to_string());
                hosts.push(std::net::Ipv6Addr::from(n ^ (1 << 127)).to_string());
            }
            Err(_) => {}
        }
    }
    hosts
}
