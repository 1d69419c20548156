//! The Azure Key Vault store's settings: its `[azure_key_vault]` section
//! (SPEC §2: `vault`, `endpoint`, `prefix`, `client_id`, and
//! `insecure_http`). Only in the file: nothing here is a secret, and the
//! identity comes from IMDS.

use serde::Deserialize;

use crate::util::setting::Setting;

/// The section's settings, each defined once: the docs' table is checked
/// against these.
pub(crate) mod defs {
    use super::Setting;

    pub(crate) const VAULT: Setting = Setting::file_only("[azure_key_vault] vault");
    pub(crate) const ENDPOINT: Setting = Setting::file_only("[azure_key_vault] endpoint");
    pub(crate) const PREFIX: Setting = Setting::file_only("[azure_key_vault] prefix");
    pub(crate) const CLIENT_ID: Setting = Setting::file_only("[azure_key_vault] client_id");
    /// Read as the file's `insecure_http`; defined for the docs' table.
    #[cfg(test)]
    pub(crate) const INSECURE_HTTP: Setting =
        Setting::file_only("[azure_key_vault] insecure_http").default("false");

    #[cfg(test)]
    pub(crate) const ALL: &[&Setting] = &[&VAULT, &ENDPOINT, &PREFIX, &CLIENT_ID, &INSECURE_HTTP];
}

/// The `[azure_key_vault]` section, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AzureFile {
    pub(crate) vault: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) client_id: Option<String>,
    /// Only in the file: sending the token in clear is a decision written
    /// down.
    pub(crate) insecure_http: Option<bool>,
}

/// The section's settings and where they were read, for messages.
#[derive(Debug, Clone, Default)]
pub struct AzureSettings {
    pub(crate) file: AzureFile,
    /// Where the file is, for the `from` of each key's messages.
    pub(crate) config: String,
}

impl AzureSettings {
    /// "[azure_key_vault] KEY in /etc/…/config.toml".
    pub(crate) fn from(&self, setting: &Setting) -> String {
        format!("{} in {}", setting.key, self.config)
    }
}

pub(crate) fn azure_settings(file: AzureFile, config: &std::path::Path) -> AzureSettings {
    AzureSettings {
        file,
        config: config.display().to_string(),
    }
}
