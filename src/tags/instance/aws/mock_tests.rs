//! The AWS source against a fake IMDSv2 that enforces what the real one does
//! (401 without a session token, 400 without the TTL header, 403 for a token
//! PUT that came through a proxy), serving `fixtures/aws/`.

use std::time::Duration;

use testkit::metadata::{Cloud, FakeMetadata};

use super::Aws;
use crate::tags::instance::test_support::{config, pair, pairs};
use crate::tags::instance::InstanceSource;

const MINUTE: Duration = Duration::from_secs(60);

fn source(fake: &FakeMetadata, named: bool, deadline: Duration) -> Aws {
    Aws::new(&config(&fake.url(), named, deadline)).unwrap()
}

#[tokio::test]
async fn reads_the_instance_id_and_only_the_rs_agent_tags_with_a_session_token() {
    let fake = FakeMetadata::builder(Cloud::Aws)
        .tag("rs_agent:http_proxy", "proxy.corp:3128")
        .start();
    let data = source(&fake, true, MINUTE).fetch().await.unwrap();
    assert_eq!(data.instance_id.as_deref(), Some("i-0b22a22eec53b9321"));
    assert_eq!(
        pairs(&data),
        vec![
            pair("rs_agent:http_proxy", "proxy.corp:3128"),
            pair("rs_agent:type", "right_link_lite"),
        ]
    );
    assert_eq!(data.tries.tries, 1);
    assert!(fake.refused().is_empty(), "{:?}", fake.refused());

    let requests = fake.requests();
    let first = &requests[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("PUT", "/latest/api/token")
    );
    assert_eq!(
        first.header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some(super::TOKEN_TTL_SECONDS.to_string().as_str())
    );
    for get in &requests[1..] {
        assert!(get.header("x-aws-ec2-metadata-token").is_some(), "{get:?}");
    }
    // Tags that are not tagstrap's are never read, only listed.
    assert!(
        !requests.iter().any(|r| r.path.ends_with("/Name")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn tags_off_is_an_error_that_says_how_to_turn_them_on_when_aws_was_named() {
    let fake = FakeMetadata::builder(Cloud::Aws).tags_disabled().start();
    let err = source(&fake, true, MINUTE).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 66, "{err}");
    let (status, asked, by) = err.status_fields().expect("the 404 that said so");
    assert_eq!((status, asked), (404, "latest/meta-data/tags/instance"));
    assert!(
        by.starts_with("the aws metadata service at http://"),
        "{by}"
    );
    let message = err.message();
    assert!(
        message.contains(
            "modify-instance-metadata-options --instance-id i-0b22a22eec53b9321 \
             --instance-metadata-tags enabled"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn tags_off_on_a_detected_cloud_leaves_the_other_layers_to_work() {
    let fake = FakeMetadata::builder(Cloud::Aws).tags_disabled().start();
    let data = source(&fake, false, MINUTE).fetch().await.unwrap();
    assert!(data.tags.is_empty());
    assert_eq!(data.instance_id.as_deref(), Some("i-0b22a22eec53b9321"));
}

#[tokio::test]
async fn an_instance_without_tags_gives_none() {
    let fake = FakeMetadata::builder(Cloud::Aws).no_tags().start();
    let data = source(&fake, true, MINUTE).fetch().await.unwrap();
    assert!(data.tags.is_empty());
    assert!(data.instance_id.is_some());
}

#[tokio::test]
async fn a_control_character_in_a_tag_value_is_refused() {
    let fake = FakeMetadata::builder(Cloud::Aws)
        .tag("rs_agent:http_no_proxy", "a\u{1b}[2Jb")
        .start();
    let err = source(&fake, true, MINUTE).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 65, "{err}");
    assert_eq!(
        err.tag_fields(),
        Some(("rs_agent:http_no_proxy", "aws instance tags")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_control_character_in_a_tag_that_is_not_ours_is_not_read() {
    let fake = FakeMetadata::builder(Cloud::Aws)
        .tag("Description", "line one\nline two")
        .start();
    let data = source(&fake, true, MINUTE).fetch().await.unwrap();
    assert_eq!(pairs(&data), vec![pair("rs_agent:type", "right_link_lite")]);
}

#[tokio::test]
async fn a_service_that_is_still_starting_is_retried() {
    let fake = FakeMetadata::builder(Cloud::Aws)
        .answer_first(&[503, 500])
        .start();
    let data = source(&fake, true, MINUTE).fetch().await.unwrap();
    assert_eq!(data.tries.tries, 3);
    assert_eq!(data.instance_id.as_deref(), Some("i-0b22a22eec53b9321"));
}

#[tokio::test]
async fn a_service_that_never_comes_up_is_given_up_on_at_the_deadline() {
    let reserved = FakeMetadata::builder(Cloud::Aws).reserve();
    let aws = Aws::new(&config(&reserved.url(), true, Duration::from_secs(1))).unwrap();
    let err = aws.fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 69, "{err}");
    assert!(
        err.message()
            .starts_with("the aws metadata service at http://"),
        "{err}"
    );
    assert!(err.message().contains("not reachable"), "{err}");
}

#[tokio::test]
async fn the_id_changes_when_the_instance_does() {
    let fake = FakeMetadata::builder(Cloud::Aws).start();
    let aws = source(&fake, true, MINUTE);
    let first = aws.fetch().await.unwrap();
    fake.set_instance_id("i-0aaaaaaaaaaaaaaaa");
    let second = aws.fetch().await.unwrap();
    assert_eq!(first.instance_id.as_deref(), Some("i-0b22a22eec53b9321"));
    assert_eq!(second.instance_id.as_deref(), Some("i-0aaaaaaaaaaaaaaaa"));
}

/// An EC2-compatible service without IMDSv2, shaped like one: 404 to the
/// token PUT, plain GETs answered.
fn v1_only(put_status: u16) -> testkit::Origin {
    use testkit::{Origin, Reply};
    Origin::builder(None)
        .route("/latest/api/token", vec![], Reply::status(put_status))
        .route(
            "/latest/meta-data/instance-id",
            vec![],
            Reply::ok("i-00000000000000001"),
        )
        .route(
            "/latest/meta-data/tags/instance",
            vec![],
            Reply::ok("Name\nrs_agent:type"),
        )
        .route(
            "/latest/meta-data/tags/instance/rs_agent:type",
            vec![],
            Reply::ok("v1"),
        )
        .start()
}

#[tokio::test]
async fn a_service_without_session_tokens_is_read_the_v1_way() {
    for status in [404, 405] {
        let origin = v1_only(status);
        let aws = Aws::new(&config(&origin.url("/"), true, MINUTE)).unwrap();
        let data = aws.fetch().await.unwrap();
        assert_eq!(pairs(&data), vec![pair("rs_agent:type", "v1")], "{status}");
        assert!(origin
            .requests()
            .iter()
            .all(|r| r.header("x-aws-ec2-metadata-token").is_none()));
    }
}

#[tokio::test]
async fn a_turned_off_metadata_endpoint_is_refused_with_the_fix_when_aws_was_named() {
    let origin = v1_only(403);
    let aws = Aws::new(&config(&origin.url("/"), true, MINUTE)).unwrap();
    let err = aws.fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 77, "{err}");
    assert!(err.message().contains("--http-endpoint enabled"), "{err}");
    assert_eq!(origin.requests().len(), 1, "not retried");

    // Only detected: the other layers still apply.
    let aws = Aws::new(&config(&origin.url("/"), false, MINUTE)).unwrap();
    let data = aws.fetch().await.unwrap();
    assert!(data.tags.is_empty() && data.instance_id.is_none());
}

/// The pure parser the source calls, on the answers fuzzing and the old
/// main's findings are made of (fuzz/corpus/aws_answer/finding-*).
mod parser {
    use super::super::{listed_keys, parse, AwsAnswer};
    use crate::util::text::forbidden_char;

    fn answer(id: &str, pairs: &[(&str, Option<&str>)]) -> AwsAnswer {
        AwsAnswer {
            instance_id: Some(id.to_string()),
            listing: pairs.iter().map(|(k, _)| *k).collect::<Vec<_>>().join("\n"),
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn a_key_with_a_hidden_character_is_refused_and_quoted_escaped() {
        for (key, escaped) in [
            ("rs_agent:ty\tpe", "rs_agent:ty\\u{9}pe"),
            ("rs_agent:ty\rINFO forged", "rs_agent:ty\\u{d}INFO forged"),
            ("rs_agent:ty\u{1b}[2Jpe", "rs_agent:ty\\u{1b}[2Jpe"),
            ("rs_agent:ty\u{202e}pe", "rs_agent:ty\\u{202e}pe"),
        ] {
            let err = parse(&answer("i-1", &[(key, Some("x"))]), "http://h").unwrap_err();
            assert_eq!(err.exit_code(), 65, "{err}");
            assert!(err.message().contains(escaped), "{err}");
            let origin = err.tag_fields().map(|(_, origin)| origin);
            assert_eq!(origin, Some("aws instance tags"), "{err:?}");
            assert_eq!(forbidden_char(err.message()), None, "{err:?}");
        }
    }

    #[test]
    fn an_instance_id_with_hidden_characters_is_kept_as_written_and_trimmed() {
        let id = "i-0a\n2026-01-01T00:00:00Z  INFO forged\u{1b}[2J";
        let data = parse(&answer(&format!(" {id}\n"), &[]), "http://h").unwrap();
        assert_eq!(data.instance_id.as_deref(), Some(id));
        let missing = AwsAnswer {
            instance_id: Some(" \n".into()),
            ..AwsAnswer::default()
        };
        let err = parse(&missing, "http://h").unwrap_err();
        assert_eq!(err.exit_code(), 69, "{err}");
    }

    #[test]
    fn only_listed_rs_agent_keys_with_a_value_become_tags() {
        let listing = "Name\nrs_agent:type\n\n  \nrs_agent:http_no_proxy\nrs_agent:gone";
        let keys = listed_keys(listing);
        assert_eq!(
            keys.ours,
            ["rs_agent:type", "rs_agent:http_no_proxy", "rs_agent:gone"]
        );
        assert_eq!(keys.skipped, 1);
        let answer = AwsAnswer {
            instance_id: Some("i-1".into()),
            listing: listing.into(),
            values: vec![
                ("rs_agent:type".into(), Some("lite".into())),
                ("rs_agent:http_no_proxy".into(), Some(".corp".into())),
                ("rs_agent:gone".into(), None),
            ],
        };
        let data = parse(&answer, "http://h").unwrap();
        let keys: Vec<&str> = data.tags.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["rs_agent:type", "rs_agent:http_no_proxy"]);
    }
}

#[tokio::test]
async fn a_key_with_a_tab_is_asked_for_as_listed_not_as_another_key() {
    // The URL parser drops a tab from a path segment it is given: this key
    // was asked for as "rs_agent:type" (found by tests/hostile_metadata.rs).
    let fake = FakeMetadata::builder(Cloud::Aws)
        .tag("rs_agent:ty\tpe", "x")
        .start();
    let err = source(&fake, true, MINUTE).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 65, "{err}");
    assert!(err.message().contains("rs_agent:ty\\u{9}pe"), "{err}");
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.contains(&"/latest/meta-data/tags/instance/rs_agent:ty%09pe".to_string()),
        "{paths:?}"
    );
}

#[tokio::test]
async fn the_tags_off_message_shows_a_hostile_instance_id_escaped() {
    let fake = FakeMetadata::builder(Cloud::Aws)
        .tags_disabled()
        .instance_id("i-0a\n2026-01-01T00:00:00Z  INFO forged")
        .start();
    let err = source(&fake, true, MINUTE).fetch().await.unwrap_err();
    assert_eq!(err.exit_code(), 66, "{err}");
    assert!(
        err.message()
            .contains("--instance-id i-0a\\u{a}2026-01-01T00:00:00Z  INFO forged"),
        "{err}"
    );
    assert_eq!(crate::util::text::forbidden_char(err.message()), None);
}
