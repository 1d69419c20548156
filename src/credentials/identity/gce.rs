//! The GCE service account attached to the instance, asked of Google's
//! metadata server: its OAuth access token (for Google's APIs, e.g. Secret
//! Manager), an identity token for an audience (a signed JWT, e.g. for
//! Vault's `jwt` login), its email, and the instance's project.
//!
//! Every request carries `Metadata-Flavor: Google` and every answer must
//! carry it back, as for the tags (`tags::instance::gce`). A 404 under
//! `service-accounts/default/` means no service account is attached: a
//! refusal (77) naming the `gcloud` command that attaches one. Each read is
//! retried (SPEC §6) until the client's deadline.

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::net::metadata::{Answer, MetadataClient};
use crate::net::retry::Failure;

/// The cloud's name, for [`MetadataClient::new`] and messages.
pub(crate) const CLOUD: &str = "gce";
const FLAVOR: (&str, &str) = ("Metadata-Flavor", "Google");
const ACCOUNT: &str = "computeMetadata/v1/instance/service-accounts/default/";
const PROJECT_PATH: &str = "computeMetadata/v1/project/project-id";

/// The fix for an instance without a service account (or without the scope
/// Google's APIs need).
pub(crate) const ATTACH_FIX: &str = "attach one with `gcloud compute instances \
     set-service-account INSTANCE --zone ZONE --service-account EMAIL --scopes cloud-platform` \
     (the instance must be stopped)";

/// An OAuth access token of the instance's service account.
/// `Debug` shows the token as secrecy does: redacted.
#[derive(Debug)]
pub(crate) struct AccessToken {
    /// The token itself, for an `Authorization: Bearer` header only.
    pub(crate) token: SecretString,
    /// Seconds it stays valid, as the server said.
    pub(crate) expires_in: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    #[serde(default)]
    expires_in: u64,
    token_type: String,
}

/// The default service account's access token
/// (`service-accounts/default/token`, `{access_token, expires_in,
/// token_type}`).
pub(crate) async fn access_token(client: &MetadataClient) -> Result<AccessToken> {
    let path = format!("{ACCOUNT}token");
    let text = read_text(client, &path, None).await?;
    let answer: TokenAnswer = serde_json::from_str(&text).map_err(|e| {
        // serde's message names the field and position, never the value.
        Error::Unavailable(format!(
            "{} sent a service account token that is not the documented JSON ({e}): is it \
             GCE's metadata server?",
            client.describe()
        ))
    })?;
    if !answer.token_type.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unavailable(format!(
            "{} sent a token of type {:?}, not Bearer: is it GCE's metadata server?",
            client.describe(),
            crate::util::text::shown(&answer.token_type)
        )));
    }
    Ok(AccessToken {
        token: super::header_safe(answer.access_token, &client.describe())?,
        expires_in: answer.expires_in,
    })
}

/// An identity token (a JWT signed by Google, `format=full`: it carries the
/// instance's project, zone and ID) for `audience`
/// (`service-accounts/default/identity`).
pub(crate) async fn identity_token(
    client: &MetadataClient,
    audience: &str,
) -> Result<SecretString> {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("audience", audience)
        .append_pair("format", "full")
        .finish();
    let path = format!("{ACCOUNT}identity");
    let text = read_text(client, &path, Some(&query)).await?;
    let jwt = text.trim();
    // Three base64url parts: anything else is not a token, and is not shown.
    if jwt.split('.').count() != 3 || !jwt.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::Unavailable(format!(
            "{} sent an identity token that is not a JWT: is it GCE's metadata server?",
            client.describe()
        )));
    }
    Ok(SecretString::from(jwt.to_string()))
}

/// The default service account's email (`service-accounts/default/email`).
pub(crate) async fn email(client: &MetadataClient) -> Result<String> {
    let path = format!("{ACCOUNT}email");
    one_line(client, &path, "service account email").await
}

/// The instance's project ID (`project/project-id`).
pub(crate) async fn project_id(client: &MetadataClient) -> Result<String> {
    one_line(client, PROJECT_PATH, "project ID").await
}

/// A one-line text value, trimmed, checked to be one printable word.
async fn one_line(client: &MetadataClient, path: &str, what: &str) -> Result<String> {
    let text = read_text(client, path, None).await?;
    let value = text.trim();
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Unavailable(format!(
            "{} sent a {what} that is empty or not one word at {path}: is it GCE's metadata \
             server?",
            client.describe()
        )));
    }
    Ok(value.to_string())
}

/// GET `path` (with `query`) until it answers 200 or fails for good; its
/// body as text.
async fn read_text(client: &MetadataClient, path: &str, query: Option<&str>) -> Result<String> {
    let (text, _) = client
        .read(|| async {
            let url = client.url(path, &[], query);
            let answer = client.get(url, &[FLAVOR]).await?;
            checked(client, &answer)?;
            client.text(&answer)
        })
        .await?;
    Ok(text)
}

/// `Ok` for a 200 from Google's metadata server; the failure otherwise.
fn checked(client: &MetadataClient, answer: &Answer) -> std::result::Result<(), Failure> {
    if !answer.header_is(FLAVOR.0, FLAVOR.1) {
        return Err(Failure::Permanent(Error::Unavailable(format!(
            "{} answered {} to {} without the header Metadata-Flavor: Google, so it is not GCE's \
             metadata server (a captive portal or a transparent proxy?): not trusting it",
            client.describe(),
            answer.status,
            answer.path
        ))));
    }
    match answer.status {
        200 => Ok(()),
        404 if answer.path.contains("/service-accounts/") => {
            Err(Failure::Permanent(Error::Refused(format!(
                "the instance has no service account ({} answered 404 to {}): {ATTACH_FIX}",
                client.describe(),
                answer.path
            ))))
        }
        403 => Err(Failure::Permanent(Error::Refused(format!(
            "{} answered 403 Forbidden to {}{}: the request did not reach it directly, or the \
             endpoint is disabled for this instance",
            client.describe(),
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

    fn google(status: u16, body: &str) -> Reply {
        Reply::status_with_body(status, body.as_bytes().to_vec())
            .with_header("Metadata-Flavor", "Google")
    }

    #[tokio::test]
    async fn the_token_the_email_and_the_project_are_read_with_the_flavor_header() {
        let origin = serve(|req| match req.path.as_str() {
            "/computeMetadata/v1/instance/service-accounts/default/token" => google(
                200,
                r#"{"access_token":"ya29.secret","expires_in":3599,"token_type":"Bearer"}"#,
            ),
            "/computeMetadata/v1/instance/service-accounts/default/email" => {
                google(200, "sa@p.iam.gserviceaccount.com")
            }
            "/computeMetadata/v1/project/project-id" => google(200, "my-project\n"),
            "/computeMetadata/v1/instance/service-accounts/default/identity" => {
                google(200, "aaa.bbb.ccc")
            }
            _ => google(404, "Not Found"),
        });
        let c = client(&origin.url(""));
        let token = access_token(&c).await.unwrap();
        assert_eq!(token.token.expose_secret(), "ya29.secret");
        assert_eq!(token.expires_in, 3599);
        assert_eq!(email(&c).await.unwrap(), "sa@p.iam.gserviceaccount.com");
        assert_eq!(project_id(&c).await.unwrap(), "my-project");
        let jwt = identity_token(&c, "vault/my role").await.unwrap();
        assert_eq!(jwt.expose_secret(), "aaa.bbb.ccc");
        let requests = origin.requests();
        assert!(requests
            .iter()
            .all(|r| r.header("metadata-flavor") == Some("Google")));
        assert!(requests.iter().any(|r| r
            .target
            .ends_with("identity?audience=vault%2Fmy+role&format=full")));
    }

    #[tokio::test]
    async fn no_service_account_is_a_refusal_naming_the_fix() {
        let origin = serve(|_| google(404, "Not Found"));
        let error = access_token(&client(&origin.url(""))).await.unwrap_err();
        assert_eq!(error.exit_code(), 77);
        assert!(error.message().contains("set-service-account"), "{error}");
        // A missing project is no such refusal.
        assert_ne!(
            project_id(&client(&origin.url("")))
                .await
                .unwrap_err()
                .exit_code(),
            77
        );
    }

    #[tokio::test]
    async fn an_answer_without_the_flavor_header_is_not_trusted_nor_shown() {
        let origin = serve(|_| {
            Reply::status_with_body(
                200,
                br#"{"access_token":"ya29.secret","token_type":"Bearer"}"#.to_vec(),
            )
        });
        let error = access_token(&client(&origin.url(""))).await.unwrap_err();
        assert_eq!(error.exit_code(), 69);
        assert!(error.message().contains("Metadata-Flavor"), "{error}");
        assert!(!error.message().contains("ya29"), "{error}");
    }

    #[tokio::test]
    async fn a_garbled_token_answer_does_not_echo_it() {
        let origin = serve(|_| google(200, r#"{"access_token":"ya29.secret"}"#));
        let error = access_token(&client(&origin.url(""))).await.unwrap_err();
        assert_eq!(error.exit_code(), 69);
        assert!(!error.message().contains("ya29"), "{error}");
        let origin = serve(|_| google(200, "not a jwt ya29"));
        let error = identity_token(&client(&origin.url("")), "a")
            .await
            .unwrap_err();
        assert!(!error.message().contains("ya29"), "{error}");
    }
}
