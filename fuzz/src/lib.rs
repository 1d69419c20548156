//! What the four cloud-answer targets (`aws_answer`, `gce_answer`,
//! `azure_answer`, `openstack_answer`) share: the input's control byte, the
//! image layer an answer is merged with, the canary planted where a password
//! goes, the log lines caught while a parser runs, and the oracle.
//!
//! Each target turns bytes into one cloud's answer and hands the parse to
//! [`exercise`], which takes it the whole way a run does before any network
//! or store is involved: `<cloud>::parse` → `TagSet::layer` over an image
//! layer → `AgentTags::from_tags` for Unix and for Windows, and every form of
//! the result that reaches a person (`tags`, `plan`, log lines, errors). The
//! oracle:
//!
//! 1. no message, log line or shown form holds a control, format or
//!    line-separator character ([`forbidden_char`]): a hostile answer must
//!    not be able to forge a log line or make one read differently;
//! 2. no message, log line or shown form holds the planted canary password
//!    (in a `rs_agent:http_proxy` URL's userinfo, or as a plain
//!    `rs_agent:http_proxy_password` value);
//! 3. what a parser accepts is what tagstrap may act on: `rs_agent:` keys,
//!    no hidden character in a key or value, exit codes 65 or 69 only.

// The `no_proxy` target's oracle: a model of curl's matcher, and the check
// of tagstrap's reading against it (also run in CI by tests/no_proxy_model.rs).
pub mod curl_noproxy;
pub mod no_proxy_oracle;

use std::io::Write;
use std::sync::{Mutex, Once};

use tagstrap::error::Error;
use tagstrap::proxy::ProxyUrl;
use tagstrap::tags::agent::{self, AgentTags, Platform, UserSpec};
use tagstrap::tags::instance::InstanceData;
use tagstrap::tags::{file, Origin, Tag, TagSet, PREFIX};
use tagstrap::util::text::{forbidden_char, shown};

/// The planted password. Never part of a fixed message; compared without
/// regard to case, since a parser may lower-case what it quotes.
pub const CANARY: &str = "Zq7xCanaryPw";

/// In a value, the fuzzer's `\u{1}` becomes `:CANARY@`: in a proxy URL that
/// is the password's place (`http://svc\u{1}proxy:3128`).
pub const MARK_USERINFO: char = '\u{1}';
/// In a value, the fuzzer's `\u{2}` becomes the bare canary: as the value of
/// `rs_agent:http_proxy_password`, a plain-text password.
pub const MARK_PLAIN: char = '\u{2}';

/// Separates the pieces of a structured input (instance ID, keys, values).
pub const SEPARATOR: char = '\0';

/// Where the targets say the answers came from.
pub const FROM: &str = "http://169.254.169.254";

/// The input's first byte, read the same way by every target.
#[derive(Debug, Clone, Copy)]
pub struct Control(pub u8);

impl Control {
    /// Bits 0-1: which image layer the answer is merged over.
    pub fn image(self) -> u8 {
        self.0 & 0b11
    }

    /// Bit 2, for the JSON clouds: the bytes are the JSON text itself (set)
    /// rather than pieces spliced into a valid document.
    pub fn raw(self) -> bool {
        self.0 & 0b100 != 0
    }

    /// Bit 3: the instance ID answered 404 (for the clouds that ask for it
    /// on its own).
    pub fn no_instance_id(self) -> bool {
        self.0 & 0b1000 != 0
    }

    /// Bit 4 (GCE): the instance has no `rs_agent-tags` attribute.
    pub fn no_attribute(self) -> bool {
        self.0 & 0b1_0000 != 0
    }
}

/// Splits a target's input into its control byte and the rest.
pub fn split_control(data: &[u8]) -> Option<(Control, &[u8])> {
    let (&first, rest) = data.split_first()?;
    Some((Control(first), rest))
}

/// A value with the markers replaced by the canary.
pub fn plant(value: &str) -> String {
    value
        .replace(MARK_USERINFO, &format!(":{CANARY}@"))
        .replace(MARK_PLAIN, CANARY)
}

/// A tags-file text (GCE's attribute) with the markers replaced in the
/// values only, split the way `tags::file::parse` splits it: a line's key
/// is before its first `=`.
pub fn plant_in_tags_file(text: &str) -> String {
    text.split('\n')
        .map(|line| match line.split_once('=') {
            Some((key, value)) => format!("{key}={}", plant(value)),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The image's tags file, as a tags-file text; each variant sets up a merge
/// the cloud's tags can override or complete.
fn image_text(variant: u8) -> String {
    match variant {
        0 => String::new(),
        1 => "rs_agent:http_proxy=proxy.image:3128\n\
              rs_agent:http_proxy_user=svc\n\
              rs_agent:http_proxy_password=cred:PROXY_PASS\n\
              rs_agent:mime_shellscript=https://repo.image/install.sh\n\
              rs_agent:powershell_url=https://repo.image/install.ps1\n\
              rs_agent:type=image\n"
            .to_string(),
        2 => format!(
            "rs_agent:http_proxy=http://svc:{CANARY}@proxy.image:3128\n\
             rs_agent:mime_shellscript=file:///opt/agent/install.sh\n"
        ),
        _ => format!(
            "rs_agent:http_proxy=proxy.image:3128\n\
             rs_agent:http_proxy_user=svc\n\
             rs_agent:http_proxy_password={CANARY}\n"
        ),
    }
}

fn image_layer(variant: u8) -> Vec<Tag> {
    file::parse(&image_text(variant), |line| Origin::File {
        path: "/etc/tagstrap/tags".into(),
        line,
    })
    .expect("the image layers are valid tags files")
}

/// The log lines written while the parser and the merge ran, one string per
/// event, exactly as the text format writes them (no ANSI colours).
mod logs {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static INSTALL: Once = Once::new();

    /// One event's bytes; the formatter writes one event per writer.
    pub struct EventWriter(Vec<u8>);

    impl Write for EventWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Drop for EventWriter {
        fn drop(&mut self) {
            let text = String::from_utf8_lossy(&self.0).into_owned();
            EVENTS.lock().unwrap_or_else(|e| e.into_inner()).push(text);
        }
    }

    pub struct Catch;

    impl<'a> MakeWriter<'a> for Catch {
        type Writer = EventWriter;
        fn make_writer(&'a self) -> EventWriter {
            EventWriter(Vec::new())
        }
    }

    /// Installs the catching subscriber (once) and forgets earlier events.
    pub fn begin() {
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(Catch)
                .with_ansi(false)
                .with_target(false)
                .without_time()
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other subscriber in a fuzz target");
        });
        EVENTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn take() -> Vec<String> {
        std::mem::take(&mut *EVENTS.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Whether `text` holds the canary, in any case.
pub fn holds_canary(text: &str) -> bool {
    text.to_ascii_lowercase()
        .contains(&CANARY.to_ascii_lowercase())
}

/// Whether the canary in this tag sits where a secret goes. `None`: the tag
/// does not hold it.
fn canary_is_secret(tag: &Tag) -> Option<bool> {
    if !holds_canary(&tag.value) && !holds_canary(&tag.key) {
        return None;
    }
    if holds_canary(&tag.key) {
        return Some(false);
    }
    Some(match tag.key.as_str() {
        // A proxy URL's password stands before its last '@'; elsewhere
        // (`host:CANARY`, no '@' at all) the canary is no password, and
        // shown like the rest of the value (a false alarm of the first run,
        // seed found-canary-not-in-userinfo).
        agent::HTTP_PROXY => match tag.value.rsplit_once('@') {
            Some((userinfo, host)) if holds_canary(userinfo) && !holds_canary(host) => {
                match ProxyUrl::parse(&tag.value) {
                    // Parsed, the canary may have landed in the user name
                    // (a marker typed before another ':'), which is shown:
                    // then it is no password either.
                    Ok(url) => {
                        !holds_canary(&url.host) && !url.user.as_deref().is_some_and(holds_canary)
                    }
                    Err(_) => true,
                }
            }
            _ => false,
        },
        agent::HTTP_PROXY_PASSWORD => !tag.value.starts_with(tagstrap::credentials::REF_PREFIX),
        _ => false,
    })
}

/// Everything shown of one result, with what it is, for the oracle.
#[derive(Default)]
struct Forms(Vec<(&'static str, String)>);

impl Forms {
    fn add(&mut self, what: &'static str, text: impl Into<String>) {
        self.0.push((what, text.into()));
    }

    fn error(&mut self, what: &'static str, err: &Error) {
        self.add(what, err.message());
        self.add(what, format!("{err:?}"));
    }

    fn tag(&mut self, tag: &Tag) {
        self.add("a tag's key", tag.key.clone());
        self.add("Tag::shown_value", tag.shown_value());
        self.add("Origin Display", tag.origin.to_string());
        self.add("Tag Debug", format!("{tag:?}"));
    }

    fn agent(&mut self, agent: &AgentTags) {
        if let Some(proxy) = &agent.proxy {
            self.add("ProxyUrl Display", proxy.url.to_string());
            self.add("without_credentials", proxy.url.without_credentials());
            self.add("authority", proxy.url.authority());
            self.add("the proxy's Origin", proxy.origin.to_string());
            if let Some((user, password)) = &proxy.credentials {
                let user = match user {
                    UserSpec::Plain(name) => name.clone(),
                    UserSpec::Cred(reference) => reference.to_string(),
                };
                self.add("the proxy user", user);
                self.add("the password reference", password.to_string());
            }
        }
        if let Some(tag) = &agent.no_proxy {
            self.tag(tag);
        }
        if let Some(script) = &agent.script {
            self.add("ScriptTag::shown", script.shown());
            self.add("the script's Origin", script.origin.to_string());
        }
        if let Some(kind) = &agent.agent_type {
            self.add("rs_agent:type", kind.clone());
        }
    }
}

/// Runs one parse and everything after it, and checks the oracle.
/// `parse` is called once, with the log catcher on; `input_holds_canary`
/// says the fuzzer wrote the canary itself (copied from the comparisons
/// below), where it is no secret.
pub fn exercise(
    cloud: &str,
    control: Control,
    input_holds_canary: bool,
    parse: impl FnOnce() -> tagstrap::error::Result<InstanceData>,
) {
    logs::begin();
    let image = image_layer(control.image());
    let mut forms = Forms::default();
    // Whether a shown canary would be a leak: not when the canary is also
    // in a key, an ID or a value that is no secret.
    let mut canary_public = input_holds_canary;

    match parse() {
        Err(err) => {
            assert!(
                matches!(err.exit_code(), 65 | 69),
                "{cloud}: exit code {} for {err:?}",
                err.exit_code()
            );
            forms.error("the parser's error", &err);
        }
        Ok(data) => {
            if let Some(id) = &data.instance_id {
                assert_eq!(id, id.trim(), "{cloud}: the instance ID is not trimmed");
                assert!(!id.is_empty(), "{cloud}: an empty instance ID");
                canary_public |= holds_canary(id);
                forms.add("the instance ID, shown", shown(id));
            }
            forms.add("InstanceData::from", data.from.clone());
            for tag in &data.tags {
                assert!(
                    tag.key.starts_with(PREFIX),
                    "{cloud}: a tag that is not tagstrap's: {tag:?}"
                );
                assert!(
                    forbidden_char(&tag.key).is_none() && forbidden_char(&tag.value).is_none(),
                    "{cloud}: a hidden character accepted in {tag:?}"
                );
                assert!(
                    matches!(tag.origin, Origin::Instance { .. }),
                    "{cloud}: origin {:?}",
                    tag.origin
                );
                if canary_is_secret(tag) == Some(false) {
                    canary_public = true;
                }
                forms.tag(tag);
            }

            let mut set = TagSet::new();
            set.layer(image);
            set.layer(data.tags.iter().cloned());
            for entry in set.entries() {
                forms.tag(&entry.tag);
                for beaten in &entry.overridden {
                    forms.add("an overridden Origin", beaten.to_string());
                }
            }
            for platform in [Platform::Unix, Platform::Windows] {
                match AgentTags::from_tags(&set, platform) {
                    Ok(agent) => forms.agent(&agent),
                    Err(err) => {
                        assert_eq!(err.exit_code(), 65, "{cloud} {platform:?}: {err:?}");
                        forms.error("AgentTags::from_tags's error", &err);
                    }
                }
            }
        }
    }

    for line in logs::take() {
        let one = line.strip_suffix('\n').unwrap_or(&line);
        forms.add("a log line", one.to_string());
    }
    for (what, text) in &forms.0 {
        if let Some((c, kind)) = forbidden_char(text) {
            panic!(
                "{cloud}: {what} holds the {} U+{:04X}: {}",
                kind.name(),
                c as u32,
                shown(text)
            );
        }
        if !canary_public {
            assert!(
                !holds_canary(text),
                "{cloud}: {what} shows the planted password: {}",
                shown(text)
            );
        }
    }
}
