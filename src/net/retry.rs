//! Retrying (SPEC §6): one loop for every resource — the script, the
//! credential store, the metadata service. A try either succeeds, fails for
//! good, or fails transiently; transient failures are retried with exponential
//! backoff and full jitter until the deadline, with short waits while the
//! network itself is down, and `Retry-After` honoured.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
// Tokio's clock, so that the deadline and the waits are measured alike
// (and tests with a paused clock see both move together).
use tokio::time::Instant;

use crate::error::{Error, Result};

/// First backoff step after a server-side failure (503, 429, a truncated
/// body). A second: a host that answered "busy" is told so by a whole fleet
/// at once, and at 250 ms the fleet's retries in the first seconds were
/// heavier than a naive 1 s loop's (bench/README.md, fleet); a single blip
/// still costs only half a second on average.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest backoff step. Large enough that a fleet booting at once against a
/// struggling host spreads out, small enough that a host that recovers is
/// used within seconds rather than minutes.
pub const BACKOFF_CAP: Duration = Duration::from_secs(8);
/// No backoff step is longer than a fifth of the time already spent on the
/// resource (but 2 s is always allowed): after a host recovers, every
/// instance has its answer within 1.2 times the outage, however long the
/// outage was, while a long outage still spreads the fleet up to
/// [`BACKOFF_CAP`].
pub const LATENESS_SHARE: u32 = 5;
pub const LATENESS_FLOOR: Duration = Duration::from_secs(2);
/// Longest wait while the network itself is down (connection refused, no
/// route, DNS not answering, the proxy not listening yet). Such a try costs
/// nobody anything, and the script should start within about a second of the
/// network coming up.
pub const NETWORK_DOWN_CAP: Duration = Duration::from_millis(250);
/// Shortest wait between two tries, so a failure that returns instantly does
/// not become a busy loop.
pub const MIN_WAIT: Duration = Duration::from_millis(20);

/// Why a try failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another try.
    Transient(Transient),
    /// Not worth another try: this error is final.
    Permanent(Error),
}

#[derive(Debug, Clone)]
pub struct Transient {
    /// What failed, for the log line and the final error; no secrets.
    pub(crate) reason: String,
    pub(crate) class: Class,
    /// From a `Retry-After` header.
    pub(crate) retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Nothing answered: short waits.
    NetworkDown,
    /// Something answered and asked us to come back: exponential backoff.
    ServerBusy,
}

impl Failure {
    pub(crate) fn network_down(reason: impl Into<String>) -> Failure {
        Failure::Transient(Transient {
            reason: reason.into(),
            class: Class::NetworkDown,
            retry_after: None,
        })
    }

    pub fn busy(reason: impl Into<String>, retry_after: Option<Duration>) -> Failure {
        Failure::Transient(Transient {
            reason: reason.into(),
            class: Class::ServerBusy,
            retry_after,
        })
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Permanent(error)
    }
}

/// How many tries a resource took, and how long: for the report.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Tries {
    pub tries: u32,
    pub seconds: f64,
}

/// The wait before try `next_try` (2 for the first retry), given the
/// failure, the time already spent on the resource, and a uniform random
/// number in [0, 1). Pure, so the schedule is testable.
pub fn wait_before(next_try: u32, failure: &Transient, unit: f64, elapsed: Duration) -> Duration {
    Backoff::TAGSTRAP.wait_before(next_try, failure, unit, elapsed)
}

/// The two constants of the server-busy backoff. tagstrap only ever uses
/// [`Backoff::TAGSTRAP`]; the type is public for benches/fleet, whose
/// what-if rows run this one formula with other constants rather than a
/// copy of it that could drift from the real schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// First step after a server-side failure.
    pub base: Duration,
    /// Longest step.
    pub cap: Duration,
}

impl Backoff {
    pub(crate) const TAGSTRAP: Backoff = Backoff {
        base: BACKOFF_BASE,
        cap: BACKOFF_CAP,
    };

    /// [`wait_before`] with these constants.
    pub fn wait_before(
        &self,
        next_try: u32,
        failure: &Transient,
        unit: f64,
        elapsed: Duration,
    ) -> Duration {
        if let Some(after) = failure.retry_after {
            return after.max(MIN_WAIT);
        }
        let cap = match failure.class {
            Class::NetworkDown => NETWORK_DOWN_CAP,
            Class::ServerBusy => self.cap.min((elapsed / LATENESS_SHARE).max(LATENESS_FLOOR)),
        };
        let exponent = next_try.saturating_sub(2).min(16);
        let ceiling = self.base.saturating_mul(1u32 << exponent).min(cap);
        // Full jitter: anywhere from nothing to the ceiling.
        ceiling.mul_f64(unit.clamp(0.0, 1.0)).max(MIN_WAIT)
    }
}

/// Runs `attempt` until it succeeds, fails permanently, or `budget` is spent.
/// `what` names the resource in log lines and in the final error, e.g.
/// "script https://repo/install.sh". Each try is also bounded by the time
/// left, so a hanging server cannot outlast the deadline.
pub(crate) async fn retry<T, F, Fut>(
    what: &str,
    budget: Duration,
    tries: &mut Tries,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = std::result::Result<T, Failure>>,
{
    let start = Instant::now();
    let mut number = 0u32;
    let mut last: Option<Transient> = None;
    loop {
        number += 1;
        tries.tries = number;
        let left = budget.saturating_sub(start.elapsed());
        let outcome = tokio::time::timeout(left, attempt(number)).await;
        tries.seconds = start.elapsed().as_secs_f64();
        let failure = match outcome {
            Ok(Ok(value)) => {
                if number > 1 {
                    tracing::info!(
                        try_number = number,
                        "{what}: try {number} succeeded after {:.1} s",
                        tries.seconds
                    );
                }
                return Ok(value);
            }
            Ok(Err(Failure::Permanent(error))) => return Err(error),
            Ok(Err(Failure::Transient(failure))) => failure,
            Err(_elapsed) => {
                let reason = match &last {
                    Some(l) => format!("try {number} was still running (earlier: {})", l.reason),
                    None => format!("try {number} was still running"),
                };
                return Err(gave_up(what, budget, number, &reason));
            }
        };
        let left = budget.saturating_sub(start.elapsed());
        let wait = wait_before(
            number + 1,
            &failure,
            rand::rng().random::<f64>(),
            start.elapsed(),
        );
        if wait >= left {
            let reason = match failure.retry_after {
                Some(after) if after >= left => format!(
                    "{}; it asked to retry after {} s, beyond the deadline",
                    failure.reason,
                    after.as_secs()
                ),
                _ => failure.reason.clone(),
            };
            return Err(gave_up(what, budget, number, &reason));
        }
        tracing::warn!(
            try_number = number,
            wait_seconds = round2(wait.as_secs_f64()),
            seconds_left = round2(left.as_secs_f64()),
            "{what}: try {number} failed: {}; next try in {:.2} s ({:.0} s left)",
            failure.reason,
            wait.as_secs_f64(),
            left.as_secs_f64()
        );
        last = Some(failure);
        tokio::time::sleep(wait).await;
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn gave_up(what: &str, budget: Duration, tries: u32, reason: &str) -> Error {
    Error::Unavailable(format!(
        "{what}: gave up after {tries} {} over the {} s deadline; last: {reason}. Check that it is \
         reachable from this instance, or raise --deadline",
        if tries == 1 { "try" } else { "tries" },
        budget.as_secs_f64().round()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(class: Class, retry_after: Option<Duration>) -> Transient {
        Transient {
            reason: "x".into(),
            class,
            retry_after,
        }
    }

    const LONG_AGO: Duration = Duration::from_secs(3600);

    #[test]
    fn server_backoff_doubles_up_to_its_cap_with_full_jitter() {
        let busy = transient(Class::ServerBusy, None);
        let ceilings: Vec<Duration> = (2..10)
            .map(|n| wait_before(n, &busy, 1.0, LONG_AGO))
            .collect();
        assert_eq!(ceilings[0], BACKOFF_BASE);
        assert_eq!(ceilings[1], BACKOFF_BASE * 2);
        assert_eq!(ceilings[2], BACKOFF_BASE * 4);
        assert_eq!(*ceilings.last().unwrap(), BACKOFF_CAP);
        assert_eq!(
            wait_before(4, &busy, 0.5, LONG_AGO),
            BACKOFF_BASE * 2,
            "half of 4×base"
        );
        assert_eq!(
            wait_before(5, &busy, 0.0, LONG_AGO),
            MIN_WAIT,
            "never a busy loop"
        );
        assert_eq!(
            wait_before(1000, &busy, 1.0, LONG_AGO),
            BACKOFF_CAP,
            "no overflow"
        );
    }

    #[test]
    fn other_constants_change_only_base_and_cap() {
        // What benches/fleet's what-if rows rely on: the same formula, with
        // the lateness bound and Retry-After as tagstrap has them.
        let busy = transient(Class::ServerBusy, None);
        let quick = Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(2),
        };
        let ceilings: Vec<Duration> = (2..7)
            .map(|n| quick.wait_before(n, &busy, 1.0, LONG_AGO))
            .collect();
        let ms = Duration::from_millis;
        assert_eq!(ceilings, [ms(250), ms(500), ms(1000), ms(2000), ms(2000)]);
        let slow = Backoff {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(16),
        };
        assert_eq!(
            slow.wait_before(9, &busy, 1.0, Duration::from_secs(25)),
            Duration::from_secs(5),
            "the lateness bound still holds"
        );
        let told = transient(Class::ServerBusy, Some(Duration::from_secs(7)));
        assert_eq!(
            slow.wait_before(2, &told, 0.0, LONG_AGO),
            Duration::from_secs(7)
        );
        assert_eq!(Backoff::TAGSTRAP.base, BACKOFF_BASE);
        assert_eq!(Backoff::TAGSTRAP.cap, BACKOFF_CAP);
    }

    #[test]
    fn no_step_is_longer_than_a_fifth_of_the_time_spent_or_2_s() {
        let busy = transient(Class::ServerBusy, None);
        let s = Duration::from_secs;
        // Early on, 2 s at most: a 10 s outage is over by 12 s for everyone.
        assert_eq!(wait_before(9, &busy, 1.0, s(0)), LATENESS_FLOOR);
        assert_eq!(wait_before(9, &busy, 1.0, s(10)), LATENESS_FLOOR);
        // Later, a fifth of the time spent, up to the cap.
        assert_eq!(wait_before(9, &busy, 1.0, s(25)), s(5));
        assert_eq!(wait_before(9, &busy, 1.0, s(100)), BACKOFF_CAP);
        for elapsed in [0, 3, 10, 20, 30, 60, 600] {
            for n in 2..30 {
                let wait = wait_before(n, &busy, 1.0, s(elapsed));
                assert!(wait <= (s(elapsed) / LATENESS_SHARE).max(LATENESS_FLOOR));
            }
        }
    }

    #[test]
    fn network_down_waits_stay_short() {
        let down = transient(Class::NetworkDown, None);
        for n in 2..50 {
            assert!(wait_before(n, &down, 1.0, LONG_AGO) <= NETWORK_DOWN_CAP);
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let busy = transient(Class::ServerBusy, Some(Duration::from_secs(3)));
        assert_eq!(
            wait_before(2, &busy, 0.0, Duration::ZERO),
            Duration::from_secs(3)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_and_counts_tries() {
        let mut tries = Tries::default();
        let value = retry(
            "thing",
            Duration::from_secs(60),
            &mut tries,
            |n| async move {
                if n < 4 {
                    Err(Failure::busy("503", None))
                } else {
                    Ok(n)
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(value, 4);
        assert_eq!(tries.tries, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_stops_at_once() {
        let mut tries = Tries::default();
        let err = retry("thing", Duration::from_secs(60), &mut tries, |_| async {
            Err::<(), _>(Failure::Permanent(Error::NotFound("404".into())))
        })
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 66);
        assert_eq!(tries.tries, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_it_with_the_last_reason() {
        let mut tries = Tries::default();
        let err = retry("script x", Duration::from_secs(5), &mut tries, |_| async {
            Err::<(), _>(Failure::network_down("connection refused"))
        })
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 69);
        assert!(
            err.message().starts_with("script x: gave up after"),
            "{err}"
        );
        assert!(err.message().contains("connection refused"), "{err}");
        assert!(
            tries.tries > 10,
            "short waits while the network is down: {}",
            tries.tries
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_try_cannot_outlast_the_deadline() {
        let mut tries = Tries::default();
        let err = retry("x", Duration::from_secs(5), &mut tries, |_| async {
            std::future::pending::<std::result::Result<(), Failure>>().await
        })
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 69);
        assert!(err.message().contains("still running"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_deadline_gives_up_and_says_so() {
        let mut tries = Tries::default();
        let err = retry("x", Duration::from_secs(5), &mut tries, |_| async {
            Err::<(), _>(Failure::busy("429", Some(Duration::from_secs(60))))
        })
        .await
        .unwrap_err();
        assert_eq!(tries.tries, 1);
        assert!(err.message().contains("retry after 60 s"), "{err}");
    }
}
