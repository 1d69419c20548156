//! The script's environment (SPEC §4) is built, not inherited: the real
//! binary runs a script that writes down its own environment
//! (`/proc/$$/environ`, exactly what tagstrap passed to `execve`), with the
//! store's token, its address, `TAGSTRAP_*` settings, a token file and
//! `$CREDENTIALS_DIRECTORY` set; `pass_env` keeps what it names and refuses
//! what it must not hand over; `plan` and the report name what was removed
//! and kept; `--write-env` holds the proxy variables only.

#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use common::{write_file, write_secret, Tagstrap, Witness, PROXY_VARS};
use testkit::Bao;

const PASSWORD: &str = "Env-p@ss:/%w0rd";
/// A value that is not UTF-8, which the script must get byte for byte.
const NOT_UTF8: &[u8] = b"caf\xe9 \xff";
/// A script that writes its whole environment to `env` beside itself
/// (private: it holds the proxy password), then exits 0.
struct EnvDump {
    dir: tempfile::TempDir,
}

impl EnvDump {
    fn new() -> EnvDump {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        write_file(
            dir.path(),
            "install.sh",
            &format!(
                "#!/bin/sh\numask 077\ncat /proc/$$/environ > '{}'\n",
                out.display()
            ),
        );
        EnvDump { dir }
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("install.sh").display())
    }

    /// The script's environment, name to value, as bytes.
    fn read(&self) -> BTreeMap<OsString, OsString> {
        let bytes = std::fs::read(self.dir.path().join("env")).expect("the script ran");
        bytes
            .split(|b| *b == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let at = entry.iter().position(|b| *b == b'=').unwrap();
                (
                    OsString::from_vec(entry[..at].to_vec()),
                    OsString::from_vec(entry[at + 1..].to_vec()),
                )
            })
            .collect()
    }
}

fn config(dir: &Path, text: &str) -> PathBuf {
    write_file(dir, "config.toml", text)
}

/// A store holding the proxy password, a token that reads it, and the
/// same token in a private file.
struct Store {
    bao: Bao,
    token: String,
    files: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        let bao = Bao::start();
        bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
        let token = bao.create_token("path \"secret/data/*\" { capabilities = [\"read\"] }");
        let files = tempfile::tempdir().unwrap();
        write_secret(files.path(), "token", &token, 0o600);
        std::fs::create_dir(files.path().join("creds")).unwrap();
        write_secret(&files.path().join("creds"), "vault-token", &token, 0o600);
        Store { bao, token, files }
    }

    /// `t` with every kind of store variable set, as `vault.env` and a
    /// systemd unit would set them.
    fn everything_set(&self, t: Tagstrap) -> Tagstrap {
        t.vault(&self.bao.addr(), &self.token)
            .env("TAGSTRAP_VAULT_TOKEN_FILE", self.files.path().join("token"))
            .env("CREDENTIALS_DIRECTORY", self.files.path().join("creds"))
            .env("TAGSTRAP_DEADLINE", "30")
            .env("TAGSTRAP_LOG_FORMAT", "text")
            .env("VAULT_FORMAT", "json")
            .env("LANG", "C.UTF-8")
            .env("MY_VAR", "mine")
            .env("MY_BYTES", std::ffi::OsStr::from_bytes(NOT_UTF8))
    }
}

fn proxied(t: Tagstrap) -> Tagstrap {
    t.tag("rs_agent:http_proxy", "proxy.test:3128")
        .tag("rs_agent:http_proxy_user", "svc")
        .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
}

#[test]
fn the_script_gets_none_of_the_stores_variables_and_what_pass_env_names() {
    let store = Store::new();
    let dump = EnvDump::new();
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "pass_env = [\"VAULT_FORMAT\", \"NOT_SET\"]\n");
    let t = proxied(Tagstrap::new("run"))
        .tag("rs_agent:mime_shellscript", &dump.url())
        .arg("--config")
        .arg(&path);
    let run = store.everything_set(t).run();
    run.assert_success()
        .assert_no_leak(&store.token)
        .assert_no_leak(PASSWORD);

    let env = dump.read();
    let names: Vec<String> = env
        .keys()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let mut expected: Vec<&str> = ["PATH", "LANG", "MY_VAR", "MY_BYTES", "VAULT_FORMAT"]
        .into_iter()
        .chain(PROXY_VARS)
        .collect();
    expected.sort();
    assert_eq!(names, expected, "exactly the computed environment");
    for gone in [
        "VAULT_TOKEN",
        "VAULT_ADDR",
        "TAGSTRAP_VAULT_TOKEN_FILE",
        "TAGSTRAP_DEADLINE",
        "TAGSTRAP_LOG_FORMAT",
        "CREDENTIALS_DIRECTORY",
    ] {
        assert!(
            !env.contains_key(&OsString::from(gone)),
            "{gone} reached it"
        );
    }
    for (name, value) in &env {
        if !PROXY_VARS.contains(&name.to_string_lossy().as_ref()) {
            let value = value.to_string_lossy();
            for form in common::secret_forms(&store.token) {
                assert!(!value.contains(&form), "{name:?} holds the token");
            }
        }
    }
    assert_eq!(env[&OsString::from("MY_BYTES")].as_bytes(), NOT_UTF8);
    assert_eq!(env[&OsString::from("MY_VAR")], "mine");
    assert_eq!(env[&OsString::from("VAULT_FORMAT")], "json", "pass_env");
    let proxy = "http://svc:Env-p%40ss%3A%2F%25w0rd@proxy.test:3128";
    for name in &PROXY_VARS[..4] {
        assert_eq!(env[&OsString::from(name)], proxy, "{name}");
    }

    // The report names what went and what stayed, never a value.
    let report = run.report_json();
    let list = |key: &str| -> Vec<String> {
        report["script_env"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        list("removed"),
        [
            "CREDENTIALS_DIRECTORY",
            "TAGSTRAP_DEADLINE",
            "TAGSTRAP_LOG_FORMAT",
            "TAGSTRAP_VAULT_TOKEN_FILE",
            "VAULT_ADDR",
            "VAULT_TOKEN"
        ]
    );
    assert_eq!(list("kept"), ["VAULT_FORMAT"]);
    assert_eq!(list("set"), PROXY_VARS);
    for value in ["C.UTF-8", "\"mine\"", "\"json\""] {
        assert!(!run.report().contains(value), "no value in the report");
    }
}

#[test]
fn plan_names_what_the_script_loses_keeps_and_gets() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "pass_env = [\"VAULT_NAMESPACE\"]\n");
    let run = Tagstrap::new("plan")
        .tag("rs_agent:http_proxy", "proxy.test:3128")
        .tag("rs_agent:mime_shellscript", "https://repo.test/install.sh")
        .arg("--config")
        .arg(&path)
        .env("VAULT_ADDR", "https://vault.test:8200")
        .env("VAULT_TOKEN", "s.Plan-t0ken")
        .env("VAULT_NAMESPACE", "team-a")
        .env("TAGSTRAP_STATE_DIR", dir.path().join("state"))
        .run();
    run.assert_success().assert_no_leak("s.Plan-t0ken");
    let line = "script env: removes TAGSTRAP_STATE_DIR, VAULT_ADDR, VAULT_TOKEN; keeps (pass_env) \
                VAULT_NAMESPACE; sets http_proxy, https_proxy, HTTP_PROXY, HTTPS_PROXY, \
                no_proxy, NO_PROXY";
    assert!(run.stdout.contains(line), "{}", run.stdout);
    assert!(
        !run.stdout.contains("team-a"),
        "names only:\n{}",
        run.stdout
    );

    // Without a proxy nothing is set, and the line says so.
    let run = Tagstrap::new("plan")
        .tag("rs_agent:mime_shellscript", "https://repo.test/install.sh")
        .run();
    run.assert_success();
    assert!(
        run.stdout
            .contains("script env: removes nothing; sets nothing (no proxy)"),
        "{}",
        run.stdout
    );
}

/// `pass_env = [entry]` for `command`, with the store's token set: 78, one
/// error line saying `needle`, nothing ran, no secret shown.
fn refused(entry: &str, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("pass_env = [\"LANG\", {}]\n", toml_string(entry));
    let path = config(dir.path(), &toml);
    for command in ["run", "plan", "tags", "doctor"] {
        let witness = Witness::new();
        let run = Tagstrap::new(command)
            .tag("rs_agent:mime_shellscript", &witness.url())
            .arg("--config")
            .arg(&path)
            .env("VAULT_TOKEN", "s.Refused-t0ken")
            .run();
        let context = format!("{entry:?}, {command}");
        run.assert_error(78, needle)
            .assert_no_leak("s.Refused-t0ken")
            .assert_no_leak("Secr3t");
        assert!(
            run.error_lines()[0].contains(&format!("pass_env in {}", path.display())),
            "{context}: {}",
            run.stderr
        );
        assert!(!witness.ran(), "{context}: nothing runs");
        assert!(run.stdout.is_empty(), "{context}: {}", run.stdout);
        assert!(run.report().is_empty(), "{context}: refused before the run");
    }
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[test]
fn pass_env_naming_the_store_token_is_refused_and_nothing_runs() {
    refused(
        "VAULT_TOKEN",
        "VAULT_TOKEN holds a secret of the credential store",
    );
}

#[test]
fn pass_env_naming_where_a_secret_is_read_is_refused() {
    for name in [
        "TAGSTRAP_VAULT_TOKEN_FILE",
        "TAGSTRAP_VAULT_SECRET_ID_FILE",
        "CREDENTIALS_DIRECTORY",
    ] {
        refused(name, &format!("{name} holds a secret"));
    }
}

#[test]
fn malformed_pass_env_entries_and_variables_tagstrap_sets_are_refused() {
    for (entry, needle) in [
        ("", "is empty"),
        ("VAULT_*", "is a pattern"),
        ("MY VAR", "holds a blank"),
        ("A\u{1b}[2J", "control character U+001B"),
        ("VAULT_TOKEN=s.Secr3t", "holds '='"),
        ("https_proxy", "tagstrap sets"),
        ("NO_PROXY", "tagstrap sets"),
    ] {
        refused(entry, needle);
    }
}

#[test]
fn write_env_holds_only_the_proxy_variables_whatever_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    write_secret(&creds, "PROXY_PASS", PASSWORD, 0o400);
    let env_file = dir.path().join("proxy.env");
    let path = config(dir.path(), "pass_env = [\"VAULT_NAMESPACE\"]\n");
    let witness = Witness::new();
    let run = proxied(Tagstrap::new("run"))
        .tag("rs_agent:mime_shellscript", &witness.url())
        .arg("--config")
        .arg(&path)
        .arg("--write-env")
        .arg(&env_file)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("TAGSTRAP_STORE", "directory")
        .env("TAGSTRAP_DEADLINE", "30")
        .env("VAULT_TOKEN", "s.WriteEnv-t0ken")
        .env("VAULT_NAMESPACE", "team-a")
        .run();
    run.assert_success().assert_no_leak("s.WriteEnv-t0ken");
    assert!(witness.ran());
    let text = std::fs::read_to_string(&env_file).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_once('=').unwrap().0)
        .collect();
    assert_eq!(names, PROXY_VARS, "{text}");
    for absent in [
        "VAULT_",
        "TAGSTRAP_",
        "CREDENTIALS_DIRECTORY",
        "s.WriteEnv",
        "team-a",
    ] {
        assert!(!text.contains(absent), "{absent} in:\n{text}");
    }
}
