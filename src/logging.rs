//! Log lines on stderr, as text or as JSON (one object per line). Only
//! tagstrap's own events are recorded: the libraries' `log` records (the HTTP
//! client, TLS) are never bridged in, so no verbosity can make a library print
//! a proxy URL or a header.
//!
//! Every event is one line, whatever the values in it hold: the writer
//! escapes control, format and line-separator characters (a newline from a
//! hostile metadata answer would otherwise forge a second line with its own
//! timestamp and level). Messages already show outside values through
//! [`crate::util::text::shown`]; this is the guard behind them.
//!
//! Layer: logging. It may import every stage below it (for the shown text
//! and the log format), never a command.

use std::io::{IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use crate::util::text::hidden;

/// Installs the subscriber. `verbose` counts `-v`; `TAGSTRAP_LOG` (filter
/// directives such as `debug`) overrides it.
pub(crate) fn init(format: LogFormat, verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let directives = std::env::var(crate::settings::defs::VERBOSE.var_name())
        .unwrap_or_else(|_| level.to_string());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let ansi = std::io::stderr().is_terminal();
    let installed = match format {
        LogFormat::Text => builder
            .with_writer(OneLine { json: false, ansi })
            .with_ansi(ansi)
            .try_init(),
        LogFormat::Json => builder
            .with_writer(OneLine {
                json: true,
                ansi: false,
            })
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    // A second init (tests calling in twice) keeps the first subscriber.
    let _ = installed;
}

/// stderr, one event per line: see the module's doc.
#[derive(Debug, Clone, Copy)]
struct OneLine {
    json: bool,
    /// Colours on a terminal: ESC is then the formatter's own.
    ansi: bool,
}

impl<'a> MakeWriter<'a> for OneLine {
    type Writer = OneLine;

    fn make_writer(&'a self) -> OneLine {
        *self
    }
}

impl Write for OneLine {
    /// The formatter writes each event whole, ending in its newline.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let line = guarded(&text, self.json, self.ansi);
        std::io::stderr().lock().write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `event` with every hidden character but its final newline escaped: as
/// `\u{…}` in text, as a JSON `\uXXXX` escape in JSON (which decodes to the
/// same value, so the object stays what the formatter meant).
fn guarded(event: &str, json: bool, ansi: bool) -> String {
    let (body, end) = match event.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (event, ""),
    };
    let mut out = String::with_capacity(event.len() + 8);
    for c in body.chars() {
        if hidden(c).is_none() || (ansi && c == '\u{1b}') {
            out.push(c);
        } else if json {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out.push_str(end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stays_one_line() {
        assert_eq!(
            guarded("INFO instance i-1\n2026 INFO forged\n", false, false),
            "INFO instance i-1\\u{a}2026 INFO forged\n"
        );
        assert_eq!(
            guarded("ERROR a\u{202e}b\r\u{1b}[2J\n", false, false),
            "ERROR a\\u{202e}b\\u{d}\\u{1b}[2J\n"
        );
        // Colours on a terminal are the formatter's own.
        assert_eq!(
            guarded("\u{1b}[31mERROR\u{1b}[0m x\n", false, true),
            "\u{1b}[31mERROR\u{1b}[0m x\n"
        );
        assert_eq!(guarded("no newline", false, false), "no newline");
    }

    #[test]
    fn json_stays_json_with_the_same_values() {
        let event = serde_json::json!({ "message": "a\u{202e}b\u{e0041}c\nd" }).to_string() + "\n";
        let line = guarded(&event, true, false);
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(
            crate::util::text::forbidden_char(line.trim_end()),
            None,
            "{line}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["message"], "a\u{202e}b\u{e0041}c\nd");
    }
}
