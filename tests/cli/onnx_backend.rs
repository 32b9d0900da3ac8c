//! The ONNX package's own backend-test models (`pytorch-converted`,
//! `pytorch-operator`, `simple`: single operators and small nets exported
//! from PyTorch), each run through a `.world` graph by the generic `model`
//! kind with no wgraph metadata, against ONNX Runtime's own outputs, bit for
//! bit. `tests/support/onnx_backend_suite.py` (in the models-onnx
//! environment, made on first use) writes the graphs, inputs and ONNX
//! Runtime's outputs, and compares.

use super::*;

/// numpy dtype names of tensors wgraph does not carry (string tensors; f64),
/// refused at `check` with a clear error.
const UNSUPPORTED: &[&str] = &["object", "float64"];

#[test]
fn onnx_backend_test_models_check_and_run_like_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let script = root().join("tests/support/onnx_backend_suite.py");
    let prepared = Command::new("python3")
        .arg(&script)
        .arg("prepare")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        prepared.status.success(),
        "{}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap())
            .unwrap();
    let models = manifest["models"].as_array().unwrap();
    assert!(models.len() >= 90, "{} models", models.len());
    let (mut supported, mut unsupported) = (Vec::new(), Vec::new());
    for m in models {
        let case = m["case"].as_str().unwrap().to_string();
        let dtypes: Vec<&str> = m["dtypes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d.as_str())
            .collect();
        if dtypes.iter().any(|d| UNSUPPORTED.contains(d)) {
            unsupported.push(case);
        } else {
            supported.push(case);
        }
    }
    let graph = |case: &str| dir.path().join(case).join("g.world");
    // Every model with tensors wgraph carries passes `check`, in one run.
    let mut args = vec!["check".to_string()];
    args.extend(supported.iter().map(|c| graph(c).display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = wgraph(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The others are refused with the reason, never a panic.
    assert!(unsupported.len() <= 3, "{unsupported:?}");
    for case in &unsupported {
        let o = wgraph(&["check", graph(case).to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{case}: {err}");
        assert!(
            err.contains("which wgraph-ort does not support"),
            "{case}: {err}"
        );
    }
    // Each runs one tick; its outputs equal ONNX Runtime's, bit for bit.
    for case in &supported {
        let out = dir.path().join(case).join("run");
        let o = wgraph(&[
            "run",
            graph(case).to_str().unwrap(),
            "--frames",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{case}: {}", stderr(&o));
    }
    let compared = Command::new("python3")
        .arg(&script)
        .arg("compare")
        .arg(dir.path())
        .args(&unsupported)
        .output()
        .unwrap();
    assert!(
        compared.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&compared.stdout),
        String::from_utf8_lossy(&compared.stderr)
    );
}
