//! What one fleet's boot looked like from the script host, and the figures
//! both readings print from it (real run and model alike): total requests;
//! the largest number of requests that arrived in any 1 s window and in any
//! 100 ms window (half-open windows `[t, t + w)`), over all requests and
//! over retries only (each instance's first request left out: they all
//! arrive together at boot whatever the schedule); the mean rate (requests
//! / time until all done); the time from the boot until the last instance
//! has its script; tries per instance.

/// One fleet's boot, as the host and the instances saw it.
pub struct Boot {
    /// Arrival of every request at the host, seconds since the boot, sorted.
    pub arrivals: Vec<f64>,
    /// Arrivals of retries only (every request but each instance's first), sorted.
    pub retries: Vec<f64>,
    /// When each instance had its script, seconds since the boot; `None`
    /// if it gave up.
    pub done: Vec<Option<f64>>,
    pub tries: Vec<u32>,
}

/// The figures of one [`Boot`].
#[derive(Clone, Default)]
pub struct Figures {
    pub requests: f64,
    pub peak_1s: f64,
    pub peak_100ms: f64,
    pub retry_peak_1s: f64,
    pub retry_peak_100ms: f64,
    pub mean_rate: f64,
    pub all_done: f64,
    pub tries_mean: f64,
    pub tries_max: f64,
    pub gave_up: f64,
}

impl Boot {
    pub fn figures(&self) -> Figures {
        let all_done = self
            .done
            .iter()
            .map(|d| d.unwrap_or(f64::NAN))
            .fold(0.0, f64::max);
        let n = self.tries.len().max(1) as f64;
        Figures {
            requests: self.arrivals.len() as f64,
            peak_1s: max_in_window(&self.arrivals, 1.0) as f64,
            peak_100ms: max_in_window(&self.arrivals, 0.1) as f64,
            retry_peak_1s: max_in_window(&self.retries, 1.0) as f64,
            retry_peak_100ms: max_in_window(&self.retries, 0.1) as f64,
            mean_rate: self.arrivals.len() as f64 / all_done.max(1e-9),
            all_done,
            tries_mean: self.tries.iter().map(|&t| t as f64).sum::<f64>() / n,
            tries_max: self.tries.iter().copied().max().unwrap_or(0) as f64,
            gave_up: self.done.iter().filter(|d| d.is_none()).count() as f64,
        }
    }

    /// Requests arriving in [k, k + 1) s, up to the last one.
    pub fn per_second(&self) -> Vec<usize> {
        let last = self.arrivals.last().copied().unwrap_or(0.0);
        let mut counts = vec![0; last.floor() as usize + 1];
        let last_bucket = counts.len() - 1;
        for &t in &self.arrivals {
            counts[(t.max(0.0).floor() as usize).min(last_bucket)] += 1;
        }
        counts
    }
}

/// The most `sorted` times in any half-open window `[t, t + width)`; such
/// a window holds the most when it starts at one of the times.
fn max_in_window(sorted: &[f64], width: f64) -> usize {
    let mut end = 0;
    let mut best = 0;
    for (start, &t) in sorted.iter().enumerate() {
        while end < sorted.len() && sorted[end] < t + width {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}
