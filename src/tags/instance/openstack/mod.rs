//! OpenStack: `openstack/latest/meta_data.json`, whose `meta` object holds
//! the instance's metadata key/value pairs and whose `uuid` is the instance
//! ID; read from a config drive when the instance has one (no network
//! needed, as cloud-init prefers), else from the metadata service.
//!
//! Where it is read, in order: `--metadata-endpoint` (an http(s) URL of a
//! metadata service, or `file://` a directory holding a config drive's
//! content); the config drive device `TAGSTRAP_CONFIG_DRIVE` names; a
//! filesystem labelled `config-2` ([`config_drive`]); the metadata service
//! at 169.254.169.254.

pub(crate) mod config_drive;
#[cfg(test)]
mod mock_tests;

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{instance_tag, is_ours, InstanceData, InstanceSource, SourceConfig};
use crate::error::{Error, Result};
use crate::net::direct::json_kind;
use crate::net::metadata::MetadataClient;
use crate::net::retry::Tries;
use crate::util::fs::read_small_text;
use crate::util::text::{shown, shown_path};
use crate::util::BoxFuture;

const OPENSTACK_PRODUCT_NAMES: [&str; 2] = ["OpenStack Nova", "OpenStack Compute"];
/// OpenStack clouds that brand the chassis instead of the product name.
const OPENSTACK_CHASSIS_ASSET_TAGS: [&str; 5] = [
    "OpenStack Nova",
    "OpenStack Compute",
    "OpenTelekomCloud",
    "SAP CCloud VM",
    "HUAWEICLOUD",
];

/// Whether DMI says OpenStack: the product name, the vendor, or a chassis
/// asset tag some OpenStack clouds brand instead.
pub(crate) fn recognise(dmi: &crate::tags::detect::Dmi) -> Option<String> {
    use crate::tags::detect::same;
    if OPENSTACK_PRODUCT_NAMES
        .iter()
        .any(|n| same(&dmi.product_name, n))
        || same(&dmi.sys_vendor, "OpenStack Foundation")
    {
        return Some(format!("product_name {:?}", dmi.product_name));
    }
    OPENSTACK_CHASSIS_ASSET_TAGS
        .iter()
        .any(|n| same(&dmi.chassis_asset_tag, n))
        .then(|| format!("chassis_asset_tag {:?}", dmi.chassis_asset_tag))
}

const NAME: &str = "openstack";
/// The same path on the metadata service and on a config drive.
pub(crate) const META_DATA_PATH: &str = "openstack/latest/meta_data.json";

pub(crate) struct OpenStack {
    place: Place,
}

enum Place {
    /// A metadata service; `search` when no endpoint was given, so a config
    /// drive found at fetch time takes precedence.
    Service {
        client: MetadataClient,
        search: bool,
    },
    /// A directory holding a config drive's content.
    Directory(PathBuf),
    /// A config drive device (or image file) to mount.
    Drive(PathBuf),
}

impl OpenStack {
    pub(crate) fn new(config: &SourceConfig) -> Result<OpenStack> {
        let service = |search| {
            Ok::<_, Error>(Place::Service {
                client: super::client_for(NAME, config)?,
                search,
            })
        };
        let place = match (&config.endpoint, &config.config_drive) {
            (Some(url), _) if url.scheme() == "file" => {
                Place::Directory(url.to_file_path().map_err(|()| {
                    Error::Usage(format!(
                        "--metadata-endpoint {}: not a local directory path",
                        shown(url.as_str())
                    ))
                })?)
            }
            (Some(_), _) => service(false)?,
            (None, Some(device)) => Place::Drive(device.clone()),
            (None, None) => service(true)?,
        };
        Ok(OpenStack { place })
    }

    async fn from_service(client: &MetadataClient) -> Result<InstanceData> {
        let url = client.url(META_DATA_PATH, &[], None);
        super::read_instance(client, || async {
            let answer = client.get(url.clone(), &[]).await?;
            match answer.status {
                200 => Ok(parse_text(&answer.body, client.shown())?),
                _ => Err(client.unexpected(&answer)),
            }
        })
        .await
    }
}

/// Reads `meta_data.json` below a config drive's root.
fn from_directory(root: &Path, place: &str) -> Result<InstanceData> {
    let path = root.join(META_DATA_PATH);
    let text = read_small_text(
        &path,
        crate::net::metadata::MAX_ANSWER_BYTES as u64,
        "OpenStack metadata",
    )?;
    let mut data = parse_text(text.as_bytes(), place)?;
    data.tries = Tries {
        tries: 1,
        seconds: 0.0,
    };
    Ok(data)
}

/// `meta_data.json` as the service or the config drive gave it → what
/// [`parse`] makes of it; text that is not JSON is refused (exit 65).
/// `from` is where it was read, as shown. Pure: no I/O.
pub fn parse_text(body: &[u8], from: &str) -> Result<InstanceData> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        Error::Input(format!(
            "the OpenStack metadata from {} is not valid JSON ({}): is it a metadata service or \
             a config drive?",
            shown(from),
            shown(&e.to_string())
        ))
    })?;
    parse(&json, from)
}

/// `meta_data.json` → the instance ID (`uuid`) and the `meta` pairs. Nova
/// omits `meta` when the instance has none; its values are strings, and any
/// other type is refused (exit 65) rather than guessed at. Keys are shown
/// escaped in messages: a key is anyone's text, and one holding a newline
/// must not start a log line of its own.
pub fn parse(json: &Value, from: &str) -> Result<InstanceData> {
    let bad = |what: String| {
        Error::Input(format!(
            "the OpenStack metadata from {}: {what}",
            shown(from)
        ))
    };
    let object = json
        .as_object()
        .ok_or_else(|| bad(format!("it is {}, not an object", json_kind(json))))?;
    let instance_id = super::instance_id(object.get("uuid").and_then(Value::as_str));
    let mut tags = Vec::new();
    match object.get("meta") {
        None | Some(Value::Null) => {}
        Some(Value::Object(meta)) => {
            for (key, value) in meta.iter().filter(|(key, _)| is_ours(key)) {
                let value = value.as_str().ok_or_else(|| {
                    bad(format!(
                        "meta {} is {}, not a string",
                        shown(key),
                        json_kind(value)
                    ))
                })?;
                tags.push(instance_tag(NAME, key, value)?);
            }
        }
        Some(other) => {
            return Err(bad(format!("meta is {}, not an object", json_kind(other))));
        }
    }
    Ok(InstanceData {
        instance_id,
        tags,
        from: shown(from),
        tries: Tries::default(),
    })
}

impl InstanceSource for OpenStack {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch(&self) -> BoxFuture<'_, Result<InstanceData>> {
        Box::pin(async move {
            match &self.place {
                Place::Directory(root) => {
                    from_directory(root, &format!("file://{}", shown_path(root)))
                }
                Place::Drive(device) => config_drive::read(device, from_directory).await,
                Place::Service { client, search } => {
                    if *search {
                        if let Some(device) = config_drive::find() {
                            tracing::info!(
                                "found the config drive {}; reading it instead of the metadata \
                                 service",
                                shown_path(&device)
                            );
                            return config_drive::read(&device, from_directory).await;
                        }
                    }
                    OpenStack::from_service(client).await
                }
            }
        })
    }
}
