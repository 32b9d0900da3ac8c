//! A graph's memory plan: what one more live world of it costs, for a
//! server that gives every player their own world (`wgraph serve`).
//!
//! [`MemoryPlan::of`] splits a graph's memory into what is loaded once and
//! shared by every world of it — its **model weights** (the model files and
//! their external data, as on disk) — and what each world holds on its own:
//! its **state** (every node's memory, the feedback values: measured from a
//! snapshot of a world, see [`crate::snapshot`]) and the **values a tick
//! makes** (every node output whose shape is known at build time; they live
//! until the next tick). [`MemoryPlan::worlds_that_fit`] turns a byte budget
//! into a number of worlds.
//!
//! The figures are estimates a server uses to refuse a player before the
//! machine runs out of memory, not a measurement of the allocator: a
//! backend's scratch memory for a call is per model (shared), and a node's
//! state that grows up to a bound (a memory bank) is counted as the
//! snapshot found it.

use crate::graph::Graph;
use crate::types::{Dim, ValueType};

/// What a graph's worlds cost (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Model files and their external data, loaded once for every world.
    pub weights_bytes: u64,
    /// One world's state (from a snapshot).
    pub state_bytes: u64,
    /// The values one tick makes (outputs of known shape).
    pub values_bytes: u64,
    /// Output ports whose shape is not known at build time (not counted).
    pub unknown_values: usize,
    /// What one more running world was measured to add to the process's
    /// resident memory (its thread, its runner's buffers, the backend's
    /// scratch as well), when the caller measured it.
    pub measured_bytes: Option<u64>,
}

impl MemoryPlan {
    /// The plan of `graph`, with `snapshot` a snapshot of one of its worlds.
    pub fn of(graph: &Graph, snapshot: Option<&serde_json::Value>) -> MemoryPlan {
        let (values_bytes, unknown_values) = tick_values(graph);
        MemoryPlan {
            weights_bytes: weights(graph),
            state_bytes: snapshot.map_or(0, state_bytes),
            values_bytes,
            unknown_values,
            measured_bytes: None,
        }
    }

    /// Bytes one more world holds: its state and a tick's values, or what
    /// was measured when that is more.
    pub fn per_world(&self) -> u64 {
        (self.state_bytes + self.values_bytes).max(self.measured_bytes.unwrap_or(0))
    }

    /// Worlds whose own memory fits in `budget` bytes (the weights are
    /// already loaded; at least one byte per world is assumed).
    pub fn worlds_that_fit(&self, budget: u64) -> u64 {
        budget / self.per_world().max(1)
    }
}

/// Bytes of the graph's model files (each file once, however many
/// declarations name it).
fn weights(graph: &Graph) -> u64 {
    let mut files: Vec<std::path::PathBuf> = graph
        .models
        .iter()
        .flat_map(|m| crate::model::model_files(&m.path))
        .collect();
    files.sort();
    files.dedup();
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// Bytes of every output of known shape, and how many are not known.
fn tick_values(graph: &Graph) -> (u64, usize) {
    let mut bytes = 0u64;
    let mut unknown = 0;
    for ty in graph.nodes.iter().flat_map(|n| &n.output_types) {
        let ValueType::Tensor(t) = ty else { continue };
        let elements = t.shape.iter().try_fold(1u64, |acc, d| match d {
            Dim::Known(n) => acc.checked_mul(*n as u64),
            Dim::Sym(_) => None,
        });
        match elements {
            Some(n) => bytes = bytes.saturating_add(n.saturating_mul(t.dtype.size() as u64)),
            None => unknown += 1,
        }
    }
    (bytes, unknown)
}

/// Bytes of the tensors a snapshot holds (each is hex: two characters a byte).
pub fn state_bytes(snapshot: &serde_json::Value) -> u64 {
    match snapshot {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(key, value)| match (key.as_str(), value) {
                ("hex", serde_json::Value::String(hex)) => hex.len() as u64 / 2,
                _ => state_bytes(value),
            })
            .sum(),
        serde_json::Value::Array(items) => items.iter().map(state_bytes).sum(),
        _ => 0,
    }
}

/// `bytes` for people: `512 B`, `3.2 MB`, `1.50 GB` (powers of 1024).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ if value < 10.0 => format!("{value:.2} {}", UNITS[unit]),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// Parses a byte count: `8G`, `512M`, `64k`, `1.5GB`, `1000000` (powers of 1024).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use K, M, G or T)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 8G or 512M"))?;
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is not a size such as 8G or 512M"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_bytes_are_its_hex_halved() {
        let snap = serde_json::json!({
            "tick": 3,
            "nodes": {"a": {"x": {"tensor": "f32", "shape": [2], "hex": "0000803f00000040"}},
                      "b": [{"hex": "0102"}]},
        });
        assert_eq!(state_bytes(&snap), 10);
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_bytes("8G").unwrap(), 8 << 30);
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1.5GB").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert!(parse_bytes("8X").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("0").is_err());
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.00 MB");
        assert_eq!(human_bytes(20 << 30), "20.0 GB");
    }

    #[test]
    fn worlds_that_fit_divide_the_budget() {
        let plan = MemoryPlan {
            weights_bytes: 100,
            state_bytes: 30,
            values_bytes: 70,
            unknown_values: 0,
            measured_bytes: None,
        };
        assert_eq!(plan.per_world(), 100);
        assert_eq!(plan.worlds_that_fit(1050), 10);
        let measured = MemoryPlan {
            measured_bytes: Some(300),
            ..plan
        };
        assert_eq!(measured.per_world(), 300);
    }
}
