//! Hot reload: what changed between two built graphs, and the swap that
//! carries a running world's state into the new one.
//!
//! - [`GraphDiff::between`] compares two [`Graph`]s by node *name*: nodes
//!   added and removed, nodes whose kind, parameters or models changed, edges
//!   added and removed, models reloaded (a model counts as reloaded when the
//!   two graphs hold different loaded sessions for it — a
//!   [`ModelCache`](crate::model::ModelCache) hands back the same session for
//!   an unchanged file, so only real changes show).
//! - [`Runner::swap_graph`] replaces a runner's graph at a tick boundary.
//!   Every node that keeps its name and kind is asked, through
//!   [`Node::carry`](crate::node::Node::carry), whether it continues from its
//!   old state (memory, poses, open output files) or starts fresh; the
//!   values of the last tick that feedback edges read are carried for
//!   producers that keep their name, kind and output types; the tick counter
//!   and timings continue. Fresh states are created before anything is
//!   committed, so a swap that fails leaves the old graph running untouched.
//!
//! Architecture Invariant: a swap happens only between ticks, on the thread
//! that runs them; building and checking the new graph (and loading its
//! models) happens before, elsewhere.

use crate::graph::{EdgeKind, Graph, GraphNode, NodeId};
use crate::metrics::{Metrics, Timings};
use crate::node::{Carry, CarryContext, State};
use crate::params::ParamValue;
use crate::schedule::{NodeFailure, Runner};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a node changed between two graphs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeChange {
    pub node: String,
    /// The kind changed (old kind); the node's state is not carried.
    pub kind_from: Option<String>,
    /// The node's kind in the new graph.
    pub kind: String,
    /// Parameters whose values changed, were added or removed.
    pub params: Vec<String>,
    /// Models it uses that were reloaded or swapped for another.
    pub models: bool,
}

/// What changed between two graphs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<NodeChange>,
    /// Edges added (`+a.x -> b.y`) and removed (`-a.x -> b.y`).
    pub rewired: Vec<String>,
    /// Declared models whose loaded session differs.
    pub models_reloaded: Vec<String>,
    /// The `world { }` settings that changed, each as `NAME OLD → NEW`
    /// (`fps 8 → 4`; see [`Settings::changes`](crate::settings::Settings::changes)).
    pub settings: Vec<String>,
}

/// Identity of a loaded model session (its address), for comparisons.
fn model_id(graph: &Graph, name: &str) -> Option<*const ()> {
    graph
        .model_table
        .get(name)
        .map(|m| Arc::as_ptr(m).cast::<()>())
}

fn models_of(node: &GraphNode) -> Vec<&str> {
    node.params
        .iter()
        .flat_map(|(_, v)| v.model_names())
        .collect()
}

fn edge_text(g: &Graph, e: &crate::graph::GraphEdge) -> String {
    let (from, to) = (g.node(e.from), g.node(e.to));
    let feedback = match e.kind {
        EdgeKind::Data => "",
        EdgeKind::Feedback { .. } => "feedback ",
    };
    format!(
        "{feedback}{}.{} -> {}.{}",
        from.name, from.outputs[e.from_port].name, to.name, to.inputs[e.to_port].name
    )
}

impl GraphDiff {
    /// Compares `old` and `new` by node name.
    pub fn between(old: &Graph, new: &Graph) -> GraphDiff {
        let mut diff = GraphDiff {
            settings: old.settings.changes(&new.settings),
            ..GraphDiff::default()
        };
        for m in &new.models {
            if model_id(old, &m.name) != model_id(new, &m.name) {
                diff.models_reloaded.push(m.name.clone());
            }
        }
        for n in &new.nodes {
            let Some(o) = old.find(&n.name).map(|id| old.node(id)) else {
                diff.added.push(n.name.clone());
                continue;
            };
            let change = node_change(old, o, new, n);
            if change.kind_from.is_some() || !change.params.is_empty() || change.models {
                diff.changed.push(change);
            }
        }
        for o in &old.nodes {
            if new.find(&o.name).is_none() {
                diff.removed.push(o.name.clone());
            }
        }
        let old_edges: BTreeSet<String> = old.edges.iter().map(|e| edge_text(old, e)).collect();
        let new_edges: BTreeSet<String> = new.edges.iter().map(|e| edge_text(new, e)).collect();
        diff.rewired
            .extend(new_edges.difference(&old_edges).map(|e| format!("+{e}")));
        diff.rewired
            .extend(old_edges.difference(&new_edges).map(|e| format!("-{e}")));
        diff
    }

    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.rewired.is_empty()
            && self.models_reloaded.is_empty()
            && self.settings.is_empty()
    }

    /// One line: `changed sampler.steps; +node x; -edge a.b -> c.d; models reloaded: m`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for c in &self.changed {
            if let Some(k) = &c.kind_from {
                parts.push(format!("{} ({k} -> {})", c.node, c.kind));
                continue;
            }
            for p in &c.params {
                parts.push(format!("{}.{p}", c.node));
            }
            if c.models && c.kind_from.is_none() && c.params.is_empty() {
                parts.push(format!("{} (model)", c.node));
            }
        }
        let mut out = Vec::new();
        if !parts.is_empty() {
            out.push(format!("changed {}", parts.join(", ")));
        }
        if !self.added.is_empty() {
            out.push(format!("added {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            out.push(format!("removed {}", self.removed.join(", ")));
        }
        if !self.rewired.is_empty() {
            out.push(format!("rewired {}", self.rewired.join(", ")));
        }
        if !self.models_reloaded.is_empty() {
            out.push(format!(
                "models reloaded: {}",
                self.models_reloaded.join(", ")
            ));
        }
        if !self.settings.is_empty() {
            out.push(format!(
                "world settings changed: {}",
                self.settings.join(", ")
            ));
        }
        if out.is_empty() {
            "no change".into()
        } else {
            out.join("; ")
        }
    }
}

fn node_change(old: &Graph, o: &GraphNode, new: &Graph, n: &GraphNode) -> NodeChange {
    let old_params: BTreeMap<&str, &ParamValue> = o.params.iter().collect();
    let new_params: BTreeMap<&str, &ParamValue> = n.params.iter().collect();
    let mut params: Vec<String> = new_params
        .iter()
        .filter(|(k, v)| old_params.get(*k) != Some(*v))
        .map(|(k, _)| k.to_string())
        .collect();
    params.extend(
        old_params
            .keys()
            .filter(|k| !new_params.contains_key(*k))
            .map(|k| k.to_string()),
    );
    let models = models_of(n).len() != models_of(o).len()
        || models_of(n)
            .iter()
            .zip(models_of(o))
            .any(|(a, b)| model_id(new, a) != model_id(old, b));
    NodeChange {
        node: n.name.clone(),
        kind_from: (o.kind != n.kind).then(|| o.kind.to_string()),
        kind: n.kind.to_string(),
        params,
        models,
    }
}

/// What a swap did.
#[derive(Debug, Clone)]
pub struct SwapReport {
    pub diff: GraphDiff,
    /// Nodes that continued from their old state.
    pub kept: Vec<String>,
    /// Nodes whose state could not continue, and why.
    pub reset: Vec<(String, String)>,
    /// Nodes that started from a fresh state: new nodes, and nodes whose
    /// state is derived data (caches) made again for their new configuration.
    pub fresh: Vec<String>,
    /// Finishing a dropped state failed (node, message); the swap went on.
    pub finish_errors: Vec<(String, String)>,
    /// Nodes whose last outputs (read by feedback edges) were carried.
    pub feedback_carried: Vec<String>,
    /// Time the swap took on the tick thread.
    pub duration: Duration,
}

impl Runner {
    /// Replaces the graph between two ticks, carrying state (see the module
    /// docs). On error the runner is unchanged and keeps its old graph.
    pub fn swap_graph(&mut self, new: Arc<Graph>) -> Result<SwapReport, NodeFailure> {
        let started = Instant::now();
        let old = Arc::clone(&self.graph);
        let diff = GraphDiff::between(&old, &new);
        // Phase 1: every node's decision, before anything is created, so a
        // refusal leaves no trace (no output file made for nothing).
        let mut decisions: Vec<Option<(NodeId, Carry)>> = Vec::with_capacity(new.nodes.len());
        for n in &new.nodes {
            let old_id = old.find(&n.name).filter(|&id| old.node(id).kind == n.kind);
            let decision = old_id.map(|id| {
                let o = old.node(id);
                let cx = carry_context(&old, o, &new, n);
                let state = self.states[id.0].lock().unwrap_or_else(|p| p.into_inner());
                (id, n.node.carry(&state, &cx))
            });
            if let Some((_, Carry::Refuse(why))) = &decision {
                return Err(NodeFailure {
                    node: n.name.clone(),
                    kind: n.kind.to_string(),
                    tick: self.completed,
                    message: why.clone(),
                });
            }
            decisions.push(decision);
        }
        // Phase 2: every fresh state, touching nothing old.
        let mut plan: Vec<Result<usize, State>> = Vec::with_capacity(new.nodes.len());
        let mut reset = Vec::new();
        let mut fresh = Vec::new();
        for (n, decision) in new.nodes.iter().zip(decisions) {
            match decision {
                Some((id, Carry::Keep)) => plan.push(Ok(id.0)),
                other => {
                    match other {
                        Some((_, Carry::Reset(why))) => reset.push((n.name.clone(), why)),
                        _ => fresh.push(n.name.clone()),
                    }
                    let state = n.node.init_state().map_err(|e| NodeFailure {
                        node: n.name.clone(),
                        kind: n.kind.to_string(),
                        tick: self.completed,
                        message: e.message,
                    })?;
                    plan.push(Err(state));
                }
            }
        }
        // Phase 3: commit. Old states not taken over are finished.
        let mut old_states: Vec<Option<State>> = std::mem::take(&mut self.states)
            .into_iter()
            .map(|m| Some(m.into_inner().unwrap_or_else(|p| p.into_inner())))
            .collect();
        let mut kept = Vec::new();
        let states: Vec<Mutex<State>> = plan
            .into_iter()
            .zip(&new.nodes)
            .map(|(p, n)| {
                Mutex::new(match p {
                    Ok(id) => {
                        kept.push(n.name.clone());
                        old_states[id].take().unwrap_or_else(|| Box::new(()))
                    }
                    Err(fresh) => fresh,
                })
            })
            .collect();
        let mut finish_errors = Vec::new();
        for (i, state) in old_states.iter_mut().enumerate() {
            if let Some(state) = state {
                let o = old.node(NodeId(i));
                if let Err(e) = o.node.finish(state) {
                    finish_errors.push((o.name.clone(), e.message));
                }
            }
        }
        // Feedback values and timings follow names.
        let old_prev = std::mem::take(&mut self.prev);
        let old_plan: BTreeMap<NodeId, usize> = (0..old_prev.len())
            .map(|p| (self.plan_node(p), p))
            .collect();
        let mut old_metrics = std::mem::take(&mut self.metrics);
        let (completed, created) = (self.completed, self.created);
        *self = Runner::with_states(Arc::clone(&new), states);
        self.completed = completed;
        self.created = created;
        let mut feedback_carried = Vec::new();
        let feeds_back: BTreeSet<NodeId> = new
            .edges
            .iter()
            .filter(|e| matches!(e.kind, EdgeKind::Feedback { .. }))
            .map(|e| e.from)
            .collect();
        for p in 0..self.plan_len() {
            let id = self.plan_node(p);
            let n = new.node(id);
            let carried = old
                .find(&n.name)
                .filter(|&o| {
                    let o = old.node(o);
                    o.kind == n.kind && o.output_types == n.output_types
                })
                .and_then(|o| old_plan.get(&o))
                .and_then(|&op| old_prev.get(op).cloned().flatten());
            if carried.is_some() && feeds_back.contains(&id) {
                feedback_carried.push(n.name.clone());
            }
            self.prev[p] = carried;
        }
        let mut metrics = Metrics::new(new.nodes.len());
        metrics.tick_latency = std::mem::take(&mut old_metrics.tick_latency);
        for (i, n) in new.nodes.iter().enumerate() {
            if let Some(o) = old.find(&n.name).filter(|&o| old.node(o).kind == n.kind) {
                metrics.node_times[i] = std::mem::take(&mut old_metrics.node_times[o.0]);
            } else {
                metrics.node_times[i] = Timings::default();
            }
        }
        self.metrics = metrics;
        Ok(SwapReport {
            diff,
            kept,
            reset,
            fresh,
            finish_errors,
            feedback_carried,
            duration: started.elapsed(),
        })
    }
}

fn carry_context(old: &Graph, o: &GraphNode, new: &Graph, n: &GraphNode) -> CarryContext {
    let change = node_change(old, o, new, n);
    CarryContext {
        params_changed: !change.params.is_empty(),
        models_changed: change.models,
        inputs_changed: o.input_types != n.input_types,
        outputs_changed: o.output_types != n.output_types,
    }
}
