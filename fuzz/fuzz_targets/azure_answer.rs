//! The Azure source's answers (`compute/vmId` as text and the
//! `compute/tagsList` JSON) through `azure::parse` (the function the source
//! itself calls), the merge over an image layer, `AgentTags::from_tags` for
//! Unix and Windows, and every shown form: see `tagstrap_fuzz::exercise`.
//!
//! Input: a control byte (`tagstrap_fuzz::Control`), then either (raw) the
//! vmId, NUL, and the tagsList body as bytes, so that JSON syntax is fuzzed;
//! or (structured) pieces separated by NUL: the vmId, then name and value
//! of each entry, written into a valid list by serde_json, so that what is
//! fuzzed is the names and values (escapes included) rather than the
//! syntax. A last name without a value gets none: a shape the parser must
//! refuse. In a structured value, `\u{1}` becomes `:<canary>@` and `\u{2}`
//! the bare canary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tagstrap::tags::instance::azure::{self, AzureAnswer};
use tagstrap_fuzz::{exercise, holds_canary, plant, split_control, FROM, SEPARATOR};

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = split_control(data) else {
        return;
    };
    let answer = if control.raw() {
        let (vm_id, body) = match rest.iter().position(|&b| b == 0) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (&b""[..], rest),
        };
        let Ok(vm_id) = std::str::from_utf8(vm_id) else {
            return;
        };
        AzureAnswer {
            vm_id: vm_id.to_string(),
            tags_list: body.to_vec(),
        }
    } else {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let mut pieces = text.split(SEPARATOR);
        let vm_id = pieces.next().unwrap_or("").to_string();
        let rest: Vec<&str> = pieces.collect();
        let list: Vec<Value> = rest
            .chunks(2)
            .map(|pair| match pair {
                [name, value] => json!({ "name": name, "value": plant(value) }),
                [name] => json!({ "name": name }),
                _ => unreachable!("chunks of two"),
            })
            .collect();
        AzureAnswer {
            vm_id,
            tags_list: Value::Array(list).to_string().into_bytes(),
        }
    };
    exercise(
        "azure",
        control,
        holds_canary(&String::from_utf8_lossy(rest)),
        || azure::parse(&answer, FROM),
    );
});
