//! Snapshots: a running world's state in a versioned file, and back.
//!
//! A snapshot holds the tick counter, every node's state that cannot be
//! recomputed ([`Node::save_state`](crate::node::Node::save_state): memory
//! histories, poses, offsets — caches and stateless nodes save nothing and
//! start fresh, which gives the same results), the last tick's values that
//! feedback edges read, and what it belongs to: the graph's nodes and kinds,
//! a hash of its parameters, and the SHA-256 of every model file. RNG
//! positions need no entry: every random source draws from (seed, node,
//! tick), so the tick counter is its position.
//!
//! [`Runner::snapshot`] writes one between ticks; [`Runner::restore`] loads
//! one into a fresh runner before its first tick, refusing a graph whose
//! nodes or models differ (naming the first difference). Running 100 ticks
//! equals running 50, saving, restoring and running 50 more, bit for bit.
//!
//! The file is JSON; tensors and float arrays are stored as hex of their
//! little-endian bytes, so every bit (NaN included) survives.

use crate::graph::Graph;
use crate::model::file_digest;
use crate::node::NodeError;
use crate::params::ParamValue;
use crate::schedule::Runner;
use crate::tensor::{DType, HostData, Tensor};
use crate::value::{Actions, Key, Value};
use serde_json::{Map, Value as Json, json};
use std::sync::Mutex;

/// The snapshot format's version; files of another version are refused.
pub const SNAPSHOT_VERSION: u64 = 1;

/// The largest tick a snapshot may hold (and a run may be asked to save
/// at): 2^53, the last integer every JSON reader keeps exact. At 1000 ticks
/// per second that is 285 000 years; a larger tick is a forged or corrupt
/// file, and counters near `u64::MAX` would run no ticks at all.
pub const MAX_TICK: u64 = 1 << 53;

/// How [`Runner::restore_with`] treats a snapshot taken with other
/// parameter values (same nodes, kinds, seed and models).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Load it anyway (continue a world with changed settings); by default
    /// it is refused, naming the parameters that differ.
    pub allow_param_changes: bool,
}

/// A snapshot could not be written or restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SnapshotError(pub String);

/// A node's saved state: named fields (see the getters for the types).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SavedState(Map<String, Json>);

fn hex(bytes: impl Iterator<Item = u8>) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::new();
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}

fn f32s_to_hex(v: &[f32]) -> String {
    hex(v.iter().flat_map(|x| x.to_le_bytes()))
}

fn f32s_from_hex(s: &str) -> Option<Vec<f32>> {
    let bytes = unhex(s)?;
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

impl SavedState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a float array exactly.
    pub fn put_f32s(&mut self, name: &str, v: &[f32]) {
        self.0.insert(name.into(), Json::String(f32s_to_hex(v)));
    }

    /// Stores a list of float arrays exactly.
    pub fn put_f32_lists(&mut self, name: &str, v: &[&[f32]]) {
        let list = v.iter().map(|x| Json::String(f32s_to_hex(x))).collect();
        self.0.insert(name.into(), Json::Array(list));
    }

    /// Stores integers.
    pub fn put_ints(&mut self, name: &str, v: &[i64]) {
        self.0.insert(name.into(), json!(v));
    }

    fn missing(name: &str) -> NodeError {
        NodeError::new(format!("the snapshot's state has no valid `{name}`"))
    }

    /// A float array stored with [`SavedState::put_f32s`].
    pub fn f32s(&self, name: &str) -> Result<Vec<f32>, NodeError> {
        self.0
            .get(name)
            .and_then(Json::as_str)
            .and_then(f32s_from_hex)
            .ok_or_else(|| Self::missing(name))
    }

    /// A list stored with [`SavedState::put_f32_lists`].
    pub fn f32_lists(&self, name: &str) -> Result<Vec<Vec<f32>>, NodeError> {
        self.0
            .get(name)
            .and_then(Json::as_array)
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_str().and_then(f32s_from_hex))
                    .collect()
            })
            .ok_or_else(|| Self::missing(name))
    }

    /// Integers stored with [`SavedState::put_ints`].
    pub fn ints(&self, name: &str) -> Result<Vec<i64>, NodeError> {
        self.0
            .get(name)
            .and_then(Json::as_array)
            .and_then(|a| a.iter().map(Json::as_i64).collect())
            .ok_or_else(|| Self::missing(name))
    }

    /// True when a field is present.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// A value on an edge, exactly, as JSON.
pub fn value_to_json(v: &Value) -> Result<Json, SnapshotError> {
    Ok(match v {
        Value::Tensor(t) => {
            // A snapshot is an edge of the world: device values come home.
            let t = t.to_host().map_err(|e| SnapshotError(e.to_string()))?;
            let host = t.host().map_err(|e| SnapshotError(e.to_string()))?;
            let (dtype, data) = (host.dtype().name(), hex(host.to_le_bytes().into_iter()));
            json!({"tensor": dtype, "shape": t.shape(), "hex": data})
        }
        Value::Actions(a) => {
            let keys: Vec<&str> = Key::ALL
                .iter()
                .filter(|k| a.contains(**k))
                .map(|k| k.name())
                .collect();
            json!({ "actions": keys })
        }
        Value::Text(t) => json!({ "text": t.as_ref() }),
    })
}

/// The inverse of [`value_to_json`].
pub fn value_from_json(j: &Json) -> Result<Value, SnapshotError> {
    let bad = || SnapshotError(format!("a saved value is malformed: {j}"));
    if let Some(dtype) = j.get("tensor").and_then(Json::as_str) {
        let shape: Vec<usize> = j
            .get("shape")
            .and_then(Json::as_array)
            .and_then(|a| {
                a.iter()
                    .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                    .collect()
            })
            .ok_or_else(bad)?;
        let bytes = j
            .get("hex")
            .and_then(Json::as_str)
            .and_then(unhex)
            .ok_or_else(bad)?;
        let dtype = DType::ALL
            .into_iter()
            .find(|t| t.name() == dtype)
            .ok_or_else(bad)?;
        let data = HostData::from_le_bytes(dtype, &bytes).ok_or_else(bad)?;
        let t = Tensor::from_host(&shape, data);
        return t
            .map(Value::Tensor)
            .map_err(|e| SnapshotError(e.to_string()));
    }
    if let Some(keys) = j.get("actions").and_then(Json::as_array) {
        let mut a = Actions::none();
        for k in keys {
            a = a.with(k.as_str().and_then(Key::parse).ok_or_else(bad)?);
        }
        return Ok(Value::Actions(a));
    }
    if let Some(t) = j.get("text").and_then(Json::as_str) {
        return Ok(Value::Text(t.into()));
    }
    Err(bad())
}

/// What a snapshot belongs to: nodes and kinds, a parameter hash, model digests.
fn fingerprint(graph: &Graph) -> Result<Json, SnapshotError> {
    use sha2::Digest;
    let mut params = sha2::Sha256::new();
    let mut nodes = Map::new();
    let mut values = Map::new();
    for n in &graph.nodes {
        nodes.insert(n.name.clone(), json!(n.kind));
        params.update(n.name.as_bytes());
        let mut node_values = Map::new();
        for (k, v) in n.params.iter() {
            params.update(k.as_bytes());
            params.update(v.to_json().to_string().as_bytes());
            node_values.insert(k.to_string(), param_json(v));
        }
        values.insert(n.name.clone(), Json::Object(node_values));
    }
    let mut models = Map::new();
    for m in &graph.models {
        let digest = file_digest(&m.path).map_err(|e| {
            SnapshotError(format!(
                "cannot read model `{}` ({}): {e}",
                m.name,
                m.path.display()
            ))
        })?;
        models.insert(m.name.clone(), json!(hex(digest.into_iter())));
    }
    Ok(json!({
        "world": graph.settings.name,
        "seed": graph.settings.seed,
        "nodes": nodes,
        "models": models,
        "params_sha256": hex(params.finalize().into_iter()),
        "params": values,
    }))
}

/// A parameter's value as a snapshot records it: a file path as the file
/// it names (absolute), so the same graph run from another directory
/// matches.
fn param_json(v: &ParamValue) -> Json {
    match v {
        ParamValue::Path(p) => {
            json!(
                std::path::absolute(p)
                    .unwrap_or_else(|_| p.clone())
                    .display()
                    .to_string()
            )
        }
        other => other.to_json(),
    }
}

/// The parameters whose values differ between the graph `snapshot` was
/// taken of and `graph`, each as `NODE.PARAM OLD → NEW` (`sampler.steps 4
/// → 2`), for nodes both have. A snapshot that records only a hash of its
/// parameters (an older file) gives one entry saying they differ.
pub fn param_changes(snapshot: &Json, graph: &Graph) -> Result<Vec<String>, SnapshotError> {
    let theirs = snapshot.get("graph").cloned().unwrap_or(Json::Null);
    let ours = fingerprint(graph)?;
    Ok(compare_params(&theirs, &ours))
}

fn compare_params(theirs: &Json, ours: &Json) -> Vec<String> {
    let Some(their_values) = theirs.get("params").and_then(Json::as_object) else {
        return match theirs.get("params_sha256") {
            Some(hash) if Some(hash) != ours.get("params_sha256") => {
                vec![
                    "(its parameter hash differs; this snapshot does not record which parameters)"
                        .into(),
                ]
            }
            _ => Vec::new(),
        };
    };
    let empty = Map::new();
    let mut changes = Vec::new();
    let our_values = ours
        .get("params")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    for (node, ours) in our_values {
        let Some(theirs) = their_values.get(node).and_then(Json::as_object) else {
            continue;
        };
        let ours = ours.as_object().unwrap_or(&empty);
        let absent = Json::String("(unset)".into());
        let names: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
        for name in names {
            let (old, new) = (theirs.get(name), ours.get(name));
            if old != new {
                changes.push(format!(
                    "{node}.{name} {} → {}",
                    old.unwrap_or(&absent),
                    new.unwrap_or(&absent)
                ));
            }
        }
    }
    changes
}

impl Runner {
    /// The state of this run between ticks, as a snapshot document.
    pub fn snapshot(&self) -> Result<Json, SnapshotError> {
        let graph = self.graph();
        let mut nodes = Map::new();
        for (i, n) in graph.nodes.iter().enumerate() {
            let state = self.states[i].lock().unwrap_or_else(|p| p.into_inner());
            let saved = n
                .node
                .save_state(&state)
                .map_err(|e| SnapshotError(format!("node `{}`: {e}", n.name)))?;
            if let Some(saved) = saved {
                nodes.insert(n.name.clone(), Json::Object(saved.0));
            }
        }
        // Only the values feedback edges will read on the next tick.
        let feeds_back: Vec<crate::graph::NodeId> = graph
            .edges
            .iter()
            .filter(|e| matches!(e.kind, crate::graph::EdgeKind::Feedback { .. }))
            .map(|e| e.from)
            .collect();
        let mut feedback = Map::new();
        for p in 0..self.plan_len() {
            let id = self.plan_node(p);
            if !feeds_back.contains(&id) {
                continue;
            }
            if let Some(values) = &self.prev[p] {
                let values: Result<Vec<Json>, SnapshotError> =
                    values.iter().map(value_to_json).collect();
                feedback.insert(graph.node(id).name.clone(), Json::Array(values?));
            }
        }
        Ok(json!({
            "wgraph_snapshot": SNAPSHOT_VERSION,
            "tick": self.completed,
            "graph": fingerprint(graph)?,
            "states": nodes,
            "last_outputs": feedback,
        }))
    }

    /// Loads `snapshot` into this runner before its first tick: the next
    /// tick is the snapshot's. Refuses a snapshot of another graph, and one
    /// taken with other parameter values (see [`Runner::restore_with`]).
    pub fn restore(&mut self, snapshot: &Json) -> Result<(), SnapshotError> {
        self.restore_with(snapshot, RestoreOptions::default())
    }

    /// [`Runner::restore`], with `options` saying whether a snapshot taken
    /// with other parameter values loads. Refuses a tick past [`MAX_TICK`].
    pub fn restore_with(
        &mut self,
        snapshot: &Json,
        options: RestoreOptions,
    ) -> Result<(), SnapshotError> {
        if self.completed != 0 {
            return Err(SnapshotError(
                "a snapshot loads only before the first tick".into(),
            ));
        }
        match snapshot.get("wgraph_snapshot").and_then(Json::as_u64) {
            Some(SNAPSHOT_VERSION) => {}
            Some(v) => {
                return Err(SnapshotError(format!(
                    "snapshot format version {v}; this wgraph reads version {SNAPSHOT_VERSION}"
                )));
            }
            None => return Err(SnapshotError("not a wgraph snapshot".into())),
        }
        let graph = std::sync::Arc::clone(self.graph());
        let theirs = snapshot.get("graph").cloned().unwrap_or(Json::Null);
        let ours = fingerprint(&graph)?;
        compatible(&theirs, &ours)?;
        let changes = compare_params(&theirs, &ours);
        if !changes.is_empty() && !options.allow_param_changes {
            return Err(SnapshotError(format!(
                "the snapshot was taken with other parameter values: {}",
                changes.join(", ")
            )));
        }
        let tick = snapshot_tick(snapshot)?;
        let empty = Map::new();
        let states = snapshot
            .get("states")
            .and_then(Json::as_object)
            .unwrap_or(&empty);
        let mut new_states = Vec::with_capacity(graph.nodes.len());
        for n in &graph.nodes {
            let state = match states.get(&n.name).and_then(Json::as_object) {
                Some(saved) => n.node.load_state(&SavedState(saved.clone())),
                None => n.node.init_state(),
            }
            .map_err(|e| SnapshotError(format!("node `{}`: {e}", n.name)))?;
            new_states.push(Mutex::new(state));
        }
        let outputs = snapshot
            .get("last_outputs")
            .and_then(Json::as_object)
            .unwrap_or(&empty);
        let mut prev = vec![None; self.plan_len()];
        for (p, slot) in prev.iter_mut().enumerate() {
            let n = graph.node(self.plan_node(p));
            if let Some(values) = outputs.get(&n.name).and_then(Json::as_array) {
                let values: Result<Vec<Value>, SnapshotError> =
                    values.iter().map(value_from_json).collect();
                *slot = Some(values?);
            }
        }
        // Fresh states replace the ones `Runner::new` made; those are
        // finished first so sinks close what they opened.
        for (i, n) in graph.nodes.iter().enumerate() {
            let mut old = self.states[i].lock().unwrap_or_else(|p| p.into_inner());
            let _ = n.node.finish(&mut old);
        }
        self.states = new_states;
        self.prev = prev;
        self.completed = tick;
        Ok(())
    }
}

/// The tick a snapshot continues at: a whole number up to [`MAX_TICK`].
pub fn snapshot_tick(snapshot: &Json) -> Result<u64, SnapshotError> {
    match snapshot.get("tick") {
        None => Err(SnapshotError("the snapshot records no `tick`".into())),
        Some(t) => match t.as_u64() {
            Some(tick) if tick <= MAX_TICK => Ok(tick),
            Some(tick) => Err(SnapshotError(format!(
                "the snapshot's tick {tick} is out of range: ticks go up to {MAX_TICK} (2^53)"
            ))),
            None => Err(SnapshotError(format!(
                "the snapshot's tick `{t}` is not a tick: a whole number from 0 to {MAX_TICK} (2^53)"
            ))),
        },
    }
}

/// Checks that a snapshot's graph fingerprint fits this graph.
fn compatible(theirs: &Json, ours: &Json) -> Result<(), SnapshotError> {
    let map = |j: &Json, k: &str| {
        j.get(k)
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (their_nodes, our_nodes) = (map(theirs, "nodes"), map(ours, "nodes"));
    for (name, kind) in &their_nodes {
        match our_nodes.get(name) {
            None => {
                return Err(SnapshotError(format!(
                    "the snapshot is of another graph: it has node `{name}` ({}) that this graph lacks",
                    kind.as_str().unwrap_or("?")
                )));
            }
            Some(k) if k != kind => {
                return Err(SnapshotError(format!(
                    "the snapshot is of another graph: node `{name}` is {} there and {} here",
                    kind.as_str().unwrap_or("?"),
                    k.as_str().unwrap_or("?")
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(name) = our_nodes.keys().find(|n| !their_nodes.contains_key(*n)) {
        return Err(SnapshotError(format!(
            "the snapshot is of another graph: it has no node `{name}`"
        )));
    }
    let (their_models, our_models) = (map(theirs, "models"), map(ours, "models"));
    for (name, digest) in &our_models {
        if their_models.get(name) != Some(digest) {
            return Err(SnapshotError(format!(
                "model `{name}` is not the file the snapshot was taken with (its contents differ)"
            )));
        }
    }
    if theirs.get("seed") != ours.get("seed") {
        return Err(SnapshotError(format!(
            "the snapshot was taken with seed {}, this run uses {} (pass --seed)",
            theirs.get("seed").unwrap_or(&Json::Null),
            ours.get("seed").unwrap_or(&Json::Null)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_bit_for_bit() {
        let nan = f32::from_bits(0x7fc0_0001);
        let values = [
            Value::Tensor(Tensor::from_f32(&[1, 3], vec![1.5, -0.0, nan]).unwrap()),
            Value::Tensor(Tensor::from_i64(&[2], vec![i64::MIN, 7]).unwrap()),
            Value::Tensor(Tensor::from_u8(&[2], vec![0, 255]).unwrap()),
            Value::Tensor(
                Tensor::from_f64(&[2], vec![0.1, f64::from_bits(0x7ff8_0000_0000_0003)]).unwrap(),
            ),
            Value::Tensor(Tensor::from_i32(&[1, 2], vec![i32::MIN, -5]).unwrap()),
            Value::Tensor(Tensor::from_bool(&[3], vec![true, false, true]).unwrap()),
            Value::Tensor(Tensor::from_i8(&[1], vec![-7]).unwrap()),
            Value::Tensor(Tensor::from_i16(&[1], vec![-300]).unwrap()),
            Value::Tensor(Tensor::from_u16(&[1], vec![65535]).unwrap()),
            Value::Tensor(Tensor::from_u32(&[1], vec![4_000_000_000]).unwrap()),
            Value::Tensor(
                Tensor::from_f16(&[1], vec![crate::tensor::f16::from_bits(0x7e01)]).unwrap(),
            ),
            Value::Tensor(Tensor::from_f32(&[0], vec![]).unwrap()),
            Value::Actions(Actions::none().with(Key::W).with(Key::Space)),
            Value::Text("a snowy forest".into()),
        ];
        for v in values {
            let json = value_to_json(&v).unwrap();
            let back = value_from_json(&json).unwrap();
            match (&v, &back) {
                (Value::Tensor(a), Value::Tensor(b)) => {
                    // Bit for bit (NaN payloads included), dtype and shape.
                    assert_eq!(json["tensor"], a.dtype().name());
                    assert_eq!((a.dtype(), a.shape()), (b.dtype(), b.shape()));
                    assert_eq!(
                        a.host().unwrap().to_le_bytes(),
                        b.host().unwrap().to_le_bytes()
                    );
                }
                _ => assert_eq!(v, back),
            }
        }
        let odd = json!({"tensor": "i32", "shape": [1], "hex": "010203"});
        assert!(value_from_json(&odd).is_err());
        let unknown = json!({"tensor": "u64", "shape": [1], "hex": "0102030405060708"});
        assert!(value_from_json(&unknown).is_err());
        let mut s = SavedState::new();
        s.put_f32s("x", &[nan, 1.0]);
        s.put_f32_lists("l", &[&[1.0], &[]]);
        s.put_ints("i", &[-3, 4]);
        assert_eq!(s.f32s("x").unwrap()[0].to_bits(), nan.to_bits());
        assert_eq!(s.f32_lists("l").unwrap(), vec![vec![1.0], vec![]]);
        assert_eq!(s.ints("i").unwrap(), vec![-3, 4]);
        assert!(s.f32s("nope").is_err());
    }
}
