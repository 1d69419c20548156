//! What stops a `run` from outside (SPEC §8): SIGTERM, SIGINT and SIGHUP on
//! Unix; Ctrl-C, Ctrl-Break and the console's close, logoff and shutdown
//! events on Windows. [`Stop::listen`] takes them over for the whole run, so
//! that tagstrap is never killed by them halfway: before the script, the
//! step under way is cancelled ([`Stop::unless`]) and the report written;
//! while the script runs, `run::execute` passes each signal to the script's
//! process group and waits for it. Either way tagstrap then exits 128+N
//! ([`crate::error::Error::Stopped`]).
//!
//! `plan`, `tags` and `doctor` do not listen: they run nothing, and a signal
//! ends them the ordinary way.
//!
//! Layer: signals. It may import only the toolkit and `error`.

use std::future::Future;

use tokio::sync::watch;

use crate::error::{Error, Result};

/// A signal that stops tagstrap, with its number (the exit code is 128 +
/// that number) and its name for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signal {
    pub(crate) number: i32,
    pub(crate) name: &'static str,
}

#[cfg(unix)]
impl Signal {
    pub(crate) const TERM: Signal = Signal {
        number: libc::SIGTERM,
        name: "SIGTERM",
    };
    pub(crate) const INT: Signal = Signal {
        number: libc::SIGINT,
        name: "SIGINT",
    };
    pub(crate) const HUP: Signal = Signal {
        number: libc::SIGHUP,
        name: "SIGHUP",
    };
}

/// Windows has no signal numbers for console events; these are the numbers
/// its C runtime gives Ctrl-C (`SIGINT`, 2) and Ctrl-Break (`SIGBREAK`, 21),
/// and the one Cygwin and MSYS give the console's close (`SIGHUP`, 1), so
/// the exit codes are 130, 149 and 129 (docs/design.md).
#[cfg(windows)]
impl Signal {
    pub(crate) const CTRL_C: Signal = Signal {
        number: 2,
        name: "Ctrl-C",
    };
    pub(crate) const CTRL_BREAK: Signal = Signal {
        number: 21,
        name: "Ctrl-Break",
    };
    pub(crate) const CLOSE: Signal = Signal {
        number: 1,
        name: "the console's close (or logoff, or shutdown)",
    };
}

/// What has been received so far: the first signal decides the exit code;
/// the latest is passed on to the script.
#[derive(Debug, Clone, Copy)]
struct Received {
    first: Signal,
    // Windows has nothing to pass signals on to (see `run::wind_down`).
    #[cfg_attr(not(unix), allow(dead_code))]
    latest: Signal,
}

/// The signals received during this run, seen by every step that can be
/// stopped. Cheap to clone; every clone sees the same signals.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    received: watch::Receiver<Option<Received>>,
}

/// The step a signal stopped, for its error line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage<'a> {
    /// Waiting for the run named here to release the state directory.
    Lock {
        holder: &'a str,
    },
    Tags,
    Credentials,
    Download,
}

impl Stage<'_> {
    /// The error for `signal` arriving during this step (before the script).
    pub(crate) fn stopped(self, signal: Signal) -> Error {
        let rerun = "run tagstrap again to install the agent";
        let message = match self {
            Stage::Lock { holder } => format!(
                "tagstrap was stopped by {} while it waited for {holder} to release the state \
                 directory; it did nothing and left that run's report alone. Once that run is \
                 over, {rerun} if it is still needed",
                signal.name
            ),
            Stage::Tags => format!(
                "tagstrap was stopped by {} while it read the tags; nothing was run: {rerun}",
                signal.name
            ),
            Stage::Credentials => format!(
                "tagstrap was stopped by {} while it read the proxy credentials from the store; \
                 nothing was run: {rerun}",
                signal.name
            ),
            Stage::Download => format!(
                "tagstrap was stopped by {} while it downloaded the script; nothing of it was \
                 kept and nothing was run: {rerun}",
                signal.name
            ),
        };
        Error::Stopped {
            signal: signal.number,
            message,
        }
    }
}

impl Stop {
    /// Takes over the stopping signals for the rest of the process. When that
    /// is impossible (no signal driver), the run goes on without: a warning,
    /// not a failed boot.
    pub(crate) fn listen() -> Stop {
        let (sender, received) = watch::channel(None);
        if let Err(e) = listen_into(sender) {
            tracing::warn!(
                "cannot listen for stopping signals ({e}): a signal will end tagstrap without \
                 passing it to the script"
            );
        }
        Stop { received }
    }

    /// A `Stop` that never fires: for the commands that do not listen, and
    /// for tests.
    pub(crate) fn never() -> Stop {
        let (_, received) = watch::channel(None);
        Stop { received }
    }

    /// The first signal received, if any.
    pub(crate) fn received(&self) -> Option<Signal> {
        self.received.borrow().map(|r| r.first)
    }

    /// Waits for the first signal (at once if one came already); never
    /// returns for [`Stop::never`].
    pub(crate) async fn first(&self) -> Signal {
        let mut received = self.received.clone();
        let first = received
            .wait_for(Option::is_some)
            .await
            .map(|r| r.map(|r| r.first));
        match first {
            Ok(Some(first)) => first,
            _ => std::future::pending().await,
        }
    }

    /// The signals received from now on, one by one, for passing them on.
    #[cfg(unix)]
    pub(crate) fn later(&self) -> Later {
        let mut received = self.received.clone();
        received.mark_unchanged();
        Later { received }
    }

    /// Runs `work` unless a signal comes first (or came already), in which
    /// case `work` is dropped, which cancels it (its drop guards clean up),
    /// and the error says what `stage` was doing.
    pub(crate) async fn unless<T>(
        &self,
        stage: Stage<'_>,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::select! {
            biased;
            signal = self.first() => Err(stage.stopped(signal)),
            done = work => done,
        }
    }
}

/// See [`Stop::later`].
#[cfg(unix)]
#[derive(Debug)]
pub(crate) struct Later {
    received: watch::Receiver<Option<Received>>,
}

#[cfg(unix)]
impl Later {
    /// The latest signal once another one came; never returns when none
    /// can come.
    pub(crate) async fn next(&mut self) -> Signal {
        match self.received.changed().await {
            Ok(()) => {
                let latest = self.received.borrow_and_update().map(|r| r.latest);
                latest.expect("a signal was received")
            }
            Err(_) => std::future::pending().await,
        }
    }
}

fn record(sender: &watch::Sender<Option<Received>>, signal: Signal) {
    tracing::warn!(signal = signal.number, "received {}", signal.name);
    sender.send_modify(|received| {
        let first = received.map_or(signal, |r| r.first);
        *received = Some(Received {
            first,
            latest: signal,
        });
    });
}

#[cfg(unix)]
fn listen_into(sender: watch::Sender<Option<Received>>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                Some(()) = term.recv() => Signal::TERM,
                Some(()) = int.recv() => Signal::INT,
                Some(()) = hup.recv() => Signal::HUP,
                else => return,
            };
            record(&sender, signal);
        }
    });
    Ok(())
}

#[cfg(windows)]
fn listen_into(sender: watch::Sender<Option<Received>>) -> std::io::Result<()> {
    use tokio::signal::windows;
    let mut ctrl_c = windows::ctrl_c()?;
    let mut ctrl_break = windows::ctrl_break()?;
    let mut close = windows::ctrl_close()?;
    let mut logoff = windows::ctrl_logoff()?;
    let mut shutdown = windows::ctrl_shutdown()?;
    tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                Some(()) = ctrl_c.recv() => Signal::CTRL_C,
                Some(()) = ctrl_break.recv() => Signal::CTRL_BREAK,
                Some(()) = close.recv() => Signal::CLOSE,
                Some(()) = logoff.recv() => Signal::CLOSE,
                Some(()) = shutdown.recv() => Signal::CLOSE,
                else => return,
            };
            record(&sender, signal);
        }
    });
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_is_cancelled_by_a_signal_and_the_first_signal_counts() {
        let (sender, received) = watch::channel(None);
        let stop = Stop { received };
        let mut later = stop.later();
        assert_eq!(stop.received(), None);
        // Without a signal the work's own result comes through.
        let done = stop.unless(Stage::Tags, async { Ok(7) }).await;
        assert_eq!(done, Ok(7));

        record(&sender, Signal::TERM);
        record(&sender, Signal::HUP);
        assert_eq!(stop.received(), Some(Signal::TERM));
        assert_eq!(later.next().await, Signal::HUP);
        let never = std::future::pending::<Result<()>>();
        let err = stop.unless(Stage::Download, never).await.unwrap_err();
        assert_eq!(err.exit_code(), 128 + 15);
        assert!(
            err.message()
                .starts_with("tagstrap was stopped by SIGTERM while it downloaded the script"),
            "{err}"
        );
        // A signal that came already stops the next step before it starts.
        let err = stop
            .unless::<()>(Stage::Tags, async { panic!("started") })
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 143);
    }

    #[tokio::test]
    async fn never_never_fires() {
        let stop = Stop::never();
        assert_eq!(stop.received(), None);
        let done = stop.unless(Stage::Tags, async { Ok(1) }).await;
        assert_eq!(done, Ok(1));
        tokio::select! {
            biased;
            _ = stop.first() => panic!("a signal from nowhere"),
            () = std::future::ready(()) => {}
        }
    }
}
