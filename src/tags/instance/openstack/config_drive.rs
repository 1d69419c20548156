//! The OpenStack config drive: a small filesystem (vfat or iso9660) labelled
//! `config-2`, holding the same `openstack/latest/meta_data.json` as the
//! metadata service. It is found by its label, mounted read-only on a
//! private directory for the time of one read, and unmounted again, as
//! cloud-init does. Mounting needs root; an operator who cannot give tagstrap
//! that mounts the drive and passes `--metadata-endpoint file:///mount/point`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::util::text::{shown, shown_path};

/// The labels Nova gives a config drive (vfat labels read back upper case).
pub(crate) const LABELS: [&str; 2] = ["config-2", "CONFIG-2"];
const BY_LABEL: &str = "/dev/disk/by-label";

/// The config drive's device, if this instance has one: udev's by-label
/// link, else what `blkid` finds (early at boot, before udev made links).
pub(crate) fn find() -> Option<PathBuf> {
    for label in LABELS {
        let link = Path::new(BY_LABEL).join(label);
        if link.exists() {
            return Some(link);
        }
    }
    for label in LABELS {
        let output = std::process::Command::new("blkid")
            .args(["-l", "-o", "device", "-t"])
            .arg(format!("LABEL={label}"))
            .output()
            .ok()?;
        if let Some(device) = first_device(&String::from_utf8_lossy(&output.stdout)) {
            return Some(device);
        }
    }
    None
}

/// The first device path in `blkid -o device` output.
fn first_device(output: &str) -> Option<PathBuf> {
    output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with('/'))
        .map(PathBuf::from)
}

/// Mounts `device` read-only on a fresh private directory, gives its root to
/// `read`, and unmounts it again whatever `read` returned.
pub(crate) async fn read<T>(
    device: &Path,
    read: impl FnOnce(&Path, &str) -> Result<T>,
) -> Result<T> {
    let shown = format!("the config drive {}", shown_path(device));
    let mount_point = std::env::temp_dir().join(format!(
        "tagstrap-config-drive-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    // New, never one found at the name: someone could have made it his.
    crate::util::fs::create_dir_new(&mount_point).map_err(|e| {
        Error::CantCreate(format!(
            "cannot create the mount point {}: {e}",
            crate::util::text::shown_path(&mount_point)
        ))
    })?;
    let mounted = run(
        "mount",
        &[
            "-o".as_ref(),
            "ro,nosuid,nodev,noexec".as_ref(),
            device.as_os_str(),
            mount_point.as_os_str(),
        ],
    )
    .await;
    let result = match mounted {
        Err(why) => Err(Error::Unavailable(format!(
            "cannot mount {shown}: {why}. tagstrap must run as root to mount it; or mount it \
             yourself and pass --metadata-endpoint file:///the/mount/point"
        ))),
        Ok(()) => {
            tracing::debug!("mounted {shown} on {}", shown_path(&mount_point));
            let result = read(&mount_point, &shown);
            if let Err(why) = run("umount", &[mount_point.as_os_str()]).await {
                tracing::warn!(
                    "could not unmount {shown} from {}: {why}",
                    shown_path(&mount_point)
                );
            }
            result
        }
    };
    let _ = std::fs::remove_dir(&mount_point);
    result
}

/// Runs a system command; its first line of stderr on failure, shown as
/// outside text (it may quote a device's label or a path).
async fn run(program: &str, args: &[&std::ffi::OsStr]) -> std::result::Result<(), String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    Err(match first {
        Some(line) => format!("{program} failed: {}", shown(line)),
        None => format!("{program} failed ({})", output.status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_device_blkid_prints_is_taken() {
        assert_eq!(first_device(""), None);
        assert_eq!(
            first_device("/dev/sr0\n/dev/vdb\n"),
            Some(PathBuf::from("/dev/sr0"))
        );
        assert_eq!(
            first_device("  \n/dev/vdb"),
            Some(PathBuf::from("/dev/vdb"))
        );
    }
}
