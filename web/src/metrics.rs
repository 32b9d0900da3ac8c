//! `/metrics`: the server's figures in Prometheus' text format — worlds
//! running per graph, ticks and late ticks per world, key-to-frame latency
//! quantiles per world, players turned away because the server was full.
//! Labels are the graph's name and, per player, the session id.

use crate::WebWorld;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use wgraph_engine::batch::BatchSummary;

/// One world's figures under `labels`.
pub fn world(out: &mut String, labels: &str, w: &WebWorld) {
    let counts = w.counts();
    let _ = writeln!(
        out,
        "wgraph_ticks_total{{{labels}}} {}",
        counts.ticks.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "wgraph_late_ticks_total{{{labels}}} {}",
        counts.late.load(Ordering::Relaxed)
    );
    let (p50, p99, n) = w.latency_probe().summary();
    if n > 0 {
        for (q, v) in [("0.5", p50), ("0.99", p99)] {
            let _ = writeln!(
                out,
                "wgraph_key_to_frame_ms{{{labels},quantile=\"{q}\"}} {v:.3}"
            );
        }
    }
    let _ = writeln!(out, "wgraph_key_to_frame_ms_count{{{labels}}} {n}");
}

/// A graph's fused model calls under `labels`: sessions' calls, model
/// calls, and how many calls each model call carried (a histogram).
pub fn batches(out: &mut String, labels: &str, summary: &BatchSummary) {
    let _ = writeln!(
        out,
        "wgraph_session_model_calls_total{{{labels}}} {}",
        summary.calls
    );
    let _ = writeln!(
        out,
        "wgraph_model_calls_total{{{labels}}} {}",
        summary.batches
    );
    let mut cumulative = 0;
    let mut sum = 0;
    for (i, n) in summary.sizes.iter().enumerate() {
        cumulative += n;
        sum += n * (i as u64 + 1);
        let _ = writeln!(
            out,
            "wgraph_batch_size_bucket{{{labels},le=\"{}\"}} {cumulative}",
            i + 1
        );
    }
    let _ = writeln!(
        out,
        "wgraph_batch_size_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(out, "wgraph_batch_size_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "wgraph_batch_size_count{{{labels}}} {cumulative}");
}

/// The header lines of every metric, once.
pub const HEADER: &str = "\
# HELP wgraph_worlds Worlds running, by graph.
# TYPE wgraph_worlds gauge
# HELP wgraph_ticks_total Ticks a world ran.
# TYPE wgraph_ticks_total counter
# HELP wgraph_late_ticks_total Ticks that started more than a period late.
# TYPE wgraph_late_ticks_total counter
# HELP wgraph_key_to_frame_ms Key change to the frame reflecting it, handed to the player's socket.
# TYPE wgraph_key_to_frame_ms summary
# HELP wgraph_session_model_calls_total Model calls sessions made (a graph's players, batching on).
# TYPE wgraph_session_model_calls_total counter
# HELP wgraph_model_calls_total Model calls run after fusing sessions' calls.
# TYPE wgraph_model_calls_total counter
# HELP wgraph_batch_size Sessions' calls carried by one model call.
# TYPE wgraph_batch_size histogram
# HELP wgraph_players_refused_total Players told the server was full.
# TYPE wgraph_players_refused_total counter
";

/// A label value: backslash, quote and line end escaped.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label("a \"b\"\\\nc"), "a \\\"b\\\"\\\\\\nc");
    }
}
