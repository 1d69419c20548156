//! The `cert` login (`[vault.cert]`): `POST auth/{mount}/login` with
//! `{"name": role}` over a TLS connection that presents a client
//! certificate. The store checks the certificate against the CA its role
//! trusts; nothing secret crosses the wire, and the private key stays on the
//! instance (a file, mode 0600, refused otherwise; held as secret bytes
//! until rustls has it).
//!
//! The certificate goes out only in a TLS handshake, so the store address
//! must be `https://` (78 otherwise, even on loopback or with
//! `insecure_http`). Every request of the store presents it, not only the
//! login: one client, and the store ignores it where it does not ask.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;
use url::Url;

use super::{as_role, login, shown_mount, LoggedIn, Login};
use crate::credentials::address::shown_address;
use crate::credentials::secret_file;
use crate::credentials::vault::client::VaultClient;
use crate::credentials::vault::config::{defs, login_word, mount_or_default, CertSettings};
use crate::error::{Class, Error, Result};
use crate::util::text::shown_path;

/// A `cert` login: the role (the store's `certs/NAME`), and where the
/// certificate and its key are.
#[derive(Debug, Clone)]
pub struct CertLogin {
    pub(crate) mount: String,
    /// None: the store tries every role that trusts the certificate.
    pub(crate) role: Option<String>,
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
    /// The leaf's subject common name, for messages.
    pub(crate) common_name: Option<String>,
}

impl CertLogin {
    /// The login `[vault.cert]` asks for, checked before anything is sent:
    /// both files named, the addresses `https://`, the certificate readable.
    pub(crate) fn from_settings(s: &CertSettings, addresses: &[Url]) -> Result<CertLogin> {
        let in_file = |setting: &crate::util::setting::Setting| {
            format!("{} in {}", setting.key, s.config.display())
        };
        let required = |value: &Option<PathBuf>, setting| {
            value.clone().ok_or_else(|| {
                let place = in_file(setting);
                let message = format!(
                    "{place}: the cert login needs it: set [vault.cert] cert_file and key_file \
                     to the client certificate (PEM) and its private key (mode 0600)"
                );
                Error::setting(Class::Config, place, message)
            })
        };
        let cert_file = required(&s.cert_file, &defs::CERT_FILE)?;
        let key_file = required(&s.key_file, &defs::KEY_FILE)?;
        if let Some(plain) = addresses.iter().find(|a| a.scheme() != "https") {
            let place = in_file(&defs::CERT_FILE);
            let message = format!(
                "{place}: the cert login presents a TLS client certificate, so the store address \
                 must be https://, and {} is not: use the store's https:// address",
                crate::util::text::shown(shown_address(plain))
            );
            return Err(Error::setting(Class::Config, place, message));
        }
        let role = login_word(&s.role, &defs::CERT_ROLE, &s.config)?;
        let chain = read_chain(&cert_file)?;
        check_validity(&chain[0], &cert_file)?;
        Ok(CertLogin {
            mount: mount_or_default(&s.mount, &defs::CERT_MOUNT),
            role,
            common_name: common_name(&chain[0]),
            cert_file,
            key_file,
        })
    }

    pub(crate) fn describe(&self) -> String {
        let role = as_role(&self.role);
        let cn = self
            .common_name
            .as_ref()
            .map(|cn| format!(" (CN {})", crate::util::text::shown(cn)))
            .unwrap_or_default();
        format!(
            "the cert login at {}{role} with the certificate in {}{cn}",
            shown_mount(&self.mount),
            shown_path(&self.cert_file)
        )
    }

    /// The certificate chain and the private key the TLS client presents.
    /// The key file must be private (77, nothing sent, otherwise).
    pub(crate) fn tls_identity(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let chain = read_chain(&self.cert_file)?;
        let bytes = secret_file::read_bytes(
            &self.key_file,
            "the client key file ([vault.cert] key_file)",
            "write the client certificate's private key into it (PEM, mode 0600)",
        )?;
        let key = PrivateKeyDer::from_pem_slice(bytes.expose_secret()).map_err(|_| {
            Error::Input(format!(
                "the client key file ([vault.cert] key_file): {} holds no PEM private key \
                 (-----BEGIN PRIVATE KEY-----, RSA or EC): give the certificate's key",
                shown_path(&self.key_file)
            ))
        })?;
        Ok((chain, key))
    }

    pub(crate) async fn login(&self, client: &VaultClient, budget: Duration) -> Result<LoggedIn> {
        let body = match &self.role {
            Some(role) => serde_json::json!({ "name": role }),
            None => serde_json::json!({}),
        };
        let role = self
            .role
            .as_ref()
            .map(|r| format!("that the role {r} (auth/{}/certs/{r})", self.mount))
            .unwrap_or_else(|| "that a role of the method".into());
        let request = Login {
            method: "cert",
            kind: "cert",
            mount: &self.mount,
            body,
            secrets: Vec::new(),
            refused_fix: format!(
                "check {role} trusts the CA that signed the certificate in {} (its certificate \
                 setting), that its names match the role's allowed_common_names, and that the \
                 store itself sees the certificate (a load balancer that ends TLS in front of \
                 it drops it)",
                shown_path(&self.cert_file)
            ),
        };
        login(client, budget, &request).await
    }
}

/// The client certificate chain in `path` (leaf first).
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    crate::net::tls::read_pem_certificates(path, "[vault.cert] cert_file")
}

/// A certificate outside its validity is refused here, before it is sent:
/// OpenBao answers 500 to an expired client certificate, which would be
/// retried until the deadline.
fn check_validity(der: &CertificateDer<'_>, path: &Path) -> Result<()> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Err(Error::Input(format!(
            "[vault.cert] cert_file {}: its first certificate is not a valid X.509 certificate",
            shown_path(path)
        )));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let validity = cert.validity();
    let shown = shown_path(path);
    if validity.not_after.timestamp() < now {
        return Err(Error::Refused(format!(
            "the client certificate in {shown} expired on {}: renew it (the store refuses an \
             expired certificate)",
            validity.not_after
        )));
    }
    if validity.not_before.timestamp() > now {
        return Err(Error::Refused(format!(
            "the client certificate in {shown} is valid only from {}: is the clock right?",
            validity.not_before
        )));
    }
    Ok(())
}

/// The subject's common name, when the certificate has one.
fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}
