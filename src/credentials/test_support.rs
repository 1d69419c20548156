//! What the tests of the identity-opened stores share: a metadata client
//! at a fake, a one-handler origin, a credential reference, and a store
//! opened from its config section's TOML with the identity at a fake.

use std::path::Path;
use std::time::Duration;

use testkit::{Origin, RecordedRequest, Reply};
use url::Url;

use super::open::OpenContext;
use super::{CredRef, CredentialStore};
use crate::error::Result;
use crate::net::metadata::MetadataClient;

/// A metadata client of `cloud` at `url`, with a 30 s deadline.
pub(crate) fn metadata_client(cloud: &'static str, url: &str) -> MetadataClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = crate::net::tls::client_config(&[]).unwrap();
    let url = Url::parse(url).unwrap();
    MetadataClient::new(cloud, Some(&url), "http://x", &tls, Duration::from_secs(30)).unwrap()
}

/// An origin answering every request with `f`.
pub(crate) fn serve(f: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static) -> Origin {
    Origin::builder(None)
        .handler(std::sync::Arc::new(move |r| Some(f(r))))
        .start()
}

pub(crate) fn name(text: &str) -> CredRef {
    CredRef::parse(text).unwrap().unwrap()
}

/// The store a section (TOML) describes, read with `settings` from a file
/// at /etc/tagstrap/config.toml and opened with `open`, its metadata
/// service at `metadata`.
pub(crate) fn open_section<F, S>(
    section: &str,
    metadata: &str,
    settings: fn(F, &Path) -> S,
    open: fn(&S, &OpenContext<'_>) -> Result<Box<dyn CredentialStore>>,
) -> Result<Box<dyn CredentialStore>>
where
    F: serde::de::DeserializeOwned,
{
    let _ = rustls::crypto::ring::default_provider().install_default();
    let file = toml::from_str(section).unwrap();
    let settings = settings(file, Path::new("/etc/tagstrap/config.toml"));
    let endpoint = Url::parse(metadata).unwrap();
    let context = OpenContext {
        extra: &[],
        budget: Duration::from_secs(30),
        metadata_endpoint: Some(&endpoint),
    };
    open(&settings, &context)
}
