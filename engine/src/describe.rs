//! Exports of a built graph: JSON (serde_json), Graphviz dot, Mermaid.

use crate::graph::{EdgeKind, Graph};
use serde_json::{Value as Json, json};

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
