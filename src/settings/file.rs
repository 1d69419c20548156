//! The config file (TOML, SPEC §3): found, read with a size cap, and parsed
//! into the keys of [`super::defs`] and each store's section, unknown keys
//! refused with their line (`deny_unknown_fields`). A test checks that the
//! keys here are exactly the definitions' keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{defs, MAX_CONFIG_BYTES};
use crate::credentials::aws_secrets_manager::config::AwsSecretsManagerFile;
use crate::credentials::aws_ssm::config::AwsSsmFile;
use crate::credentials::azure_key_vault::config::AzureFile;
use crate::credentials::directory::config::DirectoryFile;
use crate::credentials::gcp_secret_manager::config::GcpFile;
use crate::credentials::vault::config::VaultFile;
use crate::error::{Error, Result};

/// The config file's keys: one per setting the file holds, plus the stores'
/// `store` and sections. A number or a string where a value is text: the
/// setting's parser reads both.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    pub(super) tags_files: Option<Vec<PathBuf>>,
    pub(super) tags: Option<BTreeMap<String, String>>,
    pub(super) source: Option<String>,
    pub(super) metadata_endpoint: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) deadline: Option<Scalar>,
    pub(super) max_script_bytes: Option<Scalar>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) log_format: Option<String>,
    pub(super) once: Option<bool>,
    pub(super) instance_id: Option<String>,
    pub(super) write_env: Option<PathBuf>,
    pub(super) pass_env: Option<Vec<String>>,
    pub(super) store: Option<String>,
    pub(super) vault: Option<VaultFile>,
    pub(super) directory: Option<DirectoryFile>,
    pub(super) gcp_secret_manager: Option<GcpFile>,
    pub(super) azure_key_vault: Option<AzureFile>,
    pub(super) aws_secrets_manager: Option<AwsSecretsManagerFile>,
    pub(super) aws_ssm: Option<AwsSsmFile>,
}

/// A value that is a number or a string, as text for the setting's parser.
#[derive(Debug, Deserialize)]
#[serde(try_from = "toml::Value")]
pub(super) struct Scalar(pub(super) String);

impl TryFrom<toml::Value> for Scalar {
    type Error = String;
    fn try_from(value: toml::Value) -> std::result::Result<Scalar, String> {
        match value {
            toml::Value::String(s) => Ok(Scalar(s)),
            toml::Value::Integer(n) => Ok(Scalar(n.to_string())),
            toml::Value::Float(f) => Ok(Scalar(f.to_string())),
            other => Err(format!(
                "expected a number or a string, not {}",
                other.type_str()
            )),
        }
    }
}

/// The keys that are not tagstrap's own settings but the stores'.
#[cfg(test)]
pub(super) const STORE_KEYS: [&str; 7] = [
    "store",
    "vault",
    "directory",
    "gcp_secret_manager",
    "azure_key_vault",
    "aws_secrets_manager",
    "aws_ssm",
];

/// Reads the config file: the one named by `--config` or `$TAGSTRAP_CONFIG`
/// (which must exist), else the default one when present.
pub(super) fn load(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<PathBuf>, ConfigFile)> {
    let var = env(defs::CONFIG.var_name()).filter(|v| !v.is_empty());
    let (path, named) = match (flag, var) {
        (Some(path), _) => (path.to_path_buf(), true),
        (None, Some(path)) => (PathBuf::from(path), true),
        (None, None) => (super::default_dir("config").join("config.toml"), false),
    };
    if !named && !path.exists() {
        return Ok((None, ConfigFile::default()));
    }
    // A config file that cannot be read is a bad configuration (SPEC §5:
    // 78), whatever the reading said: missing, a directory, too large.
    let text = crate::util::fs::read_small_text(&path, MAX_CONFIG_BYTES, "config file")
        .map_err(|e| e.relabeled(crate::error::Class::Config))?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        let detail = e.message().to_string();
        let at = e
            .span()
            .map(|span| format!(" (line {})", text[..span.start].matches('\n').count() + 1))
            .unwrap_or_default();
        Error::Config(format!("config file {}{at}: {detail}", path.display()))
    })?;
    Ok((Some(path), file))
}
