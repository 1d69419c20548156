//! The AWS source's answers (IMDS `meta-data/instance-id`, the
//! `meta-data/tags/instance` listing and each listed `rs_agent:` key's
//! value) on arbitrary UTF-8, through `aws::parse` (the function the source
//! itself calls), the merge over an image layer, `AgentTags::from_tags` for
//! Unix and Windows, and every shown form: see `tagstrap_fuzz::exercise`.
//!
//! Input: a control byte (`tagstrap_fuzz::Control`), then pieces separated
//! by NUL: the instance ID, the listing, then the values of the listing's
//! `rs_agent:` keys in order (a key without a piece answered 404). In a
//! value, `\u{1}` becomes `:<canary>@` and `\u{2}` the bare canary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagstrap::tags::instance::aws::{self, AwsAnswer};
use tagstrap_fuzz::{exercise, plant, split_control, FROM, SEPARATOR};

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = split_control(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut pieces = text.split(SEPARATOR);
    let instance_id = pieces.next().unwrap_or("");
    let listing = pieces.next().unwrap_or("").to_string();
    let values = aws::listed_keys(&listing)
        .ours
        .into_iter()
        .map(|key| (key.to_string(), pieces.next().map(plant)))
        .collect();
    let answer = AwsAnswer {
        instance_id: (!control.no_instance_id()).then(|| instance_id.to_string()),
        listing: listing.clone(),
        values,
    };
    exercise("aws", control, tagstrap_fuzz::holds_canary(text), || {
        aws::parse(&answer, FROM)
    });
});
