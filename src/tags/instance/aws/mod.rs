//! AWS: instance tags from IMDSv2 (`meta-data/tags/instance`, then one
//! request per `rs_agent:` key), and the instance ID.
//!
//! Each try asks for a fresh session token (`PUT latest/api/token` with its
//! TTL header), so a token never outlives a try. A token `PUT` answered 404
//! or 405 is an EC2-compatible service without IMDSv2, read the v1 way; 403
//! means the instance's metadata endpoint is turned off. Tags in metadata are
//! off by default on AWS: the tags path then answers 404, and the message
//! says how to turn them on.

#[cfg(test)]
mod mock_tests;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};

use super::{instance_tag, is_ours, InstanceData, InstanceSource, SourceConfig};
use crate::error::{Class, Error, Result};
use crate::net::metadata::{Answer, MetadataClient, NO_ANSWER};
use crate::net::retry::Failure;
use crate::util::text::{forbidden_char, shown};
use crate::util::BoxFuture;

/// Whether DMI says EC2, and what said it: Nitro instances in
/// `sys_vendor` (and `bios_vendor`), Xen instances in `product_version`
/// ("4.11.amazon") and the UUID's "ec2" prefix.
pub(crate) fn recognise(dmi: &crate::tags::detect::Dmi) -> Option<String> {
    use crate::tags::detect::same;
    if same(&dmi.sys_vendor, "Amazon EC2") || same(&dmi.bios_vendor, "Amazon EC2") {
        return Some(format!("sys_vendor {:?}", dmi.sys_vendor));
    }
    (dmi.product_version.to_ascii_lowercase().contains("amazon")
        || dmi.product_uuid.to_ascii_lowercase().starts_with("ec2"))
    .then(|| format!("product_version {:?}", dmi.product_version))
}

const NAME: &str = "aws";
/// Lifetime asked for each session token. A try needs it for a few requests;
/// every try asks for a new one.
pub(crate) const TOKEN_TTL_SECONDS: u32 = 300;
const TOKEN_PATH: &str = "latest/api/token";
const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
const INSTANCE_ID_PATH: &str = "latest/meta-data/instance-id";
const TAGS_PATH: &str = "latest/meta-data/tags/instance";

/// What the token PUT gave.
pub(crate) enum Session {
    Token(SecretString),
    /// An EC2-compatible service without IMDSv2 (404 or 405).
    NoTokens,
    /// 403: the instance's metadata endpoint is turned off.
    EndpointOff,
}

pub(crate) struct Aws {
    client: MetadataClient,
    named: bool,
}

impl Aws {
    pub(crate) fn new(config: &SourceConfig) -> Result<Aws> {
        Ok(Aws {
            client: super::client_for(NAME, config)?,
            named: config.named,
        })
    }

    async fn try_once(&self) -> std::result::Result<InstanceData, Failure> {
        let token = match self.token().await? {
            Session::Token(token) => Some(token),
            Session::NoTokens => None,
            Session::EndpointOff => {
                let message = endpoint_off(&self.client);
                return self.not_available((Class::Refused, 403, TOKEN_PATH), message, None);
            }
        };
        let from = self.client.shown();
        let raw_id = self.read(INSTANCE_ID_PATH, &[], &token).await?;
        // Checked before the tags are read: without an ID this is no EC2
        // metadata service, and its tags are not worth a request.
        let instance_id = parse_instance_id(raw_id.as_deref(), from)?;
        let Some(listing) = self.read(TAGS_PATH, &[], &token).await? else {
            let message = format!(
                "{} answered 404 for {TAGS_PATH}: instance tags are not in the instance \
                 metadata (they are off by default). Turn them on with `aws ec2 \
                 modify-instance-metadata-options --instance-id {} \
                 --instance-metadata-tags enabled`, or InstanceMetadataTags=enabled in the \
                 launch template's MetadataOptions",
                self.client.describe(),
                shown(&instance_id)
            );
            let status = (Class::NotFound, 404, TAGS_PATH);
            return self.not_available(status, message, Some(instance_id));
        };
        let mut values = Vec::new();
        for key in listed_keys(&listing).ours {
            // A tag removed between the listing and this read is simply gone.
            let value = self.read(TAGS_PATH, &[key], &token).await?;
            values.push((key.to_string(), value));
        }
        let answer = AwsAnswer {
            instance_id: raw_id,
            listing,
            values,
        };
        Ok(parse(&answer, from)?)
    }

    /// The instance's settings keep its tags from tagstrap (metadata tags
    /// off, or the whole endpoint). Named with `--source aws`, that is an
    /// error; detected, the run goes on with the other layers, and the
    /// warning says how to change the setting.
    /// `status` is the answer that said so: its class, code and path.
    fn not_available(
        &self,
        (class, status, path): (Class, u16, &str),
        message: String,
        instance_id: Option<String>,
    ) -> std::result::Result<InstanceData, Failure> {
        if self.named {
            let by = self.client.describe();
            return Err(Failure::Permanent(Error::status(
                class, status, path, by, message,
            )));
        }
        tracing::warn!("{message}; going on with tags files and --tag only");
        Ok(InstanceData {
            instance_id,
            from: self.client.shown().to_string(),
            ..InstanceData::default()
        })
    }

    /// A session token, if the service gives one.
    async fn token(&self) -> std::result::Result<Session, Failure> {
        session(&self.client).await
    }

    /// GET `path`/`segments` with the token: `Some(text)` on 200, `None` on 404.
    async fn read(
        &self,
        path: &str,
        segments: &[&str],
        token: &Option<SecretString>,
    ) -> std::result::Result<Option<String>, Failure> {
        let url = self.client.url(path, segments, None);
        let answer = self.client.get(url, &token_header(token)).await?;
        match answer.status {
            200 => self.client.text(&answer).map(Some),
            404 => Ok(None),
            401 => Err(self.denied(&answer, token.is_some())),
            _ => Err(self.client.unexpected(&answer)),
        }
    }

    fn denied(&self, answer: &Answer, had_token: bool) -> Failure {
        let why = if had_token {
            "it did not accept the session token it had just issued"
        } else {
            "it requires IMDSv2 session tokens, but did not issue one to the token PUT"
        };
        Failure::Permanent(Error::Refused(format!(
            "{} answered 401 Unauthorized to {}: {why}. Is something between this instance and the \
             metadata service rewriting requests?",
            self.client.describe(),
            answer.path
        )))
    }
}

/// One IMDSv2 session: `PUT latest/api/token` with its TTL header. Shared
/// by the tag source and the instance role's credentials
/// (`credentials::identity::aws`), so both say the same about a hop limit,
/// a turned-off endpoint and a service without tokens.
pub(crate) async fn session(client: &MetadataClient) -> std::result::Result<Session, Failure> {
    let url = client.url(TOKEN_PATH, &[], None);
    let ttl = TOKEN_TTL_SECONDS.to_string();
    let answer = match client.send(Method::PUT, url, &[(TTL_HEADER, &ttl)]).await {
        Ok(answer) => answer,
        // A PUT whose answer never comes back is the classic sign of a
        // hop limit of 1 with tagstrap in a container.
        Err(Failure::Transient(mut t)) if t.reason.contains(NO_ANSWER) => {
            t.reason.push_str(
                " (no answer to the token PUT: if tagstrap runs in a container, the instance's \
                 metadata hop limit must be 2: `aws ec2 modify-instance-metadata-options \
                 --http-put-response-hop-limit 2`)",
            );
            return Err(Failure::Transient(t));
        }
        Err(e) => return Err(e),
    };
    match answer.status {
        200 => issued_token(client, &answer).map(Session::Token),
        403 => Ok(Session::EndpointOff),
        404 | 405 => {
            tracing::info!(
                "{} has no IMDSv2 session tokens ({} to the token PUT); reading it without one",
                client.describe(),
                answer.status
            );
            Ok(Session::NoTokens)
        }
        _ => Err(client.unexpected(&answer)),
    }
}

/// The header a request carries with the session token, when there is one.
pub(crate) fn token_header(token: &Option<SecretString>) -> Vec<(&'static str, &str)> {
    token
        .iter()
        .map(|t| (TOKEN_HEADER, t.expose_secret()))
        .collect()
}

/// The session token of a 200 answer to the token PUT. It goes into a
/// header: a token with a hidden character is not one IMDS issued. Shared
/// with the instance role's credentials (`credentials::identity::aws`).
pub(crate) fn issued_token(
    client: &MetadataClient,
    answer: &Answer,
) -> std::result::Result<SecretString, Failure> {
    let token = client.text(answer)?;
    let token = token.trim();
    if token.is_empty() || forbidden_char(token).is_some() {
        return Err(client.unexpected(answer));
    }
    Ok(SecretString::from(token.to_string()))
}

/// What a 403 to the token PUT means, and the command that changes it.
pub(crate) fn endpoint_off(client: &MetadataClient) -> String {
    format!(
        "{} refused the session token request with 403 Forbidden: the instance's metadata \
         endpoint is turned off. Turn it on with `aws ec2 modify-instance-metadata-options \
         --instance-id ID --http-endpoint enabled`",
        client.describe()
    )
}

/// What IMDS answered, as text: everything [`parse`] reads. The source
/// fills it from its requests; a fuzz target fills it from arbitrary bytes.
#[derive(Debug, Clone, Default)]
pub struct AwsAnswer {
    /// `meta-data/instance-id`; `None` when it answered 404.
    pub instance_id: Option<String>,
    /// `meta-data/tags/instance`: one tag key per line.
    pub listing: String,
    /// Each `rs_agent:` key of the listing ([`listed_keys`]) with its value
    /// (`meta-data/tags/instance/KEY`), in the listing's order; `None` for a
    /// key that answered 404 (removed since the listing).
    pub values: Vec<(String, Option<String>)>,
}

/// The keys of a `tags/instance` listing, split into tagstrap's and the
/// number of others, which are never fetched: AWS costs one request per
/// key, and another tag's value never reaches a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKeys<'a> {
    pub ours: Vec<&'a str>,
    pub skipped: usize,
}

/// One key per line; blank lines are no key.
pub fn listed_keys(listing: &str) -> ListedKeys<'_> {
    let mut keys = ListedKeys {
        ours: Vec::new(),
        skipped: 0,
    };
    for key in listing.lines().filter(|k| !k.trim().is_empty()) {
        if is_ours(key) {
            keys.ours.push(key);
        } else {
            keys.skipped += 1;
        }
    }
    keys
}

/// The `meta-data/instance-id` answer (`None`: 404), trimmed. A service
/// without one is no EC2 metadata service (exit 69).
pub(crate) fn parse_instance_id(text: Option<&str>, from: &str) -> Result<String> {
    super::required_instance_id(
        NAME,
        text,
        from,
        INSTANCE_ID_PATH,
        "an EC2 metadata service",
    )
}

/// IMDS's answers → the instance ID and the `rs_agent:` tags, or the error
/// the source returns (a bad key or value: exit 65, named by code point).
/// `from` is where they were read, as shown. Pure: no I/O.
pub fn parse(answer: &AwsAnswer, from: &str) -> Result<InstanceData> {
    let instance_id = parse_instance_id(answer.instance_id.as_deref(), from)?;
    let listed = listed_keys(&answer.listing);
    let mut tags = Vec::new();
    for key in &listed.ours {
        let value = answer
            .values
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref());
        let Some(value) = value else {
            tracing::debug!(key = %shown(key), "aws tag listed but gone when read");
            continue;
        };
        tags.push(instance_tag(NAME, key, value)?);
    }
    tracing::debug!(
        read = tags.len(),
        skipped = listed.skipped,
        "aws instance tags: {} rs_agent: tags read, {} others not fetched",
        tags.len(),
        listed.skipped
    );
    Ok(InstanceData {
        instance_id: Some(instance_id),
        tags,
        from: shown(from),
        ..InstanceData::default()
    })
}

impl InstanceSource for Aws {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch(&self) -> BoxFuture<'_, Result<InstanceData>> {
        Box::pin(super::read_instance(&self.client, || self.try_once()))
    }
}
