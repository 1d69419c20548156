//! TLS settings shared by every connection tagstrap makes: to an `https://`
//! proxy, to the script host, and to the credential store.
//!
//! Trust is the system's store (what `update-ca-certificates` or the Windows
//! store hold), or Mozilla's roots compiled in when the image has no store at
//! all, plus the operator's `--ca-file` (a TLS-intercepting proxy's CA) and,
//! for the store, `VAULT_CACERT`.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::error::{Error, Result};
use crate::util::fs;

/// The system's roots, loaded once: reading the store costs milliseconds and
/// both the store client and the script client need it.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let loaded = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            tracing::debug!("no system CA store found; using the built-in Mozilla roots");
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

/// Largest CA file read: the whole Mozilla bundle is about 200 KiB.
pub(crate) const MAX_CA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads every certificate of a PEM file, a regular file only (a FIFO
/// would block the boot). `what` names the setting for the error, e.g.
/// "--ca-file".
pub(crate) fn read_pem_certificates(
    path: &Path,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>> {
    let shown = crate::util::text::shown_path(path);
    let file = fs::open_input(path).map_err(|e| match e {
        e if e.is_not_found() => Error::NotFound(format!("{what} {shown} does not exist")),
        fs::InputError::NotRegular(file_type) => Error::Input(format!(
            "{what} {shown} is {}, not a regular file: name the PEM file itself",
            fs::kind_of(&file_type)
        )),
        e => Error::Input(format!("cannot read {what} {shown}: {e}")),
    })?;
    let bytes = fs::read_bounded(file, MAX_CA_FILE_BYTES)
        .map_err(|e| Error::Input(format!("cannot read {what} {shown}: {e}")))?;
    if bytes.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(Error::Input(format!(
            "{what} {shown} is larger than {MAX_CA_FILE_BYTES} bytes: is it the right file?"
        )));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Input(format!("{what} {shown} is not valid PEM: {e:?}")))?;
    if certs.is_empty() {
        return Err(Error::Input(format!(
            "{what} {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

/// A client configuration trusting the system roots plus `extra`. The
/// system's store is read the first time a handshake needs it
/// (`LazyRoots`), not here: a run whose script is `file://` and whose
/// credentials need no TLS never pays for it (about 4 ms at boot, reading
/// some 150 files). `extra` is checked now, so a bad `--ca-file` is still
/// an error before anything runs.
pub fn client_config(extra: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>> {
    let roots = LazyRoots::new(extra)?;
    let provider = roots.provider.clone();
    with_verifier(provider, Arc::new(roots))
}

/// [`client_config`] that presents a client certificate (`chain`, leaf
/// first) signed for with `key`: Vault's `cert` login. rustls keeps the key
/// inside its signer; the caller's copy is dropped (zeroed) after this.
pub(crate) fn client_config_presenting(
    extra: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    what: &str,
) -> Result<Arc<ClientConfig>> {
    let roots = LazyRoots::new(extra)?;
    let provider = roots.provider.clone();
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(roots))
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            Error::Config(format!(
                "{what}: the certificate and key cannot be used together ({e}): give the key \
                 that belongs to the certificate, in PEM (PKCS#8, PKCS#1 or SEC1)"
            ))
        })?;
    Ok(http1_only(config))
}

/// A configuration whose certificates `verifier` checks.
fn with_verifier(
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
) -> Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(http1_only(config))
}

/// tagstrap speaks HTTP/1.1 only: one request per resource, and proxies
/// that intercept TLS handle it best.
fn http1_only(mut config: ClientConfig) -> Arc<ClientConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// rustls's own WebPKI verifier over the system roots plus the extra ones,
/// built on the first certificate it is asked to verify. Signatures are
/// checked with the provider's algorithms, as that verifier checks them,
/// so nothing but the certificate chain waits for the roots.
#[derive(Debug)]
struct LazyRoots {
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    built: OnceLock<std::result::Result<Arc<rustls::client::WebPkiServerVerifier>, String>>,
}

impl LazyRoots {
    /// `extra` is checked here, the system's store read later.
    fn new(extra: &[CertificateDer<'static>]) -> Result<LazyRoots> {
        anchors(RootCertStore::empty(), extra)?;
        Ok(LazyRoots {
            extra: extra.to_vec(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            built: OnceLock::new(),
        })
    }

    fn verifier(
        &self,
    ) -> std::result::Result<&Arc<rustls::client::WebPkiServerVerifier>, rustls::Error> {
        self.built
            .get_or_init(|| {
                // Only the line crosses rustls's verifier API (its errors
                // are rustls's); the class is not lost: `new` already ran
                // the same check on `extra` and failed with it (65), and
                // adding a root does not depend on the others.
                let roots =
                    anchors(system_roots().clone(), &self.extra).map_err(|e| e.to_string())?;
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| format!("TLS set-up failed: {e}"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl rustls::client::danger::ServerCertVerifier for LazyRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that trusts nothing, for a client that only speaks
/// plain http:// (the metadata services): loading the system's store costs
/// milliseconds at boot for nothing there.
pub fn trusting_nothing() -> Result<Arc<ClientConfig>> {
    with_roots(RootCertStore::empty(), &[])
}

fn with_roots(
    roots: RootCertStore,
    extra: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>> {
    let roots = anchors(roots, extra)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(http1_only(config))
}

/// The system roots (or the ones given) plus `extra`.
fn anchors(mut roots: RootCertStore, extra: &[CertificateDer<'static>]) -> Result<RootCertStore> {
    for cert in extra {
        roots.add(cert.clone()).map_err(|e| {
            Error::Input(format!(
                "an extra CA certificate cannot be used as a trust anchor: {e}"
            ))
        })?;
    }
    Ok(roots)
}

/// The end-entity certificate a server presented, kept by a configuration
/// from [`inspecting_config`] whether or not it was trusted.
#[derive(Debug, Default)]
pub(crate) struct SeenCertificate(Mutex<Option<Vec<u8>>>);

impl SeenCertificate {
    pub(crate) fn get(&self) -> Option<Vec<u8>> {
        self.0.lock().ok()?.clone()
    }
}

/// Verifies as [`client_config`] does (with the same verifier), and keeps
/// the certificate.
#[derive(Debug)]
struct Recording {
    inner: LazyRoots,
    seen: Arc<SeenCertificate>,
}

impl rustls::client::danger::ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.0.lock() {
            *seen = Some(end_entity.to_vec());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A configuration that trusts exactly what [`client_config`] trusts and
/// also keeps the certificate the server presented: `doctor` names its issuer
/// when it is not trusted, which is how a TLS-intercepting proxy shows.
pub(crate) fn inspecting_config(
    extra: &[CertificateDer<'static>],
) -> Result<(Arc<ClientConfig>, Arc<SeenCertificate>)> {
    let inner = LazyRoots::new(extra)?;
    let provider = inner.provider.clone();
    let seen = Arc::new(SeenCertificate::default());
    let recording = Recording {
        inner,
        seen: seen.clone(),
    };
    Ok((with_verifier(provider, Arc::new(recording))?, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_pem_certificates(&dir.path().join("none.pem"), "--ca-file").unwrap_err();
        assert_eq!(missing.exit_code(), 66);
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = read_pem_certificates(&empty, "--ca-file").unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert!(err.message().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn the_system_roots_wait_for_the_first_certificate() {
        let lazy = LazyRoots::new(&[]).unwrap();
        use rustls::client::danger::ServerCertVerifier;
        assert!(!lazy.supported_verify_schemes().is_empty());
        assert!(
            lazy.built.get().is_none(),
            "nothing asked for a certificate yet"
        );
        lazy.verifier().unwrap();
        assert!(lazy.built.get().is_some_and(|b| b.is_ok()));
    }

    #[test]
    fn a_config_without_extra_roots_builds() {
        let config = client_config(&[]).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
