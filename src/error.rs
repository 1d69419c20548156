//! The program's one error type. Each variant is a class of failure with the
//! exit code SPEC §5 gives it; [`Error::exit_code`] is the only place where that
//! mapping lives. Messages say what failed and what to do, and never hold a
//! secret: they are built from tag names, hosts and statuses only.
//!
//! An error passed on keeps its class: changing it is [`Error::relabeled`],
//! which keeps the line and the fields, for the few places where the
//! contract asks for it. The failures callers ask
//! about keep the facts their line is built from as fields (`Status`, `Tag`,
//! `Setting`), so a test can check the status or the tag key rather than
//! find it in the prose.
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

/// What a failure is, which fixes its exit code (SPEC §5). Every [`Error`]
/// has one: a plain variant is its class, a structured one carries it as a
/// field, so that a re-label ([`Error::relabeled`]) keeps the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Usage,
    Input,
    NotFound,
    Unavailable,
    Refused,
    Config,
    CantCreate,
    CannotExecute,
    Stopped { signal: i32 },
}

/// A failure: its class (hence its exit code) and the one line the operator
/// reads. The structured variants (`Status`, `Tag`, `Setting`) also keep the
/// facts the line was built from, for the failures callers and tests ask
/// about: none of them ever holds a secret (hosts, statuses, tag keys,
/// origins and setting names only).
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
    /// An HTTP answer that ends the request: its `status`, what was `asked`
    /// (the script's shown URL, `CONNECT repo:443`, a credential's path) and
    /// who answered (`by`: a host, the proxy's authority, the store).
    Status {
        class: Class,
        status: u16,
        asked: String,
        by: String,
        message: String,
    },
    /// A tag that cannot be used (SPEC §1): its `key` (as shown: a control
    /// character escaped) and its `origin` (as `Origin` displays it).
    Tag {
        class: Class,
        key: String,
        origin: String,
        message: String,
    },
    /// A bad setting: the `place` it was given, as the line names it
    /// (`--deadline`, `$VAULT_ADDR`, `[vault] address in /etc/…/config.toml`).
    Setting {
        class: Class,
        place: String,
        message: String,
    },
}

impl Error {
    /// The plain variant of `class`.
    pub(crate) fn new(class: Class, message: impl Into<String>) -> Error {
        let message = message.into();
        match class {
            Class::Usage => Error::Usage(message),
            Class::Input => Error::Input(message),
            Class::NotFound => Error::NotFound(message),
            Class::Unavailable => Error::Unavailable(message),
            Class::Refused => Error::Refused(message),
            Class::Config => Error::Config(message),
            Class::CantCreate => Error::CantCreate(message),
            Class::CannotExecute => Error::CannotExecute(message),
            Class::Stopped { signal } => Error::Stopped { signal, message },
        }
    }

    /// An HTTP answer that ends the request. The line must show the status
    /// and who answered: a field is what the line is built from, so a test
    /// that checks the field checks the line (debug builds assert it).
    pub(crate) fn status(
        class: Class,
        status: u16,
        asked: impl Into<String>,
        by: impl Into<String>,
        message: String,
    ) -> Error {
        let (asked, by) = (asked.into(), by.into());
        debug_assert!(
            message.contains(&status.to_string()) && message.contains(&by),
            "{message:?} must show {status} and {by:?}"
        );
        Error::Status {
            class,
            status,
            asked,
            by,
            message,
        }
    }

    /// A tag that cannot be used: bad input (65) wherever it was read. The
    /// line must show the key (as shown) and the origin.
    pub(crate) fn tag(key: impl Into<String>, origin: impl fmt::Display, message: String) -> Error {
        let (key, origin) = (key.into(), origin.to_string());
        debug_assert!(
            message.contains(&key) && message.contains(&origin),
            "{message:?} must show {key:?} and {origin:?}"
        );
        Error::Tag {
            class: Class::Input,
            key,
            origin,
            message,
        }
    }

    /// A bad setting given at `place`, which the line must start with.
    pub(crate) fn setting(class: Class, place: impl Into<String>, message: String) -> Error {
        let place = place.into();
        debug_assert!(
            message.starts_with(&place),
            "{message:?} must start with {place:?}"
        );
        Error::Setting {
            class,
            place,
            message,
        }
    }

    pub(crate) fn class(&self) -> Class {
        match self {
            Error::Usage(_) => Class::Usage,
            Error::Input(_) => Class::Input,
            Error::NotFound(_) => Class::NotFound,
            Error::Unavailable(_) => Class::Unavailable,
            Error::Refused(_) => Class::Refused,
            Error::Config(_) => Class::Config,
            Error::CantCreate(_) => Class::CantCreate,
            Error::CannotExecute(_) => Class::CannotExecute,
            Error::Stopped { signal, .. } => Class::Stopped { signal: *signal },
            Error::Status { class, .. }
            | Error::Tag { class, .. }
            | Error::Setting { class, .. } => *class,
        }
    }

    /// The one mapping from a class to its exit code.
    pub fn exit_code(&self) -> i32 {
        match self.class() {
            Class::Usage => exit::USAGE,
            Class::Input => exit::DATA,
            Class::NotFound => exit::NO_INPUT,
            Class::Unavailable => exit::UNAVAILABLE,
            Class::Refused => exit::NO_PERM,
            Class::Config => exit::CONFIG,
            Class::CantCreate => exit::CANT_CREATE,
            Class::CannotExecute => exit::CANNOT_EXECUTE,
            Class::Stopped { signal } => exit::SIGNAL_BASE + signal,
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
            | Error::Stopped { message: m, .. }
            | Error::Status { message: m, .. }
            | Error::Tag { message: m, .. }
            | Error::Setting { message: m, .. } => m,
        }
    }

    /// A short name of the class, for the report and JSON logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self.class() {
            Class::Usage => "usage",
            Class::Input => "bad-input",
            Class::NotFound => "not-found",
            Class::Unavailable => "unavailable",
            Class::Refused => "refused",
            Class::Config => "config",
            Class::CantCreate => "cant-create",
            Class::CannotExecute => "cannot-execute",
            Class::Stopped { .. } => "stopped",
        }
    }

    /// The same line and fields in another class. Only where the contract
    /// says so (SPEC §5: anything wrong inside the configuration file is 78,
    /// a bad tag written there included); say why at the call.
    pub(crate) fn relabeled(self, class: Class) -> Error {
        let line = self.message().to_string();
        self.rebuilt(class, line)
    }

    /// This error's fields with `class` and `message`.
    fn rebuilt(self, class: Class, message: String) -> Error {
        match self {
            Error::Status {
                status, asked, by, ..
            } => Error::Status {
                class,
                status,
                asked,
                by,
                message,
            },
            Error::Tag { key, origin, .. } => Error::Tag {
                class,
                key,
                origin,
                message,
            },
            Error::Setting { place, .. } => Error::Setting {
                class,
                place,
                message,
            },
            _ => Error::new(class, message),
        }
    }
}

/// What tests ask of an error instead of searching its line: the fields
/// of the structured variants (which the constructors keep in the line).
#[cfg(test)]
impl Error {
    /// `(status, asked, by)` of an HTTP status failure.
    pub(crate) fn status_fields(&self) -> Option<(u16, &str, &str)> {
        match self {
            Error::Status {
                status, asked, by, ..
            } => Some((*status, asked, by)),
            _ => None,
        }
    }

    /// `(key, origin)` of a bad tag.
    pub(crate) fn tag_fields(&self) -> Option<(&str, &str)> {
        match self {
            Error::Tag { key, origin, .. } => Some((key, origin)),
            _ => None,
        }
    }

    /// Where a bad setting was given.
    pub(crate) fn setting_place(&self) -> Option<&str> {
        match self {
            Error::Setting { place, .. } => Some(place),
            _ => None,
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

    /// One error of each shape in each class: the plain variants, and the
    /// structured ones in the classes they are built in.
    fn one_of_each() -> Vec<Error> {
        let classes = [
            Class::Usage,
            Class::Input,
            Class::NotFound,
            Class::Unavailable,
            Class::Refused,
            Class::Config,
            Class::CantCreate,
            Class::CannotExecute,
            Class::Stopped { signal: 15 },
        ];
        let mut all = Vec::new();
        for class in classes {
            all.push(Error::new(class, "plain"));
            all.push(Error::status(
                class,
                404,
                "the script https://repo/x",
                "repo",
                "repo answered 404".into(),
            ));
            all.push(
                Error::tag(
                    "rs_agent:type",
                    "--tag",
                    "rs_agent:type (--tag): bad".into(),
                )
                .relabeled(class),
            );
            all.push(Error::setting(
                class,
                "--deadline",
                "--deadline: bad".into(),
            ));
        }
        all
    }

    #[test]
    fn structured_errors_exit_with_their_class_code() {
        for error in one_of_each() {
            assert_eq!(error.exit_code(), Error::new(error.class(), "").exit_code());
            assert_eq!(error.kind(), Error::new(error.class(), "").kind());
        }
        let status = Error::status(
            Class::Refused,
            403,
            "CONNECT repo:443",
            "proxy:3128",
            "proxy:3128 refused CONNECT repo:443 with 403".into(),
        );
        assert_eq!((status.exit_code(), status.kind()), (77, "refused"));
        assert_eq!(
            status.status_fields(),
            Some((403, "CONNECT repo:443", "proxy:3128"))
        );
        let tag = Error::tag("rs_agent:type", "--tag", "rs_agent:type (--tag)".into());
        assert_eq!((tag.exit_code(), tag.kind()), (65, "bad-input"));
        assert_eq!(tag.tag_fields(), Some(("rs_agent:type", "--tag")));
        let setting = Error::setting(Class::Usage, "--deadline", "--deadline: 0".into());
        assert_eq!(setting.setting_place(), Some("--deadline"));
        assert_eq!((setting.exit_code(), setting.kind()), (64, "usage"));
    }

    #[test]
    fn relabeled_changes_only_the_class() {
        for error in one_of_each() {
            let config = error.clone().relabeled(Class::Config);
            assert_eq!(config.exit_code(), 78, "{error:?}");
            assert_eq!(config.kind(), "config", "{error:?}");
            assert_eq!(config.message(), error.message());
            assert_eq!(config.relabeled(error.class()), error);
        }
    }

    #[test]
    #[should_panic(expected = "must show")]
    #[cfg(debug_assertions)]
    fn a_tag_error_whose_line_hides_its_origin_is_a_bug() {
        let _ = Error::tag("rs_agent:type", "--tag", "a bad tag".into());
    }

    #[test]
    fn display_is_the_line_alone() {
        for error in one_of_each() {
            assert_eq!(error.to_string(), error.message());
        }
    }
}
