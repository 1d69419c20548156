//! A credential reference, `cred:NAME` (SPEC §2): how a tag names a secret
//! without holding it. A pure parser with no store behind it, so that the
//! tags that carry references sit below the stores that resolve them.

use std::fmt;

/// The prefix of a credential reference in a tag value.
pub const REF_PREFIX: &str = "cred:";

/// A reference to a secret by name: `cred:NAME`, NAME in `[A-Za-z0-9_.-]+`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CredRef(String);

impl CredRef {
    /// `Ok(None)` for a value that is not a reference; an error for a reference
    /// with a malformed name.
    pub fn parse(value: &str) -> Result<Option<CredRef>, String> {
        let Some(name) = value.strip_prefix(REF_PREFIX) else {
            return Ok(None);
        };
        let valid = !name.is_empty()
            && name.chars().any(|c| c != '.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if valid {
            Ok(Some(CredRef(name.to_string())))
        } else {
            Err(format!(
                "{value:?} is not a valid credential reference: write cred:NAME with NAME made of \
                 letters, digits, '_', '.' and '-'"
            ))
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CredRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{REF_PREFIX}{}", self.0)
    }
}
