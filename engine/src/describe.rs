//! Exports of a built graph: JSON (serde_json), Graphviz dot, Mermaid; and
//! the node kinds as `wgraph kinds` lists them ([`kinds_list`], [`kind_help`]).

use crate::graph::{EdgeKind, Graph};
use crate::node::{CallSpec, NodeKind, PortRole, PortSpec};
use crate::params::{ParamSpec, ParamType};
use crate::registry::Registry;
use serde_json::{Value as Json, json};
use std::fmt::Write as _;

/// Nodes (name, kind, params, typed ports), edges (with ports and whether
/// they are feedback edges), calls, models and settings.
pub fn to_json(graph: &Graph) -> Json {
    let s = &graph.settings;
    json!({
        "settings": {
            "name": s.name, "seed": s.seed, "fps": s.fps,
            "resolution": [s.height, s.width],
            "frames_per_tick": s.frames_per_tick, "provider": s.provider,
        },
        "models": graph.models.iter().map(|m| json!({
            "name": m.name,
            "path": m.path.display().to_string(),
            "options": m.options.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "nodes": graph.nodes.iter().map(|n| json!({
            "name": n.name,
            "kind": n.kind,
            "params": n.params.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect::<serde_json::Map<_, _>>(),
            "inputs": n.inputs.iter().zip(&n.input_types).map(|(p, t)| json!({
                "name": p.name,
                "role": format!("{:?}", p.role).to_lowercase(),
                "type": t.as_ref().map(ToString::to_string),
            })).collect::<Vec<_>>(),
            "outputs": n.outputs.iter().enumerate().map(|(i, p)| json!({
                "name": p.name,
                "type": n.output_types.get(i).map(ToString::to_string),
            })).collect::<Vec<_>>(),
            "calls": n.callees.iter().map(|c| graph.node(*c).name.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "edges": graph.edges.iter().map(|e| {
            let from = graph.node(e.from);
            let to = graph.node(e.to);
            json!({
                "from": from.name, "from_port": from.outputs[e.from_port].name,
                "to": to.name, "to_port": to.inputs[e.to_port].name,
                "feedback": matches!(e.kind, EdgeKind::Feedback { .. }),
            })
        }).collect::<Vec<_>>(),
        "order": graph.order.iter().map(|id| graph.node(*id).name.clone()).collect::<Vec<_>>(),
    })
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz dot: data edges solid, feedback edges dashed, calls dotted.
pub fn to_dot(graph: &Graph) -> String {
    let mut out = String::from(
        "digraph world {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for n in &graph.nodes {
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\\n({})\"];\n",
            quote(&n.name),
            quote(&n.name),
            n.kind
        ));
    }
    for e in &graph.edges {
        let from = graph.node(e.from);
        let to = graph.node(e.to);
        let style = match e.kind {
            EdgeKind::Data => "",
            EdgeKind::Feedback { .. } => ", style=dashed, constraint=false",
        };
        out.push_str(&format!(
            "  \"{}\" -> \"{}\" [label=\"{} → {}\"{style}];\n",
            quote(&from.name),
            quote(&to.name),
            quote(&from.outputs[e.from_port].name),
            quote(&to.inputs[e.to_port].name)
        ));
    }
    for n in &graph.nodes {
        for c in &n.callees {
            out.push_str(&format!(
                "  \"{}\" -> \"{}\" [label=\"calls\", style=dotted];\n",
                quote(&n.name),
                quote(&graph.node(*c).name)
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart (renders on GitHub): feedback edges dashed, calls dotted.
pub fn to_mermaid(graph: &Graph) -> String {
    let id = |i: usize| format!("n{i}");
    let mut out = String::from("flowchart LR\n");
    for (i, n) in graph.nodes.iter().enumerate() {
        out.push_str(&format!(
            "  {}[\"{}<br/>({})\"]\n",
            id(i),
            n.name.replace('"', "'"),
            n.kind
        ));
    }
    for e in &graph.edges {
        let label = format!(
            "{} → {}",
            graph.node(e.from).outputs[e.from_port].name,
            graph.node(e.to).inputs[e.to_port].name
        );
        let arrow = match e.kind {
            EdgeKind::Data => "-->",
            EdgeKind::Feedback { .. } => "-.->",
        };
        let label = match e.kind {
            EdgeKind::Data => label,
            EdgeKind::Feedback { .. } => format!("{label} (t-1)"),
        };
        out.push_str(&format!(
            "  {} {arrow}|\"{}\"| {}\n",
            id(e.from.0),
            label,
            id(e.to.0)
        ));
    }
    for (i, n) in graph.nodes.iter().enumerate() {
        for c in &n.callees {
            out.push_str(&format!("  {} -.-|calls| {}\n", id(i), id(c.0)));
        }
    }
    out
}

/// Every kind of `registry`, one line each: its name, then its summary in
/// one column as wide as the longest name.
pub fn kinds_list(registry: &Registry) -> String {
    let width = registry
        .kinds()
        .map(|k| k.name().chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for k in registry.kinds() {
        let _ = writeln!(out, "{:<width$}  {}", k.name(), k.summary());
    }
    out
}

/// A kind's ports as built with its default parameters (the nodes crate's
/// `ports::default_ports`).
#[derive(Clone, Copy, Debug)]
pub struct KindPorts<'a> {
    pub inputs: &'a [PortSpec],
    pub outputs: &'a [PortSpec],
    pub calls: &'a [CallSpec],
}

/// One kind's help: its summary, its parameter table (name, type with
/// default, doc) and its ports — `None` for a kind whose ports its
/// parameters set.
pub fn kind_help(k: &dyn NodeKind, ports: Option<KindPorts<'_>>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", k.name(), k.summary());
    out.push_str("parameters:\n");
    if k.params().is_empty() {
        out.push_str("  (none)\n");
    }
    // Columns as wide as this kind's longest name and type.
    let name_w = k.params().iter().map(|p| p.name.len()).max().unwrap_or(0);
    let rows: Vec<(&str, String, &str)> = k
        .params()
        .iter()
        .map(|p| (p.name, describe_param(p), p.doc))
        .collect();
    let type_w = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .min(48);
    for (name, ty, doc) in rows {
        if ty.chars().count() > type_w {
            // A type too long for the column: the doc on its own line,
            // in the doc column.
            let _ = writeln!(out, "  {name:<name_w$}  {ty}");
            let _ = writeln!(out, "  {:<name_w$}  {:<type_w$}  {doc}", "", "");
        } else {
            let _ = writeln!(out, "  {name:<name_w$}  {ty:<type_w$}  {doc}");
        }
    }
    match ports {
        Some(ports) => {
            let list = |ps: &[PortSpec], role| -> String {
                let names: Vec<String> = ps
                    .iter()
                    .filter(|p| p.role == role)
                    .map(|p| wgraph_grammar::diagnostic::port_syntax(&p.name))
                    .collect();
                if names.is_empty() {
                    "(none)".into()
                } else {
                    names.join(", ")
                }
            };
            let _ = writeln!(out, "inputs:  {}", list(ports.inputs, PortRole::Wired));
            let optional = list(ports.inputs, PortRole::Optional);
            if optional != "(none)" {
                let _ = writeln!(out, "optional inputs: {optional}");
            }
            let called = list(ports.inputs, PortRole::Call);
            if called != "(none)" {
                let _ = writeln!(out, "from its caller: {called}");
            }
            for c in ports.calls {
                let _ = writeln!(out, "calls:   @{}({})", c.param, c.args.join(", "));
            }
            let _ = writeln!(out, "outputs: {}", list(ports.outputs, PortRole::Wired));
        }
        None => out.push_str(
            "ports: set by its parameters (a model's inputs and outputs, a file's shape); \
             `wgraph graph FILE` lists them for a graph that uses it\n",
        ),
    }
    out
}

/// A parameter's type as `wgraph kinds KIND` shows it, with its default
/// (`(required)`, `(optional)` or `= VALUE`).
pub fn describe_param(p: &ParamSpec) -> String {
    let ty = match p.ty {
        ParamType::Choice(c) => c.join("|"),
        other => other.describe(),
    };
    use crate::params::Default as D;
    match p.default {
        None => format!("{ty} (required)"),
        Some(D::Absent) => format!("{ty} (optional)"),
        Some(D::Int(i)) => format!("{ty} = {i}"),
        Some(D::Float(f)) => format!("{ty} = {f:?}"),
        Some(D::Bool(b)) => format!("{ty} = {b}"),
        Some(D::Str(s)) => format!("{ty} = {s:?}"),
        Some(D::Choice(c)) => format!("{ty} = {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{BuildContext, Node};
    use crate::params::Default as D;

    struct Blend;

    impl NodeKind for Blend {
        fn name(&self) -> &'static str {
            "blend"
        }
        fn summary(&self) -> &'static str {
            "mixes two frames"
        }
        fn params(&self) -> &'static [ParamSpec] {
            const PARAMS: &[ParamSpec] = &[
                ParamSpec {
                    name: "t",
                    ty: ParamType::Float,
                    default: Some(D::Float(0.5)),
                    doc: "weight of b",
                },
                ParamSpec {
                    name: "mode",
                    ty: ParamType::Choice(&["add", "mul"]),
                    default: None,
                    doc: "how",
                },
            ];
            PARAMS
        }
        fn build(&self, _: &BuildContext<'_>) -> Result<Box<dyn Node>, crate::node::BuildError> {
            unreachable!("never built")
        }
    }

    #[test]
    fn a_kind_is_listed_and_described_with_its_parameters_and_ports() {
        let mut registry = Registry::new();
        registry.register(Blend).unwrap();
        assert_eq!(kinds_list(&registry), "blend  mixes two frames\n");
        let inputs = [PortSpec::wired("a"), PortSpec::wired("b")];
        let outputs = [PortSpec::wired("out")];
        let ports = KindPorts {
            inputs: &inputs,
            outputs: &outputs,
            calls: &[],
        };
        assert_eq!(
            kind_help(&Blend, Some(ports)),
            "blend: mixes two frames\n\
             parameters:\n  \
               t     a number = 0.5      weight of b\n  \
               mode  add|mul (required)  how\n\
             inputs:  a, b\n\
             outputs: out\n"
        );
        assert!(kind_help(&Blend, None).ends_with("lists them for a graph that uses it\n"));
    }
}
