//! AWS Secrets Manager (`store = "aws-secrets-manager"`, SPEC §2):
//! `cred:NAME` is `GetSecretValue` of the secret `{prefix}NAME` at its
//! `version_stage` (`AWSCURRENT`), signed with the instance role's
//! credentials (`identity::aws`). The secret string is the credential, or
//! with `field` set, that field of the JSON object it holds. Reached
//! directly: the proxy's password is what it holds.

pub(crate) mod config;
#[cfg(test)]
mod mock_tests;

use secrecy::SecretString;

use self::config::AwsSecretsManagerSettings;
use super::identity::aws::api::{AwsApi, Read, Service};
use super::open::OpenContext;
use super::{CredRef, CredentialStore};
use crate::error::{Error, Result};
use crate::util::BoxFuture;

const SECTION: &str = "aws_secrets_manager";
const SERVICE: Service = Service {
    name: "secretsmanager",
    target: "secretsmanager",
    section: SECTION,
    title: "AWS Secrets Manager",
};

pub(crate) struct SecretsManagerStore {
    api: AwsApi,
    prefix: String,
    field: Option<String>,
    version_stage: String,
}

/// The store, with its settings checked (no request is made until a read).
pub(crate) fn open(
    settings: &AwsSecretsManagerSettings,
    context: &OpenContext<'_>,
) -> Result<Box<dyn CredentialStore>> {
    let api = AwsApi::open(
        SERVICE,
        settings.region.as_deref(),
        settings.endpoint.as_deref(),
        settings.insecure_http,
        &settings.config,
        context,
    )?;
    Ok(Box::new(SecretsManagerStore {
        api,
        prefix: settings.prefix.clone(),
        field: settings.field.clone(),
        version_stage: settings.version_stage.clone(),
    }))
}

/// The field of a JSON secret string (pure). The value is never shown.
fn field_of(text: &str, field: &str, name: &CredRef, id: &str, store: &str) -> Result<String> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        Error::Input(format!(
            "credential {name}: the secret {id} in {store} is not a JSON object, so its field \
             {field:?} ([{SECTION}] field) cannot be read: store JSON, or remove field to take \
             the whole string"
        ))
    })?;
    match json.get(field) {
        Some(serde_json::Value::String(value)) => Ok(value.clone()),
        Some(other) => Err(Error::Input(format!(
            "credential {name}: the field {field:?} of the secret {id} in {store} is {}, not a \
             string: store the secret as a string",
            crate::net::direct::json_kind(other)
        ))),
        None if json.is_object() => Err(Error::NotFound(format!(
            "credential {name}: the secret {id} in {store} has no field {field:?}: add it, or \
             set [{SECTION}] field to the field that holds the secret"
        ))),
        None => Err(Error::Input(format!(
            "credential {name}: the secret {id} in {store} is JSON {}, not an object, so its \
             field {field:?} cannot be read",
            crate::net::direct::json_kind(&json)
        ))),
    }
}

impl SecretsManagerStore {
    fn secret_id(&self, name: &CredRef) -> String {
        format!("{}{}", self.prefix, name.name())
    }

    fn value(&self, name: &CredRef, id: &str, answer: serde_json::Value) -> Result<SecretString> {
        let store = self.describe();
        let text = match answer.get("SecretString") {
            Some(serde_json::Value::String(text)) => text,
            _ if answer.get("SecretBinary").is_some() => {
                return Err(Error::Input(format!(
                    "credential {name}: the secret {id} in {store} holds SecretBinary, not a \
                     secret string: store the password with --secret-string"
                )))
            }
            _ => {
                return Err(Error::Unavailable(format!(
                    "{store} answered GetSecretValue for {id} without a SecretString: is the \
                     endpoint Secrets Manager?"
                )))
            }
        };
        match &self.field {
            None => Ok(SecretString::from(text.clone())),
            Some(field) => field_of(text, field, name, id, &store).map(SecretString::from),
        }
    }

    /// The permission to grant, naming the secret's ARN as far as it is
    /// known (the account is the instance's, which IMDS does not say here).
    fn grant(&self, id: &str) -> String {
        let region = self.api.region().unwrap_or("REGION");
        let partition = partition(region);
        format!(
            "grant {} secretsmanager:GetSecretValue on \
             arn:{partition}:secretsmanager:{region}:ACCOUNT:secret:{id}-* (and kms:Decrypt on \
             the secret's KMS key when it is a customer managed key)",
            self.api.role()
        )
    }
}

/// `aws`, `aws-cn` or `aws-us-gov`: the ARN partition of a region.
pub(crate) fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

impl CredentialStore for SecretsManagerStore {
    fn describe(&self) -> String {
        self.api.describe()
    }

    fn get<'a>(&'a self, name: &'a CredRef) -> BoxFuture<'a, Result<SecretString>> {
        Box::pin(async move {
            let id = self.secret_id(name);
            let body = serde_json::json!({"SecretId": id, "VersionStage": self.version_stage});
            let answer = self
                .api
                .read(Read {
                    operation: "GetSecretValue",
                    body,
                    name,
                    missing: format!("secret {id} at stage {}", self.version_stage),
                    create: format!(
                        "aws secretsmanager create-secret --name {id} --secret-string ..."
                    ),
                    grant: &|| self.grant(&id),
                })
                .await?;
            self.value(name, &id, answer)
        })
    }
}
