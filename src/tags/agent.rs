//! What the merged `rs_agent:*` tags mean (SPEC §1): a typed, validated view of
//! them. Everything here is a pure decision on the [`TagSet`]; nothing is read
//! from the network or a store. Every refusal is exit 65 with a message naming
//! the tag and where it came from.

use std::path::PathBuf;

use url::Url;

use super::{Origin, Tag, TagSet};
use crate::credentials::reference::CredRef;
use crate::error::{Error, Result};
use crate::proxy::url::ProxyUrl;

pub const HTTP_PROXY: &str = "rs_agent:http_proxy";
pub(crate) const HTTP_PROXY_USER: &str = "rs_agent:http_proxy_user";
pub const HTTP_PROXY_PASSWORD: &str = "rs_agent:http_proxy_password";
pub(crate) const HTTP_NO_PROXY: &str = "rs_agent:http_no_proxy";
pub const MIME_SHELLSCRIPT: &str = "rs_agent:mime_shellscript";
pub(crate) const HASHBANG_SHELLSCRIPT: &str = "rs_agent:hashbang_shellscript";
pub(crate) const MIME_INCLUDE_URL: &str = "rs_agent:mime_include_url";
pub(crate) const POWERSHELL_URL: &str = "rs_agent:powershell_url";
pub(crate) const MIME_SHELLSCRIPT_SHA256: &str = "rs_agent:mime_shellscript_sha256";
pub(crate) const POWERSHELL_SHA256: &str = "rs_agent:powershell_sha256";
pub(crate) const TYPE: &str = "rs_agent:type";

const KNOWN: [&str; 11] = [
    HTTP_PROXY,
    HTTP_PROXY_USER,
    HTTP_PROXY_PASSWORD,
    HTTP_NO_PROXY,
    MIME_SHELLSCRIPT,
    HASHBANG_SHELLSCRIPT,
    MIME_INCLUDE_URL,
    POWERSHELL_URL,
    MIME_SHELLSCRIPT_SHA256,
    POWERSHELL_SHA256,
    TYPE,
];

/// Which script tags apply: the operating system the script will run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Unix,
    Windows,
}

impl Platform {
    pub(crate) fn current() -> Platform {
        if cfg!(windows) {
            Platform::Windows
        } else {
            Platform::Unix
        }
    }
}

/// The proxy user: a plain name, or a name kept in the credential store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSpec {
    Plain(String),
    Cred(CredRef),
}

#[derive(Debug, Clone)]
pub struct ProxyTags {
    /// The proxy; credentials written into its URL (accepted with a warning)
    /// are in `url.user` and `url.password`.
    pub url: ProxyUrl,
    pub origin: Origin,
    /// From `http_proxy_user` and `http_proxy_password`, always together.
    pub credentials: Option<(UserSpec, CredRef)>,
}

/// Where the script comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptLocation {
    /// `https://`, or `http://` with a pin.
    Remote(Url),
    /// `file://`: a script already on the image.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ScriptTag {
    pub key: &'static str,
    pub origin: Origin,
    pub location: ScriptLocation,
    pub sha256: Option<[u8; 32]>,
}

/// The typed tags.
#[derive(Debug, Clone)]
pub struct AgentTags {
    pub proxy: Option<ProxyTags>,
    pub no_proxy: Option<Tag>,
    pub script: Option<ScriptTag>,
    pub agent_type: Option<String>,
}

impl AgentTags {
    pub fn from_tags(set: &TagSet, platform: Platform) -> Result<AgentTags> {
        for entry in set.entries() {
            if !KNOWN.contains(&entry.tag.key.as_str()) {
                tracing::debug!(key = %entry.tag.key, origin = %entry.tag.origin, "unknown rs_agent: tag; ignored");
            }
        }
        Ok(AgentTags {
            proxy: proxy_tags(set)?,
            no_proxy: set.get(HTTP_NO_PROXY).cloned(),
            script: script_tag(set, platform)?,
            agent_type: set.get(TYPE).map(|t| t.value.clone()),
        })
    }
}

fn bad(tag: &Tag, reason: impl std::fmt::Display) -> Error {
    Error::tag(
        &tag.key,
        &tag.origin,
        format!("{} ({}): {reason}", tag.key, tag.origin),
    )
}

fn proxy_tags(set: &TagSet) -> Result<Option<ProxyTags>> {
    let proxy = set.get(HTTP_PROXY);
    let user = set.get(HTTP_PROXY_USER);
    let password = set.get(HTTP_PROXY_PASSWORD);

    // The password first: a plain-text password is refused whatever else is wrong.
    let password = match password {
        None => None,
        Some(tag) => match CredRef::parse(&tag.value) {
            Ok(Some(name)) => Some((tag, name)),
            Ok(None) => {
                return Err(bad(
                    tag,
                    "a proxy password must never be readable as a tag: store it in the \
                     credential store and write cred:NAME here",
                ))
            }
            Err(reason) => return Err(bad(tag, reason)),
        },
    };
    let user = match user {
        None => None,
        Some(tag) => match CredRef::parse(&tag.value) {
            Ok(Some(name)) => Some((tag, UserSpec::Cred(name))),
            Ok(None) => Some((tag, UserSpec::Plain(tag.value.clone()))),
            Err(reason) => return Err(bad(tag, reason)),
        },
    };
    let credentials = match (user, password) {
        (Some((_, user)), Some((_, password))) => Some((user, password)),
        (None, None) => None,
        (Some((tag, _)), None) => {
            return Err(bad(
                tag,
                format!("is set without {HTTP_PROXY_PASSWORD}: set both or neither"),
            ))
        }
        (None, Some((tag, _))) => {
            return Err(bad(
                tag,
                format!("is set without {HTTP_PROXY_USER}: set both or neither"),
            ))
        }
    };

    let Some(tag) = proxy else {
        if credentials.is_some() {
            return Err(Error::Input(format!(
                "{HTTP_PROXY_USER} and {HTTP_PROXY_PASSWORD} are set but {HTTP_PROXY} is not: \
                 name the proxy they are for"
            )));
        }
        return Ok(None);
    };
    let url = ProxyUrl::parse(&tag.value).map_err(|reason| bad(tag, reason))?;
    if url.user.is_some() {
        if credentials.is_some() {
            return Err(bad(
                tag,
                format!(
                    "holds credentials and {HTTP_PROXY_USER}/{HTTP_PROXY_PASSWORD} are set too: \
                     remove them from the URL"
                ),
            ));
        }
        tracing::warn!(
            "{} ({}) holds credentials in its URL, readable by anyone who can read tags: \
             use {HTTP_PROXY_USER} and {HTTP_PROXY_PASSWORD}=cred:NAME instead",
            tag.key,
            tag.origin
        );
    }
    Ok(Some(ProxyTags {
        url,
        origin: tag.origin.clone(),
        credentials,
    }))
}

fn script_tag(set: &TagSet, platform: Platform) -> Result<Option<ScriptTag>> {
    let (keys, pin_key): (&[&'static str], _) = match platform {
        Platform::Unix => (
            &[MIME_SHELLSCRIPT, HASHBANG_SHELLSCRIPT, MIME_INCLUDE_URL],
            MIME_SHELLSCRIPT_SHA256,
        ),
        Platform::Windows => (&[POWERSHELL_URL], POWERSHELL_SHA256),
    };
    let present: Vec<(&'static str, &Tag)> = keys
        .iter()
        .filter_map(|key| set.get(key).map(|tag| (*key, tag)))
        .collect();
    let Some(&(key, tag)) = present.first() else {
        return Ok(None);
    };
    if let Some((_, other)) = present.iter().find(|(_, t)| t.value != tag.value) {
        return Err(bad(
            tag,
            format!(
                "disagrees with {} ({}): keep one script URL",
                other.key, other.origin
            ),
        ));
    }
    if present.iter().any(|(k, _)| *k == MIME_INCLUDE_URL) {
        tracing::warn!(
            "{MIME_INCLUDE_URL} is deprecated (cloud-init's #include had no proxy support and too \
             few retries); it is treated as {MIME_SHELLSCRIPT}: rename the tag"
        );
    }

    let sha256 = match set.get(pin_key) {
        None => None,
        Some(pin) => Some(
            parse_sha256(&pin.value)
                .ok_or_else(|| bad(pin, "expected 64 hexadecimal digits (the script's sha256)"))?,
        ),
    };
    let location = script_location(tag, sha256.is_some(), pin_key)?;
    Ok(Some(ScriptTag {
        key,
        origin: tag.origin.clone(),
        location,
        sha256,
    }))
}

fn script_location(tag: &Tag, pinned: bool, pin_key: &str) -> Result<ScriptLocation> {
    let url = Url::parse(&tag.value).map_err(|e| bad(tag, format!("not a URL ({e})")))?;
    if url.password().is_some() {
        return Err(bad(
            tag,
            "the script URL holds a password, readable by anyone who can read tags: remove it",
        ));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(ScriptLocation::Remote(url)),
        "http" if url.host().is_some() => {
            if pinned {
                Ok(ScriptLocation::Remote(url))
            } else {
                Err(bad(
                    tag,
                    format!(
                        "http:// without {pin_key}: anything on the path could rewrite the \
                         script; use https:// or pin the script's sha256"
                    ),
                ))
            }
        }
        "file" => url
            .to_file_path()
            .map(ScriptLocation::File)
            .map_err(|()| bad(tag, "a file:// URL needs an absolute local path, e.g. file:///opt/agent/install.sh")),
        "http" | "https" => Err(bad(tag, "the URL has no host")),
        other => Err(bad(
            tag,
            format!("the scheme {other}: is not allowed for a script: use https://, http:// with a sha256 pin, or file://"),
        )),
    }
}

/// Exactly 64 hexadecimal digits, either case: nothing else, not even a sign
/// (`u8::from_str_radix` alone takes `+f` as a digit pair).
pub(crate) fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

/// A URL fit for logs, plans and reports: no user information, and query
/// values hidden, since a pre-signed URL's query is a bearer credential.
pub(crate) fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    let mut text = shown.to_string();
    if let Some(query) = url.query() {
        // The names as the URL writes them, still percent-encoded: decoded,
        // a name could hold a newline or ESC (found by fuzzing the cloud
        // answers: fuzz/artifacts-found/*/query-name-*).
        let names: Vec<String> = query
            .split('&')
            .map(|pair| format!("{}=…", pair.split('=').next().unwrap_or("")))
            .collect();
        text.push('?');
        text.push_str(&crate::util::text::shown(&names.join("&")));
    }
    text
}

impl ScriptTag {
    /// The location, as shown to people.
    pub fn shown(&self) -> String {
        match &self.location {
            ScriptLocation::Remote(url) => redact_url(url),
            ScriptLocation::File(path) => crate::util::text::shown_file_url(path),
        }
    }
}

impl ProxyTags {
    /// Whether the proxy URL carries a password (given in the URL itself).
    #[cfg(test)]
    pub(crate) fn url_has_password(&self) -> bool {
        use secrecy::ExposeSecret;
        self.url
            .password
            .as_ref()
            .is_some_and(|p| !p.expose_secret().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> TagSet {
        let mut set = TagSet::new();
        set.layer(pairs.iter().enumerate().map(|(i, (k, v))| {
            Tag::new(
                k,
                v,
                Origin::File {
                    path: "tags".into(),
                    line: i + 1,
                },
            )
            .unwrap()
        }));
        set
    }

    fn interpret(pairs: &[(&str, &str)]) -> Result<AgentTags> {
        AgentTags::from_tags(&set(pairs), Platform::Unix)
    }

    const PIN: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn the_full_set_is_understood() {
        let tags = interpret(&[
            (HTTP_PROXY, "proxy.corp:3128"),
            (HTTP_PROXY_USER, "svc"),
            (HTTP_PROXY_PASSWORD, "cred:PROXY_PASS"),
            (HTTP_NO_PROXY, ".corp"),
            (MIME_SHELLSCRIPT, "https://repo.corp/install.sh"),
            (MIME_SHELLSCRIPT_SHA256, PIN),
            (TYPE, "right_link_lite"),
        ])
        .unwrap();
        let proxy = tags.proxy.unwrap();
        assert_eq!(proxy.url.authority(), "proxy.corp:3128");
        let (user, password) = proxy.credentials.unwrap();
        assert_eq!(user, UserSpec::Plain("svc".into()));
        assert_eq!(password.name(), "PROXY_PASS");
        let script = tags.script.unwrap();
        assert_eq!(script.key, MIME_SHELLSCRIPT);
        assert_eq!(script.sha256.unwrap()[0], 0x9f);
        assert_eq!(tags.agent_type.as_deref(), Some("right_link_lite"));
    }

    #[test]
    fn user_may_be_a_credential_too() {
        let tags = interpret(&[
            (HTTP_PROXY, "p:1"),
            (HTTP_PROXY_USER, "cred:PROXY_USER"),
            (HTTP_PROXY_PASSWORD, "cred:PROXY_PASS"),
        ])
        .unwrap();
        let (user, _) = tags.proxy.unwrap().credentials.unwrap();
        assert!(matches!(user, UserSpec::Cred(ref c) if c.name() == "PROXY_USER"));
    }

    fn refused(pairs: &[(&str, &str)], needle: &str) {
        let err = interpret(pairs).unwrap_err();
        assert_eq!(err.exit_code(), 65, "{pairs:?}: {err}");
        assert!(err.message().contains(needle), "{pairs:?}: {err}");
    }

    #[test]
    fn bad_proxy_tags_are_refused() {
        refused(
            &[
                (HTTP_PROXY, "p:1"),
                (HTTP_PROXY_USER, "u"),
                (HTTP_PROXY_PASSWORD, "hunter2"),
            ],
            "never be readable as a tag",
        );
        refused(
            &[(HTTP_PROXY, "p:1"), (HTTP_PROXY_USER, "u")],
            "without rs_agent:http_proxy_password",
        );
        refused(
            &[(HTTP_PROXY, "p:1"), (HTTP_PROXY_PASSWORD, "cred:P")],
            "without rs_agent:http_proxy_user",
        );
        refused(
            &[(HTTP_PROXY_USER, "u"), (HTTP_PROXY_PASSWORD, "cred:P")],
            "is not",
        );
        refused(&[(HTTP_PROXY, "socks5h://p:1080")], "not supported");
        refused(&[(HTTP_PROXY, "http://wpad/wpad.dat")], "auto-config");
        refused(&[(HTTP_PROXY, "p")], "no port");
        refused(
            &[
                (HTTP_PROXY, "http://a:b@p:1"),
                (HTTP_PROXY_USER, "u"),
                (HTTP_PROXY_PASSWORD, "cred:P"),
            ],
            "remove them from the URL",
        );
        refused(
            &[
                (HTTP_PROXY, "p:1"),
                (HTTP_PROXY_USER, "cred:a/b"),
                (HTTP_PROXY_PASSWORD, "cred:P"),
            ],
            "not a valid credential reference",
        );
    }

    #[test]
    fn plain_password_is_refused_without_echoing_it() {
        let err = interpret(&[
            (HTTP_PROXY, "p:1"),
            (HTTP_PROXY_USER, "u"),
            (HTTP_PROXY_PASSWORD, "hunter2"),
        ])
        .unwrap_err();
        assert!(!err.message().contains("hunter2"), "{err}");
        assert_eq!(
            err.tag_fields(),
            Some((HTTP_PROXY_PASSWORD, "tags:3")),
            "{err:?}"
        );
    }

    #[test]
    fn credentials_in_the_proxy_url_are_accepted() {
        let tags = interpret(&[(HTTP_PROXY, "http://u:p%40ss@p:1")]).unwrap();
        let proxy = tags.proxy.unwrap();
        assert!(proxy.url_has_password());
        assert!(proxy.credentials.is_none());
    }

    #[test]
    fn script_urls_follow_the_allowed_schemes() {
        let https = interpret(&[(MIME_SHELLSCRIPT, "https://h/i.sh")]).unwrap();
        assert!(matches!(
            https.script.unwrap().location,
            ScriptLocation::Remote(_)
        ));
        let file = interpret(&[(MIME_SHELLSCRIPT, "file:///opt/i.sh")]).unwrap();
        assert_eq!(
            file.script.unwrap().location,
            ScriptLocation::File("/opt/i.sh".into())
        );
        let pinned = interpret(&[
            (MIME_SHELLSCRIPT, "http://h/i.sh"),
            (MIME_SHELLSCRIPT_SHA256, PIN),
        ]);
        assert!(pinned.is_ok());
        refused(
            &[(MIME_SHELLSCRIPT, "http://h/i.sh")],
            "without rs_agent:mime_shellscript_sha256",
        );
        refused(&[(MIME_SHELLSCRIPT, "ftp://h/i.sh")], "not allowed");
        refused(&[(MIME_SHELLSCRIPT, "not a url")], "not a URL");
        refused(
            &[(MIME_SHELLSCRIPT, "https://u:pw@h/i.sh")],
            "holds a password",
        );
        refused(
            &[
                (MIME_SHELLSCRIPT, "https://h/i.sh"),
                (MIME_SHELLSCRIPT_SHA256, "abc"),
            ],
            "64 hexadecimal",
        );
        refused(
            &[
                (MIME_SHELLSCRIPT, "https://h/i.sh"),
                (MIME_SHELLSCRIPT_SHA256, &"g".repeat(64)),
            ],
            "64 hexadecimal",
        );
        // A sign is not a digit, although from_str_radix takes "+f".
        for pin in [format!("+{}", &PIN[1..]), format!("{}+f", &PIN[..62])] {
            refused(
                &[
                    (MIME_SHELLSCRIPT, "https://h/i.sh"),
                    (MIME_SHELLSCRIPT_SHA256, &pin),
                ],
                "64 hexadecimal",
            );
        }
        assert_eq!(parse_sha256(&PIN.to_uppercase()), parse_sha256(PIN));
    }

    #[test]
    fn a_file_path_with_control_characters_is_shown_escaped() {
        let script = interpret(&[(MIME_SHELLSCRIPT, "file:///opt/a%0a%1b[2Jb%0d.sh")])
            .unwrap()
            .script
            .unwrap();
        assert_eq!(script.shown(), "file:///opt/a\\u{a}\\u{1b}[2Jb\\u{d}.sh");
    }

    #[test]
    fn aliases_agree_or_are_refused() {
        let alias = interpret(&[(HASHBANG_SHELLSCRIPT, "https://h/a")]).unwrap();
        assert_eq!(alias.script.unwrap().key, HASHBANG_SHELLSCRIPT);
        let deprecated = interpret(&[(MIME_INCLUDE_URL, "https://h/a")]).unwrap();
        assert_eq!(deprecated.script.unwrap().key, MIME_INCLUDE_URL);
        let same = interpret(&[
            (MIME_SHELLSCRIPT, "https://h/a"),
            (MIME_INCLUDE_URL, "https://h/a"),
        ]);
        assert_eq!(same.unwrap().script.unwrap().key, MIME_SHELLSCRIPT);
        refused(
            &[
                (MIME_SHELLSCRIPT, "https://h/a"),
                (HASHBANG_SHELLSCRIPT, "https://h/b"),
            ],
            "disagrees",
        );
    }

    #[test]
    fn the_platform_picks_the_script_tag() {
        let pairs = [
            (MIME_SHELLSCRIPT, "https://h/a.sh"),
            (POWERSHELL_URL, "https://h/a.ps1"),
            (POWERSHELL_SHA256, PIN),
        ];
        let unix = AgentTags::from_tags(&set(&pairs), Platform::Unix).unwrap();
        assert_eq!(unix.script.unwrap().sha256, None);
        let windows = AgentTags::from_tags(&set(&pairs), Platform::Windows).unwrap();
        let script = windows.script.unwrap();
        assert_eq!(script.key, POWERSHELL_URL);
        assert!(script.sha256.is_some());
    }

    #[test]
    fn shown_urls_hide_query_values_and_user_names() {
        let url =
            Url::parse("https://bucket.s3/i.sh?X-Amz-Signature=abc&X-Amz-Expires=60").unwrap();
        assert_eq!(
            redact_url(&url),
            "https://bucket.s3/i.sh?X-Amz-Signature=…&X-Amz-Expires=…"
        );
        let url = Url::parse("https://me@h/i.sh").unwrap();
        assert_eq!(redact_url(&url), "https://h/i.sh");
        // A name that decodes to a control character stays encoded.
        let url = Url::parse("https://h/i.sh?a%0Ab=1&%1B[2J=2&c").unwrap();
        assert_eq!(redact_url(&url), "https://h/i.sh?a%0Ab=…&%1B[2J=…&c=…");
    }
}
