//! `wgraph kernels` and the CUDA kernels' line of `wgraph doctor`. On a
//! machine without CUDA (or a build without `--features cuda`) asking for
//! the CUDA device is the plain `no CUDA device: …` error and exit 3, never
//! a panic; where a GPU exists the kernels run and match the host.

use super::*;

#[test]
fn host_cases_match_the_reference() {
    let o = wgraph(&["kernels", "--reps", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("device: host"), "{out}");
    for op in [
        "axpy_diff/euler",
        "ddim_step/eta",
        "sde_step",
        "avg_pool2d/k4",
    ] {
        assert!(out.contains(op), "{op} missing:\n{out}");
    }
    let o = wgraph(&["kernels", "--reps", "1", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["device"], "host");
    let ops = doc["ops"].as_array().unwrap();
    assert!(ops.len() >= 10);
    assert!(
        ops.iter()
            .all(|op| op["max_rel_diff"].as_f64().unwrap() <= 2e-6)
    );
}

#[test]
fn cuda_device_runs_or_says_no_cuda_device() {
    let o = wgraph(&["kernels", "--device", "cuda", "--reps", "1"]);
    if o.status.success() {
        let out = stdout(&o);
        assert!(out.contains("max relative diff vs host"), "{out}");
    } else {
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.starts_with("error: no CUDA device: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn scale_is_bounded() {
    let o = wgraph(&["kernels", "--scale", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = wgraph(&["kernels", "--scale", "100000"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn doctor_reports_the_cuda_kernels() {
    // `doctor` looks for a WebGPU adapter too (with the wonnx feature).
    ensure_vulkan();
    let o = wgraph(&["doctor"]);
    let out = stdout(&o);
    assert!(out.contains("\nCUDA kernels: "), "{out}");
    let o = wgraph(&["doctor", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let k = &doc["cuda_kernels"];
    assert!(k["built"].is_boolean(), "{k}");
    if k["available"] == true {
        assert!(k["device"].is_string() && k["nvrtc"].is_string(), "{k}");
    } else {
        let e = k["error"].as_str().unwrap();
        assert!(e.starts_with("no CUDA device: "), "{e}");
    }
}

#[test]
fn reps_are_bounded() {
    for reps in ["0", "10001", "99999999999"] {
        let o = wgraph(&["kernels", "--reps", reps]);
        assert_eq!(o.status.code(), Some(2), "--reps {reps}: {}", stderr(&o));
        assert!(stderr(&o).contains("--reps"), "{}", stderr(&o));
    }
}
