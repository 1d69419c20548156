//! Tags: where they come from and how the layers merge (SPEC §1).
//!
//! Three layers, later ones overriding earlier ones key by key: the image's tags
//! files, the instance's tags from the cloud, and `--tag` on the command line.
//! Every value keeps its origin, and the origins it overrode, so `tagstrap tags`
//! can show which layer won. Only `rs_agent:` keys are kept; what they mean is
//! decided in [`agent`].
//!
//! Layer: tags. It may import the pure parsers (`proxy::url`,
//! `credentials::reference`), the state directory, `stop` and the toolkit.

pub mod agent;
pub(crate) mod detect;
pub mod file;
pub mod instance;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::util::text::{named_forbidden_char, shown, shown_path};

/// Every key tagstrap reads starts with this.
pub const PREFIX: &str = "rs_agent:";

/// Where one tag value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File {
        path: PathBuf,
        line: usize,
    },
    /// A cloud's instance tags; `line` for GCE's tags-file attribute.
    Instance {
        source: &'static str,
        line: Option<usize>,
    },
    CommandLine,
    Environment,
    ConfigFile {
        path: PathBuf,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", shown_path(path)),
            Origin::Instance { source, line: None } => write!(f, "{source} instance tags"),
            Origin::Instance {
                source,
                line: Some(line),
            } => write!(f, "{source} instance tags, line {line}"),
            Origin::CommandLine => f.write_str("--tag"),
            Origin::Environment => f.write_str("TAGSTRAP_TAG"),
            Origin::ConfigFile { path } => write!(f, "tags in {}", shown_path(path)),
        }
    }
}

/// One `key=value` pair as read from a source, already checked for control
/// characters and trimmed. `Debug` shows the value as [`Tag::shown_value`]
/// does: a password typed into a tag never reaches a debug line.
#[derive(Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

impl std::fmt::Debug for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tag")
            .field("key", &self.key)
            .field("value", &self.shown_value())
            .field("origin", &self.origin)
            .finish()
    }
}

impl Tag {
    /// Builds a tag from a raw key and value, applying SPEC §1: keys are matched
    /// after trimming surrounding blanks, and no control character may reach an
    /// environment variable or a log line. Values are trimmed too: a blank
    /// around a URL in a hand-edited file is never meant.
    pub(crate) fn new(key: &str, value: &str, origin: Origin) -> Result<Tag> {
        let key = key.trim_matches(is_blank);
        let value = value.trim_matches(is_blank);
        if key.is_empty() {
            return Err(Error::tag(
                key,
                &origin,
                format!("tag with an empty key ({origin}): write it as KEY=VALUE"),
            ));
        }
        // Control characters forge log lines and end up in environment
        // variables; format characters (U+202E, U+200B, …) make a value read
        // differently from its bytes, and a host holding one is silently
        // rewritten by IDNA. Named by code point, never shown raw.
        if let Some(hidden) = named_forbidden_char(key) {
            let key = shown(key);
            return Err(Error::tag(
                key.clone(),
                &origin,
                format!("tag key \"{key}\" ({origin}) holds the {hidden}: remove it"),
            ));
        }
        if let Some(hidden) = named_forbidden_char(value) {
            return Err(Error::tag(
                key,
                &origin,
                format!(
                    "tag {key} ({origin}): its value holds the {hidden}, which must not reach an \
                     environment variable, a host name or a log: remove it"
                ),
            ));
        }
        Ok(Tag {
            key: key.to_string(),
            value: value.to_string(),
            origin,
        })
    }

    /// The value as it may be shown in `tags`, `plan`, logs and the report: a
    /// plain-text password (refused anyway) as `***`, a password inside the
    /// proxy URL as `***`, and URL query values hidden.
    pub fn shown_value(&self) -> String {
        let value = self.value.as_str();
        match self.key.as_str() {
            agent::HTTP_PROXY_PASSWORD
                if !value.starts_with(crate::credentials::reference::REF_PREFIX) =>
            {
                "***".to_string()
            }
            agent::HTTP_PROXY => match crate::proxy::url::ProxyUrl::parse(value) {
                Ok(url) if url.user.is_some() => url.to_string(),
                Ok(_) => value.to_string(),
                // Unparseable: hide whatever could be credentials.
                Err(_) => match value.rsplit_once('@') {
                    Some((_, host)) => format!("***@{host}"),
                    None => value.to_string(),
                },
            },
            _ => match url::Url::parse(value) {
                Ok(url)
                    if url.has_host() && (url.query().is_some() || !url.username().is_empty()) =>
                {
                    agent::redact_url(&url)
                }
                _ => value.to_string(),
            },
        }
    }

    /// Parses `KEY=VALUE` as given to `--tag` or `TAGSTRAP_TAG`.
    pub(crate) fn parse_assignment(text: &str, origin: Origin) -> Result<Tag> {
        match text.split_once('=') {
            Some((key, value)) => Tag::new(key, value, origin),
            None => Err(Error::Usage(format!(
                "{origin} \"{}\": expected KEY=VALUE, e.g. rs_agent:http_proxy=proxy.example:3128",
                shown(text)
            ))),
        }
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The merged tags: for each key the winning value, and the origins it beat.
#[derive(Debug, Default, Clone)]
pub struct TagSet {
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub tag: Tag,
    pub overridden: Vec<Origin>,
}

impl TagSet {
    pub fn new() -> TagSet {
        TagSet::default()
    }

    /// Adds one layer's tags; each overrides an earlier value of the same key.
    /// Keys outside `rs_agent:` are not tagstrap's: they are dropped here, with
    /// a warning when a person wrote them (a file or the command line), since
    /// there a missing prefix is a typo.
    pub fn layer(&mut self, tags: impl IntoIterator<Item = Tag>) {
        for tag in tags {
            if !tag.key.starts_with(PREFIX) {
                match tag.origin {
                    Origin::Instance { .. } => {
                        tracing::debug!(key = %tag.key, origin = %tag.origin, "not an rs_agent: tag; ignored")
                    }
                    _ => tracing::warn!(
                        "tag {} ({}) does not start with {PREFIX} and is ignored",
                        tag.key,
                        tag.origin
                    ),
                }
                continue;
            }
            match self.entries.get_mut(&tag.key) {
                Some(entry) => {
                    let beaten = std::mem::replace(&mut entry.tag, tag);
                    entry.overridden.push(beaten.origin);
                }
                None => {
                    self.entries.insert(
                        tag.key.clone(),
                        Entry {
                            tag,
                            overridden: Vec::new(),
                        },
                    );
                }
            }
        }
    }

    /// The value of `key`, where an empty value counts as unset: a later layer
    /// clears an earlier one by giving the key an empty value.
    pub(crate) fn get(&self, key: &str) -> Option<&Tag> {
        self.entries
            .get(key)
            .map(|e| &e.tag)
            .filter(|t| !t.value.is_empty())
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(line: usize) -> Origin {
        Origin::File {
            path: "/etc/tagstrap/tags".into(),
            line,
        }
    }

    #[test]
    fn later_layers_override_key_by_key_and_remember_what_they_beat() {
        let mut set = TagSet::new();
        set.layer([
            Tag::new("rs_agent:http_proxy", "a:1", file(1)).unwrap(),
            Tag::new("rs_agent:type", "lite", file(2)).unwrap(),
        ]);
        set.layer([Tag::new("rs_agent:http_proxy", "b:2", Origin::CommandLine).unwrap()]);
        assert_eq!(set.get("rs_agent:http_proxy").unwrap().value, "b:2");
        assert_eq!(set.get("rs_agent:type").unwrap().value, "lite");
        let proxy = set
            .entries()
            .find(|e| e.tag.key == "rs_agent:http_proxy")
            .unwrap();
        assert_eq!(proxy.overridden, vec![file(1)]);
    }

    #[test]
    fn an_empty_value_clears_an_earlier_layer() {
        let mut set = TagSet::new();
        set.layer([Tag::new("rs_agent:http_proxy", "a:1", file(1)).unwrap()]);
        set.layer([Tag::new("rs_agent:http_proxy", "", Origin::CommandLine).unwrap()]);
        assert!(set.get("rs_agent:http_proxy").is_none());
    }

    #[test]
    fn keys_and_values_are_trimmed_and_keys_stay_case_sensitive() {
        let tag = Tag::new("  rs_agent:type\t", " lite ", file(1)).unwrap();
        assert_eq!(
            (tag.key.as_str(), tag.value.as_str()),
            ("rs_agent:type", "lite")
        );
        let mut set = TagSet::new();
        set.layer([Tag::new("RS_AGENT:type", "x", Origin::CommandLine).unwrap()]);
        assert!(set.is_empty(), "RS_AGENT: is not rs_agent:");
    }

    #[test]
    fn control_characters_are_refused_in_keys_and_values() {
        for (key, value) in [
            ("rs_agent:type", "a\rb"),
            ("rs_agent:type", "a\nb"),
            ("rs_agent:type", "a\0b"),
            ("rs_agent:type", "a\u{1b}[31mb"),
            ("rs_agent:ty\u{7f}pe", "x"),
        ] {
            let err = Tag::new(key, value, file(3)).unwrap_err();
            assert_eq!(err.exit_code(), 65, "{key:?}={value:?}");
            assert!(err.message().contains("control character"), "{err}");
            let origin = err.tag_fields().map(|(_, origin)| origin);
            assert_eq!(origin, Some("/etc/tagstrap/tags:3"), "{err:?}");
        }
    }

    #[test]
    fn format_characters_are_refused_and_named_by_code_point_never_raw() {
        for (key, value, named) in [
            ("rs_agent:type", "abc\u{202e}fed", "U+202E"),
            ("rs_agent:http_proxy", "exa\u{200b}mple.com:3128", "U+200B"),
            ("rs_agent:mime_shellscript", "https://h/\u{2066}x", "U+2066"),
            ("rs_agent:type", "a\u{feff}b", "U+FEFF"),
            ("rs_agent:type", "a\u{2028}b", "U+2028"),
            ("rs_agent:ty\u{200d}pe", "x", "U+200D"),
        ] {
            let err = Tag::new(key, value, file(4)).unwrap_err();
            assert_eq!(err.exit_code(), 65, "{key:?}={value:?}");
            assert!(err.message().contains(named), "{err}");
            let origin = err.tag_fields().map(|(_, origin)| origin);
            assert_eq!(origin, Some("/etc/tagstrap/tags:4"), "{err:?}");
            assert_eq!(
                crate::util::text::forbidden_char(err.message()),
                None,
                "nothing raw: {err:?}"
            );
        }
        // Letters of any script are values like any other.
        assert!(Tag::new("rs_agent:type", "bücher-例え", file(1)).is_ok());
    }

    #[test]
    fn origins_show_operator_paths_escaped() {
        let origin = Origin::File {
            path: "/etc/a\nb".into(),
            line: 2,
        };
        assert_eq!(origin.to_string(), "/etc/a\\u{a}b:2");
        let err = Tag::parse_assignment("rs_agent:type\u{1b}[2J", Origin::CommandLine).unwrap_err();
        assert_eq!(
            crate::util::text::forbidden_char(err.message()),
            None,
            "{err:?}"
        );
    }

    #[test]
    fn shown_values_hide_every_kind_of_secret() {
        let shown = |k: &str, v: &str| Tag::new(k, v, Origin::CommandLine).unwrap().shown_value();
        assert_eq!(shown("rs_agent:http_proxy_password", "hunter2"), "***");
        assert_eq!(shown("rs_agent:http_proxy_password", "cred:P"), "cred:P");
        assert_eq!(
            shown("rs_agent:http_proxy", "http://u:hunter2@p:1"),
            "http://u:***@p:1"
        );
        assert_eq!(
            shown("rs_agent:http_proxy", "socks5://u:hunter2@p:1"),
            "***@p:1"
        );
        assert_eq!(shown("rs_agent:http_proxy", "p:1"), "p:1");
        assert_eq!(
            shown("rs_agent:mime_shellscript", "https://h/i.sh?sig=hunter2"),
            "https://h/i.sh?sig=…"
        );
        assert_eq!(shown("rs_agent:type", "lite"), "lite");
    }

    #[test]
    fn assignment_needs_an_equals_sign_and_keeps_later_ones_in_the_value() {
        let tag =
            Tag::parse_assignment("rs_agent:http_no_proxy=a=b,c", Origin::CommandLine).unwrap();
        assert_eq!(tag.value, "a=b,c");
        let err = Tag::parse_assignment("rs_agent:type", Origin::CommandLine).unwrap_err();
        assert_eq!(err.exit_code(), 64);
    }
}
