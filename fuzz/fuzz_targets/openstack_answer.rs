//! The OpenStack source's answer (`meta_data.json`, from the metadata
//! service or a config drive) through `openstack::parse_text` (the function
//! the source itself calls), the merge over an image layer,
//! `AgentTags::from_tags` for Unix and Windows, and every shown form: see
//! `tagstrap_fuzz::exercise`.
//!
//! Input: a control byte (`tagstrap_fuzz::Control`), then either (raw) the
//! bytes as the JSON text, so that JSON syntax is fuzzed; or (structured)
//! pieces separated by NUL spliced into the fixture's valid document
//! (fixtures/openstack/): the `uuid`, then key and value of each `meta`
//! entry, so that what is fuzzed is the keys and values (escapes included)
//! rather than the syntax. A last key without a value gets the number 7: a
//! type the parser must refuse, naming the key. In a structured value,
//! `\u{1}` becomes `:<canary>@` and `\u{2}` the bare canary.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use tagstrap::tags::instance::openstack;
use tagstrap_fuzz::{exercise, holds_canary, plant, split_control, FROM, SEPARATOR};

/// The fixture's `meta_data.json`, parsed once.
fn skeleton() -> &'static Value {
    static SKELETON: OnceLock<Value> = OnceLock::new();
    SKELETON.get_or_init(|| {
        serde_json::from_str(include_str!(
            "../../fixtures/openstack/openstack/latest/meta_data.json"
        ))
        .expect("the fixture is JSON")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = split_control(data) else {
        return;
    };
    let body = if control.raw() {
        rest.to_vec()
    } else {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let mut pieces = text.split(SEPARATOR);
        let mut document = skeleton().clone();
        document["uuid"] = json!(pieces.next().unwrap_or(""));
        let rest: Vec<&str> = pieces.collect();
        let mut meta = Map::new();
        for pair in rest.chunks(2) {
            match pair {
                [key, value] => meta.insert(key.to_string(), json!(plant(value))),
                [key] => meta.insert(key.to_string(), json!(7)),
                _ => unreachable!("chunks of two"),
            };
        }
        if !rest.is_empty() {
            document["meta"] = Value::Object(meta);
        }
        document.to_string().into_bytes()
    };
    exercise(
        "openstack",
        control,
        holds_canary(&String::from_utf8_lossy(rest)),
        || openstack::parse_text(&body, FROM),
    );
});
