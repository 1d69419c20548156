//! Instance tags from each cloud, end to end: the real `tagstrap` binary
//! against a fake metadata service (testkit's `FakeMetadata`, which enforces
//! what each real service enforces and serves `fixtures/<cloud>/`), a real
//! Squid with basic auth, a real OpenBao and an HTTPS origin with a test CA.
//!
//! The fakes and the origin listen on 127.0.0.2, which is not in the no-proxy
//! list tagstrap always adds, so a metadata request that went through a proxy
//! would show: the environment's `http_proxy` points at the Squid, which
//! answers 407 to anyone without credentials, and the fakes refuse proxied
//! requests (`X-Forwarded-For`) as the real services do.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{write_file, Run, Tagstrap, Witness};
use testkit::metadata::{Cloud, FakeMetadata, FakeMetadataBuilder};
use testkit::{Bao, Origin, Reply, Squid, TestCa};

const USER: &str = "svc-agent";
const PASSWORD: &str = "p@ss:/%w0rd-cl0ud";
const LOOPBACK_2: &str = "127.0.0.2";

fn loopback_2() -> IpAddr {
    LOOPBACK_2.parse().unwrap()
}

/// The instance ID each cloud's fixture holds.
fn fixture_id(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Aws => "i-0b22a22eec53b9321",
        Cloud::Gce => "4520031799277581759",
        Cloud::Azure => "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
        Cloud::OpenStack => "83679162-1378-4288-a2d4-70e13ec132aa",
        Cloud::CloudStack => "c8f3ad7e-1c2f-4a6e-9d57-5b3e0f2a9c41",
    }
}

fn fake(cloud: Cloud) -> FakeMetadataBuilder {
    FakeMetadata::builder(cloud).bind_ip(loopback_2())
}

/// No metadata request was refused, none carried a proxy's marks.
fn assert_direct(fake: &FakeMetadata) {
    assert!(fake.refused().is_empty(), "{:?}", fake.refused());
    let requests = fake.requests();
    assert!(!requests.is_empty());
    for request in requests {
        assert!(
            request.header("via").is_none() && request.header("x-forwarded-for").is_none(),
            "a metadata request went through a proxy: {request:?}"
        );
    }
}

/// The whole job with every rs_agent: tag served by the cloud: the proxy,
/// its user and password reference, and the script URL.
fn the_cloud_tags_drive_the_whole_run(cloud: Cloud) {
    let ca = TestCa::new();
    let out = tempfile::tempdir().unwrap();
    let ran = out.path().join("ran");
    let reserved = Origin::builder(Some(&ca)).bind_ip(loopback_2()).reserve();
    let squid = Squid::builder()
        .basic_auth(USER, PASSWORD)
        .allow_connect_ports(&[reserved.port()])
        .start();
    let bao = Bao::start();
    bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
    let script_url = format!("https://{LOOPBACK_2}:{}/install.sh", reserved.port());
    let origin = reserved
        .route(
            "/install.sh",
            vec![],
            Reply::ok(format!("#!/bin/sh\ntouch '{}'\n", ran.display())),
        )
        .start();
    let fake = fake(cloud)
        .tag("rs_agent:http_proxy", &squid.proxy_addr())
        .tag("rs_agent:http_proxy_user", USER)
        .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
        .tag("rs_agent:mime_shellscript", &script_url)
        .start();

    let run = Tagstrap::against("run", &fake)
        .vault(&bao.addr(), &bao.root_token())
        .arg("--ca-file")
        .arg(ca.ca_pem_path())
        // A system proxy that would refuse the metadata requests (407):
        // they must not go there.
        .env("http_proxy", squid.proxy_url())
        .env("HTTP_PROXY", squid.proxy_url())
        .run();

    run.assert_success().assert_no_leak(PASSWORD);
    assert!(ran.exists(), "{}", run.stderr);
    assert_eq!(origin.hits("/install.sh"), 1);
    assert_direct(&fake);
    let log = squid.access_log();
    let fake_port = fake.url().rsplit(':').next().unwrap().to_string();
    assert!(
        !log.contains(&format!(":{fake_port}")),
        "no metadata request reached Squid:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("CONNECT") && l.contains(USER)),
        "the script came through Squid with the credentials:\n{log}"
    );
    let report = run.report_json();
    assert_eq!(report["instance_id"], fixture_id(cloud));
    assert_eq!(report["instance"]["source"], cloud.name());
    assert_eq!(report["instance"]["from"], fake.url());
    let script_tag = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "rs_agent:mime_shellscript")
        .unwrap();
    assert!(
        script_tag["origin"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} instance tags", cloud.name())),
        "{script_tag}"
    );
}

#[test]
fn aws_instance_tags_drive_the_whole_run_through_squid() {
    the_cloud_tags_drive_the_whole_run(Cloud::Aws);
}

#[test]
fn gce_instance_tags_drive_the_whole_run_through_squid() {
    the_cloud_tags_drive_the_whole_run(Cloud::Gce);
}

#[test]
fn azure_instance_tags_drive_the_whole_run_through_squid() {
    the_cloud_tags_drive_the_whole_run(Cloud::Azure);
}

#[test]
fn openstack_instance_tags_drive_the_whole_run_through_squid() {
    the_cloud_tags_drive_the_whole_run(Cloud::OpenStack);
}

#[test]
fn cloudstack_user_data_tags_drive_the_whole_run_through_squid() {
    the_cloud_tags_drive_the_whole_run(Cloud::CloudStack);
}

/// The line `tagstrap tags` prints for `key`.
fn line_of<'a>(run: &'a Run, key: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{}", run.stdout))
}

#[test]
fn image_file_then_instance_tags_then_the_command_line_and_tags_shows_who_won() {
    for cloud in Cloud::ALL {
        let fake = fake(cloud)
            .tag("rs_agent:http_no_proxy", "from.cloud")
            .start();
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "image.tags",
            "rs_agent:type=from-image\nrs_agent:http_no_proxy=from.image\n\
             rs_agent:mime_shellscript=file:///opt/agent/install.sh\n",
        );
        let run = Tagstrap::against("tags", &fake)
            .arg("--tags-file")
            .arg(&file)
            .tag("rs_agent:http_no_proxy", "from.flag")
            .run();
        run.assert_success();
        let image = format!("{}", file.display());
        let instance = format!("{} instance tags", cloud.name());

        // The cloud's fixture sets rs_agent:type: it beats the image file.
        let line = line_of(&run, "rs_agent:type");
        assert!(line.contains("= right_link_lite"), "{cloud:?}: {line}");
        assert!(line.contains(&format!("({instance}")), "{cloud:?}: {line}");
        assert!(line.contains(&format!("overrides {image}:1")), "{line}");

        // --tag beats both.
        let line = line_of(&run, "rs_agent:http_no_proxy");
        assert!(line.contains("= from.flag    (--tag)"), "{line}");
        assert!(line.contains(&image) && line.contains(&instance), "{line}");

        // What only the image says stays.
        let line = line_of(&run, "rs_agent:mime_shellscript");
        assert!(line.contains(&format!("({image}:3)")), "{line}");
        assert_direct(&fake);
    }
}

/// A script that appends a line to `count` each time it runs.
fn counting_script(dir: &Path) -> (String, PathBuf) {
    let count = dir.join("count");
    let script = write_file(
        dir,
        "install.sh",
        &format!("#!/bin/sh\necho ran >> '{}'\n", count.display()),
    );
    (format!("file://{}", script.display()), count)
}

fn runs(count: &Path) -> usize {
    std::fs::read_to_string(count)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// `run --once` against `fake` (built with `with_script`, which adds the
/// counting script's tag): once per instance ID, `new_id` being the image
/// booted as a new instance.
fn once_runs_once_per_instance_id(
    cloud: Cloud,
    with_script: impl FnOnce(FakeMetadataBuilder, &str) -> FakeMetadataBuilder,
    new_id: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let (script, count) = counting_script(dir.path());
    let state = dir.path().join("state");
    let fake = with_script(fake(cloud), &script).start();
    let once = || {
        Tagstrap::against("run", &fake)
            .arg("--once")
            .arg("--state-dir")
            .arg(&state)
            .run()
    };

    once().assert_success();
    assert_eq!(runs(&count), 1);

    // A reboot of the same instance: nothing runs.
    let again = once();
    again.assert_success();
    assert_eq!(runs(&count), 1);
    assert!(
        again
            .stderr
            .contains(&format!("already ran on instance {}", fixture_id(cloud))),
        "{}",
        again.stderr
    );

    // The image booted as a new instance: it runs again, once.
    fake.set_instance_id(new_id);
    once().assert_success();
    assert_eq!(runs(&count), 2);
    once().assert_success();
    assert_eq!(runs(&count), 2);
    assert_direct(&fake);
}

#[test]
fn once_runs_the_script_once_per_instance_id_from_the_cloud() {
    once_runs_once_per_instance_id(
        Cloud::Aws,
        |fake, script| fake.tag("rs_agent:mime_shellscript", script),
        "i-0ffffffffffffffff",
    );
}

#[test]
fn once_on_cloudstack_keys_on_the_routers_instance_id() {
    // The script's tag in a gzip'd user-data, as cloud-init accepts it.
    once_runs_once_per_instance_id(
        Cloud::CloudStack,
        |fake, script| {
            fake.tag("rs_agent:mime_shellscript", script)
                .gzip_user_data()
        },
        "0d6c2a1e-9b3f-4c8d-8e7f-6a5b4c3d2e1f",
    );
}

#[test]
fn cloudstack_user_data_without_a_tags_part_runs_on_the_image_tags() {
    let witness = Witness::new();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "image.tags",
        &format!("rs_agent:mime_shellscript={}\n", witness.url()),
    );
    for fake in [
        fake(Cloud::CloudStack).no_user_data(),
        fake(Cloud::CloudStack).user_data("#!/bin/sh\ntagstrap run\n"),
    ] {
        let fake = fake.start();
        let run = Tagstrap::against("run", &fake)
            .arg("--tags-file")
            .arg(&file)
            .run();
        run.assert_success();
        assert!(
            run.stderr.contains("no cloudstack instance tags"),
            "{}",
            run.stderr
        );
    }
    assert!(witness.ran());
}

#[test]
fn a_metadata_service_that_answers_only_after_3_s_is_waited_for() {
    let witness = Witness::new();
    let reserved = fake(Cloud::Azure)
        .tag("rs_agent:mime_shellscript", &witness.url())
        .reserve();
    let url = reserved.url();
    // The service's late start is the scenario under test, not a wait for
    // readiness: tagstrap is already trying when it comes up.
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        reserved.start()
    });
    let run = Tagstrap::new("run")
        .arg("--source")
        .arg("azure")
        .arg("--metadata-endpoint")
        .arg(&url)
        .run();
    let fake = late.join().unwrap();
    run.assert_success();
    assert!(witness.ran());
    assert!(run.failed_tries() > 3, "{}", run.stderr);
    assert!(run.stderr.contains("not reachable"), "{}", run.stderr);
    let report = run.report_json();
    assert!(report["instance"]["tries"]["tries"].as_u64().unwrap() > 3);
    assert!(report["instance"]["tries"]["seconds"].as_f64().unwrap() >= 2.9);
    assert_direct(&fake);
}

#[test]
fn a_control_character_in_a_cloud_tag_is_refused_with_65_and_runs_nothing() {
    for cloud in Cloud::ALL {
        let witness = Witness::new();
        let fake = fake(cloud)
            .tag("rs_agent:mime_shellscript", &witness.url())
            .tag("rs_agent:http_no_proxy", "a.corp\u{1b}[2J")
            .start();
        let run = Tagstrap::against("run", &fake).run();
        run.assert_error(65, "control character");
        assert!(
            run.error_lines()[0].contains(&format!("{} instance tags", cloud.name())),
            "{cloud:?}: {}",
            run.stderr
        );
        assert!(!witness.ran(), "{cloud:?}");
    }
}

#[test]
fn a_cloud_without_tags_leaves_the_image_file_in_force() {
    for cloud in Cloud::ALL {
        let witness = Witness::new();
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "image.tags",
            &format!("rs_agent:mime_shellscript={}\n", witness.url()),
        );
        let fake = fake(cloud).no_tags().start();
        let run = Tagstrap::against("run", &fake)
            .arg("--tags-file")
            .arg(&file)
            .run();
        run.assert_success();
        assert!(witness.ran(), "{cloud:?}: {}", run.stderr);
        assert_eq!(run.report_json()["instance_id"], fixture_id(cloud));
    }
}

/// A DMI directory that says `cloud`, as the firmware of its VMs does.
fn dmi_of(cloud: Cloud, dir: &Path) {
    let (file, value) = match cloud {
        Cloud::Aws => ("sys_vendor", "Amazon EC2"),
        Cloud::Gce => ("product_name", "Google Compute Engine"),
        Cloud::Azure => ("chassis_asset_tag", "7783-7084-3265-9085-8269-3286-77"),
        Cloud::OpenStack => ("product_name", "OpenStack Nova"),
        Cloud::CloudStack => ("product_name", "CloudStack KVM Hypervisor"),
    };
    write_file(dir, file, &format!("{value}\n"));
}

#[test]
fn auto_detects_each_cloud_from_dmi_and_reads_its_tags() {
    for cloud in Cloud::ALL {
        let dmi = tempfile::tempdir().unwrap();
        dmi_of(cloud, dmi.path());
        let fake = fake(cloud).start();
        let run = Tagstrap::new("tags")
            .arg("--source")
            .arg("auto")
            .arg("--metadata-endpoint")
            .arg(fake.url())
            .env("TAGSTRAP_DMI_DIR", dmi.path())
            .run();
        run.assert_success();
        assert!(
            run.stderr
                .contains(&format!("detected {} from DMI", cloud.name())),
            "{}",
            run.stderr
        );
        let line = line_of(&run, "rs_agent:type");
        assert!(
            line.contains(&format!("{} instance tags", cloud.name())),
            "{line}"
        );
    }
}

#[test]
fn auto_on_no_cloud_reads_files_only_and_touches_no_network() {
    let dmi = tempfile::tempdir().unwrap();
    write_file(dmi.path(), "sys_vendor", "QEMU\n");
    let run = Tagstrap::new("tags")
        .arg("--source")
        .arg("auto")
        .tag("rs_agent:type", "right_link_lite")
        .env("TAGSTRAP_DMI_DIR", dmi.path())
        // Where a probe would go; nothing listens, and nothing may try.
        .arg("--metadata-endpoint")
        .arg("http://127.0.0.1:9")
        .arg("--deadline")
        .arg("1")
        .run();
    run.assert_success();
    assert!(
        run.stderr.contains("no cloud detected from DMI"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("rs_agent:type"), "{}", run.stdout);
}

#[test]
fn aws_tags_off_is_an_error_when_named_and_a_warning_when_detected() {
    let witness = Witness::new();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "image.tags",
        &format!("rs_agent:mime_shellscript={}\n", witness.url()),
    );
    let fake = fake(Cloud::Aws).tags_disabled().start();

    let run = Tagstrap::against("run", &fake)
        .arg("--tags-file")
        .arg(&file)
        .run();
    run.assert_error(66, "--instance-metadata-tags enabled");
    assert!(!witness.ran());

    let dmi = tempfile::tempdir().unwrap();
    dmi_of(Cloud::Aws, dmi.path());
    let run = Tagstrap::against("run", &fake)
        .arg("--source")
        .arg("auto")
        .arg("--tags-file")
        .arg(&file)
        .env("TAGSTRAP_DMI_DIR", dmi.path())
        .run();
    run.assert_success();
    assert!(witness.ran());
    assert!(
        run.stderr.contains("--instance-metadata-tags enabled"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_named_cloud_whose_service_never_answers_is_69_at_the_deadline() {
    for cloud in Cloud::ALL {
        let reserved = fake(cloud).reserve();
        let run = Tagstrap::new("tags")
            .arg("--source")
            .arg(cloud.name())
            .arg("--metadata-endpoint")
            .arg(reserved.url())
            .arg("--deadline")
            .arg("1")
            .run();
        run.assert_error(
            69,
            &format!("the {} metadata service at http://", cloud.name()),
        );
        assert!(run.error_lines()[0].contains("raise --deadline"));
    }
}

#[test]
fn metadata_endpoints_that_cannot_work_are_refused_before_anything_runs() {
    for (source, endpoint) in [
        ("aws", "ftp://169.254.169.254"),
        ("aws", "file:///mnt/config"),
        ("gce", "not a url"),
        ("azure", "http://"),
    ] {
        let run = Tagstrap::new("tags")
            .arg("--source")
            .arg(source)
            .arg("--metadata-endpoint")
            .arg(endpoint)
            .run();
        run.assert_error(64, "--metadata-endpoint");
    }
}

#[test]
fn an_openstack_config_drive_is_mounted_read_only_read_and_unmounted() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("config-drive.img");
    FakeMetadata::builder(Cloud::OpenStack)
        .tag("rs_agent:type", "from-the-drive")
        .config_drive_image(&image);
    let run = Tagstrap::new("tags")
        .arg("--source")
        .arg("openstack")
        .env("TAGSTRAP_CONFIG_DRIVE", &image)
        .env("TMPDIR", dir.path())
        .run();
    run.assert_success();
    let line = line_of(&run, "rs_agent:type");
    assert!(line.contains("= from-the-drive"), "{line}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("tagstrap-config-drive"),
        "the drive is unmounted again:\n{mounts}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("config-drive.img")]);
}

#[test]
fn an_openstack_config_drive_directory_can_be_named_as_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let witness = Witness::new();
    FakeMetadata::builder(Cloud::OpenStack)
        .tag("rs_agent:mime_shellscript", &witness.url())
        .write_config_drive(dir.path());
    let run = Tagstrap::new("run")
        .arg("--source")
        .arg("openstack")
        .arg("--metadata-endpoint")
        .arg(format!("file://{}", dir.path().display()))
        .run();
    run.assert_success();
    assert!(witness.ran());
    assert_eq!(
        run.report_json()["instance"]["from"],
        format!("file://{}", dir.path().display())
    );
}

#[test]
fn plan_names_the_instance_and_where_its_tags_were_read() {
    let fake = fake(Cloud::Gce)
        .tag(
            "rs_agent:mime_shellscript",
            "https://repo.example/install.sh",
        )
        .start();
    let run = Tagstrap::against("plan", &fake).run();
    run.assert_success();
    assert!(
        run.stdout.contains(&format!(
            "instance:  gce 4520031799277581759 (read from {}, 1 try)",
            fake.url()
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("script:    https://repo.example/install.sh (rs_agent:mime_shellscript, gce instance tags, line"),
        "{}",
        run.stdout
    );
}
