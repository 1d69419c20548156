//! How every setting is looked up, whichever stage owns it: the first of
//! flag, `TAGSTRAP_*` variable and config key (`pick`), and where the value
//! came from (`Found`), so that a bad value's error names its place and is
//! a usage error (64) from a flag or a variable, a configuration error (78)
//! from the file.

use std::path::Path;

use crate::error::Error;

/// A value and the name of the place it came from, for error messages.
pub(crate) struct Found<T> {
    pub(crate) value: T,
    pub(crate) from: String,
    pub(crate) is_file: bool,
}

impl<T> Found<T> {
    pub(crate) fn error(&self, reason: impl std::fmt::Display) -> Error {
        let message = format!("{}: {reason}", self.from);
        if self.is_file {
            Error::Config(message)
        } else {
            Error::Usage(message)
        }
    }
}

/// Picks the first of flag, variable, file value.
pub(crate) fn pick<T>(
    flag: Option<T>,
    flag_name: &str,
    var: Option<T>,
    var_name: &str,
    file: Option<T>,
    file_key: &str,
    config: &Path,
) -> Option<Found<T>> {
    if let Some(value) = flag {
        return Some(Found {
            value,
            from: flag_name.to_string(),
            is_file: false,
        });
    }
    if let Some(value) = var {
        return Some(Found {
            value,
            from: format!("${var_name}"),
            is_file: false,
        });
    }
    file.map(|value| Found {
        value,
        from: format!("{} in {}", file_key, config.display()),
        is_file: true,
    })
}

/// A comma-separated list, blanks trimmed, empty items dropped.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
