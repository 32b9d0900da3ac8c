//! `wgraph bench --baseline python`: the engine against a researcher-style
//! Python loop.

use super::*;

/// `bench --baseline python` runs the researcher-style Python loop
/// (installing its environment on first use) and the engine alternately;
/// it refuses a graph that is not yan-sim.
#[test]
fn bench_against_the_python_loop() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--baseline",
        "python",
        "--frames",
        "4",
        "--rounds",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Python loop (onnxruntime + numpy, DDIM 4 steps)"),
        "{}",
        stdout(&o)
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["baseline"], "python");
    assert_eq!(j["baseline_steps"], 4, "the graph's sampler.steps");
    assert!(j["baseline_ms_per_tick"].as_f64().unwrap() > 0.0);
    assert!(j["engine_over_baseline"].as_f64().unwrap() > 0.0);
    // The engine at one step against the Python loop at four.
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--baseline",
        "python",
        "--baseline-steps",
        "4",
        "--set",
        "sampler.steps=1",
        "--frames",
        "2",
        "--rounds",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("DDIM 4 steps"), "{}", stdout(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["baseline_steps"], 4);
    let o = wgraph(&["bench", "graphs/yan-sim.world", "--baseline-steps", "4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("needs --baseline python"),
        "{}",
        stderr(&o)
    );
    let o = wgraph(&[
        "bench",
        "graphs/yume.world",
        "--baseline",
        "python",
        "--frames",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Yan-Sim's loop"), "{}", stderr(&o));
}
