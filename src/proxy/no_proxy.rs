//! The no-proxy list, read and matched exactly as current curl reads and
//! matches `no_proxy` (curl 8.21, `lib/proxy.c` `proxy_check_noproxy`; its
//! unit test 1614 holds the facts), so that tagstrap's download and the
//! install script's curl always route a host the same way; then exported in
//! the forms that make wget and Python's clients agree as far as each can,
//! with a warning for what one of them cannot read (docs/no-proxy.md).
//!
//! curl's rules: the list is comma-separated, blanks around an entry are
//! skipped, and a blank that is not followed by a comma ends the list; the
//! whole value `*` matches every host, a `*` entry inside a list matches
//! nothing. A host that is an IPv4 or IPv6 address is compared with the
//! entries that are addresses (`a.b.c.d` or `addr/bits`, where bits 0 means
//! the address alone, not every address); any other host is a name, one
//! trailing dot ignored, and matches an entry (one leading and one trailing
//! dot ignored) equal to it or to its ending at a dot, without regard to
//! case. Nothing is resolved.
//!
//! tagstrap refuses, in its own tag, the entries curl would read as matching
//! nothing though they plainly mean something (`*.corp`, `host:port`,
//! `[::1]`, `10.0.0.5.`, `*` inside a list, blank-separated entries): the
//! operator is told what to write instead. In the image's own `no_proxy`,
//! which other tools on the image read too, such entries are ignored, as
//! curl ignores them, with a warning.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Always bypassed, whatever the tags say: the loopback names and addresses,
/// and the link-local metadata address the cloud's agents talk to.
pub const DEFAULT_ENTRIES: [&str; 4] = ["localhost", "127.0.0.1", "::1", "169.254.169.254"];

/// A client of the script's that reads `no_proxy` in its own way, named in
/// a warning when it cannot read an entry as tagstrap (and curl) do. The
/// ids are what `--log-format json` shows in a warning's `clients` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Client {
    /// curl before 7.86 reads no address ranges at all.
    CurlBefore7_86,
    /// curl before 8.18 compares an IPv6 host with the entries as text, so
    /// IPv6 ranges never match.
    CurlBefore8_18,
    /// GNU wget: names by suffix at a dot, everything else as text.
    Wget,
    /// Python's `urllib.request`: names by suffix at a dot, no ranges.
    Urllib,
    /// Python's `requests`: urllib's rules plus IPv4 ranges.
    Requests,
}

impl Client {
    pub(crate) fn id(self) -> &'static str {
        match self {
            Client::CurlBefore7_86 => "curl<7.86",
            Client::CurlBefore8_18 => "curl<8.18",
            Client::Wget => "wget",
            Client::Urllib => "urllib",
            Client::Requests => "requests",
        }
    }
}

/// Something about the list its reader should know: an entry one of the
/// script's clients will not honour as tagstrap does (named in `clients`),
/// or an entry of the image's `no_proxy` that is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The entry as written.
    pub entry: String,
    /// The clients that read it differently; empty when everybody agrees.
    pub clients: Vec<Client>,
    pub message: String,
}

impl Warning {
    /// The `clients` field of the log line: ids, comma-separated.
    pub(crate) fn client_ids(&self) -> String {
        let ids: Vec<&str> = self.clients.iter().map(|c| c.id()).collect();
        ids.join(",")
    }
}

/// Where a list came from: tagstrap's own tag (an entry curl would ignore is
/// refused), or the image's environment (such an entry is ignored, as the
/// image's other tools ignore it, with a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrigin {
    Tag,
    Environment(&'static str),
}

/// One entry as curl reads it. Every entry has a name side, compared with a
/// host that is a name; an entry that is an address or a range also has an
/// address side, compared with a host that is an address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Lower case, one leading and one trailing dot removed.
    name: String,
    address: Option<Address>,
    /// Written with a leading dot: exported in both forms (wget reads
    /// `.corp` as the subdomains only, `corp` as the domain and them).
    leading_dot: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Address {
    /// `bits` is what curl compares: 32 for an address alone (or `/0`).
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoProxy {
    /// A list was `*`: every host goes direct.
    all: bool,
    entries: Vec<Entry>,
    /// What goes into `no_proxy` for the script, in order, without
    /// duplicates.
    exported: Vec<String>,
    warnings: Vec<Warning>,
}

impl NoProxy {
    /// The defaults followed by the entries of `lists`, each read as a tag.
    pub fn with_defaults<'a>(lists: impl IntoIterator<Item = &'a str>) -> Result<NoProxy, String> {
        let lists: Vec<(ListOrigin, &str)> =
            lists.into_iter().map(|l| (ListOrigin::Tag, l)).collect();
        NoProxy::read(&lists)
    }

    /// The defaults followed by the entries of each list. An entry of a tag
    /// that curl would not read as its writer means is an error naming it
    /// and saying what to write; in the environment it is left out, with a
    /// warning.
    pub fn read<S: AsRef<str>>(lists: &[(ListOrigin, S)]) -> Result<NoProxy, String> {
        let mut no_proxy = NoProxy {
            all: false,
            entries: Vec::new(),
            exported: Vec::new(),
            warnings: Vec::new(),
        };
        for entry in DEFAULT_ENTRIES {
            no_proxy.add_default(entry);
        }
        for (origin, list) in lists {
            let (origin, list) = (*origin, list.as_ref());
            // curl: the whole value `*`, and nothing else, is every host.
            if list == "*" {
                no_proxy.all = true;
                continue;
            }
            let (tokens, rest) = split_list(list);
            if let Some(rest) = rest {
                let read = tokens.join(",");
                let reason = format!(
                    "no-proxy entry {rest:?} follows a blank, not a comma: curl reads a list \
                     only up to such a blank, so of {list:?} it reads {read:?}; separate \
                     entries with commas"
                );
                match origin {
                    ListOrigin::Tag => return Err(reason),
                    ListOrigin::Environment(var) => no_proxy.warnings.push(Warning {
                        entry: rest.to_string(),
                        clients: Vec::new(),
                        message: format!("${var}: {reason}"),
                    }),
                }
            }
            for token in tokens {
                match parse_entry(token) {
                    Ok(entry) => {
                        no_proxy.warn_about(token, &entry);
                        no_proxy.push(entry);
                    }
                    Err(reason) => match origin {
                        ListOrigin::Tag => return Err(reason),
                        ListOrigin::Environment(var) => no_proxy.warnings.push(Warning {
                            entry: token.to_string(),
                            clients: Vec::new(),
                            message: format!("${var}: {reason}; ignored, as curl ignores it"),
                        }),
                    },
                }
            }
        }
        if no_proxy.all {
            no_proxy.exported = vec!["*".to_string()];
            no_proxy.warnings.retain(|w| w.clients.is_empty());
            no_proxy.warnings.push(Warning {
                entry: "*".to_string(),
                clients: vec![Client::Wget],
                message: "no-proxy list * sends every host direct for tagstrap, curl and \
                          Python, but wget does not read * and still sends its requests \
                          through the proxy: where the script uses wget, list the hosts \
                          instead of *"
                    .to_string(),
            });
        }
        Ok(no_proxy)
    }

    /// A default entry: valid, and warned about never.
    fn add_default(&mut self, token: &str) {
        self.push(parse_entry(token).expect("the defaults are valid entries"));
    }

    fn push(&mut self, entry: Entry) {
        for form in exported_forms(&entry) {
            if !self.exported.contains(&form) {
                self.exported.push(form);
            }
        }
        if !self.entries.contains(&entry) {
            self.entries.push(entry);
        }
    }

    /// The warnings an accepted entry deserves: a range that some of the
    /// script's clients do not read, or a `/0` that means less than it seems.
    fn warn_about(&mut self, token: &str, entry: &Entry) {
        let (clients, message) = match entry.address {
            Some(Address::V4(addr, bits)) if bits < 32 => (
                vec![Client::CurlBefore7_86, Client::Wget, Client::Urllib],
                format!(
                    "no-proxy entry {token} is an address range: wget, Python's urllib and curl \
                     before 7.86 do not read ranges and send these addresses through the \
                     proxy; where the script uses them, also list the addresses it reaches \
                     (such as {})",
                    first_host_v4(addr, bits)
                ),
            ),
            Some(Address::V6(addr, bits)) if bits < 128 => (
                vec![
                    Client::CurlBefore8_18,
                    Client::Wget,
                    Client::Urllib,
                    Client::Requests,
                ],
                format!(
                    "no-proxy entry {token} is an IPv6 range, which only curl 8.18 and later \
                     read: wget, Python's urllib and requests and older curl send these \
                     addresses through the proxy; where the script uses them, also list the \
                     addresses it reaches (such as {})",
                    first_host_v6(addr, bits)
                ),
            ),
            _ if zero_prefix(token) => {
                let shown = entry.address.map(|a| a.to_string()).unwrap_or_default();
                (
                    Vec::new(),
                    format!(
                        "no-proxy entry {token} means the one address {shown}, as curl and \
                         requests read it, not every address: write the range meant, or the \
                         list * for every host"
                    ),
                )
            }
            _ => return,
        };
        self.warnings.push(Warning {
            entry: token.to_string(),
            clients,
            message,
        });
    }

    /// Whether a request to `host` (a name, an IPv4 address, or an IPv6
    /// address with or without brackets) goes direct.
    pub fn matches(&self, host: &str) -> bool {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return false;
        }
        if self.all {
            return true;
        }
        match Host::of(host) {
            Host::V4(ip) => self.entries.iter().any(|e| match e.address {
                Some(Address::V4(net, bits)) => in_v4(ip, net, bits),
                _ => false,
            }),
            Host::V6(ip) => self.entries.iter().any(|e| match e.address {
                Some(Address::V6(net, bits)) => in_v6(ip, net, bits),
                _ => false,
            }),
            Host::Name(name) => self.entries.iter().any(|e| name_matches(&e.name, name)),
        }
    }

    /// The value of `no_proxy`/`NO_PROXY` for the script.
    pub fn env_value(&self) -> String {
        self.exported.join(",")
    }

    /// What `run`, `plan` and `doctor` say about the list, one line each.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
}

/// A host as curl classifies it: an address when it parses as one, else a
/// name with one trailing dot dropped.
enum Host<'a> {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Name(&'a str),
}

impl<'a> Host<'a> {
    fn of(host: &'a str) -> Host<'a> {
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            Host::V4(ip)
        } else if let Ok(ip) = host.parse::<Ipv6Addr>() {
            Host::V6(ip)
        } else {
            Host::Name(host.strip_suffix('.').unwrap_or(host))
        }
    }
}

/// curl's name rule: equal, or the host ends with the entry at a dot; both
/// compared without regard to ASCII case.
fn name_matches(entry: &str, host: &str) -> bool {
    let (e, h) = (entry.as_bytes(), host.as_bytes());
    if e.len() == h.len() {
        return e.eq_ignore_ascii_case(h);
    }
    e.len() < h.len()
        && h[h.len() - e.len() - 1] == b'.'
        && h[h.len() - e.len()..].eq_ignore_ascii_case(e)
}

/// curl's tokenizer: entries separated by commas, blanks around them
/// skipped, empty ones dropped; a blank followed by anything but a comma
/// ends the list, and what follows is returned as ignored.
fn split_list(list: &str) -> (Vec<&str>, Option<&str>) {
    let is_blank = |c: char| c == ' ' || c == '\t';
    let mut tokens = Vec::new();
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches(is_blank);
        let end = rest
            .find(|c: char| is_blank(c) || c == ',')
            .unwrap_or(rest.len());
        if end > 0 {
            tokens.push(&rest[..end]);
        }
        rest = rest[end..].trim_start_matches(is_blank);
        if rest.is_empty() {
            return (tokens, None);
        }
        if !rest.starts_with(',') {
            return (tokens, Some(rest));
        }
        rest = rest.trim_start_matches(',');
    }
}

/// One entry, or why curl would not read it as its writer means: a message
/// starting "no-proxy entry …" that says what to write instead.
fn parse_entry(token: &str) -> Result<Entry, String> {
    let refuse = |why: &str| refuse(token, why);
    let instead = |why: &str, better: &str| instead(token, why, better);
    let lower = token.to_ascii_lowercase();
    // The name side of every entry, as curl's match_host() trims it.
    let name = {
        let t = lower.strip_suffix('.').unwrap_or(&lower);
        t.strip_prefix('.').unwrap_or(t).to_string()
    };
    if token == "*" {
        return refuse(
            "is `*` inside a list, which curl ignores: `*` means every host only as the whole \
             list (rs_agent:http_no_proxy=*)",
        );
    }
    if let Some(inside) = token.strip_prefix('[') {
        let address = inside.split(']').next().unwrap_or_default();
        return instead(
            "is an address in brackets, which curl never matches",
            address,
        );
    }
    if let Some((addr, bits)) = token.split_once('/') {
        return range_entry(token, addr, bits, name);
    }
    let address = match token.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => Address::V4(ip, 32),
        Ok(IpAddr::V6(ip)) => Address::V6(ip, 128),
        Err(_) => return name_entry(token, &lower, name),
    };
    Ok(Entry {
        name,
        address: Some(address),
        leading_dot: false,
    })
}

/// The refusal of `token`: "no-proxy entry \"…\" why".
fn refuse(token: &str, why: &str) -> Result<Entry, String> {
    Err(format!("no-proxy entry {token:?} {why}"))
}

/// The refusal, saying what to write instead when that is itself an entry:
/// a suggestion built from what was written must not carry what made it
/// wrong.
fn instead(token: &str, why: &str, better: &str) -> Result<Entry, String> {
    match parse_entry(better) {
        Ok(_) => refuse(token, &format!("{why}: write {better}")),
        Err(_) => refuse(token, why),
    }
}

/// An entry with a `/`: an address range, or why it is none.
fn range_entry(token: &str, addr: &str, bits: &str, name: String) -> Result<Entry, String> {
    let refuse = |why: &str| refuse(token, why);
    let valid_bits = !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit());
    let bits: Option<u32> = valid_bits.then(|| bits.parse().unwrap_or(u32::MAX));
    let address = match (addr.parse::<IpAddr>(), bits) {
        (Ok(IpAddr::V4(net)), Some(bits @ 0..=32)) => {
            Address::V4(net, if bits == 0 { 32 } else { bits as u8 })
        }
        (Ok(IpAddr::V6(net)), Some(bits @ 0..=128)) => {
            Address::V6(net, if bits == 0 { 128 } else { bits as u8 })
        }
        (Ok(ip), Some(_)) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            return refuse(&format!("has a prefix length outside 0..={max}"));
        }
        _ => return refuse("is not an address range like 10.0.0.0/8 or fd00::/8"),
    };
    Ok(Entry {
        name,
        address: Some(address),
        leading_dot: false,
    })
}

/// An entry that is no address: a name, or why it is none.
fn name_entry(token: &str, lower: &str, name: String) -> Result<Entry, String> {
    let refuse = |why: &str| refuse(token, why);
    let instead = |why: &str, better: &str| instead(token, why, better);
    if let Some(suffix) = lower.strip_prefix("*.") {
        return instead(
            "is read by curl as a name that matches no host",
            &format!(".{suffix}"),
        );
    }
    if let Some((host, port)) = token.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return instead(
                "has a port, and curl never matches an entry with a port",
                host,
            );
        }
    }
    if !token.is_ascii() {
        return match url::Host::parse(lower) {
            Ok(url::Host::Domain(ascii)) => instead(
                "is not ASCII, and URLs carry names in their ASCII form",
                &ascii,
            ),
            _ => refuse("is not a host name, address or address range"),
        };
    }
    let valid_name = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        });
    if !valid_name {
        return refuse("is not a host name, address or address range");
    }
    let last = name.rsplit('.').next().unwrap_or_default();
    if last.bytes().all(|b| b.is_ascii_digit()) {
        // A name that ends in a number is no host a URL can carry: an
        // address with a dot around it, or a part of one.
        return match name.parse::<Ipv4Addr>() {
            Ok(ip) => refuse(&format!(
                "is an address with a dot around it, which curl does not match against the \
                 address: write {ip}"
            )),
            Err(_) => refuse(
                "is a part of an address, which curl never matches against an address: write \
                 the addresses, or a range such as 10.1.2.0/24",
            ),
        };
    }
    Ok(Entry {
        name,
        address: None,
        leading_dot: lower.starts_with('.'),
    })
}

/// The forms an entry is exported in, each meaning to curl what the entry
/// means: an address alone (also written `/0` or with a full prefix) as the
/// plain address, which wget and Python compare as text; an IPv6 address
/// also in brackets, the only form urllib compares with a bracketed host;
/// a name written with a leading dot also without it, the form in which
/// wget matches the domain itself.
fn exported_forms(entry: &Entry) -> Vec<String> {
    match entry.address {
        Some(Address::V6(ip, 128)) => vec![ip.to_string(), format!("[{ip}]")],
        // An address alone is written without its prefix ([`Address`]'s
        // `Display`).
        Some(address) => vec![address.to_string()],
        None if entry.leading_dot => vec![entry.name.clone(), format!(".{}", entry.name)],
        None => vec![entry.name.clone()],
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Address::V4(ip, 32) => write!(f, "{ip}"),
            Address::V6(ip, 128) => write!(f, "{ip}"),
            Address::V4(ip, bits) => write!(f, "{ip}/{bits}"),
            Address::V6(ip, bits) => write!(f, "{ip}/{bits}"),
        }
    }
}

/// Written with a prefix length of zero (`/0`, `/00`): curl reads it as the
/// address alone.
fn zero_prefix(token: &str) -> bool {
    token
        .split_once('/')
        .is_some_and(|(_, bits)| !bits.is_empty() && bits.bytes().all(|b| b == b'0'))
}

// The ranges are ipnet's (already in the build under hyper-util): `bits` is
// at most 32/128 by `parse_entry`, so `new` fails only on an entry that
// cannot exist, and such an entry matches nothing. A `/0` never gets here
// as 0: it is stored as 32/128, the address alone, as curl reads it.

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, bits: u8) -> bool {
    Ipv4Net::new(net, bits).is_ok_and(|range| range.contains(&ip))
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, bits: u8) -> bool {
    Ipv6Net::new(net, bits).is_ok_and(|range| range.contains(&ip))
}

/// An address inside a range, for the warning's example: the one after the
/// network's own address. Not ipnet's `hosts().next()`, which is the
/// network's own address for IPv6 (every address there is a host) and for
/// a `/31` (RFC 3021): the example would change with the range's size.
fn first_host_v4(net: Ipv4Addr, bits: u8) -> Ipv4Addr {
    let network = Ipv4Net::new(net, bits).map_or(net, |range| range.network());
    Ipv4Addr::from(u32::from(network) | 1)
}

fn first_host_v6(net: Ipv6Addr, bits: u8) -> Ipv6Addr {
    let network = Ipv6Net::new(net, bits).map_or(net, |range| range.network());
    Ipv6Addr::from(u128::from(network) | 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &str) -> NoProxy {
        NoProxy::with_defaults([entries]).unwrap()
    }

    fn refused(entries: &str) -> String {
        NoProxy::with_defaults([entries]).unwrap_err()
    }

    const DEFAULTS: &str = "localhost,127.0.0.1,::1,[::1],169.254.169.254";

    #[test]
    fn defaults_are_always_there_and_come_first() {
        let np = list("");
        assert_eq!(np.env_value(), DEFAULTS);
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "[::1]",
            "::1",
            "0:0::1",
            "169.254.169.254",
        ] {
            assert!(np.matches(host), "{host}");
        }
        assert!(!np.matches("127.0.0.2"));
        assert!(!np.matches("example.com"));
        assert!(np.warnings().is_empty(), "{:?}", np.warnings());
    }

    #[test]
    fn names_match_themselves_and_subdomains_at_a_dot_boundary() {
        let np = list("example.com,.Internal.Corp");
        assert!(np.matches("example.com"));
        assert!(np.matches("a.b.EXAMPLE.com"));
        assert!(np.matches("example.com."));
        assert!(!np.matches("badexample.com"));
        assert!(!np.matches("example.com.evil"));
        assert!(np.matches("internal.corp"), "a leading dot is ignored");
        assert!(np.matches("git.internal.corp"));
        assert!(!np.matches("xinternal.corp"));
        // wget reads `.internal.corp` as the subdomains only: the bare form
        // is exported too.
        assert_eq!(
            np.env_value(),
            format!("{DEFAULTS},example.com,internal.corp,.internal.corp")
        );
    }

    /// Bug class 1, found by the differential suite against the earlier
    /// matcher (tests/data/no_proxy/edge_cases.tsv, the `*` rows: curl 7.88.1
    /// went through the proxy for `a.corp` given `*`, for `b.corp` given
    /// `*,a.corp`): `*` inside a list meant every host to tagstrap and was
    /// exported after the defaults, where curl reads it as nothing.
    #[test]
    fn star_is_every_host_only_as_a_whole_list_and_is_exported_alone() {
        let np = list("*");
        assert!(
            np.matches("anything.example") && np.matches("10.1.2.3") && np.matches("[fd00::1]")
        );
        assert_eq!(np.env_value(), "*", "curl reads * only as the whole value");
        assert_eq!(np.warnings().len(), 1);
        assert_eq!(np.warnings()[0].clients, [Client::Wget]);

        for mixed in ["*,foo", "foo,*", "foo, * ,bar"] {
            let err = refused(mixed);
            assert!(err.contains("\"*\" is `*` inside a list"), "{mixed}: {err}");
        }
        // The image's own `no_proxy=*` with its own proxy: every host.
        let image = NoProxy::read(&[
            (ListOrigin::Tag, ".corp"),
            (ListOrigin::Environment("no_proxy"), "*"),
        ])
        .unwrap();
        assert!(image.matches("example.org"));
        assert_eq!(image.env_value(), "*");
        // In the environment, a `*` among others is ignored, as curl does.
        let mixed = NoProxy::read(&[(ListOrigin::Environment("no_proxy"), "foo,*")]).unwrap();
        assert!(!mixed.matches("example.org") && mixed.matches("foo"));
        assert!(!mixed.env_value().contains('*'));
        assert!(mixed.warnings()[0]
            .message
            .starts_with("$no_proxy: no-proxy entry \"*\""));
    }

    /// Bug class 2, found by the suite against the earlier matcher
    /// (curl_unit1614.tsv: 192.160.0.1 given `10.0.0.1/0`; edge_cases.tsv:
    /// `0.0.0.0/0`, `::/0`): curl reads a zero prefix as the address alone,
    /// not every address.
    #[test]
    fn a_zero_prefix_means_the_address_alone_as_curl_reads_it() {
        let np = list("10.0.0.0/0,0.0.0.0/0,::/0,fd00::1/00");
        assert!(np.matches("10.0.0.0") && np.matches("0.0.0.0") && np.matches("[::]"));
        assert!(np.matches("fd00::1"));
        for other in ["10.0.0.1", "8.8.8.8", "fd00::2", "[2001:db8::1]"] {
            assert!(!np.matches(other), "{other}");
        }
        assert_eq!(
            np.env_value(),
            format!("{DEFAULTS},10.0.0.0,0.0.0.0,::,[::],fd00::1,[fd00::1]"),
            "exported as the plain address, which every client reads the same way"
        );
        assert_eq!(np.warnings().len(), 4);
        assert!(np.warnings()[0]
            .message
            .contains("means the one address 10.0.0.0"));
        assert!(np.warnings().iter().all(|w| w.clients.is_empty()));
    }

    /// Bug class 3, found by the suite (edge_cases.tsv: `10.1.2.3.` against
    /// `10.0.0.0/8`, where curl 7.88.1 goes through the proxy): curl before
    /// 8.21 read such a host as a name, but current curl (commit 831a151484)
    /// swallows the trailing dot of a numeric host as URL parsers do, so the
    /// host is the address, as tagstrap reads it; the older reading is a
    /// documented limit of the host's spelling (docs/no-proxy.md). A name is
    /// only what is not an address once that dot is gone, and an entry
    /// written with the dot is refused: curl compares it with names only,
    /// never with the address.
    #[test]
    fn a_host_is_an_address_only_when_it_parses_as_one() {
        let np = list("10.0.0.0/8,corp.example");
        // The URL parser (WHATWG, like curl 8.21) gives 10.1.2.3 for
        // `https://10.1.2.3./`: matched as the address.
        let url = url::Url::parse("https://10.1.2.3./x").unwrap();
        assert_eq!(url.host_str(), Some("10.1.2.3"));
        assert!(np.matches(url.host_str().unwrap()));
        // What still reads as a name is compared as a name only.
        assert!(!np.matches("10.1.2.3.4"));
        assert!(np.matches("git.corp.example."));
        let err = refused("10.0.0.5.");
        assert!(err.contains("write 10.0.0.5"), "{err}");
        assert!(refused("10.1.2").contains("a part of an address"));
        // An address side only ever meets an address host.
        assert!(!list("10.1.2.3").matches("x.10.1.2.4"));
    }

    #[test]
    fn addresses_and_ranges_match_only_addresses() {
        let np = list("10.0.0.0/8, 192.168.1.7,fd00::/8,2001:DB8:0::1");
        assert!(np.matches("10.255.0.1"));
        assert!(!np.matches("11.0.0.1"));
        assert!(np.matches("192.168.1.7"));
        assert!(!np.matches("192.168.1.8"));
        assert!(np.matches("[fd12::1]"));
        assert!(!np.matches("fe80::1"));
        assert!(np.matches("2001:db8::1"));
        assert!(!np.matches("ten.example"), "names are not resolved");
        assert!(list("10.1.2.3/32").matches("10.1.2.3"));
        assert!(!list("10.1.2.3/32").matches("10.1.2.4"));
        assert!(
            list("10.1.2.3/08").matches("10.200.0.1"),
            "curl reads /08 as /8"
        );
        assert_eq!(
            np.env_value(),
            format!("{DEFAULTS},10.0.0.0/8,192.168.1.7,fd00::/8,2001:db8::1,[2001:db8::1]")
        );
        let clients: Vec<Vec<Client>> = np.warnings().iter().map(|w| w.clients.clone()).collect();
        assert_eq!(
            clients,
            [
                vec![Client::CurlBefore7_86, Client::Wget, Client::Urllib],
                vec![
                    Client::CurlBefore8_18,
                    Client::Wget,
                    Client::Urllib,
                    Client::Requests
                ],
            ]
        );
        assert!(np.warnings()[0].message.contains("such as 10.0.0.1"));
        assert!(np.warnings()[1].message.contains("such as fd00::1"));
        // The example is the address after the network's own, for a pair too.
        assert!(list("10.0.0.4/31").warnings()[0]
            .message
            .contains("such as 10.0.0.5"));
        assert!(list("fd00::/127").warnings()[0]
            .message
            .contains("such as fd00::1"));
    }

    #[test]
    fn a_blank_ends_the_list_for_curl_so_a_tag_must_use_commas() {
        let err = refused("a.corp b.corp");
        assert!(
            err.starts_with("no-proxy entry \"b.corp\" follows a blank"),
            "{err}"
        );
        assert!(err.contains("it reads \"a.corp\""), "{err}");
        // Blanks around commas and empty entries are fine.
        let np = list(" a.corp , ,,b.corp,\t");
        assert!(np.matches("a.corp") && np.matches("b.corp"));
        // The image's list is read as curl reads it.
        let env = NoProxy::read(&[(ListOrigin::Environment("NO_PROXY"), "a.corp b.corp")]).unwrap();
        assert!(env.matches("a.corp") && !env.matches("b.corp"));
        assert_eq!(env.warnings()[0].entry, "b.corp");
    }

    #[test]
    fn entries_curl_reads_as_nothing_are_refused_saying_what_to_write() {
        for (bad, hint) in [
            ("*.corp", "write .corp"),
            ("proxy.corp:8080", "write proxy.corp"),
            ("10.0.0.5:3128", "write 10.0.0.5"),
            ("[2001:db8::1]", "write 2001:db8::1"),
            ("[::1]:443", "write ::1"),
            (
                "bücher.example",
                "their ASCII form: write xn--bcher-kva.example",
            ),
            ("10.0.0.0/33", "outside 0..=32"),
            ("fd00::/129", "outside 0..=128"),
            ("10.0.0.0/x", "not an address range"),
            ("10.0.0.0/ 8", "separate entries with commas"),
            ("nota/range", "not an address range"),
            ("ex%ample.com", "not a host name"),
            (".", "not a host name"),
            ("a..b", "not a host name"),
        ] {
            let err = refused(bad);
            assert!(err.starts_with("no-proxy entry"), "{bad}: {err}");
            assert!(err.contains(hint), "{bad}: {err}");
        }
        // Found by fuzzing: a suggestion built from the entry carried what
        // made it wrong (here a control character). It is given only when
        // it is itself an entry.
        let err = refused("*.a\u{b}b");
        assert!(err.ends_with("matches no host"), "{err}");
        assert!(!err.contains('\u{b}'), "{err:?}");
    }

    #[test]
    fn the_image_list_leaves_out_what_curl_ignores_with_a_warning() {
        let np = NoProxy::read(&[(
            ListOrigin::Environment("no_proxy"),
            "*.corp,proxy.corp:8080,.good.corp,ex%ample",
        )])
        .unwrap();
        assert!(!np.matches("a.corp") && !np.matches("proxy.corp"));
        assert!(np.matches("x.good.corp"));
        assert_eq!(np.env_value(), format!("{DEFAULTS},good.corp,.good.corp"));
        let entries: Vec<&str> = np.warnings().iter().map(|w| w.entry.as_str()).collect();
        assert_eq!(entries, ["*.corp", "proxy.corp:8080", "ex%ample"]);
        assert!(np.warnings()[0]
            .message
            .contains("ignored, as curl ignores it"));
    }

    #[test]
    fn duplicates_are_exported_once_and_case_is_folded() {
        let np = list("Proxy.Corp,localhost,LOCALHOST,proxy.corp.,10.0.0.1,10.0.0.1/32");
        assert_eq!(np.env_value(), format!("{DEFAULTS},proxy.corp,10.0.0.1"));
    }
}
