//! The GCP Secret Manager store's settings: its `[gcp_secret_manager]`
//! section (SPEC §2: `project`, `endpoint`, `prefix`, `version`, and
//! `insecure_http`). Only in the file: nothing here is a secret, and the
//! identity comes from the metadata service.

use serde::Deserialize;

use crate::util::setting::Setting;

/// The section's settings, each defined once: the docs' table is checked
/// against these.
pub(crate) mod defs {
    use super::Setting;

    pub(crate) const PROJECT: Setting = Setting::file_only("[gcp_secret_manager] project");
    pub(crate) const ENDPOINT: Setting = Setting::file_only("[gcp_secret_manager] endpoint")
        .default("https://secretmanager.googleapis.com");
    pub(crate) const PREFIX: Setting = Setting::file_only("[gcp_secret_manager] prefix");
    pub(crate) const VERSION: Setting =
        Setting::file_only("[gcp_secret_manager] version").default("latest");
    /// Read as the file's `insecure_http`; defined for the docs' table.
    #[cfg(test)]
    pub(crate) const INSECURE_HTTP: Setting =
        Setting::file_only("[gcp_secret_manager] insecure_http").default("false");

    #[cfg(test)]
    pub(crate) const ALL: &[&Setting] = &[&PROJECT, &ENDPOINT, &PREFIX, &VERSION, &INSECURE_HTTP];
}

/// Google's API, reached through Private Google Access on a network
/// without a way out.
pub(crate) const DEFAULT_ENDPOINT: &str = "https://secretmanager.googleapis.com";

/// The `[gcp_secret_manager]` section, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GcpFile {
    pub(crate) project: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) version: Option<String>,
    /// Only in the file: sending the token in clear is a decision written
    /// down.
    pub(crate) insecure_http: Option<bool>,
}

/// The section's settings and where they were read, for messages.
#[derive(Debug, Clone, Default)]
pub struct GcpSettings {
    pub(crate) file: GcpFile,
    /// Where the file is, for the `from` of each key's messages.
    pub(crate) config: String,
}

impl GcpSettings {
    /// "[gcp_secret_manager] KEY in /etc/…/config.toml".
    pub(crate) fn from(&self, setting: &Setting) -> String {
        format!("{} in {}", setting.key, self.config)
    }
}

pub(crate) fn gcp_settings(file: GcpFile, config: &std::path::Path) -> GcpSettings {
    GcpSettings {
        file,
        config: config.display().to_string(),
    }
}
