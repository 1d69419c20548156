//! The CloudStack source's answers (`meta-data/instance-id` and
//! `latest/user-data`) through `cloudstack::parse` (the function the source
//! itself calls: gzip, the MIME reading, the tags part as a tags file), the
//! merge over an image layer, `AgentTags::from_tags` for Unix and Windows,
//! and every shown form: see `tagstrap_fuzz::exercise`.
//!
//! Input: a control byte (`tagstrap_fuzz::Control`), then the instance ID,
//! NUL, and the rest: with the `raw` bit, the user-data's bytes themselves,
//! so that MIME (boundaries, headers, transfer encodings, nesting) and gzip
//! are fuzzed; without it, UTF-8 text that becomes the `text/x-tagstrap-tags`
//! part of a user-data shaped as make-mime writes it, beside a shell part,
//! so that what is fuzzed is the tags; in its values (after a line's first
//! `=`), `\u{1}` becomes `:<canary>@` and `\u{2}` the bare canary. The
//! `no_attribute` bit: the router answered 404 for the user-data.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagstrap::tags::instance::cloudstack::{self, CloudStackAnswer};
use tagstrap_fuzz::{exercise, holds_canary, plant_in_tags_file, split_control, FROM};

const BOUNDARY: &str = "===============4650172894725630214==";

fn make_mime(tags: &str) -> Vec<u8> {
    format!(
        "Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\nMIME-Version: 1.0\n\n\
         --{BOUNDARY}\nContent-Type: text/x-tagstrap-tags; charset=\"utf-8\"\n\
         MIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\n\n{tags}\n\
         --{BOUNDARY}\nContent-Type: text/x-shellscript; charset=\"us-ascii\"\n\n\
         #!/bin/sh\nexec tagstrap run --source cloudstack\n\n--{BOUNDARY}--\n"
    )
    .into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = split_control(data) else {
        return;
    };
    let (instance_id, body) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let user_data = if control.raw() {
        body.to_vec()
    } else {
        let Ok(text) = std::str::from_utf8(body) else {
            return;
        };
        make_mime(&plant_in_tags_file(text))
    };
    let answer = CloudStackAnswer {
        instance_id: (!control.no_instance_id())
            .then(|| String::from_utf8_lossy(instance_id).into_owned()),
        user_data: (!control.no_attribute()).then_some(user_data),
    };
    // A raw body is planted nowhere: the canary can only be there if the
    // fuzzer wrote it, and then the oracle still looks for it.
    let canary = holds_canary(&String::from_utf8_lossy(body));
    exercise("cloudstack", control, canary, || cloudstack::parse(&answer, FROM));
});
