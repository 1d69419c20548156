//! Which cloud this instance runs on, from its DMI (SMBIOS) strings alone, as
//! cloud-init's `ds-identify` does: no network probe, so a machine on no
//! cloud (or on one without a source) pays nothing at boot. The strings are
//! read from `/sys/class/dmi/id` (or the directory `TAGSTRAP_DMI_DIR` names,
//! for tests); a missing or unreadable file is an empty string.

use std::path::Path;

use super::instance::Cloud;

/// The default DMI directory on Linux.
pub(crate) const DMI_DIR: &str = "/sys/class/dmi/id";

/// The DMI strings detection looks at, trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dmi {
    pub(crate) sys_vendor: String,
    pub(crate) product_name: String,
    pub(crate) product_version: String,
    pub(crate) product_uuid: String,
    pub(crate) bios_vendor: String,
    pub(crate) chassis_asset_tag: String,
}

impl Dmi {
    pub(crate) fn read(dir: &Path) -> Dmi {
        let field = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Dmi {
            sys_vendor: field("sys_vendor"),
            product_name: field("product_name"),
            product_version: field("product_version"),
            product_uuid: field("product_uuid"),
            bios_vendor: field("bios_vendor"),
            chassis_asset_tag: field("chassis_asset_tag"),
        }
    }
}

/// The cloud, and the DMI evidence for it (for the log line): the first
/// cloud whose rule, in its own folder (`instance/<cloud>/mod.rs`,
/// `recognise`), knows these strings. The rules are disjoint: each looks for
/// its own vendor's names.
pub(crate) fn detect(dmi: &Dmi) -> Option<(Cloud, String)> {
    Cloud::ALL
        .iter()
        .find_map(|cloud| cloud.recognise(dmi).map(|evidence| (*cloud, evidence)))
}

/// ASCII-case-insensitive equality, as the rules compare DMI strings.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmi(pairs: &[(&str, &str)]) -> Dmi {
        let dir = tempfile::tempdir().unwrap();
        for (name, value) in pairs {
            std::fs::write(dir.path().join(name), format!("{value}\n")).unwrap();
        }
        Dmi::read(dir.path())
    }

    fn cloud(pairs: &[(&str, &str)]) -> Option<Cloud> {
        detect(&dmi(pairs)).map(|(c, _)| c)
    }

    #[test]
    fn each_cloud_is_recognised_from_what_its_machines_report() {
        let cases: [(&[(&str, &str)], Cloud); 9] = [
            (
                &[("sys_vendor", "Amazon EC2"), ("product_name", "m6i.large")],
                Cloud::Aws,
            ),
            (&[("bios_vendor", "Amazon EC2")], Cloud::Aws),
            (
                &[("sys_vendor", "Xen"), ("product_version", "4.11.amazon")],
                Cloud::Aws,
            ),
            (
                &[("product_uuid", "EC2E1916-9099-7CAF-FD21-012345ABCDEF")],
                Cloud::Aws,
            ),
            (
                &[
                    ("sys_vendor", "Google"),
                    ("product_name", "Google Compute Engine"),
                ],
                Cloud::Gce,
            ),
            (
                &[
                    ("sys_vendor", "Microsoft Corporation"),
                    ("product_name", "Virtual Machine"),
                    ("chassis_asset_tag", "7783-7084-3265-9085-8269-3286-77"),
                ],
                Cloud::Azure,
            ),
            (
                &[
                    ("sys_vendor", "OpenStack Foundation"),
                    ("product_name", "OpenStack Nova"),
                ],
                Cloud::OpenStack,
            ),
            (&[("product_name", "OpenStack Compute")], Cloud::OpenStack),
            (
                &[("chassis_asset_tag", "OpenTelekomCloud")],
                Cloud::OpenStack,
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(cloud(pairs), Some(expected), "{pairs:?}");
        }
    }

    #[test]
    fn other_machines_and_missing_files_are_no_cloud() {
        assert_eq!(cloud(&[]), None);
        assert_eq!(
            cloud(&[
                ("sys_vendor", "QEMU"),
                ("product_name", "Standard PC (Q35 + ICH9, 2009)"),
                ("chassis_asset_tag", "7783-7084"),
            ]),
            None
        );
        assert_eq!(
            cloud(&[
                ("sys_vendor", "Microsoft Corporation"),
                ("product_name", "Virtual Machine")
            ]),
            None,
            "Hyper-V without Azure's asset tag is not Azure"
        );
        assert_eq!(Dmi::read(Path::new("/nonexistent")), Dmi::default());
    }
}
