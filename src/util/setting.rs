//! How every setting is defined and looked up, whichever stage owns it.
//!
//! A [`Setting`] is the one definition of a setting: its config key, its
//! flag, its variable and its default, written nowhere else. The help text
//! (`cli`) is generated from it, and tests check the command line, the
//! config file and `docs/configuration.md` against it. [`pick`] is the merge
//! of SPEC §3, written once: the flag, then the variable, then the config
//! key. What it finds says where it came from ([`Found`]), so that a bad
//! value's error names its place and is a usage error (64) from a flag or a
//! variable, a configuration error (78) from the file.

use std::path::Path;

use crate::error::{Class, Error};

/// Where the config file holds a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InFile {
    /// Nowhere: `--config` itself, test hooks.
    No,
    /// `key = value` at the top level (or in the owning store's section,
    /// when the key is written `[section] key`).
    Key,
    /// A `[key]` table of its own.
    Table,
}

/// One setting, defined once.
#[derive(Debug)]
pub(crate) struct Setting {
    /// The config key as messages name it (`[vault] address` for a key in
    /// a store's section); for a flag, also clap's id for it (the field of
    /// `cli::CommonArgs`), so the two cannot drift apart unseen.
    pub(crate) key: &'static str,
    /// `--flag`, when the command line has one.
    pub(crate) flag: Option<&'static str>,
    /// The environment variable, when there is one.
    pub(crate) var: Option<&'static str>,
    pub(crate) in_file: InFile,
    /// The default as help and the docs show it; read with the setting's
    /// own parser when nothing else is set, so the text is the default.
    pub(crate) default: Option<&'static str>,
    /// How the variable's value is written, when it is not one value
    /// ("a path list").
    pub(crate) var_form: Option<&'static str>,
}

impl Setting {
    /// A setting with a flag, a variable and a top-level key.
    pub(crate) const fn everywhere(
        key: &'static str,
        flag: &'static str,
        var: &'static str,
    ) -> Setting {
        Setting {
            key,
            flag: Some(flag),
            var: Some(var),
            in_file: InFile::Key,
            default: None,
            var_form: None,
        }
    }

    /// A setting of the environment and the config file only.
    pub(crate) const fn var_and_key(key: &'static str, var: &'static str) -> Setting {
        Setting {
            key,
            flag: None,
            var: Some(var),
            in_file: InFile::Key,
            default: None,
            var_form: None,
        }
    }

    /// A setting of the environment only; `key` only names it.
    pub(crate) const fn var_only(key: &'static str, var: &'static str) -> Setting {
        Setting {
            key,
            flag: None,
            var: Some(var),
            in_file: InFile::No,
            default: None,
            var_form: None,
        }
    }

    /// A setting of the config file only.
    pub(crate) const fn file_only(key: &'static str) -> Setting {
        Setting {
            key,
            flag: None,
            var: None,
            in_file: InFile::Key,
            default: None,
            var_form: None,
        }
    }

    pub(crate) const fn default(mut self, text: &'static str) -> Setting {
        self.default = Some(text);
        self
    }

    pub(crate) const fn var_form(mut self, form: &'static str) -> Setting {
        self.var_form = Some(form);
        self
    }

    pub(crate) const fn in_file(mut self, in_file: InFile) -> Setting {
        self.in_file = in_file;
        self
    }

    /// The variable's name; for a setting defined with one.
    pub(crate) fn var_name(&self) -> &'static str {
        self.var
            .expect("a setting read from the environment names its variable")
    }

    /// What `--help` adds after a flag's own words: its default, variable
    /// and config key, from this definition.
    pub(crate) fn help_suffix(&self) -> String {
        let mut parts = Vec::new();
        if let Some(default) = self.default {
            parts.push(format!("[default: {default}]"));
        }
        if let Some(var) = self.var {
            match self.var_form {
                Some(form) => parts.push(format!("[env: {var}, {form}]")),
                None => parts.push(format!("[env: {var}]")),
            }
        }
        match self.in_file {
            InFile::No => {}
            InFile::Key => parts.push(format!("[config: {}]", self.key)),
            InFile::Table => parts.push(format!("[config: [{}] table]", self.key)),
        }
        parts.join(" ")
    }
}

/// A value and the name of the place it came from, for error messages.
pub(crate) struct Found<T> {
    pub(crate) value: T,
    pub(crate) from: String,
    pub(crate) is_file: bool,
}

impl<T> Found<T> {
    pub(crate) fn error(&self, reason: impl std::fmt::Display) -> Error {
        let class = if self.is_file {
            Class::Config
        } else {
            Class::Usage
        };
        Error::setting(class, &self.from, format!("{}: {reason}", self.from))
    }
}

/// The merge of SPEC §3: the first of the flag's value, the variable's and
/// the file's, with where it came from.
pub(crate) fn pick<T>(
    setting: &Setting,
    flag: Option<T>,
    var: Option<T>,
    file: Option<T>,
    config: &Path,
) -> Option<Found<T>> {
    let found = |value, from, is_file| Found {
        value,
        from,
        is_file,
    };
    if let (Some(value), Some(name)) = (flag, setting.flag) {
        return Some(found(value, name.to_string(), false));
    }
    if let (Some(value), Some(name)) = (var, setting.var) {
        return Some(found(value, format!("${name}"), false));
    }
    file.map(|value| {
        found(
            value,
            format!("{} in {}", setting.key, config.display()),
            true,
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Setting =
        Setting::everywhere("deadline", "--deadline", "TAGSTRAP_DEADLINE").default("600");

    #[test]
    fn the_flag_then_the_variable_then_the_file() {
        let config = Path::new("/etc/tagstrap/config.toml");
        let one = |flag, var, file| {
            pick(&DEADLINE, flag, var, file, config).map(|f| (f.value, f.from, f.is_file))
        };
        assert_eq!(
            one(Some(1), Some(2), Some(3)),
            Some((1, "--deadline".into(), false))
        );
        assert_eq!(
            one(None, Some(2), Some(3)),
            Some((2, "$TAGSTRAP_DEADLINE".into(), false))
        );
        assert_eq!(
            one(None, None, Some(3)),
            Some((3, "deadline in /etc/tagstrap/config.toml".into(), true))
        );
        assert_eq!(one(None, None, None), None);
    }

    #[test]
    fn help_names_the_default_the_variable_and_the_key() {
        assert_eq!(
            DEADLINE.help_suffix(),
            "[default: 600] [env: TAGSTRAP_DEADLINE] [config: deadline]"
        );
        let tags = Setting::everywhere("tags", "--tag", "TAGSTRAP_TAG")
            .in_file(InFile::Table)
            .var_form("one KEY=VALUE per line");
        assert_eq!(
            tags.help_suffix(),
            "[env: TAGSTRAP_TAG, one KEY=VALUE per line] [config: [tags] table]"
        );
    }

    #[test]
    fn a_bad_value_is_64_from_a_flag_or_variable_and_78_from_the_file() {
        let config = Path::new("c.toml");
        let from = |flag, var, file| {
            pick(&DEADLINE, flag, var, file, config)
                .unwrap()
                .error("no")
                .exit_code()
        };
        assert_eq!(from(Some(()), None, None), 64);
        assert_eq!(from(None, Some(()), None), 64);
        assert_eq!(from(None, None, Some(())), 78);
    }
}
