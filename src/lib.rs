//! tagstrap as a library: the pipeline's stages, one module each, in the
//! order a run goes through them. `main.rs` only calls [`app::main`].
//!
//! - [`settings`] (with [`cli`]): flags, `TAGSTRAP_*` variables, config file, defaults.
//! - [`tags`]: tags files, instance tags and `--tag`, merged; their meaning in [`tags::agent`].
//! - [`credentials`]: `cred:NAME` resolved from a credential store.
//! - [`proxy`]: the proxy URL, the no-proxy list and the script's environment.
//! - [`fetch`]: the download, with retries, classification and streaming.
//! - [`run`]: running the script; [`report`] and [`state`]: what is left on disk;
//!   `lock`: one run at a time per state directory; `stop`: the signals that stop a run.
//! - [`doctor`]: the same steps one at a time, each diagnosed.
//! - [`error`]: the one error type and its exit codes.
//! - [`util`]: the toolkit below every stage (showing outside text, opening
//!   and creating files safely, process hardening).

pub mod app;
pub mod cli;
pub mod credentials;
pub mod doctor;
pub mod error;
pub mod fetch;
pub(crate) mod lock;
pub mod logging;
pub mod proxy;
pub mod report;
pub mod run;
pub mod settings;
pub mod state;
pub(crate) mod stop;
pub mod tags;
pub mod util;

/// A boxed future, for the object-safe traits of sources and stores.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::HashMap;

    /// An environment lookup over fixed pairs, for settings and proxy tests.
    pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }
}
