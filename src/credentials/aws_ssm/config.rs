//! The AWS SSM Parameter Store's settings: its `[aws_ssm]` section (SPEC
//! §2: `region`, `endpoint`, `prefix`; and `version`, `insecure_http`).
//! Config file only: nothing here is a secret.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::util::setting::Setting;

/// Each key defined once: docs/configuration.md's rows are checked against
/// these (the file's keys are read by serde, so only the tests name them).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod defs {
    use super::Setting;

    pub(crate) const REGION: Setting = Setting::file_only("[aws_ssm] region");
    pub(crate) const ENDPOINT: Setting = Setting::file_only("[aws_ssm] endpoint");
    pub(crate) const PREFIX: Setting = Setting::file_only("[aws_ssm] prefix");
    pub(crate) const VERSION: Setting = Setting::file_only("[aws_ssm] version");
    pub(crate) const INSECURE_HTTP: Setting =
        Setting::file_only("[aws_ssm] insecure_http").default("false");

    #[cfg(test)]
    pub(crate) const ALL: &[&Setting] = &[&REGION, &ENDPOINT, &PREFIX, &VERSION, &INSECURE_HTTP];
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AwsSsmFile {
    region: Option<String>,
    endpoint: Option<String>,
    prefix: Option<String>,
    version: Option<u64>,
    insecure_http: Option<bool>,
}

/// The `[aws_ssm]` settings, unchecked until the store opens.
#[derive(Debug, Clone, Default)]
pub struct AwsSsmSettings {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub prefix: String,
    /// A parameter version, asked for as `NAME:VERSION`; `None`: the latest.
    pub version: Option<u64>,
    pub insecure_http: bool,
    /// The config file, for messages.
    pub config: PathBuf,
}

pub(crate) fn aws_ssm_settings(file: AwsSsmFile, config: &Path) -> AwsSsmSettings {
    AwsSsmSettings {
        region: file.region,
        endpoint: file.endpoint,
        prefix: file.prefix.unwrap_or_default(),
        version: file.version,
        insecure_http: file.insecure_http.unwrap_or(false),
        config: config.to_path_buf(),
    }
}
