//! Opening the credential store the settings choose, and checking its
//! settings, only when a tag names a credential.
//!
//! `auto` (the default) takes Vault/OpenBao when an address is set, else the
//! credentials directory when one is set (systemd's `$CREDENTIALS_DIRECTORY`
//! included). Vault authentication is the first of: `VAULT_TOKEN`, a token
//! file, one login (AppRole, `[vault.jwt]`, `[vault.cert]`, `[vault.aws]`;
//! two at once is 78), `$CREDENTIALS_DIRECTORY/vault-token`.
//!
//! A store address must be `https://` unless its host is a loopback address
//! or `[vault] insecure_http = true` (SPEC §2): over plain `http://` the
//! token goes out in a header and the proxy password comes back in clear, so
//! an `http://` address on another host is refused before any request, and
//! allowed only with a warning on every run.

use std::path::Path;
use std::time::Duration;

use url::Url;

use super::address::{self, parse_address, shown_address};
use super::config::{StoreChoice, StoreSettings};
use super::directory::DirectoryStore;
use super::vault::auth::{AppRole, AwsLogin, CertLogin, JwtLogin, Metadata, VaultAuth};
use super::vault::config::{AppRoleSettings, VaultSettings};
use super::vault::{VaultConfig, VaultStore};
use super::{secret_file, CredentialStore};
use crate::error::{Error, Result};
use crate::net::tls;

/// What opening a store needs besides its settings.
pub(crate) struct OpenContext<'a> {
    /// The `--ca-file` certificates, trusted besides the system's roots.
    pub(crate) extra: &'a [rustls::pki_types::CertificateDer<'static>],
    /// How long the store may keep failing before the run gives up (the
    /// deadline).
    pub(crate) budget: Duration,
    /// `--metadata-endpoint`: where a store that opens with the instance's
    /// own cloud identity asks the metadata service for it (the cloud's
    /// default address otherwise).
    pub(crate) metadata_endpoint: Option<&'a Url>,
}

/// The store, ready to read.
pub(crate) fn open(
    settings: &StoreSettings,
    context: &OpenContext<'_>,
) -> Result<Box<dyn CredentialStore>> {
    match settings.choice {
        StoreChoice::GcpSecretManager => {
            return super::gcp_secret_manager::open(&settings.gcp, context)
        }
        StoreChoice::AzureKeyVault => {
            return super::azure_key_vault::open(&settings.azure, context)
        }
        StoreChoice::AwsSecretsManager => {
            return super::aws_secrets_manager::open(&settings.aws_secrets_manager, context)
        }
        StoreChoice::AwsSsm => return super::aws_ssm::open(&settings.aws_ssm, context),
        _ => {}
    }
    if chooses_vault(settings) {
        return open_vault(&settings.vault, context);
    }
    match &settings.directory {
        Some((dir, from)) => open_directory(dir, from),
        None if settings.choice == StoreChoice::Directory => Err(Error::Config(
            "the credential store is a directory, but none is named: set [directory] path, \
             $TAGSTRAP_CREDENTIALS_DIR, or run under systemd with LoadCredential="
                .into(),
        )),
        None => Err(Error::Config(
            "the tags name a credential (cred:NAME) but no credential store is configured: \
             set VAULT_ADDR (and VAULT_TOKEN, a token file or AppRole), or [vault] address \
             in the config file, or give the secrets as files with systemd's \
             LoadCredential=NAME:PATH"
                .into(),
        )),
    }
}

/// Whether [`open`] opens the Vault/OpenBao store.
fn chooses_vault(settings: &StoreSettings) -> bool {
    match settings.choice {
        StoreChoice::Vault => true,
        StoreChoice::Auto => !settings.vault.addresses.is_empty(),
        StoreChoice::Directory
        | StoreChoice::GcpSecretManager
        | StoreChoice::AzureKeyVault
        | StoreChoice::AwsSecretsManager
        | StoreChoice::AwsSsm => false,
    }
}

/// When the store [`open`] opens is reached over plain `http://` on a host
/// that is not loopback (allowed by `[vault] insecure_http = true`), what to
/// tell the operator: logged as a warning by every run, shown by `doctor`.
pub(crate) fn in_clear(settings: &StoreSettings) -> Option<String> {
    use super::identity::aws::api::endpoint_in_clear;
    let (sm, ssm) = (&settings.aws_secrets_manager, &settings.aws_ssm);
    match settings.choice {
        StoreChoice::GcpSecretManager => return super::gcp_secret_manager::in_clear(&settings.gcp),
        StoreChoice::AzureKeyVault => return super::azure_key_vault::in_clear(&settings.azure),
        StoreChoice::AwsSecretsManager => {
            let endpoint = sm.endpoint.as_deref();
            return endpoint_in_clear("aws_secrets_manager", sm.insecure_http, endpoint);
        }
        StoreChoice::AwsSsm => {
            return endpoint_in_clear("aws_ssm", ssm.insecure_http, ssm.endpoint.as_deref())
        }
        _ => {}
    }
    chooses_vault(settings)
        .then(|| vault_in_clear(&settings.vault))
        .flatten()
}

/// [`in_clear`] of the Vault/OpenBao settings.
fn vault_in_clear(v: &VaultSettings) -> Option<String> {
    let addresses = v.addresses.iter().map(String::as_str);
    address::in_clear("vault", v.insecure_http, addresses, "the store token")
}

fn open_directory(dir: &Path, from: &str) -> Result<Box<dyn CredentialStore>> {
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "the credentials directory {} (from {from}) does not exist or is not a directory",
            dir.display()
        )));
    }
    Ok(Box::new(DirectoryStore::new(
        dir.to_path_buf(),
        from.to_string(),
    )))
}

fn open_vault(v: &VaultSettings, context: &OpenContext<'_>) -> Result<Box<dyn CredentialStore>> {
    let (extra, budget) = (context.extra, context.budget);
    if v.addresses.is_empty() {
        return Err(Error::Config(
            "the credential store is Vault/OpenBao, but no address is set: set VAULT_ADDR or \
             [vault] address"
                .into(),
        ));
    }
    let addresses = v
        .addresses
        .iter()
        .map(|a| parse_address(a, &v.addresses_from, &address::vault_rule(v.insecure_http)))
        .collect::<Result<Vec<_>>>()?;
    let metadata = Metadata {
        endpoint: context.metadata_endpoint.cloned(),
        tls: tls::client_config(extra)?,
    };
    let auth = choose_auth(v, &addresses, metadata)?;
    let mut roots = extra.to_vec();
    if let Some(path) = &v.ca_cert {
        roots.extend(tls::read_pem_certificates(path, "VAULT_CACERT")?);
    }
    // A cert login presents its certificate on every connection to the store.
    let store_tls = match &auth {
        VaultAuth::Cert(login) => {
            let (chain, key) = login.tls_identity()?;
            tls::client_config_presenting(&roots, chain, key, "[vault.cert]")?
        }
        _ => tls::client_config(&roots)?,
    };
    let config = VaultConfig {
        addresses,
        auth,
        namespace: v.namespace.clone(),
        mount: v.mount.clone(),
        path_prefix: v.path_prefix.clone(),
        field: v.field.clone(),
        kv_version: v.kv_version,
        insecure_http: v.insecure_http,
    };
    if let Some(warning) = vault_in_clear(v) {
        tracing::warn!("{warning}");
    }
    tracing::debug!(
        "credential store: {} addresses, {}, KV v{} at {}/ (prefix {:?}, field {:?}){}",
        config.addresses.len(),
        config.auth.describe(),
        config.kv_version,
        config.mount.trim_matches('/'),
        config.path_prefix,
        config.field,
        config
            .namespace
            .as_ref()
            .map(|n| format!(", namespace {n}"))
            .unwrap_or_default()
    );
    Ok(Box::new(VaultStore::new(config, &store_tls, budget)?))
}

fn choose_auth(v: &VaultSettings, addresses: &[Url], metadata: Metadata) -> Result<VaultAuth> {
    if let Some(token) = &v.token {
        return Ok(VaultAuth::Token {
            token: token.clone(),
            from: "$VAULT_TOKEN",
        });
    }
    let set: Vec<&str> = [
        (v.token_file.is_some(), "a token file"),
        (v.approle.is_some(), "AppRole"),
        (v.jwt.is_some(), "[vault.jwt]"),
        (v.cert.is_some(), "[vault.cert]"),
        (v.aws.is_some(), "[vault.aws]"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if set.len() > 1 {
        return Err(Error::Config(format!(
            "{} are set for the credential store at once: keep one way to log in",
            set.join(" and ")
        )));
    }
    if let Some(path) = &v.token_file {
        return Ok(VaultAuth::TokenFile(path.clone()));
    }
    if let Some(role) = &v.approle {
        return approle(role).map(VaultAuth::AppRole);
    }
    if let Some(jwt) = &v.jwt {
        return JwtLogin::from_settings(jwt, metadata).map(VaultAuth::Jwt);
    }
    if let Some(cert) = &v.cert {
        return CertLogin::from_settings(cert, addresses).map(VaultAuth::Cert);
    }
    if let Some(aws) = &v.aws {
        return AwsLogin::from_settings(aws, metadata).map(VaultAuth::Aws);
    }
    if let Some(path) = v.default_token_file.as_ref().filter(|p| p.exists()) {
        return Ok(VaultAuth::TokenFile(path.clone()));
    }
    let shown: Vec<&str> = addresses.iter().map(shown_address).collect();
    Err(Error::Config(format!(
        "the credential store at {} needs a token: set VAULT_TOKEN, [vault] token_file, \
         [vault.approle] role_id and secret_id_file, or a login with the instance's identity \
         ([vault.jwt], [vault.cert] or [vault.aws])",
        shown.join(", ")
    )))
}

fn approle(role: &AppRoleSettings) -> Result<AppRole> {
    let role_id = match (&role.role_id, &role.role_id_file) {
        (Some(id), _) => id.trim().to_string(),
        (None, Some(path)) => {
            // Its error keeps its class, as the secret-ID file's does: a
            // missing file is 66, one that is no regular file 65 (it used to
            // be re-labelled 78 here, hiding which).
            crate::util::fs::read_small_text(path, secret_file::MAX_SECRET_BYTES, "role ID file")?
                .trim()
                .to_string()
        }
        (None, None) => {
            return Err(Error::Config(
                "AppRole needs a role ID: set [vault.approle] role_id (or role_id_file), or \
                 $TAGSTRAP_VAULT_ROLE_ID"
                    .into(),
            ))
        }
    };
    if role_id.is_empty() || role_id.chars().any(char::is_control) {
        return Err(Error::Config(
            "the AppRole role ID is empty or holds a control character".into(),
        ));
    }
    let secret_id_file = role.secret_id_file.clone().ok_or_else(|| {
        Error::Config(
            "AppRole needs a secret ID file: set [vault.approle] secret_id_file or \
             $TAGSTRAP_VAULT_SECRET_ID_FILE (the secret ID itself never goes in the config)"
                .into(),
        )
    })?;
    Ok(AppRole {
        mount: role.mount.clone(),
        role_id,
        secret_id_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn vault(addresses: &[&str]) -> VaultSettings {
        VaultSettings {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            addresses_from: "$VAULT_ADDR".into(),
            token: None,
            token_file: None,
            approle: None,
            jwt: None,
            cert: None,
            aws: None,
            default_token_file: None,
            namespace: None,
            mount: "secret".into(),
            path_prefix: String::new(),
            field: "value".into(),
            kv_version: 2,
            ca_cert: None,
            insecure_http: false,
        }
    }

    fn store(choice: StoreChoice, v: VaultSettings, dir: Option<&Path>) -> StoreSettings {
        StoreSettings {
            choice,
            vault: v,
            directory: dir.map(|d| (d.to_path_buf(), "$CREDENTIALS_DIRECTORY".into())),
            gcp: Default::default(),
            azure: Default::default(),
            aws_secrets_manager: Default::default(),
            aws_ssm: Default::default(),
            variables: Vec::new(),
        }
    }

    fn opened(settings: &StoreSettings) -> Result<String> {
        let context = OpenContext {
            extra: &[],
            budget: Duration::from_secs(1),
            metadata_endpoint: None,
        };
        open(settings, &context).map(|s| s.describe())
    }

    #[test]
    fn auto_prefers_vault_then_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = vault(&["http://127.0.0.1:8200"]);
        v.token = Some(SecretString::from("t"));
        let both = store(StoreChoice::Auto, v.clone(), Some(dir.path()));
        assert!(opened(&both).unwrap().contains("Vault/OpenBao"));
        let only_dir = store(StoreChoice::Auto, vault(&[]), Some(dir.path()));
        assert!(opened(&only_dir).unwrap().contains("credentials directory"));
        let forced = store(StoreChoice::Directory, v, Some(dir.path()));
        assert!(opened(&forced).unwrap().contains("credentials directory"));
        let none = store(StoreChoice::Auto, vault(&[]), None);
        assert_eq!(opened(&none).unwrap_err().exit_code(), 78);
        let gone = store(
            StoreChoice::Directory,
            vault(&[]),
            Some(&dir.path().join("x")),
        );
        assert_eq!(opened(&gone).unwrap_err().exit_code(), 78);
    }

    #[test]
    fn malformed_addresses_are_configuration_errors() {
        for bad in [
            "vault:8200",
            "ftp://vault",
            "http://",
            "https://user:pw@vault:8200",
            "user:pw@vault:8200",
            "https://vault:8200/?x=1",
            "https://vault:99999",
            "https://vau\u{200b}lt:8200",
            "https://vault\u{202e}:8200",
        ] {
            let mut v = vault(&[bad]);
            v.token = Some(SecretString::from("t"));
            let error = opened(&store(StoreChoice::Vault, v, None)).unwrap_err();
            assert_eq!(error.exit_code(), 78, "{bad}");
            assert!(error.message().starts_with("$VAULT_ADDR:"), "{error}");
            assert!(!error.message().contains("pw"), "{error}");
        }
    }

    #[test]
    fn plain_http_is_refused_off_loopback_unless_insecure_http() {
        for loopback in [
            "http://127.0.0.1:8200",
            "http://127.9.8.7:8200",
            "http://[::1]:8200",
            "http://localhost:8200",
            "http://LOCALHOST:8200/vault",
        ] {
            assert!(
                parse_address(loopback, "$VAULT_ADDR", &address::vault_rule(false)).is_ok(),
                "{loopback}"
            );
        }
        for remote in [
            "http://vault.invalid:8200",
            "http://10.0.0.5:8200",
            "http://[fd00::1]:8200",
            "http://localhost.corp:8200",
            "http://128.0.0.1:8200",
        ] {
            let error = parse_address(
                remote,
                "[vault] address in /etc/c.toml",
                &address::vault_rule(false),
            )
            .unwrap_err();
            assert_eq!(error.exit_code(), 78, "{remote}");
            let message = error.message();
            assert_eq!(
                error.setting_place(),
                Some("[vault] address in /etc/c.toml"),
                "{error:?}"
            );
            assert!(message.contains("Use https://"), "{message}");
            assert!(message.contains("insecure_http = true"), "{message}");
            assert!(
                parse_address(remote, "$VAULT_ADDR", &address::vault_rule(true)).is_ok(),
                "{remote}"
            );
        }
        assert!(parse_address(
            "https://vault.invalid:8200",
            "$VAULT_ADDR",
            &address::vault_rule(false)
        )
        .is_ok());
    }

    #[test]
    fn the_in_clear_warning_names_the_plain_remote_addresses_of_the_chosen_store() {
        let mut v = vault(&[
            "http://vault.corp:8200",
            "https://vault-2.corp:8200",
            "http://127.0.0.1:1",
        ]);
        assert_eq!(in_clear(&store(StoreChoice::Auto, v.clone(), None)), None);
        v.insecure_http = true;
        let warning = in_clear(&store(StoreChoice::Auto, v.clone(), None)).unwrap();
        assert!(warning.starts_with("the credential store at http://vault.corp:8200 is reached"));
        assert!(warning.contains("in clear"), "{warning}");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            in_clear(&store(StoreChoice::Directory, v, Some(dir.path()))),
            None,
            "the directory store is read, not Vault"
        );
        let mut local = vault(&["http://127.0.0.1:8200"]);
        local.insecure_http = true;
        assert_eq!(in_clear(&store(StoreChoice::Vault, local, None)), None);
    }

    fn metadata() -> Metadata {
        Metadata {
            endpoint: None,
            tls: tls::client_config(&[]).unwrap(),
        }
    }

    #[test]
    fn authentication_is_chosen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let default_file = dir.path().join("vault-token");
        let addresses = [Url::parse("http://v:8200").unwrap()];
        let mut v = vault(&["http://v:8200"]);
        v.default_token_file = Some(default_file.clone());
        assert_eq!(
            choose_auth(&v, &addresses, metadata())
                .unwrap_err()
                .exit_code(),
            78,
            "no token anywhere"
        );
        std::fs::write(&default_file, "t").unwrap();
        assert!(matches!(
            choose_auth(&v, &addresses, metadata()).unwrap(),
            VaultAuth::TokenFile(p) if p == default_file
        ));
        v.approle = Some(AppRoleSettings {
            mount: "approle".into(),
            role_id: Some("r".into()),
            role_id_file: None,
            secret_id_file: Some("/run/sid".into()),
        });
        assert!(matches!(
            choose_auth(&v, &addresses, metadata()).unwrap(),
            VaultAuth::AppRole(_)
        ));
        v.token_file = Some("/run/token".into());
        assert_eq!(
            choose_auth(&v, &addresses, metadata())
                .unwrap_err()
                .exit_code(),
            78
        );
        v.token = Some(SecretString::from("t"));
        assert!(matches!(
            choose_auth(&v, &addresses, metadata()).unwrap(),
            VaultAuth::Token { .. }
        ));
    }

    #[test]
    fn two_login_methods_are_78_naming_both_and_a_login_is_revoked_after() {
        use crate::credentials::vault::config::{CertSettings, JwtSettings};
        let addresses = [Url::parse("https://v:8200").unwrap()];
        let mut v = vault(&["https://v:8200"]);
        v.jwt = Some(JwtSettings {
            file: Some("/run/jwt".into()),
            ..JwtSettings::default()
        });
        let jwt = choose_auth(&v, &addresses, metadata()).unwrap();
        assert!(jwt.logs_in());
        assert_eq!(
            jwt.describe(),
            "the token of the jwt login at auth/jwt with the JWT in /run/jwt"
        );
        v.cert = Some(CertSettings::default());
        let both = choose_auth(&v, &addresses, metadata()).unwrap_err();
        assert_eq!(both.exit_code(), 78);
        assert!(
            both.message().starts_with(
                "[vault.jwt] and [vault.cert] are set for the credential store at once"
            ),
            "{both}"
        );
        assert!(both.message().contains("keep one way to log in"));
        // A token given directly still wins, as before.
        v.token = Some(SecretString::from("t"));
        assert!(!choose_auth(&v, &addresses, metadata()).unwrap().logs_in());
    }

    #[test]
    fn approle_needs_a_role_id_and_a_secret_id_file() {
        let mut role = AppRoleSettings {
            mount: "approle".into(),
            ..AppRoleSettings::default()
        };
        assert!(approle(&role).unwrap_err().message().contains("role ID"));
        role.role_id = Some("r".into());
        assert!(approle(&role)
            .unwrap_err()
            .message()
            .contains("secret ID file"));
        role.secret_id_file = Some("/run/sid".into());
        assert_eq!(approle(&role).unwrap().role_id, "r");
    }
}
