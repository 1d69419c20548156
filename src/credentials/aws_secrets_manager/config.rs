//! The AWS Secrets Manager store's settings: its `[aws_secrets_manager]`
//! section (SPEC §2: `region`, `endpoint`, `prefix`, `field`; and
//! `version_stage`, `insecure_http`). Config file only: on an instance the
//! file is the image's, and nothing here is a secret.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::util::setting::Setting;

/// Each key defined once: docs/configuration.md's rows are checked against
/// these (the file's keys are read by serde, so only the tests name them).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod defs {
    use super::Setting;

    pub(crate) const REGION: Setting = Setting::file_only("[aws_secrets_manager] region");
    pub(crate) const ENDPOINT: Setting = Setting::file_only("[aws_secrets_manager] endpoint");
    pub(crate) const PREFIX: Setting = Setting::file_only("[aws_secrets_manager] prefix");
    pub(crate) const FIELD: Setting = Setting::file_only("[aws_secrets_manager] field");
    pub(crate) const VERSION_STAGE: Setting =
        Setting::file_only("[aws_secrets_manager] version_stage").default("AWSCURRENT");
    pub(crate) const INSECURE_HTTP: Setting =
        Setting::file_only("[aws_secrets_manager] insecure_http").default("false");

    #[cfg(test)]
    pub(crate) const ALL: &[&Setting] = &[
        &REGION,
        &ENDPOINT,
        &PREFIX,
        &FIELD,
        &VERSION_STAGE,
        &INSECURE_HTTP,
    ];
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AwsSecretsManagerFile {
    region: Option<String>,
    endpoint: Option<String>,
    prefix: Option<String>,
    field: Option<String>,
    version_stage: Option<String>,
    insecure_http: Option<bool>,
}

/// The `[aws_secrets_manager]` settings, unchecked until the store opens.
#[derive(Debug, Clone, Default)]
pub struct AwsSecretsManagerSettings {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub prefix: String,
    /// A JSON secret's field; `None`: the whole string.
    pub field: Option<String>,
    pub version_stage: String,
    pub insecure_http: bool,
    /// The config file, for messages.
    pub config: PathBuf,
}

pub(crate) fn aws_secrets_manager_settings(
    file: AwsSecretsManagerFile,
    config: &Path,
) -> AwsSecretsManagerSettings {
    AwsSecretsManagerSettings {
        region: file.region,
        endpoint: file.endpoint,
        prefix: file.prefix.unwrap_or_default(),
        field: file.field.filter(|f| !f.is_empty()),
        version_stage: file
            .version_stage
            .unwrap_or_else(|| defs::VERSION_STAGE.default.unwrap_or_default().into()),
        insecure_http: file.insecure_http.unwrap_or(false),
        config: config.to_path_buf(),
    }
}
