//! # tagstrap
//!
//! A boot-stage program for cloud instances. It reads the instance's
//! `rs_agent:*` tags, fetches the proxy password from a credential store (so
//! that no secret is ever a tag), builds the proxied environment
//! (`http_proxy`, `https_proxy`, `HTTP_PROXY`, `HTTPS_PROXY`, `no_proxy`,
//! `NO_PROXY`), downloads the agent install script through the proxy with
//! retries that outlast the boot-time network race, and runs it.
//!
//! ```text
//! tagstrap run     # tags → credentials → environment → download → execute
//! tagstrap plan    # everything that needs no download, secrets redacted
//! tagstrap tags    # the merged tags and where each came from
//! ```
//!
//! The exit code is the script's own, or one of SPEC §5's when tagstrap
//! itself stopped, after one error line saying what failed and what to do.

fn main() {
    std::process::exit(tagstrap::commands::main());
}
