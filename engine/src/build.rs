//! From a parsed graph to a checked [`Graph`].
//!
//! [`build_graph`] runs the checks in phases and collects every error of every
//! phase it can reach, so one `wgraph check` shows all problems at once:
//!
//! 1. **settings** — the `world { }` blocks merged (the root file wins over
//!    includes) and checked against [`crate::settings::SETTINGS`];
//! 2. **static node checks** — kind names against the registry ("did you
//!    mean"), parameters against the kind's table, `@node` and model
//!    references against the graph's names. No file is opened;
//! 3. **filesystem checks** — model files exist, and each node's
//!    [`NodeKind::build`](crate::node::NodeKind::build) opens what its
//!    parameters name;
//! 4. **wiring** — ports resolved by name, one feed per input, call inputs
//!    left to callers, required inputs connected;
//! 5. **cycles** — data and call edges must form a DAG (feedback edges are
//!    the only way back);
//! 6. **types** — [`Node::infer`](crate::node::Node::infer) in topological
//!    order, callables inferred through their callers, feedback init values
//!    checked against what the edge carries on later ticks.
//!
//! A node that failed an earlier phase is left out of later ones, so one
//! mistake does not cascade into a page of errors — except an input fed by
//! a feedback edge from a failed node, which is still typed with its `init`
//! (tick 0's value), so shape errors show next to name errors.
//!
//! Type errors are located where the mistake is: a wrong feedback init at
//! the `init`; a value whose type a parameter fixes
//! ([`Node::output_set_by`](crate::node::Node::output_set_by), a `noise`
//! node's `shape`) that a callee rejects when its caller passes it on (a
//! sampler's noise as the denoiser's `x`) at that parameter, once.
//!
//! # Files
//! This file has the entry point ([`build_graph`], [`BuildOptions`], the
//! `--set` [`Override`]s) and the settings phase; `build/models.rs` the
//! `model` declarations ([`MODEL_OPTIONS`]), `build/nodes.rs` the node
//! declarations, `build/wiring.rs` edges and calls, `build/infer.rs` cycles
//! and types; `build/retune.rs` a live parameter change made to the one
//! node it names ([`retune`]), without a rebuild.

use crate::graph::{Graph, GraphEdge, GraphNode, NodeId};
use crate::model::{Backend, BackendKind, ModelOptions, Provider};
use crate::node::OutputConfig;
use crate::params::{ParamContext, check_params};
use crate::registry::Registry;
use crate::settings::{SETTINGS, Settings};
use crate::value::Value;
use std::collections::HashMap;
use std::sync::Arc;
use wgraph_grammar::ast::{self, Entry, Record, Statement};
use wgraph_grammar::diagnostic::{Diagnostic, Diagnostics};
use wgraph_grammar::source::{SourceMap, Span};

mod infer;
mod models;
mod nodes;
mod retune;
mod wiring;

pub use models::{MODEL_OPTIONS, MODEL_ROLES};
pub use retune::{RetuneError, retune};

/// `--set NODE.PARAM=VALUE`: a parameter written outside the graph file.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub node: String,
    pub param: String,
    /// The value, parsed from a pseudo-file in the same [`SourceMap`].
    pub value: ast::Value,
    /// The whole flag text (for "no node named ..." errors).
    pub span: Span,
}

/// `--set NODE=KIND`: a node of another kind, keeping the parameters both
/// kinds declare (a sampler swapped for another, its `steps` kept).
#[derive(Debug, Clone, PartialEq)]
pub struct KindOverride {
    pub node: String,
    pub kind: String,
    /// The flag text, in a pseudo-file of the same [`SourceMap`].
    pub span: Span,
}

/// What building needs besides the parsed graph.
pub struct BuildOptions<'a> {
    pub registry: &'a Registry,
    pub output: OutputConfig,
    pub overrides: Vec<Override>,
    /// Kind swaps, applied before parameter overrides.
    pub kind_overrides: Vec<KindOverride>,
    /// `--seed`: replaces the world's seed.
    pub seed: Option<u64>,
    /// Loads `model` declarations; None: a graph with models is an error.
    pub backend: Option<&'a dyn Backend>,
    /// `--provider`: replaces every model's provider.
    pub provider: Option<Provider>,
    /// `--backend`: replaces every model's backend.
    pub backend_kind: Option<BackendKind>,
}

/// Builds and checks a graph; on failure returns every error found.
pub fn build_graph(
    parsed: &ast::Graph,
    sources: &SourceMap,
    options: &BuildOptions<'_>,
) -> Result<Graph, Diagnostics> {
    let mut b = Builder {
        sources,
        options,
        diags: Diagnostics::new(),
        nodes: Vec::new(),
        failed: HashMap::new(),
        attempted: std::collections::HashSet::new(),
        bad_edge_into: std::collections::HashSet::new(),
        referenced_by_failed: std::collections::HashSet::new(),
        by_name: HashMap::new(),
        edges: Vec::new(),
        miswired: Vec::new(),
        loaded: HashMap::new(),
        init_spans: HashMap::new(),
        orphan_inits: Vec::new(),
    };
    let settings = b.settings(parsed);
    let (models, table) = b.models(parsed, &settings);
    b.nodes(parsed, &settings, &models, &table);
    b.edges(parsed, &settings);
    b.calls();
    b.unconnected();
    let built = b.order();
    if let Some((dag, order)) = &built {
        b.infer(order);
        let _ = dag;
    }
    if b.diags.has_errors() {
        return Err(b.diags.sorted());
    }
    let (dag, order) = built.ok_or_else(|| b.diags.clone())?;
    let nodes = b.nodes.into_iter().map(|(n, _)| n).collect();
    Ok(Graph {
        settings,
        nodes,
        edges: b.edges,
        models,
        model_table: table,
        dag,
        order,
        warnings: b.diags.sorted(),
    })
}

/// A node being built, with what later phases need.
struct Builder<'a> {
    sources: &'a SourceMap,
    options: &'a BuildOptions<'a>,
    diags: Diagnostics,
    /// Successfully configured nodes (and the declaration they came from).
    nodes: Vec<(GraphNode, ast::NodeDecl)>,
    /// Names of declared nodes that failed to configure (edges to them are skipped).
    failed: HashMap<String, Span>,
    /// Inputs whose edge was written but dropped after its own error (a
    /// failed node, a bad port): not reported again as "not connected".
    attempted: std::collections::HashSet<(NodeId, usize)>,
    /// Nodes an edge named a missing input of (reported): their unconnected
    /// inputs are a consequence.
    bad_edge_into: std::collections::HashSet<NodeId>,
    /// Nodes a failed node referenced with `@name` (a sampler that failed to
    /// build): not reported again as "no node calls it".
    referenced_by_failed: std::collections::HashSet<String>,
    by_name: HashMap<String, NodeId>,
    edges: Vec<GraphEdge>,
    /// Nodes with a wiring error: left out of type inference (no cascades).
    miswired: Vec<bool>,
    /// Models already loaded, by file and options: two declarations of one
    /// file share one session.
    loaded: HashMap<(std::path::PathBuf, ModelOptions), Arc<dyn crate::model::Model>>,
    /// Where each feedback edge's `init` is written, by index into `edges`:
    /// a type error about tick 0's value points there.
    init_spans: HashMap<usize, Span>,
    /// Feedback edges whose producer failed its own check (an unknown kind,
    /// a misspelt `@node`): the input still gets the init on tick 0, so
    /// its node is type-checked with it (input, init value, init span) and
    /// one `check` shows the shape errors next to the name errors.
    orphan_inits: Vec<((NodeId, usize), Value, Span)>,
}

impl Builder<'_> {
    fn settings(&mut self, parsed: &ast::Graph) -> Settings {
        let root = parsed.root;
        let mut merged: Vec<Entry> = Vec::new();
        let mut span = None;
        for st in &parsed.statements {
            let Statement::Settings(record) = st else {
                continue;
            };
            span.get_or_insert(record.span);
            let from_root = Some(record.span.file) == root;
            for e in &record.entries {
                match merged.iter_mut().find(|m| m.key.name == e.key.name) {
                    None => merged.push(e.clone()),
                    Some(existing) if existing.key.span.file == e.key.span.file => {
                        self.diags.push(
                            Diagnostic::error(
                                e.key.span,
                                format!("setting `{}` is set twice", e.key.name),
                            )
                            .with_label("second setting")
                            .with_secondary(existing.key.span, "first set here"),
                        );
                    }
                    // The root file overrides what includes set.
                    Some(existing) if from_root => *existing = e.clone(),
                    Some(_) => {}
                }
            }
        }
        let record = Record {
            entries: merged,
            span: span.unwrap_or_default(),
        };
        let cx = ParamContext {
            sources: self.sources,
            settings: None,
            owner: "`world`".into(),
        };
        let params = check_params(SETTINGS, &record, record.span, &cx, &mut self.diags);
        let (mut settings, problems) = Settings::from_params(&params);
        for (name, message) in problems {
            let span = params.span(name).unwrap_or(record.span);
            self.diags.push(Diagnostic::error(span, message));
        }
        if let Some(seed) = self.options.seed {
            settings.seed = seed;
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::models::CONTRACT_KEYS;
    use super::*;
    use crate::params::Default;

    /// Every contract key a `model` declaration can carry is one of its
    /// checked options, so the graph parser accepts and types it.
    #[test]
    fn every_contract_key_is_a_model_option() {
        for key in CONTRACT_KEYS {
            let spec = MODEL_OPTIONS.iter().find(|s| s.name == key);
            assert!(spec.is_some(), "`{key}` is not in MODEL_OPTIONS");
            assert_eq!(spec.and_then(|s| s.default), Some(Default::Absent), "{key}");
        }
    }
}
