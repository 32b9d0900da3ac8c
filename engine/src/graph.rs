//! A built, checked graph.
//!
//! [`Graph`] is the output of [`build`](crate::build::build_graph): every
//! node configured, every edge resolved to port indices, every port typed,
//! and a topological order of the nodes the scheduler runs. Nothing in a
//! `Graph` changes while it runs; per-run state lives in the scheduler.
//!
//! Architecture Invariant: the only cycles a `Graph` can contain go through
//! feedback edges, which carry the previous tick's value; the data edges and
//! call edges together form a DAG (checked with petgraph at build time).

use crate::model::ModelTable;
use crate::node::{Node, PortSpec};
use crate::params::Params;
use crate::settings::Settings;
use crate::types::ValueType;
use crate::value::Value;
use petgraph::graph::DiGraph;
use std::path::PathBuf;
use std::sync::Arc;
use wgraph_grammar::ast;
use wgraph_grammar::diagnostic::Diagnostics;
use wgraph_grammar::source::Span;

/// Index of a node in [`Graph::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// One configured node.
#[derive(Clone)]
pub struct GraphNode {
    pub name: String,
    pub kind: &'static str,
    pub params: Params,
    pub node: Arc<dyn Node>,
    pub inputs: Vec<PortSpec>,
    pub outputs: Vec<PortSpec>,
    /// Types arriving at each input (None: unconnected optional or call input).
    pub input_types: Vec<Option<ValueType>>,
    pub output_types: Vec<ValueType>,
    /// The node each [`CallSpec`](crate::node::CallSpec) of this node calls.
    pub callees: Vec<NodeId>,
    /// For each callee: which callee input each call argument fills.
    pub call_arg_slots: Vec<Vec<usize>>,
    /// True when another node calls this one (it is then not scheduled on its own).
    pub is_callee: bool,
    /// The `node` statement.
    pub span: Span,
    /// The declaration it was built from, `--set` changes applied: what
    /// [`retune`](crate::build::retune) changes one parameter of.
    pub decl: ast::NodeDecl,
}

/// Where an edge takes its value on tick `t`.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeKind {
    /// The producer's output of the same tick.
    Data,
    /// The producer's output of tick `t - 1`; `init` on tick 0.
    Feedback { init: Value },
}

/// A resolved edge.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphEdge {
    pub from: NodeId,
    pub from_port: usize,
    pub to: NodeId,
    pub to_port: usize,
    pub kind: EdgeKind,
    pub span: Span,
}

/// A declared model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub path: PathBuf,
    pub options: Params,
    pub span: Span,
}

/// A built and checked graph.
pub struct Graph {
    pub settings: Settings,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    pub models: Vec<ModelInfo>,
    /// The loaded models, shared by the nodes that use them.
    pub model_table: ModelTable,
    /// Data and call dependencies (callee → caller), without feedback edges.
    pub dag: DiGraph<NodeId, ()>,
    /// Scheduled nodes (callees excluded) in a topological order.
    pub order: Vec<NodeId>,
    /// Warnings found while building (e.g. a provider fell back to CPU).
    pub warnings: Diagnostics,
}

impl Graph {
    pub fn node(&self, id: NodeId) -> &GraphNode {
        &self.nodes[id.0]
    }

    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.name == name).map(NodeId)
    }

    /// The edge feeding input `port` of `node`, if any.
    pub fn edge_into(&self, node: NodeId, port: usize) -> Option<&GraphEdge> {
        self.edges
            .iter()
            .find(|e| e.to == node && e.to_port == port)
    }
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
            )
            .field("edges", &self.edges.len())
            .finish()
    }
}
