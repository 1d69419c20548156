//! The pipeline, wired: tags → credentials → proxy environment → fetch → run.
//! Each command is one function here; every step it calls lives in its own
//! module. The only I/O decisions made here are the order of the steps and
//! what goes into the report.
//!
//! Layer: commands (with `doctor`). It may import every layer; only `doctor`
//! (for its steps) and `main` import it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use crate::cli::Command;
use crate::credentials;
use crate::error::{Error, Result};
use crate::fetch::{self, FetchOptions};
use crate::net::{self, tls};
use crate::proxy::{
    CredentialNames, Proxy, ProxyEnvironment, ProxySource, ScriptEnv, ScriptEnvRule,
};
use crate::report::{InstanceRead, Report, ReportProxy, ReportScript, ReportScriptEnv, ReportTag};
use crate::run::Interrupted;
use crate::settings::Settings;
use crate::state::StateDir;
use crate::stop::{Stage, Stop};
use crate::tags::agent::{AgentTags, Platform, ScriptTag, UserSpec};
use crate::tags::{self, instance, TagSet};
use crate::util::text::{print_line, shown, shown_path};

/// Parses the command line, runs the command, and returns the process's exit
/// code, after one error line on stderr when it is not the script's own.
pub fn main() -> i32 {
    // Before anything is read: settings hold VAULT_TOKEN.
    let undumpable = crate::util::process::make_undumpable();
    let cli = match crate::cli::parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let args = cli.command.args();
    let settings = Settings::resolve(&args, &|name| std::env::var(name).ok());
    let (format, verbose) = match &settings {
        Ok(s) => (s.log_format, s.verbose),
        Err(_) => (
            args.log_format.unwrap_or(crate::cli::LogFormat::Text),
            args.verbose,
        ),
    };
    crate::logging::init(format, verbose);
    if let Err(e) = undumpable {
        tracing::warn!(
            "cannot mark the process non-dumpable ({e}): a core dump would hold secrets"
        );
    }
    let outcome = settings.and_then(|settings| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::CantCreate(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(dispatch(&cli.command, settings))
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(exit_code = error.exit_code(), "{}", error.message());
            error.exit_code()
        }
    }
}

/// clap's own errors are usage errors (64), printed as one line; help and
/// version go to stdout with 0.
fn clap_exit(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                crate::error::exit::USAGE
            } else {
                0
            }
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("bad command line");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!(
                "tagstrap: error: {} (see tagstrap --help)",
                crate::util::text::shown(first)
            );
            crate::error::exit::USAGE
        }
    }
}

async fn dispatch(command: &Command, settings: Settings) -> Result<i32> {
    // rustls needs a process-wide provider for the parts of the HTTP client
    // that do not take our configuration; ours is ring everywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `pass_env` is part of the config file: a bad entry is refused (78) by
    // every command before anything is read, as a bad key is.
    let script_env = ScriptEnvRule::from_settings(&settings)?;
    match command {
        Command::Run(_) => run(&settings, &script_env).await,
        Command::Plan(_) => plan(&settings, &script_env).await.map(|()| 0),
        Command::Tags(_) => show_tags(&settings).await.map(|()| 0),
        Command::Doctor(_) => crate::doctor::doctor(&settings).await.map(|()| 0),
    }
}

/// The merged tags, and what the cloud source said, when one was read.
pub struct Collected {
    pub tags: TagSet,
    pub instance: Option<InstanceRead>,
    pub sources: Vec<String>,
}

/// The extra CA certificates of `--ca-file`, and the TLS settings with them.
fn tls_config(
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
pub async fn collect_tags(settings: &Settings) -> Result<Collected> {
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
    if settings.source != crate::cli::SourceChoice::None {
        let config = instance::SourceConfig {
            endpoint: settings.metadata_endpoint.clone(),
            tls: match &settings.metadata_endpoint {
                Some(url) if url.scheme() == "https" => tls_config(settings)?.1,
                // Plain http:// on a link-local address: nothing to verify.
                _ => tls::trusting_nothing()?,
            },
            deadline: settings.deadline,
            named: settings.source != crate::cli::SourceChoice::Auto,
            config_drive: settings.config_drive.clone(),
        };
        if let Some(source) = instance::select(settings.source, &settings.dmi_dir, config)? {
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
            set.layer(data.tags.iter().cloned());
            sources.push(format!("{} instance tags", source.name()));
            instance = Some(InstanceRead {
                source: source.name(),
                instance_id: data.instance_id,
                from: data.from,
                tries: data.tries,
            });
        }
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

/// Everything `run` needs before the download, resolved.
pub struct Prepared {
    pub agent: AgentTags,
    pub env: ProxyEnvironment,
    pub tls: Arc<rustls::ClientConfig>,
    /// The `--ca-file` certificates in `tls`, for a configuration of its own
    /// (`doctor`'s certificate inspection).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// What store resolved the credentials, for `plan`.
    pub store: Option<String>,
}

pub async fn prepare(settings: &Settings, set: &TagSet) -> Result<Prepared> {
    prepare_until(settings, set, &Stop::never()).await
}

/// After a signal cancelled the credential reads, how long the store gets
/// to end its session (revoke a login's token). The signal may have come
/// because the store hangs; tagstrap must not hang with it.
const CLOSE_AFTER_SIGNAL: Duration = Duration::from_secs(2);

/// [`prepare`], with the credential reads cancelled by a signal (`run`).
async fn prepare_until(settings: &Settings, set: &TagSet, stop: &Stop) -> Result<Prepared> {
    let agent = AgentTags::from_tags(set, Platform::current())?;
    let (extra, tls) = tls_config(settings)?;

    let mut store_shown = None;
    let tagged = match &agent.proxy {
        None => None,
        Some(proxy_tags) => {
            let mut url = proxy_tags.url.clone();
            let mut names = CredentialNames::default();
            if let Some((user, password)) = &proxy_tags.credentials {
                let store = credentials::open::open(&settings.store, &extra, settings.deadline)?;
                store_shown = Some(store.describe());
                names.password = Some(password.to_string());
                let resolved = stop
                    .unless(Stage::Credentials, async {
                        let user_value = match user {
                            UserSpec::Plain(name) => {
                                names.user = Some(name.clone());
                                name.clone()
                            }
                            UserSpec::Cred(reference) => {
                                names.user = Some(reference.to_string());
                                credentials::resolve(store.as_ref(), reference)
                                    .await?
                                    .expose_secret()
                                    .to_string()
                            }
                        };
                        let password = credentials::resolve(store.as_ref(), password).await?;
                        Ok::<_, Error>((user_value, password))
                    })
                    .await;
                // Also after a failure or a signal: a login's token is
                // revoked either way.
                if stop.received().is_some() {
                    let _ = tokio::time::timeout(CLOSE_AFTER_SIGNAL, store.close()).await;
                } else {
                    store.close().await;
                }
                let (user_value, password_value) = resolved?;
                url.user = Some(user_value);
                url.password = Some(password_value);
            }
            Some(Proxy {
                url,
                source: ProxySource::Tag(proxy_tags.origin.clone()),
                credentials: names,
            })
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
        store: store_shown,
    })
}

pub fn require_script<'a>(agent: &'a AgentTags, collected: &Collected) -> Result<&'a ScriptTag> {
    agent.script.as_ref().ok_or_else(|| {
        let key = match Platform::current() {
            Platform::Unix => crate::tags::agent::MIME_SHELLSCRIPT,
            Platform::Windows => crate::tags::agent::POWERSHELL_URL,
        };
        let read = if collected.sources.is_empty() {
            "no tags were found at all (no tags file, no instance tags, no --tag)".to_string()
        } else {
            format!("read: {}", collected.sources.join(", "))
        };
        Error::Input(format!(
            "no {key} tag names a script, so there is nothing to run ({read})"
        ))
    })
}

/// The instance ID for `--once`: the cloud's, else the flag's, else
/// cloud-init's, else the machine ID. An empty one is no ID: the cloud's is
/// skipped for the next source, the flag's is a bad command line (any other
/// ID, `..` or `a/b` included, is safe: `state::marker_name` encodes it).
fn instance_id(settings: &Settings, from_cloud: Option<String>) -> Result<String> {
    // An instance ID file (cloud-init's, the machine ID) is one short line.
    const MAX_ID_FILE_BYTES: u64 = 4096;
    let from_file = |path: &str| {
        crate::util::fs::read_small_text(Path::new(path), MAX_ID_FILE_BYTES, "instance ID file")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let from_cloud = from_cloud.filter(|id| !id.is_empty());
    if from_cloud.is_none() && settings.instance_id.as_deref() == Some("") {
        return Err(Error::Usage(
            "--once: the instance ID given (--instance-id, $TAGSTRAP_INSTANCE_ID or instance_id \
             in the config file) is empty: give a non-empty ID, or none to use cloud-init's or \
             the machine ID"
                .into(),
        ));
    }
    from_cloud
        .or_else(|| settings.instance_id.clone())
        .or_else(|| from_file("/var/lib/cloud/data/instance-id"))
        .or_else(|| from_file("/etc/machine-id"))
        .ok_or_else(|| {
            Error::Usage(
                "--once needs an instance ID, and none was found (no cloud source, no cloud-init \
                 instance-id, no /etc/machine-id): pass --instance-id"
                    .into(),
            )
        })
}

/// `run`: one at a time per state directory (the lock is taken before
/// anything is read and released once the report is written), and stopped
/// by a signal only in good order (SPEC §8).
async fn run(settings: &Settings, script_env: &ScriptEnvRule) -> Result<i32> {
    let started = Instant::now();
    let stop = Stop::listen();
    let state = StateDir::new(settings.state_dir.clone());
    let mut report = Report::start();
    // No report when the lock is not had: last-run.json is the holder's.
    let lock = crate::lock::acquire(&state, settings.deadline, &report.started_at, &stop).await?;
    let result = run_steps(settings, script_env, &state, &mut report, &stop).await;
    match &result {
        Ok(Some(code)) => report.exit_code = *code,
        Ok(None) => return Ok(0),
        Err(error) => report.fail(error),
    }
    report.write(&state, started);
    drop(lock);
    result.map(|code| code.unwrap_or(0))
}

/// `Ok(None)` when `--once` finds the script already ran on this instance.
/// Every step before the script is cancelled by a signal (its error is
/// 128+N); the script itself is stopped by passing the signal on.
async fn run_steps(
    settings: &Settings,
    script_env: &ScriptEnvRule,
    state: &StateDir,
    report: &mut Report,
    stop: &Stop,
) -> Result<Option<i32>> {
    let collected = stop.unless(Stage::Tags, collect_tags(settings)).await?;
    report.tags = report_tags(&collected.tags);
    let marker = match once_marker(settings, state, &collected, report, stop).await? {
        Once::AlreadyRan => return Ok(None),
        Once::Run(marker) => marker,
    };

    let prepared = prepare_until(settings, &collected.tags, stop).await?;
    prepared.env.log_no_proxy_warnings();
    if let Some(path) = &settings.write_env {
        write_env(path, &prepared.env)?;
        report.env_file = Some(path.display().to_string());
    }
    let script_env = script_env_of(script_env, &prepared.env);
    report_prepared(report, &prepared, &script_env);
    let script = require_script(&prepared.agent, &collected)?;
    report.script = Some(ReportScript {
        url: script.shown(),
        tag: script.key.to_string(),
        ..ReportScript::default()
    });

    let downloaded = download_script(settings, state, &prepared, script, report, stop).await?;
    if let Some(signal) = stop.received() {
        // Came after the download: the script is not started at all.
        return Err(Stage::Download.stopped(signal));
    }
    run_script(&downloaded, &script_env, marker.as_deref(), report, stop).await
}

/// What `--once` decided: run, writing this marker after a success (none
/// without `--once`), or nothing to do.
enum Once {
    Run(Option<PathBuf>),
    AlreadyRan,
}

/// The instance ID (from the cloud, or `--instance-id` with `--once`) into
/// the report, and `--once`'s decision. When the script already ran,
/// `--write-env` is still written: later boot stages read the file on
/// every boot, and the password may have been rotated since the first one.
async fn once_marker(
    settings: &Settings,
    state: &StateDir,
    collected: &Collected,
    report: &mut Report,
    stop: &Stop,
) -> Result<Once> {
    let from_cloud = collected
        .instance
        .as_ref()
        .and_then(|i| i.instance_id.clone());
    report.instance_id = from_cloud.clone();
    report.instance = collected.instance.clone();
    if !settings.once {
        return Ok(Once::Run(None));
    }
    let id = instance_id(settings, from_cloud)?;
    report.instance_id = Some(id.clone());
    let marker = state.marker_path(&id)?;
    if !marker.exists() {
        return Ok(Once::Run(Some(marker)));
    }
    tracing::info!(instance_id = %shown(&id), "--once: the script already ran on instance {} (marker {}); nothing to do", shown(&id), shown_path(&marker));
    if let Some(path) = &settings.write_env {
        let prepared = prepare_until(settings, &collected.tags, stop).await?;
        write_env(path, &prepared.env)?;
    }
    Ok(Once::AlreadyRan)
}

/// The decided proxy, no-proxy list, credential names and script
/// environment (names only) into the report.
fn report_prepared(report: &mut Report, prepared: &Prepared, script_env: &ScriptEnv) {
    report.proxy = prepared.env.proxy.as_ref().map(|p| ReportProxy {
        url: p.url.without_credentials(),
        source: p.source.to_string(),
    });
    report.no_proxy = prepared
        .env
        .proxy
        .as_ref()
        .map(|_| prepared.env.no_proxy.env_value());
    report.credentials = prepared.env.credential_refs();
    report.script_env = Some(ReportScriptEnv {
        removed: script_env.removed_names(),
        kept: script_env.kept_names(),
        set: script_env.set_names(),
    });
}

/// The download into the state directory, its tries, route, size and
/// sha256 into the report (the tries also when it failed).
async fn download_script(
    settings: &Settings,
    state: &StateDir,
    prepared: &Prepared,
    script: &ScriptTag,
    report: &mut Report,
    stop: &Stop,
) -> Result<fetch::Downloaded> {
    state.ensure()?;
    let options = FetchOptions {
        tls: prepared.tls.clone(),
        budget: settings.deadline,
        max_bytes: settings.max_script_bytes,
    };
    let paths = state.script_paths(Platform::current() == Platform::Windows)?;
    let mut tries = net::retry::Tries::default();
    let downloaded = stop
        .unless(
            Stage::Download,
            fetch::download(script, &prepared.env, &options, paths, &mut tries),
        )
        .await;
    if let Some(shown) = report.script.as_mut() {
        // Also when the download failed: the report says how hard it tried.
        shown.download = tries;
    }
    let downloaded = downloaded?;
    if let Some(shown) = report.script.as_mut() {
        shown.route = Some(downloaded.route.clone());
        shown.bytes = Some(downloaded.bytes);
        shown.sha256 = Some(fetch::hex(&downloaded.sha256));
    }
    Ok(downloaded)
}

/// Runs the script; on exit 0 writes the `--once` marker (also when a
/// signal came meanwhile: the script completed); its code, time and
/// whether it was killed into the report.
async fn run_script(
    downloaded: &fetch::Downloaded,
    script_env: &ScriptEnv,
    marker: Option<&Path>,
    report: &mut Report,
    stop: &Stop,
) -> Result<Option<i32>> {
    let ran = Instant::now();
    let finished = crate::run::execute(&downloaded.path, script_env, stop).await?;
    let code = finished.code;
    if let Some(shown) = report.script.as_mut() {
        shown.run_seconds = Some(ran.elapsed().as_secs_f64());
        shown.exit_code = Some(code);
        shown.killed = finished.interrupted.is_some_and(|i| i.killed);
    }
    if code == 0 {
        if finished.interrupted.is_none() {
            tracing::info!("the script exited 0");
        }
        if let Some(marker) = marker {
            let line = format!(
                "{} sha256={}\n",
                crate::report::now_rfc3339(),
                fetch::hex(&downloaded.sha256)
            );
            crate::state::write_private(marker, line.as_bytes())?;
        }
    } else if finished.interrupted.is_none() {
        tracing::warn!(
            exit_code = code,
            "the script exited {code}; tagstrap exits with the same code"
        );
    }
    if let Some(interrupted) = finished.interrupted {
        return Err(stopped_while_the_script_ran(
            interrupted,
            code,
            marker.is_some(),
        ));
    }
    Ok(Some(code))
}

/// The error line of a run stopped while the script ran: what the script's
/// group got, how it ended, and whether the installation completed.
fn stopped_while_the_script_ran(interrupted: Interrupted, code: i32, once: bool) -> Error {
    let name = interrupted.signal.name;
    let grace = crate::run::SIGNAL_GRACE.as_secs();
    let how =
        match (code, interrupted.killed) {
            (0, false) => {
                format!(
            "the script exited 0 within the {grace} s grace, so the installation completed{}. \
             Nothing to redo; find out what sent {name} (a service manager's stop timeout?)",
            if once { " (its --once marker is written)" } else { "" }
        )
            }
            (0, true) => format!(
            "the script exited 0, so the installation completed{}, but what it left running in \
             its group ignored {name} for {grace} s and was killed (SIGKILL): check that \
             nothing it started was needed",
            if once { " (its --once marker is written)" } else { "" }
        ),
            (_, false) => format!(
                "the script ended with exit code {code} within the {grace} s grace, so the \
             installation did not complete: run tagstrap again"
            ),
            (_, true) => format!(
                "it was still running after the {grace} s grace and was killed (SIGKILL), so the \
             installation did not complete: run tagstrap again, and give it the time the script \
             needs before stopping it"
            ),
        };
    Error::Stopped {
        signal: interrupted.signal.number,
        message: format!(
            "tagstrap was stopped by {name} while the script ran; the script's process group got \
             {name} and {how}"
        ),
    }
}

/// The script's environment (SPEC §4): tagstrap's own as it is now, by the
/// rule, with the proxy variables of `env`.
fn script_env_of(rule: &ScriptEnvRule, env: &ProxyEnvironment) -> ScriptEnv {
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
fn write_env(path: &std::path::Path, env: &ProxyEnvironment) -> Result<()> {
    let text = env.env_file()?;
    crate::state::write_private_named(path, text.expose_secret().as_bytes(), "--write-env")?;
    tracing::info!("wrote the proxy environment to {} (0600)", path.display());
    Ok(())
}

fn report_tags(set: &TagSet) -> Vec<ReportTag> {
    set.entries()
        .map(|e| ReportTag {
            key: e.tag.key.clone(),
            value: e.tag.shown_value(),
            origin: e.tag.origin.to_string(),
        })
        .collect()
}

async fn show_tags(settings: &Settings) -> Result<()> {
    let collected = collect_tags(settings).await?;
    if collected.tags.is_empty() {
        print_line(format_args!("no rs_agent: tags found"));
        return Ok(());
    }
    let width = collected
        .tags
        .entries()
        .map(|e| e.tag.key.len())
        .max()
        .unwrap_or(0);
    for entry in collected.tags.entries() {
        let mut line = format!(
            "{:width$}  = {}    ({})",
            entry.tag.key,
            entry.tag.shown_value(),
            entry.tag.origin
        );
        if !entry.overridden.is_empty() {
            let beaten: Vec<String> = entry.overridden.iter().map(ToString::to_string).collect();
            line.push_str(&format!(" overrides {}", beaten.join(", ")));
        }
        print_line(format_args!("{line}"));
    }
    Ok(())
}

async fn plan(settings: &Settings, script_env: &ScriptEnvRule) -> Result<()> {
    let collected = collect_tags(settings).await?;
    print_tags(&collected);
    let prepared = prepare(settings, &collected.tags).await?;
    prepared.env.log_no_proxy_warnings();
    print_proxy(&prepared);
    let script = require_script(&prepared.agent, &collected);
    if let Ok(script) = script {
        print_script(&prepared, script);
    }
    print_line(format_args!(
        "limits:    deadline {} s per resource, script at most {} bytes",
        settings.deadline.as_secs_f64(),
        settings.max_script_bytes
    ));
    print_line(format_args!(
        "state:     {}{}",
        settings.state_dir.display(),
        if settings.once { " (--once)" } else { "" }
    ));
    print_line(format_args!(
        "script env: {}",
        script_env_of(script_env, &prepared.env).summary()
    ));
    let shown = prepared.env.shown_env();
    if !shown.is_empty() {
        print_line(format_args!("environment for the script:"));
        for (name, value) in shown {
            print_line(format_args!("  {name}={value}"));
        }
    }
    script.map(|_| ())
}

/// `plan`'s tags, with their origins, and what the instance source read.
fn print_tags(collected: &Collected) {
    print_line(format_args!("tags:"));
    for entry in collected.tags.entries() {
        print_line(format_args!(
            "  {} = {}    ({})",
            entry.tag.key,
            entry.tag.shown_value(),
            entry.tag.origin
        ));
    }
    if collected.tags.is_empty() {
        print_line(format_args!("  (none)"));
    }
    if let Some(instance) = &collected.instance {
        print_line(format_args!(
            "instance:  {} {} (read from {}, {} {})",
            instance.source,
            // The service's text: shown, never raw (a newline in it would
            // print a line of its own).
            instance
                .instance_id
                .as_deref()
                .map_or_else(|| "(no instance ID)".to_string(), crate::util::text::shown),
            instance.from,
            instance.tries.tries,
            if instance.tries.tries == 1 {
                "try"
            } else {
                "tries"
            }
        ));
    }
}

/// `plan`'s proxy: where it came from, the names of its credentials (never
/// their values) and the no-proxy list.
fn print_proxy(prepared: &Prepared) {
    let Some(proxy) = &prepared.env.proxy else {
        print_line(format_args!("proxy:     none (direct connections)"));
        return;
    };
    print_line(format_args!(
        "proxy:     {} (from {})",
        proxy.url.without_credentials(),
        proxy.source
    ));
    if let Some(user) = &proxy.credentials.user {
        print_line(format_args!("user:      {user}"));
    }
    if let Some(password) = &proxy.credentials.password {
        let store = prepared.store.as_deref().unwrap_or("the store");
        print_line(format_args!(
            "password:  {password} (resolved from {store})"
        ));
    }
    print_line(format_args!(
        "no_proxy:  {}",
        prepared.env.no_proxy.env_value()
    ));
}

/// `plan`'s script: where it is, how it is reached, and its pin.
fn print_script(prepared: &Prepared, script: &ScriptTag) {
    print_line(format_args!(
        "script:    {} ({}, {})",
        script.shown(),
        script.key,
        script.origin
    ));
    if let crate::tags::agent::ScriptLocation::Remote(url) = &script.location {
        let route = match prepared.env.route(url.host_str().unwrap_or_default()) {
            Some(proxy) => format!("through the proxy {}", proxy.url.authority()),
            None if prepared.env.proxy.is_some() => "direct (matches no_proxy)".to_string(),
            None => "direct".to_string(),
        };
        print_line(format_args!("route:     {route}"));
    }
    match script.sha256 {
        Some(pin) => print_line(format_args!("sha256:    must be {}", fetch::hex(&pin))),
        None => print_line(format_args!("sha256:    not pinned")),
    }
}
