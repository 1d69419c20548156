//! Reading one secret from a file: a Vault token file, an AppRole secret-ID
//! file, a file of a credentials directory. The file must be private: one that
//! its group or others can read is refused (exit 77) before a byte is read, the
//! way `ssh` refuses a private key that others can read. One trailing newline
//! (`echo secret > file`) is dropped; anything else that is not printable is
//! refused (exit 65), since the value ends up in a header or a variable.
//! Only a regular file is opened ([`crate::util::fs::open_input`]): a FIFO
//! would block the boot.

use std::path::Path;

use secrecy::{SecretSlice, SecretString};

use crate::error::{Error, Result};
use crate::util::fs;
use crate::util::text::shown_path;

/// No secret tagstrap reads is anywhere near this; a larger file is the wrong file.
pub(crate) const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Reads a private file's bytes as they are (a PEM private key, several
/// lines): the same checks as [`read`], without the one-line text rule. The
/// bytes are zeroed when dropped.
pub(crate) fn read_bytes(path: &Path, what: &str, missing: &str) -> Result<SecretSlice<u8>> {
    Ok(SecretSlice::from(read_private(path, what, missing)?))
}

/// Reads the secret in `path`. `what` names it in messages ("the token file",
/// "credential cred:PROXY_PASS"); `missing` is the advice when there is no
/// such file. Messages name the file, never its content.
pub(crate) fn read(path: &Path, what: &str, missing: &str) -> Result<SecretString> {
    let shown = shown_path(path);
    let bytes = read_private(path, what, missing)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Input(format!("{what}: {shown} is not UTF-8 text")))?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    super::check_secret(
        value,
        &format!("{what}: {shown}"),
        "write the secret alone on one line (one trailing newline is fine)",
    )?;
    Ok(SecretString::from(value.to_string()))
}

/// The private file's content, read only once it is known to be private.
fn read_private(path: &Path, what: &str, missing: &str) -> Result<Vec<u8>> {
    let shown = shown_path(path);
    let file = fs::open_input(path).map_err(|e| match e {
        e if e.is_not_found() => {
            Error::NotFound(format!("{what}: {shown} does not exist: {missing}"))
        }
        e if e.is_permission_denied() => Error::Refused(format!(
            "{what}: {shown} cannot be read (permission denied): run tagstrap as the file's owner"
        )),
        e if e.is_directory() => Error::NotFound(format!(
            "{what}: {shown} is a directory, not a file holding a secret: {missing}"
        )),
        fs::InputError::NotRegular(file_type) => Error::Input(format!(
            "{what}: {shown} is {}, not a regular file: tagstrap reads a secret only from a \
             regular file (a FIFO or device could block the boot); {missing}",
            fs::kind_of(&file_type)
        )),
        e => Error::Input(format!("{what}: cannot read {shown}: {e}")),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::Input(format!("{what}: cannot read {shown}: {e}")))?;
    check_private(&meta, path, what)?;
    let bytes = fs::read_bounded(file, MAX_SECRET_BYTES)
        .map_err(|e| Error::Input(format!("{what}: cannot read {shown}: {e}")))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(Error::Input(format!(
            "{what}: {shown} is larger than {MAX_SECRET_BYTES} bytes, too large for a secret: is it \
             the right file?"
        )));
    }
    Ok(bytes)
}

#[cfg(unix)]
fn check_private(meta: &std::fs::Metadata, path: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Refused(format!(
            "{what}: {} has mode {mode:04o}, so its group or others can read it; tagstrap does not \
             use a secret others can read: chmod 600 {} (and rotate the secret if others did read it)",
            shown_path(path),
            shown_path(path)
        )));
    }
    Ok(())
}

/// Windows has ACLs, not mode bits; the file's ACL is the operator's to set.
#[cfg(not(unix))]
fn check_private(_meta: &std::fs::Metadata, _path: &Path, _what: &str) -> Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    fn file_with(content: &[u8], mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn a_private_file_is_read_without_its_trailing_newline() {
        for (content, mode) in [
            (&b"s3cr3t"[..], 0o600),
            (b"s3cr3t\n", 0o400),
            (b"s3cr3t\r\n", 0o600),
        ] {
            let (_dir, path) = file_with(content, mode);
            let secret = read(&path, "the token file", "create it").unwrap();
            assert_eq!(secret.expose_secret(), "s3cr3t");
        }
    }

    #[test]
    fn a_file_others_or_the_group_can_read_is_refused_unread() {
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606] {
            let (_dir, path) = file_with(b"s3cr3t", mode);
            let error = read(&path, "the token file", "create it").unwrap_err();
            assert_eq!(error.exit_code(), 77, "{mode:o}");
            assert!(error.message().contains(&format!("{mode:04o}")));
            assert!(error.message().contains("chmod 600"));
            assert!(!error.message().contains("s3cr3t"));
        }
    }

    #[test]
    fn bad_content_is_refused_without_echoing_it() {
        for (content, needle) in [
            (&b""[..], "empty"),
            (b"\n", "empty"),
            (b"s3cr3t\n\n", "control character"),
            (b"s3c\tr3t", "control character"),
            (b"s3cr3t\0", "control character"),
            (b"\xff\xfe", "not UTF-8"),
        ] {
            let (_dir, path) = file_with(content, 0o600);
            let error = read(&path, "the token file", "create it").unwrap_err();
            assert_eq!(error.exit_code(), 65, "{content:?}");
            assert!(error.message().contains(needle), "{}", error.message());
            assert!(!error.message().contains("s3c"), "{}", error.message());
        }
        let (_dir, path) = file_with(&vec![b'a'; MAX_SECRET_BYTES as usize + 1], 0o600);
        assert_eq!(read(&path, "t", "m").unwrap_err().exit_code(), 65);
    }

    #[test]
    fn a_missing_file_or_a_directory_is_not_found_with_the_advice() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read(&dir.path().join("nope"), "credential cred:X", "add it").unwrap_err();
        assert_eq!(missing.exit_code(), 66);
        assert!(missing.message().contains("does not exist: add it"));
        let directory = read(dir.path(), "credential cred:X", "add it").unwrap_err();
        assert_eq!(directory.exit_code(), 66);
        assert!(directory.message().contains("is a directory"));
    }
}
