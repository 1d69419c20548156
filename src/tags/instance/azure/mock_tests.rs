//! The Azure source against a fake IMDS that enforces what the real one does
//! (400 without `Metadata: true` or without `api-version`), serving
//! `fixtures/azure/`.

use std::time::Duration;

use testkit::metadata::{Cloud, FakeMetadata};
use testkit::{Origin, Reply};

use super::{Azure, API_VERSION};
use crate::tags::instance::test_support::{config, pairs};
use crate::tags::instance::InstanceSource;

const MINUTE: Duration = Duration::from_secs(60);

fn source(url: &str) -> Azure {
    Azure::new(&config(url, true, MINUTE)).unwrap()
}

#[tokio::test]
async fn reads_tags_list_and_vm_id_with_the_header_and_the_pinned_version() {
    let fake = FakeMetadata::builder(Cloud::Azure)
        .tag("rs_agent:http_proxy", "proxy.corp:3128")
        .start();
    let data = source(&fake.url()).fetch().await.unwrap();
    assert_eq!(
        data.instance_id.as_deref(),
        Some("02aab8a4-74ef-476e-8182-f6d2ba4166a6")
    );
    assert_eq!(
        pairs(&data),
        vec![
            (
                "rs_agent:http_proxy".to_string(),
                "proxy.corp:3128".to_string()
            ),
            ("rs_agent:type".to_string(), "right_link_lite".to_string()),
        ]
    );
    assert!(fake.refused().is_empty(), "{:?}", fake.refused());
    for request in fake.requests() {
        assert_eq!(request.header("metadata"), Some("true"));
        assert!(
            request
                .target
                .contains(&format!("api-version={API_VERSION}")),
            "{request:?}"
        );
    }
}

#[tokio::test]
async fn gone_while_imds_starts_is_retried() {
    let fake = FakeMetadata::builder(Cloud::Azure)
        .answer_first(&[410, 410, 429])
        .start();
    let data = source(&fake.url()).fetch().await.unwrap();
    assert_eq!(data.tries.tries, 4);
}

#[tokio::test]
async fn no_tags_is_an_empty_list() {
    let fake = FakeMetadata::builder(Cloud::Azure).no_tags().start();
    let data = source(&fake.url()).fetch().await.unwrap();
    assert!(data.tags.is_empty());
}

#[tokio::test]
async fn a_control_character_is_refused() {
    let fake = FakeMetadata::builder(Cloud::Azure)
        .tag("rs_agent:mime_shellscript", "https://h/x\u{0}.sh")
        .start();
    let err = source(&fake.url()).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 65, "{err}");
    assert_eq!(
        err.tag_fields(),
        Some(("rs_agent:mime_shellscript", "azure instance tags")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_tags_list_of_another_shape_is_refused_without_showing_it() {
    for body in [
        r#"{"name":"rs_agent:type"}"#,
        r#"[{"name":"rs_agent:type","value":7}]"#,
        r#"[{"value":"hunter2"}]"#,
    ] {
        let origin = Origin::builder(None)
            .route(
                "/metadata/instance/compute/vmId",
                vec![],
                Reply::ok("02aab8a4-74ef-476e-8182-f6d2ba4166a6"),
            )
            .route(
                "/metadata/instance/compute/tagsList",
                vec![],
                Reply::ok(body),
            )
            .start();
        let err = source(&origin.url("/")).fetch().await.unwrap_err();
        assert_eq!(err.exit_code(), 65, "{body}: {err}");
        assert!(err.message().contains("tagsList"), "{err}");
        assert!(!err.message().contains("hunter2"), "{err}");
    }
}

/// The pure parser the source calls, on the answers fuzzing and the old
/// main's findings are made of (fuzz/corpus/azure_answer/finding-*).
mod parser {
    use super::super::{parse, AzureAnswer};
    use crate::util::text::forbidden_char;

    fn answer(vm_id: &str, tags_list: &str) -> AzureAnswer {
        AzureAnswer {
            vm_id: vm_id.into(),
            tags_list: tags_list.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_name_with_a_hidden_character_is_refused_and_quoted_escaped() {
        for (list, escaped) in [
            (
                r#"[{"name":"rs_agent:ty\tpe","value":"x"}]"#,
                "rs_agent:ty\\u{9}pe",
            ),
            (
                r#"[{"name":"rs_agent:ty\npe\u001b[2J","value":"x"}]"#,
                "rs_agent:ty\\u{a}pe\\u{1b}[2J",
            ),
        ] {
            let err = parse(&answer("vm", list), "http://h").unwrap_err();
            assert_eq!(err.exit_code(), 65, "{list}: {err}");
            assert!(err.message().contains(escaped), "{err}");
            assert_eq!(forbidden_char(err.message()), None, "{err:?}");
        }
    }

    #[test]
    fn a_tags_list_that_is_not_json_is_refused_without_echoing_it() {
        for body in [
            "[\"\u{1b}[2J",
            "\u{202e}",
            "[{\"name\":\"rs_agent:type\",\"value\":\"hunter2\"",
        ] {
            let err = parse(&answer("vm", body), "http://h").unwrap_err();
            assert_eq!(err.exit_code(), 65, "{body:?}: {err}");
            assert!(err.message().contains("not valid JSON"), "{err}");
            assert!(!err.message().contains("hunter2"), "{err}");
            assert_eq!(forbidden_char(err.message()), None, "{err:?}");
        }
    }

    #[test]
    fn a_vm_id_is_kept_as_written_and_an_empty_one_is_none() {
        let id = "02aab8a4\n2026-01-01T00:00:00Z  INFO forged";
        let data = parse(&answer(&format!("{id}\n"), "[]"), "http://h").unwrap();
        assert_eq!(data.instance_id.as_deref(), Some(id));
        assert_eq!(
            parse(&answer(" ", "[]"), "http://h").unwrap().instance_id,
            None
        );
    }
}
