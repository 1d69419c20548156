//! The OpenStack source against a fake metadata service serving
//! `fixtures/openstack/`, and against the same content as a config drive's
//! directory (`--metadata-endpoint file://…`).

use std::time::Duration;

use serde_json::json;
use testkit::metadata::{Cloud, FakeMetadata};

use super::{parse, OpenStack};
use crate::tags::instance::test_support::{config, pair, pairs};
use crate::tags::instance::InstanceSource;

const MINUTE: Duration = Duration::from_secs(60);
const UUID: &str = "83679162-1378-4288-a2d4-70e13ec132aa";

fn source(url: &str) -> OpenStack {
    OpenStack::new(&config(url, true, MINUTE)).unwrap()
}

#[tokio::test]
async fn reads_meta_and_uuid_from_the_metadata_service() {
    let fake = FakeMetadata::builder(Cloud::OpenStack)
        .tag("rs_agent:http_proxy", "proxy.corp:3128")
        .start();
    let data = source(&fake.url()).fetch().await.unwrap();
    assert_eq!(data.instance_id.as_deref(), Some(UUID));
    assert_eq!(
        pairs(&data),
        vec![
            pair("rs_agent:http_proxy", "proxy.corp:3128"),
            pair("rs_agent:type", "right_link_lite"),
        ]
    );
    assert_eq!(data.from, fake.url());
}

#[tokio::test]
async fn reads_a_config_drive_directory() {
    let dir = tempfile::tempdir().unwrap();
    FakeMetadata::builder(Cloud::OpenStack)
        .tag("rs_agent:type", "from-the-drive")
        .instance_id("11111111-2222-3333-4444-555555555555")
        .write_config_drive(dir.path());
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let data = source(url.as_str()).fetch().await.unwrap();
    assert_eq!(
        data.instance_id.as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert_eq!(pairs(&data), vec![pair("rs_agent:type", "from-the-drive")]);
}

#[tokio::test]
async fn a_directory_that_is_not_a_config_drive_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let err = source(url.as_str()).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 66, "{err}");
    assert!(err.message().contains("meta_data.json"), "{err}");
}

#[tokio::test]
async fn an_instance_without_meta_has_no_tags() {
    let fake = FakeMetadata::builder(Cloud::OpenStack).no_tags().start();
    let data = source(&fake.url()).fetch().await.unwrap();
    assert!(data.tags.is_empty());
    assert_eq!(data.instance_id.as_deref(), Some(UUID));
}

#[tokio::test]
async fn a_control_character_is_refused() {
    let fake = FakeMetadata::builder(Cloud::OpenStack)
        .tag("rs_agent:type", "a\rb")
        .start();
    let err = source(&fake.url()).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 65, "{err}");
    assert_eq!(
        err.tag_fields(),
        Some(("rs_agent:type", "openstack instance tags")),
        "{err:?}"
    );
}

#[test]
fn meta_of_another_shape_is_refused_and_other_keys_are_ignored() {
    let data = parse(
        &json!({"uuid": UUID, "meta": {"note": 7, "rs_agent:type": "x"}}),
        "test",
    )
    .unwrap();
    assert_eq!(pairs(&data), vec![pair("rs_agent:type", "x")]);
    for bad in [
        json!({"uuid": UUID, "meta": {"rs_agent:type": 7}}),
        json!({"uuid": UUID, "meta": ["rs_agent:type"]}),
        json!(["not", "an", "object"]),
    ] {
        let err = parse(&bad, "test").unwrap_err();
        assert_eq!(err.exit_code(), 65, "{bad}: {err}");
    }
}

/// The old main's finding, and what the fuzz target `openstack_answer`
/// checks, on the pure parser the source calls.
mod parser {
    use super::super::parse_text;
    use super::UUID;
    use crate::util::text::forbidden_char;

    #[test]
    fn a_key_with_a_tab_or_newline_is_quoted_escaped_in_the_error() {
        // Old main: "meta rs_agent:ty<TAB>pe is a number", raw, and a
        // newline started a forged line of its own.
        for (body, escaped) in [
            (
                r#"{"meta":{"rs_agent:ty\tpe":7}}"#,
                "meta rs_agent:ty\\u{9}pe is a number",
            ),
            (
                r#"{"meta":{"rs_agent:type\n2026-01-01T00:00:00Z  INFO forged":7}}"#,
                "meta rs_agent:type\\u{a}2026-01-01T00:00:00Z  INFO forged is a number",
            ),
            (r#"{"meta":{"rs_agent:ty\tpe":"x"}}"#, "rs_agent:ty\\u{9}pe"),
        ] {
            let err = parse_text(body.as_bytes(), "http://h").unwrap_err();
            assert_eq!(err.exit_code(), 65, "{body}: {err}");
            assert!(err.message().contains(escaped), "{err}");
            assert_eq!(forbidden_char(err.message()), None, "{err:?}");
        }
    }

    #[test]
    fn text_that_is_not_json_is_refused_without_a_hidden_character() {
        for body in [&b"{\"meta\":\"\x1b"[..], b"\xff", "\u{202e}".as_bytes()] {
            let err = parse_text(body, "file:///mnt/a\nb").unwrap_err();
            assert_eq!(err.exit_code(), 65, "{err}");
            assert!(err.message().contains("file:///mnt/a\\u{a}b"), "{err}");
            assert_eq!(forbidden_char(err.message()), None, "{err:?}");
        }
    }

    #[test]
    fn a_uuid_is_kept_as_written() {
        let id = format!("{UUID}\r2026-01-01T00:00:00Z  INFO forged");
        let body = serde_json::json!({ "uuid": id }).to_string();
        let data = parse_text(body.as_bytes(), "http://h").unwrap();
        assert_eq!(data.instance_id.as_deref(), Some(id.as_str()));
        assert!(data.tags.is_empty());
    }
}
