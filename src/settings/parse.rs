//! The one parser of each setting's value, whichever place it came from: a
//! flag, a variable or the config file all reach these as text, and a
//! parser's `Err` is the reason that the caller prefixes with the place.

use std::time::Duration;

use url::Url;

use crate::cli::SourceChoice;
use crate::tags::instance::Cloud;

/// Seconds, possibly fractional: "600", "2.5".
pub(crate) fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))
}

/// Bytes, with an optional binary suffix: "16777216", "16M", "16MiB", "512k".
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits);
    let multiplier: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?} is not a size (e.g. 16777216 or 16M)")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a size (e.g. 16777216 or 16M)"))
}

pub(crate) fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// One of a clap value's names, any case: `--source`, `--log-format`.
pub(crate) fn choice<T: clap::ValueEnum>(text: &str) -> Result<T, String> {
    T::from_str(text, true).map_err(|_| {
        let names: Vec<String> = T::value_variants().iter().map(name_of).collect();
        match names.as_slice() {
            [one, two] => format!("expected {one} or {two}"),
            _ => format!("expected one of {}", names.join(", ")),
        }
    })
}

/// A clap value's name, as the command line writes it.
pub(crate) fn name_of<T: clap::ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map(|possible| possible.get_name().to_string())
        .unwrap_or_default()
}

/// `--metadata-endpoint`: http(s), or with `--source openstack` a config
/// drive's content as `file://`.
pub(crate) fn endpoint(text: &str, source: SourceChoice) -> Result<Url, String> {
    // IDNA would drop a zero-width character from the host.
    if let Some(hidden) = crate::util::text::named_forbidden_char(text) {
        return Err(format!("the URL holds the {hidden}: remove it"));
    }
    Url::parse(text)
        .ok()
        .filter(|u| match u.scheme() {
            "http" | "https" => u.has_host(),
            // A config drive's content, mounted or copied.
            "file" => source == SourceChoice::Cloud(Cloud::OpenStack),
            _ => false,
        })
        .ok_or_else(|| {
            "expected an http:// or https:// URL (or, with --source openstack, \
             file:// and a config drive's directory)"
                .into()
        })
}
