//! The instance's own cloud identity, asked of the cloud's metadata service
//! (`net::metadata`, at `--metadata-endpoint` or the cloud's default): what
//! lets a store open with no secret on the image (SPEC §2).
//!
//! - [`aws`]: the instance role's temporary credentials (IMDSv2), the region,
//!   and SigV4 signing with them.
//! - [`gce`]: the service account's access token and identity token, and the
//!   project.
//! - [`azure`]: the managed identity's token for a resource.
//!
//! Everything these hand out (keys, session tokens, access tokens, identity
//! JWTs) is a `SecretString` from the moment it is read. The metadata service
//! is reached directly, never through the proxy.
//!
//! Layer: credentials. It may import the toolkit (`net`, `util`) and
//! `error`; the stores and the Vault logins use it.

pub(crate) mod aws;
pub(crate) mod azure;
pub(crate) mod gce;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};
use crate::net::metadata::{MetadataClient, LINK_LOCAL_ENDPOINT};

/// `token` if it can go into an `Authorization` header as it is: visible
/// ASCII, not empty. Checked when read, so that a garbled answer is one
/// clear line, not a request that cannot be built. `from` is the service,
/// as described; the token is never shown.
pub(crate) fn header_safe(token: SecretString, from: &str) -> Result<SecretString> {
    let text = token.expose_secret();
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::Unavailable(format!(
            "{from} sent a token that is empty or holds characters a token cannot have: is it \
             the cloud's metadata service?"
        )));
    }
    Ok(token)
}

/// The client of `cloud`'s metadata service (e.g. [`gce::CLOUD`]): at
/// `endpoint` (`--metadata-endpoint`) or the link-local address, direct,
/// retrying until `deadline`.
pub(crate) fn client(
    cloud: &'static str,
    endpoint: Option<&url::Url>,
    tls: &Arc<rustls::ClientConfig>,
    deadline: Duration,
) -> Result<MetadataClient> {
    Ok(
        MetadataClient::new(cloud, endpoint, LINK_LOCAL_ENDPOINT, tls, deadline)?
            .asked_for(PURPOSE),
    )
}

/// What the metadata service is asked for here, in the line of a read that
/// gives up.
pub(crate) const PURPOSE: &str = "the instance's identity, to open the credential store";
