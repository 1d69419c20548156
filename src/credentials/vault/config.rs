//! The Vault/OpenBao store's settings (SPEC §2): its `[vault]` section of
//! the config file and its variables (`VAULT_ADDR`, `VAULT_TOKEN`,
//! `VAULT_NAMESPACE`, `VAULT_CACERT`, `TAGSTRAP_VAULT_*`), each variable over
//! its config key, read through the store's recording lookup.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use crate::credentials::config::StoreEnv;
use crate::error::{Class, Error, Result};
use crate::util::setting::{split_list, Setting};

/// The store's settings with a variable, each defined once: the docs'
/// table and the script environment's rule are checked against these.
pub(crate) mod defs {
    use super::Setting;

    pub(crate) const ADDRESS: Setting =
        Setting::var_and_key("[vault] address", "VAULT_ADDR").var_form("a comma-separated list");
    /// Tokens do not belong in a config file.
    pub(crate) const TOKEN: Setting = Setting::var_only("token", "VAULT_TOKEN");
    pub(crate) const TOKEN_FILE: Setting =
        Setting::var_and_key("[vault] token_file", "TAGSTRAP_VAULT_TOKEN_FILE");
    pub(crate) const ROLE_ID: Setting =
        Setting::var_and_key("[vault.approle] role_id", "TAGSTRAP_VAULT_ROLE_ID");
    pub(crate) const SECRET_ID_FILE: Setting = Setting::var_and_key(
        "[vault.approle] secret_id_file",
        "TAGSTRAP_VAULT_SECRET_ID_FILE",
    );
    pub(crate) const NAMESPACE: Setting =
        Setting::var_and_key("[vault] namespace", "VAULT_NAMESPACE");
    pub(crate) const CA_CERT: Setting = Setting::var_and_key("[vault] ca_cert", "VAULT_CACERT");
    pub(crate) const KV_VERSION: Setting = Setting::file_only("[vault] kv_version").default("2");

    // The logins that need no stored secret (issue 14): in the file only,
    // since what they name (a role, a file, an audience) is the image's.
    pub(crate) const JWT_ROLE: Setting = Setting::file_only("[vault.jwt] role");
    pub(crate) const JWT_MOUNT: Setting = Setting::file_only("[vault.jwt] mount").default("jwt");
    pub(crate) const JWT_TOKEN: Setting = Setting::file_only("[vault.jwt] token");
    pub(crate) const JWT_AUDIENCE: Setting = Setting::file_only("[vault.jwt] audience");
    pub(crate) const JWT_FILE: Setting = Setting::file_only("[vault.jwt] file");
    pub(crate) const JWT_CLIENT_ID: Setting = Setting::file_only("[vault.jwt] client_id");
    pub(crate) const CERT_ROLE: Setting = Setting::file_only("[vault.cert] role");
    pub(crate) const CERT_MOUNT: Setting = Setting::file_only("[vault.cert] mount").default("cert");
    pub(crate) const CERT_FILE: Setting = Setting::file_only("[vault.cert] cert_file");
    pub(crate) const KEY_FILE: Setting = Setting::file_only("[vault.cert] key_file");
    pub(crate) const AWS_ROLE: Setting = Setting::file_only("[vault.aws] role");
    pub(crate) const AWS_MOUNT: Setting = Setting::file_only("[vault.aws] mount").default("aws");
    pub(crate) const AWS_SERVER_ID: Setting = Setting::file_only("[vault.aws] server_id");
    pub(crate) const AWS_REGION: Setting = Setting::file_only("[vault.aws] region");

    #[cfg(test)]
    pub(crate) const ALL: &[&Setting] = &[
        &ADDRESS,
        &TOKEN,
        &TOKEN_FILE,
        &ROLE_ID,
        &SECRET_ID_FILE,
        &NAMESPACE,
        &CA_CERT,
        &KV_VERSION,
        &JWT_ROLE,
        &JWT_MOUNT,
        &JWT_TOKEN,
        &JWT_AUDIENCE,
        &JWT_FILE,
        &JWT_CLIENT_ID,
        &CERT_ROLE,
        &CERT_MOUNT,
        &CERT_FILE,
        &KEY_FILE,
        &AWS_ROLE,
        &AWS_MOUNT,
        &AWS_SERVER_ID,
        &AWS_REGION,
    ];
}

/// The Vault/OpenBao store settings. `Debug` shows no token.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// One address, or several tried in turn.
    pub addresses: Vec<String>,
    /// Where the addresses came from, for messages.
    pub addresses_from: String,
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    pub approle: Option<AppRoleSettings>,
    /// `[vault.jwt]`, `[vault.cert]`, `[vault.aws]`: the logins that need no
    /// stored secret, checked when the store is opened.
    pub jwt: Option<JwtSettings>,
    pub cert: Option<CertSettings>,
    pub aws: Option<AwsSettings>,
    /// `$CREDENTIALS_DIRECTORY/vault-token`, used when no other
    /// authentication is set and the file exists.
    pub default_token_file: Option<PathBuf>,
    pub namespace: Option<String>,
    pub mount: String,
    pub path_prefix: String,
    pub field: String,
    pub kv_version: u8,
    pub ca_cert: Option<PathBuf>,
    /// `[vault] insecure_http = true`: plain `http://` addresses on hosts
    /// that are not loopback are allowed (SPEC §2), knowingly.
    pub insecure_http: bool,
}

#[derive(Debug, Clone, Default)]
pub struct AppRoleSettings {
    pub(crate) mount: String,
    pub(crate) role_id: Option<String>,
    pub(crate) role_id_file: Option<PathBuf>,
    pub(crate) secret_id_file: Option<PathBuf>,
}

/// `[vault.jwt]`: a `jwt` login (SPEC §2).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    pub(crate) role: Option<String>,
    pub(crate) mount: Option<String>,
    /// Where the JWT comes from: `gce`, `azure` or `file`.
    pub(crate) token: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) file: Option<PathBuf>,
    /// Azure: a user-assigned managed identity's client ID.
    pub(crate) client_id: Option<String>,
    /// The config file, for messages.
    #[serde(skip)]
    pub(crate) config: PathBuf,
}

/// `[vault.cert]`: a `cert` login (SPEC §2).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSettings {
    pub(crate) role: Option<String>,
    pub(crate) mount: Option<String>,
    pub(crate) cert_file: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
    #[serde(skip)]
    pub(crate) config: PathBuf,
}

/// `[vault.aws]`: an `aws` (IAM) login (SPEC §2).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    pub(crate) role: Option<String>,
    pub(crate) mount: Option<String>,
    pub(crate) server_id: Option<String>,
    pub(crate) region: Option<String>,
    #[serde(skip)]
    pub(crate) config: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VaultFile {
    address: Option<OneOrMany>,
    namespace: Option<String>,
    mount: Option<String>,
    path_prefix: Option<String>,
    field: Option<String>,
    kv_version: Option<u8>,
    ca_cert: Option<PathBuf>,
    token_file: Option<PathBuf>,
    approle: Option<AppRoleFile>,
    jwt: Option<JwtSettings>,
    cert: Option<CertSettings>,
    aws: Option<AwsSettings>,
    /// Only in the file, never from the environment: sending the token in
    /// clear is a decision written down, not a variable left set.
    insecure_http: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppRoleFile {
    mount: Option<String>,
    role_id: Option<String>,
    role_id_file: Option<PathBuf>,
    secret_id_file: Option<PathBuf>,
}

/// The `[vault]` section and the variables over it. `systemd_dir` is
/// `$CREDENTIALS_DIRECTORY`, where a `vault-token` is looked for last.
pub(crate) fn vault_settings(
    v: VaultFile,
    env: &StoreEnv,
    systemd_dir: Option<&Path>,
    relative: &dyn Fn(PathBuf) -> PathBuf,
    config: &Path,
) -> Result<VaultSettings> {
    use defs::*;
    let in_file = |setting: &Setting| format!("{} in {}", setting.key, config.display());

    let (addresses, addresses_from) = match (env.plain(ADDRESS.var_name()), v.address) {
        (Some(a), _) => (split_list(&a), format!("${}", ADDRESS.var_name())),
        (None, Some(OneOrMany::One(a))) => (split_list(&a), in_file(&ADDRESS)),
        (None, Some(OneOrMany::Many(list))) => (list, in_file(&ADDRESS)),
        (None, None) => (Vec::new(), String::new()),
    };
    let file_role = v.approle;
    let role_var = env.secret(ROLE_ID.var_name());
    let secret_id_var = env.secret(SECRET_ID_FILE.var_name()).map(PathBuf::from);
    let approle = match (file_role, role_var, secret_id_var) {
        (None, None, None) => None,
        (file_role, role_var, secret_id_var) => {
            let f = file_role.unwrap_or_default();
            Some(AppRoleSettings {
                mount: f.mount.unwrap_or_else(|| "approle".into()),
                role_id: role_var.or(f.role_id),
                role_id_file: f.role_id_file.map(relative),
                secret_id_file: secret_id_var.or(f.secret_id_file.map(relative)),
            })
        }
    };
    let token_file = env
        .secret(TOKEN_FILE.var_name())
        .map(PathBuf::from)
        .or(v.token_file.map(relative));
    let kv_version = match v.kv_version {
        None => 2,
        Some(n @ (1 | 2)) => n,
        Some(_) => {
            let place = in_file(&KV_VERSION);
            let message = format!("{place}: expected 1 or 2");
            return Err(Error::setting(Class::Config, place, message));
        }
    };
    let jwt = v.jwt.map(|jwt| JwtSettings {
        file: jwt.file.clone().map(relative),
        config: config.to_path_buf(),
        ..jwt
    });
    let cert = v.cert.map(|cert| CertSettings {
        cert_file: cert.cert_file.clone().map(relative),
        key_file: cert.key_file.clone().map(relative),
        config: config.to_path_buf(),
        ..cert
    });
    let aws = v.aws.map(|aws| AwsSettings {
        config: config.to_path_buf(),
        ..aws
    });
    Ok(VaultSettings {
        addresses,
        addresses_from,
        token: env.secret(TOKEN.var_name()).map(SecretString::from),
        token_file,
        approle,
        jwt,
        cert,
        aws,
        default_token_file: systemd_dir.map(|d| d.join("vault-token")),
        namespace: env.plain(NAMESPACE.var_name()).or(v.namespace),
        mount: v.mount.unwrap_or_else(|| "secret".into()),
        path_prefix: v.path_prefix.unwrap_or_default(),
        field: v.field.unwrap_or_else(|| "value".into()),
        kv_version,
        ca_cert: env
            .plain(CA_CERT.var_name())
            .map(PathBuf::from)
            .or(v.ca_cert.map(relative)),
        insecure_http: v.insecure_http.unwrap_or(false),
    })
}

/// A name a login setting holds (a role, a region, a server ID, an
/// audience): trimmed, empty taken as unset, one with a control or hidden
/// character refused (78): it goes into a request and into messages.
pub(crate) fn login_word(
    value: &Option<String>,
    setting: &Setting,
    config: &Path,
) -> Result<Option<String>> {
    let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let hidden = crate::util::text::named_forbidden_char(value);
    if hidden.is_some() || value.chars().any(char::is_control) {
        let place = format!("{} in {}", setting.key, config.display());
        let what = hidden
            .map(|h| format!("the {h}"))
            .unwrap_or_else(|| "a control character".into());
        let message = format!("{place}: the value holds {what}: write it in plain text");
        return Err(Error::setting(Class::Config, place, message));
    }
    Ok(Some(value.to_string()))
}

/// A login's mount, or the default its setting shows (so the default
/// documented is the default used).
pub(crate) fn mount_or_default(value: &Option<String>, setting: &Setting) -> String {
    value
        .as_deref()
        .map(|m| m.trim_matches('/'))
        .filter(|m| !m.is_empty())
        .unwrap_or(setting.default.unwrap_or_default())
        .to_string()
}
