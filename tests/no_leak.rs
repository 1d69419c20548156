//! Proof that no secret escapes. Every command (`run`, `plan`, `tags`, `doctor`) on
//! every path, good and bad, with a known proxy password, store tokens and an
//! AppRole secret ID, at the most verbose log level (`-vv` and
//! `TAGSTRAP_LOG=trace`), in text and in JSON. For each invocation it asserts
//! that no secret, in any form it could take (plain, percent-encoded as in a
//! proxy URL, base64 of `user:password` as in a `Proxy-Authorization`
//! header), appears in:
//!
//! - stdout or stderr;
//! - the report `last-run.json`;
//! - any file that is not private (0600 or stricter) under the state
//!   directory, the script's output directory or tagstrap's `TMPDIR`;
//! - the command line (`/proc/*/cmdline`) of any process while tagstrap runs:
//!   scanned over and over from the test while the child lives, and once from
//!   inside the script (the moment the secret is in the child's environment);
//! - the script's own environment (`/proc/$$/environ`, written down from
//!   inside it): no store token or secret ID in any variable, no `VAULT_*`,
//!   `TAGSTRAP_*` or `CREDENTIALS_DIRECTORY` at all, and the proxy password
//!   only where it belongs, in the proxy variables' URL.
//!
//! Secrets known only once tagstrap has run (the tokens its logins obtain,
//! the identity JWTs a metadata fake signs during the run) are read, after
//! each invocation, from what the stores recorded: every OpenBao the suite
//! starts keeps a raw file audit log (`log_raw`), whose new lines give each
//! request's token, each login's token and each login's JWT or secret ID;
//! the aws login stand-in tells the tokens it granted. The invocation's
//! stdout, stderr, report and exposed files are checked against those too,
//! and the scripts' environments against all of them. Each login path
//! names what the stores must have recorded of it, so that the check
//! cannot pass by collecting nothing.
//!
//! Also: `Debug` of every configuration and credential type shows no secret.
//! The expected exit code of each path is asserted too, so the suite proves
//! it went down the path it names.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{sha256_hex, write_secret, Tagstrap};
use testkit::{Bao, Cloud, FakeMetadata, Origin, Reply, Squid, TestCa};

const USER: &str = "svc-leak";
/// Every character a naive URL or log formatter would trip over, but no `"`
/// or `\` (so its JSON-escaped form is itself).
const PASSWORD: &str = "Pw-L3ak!p@ss:/%w0rd";
/// A second password the store holds: a wrong one, which Squid refuses.
const WRONG: &str = "Wr0ng-L3ak:p@ss";
/// A secret with a control character in it (refused, never shown).
const CONTROL: &str = "Ctl-L3ak\nsecond-line";
const ORIGIN_IP: &str = "127.0.0.2";
/// The resource tagstrap asks Azure's managed identity token for, by
/// default, for the jwt login (what the Azure fake's token then carries as
/// `aud`).
const AZURE_RESOURCE: &str = "https://management.azure.com/";

/// The real servers and the secret material of one suite.
struct World {
    _ca: TestCa,
    ca_path: PathBuf,
    squid: Squid,
    bao: Bao,
    origin: Origin,
    /// A port on 127.0.0.2 that nothing listens on, which Squid allows.
    closed_port: u16,
    read_token: String,
    denied_token: String,
    role_id: String,
    secret_id: String,
    /// AWS instance tags naming the proxy, `cred:PROXY_PASS` and the script.
    aws: FakeMetadata,
    /// Azure instance tags holding the password in plain text (refused).
    azure_plain: FakeMetadata,
    /// GCP Secret Manager and Azure Key Vault with their metadata fakes.
    cloud: CloudStores,
    /// The AWS stores (issue 14): moto and the instance role's IMDS.
    aws_stores: AwsStores,
    /// The Vault/OpenBao jwt and cert logins (issue 14).
    vault_logins: VaultLogins,
    /// Inputs: secret files, private or deliberately exposed. Not scanned.
    inputs: tempfile::TempDir,
    /// Outputs of the scripts: scanned.
    out: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let ca = TestCa::new();
        let ca_path = ca.ca_pem_path().to_path_buf();
        let out = tempfile::tempdir().unwrap();
        let closed = Origin::builder(Some(&ca))
            .bind_ip(ORIGIN_IP.parse().unwrap())
            .reserve();
        let closed_port = closed.port();
        drop(closed);
        let snapshot = format!(
            "#!/bin/sh\n\
             # What every process's command line says while the secret is in this environment.\n\
             cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' > '{}/cmdlines-'$$\n\
             env | grep -ci _proxy= > '{}/proxy-vars-'$$\n\
             # Its whole environment, as tagstrap gave it; private, since the\n\
             # proxy variables rightly hold the password.\n\
             (umask 077; cat /proc/$$/environ > '{}/environ-'$$)\n",
            out.path().display(),
            out.path().display(),
            out.path().display()
        );
        let origin = Origin::builder(Some(&ca))
            .bind_ip(ORIGIN_IP.parse().unwrap())
            .route("/install.sh", vec![], Reply::ok(snapshot))
            .route("/fail.sh", vec![], Reply::ok("#!/bin/sh\nexit 3\n"))
            .route("/missing.sh", vec![], Reply::status(404))
            .start();
        let squid = Squid::builder()
            .basic_auth(USER, PASSWORD)
            .allow_connect_ports(&[origin.port(), closed_port])
            .start();
        let bao = Bao::start_audited(false);
        bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
        bao.put_kv2("secret", "PROXY_USER", &[("value", USER)]);
        bao.put_kv2("secret", "WRONG", &[("value", WRONG)]);
        bao.put_kv2("secret", "CONTROL", &[("value", CONTROL)]);
        let read_token = bao.create_token("path \"secret/data/*\" { capabilities = [\"read\"] }");
        let denied_token = bao.create_token("");
        bao.enable_approle();
        let (role_id, secret_id) = bao.create_approle(
            "leak-suite",
            "path \"secret/data/*\" { capabilities = [\"read\"] }",
        );
        let inputs = tempfile::tempdir().unwrap();
        let dir = inputs.path();
        write_secret(dir, "token-private", &read_token, 0o600);
        write_secret(dir, "token-exposed", &read_token, 0o644);
        write_secret(dir, "secret-id-private", &secret_id, 0o600);
        write_secret(dir, "secret-id-exposed", &secret_id, 0o604);
        write_secret(dir, "secret-id-wrong", "Sid-Wr0ng-L3ak", 0o600);
        let url = format!(
            "http://{USER}:{}@{}",
            common::secret_forms(PASSWORD).pop().unwrap(),
            squid.proxy_addr()
        );
        let tags = format!("rs_agent:http_proxy={url}\n");
        write_secret(dir, "url-credentials.tags", &tags, 0o600);
        let plain = format!(
            "rs_agent:http_proxy={}\nrs_agent:http_proxy_user={USER}\n\
             rs_agent:http_proxy_password={PASSWORD}\n",
            squid.proxy_addr()
        );
        write_secret(dir, "plain-password.tags", &plain, 0o600);
        let socks = format!("rs_agent:http_proxy=socks5://{USER}:{PASSWORD}@127.0.0.1:1080\n");
        write_secret(dir, "socks.tags", &socks, 0o600);
        for (sub, mode) in [("creds-private", 0o400), ("creds-exposed", 0o644)] {
            std::fs::create_dir(dir.join(sub)).unwrap();
            write_secret(&dir.join(sub), "PROXY_PASS", PASSWORD, mode);
            write_secret(&dir.join(sub), "PROXY_USER", USER, 0o600);
        }
        let aws = FakeMetadata::builder(Cloud::Aws)
            .tag("rs_agent:http_proxy", &squid.proxy_addr())
            .tag("rs_agent:http_proxy_user", USER)
            .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
            .tag("rs_agent:mime_shellscript", &origin.url("/install.sh"))
            .start();
        let azure_plain = FakeMetadata::builder(Cloud::Azure)
            .tag("rs_agent:http_proxy", &squid.proxy_addr())
            .tag("rs_agent:http_proxy_user", USER)
            .tag("rs_agent:http_proxy_password", PASSWORD)
            .tag("rs_agent:mime_shellscript", &origin.url("/install.sh"))
            .start();
        let cloud = CloudStores::new(&ca, dir);
        let aws_stores = AwsStores::new(dir);
        let vault_logins = VaultLogins::new(dir);
        World {
            cloud,
            aws_stores,
            vault_logins,
            _ca: ca,
            ca_path,
            squid,
            bao,
            origin,
            aws,
            azure_plain,
            closed_port,
            read_token,
            denied_token,
            role_id,
            secret_id,
            inputs,
            out,
        }
    }

    /// Every secret in play, in every form it could leak in.
    fn secret_forms(&self) -> Vec<String> {
        let mut forms = BTreeSet::new();
        for secret in [
            PASSWORD,
            WRONG,
            "Ctl-L3ak",
            "Sid-Wr0ng-L3ak",
            &self.bao.root_token(),
            &self.read_token,
            &self.denied_token,
            &self.secret_id,
            &self.cloud.gce_token,
            &self.cloud.azure_token,
        ] {
            forms.extend(common::secret_forms(secret));
        }
        forms.extend(
            self.aws_stores
                .secrets()
                .iter()
                .flat_map(|s| common::secret_forms(s)),
        );
        forms.extend(
            self.vault_logins
                .secrets()
                .iter()
                .flat_map(|s| common::secret_forms(s)),
        );
        for password in [PASSWORD, WRONG] {
            let basic = base64::engine::general_purpose::STANDARD;
            forms.insert(basic.encode(format!("{USER}:{password}")));
        }
        forms.into_iter().collect()
    }

    /// What the script's environment may hold of the secrets: the proxy
    /// password, in the proxy variables' URL (plain or percent-encoded).
    fn proxy_url_forms() -> Vec<String> {
        common::secret_forms(PASSWORD)
    }

    /// Where the stores' records stand now, before an invocation.
    fn mark(&self) -> Mark {
        let audit = [&self.bao, &self.vault_logins.bao]
            .map(|bao| {
                let log = bao.audit_log().expect("an audited OpenBao").to_path_buf();
                let len = std::fs::metadata(&log)
                    .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
                    .len();
                (log, len)
            })
            .to_vec();
        let aws_granted = self.aws_stores.vault_aws.granted_tokens().len();
        Mark { audit, aws_granted }
    }

    /// What the stores recorded since `mark`: every OpenBao's new audit
    /// lines (complete, since OpenBao writes a line before it answers and
    /// the invocation has ended) and the tokens the aws stand-in granted.
    fn collected_since(&self, mark: &Mark) -> Collected {
        use std::io::{Read, Seek};
        let mut collected = Collected::default();
        for (log, from) in &mark.audit {
            let mut file = std::fs::File::open(log).unwrap();
            file.seek(std::io::SeekFrom::Start(*from)).unwrap();
            let mut text = String::new();
            file.read_to_string(&mut text).unwrap();
            for line in text.lines() {
                let entry: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: {e}: {line}", log.display()));
                collected.audit_entry(&entry);
            }
        }
        for token in &self.aws_stores.vault_aws.granted_tokens()[mark.aws_granted..] {
            collected.add(Kind::LoginToken, token);
        }
        collected
    }

    fn input(&self, name: &str) -> PathBuf {
        self.inputs.path().join(name)
    }

    fn script(&self, path: &str) -> String {
        self.origin.url(path)
    }
}

/// The secrets that exist only once tagstrap has run, as the stores record
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A token a login obtained: `response.auth.client_token` in OpenBao's
    /// audit log, or one the aws login stand-in granted.
    LoginToken,
    /// The token a request carried: `auth.client_token`.
    Carried,
    /// The JWT a jwt login sent (from a file or a metadata fake):
    /// `request.data.jwt`.
    Jwt,
    /// The secret ID an AppRole login sent: `request.data.secret_id`.
    SecretId,
}

/// Where the stores' records stood before an invocation: each OpenBao's
/// audit log length, and how many tokens the aws stand-in had granted.
struct Mark {
    audit: Vec<(PathBuf, u64)>,
    aws_granted: usize,
}

/// What the stores recorded of one invocation, by kind.
#[derive(Debug, Default)]
struct Collected {
    found: std::collections::BTreeMap<Kind, BTreeSet<String>>,
}

impl Collected {
    fn add(&mut self, kind: Kind, secret: &str) {
        if !secret.is_empty() {
            self.found
                .entry(kind)
                .or_default()
                .insert(secret.to_string());
        }
    }

    /// One raw audit entry (request or response): the token it carried, the
    /// token a login gave out, and the login's credentials.
    fn audit_entry(&mut self, entry: &serde_json::Value) {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        self.add(Kind::Carried, &text(&entry["auth"]["client_token"]));
        self.add(
            Kind::LoginToken,
            &text(&entry["response"]["auth"]["client_token"]),
        );
        let data = &entry["request"]["data"];
        self.add(Kind::Jwt, &text(&data["jwt"]));
        self.add(Kind::SecretId, &text(&data["secret_id"]));
    }

    fn has(&self, kind: Kind) -> bool {
        self.found.get(&kind).is_some_and(|s| !s.is_empty())
    }

    /// Every secret collected, in every form it could leak in.
    fn forms(&self) -> BTreeSet<String> {
        self.found
            .values()
            .flatten()
            .flat_map(|s| common::secret_forms(s))
            .collect()
    }
}

// The cloud stores (issue 14): the instance identity's access tokens from
// the GCE and Azure metadata fakes open GCP Secret Manager and Azure Key
// Vault (both over HTTPS with the test CA); the tokens are secrets scanned
// for on every path, and each store has a good path and a refused one.
struct CloudStores {
    gce: FakeMetadata,
    _secret_manager: testkit::FakeSecretManager,
    azure: FakeMetadata,
    _key_vault: testkit::FakeKeyVault,
    gce_token: String,
    azure_token: String,
}

impl CloudStores {
    fn new(ca: &TestCa, inputs: &Path) -> CloudStores {
        let gce = FakeMetadata::builder(Cloud::Gce).start();
        let gce_token = gce.access_token();
        let secret_manager = testkit::FakeSecretManager::builder(&gce_token)
            .secret("PROXY_PASS", PASSWORD)
            .secret("DENIED", PASSWORD)
            .deny("DENIED")
            .start_with(ca);
        let azure = FakeMetadata::builder(Cloud::Azure).start();
        let azure_token = azure.managed_identity_token("https://vault.azure.net", None);
        let key_vault = testkit::FakeKeyVault::builder("kv-leak")
            .reader(testkit::metadata::AZURE_SYSTEM_CLIENT_ID)
            .secret("proxy-pass", PASSWORD)
            .start_with(ca);
        let gcp = format!(
            "store = \"gcp-secret-manager\"\n[gcp_secret_manager]\nendpoint = \"{}\"\n",
            secret_manager.url()
        );
        write_secret(inputs, "gcp.toml", &gcp, 0o600);
        let kv = format!(
            "store = \"azure-key-vault\"\n[azure_key_vault]\nvault = \"kv-leak\"\nendpoint = \"{}\"\n",
            key_vault.url()
        );
        write_secret(inputs, "azure.toml", &kv, 0o600);
        CloudStores {
            gce,
            _secret_manager: secret_manager,
            azure,
            _key_vault: key_vault,
            gce_token,
            azure_token,
        }
    }
}

/// The proxy tags with `password`, the store of `config`, the identity at
/// `metadata`, and the script.
fn with_cloud(
    w: &World,
    t: Tagstrap,
    config: &str,
    metadata: &FakeMetadata,
    password: &str,
) -> Tagstrap {
    let t = proxy_tags(w, t, USER, password)
        .arg("--config")
        .arg(w.input(config))
        .arg("--metadata-endpoint")
        .arg(metadata.url());
    with_script(w, t, "/install.sh")
}

fn with_gcp(w: &World, t: Tagstrap, password: &str) -> Tagstrap {
    with_cloud(w, t, "gcp.toml", &w.cloud.gce, password)
}

fn with_azure(w: &World, t: Tagstrap, password: &str) -> Tagstrap {
    with_cloud(w, t, "azure.toml", &w.cloud.azure, password)
}

fn cloud_store_paths() -> Vec<Path_> {
    vec![
        Path_ {
            name: "GCP Secret Manager with the service account's token",
            run_exit: 0,
            collects: &[],
            set_up: |w, t| with_gcp(w, t, "cred:PROXY_PASS"),
        },
        Path_ {
            name: "GCP Secret Manager denies the service account",
            run_exit: 77,
            collects: &[],
            set_up: |w, t| with_gcp(w, t, "cred:DENIED"),
        },
        Path_ {
            name: "Azure Key Vault with the managed identity's token",
            run_exit: 0,
            collects: &[],
            set_up: |w, t| with_azure(w, t, "cred:proxy-pass"),
        },
        Path_ {
            name: "Azure Key Vault has no such secret",
            run_exit: 66,
            collects: &[],
            set_up: |w, t| with_azure(w, t, "cred:missing"),
        },
    ]
}
// --- The AWS stores (issue 14): the instance role's temporary keys and
// session token, from the IMDS fake, signing requests to a moto server with
// authentication on; a set with a wrong secret key (77), and an expired set
// that is read again. And Vault's aws login with the same role, against
// testkit's stand-in for Vault's aws method (which replays the signed
// sts:GetCallerIdentity to this moto). Secrets: every set's secret key and
// session token; the tokens the stand-in grants are known after each run.
struct AwsStores {
    moto: testkit::Moto,
    /// IMDS handing out the reader role's credentials.
    imds: FakeMetadata,
    /// IMDS handing out a wrong secret key with the real key ID and token.
    imds_wrong: FakeMetadata,
    /// IMDS handing out an expired set first, which the front refuses.
    imds_expired: FakeMetadata,
    front: testkit::MotoFront,
    /// Vault's aws login, role `web` bound to the reader role.
    vault_aws: testkit::VaultAwsLogin,
}

impl AwsStores {
    fn new(inputs: &Path) -> AwsStores {
        use testkit::metadata::{AwsCredentials, AwsRoleSet};
        let moto = testkit::Moto::builder("eu-west-1")
            .role(
                "reader",
                &[
                    "secretsmanager:GetSecretValue",
                    "ssm:GetParameter",
                    "kms:Decrypt",
                    "sts:GetCallerIdentity",
                ],
                2,
            )
            .secret("PROXY_PASS", PASSWORD)
            .parameter("PROXY_PASS", PASSWORD, "SecureString")
            .start();
        let made = moto.role("reader").clone();
        let imds_for = |sets: Vec<AwsRoleSet>| {
            FakeMetadata::builder(Cloud::Aws)
                .aws_role("reader", &made.instance_profile_arn, sets)
                .start()
        };
        let (old, new) = (&made.credentials[0], &made.credentials[1]);
        let imds = imds_for(vec![AwsRoleSet::fresh(old.clone())]);
        let wrong = AwsCredentials {
            secret_access_key: "Aws-Wr0ng-L3ak-secret-key".into(),
            ..old.clone()
        };
        let imds_wrong = imds_for(vec![AwsRoleSet::fresh(wrong)]);
        let imds_expired = imds_for(vec![
            AwsRoleSet::expired(old.clone()),
            AwsRoleSet::fresh(new.clone()),
        ]);
        let front = testkit::MotoFront::start(&moto);
        front.expire_key(&old.access_key_id);
        let vault_aws = testkit::VaultAwsLogin::builder(&moto, "web", &made.arn)
            .server_id("vault.leak.test")
            .secret("PROXY_PASS", PASSWORD)
            .start();
        let vault = format!(
            "[vault]\naddress = {:?}\n\n[vault.aws]\nrole = \"web\"\nserver_id = \"vault.leak.test\"\n",
            vault_aws.addr()
        );
        common::write_file(inputs, "vault-aws.toml", &vault);
        for (file, store, section, endpoint) in [
            (
                "aws-sm.toml",
                "aws-secrets-manager",
                "aws_secrets_manager",
                moto.url(),
            ),
            ("aws-ssm.toml", "aws-ssm", "aws_ssm", moto.url()),
            (
                "aws-sm-front.toml",
                "aws-secrets-manager",
                "aws_secrets_manager",
                front.url(),
            ),
        ] {
            let text = format!("store = \"{store}\"\n[{section}]\nendpoint = \"{endpoint}\"\n");
            common::write_file(inputs, file, &text);
        }
        AwsStores {
            moto,
            imds,
            imds_wrong,
            imds_expired,
            front,
            vault_aws,
        }
    }

    fn secrets(&self) -> Vec<String> {
        let mut all = vec!["Aws-Wr0ng-L3ak-secret-key".to_string()];
        for c in &self.moto.role("reader").credentials {
            all.extend([c.secret_access_key.clone(), c.session_token.clone()]);
        }
        all
    }

    fn paths() -> Vec<Path_> {
        fn aws(w: &World, t: Tagstrap, config: &str, imds: &FakeMetadata) -> Tagstrap {
            let t = proxy_tags(w, t, USER, "cred:PROXY_PASS")
                .arg("--config")
                .arg(w.input(config))
                .arg("--metadata-endpoint")
                .arg(imds.url());
            with_script(w, t, "/install.sh")
        }
        vec![
            Path_ {
                name: "AWS Secrets Manager with the instance role",
                run_exit: 0,
                collects: &[],
                set_up: |w, t| aws(w, t, "aws-sm.toml", &w.aws_stores.imds),
            },
            Path_ {
                name: "AWS SSM Parameter Store with the instance role",
                run_exit: 0,
                collects: &[],
                set_up: |w, t| aws(w, t, "aws-ssm.toml", &w.aws_stores.imds),
            },
            Path_ {
                name: "AWS Secrets Manager with a wrong secret key",
                run_exit: 77,
                collects: &[],
                set_up: |w, t| aws(w, t, "aws-sm.toml", &w.aws_stores.imds_wrong),
            },
            Path_ {
                name: "AWS Secrets Manager with expired credentials, read again",
                run_exit: 0,
                collects: &[],
                set_up: |w, t| {
                    // The front refuses the old key every time; IMDS hands
                    // out the new set after the first read.
                    let _ = &w.aws_stores.front;
                    aws(w, t, "aws-sm-front.toml", &w.aws_stores.imds_expired)
                },
            },
            Path_ {
                name: "Vault aws login with the instance role",
                run_exit: 0,
                collects: &[Kind::LoginToken],
                set_up: |w, t| aws(w, t, "vault-aws.toml", &w.aws_stores.imds),
            },
        ]
    }
}
// --- end of the AWS stores.

// --- The Vault/OpenBao logins that need no stored secret (issue 14): the
// jwt login with a JWT in a file (signed by a key OpenBao trusts), with the
// GCE identity token and with the Azure managed identity token (the
// metadata fakes sign with that key), and the cert login with a client
// certificate, on OpenBao's TLS listener; each good, the file ones refused
// and with their secret file readable by others. Secrets known up front:
// the JWT files' JWTs, the Azure fake's token and the client key's base64;
// the GCE identity tokens are signed during the run (OpenBao's audit log
// tells them, as it tells the logins' tokens).
struct VaultLogins {
    bao: Bao,
    _client_ca: TestCa,
    /// Signs identity tokens with the key OpenBao trusts.
    gce: FakeMetadata,
    /// Signs managed identity tokens with that key.
    azure: FakeMetadata,
    jwts: Vec<String>,
    key_pem: String,
}

impl VaultLogins {
    fn new(inputs: &Path) -> VaultLogins {
        use serde_json::json;
        let bao = Bao::start_audited(true);
        bao.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
        let root = bao.root_token();
        let ok = |method: &str, path: &str, body: serde_json::Value| {
            let r = bao.api(method, path, Some(&root), Some(&body));
            assert!((200..300).contains(&r.status), "{path}: {}", r.text());
        };
        let policy = "path \"secret/data/*\" { capabilities = [\"read\"] }";
        ok(
            "PUT",
            "/v1/sys/policies/acl/login-read",
            json!({ "policy": policy }),
        );
        let key = testkit::jwt::SigningKey::generate();
        ok("POST", "/v1/sys/auth/jwt", json!({ "type": "jwt" }));
        let pubkeys = json!({ "jwt_validation_pubkeys": [key.public_pem()] });
        ok("POST", "/v1/auth/jwt/config", pubkeys);
        let role = json!({
            "role_type": "jwt", "bound_audiences": ["leak-test"], "user_claim": "sub",
            "token_policies": ["login-read"],
        });
        ok("POST", "/v1/auth/jwt/role/boot", role);
        // The clouds' identity tokens, signed with the key OpenBao trusts:
        // GCE's for the audience asked (`boot`'s), Azure's for the default
        // resource, bound to the managed identity's object ID.
        let gce = FakeMetadata::builder(Cloud::Gce)
            .signing_key(key.clone())
            .start();
        let azure = FakeMetadata::builder(Cloud::Azure)
            .signing_key(key.clone())
            .start();
        let azure_jwt = azure.managed_identity_token(AZURE_RESOURCE, None);
        let azure_claims = testkit::jwt::claims(&azure_jwt).unwrap();
        let azure_role = json!({
            "role_type": "jwt", "bound_audiences": [AZURE_RESOURCE], "user_claim": "sub",
            "bound_claims": { "oid": azure_claims["oid"] }, "token_policies": ["login-read"],
        });
        ok("POST", "/v1/auth/jwt/role/azure", azure_role);
        let client_ca = TestCa::new();
        ok("POST", "/v1/sys/auth/cert", json!({ "type": "cert" }));
        let cert_role = json!({
            "certificate": client_ca.ca_pem(), "token_policies": ["login-read"],
        });
        ok("POST", "/v1/auth/cert/certs/boot", cert_role);

        let now = testkit::jwt::now();
        let jwt = |aud: &str| {
            key.sign(&json!({ "sub": "leak", "aud": aud, "iat": now, "exp": now + 3600 }))
        };
        let (good, other) = (jwt("leak-test"), jwt("another-audience"));
        write_secret(inputs, "jwt-private", &good, 0o600);
        write_secret(inputs, "jwt-other-audience", &other, 0o600);
        write_secret(inputs, "jwt-exposed", &good, 0o644);
        let client = client_ca.issue_client("leak.tagstrap.test", false);
        common::write_file(inputs, "client.pem", &client.cert_pem);
        write_secret(inputs, "client-key-private", &client.key_pem, 0o600);
        write_secret(inputs, "client-key-exposed", &client.key_pem, 0o644);
        let vault = format!(
            "[vault]\naddress = {:?}\nca_cert = {:?}\n",
            bao.addr(),
            bao.ca_pem_path().unwrap().display().to_string()
        );
        let file = |name: &str| format!("{:?}", inputs.join(name).display().to_string());
        for (config, section) in [
            (
                "jwt.toml",
                format!(
                    "[vault.jwt]\nrole = \"boot\"\nfile = {}\n",
                    file("jwt-private")
                ),
            ),
            (
                "jwt-other.toml",
                format!(
                    "[vault.jwt]\nrole = \"boot\"\nfile = {}\n",
                    file("jwt-other-audience")
                ),
            ),
            (
                "jwt-exposed.toml",
                format!(
                    "[vault.jwt]\nrole = \"boot\"\nfile = {}\n",
                    file("jwt-exposed")
                ),
            ),
            (
                "jwt-gce.toml",
                "[vault.jwt]\nrole = \"boot\"\ntoken = \"gce\"\naudience = \"leak-test\"\n".into(),
            ),
            (
                "jwt-azure.toml",
                "[vault.jwt]\nrole = \"azure\"\ntoken = \"azure\"\n".into(),
            ),
            (
                "cert.toml",
                format!(
                    "[vault.cert]\nrole = \"boot\"\ncert_file = {}\nkey_file = {}\n",
                    file("client.pem"),
                    file("client-key-private")
                ),
            ),
            (
                "cert-exposed.toml",
                format!(
                    "[vault.cert]\nrole = \"boot\"\ncert_file = {}\nkey_file = {}\n",
                    file("client.pem"),
                    file("client-key-exposed")
                ),
            ),
        ] {
            write_secret(inputs, config, &format!("{vault}\n{section}"), 0o600);
        }
        VaultLogins {
            bao,
            _client_ca: client_ca,
            gce,
            azure,
            jwts: vec![good, other, azure_jwt],
            key_pem: client.key_pem,
        }
    }

    fn secrets(&self) -> Vec<String> {
        let mut all = self.jwts.clone();
        // Each base64 line of the key, as it would show if the file leaked.
        all.extend(
            self.key_pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_string),
        );
        all
    }

    fn paths() -> Vec<Path_> {
        fn login(w: &World, t: Tagstrap, config: &str) -> Tagstrap {
            let _ = &w.vault_logins;
            let t = proxy_tags(w, t, USER, "cred:PROXY_PASS")
                .arg("--config")
                .arg(w.input(config));
            with_script(w, t, "/install.sh")
        }
        fn cloud(w: &World, t: Tagstrap, config: &str, metadata: &FakeMetadata) -> Tagstrap {
            login(w, t, config)
                .arg("--metadata-endpoint")
                .arg(metadata.url())
        }
        vec![
            Path_ {
                name: "Vault jwt login with the GCE identity token",
                run_exit: 0,
                collects: &[Kind::LoginToken, Kind::Jwt],
                set_up: |w, t| cloud(w, t, "jwt-gce.toml", &w.vault_logins.gce),
            },
            Path_ {
                name: "Vault jwt login with the Azure managed identity token",
                run_exit: 0,
                collects: &[Kind::LoginToken, Kind::Jwt],
                set_up: |w, t| cloud(w, t, "jwt-azure.toml", &w.vault_logins.azure),
            },
            Path_ {
                name: "Vault jwt login with a JWT file",
                run_exit: 0,
                collects: &[Kind::LoginToken, Kind::Jwt],
                set_up: |w, t| login(w, t, "jwt.toml"),
            },
            Path_ {
                name: "Vault jwt login refused (another audience)",
                run_exit: 77,
                collects: &[Kind::Jwt],
                set_up: |w, t| login(w, t, "jwt-other.toml"),
            },
            Path_ {
                name: "Vault jwt login with a JWT file others can read",
                run_exit: 77,
                collects: &[],
                set_up: |w, t| login(w, t, "jwt-exposed.toml"),
            },
            Path_ {
                name: "Vault cert login with a client certificate",
                run_exit: 0,
                collects: &[Kind::LoginToken],
                set_up: |w, t| login(w, t, "cert.toml"),
            },
            Path_ {
                name: "Vault cert login with a key file others can read",
                run_exit: 77,
                collects: &[],
                set_up: |w, t| login(w, t, "cert-exposed.toml"),
            },
        ]
    }
}
// --- end of the Vault/OpenBao logins.

/// How a path's invocation is set up, after the common part.
type SetUp = fn(&World, Tagstrap) -> Tagstrap;

/// One path through the program, the exit code `run` must give on it, and
/// what the stores must have recorded of each `run`, `plan` and `doctor` on
/// it (`tags` does not reach a store): proof that the check of the secrets
/// known only after a run had something to check.
struct Path_ {
    name: &'static str,
    run_exit: i32,
    collects: &'static [Kind],
    set_up: SetUp,
}

/// The proxy tags, with the user and password references given.
fn proxy_tags(w: &World, t: Tagstrap, user: &str, password: &str) -> Tagstrap {
    t.tag("rs_agent:http_proxy", &w.squid.proxy_addr())
        .tag("rs_agent:http_proxy_user", user)
        .tag("rs_agent:http_proxy_password", password)
        .arg("--ca-file")
        .arg(&w.ca_path)
}

fn with_vault(w: &World, t: Tagstrap, token: &str) -> Tagstrap {
    t.vault(&w.bao.addr(), token)
}

fn with_script(w: &World, t: Tagstrap, path: &str) -> Tagstrap {
    t.tag("rs_agent:mime_shellscript", &w.script(path))
}

fn approle(w: &World, t: Tagstrap, secret_id_file: &str) -> Tagstrap {
    t.env("VAULT_ADDR", w.bao.addr())
        .env("TAGSTRAP_VAULT_ROLE_ID", &w.role_id)
        .env("TAGSTRAP_VAULT_SECRET_ID_FILE", w.input(secret_id_file))
}

fn paths() -> Vec<Path_> {
    let aws_stores = AwsStores::paths();
    vec![
        Path_ {
            name: "token from VAULT_TOKEN, script through Squid",
            run_exit: 0,
            collects: &[Kind::Carried],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS");
                with_script(w, with_vault(w, t, &w.read_token), "/install.sh")
            },
        },
        Path_ {
            name: "user and password both credentials",
            run_exit: 0,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, "cred:PROXY_USER", "cred:PROXY_PASS");
                with_script(w, with_vault(w, t, &w.read_token), "/install.sh")
            },
        },
        Path_ {
            name: "AppRole login",
            run_exit: 0,
            collects: &[Kind::LoginToken, Kind::SecretId],
            set_up: |w, t| {
                let t = approle(
                    w,
                    proxy_tags(w, t, USER, "cred:PROXY_PASS"),
                    "secret-id-private",
                );
                with_script(w, t, "/install.sh")
            },
        },
        Path_ {
            name: "token file",
            run_exit: 0,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS")
                    .env("VAULT_ADDR", w.bao.addr())
                    .env("TAGSTRAP_VAULT_TOKEN_FILE", w.input("token-private"));
                with_script(w, t, "/install.sh")
            },
        },
        Path_ {
            name: "directory store",
            run_exit: 0,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, "cred:PROXY_USER", "cred:PROXY_PASS")
                    .env("CREDENTIALS_DIRECTORY", w.input("creds-private"));
                with_script(w, t, "/install.sh")
            },
        },
        Path_ {
            name: "credentials inside the proxy URL of a tags file (accepted with a warning)",
            run_exit: 0,
            collects: &[],
            set_up: |w, t| {
                let t = t
                    .arg("--tags-file")
                    .arg(w.input("url-credentials.tags"))
                    .arg("--ca-file")
                    .arg(&w.ca_path);
                with_script(w, t, "/install.sh")
            },
        },
        Path_ {
            name: "the script fails",
            run_exit: 3,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS");
                with_script(w, with_vault(w, t, &w.read_token), "/fail.sh")
            },
        },
        Path_ {
            name: "the script is not found",
            run_exit: 66,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS");
                with_script(w, with_vault(w, t, &w.read_token), "/missing.sh")
            },
        },
        Path_ {
            name: "checksum mismatch",
            run_exit: 65,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS")
                    .tag("rs_agent:mime_shellscript_sha256", &sha256_hex(b"other"));
                with_script(w, with_vault(w, t, &w.read_token), "/install.sh")
            },
        },
        Path_ {
            name: "wrong password: Squid answers 407",
            run_exit: 77,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:WRONG");
                with_script(w, with_vault(w, t, &w.read_token), "/install.sh")
            },
        },
        Path_ {
            name: "script host down behind the proxy until the deadline",
            run_exit: 69,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS")
                    .tag(
                        "rs_agent:mime_shellscript",
                        &format!("https://{ORIGIN_IP}:{}/install.sh", w.closed_port),
                    )
                    .arg("--deadline")
                    .arg("1");
                with_vault(w, t, &w.read_token)
            },
        },
        Path_ {
            name: "the store denies the token",
            run_exit: 77,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS");
                with_script(w, with_vault(w, t, &w.denied_token), "/install.sh")
            },
        },
        Path_ {
            name: "the secret does not exist",
            run_exit: 66,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:MISSING");
                with_script(w, with_vault(w, t, &w.read_token), "/install.sh")
            },
        },
        Path_ {
            name: "the secret holds a control character",
            run_exit: 65,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:CONTROL");
                with_script(w, with_vault(w, t, &w.read_token), "/install.sh")
            },
        },
        Path_ {
            name: "the store is unreachable until the deadline",
            run_exit: 69,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS")
                    .vault(
                        &format!("http://127.0.0.1:{}", w.closed_port),
                        &w.read_token,
                    )
                    .arg("--deadline")
                    .arg("0.5");
                with_script(w, t, "/install.sh")
            },
        },
        Path_ {
            name: "AppRole with a wrong secret ID",
            run_exit: 77,
            collects: &[Kind::SecretId],
            set_up: |w, t| {
                let t = approle(
                    w,
                    proxy_tags(w, t, USER, "cred:PROXY_PASS"),
                    "secret-id-wrong",
                );
                with_script(w, t, "/install.sh")
            },
        },
        Path_ {
            name: "AppRole secret-ID file others can read",
            run_exit: 77,
            collects: &[],
            set_up: |w, t| {
                let t = approle(
                    w,
                    proxy_tags(w, t, USER, "cred:PROXY_PASS"),
                    "secret-id-exposed",
                );
                with_script(w, t, "/install.sh")
            },
        },
        Path_ {
            name: "token file others can read",
            run_exit: 77,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS")
                    .env("VAULT_ADDR", w.bao.addr())
                    .env("TAGSTRAP_VAULT_TOKEN_FILE", w.input("token-exposed"));
                with_script(w, t, "/install.sh")
            },
        },
        Path_ {
            name: "directory-store secret others can read",
            run_exit: 77,
            collects: &[],
            set_up: |w, t| {
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS")
                    .env("CREDENTIALS_DIRECTORY", w.input("creds-exposed"));
                with_script(w, t, "/install.sh")
            },
        },
        Path_ {
            name: "--write-env into a scanned directory (must be 0600)",
            run_exit: 0,
            collects: &[],
            set_up: |w, t| {
                // The variable, not the flag: `plan` and `tags` have no
                // --write-env, and ignore the setting.
                let t = proxy_tags(w, t, USER, "cred:PROXY_PASS")
                    .env("TAGSTRAP_WRITE_ENV", w.out.path().join("proxy.env"));
                with_script(w, with_vault(w, t, &w.read_token), "/install.sh")
            },
        },
        Path_ {
            name: "every tag from the AWS instance tags",
            run_exit: 0,
            collects: &[],
            set_up: |w, t| {
                with_vault(w, t, &w.read_token)
                    .arg("--source")
                    .arg("aws")
                    .arg("--metadata-endpoint")
                    .arg(w.aws.url())
                    .arg("--ca-file")
                    .arg(&w.ca_path)
            },
        },
        Path_ {
            name: "a plain-text password in the Azure instance tags",
            run_exit: 65,
            collects: &[],
            set_up: |w, t| {
                t.arg("--source")
                    .arg("azure")
                    .arg("--metadata-endpoint")
                    .arg(w.azure_plain.url())
            },
        },
        // Secrets typed into tags come from tags files here: on the test's
        // own command line they would be the test's leak, not tagstrap's.
        Path_ {
            name: "a plain-text password tag",
            run_exit: 65,
            collects: &[],
            set_up: |w, t| {
                let t = t.arg("--tags-file").arg(w.input("plain-password.tags"));
                with_script(w, t, "/install.sh")
            },
        },
        Path_ {
            name: "a socks proxy URL holding the password",
            run_exit: 65,
            collects: &[],
            set_up: |w, t| {
                let t = t.arg("--tags-file").arg(w.input("socks.tags"));
                with_script(w, t, "/install.sh")
            },
        },
    ]
    .into_iter()
    .chain(aws_stores)
    .chain(VaultLogins::paths())
    .collect()
}

/// What one invocation showed, and every command line seen while it ran.
struct Observed {
    code: i32,
    stdout: String,
    stderr: String,
    report: String,
    cmdlines_with_secret: BTreeSet<String>,
    scans: usize,
}

/// Runs `t` at the most verbose level with `format`, scanning every
/// process's command line until it exits.
fn observe(
    t: Tagstrap,
    format: &str,
    tmp: &Path,
    forms: &[String],
) -> (Observed, tempfile::TempDir) {
    let t = t
        .arg("-vv")
        .arg("--log-format")
        .arg(format)
        .env("TAGSTRAP_LOG", "trace")
        .env("TMPDIR", tmp);
    let (mut child, state) = t.spawn();
    // Drain the pipes on threads so a chatty child never blocks on them.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let started = Instant::now();
    let mut leaks = BTreeSet::new();
    let mut scans = 0;
    let status = loop {
        scans += 1;
        leaks.extend(cmdlines_holding(forms));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "tagstrap did not finish"
        );
    };
    let report =
        std::fs::read_to_string(state.path().join("state/last-run.json")).unwrap_or_default();
    let observed = Observed {
        code: status.code().unwrap_or(-1),
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
        report,
        cmdlines_with_secret: leaks,
        scans,
    };
    (observed, state)
}

/// The command lines, among all processes now, that hold a secret form.
fn cmdlines_holding(forms: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if forms.iter().any(|f| text.contains(f.as_str())) {
                found.push(format!("{}: {text}", entry.path().display()));
            }
        }
    }
    found
}

/// Files under `root` that group or others can read and that hold a secret.
fn exposed_files_holding(root: &Path, forms: &[String]) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                let text =
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned();
                if forms.iter().any(|f| text.contains(f.as_str())) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

/// Every path × every command × both formats. Returns every secret the
/// stores recorded along the way, in every form.
fn check_paths(world: &World, paths: &[Path_]) -> BTreeSet<String> {
    let known = world.secret_forms();
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut recorded = BTreeSet::new();
    for path in paths {
        for command in ["run", "plan", "tags", "doctor"] {
            for format in ["text", "json"] {
                let context = format!("path {:?}, {command}, {format}", path.name);
                let t = (path.set_up)(world, Tagstrap::new(command));
                let mark = world.mark();
                let (seen, state) = observe(t, format, tmp.path(), &known);
                // The secrets known only now: what the stores recorded.
                let collected = world.collected_since(&mark);
                if command != "tags" {
                    for kind in path.collects {
                        assert!(
                            collected.has(*kind),
                            "{context}: the stores recorded no {kind:?} \
                             (collected: {:?})\n{}",
                            collected.found.keys().collect::<Vec<_>>(),
                            seen.stderr
                        );
                    }
                }
                let new = collected.forms();
                recorded.extend(new.iter().cloned());
                let forms: Vec<String> = known.iter().cloned().chain(new).collect();
                if command == "run" {
                    assert_eq!(
                        seen.code, path.run_exit,
                        "{context}: exit code\n{}",
                        seen.stderr
                    );
                }
                for (what, text) in [
                    ("stdout", &seen.stdout),
                    ("stderr", &seen.stderr),
                    ("report", &seen.report),
                ] {
                    for form in &forms {
                        assert!(
                            !text.contains(form.as_str()),
                            "{context}: {what} holds a secret ({form:?}):\n{text}"
                        );
                    }
                }
                if format == "json" {
                    for line in seen.stderr.lines() {
                        assert!(
                            serde_json::from_str::<serde_json::Value>(line).is_ok(),
                            "{context}: not a JSON line: {line}"
                        );
                    }
                }
                assert!(
                    seen.cmdlines_with_secret.is_empty(),
                    "{context}: a command line holds a secret: {:?}",
                    seen.cmdlines_with_secret
                );
                assert!(seen.scans >= 1);
                for root in [state.path(), world.out.path(), tmp.path()] {
                    let exposed = exposed_files_holding(root, &forms);
                    assert!(exposed.is_empty(), "{context}: {exposed:?}");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, paths.len() * 8);
    recorded
}

#[test]
fn no_secret_leaks_on_any_path_of_any_command_in_either_log_format() {
    let world = World::new();
    let mut all = paths();
    all.extend(cloud_store_paths());
    let recorded = check_paths(&world, &all);
    // The scripts that ran saw the proxy variables, and each one's snapshot
    // of every command line was scanned above (it is not a private file).
    let snapshots: Vec<_> = std::fs::read_dir(world.out.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("cmdlines-"))
        .collect();
    let successes = all.iter().filter(|p| p.run_exit == 0).count();
    assert_eq!(
        snapshots.len(),
        successes * 2,
        "one snapshot per successful run in each format"
    );
    let environs = script_environments_hold_no_store_secret(&world, &recorded);
    assert_eq!(
        environs,
        successes * 2,
        "one environment per successful run"
    );
    for entry in std::fs::read_dir(world.out.path()).unwrap().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("proxy-vars-")
        {
            let count = std::fs::read_to_string(entry.path()).unwrap();
            assert_eq!(
                count.trim(),
                "6",
                "http(s)_proxy and no_proxy, each in both cases"
            );
        }
    }
}

/// Checks every environment a script wrote down (`environ-PID`): no
/// variable of the store's, and no secret form (known up front, or
/// `recorded` by the stores) but the proxy password in the proxy variables.
/// Returns how many there were.
fn script_environments_hold_no_store_secret(world: &World, recorded: &BTreeSet<String>) -> usize {
    let mut forms = world.secret_forms();
    forms.extend(recorded.iter().cloned());
    let allowed = World::proxy_url_forms();
    let mut count = 0;
    for entry in std::fs::read_dir(world.out.path()).unwrap().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("environ-") {
            continue;
        }
        count += 1;
        let bytes = std::fs::read(entry.path()).unwrap();
        for variable in bytes.split(|b| *b == 0).filter(|v| !v.is_empty()) {
            let variable = String::from_utf8_lossy(variable);
            let (name, value) = variable.split_once('=').unwrap();
            assert!(
                !(name.starts_with("VAULT_")
                    || name.starts_with("TAGSTRAP_")
                    || name == "CREDENTIALS_DIRECTORY"),
                "{}: the script got {name}",
                entry.path().display()
            );
            let may_hold =
                |form: &String| common::PROXY_VARS.contains(&name) && allowed.contains(form);
            for form in forms.iter().filter(|f| !may_hold(f)) {
                assert!(
                    !value.contains(form.as_str()),
                    "{}: the script's {name} holds a secret ({form:?})",
                    entry.path().display()
                );
            }
        }
    }
    count
}

#[test]
fn debug_of_every_configuration_and_credential_type_shows_no_secret() {
    use secrecy::SecretString;
    use tagstrap::cli::CommonArgs;
    use tagstrap::credentials::vault::auth::{AppRole, VaultAuth};
    use tagstrap::credentials::vault::VaultConfig;
    use tagstrap::settings::Settings;

    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    write_secret(&creds, "vault-token", "Tok-L3ak-file", 0o600);
    let env = |name: &str| {
        let pairs = [
            ("VAULT_ADDR", "https://vault.test:8200"),
            ("VAULT_TOKEN", "Tok-L3ak-env"),
            ("TAGSTRAP_VAULT_ROLE_ID", "role-1"),
            ("TAGSTRAP_VAULT_SECRET_ID_FILE", "/run/secret-id"),
            ("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()),
            ("https_proxy", "http://u:Pw-L3ak-env@proxy.test:3128"),
        ];
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let args = CommonArgs {
        tags: vec![format!(
            "rs_agent:http_proxy=http://u:{}@proxy.test:3128",
            common::secret_forms(PASSWORD).pop().unwrap()
        )],
        config: Some(common::write_file(dir.path(), "c.toml", "")),
        ..CommonArgs::default()
    };
    let settings = Settings::resolve(&args, &env).unwrap();

    let auth = VaultAuth::Token {
        token: SecretString::from("Tok-L3ak-env"),
        from: "$VAULT_TOKEN",
    };
    let config = VaultConfig {
        addresses: vec!["https://vault.test:8200".parse().unwrap()],
        auth: auth.clone(),
        namespace: None,
        mount: "secret".into(),
        path_prefix: String::new(),
        field: "value".into(),
        kv_version: 2,
        insecure_http: false,
    };
    let approle = VaultAuth::AppRole(AppRole {
        mount: "approle".into(),
        role_id: "role-1".into(),
        secret_id_file: "/run/secret-id".into(),
    });

    let mut set = tagstrap::tags::TagSet::new();
    set.layer(settings.tags.iter().cloned());
    let agent =
        tagstrap::tags::agent::AgentTags::from_tags(&set, tagstrap::tags::agent::Platform::Unix)
            .unwrap();
    let proxy_url = agent.proxy.as_ref().unwrap().url.clone();
    let environment = tagstrap::proxy::ProxyEnvironment::build(None, None, &env).unwrap();
    let tls = tagstrap::net::tls::client_config(&[]).unwrap();
    let client = tagstrap::net::http_client(
        &tls,
        tagstrap::fetch::route_of(&environment),
        tagstrap::net::Redirects::HttpsOnly,
        tagstrap::net::MAX_READ_TIMEOUT,
    )
    .unwrap();
    let error = tagstrap::error::Error::Input("x".into());

    let shown = [
        format!("{settings:?}"),
        format!("{:?}", settings.store),
        format!("{:?}", settings.store.vault),
        format!("{config:?}"),
        format!("{auth:?}"),
        format!("{approle:?}"),
        format!("{set:?}"),
        format!("{agent:?}"),
        format!("{proxy_url:?}"),
        format!("{proxy_url}"),
        format!("{environment:?}"),
        format!("{:?}", environment.proxy),
        format!("{client:?}"),
        format!("{error:?}"),
        format!("{args:?}"),
    ];
    let secrets = ["Tok-L3ak", "Pw-L3ak", PASSWORD, "p%40ss"];
    for text in &shown {
        for secret in secrets {
            assert!(!text.contains(secret), "Debug shows {secret:?}: {text}");
        }
    }
    // They do show what they are about.
    assert!(shown[0].contains("vault.test:8200") && shown[0].contains("proxy.test:3128"));
    assert!(shown[12].contains("proxy.test:3128"), "{}", shown[12]);
}
