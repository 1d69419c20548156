//! SigV4 signing with the instance role's credentials (the `aws-sigv4`
//! crate, docs/dependencies.md), and Vault's IAM login payload: a signed
//! `sts:GetCallerIdentity` that Vault replays to STS to learn who signed it.
//!
//! The crate's `Credentials` keep the keys in `Zeroizing<String>` and redact
//! them in `Debug`; they are built here, for one signature, and dropped.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{dns_suffix, is_region, RoleCredentials};
use crate::error::{Error, Result};

/// The headers a signed request carries besides those it was signed with:
/// `Authorization`, `X-Amz-Date` and `X-Amz-Security-Token`. The session
/// token is a secret: the values go into the request's headers and nowhere
/// else.
pub(crate) struct Signature {
    pub(crate) headers: Vec<(&'static str, SecretString)>,
}

/// A request to sign: `headers` are the ones it will carry (they are
/// signed, `Host` too: the crate takes it from `url`), `body` its exact body.
pub(crate) struct Unsigned<'a> {
    pub(crate) method: &'a str,
    pub(crate) url: &'a Url,
    pub(crate) headers: &'a [(&'a str, &'a str)],
    pub(crate) body: &'a [u8],
}

/// Signs `request` for `service` in `region` at `time`.
pub(crate) fn sign_request(
    credentials: &RoleCredentials,
    region: &str,
    service: &str,
    request: &Unsigned<'_>,
    time: SystemTime,
) -> Result<Signature> {
    let Unsigned {
        method,
        url,
        headers,
        body,
    } = *request;
    let identity = Credentials::new(
        credentials.access_key_id.expose_secret(),
        credentials.secret_access_key.expose_secret(),
        Some(credentials.session_token.expose_secret().to_string()),
        credentials.expiration,
        "tagstrap-imds",
    )
    .into();
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        Error::Input(format!(
            "signing the {service} request failed ({what}): {e}"
        ))
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed("parameters", &e))?
        .into();
    let request = SignableRequest::new(
        method,
        url.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| failed("request", &e))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| failed("signature", &e))?
        .into_parts();
    let (signed, _params) = instructions.into_parts();
    Ok(Signature {
        headers: signed
            .into_iter()
            .map(|h| (h.name(), SecretString::from(h.value().to_string())))
            .collect(),
    })
}

/// The body of `sts:GetCallerIdentity`, as the AWS SDKs and Vault's own
/// client send it.
const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The header Vault's `iam_server_id_header_value` checks: signed in, so a
/// login request captured by one Vault cannot be replayed to another.
pub(crate) const SERVER_ID_HEADER: &str = "X-Vault-AWS-IAM-Server-ID";

/// The STS endpoint and signing region Vault's IAM login is signed for:
/// `https://sts.amazonaws.com/` in `us-east-1` (Vault's default), or the
/// regional endpoint when `region` is given (the Vault server must then be
/// configured with that `sts_endpoint` and `sts_region`).
pub(crate) fn sts_endpoint(region: Option<&str>) -> Result<(Url, String)> {
    match region {
        None => Ok((
            Url::parse("https://sts.amazonaws.com/").expect("a valid URL"),
            "us-east-1".to_string(),
        )),
        Some(r) if is_region(r) => Ok((
            Url::parse(&format!("https://sts.{r}.{}/", dns_suffix(r))).expect("a valid URL"),
            r.to_string(),
        )),
        Some(r) => Err(Error::Config(format!(
            "[vault.aws] region: {:?} is no AWS region (e.g. eu-west-1)",
            crate::util::text::shown(r)
        ))),
    }
}

/// The JSON body of Vault's `POST /v1/auth/{mount}/login` for the `aws`
/// method's IAM type: `role` (when given), `iam_http_request_method`
/// (`POST`), and base64 `iam_request_url`, `iam_request_body` and
/// `iam_request_headers` (a JSON object of header name → list of values,
/// Go's `http.Header`) of an `sts:GetCallerIdentity` request signed with
/// the instance role's `credentials` at `time`, for the STS endpoint of
/// [`sts_endpoint`]`(region)`; `server_id` is sent, and signed, as
/// `X-Vault-AWS-IAM-Server-ID`.
///
/// The whole body is a secret: the headers hold the session token (and a
/// signature that is valid for 15 minutes). It goes into the login request
/// as it is, and nowhere else.
pub(crate) fn vault_iam_login_body(
    credentials: &RoleCredentials,
    role: Option<&str>,
    region: Option<&str>,
    server_id: Option<&str>,
    time: SystemTime,
) -> Result<SecretString> {
    let (url, signing_region) = sts_endpoint(region)?;
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", FORM)];
    if let Some(id) = server_id {
        headers.push((SERVER_ID_HEADER, id));
    }
    let signature = sign_request(
        credentials,
        &signing_region,
        "sts",
        &Unsigned {
            method: "POST",
            url: &url,
            headers: &headers,
            body: GET_CALLER_IDENTITY.as_bytes(),
        },
        time,
    )?;
    let mut all = serde_json::Map::new();
    for (name, value) in &headers {
        all.insert(name.to_string(), serde_json::json!([value]));
    }
    for (name, value) in &signature.headers {
        all.insert(name.to_string(), serde_json::json!([value.expose_secret()]));
    }
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut body = serde_json::json!({
        "iam_http_request_method": "POST",
        "iam_request_url": b64(url.as_str().as_bytes()),
        "iam_request_body": b64(GET_CALLER_IDENTITY.as_bytes()),
        "iam_request_headers": b64(serde_json::Value::Object(all).to_string().as_bytes()),
    });
    if let Some(role) = role {
        body["role"] = serde_json::Value::String(role.to_string());
    }
    Ok(SecretString::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> RoleCredentials {
        RoleCredentials {
            role: "r".into(),
            access_key_id: SecretString::from("ASIAEXAMPLEKEYID0001"),
            secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: SecretString::from("SESSIONTOKEN"),
            expiration: None,
        }
    }

    fn at() -> SystemTime {
        humantime::parse_rfc3339("2015-08-30T12:36:00Z").unwrap()
    }

    #[test]
    fn a_request_is_signed_with_the_session_token_and_its_headers() {
        let url = Url::parse("https://ssm.eu-west-1.amazonaws.com/").unwrap();
        let signed = sign_request(
            &credentials(),
            "eu-west-1",
            "ssm",
            &Unsigned {
                method: "POST",
                url: &url,
                headers: &[("X-Amz-Target", "AmazonSSM.GetParameter")],
                body: b"{}",
            },
            at(),
        )
        .unwrap();
        let header = |name: &str| {
            signed
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.expose_secret().to_string())
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let auth = header("authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEKEYID0001/20150830/eu-west-1/ssm/aws4_request"
            ),
            "{auth}"
        );
        assert!(auth.contains("x-amz-target"), "{auth}");
        assert!(!auth.contains("wJalr"), "{auth}");
        assert_eq!(header("x-amz-date"), "20150830T123600Z");
        assert_eq!(header("x-amz-security-token"), "SESSIONTOKEN");
    }

    #[test]
    fn vaults_login_body_holds_the_signed_get_caller_identity() {
        let body = vault_iam_login_body(
            &credentials(),
            Some("web"),
            None,
            Some("vault.example.com"),
            at(),
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(body.expose_secret()).unwrap();
        let b64 = |field: &str| {
            let text = json[field].as_str().unwrap();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(json["role"], "web");
        assert_eq!(json["iam_http_request_method"], "POST");
        assert_eq!(b64("iam_request_url"), "https://sts.amazonaws.com/");
        assert_eq!(b64("iam_request_body"), GET_CALLER_IDENTITY);
        let headers: serde_json::Value = serde_json::from_str(&b64("iam_request_headers")).unwrap();
        assert_eq!(headers[SERVER_ID_HEADER][0], "vault.example.com");
        assert_eq!(headers["Content-Type"][0], FORM);
        let auth = headers["authorization"][0].as_str().unwrap();
        assert!(auth.contains("/us-east-1/sts/aws4_request"), "{auth}");
        assert!(auth.contains("x-vault-aws-iam-server-id"), "{auth}");

        let regional =
            vault_iam_login_body(&credentials(), None, Some("eu-west-1"), None, at()).unwrap();
        let json: serde_json::Value = serde_json::from_str(regional.expose_secret()).unwrap();
        assert!(json.get("role").is_none());
        let url = base64::engine::general_purpose::STANDARD
            .decode(json["iam_request_url"].as_str().unwrap())
            .unwrap();
        assert_eq!(url, b"https://sts.eu-west-1.amazonaws.com/");
        assert_eq!(
            vault_iam_login_body(&credentials(), None, Some("../x"), None, at())
                .unwrap_err()
                .exit_code(),
            78
        );
    }
}
