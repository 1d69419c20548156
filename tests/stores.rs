//! The credential stores against a real OpenBao dev server and real files:
//! KV v1 and v2, a token from the environment, from a token file and from
//! systemd's credentials directory, AppRole, namespaces, TLS, a sealed store,
//! and the directory store. Every test runs a local witness script that
//! proves it ran, and most of them one that runs only when its `http_proxy`
//! holds exactly the expected user and password: proof that the secret was
//! resolved and placed, without the script file holding it. The proxy itself
//! is never contacted (the script is a file:// URL); the end-to-end tests
//! through Squid are in `proxy_e2e.rs` and `store_ha.rs`.

mod common;

use common::{write_file, write_secret, Run, Tagstrap, Witness};
use serde_json::json;
use testkit::Bao;

const USER: &str = "svc-agent";
const PASSWORD: &str = "p@ss:/%w0rd-st0re";
const PROXY: &str = "proxy.test:3128";
const READ_POLICY: &str = "path \"secret/data/*\" { capabilities = [\"read\"] }";

/// `tagstrap run` with the proxy tags and a witness expecting USER:PASSWORD.
fn run_expecting(user_tag: &str) -> (Tagstrap, Witness) {
    let witness = Witness::expecting_proxy(PROXY, USER, PASSWORD);
    let t = Tagstrap::new("run")
        .tag("rs_agent:http_proxy", PROXY)
        .tag("rs_agent:http_proxy_user", user_tag)
        .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
        .tag("rs_agent:mime_shellscript", &witness.url());
    (t, witness)
}

fn bao_with_password() -> Bao {
    let bao = Bao::start();
    bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
    bao
}

/// The run succeeded, the witness saw the right proxy URL, nothing leaked.
fn assert_resolved(run: &Run, witness: &Witness, secrets: &[&str]) {
    run.assert_success();
    assert!(witness.ran(), "{}", run.stderr);
    for secret in [PASSWORD].iter().chain(secrets) {
        run.assert_no_leak(secret);
    }
}

/// The run failed with `code` and `needle`, ran nothing and leaked nothing.
fn assert_refused(run: &Run, witness: &Witness, code: i32, needle: &str, secrets: &[&str]) {
    run.assert_error(code, needle);
    assert!(!witness.ran(), "the script must not run");
    for secret in [PASSWORD].iter().chain(secrets) {
        run.assert_no_leak(secret);
    }
}

fn config_file(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    write_file(dir, "config.toml", text)
}

#[test]
fn kv_version_1_with_a_mount_prefix_and_field_from_the_config_file() {
    let bao = Bao::start();
    bao.mount_kv1("kv1");
    bao.put_kv1("kv1", "boot/agents/PROXY_PASS", &[("password", PASSWORD)]);
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &format!(
            "[vault]\naddress = \"{}\"\nmount = \"kv1\"\nkv_version = 1\n\
             path_prefix = \"boot/agents\"\nfield = \"password\"\n",
            bao.addr()
        ),
    );
    let (t, witness) = run_expecting(USER);
    let token = bao.root_token();
    let run = t
        .arg("--config")
        .arg(config)
        .env("VAULT_TOKEN", &token)
        .run();
    assert_resolved(&run, &witness, &[&token]);
}

#[test]
fn the_proxy_user_can_be_a_credential_too() {
    let bao = bao_with_password();
    bao.put_kv2("secret", "PROXY_USER", &[("value", USER)]);
    let token = bao.create_token(READ_POLICY);
    let (t, witness) = run_expecting("cred:PROXY_USER");
    let run = t.vault(&bao.addr(), &token).run();
    assert_resolved(&run, &witness, &[&token]);
    assert_eq!(
        run.report_json()["credentials"],
        json!(["cred:PROXY_USER", "cred:PROXY_PASS"])
    );
}

#[test]
fn a_token_file_is_used_only_while_it_is_private() {
    let bao = bao_with_password();
    let token = bao.create_token(READ_POLICY);
    let dir = tempfile::tempdir().unwrap();
    let file = write_secret(dir.path(), "vault-token", &format!("{token}\n"), 0o600);

    let (t, witness) = run_expecting(USER);
    let run = t
        .env("VAULT_ADDR", bao.addr())
        .env("TAGSTRAP_VAULT_TOKEN_FILE", &file)
        .run();
    assert_resolved(&run, &witness, &[&token]);

    let file = write_secret(dir.path(), "vault-token", &token, 0o644);
    let (t, witness) = run_expecting(USER);
    let run = t
        .env("VAULT_ADDR", bao.addr())
        .env("TAGSTRAP_VAULT_TOKEN_FILE", &file)
        .run();
    assert_refused(&run, &witness, 77, "has mode 0644", &[&token]);
    assert!(run.error_lines()[0].contains("chmod 600"));
}

#[test]
fn systemd_credentials_supply_the_store_token() {
    let bao = bao_with_password();
    let token = bao.create_token(READ_POLICY);
    let creds = tempfile::tempdir().unwrap();
    write_secret(creds.path(), "vault-token", &token, 0o400);
    let (t, witness) = run_expecting(USER);
    let run = t
        .env("VAULT_ADDR", bao.addr())
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .run();
    assert_resolved(&run, &witness, &[&token]);
}

#[test]
fn approle_logs_in_with_the_secret_id_file_and_revokes_its_token_after() {
    let bao = bao_with_password();
    bao.enable_approle();
    let (role_id, secret_id) = bao.create_approle("tagstrap-boot", READ_POLICY);
    let dir = tempfile::tempdir().unwrap();
    let file = write_secret(dir.path(), "secret-id", &format!("{secret_id}\n"), 0o600);
    let before = bao.live_tokens();

    let (t, witness) = run_expecting(USER);
    let run = t
        .env("VAULT_ADDR", bao.addr())
        .env("TAGSTRAP_VAULT_ROLE_ID", &role_id)
        .env("TAGSTRAP_VAULT_SECRET_ID_FILE", &file)
        .arg("-vv")
        .run();
    assert_resolved(&run, &witness, &[&secret_id]);
    assert!(run.stderr.contains("logged in to the store with AppRole"));
    assert_eq!(
        bao.live_tokens(),
        before,
        "the login's token was revoked once the credentials were read"
    );

    // Also when a credential cannot be read.
    let witness = Witness::new();
    let run = Tagstrap::new("run")
        .tag("rs_agent:http_proxy", PROXY)
        .tag("rs_agent:http_proxy_user", USER)
        .tag("rs_agent:http_proxy_password", "cred:MISSING")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .env("VAULT_ADDR", bao.addr())
        .env("TAGSTRAP_VAULT_ROLE_ID", &role_id)
        .env("TAGSTRAP_VAULT_SECRET_ID_FILE", &file)
        .run();
    assert_refused(
        &run,
        &witness,
        66,
        "cred:MISSING does not exist",
        &[&secret_id],
    );
    assert_eq!(bao.live_tokens(), before, "revoked after a failure too");
}

#[test]
fn approle_with_a_wrong_or_exposed_secret_id_is_refused() {
    let bao = bao_with_password();
    bao.enable_approle();
    let (role_id, secret_id) = bao.create_approle("tagstrap-boot", READ_POLICY);
    let dir = tempfile::tempdir().unwrap();

    let wrong = write_secret(dir.path(), "wrong", "0000-not-the-secret-id", 0o600);
    let (t, witness) = run_expecting(USER);
    let run = t
        .env("VAULT_ADDR", bao.addr())
        .env("TAGSTRAP_VAULT_ROLE_ID", &role_id)
        .env("TAGSTRAP_VAULT_SECRET_ID_FILE", &wrong)
        .run();
    assert_refused(
        &run,
        &witness,
        77,
        "AppRole login at auth/approle/login",
        &["0000-not-the-secret-id", &secret_id],
    );

    let exposed = write_secret(dir.path(), "exposed", &secret_id, 0o640);
    let (t, witness) = run_expecting(USER);
    let run = t
        .env("VAULT_ADDR", bao.addr())
        .env("TAGSTRAP_VAULT_ROLE_ID", &role_id)
        .env("TAGSTRAP_VAULT_SECRET_ID_FILE", &exposed)
        .run();
    assert_refused(&run, &witness, 77, "has mode 0640", &[&secret_id]);
}

#[test]
fn a_namespace_is_sent_when_set() {
    let bao = Bao::start();
    let root = bao.root_token();
    let ok = |r: testkit::HttpResponse| assert!(r.status < 300, "{} {}", r.status, r.text());
    ok(bao.api("POST", "/v1/sys/namespaces/team", Some(&root), None));
    ok(bao.api(
        "POST",
        "/v1/team/sys/mounts/secret",
        Some(&root),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    ));
    ok(bao.api(
        "POST",
        "/v1/team/secret/data/PROXY_PASS",
        Some(&root),
        Some(&json!({"data": {"value": PASSWORD}})),
    ));

    let (t, witness) = run_expecting(USER);
    let run = t
        .vault(&bao.addr(), &root)
        .env("VAULT_NAMESPACE", "team")
        .run();
    assert_resolved(&run, &witness, &[&root]);

    let (t, witness) = run_expecting(USER);
    let run = t.vault(&bao.addr(), &root).run();
    assert_refused(
        &run,
        &witness,
        66,
        "credential cred:PROXY_PASS does not exist",
        &[&root],
    );
}

#[test]
fn the_directory_store_reads_one_private_file_per_secret() {
    let creds = tempfile::tempdir().unwrap();
    write_secret(creds.path(), "PROXY_PASS", &format!("{PASSWORD}\n"), 0o400);
    write_secret(creds.path(), "PROXY_USER", USER, 0o600);
    let (t, witness) = run_expecting("cred:PROXY_USER");
    let run = t.env("CREDENTIALS_DIRECTORY", creds.path()).run();
    assert_resolved(&run, &witness, &[]);

    // Named in the config file, it wins over nothing; a Vault address would
    // win under `auto`, so `store = "directory"` forces it.
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &format!(
            "store = \"directory\"\n[directory]\npath = \"{}\"\n",
            creds.path().display()
        ),
    );
    let (t, witness) = run_expecting("cred:PROXY_USER");
    let run = t
        .arg("--config")
        .arg(config)
        .env("VAULT_ADDR", "http://127.0.0.1:9")
        .run();
    assert_resolved(&run, &witness, &[]);
}

// --- Bad input: each one exit code, one error line, nothing run, nothing leaked.

#[test]
fn directory_store_files_that_are_missing_exposed_empty_or_unprintable_are_refused() {
    /// The file's content and mode (none: no file), the exit code, the message.
    type Case = (Option<(&'static str, u32)>, i32, &'static str);
    let cases: &[Case] = &[
        (None, 66, "LoadCredential=PROXY_PASS:"),
        (Some((PASSWORD, 0o644)), 77, "has mode 0644"),
        (Some((PASSWORD, 0o604)), 77, "has mode 0604"),
        (Some(("", 0o600)), 65, "is empty"),
        (Some(("p@ss\u{1b}[0m", 0o600)), 65, "control character"),
    ];
    for (file, code, needle) in cases {
        let creds = tempfile::tempdir().unwrap();
        if let Some((content, mode)) = file {
            write_secret(creds.path(), "PROXY_PASS", content, *mode);
        }
        let (t, witness) = run_expecting(USER);
        let run = t.env("CREDENTIALS_DIRECTORY", creds.path()).run();
        assert_refused(&run, &witness, *code, needle, &["p@ss\u{1b}"]);
    }
}

#[test]
fn store_answers_that_are_not_a_usable_secret_are_refused() {
    let bao = Bao::start();
    let root = bao.root_token();
    let put = |name: &str, data: serde_json::Value| {
        let r = bao.api(
            "POST",
            &format!("/v1/secret/data/{name}"),
            Some(&root),
            Some(&json!({ "data": data })),
        );
        assert!(r.status < 300, "{}", r.text());
    };
    // Long enough that no timing, port or temporary name in an output can
    // hold its digits by chance (4242 once matched "seconds": 0.0279424…).
    put("NUMBER", json!({"value": 86_753_094_217_u64}));
    put("CONTROL", json!({"value": "pass\nword"}));
    put("EMPTY", json!({"value": ""}));
    put("OTHER_FIELD", json!({"password": PASSWORD}));
    put("folder/PROXY_PASS", json!({"value": PASSWORD}));

    for (name, code, needle) in [
        ("MISSING", 66, "credential cred:MISSING does not exist"),
        ("OTHER_FIELD", 66, "has no field \"value\""),
        ("folder", 66, "is a folder holding 1 entries, not a secret"),
        ("NUMBER", 65, "is a number, not a string"),
        ("CONTROL", 65, "holds a control character"),
        ("EMPTY", 65, "is empty"),
    ] {
        let witness = Witness::new();
        let run = Tagstrap::new("run")
            .tag("rs_agent:http_proxy", PROXY)
            .tag("rs_agent:http_proxy_user", USER)
            .tag("rs_agent:http_proxy_password", &format!("cred:{name}"))
            .tag("rs_agent:mime_shellscript", &witness.url())
            .vault(&bao.addr(), &root)
            .run();
        assert_refused(
            &run,
            &witness,
            code,
            needle,
            &[&root, "86753094217", "pass\nword"],
        );
        assert!(
            run.error_lines()[0].contains(&format!("cred:{name}")),
            "{name}"
        );
    }
}

#[test]
fn a_token_the_policy_does_not_allow_is_refused_naming_where_it_came_from() {
    let bao = bao_with_password();
    let token = bao.create_token("");
    let (t, witness) = run_expecting(USER);
    let run = t.vault(&bao.addr(), &token).run();
    assert_refused(
        &run,
        &witness,
        77,
        "denied reading credential cred:PROXY_PASS (secret/data/PROXY_PASS) with 403",
        &[&token],
    );
    assert!(run.error_lines()[0].contains("the token in $VAULT_TOKEN"));
}

#[test]
fn an_unreachable_store_is_exit_69_when_the_deadline_passes() {
    let port = testkit::free_port();
    let (t, witness) = run_expecting(USER);
    let run = t
        .vault(&format!("http://127.0.0.1:{port}"), "t0ken-unreachable")
        .arg("--deadline")
        .arg("1")
        .run();
    assert_refused(
        &run,
        &witness,
        69,
        &format!("http://127.0.0.1:{port} is not reachable"),
        &["t0ken-unreachable"],
    );
    assert!(run.failed_tries() >= 2, "it kept trying:\n{}", run.stderr);
}

#[test]
fn a_malformed_store_address_is_a_configuration_error() {
    for address in [
        "vault.corp:8200",
        "ftp://vault.corp",
        "https://u:pw-in-addr@vault:8200",
    ] {
        let (t, witness) = run_expecting(USER);
        let run = t.vault(address, "t0ken-malformed").run();
        assert_refused(
            &run,
            &witness,
            78,
            "$VAULT_ADDR:",
            &["t0ken-malformed", "pw-in-addr"],
        );
    }
}

#[test]
fn a_store_without_any_token_is_a_configuration_error() {
    let (t, witness) = run_expecting(USER);
    let run = t.env("VAULT_ADDR", "http://127.0.0.1:8200").run();
    assert_refused(&run, &witness, 78, "needs a token: set VAULT_TOKEN", &[]);
}

#[test]
fn a_sealed_store_is_retried_until_it_is_unsealed() {
    let bao = bao_with_password();
    let token = bao.create_token(READ_POLICY);
    bao.seal();
    let (t, witness) = run_expecting(USER);
    let (mut child, state) = t
        .vault(&bao.addr(), &token)
        .arg("--deadline")
        .arg("60")
        .spawn();
    let started = std::time::Instant::now();

    // Read tagstrap's log as it comes; unseal once it has met the sealed store.
    let stderr = child.stderr.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let mut log = Vec::new();
    while let Ok(line) = seen.recv_timeout(std::time::Duration::from_secs(30)) {
        let sealed = line.contains("answered 503 (sealed, or not ready yet)");
        log.push(line);
        if sealed {
            break;
        }
    }
    assert!(
        log.iter().any(|l| l.contains("try 1 failed")),
        "tagstrap met the sealed store:\n{}",
        log.join("\n")
    );
    bao.unseal();
    log.extend(seen.iter());
    let output = child.wait_with_output().unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: log.join("\n"),
        state,
        elapsed: started.elapsed(),
    };
    assert_resolved(&run, &witness, &[&token]);
    assert!(run.stderr.contains("succeeded after"), "{}", run.stderr);
}

#[test]
fn a_tls_store_is_trusted_through_vault_cacert_or_the_ca_file_and_refused_otherwise() {
    let bao = Bao::start_tls();
    bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
    let token = bao.create_token(READ_POLICY);
    let ca = bao.ca_pem_path().expect("a TLS server has a CA file");
    assert!(bao.addr().starts_with("https://"));

    let (t, witness) = run_expecting(USER);
    let run = t.vault(&bao.addr(), &token).env("VAULT_CACERT", &ca).run();
    assert_resolved(&run, &witness, &[&token]);

    let (t, witness) = run_expecting(USER);
    let run = t.vault(&bao.addr(), &token).arg("--ca-file").arg(&ca).run();
    assert_resolved(&run, &witness, &[&token]);

    let (t, witness) = run_expecting(USER);
    let run = t.vault(&bao.addr(), &token).run();
    assert_refused(
        &run,
        &witness,
        77,
        "TLS verification of the store at",
        &[&token],
    );
    assert!(run.error_lines()[0].contains("set VAULT_CACERT or --ca-file"));
    assert_eq!(run.failed_tries(), 0, "not retried: {}", run.stderr);
}
