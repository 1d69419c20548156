//! AWS Systems Manager Parameter Store (`store = "aws-ssm"`, SPEC §2):
//! `cred:NAME` is `GetParameter` of `{prefix}NAME` (`:{version}` when a
//! version is set) with `WithDecryption`, signed with the instance role's
//! credentials (`identity::aws`). Only a `SecureString` is accepted: a plain
//! `String` parameter holding a password is readable by anyone with
//! `ssm:GetParameter` and shows in the console, so it is refused (65) with
//! the command that re-stores it encrypted. Reached directly.

pub(crate) mod config;
#[cfg(test)]
mod mock_tests;

use secrecy::SecretString;

use self::config::AwsSsmSettings;
use super::aws_secrets_manager::partition;
use super::identity::aws::api::{AwsApi, Read, Service};
use super::open::OpenContext;
use super::{CredRef, CredentialStore};
use crate::error::{Error, Result};
use crate::util::BoxFuture;

const SECTION: &str = "aws_ssm";
const SERVICE: Service = Service {
    name: "ssm",
    target: "AmazonSSM",
    section: SECTION,
    title: "AWS SSM Parameter Store",
};

pub(crate) struct SsmStore {
    api: AwsApi,
    prefix: String,
    version: Option<u64>,
}

/// The store, with its settings checked (no request is made until a read).
pub(crate) fn open(
    settings: &AwsSsmSettings,
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
    Ok(Box::new(SsmStore {
        api,
        prefix: settings.prefix.clone(),
        version: settings.version,
    }))
}

impl SsmStore {
    /// The parameter's name as asked for: `{prefix}NAME[:version]`.
    fn parameter(&self, name: &CredRef) -> String {
        let base = format!("{}{}", self.prefix, name.name());
        match self.version {
            Some(v) => format!("{base}:{v}"),
            None => base,
        }
    }

    fn value(&self, name: &CredRef, id: &str, answer: &serde_json::Value) -> Result<SecretString> {
        let store = self.describe();
        let parameter = answer.get("Parameter");
        let kind = parameter
            .and_then(|p| p.get("Type"))
            .and_then(|t| t.as_str());
        let value = parameter
            .and_then(|p| p.get("Value"))
            .and_then(|v| v.as_str());
        match (kind, value) {
            (Some("SecureString"), Some(value)) => Ok(SecretString::from(value.to_string())),
            (Some(kind @ ("String" | "StringList")), Some(_)) => Err(Error::Input(format!(
                "credential {name}: the parameter {id} in {store} is a plain {kind}, readable \
                 without KMS; a password must be a SecureString: aws ssm put-parameter --name \
                 {id} --type SecureString --overwrite --value ..."
            ))),
            _ => Err(Error::Unavailable(format!(
                "{store} answered GetParameter for {id} without a Parameter's Type and Value: \
                 is the endpoint SSM?"
            ))),
        }
    }

    fn grant(&self, id: &str) -> String {
        let region = self.api.region().unwrap_or("REGION");
        let partition = partition(region);
        let path = id.split(':').next().unwrap_or(id).trim_start_matches('/');
        format!(
            "grant {} ssm:GetParameter on \
             arn:{partition}:ssm:{region}:ACCOUNT:parameter/{path} and kms:Decrypt on the key \
             that encrypts it (alias/aws/ssm unless another was chosen)",
            self.api.role()
        )
    }
}

impl CredentialStore for SsmStore {
    fn describe(&self) -> String {
        self.api.describe()
    }

    fn get<'a>(&'a self, name: &'a CredRef) -> BoxFuture<'a, Result<SecretString>> {
        Box::pin(async move {
            let id = self.parameter(name);
            let body = serde_json::json!({"Name": id, "WithDecryption": true});
            let path = id.split(':').next().unwrap_or(&id);
            let answer = self
                .api
                .read(Read {
                    operation: "GetParameter",
                    body,
                    name,
                    missing: format!("parameter {id}"),
                    create: format!(
                        "aws ssm put-parameter --name {path} --type SecureString --value ..."
                    ),
                    grant: &|| self.grant(&id),
                })
                .await?;
            self.value(name, &id, &answer)
        })
    }
}
