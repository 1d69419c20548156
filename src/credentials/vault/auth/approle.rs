//! The AppRole login: a role ID (an identifier) and a secret ID read from a
//! private file, the usual "secret zero" of a boot that has no cloud
//! identity to log in with.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::{login, shown_mount, LoggedIn, Login};
use crate::credentials::secret_file;
use crate::credentials::vault::client::VaultClient;
use crate::error::Result;

/// An AppRole login: the role ID is an identifier, the secret ID is the secret.
#[derive(Debug, Clone)]
pub struct AppRole {
    /// The auth method's mount, `approle` by default.
    pub mount: String,
    pub role_id: String,
    pub secret_id_file: PathBuf,
}

impl AppRole {
    pub(crate) fn describe(&self) -> String {
        format!(
            "the AppRole login at {} with the secret ID in {}",
            shown_mount(&self.mount),
            self.secret_id_file.display()
        )
    }

    pub(crate) async fn login(&self, client: &VaultClient, budget: Duration) -> Result<LoggedIn> {
        let secret_id = secret_file::read(
            &self.secret_id_file,
            "the AppRole secret-ID file",
            "deliver the secret ID to this file (mode 0600) before tagstrap runs",
        )?;
        let request = Login {
            method: "AppRole",
            kind: "approle",
            mount: &self.mount,
            body: serde_json::json!({
                "role_id": self.role_id,
                "secret_id": secret_id.expose_secret(),
            }),
            secrets: vec![secret_id.expose_secret(), &self.role_id],
            refused_fix: format!(
                "check the role ID, and that the secret ID in {} is current (secret IDs expire \
                 and may be used up)",
                self.secret_id_file.display()
            ),
        };
        login(client, budget, &request).await
    }
}
