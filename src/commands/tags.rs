//! `tagstrap tags`: the merged tags, each with its origin and the origins
//! it overrides, from the pipeline's first stage alone.

use crate::error::Result;
use crate::pipeline::collect_tags;
use crate::settings::Settings;
use crate::util::text::print_line;

/// The merged tags, one a line, with where each came from and what it beat.
pub(super) async fn tags(settings: &Settings) -> Result<()> {
    let collected = collect_tags(settings).await?;
    if collected.tags.is_empty() {
        print_line(format_args!("no rs_agent: tags found"));
        return Ok(());
    }
    let width = collected
        .tags
        .entries()
        .map(|e| e.tag.key.len())
        .max()
        .unwrap_or(0);
    for entry in collected.tags.entries() {
        let mut line = format!(
            "{:width$}  = {}    ({})",
            entry.tag.key,
            entry.tag.shown_value(),
            entry.tag.origin
        );
        if !entry.overridden.is_empty() {
            let beaten: Vec<String> = entry.overridden.iter().map(ToString::to_string).collect();
            line.push_str(&format!(" overrides {}", beaten.join(", ")));
        }
        print_line(format_args!("{line}"));
    }
    Ok(())
}
