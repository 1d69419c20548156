//! The boot integration files checked for what can be checked here: the
//! Windows user-data (encoding, line endings, the command line, the exit
//! code passed through, YAML and JSON that parse into what the launchers
//! read), the systemd unit (`systemd-analyze verify`, the directives that
//! matter), the cloud-init parts (POSIX sh), and the part that downloads
//! tagstrap itself, run for real against a local origin, directly and
//! through Squid. The cloud-init parts and the unit's command line run under
//! real cloud-init in `cloud_init.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{sha256_hex, write_file};
use testkit::{Origin, Reply, Squid};

const RUN: &str = "& 'C:\\Program Files\\tagstrap\\tagstrap.exe' run --once --write-env 'C:\\ProgramData\\tagstrap\\proxy.env'";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// ASCII, no BOM, every line ended by CRLF: what PowerShell 5.1, EC2Launch
/// and the Azure agent read without surprises.
fn assert_windows_text(rel: &str) -> String {
    let bytes = std::fs::read(repo(rel)).unwrap();
    assert!(bytes.is_ascii(), "{rel}: not ASCII");
    assert!(!bytes.starts_with(&[0xef, 0xbb, 0xbf]), "{rel}: BOM");
    assert!(bytes.ends_with(b"\r\n"), "{rel}: no final CRLF");
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            assert!(
                i > 0 && bytes[i - 1] == b'\r',
                "{rel}: a bare LF at byte {i}"
            );
        }
    }
    String::from_utf8(bytes).unwrap()
}

/// The lines of a PowerShell body: tagstrap's run, then `exit $LASTEXITCODE`
/// as the last statement, so the launcher sees the script's own code.
fn assert_runs_and_passes_the_code_through(rel: &str, body: &str) {
    let statements: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('<'))
        .collect();
    let run = statements
        .iter()
        .position(|l| *l == RUN)
        .unwrap_or_else(|| panic!("{rel}: no `{RUN}` in {statements:?}"));
    assert_eq!(
        &statements[run + 1..],
        ["exit $LASTEXITCODE"],
        "{rel}: the exit code must be passed through"
    );
}

#[test]
fn ec2_powershell_user_data_is_one_powershell_block_that_passes_the_code_through() {
    let rel = "windows-userdata/ec2-powershell.txt";
    let text = assert_windows_text(rel);
    assert!(text.starts_with("<powershell>\r\n"), "{rel}");
    assert!(text.ends_with("</powershell>\r\n"), "{rel}");
    assert_runs_and_passes_the_code_through(rel, &text);
}

#[test]
fn gce_startup_script_passes_the_code_through() {
    let rel = "windows-userdata/gce-windows-startup-script.ps1";
    let text = assert_windows_text(rel);
    assert_runs_and_passes_the_code_through(rel, &text);
}

/// YAML parsed by Python's yaml (what the test machine has), into JSON.
fn yaml_to_json(path: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1], newline=''))))")
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn ec2launch_v2_task_runs_once_as_local_system_and_passes_the_code_through() {
    let rel = "windows-userdata/ec2launch-v2.yaml";
    assert_windows_text(rel);
    let doc = yaml_to_json(&repo(rel));
    assert_eq!(doc["version"].as_f64(), Some(1.0), "as AWS writes it");
    let task = &doc["tasks"][0];
    assert_eq!(task["task"], "executeScript");
    let input = &task["inputs"][0];
    assert_eq!(input["frequency"], "once");
    assert_eq!(input["type"], "powershell");
    assert_eq!(input["runAs"], "localSystem");
    assert_runs_and_passes_the_code_through(rel, input["content"].as_str().unwrap());
}

#[test]
fn azure_custom_script_extension_runs_powershell_that_passes_the_code_through() {
    let rel = "windows-userdata/azure-custom-script-extension.json";
    let text = assert_windows_text(rel);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let properties = &doc["properties"];
    assert_eq!(properties["publisher"], "Microsoft.Compute");
    assert_eq!(properties["type"], "CustomScriptExtension");
    assert!(
        properties.get("protectedSettings").is_none(),
        "no secret goes into the extension"
    );
    let command = properties["settings"]["commandToExecute"].as_str().unwrap();
    let prefix = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command \"";
    let body = command
        .strip_prefix(prefix)
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{command}"));
    let statements: Vec<&str> = body.split("; ").collect();
    assert_eq!(statements, [RUN, "exit $LASTEXITCODE"]);
}

#[test]
fn the_windows_boot_task_runs_tagstrap_as_system_at_startup() {
    let rel = "dist/windows/install-task.ps1";
    let text = assert_windows_text(rel);
    for needle in [
        "New-ScheduledTaskTrigger -AtStartup",
        "-UserId 'SYSTEM'",
        "'run --once --write-env \"' + $data + '\\proxy.env\"'",
        "/inheritance:r",
    ] {
        assert!(text.contains(needle), "{rel}: no {needle}");
    }
}

/// `KEY=value` lines of one section of a unit file.
fn section(unit: &str, name: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut pairs = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{name}]");
        } else if inside && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                pairs.push((k.to_string(), v.to_string()));
            }
        }
    }
    pairs
}

fn values<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn the_systemd_unit_is_valid_and_waits_for_the_network_with_the_token_as_a_credential_drop_in() {
    let rel = "dist/systemd/tagstrap.service";
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(repo(rel))
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let complaints: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        // The binary is not installed on the test machine.
        .filter(|l| !l.contains("/usr/bin/tagstrap is not executable"))
        .map(str::to_string)
        .collect();
    assert!(complaints.is_empty(), "{rel}: {complaints:?}");

    let unit = read(rel);
    let unit_section = section(&unit, "Unit");
    assert!(values(&unit_section, "After").contains(&"network-online.target"));
    assert!(values(&unit_section, "Wants").contains(&"network-online.target"));
    let service = section(&unit, "Service");
    assert_eq!(values(&service, "Type"), ["oneshot"]);
    assert_eq!(
        values(&service, "ExecStart"),
        ["/usr/bin/tagstrap run --once --write-env /etc/tagstrap/proxy.env"]
    );
    // The packaged unit works as shipped with the no-secret stores; the
    // token comes from the operator's drop-in.
    assert!(values(&service, "LoadCredential").is_empty());
    let drop_in = read("dist/systemd/vault-token.conf");
    assert_eq!(
        values(&section(&drop_in, "Service"), "LoadCredential"),
        ["vault-token:/etc/tagstrap/vault-token"]
    );
    assert!(
        values(&service, "Environment").is_empty(),
        "no secret in the unit's environment"
    );
    assert_eq!(
        values(&section(&unit, "Install"), "WantedBy"),
        ["multi-user.target"]
    );
}

#[test]
fn the_cloud_init_parts_are_posix_sh() {
    for rel in [
        "cloud-init/user-data.sh",
        "cloud-init/user-data-download.sh",
    ] {
        let text = read(rel);
        assert!(text.starts_with("#!/bin/sh\n"), "{rel}");
        let out = Command::new("dash")
            .arg("-n")
            .arg(repo(rel))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for bashism in ["[[", "function ", "source ", "$'", "<<<", "pipefail", "${!"] {
            assert!(!text.contains(bashism), "{rel}: {bashism}");
        }
    }
    let rel = "cloud-init/cloud-config.yaml";
    assert!(read(rel).starts_with("#cloud-config\n"), "{rel}");
    let doc = yaml_to_json(&repo(rel));
    let command = doc["runcmd"][0].as_array().unwrap();
    assert_eq!(command[0], "sh");
    assert_eq!(command[1], "-c");
    let script = command[2].as_str().unwrap();
    assert!(script
        .ends_with("exec /usr/local/bin/tagstrap run --once --write-env /etc/tagstrap/proxy.env"));
    let out = Command::new("dash")
        .args(["-n", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{rel}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `user-data-download.sh` with its three values filled in and its paths
/// moved under `dir`; a stand-in "tagstrap" records how it was started.
struct Download {
    dir: tempfile::TempDir,
    part: PathBuf,
}

const STAND_IN: &str = "#!/bin/sh\necho \"$*\" > \"$(dirname \"$0\")/started-with\"\n";

impl Download {
    fn new(url: &str, sha256: &str, proxy: &str) -> Download {
        let dir = tempfile::tempdir().unwrap();
        let mut text = read("cloud-init/user-data-download.sh");
        let bin = dir.path().join("bin/tagstrap");
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        for (from, to) in [
            (
                "TAGSTRAP_URL='https://repo.example.internal/tagstrap/0.1.0/tagstrap-x86_64-linux-musl'",
                format!("TAGSTRAP_URL='{url}'"),
            ),
            (
                "TAGSTRAP_SHA256='0000000000000000000000000000000000000000000000000000000000000000'",
                format!("TAGSTRAP_SHA256='{sha256}'"),
            ),
            (
                "DOWNLOAD_PROXY='http://proxy.example.internal:3128'",
                format!("DOWNLOAD_PROXY='{proxy}'"),
            ),
            ("bin=/usr/local/bin/tagstrap", format!("bin={}", bin.display())),
        ] {
            assert!(text.contains(from), "the part no longer has {from}");
            text = text.replace(from, &to);
        }
        let part = write_file(dir.path(), "part.sh", &text);
        Download { dir, part }
    }

    fn run(&self) -> std::process::Output {
        Command::new("sh")
            .arg(&self.part)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .output()
            .unwrap()
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.dir.path().join("bin").join(name)
    }
}

#[cfg(unix)]
#[test]
fn the_download_part_installs_a_pinned_binary_and_runs_it() {
    use std::os::unix::fs::PermissionsExt;
    let origin = Origin::builder(None)
        .route("/tagstrap", vec![], Reply::ok(STAND_IN))
        .start();
    let pin = sha256_hex(STAND_IN.as_bytes());
    let download = Download::new(&origin.url("/tagstrap"), &pin, "");
    let out = download.run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(download.bin("tagstrap"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_to_string(download.bin("started-with")).unwrap(),
        "run --once --write-env /etc/tagstrap/proxy.env\n"
    );
    assert_eq!(origin.hits("/tagstrap"), 1);
}

#[test]
fn the_download_part_goes_through_the_proxy_it_names_for_that_one_download() {
    let origin = Origin::builder(None)
        .bind_ip("127.0.0.2".parse().unwrap())
        .route("/tagstrap", vec![], Reply::ok(STAND_IN))
        .start();
    let squid = Squid::builder().allow_http_ports(&[origin.port()]).start();
    let download = Download::new(
        &origin.url("/tagstrap"),
        &sha256_hex(STAND_IN.as_bytes()),
        &squid.proxy_url(),
    );
    let out = download.run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(download.bin("started-with").exists());
    let needle = format!("127.0.0.2:{}/tagstrap", origin.port());
    assert!(
        squid.wait_for_access_log(&needle, std::time::Duration::from_secs(10)),
        "{}",
        squid.access_log()
    );
}

#[test]
fn the_download_part_refuses_a_binary_that_does_not_match_its_pin() {
    let origin = Origin::builder(None)
        .route("/tagstrap", vec![], Reply::ok(STAND_IN))
        .start();
    let download = Download::new(&origin.url("/tagstrap"), &sha256_hex(b"other"), "");
    let out = download.run();
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not match its pin"), "{stderr}");
    assert!(!download.bin("tagstrap").exists(), "not installed");
    assert!(
        !download.bin("tagstrap.partial").exists(),
        "not left behind"
    );
    assert!(!download.bin("started-with").exists(), "nothing run");
}
