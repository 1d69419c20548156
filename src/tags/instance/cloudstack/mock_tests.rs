//! The CloudStack source against a fake virtual router (testkit's, serving
//! `fixtures/cloudstack/`), the user-data cases of [`super::user_data`],
//! and the router search over lease files written here (both formats) with
//! the DNS lookup injected, so that no test resolves a name.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use testkit::metadata::cloudstack::{gzip, multipart, SHELL_PART};
use testkit::metadata::{Cloud, FakeMetadata};

use super::router::{dhclient_server_identifier, networkd_server_address, RouterSearch};
use super::user_data::{tags_part, TagsPart, MAX_TAGS_PART_BYTES};
use super::CloudStack;
use crate::tags::instance::test_support::{config, pair, pairs};
use crate::tags::instance::{InstanceSource, SourceConfig};
use crate::util::text::forbidden_char;

const MINUTE: Duration = Duration::from_secs(60);
const ID: &str = "c8f3ad7e-1c2f-4a6e-9d57-5b3e0f2a9c41";
const TAGS: &str = "text/x-tagstrap-tags";

fn source(url: &str) -> CloudStack {
    CloudStack::new(&config(url, true, MINUTE)).unwrap()
}

#[tokio::test]
async fn reads_the_instance_id_and_the_tags_part_of_the_user_data() {
    let fake = FakeMetadata::builder(Cloud::CloudStack)
        .tag("rs_agent:http_proxy", "proxy.corp:3128")
        .tag("other:key", "dropped")
        .start();
    let data = source(&fake.url()).fetch().await.unwrap();
    assert_eq!(data.instance_id.as_deref(), Some(ID));
    assert_eq!(
        pairs(&data),
        vec![
            pair("rs_agent:http_proxy", "proxy.corp:3128"),
            pair("rs_agent:type", "right_link_lite"),
        ]
    );
    assert_eq!(data.from, fake.url());
    assert_eq!(data.tries.tries, 1);
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/latest/meta-data/instance-id", "/latest/user-data"],
        "one request each"
    );
    assert!(fake.refused().is_empty());
}

#[tokio::test]
async fn no_user_data_a_shell_script_or_mime_without_the_part_is_no_tags() {
    for fake in [
        FakeMetadata::builder(Cloud::CloudStack).no_user_data(),
        FakeMetadata::builder(Cloud::CloudStack).user_data(SHELL_PART),
        FakeMetadata::builder(Cloud::CloudStack).user_data(""),
        FakeMetadata::builder(Cloud::CloudStack).no_tags(),
    ] {
        let fake = fake.start();
        let data = source(&fake.url()).fetch().await.unwrap();
        assert!(data.tags.is_empty(), "{:?}", data.tags);
        assert_eq!(data.instance_id.as_deref(), Some(ID));
    }
}

#[tokio::test]
async fn gzipped_user_data_is_read_as_cloud_init_reads_it() {
    let fake = FakeMetadata::builder(Cloud::CloudStack)
        .tag("rs_agent:type", "from-gzip")
        .gzip_user_data()
        .start();
    let data = source(&fake.url()).fetch().await.unwrap();
    assert_eq!(pairs(&data), vec![pair("rs_agent:type", "from-gzip")]);
}

#[tokio::test]
async fn a_bad_tag_in_the_part_is_refused_with_its_line() {
    let fake = FakeMetadata::builder(Cloud::CloudStack)
        .tag("rs_agent:type", "a\u{1b}[2Jb")
        .start();
    let err = source(&fake.url()).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 65, "{err}");
    assert!(
        err.message().contains("cloudstack instance tags, line "),
        "{err}"
    );
}

#[tokio::test]
async fn a_router_without_an_instance_id_is_not_cloudstack() {
    let fake = FakeMetadata::builder(Cloud::CloudStack)
        .instance_id("  ")
        .start();
    let err = source(&fake.url()).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 69, "{err}");
    assert!(err.message().contains("CloudStack virtual router"), "{err}");
}

/// The user-data text → its tags part, as the source reads it.
fn part_of(user_data: &str) -> crate::error::Result<TagsPart> {
    tags_part(user_data.as_bytes(), "http://10.1.1.1")
}

fn found(text: &str) -> TagsPart {
    TagsPart::Found(text.to_string())
}

#[test]
fn every_transfer_encoding_and_a_nested_multipart_are_read() {
    let tags = "rs_agent:type=x\n";
    let built = multipart(&[(TAGS, "t", tags), ("text/x-shellscript", "s", SHELL_PART)]);
    assert_eq!(part_of(&built).unwrap(), found(tags));
    // Not ASCII: make-mime writes base64 of the UTF-8.
    let accented = "rs_agent:type=caf\u{e9}\n";
    let built = multipart(&[(TAGS, "t", accented)]);
    assert!(built.contains("base64"), "{built}");
    assert_eq!(part_of(&built).unwrap(), found(accented));

    let qp = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\n\
              Content-Type: Text/X-Tagstrap-Tags; charset=utf-8\n\
              Content-Transfer-Encoding: quoted-printable\n\nrs_agent:type=3Dcaf=C3=A9=\n_x\n--b--\n";
    assert_eq!(part_of(qp).unwrap(), found("rs_agent:type=caf\u{e9}_x"));

    let nested = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n\
                  --outer\nContent-Type: text/x-shellscript\n\n#!/bin/sh\n\
                  --outer\nContent-Type: multipart/mixed; boundary=\"inner\"\n\n\
                  --inner\nContent-Type: text/x-tagstrap-tags\n\nrs_agent:type=deep\n\
                  --inner--\n--outer--\n";
    assert_eq!(part_of(nested).unwrap(), found("rs_agent:type=deep"));

    // A MIME document that is itself the tags part.
    let single = "MIME-Version: 1.0\nContent-Type: text/x-tagstrap-tags\n\nrs_agent:type=one\n";
    assert_eq!(part_of(single).unwrap(), found("rs_agent:type=one\n"));
}

#[test]
fn what_is_not_mime_or_has_no_part_is_no_tags_and_says_why() {
    for (user_data, why) in [
        ("", "empty"),
        ("#!/bin/sh\necho hi\n", "not MIME (it starts \"#!/bin/sh\")"),
        ("#cloud-config\nruncmd: []\n", "not MIME"),
        (
            &multipart(&[("text/x-shellscript", "s", SHELL_PART)])[..],
            "without a text/x-tagstrap-tags part",
        ),
    ] {
        match part_of(user_data).unwrap() {
            TagsPart::None(said) => assert!(said.contains(why), "{said}"),
            other => panic!("{user_data:?}: {other:?}"),
        }
    }
    // The first line is shown, never raw.
    let TagsPart::None(said) = part_of("\u{1b}[2J\r#!/bin/sh").unwrap() else {
        panic!()
    };
    assert_eq!(forbidden_char(&said), None, "{said}");
}

#[test]
fn two_parts_a_huge_part_a_cut_boundary_and_bad_gzip_are_refused() {
    let two = multipart(&[
        (TAGS, "a", "rs_agent:type=a\n"),
        (TAGS, "b", "rs_agent:type=b\n"),
    ]);
    let huge = multipart(&[(TAGS, "t", &"#".repeat(MAX_TAGS_PART_BYTES + 1))]);
    let built = multipart(&[
        (TAGS, "t", "rs_agent:type=a\n"),
        ("text/x-shellscript", "s", "x"),
    ]);
    let cut = &built[..built.rfind("--").unwrap()];
    let bad_base64 = "MIME-Version: 1.0\nContent-Type: text/x-tagstrap-tags\n\
                      Content-Transfer-Encoding: base64\n\n!!!not base64!!!\n";
    let not_utf8 = b"MIME-Version: 1.0\nContent-Type: text/x-tagstrap-tags\n\nrs_agent:type=\xff\n";
    for (user_data, said) in [
        (two.as_bytes(), "more than one text/x-tagstrap-tags part"),
        (huge.as_bytes(), "over the 65536-byte limit"),
        (cut.as_bytes(), "never comes"),
        (bad_base64.as_bytes(), "does not decode"),
        (&not_utf8[..], "is not text"),
        (&[0x1f, 0x8b, 0x08, 0x00][..], "does not decompress"),
    ] {
        let err = tags_part(user_data, "http://10.1.1.1").unwrap_err();
        assert_eq!(err.exit_code(), 65, "{err}");
        assert!(err.message().contains(said), "{err}");
        assert!(err
            .message()
            .starts_with("the CloudStack user-data from http://10.1.1.1"));
    }
    // A gzip bomb stops at the limit.
    let bomb = gzip(&vec![b'a'; 2 * 1024 * 1024]);
    let err = tags_part(&bomb, "h").unwrap_err();
    assert!(err.message().contains("decompresses to more than"), "{err}");
}

/// A resolver that answers `data-server.` with these addresses, and
/// nothing else.
fn dns(answer: Vec<IpAddr>) -> super::router::Resolve {
    Arc::new(move |name: String| {
        let answer = if name == "data-server." {
            answer.clone()
        } else {
            Vec::new()
        };
        Box::pin(async move { answer })
    })
}

fn search(dir: &Path, answer: Vec<IpAddr>, port: u16) -> RouterSearch {
    RouterSearch {
        resolve: dns(answer),
        networkd_dir: dir.join("networkd"),
        dhclient_dirs: vec![dir.join("dhcp"), dir.join("dhclient")],
        port,
    }
}

fn searching(search: RouterSearch, deadline: Duration) -> CloudStack {
    let config = SourceConfig {
        endpoint: None,
        ..config("http://unused", true, deadline)
    };
    CloudStack::with_search(&config, search).unwrap()
}

fn port_of(fake: &FakeMetadata) -> u16 {
    fake.url().rsplit(':').next().unwrap().parse().unwrap()
}

fn write(dir: &Path, name: &str, text: &str, age_seconds: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(age_seconds))
        .unwrap();
}

const LOOPBACK: &str = "127.0.0.1";

fn networkd_lease(server: &str) -> String {
    format!(
        "# This is private data. Do not parse.\nADDRESS=10.1.1.23\nNETMASK=255.255.255.0\n\
         ROUTER=10.1.1.1\nSERVER_ADDRESS={server}\nT1=43200\nLIFETIME=86400\nDNS=10.1.1.1\n\
         DOMAINNAME=cs2cloud.internal\n"
    )
}

fn dhclient_lease(server: &str) -> String {
    format!(
        "lease {{\n  interface \"eth0\";\n  fixed-address 10.1.1.23;\n  option subnet-mask \
         255.255.255.0;\n  option dhcp-lease-time 86400;\n  option routers 10.1.1.1;\n  option \
         dhcp-message-type 5;\n  option dhcp-server-identifier {server};\n  option \
         domain-name-servers 10.1.1.1;\n  renew 4 2026/01/01 00:00:00;\n}}\n"
    )
}

#[tokio::test]
async fn the_router_is_found_by_dns_first_then_networkd_then_dhclient() {
    let fake = FakeMetadata::builder(Cloud::CloudStack).start();
    let port = port_of(&fake);
    let dir = tempfile::tempdir().unwrap();
    // Leases that point elsewhere: DNS wins over them.
    write(
        &dir.path().join("networkd"),
        "2",
        &networkd_lease("10.9.9.9"),
        0,
    );
    let data = searching(
        search(dir.path(), vec![LOOPBACK.parse().unwrap()], port),
        MINUTE,
    )
    .fetch()
    .await
    .unwrap();
    assert_eq!(data.from, fake.url());
    assert_eq!(pairs(&data), vec![pair("rs_agent:type", "right_link_lite")]);

    // No DNS: the networkd lease, the first by ifindex that names a server.
    let dir = tempfile::tempdir().unwrap();
    let networkd = dir.path().join("networkd");
    write(&networkd, "2", &networkd_lease(LOOPBACK), 0);
    write(&networkd, "3", &networkd_lease("10.9.9.9"), 0);
    write(&networkd, "1", "ADDRESS=10.0.0.5\n", 0);
    write(
        &dir.path().join("dhcp"),
        "dhclient.eth0.leases",
        &dhclient_lease("10.9.9.9"),
        0,
    );
    let found = search(dir.path(), vec![], port).find().await.unwrap();
    assert_eq!(found.address.to_string(), LOOPBACK);
    assert!(found.how.contains("SERVER_ADDRESS in"), "{}", found.how);
    let data = searching(search(dir.path(), vec![], port), MINUTE)
        .fetch()
        .await
        .unwrap();
    assert_eq!(data.instance_id.as_deref(), Some(ID));

    // No DNS, no networkd: the newest dhclient file of the first directory
    // that has one, and in it the last lease.
    let dir = tempfile::tempdir().unwrap();
    let dhcp = dir.path().join("dhcp");
    let two = format!("{}{}", dhclient_lease("10.9.9.9"), dhclient_lease(LOOPBACK));
    write(&dhcp, "dhclient.eth0.leases", &two, 10);
    write(
        &dhcp,
        "dhclient.eth1.leases",
        &dhclient_lease("10.8.8.8"),
        3600,
    );
    write(&dhcp, "not-a-lease.txt", &dhclient_lease("10.7.7.7"), 0);
    write(
        &dir.path().join("dhclient"),
        "x.lease",
        &dhclient_lease("10.6.6.6"),
        0,
    );
    let found = search(dir.path(), vec![], port).find().await.unwrap();
    assert_eq!(found.address.to_string(), LOOPBACK);
    assert!(found.how.contains("dhclient.eth0.leases"), "{}", found.how);
    let data = searching(search(dir.path(), vec![], port), MINUTE)
        .fetch()
        .await
        .unwrap();
    assert_eq!(data.instance_id.as_deref(), Some(ID));
}

#[tokio::test]
async fn no_router_found_is_one_line_that_says_what_was_tried() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("networkd"), "2", "ADDRESS=10.1.1.23\n", 0);
    let err = searching(search(dir.path(), vec![], 80), Duration::from_millis(300))
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 69, "{err}");
    let message = err.message();
    assert_eq!(message.lines().count(), 1, "{message}");
    for said in [
        "the cloudstack virtual router: gave up",
        "data-server. did not resolve",
        "SERVER_ADDRESS",
        "dhcp-server-identifier",
        "--metadata-endpoint",
    ] {
        assert!(message.contains(said), "{said}: {message}");
    }
    assert!(message.contains(&dir.path().join("dhcp").display().to_string()));
}

#[test]
fn the_lease_readers_take_only_a_well_formed_address() {
    assert_eq!(
        networkd_server_address(&networkd_lease("10.1.1.1")),
        Some("10.1.1.1".parse().unwrap())
    );
    for text in [
        "",
        "SERVER_ADDRESS=",
        "SERVER_ADDRESS=data-server",
        "# SERVER_ADDRESS=1.2.3.4",
    ] {
        assert_eq!(networkd_server_address(text), None, "{text:?}");
    }
    let two = format!(
        "{}{}",
        dhclient_lease("10.0.0.1"),
        dhclient_lease("10.0.0.2")
    );
    assert_eq!(
        dhclient_server_identifier(&two),
        Some("10.0.0.2".parse().unwrap()),
        "the last lease is the newest"
    );
    // A block cut off while dhclient writes it is skipped.
    let cut = format!(
        "{}lease {{\n option dhcp-server-identifier 10.0.0.3;\n",
        dhclient_lease("10.0.0.1")
    );
    assert_eq!(
        dhclient_server_identifier(&cut),
        Some("10.0.0.1".parse().unwrap())
    );
    for text in [
        "",
        "lease {}",
        "option dhcp-server-identifier 10.0.0.1;",
        "lease { option dhcp-server-identifier 10.0.0.1 extra; }",
        "lease { option dhcp-server-identifier nope; }",
        "xlease { option dhcp-server-identifier 10.0.0.1; }",
    ] {
        assert_eq!(dhclient_server_identifier(text), None, "{text:?}");
    }
}

#[test]
fn dmi_says_cloudstack_by_its_product_name() {
    use crate::tags::detect::Dmi;
    let dmi = |product: &str| Dmi {
        product_name: product.to_string(),
        ..Dmi::default()
    };
    assert!(super::recognise(&dmi("CloudStack KVM Hypervisor")).is_some());
    assert!(super::recognise(&dmi("cloudstack")).is_none());
    assert!(super::recognise(&dmi("Apache CloudStack")).is_none());
}
