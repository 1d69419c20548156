//! Azure: IMDS `metadata/instance/compute/tagsList` (a JSON list of
//! `{"name", "value"}`) and `compute/vmId`, with `Metadata: true` and a
//! pinned `api-version`, so a newer IMDS cannot change the shape read here.
//!
//! IMDS answers 410 Gone while it starts (Microsoft: retry for up to 70 s),
//! so 410 is retried here, unlike elsewhere.

#[cfg(test)]
mod mock_tests;

use serde_json::Value;

use super::{describe, instance_tag, is_ours, InstanceData, InstanceSource, SourceConfig};
use crate::error::{Error, Result};
use crate::net::direct::json_kind;
use crate::net::metadata::MetadataClient;
use crate::net::retry::Failure;
use crate::util::text::shown;
use crate::util::BoxFuture;

/// Every Azure VM carries this chassis asset tag (documented by Microsoft and
/// used by cloud-init to recognise Azure).
const AZURE_CHASSIS_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

/// Whether DMI says Azure: its chassis asset tag.
pub(crate) fn recognise(dmi: &crate::tags::detect::Dmi) -> Option<String> {
    (dmi.chassis_asset_tag == AZURE_CHASSIS_ASSET_TAG)
        .then(|| "chassis_asset_tag is Azure's".to_string())
}

const NAME: &str = "azure";
/// The IMDS version whose `compute` shape this reads; `tagsList` exists
/// since 2019-06-04, and 2021-02-01 is served in every Azure region.
pub(crate) const API_VERSION: &str = "2021-02-01";
const HEADER: (&str, &str) = ("Metadata", "true");
const VM_ID_PATH: &str = "metadata/instance/compute/vmId";
const TAGS_PATH: &str = "metadata/instance/compute/tagsList";

pub(crate) struct Azure {
    client: MetadataClient,
}

impl Azure {
    pub(crate) fn new(config: &SourceConfig) -> Result<Azure> {
        Ok(Azure {
            client: super::client_for(NAME, config)?,
        })
    }

    async fn try_once(&self) -> std::result::Result<InstanceData, Failure> {
        let query = format!("api-version={API_VERSION}&format=text");
        let vm_id = self.read(VM_ID_PATH, &query).await?;
        let vm_id = self.client.text(&vm_id)?;
        let list = self
            .read(TAGS_PATH, &format!("api-version={API_VERSION}"))
            .await?;
        let answer = AzureAnswer {
            vm_id,
            tags_list: list.body,
        };
        Ok(parse(&answer, self.client.shown())?)
    }

    async fn read(
        &self,
        path: &str,
        query: &str,
    ) -> std::result::Result<crate::net::metadata::Answer, Failure> {
        let url = self.client.url(path, &[], Some(query));
        let answer = self.client.get(url, &[HEADER]).await?;
        match answer.status {
            200 => Ok(answer),
            410 => Err(Failure::busy(
                format!(
                    "{} answered 410 Gone: IMDS is still starting",
                    self.client.describe()
                ),
                None,
            )),
            400 => Err(Failure::Permanent(Error::Unavailable(format!(
                "{} answered 400 Bad Request to {}{}: IMDS refuses requests without the header \
                 Metadata: true and requests that came through a proxy (X-Forwarded-For)",
                self.client.describe(),
                answer.path,
                answer.said()
            )))),
            _ => Err(self.client.unexpected(&answer)),
        }
    }
}

/// What IMDS answered: everything [`parse`] reads.
#[derive(Debug, Clone, Default)]
pub struct AzureAnswer {
    /// `compute/vmId` as text (`format=text`).
    pub vm_id: String,
    /// The body of `compute/tagsList`: a JSON list of `{"name", "value"}`.
    pub tags_list: Vec<u8>,
}

/// IMDS's answers → the VM ID and the `rs_agent:` tags, or the error the
/// source returns: a `tagsList` that is not JSON, or not a list of
/// `{"name", "value"}` strings, is refused (exit 65) rather than guessed at,
/// and so is a bad key or value. `from` is where they were read, as shown.
/// Pure: no I/O.
pub fn parse(answer: &AzureAnswer, from: &str) -> Result<InstanceData> {
    let service = describe(NAME, from);
    let list: Value = serde_json::from_slice(&answer.tags_list).map_err(|e| {
        Error::Input(format!(
            "{service} sent a tagsList ({TAGS_PATH}) that is not valid JSON ({})",
            shown(&e.to_string())
        ))
    })?;
    let bad = |what: String| {
        Error::Input(format!(
            "{service} sent a tagsList that is not a list of {{\"name\", \"value\"}} strings: {what}"
        ))
    };
    let entries = list
        .as_array()
        .ok_or_else(|| bad(format!("it is {}", json_kind(&list))))?;
    let mut tags = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let field = |name: &str| entry.get(name).and_then(Value::as_str);
        let (Some(key), Some(value)) = (field("name"), field("value")) else {
            return Err(bad(format!(
                "entry {index} is {} without a string name and value",
                json_kind(entry)
            )));
        };
        if is_ours(key) {
            tags.push(instance_tag(NAME, key, value)?);
        }
    }
    Ok(InstanceData {
        instance_id: super::instance_id(Some(&answer.vm_id)),
        tags,
        from: shown(from),
        ..InstanceData::default()
    })
}

impl InstanceSource for Azure {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch(&self) -> BoxFuture<'_, Result<InstanceData>> {
        Box::pin(super::read_instance(&self.client, || self.try_once()))
    }
}
