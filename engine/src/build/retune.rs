//! A live parameter change made to the one node it names: [`retune`].
//!
//! A running world's `NODE.PARAM = VALUE` (a front end's slider, a scripted
//! event, the degrade policy) changes one node. Rebuilding the whole graph
//! for it would parse the files again, check every node and look up every
//! model; `retune` instead takes the graph the world runs, applies the
//! change to that node's declaration, checks the new value against the
//! kind's parameter table, builds that node again (its models come from the
//! graph's table: nothing is loaded or hashed) and re-runs type inference
//! over the graph, which is pure. Every other node is the same object in
//! the new graph, so the swap carries every state as a rebuild would.
//!
//! A change that would rewire the graph is not made here: a node whose
//! ports or calls differ with the new value (a `prompt_schedule` with
//! another number of outputs, say) gives [`RetuneError::NeedsRebuild`], and
//! the caller rebuilds. So does a change of the node a call goes to
//! (`sampler.denoiser = @other`), of a file the node reads (`keys.path`:
//! the files a world watches and a recording hashes are a rebuild's to
//! list), and a kind swap (`NODE=KIND`), which is not a parameter change.

use super::{BuildOptions, Builder, Override};
use crate::graph::{Graph, NodeId};
use crate::node::OutputConfig;
use crate::params::ParamValue;
use crate::registry::Registry;
use std::collections::{HashMap, HashSet};
use wgraph_grammar::ast;
use wgraph_grammar::diagnostic::Diagnostics;
use wgraph_grammar::source::SourceMap;

/// Why [`retune`] did not make the change.
#[derive(Debug)]
pub enum RetuneError {
    /// The change is not one node's alone (no such node, ports or calls
    /// that change): rebuild the graph to make it. Says why.
    NeedsRebuild(String),
    /// The new value does not check or does not build (spans into the
    /// `sources` given).
    Graph(Diagnostics),
}

impl std::fmt::Display for RetuneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetuneError::NeedsRebuild(why) => write!(f, "needs a rebuild: {why}"),
            RetuneError::Graph(d) => write!(f, "{} errors", d.iter().count()),
        }
    }
}

impl std::error::Error for RetuneError {}

/// `graph` with `change` applied to the node it names, that node alone
/// built again (see the module docs). `sources` must hold the files the
/// graph was built from and the file of `change.value`; `registry` and
/// `output` are the ones the graph was built with (models come from
/// `graph`).
pub fn retune(
    graph: &Graph,
    sources: &SourceMap,
    registry: &Registry,
    output: &OutputConfig,
    change: &Override,
) -> Result<Graph, RetuneError> {
    let Some(id) = graph.find(&change.node) else {
        return Err(RetuneError::NeedsRebuild(format!(
            "no node named `{}`",
            change.node
        )));
    };
    let old = graph.node(id);
    // A call's target is resolved when the graph is wired: another target
    // rewires the graph. A file parameter changes the files the graph
    // reads (watched, recorded): a rebuild lists them.
    if matches!(
        old.params.get(&change.param),
        Some(ParamValue::NodeRef(_) | ParamValue::Path(_))
    ) || matches!(change.value.kind, ast::ValueKind::NodeRef(_))
    {
        return Err(RetuneError::NeedsRebuild(format!(
            "`{}.{}` names a node or a file",
            change.node, change.param
        )));
    }
    let one = BuildOptions {
        registry,
        output: output.clone(),
        overrides: vec![change.clone()],
        kind_overrides: Vec::new(),
        seed: None,
        backend: None,
        provider: None,
        backend_kind: None,
    };
    let mut b = Builder {
        sources,
        options: &one,
        diags: Diagnostics::new(),
        nodes: graph
            .nodes
            .iter()
            .map(|n| (n.clone(), n.decl.clone()))
            .collect(),
        failed: HashMap::new(),
        attempted: HashSet::new(),
        bad_edge_into: HashSet::new(),
        referenced_by_failed: HashSet::new(),
        by_name: (0..graph.nodes.len())
            .map(|i| (graph.nodes[i].name.clone(), NodeId(i)))
            .collect(),
        edges: graph.edges.clone(),
        miswired: vec![false; graph.nodes.len()],
        loaded: HashMap::new(),
        init_spans: HashMap::new(),
        orphan_inits: Vec::new(),
    };
    let mut decl = old.decl.clone();
    b.apply_overrides(&mut decl);
    let names: Vec<&str> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
    let Some(mut node) = b.node(
        &decl,
        &graph.settings,
        &graph.models,
        &graph.model_table,
        &names,
    ) else {
        return Err(RetuneError::Graph(b.diags.sorted()));
    };
    if matches!(node.params.get(&change.param), Some(ParamValue::Path(_))) {
        return Err(RetuneError::NeedsRebuild(format!(
            "`{}.{}` names a file",
            change.node, change.param
        )));
    }
    if node.inputs != old.inputs || node.outputs != old.outputs {
        return Err(RetuneError::NeedsRebuild(format!(
            "node `{}` has other ports with the new value",
            old.name
        )));
    }
    if node.node.calls() != old.node.calls() {
        return Err(RetuneError::NeedsRebuild(format!(
            "node `{}` makes other calls with the new value",
            old.name
        )));
    }
    node.callees = old.callees.clone();
    node.call_arg_slots = old.call_arg_slots.clone();
    node.is_callee = old.is_callee;
    b.nodes[id.0] = (node, decl);
    for (n, _) in &mut b.nodes {
        n.input_types = vec![None; n.inputs.len()];
        n.output_types = Vec::new();
    }
    b.infer(&graph.order);
    if b.diags.has_errors() {
        return Err(RetuneError::Graph(b.diags.sorted()));
    }
    Ok(Graph {
        settings: graph.settings.clone(),
        nodes: b.nodes.into_iter().map(|(n, _)| n).collect(),
        edges: graph.edges.clone(),
        models: graph.models.clone(),
        model_table: graph.model_table.clone(),
        dag: graph.dag.clone(),
        order: graph.order.clone(),
        warnings: graph.warnings.clone(),
    })
}
