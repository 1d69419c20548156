//! A directory of one file per secret: `cred:NAME` is the file `NAME` in it.
//! On a baked image this is systemd's `$CREDENTIALS_DIRECTORY`, which
//! `LoadCredential=NAME:/path` fills (the natural default there). Each file
//! must be private to its owner (see [`super::secret_file`]); one trailing
//! newline is dropped.

pub(crate) mod config;

use std::path::PathBuf;

use secrecy::SecretString;

use super::{secret_file, CredRef, CredentialStore};
use crate::error::Result;
use crate::util::BoxFuture;

#[derive(Debug, Clone)]
pub(crate) struct DirectoryStore {
    dir: PathBuf,
    /// Where the directory was named, e.g. `$CREDENTIALS_DIRECTORY`.
    from: String,
}

impl DirectoryStore {
    pub(crate) fn new(dir: PathBuf, from: String) -> DirectoryStore {
        DirectoryStore { dir, from }
    }
}

impl CredentialStore for DirectoryStore {
    fn describe(&self) -> String {
        format!(
            "the credentials directory {} (from {})",
            self.dir.display(),
            self.from
        )
    }

    fn get<'a>(&'a self, name: &'a CredRef) -> BoxFuture<'a, Result<SecretString>> {
        Box::pin(async move {
            let missing = format!(
                "put the secret in that file (mode 0600), or with systemd add \
                 LoadCredential={}:/path/to/secret to the unit",
                name.name()
            );
            secret_file::read(
                &self.dir.join(name.name()),
                &format!("credential {name}"),
                &missing,
            )
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn names_are_files_in_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("PROXY_PASS");
        std::fs::write(&path, "p@ss:/%w0rd\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        let store = DirectoryStore::new(dir.path().into(), "$CREDENTIALS_DIRECTORY".into());
        let name = CredRef::parse("cred:PROXY_PASS").unwrap().unwrap();
        assert_eq!(
            store.get(&name).await.unwrap().expose_secret(),
            "p@ss:/%w0rd"
        );

        let absent = CredRef::parse("cred:OTHER").unwrap().unwrap();
        let error = store.get(&absent).await.unwrap_err();
        assert_eq!(error.exit_code(), 66);
        assert!(error.message().contains("LoadCredential=OTHER:"));
        assert!(store.describe().contains("$CREDENTIALS_DIRECTORY"));
    }
}
