//! Resident memory of this process over a run, in a bounded series: a
//! world that runs for days must show that it does not grow.
//!
//! [`RssSeries`] samples `VmRSS` from `/proc/self/status` every `interval`
//! ticks; when it holds [`RssSeries::CAP`] samples it drops every other one
//! and doubles the interval, so it never holds more than `CAP` whatever the
//! run's length. On systems without `/proc` it stays empty.

use serde_json::json;

/// RSS samples `(tick, KiB)`, at most [`RssSeries::CAP`].
pub struct RssSeries {
    interval: u64,
    samples: Vec<(u64, u64)>,
}

impl RssSeries {
    /// Most samples kept.
    pub const CAP: usize = 128;

    /// Samples every `interval` ticks (at least 1) at first.
    pub fn new(interval: u64) -> Self {
        RssSeries {
            interval: interval.max(1),
            samples: Vec::new(),
        }
    }

    /// Called after each tick.
    pub fn tick(&mut self, tick: u64) {
        if !tick.is_multiple_of(self.interval) {
            return;
        }
        let Some(kib) = current_rss_kib() else { return };
        self.samples.push((tick, kib));
        if self.samples.len() >= Self::CAP {
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.interval *= 2;
            // Keep samples on the new grid only.
            let interval = self.interval;
            self.samples.retain(|(t, _)| t.is_multiple_of(interval));
        }
    }

    /// The samples and, after the first tenth of the run (warm-up), the
    /// spread of the rest: `(max − min) / min`.
    pub fn to_json(&self) -> serde_json::Value {
        let last = self.samples.last().map_or(0, |s| s.0);
        let steady: Vec<u64> = self
            .samples
            .iter()
            .filter(|(t, _)| *t >= last / 10)
            .map(|s| s.1)
            .collect();
        let spread = match (steady.iter().min(), steady.iter().max()) {
            (Some(&lo), Some(&hi)) if lo > 0 => Some((hi - lo) as f64 / lo as f64),
            _ => None,
        };
        json!({
            "samples": self.samples,
            "steady_spread": spread,
        })
    }
}

/// `VmRSS` of this process in KiB (Linux).
pub fn current_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_evenly_spaced() {
        let mut s = RssSeries::new(10);
        for t in 0..1_000_000 {
            s.tick(t);
        }
        assert!(s.samples.len() < RssSeries::CAP);
        if cfg!(target_os = "linux") {
            assert!(s.samples.len() >= RssSeries::CAP / 4, "{}", s.samples.len());
            let gaps: Vec<u64> = s.samples.windows(2).map(|w| w[1].0 - w[0].0).collect();
            assert!(gaps.windows(2).all(|g| g[0] == g[1]), "{gaps:?}");
        }
    }
}
