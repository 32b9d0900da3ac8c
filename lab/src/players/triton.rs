//! Triton's side of `bench --players`: the servers' per-model counters
//! (`ModelStatistics`, read with `wgraph-triton`'s client) around each
//! timed run, and what its dynamic batcher fused.
//!
//! Main types: [`TritonModel`] (one model's counters over a mode's rounds,
//! with requests and rows per execution); the reader is private.

use super::{Figures, PlayersRow};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use wgraph_triton::{ModelCounts, TritonBackend};

/// One model's counters on Triton over a mode's timed runs (all rounds together).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TritonModel {
    /// Requests answered.
    pub requests: u64,
    /// Rows inferred (requests times their batch size).
    pub rows: u64,
    /// Model executions.
    pub executions: u64,
    /// Requests per execution: how many calls Triton fused.
    pub requests_per_execution: Option<f64>,
    /// Batch rows per execution.
    pub rows_per_execution: Option<f64>,
}

/// Reads the Triton servers' per-model counters around each timed run
/// (nothing when no model is on Triton).
pub(super) struct TritonWatch {
    pub(super) reader: TritonBackend,
    /// The servers the in-process sessions loaded models from.
    pub(super) servers: BTreeSet<String>,
    warn: Option<fn(&str)>,
    warned: bool,
}

impl TritonWatch {
    pub(super) fn new(reader: TritonBackend, warn: Option<fn(&str)>) -> Self {
        TritonWatch {
            reader,
            servers: BTreeSet::new(),
            warn,
            warned: false,
        }
    }

    /// Every model's counters on the servers in use, once they have
    /// settled: Triton counts a request after it has answered it, so a
    /// reading right after the last answer may miss it. Read until two
    /// readings 50 ms apart agree (at most 1 s).
    pub(super) fn read(&mut self) -> Option<BTreeMap<String, ModelCounts>> {
        let mut last = self.read_once()?;
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(50));
            let next = self.read_once()?;
            if next == last {
                break;
            }
            last = next;
        }
        Some(last)
    }

    /// Every model's counters on the servers in use, by model name
    /// (`server/model` when there are several servers); `None` when no
    /// model is on Triton or a server's statistics cannot be read (said
    /// once).
    fn read_once(&mut self) -> Option<BTreeMap<String, ModelCounts>> {
        if self.servers.is_empty() {
            return None;
        }
        let mut all = BTreeMap::new();
        let several = self.servers.len() > 1;
        for server in &self.servers {
            match self.reader.statistics(server) {
                Ok(counts) => {
                    for (model, c) in counts {
                        let key = if several {
                            format!("{server}/{model}")
                        } else {
                            model
                        };
                        all.insert(key, c);
                    }
                }
                Err(e) => {
                    if !self.warned
                        && let Some(warn) = self.warn
                    {
                        warn(&format!(
                            "warning: no Triton statistics (requests per execution): {e}"
                        ));
                    }
                    self.warned = true;
                    return None;
                }
            }
        }
        Some(all)
    }
}

/// Each model's counters between two readings (models without requests
/// between them left out).
pub(super) fn counts_between(
    before: Option<BTreeMap<String, ModelCounts>>,
    after: Option<BTreeMap<String, ModelCounts>>,
) -> Option<BTreeMap<String, ModelCounts>> {
    let (before, after) = (before?, after?);
    Some(
        after
            .into_iter()
            .map(|(model, a)| {
                let d = before.get(&model).map_or(a, |b| a.since(b));
                (model, d)
            })
            .filter(|(_, d)| d.requests > 0 || d.executions > 0)
            .collect(),
    )
}

/// Per model on Triton, the rounds' counters summed and their ratios;
/// `None` when no model is on Triton.
pub(super) fn summary(rounds: &[Figures]) -> Option<BTreeMap<String, TritonModel>> {
    let mut sum: BTreeMap<String, ModelCounts> = BTreeMap::new();
    let mut any = false;
    for f in rounds {
        for (model, c) in f.triton.iter().flatten() {
            any = true;
            let s = sum.entry(model.clone()).or_default();
            *s = s.plus(c);
        }
        any |= f.triton.is_some();
    }
    any.then(|| {
        sum.into_iter()
            .map(|(model, c)| {
                let row = TritonModel {
                    requests: c.requests,
                    rows: c.rows,
                    executions: c.executions,
                    requests_per_execution: c.requests_per_execution(),
                    rows_per_execution: c.rows_per_execution(),
                };
                (model, row)
            })
            .collect()
    })
}

/// The second table: per mode and model on Triton, what its dynamic
/// batcher fused (all rounds together); empty when no server was used.
pub(super) fn table(rows: &[PlayersRow], servers: &[String]) -> String {
    if servers.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "\nTriton's dynamic batcher ({}; the rounds' requests together):\n",
        servers.join(", ")
    );
    text += &format!(
        "{:>7}  {:<9}  {:<16}  {:>9}  {:>9}  {:>10}  {:>9}  {:>9}\n",
        "players", "mode", "model", "requests", "rows", "executions", "req/exec", "rows/exec"
    );
    let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"));
    for row in rows {
        for (model, c) in row.triton.iter().flatten() {
            text += &format!(
                "{:>7}  {:<9}  {:<16}  {:>9}  {:>9}  {:>10}  {:>9}  {:>9}\n",
                row.players,
                row.mode,
                model,
                c.requests,
                c.rows,
                c.executions,
                ratio(c.requests_per_execution),
                ratio(c.rows_per_execution),
            );
        }
    }
    text + "(req/exec: requests per model execution, what Triton fused; rows/exec: batch rows per execution — batched players send several rows a request)\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's share of the server's counters, summed over rounds, with
    /// requests per execution; no Triton, no figures.
    #[test]
    fn triton_counters_between_readings_sum_over_rounds() {
        let c = |requests, rows, executions| ModelCounts {
            requests,
            rows,
            executions,
        };
        let before = BTreeMap::from([
            ("dit".to_string(), c(5, 5, 5)),
            ("vae".to_string(), c(1, 1, 1)),
        ]);
        let after = BTreeMap::from([
            ("dit".to_string(), c(21, 29, 9)),
            ("vae".to_string(), c(1, 1, 1)),
        ]);
        let d = counts_between(Some(before.clone()), Some(after)).unwrap();
        assert_eq!(d.len(), 1, "a model without requests is left out");
        assert_eq!(d["dit"], c(16, 24, 4));
        assert!(counts_between(None, Some(before)).is_none());
        let rounds = [
            Figures {
                triton: Some(d.clone()),
                ..Figures::default()
            },
            Figures {
                triton: Some(d),
                ..Figures::default()
            },
        ];
        let s = summary(&rounds).unwrap();
        assert_eq!(s["dit"].requests, 32);
        assert_eq!(s["dit"].requests_per_execution, Some(4.0));
        assert_eq!(s["dit"].rows_per_execution, Some(6.0));
        assert!(summary(&[Figures::default()]).is_none());
    }
}
