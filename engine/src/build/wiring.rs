//! Wiring (build phase 4): ports resolved by name, edges and feedback
//! `init` values, call edges to callable nodes, and required inputs left
//! unconnected.

use super::Builder;
use crate::graph::{EdgeKind, GraphEdge, NodeId};
use crate::node::{PortRole, PortSpec};
use crate::settings::Settings;
use crate::tensor::Tensor;
use crate::value::Value;
use std::collections::HashMap;
use wgraph_grammar::ast::{self, DimExpr, Init, PortRef, Statement};
use wgraph_grammar::diagnostic::{Diagnostic, Diagnostics, did_you_mean, port_syntax};

impl Builder<'_> {
    /// Resolves `node` or `node.port` on one side; None after reporting.
    pub(super) fn port(&mut self, r: &PortRef, output: bool) -> Option<(NodeId, usize)> {
        let Some(&id) = self.by_name.get(&r.node.name) else {
            if !self.failed.contains_key(&r.node.name) {
                let mut d =
                    Diagnostic::error(r.node.span, format!("no node named `{}`", r.node.name))
                        .with_label("unknown node");
                let names = self
                    .by_name
                    .keys()
                    .map(String::as_str)
                    .chain(self.failed.keys().map(String::as_str));
                if let Some(h) = did_you_mean(&r.node.name, names) {
                    d = d.with_help(h);
                }
                self.diags.push(d);
            }
            return None;
        };
        let node = &self.nodes[id.0].0;
        let side = if output { "output" } else { "input" };
        let ports: &[PortSpec] = if output { &node.outputs } else { &node.inputs };
        let listing = || {
            if ports.is_empty() {
                format!("`{}` ({}) has no {side}s", node.name, node.kind)
            } else {
                format!(
                    "{side}s of `{}` ({}): {}",
                    node.name,
                    node.kind,
                    ports
                        .iter()
                        .map(|p| port_syntax(&p.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        match &r.port {
            Some(port) => match ports.iter().position(|p| p.name == port.name) {
                Some(i) => Some((id, i)),
                None => {
                    let mut d = Diagnostic::error(
                        port.span,
                        format!(
                            "node `{}` ({}) has no {side} `{}`",
                            node.name, node.kind, port.name
                        ),
                    )
                    .with_label(format!("unknown {side}"));
                    let spelled: Vec<String> = ports.iter().map(|p| port_syntax(&p.name)).collect();
                    d = match did_you_mean(&port.name, spelled.iter().map(String::as_str)) {
                        Some(h) => d.with_help(format!("{h} ({})", listing())),
                        None => d.with_help(listing()),
                    };
                    self.diags.push(d);
                    None
                }
            },
            None => {
                let mut candidates: Vec<usize> = (0..ports.len())
                    .filter(|&i| output || ports[i].role != PortRole::Call)
                    .collect();
                // A bare edge goes to the one required input: optional
                // inputs (a sampler's `step_noise`, `reuse`) never make an
                // old graph's `n -> s` ambiguous.
                let required: Vec<usize> = candidates
                    .iter()
                    .copied()
                    .filter(|&i| ports[i].role == PortRole::Wired)
                    .collect();
                if !output && required.len() == 1 {
                    candidates = required;
                }
                if let [only] = candidates.as_slice() {
                    Some((id, *only))
                } else {
                    let message = if candidates.is_empty() {
                        format!(
                            "node `{}` ({}) has no {side} to connect",
                            node.name, node.kind
                        )
                    } else {
                        format!(
                            "node `{}` ({}) has several {side}s; name one as `{}.PORT`",
                            node.name, node.kind, node.name
                        )
                    };
                    self.diags
                        .push(Diagnostic::error(r.span, message).with_help(listing()));
                    None
                }
            }
        }
    }

    pub(super) fn edges(&mut self, parsed: &ast::Graph, settings: &Settings) {
        for st in &parsed.statements {
            let (from, to, init, span) = match st {
                Statement::Edge(e) => (&e.from, &e.to, None, e.span),
                Statement::Feedback(f) => (&f.from, &f.to, Some(&f.init), f.span),
                _ => continue,
            };
            let src = self.port(from, true);
            let dst = self.port(to, false);
            let kind = match init {
                None => Some(EdgeKind::Data),
                Some(init) => self
                    .init_value(init, settings)
                    .map(|init| EdgeKind::Feedback { init }),
            };
            let (Some((from_id, from_port)), Some((to_id, to_port)), Some(kind)) =
                (src, dst, kind.as_ref())
            else {
                // The edge's error is reported; its input is not "unconnected",
                // nor (for an input the node lacks) are the node's others: the
                // edge was meant for one of them.
                match dst {
                    Some(d) => match (&kind, init) {
                        // From a node that failed its own check: tick 0's
                        // value is still known.
                        (Some(EdgeKind::Feedback { init: value }), Some(init))
                            if src.is_none()
                                && self.failed.contains_key(&from.node.name)
                                && self.nodes[d.0.0].0.inputs[d.1].role != PortRole::Call =>
                        {
                            self.orphan_inits.push((d, value.clone(), init.span()));
                        }
                        _ => {
                            self.attempted.insert(d);
                        }
                    },
                    None => {
                        if let Some(&id) = self.by_name.get(&to.node.name) {
                            self.bad_edge_into.insert(id);
                        }
                    }
                }
                continue;
            };
            let target = &self.nodes[to_id.0].0;
            let port = &target.inputs[to_port];
            if port.role == PortRole::Call {
                self.diags.push(
                    Diagnostic::error(
                        to.span,
                        format!(
                            "input `{}` of `{}` is supplied by the node that calls it; it cannot be wired",
                            port.name, target.name
                        ),
                    )
                    .with_help(format!("reference the node as `@{}` from a sampler instead", target.name)),
                );
                continue;
            }
            if let Some(first) = self
                .edges
                .iter()
                .find(|e| e.to == to_id && e.to_port == to_port)
            {
                self.diags.push(
                    Diagnostic::error(
                        to.span,
                        format!("input `{}.{}` is already connected", target.name, port.name),
                    )
                    .with_label("second connection")
                    .with_secondary(first.span, "first connected here"),
                );
                continue;
            }
            if let Some(init) = init {
                self.init_spans.insert(self.edges.len(), init.span());
            }
            self.edges.push(GraphEdge {
                from: from_id,
                from_port,
                to: to_id,
                to_port,
                kind: kind.clone(),
                span,
            });
        }
    }

    pub(super) fn init_value(&mut self, init: &Init, settings: &Settings) -> Option<Value> {
        // Sizes may say H, W and F, as everywhere else in a graph.
        let shape = |dims: &[DimExpr], diags: &mut Diagnostics| -> Option<Vec<usize>> {
            let mut out = Vec::new();
            for d in dims {
                match d {
                    DimExpr::Known(n) => out.push(usize::try_from(*n).ok()?),
                    DimExpr::Symbol(s) => match settings.dim(s) {
                        Some(n) => out.push(n),
                        None => {
                            diags.push(
                                Diagnostic::error(
                                    init.span(),
                                    format!("feedback init: unknown dimension symbol `{s}`"),
                                )
                                .with_help(
                                    "shapes may use H and W (from `resolution`) and F (from `frames_per_tick`)",
                                ),
                            );
                            return None;
                        }
                    },
                }
            }
            Some(out)
        };
        let result = match init {
            Init::Zeros { shape: dims, .. } => {
                shape(dims, &mut self.diags).map(|s| Tensor::full_f32(&s, 0.0))
            }
            Init::Fill {
                value, shape: dims, ..
            } => shape(dims, &mut self.diags).map(|s| Tensor::full_f32(&s, *value as f32)),
            Init::Npy { path, span } => {
                let full = self.sources.get(span.file).base_dir().join(path);
                match crate::npy::read_npy_file(&full) {
                    Ok(t) if t.host().is_ok_and(|d| d.non_finite().is_some()) => {
                        self.diags.push(Diagnostic::error(
                            *span,
                            format!("feedback init: `{path}` holds NaN or infinite values"),
                        ));
                        None
                    }
                    Ok(t) => Some(Ok(t)),
                    Err(e) => {
                        self.diags
                            .push(Diagnostic::error(*span, format!("feedback init: {e}")));
                        None
                    }
                }
            }
        }?;
        match result {
            Ok(t) => Some(Value::Tensor(t)),
            Err(e) => {
                self.diags.push(Diagnostic::error(
                    init.span(),
                    format!("feedback init: {e}"),
                ));
                None
            }
        }
    }

    pub(super) fn calls(&mut self) {
        self.miswired = vec![false; self.nodes.len()];
        let mut called_by: HashMap<NodeId, NodeId> = HashMap::new();
        for caller in 0..self.nodes.len() {
            let specs = self.nodes[caller].0.node.calls();
            for spec in specs {
                let node = &self.nodes[caller].0;
                let param_span = node.params.span(&spec.param).unwrap_or(node.span);
                let Ok(target) = node.params.node_ref(&spec.param) else {
                    self.diags.push(Diagnostic::error(
                        node.span,
                        format!("internal: `{}` ({}) declares a call through `{}`, which is not a node reference", node.name, node.kind, spec.param),
                    ));
                    continue;
                };
                let Some(&callee) = self.by_name.get(&target) else {
                    // Reported by the static check, or the callee failed to
                    // build (reported there): the caller cannot be typed.
                    self.miswired[caller] = true;
                    continue;
                };
                let callee_node = &self.nodes[callee.0].0;
                let call_inputs: Vec<&str> = callee_node
                    .inputs
                    .iter()
                    .filter(|p| p.role == PortRole::Call)
                    .map(|p| p.name.as_str())
                    .collect();
                let mut slots = Vec::new();
                for arg in &spec.args {
                    match callee_node
                        .inputs
                        .iter()
                        .position(|p| &p.name == arg && p.role == PortRole::Call)
                    {
                        Some(i) => slots.push(i),
                        None => break,
                    }
                }
                if slots.len() != spec.args.len() || call_inputs.len() != spec.args.len() {
                    self.miswired[caller] = true;
                    self.diags.push(
                        Diagnostic::error(
                            param_span,
                            format!(
                                "`{}` ({}) calls `{}` with ({}), but `{}` ({}) takes ({}) from its caller",
                                node.name,
                                node.kind,
                                callee_node.name,
                                spec.args.join(", "),
                                callee_node.name,
                                callee_node.kind,
                                call_inputs.join(", ")
                            ),
                        )
                        .with_secondary(callee_node.span, "declared here"),
                    );
                    continue;
                }
                called_by.insert(callee, NodeId(caller));
                self.nodes[caller].0.callees.push(callee);
                self.nodes[caller].0.call_arg_slots.push(slots);
            }
        }
        for (i, (node, _)) in self.nodes.iter_mut().enumerate() {
            let id = NodeId(i);
            let takes_calls = node.inputs.iter().any(|p| p.role == PortRole::Call);
            node.is_callee = called_by.contains_key(&id);
            if takes_calls && !node.is_callee && self.referenced_by_failed.contains(&node.name) {
                // Its caller failed to build (reported there): no second error.
                self.miswired[i] = true;
            } else if takes_calls && !node.is_callee {
                self.miswired[i] = true;
                let names: Vec<&str> = node
                    .inputs
                    .iter()
                    .filter(|p| p.role == PortRole::Call)
                    .map(|p| p.name.as_str())
                    .collect();
                self.diags.push(
                    Diagnostic::error(
                        node.span,
                        format!(
                            "node `{}` ({}) takes ({}) from a caller, but no node calls it",
                            node.name,
                            node.kind,
                            names.join(", ")
                        ),
                    )
                    .with_help(format!(
                        "use it from a sampler: `denoiser = @{}`",
                        node.name
                    )),
                );
            }
        }
        for e in &self.edges {
            if let Some(caller) = called_by.get(&e.from) {
                let callee = &self.nodes[e.from.0].0;
                self.diags.push(Diagnostic::error(
                    e.span,
                    format!(
                        "`{}` is called by `{}`; its outputs go to its caller and cannot be wired",
                        callee.name, self.nodes[caller.0].0.name
                    ),
                ));
            }
        }
    }

    pub(super) fn unconnected(&mut self) {
        let mut miswired = std::mem::take(&mut self.miswired);
        for (i, (node, _)) in self.nodes.iter().enumerate() {
            let mut missing = Vec::new();
            for (p, port) in node.inputs.iter().enumerate() {
                if port.role != PortRole::Wired {
                    continue;
                }
                if self.attempted.contains(&(NodeId(i), p)) {
                    // Its edge failed: leave the node out of type inference.
                    miswired[i] = true;
                    continue;
                }
                if !self
                    .edges
                    .iter()
                    .any(|e| e.to == NodeId(i) && e.to_port == p)
                    && !self.orphan_inits.iter().any(|o| o.0 == (NodeId(i), p))
                {
                    missing.push((port.name.as_str(), node.node.input_type(p)));
                }
            }
            if missing.is_empty() {
                continue;
            }
            miswired[i] = true;
            if self.bad_edge_into.contains(&NodeId(i)) {
                continue;
            }
            // One error per node, naming every input it lacks.
            let listed: Vec<String> = missing
                .iter()
                .map(|(p, _)| format!("`{}.{}`", node.name, port_syntax(p)))
                .collect();
            let message = match listed.as_slice() {
                [one] => format!("input {one} is not connected"),
                many => format!("inputs {} are not connected", many.join(", ")),
            };
            // Each with the type it takes, when the node knows it.
            let help: Vec<String> = missing
                .iter()
                .map(|(p, ty)| {
                    let wire = format!("`some_node.out -> {}.{}`", node.name, port_syntax(p));
                    match ty {
                        Some(ty) => format!("{wire} (it takes {ty})"),
                        None => wire,
                    }
                })
                .collect();
            self.diags.push(
                Diagnostic::error(node.span, message)
                    .with_label(format!(
                        "`{}` ({}) needs {}",
                        node.name,
                        node.kind,
                        missing
                            .iter()
                            .map(|(p, _)| format!("`{p}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .with_help(format!("connect it: {}", help.join(", "))),
            );
        }
        self.miswired = miswired;
    }
}
