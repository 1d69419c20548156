//! GCP Secret Manager (`store = "gcp-secret-manager"`): `cred:NAME` is the
//! secret `PREFIX+NAME` of the project, read with the instance's service
//! account: `GET {endpoint}/v1/projects/P/secrets/ID/versions/V:access`
//! with the access token from the metadata server (`identity::gce`).
//!
//! The payload's `data` is base64 and is checked against its `dataCrc32c`
//! (a decimal int64 in the JSON): a mismatch is bad data (65), never a
//! secret used. Google's error body `{"error": {"code", "message",
//! "status"}}` says what went wrong: `PERMISSION_DENIED` and
//! `UNAUTHENTICATED` are refusals (77) naming the role to grant,
//! `NOT_FOUND` a missing secret (66); 429 and 5xx are retried until the
//! deadline (SPEC §6).
//!
//! The store is described with the service account's email once it has it.

pub(crate) mod config;
#[cfg(test)]
mod mock_tests;

use std::time::Duration;

use base64::Engine;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use self::config::{defs, GcpSettings, DEFAULT_ENDPOINT};
use super::address::{self, parse_address, AddressRule};
use super::bearer::{error_parts, error_said, BearerAnswer, BearerClient, TokenCache};
use super::config::checked_word;
use super::identity::gce;
use super::open::OpenContext;
use super::{CredRef, CredentialStore};
use crate::error::{Class, Error, Result};
use crate::net::metadata::MetadataClient;
use crate::net::retry::{self, Tries};
use crate::net::tls;
use crate::util::text::shown;
use crate::util::BoxFuture;

/// Its config section.
const SECTION: &str = "gcp_secret_manager";
const KIND: &str = "GCP Secret Manager";
/// The role that reads one secret's versions, and nothing else.
pub(crate) const ROLE: &str = "roles/secretmanager.secretAccessor";

/// The store, opened: nothing is asked of the metadata server until the
/// first credential is read.
pub(crate) struct GcpSecretManager {
    api: BearerClient,
    metadata: MetadataClient,
    /// The configured project, else the metadata server's.
    project: Option<String>,
    prefix: String,
    version: String,
    budget: Duration,
    /// The token, the project and the email, renewed with the token.
    session: TokenCache<Session>,
}

/// What the first read learns from the metadata server.
struct Session {
    token: SecretString,
    project: String,
    /// For `describe()` and the grant to ask for; best effort.
    email: Option<String>,
}

/// The store the `[gcp_secret_manager]` section describes; a bad setting
/// is 78, before anything is sent.
pub(crate) fn open(
    settings: &GcpSettings,
    context: &OpenContext<'_>,
) -> Result<Box<dyn CredentialStore>> {
    let file = &settings.file;
    let insecure_http = file.insecure_http.unwrap_or(false);
    let endpoint = match &file.endpoint {
        Some(text) => parse_address(text, &settings.from(&defs::ENDPOINT), &rule(insecure_http))?,
        None => Url::parse(DEFAULT_ENDPOINT).expect("the default endpoint is a URL"),
    };
    let project = file
        .project
        .as_deref()
        .map(|p| {
            checked_word(
                p,
                &settings.from(&defs::PROJECT),
                is_project_char,
                "a project ID",
            )
        })
        .transpose()?;
    let prefix = match &file.prefix {
        Some(p) if !p.is_empty() => checked_word(
            p,
            &settings.from(&defs::PREFIX),
            is_secret_id_char,
            "the start of a secret ID (letters, digits, '_' and '-')",
        )?,
        _ => String::new(),
    };
    let version = checked_word(
        file.version.as_deref().unwrap_or("latest"),
        &settings.from(&defs::VERSION),
        is_secret_id_char,
        "a version (a number, latest, or an alias)",
    )?;
    if let Some(warning) = in_clear(settings) {
        tracing::warn!("{warning}");
    }
    let tls = tls::client_config(context.extra)?;
    Ok(Box::new(GcpSecretManager {
        api: BearerClient::new(KIND, endpoint, &tls)?,
        metadata: super::identity::client(
            gce::CLOUD,
            context.metadata_endpoint,
            &tls,
            context.budget,
        )?,
        project,
        prefix,
        version,
        budget: context.budget,
        session: TokenCache::new(),
    }))
}

/// The address rule of the section.
fn rule(insecure_http: bool) -> AddressRule<'static> {
    AddressRule {
        section: SECTION,
        example: DEFAULT_ENDPOINT,
        credentials_hint: "the store is opened with the instance's service account",
        insecure_http,
    }
}

/// The warning for an `endpoint` reached over plain http:// off loopback.
pub(crate) fn in_clear(settings: &GcpSettings) -> Option<String> {
    let file = &settings.file;
    let insecure_http = file.insecure_http == Some(true);
    let addresses = file.endpoint.as_deref();
    address::in_clear(SECTION, insecure_http, addresses, "the access token")
}

fn is_project_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' || c == ':'
}

fn is_secret_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl GcpSecretManager {
    async fn session(&self) -> Result<std::sync::Arc<Session>> {
        self.session
            .get(|| async {
                let access = gce::access_token(&self.metadata).await?;
                tracing::debug!(
                    "the service account's access token is valid for {} s",
                    access.expires_in
                );
                let token = access.token;
                let project = match &self.project {
                    Some(p) => p.clone(),
                    None => {
                        let p = gce::project_id(&self.metadata).await?;
                        // It goes into the request's path: a '/' in it
                        // would name another resource.
                        if p.len() > 255 || !p.chars().all(is_project_char) {
                            return Err(Error::Unavailable(format!(
                                "{} sent a project ID that is not one ({:?}): set \
                                 [gcp_secret_manager] project",
                                self.metadata.describe(),
                                shown(&p)
                            )));
                        }
                        p
                    }
                };
                // Only shown, in messages and `describe()`; one that is not
                // an address is dropped.
                let email = gce::email(&self.metadata).await.ok().filter(|e| {
                    e.len() <= 255
                        && e.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "@.-_".contains(c))
                });
                let session = Session {
                    token,
                    project,
                    email,
                };
                // GCE always says; a token that does not is used for 5 min.
                let lifetime = if access.expires_in == 0 {
                    300
                } else {
                    access.expires_in
                };
                Ok((session, lifetime))
            })
            .await
    }

    async fn read(&self, name: &CredRef) -> Result<SecretString> {
        let id = format!("{}{}", self.prefix, name.name());
        if id.len() > 255 || !id.chars().all(is_secret_id_char) {
            return Err(Error::Input(format!(
                "credential {name}: {:?} cannot be a Secret Manager secret ID (letters, digits, \
                 '_' and '-' only, at most 255): name the credential and the secret without '.'",
                shown(&id)
            )));
        }
        // Asked for before the first try, so that the line of a failure to
        // get it is its own, and again in each try once it nears expiry.
        self.session().await?;
        let what = format!("credential {name} in {}", self.describe());
        let mut tries = Tries::default();
        let renewed = std::sync::atomic::AtomicBool::new(false);
        let (answer, session) = retry::retry(&what, self.budget, &mut tries, |_| async {
            let ask = |session: &Session| {
                let path = format!(
                    "v1/projects/{}/secrets/{id}/versions/{}:access",
                    session.project, self.version
                );
                self.api.url(&path, None)
            };
            let mut session = self.session().await?;
            let mut answer = self.api.get(ask(&session), &session.token).await?;
            if super::bearer::renew_once(answer.status, &renewed, KIND) {
                self.session.forget();
                session = self.session().await?;
                answer = self.api.get(ask(&session), &session.token).await?;
            }
            Ok((answer, session))
        })
        .await?;
        self.payload(name, &id, &session, &answer)
    }

    /// The secret in a final answer, or what the answer means.
    fn payload(
        &self,
        name: &CredRef,
        id: &str,
        session: &Session,
        answer: &BearerAnswer,
    ) -> Result<SecretString> {
        let at = format!(
            "{KIND} at {} (project {}, secret {id}, version {})",
            self.api.shown(),
            session.project,
            self.version
        );
        let said = error_said(&answer.body, &[session.token.expose_secret()]);
        let status = error_parts(&answer.body).map(|(code, _)| code);
        let by = self.api.shown();
        let refused = |fix: String| {
            Error::status(
                Class::Refused,
                answer.status,
                id,
                by,
                format!(
                    "credential {name}: {at} answered {}{said}: {fix}",
                    answer.status
                ),
            )
        };
        let account = session
            .email
            .as_deref()
            .map(|e| format!("serviceAccount:{e}"))
            .unwrap_or_else(|| "serviceAccount:EMAIL".into());
        match (answer.status, status.as_deref()) {
            (200, _) => decode(&answer.body, &format!("credential {name} from {at}")),
            (403, _) | (_, Some("PERMISSION_DENIED")) => {
                if said.contains("scope") {
                    return Err(refused(format!(
                        "the instance's access scopes do not allow Secret Manager: {}",
                        gce::ATTACH_FIX
                    )));
                }
                Err(refused(format!(
                    "grant the service account {ROLE} on the secret: `gcloud secrets \
                     add-iam-policy-binding {id} --project {} --member {account} --role {ROLE}` \
                     (or check [gcp_secret_manager] project)",
                    session.project
                )))
            }
            (401, _) | (_, Some("UNAUTHENTICATED")) => Err(refused(
                "the service account's access token was not accepted: check the instance's \
                 service account and that the endpoint is Google's"
                    .into(),
            )),
            (404, _) | (_, Some("NOT_FOUND")) => Err(Error::status(
                Class::NotFound,
                answer.status,
                id,
                by,
                format!(
                    "credential {name}: {at} answered {}{said}: create it with `gcloud secrets \
                     create {id} --project {} --data-file=-`, or check [gcp_secret_manager] \
                     project, prefix and version",
                    answer.status, session.project
                ),
            )),
            (400, Some("FAILED_PRECONDITION")) => Err(Error::status(
                Class::NotFound,
                answer.status,
                id,
                by,
                format!(
                    "credential {name}: {at} answered {}{said}: the version is disabled or \
                     destroyed; enable it or set [gcp_secret_manager] version",
                    answer.status
                ),
            )),
            (status, _) => Err(Error::status(
                Class::Unavailable,
                status,
                id,
                by,
                format!(
                    "credential {name}: {at} answered {status}{said}: not retried. Is \
                     [gcp_secret_manager] endpoint right?"
                ),
            )),
        }
    }
}

/// `{"name", "payload": {"data", "dataCrc32c"}}` → the secret, its CRC32C
/// checked. `subject` names it in messages, never its value.
fn decode(body: &[u8], subject: &str) -> Result<SecretString> {
    let bad = |why: &str| Error::Input(format!("{subject}: {why}"));
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| bad("the answer is not JSON"))?;
    let payload = &json["payload"];
    let data = payload["data"]
        .as_str()
        .ok_or_else(|| bad("the answer has no payload.data"))?;
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| bad("payload.data is not base64"))?,
    );
    // An int64 in Google's JSON: a decimal string (a number taken too).
    let crc = match &payload["dataCrc32c"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(
            s.parse::<u64>()
                .map_err(|_| bad("payload.dataCrc32c is not a number"))?,
        ),
        v => Some(
            v.as_u64()
                .ok_or_else(|| bad("payload.dataCrc32c is not a number"))?,
        ),
    };
    if let Some(expected) = crc {
        let actual = u64::from(crc32c(&bytes));
        if actual != expected {
            return Err(bad(&format!(
                "the payload fails its CRC32C check ({actual} computed, {expected} sent): it \
                 was corrupted on the way or by the server; not used"
            )));
        }
    }
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| bad("the secret is not UTF-8 text; store it as text"))?;
    Ok(SecretString::from(text))
}

/// CRC-32C (Castagnoli), the checksum Google puts beside each payload.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(bytes)
}

impl CredentialStore for GcpSecretManager {
    fn describe(&self) -> String {
        match self.session.last() {
            Some(s) => format!(
                "{KIND} at {} (project {}{})",
                self.api.shown(),
                s.project,
                s.email
                    .as_deref()
                    .map(|e| format!(", as service account {}", shown(e)))
                    .unwrap_or_default()
            ),
            None => format!(
                "{KIND} at {} (project {}, the instance's service account)",
                self.api.shown(),
                self.project
                    .as_deref()
                    .unwrap_or("from the metadata server")
            ),
        }
    }

    fn get<'a>(&'a self, name: &'a CredRef) -> BoxFuture<'a, Result<SecretString>> {
        Box::pin(self.read(name))
    }
}
