//! `ProxyUrl::parse` on arbitrary UTF-8: the value of `rs_agent:http_proxy` or
//! of the system's `https_proxy`. It must never panic; an accepted URL must
//! survive the trip through the script's environment (`with_credentials`,
//! parsed again) unchanged; and no shown form may hold the password.
//!
//! An input holding a NUL is also read as `PREFIX\0SUFFIX` and parsed as
//! `PREFIX:<canary>@SUFFIX`, where the canary sits where a password goes:
//! then neither an error nor a shown form may echo the canary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::{ExposeSecret, SecretString};
use tagstrap::proxy::ProxyUrl;

/// Never part of a fixed message; compared case-insensitively since the
/// parser lower-cases the scheme it quotes.
const CANARY: &str = "Zq7xCanaryPw";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = ProxyUrl::parse(text) {
        check_accepted(&url);
    }
    if let Some((prefix, suffix)) = text.split_once('\0') {
        // The fuzzer learns the canary from the comparisons below and copies
        // it elsewhere, e.g. into a scheme, where quoting it is no leak.
        let copied = |s: &str| {
            s.to_ascii_lowercase()
                .contains(&CANARY.to_ascii_lowercase())
        };
        if !copied(prefix) && !copied(suffix) {
            check_canary(&format!("{prefix}:{CANARY}@{suffix}"));
        }
    }
});

fn password(url: &ProxyUrl) -> Option<&str> {
    url.password.as_ref().map(|p| p.expose_secret())
}

/// The same URL with another password: what a shown form must equal, since
/// it must not depend on the password at all.
fn with_other_password(url: &ProxyUrl) -> ProxyUrl {
    let mut other = url.clone();
    if let Some(pw) = password(url) {
        let replacement = if pw == "x" { "y" } else { "x" };
        other.password = Some(SecretString::from(replacement));
    }
    other
}

fn check_accepted(url: &ProxyUrl) {
    assert!(url.port != 0, "port 0 accepted");
    assert!(!url.host.is_empty(), "empty host accepted");
    if let Some(user) = &url.user {
        assert!(!user.is_empty(), "empty user accepted");
    }

    // The value the script's tools get: printable ASCII only, and the same
    // proxy when read back.
    let full = url.with_credentials();
    let full = full.expose_secret();
    assert!(
        full.bytes().all(|b| b.is_ascii_graphic()),
        "with_credentials is not printable ASCII: {:?}",
        url.without_credentials()
    );
    let again = ProxyUrl::parse(full).unwrap_or_else(|e| {
        panic!("with_credentials does not parse again ({e}); without credentials: {url}")
    });
    assert_eq!(again.scheme, url.scheme, "scheme changed");
    assert_eq!(again.host, url.host, "host changed");
    assert_eq!(again.port, url.port, "port changed");
    assert_eq!(again.user, url.user, "user changed");
    assert!(
        password(&again) == password(url),
        "password changed in the round trip (lengths {:?} -> {:?})",
        password(url).map(str::len),
        password(&again).map(str::len)
    );

    // The forms without credentials parse to the same proxy, too.
    let bare = ProxyUrl::parse(&url.without_credentials())
        .unwrap_or_else(|e| panic!("without_credentials does not parse again ({e}): {url}"));
    assert_eq!(
        (bare.scheme, &bare.host, bare.port),
        (url.scheme, &url.host, url.port)
    );
    assert!(bare.user.is_none() && bare.password.is_none());

    // Shown forms never depend on the password...
    let other = with_other_password(url);
    assert_eq!(
        url.to_string(),
        other.to_string(),
        "Display shows the password"
    );
    assert_eq!(url.without_credentials(), other.without_credentials());
    assert_eq!(url.authority(), other.authority());
    // ...so they hold it only where it is also part of the rest (e.g. a
    // password "http" or "***"), which is no leak.
    if let Some(pw) = password(url).filter(|pw| !pw.is_empty()) {
        for (what, shown, without) in [
            ("Display", url.to_string(), other.to_string()),
            ("Debug", format!("{url:?}"), format!("{other:?}")),
            (
                "without_credentials",
                url.without_credentials(),
                other.without_credentials(),
            ),
        ] {
            assert!(
                !shown.contains(pw) || without.contains(pw),
                "{what} shows the password"
            );
        }
    }
}

fn check_canary(text: &str) {
    let canary = CANARY.to_ascii_lowercase();
    match ProxyUrl::parse(text) {
        Err(reason) => assert!(
            !reason.to_ascii_lowercase().contains(&canary),
            "the parse error quotes the password: {reason:?}"
        ),
        Ok(url) => {
            let elsewhere = url.host.to_ascii_lowercase().contains(&canary)
                || url
                    .user
                    .as_deref()
                    .is_some_and(|u| u.to_ascii_lowercase().contains(&canary));
            if elsewhere {
                return;
            }
            for (what, shown) in [
                ("Display", url.to_string()),
                ("Debug", format!("{url:?}")),
                ("without_credentials", url.without_credentials()),
            ] {
                assert!(
                    !shown.to_ascii_lowercase().contains(&canary),
                    "{what} shows the password: {shown}"
                );
            }
        }
    }
}
