//! The statistics the benches print and their units. One definition of
//! each figure, so that a "median" or a "p90" means the same in every
//! bench and in docs/benchmarks.md.

use std::time::Duration;

/// Order statistics of a sample of times.
pub struct Stats {
    pub min: Duration,
    /// The middle one, or the mean of the two middle ones.
    pub median: Duration,
    /// Nearest rank.
    pub p90: Duration,
    /// Nearest rank.
    pub p95: Duration,
    pub max: Duration,
}

impl Stats {
    /// All zero for no samples.
    pub fn of(samples: &[Duration]) -> Stats {
        let mut v = samples.to_vec();
        v.sort();
        let n = v.len();
        if n == 0 {
            return Stats {
                min: Duration::ZERO,
                median: Duration::ZERO,
                p90: Duration::ZERO,
                p95: Duration::ZERO,
                max: Duration::ZERO,
            };
        }
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2
        };
        let nearest_rank = |percent: usize| v[(n * percent).div_ceil(100).max(1) - 1];
        Stats {
            min: v[0],
            median,
            p90: nearest_rank(90),
            p95: nearest_rank(95),
            max: v[n - 1],
        }
    }
}

/// `d` in milliseconds with `places` decimals: "11.2 ms".
pub fn ms(d: Duration, places: usize) -> String {
    format!("{:.*} ms", places, d.as_secs_f64() * 1e3)
}

/// KiB (as rusage gives them) in MiB: "5.9 MiB".
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
