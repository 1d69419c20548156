//! The arm64 release binary (`tagstrap-aarch64-linux-musl` from .ci/release)
//! run on this machine under `qemu-aarch64` (qemu-user, no binfmt: the test
//! names the emulator, so an x86_64 binary slipped in its place would not be
//! emulated and the ELF check below fails first): its version and its plan
//! are the x86_64 release binary's, and a proxied run through a real Squid
//! with the password from a real OpenBao and the script from an HTTPS origin
//! works end to end. The script it starts (`/bin/sh`) is this machine's:
//! qemu-user hands the exec to the kernel.

mod common;

use std::ffi::OsStr;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::{Tagstrap, Witness};
use testkit::{Origin, Reply, TestCa};

const USER: &str = "svc-agent";
/// Holds every character that breaks a naive proxy URL.
const PASSWORD: &str = "arm:p@ss/%64";
/// Not 127.0.0.1, which is in the no-proxy list tagstrap always adds.
const ORIGIN_IP: &str = "127.0.0.2";

/// ELF `e_machine` values (the System V ABI's registry).
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

fn e_machine(path: &Path) -> u16 {
    let head = std::fs::read(path).unwrap();
    assert_eq!(
        &head[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    // EI_DATA 1: little-endian, as both targets are; e_machine is at 18.
    assert_eq!(head[5], 1, "{}: not little-endian", path.display());
    u16::from_le_bytes([head[18], head[19]])
}

/// `qemu-aarch64` on PATH; fails naming .ci/install when it is missing.
fn qemu() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("qemu-aarch64"))
        .find(|p| p.is_file())
        .expect("qemu-aarch64 is missing: Debian's qemu-user, installed by .ci/install")
}

/// The aarch64 artifact, checked to be one, behind qemu-aarch64.
fn arm64(t: Tagstrap) -> Tagstrap {
    let bin = testkit::artifacts::aarch64_tagstrap();
    assert_eq!(e_machine(&bin), EM_AARCH64, "{}", bin.display());
    t.program(&[qemu().as_os_str(), bin.as_os_str()])
}

fn x86_64(t: Tagstrap) -> Tagstrap {
    let bin = testkit::artifacts::x86_64_tagstrap();
    assert_eq!(e_machine(&bin), EM_X86_64, "{}", bin.display());
    t.program(&[bin.as_os_str()])
}

/// The two binaries' output without the per-run temporary directory.
fn normalised(text: &str, state: &Path) -> String {
    text.replace(&state.display().to_string(), "<state>")
}

#[test]
fn the_version_is_the_x86_64_binarys() {
    let version = |program: &[&OsStr]| {
        let out = std::process::Command::new(program[0])
            .args(&program[1..])
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{program:?} --version: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let arm = testkit::artifacts::aarch64_tagstrap();
    assert_eq!(e_machine(&arm), EM_AARCH64);
    let arm = version(&[qemu().as_os_str(), arm.as_os_str()]);
    let x86 = version(&[testkit::artifacts::x86_64_tagstrap().as_os_str()]);
    assert_eq!(arm, x86);
    assert_eq!(
        arm.trim(),
        format!("tagstrap {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn plan_on_a_tags_file_prints_what_the_x86_64_binary_prints() {
    let dir = tempfile::tempdir().unwrap();
    let tags = common::write_file(
        dir.path(),
        "tags",
        "# an image's tags\n\
         rs_agent:http_proxy=proxy.example.internal:3128\n\
         rs_agent:http_no_proxy=.example.internal,10.0.0.0/8\n\
         rs_agent:mime_shellscript=https://agent.example.internal/install.sh\n",
    );
    let plan = |launch: fn(Tagstrap) -> Tagstrap| {
        let run = launch(Tagstrap::new("plan").arg("--tags-file").arg(&tags)).run();
        run.assert_success();
        assert!(
            !run.state.path().join("state/last-run.json").exists(),
            "plan wrote a report"
        );
        normalised(&run.stdout, run.state.path())
    };
    let arm = plan(arm64);
    assert!(
        arm.contains("https://agent.example.internal/install.sh")
            && arm.contains("proxy.example.internal:3128")
            && arm.contains(".example.internal,10.0.0.0/8"),
        "the plan shows the resolved script URL, proxy and no-proxy list:\n{arm}"
    );
    assert_eq!(arm, plan(x86_64));
}

#[test]
fn a_proxied_run_with_the_password_from_openbao_runs_the_script_from_the_https_origin() {
    let ca = TestCa::new();
    let reserved = Origin::builder(Some(&ca))
        .bind_ip(ORIGIN_IP.parse::<IpAddr>().unwrap())
        .reserve();
    let (squid, bao) = common::proxy_and_store(USER, PASSWORD, PASSWORD, reserved.port());
    // Runs only if its http_proxy is exactly the proxy URL with the password.
    let witness = Witness::expecting_proxy(&squid.proxy_addr(), USER, PASSWORD);
    let origin = reserved
        .route("/install.sh", vec![], Reply::ok(witness.bytes()))
        .start();

    let run = arm64(
        Tagstrap::new("run")
            .through_proxy(&squid, &bao, USER)
            .tag("rs_agent:mime_shellscript", &origin.url("/install.sh"))
            .arg("--ca-file")
            .arg(ca.ca_pem_path()),
    )
    .run();

    run.assert_success().assert_no_leak(PASSWORD);
    assert!(witness.ran(), "the script did not run:\n{}", run.stderr);
    assert_eq!(origin.hits("/install.sh"), 1);
    let log = squid.access_log();
    let connects: Vec<&str> = log.lines().filter(|l| l.contains("CONNECT")).collect();
    assert_eq!(connects.len(), 1, "the download went through Squid:\n{log}");
    assert!(connects[0].contains(USER), "{log}");
    let report = run.report_json();
    assert_eq!(report["exit_code"], 0);
    assert_eq!(
        report["proxy"]["url"],
        format!("http://{}", squid.proxy_addr())
    );
    assert_eq!(report["credentials"][0], "cred:PROXY_PASS");
    assert!(report["script"]["route"]
        .as_str()
        .unwrap()
        .starts_with("proxy "));
}
