//! The tags part of a CloudStack instance's user-data: a MIME multipart (as
//! `cloud-init devel make-mime` builds it) whose one part of type
//! `text/x-tagstrap-tags` holds a tags file. The rest of the user-data is
//! cloud-init's: the `text/x-shellscript` part that starts tagstrap, a
//! `#cloud-config`, anything.
//!
//! Read as cloud-init reads user-data where the two meet: gzip'd user-data
//! is decompressed first; it is MIME when `MIME-Version:` appears in its
//! first 4096 bytes, and otherwise one plain document (a shell script, a
//! cloud-config) that holds no tags. Every case, decided here (and
//! documented in docs/clouds.md):
//! - no user-data, an empty one, one that is not MIME, a MIME message with
//!   no tags part: no tags, an info line;
//! - one tags part (at any depth of nested multiparts, base64,
//!   quoted-printable or plain): its text is the tags file;
//! - two tags parts, a tags part over [`MAX_TAGS_PART_BYTES`] or whose
//!   base64 is broken, a multipart whose closing boundary never comes (cut
//!   short), gzip that does not decompress or decompresses past
//!   [`MAX_USER_DATA_BYTES`]: refused (exit 65) rather than guessed at.
//!
//! Parts inside an attached `message/rfc822` are not looked into, nor a
//! part that is itself gzip'd: cloud-init decompresses such a part, but no
//! tool that builds user-data writes the tags that way.

use std::io::Read;

use mail_parser::{MessageParser, MessagePart, MimeHeaders, PartType};

use crate::error::{Error, Result};
use crate::util::text::shown;

/// The part's MIME type (SPEC §1).
pub(crate) const TAGS_TYPE: &str = "text/x-tagstrap-tags";
/// Largest user-data after gzip: CloudStack's own limit
/// (`vm.userdata.max.length` at most 1 MiB), and a gzip bomb's stop.
pub(crate) const MAX_USER_DATA_BYTES: u64 = 1024 * 1024;
/// Largest tags part, decoded: a tags file is a handful of lines.
pub(crate) const MAX_TAGS_PART_BYTES: usize = 64 * 1024;
/// How far cloud-init looks for `MIME-Version:`.
const MIME_SNIFF_BYTES: usize = 4096;

/// What the user-data holds for tagstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagsPart {
    /// The tags part's text (a tags file).
    Found(String),
    /// No tags in it, and why, for the info line.
    None(String),
}

/// The user-data as the router served it → its tags part. `from` is where
/// it was read, as shown. Pure: no I/O.
pub(crate) fn tags_part(user_data: &[u8], from: &str) -> Result<TagsPart> {
    let bad = |what: String| {
        Error::Input(format!(
            "the CloudStack user-data from {}: {what}",
            shown(from)
        ))
    };
    let data = gunzip(user_data).map_err(bad)?;
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(TagsPart::None("the user-data is empty".into()));
    }
    if !is_mime(&data) {
        return Ok(TagsPart::None(format!(
            "the user-data is not MIME (it starts {}), so it has no {TAGS_TYPE} part",
            first_line(&data)
        )));
    }
    let message = MessageParser::new()
        .parse(&data[..])
        .ok_or_else(|| bad("it says MIME-Version but is no MIME message".into()))?;
    let mut found: Option<&MessagePart> = None;
    for part in &message.parts {
        if let PartType::Multipart(_) = part.body {
            let boundary = part
                .content_type()
                .and_then(|c| c.attribute("boundary"))
                .unwrap_or("");
            if !closes(&data, boundary) {
                return Err(bad(format!(
                    "a multipart's closing boundary \"--{}--\" never comes: the user-data is cut \
                     short (CloudStack's limit is vm.userdata.max.length)",
                    shown(boundary)
                )));
            }
            continue;
        }
        if !is_tags(part) {
            continue;
        }
        if found.is_some() {
            return Err(bad(format!(
                "it has more than one {TAGS_TYPE} part: put all the tags in one"
            )));
        }
        found = Some(part);
    }
    let Some(part) = found else {
        return Ok(TagsPart::None(format!(
            "the user-data is MIME without a {TAGS_TYPE} part"
        )));
    };
    if part.is_encoding_problem {
        return Err(bad(format!(
            "its {TAGS_TYPE} part does not decode as its Content-Transfer-Encoding says"
        )));
    }
    let text = part.text_contents().unwrap_or("");
    if text.len() > MAX_TAGS_PART_BYTES {
        return Err(bad(format!(
            "its {TAGS_TYPE} part is {} bytes, over the {MAX_TAGS_PART_BYTES}-byte limit of a \
             tags part",
            text.len()
        )));
    }
    // mail-parser turns bytes that are not text in the part's charset into
    // U+FFFD: a tag must not change on the way, so that is refused.
    if text.contains('\u{fffd}') {
        return Err(bad(format!(
            "its {TAGS_TYPE} part is not text in its charset (UTF-8 unless it says otherwise)"
        )));
    }
    Ok(TagsPart::Found(text.to_string()))
}

/// Whether a part is of the tags type (MIME types are case-insensitive).
fn is_tags(part: &MessagePart) -> bool {
    part.content_type().is_some_and(|c| {
        let full = format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""));
        full.eq_ignore_ascii_case(TAGS_TYPE)
    })
}

/// Whether `--boundary--` appears: a multipart that never closes was cut.
fn closes(data: &[u8], boundary: &str) -> bool {
    let close = format!("--{boundary}--");
    data.windows(close.len()).any(|w| w == close.as_bytes())
}

/// As cloud-init: `MIME-Version:` (any case) in the first 4096 bytes.
fn is_mime(data: &[u8]) -> bool {
    let head = data[..data.len().min(MIME_SNIFF_BYTES)].to_ascii_lowercase();
    head.windows(b"mime-version:".len())
        .any(|w| w == b"mime-version:")
}

/// gzip'd user-data decompressed (cloud-init accepts it), bounded; other
/// user-data as it is.
fn gunzip(data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Ok(data.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(MAX_USER_DATA_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            format!(
                "it starts as gzip but does not decompress ({})",
                shown(&e.to_string())
            )
        })?;
    if out.len() as u64 > MAX_USER_DATA_BYTES {
        return Err(format!(
            "it decompresses to more than {MAX_USER_DATA_BYTES} bytes"
        ));
    }
    Ok(out)
}

/// The first line of a document, quoted and shown, at most 40 characters.
fn first_line(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(160)]);
    let line: String = text
        .trim_start()
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(40)
        .collect();
    format!("\"{}\"", shown(&line))
}
