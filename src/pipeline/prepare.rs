//! The second stage: the agent tags read, the proxy's login resolved from
//! the store (`credentials::login`), and the proxy environment built from
//! them; then the script's environment and `--write-env`'s file, both made
//! from that environment.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::collect::tls_config;
use crate::credentials::{self, login::resolve_login};
use crate::error::Result;
use crate::proxy::{
    CredentialNames, Proxy, ProxyEnvironment, ProxySource, ScriptEnv, ScriptEnvRule,
};
use crate::settings::Settings;
use crate::stop::{Stage, Stop};
use crate::tags::agent::{AgentTags, Platform, ProxyTags};
use crate::tags::TagSet;
use crate::util::text::shown;

/// Everything `run` needs before the download, resolved.
pub(crate) struct Prepared {
    pub(crate) agent: AgentTags,
    pub(crate) env: ProxyEnvironment,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// The `--ca-file` certificates in `tls`, for a configuration of its own
    /// (`doctor`'s certificate inspection).
    pub(crate) extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// What store resolved the credentials, for `plan`.
    pub(crate) store: Option<String>,
}

/// [`prepare_until`] without a signal to stop it (`plan`, `doctor`).
pub(crate) async fn prepare(settings: &Settings, set: &TagSet) -> Result<Prepared> {
    prepare_until(settings, set, &Stop::never()).await
}

/// After a signal cancelled the credential reads, how long the store gets
/// to end its session (revoke a login's token). The signal may have come
/// because the store hangs; tagstrap must not hang with it.
const CLOSE_AFTER_SIGNAL: Duration = Duration::from_secs(2);

/// The agent tags, the credentials and the proxy environment, with the
/// credential reads cancelled by a signal (`run`).
pub(crate) async fn prepare_until(
    settings: &Settings,
    set: &TagSet,
    stop: &Stop,
) -> Result<Prepared> {
    let agent = AgentTags::from_tags(set, Platform::current())?;
    let (extra, tls) = tls_config(settings)?;
    let (tagged, store) = match &agent.proxy {
        None => (None, None),
        Some(proxy_tags) => {
            let (proxy, store) = tagged_proxy(settings, proxy_tags, &extra, stop).await?;
            (Some(proxy), store)
        }
    };
    let env = ProxyEnvironment::build(tagged, agent.no_proxy.as_ref(), &|name| {
        std::env::var(name).ok()
    })?;
    Ok(Prepared {
        agent,
        env,
        tls,
        extra_roots: extra,
        store,
    })
}

/// The tags' proxy, its login resolved when the tags name one; and the
/// store that resolved it, as `plan` shows it.
async fn tagged_proxy(
    settings: &Settings,
    tags: &ProxyTags,
    extra: &[rustls::pki_types::CertificateDer<'static>],
    stop: &Stop,
) -> Result<(Proxy, Option<String>)> {
    let mut proxy = Proxy {
        url: tags.url.clone(),
        source: ProxySource::Tag(tags.origin.clone()),
        credentials: CredentialNames::default(),
    };
    let Some((user, password)) = &tags.credentials else {
        return Ok((proxy, None));
    };
    let context = credentials::open::OpenContext {
        extra,
        budget: settings.deadline,
        metadata_endpoint: settings.metadata_endpoint.as_ref(),
    };
    let store = credentials::open::open(&settings.store, &context)?;
    let resolved = stop
        .unless(
            Stage::Credentials,
            resolve_login(store.as_ref(), user, password),
        )
        .await;
    // Also after a failure or a signal: a login's token is revoked either way.
    if stop.received().is_some() {
        let _ = tokio::time::timeout(CLOSE_AFTER_SIGNAL, store.close()).await;
    } else {
        store.close().await;
    }
    let login = resolved?;
    // After the reads: a store that opens with the instance's identity
    // names the identity it used (`doctor` shows it).
    let described = store.describe();
    proxy.url.user = Some(login.user);
    proxy.url.password = Some(login.password);
    proxy.credentials = CredentialNames {
        user: Some(login.user_named),
        password: Some(password.to_string()),
    };
    Ok((proxy, Some(described)))
}

/// The script's environment (SPEC §4): tagstrap's own as it is now, by the
/// rule, with the proxy variables of `env`.
pub(crate) fn script_env_of(rule: &ScriptEnvRule, env: &ProxyEnvironment) -> ScriptEnv {
    let script_env = rule.apply(std::env::vars_os(), env.child_env());
    for name in script_env.absent_pass_env() {
        tracing::debug!(
            "pass_env names {}, which is not set: nothing to keep",
            shown(name)
        );
    }
    tracing::debug!("the script's environment: {}", script_env.summary());
    script_env
}

/// `--write-env`: the script's proxy environment, for later boot stages.
pub(crate) fn write_env(path: &Path, env: &ProxyEnvironment) -> Result<()> {
    let text = env.env_file()?;
    crate::state::write_private_named(path, text.expose_secret().as_bytes(), "--write-env")?;
    tracing::info!("wrote the proxy environment to {} (0600)", path.display());
    Ok(())
}
