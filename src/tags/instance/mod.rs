//! The instance's own tags, from the cloud's metadata service (SPEC §1,
//! layer 2). Each cloud is one [`InstanceSource`] in its own folder, with its
//! `mock_tests` and its DMI rule beside it; [`select`] picks one from
//! `--source`, and a new cloud is a new folder, a [`Cloud`] variant and its
//! arms in [`Cloud::recognise`] and [`Cloud::build`].
//!
//! `auto` detects the cloud from DMI ([`super::detect`]), with no network
//! probe. The metadata service is always reached directly, never through a
//! proxy, whatever the environment says: the services refuse proxied requests
//! (AWS and Azure document it), and the proxy's password may come from tags
//! read here. Every source retries with the same engine and deadline as the
//! rest of the run, since the service may answer late at boot.
//!
//! What a service answers is the instance's tags and ID, written by whoever
//! can tag the instance (or by whatever answers on the link-local address),
//! so each cloud's answer is read by a pure function, `<cloud>::parse`, that
//! the source calls once its requests are done and that the fuzz targets
//! (`fuzz/`, docs/fuzzing.md) call on arbitrary answers. Every message here
//! shows a key, an instance ID, a path or a piece of an answer only through
//! [`shown`]: a hostile answer cannot forge a log line.

pub mod aws;
pub mod azure;
pub mod cloudstack;
pub mod gce;
pub mod openstack;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::detect::{self, Dmi};
use super::Tag;
use crate::error::Result;
use crate::net::retry::{Failure, Tries};
use crate::util::text::shown;
use crate::util::BoxFuture;

/// The clouds tagstrap knows the metadata service of: each is a folder
/// here, and the arms of [`Cloud::recognise`] and [`Cloud::build`] are all
/// that ties one in. Its `--source` name is its clap value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
// `CloudStack` is the product's name, not `Cloud` repeated.
#[allow(clippy::enum_variant_names)]
pub enum Cloud {
    Aws,
    Gce,
    Azure,
    #[value(name = "openstack")]
    OpenStack,
    #[value(name = "cloudstack")]
    CloudStack,
}

impl Cloud {
    pub(crate) const ALL: [Cloud; 5] = [
        Cloud::Aws,
        Cloud::Gce,
        Cloud::Azure,
        Cloud::OpenStack,
        Cloud::CloudStack,
    ];

    /// The `--source` name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gce => "gce",
            Cloud::Azure => "azure",
            Cloud::OpenStack => "openstack",
            Cloud::CloudStack => "cloudstack",
        }
    }

    /// Whether DMI says this cloud, and what said it: each cloud's rule is
    /// in its folder.
    pub(crate) fn recognise(self, dmi: &Dmi) -> Option<String> {
        match self {
            Cloud::Aws => aws::recognise(dmi),
            Cloud::Gce => gce::recognise(dmi),
            Cloud::Azure => azure::recognise(dmi),
            Cloud::OpenStack => openstack::recognise(dmi),
            Cloud::CloudStack => cloudstack::recognise(dmi),
        }
    }

    /// The source that reads this cloud.
    pub(crate) fn build(self, config: SourceConfig) -> Result<Box<dyn InstanceSource>> {
        Ok(match self {
            Cloud::Aws => Box::new(aws::Aws::new(&config)?),
            Cloud::Gce => Box::new(gce::Gce::new(&config)?),
            Cloud::Azure => Box::new(azure::Azure::new(&config)?),
            Cloud::OpenStack => Box::new(openstack::OpenStack::new(&config)?),
            Cloud::CloudStack => Box::new(cloudstack::CloudStack::new(&config)?),
        })
    }
}

impl std::fmt::Display for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `--source` (SPEC §3): `auto`, `none`, or one cloud by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    /// Detect the cloud; with none found, read only files and flags.
    Auto,
    /// Only tags files and --tag.
    None,
    Cloud(Cloud),
}

impl SourceChoice {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SourceChoice::Auto => "auto",
            SourceChoice::None => "none",
            SourceChoice::Cloud(cloud) => cloud.name(),
        }
    }
}

/// The values of `--source`, from [`Cloud::ALL`]: a new cloud is named here
/// without being listed again.
impl clap::ValueEnum for SourceChoice {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: std::sync::LazyLock<Vec<SourceChoice>> = std::sync::LazyLock::new(|| {
            [SourceChoice::Auto, SourceChoice::None]
                .into_iter()
                .chain(Cloud::ALL.into_iter().map(SourceChoice::Cloud))
                .collect()
        });
        &ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let value = clap::builder::PossibleValue::new(self.name());
        Some(match self {
            SourceChoice::Auto => {
                value.help("Detect the cloud; with none found, read only files and flags")
            }
            SourceChoice::None => value.help("Only tags files and --tag"),
            SourceChoice::Cloud(_) => value,
        })
    }
}

pub(crate) use crate::net::metadata::MetadataClient;
use crate::net::metadata::{describe, LINK_LOCAL_ENDPOINT};

/// What a metadata service says about this instance.
#[derive(Debug, Clone, Default)]
pub struct InstanceData {
    /// As the service wrote it (trimmed). Only compared and turned into a
    /// marker's file name, never shown raw: a message shows it through
    /// [`shown`], since nothing stops a service from putting a newline in it.
    pub instance_id: Option<String>,
    pub tags: Vec<Tag>,
    /// Where it was read, as shown to people (already through [`shown`]):
    /// e.g. "http://169.254.169.254" or a config drive.
    pub from: String,
    pub tries: Tries,
}

/// One cloud's metadata service.
pub(crate) trait InstanceSource: Send + Sync {
    /// "aws", "gce", …: shown in tag origins and the report.
    fn name(&self) -> &'static str;

    /// Reads the instance ID and the tags, retrying until the deadline.
    fn fetch(&self) -> BoxFuture<'_, Result<InstanceData>>;
}

/// What every source needs besides its own endpoint rules.
#[derive(Clone)]
pub(crate) struct SourceConfig {
    /// `--metadata-endpoint`: another base URL (or, for OpenStack, a
    /// `file://` config drive root).
    pub(crate) endpoint: Option<Url>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) deadline: Duration,
    /// The source was named (`--source aws`) rather than detected: a cloud
    /// setting that hides the tags is then an error, not a warning.
    pub(crate) named: bool,
    /// `TAGSTRAP_CONFIG_DRIVE`: the OpenStack config drive device or image.
    pub(crate) config_drive: Option<PathBuf>,
}

/// The source `--source` asks for, or `None` when only files and flags apply.
pub(crate) fn select(
    choice: SourceChoice,
    dmi_dir: &std::path::Path,
    config: SourceConfig,
) -> Result<Option<Box<dyn InstanceSource>>> {
    let cloud = match choice {
        SourceChoice::None => return Ok(None),
        SourceChoice::Auto => match detect::detect(&Dmi::read(dmi_dir)) {
            None => {
                tracing::info!(
                    "no cloud detected from DMI ({}); using tags files and --tag only",
                    crate::util::text::shown_path(dmi_dir)
                );
                return Ok(None);
            }
            Some((cloud, evidence)) => {
                tracing::info!(
                    "detected {cloud} from DMI ({}); reading its instance tags",
                    shown(&evidence)
                );
                cloud
            }
        },
        SourceChoice::Cloud(cloud) => cloud,
    };
    cloud.build(config).map(Some)
}

/// The client a source uses: `--metadata-endpoint`, else the standard
/// link-local address.
fn client_for(cloud: &'static str, config: &SourceConfig) -> Result<MetadataClient> {
    MetadataClient::new(
        cloud,
        config.endpoint.as_ref(),
        LINK_LOCAL_ENDPOINT,
        &config.tls,
        config.deadline,
    )
}

/// A source's whole read, retried until the deadline, with the tries noted
/// in what it returns.
async fn read_instance<F, Fut>(client: &MetadataClient, attempt: F) -> Result<InstanceData>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<InstanceData, Failure>>,
{
    let (mut data, tries) = client.read(attempt).await?;
    data.tries = tries;
    Ok(data)
}

/// The instance ID a service must answer at `path` (`text` is `None` on a
/// 404), trimmed. Without one, `from` is not the service it was taken for
/// (exit 69): `is_it` says what that service is ("an EC2 metadata service").
fn required_instance_id(
    cloud: &str,
    text: Option<&str>,
    from: &str,
    path: &str,
    is_it: &str,
) -> Result<String> {
    instance_id(text).ok_or_else(|| {
        crate::error::Error::Unavailable(format!(
            "{} has no instance ID at {path}: is it {is_it}?",
            describe(cloud, from)
        ))
    })
}

/// The instance ID as a service wrote it: trimmed, `None` when empty.
fn instance_id(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

/// A tag read from a cloud, refused (exit 65) like any other bad tag.
fn instance_tag(source: &'static str, key: &str, value: &str) -> Result<Tag> {
    Tag::new(key, value, super::Origin::Instance { source, line: None })
}

/// The `rs_agent:` tags of a tags file a cloud serves (GCE's attribute,
/// CloudStack's user-data part): a bad line is refused naming it, other
/// keys are dropped.
fn tags_file_tags(source: &'static str, text: &str) -> Result<Vec<Tag>> {
    let origin = |line| super::Origin::Instance {
        source,
        line: Some(line),
    };
    Ok(super::file::parse(text, origin)?
        .into_iter()
        .filter(|tag| is_ours(&tag.key))
        .collect())
}

/// Whether a cloud tag key is one tagstrap reads; others are not fetched at
/// all (AWS costs one request per key) and never reach a log line's value.
fn is_ours(key: &str) -> bool {
    key.trim_matches([' ', '\t']).starts_with(super::PREFIX)
}

/// What the `mock_tests` beside each source share: a configuration aimed at
/// a fake metadata service, exactly as `--metadata-endpoint` would give it.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub(crate) fn config(endpoint: &str, named: bool, deadline: Duration) -> SourceConfig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        SourceConfig {
            endpoint: Some(Url::parse(endpoint).expect("a test endpoint")),
            tls: crate::net::tls::client_config(&[]).expect("TLS settings"),
            deadline,
            named,
            config_drive: None,
        }
    }

    /// One expected `(key, value)`, as [`pairs`] gives them.
    pub(crate) fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    /// `(key, value)` of every tag, sorted, for comparisons.
    pub(crate) fn pairs(data: &InstanceData) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = data
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        pairs.sort();
        pairs
    }
}
