//! The tags-file format (SPEC §1): one `key=value` per line, blank lines and
//! lines starting with `#` ignored, the value everything after the first `=`.
//! The same text is what GCE's `rs_agent-tags` attribute holds.

use std::path::Path;

use super::{Origin, Tag};
use crate::error::{Error, Result};

/// Largest tags file read: a tags file is a handful of lines, and a boot-time
/// program should not read an arbitrary file into memory by mistake.
pub(crate) const MAX_TAGS_FILE_BYTES: u64 = 1024 * 1024;

/// Parses tags-file text. `origin_of(line)` names where each line came from.
/// Lines may end in CRLF (a file edited on Windows); any other control
/// character is refused by [`Tag::new`].
pub fn parse(text: &str, origin_of: impl Fn(usize) -> Origin) -> Result<Vec<Tag>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut tags = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_matches(|c| c == ' ' || c == '\t');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let origin = origin_of(index + 1);
        match line.split_once('=') {
            Some((key, value)) => tags.push(Tag::new(key, value, origin)?),
            None => {
                return Err(Error::Input(format!(
                    "{origin}: expected key=value, found a line without '=': fix or remove it"
                )))
            }
        }
    }
    Ok(tags)
}

/// Reads and parses one tags file.
pub(crate) fn read(path: &Path) -> Result<Vec<Tag>> {
    let text = crate::util::fs::read_small_text(path, MAX_TAGS_FILE_BYTES, "tags file")?;
    parse(&text, |line| Origin::File {
        path: path.to_path_buf(),
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize) -> Origin {
        Origin::File {
            path: "t".into(),
            line,
        }
    }

    #[test]
    fn comments_blank_lines_crlf_and_bom_are_handled() {
        let text =
            "\u{feff}# image tags\r\n\r\nrs_agent:type=right_link_lite\r\n  # indented comment\n\
                    rs_agent:http_no_proxy = a,b=c \n";
        let tags = parse(text, at).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].key, "rs_agent:type");
        assert_eq!(tags[0].value, "right_link_lite");
        assert_eq!(tags[0].origin, at(3));
        assert_eq!(tags[1].value, "a,b=c");
        assert_eq!(tags[1].origin, at(5));
    }

    #[test]
    fn a_line_without_equals_names_its_line() {
        let err = parse("rs_agent:type=a\nrs_agent:http_proxy\n", at).unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert!(err.message().starts_with("t:2:"), "{err}");
    }

    #[test]
    fn a_lone_carriage_return_inside_a_value_is_refused() {
        let err = parse("rs_agent:type=a\rb\n", at).unwrap_err();
        assert_eq!(err.exit_code(), 65);
    }

    #[test]
    fn missing_and_oversized_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read(&dir.path().join("nope")).unwrap_err();
        assert_eq!(missing.exit_code(), 66);
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; (MAX_TAGS_FILE_BYTES + 1) as usize]).unwrap();
        assert_eq!(read(&big).unwrap_err().exit_code(), 65);
    }
}
