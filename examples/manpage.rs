//! Writes tagstrap's man page (`tagstrap.1`) and its bash and zsh
//! completions (`tagstrap.bash`, `_tagstrap`) into the directory given as the
//! only argument: `cargo run --example manpage -- DIR` (.ci/release does).
//!
//! All three come from the clap definition the binary parses with
//! (`tagstrap::cli::command()`, each flag's help already carrying its
//! default, variable and config key), so they cannot drift from `--help`;
//! tests/packages.rs checks the page names every subcommand and flag. An
//! example rather than a `build.rs` or a subcommand: clap_mangen and
//! clap_complete are dev-dependencies, so the shipped binary neither links
//! nor depends on them (docs/dependencies.md).
//!
//! One page for the whole program, as `man tagstrap` finds it: clap_mangen
//! renders one command per page and would point at `tagstrap-run(1)` pages
//! nobody installs, so each subcommand gets its own section here instead
//! (its description, then its flags under "TAGSTRAP RUN OPTIONS" …).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use clap_mangen::Man;
use roff::{roman, Roff};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next().map(PathBuf::from), args.next()) else {
        eprintln!("usage: cargo run --example manpage -- DIR");
        std::process::exit(64);
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let command = tagstrap::cli::command();
    write(&dir.join("tagstrap.1"), &man_page(command.clone()));
    for (shell, name) in [(Shell::Bash, "tagstrap.bash"), (Shell::Zsh, "_tagstrap")] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut command.clone(), "tagstrap", &mut text);
        write(&dir.join(name), &text);
    }
}

/// The page: clap_mangen's title, name, synopsis and description of the
/// program, the subcommand list, one section per subcommand, the exit codes.
fn man_page(mut command: clap::Command) -> Vec<u8> {
    // Built first, so each subcommand already has its `--help` flag when its
    // flags get their heading below.
    command.build();
    let mut page = Vec::new();
    let man = Man::new(command.clone());
    man.render_title(&mut page).unwrap();
    man.render_name_section(&mut page).unwrap();
    man.render_synopsis_section(&mut page).unwrap();
    man.render_description_section(&mut page).unwrap();
    man.render_options_section(&mut page).unwrap();

    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    for sub in command.get_subcommands() {
        roff.control("TP", [])
            .text([roman(format!("tagstrap {}", sub.get_name()))]);
        if let Some(about) = sub.get_about() {
            roff.text([roman(about.to_string())]);
        }
    }
    roff.to_writer(&mut page).unwrap();

    for sub in command.get_subcommands() {
        let title = format!("tagstrap {}", sub.get_name());
        let mut roff = Roff::new();
        roff.control("SH", [title.to_uppercase().as_str()]);
        paragraphs(&mut roff, sub.get_long_about().or(sub.get_about()));
        roff.to_writer(&mut page).unwrap();
        // Every flag under one heading, so clap_mangen titles the list with
        // the subcommand's name rather than a second "OPTIONS". Leaked: clap
        // takes a `&'static str` heading without its `string` feature, and
        // this program writes four of them and exits.
        let heading: &'static str = format!("{title} options").leak();
        let sub = sub.clone().mut_args(|arg| arg.help_heading(heading));
        Man::new(sub).render_options_section(&mut page).unwrap();
    }

    // The exit codes and examples: the text `--help` prints after the flags,
    // unfilled, as it is laid out there.
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]).control("nf", []);
    let after = command.get_after_long_help().map(ToString::to_string);
    for line in after.unwrap_or_default().lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    roff.to_writer(&mut page).unwrap();
    man.render_version_section(&mut page).unwrap();
    page
}

/// Clap's help text as roff paragraphs: a blank line starts a new one.
fn paragraphs(roff: &mut Roff, text: Option<&clap::builder::StyledStr>) {
    for line in text.map(ToString::to_string).unwrap_or_default().lines() {
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else {
            roff.text([roman(line)]);
        }
    }
}

fn write(path: &Path, text: &[u8]) {
    let mut file =
        std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    file.write_all(text)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
