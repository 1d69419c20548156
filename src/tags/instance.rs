//! The instance's own tags, from the cloud's metadata service (SPEC §1,
//! layer 2). Each cloud is one [`InstanceSource`] implementation in its own
//! file; [`select`] picks one from `--source`.
//!
//! `auto` detects the cloud from DMI ([`super::detect`]). This build has no
//! cloud sources yet: a detected cloud is named in a warning and tagstrap
//! reads only files and flags; naming a cloud is refused with that said.

use url::Url;

use super::Tag;
use crate::cli::SourceChoice;
use crate::error::{Error, Result};
use crate::BoxFuture;

/// What a metadata service says about this instance.
#[derive(Debug, Clone, Default)]
pub struct InstanceData {
    pub instance_id: Option<String>,
    pub tags: Vec<Tag>,
}

/// One cloud's metadata service.
pub trait InstanceSource: Send + Sync {
    /// "aws", "gce", …: shown in tag origins and the report.
    fn name(&self) -> &'static str;

    /// Reads the instance ID and the tags, retrying until the deadline.
    fn fetch(&self) -> BoxFuture<'_, Result<InstanceData>>;
}

/// The source `--source` asks for, or `None` when only files and flags apply.
pub fn select(
    choice: SourceChoice,
    _endpoint: Option<&Url>,
    dmi_dir: &std::path::Path,
) -> Result<Option<Box<dyn InstanceSource>>> {
    match choice {
        SourceChoice::None => Ok(None),
        SourceChoice::Auto => {
            match super::detect::detect(&super::detect::Dmi::read(dmi_dir)) {
                None => tracing::info!(
                    "no cloud detected from DMI ({}); using tags files and --tag only",
                    dmi_dir.display()
                ),
                Some((cloud, evidence)) => tracing::warn!(
                    "detected {cloud} from DMI ({evidence}), but this build cannot read its                      instance tags yet; using tags files and --tag only"
                ),
            }
            Ok(None)
        }
        named => Err(Error::Usage(format!(
            "--source {}: this build of tagstrap cannot read instance tags from that cloud yet; use \
             --source none with a tags file or --tag",
            named.name()
        ))),
    }
}
