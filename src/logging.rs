//! Log lines on stderr, as text or as JSON (one object per line). Only
//! tagstrap's own events are recorded: the libraries' `log` records (the HTTP
//! client, TLS) are never bridged in, so no verbosity can make a library print
//! a proxy URL or a header.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the subscriber. `verbose` counts `-v`; `TAGSTRAP_LOG` (filter
/// directives such as `debug`) overrides it.
pub fn init(format: LogFormat, verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let directives = std::env::var("TAGSTRAP_LOG").unwrap_or_else(|_| level.to_string());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    // A second init (tests calling in twice) keeps the first subscriber.
    let _ = installed;
}
