//! `--save-state` / `--load-state`: a run continued bit for bit, and a
//! state of another graph or model refused.

use super::*;

/// Running N ticks equals running N/2, saving, loading and running the
/// rest — frame for frame, bit for bit — for a graph with feedback
/// (yan-sim), one with memory (yume15), the ground-truth world (pose)
/// and a diffusion-forcing window (the frames in flight, yan-sim-df).
#[test]
fn save_and_load_continue_a_run_bit_for_bit() {
    for (graph, frames) in [
        ("graphs/yan-sim.world", 12),
        ("graphs/yan-sim-df.world", 12),
        ("graphs/yume15.world", 12),
        ("examples/world.world", 12),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        let (all, half) = (frames.to_string(), (frames / 2).to_string());
        let run = |args: &[&str]| {
            let o = wgraph(args);
            assert_eq!(o.status.code(), Some(0), "{graph}: {}", stderr(&o));
        };
        run(&["run", graph, "--frames", &all, "--out", &p("full")]);
        let state = p("state.json");
        run(&[
            "run",
            graph,
            "--frames",
            &half,
            "--out",
            &p("a"),
            "--save-state",
            &state,
        ]);
        run(&[
            "run",
            graph,
            "--frames",
            &all,
            "--out",
            &p("b"),
            "--load-state",
            &state,
        ]);
        let (full, rest) = (pngs(&dir.path().join("full")), pngs(&dir.path().join("b")));
        assert_eq!(rest.len(), frames / 2, "{graph}");
        for r in &rest {
            let f = dir.path().join("full").join(r.file_name().unwrap());
            assert!(full.contains(&f), "{graph}: {}", f.display());
            assert_eq!(
                std::fs::read(r).unwrap(),
                std::fs::read(&f).unwrap(),
                "{graph}: {}",
                r.display()
            );
        }
        // --save-at: the same state, taken mid-run.
        let at = p("at.json");
        run(&[
            "run",
            graph,
            "--frames",
            &all,
            "--out",
            &p("c"),
            "--save-state",
            &at,
            "--save-at",
            &half,
        ]);
        let json = |f: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
        };
        assert_eq!(json(&at), json(&state), "{graph}");
    }
}

#[test]
fn a_state_of_another_graph_or_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let out = dir.path().join("o");
    let o = wgraph(&[
        "run",
        "graphs/yan-sim.world",
        "--frames",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--save-state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = wgraph(&[
        "run",
        "examples/world.world",
        "--out",
        out.to_str().unwrap(),
        "--load-state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the snapshot is of another graph: it has node `action` (action_embedder) that this graph lacks"),
        "{}",
        stderr(&o)
    );
    let o = wgraph(&[
        "run",
        "graphs/yan-sim.world",
        "--seed",
        "5",
        "--out",
        out.to_str().unwrap(),
        "--load-state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("taken with seed"), "{}", stderr(&o));
    std::fs::write(&state, "{\"wgraph_snapshot\": 99}").unwrap();
    let o = wgraph(&[
        "run",
        "graphs/yan-sim.world",
        "--out",
        out.to_str().unwrap(),
        "--load-state",
        state.to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("snapshot format version 99"),
        "{}",
        stderr(&o)
    );
}
