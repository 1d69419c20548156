//! Store addresses (SPEC §2): an `http(s)://` URL with a host and nothing a
//! store address cannot have (credentials, a query, a fragment, a hidden
//! character), and `https://` unless the host is a loopback address or the
//! store's config section sets `insecure_http = true`. Every store with an
//! address or an `endpoint` setting parses it here, so the rule is one rule.

use url::Url;

use crate::error::{Class, Error, Result};

/// What a store's address rule needs to know about the store, for messages.
pub(crate) struct AddressRule<'a> {
    /// Its config section, e.g. `vault` or `aws_ssm`: where `insecure_http`
    /// goes.
    pub(crate) section: &'a str,
    /// An example of a good address, e.g. `https://host:8200`.
    pub(crate) example: &'a str,
    /// Where its credential goes instead of the URL, e.g. "give the token
    /// as VAULT_TOKEN or a file".
    pub(crate) credentials_hint: &'a str,
    /// The section's `insecure_http`.
    pub(crate) insecure_http: bool,
}

/// The Vault/OpenBao rule.
pub(crate) fn vault_rule(insecure_http: bool) -> AddressRule<'static> {
    AddressRule {
        section: "vault",
        example: "https://host:8200",
        credentials_hint: "give the token as VAULT_TOKEN or a file",
        insecure_http,
    }
}

/// An http(s) URL with a host and nothing a store address cannot have;
/// plain http:// only to loopback, unless the rule's `insecure_http`.
/// `from` names where the text came from, e.g. `$VAULT_ADDR`.
pub(crate) fn parse_address(text: &str, from: &str, rule: &AddressRule<'_>) -> Result<Url> {
    let shown = without_userinfo(text);
    let example = rule.example;
    let bad = |why: &str| {
        let line = format!("{from}: {shown:?} is not a store address: {why}");
        Error::setting(Class::Config, from, line)
    };
    // IDNA would drop a zero-width character from the host and send the
    // token elsewhere than the operator wrote.
    if let Some(hidden) = crate::util::text::named_forbidden_char(text) {
        return Err(bad(&format!("it holds the {hidden}: remove it")));
    }
    let url = Url::parse(text).map_err(|e| bad(&format!("{e} (write {example})")))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(bad(&format!("write {example}")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(&format!(
            "it holds credentials; {}",
            rule.credentials_hint
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it has a query or fragment"));
    }
    if url.scheme() == "http" && !is_loopback(&url) && !rule.insecure_http {
        return Err(Error::setting(
            Class::Config,
            from,
            format!(
                "{from}: the store address {} is plain http:// to a host that is not a loopback \
                 address, so the store's credential and the proxy password would cross the \
                 network in clear; nothing was sent. Use https://, or, if the network is yours \
                 and that is known, set insecure_http = true in the [{}] section of the config \
                 file",
                crate::util::text::shown(shown_address(&url)),
                rule.section
            ),
        ));
    }
    Ok(url)
}

/// When a store whose config section is `section` is reached over plain
/// `http://` on a host that is not loopback (which only its
/// `insecure_http = true` allows), the warning every run logs and `doctor`
/// shows; `None` otherwise. `addresses` are the store's (unparsable ones
/// are skipped: [`parse_address`] refuses them); `credential` is what
/// crosses the network in clear with the proxy password, e.g. "the store
/// token" or "the access token".
pub(crate) fn in_clear<'a>(
    section: &str,
    insecure_http: bool,
    addresses: impl IntoIterator<Item = &'a str>,
    credential: &str,
) -> Option<String> {
    if !insecure_http {
        return None;
    }
    let plain: Vec<String> = addresses
        .into_iter()
        .filter_map(|a| Url::parse(a).ok())
        .filter(|url| url.scheme() == "http" && !is_loopback(url))
        .map(|url| crate::util::text::shown(shown_address(&url)))
        .collect();
    (!plain.is_empty()).then(|| {
        format!(
            "the credential store at {} is reached over plain http:// ([{section}] \
             insecure_http = true): {credential} and the proxy password cross the network in \
             clear",
            plain.join(", ")
        )
    })
}

/// Whether a URL's host is a loopback address: 127.0.0.0/8, ::1, or
/// `localhost`. Plain http:// to it never leaves the machine, so SPEC §2
/// allows it without `insecure_http`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// An address as shown in messages: scheme, host and port, no path or query.
pub(crate) fn shown_address(url: &Url) -> &str {
    let end = url[..url::Position::AfterPort].len();
    &url.as_str()[..end]
}

/// The text with anything that could be a user or password (before an `@`)
/// replaced, for messages about a malformed address.
fn without_userinfo(text: &str) -> String {
    match text.rfind('@') {
        None => text.to_string(),
        Some(at) => {
            let start = text
                .find("://")
                .map(|i| i + 3)
                .filter(|i| *i <= at)
                .unwrap_or(0);
            format!("{}***{}", &text[..start], &text[at..])
        }
    }
}
