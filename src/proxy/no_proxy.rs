//! The no-proxy list, matched the way curl matches `no_proxy`, so that tagstrap
//! and the install script's curl agree on which hosts bypass the proxy:
//! case-insensitive; a name matches itself and its subdomains at a dot
//! boundary; a leading dot is ignored; `*` alone matches everything; IP
//! addresses match literally and CIDR ranges match addresses inside them; no
//! name is resolved to compare it with an address.

use std::net::IpAddr;

/// Always bypassed, whatever the tags say: the loopback names and addresses,
/// and the link-local metadata address the cloud's agents talk to.
pub const DEFAULT_ENTRIES: [&str; 4] = ["localhost", "127.0.0.1", "::1", "169.254.169.254"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    All,
    /// Lower case, without leading or trailing dots.
    Name(String),
    Ip(IpAddr),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoProxy {
    /// The normalized entries, in order, without duplicates: what goes into
    /// `no_proxy` for the script.
    entries: Vec<String>,
    patterns: Vec<Pattern>,
}

impl NoProxy {
    /// The defaults followed by the entries of `lists` (comma- or
    /// blank-separated). An entry that cannot be a host, address or range is
    /// an error naming it.
    pub fn with_defaults<'a>(lists: impl IntoIterator<Item = &'a str>) -> Result<NoProxy, String> {
        let mut no_proxy = NoProxy {
            entries: Vec::new(),
            patterns: Vec::new(),
        };
        for entry in DEFAULT_ENTRIES {
            no_proxy.add(entry)?;
        }
        for list in lists {
            for entry in list.split([',', ' ', '\t']).filter(|e| !e.is_empty()) {
                no_proxy.add(entry)?;
            }
        }
        Ok(no_proxy)
    }

    fn add(&mut self, raw: &str) -> Result<(), String> {
        let (entry, pattern) = normalize(raw)?;
        if !self.entries.contains(&entry) {
            self.entries.push(entry);
            self.patterns.push(pattern);
        }
        Ok(())
    }

    /// Whether a request to `host` (a name, an IPv4 address, or an IPv6
    /// address with or without brackets) goes direct.
    pub fn matches(&self, host: &str) -> bool {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.patterns.iter().any(|pattern| match (pattern, ip) {
            (Pattern::All, _) => true,
            (Pattern::Ip(want), Some(ip)) => *want == ip,
            (Pattern::Cidr(net, bits), Some(ip)) => in_range(ip, *net, *bits),
            (Pattern::Name(name), None) => {
                host == *name
                    || (host.len() > name.len()
                        && host.ends_with(name.as_str())
                        && host.as_bytes()[host.len() - name.len() - 1] == b'.')
            }
            _ => false,
        })
    }

    /// The value of `no_proxy`/`NO_PROXY` for the script.
    pub fn env_value(&self) -> String {
        self.entries.join(",")
    }
}

/// One entry in the form every tool understands, and its pattern. `*.corp`
/// (a common habit from Java's `nonProxyHosts`) is written as `.corp`, which
/// curl, wget, Python and Go all read as "corp and its subdomains".
fn normalize(raw: &str) -> Result<(String, Pattern), String> {
    let entry = raw.trim().to_ascii_lowercase();
    if entry == "*" {
        return Ok((entry, Pattern::All));
    }
    let unbracketed = entry
        .strip_prefix('[')
        .and_then(|e| e.split_once(']'))
        .map(|(inside, _port)| inside);
    if let Some((addr, bits)) = unbracketed.unwrap_or(&entry).split_once('/') {
        let net: IpAddr = addr.parse().map_err(|_| {
            format!("no-proxy entry {raw:?} is not an address range like 10.0.0.0/8")
        })?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits.parse().ok().filter(|b| *b <= max).ok_or_else(|| {
            format!("no-proxy entry {raw:?} has a prefix length outside 0..={max}")
        })?;
        return Ok((format!("{net}/{bits}"), Pattern::Cidr(net, bits)));
    }
    let candidate = unbracketed.unwrap_or(&entry);
    if let Ok(ip) = candidate.parse::<IpAddr>() {
        return Ok((ip.to_string(), Pattern::Ip(ip)));
    }
    // A name, perhaps with a port (ignored: matching is by host, as in curl).
    let name = match entry.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => entry.as_str(),
    };
    let suffix = entry.starts_with('.') || entry.starts_with("*.");
    let name = name.strip_prefix('*').unwrap_or(name);
    let name = name.trim_start_matches('.').trim_end_matches('.');
    // An address with a port or a trailing dot is still an address: read as
    // a name it would never match, while the script's curl, given the
    // address, would go direct (found by fuzzing).
    if !suffix {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok((ip.to_string(), Pattern::Ip(ip)));
        }
    }
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid {
        return Err(format!(
            "no-proxy entry {raw:?} is not a host name, address or address range"
        ));
    }
    let shown = if suffix {
        format!(".{name}")
    } else {
        name.to_string()
    };
    Ok((shown, Pattern::Name(name.to_string())))
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &str) -> NoProxy {
        NoProxy::with_defaults([entries]).unwrap()
    }

    #[test]
    fn an_address_with_a_port_or_a_trailing_dot_is_an_address() {
        // Found by fuzzing (fuzz/artifacts-found/no_proxy/ipv4-*).
        for entry in ["10.0.0.5:3128", "10.0.0.5.", "10.0.0.5:3128,10.0.0.5"] {
            let np = list(entry);
            assert!(np.matches("10.0.0.5"), "{entry}");
            assert!(!np.matches("10.0.0.6"), "{entry}");
            assert_eq!(
                np.env_value(),
                "localhost,127.0.0.1,::1,169.254.169.254,10.0.0.5",
                "{entry}: what tagstrap matches is what the script gets"
            );
        }
        let np = list("4.9.4.0.");
        assert!(np.matches("4.9.4.0"));
        // A leading dot still means a name suffix.
        assert!(!list(".10.0.0.5").matches("10.0.0.5"));
    }

    #[test]
    fn defaults_are_always_there_and_come_first() {
        let np = list("");
        assert_eq!(np.env_value(), "localhost,127.0.0.1,::1,169.254.169.254");
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "[::1]",
            "::1",
            "169.254.169.254",
        ] {
            assert!(np.matches(host), "{host}");
        }
        assert!(!np.matches("127.0.0.2"));
        assert!(!np.matches("example.com"));
    }

    #[test]
    fn names_match_themselves_and_subdomains_at_a_dot_boundary() {
        let np = list("example.com,.Internal.Corp");
        assert!(np.matches("example.com"));
        assert!(np.matches("a.b.EXAMPLE.com"));
        assert!(np.matches("example.com."));
        assert!(!np.matches("badexample.com"));
        assert!(!np.matches("example.com.evil"));
        assert!(
            np.matches("internal.corp"),
            "a leading dot is ignored, as in curl"
        );
        assert!(np.matches("git.internal.corp"));
        assert!(!np.matches("xinternal.corp"));
    }

    #[test]
    fn star_alone_matches_everything_and_star_dot_is_a_suffix() {
        assert!(list("*").matches("anything.example"));
        assert!(list("*").matches("10.1.2.3"));
        let np = list("*.corp");
        assert!(np.matches("a.corp") && np.matches("corp") && !np.matches("acorp"));
        assert!(np.env_value().ends_with(",.corp"), "{}", np.env_value());
    }

    #[test]
    fn addresses_and_ranges_match_only_addresses() {
        let np = list("10.0.0.0/8, 192.168.1.7 fd00::/8,[2001:db8::1]");
        assert!(np.matches("10.255.0.1"));
        assert!(!np.matches("11.0.0.1"));
        assert!(np.matches("192.168.1.7"));
        assert!(!np.matches("192.168.1.8"));
        assert!(np.matches("[fd12::1]"));
        assert!(!np.matches("fe80::1"));
        assert!(np.matches("2001:db8::1"));
        assert!(!np.matches("ten.example"), "names are not resolved");
        assert!(list("0.0.0.0/0").matches("8.8.8.8"));
        assert!(list("10.1.2.3/32").matches("10.1.2.3"));
        assert!(!list("10.1.2.3/32").matches("10.1.2.4"));
    }

    #[test]
    fn ports_in_entries_are_ignored_and_duplicates_dropped() {
        let np = list("proxy.corp:8080,localhost,LOCALHOST");
        assert!(np.matches("proxy.corp"));
        assert_eq!(
            np.env_value(),
            "localhost,127.0.0.1,::1,169.254.169.254,proxy.corp"
        );
    }

    #[test]
    fn malformed_entries_are_refused_by_name() {
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/x",
            "nota/range",
            "a b/c",
            "ex%ample.com",
            ".",
        ] {
            let err = NoProxy::with_defaults([bad]).unwrap_err();
            assert!(err.contains("no-proxy entry"), "{bad}: {err}");
        }
    }
}
