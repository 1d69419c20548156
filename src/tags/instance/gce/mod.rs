//! GCE: metadata keys cannot hold `:`, so the instance attribute
//! `rs_agent-tags` holds the tags in tags-file form (SPEC §1). Every request
//! carries `Metadata-Flavor: Google`, and every answer must carry it back:
//! an answer without it did not come from Google's metadata server.

#[cfg(test)]
mod mock_tests;

use super::client::{Answer, MetadataClient};
use super::{is_ours, InstanceData, InstanceSource, SourceConfig};
use crate::error::{Error, Result};
use crate::fetch::retry::Failure;
use crate::tags::{file, Origin};
use crate::BoxFuture;

const NAME: &str = "gce";
const FLAVOR: (&str, &str) = ("Metadata-Flavor", "Google");
const INSTANCE_ID_PATH: &str = "computeMetadata/v1/instance/id";
/// The attribute that holds the tags: `gcloud compute instances add-metadata
/// NAME --metadata-from-file rs_agent-tags=tags.txt`.
pub const TAGS_ATTRIBUTE: &str = "rs_agent-tags";
const ATTRIBUTES_PATH: &str = "computeMetadata/v1/instance/attributes/";

pub struct Gce {
    client: MetadataClient,
}

impl Gce {
    pub fn new(config: &SourceConfig) -> Result<Gce> {
        Ok(Gce {
            client: MetadataClient::for_source(NAME, config)?,
        })
    }

    async fn try_once(&self) -> std::result::Result<InstanceData, Failure> {
        let instance_id = match self.read(INSTANCE_ID_PATH).await? {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => {
                return Err(Failure::Permanent(Error::Unavailable(format!(
                    "{} has no instance ID at {INSTANCE_ID_PATH}: is it GCE's metadata server?",
                    self.client.describe()
                ))))
            }
        };
        let path = format!("{ATTRIBUTES_PATH}{TAGS_ATTRIBUTE}");
        let tags = match self.read(&path).await? {
            None => {
                tracing::info!(
                    "the instance has no {TAGS_ATTRIBUTE} metadata attribute: no gce instance tags"
                );
                Vec::new()
            }
            Some(text) => file::parse(&text, |line| Origin::Instance {
                source: NAME,
                line: Some(line),
            })?
            .into_iter()
            .filter(|tag| is_ours(&tag.key))
            .collect(),
        };
        Ok(InstanceData {
            instance_id: Some(instance_id),
            tags,
            from: self.client.shown().to_string(),
            ..InstanceData::default()
        })
    }

    /// GET `path`: `Some(text)` on 200, `None` on 404.
    async fn read(&self, path: &str) -> std::result::Result<Option<String>, Failure> {
        let url = self.client.url(path, &[], None);
        let answer = self.client.get(url, &[FLAVOR]).await?;
        if !answer.header_is(FLAVOR.0, FLAVOR.1) {
            return Err(self.not_google(&answer));
        }
        match answer.status {
            200 => self.client.text(&answer).map(Some),
            404 => Ok(None),
            403 => Err(Failure::Permanent(Error::Refused(format!(
                "{} answered 403 Forbidden to {}{}: the endpoint is disabled for this project or \
                 instance, or the request did not reach it directly",
                self.client.describe(),
                answer.path,
                answer.said()
            )))),
            _ => Err(self.client.unexpected(&answer)),
        }
    }

    fn not_google(&self, answer: &Answer) -> Failure {
        Failure::Permanent(Error::Unavailable(format!(
            "{} answered {} to {} without the header Metadata-Flavor: Google, so it is not GCE's \
             metadata server (a captive portal or a transparent proxy?): not trusting it",
            self.client.describe(),
            answer.status,
            answer.path
        )))
    }
}

impl InstanceSource for Gce {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch(&self) -> BoxFuture<'_, Result<InstanceData>> {
        Box::pin(self.client.read_instance(|| self.try_once()))
    }
}
