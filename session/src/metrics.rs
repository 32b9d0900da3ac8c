//! `wgraph run --metrics FILE`: a run's timings as one JSON document —
//! the graph, how it ran (workers, pipelining), ms per tick, reloads, late
//! ticks, the resident-memory series and the engine's per-node report;
//! and the summary line a run ends with ([`RunSummary`]).

use crate::rss::RssSeries;
use std::path::Path;
use wgraph_engine::metrics::MetricsReport;
use wgraph_engine::node::DisplayTarget;
use wgraph_engine::world::WorldEnd;

/// What `--metrics` writes about one run.
pub struct RunMetrics<'a> {
    /// The graph file, as the user named it.
    pub graph: &'a Path,
    pub workers: usize,
    pub pipeline_depth: usize,
    pub reloads: u64,
    pub late_ticks: u64,
    pub rss: &'a RssSeries,
    pub summary: &'a MetricsReport,
}

/// Milliseconds per tick of a run (0 for a run of no ticks).
pub fn ms_per_tick(summary: &MetricsReport) -> f64 {
    if summary.ticks > 0 {
        summary.wall_ms / summary.ticks as f64
    } else {
        0.0
    }
}

impl RunMetrics<'_> {
    /// The document.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "graph": self.graph.display().to_string(),
            "workers": self.workers,
            "pipeline_depth": self.pipeline_depth,
            "ms_per_tick": ms_per_tick(self.summary),
            "reloads": self.reloads,
            "late_ticks": self.late_ticks,
            "rss_kib": self.rss.to_json(),
            "metrics": self.summary,
        })
    }

    /// Writes the document (pretty-printed, whole or not at all) to `path`.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.to_json()).map_err(|e| e.to_string())?;
        wgraph_engine::output::write_file(path, (text + "\n").as_bytes()).map_err(|e| e.to_string())
    }
}

/// How a run that ended with `end` stopped, as its summary line says it:
/// `` (stopped early by `NODE`)``, ` (stopped by SIGNAL)` (`signal`, the
/// one that stopped it), ` (stopped)`; `None` for a run that reached its
/// tick limit.
pub fn stopped_by(end: &WorldEnd, signal: Option<&str>) -> Option<String> {
    match end {
        WorldEnd::SourceStopped(node) => Some(format!(" (stopped early by `{node}`)")),
        WorldEnd::Stopped => Some(match signal {
            Some(signal) => format!(" (stopped by {signal})"),
            None => " (stopped)".to_string(),
        }),
        WorldEnd::TickLimit => None,
    }
}

/// The summary line of a run that ended well.
pub struct RunSummary<'a> {
    pub summary: &'a MetricsReport,
    /// [`stopped_by`]'s text, or empty.
    pub stopped_by: &'a str,
    /// Reloads and late ticks, for a live run (or one that reloaded).
    pub live: Option<(u64, u64)>,
    /// Where the displayed frames went.
    pub display: &'a DisplayTarget,
}

impl RunSummary<'_> {
    /// `N ticks in T ms, M ms per tick (R ticks/s)[ (stopped…)][, reloads,
    /// late ticks]; outputs in TARGET`.
    pub fn line(&self) -> String {
        let summary = self.summary;
        let target = match self.display {
            DisplayTarget::PngDir(p) | DisplayTarget::Gif(p) | DisplayTarget::Y4m(p) => {
                p.display().to_string()
            }
            DisplayTarget::Discard => "nowhere (discarded)".to_string(),
        };
        let live = match self.live {
            Some((reloads, late)) => format!(
                ", {reloads} reload{}, {late} late tick{}",
                if reloads == 1 { "" } else { "s" },
                if late == 1 { "" } else { "s" }
            ),
            None => String::new(),
        };
        format!(
            "{} ticks in {:.1} ms, {:.2} ms per tick ({:.1} ticks/s){}{live}; outputs in {target}",
            summary.ticks,
            summary.wall_ms,
            ms_per_tick(summary),
            summary.ticks_per_second,
            self.stopped_by,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use wgraph_engine::metrics::{CopiesReport, Stats};

    fn report(ticks: usize, wall_ms: f64) -> MetricsReport {
        MetricsReport {
            ticks,
            wall_ms,
            ticks_per_second: 100.0,
            tick: Stats::of(&[]),
            nodes: Vec::new(),
            host_device_copies: CopiesReport {
                per_tick_mean: 0.0,
                per_tick_max: 0,
                host_to_device: 0,
                host_to_device_bytes: 0,
                device_to_host: 0,
                device_to_host_bytes: 0,
            },
        }
    }

    #[test]
    fn the_summary_line_says_how_the_run_went() {
        let summary = report(4, 40.0);
        let stopped = stopped_by(&WorldEnd::Stopped, Some("SIGINT")).unwrap();
        let line = RunSummary {
            summary: &summary,
            stopped_by: &stopped,
            live: Some((1, 2)),
            display: &DisplayTarget::PngDir(PathBuf::from("out")),
        }
        .line();
        assert_eq!(
            line,
            "4 ticks in 40.0 ms, 10.00 ms per tick (100.0 ticks/s) (stopped by SIGINT), \
             1 reload, 2 late ticks; outputs in out"
        );
        assert_eq!(stopped_by(&WorldEnd::TickLimit, None), None);
        assert_eq!(
            stopped_by(&WorldEnd::SourceStopped("keys".into()), None).as_deref(),
            Some(" (stopped early by `keys`)")
        );
    }

    #[test]
    fn the_metrics_document_is_written_with_ms_per_tick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let rss = RssSeries::new(100);
        let summary = report(0, 5.0);
        RunMetrics {
            graph: Path::new("a.world"),
            workers: 2,
            pipeline_depth: 3,
            reloads: 0,
            late_ticks: 0,
            rss: &rss,
            summary: &summary,
        }
        .write(&path)
        .unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["graph"], "a.world");
        assert_eq!(json["workers"], 2);
        assert_eq!(json["ms_per_tick"], 0.0);
        assert_eq!(json["metrics"]["ticks"], 0);
    }
}
