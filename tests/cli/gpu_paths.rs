//! GPU paths checked where they can be on a CPU machine: the IoBinding and
//! fixed-address (`cuda_graph`) runs of ONNX Runtime give the same frames
//! as plain runs, the copies per tick are reported, and TensorRT/CUDA
//! options fall back plainly.

use super::*;

/// `graphs/yan-sim.world` with `options` added to every model declaration,
/// written to `dir` (its relative paths made absolute).
fn yan_sim_with(options: &str, name: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("graphs/yan-sim.world")).unwrap();
    let root = root();
    let changed: String = text
        .replace("\"../", &format!("\"{}/", root.display()))
        .lines()
        .map(|l| {
            if l.starts_with("model ") {
                let decl = l.split("//").next().unwrap_or(l).trim_end();
                format!("{decl} {{ {options} }}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(changed.contains(options), "no model declarations changed");
    let path = dir.join(format!("{name}.world"));
    std::fs::write(&path, changed).unwrap();
    path
}

fn frames(dir: &Path) -> Vec<Vec<u8>> {
    pngs(dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

fn run_frames(graph: &Path, out: &Path, metrics: &Path) -> Output {
    wgraph(&[
        "run",
        graph.to_str().unwrap(),
        "--frames",
        "4",
        "--out",
        out.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
        "--quiet",
    ])
}

#[test]
fn bound_and_fixed_buffer_runs_give_the_same_frames_and_copy_nothing_on_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let plain_out = dir.path().join("plain");
    let o = run_frames(
        &root().join("graphs/yan-sim.world"),
        &plain_out,
        &dir.path().join("plain.json"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let want = frames(&plain_out);
    assert_eq!(want.len(), 4);
    for (options, name) in [
        ("io_binding = true", "bound"),
        ("cuda_graph = true", "graph"),
    ] {
        let graph = yan_sim_with(options, name, dir.path());
        let out = dir.path().join(name);
        let metrics = dir.path().join(format!("{name}.json"));
        let o = run_frames(&graph, &out, &metrics);
        assert!(o.status.success(), "{options}: {}", stderr(&o));
        assert_eq!(
            frames(&out),
            want,
            "{options}: frames differ from plain runs"
        );
        if name == "graph" {
            assert!(
                stderr(&o).contains("`cuda_graph` needs the CUDA provider; on `cpu` the model runs with fixed-address buffers and no graph"),
                "{}",
                stderr(&o)
            );
        }
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
        let copies = &report["metrics"]["host_device_copies"];
        assert_eq!(copies["per_tick_max"], 0, "{report}");
        assert_eq!(copies["host_to_device"], 0, "{report}");
    }
}

#[test]
fn gpu_model_options_are_checked_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("bad.world");
    std::fs::write(
        &graph,
        format!(
            "model m = \"{}\" {{ cuda_graph = yes }}\nnode c: constant {{ value = 1.0, shape = [1, 4] }}\n",
            root().join("backend-ort/tests/data/add.onnx").display()
        ),
    )
    .unwrap();
    let o = wgraph(&["check", graph.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("bad.world:1:"), "{err}");
    assert!(err.contains("cuda_graph"), "{err}");
}
