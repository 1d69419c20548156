//! Showing text that came from outside tagstrap (tags, metadata answers,
//! instance IDs, hosts, paths, store answers) to people: in log lines, error
//! lines, `plan`, `tags`, `doctor` and the report.
//!
//! A value from outside may hold characters that change what a reader sees
//! without changing the bytes' meaning to a program: a newline or carriage
//! return forges a whole log line of its own, ESC starts a terminal escape
//! sequence, U+202E (RIGHT-TO-LEFT OVERRIDE) makes a line read differently
//! from its bytes, and a zero-width space hides inside a host name. So there
//! is one rule, written once here: such characters are never shown raw but
//! as `\u{…}` (`\u{a}` for a newline), and values that tagstrap will act on
//! (tag values) refuse them outright ([`forbidden_char`]).

use std::fmt::{self, Write};
use std::path::Path;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a character may not be shown raw or used in a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// General category Cc: C0 and C1 controls, DEL (newline, ESC, NUL, …).
    Control,
    /// General category Cf: bidirectional overrides and isolates, zero-width
    /// characters, the BOM, soft hyphen, tag characters, …
    Format,
    /// General categories Zl and Zp: U+2028 and U+2029, which some viewers
    /// break lines at.
    Separator,
}

impl Hidden {
    /// "control character", "format character", "line separator".
    pub fn name(self) -> &'static str {
        match self {
            Hidden::Control => "control character",
            Hidden::Format => "Unicode format character",
            Hidden::Separator => "Unicode line separator",
        }
    }
}

/// Whether `c` must not be shown raw, and why.
pub(crate) fn hidden(c: char) -> Option<Hidden> {
    match c.general_category() {
        GeneralCategory::Control => Some(Hidden::Control),
        GeneralCategory::Format => Some(Hidden::Format),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
            Some(Hidden::Separator)
        }
        _ => None,
    }
}

/// The first character of `text` that a value must not hold, with its kind.
pub fn forbidden_char(text: &str) -> Option<(char, Hidden)> {
    text.chars().find_map(|c| hidden(c).map(|kind| (c, kind)))
}

/// The first character of `text` that a value must not hold, named for a
/// message without showing it: "Unicode format character U+202E". The one
/// wording of every refusal of such a value.
pub(crate) fn named_forbidden_char(text: &str) -> Option<String> {
    forbidden_char(text).map(|(c, kind)| format!("{} {}", kind.name(), code_point(c)))
}

/// A character named for a message without showing it: `U+202E`.
pub(crate) fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// `text` with every control, format and line-separator character written as
/// `\u{…}`; everything else as it is. The one way an outside value reaches a
/// person.
pub fn shown(text: &str) -> String {
    Shown(text).to_string()
}

/// A path, shown as [`shown`] shows text (lossy for a path that is not
/// UTF-8).
pub(crate) fn shown_path(path: &Path) -> String {
    shown(&path.to_string_lossy())
}

/// A local script's path as the `file://` URL it was named by, shown as
/// [`shown_path`] shows it: `file:///opt/i.sh`, and on Windows
/// `file:///C:/agent/i.ps1` (not `file://C:\agent\i.ps1`).
pub(crate) fn shown_file_url(path: &Path) -> String {
    let path = path.to_string_lossy();
    if cfg!(windows) {
        // Separators first: the escapes `shown` writes hold backslashes.
        format!("file:///{}", shown(&path.replace('\\', "/")))
    } else {
        format!("file://{}", shown(&path))
    }
}

/// Prints one line on stdout with every hidden character escaped: `plan`,
/// `tags` and `doctor` print through this only, so no value they quote can
/// start a line of its own or rewrite the terminal.
pub(crate) fn print_line(line: fmt::Arguments<'_>) {
    println!("{}", Shown(&line.to_string()));
}

/// [`shown`] as a `Display` value, for `format!` arguments without an
/// intermediate `String`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        // The common case, a clean value, is written in one piece.
        if forbidden_char(text).is_none() {
            return f.write_str(text);
        }
        for c in text.chars() {
            if hidden(c).is_some() {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_format_characters_are_escaped_and_the_rest_is_kept() {
        assert_eq!(shown("i-0abc"), "i-0abc");
        assert_eq!(shown("a\nb"), "a\\u{a}b");
        assert_eq!(shown("a\r\tb"), "a\\u{d}\\u{9}b");
        assert_eq!(shown("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(shown("exa\u{200b}mple.com"), "exa\\u{200b}mple.com");
        assert_eq!(shown("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(shown("\u{feff}x\u{2028}y"), "\\u{feff}x\\u{2028}y");
        assert_eq!(shown("\u{85}\u{7f}\0"), "\\u{85}\\u{7f}\\u{0}");
        // Letters of any script, and ordinary symbols, stay readable.
        assert_eq!(shown("bücher.例え.test ¿?"), "bücher.例え.test ¿?");
        assert_eq!(shown_path(Path::new("/opt/a\nb.sh")), "/opt/a\\u{a}b.sh");
    }

    #[test]
    fn shown_text_never_holds_a_hidden_character() {
        let every: String = (0u32..0x11_0000).filter_map(char::from_u32).collect();
        let out = shown(&every);
        assert_eq!(forbidden_char(&out), None);
        assert!(!out.contains('\n'));
    }

    #[test]
    fn each_kind_is_named() {
        assert_eq!(forbidden_char("ok"), None);
        assert_eq!(forbidden_char("a\nb"), Some(('\n', Hidden::Control)));
        assert_eq!(
            forbidden_char("a\u{202e}b"),
            Some(('\u{202e}', Hidden::Format))
        );
        assert_eq!(
            forbidden_char("a\u{200b}b"),
            Some(('\u{200b}', Hidden::Format))
        );
        assert_eq!(
            forbidden_char("a\u{2029}"),
            Some(('\u{2029}', Hidden::Separator))
        );
        // The soft hyphen and the language tags are Cf too.
        assert_eq!(
            forbidden_char("\u{ad}").map(|(_, k)| k),
            Some(Hidden::Format)
        );
        assert_eq!(
            forbidden_char("\u{e0041}").map(|(_, k)| k),
            Some(Hidden::Format)
        );
        assert_eq!(code_point('\u{202e}'), "U+202E");
        assert_eq!(
            named_forbidden_char("exa\u{200b}mple").as_deref(),
            Some("Unicode format character U+200B")
        );
        assert_eq!(named_forbidden_char("example"), None);
        assert_eq!(code_point('\n'), "U+000A");
    }
}
