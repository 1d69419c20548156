//! The AWS stores end to end, with the real binary: a real moto server with
//! request authentication on (SigV4 signatures, keys, session tokens and the
//! roles' IAM policies all checked), testkit's IMDSv2 fake handing out a
//! moto role's temporary credentials as the instance role, a Squid with
//! basic auth and an HTTPS origin for the script. The happy paths download
//! the script through Squid with the password read from the store; the
//! failures check the exit code, the one error line, that nothing ran and
//! that no key, session token or password leaked.

mod common;

use std::net::IpAddr;
use std::path::PathBuf;

use common::{write_file, Run, Tagstrap, Witness};
use testkit::metadata::{AwsCredentials, AwsRoleSet, Cloud, FakeMetadata};
use testkit::{Moto, MotoFront, Origin, Reply, Squid, TestCa};

const USER: &str = "svc-agent";
const PASSWORD: &str = "p@ss:/%w0rd-aws";
const PROXY: &str = "proxy.test:3128";
/// Not 127.0.0.1, which is in the no-proxy list: the download must go
/// through Squid.
const ORIGIN_IP: &str = "127.0.0.2";

fn moto() -> Moto {
    Moto::builder("eu-west-1")
        .role(
            "reader",
            &[
                "secretsmanager:GetSecretValue",
                "ssm:GetParameter",
                "kms:Decrypt",
            ],
            2,
        )
        .role("no-secrets", &["sts:GetCallerIdentity"], 1)
        .secret("tagstrap/PROXY_PASS", PASSWORD)
        .secret(
            "tagstrap/PROXY_JSON",
            &serde_json::json!({"username": USER, "password": PASSWORD}).to_string(),
        )
        .parameter("/tagstrap/PROXY_PASS", PASSWORD, "SecureString")
        .start()
}

/// The IMDS fake serving `role`'s credentials (its first set, fresh, unless
/// `sets` says otherwise).
fn imds(moto: &Moto, role: &str, sets: Option<Vec<AwsRoleSet>>) -> FakeMetadata {
    let made = moto.role(role);
    let sets = sets.unwrap_or_else(|| vec![AwsRoleSet::fresh(made.credentials[0].clone())]);
    FakeMetadata::builder(Cloud::Aws)
        .aws_role(role, &made.instance_profile_arn, sets)
        .start()
}

/// A config file choosing `store` with `section` written under it.
fn config(dir: &std::path::Path, store: &str, section: &str) -> PathBuf {
    write_file(
        dir,
        "config.toml",
        &format!("store = \"{store}\"\n{section}"),
    )
}

fn secrets_manager(endpoint: &str, extra: &str) -> String {
    format!("[aws_secrets_manager]\nendpoint = \"{endpoint}\"\nprefix = \"tagstrap/\"\n{extra}")
}

fn ssm(endpoint: &str) -> String {
    format!("[aws_ssm]\nendpoint = \"{endpoint}\"\nprefix = \"/tagstrap/\"\n")
}

/// Every secret of the world that must never show: the password and every
/// role's keys and session tokens.
fn secrets(moto: &Moto) -> Vec<String> {
    let mut all = vec![PASSWORD.to_string()];
    for role in ["reader", "no-secrets"] {
        for c in &moto.role(role).credentials {
            all.extend([c.secret_access_key.clone(), c.session_token.clone()]);
        }
    }
    all
}

fn assert_no_leaks(run: &Run, moto: &Moto) {
    for secret in secrets(moto) {
        run.assert_no_leak(&secret);
    }
}

/// `tagstrap run` with the proxy tags (`password` the credential), the
/// config and the IMDS fake as the metadata service; the script is a
/// witness that runs only with USER:PASSWORD in its proxy URL.
fn run_expecting(config: &PathBuf, fake: &FakeMetadata, password: &str) -> (Tagstrap, Witness) {
    let witness = Witness::expecting_proxy(PROXY, USER, PASSWORD);
    let t = Tagstrap::new("run")
        .tag("rs_agent:http_proxy", PROXY)
        .tag("rs_agent:http_proxy_user", USER)
        .tag("rs_agent:http_proxy_password", password)
        .tag("rs_agent:mime_shellscript", &witness.url())
        .arg("--config")
        .arg(config)
        .arg("--metadata-endpoint")
        .arg(fake.url())
        .arg("--deadline")
        .arg("30");
    (t, witness)
}

/// `run` with a config file choosing `store` with `section`, the IMDS fake
/// and `password` as the proxy password's tag: the run and its witness.
fn run_with(fake: &FakeMetadata, store: &str, section: &str, password: &str) -> (Run, Witness) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), store, section);
    let (t, witness) = run_expecting(&config, fake, password);
    (t.run(), witness)
}

/// The failure: `code`, one error line saying `needle`, nothing run,
/// nothing leaked.
fn assert_refused(run: &Run, witness: &Witness, moto: &Moto, code: i32, needle: &str) {
    run.assert_error(code, needle);
    assert!(!witness.ran(), "the script must not run");
    assert_no_leaks(run, moto);
}

/// `run` with `store` (`aws-secrets-manager` or `aws-ssm`) at moto and
/// `password` as the tag, which must fail as [`assert_refused`] says.
fn refused(
    moto: &Moto,
    fake: &FakeMetadata,
    store: &str,
    password: &str,
    code: i32,
    needle: &str,
) -> Run {
    let section = match store {
        "aws-ssm" => ssm(&moto.url()),
        _ => secrets_manager(&moto.url(), ""),
    };
    let (run, witness) = run_with(fake, store, &section, password);
    assert_refused(&run, &witness, moto, code, needle);
    run
}

/// The happy path through Squid: the script is downloaded over HTTPS
/// through a Squid whose basic auth wants USER:PASSWORD, the password read
/// from `section`'s store.
fn through_squid(store: &str, section: impl Fn(&Moto) -> String) {
    let moto = moto();
    let fake = imds(&moto, "reader", None);
    let ca = TestCa::new();
    let ip: IpAddr = ORIGIN_IP.parse().unwrap();
    let reserved = Origin::builder(Some(&ca)).bind_ip(ip).reserve();
    let squid = Squid::builder()
        .basic_auth(USER, PASSWORD)
        .allow_connect_ports(&[reserved.port()])
        .start();
    let out = tempfile::tempdir().unwrap();
    let ran = out.path().join("ran");
    let origin = reserved
        .route(
            "/install.sh",
            vec![],
            Reply::ok(format!("#!/bin/sh\ntouch '{}'\n", ran.display())),
        )
        .start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), store, &section(&moto));
    let tagstrap = |command: &str| {
        Tagstrap::new(command)
            .tag("rs_agent:http_proxy", &squid.proxy_addr())
            .tag("rs_agent:http_proxy_user", USER)
            .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
            .tag("rs_agent:mime_shellscript", &origin.url("/install.sh"))
            .arg("--ca-file")
            .arg(ca.ca_pem_path())
            .arg("--config")
            .arg(&config)
            .arg("--metadata-endpoint")
            .arg(fake.url())
            .run()
    };
    let run = tagstrap("run");
    run.assert_success();
    assert!(ran.exists(), "the script ran:\n{}", run.stderr);
    let log = squid.access_log();
    assert!(
        log.lines()
            .any(|l| l.contains("CONNECT") && l.contains(USER)),
        "the download went through Squid with the store's password:\n{log}"
    );
    assert_no_leaks(&run, &moto);
    // The store and the metadata service were reached directly.
    assert!(
        !log.contains(&moto.url().replace("http://", "")),
        "moto went through the proxy:\n{log}"
    );

    let doctor = tagstrap("doctor");
    let shown = format!("{}{}", doctor.stdout, doctor.stderr);
    assert!(
        shown.contains("role reader (instance profile arn:aws:iam::"),
        "doctor names the identity it used:\n{shown}"
    );
    assert_no_leaks(&doctor, &moto);
}

#[test]
fn secrets_manager_happy_path_through_squid() {
    through_squid("aws-secrets-manager", |m| secrets_manager(&m.url(), ""));
}

#[test]
fn ssm_happy_path_through_squid() {
    through_squid("aws-ssm", |m| ssm(&m.url()));
}

#[test]
fn a_json_field_of_a_secret() {
    let moto = moto();
    let fake = imds(&moto, "reader", None);
    let (run, witness) = run_with(
        &fake,
        "aws-secrets-manager",
        &secrets_manager(&moto.url(), "field = \"password\"\n"),
        "cred:PROXY_JSON",
    );
    run.assert_success();
    assert!(witness.ran(), "{}", run.stderr);
    assert_no_leaks(&run, &moto);
}

#[test]
fn a_wrong_secret_key_is_77_signature_does_not_match() {
    let moto = moto();
    let good = moto.role("reader").credentials[0].clone();
    let wrong = AwsCredentials {
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEYXX".into(),
        ..good
    };
    let fake = imds(&moto, "reader", Some(vec![AwsRoleSet::fresh(wrong)]));
    let run = refused(
        &moto,
        &fake,
        "aws-secrets-manager",
        "cred:PROXY_PASS",
        77,
        "SignatureDoesNotMatch",
    );
    run.assert_no_leak("wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEYXX");
}

#[test]
fn a_role_without_the_permission_is_77_naming_it() {
    let moto = moto();
    let fake = imds(&moto, "no-secrets", None);
    let run = refused(
        &moto,
        &fake,
        "aws-secrets-manager",
        "cred:PROXY_PASS",
        77,
        "grant the instance role no-secrets secretsmanager:GetSecretValue",
    );
    assert!(
        run.error_lines()[0]
            .contains("on arn:aws:secretsmanager:eu-west-1:ACCOUNT:secret:tagstrap/PROXY_PASS-*"),
        "{}",
        run.stderr
    );
    refused(&moto, &fake, "aws-ssm", "cred:PROXY_PASS", 77, "ssm:GetParameter on arn:aws:ssm:eu-west-1:ACCOUNT:parameter/tagstrap/PROXY_PASS and kms:Decrypt");
}

#[test]
fn a_missing_secret_is_66() {
    let moto = moto();
    let fake = imds(&moto, "reader", None);
    refused(
        &moto,
        &fake,
        "aws-secrets-manager",
        "cred:NO_SUCH",
        66,
        "credential cred:NO_SUCH does not exist",
    );
    refused(
        &moto,
        &fake,
        "aws-ssm",
        "cred:NO_SUCH",
        66,
        "no parameter /tagstrap/NO_SUCH",
    );
}

#[test]
fn no_role_is_77_with_the_fix() {
    let moto = moto();
    let fake = FakeMetadata::builder(Cloud::Aws).start();
    refused(
        &moto,
        &fake,
        "aws-secrets-manager",
        "cred:PROXY_PASS",
        77,
        "aws ec2 associate-iam-instance-profile",
    );
}

#[test]
fn expired_temporary_credentials_are_read_again_and_throttling_is_retried() {
    let moto = moto();
    let front = MotoFront::start(&moto);
    let made = moto.role("reader");
    let (old, new) = (&made.credentials[0], &made.credentials[1]);
    front.expire_key(&old.access_key_id);
    front.throttle(1);
    let fake = imds(
        &moto,
        "reader",
        Some(vec![
            AwsRoleSet::expired(old.clone()),
            AwsRoleSet::fresh(new.clone()),
        ]),
    );
    let (run, witness) = run_with(
        &fake,
        "aws-secrets-manager",
        &secrets_manager(&front.url(), ""),
        "cred:PROXY_PASS",
    );
    run.assert_success();
    assert!(witness.ran(), "{}", run.stderr);
    assert_eq!(front.answered(), 2, "one throttled, one expired");
    assert!(run.stderr.contains("ThrottlingException"), "{}", run.stderr);
    assert!(
        run.stderr.contains("ExpiredTokenException"),
        "{}",
        run.stderr
    );
    assert_no_leaks(&run, &moto);
}

#[test]
fn a_plain_http_endpoint_elsewhere_is_78_before_any_request() {
    let moto = moto();
    let fake = imds(&moto, "reader", None);
    let (run, witness) = run_with(
        &fake,
        "aws-secrets-manager",
        &secrets_manager("http://secretsmanager.internal.example:80", ""),
        "cred:PROXY_PASS",
    );
    assert_refused(
        &run,
        &witness,
        &moto,
        78,
        "set insecure_http = true in the [aws_secrets_manager] section",
    );
    assert!(
        fake.requests().is_empty(),
        "nothing was asked of IMDS either"
    );
}

/// With `--source none`, the metadata service is asked only for the
/// instance's identity; when it never answers, the error line says so, for
/// every store that opens with that identity (AWS, GCP, Azure alike).
#[test]
fn an_unreachable_metadata_service_is_69_saying_why_it_was_asked() {
    let closed = testkit::free_port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    for (store, section) in [
        (
            "aws-secrets-manager",
            format!("[aws_secrets_manager]\nregion = \"eu-west-1\"\nendpoint = \"{endpoint}\"\n"),
        ),
        (
            "aws-ssm",
            format!("[aws_ssm]\nregion = \"eu-west-1\"\nendpoint = \"{endpoint}\"\n"),
        ),
        (
            "gcp-secret-manager",
            format!("[gcp_secret_manager]\nproject = \"p-1\"\nendpoint = \"{endpoint}\"\n"),
        ),
        (
            "azure-key-vault",
            format!("[azure_key_vault]\nvault = \"kv-1\"\nendpoint = \"{endpoint}\"\n"),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), store, &section);
        let witness = Witness::expecting_proxy(PROXY, USER, PASSWORD);
        let run = Tagstrap::new("run")
            .arg("--source")
            .arg("none")
            .tag("rs_agent:http_proxy", PROXY)
            .tag("rs_agent:http_proxy_user", USER)
            .tag("rs_agent:http_proxy_password", "cred:PROXY-PASS")
            .tag("rs_agent:mime_shellscript", &witness.url())
            .arg("--config")
            .arg(&config)
            .arg("--metadata-endpoint")
            .arg(&endpoint)
            .arg("--deadline")
            .arg("2")
            .run();
        run.assert_error(69, "metadata service at http://127.0.0.1:");
        assert!(
            run.error_lines()[0].contains(
                "asked for the instance's identity, to open the credential store: gave up"
            ),
            "{store}: {}",
            run.stderr
        );
        assert!(!witness.ran(), "{store}: the script must not run");
    }
}
