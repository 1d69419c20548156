//! Apache CloudStack: the virtual router serves EC2-shaped metadata
//! (`latest/meta-data/instance-id`, …) and the instance's user-data
//! (`latest/user-data`). CloudStack has no instance tags, so the tags travel
//! in the user-data as its MIME part of type `text/x-tagstrap-tags`
//! (`user_data.rs`), beside the `text/x-shellscript` part that starts
//! tagstrap; the instance ID is the metadata's `instance-id`.
//!
//! Where it is read: `--metadata-endpoint`, else the virtual router found as
//! cloud-init finds it ([`router`]), on port 80. Finding the router is
//! retried like a request until the deadline: at boot the DHCP lease may not
//! be written yet.
//!
//! Imports: the instance layer (`super`), the tags-file parser, the toolkit
//! (`net`, `util`); nothing above `tags`.

pub mod router;
pub(crate) mod user_data;

#[cfg(test)]
mod mock_tests;

use std::net::SocketAddr;
use std::time::Instant;

use url::Url;

use super::{InstanceData, InstanceSource, SourceConfig};
use crate::error::Result;
use crate::net::metadata::{Answer, MetadataClient, LINK_LOCAL_ENDPOINT};
use crate::net::retry::{self, Failure, Tries};
use crate::util::text::shown;
use crate::util::BoxFuture;
use router::RouterSearch;
use user_data::TagsPart;

/// Whether DMI says CloudStack: its product name starts with "CloudStack"
/// ("CloudStack KVM Hypervisor"), as ds-identify's `dscheck_CloudStack` has
/// it (case-sensitive, as there).
pub(crate) fn recognise(dmi: &crate::tags::detect::Dmi) -> Option<String> {
    dmi.product_name
        .starts_with("CloudStack")
        .then(|| format!("product_name {:?}", dmi.product_name))
}

const NAME: &str = "cloudstack";
pub(crate) const INSTANCE_ID_PATH: &str = "latest/meta-data/instance-id";
pub(crate) const USER_DATA_PATH: &str = "latest/user-data";

pub(crate) struct CloudStack {
    place: Place,
    config: SourceConfig,
}

enum Place {
    /// `--metadata-endpoint`.
    Named(MetadataClient),
    /// The virtual router, found at fetch time.
    Search(RouterSearch),
}

impl CloudStack {
    pub(crate) fn new(config: &SourceConfig) -> Result<CloudStack> {
        CloudStack::with_search(config, RouterSearch::default())
    }

    /// With another search for the router than the system's (tests).
    pub(crate) fn with_search(config: &SourceConfig, search: RouterSearch) -> Result<CloudStack> {
        let place = match &config.endpoint {
            Some(_) => Place::Named(super::client_for(NAME, config)?),
            None => Place::Search(search),
        };
        Ok(CloudStack {
            place,
            config: config.clone(),
        })
    }

    /// Finds the router (retried), then reads it with the time left; the
    /// tries of both are counted.
    async fn read_router(&self, search: &RouterSearch) -> Result<InstanceData> {
        let start = Instant::now();
        let mut found_in = Tries::default();
        let found = retry::retry(
            "the cloudstack virtual router",
            self.config.deadline,
            &mut found_in,
            |_| async { search.find().await.map_err(Failure::network_down) },
        )
        .await?;
        tracing::info!(
            "found the CloudStack virtual router {} by {}",
            found.address,
            found.how
        );
        let url = Url::parse(&format!(
            "http://{}/",
            SocketAddr::new(found.address, search.port)
        ))
        .expect("an address and a port make a URL");
        let client = MetadataClient::new(
            NAME,
            Some(&url),
            LINK_LOCAL_ENDPOINT,
            &self.config.tls,
            self.config.deadline.saturating_sub(start.elapsed()),
        )?;
        let mut data = read(&client).await?;
        data.tries.tries += found_in.tries.saturating_sub(1);
        data.tries.seconds = start.elapsed().as_secs_f64();
        Ok(data)
    }
}

/// The instance ID and the user-data, retried until the client's deadline.
async fn read(client: &MetadataClient) -> Result<InstanceData> {
    super::read_instance(client, || async {
        let instance_id = match get(client, INSTANCE_ID_PATH).await? {
            Some(answer) => Some(client.text(&answer)?),
            None => None,
        };
        // Checked before the user-data is read: without an ID this is no
        // CloudStack router.
        parse_instance_id(instance_id.as_deref(), client.shown())?;
        let answer = CloudStackAnswer {
            instance_id,
            user_data: get(client, USER_DATA_PATH).await?.map(|a| a.body),
        };
        Ok(parse(&answer, client.shown())?)
    })
    .await
}

/// GET `path`: `Some(answer)` on 200, `None` on 404.
async fn get(client: &MetadataClient, path: &str) -> std::result::Result<Option<Answer>, Failure> {
    let answer = client.get(client.url(path, &[], None), &[]).await?;
    match answer.status {
        200 => Ok(Some(answer)),
        404 => Ok(None),
        _ => Err(client.unexpected(&answer)),
    }
}

/// What the router answered: everything [`parse`] reads. The source fills
/// it from its requests; a fuzz target fills it from arbitrary bytes.
#[derive(Debug, Clone, Default)]
pub struct CloudStackAnswer {
    /// `latest/meta-data/instance-id`; `None` when it answered 404.
    pub instance_id: Option<String>,
    /// `latest/user-data` as served; `None` when it answered 404 (the
    /// instance was given none).
    pub user_data: Option<Vec<u8>>,
}

/// The `instance-id` answer (`None`: 404), trimmed. A router without one is
/// no CloudStack metadata service (exit 69).
pub(crate) fn parse_instance_id(text: Option<&str>, from: &str) -> Result<String> {
    super::required_instance_id(
        NAME,
        text,
        from,
        INSTANCE_ID_PATH,
        "a CloudStack virtual router",
    )
}

/// The router's answers → the instance ID and the `rs_agent:` tags of the
/// user-data's tags part (other keys in it are dropped), or the error the
/// source returns: the part is a tags file, refused as one (exit 65, with
/// its line), and a user-data the tags-part reader refuses is 65 too.
/// `from` is where they were read, as shown. Pure: no I/O.
pub fn parse(answer: &CloudStackAnswer, from: &str) -> Result<InstanceData> {
    let instance_id = parse_instance_id(answer.instance_id.as_deref(), from)?;
    let part = match &answer.user_data {
        None => TagsPart::None(format!(
            "the instance has no user-data ({USER_DATA_PATH}: 404)"
        )),
        Some(body) => user_data::tags_part(body, from)?,
    };
    let tags = match part {
        TagsPart::None(why) => {
            tracing::info!("{why}: no cloudstack instance tags");
            Vec::new()
        }
        TagsPart::Found(text) => super::tags_file_tags(NAME, &text)?,
    };
    Ok(InstanceData {
        instance_id: Some(instance_id),
        tags,
        from: shown(from),
        ..InstanceData::default()
    })
}

impl InstanceSource for CloudStack {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch(&self) -> BoxFuture<'_, Result<InstanceData>> {
        Box::pin(async move {
            match &self.place {
                Place::Named(client) => read(client).await,
                Place::Search(search) => self.read_router(search).await,
            }
        })
    }
}
