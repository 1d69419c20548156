//! Proves each fake metadata service enforces its cloud's rules and serves
//! the documented formats.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::process::Command;

use serde_json::Value;
use testkit::{http_request, Cloud, FakeMetadata, HttpResponse};

fn port(md: &FakeMetadata) -> u16 {
    let url = md.url();
    url.rsplit(':')
        .next()
        .unwrap()
        .parse()
        .expect("port in url")
}

fn get(md: &FakeMetadata, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(port(md), "GET", path, headers, None).expect("request")
}

fn json(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// An IMDSv2 session token with a 60 s TTL.
fn aws_token(md: &FakeMetadata) -> String {
    let r = http_request(
        port(md),
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let token = r.text();
    assert_eq!(token.len(), 56);
    token
}

fn aws_get(md: &FakeMetadata, token: &str, path: &str) -> HttpResponse {
    get(md, path, &[("X-aws-ec2-metadata-token", token)])
}

#[test]
fn cloud_names_match_fixture_dirs() {
    let mut names: Vec<&str> = Cloud::ALL.iter().map(|c| c.name()).collect();
    for c in Cloud::ALL {
        assert!(c.fixture_dir().is_dir(), "{:?}", c.fixture_dir());
    }
    // And every cloud's fixture folder has its fake: the folders under
    // fixtures/ are exactly the clouds.
    let root = Cloud::Aws.fixture_dir().parent().unwrap().to_path_buf();
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort_unstable();
    dirs.sort_unstable();
    assert_eq!(names, dirs, "the clouds and the folders of {root:?}");
}

#[test]
fn aws_requires_a_session_token() {
    let md = FakeMetadata::builder(Cloud::Aws).start();
    assert!(!md.url().ends_with('/'));
    assert!(format!("{md:?}").contains(&md.url()));

    let r = get(&md, "/latest/meta-data/instance-id", &[]);
    assert_eq!(r.status, 401);
    let r = aws_get(&md, "not-a-token", "/latest/meta-data/instance-id");
    assert_eq!(r.status, 401);

    let r = http_request(port(&md), "PUT", "/latest/api/token", &[], None).unwrap();
    assert_eq!(r.status, 400);
    for bad in ["0", "21601", "ten"] {
        let h = [("X-aws-ec2-metadata-token-ttl-seconds", bad)];
        let r = http_request(port(&md), "PUT", "/latest/api/token", &h, None).unwrap();
        assert_eq!(r.status, 400, "ttl {bad}");
    }
    let h = [
        ("X-aws-ec2-metadata-token-ttl-seconds", "21600"),
        ("X-Forwarded-For", "10.0.0.1"),
    ];
    let r = http_request(port(&md), "PUT", "/latest/api/token", &h, None).unwrap();
    assert_eq!(r.status, 403);
    let r = get(&md, "/latest/api/token", &[]);
    assert_eq!(r.status, 405);

    let token = aws_token(&md);
    let r = aws_get(&md, &token, "/latest/meta-data/instance-id");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "i-0b22a22eec53b9321");
    assert_eq!(md.instance_id(), "i-0b22a22eec53b9321");

    let refused: Vec<u16> = md.refused().iter().map(|(_, s)| *s).collect();
    assert_eq!(refused, [401, 401, 400, 400, 400, 400, 403, 405]);
    let (first, _) = &md.refused()[0];
    assert_eq!(first.path, "/latest/meta-data/instance-id");
    assert_eq!(md.requests().len(), 10);
}

#[test]
fn aws_serves_tags() {
    let md = FakeMetadata::builder(Cloud::Aws)
        .tag("rs_agent:http_proxy", "http://127.0.0.1:3128")
        .instance_id("i-0123456789abcdef0")
        .start();
    let token = aws_token(&md);

    let r = aws_get(&md, &token, "/latest/meta-data/tags/instance");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "Environment\nName\nrs_agent:http_proxy\nrs_agent:type"
    );
    let r = aws_get(
        &md,
        &token,
        "/latest/meta-data/tags/instance/rs_agent%3Atype",
    );
    assert_eq!(r.text(), "right_link_lite");
    let r = aws_get(&md, &token, "/latest/meta-data/tags/instance/Name");
    assert_eq!(r.text(), "web-1");
    let r = aws_get(&md, &token, "/latest/meta-data/tags/instance/nope");
    assert_eq!(r.status, 404);
    let r = aws_get(&md, &token, "/latest/meta-data/instance-id");
    assert_eq!(r.text(), "i-0123456789abcdef0");

    md.set_tag("late", "a\u{1b}b");
    md.set_instance_id("i-late");
    let r = aws_get(&md, &token, "/latest/meta-data/tags/instance/late");
    assert_eq!(r.body, b"a\x1bb");
    let r = aws_get(&md, &token, "/latest/meta-data/instance-id");
    assert_eq!(r.text(), "i-late");

    let r = aws_get(&md, &token, "/latest/meta-data/");
    assert!(r.text().lines().any(|l| l == "tags/"), "{}", r.text());
    assert!(r.text().lines().any(|l| l == "instance-id"), "{}", r.text());
    let r = aws_get(&md, &token, "/latest/meta-data/no-such-thing");
    assert_eq!(r.status, 404);
    assert!(md.refused().is_empty());
}

#[test]
fn aws_without_tags() {
    let md = FakeMetadata::builder(Cloud::Aws).no_tags().start();
    let token = aws_token(&md);
    let r = aws_get(&md, &token, "/latest/meta-data/tags/instance");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    let md = FakeMetadata::builder(Cloud::Aws).tags_disabled().start();
    let token = aws_token(&md);
    for path in [
        "/latest/meta-data/tags/instance",
        "/latest/meta-data/tags/instance/Name",
    ] {
        assert_eq!(aws_get(&md, &token, path).status, 404, "{path}");
    }
    assert_eq!(
        aws_get(&md, &token, "/latest/meta-data/instance-id").status,
        200
    );
}

#[test]
#[should_panic(expected = "AWS only")]
fn tags_disabled_is_aws_only() {
    let _ = FakeMetadata::builder(Cloud::Gce).tags_disabled();
}

#[test]
fn gce_requires_metadata_flavor() {
    let md = FakeMetadata::builder(Cloud::Gce).start();
    let path = "/computeMetadata/v1/instance/attributes/rs_agent-tags";
    let r = get(&md, path, &[]);
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Metadata-Flavor"), "{}", r.text());
    assert_eq!(r.header("metadata-flavor"), Some("Google"));
    let r = get(&md, path, &[("Metadata-Flavor", "google")]);
    assert_eq!(r.status, 403);
    let r = get(
        &md,
        path,
        &[
            ("Metadata-Flavor", "Google"),
            ("X-Forwarded-For", "10.0.0.1"),
        ],
    );
    assert_eq!(r.status, 403);
    let refused: Vec<u16> = md.refused().iter().map(|(_, s)| *s).collect();
    assert_eq!(refused, [403, 403, 403]);

    let flavor = [("Metadata-Flavor", "Google")];
    let r = get(&md, path, &flavor);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("metadata-flavor"), Some("Google"));
    assert_eq!(r.header("content-type"), Some("application/text"));
    assert!(r
        .text()
        .lines()
        .any(|l| l == "rs_agent:type=right_link_lite"));
    assert!(r.text().lines().any(|l| l.starts_with('#')));

    let r = get(&md, "/computeMetadata/v1/instance/id", &flavor);
    assert_eq!(r.text(), "4520031799277581759");
    let r = get(
        &md,
        "/computeMetadata/v1/instance/attributes/enable-oslogin",
        &flavor,
    );
    assert_eq!(r.text(), "TRUE");
    let r = get(&md, "/computeMetadata/v1/instance/attributes/", &flavor);
    assert_eq!(r.text(), "enable-oslogin\nrs_agent-tags\n");
    let r = get(&md, "/computeMetadata/v1/instance/attributes", &flavor);
    assert_eq!(r.status, 301);
    let r = get(&md, "/computeMetadata/v1/instance/?recursive=true", &flavor);
    let v = json(&r);
    assert_eq!(v["id"], 4520031799277581759u64);
    assert_eq!(
        v["machineType"],
        "projects/123456789012/machineTypes/e2-small"
    );
    assert_eq!(v["attributes"]["enable-oslogin"], "TRUE");
    let r = get(&md, "/computeMetadata/v1/instance/nope", &flavor);
    assert_eq!(r.status, 404);
}

#[test]
fn gce_tag_overrides() {
    let md = FakeMetadata::builder(Cloud::Gce)
        .tag("rs_agent:type", "other")
        .tag("rs_agent:http_proxy", "http://127.0.0.1:3128")
        .instance_id("42")
        .start();
    let flavor = [("Metadata-Flavor", "Google")];
    let path = "/computeMetadata/v1/instance/attributes/rs_agent-tags";
    let text = get(&md, path, &flavor).text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        lines,
        [
            "rs_agent:type=other",
            "rs_agent:http_proxy=http://127.0.0.1:3128"
        ]
    );
    assert!(text.ends_with('\n'));
    assert_eq!(
        get(&md, "/computeMetadata/v1/instance/id", &flavor).text(),
        "42"
    );

    let md = FakeMetadata::builder(Cloud::Gce).no_tags().start();
    assert_eq!(get(&md, path, &flavor).status, 404);
    md.set_tag("k", "v");
    assert_eq!(get(&md, path, &flavor).text(), "k=v\n");
}

#[test]
fn azure_requires_header_and_api_version() {
    let md = FakeMetadata::builder(Cloud::Azure).start();
    let path = "/metadata/instance/compute/tagsList?api-version=2021-02-01";
    let r = get(&md, path, &[]);
    assert_eq!(r.status, 400);
    assert_eq!(
        json(&r)["error"],
        "Bad request. Required metadata header not specified"
    );
    let r = get(
        &md,
        "/metadata/instance/compute/tagsList",
        &[("Metadata", "true")],
    );
    assert_eq!(r.status, 400);
    let v = json(&r);
    assert!(v["error"].as_str().unwrap().contains("api-version"));
    assert!(v["newest-versions"].is_array());
    let r = get(
        &md,
        "/metadata/instance?api-version=1999-01-01",
        &[("Metadata", "true")],
    );
    assert_eq!(r.status, 400);
    let r = get(
        &md,
        path,
        &[("Metadata", "true"), ("X-Forwarded-For", "10.0.0.1")],
    );
    assert_eq!(r.status, 400);
    let refused: Vec<u16> = md.refused().iter().map(|(_, s)| *s).collect();
    assert_eq!(refused, [400, 400, 400, 400]);

    let h = [("Metadata", "true")];
    let r = get(&md, path, &h);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        json(&r),
        serde_json::json!([
            { "name": "Department", "value": "IT" },
            { "name": "rs_agent:type", "value": "right_link_lite" },
        ])
    );
    let r = get(
        &md,
        "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text",
        &h,
    );
    assert_eq!(r.text(), "02aab8a4-74ef-476e-8182-f6d2ba4166a6");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = get(
        &md,
        "/metadata/instance/compute/vmId?api-version=2021-02-01",
        &h,
    );
    assert_eq!(r.text(), "\"02aab8a4-74ef-476e-8182-f6d2ba4166a6\"");
    let r = get(&md, "/metadata/instance?api-version=2021-02-01", &h);
    let v = json(&r);
    assert_eq!(v["compute"]["osType"], "Linux");
    assert!(v["network"]["interface"].is_array());
    let r = get(
        &md,
        "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2021-02-01&format=text",
        &h,
    );
    assert_eq!(r.text(), "10.0.0.4");
    let r = get(
        &md,
        "/metadata/instance/compute/nope?api-version=2021-02-01",
        &h,
    );
    assert_eq!(r.status, 404);
    assert_eq!(json(&r)["error"], "Not found");
}

#[test]
fn azure_tag_overrides_and_startup_gone() {
    let md = FakeMetadata::builder(Cloud::Azure)
        .tag("rs_agent:odd", "a\u{1b}b")
        .tag("Department", "Ops")
        .instance_id("11111111-2222-3333-4444-555555555555")
        .answer_first(&[410])
        .start();
    let h = [("Metadata", "true")];
    let path = "/metadata/instance/compute?api-version=2021-02-01";
    let r = get(&md, path, &h);
    assert_eq!(r.status, 410);
    assert!(json(&r)["error"].is_string());
    let r = get(&md, path, &h);
    assert_eq!(r.status, 200);
    assert!(r.text().contains(r#""value":"a\u001bb""#), "{}", r.text());
    let v = json(&r);
    let list = v["tagsList"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["value"], "Ops");
    assert_eq!(list[2]["name"], "rs_agent:odd");
    assert_eq!(list[2]["value"], "a\u{1b}b");
    assert_eq!(
        v["tags"],
        "Department:Ops;rs_agent:type:right_link_lite;rs_agent:odd:a\u{1b}b"
    );
    assert_eq!(v["vmId"], "11111111-2222-3333-4444-555555555555");
    assert!(md.refused().is_empty());

    let md = FakeMetadata::builder(Cloud::Azure).no_tags().start();
    let v = json(&get(&md, path, &h));
    assert_eq!(v["tagsList"], serde_json::json!([]));
    assert_eq!(v["tags"], "");
}

#[test]
fn openstack_meta_data() {
    let b = FakeMetadata::builder(Cloud::OpenStack)
        .tag("rs_agent:http_proxy", "http://127.0.0.1:3128")
        .instance_id("00000000-1111-2222-3333-444444444444");
    let md = b.clone().answer_first(&[503]).start();
    let path = "/openstack/latest/meta_data.json";
    assert_eq!(get(&md, path, &[]).status, 503);
    let r = get(&md, path, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = json(&r);
    assert_eq!(v["uuid"], "00000000-1111-2222-3333-444444444444");
    assert_eq!(v["meta"]["role"], "webserver");
    assert_eq!(v["meta"]["rs_agent:type"], "right_link_lite");
    assert_eq!(v["meta"]["rs_agent:http_proxy"], "http://127.0.0.1:3128");
    assert_eq!(v["launch_index"], 0);
    assert!(get(&md, "/openstack", &[])
        .text()
        .lines()
        .any(|l| l == "latest"));
    let listing = get(&md, "/openstack/latest/", &[]).text();
    assert!(listing.lines().any(|l| l == "meta_data.json"), "{listing}");
    assert!(
        listing.lines().any(|l| l == "network_data.json"),
        "{listing}"
    );
    assert_eq!(
        get(&md, "/openstack/latest/network_data.json", &[]).status,
        200
    );
    assert_eq!(get(&md, "/openstack/latest/nope", &[]).status, 404);
    assert_eq!(get(&md, "/latest/meta-data/", &[]).status, 404);

    // The config drive holds the very bytes the service serves.
    let dir = tempfile::tempdir().unwrap();
    b.write_config_drive(dir.path());
    let written = std::fs::read(dir.path().join("openstack/latest/meta_data.json")).unwrap();
    assert_eq!(written, r.body);

    let md = FakeMetadata::builder(Cloud::OpenStack).no_tags().start();
    let v = json(&get(&md, path, &[]));
    assert!(v.get("meta").is_none(), "{v}");
    assert_eq!(v["uuid"], "83679162-1378-4288-a2d4-70e13ec132aa");
}

#[test]
fn openstack_config_drive_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("config-drive.img");
    FakeMetadata::builder(Cloud::OpenStack).config_drive_image(&img);
    let len = std::fs::metadata(&img).unwrap().len();
    assert_eq!(len, 4 * 1024 * 1024);
    // dumpe2fs is in e2fsprogs, like mkfs.ext4.
    let out = ["dumpe2fs", "/usr/sbin/dumpe2fs", "/sbin/dumpe2fs"]
        .iter()
        .find_map(|p| Command::new(p).arg("-h").arg(&img).output().ok())
        .expect("dumpe2fs");
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(
        head.lines()
            .any(|l| l.starts_with("Filesystem volume name:") && l.ends_with("config-2")),
        "{head}"
    );
}

#[test]
#[should_panic(expected = "OpenStack only")]
fn config_drive_is_openstack_only() {
    let dir = tempfile::tempdir().unwrap();
    FakeMetadata::builder(Cloud::Azure).write_config_drive(dir.path());
}

#[test]
fn reserve_refuses_until_started() {
    let reserved = FakeMetadata::builder(Cloud::OpenStack).reserve();
    let url = reserved.url();
    let addr = url.strip_prefix("http://").unwrap().to_string();
    let err = TcpStream::connect(&addr).expect_err("nothing listens yet");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let md = reserved.start();
    assert_eq!(md.url(), url);
    let r = get(&md, "/openstack/latest/meta_data.json", &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn bind_ip_serves_on_that_address() {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let md = FakeMetadata::builder(Cloud::OpenStack).bind_ip(ip).start();
    let url = md.url();
    assert!(url.starts_with("http://127.0.0.2:"), "{url}");
    let mut s = TcpStream::connect(url.strip_prefix("http://").unwrap()).unwrap();
    s.write_all(
        b"GET /openstack/latest/meta_data.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(raw.contains("83679162-1378-4288-a2d4-70e13ec132aa"));
}

/// The hook the fakes are built on: the handler answers first, `None`
/// leaves the request to the routes.
#[test]
fn origin_handler_falls_back_to_routes() {
    use std::sync::Arc;
    use testkit::{Handler, Origin, Reply};
    let handler: Handler = Arc::new(|req| (req.path == "/mine").then(|| Reply::ok("handled")));
    let origin = Origin::builder(None)
        .route("/mine", vec![], Reply::ok("route"))
        .route("/other", vec![], Reply::ok("route"))
        .handler(handler)
        .start();
    let r = http_request(origin.port(), "GET", "/mine", &[], None).unwrap();
    assert_eq!(r.text(), "handled");
    let r = http_request(origin.port(), "GET", "/other", &[], None).unwrap();
    assert_eq!(r.text(), "route");
    assert_eq!(origin.requests().len(), 2);
}
