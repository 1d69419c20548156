//! The lease readers the CloudStack source finds its virtual router with
//! (`cloudstack::router::networkd_server_address` over a systemd-networkd
//! lease, `dhclient_server_identifier` over a dhclient lease file), on
//! arbitrary text: a lease file is written by whatever answered DHCP.
//!
//! Oracle: no panic, no hang (the readers are linear scans), and an address
//! is only ever found where the text names its key.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagstrap::tags::instance::cloudstack::router::{
    dhclient_server_identifier, networkd_server_address,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if networkd_server_address(&text).is_some() {
        assert!(text.contains("SERVER_ADDRESS"), "{text:?}");
    }
    if dhclient_server_identifier(&text).is_some() {
        assert!(
            text.contains("lease") && text.contains("dhcp-server-identifier"),
            "{text:?}"
        );
    }
});
