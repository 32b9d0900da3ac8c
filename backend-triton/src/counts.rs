//! [`ModelCounts`]: one model's counters on a server (Triton's
//! `ModelStatistics`), read by [`TritonBackend::statistics`](crate::TritonBackend::statistics).

use crate::proto;
use std::collections::BTreeMap;

/// One model's counters on a server, from Triton's `ModelStatistics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelCounts {
    /// Requests answered successfully (`inference_stats.success.count`).
    pub requests: u64,
    /// Rows inferred: requests times their batch size (`inference_count`).
    pub rows: u64,
    /// Model executions (`execution_count`): a request the dynamic batcher
    /// fused with others shares one execution with them.
    pub executions: u64,
}

impl ModelCounts {
    /// Per model name, from a `ModelStatistics` answer (versions summed).
    pub fn of_response(response: &proto::ModelStatisticsResponse) -> BTreeMap<String, ModelCounts> {
        let mut out: BTreeMap<String, ModelCounts> = BTreeMap::new();
        for m in &response.model_stats {
            let c = out.entry(m.name.clone()).or_default();
            c.requests += m
                .inference_stats
                .as_ref()
                .and_then(|s| s.success.as_ref())
                .map_or(0, |s| s.count);
            c.rows += m.inference_count;
            c.executions += m.execution_count;
        }
        out
    }

    /// What happened between the reading `before` and this one.
    pub fn since(&self, before: &ModelCounts) -> ModelCounts {
        ModelCounts {
            requests: self.requests.saturating_sub(before.requests),
            rows: self.rows.saturating_sub(before.rows),
            executions: self.executions.saturating_sub(before.executions),
        }
    }

    /// These counts and `other`'s together.
    pub fn plus(&self, other: &ModelCounts) -> ModelCounts {
        ModelCounts {
            requests: self.requests + other.requests,
            rows: self.rows + other.rows,
            executions: self.executions + other.executions,
        }
    }

    /// Requests per execution: how many requests the dynamic batcher fused
    /// into one execution, on average (`None` without executions).
    pub fn requests_per_execution(&self) -> Option<f64> {
        (self.executions > 0).then(|| self.requests as f64 / self.executions as f64)
    }

    /// Rows (batch entries) per execution (`None` without executions).
    pub fn rows_per_execution(&self) -> Option<f64> {
        (self.executions > 0).then(|| self.rows as f64 / self.executions as f64)
    }
}
