//! The plan: `compile` turns a [`Graph`] into steps (`Step`), each with the
//! sources of its inputs (same tick, feedback, or empty), its call tree
//! (`CallPlan`), its prerequisites and its expected output types.

use super::{CallPlan, Source, Step};
use crate::graph::{EdgeKind, Graph, NodeId};
use std::collections::BTreeMap;

/// Turns the graph into plan steps with their prerequisites.
pub(super) fn compile(graph: &Graph) -> Vec<Step> {
    let plan_of: BTreeMap<NodeId, usize> = graph
        .order
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let sources = |id: NodeId| -> Vec<Source> {
        let node = graph.node(id);
        (0..node.inputs.len())
            .map(|port| match graph.edge_into(id, port) {
                None => Source::Empty,
                Some(e) => {
                    let Some(&plan) = plan_of.get(&e.from) else {
                        return Source::Empty;
                    };
                    match &e.kind {
                        EdgeKind::Data => Source::Data {
                            plan,
                            port: e.from_port,
                        },
                        EdgeKind::Feedback { init } => Source::Feedback {
                            plan,
                            port: e.from_port,
                            init: init.clone(),
                        },
                    }
                }
            })
            .collect()
    };
    fn call_plans(
        graph: &Graph,
        id: NodeId,
        sources: &dyn Fn(NodeId) -> Vec<Source>,
    ) -> Vec<CallPlan> {
        let node = graph.node(id);
        node.callees
            .iter()
            .zip(&node.call_arg_slots)
            .map(|(&c, slots)| CallPlan {
                node: c,
                inputs: sources(c),
                arg_slots: slots.clone(),
                children: call_plans(graph, c, sources),
            })
            .collect()
    }
    fn collect(
        inputs: &[Source],
        calls: &[CallPlan],
        deps: &mut Vec<usize>,
        prev: &mut Vec<usize>,
    ) {
        for s in inputs {
            match s {
                Source::Data { plan, .. } if !deps.contains(plan) => deps.push(*plan),
                Source::Feedback { plan, .. } if !prev.contains(plan) => prev.push(*plan),
                _ => {}
            }
        }
        for c in calls {
            collect(&c.inputs, &c.children, deps, prev);
        }
    }
    let mut steps: Vec<Step> = graph
        .order
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let inputs = sources(id);
            let calls = call_plans(graph, id, &sources);
            let mut deps = Vec::new();
            let mut prev_deps = vec![i];
            collect(&inputs, &calls, &mut deps, &mut prev_deps);
            let out_types = graph
                .node(id)
                .output_types
                .iter()
                .map(|t| {
                    let t = t.as_tensor()?;
                    Some((t.dtype, t.known_shape()?))
                })
                .collect();
            Step {
                node: id,
                inputs,
                calls,
                deps,
                prev_deps,
                succ: Vec::new(),
                prev_succ: Vec::new(),
                out_types,
                shows: graph.node(id).node.displays(),
            }
        })
        .collect();
    for i in 0..steps.len() {
        for d in steps[i].deps.clone() {
            steps[d].succ.push(i);
        }
        for d in steps[i].prev_deps.clone() {
            steps[d].prev_succ.push(i);
        }
    }
    steps
}
