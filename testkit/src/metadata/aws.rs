//! The fake AWS instance metadata service, IMDSv2 in "required" mode:
//! `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` in
//! 1..=21600 (else `400`) and no `X-Forwarded-For` (else `403`); every other
//! request needs a known, unexpired `X-aws-ec2-metadata-token` (else `401`).
//! It serves `fixtures/aws/` as the path tree IMDS lists, with the tags
//! under `latest/meta-data/tags/instance/` kept apart so that "instance
//! metadata tags" can be switched off ([`FakeMetadataBuilder::tags_disabled`]).
//!
//! The instance role ([`FakeMetadataBuilder::aws_role`]) is served as IMDS
//! serves it: `iam/security-credentials/` lists the role (404 without one),
//! `iam/security-credentials/ROLE` its credentials as JSON (each read hands
//! out the next of the given sets, the last one for good: credentials that
//! change, or an expired set first), and `iam/info` the instance profile.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::{children, is_read, percent_decode, read_tree, FakeMetadataBuilder, Service};
use crate::origin::{reason, RecordedRequest, Reply};

const AWS_TOKEN_PATH: &str = "/latest/api/token";
const AWS_META: &str = "latest/meta-data";
const AWS_TAGS: &str = "latest/meta-data/tags/instance";
const AWS_INSTANCE_ID: &str = "latest/meta-data/instance-id";
/// The longest token lifetime IMDSv2 grants (6 hours).
const AWS_MAX_TTL: u64 = 21_600;

/// What the AWS fake serves, and the session tokens it has handed out.
#[derive(Clone, Debug)]
struct Aws {
    /// Everything but the tags, keyed by the path relative to `fixtures/aws/`.
    files: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    tags_enabled: bool,
    /// Session tokens and when they expire.
    tokens: HashMap<String, Instant>,
    role: Option<AwsRole>,
}

/// Temporary AWS credentials: what IMDS hands out for the instance role,
/// and what [`crate::Moto`] makes with `sts:AssumeRole`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

/// One set of credentials as IMDS serves it, with its `Expiration`.
#[derive(Clone, Debug)]
pub struct AwsRoleSet {
    pub credentials: AwsCredentials,
    pub expiration: SystemTime,
}

impl AwsRoleSet {
    /// Credentials that expire six hours from now, as fresh ones do.
    pub fn fresh(credentials: AwsCredentials) -> AwsRoleSet {
        AwsRoleSet {
            credentials,
            expiration: SystemTime::now() + Duration::from_secs(6 * 3600),
        }
    }

    /// Credentials whose `Expiration` passed a minute ago.
    pub fn expired(credentials: AwsCredentials) -> AwsRoleSet {
        AwsRoleSet {
            credentials,
            expiration: SystemTime::now() - Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug)]
struct AwsRole {
    name: String,
    instance_profile_arn: String,
    /// Served in turn; the last one stays.
    sets: VecDeque<AwsRoleSet>,
}

pub(super) fn load(dir: &Path) -> Box<dyn Service> {
    let mut files = read_tree(dir);
    let prefix = format!("{AWS_TAGS}/");
    let tags = files
        .iter()
        .filter_map(|(p, v)| Some((p.strip_prefix(&prefix)?.to_string(), v.clone())))
        .collect();
    files.retain(|p, _| !p.starts_with(&prefix));
    Box::new(Aws {
        files,
        tags,
        tags_enabled: true,
        tokens: HashMap::new(),
        role: None,
    })
}

impl Service for Aws {
    fn instance_id(&self) -> Option<String> {
        self.files.get(AWS_INSTANCE_ID).cloned()
    }

    fn set_instance_id(&mut self, id: &str) {
        self.files
            .insert(AWS_INSTANCE_ID.to_string(), id.to_string());
    }

    fn set_tag(&mut self, key: &str, value: &str) {
        self.tags.insert(key.to_string(), value.to_string());
    }

    fn clear_tags(&mut self) {
        self.tags.clear();
    }

    fn error(&self, status: u16) -> Reply {
        aws_error(status)
    }

    fn handle(&mut self, req: &RecordedRequest) -> Reply {
        let iam = req.path.trim_start_matches('/').strip_prefix(AWS_IAM);
        if let (Some(rest), true) = (iam, self.authorized(req)) {
            return self.iam(rest);
        }
        aws(
            &self.files,
            &self.tags,
            self.tags_enabled,
            &mut self.tokens,
            req,
        )
    }
}

const AWS_IAM: &str = "latest/meta-data/iam";

impl Aws {
    /// Whether a read carries a live session token (the IAM paths are read
    /// like every other; a request without one falls through to `aws`,
    /// which answers 401).
    fn authorized(&mut self, req: &RecordedRequest) -> bool {
        let now = Instant::now();
        is_read(req)
            && req
                .header("x-aws-ec2-metadata-token")
                .and_then(|t| self.tokens.get(t))
                .is_some_and(|expiry| *expiry > now)
    }

    /// `latest/meta-data/iam` + `rest`.
    fn iam(&mut self, rest: &str) -> Reply {
        let Some(role) = self.role.as_mut() else {
            return aws_error(404);
        };
        match rest {
            "" | "/" => aws_text("info\nsecurity-credentials/"),
            "/info" => aws_text(
                serde_json::json!({
                    "Code": "Success",
                    "LastUpdated": rfc3339(SystemTime::now()),
                    "InstanceProfileArn": role.instance_profile_arn,
                    "InstanceProfileId": "AIPAEXAMPLEPROFILEID0",
                })
                .to_string(),
            ),
            "/security-credentials" | "/security-credentials/" => aws_text(role.name.clone()),
            other if other.strip_prefix("/security-credentials/") == Some(role.name.as_str()) => {
                let set = if role.sets.len() > 1 {
                    role.sets.pop_front().expect("a set")
                } else {
                    role.sets.front().cloned().expect("a set")
                };
                aws_text(
                    serde_json::json!({
                        "Code": "Success",
                        "LastUpdated": rfc3339(SystemTime::now()),
                        "Type": "AWS-HMAC",
                        "AccessKeyId": set.credentials.access_key_id,
                        "SecretAccessKey": set.credentials.secret_access_key,
                        "Token": set.credentials.session_token,
                        "Expiration": rfc3339(set.expiration),
                    })
                    .to_string(),
                )
            }
            _ => aws_error(404),
        }
    }
}

/// `2026-12-01T17:00:00Z`: how IMDS writes times.
fn rfc3339(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl FakeMetadataBuilder {
    /// AWS only: an instance role `name` in the instance profile
    /// `instance_profile_arn`, whose credentials are `sets`, one per read
    /// (the last one stays). Without it the instance has no role: the
    /// IAM paths answer 404. Panics for other clouds or no set.
    pub fn aws_role(
        mut self,
        name: &str,
        instance_profile_arn: &str,
        sets: Vec<AwsRoleSet>,
    ) -> Self {
        assert!(!sets.is_empty(), "a role needs credentials");
        let cloud = self.cloud;
        match self.data.as_any_mut().downcast_mut::<Aws>() {
            Some(aws) => {
                aws.role = Some(AwsRole {
                    name: name.to_string(),
                    instance_profile_arn: instance_profile_arn.to_string(),
                    sets: sets.into(),
                })
            }
            None => panic!("aws_role is AWS only, not {}", cloud.name()),
        }
        self
    }

    /// AWS only: "instance metadata tags" off, so `tags/instance` and below
    /// answer `404`. Panics for other clouds.
    pub fn tags_disabled(mut self) -> Self {
        let cloud = self.cloud;
        match self.data.as_any_mut().downcast_mut::<Aws>() {
            Some(aws) => aws.tags_enabled = false,
            None => panic!("tags_disabled is AWS only, not {}", cloud.name()),
        }
        self
    }
}

/// 56 characters of the base64 alphabet from the kernel's CSPRNG.
fn random_token() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut buf = [0u8; 56];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter()
        .map(|b| ALPHABET[(b & 63) as usize] as char)
        .collect()
}

/// IMDS's XHTML error page (its real body, minus the DOCTYPE).
fn aws_error(status: u16) -> Reply {
    let title = format!("{status} - {}", reason(status));
    Reply::status_with_body(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
        ),
    )
    .with_header("Content-Type", "text/html")
}

fn aws_text(body: impl Into<Vec<u8>>) -> Reply {
    Reply::ok(body).with_header("Content-Type", "text/plain")
}

fn aws(
    files: &BTreeMap<String, String>,
    tags: &BTreeMap<String, String>,
    tags_enabled: bool,
    tokens: &mut HashMap<String, Instant>,
    req: &RecordedRequest,
) -> Reply {
    let now = Instant::now();
    tokens.retain(|_, expiry| *expiry > now);
    if req.path == AWS_TOKEN_PATH {
        if req.method != "PUT" {
            return aws_error(405);
        }
        // A token PUT that passed a proxy is refused, so tokens cannot be
        // obtained through a misconfigured forwarder.
        if req.header("x-forwarded-for").is_some() {
            return aws_error(403);
        }
        let ttl = req
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|t| (1..=AWS_MAX_TTL).contains(t));
        let Some(ttl) = ttl else {
            return aws_error(400);
        };
        let token = random_token();
        tokens.insert(token.clone(), now + Duration::from_secs(ttl));
        return aws_text(token)
            .with_header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl.to_string());
    }
    if !is_read(req) {
        return aws_error(405);
    }
    let expiry = req
        .header("x-aws-ec2-metadata-token")
        .and_then(|t| tokens.get(t));
    let Some(expiry) = expiry else {
        return aws_error(401);
    };
    let left = expiry.saturating_duration_since(now).as_secs().to_string();
    let ok =
        |body: String| aws_text(body).with_header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", &left);

    let rel = req.path.trim_start_matches('/');
    let trimmed = rel.trim_end_matches('/');
    let in_tags =
        trimmed == "latest/meta-data/tags" || trimmed.starts_with("latest/meta-data/tags/");
    if in_tags {
        if !tags_enabled {
            return aws_error(404);
        }
        if trimmed == "latest/meta-data/tags" {
            return ok("instance".to_string());
        }
        if trimmed == AWS_TAGS {
            let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
            return ok(keys.join("\n"));
        }
        let key = rel
            .strip_prefix(AWS_TAGS)
            .and_then(|k| k.strip_prefix('/'))
            .and_then(percent_decode);
        return match key.and_then(|k| tags.get(&k)) {
            Some(v) => ok(v.clone()),
            None => aws_error(404),
        };
    }
    if !rel.ends_with('/') {
        if let Some(v) = files.get(rel) {
            return ok(v.clone());
        }
    }
    let mut entries: Vec<String> = children(files, &format!("{trimmed}/"))
        .into_iter()
        .map(|(name, dir)| if dir { format!("{name}/") } else { name })
        .collect();
    if trimmed == AWS_META && tags_enabled {
        entries.push("tags/".to_string());
        entries.sort();
    }
    if entries.is_empty() {
        return aws_error(404);
    }
    ok(entries.join("\n"))
}
