//! What ships, checked as built by .ci/release (`testkit::artifacts`): the
//! .deb and .rpm for both architectures (lintian, their file lists and
//! modes, conffiles, requirements, an install into an empty rpm root, and
//! upgrades that keep the operator's config: to the same package, and to a
//! release 2 rebuilt here whose config changed, which rpm leaves as
//! `.rpmnew`), the man page against `--help`,
//! and the completions loaded by bash and zsh.
//!
//! The .deb's upgrade-keeps-the-conffile case needs a real dpkg database in
//! a real tree (`dpkg --root` into a bare directory is not usable): it is
//! tests/systemd.rs's, which installs the .deb in a booted bookworm tree.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::artifacts;

const DEB_ARCHES: [&str; 2] = ["amd64", "arm64"];
const RPM_ARCHES: [&str; 2] = ["x86_64", "aarch64"];
const CONFFILES: [&str; 2] = ["/etc/tagstrap/config.toml", "/etc/tagstrap/tags"];
/// ELF `e_machine` of each architecture's binary.
const MACHINES: [(&str, u16); 4] = [
    ("amd64", 62),
    ("x86_64", 62),
    ("arm64", 183),
    ("aarch64", 183),
];

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs a tool CI installs; fails naming .ci/install when it is missing.
fn tool(program: &str, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program}: {e}: it is installed by .ci/install (Debian's package of that name)")
        })
}

fn ok(program: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = tool(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new(&$a)),*] };
}

/// Every file either package installs, with its mode, but the per-format
/// ones: the binary, the unit, the two conffiles, the man page, the bash
/// completion, and the docs (README, docs/*.md, the config examples, the
/// token drop-in), as the repository holds them now.
fn common_files() -> BTreeSet<(String, u32)> {
    let mut files: BTreeSet<(String, u32)> = [
        ("/usr/bin/tagstrap", 0o755),
        ("/usr/lib/systemd/system/tagstrap.service", 0o644),
        ("/etc/tagstrap/config.toml", 0o644),
        ("/etc/tagstrap/tags", 0o644),
        ("/usr/share/man/man1/tagstrap.1.gz", 0o644),
        ("/usr/share/bash-completion/completions/tagstrap", 0o644),
        ("/usr/share/doc/tagstrap/README.md", 0o644),
        ("/usr/share/doc/tagstrap/examples/vault-token.conf", 0o644),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_string(), m))
    .collect();
    for (dir, ext, dest) in [
        ("docs", "md", "/usr/share/doc/tagstrap/docs"),
        (
            "dist/config",
            "toml",
            "/usr/share/doc/tagstrap/examples/config",
        ),
    ] {
        for entry in std::fs::read_dir(repo(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == ext) {
                let name = path.file_name().unwrap().to_string_lossy();
                files.insert((format!("{dest}/{name}"), 0o644));
            }
        }
    }
    files
}

/// The regular files of a `dpkg-deb -c` / `tar tv` listing with their
/// modes; asserts every directory is 0755 and everything is root's.
fn deb_files(listing: &str) -> BTreeSet<(String, u32)> {
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (perms, owner, path) = (fields[0], fields[1], fields[5]);
        assert!(owner == "0/0" || owner == "root/root", "root's: {line}");
        let path = path.trim_start_matches('.').to_string();
        match perms.as_bytes()[0] {
            b'd' => assert_eq!(perms, "drwxr-xr-x", "{line}"),
            b'-' => {
                files.insert((path, mode_of(&perms[1..])));
            }
            _ => panic!("neither a file nor a directory: {line}"),
        }
    }
    files
}

/// `rwxr-xr-x` → 0o755.
fn mode_of(perms: &str) -> u32 {
    perms
        .bytes()
        .fold(0, |mode, c| (mode << 1) | u32::from(c != b'-'))
}

fn e_machine(path: &Path) -> u16 {
    let head = std::fs::read(path).unwrap();
    assert_eq!(&head[..4], b"\x7fELF", "{}", path.display());
    u16::from_le_bytes([head[18], head[19]])
}

fn machine(arch: &str) -> u16 {
    MACHINES.iter().find(|(a, _)| *a == arch).unwrap().1
}

#[test]
fn lintian_reports_no_error_on_either_deb() {
    for arch in DEB_ARCHES {
        let deb = artifacts::deb(arch);
        let out = tool("lintian", args![deb]);
        let report = String::from_utf8_lossy(&out.stdout);
        eprintln!("lintian {arch}:\n{report}");
        let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
        assert!(errors.is_empty(), "lintian errors on {arch}: {errors:#?}");
        // lintian exits 2 when it could not check the package at all.
        assert_ne!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn each_deb_holds_exactly_the_expected_files_with_conffiles_and_no_dependency() {
    for arch in DEB_ARCHES {
        let deb = artifacts::deb(arch);
        let mut expected = common_files();
        for (path, mode) in [
            ("/usr/share/zsh/vendor-completions/_tagstrap", 0o644),
            ("/usr/share/doc/tagstrap/copyright", 0o644),
            ("/usr/share/doc/tagstrap/changelog.Debian.gz", 0o644),
            ("/usr/share/lintian/overrides/tagstrap", 0o644),
        ] {
            expected.insert((path.to_string(), mode));
        }
        assert_eq!(
            deb_files(&ok("dpkg-deb", args!["-c", deb])),
            expected,
            "{arch}"
        );

        let conffiles = ok("dpkg-deb", args!["-I", deb, "conffiles"]);
        assert_eq!(conffiles.lines().collect::<Vec<_>>(), CONFFILES, "{arch}");
        let control = ok("dpkg-deb", args!["-I", deb, "control"]);
        assert!(
            control.contains(&format!("Architecture: {arch}\n")),
            "{control}"
        );
        assert!(
            control.contains(&format!("Version: {}-1\n", artifacts::VERSION)),
            "{control}"
        );
        // A static binary: cargo-deb's Depends: line is there but empty.
        assert!(
            control
                .lines()
                .filter(|l| l.contains("Depends:"))
                .all(|l| l == "Depends: "),
            "a static binary depends on nothing: {control}"
        );
        // Enabled at install, never started: installing on a running
        // machine must not run the agent's install script.
        let postinst = ok("dpkg-deb", args!["-I", deb, "postinst"]);
        assert!(postinst.contains("deb-systemd-helper"), "{postinst}");
        assert!(postinst.contains("enable"), "{postinst}");
        assert!(
            !postinst.contains("deb-systemd-invoke") && !postinst.contains("start"),
            "{postinst}"
        );

        // The files themselves: the binary is the artifact of its
        // architecture, the unit and drop-in are dist/'s, the man page the
        // generated one.
        let tree = tempfile::tempdir().unwrap();
        ok("dpkg-deb", args!["-x", deb, tree.path()]);
        let at = |p: &str| tree.path().join(p.trim_start_matches('/'));
        let bin = at("/usr/bin/tagstrap");
        assert_eq!(e_machine(&bin), machine(arch), "{arch}");
        let artifact = match arch {
            "amd64" => artifacts::x86_64_tagstrap(),
            _ => artifacts::aarch64_tagstrap(),
        };
        assert_eq!(
            std::fs::read(&bin).unwrap(),
            std::fs::read(artifact).unwrap()
        );
        assert_eq!(
            std::fs::read(at("/usr/lib/systemd/system/tagstrap.service")).unwrap(),
            std::fs::read(repo("dist/systemd/tagstrap.service")).unwrap()
        );
        assert_eq!(
            std::fs::read(at("/usr/share/doc/tagstrap/examples/vault-token.conf")).unwrap(),
            std::fs::read(repo("dist/systemd/vault-token.conf")).unwrap()
        );
        let man = ok("zcat", args![at("/usr/share/man/man1/tagstrap.1.gz")]);
        assert_eq!(
            man,
            std::fs::read_to_string(artifacts::artifact("tagstrap.1")).unwrap()
        );
        assert_installed_config_parses(&at("/etc/tagstrap/config.toml"), &at("/etc/tagstrap/tags"));
    }
}

/// The installed config and tags files: as shipped they parse and set
/// nothing, and with every setting line uncommented (each shows its
/// default) the plan is the same, so the keys they name are real ones.
fn assert_installed_config_parses(config: &Path, tags: &Path) {
    let plan = |config: &Path| {
        let out = Command::new(common::BIN)
            .env_clear()
            .args(args![
                "plan",
                "--source",
                "none",
                "--config",
                config,
                "--tags-file",
                tags
            ])
            .args([
                "--tag",
                "rs_agent:mime_shellscript=file:///opt/agent/install.sh",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "plan --config {}: {stderr}",
            config.display()
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            stdout.contains("script:    file:///opt/agent/install.sh"),
            "{stdout}"
        );
        stdout
    };
    let shipped = plan(config);
    assert!(
        shipped.contains("proxy:     none"),
        "the tags file adds no tag: {shipped}"
    );
    let text = std::fs::read_to_string(config).unwrap();
    let settings: String = text
        .lines()
        // Up to the store sections, whose example address needs a token.
        .take_while(|l| !l.starts_with("#["))
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| {
            l.split_once(" = ")
                .is_some_and(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(settings.lines().count() >= 5, "{settings}");
    let dir = tempfile::tempdir().unwrap();
    let uncommented = common::write_file(dir.path(), "config.toml", &settings);
    assert_eq!(plan(&uncommented), shipped, "{settings}");
}

/// `rpm -qp --qf` for one package.
fn rpm_query(rpm: &Path, what: &[&str]) -> String {
    let mut args: Vec<&std::ffi::OsStr> = vec!["-qp".as_ref()];
    args.extend(what.iter().map(std::ffi::OsStr::new));
    args.push(rpm.as_os_str());
    ok("rpm", &args)
}

#[test]
fn each_rpm_lists_the_expected_files_conffiles_and_no_library_requirement() {
    for arch in RPM_ARCHES {
        let rpm = artifacts::rpm(arch);
        let mut expected = common_files();
        expected.insert(("/usr/share/zsh/site-functions/_tagstrap".to_string(), 0o644));
        let listed: BTreeSet<(String, u32)> =
            rpm_query(&rpm, &["--qf", "[%{FILEMODES:perms} %{FILENAMES}\\n]"])
                .lines()
                .map(|l| {
                    let (perms, path) = l.split_once(' ').unwrap();
                    assert!(perms.starts_with('-'), "only files: {l}");
                    (path.to_string(), mode_of(&perms[1..]))
                })
                .collect();
        assert_eq!(listed, expected, "{arch}");
        let configs = rpm_query(&rpm, &["--configfiles"]);
        assert_eq!(configs.lines().collect::<Vec<_>>(), CONFFILES, "{arch}");
        let requires = rpm_query(&rpm, &["-R"]);
        assert!(
            requires
                .lines()
                .all(|r| !r.contains(".so") && !r.starts_with("lib")),
            "a static binary needs no library: {requires}"
        );
        let info = rpm_query(&rpm, &["-i"]);
        for field in [
            format!("Version     : {}", artifacts::VERSION),
            "Release     : 1".to_string(),
            format!("Architecture: {arch}"),
            "License     : Apache-2.0".to_string(),
        ] {
            assert!(info.contains(&field), "{field:?} in\n{info}");
        }
        // Enabled on first install, as the .deb is; never started.
        let scripts = rpm_query(&rpm, &["--scripts"]);
        assert!(
            scripts.contains("systemctl --no-reload enable tagstrap.service"),
            "{scripts}"
        );
        assert!(!scripts.contains("start"), "{scripts}");
    }
}

/// An empty directory with an rpm database of its own, to install into.
struct RpmRoot(tempfile::TempDir);

impl RpmRoot {
    fn new() -> RpmRoot {
        let root = tempfile::tempdir().unwrap();
        ok("rpm", args!["--root", root.path(), "--initdb"]);
        RpmRoot(root)
    }

    fn at(&self, path: &str) -> PathBuf {
        self.0.path().join(path.trim_start_matches('/'))
    }

    /// `rpm --root R MODE PACKAGE` (`-ivh`, `-Uvh`). --nodeps: the root has
    /// no packages for the requirements; --noscripts: nor a /bin/sh or
    /// systemctl for the scriptlets; --ignorearch: the aarch64 one goes into
    /// this x86_64 machine's root; --replacepkgs: `-Uvh` of the same package.
    fn rpm(&self, mode: &str, package: &Path) -> String {
        ok(
            "rpm",
            args![
                "--root",
                self.0.path(),
                mode,
                "--nodeps",
                "--noscripts",
                "--ignorearch",
                "--replacepkgs",
                package
            ],
        )
    }

    /// The installed tagstrap's name-version-release.arch.
    fn query(&self) -> String {
        ok("rpm", args!["--root", self.0.path(), "-q", "tagstrap"])
    }
}

#[test]
fn each_rpm_installs_into_an_empty_root_and_an_upgrade_keeps_the_operators_config() {
    for arch in RPM_ARCHES {
        let rpm = artifacts::rpm(arch);
        let root = RpmRoot::new();
        let at = |p: &str| root.at(p);
        let install = |mode: &str| root.rpm(mode, &rpm);
        install("-ivh");
        for (path, mode) in common_files() {
            let meta = std::fs::metadata(at(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(meta.permissions().mode() & 0o7777, mode, "{path}");
        }
        assert_eq!(e_machine(&at("/usr/bin/tagstrap")), machine(arch));
        let etc = std::fs::metadata(at("/etc/tagstrap")).unwrap();
        assert_eq!(etc.permissions().mode() & 0o7777, 0o755);
        let secret_free: Vec<_> = std::fs::read_dir(at("/etc/tagstrap"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            secret_free.into_iter().collect::<BTreeSet<_>>(),
            ["config.toml", "tags"].map(String::from).into(),
            "nothing else in /etc/tagstrap (no token file)"
        );
        assert_eq!(
            root.query().trim(),
            format!("tagstrap-{}-1.{arch}", artifacts::VERSION)
        );

        let operators = "# the operator's\ndeadline = 900\n";
        std::fs::write(at("/etc/tagstrap/config.toml"), operators).unwrap();
        install("-Uvh");
        assert_eq!(
            std::fs::read_to_string(at("/etc/tagstrap/config.toml")).unwrap(),
            operators,
            "the upgrade replaced the operator's config"
        );
        // Unchanged in the package, so rpm keeps the file and needs no
        // .rpmnew; the shipped one stays what it was.
        assert_eq!(
            std::fs::read(at("/etc/tagstrap/tags")).unwrap(),
            std::fs::read(repo("dist/etc/tags")).unwrap()
        );
    }
}

/// The case `-Uvh --replacepkgs` cannot show: release 2 of the package,
/// rebuilt here with cargo-generate-rpm from the same metadata but a changed
/// `config.toml`, upgrades a root whose operator edited theirs. rpm keeps
/// the operator's file and leaves the new one beside it as `.rpmnew`.
#[test]
fn an_upgrade_whose_packaged_config_changed_keeps_the_operators_and_writes_rpmnew() {
    let tool = artifacts::ci_tool("cargo-generate-rpm");
    let work = tempfile::tempdir().unwrap();
    let shipped_v2 = "# release 2's example\n#deadline = 600\n";
    let new_config = common::write_file(work.path(), "config.toml", shipped_v2);
    // The assets of Cargo.toml's [package.metadata.generate-rpm], with
    // config.toml's source swapped, and release 2.
    let manifest = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
    let rpm_meta = &manifest[manifest.find("[package.metadata.generate-rpm]").unwrap()..];
    let assets_at = rpm_meta.find("\nassets = [").unwrap() + 1;
    let assets = &rpm_meta[assets_at..assets_at + rpm_meta[assets_at..].find("\n]\n").unwrap() + 3];
    let old_source = "source = \"dist/etc/config.toml\"";
    assert!(assets.contains(old_source), "{assets}");
    let overwrite = common::write_file(
        work.path(),
        "release-2.toml",
        &format!(
            "release = \"2\"\n{}",
            assets.replace(
                old_source,
                &format!("source = \"{}\"", new_config.display())
            )
        ),
    );
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let built = Command::new(&tool)
        .args(args![
            "--target",
            "x86_64-unknown-linux-musl",
            "--metadata-overwrite",
            overwrite,
            "--output",
            out_dir
        ])
        .current_dir(repo(""))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let v2 = out_dir.join(format!("tagstrap-{}-2.x86_64.rpm", artifacts::VERSION));
    assert!(v2.is_file(), "{}", String::from_utf8_lossy(&built.stdout));

    let root = RpmRoot::new();
    let at = |p: &str| root.at(p);
    let rpm = |mode: &str, package: &Path| root.rpm(mode, package);
    rpm("-ivh", &artifacts::rpm("x86_64"));
    let operators = "# the operator's\ndeadline = 900\n";
    std::fs::write(at("/etc/tagstrap/config.toml"), operators).unwrap();
    rpm("-Uvh", &v2);

    assert_eq!(
        root.query().trim(),
        format!("tagstrap-{}-2.x86_64", artifacts::VERSION)
    );
    assert_eq!(
        std::fs::read_to_string(at("/etc/tagstrap/config.toml")).unwrap(),
        operators
    );
    assert_eq!(
        std::fs::read_to_string(at("/etc/tagstrap/config.toml.rpmnew")).unwrap(),
        shipped_v2
    );
    // The tags file changed in neither: replaced in place, no .rpmnew.
    assert!(!at("/etc/tagstrap/tags.rpmnew").exists());
    assert_eq!(
        std::fs::read(at("/etc/tagstrap/tags")).unwrap(),
        std::fs::read(repo("dist/etc/tags")).unwrap()
    );
}

/// The `--flags` of `tagstrap [SUB] --help` and the subcommands it lists.
fn help(args: &[&str]) -> String {
    let out = Command::new(common::BIN)
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Long flags at the start of a help entry or a man page `.TP` item.
fn flags(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| {
            l.split([',', ' '])
                .filter(|w| w.starts_with("--"))
                // `--verbose...`: a flag that repeats.
                .map(|w| w.trim_end_matches('.').to_string())
        })
        .collect()
}

#[test]
fn the_man_page_names_every_subcommand_and_flag_that_help_shows() {
    let page = std::fs::read_to_string(artifacts::artifact("tagstrap.1")).unwrap();
    // The page's text with roff's escapes and font changes taken out.
    let text = page
        .replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "");
    let top = help(&[]);
    let subcommands: Vec<&str> = top
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: list")
        .lines()
        .take_while(|l| l.starts_with("  "))
        // An entry's name is indented by two; its wrapped help by more.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        subcommands.contains(&"run") && subcommands.contains(&"doctor"),
        "{top}"
    );
    for sub in &subcommands {
        let title = format!("TAGSTRAP {}", sub.to_uppercase());
        let section = |heading: &str| -> String {
            let start = text
                .find(&format!(".SH \"{heading}\"\n"))
                .or_else(|| text.find(&format!(".SH {heading}\n")))
                .unwrap_or_else(|| panic!("no section {heading:?} in the man page"));
            let rest = &text[start + 4..];
            rest[..rest.find("\n.SH ").unwrap_or(rest.len())].to_string()
        };
        section(&title);
        if *sub == "help" {
            continue;
        }
        // The flags under `.TP`, one item each: what follows `.TP`.
        let options = section(&format!("{title} OPTIONS"));
        let items: String = options
            .split(".TP\n")
            .skip(1)
            .filter_map(|item| item.lines().next())
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(flags(&items), flags(&help(&[sub])), "tagstrap {sub}");
    }
    // The comparison above saw the flags, not two empty sets.
    let run = flags(&help(&["run"]));
    assert!(
        run.contains("--write-env") && run.contains("--tags-file"),
        "{run:?}"
    );
}

#[test]
fn bash_and_zsh_load_the_completions() {
    let bash = artifacts::artifact("tagstrap.bash");
    let script = format!(
        "source '{}'; complete -p tagstrap; \
         COMP_WORDS=(tagstrap run --write); COMP_CWORD=2; COMP_LINE='tagstrap run --write'; \
         COMP_POINT=${{#COMP_LINE}}; _tagstrap tagstrap --write run; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bash.display()
    );
    let out = ok("bash", args!["-c", script]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("complete -o bashdefault -o default -o nosort -F _tagstrap tagstrap"),
        "{out}"
    );
    assert_eq!(lines.collect::<Vec<_>>(), ["--write-env"], "{out}");

    let zsh = artifacts::artifact("_tagstrap");
    let dir = zsh.parent().unwrap();
    let script = format!(
        "fpath=('{}' $fpath); autoload -Uz _tagstrap; autoload +X _tagstrap; whence -w _tagstrap",
        dir.display()
    );
    let out = ok("zsh", args!["-fc", script]);
    assert_eq!(out.trim(), "_tagstrap: function", "{out}");
}
