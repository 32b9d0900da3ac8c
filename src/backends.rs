//! The model backend router: one [`Backend`] that hands each load to the
//! backend crate its [`ModelOptions::backend`] names.
//!
//! The engine knows backends only by [`BackendKind`]; this is the one place
//! that depends on the backend crates (`wgraph-ort` always, `wgraph-wonnx`
//! with the `wonnx` feature). A kind this build lacks is a load error, which
//! the engine reports at the model's declaration.

use std::path::Path;
use wgraph_engine::model::{Backend, BackendKind, LoadedModel, ModelError, ModelOptions};
use wgraph_ort::OrtBackend;

/// What a build without the `wonnx` feature answers `backend = wonnx` with.
#[cfg_attr(feature = "wonnx", allow(dead_code))]
pub const NO_WONNX: &str =
    "this wgraph was built without the wonnx feature: cargo build --release --features wonnx";

/// Routes loads by [`ModelOptions::backend`].
#[derive(Debug, Clone, Default)]
pub struct Backends {
    ort: OrtBackend,
    #[cfg(feature = "wonnx")]
    wonnx: wgraph_wonnx::WonnxBackend,
}

impl Backends {
    /// Every backend this build has, as the CLI uses them (long load-time
    /// work announced on stderr: see [`crate::load::ort_backend`]).
    /// Creating them is free.
    pub fn new() -> Self {
        Backends {
            ort: crate::load::ort_backend(),
            #[cfg(feature = "wonnx")]
            wonnx: Default::default(),
        }
    }
}

impl Backend for Backends {
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        match options.backend {
            BackendKind::Ort => self.ort.load(path, options),
            #[cfg(feature = "wonnx")]
            BackendKind::Wonnx => self.wonnx.load(path, options),
            #[cfg(not(feature = "wonnx"))]
            BackendKind::Wonnx => Err(ModelError::Runtime(NO_WONNX.to_string())),
            #[allow(unreachable_patterns)]
            other => Err(ModelError::Runtime(format!(
                "this wgraph has no `{other}` backend"
            ))),
        }
    }
}

/// `wgraph doctor`'s section on the wonnx backend: usable here or why not.
pub fn wonnx_report() -> (String, serde_json::Value) {
    #[cfg(feature = "wonnx")]
    {
        let report = wgraph_wonnx::doctor();
        let mut json = report.to_json();
        json["feature"] = serde_json::Value::Bool(true);
        (report.to_string(), json)
    }
    #[cfg(not(feature = "wonnx"))]
    {
        (
            format!("wonnx backend: not usable: {NO_WONNX}\n"),
            serde_json::json!({
                "feature": false,
                "usable": false,
                "adapter": null,
                "error": NO_WONNX,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the feature, `backend = wonnx` is a plain error naming the
    /// feature and the build command; with it, the load reaches wonnx (a
    /// missing file is that backend's own error).
    #[test]
    fn wonnx_without_the_feature_names_the_build_command() {
        let options = ModelOptions {
            backend: BackendKind::Wonnx,
            ..ModelOptions::default()
        };
        let err = Backends::new()
            .load(Path::new("/nonexistent/m.onnx"), &options)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        if cfg!(feature = "wonnx") {
            assert!(err.contains("does not exist"), "{err}");
        } else {
            assert_eq!(err, NO_WONNX);
        }
        let (text, json) = wonnx_report();
        assert!(text.starts_with("wonnx backend: "), "{text}");
        assert_eq!(json["feature"], cfg!(feature = "wonnx"));
    }
}
