//! The `aws` login (`[vault.aws]`), Vault's IAM method: `POST
//! auth/{mount}/login` with `role` and a `sts:GetCallerIdentity` request
//! signed (SigV4) with the instance role's temporary credentials. The store
//! sends the signed request to STS itself and learns from the answer which
//! role ARN signed it; the credentials never leave the instance.
//!
//! `server_id` goes into the signed request as `X-Vault-AWS-IAM-Server-ID`
//! (the role's `iam_server_id_header_value`), so a signature made for this
//! store cannot be replayed to another. `region` picks the STS endpoint
//! (`sts.REGION.amazonaws.com`; the global `sts.amazonaws.com` without it).
//!
//! The signed headers carry the session token and the signature: the login
//! body is secret and never logged.

use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use super::{login, shown_mount, LoggedIn, Login};
use crate::credentials::vault::client::VaultClient;
use crate::credentials::vault::config::{defs, login_word, mount_or_default, AwsSettings};
use crate::error::{Class, Error, Result};
use crate::util::text::shown;

/// The body of `sts:GetCallerIdentity`, what Vault expects signed.
pub(crate) const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// The header that binds a signature to one store.
pub(crate) const SERVER_ID_HEADER: &str = "X-Vault-AWS-IAM-Server-ID";

/// An `aws` (IAM) login.
#[derive(Debug, Clone)]
pub struct AwsLogin {
    pub(crate) mount: String,
    /// None: the role named after the signer's role (Vault's default).
    pub(crate) role: Option<String>,
    pub(crate) server_id: Option<String>,
    pub(crate) region: Option<String>,
}

/// A signed `sts:GetCallerIdentity` request, as Vault's login takes it.
/// `Debug` shows no header value: they hold the session token and the
/// signature.
pub(crate) struct SignedCall {
    pub(crate) url: String,
    pub(crate) body: String,
    pub(crate) headers: Vec<(String, SecretString)>,
}

impl AwsLogin {
    pub(crate) fn from_settings(s: &AwsSettings) -> Result<AwsLogin> {
        let region = login_word(&s.region, &defs::AWS_REGION, &s.config)?;
        if let Some(bad) = region.as_ref().filter(|r| {
            !r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }) {
            let place = format!("{} in {}", defs::AWS_REGION.key, s.config.display());
            let message = format!(
                "{place}: {:?} is not an AWS region: write one like eu-west-1",
                shown(bad)
            );
            return Err(Error::setting(Class::Config, place, message));
        }
        Ok(AwsLogin {
            mount: mount_or_default(&s.mount, &defs::AWS_MOUNT),
            role: login_word(&s.role, &defs::AWS_ROLE, &s.config)?,
            server_id: login_word(&s.server_id, &defs::AWS_SERVER_ID, &s.config)?,
            region,
        })
    }

    pub(crate) fn describe(&self) -> String {
        let role = self
            .role
            .as_ref()
            .map(|r| format!(" as role {}", shown(r)))
            .unwrap_or_default();
        format!(
            "the aws login at {}{role} with the instance role's signed sts:GetCallerIdentity",
            shown_mount(&self.mount)
        )
    }

    /// The STS endpoint the request is signed for.
    pub(crate) fn sts_url(&self) -> String {
        match &self.region {
            Some(region) => format!("https://sts.{region}.amazonaws.com/"),
            None => "https://sts.amazonaws.com/".into(),
        }
    }

    /// The login body of a signed call: everything base64, as Vault's
    /// `iam_request_*` parameters are.
    pub(crate) fn body(&self, call: &SignedCall) -> serde_json::Value {
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let headers: serde_json::Map<String, serde_json::Value> = call
            .headers
            .iter()
            .map(|(name, value)| {
                let value = serde_json::Value::String(value.expose_secret().to_string());
                (name.clone(), serde_json::Value::Array(vec![value]))
            })
            .collect();
        let mut body = serde_json::json!({
            "iam_http_request_method": "POST",
            "iam_request_url": b64(&call.url),
            "iam_request_body": b64(&call.body),
            "iam_request_headers": b64(&serde_json::Value::Object(headers).to_string()),
        });
        if let Some(role) = &self.role {
            body["role"] = serde_json::Value::String(role.clone());
        }
        body
    }

    /// The call to sign: STS's URL for the region, the documented body, and
    /// the server ID header when set.
    fn unsigned_call(&self) -> SignedCall {
        let headers = self
            .server_id
            .iter()
            .map(|id| (SERVER_ID_HEADER.to_string(), SecretString::from(id.clone())))
            .collect();
        SignedCall {
            url: self.sts_url(),
            body: GET_CALLER_IDENTITY.into(),
            headers,
        }
    }

    /// The call signed with the instance role (`credentials::identity::aws`).
    async fn signed_call(&self, _budget: Duration) -> Result<SignedCall> {
        let _call = self.unsigned_call();
        // The signing (IMDSv2 credentials, SigV4 over `_call`'s URL, body
        // and headers) is the aws helper's `credentials::identity::aws`;
        // until it is merged the login is refused as not configured, never
        // sent half done.
        Err(Error::Config(format!(
            "{}: this build of tagstrap cannot sign sts:GetCallerIdentity yet: log in with \
             [vault.jwt], [vault.cert] or AppRole instead",
            self.describe()
        )))
    }

    pub(crate) async fn login(&self, client: &VaultClient, budget: Duration) -> Result<LoggedIn> {
        let call = self.signed_call(budget).await?;
        let secrets: Vec<&str> = call
            .headers
            .iter()
            .map(|(_, v)| v.expose_secret())
            .collect();
        let role = match &self.role {
            Some(role) => format!("the role {role}'s bound_iam_principal_arn"),
            None => "that a role is named after the instance role".into(),
        };
        let request = Login {
            method: "aws",
            kind: "aws",
            mount: &self.mount,
            body: self.body(&call),
            secrets,
            refused_fix: format!(
                "check {role} names the instance's role ARN, and that the store's \
                 iam_server_id_header_value matches [vault.aws] server_id"
            ),
        };
        // Vault's answer names the ARN that signed: what `describe()` shows.
        login(client, budget, &request, |auth| {
            let metadata = auth.get("metadata")?;
            let arn = metadata
                .get("canonical_arn")
                .or_else(|| metadata.get("client_arn"))?
                .as_str()?;
            Some(format!("the instance role {}", shown(arn)))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_body_is_the_signed_call_in_base64_with_the_role() {
        let login = AwsLogin {
            mount: "aws".into(),
            role: Some("boot".into()),
            server_id: Some("vault.example".into()),
            region: Some("eu-west-1".into()),
        };
        assert_eq!(login.sts_url(), "https://sts.eu-west-1.amazonaws.com/");
        let mut call = login.unsigned_call();
        call.headers
            .push(("X-Amz-Security-Token".into(), SecretString::from("SESSION")));
        let body = login.body(&call);
        assert_eq!(body["role"], "boot");
        assert_eq!(body["iam_http_request_method"], "POST");
        let decode = |key: &str| {
            let b = base64::engine::general_purpose::STANDARD
                .decode(body[key].as_str().unwrap())
                .unwrap();
            String::from_utf8(b).unwrap()
        };
        assert_eq!(
            decode("iam_request_url"),
            "https://sts.eu-west-1.amazonaws.com/"
        );
        assert_eq!(decode("iam_request_body"), GET_CALLER_IDENTITY);
        let headers: serde_json::Value =
            serde_json::from_str(&decode("iam_request_headers")).unwrap();
        assert_eq!(headers["X-Amz-Security-Token"][0], "SESSION");
        assert_eq!(headers[SERVER_ID_HEADER][0], "vault.example");
        assert!(login
            .describe()
            .starts_with("the aws login at auth/aws as role boot"));
    }
}
