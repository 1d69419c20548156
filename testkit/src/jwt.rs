//! RS256 JSON Web Tokens for the metadata fakes: an RSA key made for the
//! test (`openssl genpkey`, as the real clouds' keys are RSA 2048), its
//! public key as PEM (what OpenBao's `jwt_validation_pubkeys` takes), and
//! signing and checking with `ring`. GCE's identity tokens and Azure's
//! managed identity tokens are such JWTs; the store fakes check the tokens
//! they are sent with [`SigningKey::verify`].

use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, RsaKeyPair, UnparsedPublicKey};
use serde_json::{json, Value};

/// An RSA signing key and its public half. Cheap to clone.
#[derive(Clone)]
pub struct SigningKey {
    pair: Arc<RsaKeyPair>,
    public_pem: Arc<String>,
    kid: Arc<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit key (about a second of `openssl`).
    pub fn generate() -> SigningKey {
        let dir = tempfile::tempdir().expect("tempdir");
        let der = dir.path().join("key.der");
        let status = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .args(["-outform", "DER", "-out"])
            .arg(&der)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl genpkey (apt-get install openssl)");
        assert!(status.success(), "openssl genpkey failed");
        let out = Command::new("openssl")
            .args(["pkey", "-inform", "DER", "-pubout", "-in"])
            .arg(&der)
            .output()
            .expect("run openssl pkey");
        assert!(out.status.success(), "openssl pkey -pubout failed");
        let der_key = std::fs::read(&der).expect("read the key");
        // OpenSSL 3 writes an RSA key in DER as PKCS#1 RSAPrivateKey.
        let pair = RsaKeyPair::from_der(&der_key).expect("a PKCS#1 RSA key");
        let digest = ring::digest::digest(&ring::digest::SHA256, &der_key);
        let kid: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        SigningKey {
            pair: Arc::new(pair),
            public_pem: Arc::new(String::from_utf8(out.stdout).expect("PEM is text")),
            kid: Arc::new(kid),
        }
    }

    /// The key every fake signs with unless told otherwise: one per test
    /// process, made on first use.
    pub fn shared() -> SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(SigningKey::generate).clone()
    }

    /// The public key, `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The key ID put in each token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `header.claims.signature`, RS256.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": "RS256", "kid": *self.kid, "typ": "JWT" });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The claims of `jwt` if it is an RS256 token signed by this key;
    /// `None` otherwise. Expiry and audience are the caller's to check.
    pub fn verify(&self, jwt: &str) -> Option<Value> {
        let mut parts = jwt.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        if header["alg"] != "RS256" {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
        let key = UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.pair.public().as_ref(),
        );
        key.verify(format!("{h}.{c}").as_bytes(), &sig).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()
    }
}

/// Seconds since the epoch, for `iat`, `nbf` and `exp`.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The claims of a JWT, signature unchecked (for assertions on what a
/// client was given).
pub fn claims(jwt: &str) -> Option<Value> {
    let c = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_with_their_key_only() {
        let key = SigningKey::shared();
        let jwt = key.sign(&json!({ "aud": "a", "exp": now() + 60 }));
        assert_eq!(key.verify(&jwt).unwrap()["aud"], "a");
        assert_eq!(claims(&jwt).unwrap()["aud"], "a");
        assert!(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        let other = SigningKey::generate();
        assert!(other.verify(&jwt).is_none());
        let mut forged = jwt.clone();
        forged.insert(jwt.find('.').unwrap() + 2, 'x');
        assert!(key.verify(&forged).is_none());
    }
}
