//! The GCP Secret Manager and Azure Key Vault stores, end to end with the
//! real binary: the instance identity from the metadata fakes
//! (`--metadata-endpoint`), the secret from the store fakes over HTTPS with
//! the test CA (`--ca-file`), and the script downloaded through a real Squid
//! that asks for basic auth, so a run succeeds only when the password read
//! from the store is right. Every failure: its exit code, one error line
//! saying what to do, no script run, no token or password in the output.

mod common;

use common::{sha256_hex, write_file, Run, Tagstrap};
use testkit::metadata::AZURE_SYSTEM_CLIENT_ID;
use testkit::{Cloud, FakeKeyVault, FakeMetadata, FakeSecretManager, Origin, Reply, Squid, TestCa};

const USER: &str = "svc-cloud";
const PASSWORD: &str = "p@ss:/%w0rd-cl0ud";
const ORIGIN_IP: &str = "127.0.0.2";
const USER_ID: &str = "7d2f1c9e-3b4a-4c5d-9e8f-0a1b2c3d4e5f";

/// Squid with basic auth in front of an origin whose script proves it ran.
struct World {
    ca: TestCa,
    squid: Squid,
    origin: Origin,
    /// The script's sha256: it comes over plain http:// through Squid.
    pin: String,
    out: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let out = tempfile::tempdir().unwrap();
        let script = format!("#!/bin/sh\ntouch '{}'\n", out.path().join("ran").display());
        let pin = sha256_hex(script.as_bytes());
        let origin = Origin::builder(None)
            .bind_ip(ORIGIN_IP.parse().unwrap())
            .route("/install.sh", vec![], Reply::ok(script))
            .start();
        let squid = Squid::builder()
            .basic_auth(USER, PASSWORD)
            .allow_http_ports(&[origin.port()])
            .start();
        World {
            ca: TestCa::new(),
            squid,
            origin,
            pin,
            out,
        }
    }

    /// `tagstrap run` with the proxy tags (the password `credential`), the
    /// identity at `meta`, and this config file.
    fn run(&self, meta: &FakeMetadata, credential: &str, config: &str) -> Run {
        self.tagstrap(meta, credential, config).run()
    }

    /// `tagstrap doctor` with the same set-up: its credentials line names
    /// the store as described after the reads.
    fn doctor(&self, meta: &FakeMetadata, credential: &str, config: &str) -> Run {
        self.tagstrap(meta, credential, config).run_as("doctor")
    }

    fn tagstrap(&self, meta: &FakeMetadata, credential: &str, config: &str) -> Tagstrap {
        let config = write_file(self.out.path(), "config.toml", config);
        let _ = std::fs::remove_file(self.out.path().join("ran"));
        Tagstrap::new("run")
            .tag("rs_agent:http_proxy", &self.squid.proxy_addr())
            .tag("rs_agent:http_proxy_user", USER)
            .tag("rs_agent:http_proxy_password", credential)
            .tag("rs_agent:mime_shellscript", &self.origin.url("/install.sh"))
            .tag("rs_agent:mime_shellscript_sha256", &self.pin)
            .arg("--config")
            .arg(config)
            .arg("--metadata-endpoint")
            .arg(meta.url())
            .arg("--ca-file")
            .arg(self.ca.ca_pem_path())
            .arg("--deadline")
            .arg("30")
    }

    /// Squid saw the script's request and nothing for these servers (the
    /// store and the metadata service are reached directly).
    fn assert_direct(&self, servers: &[String]) {
        assert!(
            self.squid
                .wait_for_access_log("GET http://127.0.0.2", std::time::Duration::from_secs(10)),
            "{}",
            self.squid.access_log()
        );
        let log = self.squid.access_log();
        for server in servers {
            let authority = server.split("://").nth(1).unwrap_or(server);
            assert!(
                !log.contains(authority),
                "{authority} went through Squid:\n{log}"
            );
        }
    }

    fn ran(&self) -> bool {
        self.out.path().join("ran").exists()
    }

    /// The run went through Squid with the password and ran the script.
    fn assert_ran(&self, run: &Run, secrets: &[&str]) {
        run.assert_success();
        assert!(self.ran(), "{}", run.stderr);
        for secret in [PASSWORD].iter().chain(secrets) {
            run.assert_no_leak(secret);
        }
    }

    /// The run failed with `code` and one line saying `needle`, ran
    /// nothing, leaked nothing.
    fn assert_refused(&self, run: &Run, code: i32, needle: &str, secrets: &[&str]) {
        run.assert_error(code, needle);
        assert!(!self.ran(), "the script must not run");
        for secret in [PASSWORD].iter().chain(secrets) {
            run.assert_no_leak(secret);
        }
    }
}

fn gcp_config(api: &FakeSecretManager, more: &str) -> String {
    format!(
        "store = \"gcp-secret-manager\"\n[gcp_secret_manager]\nendpoint = \"{}\"\n{more}",
        api.url()
    )
}

fn azure_config(kv: &FakeKeyVault, more: &str) -> String {
    format!(
        "store = \"azure-key-vault\"\n[azure_key_vault]\nvault = \"kv-web\"\nendpoint = \"{}\"\n{more}",
        kv.url()
    )
}

#[test]
fn gcp_secret_manager_gives_the_proxy_password_with_the_service_accounts_token() {
    let world = World::new();
    let meta = FakeMetadata::builder(Cloud::Gce).start();
    let token = meta.access_token();
    let api = FakeSecretManager::builder(&token)
        .secret("tagstrap-PROXY_PASS", PASSWORD)
        .answer_first(&[429, 503])
        .start_with(&world.ca);
    let run = world.run(
        &meta,
        "cred:PROXY_PASS",
        &gcp_config(&api, "prefix = \"tagstrap-\""),
    );
    world.assert_ran(&run, &[&token]);
    // Throttled, then unavailable, then read: three requests.
    assert_eq!(api.requests().len(), 3);
    assert!(api
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some(format!("Bearer {token}").as_str())));
    world.assert_direct(&[api.url(), meta.url()]);
    // doctor describes the store with the identity it used.
    let doctor = world.doctor(
        &meta,
        "cred:PROXY_PASS",
        &gcp_config(&api, "prefix = \"tagstrap-\""),
    );
    assert!(
        doctor
            .stdout
            .contains("as service account tagstrap-vm@example-project.iam.gserviceaccount.com"),
        "{}\n{}",
        doctor.stdout,
        doctor.stderr
    );
    doctor.assert_no_leak(&token);
}

#[test]
fn gcp_secret_manager_failures_say_what_to_grant_or_create() {
    let world = World::new();
    let meta = FakeMetadata::builder(Cloud::Gce).start();
    let token = meta.access_token();
    let api = FakeSecretManager::builder(&token)
        .secret("PROXY_PASS", PASSWORD)
        .secret("DENIED", PASSWORD)
        .deny("DENIED")
        .start_with(&world.ca);
    let secrets = [token.as_str()];

    let other = world.run(
        &meta,
        "cred:PROXY_PASS",
        &gcp_config(&api, "project = \"other-project\""),
    );
    world.assert_refused(&other, 77, "roles/secretmanager.secretAccessor", &secrets);

    let denied = world.run(&meta, "cred:DENIED", &gcp_config(&api, ""));
    world.assert_refused(
        &denied,
        77,
        "gcloud secrets add-iam-policy-binding DENIED",
        &secrets,
    );

    let missing = world.run(&meta, "cred:MISSING", &gcp_config(&api, ""));
    world.assert_refused(&missing, 66, "gcloud secrets create MISSING", &secrets);

    let bare = FakeMetadata::builder(Cloud::Gce).no_identity().start();
    let none = world.run(&bare, "cred:PROXY_PASS", &gcp_config(&api, ""));
    world.assert_refused(
        &none,
        77,
        "gcloud compute instances set-service-account",
        &secrets,
    );

    let corrupt = FakeSecretManager::builder(&token)
        .secret("PROXY_PASS", PASSWORD)
        .corrupt_crc()
        .start_with(&world.ca);
    let crc = world.run(&meta, "cred:PROXY_PASS", &gcp_config(&corrupt, ""));
    world.assert_refused(&crc, 65, "CRC32C", &secrets);

    let bad = world.run(
        &meta,
        "cred:PROXY_PASS",
        "store = \"gcp-secret-manager\"\n[gcp_secret_manager]\nendpoint = \"http://secrets.corp\"\n",
    );
    world.assert_refused(&bad, 78, "insecure_http = true", &secrets);
    assert_eq!(world.squid.access_log(), "", "nothing went to the proxy");
}

#[test]
fn azure_key_vault_gives_the_proxy_password_with_the_managed_identitys_token() {
    let world = World::new();
    let meta = FakeMetadata::builder(Cloud::Azure)
        .user_assigned_identity(USER_ID)
        .start();
    let system = meta.managed_identity_token("https://vault.azure.net", None);
    let user = meta.managed_identity_token("https://vault.azure.net", Some(USER_ID));
    let kv = FakeKeyVault::builder("kv-web")
        .reader(AZURE_SYSTEM_CLIENT_ID)
        .reader(USER_ID)
        .secret("proxy-pass", PASSWORD)
        .answer_first(&[429])
        .start_with(&world.ca);

    let run = world.run(&meta, "cred:proxy-pass", &azure_config(&kv, ""));
    world.assert_ran(&run, &[&system, &user]);
    assert_eq!(kv.requests().len(), 2, "throttled once, then read");
    world.assert_direct(&[kv.url(), meta.url()]);
    let doctor = world.doctor(&meta, "cred:proxy-pass", &azure_config(&kv, ""));
    let line = format!("as the managed identity {AZURE_SYSTEM_CLIENT_ID}");
    assert!(
        doctor.stdout.contains(&line),
        "{}\n{}",
        doctor.stdout,
        doctor.stderr
    );
    doctor.assert_no_leak(&system);

    let more = format!("client_id = \"{USER_ID}\"");
    let run = world.run(&meta, "cred:proxy-pass", &azure_config(&kv, &more));
    world.assert_ran(&run, &[&system, &user]);
    let asked = meta.requests().last().unwrap().target.clone();
    assert!(asked.contains(&format!("client_id={USER_ID}")), "{asked}");
    assert_eq!(
        kv.requests().last().unwrap().header("authorization"),
        Some(format!("Bearer {user}").as_str())
    );
}

#[test]
fn azure_key_vault_failures_say_what_to_grant_or_create() {
    let world = World::new();
    let meta = FakeMetadata::builder(Cloud::Azure).start();
    let token = meta.managed_identity_token("https://vault.azure.net", None);
    let secrets = [token.as_str()];
    // A vault the identity holds no role on: the wrong vault.
    let other = FakeKeyVault::builder("kv-other")
        .secret("proxy-pass", PASSWORD)
        .start_with(&world.ca);
    let denied = world.run(&meta, "cred:proxy-pass", &azure_config(&other, ""));
    world.assert_refused(
        &denied,
        77,
        "\"Key Vault Secrets User\" on the vault",
        &secrets,
    );

    let kv = FakeKeyVault::builder("kv-web")
        .reader(AZURE_SYSTEM_CLIENT_ID)
        .start_with(&world.ca);
    let missing = world.run(&meta, "cred:proxy-pass", &azure_config(&kv, ""));
    world.assert_refused(&missing, 66, "az keyvault secret set", &secrets);

    let bad_name = world.run(&meta, "cred:PROXY_PASS", &azure_config(&kv, ""));
    world.assert_refused(&bad_name, 65, "cannot be a Key Vault secret name", &secrets);

    let bare = FakeMetadata::builder(Cloud::Azure).no_identity().start();
    let none = world.run(&bare, "cred:proxy-pass", &azure_config(&kv, ""));
    world.assert_refused(&none, 77, "az vm identity assign", &secrets);

    let unnamed = world.run(
        &meta,
        "cred:proxy-pass",
        "store = \"azure-key-vault\"\n[azure_key_vault]\nprefix = \"x-\"\n",
    );
    world.assert_refused(&unnamed, 78, "[azure_key_vault] vault", &secrets);
    assert_eq!(world.squid.access_log(), "", "nothing went to the proxy");
}
