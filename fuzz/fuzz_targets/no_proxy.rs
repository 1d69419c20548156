//! The no-proxy list on arbitrary UTF-8: `rs_agent:http_no_proxy` and the
//! image's `no_proxy`. Lines are lists (a leading `$` marks the image's),
//! the last line is a host. It must never panic, and tagstrap's decision
//! must be curl's, by the model of curl's matcher written from curl's rules
//! (`tagstrap_fuzz::curl_noproxy`), for the lists as written and for the
//! value exported to the script (`tagstrap_fuzz::no_proxy_oracle`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagstrap_fuzz::no_proxy_oracle::{check, parse_case};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((lists, host)) = parse_case(text) else {
        return;
    };
    if let Err(disagreement) = check(&lists, host) {
        panic!("{disagreement}");
    }
});
