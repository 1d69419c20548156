//! The AWS identity: the instance role's temporary credentials from IMDSv2,
//! the region, and what the stores need to use them.
//!
//! IMDS hands the role's credentials out at
//! `meta-data/iam/security-credentials/ROLE` (the listing names the role;
//! 404 there means no instance profile is attached) and rotates them well
//! before they expire. They are kept for the run and read again when they
//! are within [`REFRESH_BEFORE`] of their `Expiration`, and once more when a
//! store answers `ExpiredToken` (a clock that is off, or a rotation just
//! missed). Keys and the session token are `SecretString` until they go into
//! a signature or a header.
//!
//! - [`sign`]: SigV4 with the `aws-sigv4` crate, and Vault's IAM login
//!   payload (a signed `sts:GetCallerIdentity`).
//! - [`error`]: what an AWS error answer means, by its type, never by its
//!   status alone.
//! - [`api`]: one signed JSON 1.1 call (Secrets Manager, SSM) with the
//!   retries of SPEC §6 and the refresh on `ExpiredToken`.

pub(crate) mod api;
pub(crate) mod error;
pub(crate) mod sign;

#[cfg(test)]
mod mock_tests;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result};
use crate::net::metadata::{Answer, MetadataClient};
use crate::net::retry::Failure;
use crate::tags::instance::aws::{endpoint_off, session, token_header, Session};
use crate::util::text::{forbidden_char, shown};

/// Credentials this close to their `Expiration` are read again before use:
/// IMDS has new ones at least five minutes before the old ones expire, and
/// a request signed now may still be retried for a while.
pub(crate) const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

pub(crate) const CREDENTIALS_PATH: &str = "latest/meta-data/iam/security-credentials/";
const INFO_PATH: &str = "latest/meta-data/iam/info";
const REGION_PATH: &str = "latest/meta-data/placement/region";

/// The instance role's temporary credentials. `Debug` shows none of them
/// (`SecretString` redacts itself).
#[derive(Debug)]
pub(crate) struct RoleCredentials {
    /// The role's name, as IMDS lists it.
    pub(crate) role: String,
    pub(crate) access_key_id: SecretString,
    pub(crate) secret_access_key: SecretString,
    pub(crate) session_token: SecretString,
    /// When they stop working; `None` when IMDS did not say.
    pub(crate) expiration: Option<SystemTime>,
}

impl RoleCredentials {
    /// Whether they should be read again before use, at `now`.
    pub(crate) fn near_expiry(&self, now: SystemTime) -> bool {
        self.expiration.is_some_and(|at| at <= now + REFRESH_BEFORE)
    }
}

/// The instance's AWS identity, read from IMDS at `--metadata-endpoint` (or
/// `http://169.254.169.254`), directly.
pub(crate) struct AwsIdentity {
    imds: MetadataClient,
    credentials: tokio::sync::Mutex<Option<Arc<RoleCredentials>>>,
    /// The instance profile's ARN (`iam/info`), once read, for `describe`.
    profile: Mutex<Option<String>>,
    /// The role's name, once read, for `describe`.
    role: Mutex<Option<String>>,
}

/// `meta-data/iam/security-credentials/ROLE`, as IMDS writes it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialsAnswer {
    code: Option<String>,
    message: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InfoAnswer {
    instance_profile_arn: Option<String>,
}

impl AwsIdentity {
    pub(crate) fn new(
        endpoint: Option<&Url>,
        tls: &Arc<rustls::ClientConfig>,
        budget: Duration,
    ) -> Result<AwsIdentity> {
        Ok(AwsIdentity {
            imds: super::client("aws", endpoint, tls, budget)?,
            credentials: tokio::sync::Mutex::new(None),
            profile: Mutex::new(None),
            role: Mutex::new(None),
        })
    }

    /// "role R (instance profile arn:…)" once the credentials were read;
    /// "the instance role" before.
    pub(crate) fn describe(&self) -> String {
        let role = self.role.lock().expect("role lock").clone();
        let profile = self.profile.lock().expect("profile lock").clone();
        match (role, profile) {
            (Some(role), Some(profile)) => {
                format!(
                    "role {} (instance profile {})",
                    shown(&role),
                    shown(&profile)
                )
            }
            (Some(role), None) => format!("role {}", shown(&role)),
            _ => "the instance role".to_string(),
        }
    }

    /// "the instance role reader" once known, "the instance role" before.
    pub(crate) fn role_name(&self) -> String {
        match self.role.lock().expect("role lock").as_deref() {
            Some(role) => format!("the instance role {}", shown(role)),
            None => "the instance role".to_string(),
        }
    }

    /// The role's credentials: those already read unless they near their
    /// expiry, or `refresh` asks for new ones (after `ExpiredToken`).
    pub(crate) async fn credentials(&self, refresh: bool) -> Result<Arc<RoleCredentials>> {
        let mut cached = self.credentials.lock().await;
        if let Some(c) = cached.as_ref() {
            if !refresh && !c.near_expiry(SystemTime::now()) {
                return Ok(c.clone());
            }
        }
        let (read, _tries) = self.imds.read(|| self.read_credentials()).await?;
        if read.near_expiry(SystemTime::now()) {
            tracing::warn!(
                "{} handed out credentials for role {} that expire within {} minutes: using \
                 them; is the instance's clock right?",
                self.imds.describe(),
                shown(&read.role),
                REFRESH_BEFORE.as_secs() / 60
            );
        }
        *self.role.lock().expect("role lock") = Some(read.role.clone());
        let read = Arc::new(read);
        *cached = Some(read.clone());
        Ok(read)
    }

    /// `placement/region`.
    pub(crate) async fn region(&self) -> Result<String> {
        let (region, _tries) = self
            .imds
            .read(|| async {
                let token = self.token().await?;
                let answer = self.get(REGION_PATH, &token).await?;
                if answer.status != 200 {
                    return Err(self.imds.unexpected(&answer));
                }
                let text = self.imds.text(&answer)?;
                let region = text.trim();
                if !is_region(region) {
                    return Err(Failure::Permanent(Error::Unavailable(format!(
                        "{} answered {:?} for {REGION_PATH}, which is no AWS region: set the \
                         store's region in its config section",
                        self.imds.describe(),
                        shown(region)
                    ))));
                }
                Ok(region.to_string())
            })
            .await?;
        Ok(region)
    }

    /// One try: a session token, the role's name, its credentials, and the
    /// instance profile (for `describe`; its absence is no failure).
    async fn read_credentials(&self) -> std::result::Result<RoleCredentials, Failure> {
        let token = self.token().await?;
        let listing = self.get(CREDENTIALS_PATH, &token).await?;
        match listing.status {
            200 => {}
            404 => return Err(Failure::Permanent(self.no_role())),
            _ => return Err(self.imds.unexpected(&listing)),
        }
        let text = self.imds.text(&listing)?;
        let Some(role) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
            return Err(Failure::Permanent(self.no_role()));
        };
        let role = role.to_string();
        let url = self.imds.url(CREDENTIALS_PATH, &[&role], None);
        let answer = self.send(Method::GET, url, &token).await?;
        match answer.status {
            200 => {}
            // Detached between the listing and this read.
            404 => return Err(Failure::Permanent(self.no_role())),
            _ => return Err(self.imds.unexpected(&answer)),
        }
        let credentials = parse_credentials(&role, &answer.body, &self.imds.describe())?;
        let info = self.get(INFO_PATH, &token).await?;
        if info.status == 200 {
            if let Ok(InfoAnswer {
                instance_profile_arn: Some(arn),
            }) = serde_json::from_slice(&info.body)
            {
                *self.profile.lock().expect("profile lock") = Some(arn);
            }
        }
        Ok(credentials)
    }

    /// The error when no role is attached: 77, with the command that
    /// attaches one.
    fn no_role(&self) -> Error {
        Error::Refused(format!(
            "the instance has no IAM role: {} answered 404 for {CREDENTIALS_PATH}, so there are \
             no credentials to open the store with. Attach an instance profile whose role may \
             read the secrets: `aws ec2 associate-iam-instance-profile --instance-id ID \
             --iam-instance-profile Name=PROFILE` (or IamInstanceProfile in the launch template)",
            self.imds.describe()
        ))
    }

    /// A session token (`None` from an EC2-compatible service without
    /// IMDSv2, which answers the PUT 404 or 405).
    async fn token(&self) -> std::result::Result<Option<SecretString>, Failure> {
        match session(&self.imds).await? {
            Session::Token(token) => Ok(Some(token)),
            Session::NoTokens => Ok(None),
            Session::EndpointOff => {
                Err(Failure::Permanent(Error::Refused(endpoint_off(&self.imds))))
            }
        }
    }

    async fn get(
        &self,
        path: &str,
        token: &Option<SecretString>,
    ) -> std::result::Result<Answer, Failure> {
        let url = self.imds.url(path, &[], None);
        self.send(Method::GET, url, token).await
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        token: &Option<SecretString>,
    ) -> std::result::Result<Answer, Failure> {
        self.imds.send(method, url, &token_header(token)).await
    }
}

/// `security-credentials/ROLE`'s JSON → the credentials, or the error. A
/// `Code` other than `Success` is IMDS saying it could not get them (the
/// role's trust policy, say): 77, with IMDS's message. Pure.
fn parse_credentials(
    role: &str,
    body: &[u8],
    by: &str,
) -> std::result::Result<RoleCredentials, Failure> {
    let bad = |why: &str| {
        Failure::Permanent(Error::Unavailable(format!(
            "{by} sent credentials for role {} that {why}: is --metadata-endpoint an EC2 \
             metadata service?",
            shown(role)
        )))
    };
    let answer: CredentialsAnswer =
        serde_json::from_slice(body).map_err(|_| bad("are not the JSON IMDS writes"))?;
    match answer.code.as_deref() {
        Some("Success") => {}
        code => {
            return Err(Failure::Permanent(Error::Refused(format!(
                "{by} could not hand out credentials for role {}: {} ({}). Check that the \
                 role's trust policy lets ec2.amazonaws.com assume it \
                 (sts:AssumeRole), and that the instance profile holds that role",
                shown(role),
                shown(code.unwrap_or("no Code")),
                shown(answer.message.as_deref().unwrap_or("no message"))
            ))))
        }
    }
    let secret = |value: Option<String>, field: &str| {
        let value = value.filter(|v| !v.is_empty() && forbidden_char(v).is_none());
        value
            .map(SecretString::from)
            .ok_or_else(|| bad(&format!("have no usable {field}")))
    };
    let expiration = match answer.expiration.as_deref() {
        None => None,
        Some(text) => Some(
            humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
                .map_err(|_| bad("have an Expiration that is no RFC 3339 time"))?,
        ),
    };
    Ok(RoleCredentials {
        role: role.to_string(),
        access_key_id: secret(answer.access_key_id, "AccessKeyId")?,
        secret_access_key: secret(answer.secret_access_key, "SecretAccessKey")?,
        session_token: secret(answer.token, "Token")?,
        expiration,
    })
}

/// Whether `text` looks like a region name (`eu-west-1`, `us-gov-east-1`,
/// `cn-north-1`): it goes into a host name and a signature.
pub(crate) fn is_region(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text.contains('-')
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// The DNS suffix of a region's endpoints: `amazonaws.com.cn` in China.
pub(crate) fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// A service's default endpoint in a region, e.g.
/// `https://ssm.eu-west-1.amazonaws.com`.
pub(crate) fn default_endpoint(service: &str, region: &str) -> Url {
    Url::parse(&format!(
        "https://{service}.{region}.{}/",
        dns_suffix(region)
    ))
    .expect("a checked region makes a valid host")
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn credentials_are_parsed_and_a_failed_code_is_refused_without_values() {
        let good = br#"{"Code":"Success","LastUpdated":"2026-12-01T17:00:00Z","Type":"AWS-HMAC",
            "AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"sekrit","Token":"tok",
            "Expiration":"2026-12-01T23:00:00Z"}"#;
        let c = parse_credentials("r", good, "imds").unwrap();
        assert_eq!(c.access_key_id.expose_secret(), "ASIAEXAMPLE");
        assert!(c.expiration.is_some());
        assert!(!format!("{c:?}").contains("sekrit"));
        let at = humantime::parse_rfc3339("2026-12-01T22:56:00Z").unwrap();
        assert!(c.near_expiry(at));
        let early = humantime::parse_rfc3339("2026-12-01T22:54:00Z").unwrap();
        assert!(!c.near_expiry(early));

        let failed = br#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"denied"}"#;
        let Err(Failure::Permanent(e)) = parse_credentials("r", failed, "imds") else {
            panic!()
        };
        assert_eq!(e.exit_code(), 77);
        assert!(e.message().contains("AssumeRoleUnauthorizedAccess"), "{e}");
        assert!(e.message().contains("trust policy"), "{e}");

        let no_token = br#"{"Code":"Success","AccessKeyId":"A","SecretAccessKey":"sekrit"}"#;
        let Err(Failure::Permanent(e)) = parse_credentials("r", no_token, "imds") else {
            panic!()
        };
        assert_eq!(e.exit_code(), 69);
        assert!(!e.message().contains("sekrit"));
    }

    #[test]
    fn regions_and_endpoints() {
        for good in ["eu-west-1", "us-gov-east-1", "cn-north-1"] {
            assert!(is_region(good), "{good}");
        }
        for bad in ["", "eu_west", "EU-WEST-1", "x.evil.com/-1", "-a", "a-"] {
            assert!(!is_region(bad), "{bad}");
        }
        assert_eq!(
            default_endpoint("ssm", "eu-west-1").as_str(),
            "https://ssm.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            default_endpoint("secretsmanager", "cn-north-1").as_str(),
            "https://secretsmanager.cn-north-1.amazonaws.com.cn/"
        );
    }
}

/// What the AWS stores' mock tests share: moto with authentication on, an
/// IMDS fake handing out a moto role's credentials, and the context that
/// opens a store against them.
#[cfg(test)]
pub(crate) mod test_support {
    use std::time::Duration;

    use testkit::metadata::{AwsRoleSet, Cloud, FakeMetadata};
    use testkit::Moto;
    use url::Url;

    use crate::credentials::open::OpenContext;

    /// The IMDS fake for `role` of `moto`, serving `sets` (by default the
    /// role's first credentials, fresh).
    pub(crate) fn imds(moto: &Moto, role: &str, sets: Option<Vec<AwsRoleSet>>) -> FakeMetadata {
        let made = moto.role(role);
        let sets = sets.unwrap_or_else(|| vec![AwsRoleSet::fresh(made.credentials[0].clone())]);
        FakeMetadata::builder(Cloud::Aws)
            .aws_role(role, &made.instance_profile_arn, sets)
            .start()
    }

    /// Opens a store with `open` against `imds`, with a short deadline.
    pub(crate) fn opened<S>(
        imds: &FakeMetadata,
        settings: &S,
        open: fn(
            &S,
            &OpenContext<'_>,
        ) -> crate::error::Result<Box<dyn crate::credentials::CredentialStore>>,
    ) -> Box<dyn crate::credentials::CredentialStore> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = Url::parse(&imds.url()).unwrap();
        let context = OpenContext {
            extra: &[],
            budget: Duration::from_secs(20),
            metadata_endpoint: Some(&url),
        };
        open(settings, &context).unwrap()
    }
}
