//! One signed call to an AWS JSON 1.1 API (`POST /` with `X-Amz-Target:
//! {target}.{operation}`), as Secrets Manager and SSM take it: the region
//! (configured, else IMDS's) and the endpoint (configured, else the
//! region's default), the instance role's credentials, the retries of
//! SPEC §6 for throttling and 5xx, and one refresh of the credentials on
//! `ExpiredToken`. What a final error means to the store (the permission to
//! grant, the secret that is missing) is the store's to say: it gets the
//! classified [`AwsError`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;
use url::Url;

use super::error::{classify, AwsError, Kind};
use super::sign::{sign_request, Unsigned};
use super::{default_endpoint, AwsIdentity};
use crate::error::{Error, Result};
use crate::net::direct::{self, Peer};
use crate::net::retry::{self, Failure, Tries};
use crate::net::HttpClient;

/// Largest answer read: a secret is at most 64 KiB (Secrets Manager), a
/// parameter 8 KiB; the JSON around it is small.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// Which API, as its signing name, target prefix and title.
pub(crate) struct Service {
    /// The signing name and endpoint prefix, e.g. `secretsmanager`.
    pub(crate) name: &'static str,
    /// The `X-Amz-Target` prefix, e.g. `AmazonSSM`.
    pub(crate) target: &'static str,
    /// For messages, e.g. "AWS Secrets Manager".
    pub(crate) title: &'static str,
    /// The store's config section, e.g. `aws_ssm`.
    pub(crate) section: &'static str,
}

/// An API reached directly with the instance's identity.
pub(crate) struct AwsApi {
    service: Service,
    identity: AwsIdentity,
    http: HttpClient,
    region: Option<String>,
    endpoint: Option<Url>,
    /// The region and endpoint in use, once known.
    resolved: tokio::sync::OnceCell<(String, Url)>,
    budget: Duration,
}

impl AwsApi {
    /// `region` and `endpoint` as configured (checked by the store's
    /// settings); `None` asks IMDS for the region and uses its default
    /// endpoint.
    fn new(
        service: Service,
        region: Option<String>,
        endpoint: Option<Url>,
        metadata_endpoint: Option<&Url>,
        tls: &Arc<rustls::ClientConfig>,
        budget: Duration,
    ) -> Result<AwsApi> {
        Ok(AwsApi {
            identity: AwsIdentity::new(metadata_endpoint, tls, budget)?,
            http: crate::net::direct::store_client(tls)?,
            service,
            region,
            endpoint,
            resolved: tokio::sync::OnceCell::new(),
            budget,
        })
    }

    /// The API of a store whose config section set `region`, `endpoint`
    /// and `insecure_http` (checked here, [`configured_place`]), opened
    /// with the store's context (`--ca-file`, the deadline,
    /// `--metadata-endpoint`). No request is made until a call.
    pub(crate) fn open(
        service: Service,
        region: Option<&str>,
        endpoint: Option<&str>,
        insecure_http: bool,
        config: &std::path::Path,
        context: &crate::credentials::open::OpenContext<'_>,
    ) -> Result<AwsApi> {
        let (region, endpoint) =
            configured_place(service.section, region, endpoint, insecure_http, config)?;
        AwsApi::new(
            service,
            region,
            endpoint,
            context.metadata_endpoint,
            &crate::net::tls::client_config(context.extra)?,
            context.budget,
        )
    }

    /// "AWS SSM Parameter Store at https://ssm.eu-west-1.amazonaws.com
    /// (eu-west-1) with role R (instance profile …)", as far as it is known.
    pub(crate) fn describe(&self) -> String {
        let title = self.service.title;
        let at = match (self.resolved.get(), &self.endpoint, &self.region) {
            (Some((region, url)), _, _) => format!(" at {} ({region})", shown_url(url)),
            (None, Some(url), _) => format!(" at {}", shown_url(url)),
            (None, None, Some(region)) => format!(" in {region}"),
            (None, None, None) => String::new(),
        };
        format!("{title}{at} with {}", self.identity.describe())
    }

    /// The region in use (after a first call, or as configured).
    pub(crate) fn region(&self) -> Option<&str> {
        self.resolved
            .get()
            .map(|(r, _)| r.as_str())
            .or(self.region.as_deref())
    }

    /// "the instance role R" once the credentials were read ("the
    /// instance role" before).
    pub(crate) fn role(&self) -> String {
        self.identity.role_name()
    }

    async fn resolve(&self) -> Result<&(String, Url)> {
        self.resolved
            .get_or_try_init(|| async {
                let region = match &self.region {
                    Some(r) => r.clone(),
                    None => self.identity.region().await?,
                };
                let url = match &self.endpoint {
                    Some(url) => url.clone(),
                    None => default_endpoint(self.service.name, &region),
                };
                Ok::<_, Error>((region, url))
            })
            .await
    }

    /// Calls `operation` with `body`. `Ok(Ok(json))` on success; `Ok(Err)`
    /// for an answer that ends the call (denied, not found, any other
    /// error, or still expired after one refresh), for the store to phrase;
    /// `Err` when the identity could not be had or the deadline passed.
    /// `what` names the request in retry log lines.
    pub(crate) async fn call(
        &self,
        operation: &str,
        body: &serde_json::Value,
        what: &str,
    ) -> Result<std::result::Result<serde_json::Value, AwsError>> {
        let (region, url) = self.resolve().await?;
        // Read before the first try, as the GCP and Azure stores read their
        // tokens: the credentials' own reads retry until the same deadline,
        // and inside a try of this loop their failure (the metadata service
        // unreachable, say) would be cut short by this loop's deadline and
        // reported as "still running" instead of what it was. Each try reads
        // them again only when they near expiry or after `ExpiredToken`;
        // the first signs with those read here.
        let first = std::sync::Mutex::new(Some(self.identity.credentials(false).await?));
        let body = body.to_string();
        let target = format!("{}.{operation}", self.service.target);
        let what = format!("{what} from {}", self.describe());
        let mut tries = Tries::default();
        retry::retry(&what, self.budget, &mut tries, |_| {
            let read = first.lock().unwrap_or_else(|e| e.into_inner()).take();
            self.try_once(region, url, &target, &body, read)
        })
        .await
    }

    async fn try_once(
        &self,
        region: &str,
        url: &Url,
        target: &str,
        body: &str,
        mut read: Option<Arc<super::RoleCredentials>>,
    ) -> std::result::Result<std::result::Result<serde_json::Value, AwsError>, Failure> {
        let mut refreshed = false;
        loop {
            let credentials = match read.take() {
                Some(credentials) => credentials,
                None => self.identity.credentials(refreshed).await?,
            };
            let headers = [("Content-Type", JSON_1_1), ("X-Amz-Target", target)];
            let signature = sign_request(
                &credentials,
                region,
                self.service.name,
                &Unsigned {
                    method: "POST",
                    url,
                    headers: &headers,
                    body: body.as_bytes(),
                },
                SystemTime::now(),
            )?;
            let mut request = self.http.post(url.clone()).body(body.to_string());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            for (name, value) in &signature.headers {
                request = request.header(*name, value.expose_secret());
            }
            let shown = shown_url(url);
            let peer = Peer {
                shown: &shown,
                role: self.service.title,
                kind: self.service.title,
                trust_hint: "pass the CA that signed its certificate with --ca-file",
            };
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => return Err(direct::transport_failure(&peer, &e)),
            };
            let status = response.status().as_u16();
            let response_headers = response.headers().clone();
            let answer = direct::read_body(response, &peer, MAX_ANSWER_BYTES).await?;
            if status == 200 {
                return serde_json::from_slice(&answer).map(Ok).map_err(|_| {
                    Failure::Permanent(Error::Unavailable(format!(
                        "{} answered 200 with a body that is not JSON: is {shown} the {} \
                         endpoint?",
                        self.describe(),
                        self.service.title
                    )))
                });
            }
            let error = classify(status, &response_headers, &answer);
            match error.kind {
                Kind::Expired if !refreshed => {
                    tracing::info!(
                        "{} answered {}: reading the instance role's credentials again",
                        self.describe(),
                        error.said()
                    );
                    refreshed = true;
                }
                Kind::Retry => {
                    return Err(Failure::busy(
                        format!("{} answered {} ({})", self.describe(), status, error.said()),
                        crate::net::classify::retry_after_header(&response_headers),
                    ))
                }
                _ => return Ok(Err(error)),
            }
        }
    }
}

/// What a store reads with one call, and the words of its errors.
pub(crate) struct Read<'a> {
    pub(crate) operation: &'static str,
    pub(crate) body: serde_json::Value,
    pub(crate) name: &'a crate::credentials::CredRef,
    /// What is missing when it is, e.g. "parameter /tagstrap/PROXY_PASS".
    pub(crate) missing: String,
    /// The command that creates it.
    pub(crate) create: String,
    /// The permission to grant when denied: called after the call, when
    /// the region and the role are known.
    pub(crate) grant: &'a (dyn Fn() -> String + Sync),
}

impl AwsApi {
    /// [`AwsApi::call`] for a store's read: the answer, or the store's
    /// error (66 naming what is missing and how to create it; 77 naming the
    /// permission; [`final_error`] otherwise).
    pub(crate) async fn read(&self, read: Read<'_>) -> Result<serde_json::Value> {
        let name = read.name;
        let what = format!("credential {name}");
        match self.call(read.operation, &read.body, &what).await? {
            Ok(answer) => Ok(answer),
            Err(e) if e.kind == Kind::NotFound => Err(Error::NotFound(format!(
                "credential {name} does not exist: {} has no {} ({}). Create it ({}) or fix \
                 the tag or [{}] prefix",
                self.describe(),
                read.missing,
                e.said(),
                read.create,
                self.service.section
            ))),
            Err(e) => {
                let asked = format!(
                    "{} of {} for credential {name}",
                    read.operation, read.missing
                );
                Err(final_error(self, &e, &asked, &(read.grant)()))
            }
        }
    }
}

/// Scheme, host and port of a URL, for messages.
fn shown_url(url: &Url) -> String {
    crate::util::text::shown(crate::credentials::address::shown_address(url))
}

/// The error for an answer the store has no words of its own for: denied
/// (77), still expired after a refresh (77), or anything else (69, with
/// AWS's words). `grant` is the permission to name when denied.
fn final_error(api: &AwsApi, error: &AwsError, asked: &str, grant: &str) -> Error {
    let store = api.describe();
    let said = error.said();
    match error.kind {
        Kind::Denied if error.credentials_rejected() => Error::Refused(format!(
            "{store} refused the instance role's credentials for {asked} ({said}): they are not \
             what AWS issued, or the request was signed for another region or endpoint. Check \
             --metadata-endpoint, [{}] region and endpoint, and the instance's clock",
            api.service.section
        )),
        Kind::Denied => Error::Refused(format!("{store} denied {asked} ({said}): {grant}")),
        Kind::Expired => Error::Refused(format!(
            "{store} refused the instance role's credentials as expired for {asked}, also after \
             reading new ones ({said}): is the instance's clock right (chrony, NTP)?"
        )),
        Kind::NotFound => Error::NotFound(format!("{store} has no {asked} ({said})")),
        Kind::Retry | Kind::Other => {
            Error::Unavailable(format!("{store} answered {asked} with {said}: not retried"))
        }
    }
}

/// When a configured endpoint is plain http:// to a host that is not
/// loopback (allowed by `insecure_http = true`), what to tell the operator:
/// logged by every run, shown by `doctor` (`credentials::open::in_clear`).
pub(crate) fn endpoint_in_clear(
    section: &str,
    insecure_http: bool,
    endpoint: Option<&str>,
) -> Option<String> {
    let addresses = endpoint.into_iter();
    crate::credentials::address::in_clear(section, insecure_http, addresses, "the signed requests")
}

/// A configured region and endpoint, checked: a region is a region name
/// (it goes into a host and the signature), an endpoint follows the store
/// address rule (`credentials::address`: https://, loopback, or the
/// section's `insecure_http`). `section` is the store's config section,
/// `config` the config file's path, for messages.
fn configured_place(
    section: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
    insecure_http: bool,
    config: &std::path::Path,
) -> Result<(Option<String>, Option<Url>)> {
    use crate::credentials::address::{parse_address, AddressRule};
    if let Some(r) = region.filter(|r| !super::is_region(r)) {
        let place = format!("[{section}] region in {}", config.display());
        let message = format!(
            "{place}: {:?} is no AWS region (e.g. eu-west-1); leave it out to use the \
             instance's own",
            crate::util::text::shown(r)
        );
        return Err(Error::setting(crate::error::Class::Config, place, message));
    }
    let endpoint = match endpoint {
        None => None,
        Some(text) => {
            let from = format!("[{section}] endpoint in {}", config.display());
            let rule = AddressRule {
                section,
                example: "https://vpce-0123-abcd.secretsmanager.eu-west-1.vpce.amazonaws.com",
                credentials_hint: "the store is opened with the instance role, never a key",
                insecure_http,
            };
            let url = parse_address(text, &from, &rule)?;
            if let Some(warning) = endpoint_in_clear(section, insecure_http, Some(text)) {
                tracing::warn!("{warning}");
            }
            Some(url)
        }
    };
    Ok((region.map(str::to_string), endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_regions_and_endpoints_are_checked_before_any_request() {
        let config = std::path::Path::new("/etc/tagstrap/config.toml");
        let place = |region, endpoint, insecure| {
            configured_place("aws_ssm", region, endpoint, insecure, config)
        };
        let (region, endpoint) = place(Some("eu-west-1"), None, false).unwrap();
        assert_eq!((region.as_deref(), endpoint), (Some("eu-west-1"), None));
        let bad = place(Some("eu-west-1.evil.example/"), None, false).unwrap_err();
        assert_eq!(bad.exit_code(), 78);
        assert!(bad
            .message()
            .starts_with("[aws_ssm] region in /etc/tagstrap/config.toml"));
        let remote = "http://ssm.corp.example";
        let plain = place(None, Some(remote), false).unwrap_err();
        assert_eq!(plain.exit_code(), 78);
        assert!(plain
            .message()
            .contains("insecure_http = true in the [aws_ssm] section"));
        assert!(place(None, Some(remote), true).is_ok());
        assert!(place(None, Some("http://127.0.0.1:5000"), false).is_ok());
        let with_key = place(None, Some("https://AKIA:secret@ssm.example"), false).unwrap_err();
        assert!(!with_key.message().contains("secret@"), "{with_key}");

        let warning = endpoint_in_clear("aws_ssm", true, Some(remote)).unwrap();
        assert!(warning.contains("http://ssm.corp.example"), "{warning}");
        assert_eq!(
            endpoint_in_clear("aws_ssm", true, Some("http://127.0.0.1:1")),
            None
        );
        assert_eq!(
            endpoint_in_clear("aws_ssm", true, Some("https://ssm.corp.example")),
            None
        );
        assert_eq!(endpoint_in_clear("aws_ssm", true, None), None);
        assert_eq!(
            endpoint_in_clear("aws_ssm", false, Some(remote)),
            None,
            "only insecure_http allows it; without, opening refuses it"
        );
    }
}
