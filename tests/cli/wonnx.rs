//! The wonnx (WebGPU) backend: `--backend wonnx` and `backend = wonnx`.
//!
//! With the `wonnx` feature (CI builds `--all-features`) these run on
//! whatever WebGPU adapter the machine has; CI's is Mesa's software Vulkan
//! driver (lavapipe), installed by `tests/support/install-vulkan.sh`: every
//! test here calls `ensure_vulkan()` first (it installs the driver once if it
//! is missing), whatever ran before. Without the feature, the error a user
//! gets.

use super::*;

/// Largest absolute difference between a decoded frame (f32 in [-1, 1]) of
/// `graphs/yan-sim-wonnx.world` on wonnx and the same frame of
/// `graphs/yan-sim.world` on ONNX Runtime's CPU provider. Measured on
/// lavapipe: 7.2e-7 over 4 frames (README, "WebGPU (wonnx)").
#[cfg(feature = "wonnx")]
const TOL: f32 = 1e-5;

/// Writes `text` to DIR/g.world and runs `wgraph check` on it.
fn check(dir: &Path, text: &str, extra: &[&str]) -> Output {
    let file = dir.join("g.world");
    std::fs::write(&file, text).unwrap();
    let mut args = vec!["check", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    wgraph(&args)
}

/// A graph declaring one model at `path` (from the repository root).
fn one_model(path: &str, options: &str) -> String {
    format!("model m = \"{}\"{options}\n", root().join(path).display())
}

/// Without the feature, `check` accepts a graph whose models ask for wonnx
/// (`backend = wonnx` in a declaration or the world) with one note naming
/// the feature and the build command, checking it with ONNX Runtime; `run`
/// refuses it with one plain error at each model's declaration, and
/// `--backend wonnx`, asked for on the command line, is that error at once.
#[cfg(not(feature = "wonnx"))]
#[test]
fn without_the_feature_wonnx_is_a_note_for_check_and_an_error_for_run() {
    let dir = tempfile::tempdir().unwrap();
    let want =
        "this wgraph was built without the wonnx feature: cargo build --release --features wonnx";
    let note = "needs the `wonnx` feature to run: cargo build --release --features wonnx";
    let text = one_model(
        "models-onnx/trained/wonnx/action_embedder.onnx",
        " { backend = wonnx }",
    );
    let o = check(dir.path(), &text, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches(note).count(), 1, "{}", stderr(&o));
    let file = dir.path().join("g.world");
    let o = wgraph(&["run", file.to_str().unwrap(), "--frames", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(want), "{err}");
    assert!(
        err.contains("g.world:1:"),
        "located at the declaration: {err}"
    );
    assert!(err.contains("backend `wonnx` chosen here"), "{err}");
    let text = one_model("models-onnx/trained/wonnx/action_embedder.onnx", "");
    let o = check(dir.path(), &text, &["--backend", "wonnx"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(want), "{}", stderr(&o));
    // The shipped wonnx graph: one note for its four models, no error.
    let o = wgraph(&["check", "graphs/yan-sim-wonnx.world"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches(note).count(), 1, "{}", stderr(&o));
    assert!(!stderr(&o).contains("error"), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("ok (") && stdout(&o).contains("needs the `wonnx` feature to run"),
        "{}",
        stdout(&o)
    );
    // `--backend ort` overrides the world's `backend = wonnx`: no note.
    let o = wgraph(&["check", "graphs/yan-sim-wonnx.world", "--backend", "ort"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains(note), "{}", stderr(&o));
}

#[cfg(feature = "wonnx")]
mod with_feature {
    use super::*;
    use wgraph_engine::npy::read_npy_file;
    use wgraph_engine::tensor::Tensor;

    /// An operator wonnx lacks is refused at `wgraph check`, naming the
    /// operator, the node and the way out (no GPU needed for that).
    #[test]
    fn an_unsupported_operator_is_refused_at_check() {
        ensure_vulkan();
        let dir = tempfile::tempdir().unwrap();
        let text = one_model("tests/models/layernorm.onnx", " { backend = wonnx }");
        let o = check(dir.path(), &text, &[]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("wonnx 0.5.1 has no operator `LayerNormalization` (node `"),
            "{err}"
        );
        assert!(err.contains("decompose_for_wonnx.py"), "{err}");
        assert!(err.contains("g.world:1:"), "{err}");
    }

    /// A symbolic input dimension is refused naming the input and dimension.
    #[test]
    fn a_symbolic_dimension_is_refused_naming_the_input() {
        ensure_vulkan();
        let dir = tempfile::tempdir().unwrap();
        let text = one_model("models-onnx/trained/vae_encoder.onnx", "");
        let o = check(dir.path(), &text, &["--backend", "wonnx"]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("input `image` has a symbolic dimension `batch` (dimension 0)"),
            "{err}"
        );
        // The shipped graph, unchanged, says the same under --backend wonnx.
        let o = wgraph(&["check", "graphs/yan-sim.world", "--backend", "wonnx"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("symbolic dimension `batch`"),
            "{}",
            stderr(&o)
        );
    }

    /// `wgraph doctor` names the adapter and its API; `--json` has it too.
    #[test]
    fn doctor_reports_the_adapter() {
        let _turn = take_turns();
        ensure_vulkan();
        let o = wgraph(&["doctor"]);
        assert!(
            stdout(&o).contains("wonnx backend: usable (wonnx 0.5.1) on "),
            "{}",
            stdout(&o)
        );
        let o = wgraph(&["doctor", "--json"]);
        let j: serde_json::Value =
            serde_json::from_slice(&o.stdout).expect("doctor --json is JSON");
        assert_eq!(j["wonnx"]["usable"], true, "{j}");
        assert_eq!(j["wonnx"]["feature"], true);
        assert!(j["wonnx"]["adapter"]["api"].is_string(), "{j}");
    }

    /// The decoded frames (f32, in [-1, 1]) of 4 ticks of `graph` on the
    /// walk, dumped by an `npy_dump` on the decoder's output.
    fn frames(dir: &Path, graph: &str, extra: &[&str]) -> Vec<Tensor> {
        std::fs::create_dir_all(dir).unwrap();
        let file = dir.join("g.world");
        std::fs::write(
            &file,
            format!(
                "include \"{}\"\nnode dump: npy_dump {{ dir = \"frames\" }}\ndecode.image -> dump.tensor\n",
                root().join(graph).display()
            ),
        )
        .unwrap();
        let out = dir.join("out");
        let mut args = vec![
            "run",
            file.to_str().unwrap(),
            "--frames",
            "4",
            "--actions",
            "examples/actions/walk.txt",
            "--out",
            out.to_str().unwrap(),
            "-q",
        ];
        args.extend_from_slice(extra);
        let o = wgraph(&args);
        assert_eq!(o.status.code(), Some(0), "{graph}: {}", stderr(&o));
        (0..4)
            .map(|t| {
                let p = out.join(format!("frames/dump_{t:05}.npy"));
                read_npy_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            })
            .collect()
    }

    fn max_abs(a: &[Tensor], b: &[Tensor]) -> f32 {
        a.iter()
            .zip(b)
            .flat_map(|(x, y)| {
                assert_eq!(x.shape(), y.shape());
                let (x, y) = (x.host_f32().unwrap(), y.host_f32().unwrap());
                x.iter()
                    .zip(y)
                    .map(|(p, q)| (p - q).abs())
                    .collect::<Vec<_>>()
            })
            .fold(0.0, f32::max)
    }

    /// Yan-Sim on WebGPU matches ONNX Runtime's CPU run of the shipped
    /// graph within [`TOL`] over 4 frames of the walk; the rewritten models
    /// on ONNX Runtime (`--backend ort`) match it as closely.
    #[test]
    fn yan_sim_on_webgpu_matches_onnx_runtime() {
        let _turn = take_turns();
        ensure_vulkan();
        let dir = tempfile::tempdir().unwrap();
        let reference = frames(&dir.path().join("ort"), "graphs/yan-sim.world", &[]);
        let webgpu = frames(
            &dir.path().join("wonnx"),
            "graphs/yan-sim-wonnx.world",
            &["--backend", "wonnx"],
        );
        let d = max_abs(&reference, &webgpu);
        eprintln!("yan-sim, 4 frames: max |wonnx - ort cpu| = {d:.3e}");
        assert!(d <= TOL, "wonnx differs from ONNX Runtime by {d}");
        let rewritten = frames(
            &dir.path().join("ort-rewritten"),
            "graphs/yan-sim-wonnx.world",
            &["--backend", "ort"],
        );
        let d = max_abs(&reference, &rewritten);
        eprintln!("yan-sim, 4 frames: max |rewritten on ort - ort cpu| = {d:.3e}");
        assert!(
            d <= TOL,
            "the rewritten models on ONNX Runtime differ by {d}"
        );
    }
}
