//! `wgraph graph`: the graph exported as JSON, DOT and Mermaid.

use super::*;

#[test]
fn json_lists_nodes_kinds_params_and_ported_edges() {
    let o = wgraph(&["graph", "examples/trail.world", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    let blend = nodes.iter().find(|n| n["name"] == "blend").unwrap();
    assert_eq!(blend["kind"], "lerp");
    assert_eq!(blend["params"]["t"], 0.35);
    let edges = v["edges"].as_array().unwrap();
    let fb = edges.iter().find(|e| e["feedback"] == true).unwrap();
    assert_eq!(
        (&fb["from"], &fb["from_port"], &fb["to"], &fb["to_port"]),
        (&"clip".into(), &"out".into(), &"blend".into(), &"a".into())
    );
    assert_eq!(v["settings"]["resolution"], serde_json::json!([64, 64]));
}

#[test]
fn dot_and_mermaid_show_edges_and_calls() {
    let dot = stdout(&wgraph(&[
        "graph",
        "examples/flow.world",
        "--format",
        "dot",
    ]));
    assert!(dot.starts_with("digraph world {"));
    assert!(
        dot.contains("\"eps\" -> \"sampler\" [label=\"out → noise\"]"),
        "{dot}"
    );
    assert!(
        dot.contains("\"sampler\" -> \"velocity\" [label=\"calls\", style=dotted]"),
        "{dot}"
    );
    let mermaid = stdout(&wgraph(&[
        "graph",
        "examples/trail.world",
        "--format",
        "mermaid",
    ]));
    assert!(mermaid.starts_with("flowchart LR"));
    assert!(mermaid.contains("-.->|\"out → a (t-1)\"|"), "{mermaid}");
}

#[test]
fn set_is_applied_before_export() {
    let o = wgraph(&[
        "graph",
        "examples/flow.world",
        "--format",
        "json",
        "--set",
        "sampler.steps=9",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sampler = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "sampler")
        .unwrap()
        .clone();
    assert_eq!(sampler["params"]["steps"], 9);
}
