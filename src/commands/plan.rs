//! `tagstrap plan`: every stage up to the download, the credentials
//! resolved (so the store is proved to answer) but only their names shown:
//! the tags, the instance read, the proxy and its route, the script and its
//! pin, the limits, the state directory and the script's environment.

use crate::error::Result;
use crate::fetch;
use crate::pipeline::{collect_tags, prepare, require_script, script_env_of, Collected, Prepared};
use crate::proxy::ScriptEnvRule;
use crate::settings::Settings;
use crate::tags::agent::{ScriptLocation, ScriptTag};
use crate::util::text::{print_line, shown};

/// Every stage up to the download, printed (credentials resolved, never
/// shown); a missing script tag is the error after the rest is printed.
pub(super) async fn plan(settings: &Settings, script_env: &ScriptEnvRule) -> Result<()> {
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
                .map_or_else(|| "(no instance ID)".to_string(), shown),
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
    if let ScriptLocation::Remote(url) = &script.location {
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
