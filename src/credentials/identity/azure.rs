//! The Azure managed identity of the VM, asked of IMDS: an access token for
//! one resource (`metadata/identity/oauth2/token`, `Metadata: true`, a
//! pinned `api-version`), for the system-assigned identity or, with
//! `client_id`, a user-assigned one.
//!
//! IMDS answers 400 `invalid_request` "Identity not found" when the VM has
//! no such identity: a refusal (77) naming the `az vm identity assign`
//! command. Microsoft documents 404 and 410 from this endpoint while IMDS
//! updates, and 429 and 5xx: all retried (SPEC §6) until the deadline.

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::net::metadata::{Answer, MetadataClient};
use crate::net::retry::Failure;
use crate::util::text::shown;

/// The cloud's name, for [`MetadataClient::new`] and messages.
pub(crate) const CLOUD: &str = "azure";
const HEADER: (&str, &str) = ("Metadata", "true");
const TOKEN_PATH: &str = "metadata/identity/oauth2/token";
/// The managed identity API version Microsoft's own SDKs pin.
pub(crate) const API_VERSION: &str = "2018-02-01";

/// A managed identity's access token for one resource.
/// `Debug` shows the token as secrecy does: redacted.
#[derive(Debug)]
pub(crate) struct AzureToken {
    /// For an `Authorization: Bearer` header only.
    pub(crate) access_token: SecretString,
    /// The identity's client (application) ID, as IMDS names it: what
    /// `describe()` shows, and what a role is granted to.
    pub(crate) client_id: Option<String>,
    /// When it expires, in seconds since the epoch.
    pub(crate) expires_on: Option<u64>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    #[serde(default)]
    client_id: Option<String>,
    /// A decimal string in IMDS's answer; a number is taken too.
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
    #[serde(default)]
    token_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The token for `resource` (e.g. `https://vault.azure.net`), of the
/// user-assigned identity `client_id` when given, else of the system-assigned
/// one.
pub(crate) async fn token(
    client: &MetadataClient,
    resource: &str,
    client_id: Option<&str>,
) -> Result<AzureToken> {
    // Built in a block: the serializer is not `Send`, and must be gone
    // before the first await.
    let query = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("api-version", API_VERSION)
            .append_pair("resource", resource);
        if let Some(id) = client_id {
            query.append_pair("client_id", id);
        }
        query.finish()
    };
    let (answer, _) = client
        .read(|| async {
            let url = client.url(TOKEN_PATH, &[], Some(&query));
            let answer = client.get(url, &[HEADER]).await?;
            checked(client, &answer, client_id)?;
            Ok(answer)
        })
        .await?;
    let parsed: TokenAnswer = serde_json::from_slice(&answer.body).map_err(|e| {
        // serde's message names the field and position, never the value.
        Error::Unavailable(format!(
            "{} sent a managed identity token that is not the documented JSON ({e}): is it \
             Azure's IMDS?",
            client.describe()
        ))
    })?;
    if let Some(kind) = parsed.token_type.as_deref() {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(Error::Unavailable(format!(
                "{} sent a token of type {:?}, not Bearer: is it Azure's IMDS?",
                client.describe(),
                shown(kind)
            )));
        }
    }
    let expires_on = parsed.expires_on.as_ref().and_then(|v| match v {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        v => v.as_u64(),
    });
    Ok(AzureToken {
        access_token: super::header_safe(parsed.access_token, &client.describe())?,
        client_id: parsed.client_id.filter(|id| is_plain(id)),
        expires_on,
    })
}

/// A client ID fit for messages: a GUID-like word.
fn is_plain(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The fix for "Identity not found".
fn assign_fix(client_id: Option<&str>) -> String {
    match client_id {
        None => "give the VM a system-assigned identity: `az vm identity assign --resource-group \
                 RG --name VM`"
            .to_string(),
        Some(id) => format!(
            "assign the user-assigned identity with client ID {} to the VM: `az vm identity \
             assign --resource-group RG --name VM --identities IDENTITY_RESOURCE_ID`, or fix \
             client_id",
            shown(id)
        ),
    }
}

/// `Ok` for a 200; the failure otherwise.
fn checked(
    client: &MetadataClient,
    answer: &Answer,
    client_id: Option<&str>,
) -> std::result::Result<(), Failure> {
    let by = client.describe();
    match answer.status {
        200 => Ok(()),
        404 | 410 => Err(Failure::busy(
            format!(
                "{by} answered {} to {}: IMDS is starting or updating the identity",
                answer.status, answer.path
            ),
            None,
        )),
        400 => {
            let said: Option<ErrorAnswer> = serde_json::from_slice(&answer.body).ok();
            let identity_not_found = said.as_ref().is_some_and(|e| {
                e.error == "invalid_request"
                    && e.error_description
                        .to_ascii_lowercase()
                        .contains("identity not found")
            });
            if identity_not_found {
                let which = if client_id.is_some() {
                    "the user-assigned managed identity asked for"
                } else {
                    "a managed identity"
                };
                return Err(Failure::Permanent(Error::Refused(format!(
                    "the VM has no {which} ({by} answered 400 Identity not found): {}",
                    assign_fix(client_id)
                ))));
            }
            Err(Failure::Permanent(Error::Refused(format!(
                "{by} refused the managed identity token request with 400{}: check the \
                 resource and client_id",
                answer.said()
            ))))
        }
        403 => Err(Failure::Permanent(Error::Refused(format!(
            "{by} answered 403 Forbidden to {}{}: the request did not reach IMDS directly (a \
             proxy in the way?)",
            answer.path,
            answer.said()
        )))),
        _ => Err(client.unexpected(answer)),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;
    use testkit::Reply;

    use super::*;
    use crate::credentials::test_support::{metadata_client, serve};

    fn client(url: &str) -> MetadataClient {
        metadata_client(CLOUD, url)
    }

    const TOKEN: &str = r#"{"access_token":"eyJ0.secret","client_id":"1b7a-22","expires_in":"86399","expires_on":"1700000000","resource":"https://vault.azure.net","token_type":"Bearer"}"#;

    #[tokio::test]
    async fn the_token_is_asked_with_the_header_the_version_and_the_client_id() {
        let origin = serve(|r| {
            if r.header("metadata") == Some("true") {
                Reply::ok(TOKEN)
            } else {
                Reply::status_with_body(400, "{}")
            }
        });
        let c = client(&origin.url(""));
        let t = token(&c, "https://vault.azure.net", Some("1b7a-22"))
            .await
            .unwrap();
        assert_eq!(t.access_token.expose_secret(), "eyJ0.secret");
        assert_eq!(t.client_id.as_deref(), Some("1b7a-22"));
        assert_eq!(t.expires_on, Some(1_700_000_000));
        let target = &origin.requests()[0].target;
        assert_eq!(
            target,
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=1b7a-22"
        );
    }

    #[tokio::test]
    async fn no_identity_is_a_refusal_naming_the_fix() {
        let origin = serve(|_| {
            Reply::status_with_body(
                400,
                r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
            )
        });
        let c = client(&origin.url(""));
        let error = token(&c, "https://vault.azure.net", None)
            .await
            .unwrap_err();
        assert_eq!(error.exit_code(), 77);
        assert!(error.message().contains("az vm identity assign"), "{error}");
        let error = token(&c, "https://vault.azure.net", Some("abc"))
            .await
            .unwrap_err();
        assert!(error.message().contains("--identities"), "{error}");
    }

    #[tokio::test]
    async fn a_token_that_cannot_go_in_a_header_is_refused_at_once() {
        let origin = serve(|_| Reply::ok(r#"{"access_token":"eyJ0\nInjected: x"}"#));
        let error = token(&client(&origin.url("")), "r", None)
            .await
            .unwrap_err();
        assert_eq!(error.exit_code(), 69);
        assert!(error.message().contains("cannot have"), "{error}");
        assert!(!error.message().contains("eyJ0"), "{error}");
        assert_eq!(origin.requests().len(), 1, "not retried");
    }

    #[tokio::test]
    async fn a_garbled_answer_does_not_echo_the_token() {
        let origin = serve(|_| Reply::ok(r#"{"access_token":"eyJ0.secret","token_type":"pop"}"#));
        let error = token(&client(&origin.url("")), "r", None)
            .await
            .unwrap_err();
        assert_eq!(error.exit_code(), 69);
        assert!(!error.message().contains("eyJ0"), "{error}");
    }
}
