//! Imports go one way, down the pipeline (docs/design.md, "Layers"): every
//! `crate::…` path in `src/` (outside the unit tests at the end of a file)
//! must name a module of the same layer or one below the file's own. The
//! layers are declared here, bottom first; a module is in the layer of the
//! longest prefix declared for it. A new import against the order fails
//! this test with the file, the line and the two layers.

use std::path::{Path, PathBuf};

/// Bottom first. A file may import its own layer and those before it.
const LAYERS: &[(&str, &[&str])] = &[
    ("errors", &["error"]),
    ("toolkit", &["util", "net"]),
    (
        "pure parsers",
        &["proxy::url", "proxy::no_proxy", "credentials::reference"],
    ),
    ("signals", &["stop"]),
    ("state directory", &["state", "lock"]),
    ("tags", &["tags"]),
    ("credentials", &["credentials"]),
    ("settings", &["settings", "cli"]),
    ("proxy environment", &["proxy"]),
    ("download", &["fetch"]),
    ("run and report", &["run", "report"]),
    ("pipeline", &["pipeline"]),
    ("logging", &["logging"]),
    ("commands", &["commands"]),
    ("entry point", &["main", ""]),
];

/// The module path of a file under `src/`: `src/a/b.rs` and `src/a/b/mod.rs`
/// are `a::b`; `src/lib.rs` is the crate root.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The layer of a module: that of its longest declared prefix, or `None`
/// for a module not in the declared layers (above all of them).
fn layer_of(module: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (index, (_, prefixes)) in LAYERS.iter().enumerate() {
        for prefix in *prefixes {
            let matches = module == *prefix || module.starts_with(&format!("{prefix}::"));
            if matches && best.is_none_or(|(len, _)| prefix.len() > len) {
                best = Some((prefix.len(), index));
            }
        }
    }
    best.map(|(_, index)| index)
}

/// Every path named after `crate::` in `text`, with its line: `crate::a::b`,
/// and each path of a group (`crate::{a::b, c::{d, e}}`), each as `a::b`;
/// and every `super::` path of `module`'s file, resolved (`is_dir_module`:
/// the file is a `mod.rs`, whose `super` is its folder's parent).
fn crate_paths(text: &str, module: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (marker, base) in [("crate::", String::new()), ("super::", parent(module))] {
        let mut offset = 0;
        while let Some(at) = text[offset..].find(marker) {
            let begin = offset + at;
            offset = begin + marker.len();
            let preceded = text[..begin]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            if preceded {
                continue; // `super::super::`, or part of a longer name
            }
            let mut base = base.clone();
            let mut start = offset;
            while let Some(more) = text[start..].strip_prefix("super::") {
                base = parent(&base);
                start = text.len() - more.len();
            }
            let line = text[..start].matches('\n').count() + 1;
            let mut paths = Vec::new();
            expand(&text[start..], base, &mut paths);
            found.extend(paths.into_iter().map(|p| (line, p)));
        }
    }
    found
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map(|(p, _)| p.to_string())
        .unwrap_or_default()
}

/// Reads one path (or group) at the start of `text`, prefixed by `prefix`.
fn expand(text: &str, prefix: String, out: &mut Vec<String>) {
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0;
        let mut item_start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(group[item_start..i].trim_start(), prefix.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(group[item_start..i].trim_start(), prefix.clone(), out);
                    item_start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let ident_end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let ident = &text[..ident_end];
    if ident.is_empty() || ident == "self" {
        if !prefix.is_empty() {
            out.push(prefix);
        }
        return;
    }
    let path = if prefix.is_empty() {
        ident.to_string()
    } else {
        format!("{prefix}::{ident}")
    };
    match text[ident_end..].strip_prefix("::") {
        Some(more) => expand(more, path, out),
        None => out.push(path),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether the file is a module of unit tests: its parent declares it
/// behind `#[cfg(test)]` (`mock_tests.rs`, a folder's `tests.rs`).
fn is_test_file(file: &Path) -> bool {
    let name = file.file_stem().unwrap().to_string_lossy();
    if name == "mod" || name == "lib" || name == "main" {
        return false;
    }
    let dir = file.parent().unwrap();
    let parents = [
        dir.join("mod.rs"),
        dir.join("lib.rs"),
        dir.with_extension("rs"),
    ];
    let declared = format!("#[cfg(test)]\nmod {name};");
    parents
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .any(|text| text.contains(&declared))
}

/// The file's code without its unit tests (everything from the
/// `#[cfg(test)]` that opens the trailing inline `mod tests {` on) and without
/// comments (a doc link is no import), lines kept for the messages.
fn production_part(text: &str) -> String {
    // An inline `mod tests {`, not a `mod mock_tests;` declared in the
    // middle of the file (its file is skipped whole, `is_test_file`).
    let marker = "\n#[cfg(test)]\nmod ";
    let inline = text.match_indices(marker).find(|(at, _)| {
        let rest = &text[at + marker.len()..];
        let ident = rest.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_');
        ident.starts_with(" {")
    });
    let code = match inline {
        Some((at, _)) => &text[..at],
        None => text,
    };
    code.lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn imports_go_only_down_the_declared_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut read = 0;
    let mut against = Vec::new();
    for file in &files {
        if is_test_file(file) {
            continue;
        }
        let module = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let paths = crate_paths(&production_part(&text), &module);
        read += paths.len();
        let Some(own) = layer_of(&module) else {
            against.push(format!(
                "{}: the module {module} is in no declared layer: add it to LAYERS",
                file.strip_prefix(&src).unwrap().display()
            ));
            continue;
        };
        for (line, path) in paths {
            let target = layer_of(&path);
            if target.is_none_or(|t| t > own) {
                against.push(format!(
                    "{}:{line}: {module} ({}) imports crate::{path} ({})",
                    file.strip_prefix(&src).unwrap().display(),
                    LAYERS[own].0,
                    target.map_or("above every declared layer", |t| LAYERS[t].0)
                ));
            }
        }
    }
    assert!(read > 300, "only {read} imports read: is the parser right?");
    assert!(
        against.is_empty(),
        "{} imports against the layers:\n{}",
        against.len(),
        against.join("\n")
    );
}

#[test]
fn the_import_reader_sees_groups_and_paths() {
    let text = "use crate::a::{b, c::{d, e}};\nlet x = crate::f::g(1);\nuse crate::{self as h, i};";
    let paths: Vec<String> = crate_paths(text, "m").into_iter().map(|(_, p)| p).collect();
    assert_eq!(paths, ["a::b", "a::c::d", "a::c::e", "f::g", "i"]);
    let text = "use super::{x, y::z};\nsuper::super::w();\nself::v();";
    let paths: Vec<String> = crate_paths(text, "a::b::c")
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(paths, ["a::b::x", "a::b::y::z", "a::w"]);
    assert_eq!(layer_of("net::retry"), Some(1));
    assert_eq!(layer_of("proxy::no_proxy"), Some(2));
    assert_eq!(
        layer_of("proxy").map(|l| LAYERS[l].0),
        Some("proxy environment")
    );
    assert_eq!(layer_of("credentials::reference::CredRef"), Some(2));
}
