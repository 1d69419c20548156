//! A throw-away test certificate authority.
//!
//! [`TestCa::new`] creates a fresh self-signed CA (ECDSA P-256, via rcgen with
//! the `ring` backend) and one leaf certificate for `127.0.0.1`–`127.0.0.3`, `localhost`
//! and `::1` signed by it. [`TestCa::issue`] makes more leaves, for other
//! names (a certificate that does not fit the host), and
//! [`TestCa::issue_expired`] / [`TestCa::issue_not_yet_valid`] leaves whose
//! validity is over or has not begun (a host's lapsed certificate, or an
//! instance whose clock is wrong at boot). Both are written as PEM files into the CA's own
//! temp dir (mode 0755, files 0644, so a Squid that dropped privileges to the
//! `proxy` user could read them too; the key is a test key, it protects
//! nothing). The temp dir is removed when the `TestCa` is dropped, so keep it
//! alive as long as a process uses its files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::util;

static CA_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A test CA plus one leaf certificate for the loopback names.
pub struct TestCa {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    ca_pem_path: PathBuf,
    leaf_der: CertificateDer<'static>,
    leaf_key_der: Vec<u8>,
    leaf_cert_path: PathBuf,
    leaf_key_path: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_pem_path", &self.ca_pem_path)
            .finish_non_exhaustive()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A certificate and its private key, in PEM and DER.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key_der: Vec<u8>,
}

impl TestCa {
    /// A new self-signed CA; its certificate is written to [`Self::ca_pem_path`].
    pub fn new() -> TestCa {
        let n = CA_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::Builder::new()
            .prefix("testkit-ca-")
            .tempdir()
            .expect("create CA temp dir");
        util::chmod(dir.path(), 0o755);

        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("testkit CA {} #{n}", std::process::id()),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "tagstrap testkit");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2099, 12, 31);
        let key = KeyPair::generate().expect("generate CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        let ca_pem = cert.pem();
        let ca_der = cert.der().clone();
        let issuer = Issuer::new(params, key);

        let ca_pem_path = dir.path().join("ca.pem");
        util::write_file(&ca_pem_path, ca_pem.as_bytes(), 0o644);

        let mut ca = TestCa {
            leaf_cert_path: dir.path().join("leaf.pem"),
            leaf_key_path: dir.path().join("leaf.key"),
            dir,
            issuer,
            ca_der,
            ca_pem,
            ca_pem_path,
            leaf_der: CertificateDer::from(Vec::new()),
            leaf_key_der: Vec::new(),
        };
        let leaf = ca.issue(&["127.0.0.1", "127.0.0.2", "127.0.0.3", "localhost", "::1"]);
        util::write_file(&ca.leaf_cert_path, leaf.cert_pem.as_bytes(), 0o644);
        util::write_file(&ca.leaf_key_path, leaf.key_pem.as_bytes(), 0o644);
        ca.leaf_der = leaf.cert_der;
        ca.leaf_key_der = leaf.key_der;
        ca
    }

    /// PEM file of the CA certificate (for `--ca-file`, `curl --cacert`, ...).
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate as DER.
    pub fn ca_cert_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// The CA's temp dir (holds `ca.pem`, `leaf.pem`, `leaf.key`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issue a new server leaf for `names` (DNS names or IP literals),
    /// signed by this CA. Not written to disk.
    pub fn issue(&self, names: &[&str]) -> IssuedCert {
        self.issue_between(names, (2000, 1, 1), (2099, 12, 31))
    }

    /// Like [`Self::issue`], but valid only during 2001: long expired.
    pub fn issue_expired(&self, names: &[&str]) -> IssuedCert {
        self.issue_between(names, (2001, 1, 1), (2001, 12, 31))
    }

    /// Like [`Self::issue`], but valid only from 2090: not valid yet.
    pub fn issue_not_yet_valid(&self, names: &[&str]) -> IssuedCert {
        self.issue_between(names, (2090, 1, 1), (2099, 12, 31))
    }

    /// A TLS client certificate (extended key usage clientAuth) with
    /// subject `CN=common_name`, e.g. for Vault's `cert` login; `expired`:
    /// valid only during 2001.
    pub fn issue_client(&self, common_name: &str, expired: bool) -> IssuedCert {
        let (from, to) = match expired {
            true => ((2001, 1, 1), (2001, 12, 31)),
            false => ((2000, 1, 1), (2099, 12, 31)),
        };
        self.issue_for(
            &[common_name],
            from,
            to,
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// A leaf for `names` valid from the start of `not_before` to the start
    /// of `not_after` (year, month, day, UTC).
    fn issue_between(
        &self,
        names: &[&str],
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> IssuedCert {
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        self.issue_for(names, not_before, not_after, server)
    }

    fn issue_for(
        &self,
        names: &[&str],
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
        usage: ExtendedKeyUsagePurpose,
    ) -> IssuedCert {
        let sans: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("testkit leaf"),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        params.not_before = date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A rustls server config presenting the loopback leaf (chain: leaf, CA),
    /// ALPN `http/1.1`, ring provider (no process-global provider needed).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::new(server_config_for(
            vec![self.leaf_der.clone(), self.ca_der.clone()],
            self.leaf_key_der.clone(),
        ))
    }

    /// A rustls server config for a leaf from [`Self::issue`].
    pub fn server_config_for_cert(&self, cert: &IssuedCert) -> Arc<rustls::ServerConfig> {
        Arc::new(server_config_for(
            vec![cert.cert_der.clone(), self.ca_der.clone()],
            cert.key_der.clone(),
        ))
    }

    /// A rustls client config that trusts only this CA (ring provider,
    /// ALPN `http/1.1`). Handy for tests that talk to an [`crate::Origin`].
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("add CA root");
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    /// The loopback leaf written as PEM files: `(cert_path, key_path)`
    /// (for Squid's `https_port ... tls-cert= tls-key=`). The cert file holds
    /// the leaf only; the key is PKCS#8.
    pub fn leaf_cert_and_key_pem(&self) -> (PathBuf, PathBuf) {
        (self.leaf_cert_path.clone(), self.leaf_key_path.clone())
    }
}

fn server_config_for(
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
) -> rustls::ServerConfig {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der));
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server cert");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg
}
