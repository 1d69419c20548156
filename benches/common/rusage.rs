//! What one child process cost: wall time, CPU and peak RSS from the
//! `wait4` that reaps it, and the wrapper that makes the peak RSS the
//! child's own. Linux (`ru_maxrss` in KiB, `/proc/self/status`).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::fail;

/// One finished process.
pub struct Measured {
    pub status: ExitStatus,
    /// From just before spawn to the return of wait4.
    pub wall: Duration,
    /// User + system CPU of the process and the children it waited for.
    pub cpu: Duration,
    /// Largest resident set of the process or of one of the children it
    /// waited for (not a sum), KiB.
    pub max_rss_kib: u64,
}

fn timeval(t: &libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Spawns `cmd` and reaps it with wait4, so the rusage is this child's own
/// (plus its waited-for descendants), not that of every child of the bench.
pub fn measure(cmd: &mut Command) -> Measured {
    let start = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(&format!("spawn {:?}: {e}", cmd.get_program())));
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain integers, for which all zeroes is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `ru` are valid for writes and live across the
        // call; `pid` is our own unreaped child (std's Child is dropped
        // without waiting, so nothing else reaps it).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            fail(&format!("wait4({pid}): {err}"));
        }
    }
    let wall = start.elapsed();
    drop(child);
    Measured {
        status: ExitStatus::from_raw(status),
        wall,
        cpu: timeval(&ru.ru_utime) + timeval(&ru.ru_stime),
        max_rss_kib: ru.ru_maxrss.max(0) as u64,
    }
}

/// argv[1] that turns a bench binary into the RSS wrapper.
const WRAPPER: &str = "--rusage-wrapper";

/// Turns this process into the wrapper if it was started as one; call it
/// first in `main`, before anything grows the process.
///
/// Why peak RSS is measured through a wrapper: on Linux a process's
/// `ru_maxrss` survives exec and starts from the high-water mark of the
/// address space it was (v)forked from. std spawns with vfork semantics, so
/// a child of a bench (which may hold a 100 MiB reply body and the servers'
/// runtimes) would report at least the bench's own peak. A freshly exec'd
/// copy of the bench binary is small; the process it spawns starts from
/// that floor (the wrapper's VmHWM, reported), and its wait4 rusage then
/// covers only that process and the children it waited for.
///
/// `BENCH --rusage-wrapper OUT PROGRAM ARGS...`: runs PROGRAM with this
/// process's environment and stdio, writes "MAXRSS_KIB FLOOR_KIB WALL_NS
/// CPU_NS" to OUT, exits with PROGRAM's code (128 + signal if a signal
/// ended it).
pub fn wrapper_if_asked() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == WRAPPER) {
        wrapper_main(&args[2..]);
    }
}

fn wrapper_main(args: &[OsString]) -> ! {
    let [out, program, rest @ ..] = args else {
        fail("--rusage-wrapper OUT PROGRAM ARGS...");
    };
    let floor = vm_hwm_kib();
    let m = measure(Command::new(program).args(rest));
    std::fs::write(
        out,
        format!(
            "{} {floor} {} {}\n",
            m.max_rss_kib,
            m.wall.as_nanos(),
            m.cpu.as_nanos()
        ),
    )
    .unwrap_or_else(|e| fail(&format!("write {}: {e}", Path::new(out).display())));
    let code = m
        .status
        .code()
        .unwrap_or_else(|| 128 + m.status.signal().unwrap_or(0));
    std::process::exit(code);
}

/// VmHWM of this process (the peak RSS of its current address space), KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One run measured through the wrapper.
pub struct Isolated {
    /// The program's exit status, as the wrapper passed it on.
    pub status: ExitStatus,
    /// The program's own wall time (spawn to wait4, in the wrapper).
    pub wall: Duration,
    /// Its user + system CPU time (with the children it waited for).
    pub cpu: Duration,
    pub max_rss_kib: u64,
    /// The wrapper's own VmHWM when it spawned the program: the lowest
    /// figure `max_rss_kib` can show.
    pub floor_kib: u64,
}

/// Runs `cmd`'s program and arguments under the wrapper. `wrapper` is this
/// bench's own binary (`std::env::current_exe`) with the environment and
/// stdio the program is to inherit; the figures go through the file `out`.
/// `Err` with the wrapper's status if it wrote no figures.
pub fn measure_isolated(
    cmd: &Command,
    mut wrapper: Command,
    out: &Path,
) -> Result<Isolated, ExitStatus> {
    // A file left by an earlier run must not pass for this one's figures.
    let _ = std::fs::remove_file(out);
    wrapper
        .arg(WRAPPER)
        .arg(out)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let status = measure(&mut wrapper).status;
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let f: Vec<u64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [max_rss_kib, floor_kib, wall_ns, cpu_ns] = f[..] else {
        return Err(status);
    };
    Ok(Isolated {
        status,
        wall: Duration::from_nanos(wall_ns),
        cpu: Duration::from_nanos(cpu_ns),
        max_rss_kib,
        floor_kib,
    })
}
