//! Azure Key Vault (`store = "azure-key-vault"`): `cred:NAME` is the secret
//! `PREFIX+NAME` of the vault, read with the VM's managed identity:
//! `GET {vault}/secrets/NAME?api-version=7.4` with the token IMDS gives for
//! the resource `https://vault.azure.net` (`identity::azure`), of the
//! user-assigned identity `client_id` when set.
//!
//! `vault` is a name (`https://NAME.vault.azure.net`) or an `https://` URL;
//! `endpoint` overrides the base (a private endpoint's name). Key Vault
//! secret names allow only letters, digits and `-`: a NAME that cannot be
//! one is bad input (65) said before anything is sent. Errors are
//! `{"error": {"code", "message", "innererror"}}`: 401 and 403
//! (`Forbidden`, `ForbiddenByRbac`, `ForbiddenByPolicy`) are refusals (77)
//! naming "Key Vault Secrets User" on the vault, 404 `SecretNotFound` a
//! missing secret (66); 429 and 5xx are retried until the deadline.

pub(crate) mod config;
#[cfg(test)]
mod mock_tests;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use self::config::{defs, AzureSettings};
use super::address::{self, parse_address, AddressRule};
use super::bearer::{error_parts, error_said, BearerAnswer, BearerClient, TokenCache};
use super::config::checked_word;
use super::identity::azure::{self, AzureToken};
use super::open::OpenContext;
use super::{CredRef, CredentialStore};
use crate::error::{Class, Error, Result};
use crate::net::metadata::MetadataClient;
use crate::net::retry::{self, Tries};
use crate::net::tls;
use crate::util::text::shown;
use crate::util::BoxFuture;

/// Its config section.
const SECTION: &str = "azure_key_vault";
const KIND: &str = "Azure Key Vault";
/// The resource a Key Vault token is asked for.
pub(crate) const RESOURCE: &str = "https://vault.azure.net";
/// The data-plane API version read here.
pub(crate) const API_VERSION: &str = "7.4";
/// The built-in role that reads secrets, and nothing else.
pub(crate) const ROLE: &str = "Key Vault Secrets User";
const EXAMPLE: &str = "https://NAME.vault.azure.net";

pub(crate) struct AzureKeyVault {
    api: BearerClient,
    metadata: MetadataClient,
    /// The vault as configured, for messages and the grant.
    vault: String,
    prefix: String,
    client_id: Option<String>,
    budget: Duration,
    token: TokenCache<AzureToken>,
}

/// The store the `[azure_key_vault]` section describes; a bad setting is
/// 78, before anything is sent.
pub(crate) fn open(
    settings: &AzureSettings,
    context: &OpenContext<'_>,
) -> Result<Box<dyn CredentialStore>> {
    let file = &settings.file;
    let rule = rule(file.insecure_http.unwrap_or(false));
    let vault_from = settings.from(&defs::VAULT);
    let vault_url = match file.vault.as_deref() {
        None => None,
        Some(v) if v.contains("://") => Some(parse_address(v, &vault_from, &rule)?),
        Some(v) => {
            let name = checked_word(
                v,
                &vault_from,
                |c| c.is_ascii_alphanumeric() || c == '-',
                "a Key Vault name (3 to 24 letters, digits and '-') or an https:// URL",
            )?;
            Some(
                Url::parse(&format!("https://{name}.vault.azure.net"))
                    .expect("a vault name makes a URL"),
            )
        }
    };
    let base = match (&file.endpoint, vault_url) {
        (Some(e), _) => parse_address(e, &settings.from(&defs::ENDPOINT), &rule)?,
        (None, Some(url)) => url,
        (None, None) => {
            return Err(Error::Config(format!(
                "the credential store is Azure Key Vault, but no vault is named: set \
                 [azure_key_vault] vault = \"NAME\" (or {EXAMPLE}) in {}",
                settings.config
            )))
        }
    };
    let vault = file
        .vault
        .clone()
        .unwrap_or_else(|| shown(address::shown_address(&base)));
    let prefix = match &file.prefix {
        Some(p) if !p.is_empty() => checked_word(
            p,
            &settings.from(&defs::PREFIX),
            is_name_char,
            "the start of a Key Vault secret name (letters, digits and '-')",
        )?,
        _ => String::new(),
    };
    let client_id = file
        .client_id
        .as_deref()
        .map(|id| {
            checked_word(
                id,
                &settings.from(&defs::CLIENT_ID),
                |c| c.is_ascii_hexdigit() || c == '-',
                "a client ID (a GUID)",
            )
        })
        .transpose()?;
    if let Some(warning) = in_clear(settings) {
        tracing::warn!("{warning}");
    }
    let tls = tls::client_config(context.extra)?;
    Ok(Box::new(AzureKeyVault {
        api: BearerClient::new(KIND, base, &tls)?,
        metadata: super::identity::client(
            azure::CLOUD,
            context.metadata_endpoint,
            &tls,
            context.budget,
        )?,
        vault,
        prefix,
        client_id,
        budget: context.budget,
        token: TokenCache::new(),
    }))
}

fn rule(insecure_http: bool) -> AddressRule<'static> {
    AddressRule {
        section: SECTION,
        example: EXAMPLE,
        credentials_hint: "the store is opened with the VM's managed identity",
        insecure_http,
    }
}

/// The warning for a vault or endpoint reached over plain http:// off
/// loopback.
pub(crate) fn in_clear(settings: &AzureSettings) -> Option<String> {
    let file = &settings.file;
    let address = file
        .endpoint
        .as_deref()
        .or(file.vault.as_deref().filter(|v| v.contains("://")));
    let insecure_http = file.insecure_http == Some(true);
    address::in_clear(SECTION, insecure_http, address, "the access token")
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

impl AzureKeyVault {
    async fn read(&self, name: &CredRef) -> Result<SecretString> {
        let secret = format!("{}{}", self.prefix, name.name());
        if secret.len() > 127 || !secret.chars().all(is_name_char) {
            return Err(Error::Input(format!(
                "credential {name}: {:?} cannot be a Key Vault secret name (letters, digits and \
                 '-' only, at most 127): name the credential and the secret with '-' instead \
                 of '_' or '.'",
                shown(&secret)
            )));
        }
        // Asked for before the first try, so that the line of a failure to
        // get it is its own, and again in each try once it nears expiry.
        self.token().await?;
        let url = self.api.url(
            &format!("secrets/{secret}"),
            Some(&format!("api-version={API_VERSION}")),
        );
        let what = format!("credential {name} in {}", self.describe());
        let mut tries = Tries::default();
        let renewed = std::sync::atomic::AtomicBool::new(false);
        let (answer, token) = retry::retry(&what, self.budget, &mut tries, |_| async {
            let mut token = self.token().await?;
            let mut answer = self.api.get(url.clone(), &token.access_token).await?;
            if super::bearer::renew_once(answer.status, &renewed, KIND) {
                self.token.forget();
                token = self.token().await?;
                answer = self.api.get(url.clone(), &token.access_token).await?;
            }
            Ok((answer, token))
        })
        .await?;
        self.value(name, &secret, &token, &answer)
    }

    /// The managed identity's token, kept until shortly before it expires.
    async fn token(&self) -> Result<std::sync::Arc<AzureToken>> {
        self.token
            .get(|| async {
                let token =
                    azure::token(&self.metadata, RESOURCE, self.client_id.as_deref()).await?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                // IMDS always says; a token that does not is used for 5 min.
                let lifetime = token
                    .expires_on
                    .map(|at| at.saturating_sub(now))
                    .unwrap_or(300);
                tracing::debug!("the managed identity's token is valid for {lifetime} s");
                Ok((token, lifetime))
            })
            .await
    }

    fn value(
        &self,
        name: &CredRef,
        secret: &str,
        token: &AzureToken,
        answer: &BearerAnswer,
    ) -> Result<SecretString> {
        let by = self.api.shown();
        let at = format!("{KIND} {} at {by} (secret {secret})", shown(&self.vault));
        let said = error_said(&answer.body, &[token.access_token.expose_secret()]);
        let code = error_parts(&answer.body)
            .map(|(c, _)| c)
            .unwrap_or_default();
        let status = answer.status;
        let line = |fix: &str| format!("credential {name}: {at} answered {status}{said}: {fix}");
        let assignee = token
            .client_id
            .as_deref()
            .or(self.client_id.as_deref())
            .unwrap_or("CLIENT_ID");
        let grant = format!(
            "grant the managed identity (client ID {}) the role \"{ROLE}\" on the vault: `az \
             role assignment create --role \"{ROLE}\" --assignee {} --scope VAULT_RESOURCE_ID` \
             (or check [azure_key_vault] vault)",
            shown(assignee),
            shown(assignee)
        );
        match status {
            200 => {
                let json: serde_json::Value = serde_json::from_slice(&answer.body)
                    .map_err(|_| Error::Input(format!("credential {name} from {at}: not JSON")))?;
                match json.get("value").and_then(|v| v.as_str()) {
                    Some(value) => Ok(SecretString::from(value.to_string())),
                    None => Err(Error::Input(format!(
                        "credential {name} from {at}: the answer has no string value"
                    ))),
                }
            }
            401 => Err(Error::status(
                Class::Refused,
                status,
                secret,
                by,
                line(
                    "the managed identity's token was not accepted (another tenant, or not a \
                     Key Vault endpoint?)",
                ),
            )),
            403 => Err(Error::status(
                Class::Refused,
                status,
                secret,
                by,
                line(&grant),
            )),
            404 => {
                let fix = if code.contains("SecretNotFound") {
                    format!(
                        "create it with `az keyvault secret set --vault-name VAULT --name \
                         {secret} --file FILE`, or check [azure_key_vault] prefix"
                    )
                } else {
                    "check [azure_key_vault] vault and endpoint".to_string()
                };
                Err(Error::status(
                    Class::NotFound,
                    status,
                    secret,
                    by,
                    line(&fix),
                ))
            }
            _ => Err(Error::status(
                Class::Unavailable,
                status,
                secret,
                by,
                line("not retried. Is [azure_key_vault] vault (or endpoint) right?"),
            )),
        }
    }
}

impl CredentialStore for AzureKeyVault {
    fn describe(&self) -> String {
        let identity = match self.token.last() {
            Some(t) => match t.client_id.as_deref().or(self.client_id.as_deref()) {
                Some(id) => format!("as the managed identity {}", shown(id)),
                None => "as the VM's managed identity".to_string(),
            },
            None => match &self.client_id {
                Some(id) => format!("the managed identity {}", shown(id)),
                None => "the VM's managed identity".to_string(),
            },
        };
        format!(
            "{KIND} {} at {} ({identity})",
            shown(&self.vault),
            self.api.shown()
        )
    }

    fn get<'a>(&'a self, name: &'a CredRef) -> BoxFuture<'a, Result<SecretString>> {
        Box::pin(self.read(name))
    }
}
