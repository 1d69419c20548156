//! The `jwt` login (`[vault.jwt]`): `POST auth/{mount}/login` with
//! `{"role", "jwt"}`, the JWT being one of
//!
//! - `token = "gce"`: the GCE service account's identity token for
//!   `audience`, asked with `format=full` so it carries the project, zone and
//!   instance the role can be bound to;
//! - `token = "azure"`: the Azure managed identity's token for `audience` as
//!   the resource (default `https://management.azure.com/`), of the
//!   user-assigned identity `client_id` when set;
//! - `token = "file"`: a JWT in a private file (`file`), e.g. one a workload
//!   identity agent keeps current.
//!
//! The JWT is a `SecretString` from the metadata answer or the file until it
//! goes into the login's body; the store's error text is shown only when it
//! does not hold it.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{as_role, login, shown_mount, LoggedIn, Login, Metadata};
use crate::credentials::identity::{azure, gce};
use crate::credentials::secret_file;
use crate::credentials::vault::client::VaultClient;
use crate::credentials::vault::config::{defs, login_word, mount_or_default, JwtSettings};
use crate::error::{Class, Error, Result};
use crate::util::setting::Setting;
use crate::util::text::{shown, shown_path};

/// The resource an Azure token is asked for when `audience` is not set:
/// what Azure's own tooling asks for, and what Vault's `azure` docs bind.
pub(crate) const AZURE_DEFAULT_RESOURCE: &str = "https://management.azure.com/";

/// A `jwt` login.
#[derive(Debug, Clone)]
pub struct JwtLogin {
    pub(crate) mount: String,
    /// None: the method's `default_role`.
    pub(crate) role: Option<String>,
    pub(crate) source: JwtSource,
}

/// Where the JWT comes from.
#[derive(Debug, Clone)]
pub(crate) enum JwtSource {
    File(PathBuf),
    Gce {
        audience: String,
        metadata: Metadata,
    },
    Azure {
        resource: String,
        client_id: Option<String>,
        metadata: Metadata,
    },
}

impl JwtLogin {
    /// The login `[vault.jwt]` asks for, checked before anything is sent.
    pub(crate) fn from_settings(s: &JwtSettings, metadata: Metadata) -> Result<JwtLogin> {
        let place = |setting: &Setting| format!("{} in {}", setting.key, s.config.display());
        let bad = |setting: &Setting, why: &str| {
            let place = place(setting);
            let message = format!("{place}: {why}");
            Error::setting(Class::Config, place, message)
        };
        let kind =
            match (s.token.as_deref().map(str::trim), &s.file) {
                (Some(kind), _) => kind.to_ascii_lowercase(),
                // A file named and nothing else: the file it is.
                (None, Some(_)) => "file".into(),
                (None, None) => return Err(bad(
                    &defs::JWT_TOKEN,
                    "the jwt login needs to know where its JWT comes from: set token = \"gce\", \
                     \"azure\" or \"file\" (with file = PATH)",
                )),
            };
        let only_for = |setting: &Setting, value: bool, which: &str| {
            if value {
                Err(bad(
                    setting,
                    &format!("it is for token = {which} only: remove it, or set that token"),
                ))
            } else {
                Ok(())
            }
        };
        let audience = login_word(&s.audience, &defs::JWT_AUDIENCE, &s.config)?;
        let client_id = login_word(&s.client_id, &defs::JWT_CLIENT_ID, &s.config)?;
        let source = match kind.as_str() {
            "file" => {
                only_for(
                    &defs::JWT_AUDIENCE,
                    audience.is_some(),
                    "\"gce\" or \"azure\"",
                )?;
                only_for(&defs::JWT_CLIENT_ID, client_id.is_some(), "\"azure\"")?;
                let file = s.file.clone().ok_or_else(|| {
                    bad(
                        &defs::JWT_FILE,
                        "token = \"file\" needs the file holding the JWT (mode 0600)",
                    )
                })?;
                JwtSource::File(file)
            }
            "gce" => {
                only_for(&defs::JWT_FILE, s.file.is_some(), "\"file\"")?;
                only_for(&defs::JWT_CLIENT_ID, client_id.is_some(), "\"azure\"")?;
                let audience = audience.ok_or_else(|| {
                    bad(
                        &defs::JWT_AUDIENCE,
                        "token = \"gce\" needs the audience the identity token is asked for, \
                         e.g. the store's address or the role's bound_audiences value",
                    )
                })?;
                JwtSource::Gce { audience, metadata }
            }
            "azure" => {
                only_for(&defs::JWT_FILE, s.file.is_some(), "\"file\"")?;
                JwtSource::Azure {
                    resource: audience.unwrap_or_else(|| AZURE_DEFAULT_RESOURCE.into()),
                    client_id,
                    metadata,
                }
            }
            other => {
                return Err(bad(
                    &defs::JWT_TOKEN,
                    &format!(
                        "{:?} is not a JWT source: expected gce, azure or file",
                        shown(other)
                    ),
                ))
            }
        };
        Ok(JwtLogin {
            mount: mount_or_default(&s.mount, &defs::JWT_MOUNT),
            role: login_word(&s.role, &defs::JWT_ROLE, &s.config)?,
            source,
        })
    }

    pub(crate) fn describe(&self) -> String {
        let role = as_role(&self.role);
        let with = match &self.source {
            JwtSource::File(path) => format!("the JWT in {}", shown_path(path)),
            JwtSource::Gce { audience, .. } => {
                format!("the GCE identity token (audience {})", shown(audience))
            }
            JwtSource::Azure {
                resource,
                client_id,
                ..
            } => format!(
                "the Azure managed identity token (resource {}{})",
                shown(resource),
                client_id
                    .as_ref()
                    .map(|c| format!(", client ID {}", shown(c)))
                    .unwrap_or_default()
            ),
        };
        format!(
            "the jwt login at {}{role} with {with}",
            shown_mount(&self.mount)
        )
    }

    /// The JWT, read or asked of the metadata service.
    async fn jwt(&self, budget: Duration) -> Result<SecretString> {
        match &self.source {
            JwtSource::File(path) => {
                let jwt = secret_file::read(
                    path,
                    "the JWT file ([vault.jwt] file)",
                    "write the JWT into it (mode 0600) before tagstrap runs",
                )?;
                if jwt.expose_secret().split('.').count() != 3 {
                    return Err(Error::Input(format!(
                        "the JWT file ([vault.jwt] file): {} does not hold a JWT (three \
                         base64url parts joined by dots): write the token alone into it",
                        shown_path(path)
                    )));
                }
                Ok(jwt)
            }
            JwtSource::Gce { audience, metadata } => {
                let client = metadata.client(gce::CLOUD, budget)?;
                gce::identity_token(&client, audience).await
            }
            JwtSource::Azure {
                resource,
                client_id,
                metadata,
            } => {
                let client = metadata.client(azure::CLOUD, budget)?;
                let token = azure::token(&client, resource, client_id.as_deref()).await?;
                Ok(token.access_token)
            }
        }
    }

    pub(crate) async fn login(&self, client: &VaultClient, budget: Duration) -> Result<LoggedIn> {
        let jwt = self.jwt(budget).await?;
        let mut body = serde_json::json!({ "jwt": jwt.expose_secret() });
        if let Some(role) = &self.role {
            body["role"] = serde_json::Value::String(role.clone());
        }
        let role = match &self.role {
            Some(role) => format!(
                "that the role {role} (auth/{}/role/{role}) is bound to this token's claims",
                self.mount.trim_matches('/')
            ),
            None => "that the method's default_role is bound to this token's claims".into(),
        };
        let request = Login {
            method: "jwt",
            kind: "jwt",
            mount: &self.mount,
            body,
            secrets: vec![jwt.expose_secret()],
            refused_fix: format!(
                "check {role} (bound_audiences, bound_subject, bound_claims), that the token \
                 is current, and that the method's config trusts its signer \
                 (jwt_validation_pubkeys, jwks_url or oidc_discovery_url)"
            ),
        };
        login(client, budget, &request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml_text: &str) -> JwtSettings {
        JwtSettings {
            config: "/etc/tagstrap/config.toml".into(),
            ..toml::from_str(toml_text).unwrap()
        }
    }

    fn metadata() -> Metadata {
        Metadata {
            endpoint: None,
            tls: crate::net::tls::client_config(&[]).unwrap(),
        }
    }

    #[test]
    fn each_source_describes_its_token_and_azure_defaults_its_resource() {
        let login = |text: &str| JwtLogin::from_settings(&settings(text), metadata()).unwrap();
        let gce = login("role = \"boot\"\ntoken = \"GCE\"\naudience = \"https://v\"");
        assert_eq!(
            gce.describe(),
            "the jwt login at auth/jwt as role boot with the GCE identity token (audience https://v)"
        );
        let azure = login("mount = \"/azure-jwt/\"\ntoken = \"azure\"\nclient_id = \"c-1\"");
        assert_eq!(
            azure.describe(),
            "the jwt login at auth/azure-jwt with the Azure managed identity token (resource \
             https://management.azure.com/, client ID c-1)"
        );
        let file = login("file = \"/run/jwt\"");
        assert!(matches!(file.source, JwtSource::File(_)));
        assert_eq!(file.mount, "jwt");
    }

    #[test]
    fn a_setting_of_another_source_is_78_naming_it() {
        for (text, place) in [
            (
                "token = \"file\"\nfile = \"/j\"\naudience = \"a\"",
                "[vault.jwt] audience",
            ),
            (
                "token = \"gce\"\naudience = \"a\"\nclient_id = \"c\"",
                "[vault.jwt] client_id",
            ),
            ("token = \"azure\"\nfile = \"/j\"", "[vault.jwt] file"),
        ] {
            let error = JwtLogin::from_settings(&settings(text), metadata()).unwrap_err();
            assert_eq!(error.exit_code(), 78, "{text}");
            assert!(
                error
                    .message()
                    .starts_with(&format!("{place} in /etc/tagstrap/config.toml: ")),
                "{error}"
            );
        }
    }
}
