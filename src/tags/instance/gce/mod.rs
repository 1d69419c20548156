//! GCE: metadata keys cannot hold `:`, so the instance attribute
//! `rs_agent-tags` holds the tags in tags-file form (SPEC §1). Every request
//! carries `Metadata-Flavor: Google`, and every answer must carry it back:
//! an answer without it did not come from Google's metadata server.

#[cfg(test)]
mod mock_tests;

use super::{InstanceData, InstanceSource, SourceConfig};
use crate::error::{Error, Result};
use crate::net::metadata::{Answer, MetadataClient};
use crate::net::retry::Failure;
use crate::util::text::shown;
use crate::util::BoxFuture;

/// Whether DMI says Google Compute Engine.
pub(crate) fn recognise(dmi: &crate::tags::detect::Dmi) -> Option<String> {
    use crate::tags::detect::same;
    (same(&dmi.product_name, "Google Compute Engine") || same(&dmi.sys_vendor, "Google"))
        .then(|| format!("product_name {:?}", dmi.product_name))
}

const NAME: &str = "gce";
const FLAVOR: (&str, &str) = ("Metadata-Flavor", "Google");
const INSTANCE_ID_PATH: &str = "computeMetadata/v1/instance/id";
/// The attribute that holds the tags: `gcloud compute instances add-metadata
/// NAME --metadata-from-file rs_agent-tags=tags.txt`.
pub(crate) const TAGS_ATTRIBUTE: &str = "rs_agent-tags";
const ATTRIBUTES_PATH: &str = "computeMetadata/v1/instance/attributes/";

pub(crate) struct Gce {
    client: MetadataClient,
}

impl Gce {
    pub(crate) fn new(config: &SourceConfig) -> Result<Gce> {
        Ok(Gce {
            client: super::client_for(NAME, config)?,
        })
    }

    async fn try_once(&self) -> std::result::Result<InstanceData, Failure> {
        let from = self.client.shown();
        let raw_id = self.read(INSTANCE_ID_PATH).await?;
        // Checked before the tags are read: without an ID this is not GCE's
        // metadata server, and its attributes are not worth a request.
        parse_instance_id(raw_id.as_deref(), from)?;
        let tags = self
            .read(&format!("{ATTRIBUTES_PATH}{TAGS_ATTRIBUTE}"))
            .await?;
        let answer = GceAnswer {
            instance_id: raw_id,
            tags,
        };
        Ok(parse(&answer, from)?)
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

/// What the metadata server answered, as text: everything [`parse`] reads.
#[derive(Debug, Clone, Default)]
pub struct GceAnswer {
    /// `instance/id`; `None` when it answered 404.
    pub instance_id: Option<String>,
    /// The `rs_agent-tags` attribute (tags-file text); `None` when the
    /// instance has none (404).
    pub tags: Option<String>,
}

/// The `instance/id` answer (`None`: 404), trimmed. A server without one is
/// not GCE's metadata server (exit 69).
pub(crate) fn parse_instance_id(text: Option<&str>, from: &str) -> Result<String> {
    super::required_instance_id(NAME, text, from, INSTANCE_ID_PATH, "GCE's metadata server")
}

/// The metadata server's answers → the instance ID and the `rs_agent:` tags
/// of the attribute (other keys in it are dropped), or the error the source
/// returns: the attribute is a tags file, refused as one (exit 65, with its
/// line). `from` is where they were read, as shown. Pure: no I/O.
pub fn parse(answer: &GceAnswer, from: &str) -> Result<InstanceData> {
    let instance_id = parse_instance_id(answer.instance_id.as_deref(), from)?;
    let tags = match &answer.tags {
        None => {
            tracing::info!(
                "the instance has no {TAGS_ATTRIBUTE} metadata attribute: no gce instance tags"
            );
            Vec::new()
        }
        Some(text) => super::tags_file_tags(NAME, text)?,
    };
    Ok(InstanceData {
        instance_id: Some(instance_id),
        tags,
        from: shown(from),
        ..InstanceData::default()
    })
}

impl InstanceSource for Gce {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch(&self) -> BoxFuture<'_, Result<InstanceData>> {
        Box::pin(super::read_instance(&self.client, || self.try_once()))
    }
}
