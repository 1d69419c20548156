//! The oracle for the no-proxy list: tagstrap's reading must be curl's.
//! Shared by the `no_proxy` fuzz target and `tests/no_proxy_model.rs`,
//! which runs it in CI over the fuzz corpus and a grid of cases.
//!
//! For lists tagstrap accepts, every host near an entry (and the given one)
//! must go direct for tagstrap exactly when the model of curl's matcher
//! ([`crate::curl_noproxy`]) says so, given the defaults and each list as
//! written; and the value exported to the script must mean the same to
//! curl. A refused list is refused with one line naming a "no-proxy entry",
//! and only tagstrap's own tag is ever refused: the image's list is read as
//! curl reads it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::curl_noproxy::check_noproxy;
use tagstrap::proxy::{ListOrigin, NoProxy, DEFAULT_ENTRIES};

/// One case: lists with their origin, and a host. In the fuzz input and the
/// corpus files, lines are lists (a leading `$` marks the image's
/// `no_proxy`, else it is the tag) and the last line is the host.
pub fn parse_case(text: &str) -> Option<(Vec<(ListOrigin, &str)>, &str)> {
    if text.contains('\0') {
        // curl's strings end at a NUL; tagstrap never gets one (tags refuse
        // control characters), so the two cannot be compared there.
        return None;
    }
    let mut lines: Vec<&str> = text.split('\n').collect();
    let host = if lines.len() > 1 { lines.pop()? } else { "" };
    let lists = lines
        .into_iter()
        .map(|l| match l.strip_prefix('$') {
            Some(env) => (ListOrigin::Environment("no_proxy"), env),
            None => (ListOrigin::Tag, l),
        })
        .collect();
    Some((lists, host))
}

/// Checks one case; the first disagreement, described.
pub fn check(lists: &[(ListOrigin, &str)], host: &str) -> Result<(), String> {
    let np = match NoProxy::read(lists) {
        Ok(np) => np,
        Err(reason) => {
            if !reason.starts_with("no-proxy entry") || reason.chars().any(char::is_control) {
                return Err(format!("refusal is not one clear line: {reason:?}"));
            }
            if lists.iter().all(|(o, _)| *o != ListOrigin::Tag) {
                return Err(format!("the image's list alone was refused: {reason}"));
            }
            return Ok(());
        }
    };
    let exported = np.env_value();
    if !exported.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("no_proxy is not printable ASCII: {exported:?}"));
    }
    for w in np.warnings() {
        if w.message.chars().any(char::is_control) {
            return Err(format!(
                "a warning holds a control character: {:?}",
                w.message
            ));
        }
    }
    let defaults = DEFAULT_ENTRIES.join(",");
    let mut hosts = vec![host.to_string()];
    for (_, list) in lists {
        for token in list.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
            hosts.extend(near(token));
        }
    }
    for token in exported.split(',') {
        hosts.extend(near(token));
    }
    for host in &hosts {
        let name = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let curl = check_noproxy(name, &defaults)
            || lists.iter().any(|(_, list)| check_noproxy(name, list));
        let plausible = plausible(name);
        // A tag's entries are kept whole, so they agree for any host; what
        // the image's list loses (entries curl reads as matching nothing)
        // only ever matched hosts no URL can carry.
        let whole = lists.iter().all(|(o, _)| *o == ListOrigin::Tag);
        if (whole || plausible) && np.matches(host) != curl {
            return Err(format!(
                "host {host:?}: tagstrap goes {}, curl goes {} (lists {lists:?})",
                route(np.matches(host)),
                route(curl)
            ));
        }
        if plausible && check_noproxy(name, &exported) != curl {
            return Err(format!(
                "host {host:?}: curl given the exported no_proxy={exported:?} goes {}, given \
                 the lists {lists:?} {}",
                route(!curl),
                route(curl)
            ));
        }
    }
    Ok(())
}

fn route(direct: bool) -> &'static str {
    if direct {
        "direct"
    } else {
        "through the proxy"
    }
}

/// A host a URL can carry, as curl holds it: an address, or a name of
/// letters, digits, `-` and `_` in dot-separated labels (one trailing dot
/// allowed) whose last label is not a number (that is an address).
fn plausible(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && !name
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .bytes()
            .all(|b| b.is_ascii_digit())
}

/// Hosts near an entry, where a difference in matching would show: the
/// entry itself, its bare name, a subdomain, a longer name ending in it,
/// case and trailing-dot variants; for an address or range, the address,
/// its neighbours and the range's edges.
pub fn near(token: &str) -> Vec<String> {
    let mut hosts = vec![token.to_string(), token.to_ascii_uppercase()];
    let bare = token
        .trim_start_matches(['*', '.', '['])
        .trim_end_matches(']');
    for form in [
        bare.to_string(),
        format!("sub.{bare}"),
        format!("x{bare}"),
        format!("{bare}."),
        format!("sub.{bare}."),
    ] {
        hosts.push(form);
    }
    if let Some((name, _port)) = bare.rsplit_once(':') {
        hosts.push(name.to_string());
    }
    let (addr, bits) = match bare.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (bare.trim_end_matches('.'), None),
    };
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            let n = u32::from(a);
            let mask = bits
                .filter(|b| (1..32).contains(b))
                .map_or(u32::MAX, |b| u32::MAX << (32 - b));
            for m in [
                n,
                n.wrapping_add(1),
                n ^ 0x8000_0000,
                n & mask,
                (n | !mask).wrapping_add(1),
            ] {
                hosts.push(Ipv4Addr::from(m).to_string());
            }
            hosts.push(Ipv4Addr::from(n | !mask).to_string());
        }
        Ok(IpAddr::V6(a)) => {
            let n = u128::from(a);
            let mask = bits
                .filter(|b| (1..128).contains(b))
                .map_or(u128::MAX, |b| u128::MAX << (128 - b));
            for m in [
                n,
                n.wrapping_add(1),
                n ^ (1 << 127),
                n & mask,
                n | !mask,
                (n | !mask).wrapping_add(1),
            ] {
                let ip = Ipv6Addr::from(m);
                hosts.push(ip.to_string());
                hosts.push(format!("[{ip}]"));
            }
        }
        Err(_) => {}
    }
    hosts
}
