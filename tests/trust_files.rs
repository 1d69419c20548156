//! SPEC §8, the files: tagstrap's state directory is its alone, every file
//! it writes is created new and renamed into place, every file it reads is a
//! regular file, it cannot be dumped or traced while it holds secrets, and
//! an instance ID can never name another path.
//!
//! The tests act as the attacker: `nobody` (uid 65534), whose actions run as
//! `sh -c '…'` with that uid, in a place the test makes for him (the tests'
//! temporary directories are root's and 0700). Each asserts the exit code,
//! what ran (a witness script proves it; an attacker's script would create a
//! file of its own) and what was written (a root-owned victim file his links
//! point at must keep its content).

#![cfg(unix)]

mod common;

use std::io::Read;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{write_file, write_secret, Run, Tagstrap, Witness};
use tempfile::TempDir;

const NOBODY: u32 = 65534;
const PASSWORD: &str = "p@ss:/%w0rd-files";
/// How long a run may take before the test calls it hung: a guard, never
/// an assertion about speed.
const HUNG: Duration = Duration::from_secs(10);

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_nobody(path: &Path) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// `sh -c script` as nobody; panics when it fails.
fn as_nobody(script: &str) {
    let out = nobody_sh(script).output().unwrap();
    assert!(
        out.status.success(),
        "nobody's `{script}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nobody_sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .uid(NOBODY)
        .gid(NOBODY);
    command
}

/// A place nobody can reach: a temporary directory made 0755 (root's, so
/// it is a safe ancestor), holding a root-owned victim file and directory.
struct Place {
    dir: TempDir,
}

const VICTIM: &str = "root's own file\n";

impl Place {
    fn new() -> Place {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        write_file(dir.path(), "victim", VICTIM);
        chmod(&dir.path().join("victim"), 0o644);
        std::fs::create_dir(dir.path().join("victim-dir")).unwrap();
        chmod(&dir.path().join("victim-dir"), 0o755);
        Place { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A directory in the place with `mode`, root's.
    fn dir(&self, name: &str, mode: u32) -> PathBuf {
        let path = self.path(name);
        std::fs::create_dir(&path).unwrap();
        chmod(&path, mode);
        path
    }

    /// The victims are as they were: content, mode, owner, nothing added.
    fn assert_victims_untouched(&self) {
        let victim = self.path("victim");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), VICTIM);
        assert_eq!(mode(&victim), 0o644);
        let dir = self.path("victim-dir");
        assert_eq!(mode(&dir), 0o755, "the victim directory was chmod'ed");
        let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(entries.is_empty(), "written into the victim directory");
    }

    /// The file an attacker's script would create when run (as root).
    fn pwned(&self) -> PathBuf {
        self.path("pwned")
    }

    /// nobody's own script, which proves it ran by creating [`Place::pwned`].
    fn evil_script(&self) -> PathBuf {
        let path = write_file(
            self.dir.path(),
            "evil.sh",
            &format!("#!/bin/sh\ntouch '{}'\n", self.pwned().display()),
        );
        chmod(&path, 0o755);
        path
    }
}

/// `tagstrap run` of a witness with `--state-dir state` (and `--once` for
/// instance i-1, so that the marker paths are used too).
fn run_in(state: &Path, witness: &Witness) -> Run {
    Tagstrap::new("run")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .arg("--state-dir")
        .arg(state)
        .arg("--once")
        .arg("--instance-id")
        .arg("i-1")
        .run()
}

#[test]
fn a_shared_state_directory_is_refused_whatever_its_other_user_prepares_or_races() {
    let place = Place::new();
    let shared = place.dir("shared", 0o1777);
    let evil = place.evil_script();
    let victim = place.path("victim");
    let victim_dir = place.path("victim-dir");
    // Links at every name tagstrap wrote to before (the report and its
    // temporary file, the marker and its temporary file, the partial
    // script), and his own script/ and once/ for the script to be swapped
    // in.
    as_nobody(&format!(
        "cd '{s}' && ln -s '{v}' last-run.json && ln -s '{v}' last-run.tmp && \
         mkdir -m 777 script once && ln -s '{v}' script/install.partial && \
         ln -s '{v}' once/i-1 && ln -s '{v}' once/i-1.tmp && ln -s '{d}' script/d",
        s = shared.display(),
        v = victim.display(),
        d = victim_dir.display()
    ));
    // …and he keeps renaming his own script onto script/install, bounded.
    let stop = place.path("stop");
    let racer = nobody_sh(&format!(
        "i=0; while [ $i -lt 200000 ] && [ ! -e '{stop}' ]; do \
         cp '{evil}' '{s}/script/.x' 2>/dev/null; mv -f '{s}/script/.x' '{s}/script/install'; \
         i=$((i+1)); done",
        stop = stop.display(),
        evil = evil.display(),
        s = shared.display()
    ))
    .spawn()
    .unwrap();
    let racer = KillOnDrop(racer);

    let runs = 10;
    for _ in 0..runs {
        let witness = Witness::new();
        let run = run_in(&shared, &witness);
        run.assert_error(73, &format!("chmod 700 {}", shared.display()));
        assert!(
            run.error_lines()[0].contains("is writable by group and others (mode 1777)"),
            "{}",
            run.stderr
        );
        assert!(!witness.ran(), "nothing runs in a shared state directory");
    }
    std::fs::write(&stop, "").unwrap();
    let mut racer = racer;
    racer.0.wait().unwrap();

    assert!(!place.pwned().exists(), "nobody's script ran as root");
    place.assert_victims_untouched();
    assert_eq!(
        mode(&shared),
        0o1777,
        "tagstrap changed the shared directory"
    );
    for link in [
        "last-run.json",
        "last-run.tmp",
        "once/i-1",
        "script/install.partial",
    ] {
        let meta = std::fs::symlink_metadata(shared.join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} was replaced");
    }
    eprintln!("{runs} runs refused while nobody raced");
}

#[test]
fn a_state_directory_another_user_made_first_is_refused() {
    // The state directory does not exist yet in a sticky shared place, and
    // nobody makes it first, private to him, with his script inside.
    let place = Place::new();
    let shared = place.dir("shared", 0o1777);
    let state = shared.join("state");
    let evil = place.evil_script();
    as_nobody(&format!(
        "mkdir -m 700 '{s}' '{s}/script' && cp '{e}' '{s}/script/install' && \
         ln -s '{v}' '{s}/last-run.json'",
        s = state.display(),
        e = evil.display(),
        v = place.path("victim").display()
    ));
    let witness = Witness::new();
    let run = run_in(&state, &witness);
    run.assert_error(73, &format!("chown root {}", state.display()));
    assert!(
        run.error_lines()[0].contains("is owned by uid 65534"),
        "{}",
        run.stderr
    );
    assert!(!witness.ran());
    assert!(!place.pwned().exists(), "nobody's script ran as root");
    place.assert_victims_untouched();
}

/// How `script/` or `once/` is made unsafe inside a private state directory.
#[derive(Debug, Clone, Copy)]
enum Bad {
    LinkToVictimDir,
    OwnedByNobody,
    GroupWritable,
}

#[test]
fn script_and_once_inside_a_private_state_directory_must_be_private_too() {
    for name in ["script", "once"] {
        for bad in [Bad::LinkToVictimDir, Bad::OwnedByNobody, Bad::GroupWritable] {
            let place = Place::new();
            let state = place.dir("state", 0o700);
            let sub = state.join(name);
            let (needle, fix) = match bad {
                Bad::LinkToVictimDir => {
                    symlink(place.path("victim-dir"), &sub).unwrap();
                    ("is a symbolic link", "mkdir -m 700")
                }
                Bad::OwnedByNobody => {
                    std::fs::create_dir(&sub).unwrap();
                    chmod(&sub, 0o700);
                    chown_nobody(&sub);
                    ("is owned by uid 65534", "chown root")
                }
                Bad::GroupWritable => {
                    std::fs::create_dir(&sub).unwrap();
                    chmod(&sub, 0o770);
                    ("is writable by its group (mode 0770)", "chmod 700")
                }
            };
            let witness = Witness::new();
            let run = run_in(&state, &witness);
            let what = format!("{name}/ in the state directory");
            run.assert_error(73, &what);
            let line = run.error_lines()[0];
            assert!(
                line.contains(needle) && line.contains(fix),
                "{name} {bad:?}: {line}"
            );
            assert!(!witness.ran(), "{name} {bad:?}: the script ran");
            place.assert_victims_untouched();
            if !matches!(bad, Bad::LinkToVictimDir) {
                let entries: Vec<_> = std::fs::read_dir(&sub).unwrap().collect();
                assert!(
                    entries.is_empty(),
                    "{name} {bad:?}: written into {entries:?}"
                );
            }
        }
    }
}

#[test]
fn a_private_state_directory_inside_a_directory_others_can_write_is_refused() {
    let place = Place::new();
    let open = place.dir("open", 0o777);
    let state = open.join("state");
    std::fs::create_dir(&state).unwrap();
    chmod(&state, 0o700);
    let witness = Witness::new();
    let run = run_in(&state, &witness);
    run.assert_error(73, &format!("chmod go-w {}", open.display()));
    assert!(
        run.error_lines()[0].contains("without the sticky bit (mode 0777)"),
        "{}",
        run.stderr
    );
    assert!(!witness.ran());
    // What the rule is against: nobody can put his own state directory in
    // its place, however private the first one was.
    as_nobody(&format!(
        "mv '{o}/state' '{o}/old' && mkdir -m 700 '{o}/state'",
        o = open.display()
    ));
    assert_eq!(std::fs::metadata(&state).unwrap().uid(), NOBODY);

    // With the sticky bit (as /tmp has) nobody cannot do that: fine.
    let sticky = place.dir("sticky", 0o1777);
    let state = sticky.join("state");
    let witness = Witness::new();
    run_in(&state, &witness).assert_success();
    assert!(witness.ran());
    assert_eq!(mode(&state), 0o700, "created private");
    assert_eq!(mode(&state.join("script")), 0o700);
    assert_eq!(mode(&state.join("script/install")), 0o700);
    assert_eq!(mode(&state.join("last-run.json")), 0o600);
    assert_eq!(mode(&state.join("once/i-1")), 0o600);
    let as_nobody_fails = nobody_sh(&format!("mv '{s}' '{s}.old'", s = state.display()))
        .output()
        .unwrap();
    assert!(
        !as_nobody_fails.status.success(),
        "sticky: nobody cannot rename it"
    );
}

/// `run --write-env PATH` with the password from systemd credentials.
fn write_env_run(creds: &Path, path: &Path) -> (Tagstrap, Witness) {
    let witness = Witness::expecting_proxy("proxy.test:3128", "svc", PASSWORD);
    let t = Tagstrap::new("run")
        .tag("rs_agent:http_proxy", "proxy.test:3128")
        .tag("rs_agent:http_proxy_user", "svc")
        .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .env("CREDENTIALS_DIRECTORY", creds)
        .arg("--write-env")
        .arg(path);
    (t, witness)
}

fn creds(place: &Place) -> PathBuf {
    let creds = place.dir("creds", 0o700);
    write_secret(&creds, "PROXY_PASS", PASSWORD, 0o400);
    creds
}

/// Every file under `dir` that nobody may read, with what it holds.
fn readable_by_nobody(dir: &Path) -> Vec<(PathBuf, String)> {
    let out = nobody_sh(&format!(
        "find '{}' -type f -readable -print0 2>/dev/null",
        dir.display()
    ))
    .output()
    .unwrap();
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let path = PathBuf::from(String::from_utf8_lossy(p).into_owned());
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            (path, text)
        })
        .collect()
}

#[test]
fn write_env_in_a_shared_directory_is_refused_and_the_password_reaches_no_file_he_can_read() {
    let place = Place::new();
    let creds = creds(&place);
    let shared = place.dir("shared", 0o1777);
    let victim = place.path("victim");
    // The temporary name tagstrap used before (proxy.tmp), pre-created by
    // him 0666 to be reused and renamed into place, a link at the final
    // name, and his guesses at other names.
    as_nobody(&format!(
        "cd '{s}' && : > proxy.tmp && chmod 666 proxy.tmp && ln -s '{v}' proxy.env && \
         : > proxy.env.tmp && chmod 666 proxy.env.tmp",
        s = shared.display(),
        v = victim.display()
    ));
    let (t, witness) = write_env_run(&creds, &shared.join("proxy.env"));
    let run = t.run();
    run.assert_error(73, "--write-env").assert_no_leak(PASSWORD);
    assert!(
        run.error_lines()[0].contains(&format!("chmod 700 {}", shared.display())),
        "{}",
        run.stderr
    );
    assert!(!witness.ran(), "a refused --write-env runs nothing");
    place.assert_victims_untouched();
    for (path, text) in readable_by_nobody(place.dir.path()) {
        for form in common::secret_forms(PASSWORD) {
            assert!(
                !text.contains(&form),
                "{} holds the password",
                path.display()
            );
        }
    }
    assert!(std::fs::symlink_metadata(shared.join("proxy.env"))
        .unwrap()
        .file_type()
        .is_symlink());

    // His own private directory is not tagstrap's either.
    let his = place.dir("his", 0o700);
    chown_nobody(&his);
    let (t, witness) = write_env_run(&creds, &his.join("proxy.env"));
    let run = t.run();
    run.assert_error(73, &format!("chown root {}", his.display()))
        .assert_no_leak(PASSWORD);
    assert!(!witness.ran());
    assert_eq!(std::fs::read_dir(&his).unwrap().count(), 0);
}

#[test]
fn write_env_replaces_a_link_at_its_name_with_a_private_file_of_roots() {
    let place = Place::new();
    let creds = creds(&place);
    let dir = place.dir("etc", 0o755);
    let path = dir.join("proxy.env");
    symlink(place.path("victim"), &path).unwrap();
    let (t, witness) = write_env_run(&creds, &path);
    let run = t.run();
    run.assert_success().assert_no_leak(PASSWORD);
    assert!(witness.ran());
    place.assert_victims_untouched();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_file(), "the link was replaced");
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o600, 0));
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("http_proxy='http://svc:"));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["proxy.env"], "no temporary file is left");
    for (path, text) in readable_by_nobody(place.dir.path()) {
        assert!(
            !text.contains(PASSWORD),
            "{} holds the password",
            path.display()
        );
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Kills a child the test started if the test ends before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for a child, reading its output; after [`HUNG`] it is killed and
/// the test fails: a FIFO made it hang.
fn wait_guarded(child: Child, what: &str) -> Output {
    let mut child = KillOnDrop(child);
    let mut stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HUNG {
            let _ = child.0.kill();
            let _ = child.0.wait();
            let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
            panic!("{what}: tagstrap hung and was killed after {HUNG:?}:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn run_guarded(t: Tagstrap, what: &str) -> Run {
    let started = Instant::now();
    let (child, state) = t.spawn();
    let output = wait_guarded(child, what);
    Run::from_output(output, state, started.elapsed())
}

#[test]
fn a_fifo_as_any_input_file_is_refused_at_once_with_the_code_of_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let fifo_dir = dir.path().join("creds");
    std::fs::create_dir(&fifo_dir).unwrap();
    mkfifo(&fifo_dir.join("PROXY_PASS"));
    let role_id_config = write_file(
        dir.path(),
        "approle.toml",
        &format!(
            "[vault]\naddress = \"http://127.0.0.1:9\"\n[vault.approle]\nrole_id_file = \"{}\"\n\
             secret_id_file = \"{}\"\n",
            fifo.display(),
            fifo.display()
        ),
    );
    // The store is never reached: every file is read before a request.
    let store = |t: Tagstrap| {
        t.tag("rs_agent:http_proxy", "proxy.test:3128")
            .tag("rs_agent:http_proxy_user", "svc")
            .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
            .env("VAULT_ADDR", "http://127.0.0.1:9")
    };
    type SetUp<'a> = Box<dyn Fn(Tagstrap) -> Tagstrap + 'a>;
    let cases: Vec<(&str, i32, SetUp)> = vec![
        (
            "tags file",
            65,
            Box::new(|t| t.arg("--tags-file").arg(&fifo)),
        ),
        (
            "config file",
            78,
            Box::new(|t| t.arg("--config").arg(&fifo)),
        ),
        (
            "store token file",
            65,
            Box::new(|t| store(t).env("TAGSTRAP_VAULT_TOKEN_FILE", &fifo)),
        ),
        (
            "AppRole secret-ID file",
            65,
            Box::new(|t| {
                store(t)
                    .env("TAGSTRAP_VAULT_ROLE_ID", "role")
                    .env("TAGSTRAP_VAULT_SECRET_ID_FILE", &fifo)
            }),
        ),
        (
            // Like the secret-ID file: the error keeps its class (issue 13;
            // it was re-labelled 78).
            "role ID file",
            65,
            Box::new(|t| store(t).arg("--config").arg(&role_id_config)),
        ),
        (
            "credential cred:PROXY_PASS",
            65,
            Box::new(|t| {
                t.tag("rs_agent:http_proxy", "proxy.test:3128")
                    .tag("rs_agent:http_proxy_user", "svc")
                    .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
                    .env("CREDENTIALS_DIRECTORY", &fifo_dir)
            }),
        ),
        ("--ca-file", 65, Box::new(|t| t.arg("--ca-file").arg(&fifo))),
        (
            "VAULT_CACERT",
            65,
            Box::new(|t| {
                store(t)
                    .env("VAULT_TOKEN", "s.token")
                    .env("VAULT_CACERT", &fifo)
            }),
        ),
    ];
    for (what, code, set_up) in &cases {
        let witness = Witness::new();
        let t = set_up(Tagstrap::new("run").tag("rs_agent:mime_shellscript", &witness.url()));
        let run = run_guarded(t, what);
        run.assert_error(*code, "is a FIFO (named pipe), not a regular file");
        assert!(
            run.error_lines()[0].contains(what),
            "{what}: {}",
            run.error_lines()[0]
        );
        assert!(!witness.ran(), "{what}: the script ran");
    }

    // The script itself, file:// a FIFO.
    let t = Tagstrap::new("run").tag(
        "rs_agent:mime_shellscript",
        &format!("file://{}", fifo.display()),
    );
    let run = run_guarded(t, "file:// script");
    run.assert_error(65, "is a FIFO (named pipe), not a regular file");
    let script_dir = run.state.path().join("state/script");
    assert!(!script_dir.join("install").exists(), "nothing to run");
    eprintln!("{} kinds of input refused as FIFOs", cases.len() + 1);
}

#[test]
fn a_symbolic_link_to_a_regular_input_file_is_still_read() {
    // Operators link configs into place.
    let dir = tempfile::tempdir().unwrap();
    let witness = Witness::new();
    let tags = write_file(
        dir.path(),
        "real.tags",
        &format!("rs_agent:mime_shellscript={}\n", witness.url()),
    );
    let link = dir.path().join("tags");
    symlink(&tags, &link).unwrap();
    Tagstrap::new("run")
        .arg("--tags-file")
        .arg(&link)
        .run()
        .assert_success();
    assert!(witness.ran());
}

/// A store that accepts connections and never answers: tagstrap waits on
/// it, holding its token, for as long as the test looks.
struct SilentStore {
    listener: std::net::TcpListener,
}

impl SilentStore {
    fn start() -> SilentStore {
        SilentStore {
            listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn addr(&self) -> String {
        format!("http://{}", self.listener.local_addr().unwrap())
    }

    /// The first connection, once tagstrap makes it (then it is waiting).
    fn accept(&self) -> std::net::TcpStream {
        let (tx, rx) = std::sync::mpsc::channel();
        let listener = self.listener.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = tx.send(listener.accept().map(|(s, _)| s));
        });
        rx.recv_timeout(HUNG)
            .expect("tagstrap did not connect to the store")
            .unwrap()
    }
}

#[test]
fn tagstrap_cannot_be_dumped_or_read_by_its_own_user_while_it_holds_secrets() {
    let token = "s.n0-dump-t0ken";
    let place = Place::new();
    let home = place.dir("home", 0o700);
    chown_nobody(&home);
    let config = write_file(&home, "config.toml", "");
    let tags = write_file(&home, "tags", "");
    for path in [&config, &tags] {
        chown_nobody(path);
    }
    let store = SilentStore::start();
    let witness = Witness::new();
    let child = Command::new(common::BIN)
        .args(["run", "--source", "none", "--config"])
        .arg(&config)
        .arg("--tags-file")
        .arg(&tags)
        .arg("--state-dir")
        .arg(home.join("state"))
        .args(["--tag", "rs_agent:http_proxy=proxy.test:3128"])
        .args(["--tag", "rs_agent:http_proxy_user=svc"])
        .args(["--tag", "rs_agent:http_proxy_password=cred:PROXY_PASS"])
        .arg("--tag")
        .arg(format!("rs_agent:mime_shellscript={}", witness.url()))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("VAULT_ADDR", store.addr())
        .env("VAULT_TOKEN", token)
        .current_dir(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let pid = child.0.id();
    // Once it has connected it is waiting for the store's answer, with the
    // token in its memory and its environment.
    let _connection = store.accept();

    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let status = std::fs::read_to_string(proc_dir.join("status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(2) == Some("65534"),
        "it runs as nobody: {uid_line}"
    );
    // The directory itself keeps the owner ps shows; its files are root's.
    for name in ["environ", "mem", "status", "maps", "fd"] {
        let meta = std::fs::metadata(proc_dir.join(name)).unwrap();
        assert_eq!(meta.uid(), 0, "/proc/{pid}/{name} is root's (non-dumpable)");
    }
    let read = nobody_sh(&format!("cat /proc/{pid}/environ"))
        .output()
        .unwrap();
    assert!(!read.status.success(), "nobody read tagstrap's environment");
    assert!(!String::from_utf8_lossy(&read.stdout).contains(token));

    // The same read works on an ordinary process of nobody's: the check
    // above is the kernel refusing, not the read failing anyway.
    let sleeper = nobody_sh("exec sleep 30").spawn().unwrap();
    let sleeper = KillOnDrop(sleeper);
    let ordinary = nobody_sh(&format!("cat /proc/{}/environ", sleeper.0.id()))
        .output()
        .unwrap();
    assert!(ordinary.status.success(), "{ordinary:?}");
    assert!(String::from_utf8_lossy(&ordinary.stdout).contains("PATH="));
    drop(sleeper);
    drop(child);
    assert!(!witness.ran());
}

/// A script that counts its runs in `counter`.
struct Counter {
    dir: TempDir,
}

impl Counter {
    fn new() -> Counter {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("counter");
        write_file(
            dir.path(),
            "install.sh",
            &format!("#!/bin/sh\necho x >> '{}'\n", counter.display()),
        );
        Counter { dir }
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("install.sh").display())
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("counter"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn run(&self, state: &Path, id: &str) -> Run {
        Tagstrap::new("run")
            .tag("rs_agent:mime_shellscript", &self.url())
            .arg("--state-dir")
            .arg(state)
            .arg("--once")
            .arg("--instance-id")
            .arg(id)
            .run()
    }
}

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn an_instance_id_can_never_name_another_path_or_share_a_marker() {
    // On a fresh state directory each of these runs the script: none of
    // them names a marker that exists.
    for id in [".", "..", "a/b", "../../etc", "/"] {
        let counter = Counter::new();
        let state = tempfile::tempdir().unwrap();
        let run = counter.run(state.path(), id);
        run.assert_success();
        assert_eq!(counter.runs(), 1, "{id:?}: {}", run.stderr);
        counter.run(state.path(), id).assert_success();
        assert_eq!(counter.runs(), 1, "{id:?}: the second run skips");
        let markers = tree(&state.path().join("once"));
        assert_eq!(markers.len(), 1, "{id:?}: {markers:?}");
        assert!(
            tree(state.path()).iter().all(|p| p.starts_with("once")
                || p.starts_with("script")
                || p == "last-run.json"
                || p == "run.lock"),
            "{id:?}: {:?}",
            tree(state.path())
        );
    }

    // `a/b` and `a_b` are two instances.
    let counter = Counter::new();
    let state = tempfile::tempdir().unwrap();
    counter.run(state.path(), "a/b").assert_success();
    counter.run(state.path(), "a_b").assert_success();
    assert_eq!(counter.runs(), 2, "a_b shares no marker with a/b");

    // An ordinary ID keeps its marker name, so a marker an earlier version
    // wrote is found after an upgrade.
    let counter = Counter::new();
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir(state.path().join("once")).unwrap();
    chmod(&state.path().join("once"), 0o700);
    std::fs::write(state.path().join("once/i-0abc123"), "earlier version\n").unwrap();
    let skipped = counter.run(state.path(), "i-0abc123");
    skipped.assert_success();
    assert_eq!(counter.runs(), 0, "{}", skipped.stderr);
    assert!(skipped.stderr.contains("already ran on instance i-0abc123"));
    counter.run(state.path(), "i-0def456").assert_success();
    assert_eq!(counter.runs(), 1);
    assert!(state.path().join("once/i-0def456").is_file());
    counter.run(state.path(), "i-0def456").assert_success();
    assert_eq!(counter.runs(), 1, "an ordinary ID skips on the second run");

    // A very long ID is hashed, not refused by the file system.
    let long = "i-".to_string() + &"0".repeat(400);
    counter.run(state.path(), &long).assert_success();
    counter.run(state.path(), &long).assert_success();
    assert_eq!(counter.runs(), 2);
}

#[test]
fn an_empty_instance_id_is_a_bad_command_line() {
    let counter = Counter::new();
    let state = tempfile::tempdir().unwrap();
    let run = counter.run(state.path(), "");
    run.assert_error(64, "--instance-id");
    assert!(run.error_lines()[0].contains("is empty"), "{}", run.stderr);
    assert_eq!(counter.runs(), 0);
    assert!(
        !state.path().join("once").exists(),
        "no marker directory either"
    );
}
