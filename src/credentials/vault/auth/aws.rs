//! The `aws` login (`[vault.aws]`), Vault's IAM method: `POST
//! auth/{mount}/login` with `role` and a `sts:GetCallerIdentity` request
//! signed (SigV4) with the instance role's temporary credentials from IMDSv2
//! (`credentials::identity::aws`, which also builds the body). The store
//! sends the signed request to STS itself and learns from the answer which
//! role signed it; the credentials never leave the instance.
//!
//! `server_id` goes into the signed request as `X-Vault-AWS-IAM-Server-ID`
//! (the role's `iam_server_id_header_value`), so a signature made for this
//! store cannot be replayed to another. `region` picks the STS endpoint
//! (`sts.REGION.amazonaws.com`; the global `sts.amazonaws.com` without it).
//!
//! The login body carries the session token and the signature: it is a
//! `SecretString` until it goes into the request, and never logged.

use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;

use super::{as_role, login, shown_mount, LoggedIn, Login, Metadata};
use crate::credentials::identity::aws::sign::vault_iam_login_body;
use crate::credentials::identity::aws::{is_region, AwsIdentity};
use crate::credentials::vault::client::VaultClient;
use crate::credentials::vault::config::{defs, login_word, mount_or_default, AwsSettings};
use crate::error::{Class, Error, Result};
use crate::util::text::shown;

/// An `aws` (IAM) login.
#[derive(Debug, Clone)]
pub struct AwsLogin {
    pub(crate) mount: String,
    /// None: the role named after the signer's role (Vault's default).
    pub(crate) role: Option<String>,
    pub(crate) server_id: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) metadata: Metadata,
}

impl AwsLogin {
    /// The login `[vault.aws]` asks for, checked before anything is sent.
    pub(crate) fn from_settings(s: &AwsSettings, metadata: Metadata) -> Result<AwsLogin> {
        let region = login_word(&s.region, &defs::AWS_REGION, &s.config)?;
        if let Some(bad) = region.as_ref().filter(|r| !is_region(r)) {
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
            metadata,
        })
    }

    pub(crate) fn describe(&self) -> String {
        let role = as_role(&self.role);
        format!(
            "the aws login at {}{role} with the instance role's signed sts:GetCallerIdentity",
            shown_mount(&self.mount)
        )
    }

    pub(crate) async fn login(&self, client: &VaultClient, budget: Duration) -> Result<LoggedIn> {
        let identity =
            AwsIdentity::new(self.metadata.endpoint.as_ref(), &self.metadata.tls, budget)?;
        let credentials = identity.credentials(false).await?;
        let body = vault_iam_login_body(
            &credentials,
            self.role.as_deref(),
            self.region.as_deref(),
            self.server_id.as_deref(),
            SystemTime::now(),
        )?;
        let body: serde_json::Value =
            serde_json::from_str(body.expose_secret()).expect("vault_iam_login_body writes JSON");
        let signed = identity.describe();
        let role = match &self.role {
            Some(role) => format!("that the role {role}'s bound_iam_principal_arn names"),
            None => "that a role of the method is named after and bound to".into(),
        };
        let request = Login {
            method: "aws",
            kind: "aws",
            mount: &self.mount,
            body,
            secrets: vec![
                credentials.access_key_id.expose_secret(),
                credentials.session_token.expose_secret(),
            ],
            refused_fix: format!(
                "check {role} the instance's {signed}, and that the method's \
                 iam_server_id_header_value matches [vault.aws] server_id"
            ),
        };
        let mut logged_in = login(client, budget, &request).await?;
        logged_in.identity = Some(signed);
        Ok(logged_in)
    }
}
