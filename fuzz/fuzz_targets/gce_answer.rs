//! The GCE source's answers (`instance/id` and the `rs_agent-tags`
//! attribute, a tags file) on arbitrary UTF-8, through `gce::parse` (the
//! function the source itself calls), the merge over an image layer,
//! `AgentTags::from_tags` for Unix and Windows, and every shown form: see
//! `tagstrap_fuzz::exercise`.
//!
//! Input: a control byte (`tagstrap_fuzz::Control`), then the instance ID,
//! NUL, the attribute's text. In the attribute's values (after a line's
//! first `=`), `\u{1}` becomes `:<canary>@` and `\u{2}` the bare canary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagstrap::tags::instance::gce::{self, GceAnswer};
use tagstrap_fuzz::{exercise, plant_in_tags_file, split_control, FROM, SEPARATOR};

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = split_control(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (instance_id, attribute) = text.split_once(SEPARATOR).unwrap_or((text, ""));
    let answer = GceAnswer {
        instance_id: (!control.no_instance_id()).then(|| instance_id.to_string()),
        tags: (!control.no_attribute()).then(|| plant_in_tags_file(attribute)),
    };
    exercise("gce", control, tagstrap_fuzz::holds_canary(text), || {
        gce::parse(&answer, FROM)
    });
});
