//! Per-node timings, always collected (one `Instant` pair and a push per
//! evaluation), summarised on request.

use crate::graph::{Graph, NodeId};
use serde::Serialize;
use std::time::Duration;

/// Raw timings of one run.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Per node (indexed like [`Graph::nodes`]): one duration per evaluation.
    /// A caller's time includes the calls it made.
    pub node_times: Vec<Vec<Duration>>,
    /// Per completed tick: from its first node starting to its last finishing.
    pub tick_latency: Vec<Duration>,
    /// Wall time of the whole run.
    pub wall: Duration,
}

/// Summary statistics of a list of durations, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub total_ms: f64,
}

impl Stats {
    pub fn of(samples: &[Duration]) -> Stats {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let total: f64 = ms.iter().sum();
        let pick = |q: f64| -> f64 {
            if ms.is_empty() {
                return 0.0;
            }
            let i = ((ms.len() - 1) as f64 * q).round() as usize;
            ms[i.min(ms.len() - 1)]
        };
        Stats {
            count: ms.len(),
            mean_ms: if ms.is_empty() {
                0.0
            } else {
                total / ms.len() as f64
            },
            p50_ms: pick(0.5),
            p99_ms: pick(0.99),
            total_ms: total,
        }
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
}

impl Metrics {
    pub(crate) fn new(nodes: usize) -> Self {
        Metrics {
            node_times: vec![Vec::new(); nodes],
            ..Metrics::default()
        }
    }

    pub(crate) fn record(&mut self, node: NodeId, d: Duration) {
        if let Some(v) = self.node_times.get_mut(node.0) {
            v.push(d);
        }
    }

    /// Summarises per node (nodes that never ran are left out).
    pub fn report(&self, graph: &Graph) -> MetricsReport {
        let ticks = self.tick_latency.len();
        let wall_s = self.wall.as_secs_f64();
        MetricsReport {
            ticks,
            wall_ms: wall_s * 1e3,
            ticks_per_second: if wall_s > 0.0 {
                ticks as f64 / wall_s
            } else {
                0.0
            },
            tick: Stats::of(&self.tick_latency),
            nodes: graph
                .nodes
                .iter()
                .zip(&self.node_times)
                .filter(|(_, t)| !t.is_empty())
                .map(|(n, t)| NodeReport {
                    name: n.name.clone(),
                    kind: n.kind.to_string(),
                    stats: Stats::of(t),
                })
                .collect(),
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
        assert!((s.p50_ms - 51.0).abs() < 1e-9 || (s.p50_ms - 50.0).abs() < 1e-9);
        assert!((s.p99_ms - 99.0).abs() < 1.01);
        assert_eq!(Stats::of(&[]).count, 0);
    }
}
