//! The generic `model` kind: any ONNX file, no wgraph metadata; its ports
//! are the model's own, checked against the wiring at build time. Port
//! names as exporters write them (`input.1`, `0`, `out:0`) are quoted.

use super::*;

/// A graph feeding x = 0.5 and t = 500 into `tests/reference/MODEL`
/// through `wiring` (its edges, `X` and `T` the constant nodes, `net`
/// the model node, `out` an `npy_dump`).
fn graph(model: &str, wiring: &str) -> String {
    format!(
        "model m = \"{}\"\nnode x: constant {{ shape = [1, 4, 2, 2], value = 0.5 }}\n\
         node t: constant {{ shape = [1], value = 500.0 }}\nnode net: model {{ model = m }}\n\
         node out: npy_dump {{ dir = \"o\" }}\n{wiring}",
        root().join("tests/reference").join(model).display()
    )
}

/// Runs `text`; the last value the model wrote.
fn run_graph(dir: &Path, text: &str) -> f32 {
    let file = dir.join("g.world");
    std::fs::write(&file, text).unwrap();
    let out = dir.join("run");
    let o = wgraph(&[
        "run",
        file.to_str().unwrap(),
        "--frames",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bytes = std::fs::read(out.join("o/out_00000.npy")).unwrap();
    f32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap())
}

fn check_errors(dir: &Path, text: &str) -> String {
    let file = dir.join("g.world");
    std::fs::write(&file, text).unwrap();
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    stderr(&o)
}

/// 0.8·0.5 − 0.0003·500 + 0.1·0.25, the analytic network.
const WANT: f32 = 0.275;

#[test]
fn any_onnx_model_runs_with_its_own_ports() {
    let dir = tempfile::tempdir().unwrap();
    let text = graph(
        "plain.onnx",
        "x.out -> net.x\nt.out -> net.t\nnet.y -> out.tensor\n",
    );
    assert!((run_graph(dir.path(), &text) - WANT).abs() < 1e-6);
    // A wrong shape is a build-time error naming the node and port.
    let err = check_errors(
        dir.path(),
        &text.replace("shape = [1, 4, 2, 2]", "shape = [1, 4, 3, 3]"),
    );
    assert!(
        err.contains("type mismatch at input `net.x`: model input `x` expects f32[1, 4, 2, 2]"),
        "{err}"
    );
}

#[test]
fn quoted_port_names_reach_exported_models() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = "x.out -> net.\"input.1\"\nt.out -> net.\"0\"\nnet.\"out:0\" -> out.tensor\n";
    let text = graph("dotted.onnx", wiring);
    assert!((run_graph(dir.path(), &text) - WANT).abs() < 1e-6);
    // Leave one input unwired: the help names it in a form that parses.
    let err = check_errors(dir.path(), &text.replace("t.out -> net.\"0\"\n", ""));
    assert!(
        err.contains("connect it: `some_node.out -> net.\"0\"`"),
        "{err}"
    );
}

/// A model without metadata works in a role-specific kind once the graph's
/// `model` declaration gives its contract; without it the error says how.
#[test]
fn a_models_role_can_be_given_in_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let plain = root().join("tests/reference/plain.onnx");
    let graph = |decl: &str| {
        format!(
            "model net = \"{}\" {decl}\nnode x: constant {{ shape = 1x4x2x2, value = 0.5 }}\n\
             node t: constant {{ shape = [1], value = 500 }}\nnode enc: encoder {{ model = net }}\n\
             node out: npy_dump {{ dir = \"o\" }}\nx.out -> enc.x\nt.out -> enc.t\nenc.y -> out.tensor\n",
            plain.display()
        )
    };
    let file = dir.path().join("g.world");
    std::fs::write(&file, graph("")).unwrap();
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("declare it in the graph: `model net = \"…\" { role = vae_encoder }`"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&file, graph("{ role = vae_encoder }")).unwrap();
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
