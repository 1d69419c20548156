//! The Vault/OpenBao logins that need no stored secret (issue 14), against a
//! real OpenBao dev server: `jwt` with a JWT in a file (signed RS256 by
//! `testkit::jwt::SigningKey`, the public key in the method's `jwt_validation_pubkeys`) and `cert` over
//! OpenBao's TLS listener with client certificates from a test CA. Each
//! login reads the proxy password, revokes its token after, and names
//! itself in `plan`; each refusal is 77, each bad setting 78, with one error
//! line, nothing run and nothing leaked. Then the jwt login with the GCE and
//! Azure tokens of the metadata fakes (signed with a key OpenBao is told to
//! trust), and the aws login against testkit's stand-in for Vault's aws
//! method (OpenBao has none), which replays the signed request to moto.

mod common;

use common::{write_file, write_secret, Run, Tagstrap, Witness};
use serde_json::{json, Value};
use testkit::jwt::SigningKey;
use testkit::{Bao, Cloud, FakeMetadata, TestCa};

const USER: &str = "svc-agent";
const PASSWORD: &str = "p@ss:/%w0rd-l0gin";
const PROXY: &str = "proxy.test:3128";
const AUDIENCE: &str = "https://vault.tagstrap.test";
const SUBJECT: &str = "projects/p-1/zones/z/instances/instance-1";
const CN: &str = "instance-1.tagstrap.test";

fn run_with(config: &std::path::Path, subcommand: &str) -> (Tagstrap, Witness) {
    let witness = Witness::expecting_proxy(PROXY, USER, PASSWORD);
    let t = Tagstrap::new(subcommand)
        .arg("--config")
        .arg(config)
        .tag("rs_agent:http_proxy", PROXY)
        .tag("rs_agent:http_proxy_user", USER)
        .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
        .tag("rs_agent:mime_shellscript", &witness.url());
    (t, witness)
}

fn api_ok(bao: &Bao, method: &str, path: &str, body: Value) {
    let r = bao.api(method, path, Some(&bao.root_token()), Some(&body));
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: {}",
        r.text()
    );
}

/// A policy reading `secret/data/*`.
fn read_policy(bao: &Bao) -> &'static str {
    api_ok(
        bao,
        "PUT",
        "/v1/sys/policies/acl/boot-read",
        json!({ "policy": "path \"secret/data/*\" { capabilities = [\"read\"] }" }),
    );
    "boot-read"
}

fn assert_refused(run: &Run, witness: &Witness, code: i32, needle: &str, secrets: &[&str]) {
    run.assert_error(code, needle);
    assert!(!witness.ran(), "the script must not run");
    for secret in [PASSWORD].iter().chain(secrets) {
        run.assert_no_leak(secret);
    }
}

// ---- jwt ----

/// `bao` holding PROXY_PASS, with the auth method `kind` enabled (and
/// configured with `config`) and the role at `auth/{kind}/{role_path}`
/// given the read policy.
fn with_login(bao: Bao, kind: &str, config: Option<Value>, role_path: &str, role: Value) -> Bao {
    bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
    let policy = read_policy(&bao);
    api_ok(
        &bao,
        "POST",
        &format!("/v1/sys/auth/{kind}"),
        json!({ "type": kind }),
    );
    if let Some(config) = config {
        api_ok(&bao, "POST", &format!("/v1/auth/{kind}/config"), config);
    }
    let mut role = role;
    role["token_policies"] = json!([policy]);
    role["token_ttl"] = json!("10m");
    api_ok(&bao, "POST", &format!("/v1/auth/{kind}/{role_path}"), role);
    bao
}

/// OpenBao's jwt method trusting `public_pem`, role `boot` bound to
/// `audience`, the subject claim as its user, and `bound` (e.g.
/// `bound_subject`, `bound_claims`).
fn bao_with_jwt(public_pem: &str, audience: &str, bound: Value) -> Bao {
    let mut role = json!({
        "role_type": "jwt",
        "bound_audiences": [audience],
        "user_claim": "sub",
    });
    for (key, value) in bound.as_object().unwrap() {
        role[key] = value.clone();
    }
    let config = json!({ "jwt_validation_pubkeys": [public_pem] });
    with_login(Bao::start(), "jwt", Some(config), "role/boot", role)
}

fn claims(audience: &str, expires_in: i64) -> Value {
    let now = testkit::jwt::now() as i64;
    json!({
        "iss": "https://issuer.tagstrap.test",
        "sub": SUBJECT,
        "aud": audience,
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + expires_in,
    })
}

fn jwt_config(dir: &std::path::Path, bao: &Bao, jwt_file: &std::path::Path) -> std::path::PathBuf {
    write_file(
        dir,
        "config.toml",
        &format!(
            "[vault]\naddress = {:?}\n\n[vault.jwt]\nrole = \"boot\"\ntoken = \"file\"\nfile = {:?}\n",
            bao.addr(),
            jwt_file.display().to_string()
        ),
    )
}

/// A new signing key, and OpenBao trusting it for AUDIENCE and SUBJECT.
fn key_and_bao() -> (SigningKey, Bao) {
    let key = SigningKey::generate();
    let bound = json!({ "bound_subject": SUBJECT });
    let bao = bao_with_jwt(key.public_pem(), AUDIENCE, bound);
    (key, bao)
}

#[test]
fn the_jwt_login_with_a_file_reads_the_secret_and_revokes_its_token() {
    let (key, bao) = key_and_bao();
    let dir = tempfile::tempdir().unwrap();
    let jwt = key.sign(&claims(AUDIENCE, 600));
    let file = write_secret(dir.path(), "jwt", &format!("{jwt}\n"), 0o600);
    let config = jwt_config(dir.path(), &bao, &file);
    let before = bao.live_tokens();

    let (t, witness) = run_with(&config, "run");
    let run = t.arg("-v").run();
    run.assert_success();
    assert!(witness.ran(), "{}", run.stderr);
    run.assert_no_leak(PASSWORD).assert_no_leak(&jwt);
    assert!(
        run.stderr
            .contains("logged in to the store with the jwt login (auth/jwt/login)"),
        "{}",
        run.stderr
    );
    assert_eq!(bao.live_tokens(), before, "the login's token was revoked");

    // `plan` names the login the store was read with.
    let (t, _) = run_with(&config, "plan");
    let run = t.run();
    run.assert_success().assert_no_leak(&jwt);
    assert!(
        run.stdout.contains(&format!(
            "logged in with the jwt login at auth/jwt as role boot with the JWT in {}",
            file.display()
        )),
        "{}",
        run.stdout
    );
    assert_eq!(bao.live_tokens(), before, "plan revokes its token too");

    // So does `doctor`, on its credentials line.
    let (t, _) = run_with(&config, "doctor");
    let run = t.run();
    run.assert_no_leak(&jwt).assert_no_leak(PASSWORD);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("credentials"))
        .unwrap_or_else(|| panic!("no credentials line:\n{}", run.stdout));
    assert!(
        line.contains("resolved from the Vault/OpenBao store at http://127.0.0.1")
            && line.contains("logged in with the jwt login at auth/jwt as role boot"),
        "{line}"
    );
    assert_eq!(bao.live_tokens(), before, "doctor revokes its token too");

    // And after a failure: a credential the store does not hold.
    let witness = Witness::new();
    let run = Tagstrap::new("run")
        .arg("--config")
        .arg(&config)
        .tag("rs_agent:http_proxy", PROXY)
        .tag("rs_agent:http_proxy_user", USER)
        .tag("rs_agent:http_proxy_password", "cred:MISSING")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .run();
    assert_refused(&run, &witness, 66, "cred:MISSING does not exist", &[&jwt]);
    assert_eq!(bao.live_tokens(), before, "revoked after a failure too");
}

#[test]
fn a_jwt_for_another_audience_expired_or_signed_by_another_key_is_refused() {
    let (key, bao) = key_and_bao();
    let dir = tempfile::tempdir().unwrap();
    let other_key = SigningKey::generate();
    for (what, jwt) in [
        (
            "another audience",
            key.sign(&claims("https://other.test", 600)),
        ),
        ("expired", key.sign(&claims(AUDIENCE, -3600))),
        ("another key", other_key.sign(&claims(AUDIENCE, 600))),
    ] {
        let file = write_secret(dir.path(), "jwt", &jwt, 0o600);
        let config = jwt_config(dir.path(), &bao, &file);
        let (t, witness) = run_with(&config, "run");
        let run = t.run();
        assert_refused(
            &run,
            &witness,
            77,
            "the jwt login at auth/jwt/login on http://127.0.0.1",
            &[&jwt],
        );
        assert!(run.error_lines()[0].contains("bound_audiences"), "{what}");
        assert_eq!(run.failed_tries(), 0, "{what}: not retried: {}", run.stderr);
    }
}

#[test]
fn bad_jwt_settings_are_78_and_an_exposed_jwt_file_is_77_before_anything_is_sent() {
    let key = SigningKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let jwt = key.sign(&claims(AUDIENCE, 600));
    let good = write_secret(dir.path(), "jwt", &jwt, 0o600);
    let exposed = write_secret(dir.path(), "exposed-jwt", &jwt, 0o644);
    let not_a_jwt = write_secret(dir.path(), "not-a-jwt", "just-a-word", 0o600);
    // Nothing listens here: a request would be retried until the deadline
    // (69), so each code below shows nothing was sent.
    let address = format!("http://127.0.0.1:{}", testkit::free_port());
    let vault = format!("[vault]\naddress = {address:?}\n");
    let path = |p: &std::path::Path| format!("{:?}", p.display().to_string());
    for (section, code, needle) in [
        (
            "[vault.jwt]\ntoken = \"gcp\"\n".to_string(),
            78,
            "[vault.jwt] token in",
        ),
        (
            "[vault.jwt]\nrole = \"boot\"\n".into(),
            78,
            "set token = \"gce\", \"azure\" or \"file\"",
        ),
        (
            "[vault.jwt]\ntoken = \"gce\"\n".into(),
            78,
            "token = \"gce\" needs the audience",
        ),
        (
            format!("[vault.jwt]\ntoken = \"gce\"\naudience = \"a\"\nfile = {}\n", path(&good)),
            78,
            "[vault.jwt] file in",
        ),
        (
            "[vault.jwt]\ntoken = \"file\"\n".into(),
            78,
            "token = \"file\" needs the file",
        ),
        (
            "[vault.jwt]\ntoken = \"file\"\nfile = \"x\"\naudienc = \"a\"\n".into(),
            78,
            "audienc",
        ),
        (
            format!("[vault.jwt]\nrole = \"bo\u{202e}ot\"\nfile = {}\n", path(&good)),
            78,
            "[vault.jwt] role in",
        ),
        (
            format!(
                "[vault.jwt]\nfile = {}\n\n[vault.approle]\nrole_id = \"r\"\nsecret_id_file = \"/x\"\n",
                path(&good)
            ),
            78,
            "keep one way to log in",
        ),
        (
            format!("[vault.jwt]\nfile = {}\n", path(&exposed)),
            77,
            "has mode 0644",
        ),
        (
            format!("[vault.jwt]\nfile = {}\n", path(&not_a_jwt)),
            65,
            "does not hold a JWT",
        ),
        (
            format!("[vault.jwt]\nfile = {}\n", path(&dir.path().join("missing"))),
            66,
            "the JWT file ([vault.jwt] file)",
        ),
    ] {
        let config = write_file(dir.path(), "config.toml", &format!("{vault}\n{section}"));
        let (t, witness) = run_with(&config, "run");
        let run = t.arg("--deadline").arg("2").run();
        assert_refused(&run, &witness, code, needle, &[&jwt, "just-a-word"]);
        assert_eq!(run.failed_tries(), 0, "{section}: nothing sent: {}", run.stderr);
    }
}

// ---- cert ----

/// OpenBao on TLS with the cert method, role `boot` trusting `client_ca`
/// for CN.
fn bao_with_cert(client_ca: &TestCa) -> Bao {
    let role = json!({ "certificate": client_ca.ca_pem(), "allowed_common_names": [CN] });
    with_login(Bao::start_tls(), "cert", None, "certs/boot", role)
}

struct ClientFiles {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    key_pem: String,
}

fn client_files(dir: &std::path::Path, cert: &testkit::IssuedCert, key_mode: u32) -> ClientFiles {
    ClientFiles {
        cert: write_file(dir, "client.pem", &cert.cert_pem),
        key: write_secret(dir, "client.key", &cert.key_pem, key_mode),
        key_pem: cert.key_pem.clone(),
    }
}

/// A line of the key's base64: what would show if the key leaked.
fn key_line(files: &ClientFiles) -> String {
    files.key_pem.lines().nth(1).unwrap().to_string()
}

fn cert_config(dir: &std::path::Path, address: &str, files: &ClientFiles) -> std::path::PathBuf {
    write_file(
        dir,
        "config.toml",
        &format!(
            "[vault]\naddress = {address:?}\n\n[vault.cert]\nrole = \"boot\"\ncert_file = \
             {:?}\nkey_file = {:?}\n",
            files.cert.display().to_string(),
            files.key.display().to_string()
        ),
    )
}

#[test]
fn the_cert_login_presents_the_client_certificate_and_revokes_its_token() {
    let client_ca = TestCa::new();
    let bao = bao_with_cert(&client_ca);
    let ca = bao.ca_pem_path().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = client_files(dir.path(), &client_ca.issue_client(CN, false), 0o600);
    let config = cert_config(dir.path(), &bao.addr(), &files);
    let before = bao.live_tokens();

    let (t, witness) = run_with(&config, "run");
    let run = t.env("VAULT_CACERT", &ca).run();
    run.assert_success();
    assert!(witness.ran(), "{}", run.stderr);
    run.assert_no_leak(PASSWORD)
        .assert_no_leak(&key_line(&files));
    assert_eq!(bao.live_tokens(), before, "the login's token was revoked");

    let (t, _) = run_with(&config, "plan");
    let run = t.env("VAULT_CACERT", &ca).run();
    run.assert_success();
    assert!(
        run.stdout.contains(&format!(
            "logged in with the cert login at auth/cert as role boot with the certificate in {} \
             (CN {CN})",
            files.cert.display()
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn a_client_certificate_of_another_ca_or_for_another_name_is_refused() {
    let client_ca = TestCa::new();
    let bao = bao_with_cert(&client_ca);
    let ca = bao.ca_pem_path().unwrap();
    let other_ca = TestCa::new();
    for (what, cert) in [
        ("another CA", other_ca.issue_client(CN, false)),
        ("another CN", client_ca.issue_client("intruder.test", false)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let files = client_files(dir.path(), &cert, 0o600);
        let config = cert_config(dir.path(), &bao.addr(), &files);
        let (t, witness) = run_with(&config, "run");
        let run = t.env("VAULT_CACERT", &ca).run();
        assert_refused(
            &run,
            &witness,
            77,
            "the cert login at auth/cert/login on https://127.0.0.1",
            &[&key_line(&files)],
        );
        assert!(
            run.error_lines()[0].contains("allowed_common_names"),
            "{what}"
        );
        assert_eq!(run.failed_tries(), 0, "{what}: not retried: {}", run.stderr);
    }
}

#[test]
fn an_exposed_key_file_plain_http_or_missing_files_send_nothing() {
    let client_ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let cert = client_ca.issue_client(CN, false);
    let address = format!("https://127.0.0.1:{}", testkit::free_port());

    let exposed = client_files(dir.path(), &cert, 0o644);
    let config = cert_config(dir.path(), &address, &exposed);
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--deadline").arg("2").run();
    assert_refused(&run, &witness, 77, "has mode 0644", &[&key_line(&exposed)]);
    assert!(run.error_lines()[0].contains("chmod 600"));

    let files = client_files(dir.path(), &cert, 0o600);
    let plain = format!("http://127.0.0.1:{}", testkit::free_port());
    let config = cert_config(dir.path(), &plain, &files);
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--deadline").arg("2").run();
    assert_refused(&run, &witness, 78, "must be https://", &[&key_line(&files)]);

    for (section, code, needle) in [
        (
            "[vault.cert]\ncert = \"/c.pem\"\n",
            78,
            "unknown field `cert`",
        ),
        (
            "[vault.cert]\nrole = \"boot\"\n",
            78,
            "[vault.cert] cert_file in",
        ),
        (
            "[vault.cert]\ncert_file = \"/nonexistent/client.pem\"\nkey_file = \"/x\"\n",
            66,
            "/nonexistent/client.pem does not exist",
        ),
    ] {
        let config = write_file(
            dir.path(),
            "config.toml",
            &format!("[vault]\naddress = {address:?}\n\n{section}"),
        );
        let (t, witness) = run_with(&config, "run");
        let run = t.arg("--deadline").arg("2").run();
        assert_refused(&run, &witness, code, needle, &[]);
    }

    // An expired certificate is refused before it is sent (OpenBao answers
    // 500 to one, which would be retried until the deadline).
    let expired_dir = tempfile::tempdir().unwrap();
    let expired = client_files(expired_dir.path(), &client_ca.issue_client(CN, true), 0o600);
    let config = cert_config(expired_dir.path(), &address, &expired);
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--deadline").arg("2").run();
    assert_refused(&run, &witness, 77, "expired on", &[&key_line(&expired)]);
    assert!(run.error_lines()[0].contains("renew it"));

    // One not valid yet (the instance's clock, or a certificate issued
    // ahead): 77 with the date, nothing sent.
    let early_dir = tempfile::tempdir().unwrap();
    let early = client_files(
        early_dir.path(),
        &client_ca.issue_not_yet_valid(&[CN]),
        0o600,
    );
    let config = cert_config(early_dir.path(), &address, &early);
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--deadline").arg("2").run();
    assert_refused(
        &run,
        &witness,
        77,
        "is valid only from",
        &[&key_line(&early)],
    );

    // A key that is not the certificate's.
    let other = client_ca.issue_client(CN, false);
    let wrong = ClientFiles {
        cert: files.cert.clone(),
        key: write_secret(dir.path(), "other.key", &other.key_pem, 0o600),
        key_pem: other.key_pem.clone(),
    };
    let config = cert_config(dir.path(), &address, &wrong);
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--deadline").arg("2").run();
    assert_refused(
        &run,
        &witness,
        78,
        "cannot be used together",
        &[&key_line(&wrong)],
    );
}

// ---- jwt with the cloud's identity token ----

/// OpenBao's jwt method trusting the fake's key, role `boot` bound to
/// `audience` and to `claims` (JSON pointers, as Vault's `bound_claims`).
fn bao_trusting(fake: &FakeMetadata, audience: &str, claims: Value) -> Bao {
    let public_pem = fake.signing_key().public_pem().to_string();
    bao_with_jwt(&public_pem, audience, json!({ "bound_claims": claims }))
}

fn cloud_config(dir: &std::path::Path, bao: &Bao, jwt: &str) -> std::path::PathBuf {
    write_file(
        dir,
        "config.toml",
        &format!(
            "[vault]\naddress = {:?}\n\n[vault.jwt]\nrole = \"boot\"\n{jwt}",
            bao.addr()
        ),
    )
}

#[test]
fn the_jwt_login_with_the_gce_identity_token_is_bound_to_the_project() {
    let fake = FakeMetadata::builder(Cloud::Gce).start();
    let project = std::fs::read_to_string(
        Cloud::Gce
            .fixture_dir()
            .join("computeMetadata/v1/project/project-id"),
    )
    .unwrap();
    let project = project.trim();
    let bao = bao_trusting(
        &fake,
        AUDIENCE,
        json!({ "/google/compute_engine/project_id": project }),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = cloud_config(
        dir.path(),
        &bao,
        &format!("token = \"gce\"\naudience = {AUDIENCE:?}\n"),
    );
    let before = bao.live_tokens();
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--metadata-endpoint").arg(fake.url()).run();
    run.assert_success();
    assert!(witness.ran(), "{}", run.stderr);
    run.assert_no_leak(PASSWORD);
    assert_eq!(bao.live_tokens(), before, "the login's token was revoked");
    let asked: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| r.target.clone())
        .filter(|p| p.contains("identity"))
        .collect();
    assert!(
        asked.iter().any(|p| p.contains("format=full")),
        "asked with format=full: {asked:?}"
    );

    let (t, _) = run_with(&config, "plan");
    let run = t.arg("--metadata-endpoint").arg(fake.url()).run();
    run.assert_success();
    assert!(
        run.stdout.contains(&format!(
            "logged in with the jwt login at auth/jwt as role boot with the GCE identity token \
             (audience {AUDIENCE})"
        )),
        "{}",
        run.stdout
    );

    // A token for another audience, expired, or signed by another key:
    // refused, 77.
    for fake in [
        FakeMetadata::builder(Cloud::Gce)
            .token_audience("https://other.test")
            .start(),
        FakeMetadata::builder(Cloud::Gce).expired_tokens().start(),
        FakeMetadata::builder(Cloud::Gce)
            .signing_key(SigningKey::generate())
            .start(),
    ] {
        let (t, witness) = run_with(&config, "run");
        let run = t.arg("--metadata-endpoint").arg(fake.url()).run();
        assert_refused(&run, &witness, 77, "the jwt login at auth/jwt/login", &[]);
    }
    // A role bound to another project.
    api_ok(
        &bao,
        "POST",
        "/v1/auth/jwt/role/other",
        json!({
            "role_type": "jwt",
            "bound_audiences": [AUDIENCE],
            "bound_claims": { "/google/compute_engine/project_id": "another-project" },
            "user_claim": "sub",
        }),
    );
    let other = cloud_config(
        dir.path(),
        &bao,
        &format!("token = \"gce\"\naudience = {AUDIENCE:?}\n"),
    );
    let other_text = std::fs::read_to_string(&other)
        .unwrap()
        .replace("\"boot\"", "\"other\"");
    std::fs::write(&other, other_text).unwrap();
    let (t, witness) = run_with(&other, "run");
    let run = t.arg("--metadata-endpoint").arg(fake.url()).run();
    assert_refused(&run, &witness, 77, "the role other", &[]);

    // No service account: 77 with the gcloud fix, nothing sent to the store.
    let none = FakeMetadata::builder(Cloud::Gce).no_identity().start();
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--metadata-endpoint").arg(none.url()).run();
    assert_refused(&run, &witness, 77, "gcloud compute instances", &[]);
}

#[test]
fn the_jwt_login_with_the_azure_managed_identity_token_is_bound_to_the_identity() {
    let fake = FakeMetadata::builder(Cloud::Azure).start();
    let resource = "https://management.azure.com/";
    let token = fake.managed_identity_token(resource, None);
    let claims = testkit::jwt::claims(&token).unwrap();
    let bao = bao_trusting(&fake, resource, json!({ "oid": claims["oid"] }));
    let dir = tempfile::tempdir().unwrap();
    let config = cloud_config(dir.path(), &bao, "token = \"azure\"\n");
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--metadata-endpoint").arg(fake.url()).run();
    run.assert_success();
    assert!(witness.ran(), "{}", run.stderr);
    run.assert_no_leak(PASSWORD).assert_no_leak(&token);

    // A token for another resource than the role's audience: 77.
    let config = cloud_config(
        dir.path(),
        &bao,
        "token = \"azure\"\naudience = \"https://vault.azure.net\"\n",
    );
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--metadata-endpoint").arg(fake.url()).run();
    assert_refused(
        &run,
        &witness,
        77,
        "the jwt login at auth/jwt/login",
        &[&token],
    );
}

// ---- aws ----

/// Moto (authentication on) with roles `reader` and `other`, the IMDS fake
/// of `role`, and testkit's stand-in for Vault's aws method (OpenBao has
/// none) with role `web` bound to `reader` and the server ID required.
fn aws_world(role: &str) -> (testkit::Moto, FakeMetadata, testkit::VaultAwsLogin) {
    let moto = testkit::Moto::builder("eu-west-1")
        .role("reader", &["sts:GetCallerIdentity"], 1)
        .role("other", &["sts:GetCallerIdentity"], 1)
        .start();
    let made = moto.role(role);
    let imds = FakeMetadata::builder(Cloud::Aws)
        .aws_role(
            role,
            &made.instance_profile_arn,
            vec![testkit::AwsRoleSet::fresh(made.credentials[0].clone())],
        )
        .start();
    let vault = testkit::VaultAwsLogin::builder(&moto, "web", &moto.role("reader").arn)
        .server_id("vault.example.com")
        .secret("PROXY_PASS", PASSWORD)
        .start();
    (moto, imds, vault)
}

fn aws_config(dir: &std::path::Path, address: &str, section: &str) -> std::path::PathBuf {
    write_file(
        dir,
        "config.toml",
        &format!("[vault]\naddress = {address:?}\n\n[vault.aws]\n{section}"),
    )
}

/// A config logging in as role `web` with the stand-in's server ID.
fn web_config(vault: &testkit::VaultAwsLogin) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let section = "role = \"web\"\nserver_id = \"vault.example.com\"\n";
    let config = aws_config(dir.path(), &vault.addr(), section);
    (dir, config)
}

#[test]
fn the_aws_login_signs_get_caller_identity_with_the_instance_role() {
    let (moto, imds, vault) = aws_world("reader");
    let (dir, config) = web_config(&vault);
    let keys = &moto.role("reader").credentials[0];
    let secrets = [
        keys.secret_access_key.as_str(),
        keys.session_token.as_str(),
        keys.access_key_id.as_str(),
    ];
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--metadata-endpoint").arg(imds.url()).run();
    run.assert_success();
    assert!(witness.ran(), "{}", run.stderr);
    for secret in [PASSWORD].iter().chain(&secrets) {
        run.assert_no_leak(secret);
    }
    assert_eq!((vault.granted(), vault.revoked()), (1, 1), "revoked after");

    let (t, _) = run_with(&config, "plan");
    let run = t.arg("--metadata-endpoint").arg(imds.url()).run();
    run.assert_success();
    assert!(
        run.stdout.contains(
            "logged in with the aws login at auth/aws as role web with the instance role's \
             signed sts:GetCallerIdentity (role reader"
        ),
        "{}",
        run.stdout
    );

    // Another server ID: the store refuses the signature, 77.
    let wrong = aws_config(
        dir.path(),
        &vault.addr(),
        "role = \"web\"\nserver_id = \"other.example.com\"\n",
    );
    let (t, witness) = run_with(&wrong, "run");
    let run = t.arg("--metadata-endpoint").arg(imds.url()).run();
    assert_refused(
        &run,
        &witness,
        77,
        "the aws login at auth/aws/login",
        &secrets,
    );
    assert!(run.error_lines()[0].contains("iam_server_id_header_value"));

    // An instance without a role: 77 naming the fix, nothing sent.
    let roleless = FakeMetadata::builder(Cloud::Aws).start();
    let asked = (vault.granted(), vault.refused().len());
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--metadata-endpoint").arg(roleless.url()).run();
    run.assert_error(77, "role");
    assert!(!witness.ran());
    let now = (vault.granted(), vault.refused().len());
    assert_eq!(now, asked, "nothing sent to the store");

    // A bad region: 78 before anything is sent.
    let bad = aws_config(dir.path(), &vault.addr(), "region = \"Europe West\"\n");
    let (t, witness) = run_with(&bad, "run");
    let run = t.arg("--metadata-endpoint").arg(imds.url()).run();
    assert_refused(&run, &witness, 78, "[vault.aws] region in", &secrets);
}

#[test]
fn the_aws_login_of_an_instance_with_another_role_is_refused() {
    let (moto, imds, vault) = aws_world("other");
    let (_dir, config) = web_config(&vault);
    let keys = &moto.role("other").credentials[0];
    let (t, witness) = run_with(&config, "run");
    let run = t.arg("--metadata-endpoint").arg(imds.url()).run();
    assert_refused(
        &run,
        &witness,
        77,
        "the aws login at auth/aws/login",
        &[keys.secret_access_key.as_str(), keys.session_token.as_str()],
    );
    assert!(
        run.error_lines()[0].contains("role other"),
        "{}",
        run.stderr
    );
    assert_eq!(vault.granted(), 0);
}
