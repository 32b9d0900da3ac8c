//! Cycles and types (build phases 5–6): the data and call edges ordered as
//! a DAG, then every node's `infer` in topological order, callables
//! inferred through their callers (`CallInference`), and type errors
//! reported where the mistake is.

use super::Builder;
use crate::graph::{EdgeKind, NodeId};
use crate::node::{InferCalls, TypeError};
use crate::types::ValueType;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use std::sync::Arc;
use wgraph_grammar::diagnostic::{Diagnostic, port_syntax};
use wgraph_grammar::source::Span;

impl Builder<'_> {
    /// The dependency DAG and the schedule order; None (after reporting) on a cycle.
    pub(super) fn order(&mut self) -> Option<(DiGraph<NodeId, ()>, Vec<NodeId>)> {
        let mut dag = DiGraph::<NodeId, ()>::new();
        let idx: Vec<NodeIndex> = (0..self.nodes.len())
            .map(|i| dag.add_node(NodeId(i)))
            .collect();
        for e in &self.edges {
            if e.kind == EdgeKind::Data {
                dag.update_edge(idx[e.from.0], idx[e.to.0], ());
            }
        }
        for (i, (node, _)) in self.nodes.iter().enumerate() {
            for c in &node.callees {
                dag.update_edge(idx[c.0], idx[i], ());
            }
        }
        match toposort(&dag, None) {
            Ok(sorted) => {
                let order = sorted
                    .into_iter()
                    .map(|n| dag[n])
                    .filter(|id| !self.nodes[id.0].0.is_callee)
                    .collect();
                Some((dag, order))
            }
            Err(_) => {
                for scc in tarjan_scc(&dag) {
                    let self_loop = scc.len() == 1 && dag.contains_edge(scc[0], scc[0]);
                    if scc.len() < 2 && !self_loop {
                        continue;
                    }
                    let members: Vec<NodeId> = scc.iter().rev().map(|n| dag[*n]).collect();
                    let names: Vec<&str> = members
                        .iter()
                        .map(|m| self.nodes[m.0].0.name.as_str())
                        .collect();
                    let span = self
                        .edges
                        .iter()
                        .find(|e| {
                            e.kind == EdgeKind::Data
                                && members.contains(&e.from)
                                && members.contains(&e.to)
                        })
                        .map(|e| e.span)
                        .unwrap_or(self.nodes[members[0].0].0.span);
                    let mut chain = names.join(" → ");
                    chain.push_str(&format!(" → {}", names[0]));
                    self.diags.push(
                        Diagnostic::error(span, format!("cycle without a feedback edge: {chain}"))
                            .with_label("this edge closes the cycle")
                            .with_help(
                                "a value can only flow back to an earlier node across ticks: write \
                                 `feedback a.out -> b.in init zeros(SHAPE)` for one edge of the cycle",
                            ),
                    );
                }
                None
            }
        }
    }

    pub(super) fn infer(&mut self, order: &[NodeId]) {
        let mut ok: Vec<bool> = self.miswired.iter().map(|m| !m).collect();
        // A caller of a miswired callee is left out too (its error is the callee's).
        let mut changed = true;
        while changed {
            changed = false;
            for (i, (node, _)) in self.nodes.iter().enumerate() {
                if ok[i] && node.callees.iter().any(|c| !ok[c.0]) {
                    ok[i] = false;
                    changed = true;
                }
            }
        }
        for &id in order {
            if !ok[id.0] {
                continue;
            }
            let Some(types) = self.wired_types(id, &ok) else {
                ok[id.0] = false;
                continue;
            };
            let node = Arc::clone(&self.nodes[id.0].0.node);
            let mut calls = CallInference {
                builder: self,
                caller: id,
                ok: &ok,
                depth: 0,
            };
            let result = node.infer(&types, &mut calls);
            match result {
                Ok(outputs) => {
                    if !self.accept(id, types, outputs) {
                        ok[id.0] = false;
                    }
                }
                Err(e) => {
                    ok[id.0] = false;
                    self.report_type_error(id, &types, e);
                }
            }
        }
        // Feedback edges: the init value must have the type the edge carries later.
        for e in &self.edges {
            let EdgeKind::Feedback { init } = &e.kind else {
                continue;
            };
            let Some(out) = self.nodes[e.from.0].0.output_types.get(e.from_port) else {
                continue;
            };
            let init_ty = init.value_type();
            if &init_ty != out {
                let from = &self.nodes[e.from.0].0;
                // An output one step longer than its own input along one axis
                // (a cache that appends): no init fixes that.
                let grows = match (init_ty.as_tensor(), out.as_tensor()) {
                    (Some(a), Some(b)) if a.dtype == b.dtype && a.shape.len() == b.shape.len() => {
                        let diff: Vec<(usize, usize)> = a
                            .shape
                            .iter()
                            .zip(&b.shape)
                            .filter_map(|(x, y)| match (x, y) {
                                (crate::types::Dim::Known(x), crate::types::Dim::Known(y))
                                    if x != y =>
                                {
                                    Some((*x, *y))
                                }
                                _ => None,
                            })
                            .collect();
                        matches!(diff.as_slice(), [(x, y)] if y > x)
                    }
                    _ => false,
                };
                let help = if grows {
                    "the value grows each tick (the output is longer than the input it was given): a feedback edge carries one fixed type, so keep a fixed-size cache (roll it: drop the oldest entry as the model appends one)".to_string()
                } else {
                    format!("make the init {out}")
                };
                self.diags.push(
                    Diagnostic::error(
                        e.span,
                        format!(
                            "feedback `{}.{}`: the init value is {init_ty} but the edge carries {out}",
                            from.name, from.outputs[e.from_port].name
                        ),
                    )
                    .with_help(help),
                );
            }
        }
    }

    /// Input types of a node from its feeding edges; None when a producer failed.
    pub(super) fn wired_types(&self, id: NodeId, ok: &[bool]) -> Option<Vec<Option<ValueType>>> {
        let node = &self.nodes[id.0].0;
        let mut types = vec![None; node.inputs.len()];
        for ((_, port), init, _) in self.orphan_inits.iter().filter(|o| o.0.0 == id) {
            types[*port] = Some(init.value_type());
        }
        for e in self.edges.iter().filter(|e| e.to == id) {
            types[e.to_port] = match &e.kind {
                EdgeKind::Feedback { init } => Some(init.value_type()),
                EdgeKind::Data => {
                    if !ok[e.from.0] {
                        return None;
                    }
                    Some(
                        self.nodes[e.from.0]
                            .0
                            .output_types
                            .get(e.from_port)?
                            .clone(),
                    )
                }
            };
        }
        Some(types)
    }

    /// Records a node's inferred types; false (with an error) when they
    /// cannot be run: a wrong count, or an output over the tensor size limit.
    pub(super) fn accept(
        &mut self,
        id: NodeId,
        types: Vec<Option<ValueType>>,
        outputs: Vec<ValueType>,
    ) -> bool {
        let node = &mut self.nodes[id.0].0;
        for (port, out) in node.outputs.iter().zip(&outputs) {
            let ValueType::Tensor(t) = out else { continue };
            let Some(shape) = t.known_shape() else {
                continue;
            };
            if let Err(e) = crate::tensor::checked_elements(&shape) {
                self.diags.push(
                    Diagnostic::error(
                        node.span,
                        format!("output `{}.{}` would be {t}: {e}", node.name, port.name),
                    )
                    .with_help("check the sizes feeding this node"),
                );
                return false;
            }
        }
        if outputs.len() != node.outputs.len() {
            self.diags.push(Diagnostic::error(
                node.span,
                format!(
                    "internal: `{}` ({}) inferred {} output types for {} outputs",
                    node.name,
                    node.kind,
                    outputs.len(),
                    node.outputs.len()
                ),
            ));
            return false;
        }
        node.input_types = types;
        node.output_types = outputs;
        true
    }

    /// The parameter that fixes the type of output `port` of node `id`, and
    /// where it is written ([`Node::output_set_by`]).
    pub(super) fn set_by(&self, id: NodeId, port: usize) -> Option<(&'static str, Span)> {
        let node = &self.nodes[id.0].0;
        let param = node.node.output_set_by(port)?;
        Some((param, node.params.span(param)?))
    }

    /// A callee rejected argument `arg` of its call, of type `ty`: when that
    /// argument is a value the caller received on a data edge from an
    /// output a parameter fixes (a sampler's `noise`, passed on as `x`),
    /// the error is reported once, at that parameter. True when reported.
    pub(super) fn report_at_call_origin(
        &mut self,
        caller: NodeId,
        callee: NodeId,
        arg: &str,
        ty: &ValueType,
        e: &TypeError,
    ) -> bool {
        let Some(edge) = self.edges.iter().find(|x| {
            x.to == caller
                && x.kind == EdgeKind::Data
                && self.nodes[x.from.0].0.output_types.get(x.from_port) == Some(ty)
                && self.set_by(x.from, x.from_port).is_some()
        }) else {
            return false;
        };
        let Some((param, span)) = self.set_by(edge.from, edge.from_port) else {
            return false;
        };
        let (caller, callee, from) = (
            &self.nodes[caller.0].0,
            &self.nodes[callee.0].0,
            &self.nodes[edge.from.0].0,
        );
        let from_port = format!(
            "{}.{}",
            from.name,
            port_syntax(&from.outputs[edge.from_port].name)
        );
        let input = port_syntax(&caller.inputs[edge.to_port].name);
        self.diags.push(
            Diagnostic::error(
                span,
                format!(
                    "type mismatch: `{}` ({}) calls `{}` ({}) with its `{input}` as `{arg}`: {}",
                    caller.name, caller.kind, callee.name, callee.kind, e.message
                ),
            )
            .with_label(format!("`{}.{param}` makes `{from_port}` {ty}", from.name))
            .with_secondary(
                edge.span,
                format!("`{from_port}` feeds `{}.{input}` here", caller.name),
            )
            .with_secondary(
                callee.span,
                format!("`{}` ({}) declared here", callee.name, callee.kind),
            ),
        );
        true
    }

    pub(super) fn report_type_error(
        &mut self,
        id: NodeId,
        types: &[Option<ValueType>],
        e: TypeError,
    ) {
        if e.consequence {
            return;
        }
        let node = &self.nodes[id.0].0;
        let owner = format!("`{}` ({})", node.name, node.kind);
        let d = match e.input {
            Some(i) if i < node.inputs.len() => {
                let port = &node.inputs[i];
                match self
                    .edges
                    .iter()
                    .enumerate()
                    .find(|(_, x)| x.to == id && x.to_port == i)
                {
                    Some((index, edge)) => {
                        let from = &self.nodes[edge.from.0].0;
                        let found = types[i]
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default();
                        let from_port = format!(
                            "{}.{}",
                            from.name,
                            port_syntax(&from.outputs[edge.from_port].name)
                        );
                        let message = format!(
                            "type mismatch at input `{}.{}`: {}",
                            node.name,
                            port_syntax(&port.name),
                            e.message
                        );
                        let init = self.init_spans.get(&index).copied();
                        let set_by = self.set_by(edge.from, edge.from_port);
                        match (&edge.kind, init, set_by) {
                            // Tick 0's value is the init, not the producer's output.
                            (EdgeKind::Feedback { .. }, Some(init), _) => {
                                Diagnostic::error(init, message)
                                    .with_label(format!(
                                        "the init, the value of `{from_port}` on tick 0, is {found}"
                                    ))
                                    .with_secondary(node.span, format!("{owner} declared here"))
                            }
                            // The value's type was written in a parameter: say where.
                            (EdgeKind::Data, _, Some((param, span))) => {
                                Diagnostic::error(edge.span, message)
                                    .with_label(format!("`{from_port}` gives {found}"))
                                    .with_secondary(
                                        span,
                                        format!("`{}.{param}` makes it {found}", from.name),
                                    )
                                    .with_secondary(node.span, format!("{owner} declared here"))
                            }
                            _ => Diagnostic::error(edge.span, message)
                                .with_label(format!("`{from_port}` gives {found}"))
                                .with_secondary(node.span, format!("{owner} declared here")),
                        }
                    }
                    None => match self.orphan_inits.iter().find(|o| o.0 == (id, i)) {
                        Some((_, init, span)) => Diagnostic::error(
                            *span,
                            format!(
                                "type mismatch at input `{}.{}`: {}",
                                node.name,
                                port_syntax(&port.name),
                                e.message
                            ),
                        )
                        .with_label(format!(
                            "the init, tick 0's value, is {}",
                            init.value_type()
                        ))
                        .with_secondary(node.span, format!("{owner} declared here")),
                        None => Diagnostic::error(
                            node.span,
                            format!("{owner}, input `{}`: {}", port.name, e.message),
                        ),
                    },
                }
            }
            _ => Diagnostic::error(node.span, format!("{owner}: {}", e.message)),
        };
        self.diags.push(d);
    }
}

/// Infers a callee's outputs for its caller, with the callee's wired inputs.
struct CallInference<'b, 'a> {
    builder: &'b mut Builder<'a>,
    caller: NodeId,
    ok: &'b [bool],
    depth: usize,
}

impl InferCalls for CallInference<'_, '_> {
    fn callee_prediction(&self, index: usize) -> Option<crate::node::Prediction> {
        let caller = &self.builder.nodes[self.caller.0].0;
        let callee = caller.callees.get(index)?;
        self.builder.nodes[callee.0].0.node.prediction()
    }

    fn callee_outputs(&self, index: usize) -> Vec<String> {
        let caller = &self.builder.nodes[self.caller.0].0;
        caller
            .callees
            .get(index)
            .map(|c| {
                self.builder.nodes[c.0]
                    .0
                    .outputs
                    .iter()
                    .map(|p| p.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn infer_call(
        &mut self,
        index: usize,
        args: &[ValueType],
    ) -> Result<Vec<ValueType>, TypeError> {
        let caller = &self.builder.nodes[self.caller.0].0;
        let (Some(&callee), Some(slots)) =
            (caller.callees.get(index), caller.call_arg_slots.get(index))
        else {
            return Err(TypeError::node(format!("internal: no callable #{index}")));
        };
        let slots = slots.clone();
        if args.len() != slots.len() {
            return Err(TypeError::node(format!(
                "internal: callable #{index} takes {} arguments, {} given",
                slots.len(),
                args.len()
            )));
        }
        if self.depth > 32 {
            return Err(TypeError::node("calls nested deeper than 32 levels"));
        }
        let Some(mut types) = self.builder.wired_types(callee, self.ok) else {
            return Err(TypeError::consequence_of(
                "a node feeding the callee failed its own check",
            ));
        };
        for (slot, ty) in slots.iter().zip(args) {
            types[*slot] = Some(ty.clone());
        }
        let node = Arc::clone(&self.builder.nodes[callee.0].0.node);
        let mut nested = CallInference {
            builder: &mut *self.builder,
            caller: callee,
            ok: self.ok,
            depth: self.depth + 1,
        };
        match node.infer(&types, &mut nested) {
            Ok(outputs) => {
                self.builder.accept(callee, types, outputs.clone());
                Ok(outputs)
            }
            Err(e) => {
                let callee_name = self.builder.nodes[callee.0].0.name.clone();
                // An argument the callee refused that came from a parameter
                // (a sampler's noise `shape`): one error, at that parameter.
                let refused = e.input.and_then(|i| {
                    let k = slots.iter().position(|s| *s == i)?;
                    let arg = self.builder.nodes[callee.0].0.inputs[i].name.clone();
                    Some((arg, args.get(k)?.clone()))
                });
                if !e.consequence
                    && let Some((arg, ty)) = refused
                    && self
                        .builder
                        .report_at_call_origin(self.caller, callee, &arg, &ty, &e)
                {
                    return Err(TypeError::consequence_of(format!(
                        "its callable `{callee_name}` rejected the call (reported at the value's origin)"
                    )));
                }
                self.builder.report_type_error(callee, &types, e.clone());
                Err(TypeError::node(format!(
                    "its callable `{callee_name}` rejected the call: {}",
                    e.message
                )))
            }
        }
    }
}
