//! The GCE source against a fake metadata server that enforces what the real
//! one does (403 without `Metadata-Flavor: Google`), serving `fixtures/gce/`.

use std::time::Duration;

use testkit::metadata::{Cloud, FakeMetadata};
use testkit::{Origin, Reply};

use super::Gce;
use crate::tags::instance::test_support::{config, pairs};
use crate::tags::instance::InstanceSource;
use crate::tags::Origin as TagOrigin;

const MINUTE: Duration = Duration::from_secs(60);

fn source(url: &str) -> Gce {
    Gce::new(&config(url, true, MINUTE)).unwrap()
}

#[tokio::test]
async fn reads_the_tags_attribute_as_a_tags_file_with_the_flavor_header() {
    let fake = FakeMetadata::builder(Cloud::Gce)
        .tag("rs_agent:http_proxy", "proxy.corp:3128")
        .start();
    let data = source(&fake.url()).fetch().await.unwrap();
    assert_eq!(data.instance_id.as_deref(), Some("4520031799277581759"));
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
    // Each tag knows its line in the attribute, for error messages.
    assert!(data.tags.iter().all(|t| matches!(
        t.origin,
        TagOrigin::Instance {
            source: "gce",
            line: Some(_)
        }
    )));
    assert!(fake.refused().is_empty(), "{:?}", fake.refused());
    assert!(fake
        .requests()
        .iter()
        .all(|r| r.header("metadata-flavor") == Some("Google")));
}

#[tokio::test]
async fn an_instance_without_the_attribute_has_no_tags() {
    let fake = FakeMetadata::builder(Cloud::Gce).no_tags().start();
    let data = source(&fake.url()).fetch().await.unwrap();
    assert!(data.tags.is_empty());
    assert!(data.instance_id.is_some());
}

#[tokio::test]
async fn a_control_character_is_refused_naming_the_line() {
    let fake = FakeMetadata::builder(Cloud::Gce)
        .tag("rs_agent:type", "lite\u{7}")
        .start();
    let err = source(&fake.url()).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 65, "{err}");
    let (key, origin) = err.tag_fields().expect("a tag error");
    assert_eq!(key, "rs_agent:type", "{err:?}");
    assert!(origin.starts_with("gce instance tags, line "), "{err:?}");
}

#[tokio::test]
async fn an_answer_without_the_flavor_header_is_not_trusted() {
    let impostor = Origin::builder(None)
        .route("/computeMetadata/v1/instance/id", vec![], Reply::ok("1"))
        .start();
    let err = source(&impostor.url("/")).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 69, "{err}");
    assert!(err.message().contains("Metadata-Flavor: Google"), "{err}");
    assert_eq!(impostor.requests().len(), 1, "not retried");
}

#[tokio::test]
async fn a_busy_server_is_retried() {
    let fake = FakeMetadata::builder(Cloud::Gce)
        .answer_first(&[503, 429])
        .start();
    let data = source(&fake.url()).fetch().await.unwrap();
    assert_eq!(data.tries.tries, 3);
}

/// The pure parser the source calls, on the answers fuzzing and the old
/// main's findings are made of (fuzz/corpus/gce_answer/finding-*).
mod parser {
    use super::super::{parse, GceAnswer};
    use crate::util::text::forbidden_char;

    fn answer(id: &str, tags: &str) -> GceAnswer {
        GceAnswer {
            instance_id: Some(id.into()),
            tags: Some(tags.into()),
        }
    }

    #[test]
    fn a_key_or_value_with_a_hidden_character_is_refused_with_its_line() {
        for text in [
            "# tags\nrs_agent:ty\tpe=x\n",
            "# tags\nrs_agent:type=a\rINFO forged\n",
            "# tags\nrs_agent:ty\u{1b}[2Jpe=x\n",
            "# tags\nrs_agent:type\nINFO forged=x\n",
        ] {
            let err = parse(&answer("1", text), "http://h").unwrap_err();
            assert_eq!(err.exit_code(), 65, "{text:?}: {err}");
            assert!(err.message().contains("gce instance tags, line 2"), "{err}");
            assert_eq!(forbidden_char(err.message()), None, "{err:?}");
        }
    }

    #[test]
    fn an_instance_id_is_kept_as_written_and_other_keys_are_dropped() {
        let id = "45\r2026-01-01T00:00:00Z  INFO forged";
        let data = parse(&answer(id, "Name=web\nrs_agent:type=lite\n"), "http://h").unwrap();
        assert_eq!(data.instance_id.as_deref(), Some(id));
        assert_eq!(data.tags.len(), 1);
        let none = GceAnswer {
            instance_id: Some("1".into()),
            tags: None,
        };
        assert!(parse(&none, "http://h").unwrap().tags.is_empty());
        let err = parse(&GceAnswer::default(), "http://h").unwrap_err();
        assert_eq!(err.exit_code(), 69, "{err}");
    }
}
