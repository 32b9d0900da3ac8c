//! Per-node timings, always collected, kept in fixed-size summaries.
//!
//! A world may run for days, so nothing here grows per tick: every series of
//! durations is a [`Timings`] — exact count, total, min and max, plus an
//! HDR histogram (crate `hdrhistogram`, two significant figures: percentiles
//! within 1%) whose size depends only on the range of values seen, never on
//! their number. [`Metrics::report`] turns them into a serialisable
//! [`MetricsReport`].

use crate::graph::{Graph, NodeId};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// A bounded summary of a series of durations.
#[derive(Debug, Clone)]
pub struct Timings {
    count: u64,
    total: Duration,
    min: Duration,
    max: Duration,
    /// Nanoseconds; auto-resizing, so its size follows the largest value seen.
    histogram: Histogram<u64>,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            count: 0,
            total: Duration::ZERO,
            min: Duration::MAX,
            max: Duration::ZERO,
            // Two significant figures: 1% resolution, a few KiB per series.
            histogram: Histogram::new(2).expect("2 significant figures is a valid precision"),
        }
    }
}

impl Timings {
    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        self.count += 1;
        self.total = self.total.saturating_add(d);
        self.min = self.min.min(d);
        self.max = self.max.max(d);
        // The histogram grows to the largest value seen, up to i64::MAX / 2 ns
        // (146 years); anything longer counts as that.
        let ns = u64::try_from(d.as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1, i64::MAX as u64 / 2);
        if self.histogram.record(ns).is_err() {
            self.histogram.saturating_record(ns);
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of every sample.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// The `q`-quantile (0..=1), within the histogram's 1% resolution.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let ns = self.histogram.value_at_quantile(q.clamp(0.0, 1.0));
        // The histogram reports a bucket's upper edge: keep it within the samples.
        Duration::from_nanos(ns).clamp(self.min, self.max)
    }

    /// Approximate heap bytes held (for the bounded-memory test).
    pub fn heap_bytes(&self) -> usize {
        self.histogram.distinct_values() * std::mem::size_of::<u64>()
    }

    /// Summary in milliseconds.
    pub fn stats(&self) -> Stats {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Stats {
            count: usize::try_from(self.count).unwrap_or(usize::MAX),
            mean_ms: if self.count == 0 {
                0.0
            } else {
                ms(self.total) / self.count as f64
            },
            p50_ms: ms(self.quantile(0.5)),
            p99_ms: ms(self.quantile(0.99)),
            total_ms: ms(self.total),
        }
    }
}

/// Timings of one run.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Per node (indexed like [`Graph::nodes`]): one sample per evaluation.
    /// A caller's time includes the calls it made.
    pub node_times: Vec<Timings>,
    /// Per completed tick: from its first node starting to its last finishing.
    pub tick_latency: Timings,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Host↔device copies per completed tick (see [`crate::transfers`]).
    pub copies: Copies,
}

/// Host↔device copies per tick: counts and maxima, no per-tick history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copies {
    /// Ticks recorded.
    pub ticks: u64,
    /// Everything copied during those ticks.
    pub total: crate::transfers::Totals,
    /// The most copies (both directions) one tick made.
    pub max_per_tick: u64,
    /// The copies of the last tick recorded.
    pub last_tick: u64,
}

impl Copies {
    /// Adds one tick's copies.
    pub fn record(&mut self, tick: crate::transfers::Totals) {
        let t = &mut self.total;
        t.host_to_device = t.host_to_device.saturating_add(tick.host_to_device);
        t.host_to_device_bytes = t
            .host_to_device_bytes
            .saturating_add(tick.host_to_device_bytes);
        t.device_to_host = t.device_to_host.saturating_add(tick.device_to_host);
        t.device_to_host_bytes = t
            .device_to_host_bytes
            .saturating_add(tick.device_to_host_bytes);
        self.ticks = self.ticks.saturating_add(1);
        self.max_per_tick = self.max_per_tick.max(tick.copies());
        self.last_tick = tick.copies();
    }

    /// The serialisable summary.
    pub fn report(&self) -> CopiesReport {
        CopiesReport {
            per_tick_mean: if self.ticks == 0 {
                0.0
            } else {
                self.total.copies() as f64 / self.ticks as f64
            },
            per_tick_max: self.max_per_tick,
            host_to_device: self.total.host_to_device,
            host_to_device_bytes: self.total.host_to_device_bytes,
            device_to_host: self.total.device_to_host,
            device_to_host_bytes: self.total.device_to_host_bytes,
        }
    }
}

/// Host↔device copies of a run, in a report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CopiesReport {
    /// Mean copies (both directions) per tick.
    pub per_tick_mean: f64,
    /// The most copies one tick made.
    pub per_tick_max: u64,
    /// Host→device copies in all.
    pub host_to_device: u64,
    /// Bytes copied host→device.
    pub host_to_device_bytes: u64,
    /// Device→host copies in all.
    pub device_to_host: u64,
    /// Bytes copied device→host.
    pub device_to_host_bytes: u64,
}

/// Summary statistics of a series of durations, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub total_ms: f64,
}

impl Stats {
    /// Statistics of a list of samples.
    pub fn of(samples: &[Duration]) -> Stats {
        let mut t = Timings::default();
        for d in samples {
            t.record(*d);
        }
        t.stats()
    }
}

/// One node's row in a report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeReport {
    pub name: String,
    pub kind: String,
    #[serde(flatten)]
    pub stats: Stats,
}

/// A serialisable summary of a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricsReport {
    pub ticks: usize,
    pub wall_ms: f64,
    pub ticks_per_second: f64,
    pub tick: Stats,
    pub nodes: Vec<NodeReport>,
    /// Host↔device copies during the ticks (all zero on the CPU provider).
    pub host_device_copies: CopiesReport,
}

impl Metrics {
    /// Empty metrics for a graph of `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Metrics {
            node_times: vec![Timings::default(); nodes],
            ..Metrics::default()
        }
    }

    pub(crate) fn record(&mut self, node: NodeId, d: Duration) {
        if let Some(t) = self.node_times.get_mut(node.0) {
            t.record(d);
        }
    }

    /// Approximate heap bytes held by every series.
    pub fn heap_bytes(&self) -> usize {
        self.node_times
            .iter()
            .chain([&self.tick_latency])
            .map(Timings::heap_bytes)
            .sum()
    }

    /// Summarises per node (nodes that never ran are left out).
    pub fn report(&self, graph: &Graph) -> MetricsReport {
        let ticks = usize::try_from(self.tick_latency.count()).unwrap_or(usize::MAX);
        let wall_s = self.wall.as_secs_f64();
        MetricsReport {
            ticks,
            wall_ms: wall_s * 1e3,
            ticks_per_second: if wall_s > 0.0 {
                ticks as f64 / wall_s
            } else {
                0.0
            },
            tick: self.tick_latency.stats(),
            nodes: graph
                .nodes
                .iter()
                .zip(&self.node_times)
                .filter(|(_, t)| t.count() > 0)
                .map(|(n, t)| NodeReport {
                    name: n.name.clone(),
                    kind: n.kind.to_string(),
                    stats: t.stats(),
                })
                .collect(),
            host_device_copies: self.copies.report(),
        }
    }
}

impl MetricsReport {
    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} ticks in {:.1} ms ({:.1} ticks/s); per tick: mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms\n",
            self.ticks,
            self.wall_ms,
            self.ticks_per_second,
            self.tick.mean_ms,
            self.tick.p50_ms,
            self.tick.p99_ms
        );
        let c = &self.host_device_copies;
        out.push_str(&format!(
            "host<->device copies per tick: mean {:.1}, max {} ({} up, {} down in all)\n",
            c.per_tick_mean, c.per_tick_max, c.host_to_device, c.device_to_host
        ));
        out.push_str(&format!(
            "{:<20} {:<14} {:>7} {:>10} {:>10} {:>10}\n",
            "node", "kind", "count", "mean ms", "p50 ms", "p99 ms"
        ));
        for n in &self.nodes {
            out.push_str(&format!(
                "{:<20} {:<14} {:>7} {:>10.3} {:>10.3} {:>10.3}\n",
                n.name, n.kind, n.stats.count, n.stats.mean_ms, n.stats.p50_ms, n.stats.p99_ms
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Stats::of(&d);
        assert_eq!(s.count, 100);
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        assert!((s.p50_ms - 50.0).abs() <= 0.51, "{}", s.p50_ms);
        assert!((s.p99_ms - 99.0).abs() <= 1.0, "{}", s.p99_ms);
        assert!((s.total_ms - 5050.0).abs() < 1e-6);
        assert_eq!(Stats::of(&[]).count, 0);
        assert_eq!(Stats::of(&[]).p99_ms, 0.0);
    }

    #[test]
    fn memory_does_not_grow_with_the_number_of_samples() {
        let mut t = Timings::default();
        let sample = |i: u64| Duration::from_micros(100 + (i * 7919) % 20_000);
        for i in 0..10_000 {
            t.record(sample(i));
        }
        let after_10k = t.heap_bytes();
        for i in 0..1_000_000 {
            t.record(sample(i));
        }
        assert_eq!(t.heap_bytes(), after_10k);
        assert_eq!(t.count(), 1_010_000);
        assert!(after_10k < 64 * 1024, "{after_10k} bytes");
    }
}
