//! The first stage: the tags, layer by layer (tags files, the instance's
//! tags, `--tag`), and what the cloud source said when one was read.

use std::sync::Arc;

use crate::cli::SourceChoice;
use crate::error::Result;
use crate::net::tls;
use crate::report::InstanceRead;
use crate::settings::Settings;
use crate::tags::{self, instance, TagSet};

/// The merged tags, and what the cloud source said, when one was read.
pub(crate) struct Collected {
    pub(crate) tags: TagSet,
    pub(crate) instance: Option<InstanceRead>,
    /// Where the tags came from, for messages: files, the instance, `--tag`.
    pub(crate) sources: Vec<String>,
}

/// The extra CA certificates of `--ca-file`, and the TLS settings with them.
pub(crate) fn tls_config(
    settings: &Settings,
) -> Result<(
    Vec<rustls::pki_types::CertificateDer<'static>>,
    Arc<rustls::ClientConfig>,
)> {
    let extra = match &settings.ca_file {
        Some(path) => tls::read_pem_certificates(path, "--ca-file")?,
        None => Vec::new(),
    };
    let tls = tls::client_config(&extra)?;
    Ok((extra, tls))
}

/// Layer 1 (tags files), layer 2 (the instance's tags), layer 3 (`--tag`).
pub(crate) async fn collect_tags(settings: &Settings) -> Result<Collected> {
    let mut set = TagSet::new();
    let mut sources = Vec::new();
    for path in &settings.tags_files {
        if !settings.tags_files_named && !path.exists() {
            tracing::debug!("no image tags file at {}", path.display());
            continue;
        }
        set.layer(tags::file::read(path)?);
        sources.push(path.display().to_string());
    }
    let mut instance = None;
    if let Some((read, tags)) = read_instance(settings).await? {
        set.layer(tags);
        sources.push(format!("{} instance tags", read.source));
        instance = Some(read);
    }
    if let Some(first) = settings.tags.first() {
        sources.push(first.origin.to_string());
    }
    set.layer(settings.tags.iter().cloned());
    Ok(Collected {
        tags: set,
        instance,
        sources,
    })
}

/// The instance's tags from the cloud source the settings choose (none with
/// `--source none`, or when `auto` recognises no cloud).
async fn read_instance(settings: &Settings) -> Result<Option<(InstanceRead, Vec<tags::Tag>)>> {
    if settings.source == SourceChoice::None {
        return Ok(None);
    }
    let config = instance::SourceConfig {
        endpoint: settings.metadata_endpoint.clone(),
        tls: match &settings.metadata_endpoint {
            Some(url) if url.scheme() == "https" => tls_config(settings)?.1,
            // Plain http:// on a link-local address: nothing to verify.
            _ => tls::trusting_nothing()?,
        },
        deadline: settings.deadline,
        named: settings.source != SourceChoice::Auto,
        config_drive: settings.config_drive.clone(),
    };
    let Some(source) = instance::select(settings.source, &settings.dmi_dir, config)? else {
        return Ok(None);
    };
    let data = source.fetch().await?;
    tracing::info!(
        instance_id = data.instance_id.as_deref().unwrap_or(""),
        tags = data.tags.len(),
        tries = data.tries.tries,
        "{} instance: {} rs_agent: tags from {}",
        source.name(),
        data.tags.len(),
        data.from
    );
    let read = InstanceRead {
        source: source.name(),
        instance_id: data.instance_id,
        from: data.from,
        tries: data.tries,
    };
    Ok(Some((read, data.tags)))
}
