//! The instance's own identity as the GCE and Azure fakes serve it: whether
//! the instance has one (a GCE service account, an Azure managed identity),
//! the opaque access token the GCE fake hands out (which the Secret Manager
//! fake checks), and how the signed tokens are made (the key, an expired
//! token, another audience). The builder options here apply to both clouds;
//! each cloud file serves the endpoints in its own shape.

use serde_json::Value;

use super::{lock, FakeMetadata, FakeMetadataBuilder};
use crate::jwt::{now, SigningKey};

/// What the fake's instance identity is, and how its tokens come out.
#[derive(Clone, Debug)]
pub(super) struct Identity {
    /// A service account / system-assigned managed identity is attached.
    pub(super) attached: bool,
    /// The opaque OAuth access token (GCE); Azure's tokens are JWTs.
    pub(super) access_token: String,
    pub(super) key: SigningKey,
    /// Tokens were issued an hour ago and expired a minute ago.
    pub(super) expired: bool,
    /// Every signed token carries this `aud` instead of the one asked for.
    pub(super) audience: Option<String>,
    /// Azure: the client IDs of the user-assigned identities.
    pub(super) user_assigned: Vec<String>,
    /// Azure: the answers already given, by resource and client ID: IMDS
    /// caches a token and hands out the same one until it nears expiry.
    pub(super) issued: std::collections::BTreeMap<(String, String), Value>,
}

impl Identity {
    pub(super) fn new(access_token: String) -> Identity {
        Identity {
            attached: true,
            access_token,
            key: SigningKey::shared(),
            expired: false,
            audience: None,
            user_assigned: Vec::new(),
            issued: std::collections::BTreeMap::new(),
        }
    }

    /// `(iat, exp)` of a token issued now (or, [`Identity::expired`], an
    /// hour ago), valid for `lifetime` seconds.
    pub(super) fn times(&self, lifetime: u64) -> (u64, u64) {
        let iat = if self.expired {
            now() - lifetime - 60
        } else {
            now()
        };
        (iat, iat + lifetime)
    }

    /// The `aud` for a token asked for `asked`.
    pub(super) fn audience<'a>(&'a self, asked: &'a str) -> &'a str {
        self.audience.as_deref().unwrap_or(asked)
    }

    pub(super) fn sign(&self, claims: &Value) -> String {
        self.key.sign(claims)
    }
}

impl FakeMetadataBuilder {
    fn identity(&mut self, what: &str) -> &mut Identity {
        let cloud = self.cloud;
        match self.data.identity() {
            Some(identity) => identity,
            None => panic!("{what} is GCE and Azure only, not {}", cloud.name()),
        }
    }

    /// GCE: no service account (`404` under `service-accounts/`); Azure: no
    /// system-assigned managed identity (`400` "Identity not found").
    pub fn no_identity(mut self) -> Self {
        self.identity("no_identity").attached = false;
        self
    }

    /// Azure: a user-assigned managed identity with this client ID, asked
    /// for with `client_id=`.
    pub fn user_assigned_identity(mut self, client_id: &str) -> Self {
        self.identity("user_assigned_identity")
            .user_assigned
            .push(client_id.to_string());
        self
    }

    /// Signed tokens are already expired.
    pub fn expired_tokens(mut self) -> Self {
        self.identity("expired_tokens").expired = true;
        self
    }

    /// Sign with this key instead of [`SigningKey::shared`].
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.identity("signing_key").key = key;
        self
    }

    /// Signed tokens carry this audience, whatever was asked.
    pub fn token_audience(mut self, audience: &str) -> Self {
        self.identity("token_audience").audience = Some(audience.to_string());
        self
    }
}

impl FakeMetadata {
    fn with_identity<T>(&self, f: impl FnOnce(&Identity) -> T) -> T {
        let mut state = lock(&self.state);
        let cloud = self.cloud;
        match state.data.identity() {
            Some(identity) => f(identity),
            None => panic!("{} has no instance identity in this fake", cloud.name()),
        }
    }

    /// GCE: the access token the fake hands out (what the Secret Manager
    /// fake must be sent).
    pub fn access_token(&self) -> String {
        self.with_identity(|i| i.access_token.clone())
    }

    /// The key the fake signs tokens with.
    pub fn signing_key(&self) -> SigningKey {
        self.with_identity(|i| i.key.clone())
    }
}
