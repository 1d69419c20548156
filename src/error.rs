//! The program's one error type. Each variant is a class of failure with the
//! exit code SPEC §5 gives it; [`Error::exit_code`] is the only place where that
//! mapping lives. Messages say what failed and what to do, and never hold a
//! secret: they are built from tag names, hosts and statuses only.
//!
//! Layer: errors, the bottom one: it imports nothing of tagstrap's.

use std::fmt;

/// Exit codes of SPEC §5 (sysexits.h values), plus the two this program adds
/// where SPEC is silent: 73 when the state directory cannot be written, and 126
/// (as shells do) when the downloaded script cannot be started; and 128+N
/// when a signal N stopped tagstrap, as shells report a command a signal
/// ended.
pub mod exit {
    pub const OK: i32 = 0;
    pub const USAGE: i32 = 64;
    pub const DATA: i32 = 65;
    pub const NO_INPUT: i32 = 66;
    pub const UNAVAILABLE: i32 = 69;
    pub const CANT_CREATE: i32 = 73;
    pub const NO_PERM: i32 = 77;
    pub const CONFIG: i32 = 78;
    pub const CANNOT_EXECUTE: i32 = 126;
    /// Plus the signal's number.
    pub const SIGNAL_BASE: i32 = 128;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad command line.
    Usage(String),
    /// Bad input: a malformed tag, proxy URL, pin; checksum mismatch; script too large.
    Input(String),
    /// The script URL answered 404/410, or a named credential does not exist.
    NotFound(String),
    /// The deadline passed while the network, proxy, store or script host kept failing.
    Unavailable(String),
    /// Access refused: 407 or 403 from the proxy, 401/403 from the store or script host,
    /// or a TLS peer tagstrap refuses to trust.
    Refused(String),
    /// The configuration file (or the store configuration) is wrong.
    Config(String),
    /// The state directory or the script file cannot be written, or the
    /// state directory (or the `--write-env` directory) is not tagstrap's
    /// alone (SPEC §8).
    CantCreate(String),
    /// The downloaded script could not be started.
    CannotExecute(String),
    /// A signal stopped tagstrap (SPEC §8): the step under way was cancelled,
    /// or the script's process group got the signal and was waited for.
    Stopped { signal: i32, message: String },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Input(_) => exit::DATA,
            Error::NotFound(_) => exit::NO_INPUT,
            Error::Unavailable(_) => exit::UNAVAILABLE,
            Error::Refused(_) => exit::NO_PERM,
            Error::Config(_) => exit::CONFIG,
            Error::CantCreate(_) => exit::CANT_CREATE,
            Error::CannotExecute(_) => exit::CANNOT_EXECUTE,
            Error::Stopped { signal, .. } => exit::SIGNAL_BASE + signal,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::Usage(m)
            | Error::Input(m)
            | Error::NotFound(m)
            | Error::Unavailable(m)
            | Error::Refused(m)
            | Error::Config(m)
            | Error::CantCreate(m)
            | Error::CannotExecute(m)
            | Error::Stopped { message: m, .. } => m,
        }
    }

    /// A short name of the class, for the report and JSON logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::Input(_) => "bad-input",
            Error::NotFound(_) => "not-found",
            Error::Unavailable(_) => "unavailable",
            Error::Refused(_) => "refused",
            Error::Config(_) => "config",
            Error::CantCreate(_) => "cant-create",
            Error::CannotExecute(_) => "cannot-execute",
            Error::Stopped { .. } => "stopped",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_the_exit_code_of_spec() {
        let cases = [
            (Error::Usage(String::new()), 64),
            (Error::Input(String::new()), 65),
            (Error::NotFound(String::new()), 66),
            (Error::Unavailable(String::new()), 69),
            (Error::Refused(String::new()), 77),
            (Error::Config(String::new()), 78),
            (Error::CantCreate(String::new()), 73),
            (Error::CannotExecute(String::new()), 126),
            (
                Error::Stopped {
                    signal: 15,
                    message: String::new(),
                },
                143,
            ),
            (
                Error::Stopped {
                    signal: 1,
                    message: String::new(),
                },
                129,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
    }
}
