//! Which store `cred:NAME` reads and each store's settings, before the store
//! is opened (SPEC §2): `store`/`TAGSTRAP_STORE`, then each store's own
//! section, parsed in its folder (`vault/config.rs`, `directory/config.rs`).
//! Every variable is read through one recording lookup (`StoreEnv`), so
//! the script's environment can leave out each one (SPEC §4).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use super::aws_secrets_manager::config::{
    aws_secrets_manager_settings, AwsSecretsManagerFile, AwsSecretsManagerSettings,
};
use super::aws_ssm::config::{aws_ssm_settings, AwsSsmFile, AwsSsmSettings};
use super::azure_key_vault::config::{azure_settings, AzureFile, AzureSettings};
use super::directory::config::{directory_settings, DirectoryFile};
use super::gcp_secret_manager::config::{gcp_settings, GcpFile, GcpSettings};
use super::vault::config::{vault_settings, VaultFile, VaultSettings};
use crate::error::{Class, Error, Result};
use crate::util::setting::{pick, Setting};
use crate::util::text::shown;

pub(crate) const STORE: Setting = Setting::var_and_key("store", "TAGSTRAP_STORE").default("auto");

/// Every store setting with a variable or a key, each store's own included:
/// what docs/configuration.md's store table is checked against.
#[cfg(test)]
pub(crate) fn definitions() -> impl Iterator<Item = &'static Setting> {
    use super::directory::config as directory;
    [&STORE, &directory::PATH, &directory::SYSTEMD]
        .into_iter()
        .chain(super::vault::config::defs::ALL.iter().copied())
        .chain(super::gcp_secret_manager::config::defs::ALL.iter().copied())
        .chain(super::azure_key_vault::config::defs::ALL.iter().copied())
        .chain(
            super::aws_secrets_manager::config::defs::ALL
                .iter()
                .copied(),
        )
        .chain(super::aws_ssm::config::defs::ALL.iter().copied())
}

/// Which credential store `cred:NAME` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreChoice {
    /// Vault/OpenBao when an address is set, else the credentials directory
    /// when one is set (`$CREDENTIALS_DIRECTORY` included).
    Auto,
    Vault,
    Directory,
    /// `gcp-secret-manager`: the service account reads Secret Manager.
    GcpSecretManager,
    /// `azure-key-vault`: the managed identity reads a Key Vault.
    AzureKeyVault,
    /// `aws-secrets-manager`: with the instance role.
    AwsSecretsManager,
    /// `aws-ssm`: SecureString parameters, with the instance role.
    AwsSsm,
}

/// The credential store settings, before the store is opened (and before
/// anything in them is validated: a stale `VAULT_ADDR` in the environment is
/// nobody's problem until a tag names a credential).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub choice: StoreChoice,
    pub vault: VaultSettings,
    /// The credentials directory, and where it was named.
    pub directory: Option<(PathBuf, String)>,
    /// `[gcp_secret_manager]`.
    pub gcp: GcpSettings,
    /// `[azure_key_vault]`.
    pub azure: AzureSettings,
    pub aws_secrets_manager: AwsSecretsManagerSettings,
    pub aws_ssm: AwsSsmSettings,
    /// Every environment variable these settings consulted, set or not: the
    /// script's environment never holds one (SPEC §4), and `pass_env` may
    /// not name one that is a secret. Recorded as they are read, so a store
    /// that reads new variables (`AWS_*`, say) is covered without a list to
    /// keep in step.
    pub variables: Vec<StoreVar>,
}

/// An environment variable the store settings read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreVar {
    pub(crate) name: &'static str,
    /// Whether it holds a secret or names the file or directory a secret is
    /// read from (`VAULT_TOKEN`, a token file, `$CREDENTIALS_DIRECTORY`):
    /// such a variable is never given to the script, whatever `pass_env`
    /// says.
    pub(crate) secret: bool,
}

/// The environment lookup of the store settings, which remembers every
/// variable it is asked for ([`StoreSettings::variables`]).
pub(crate) struct StoreEnv<'a> {
    var: &'a dyn Fn(&str) -> Option<String>,
    asked: RefCell<Vec<StoreVar>>,
}

impl StoreEnv<'_> {
    fn ask(&self, name: &'static str, secret: bool) -> Option<String> {
        let mut asked = self.asked.borrow_mut();
        if !asked.iter().any(|v| v.name == name) {
            asked.push(StoreVar { name, secret });
        }
        (self.var)(name)
    }

    /// A plain setting: an address, a namespace, a choice.
    pub(crate) fn plain(&self, name: &'static str) -> Option<String> {
        self.ask(name, false)
    }

    /// A secret, or where one is read from.
    pub(crate) fn secret(&self, name: &'static str) -> Option<String> {
        self.ask(name, true)
    }
}

/// The config file's store sections.
pub(crate) struct StoreFiles {
    pub(crate) store: Option<String>,
    pub(crate) vault: VaultFile,
    pub(crate) directory: DirectoryFile,
    pub(crate) gcp_secret_manager: GcpFile,
    pub(crate) azure_key_vault: AzureFile,
    pub(crate) aws_secrets_manager: AwsSecretsManagerFile,
    pub(crate) aws_ssm: AwsSsmFile,
}

/// The credential store settings: each variable over its config key.
pub(crate) fn store_settings(
    file: StoreFiles,
    var: &dyn Fn(&str) -> Option<String>,
    relative: &dyn Fn(PathBuf) -> PathBuf,
    config: &Path,
) -> Result<StoreSettings> {
    // Every variable below is read through `env`, which records it.
    let env = StoreEnv {
        var,
        asked: RefCell::new(Vec::new()),
    };
    let choice = match pick(
        &STORE,
        None,
        env.plain(STORE.var_name()),
        file.store,
        config,
    ) {
        None => StoreChoice::Auto,
        Some(found) => match found.value.trim().to_ascii_lowercase().as_str() {
            "auto" => StoreChoice::Auto,
            "vault" | "openbao" => StoreChoice::Vault,
            "directory" => StoreChoice::Directory,
            "gcp-secret-manager" => StoreChoice::GcpSecretManager,
            "azure-key-vault" => StoreChoice::AzureKeyVault,
            "aws-secrets-manager" => StoreChoice::AwsSecretsManager,
            "aws-ssm" => StoreChoice::AwsSsm,
            _ => {
                return Err(found.error(
                    "expected auto, vault, directory, aws-secrets-manager, aws-ssm, \
                     gcp-secret-manager or azure-key-vault",
                ))
            }
        },
    };
    let systemd_dir = env
        .secret(super::directory::config::SYSTEMD.var_name())
        .map(PathBuf::from);
    let vault = vault_settings(file.vault, &env, systemd_dir.as_deref(), relative, config)?;
    let directory = directory_settings(file.directory, &env, systemd_dir, relative, config);
    Ok(StoreSettings {
        choice,
        vault,
        directory,
        gcp: gcp_settings(file.gcp_secret_manager, config),
        azure: azure_settings(file.azure_key_vault, config),
        aws_secrets_manager: aws_secrets_manager_settings(file.aws_secrets_manager, config),
        aws_ssm: aws_ssm_settings(file.aws_ssm, config),
        variables: env.asked.into_inner(),
    })
}

/// A store setting that goes into a request's path or host (a project, a
/// vault's name, a version): `text`, checked to be one word of `allowed`
/// characters, at most 255; 78 naming `from` otherwise.
pub(crate) fn checked_word(
    text: &str,
    from: &str,
    allowed: fn(char) -> bool,
    what: &str,
) -> Result<String> {
    if text.is_empty() || text.len() > 255 || !text.chars().all(allowed) {
        return Err(Error::setting(
            Class::Config,
            from,
            format!("{from}: {:?} is not {what}", shown(text)),
        ));
    }
    Ok(text.to_string())
}
