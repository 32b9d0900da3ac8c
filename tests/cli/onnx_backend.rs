//! The ONNX package's own backend-test models (`pytorch-converted`,
//! `pytorch-operator`, `simple`: single operators and small nets exported
//! from PyTorch), each run through a `.world` graph by the generic `model`
//! kind with no wgraph metadata, against ONNX Runtime's own outputs, bit for
//! bit. `tests/support/onnx_backend_suite.py` (in the models-onnx
//! environment, made on first use) writes the graphs, inputs and ONNX
//! Runtime's outputs, and compares.

use super::*;

/// numpy dtype names of tensors wgraph does not carry (string tensors),
/// refused at `check` with a clear error. f64 (`float64`), i32, bool and
/// the other numeric dtypes are carried and must run bit-identical.
const UNSUPPORTED: &[&str] = &["object"];

#[test]
fn onnx_backend_test_models_check_and_run_like_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let script = root().join("tests/support/onnx_backend_suite.py");
    let prepared = {
        // Made on first use: one script at a time makes it.
        let _env = models_env_turn();
        Command::new("python3")
            .arg(&script)
            .arg("prepare")
            .arg(dir.path())
            .output()
            .unwrap()
    };
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
    let (mut supported, mut unsupported, mut non_finite) = (Vec::new(), Vec::new(), Vec::new());
    for m in models {
        let case = m["case"].as_str().unwrap().to_string();
        // A model whose test data holds NaN or infinity (sqrt of negative
        // numbers) runs too: the suite's graphs say `on_nonfinite = allow`,
        // and its NaN are compared bit for bit like any value.
        if let Some(at) = m["non_finite"].as_str() {
            non_finite.push((case.clone(), at.to_string()));
        }
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
    // Without `on_nonfinite = allow` the same models are refused where the
    // value appears (an input file at `check`, a model output when it runs).
    assert!(non_finite.len() <= 3, "{non_finite:?}");
    for (case, at) in &non_finite {
        let g = graph(case);
        let strict = dir.path().join(case).join("strict.world");
        let text = std::fs::read_to_string(&g).unwrap();
        std::fs::write(
            &strict,
            text.replace("world { on_nonfinite = allow }\n", ""),
        )
        .unwrap();
        let out = dir.path().join(case).join("strict-run");
        let o = match at.as_str() {
            "inputs" => wgraph(&["check", strict.to_str().unwrap()]),
            _ => wgraph(&[
                "run",
                strict.to_str().unwrap(),
                "--frames",
                "1",
                "--out",
                out.to_str().unwrap(),
            ]),
        };
        let err = stderr(&o);
        let code = if at == "inputs" { 1 } else { 3 };
        assert_eq!(o.status.code(), Some(code), "{case}: {err}");
        assert!(err.contains("non-finite value"), "{case}: {err}");
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
    println!(
        "{} models: {} checked and run against ONNX Runtime ({}; {} of them answer NaN/inf), {} refused for their dtype",
        models.len(),
        supported.len(),
        String::from_utf8_lossy(&compared.stdout).trim(),
        non_finite.len(),
        unsupported.len()
    );
    assert!(
        compared.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&compared.stdout),
        String::from_utf8_lossy(&compared.stderr)
    );
}
