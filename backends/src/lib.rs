//! wgraph's model backend router: one [`Backend`] that hands each model's
//! load to the backend crate its [`ModelOptions::backend`] (`backend =` in
//! the graph, or `--backend`) names — ONNX Runtime (`wgraph-ort`), an
//! NVIDIA Triton server (`wgraph-triton`) or, with this crate's `wonnx`
//! feature, WebGPU (`wgraph-wonnx`).
//!
//! The engine knows backends only by [`BackendKind`]; this is the one place
//! that depends on the backend crates (`wgraph-ort` always, `wgraph-wonnx`
//! with the `wonnx` feature, which the binary's `wonnx` feature turns on). A
//! kind this build lacks is a load error ([`NO_WONNX`]), which the engine
//! reports at the model's declaration. `wgraph-triton` is always built (it
//! is a gRPC client, no native library); `--triton-server` reaches it
//! through [`set_triton_server`].
//!
//! - [`Backends`]: the router `run`, `serve`, `bench` and the other
//!   commands load with; [`Backends::batched`] puts fusable models behind
//!   the engine's batching executor ([`wgraph_engine::batch`]).
//! - [`CheckBackends`]: what `wgraph check` loads with — a model for a
//!   backend this build lacks is checked on ONNX Runtime and the missing
//!   feature noted ([`missing_feature_in`], [`feature_note`]).
//! - [`wonnx_report`]: `wgraph doctor`'s wonnx section.
//!
//! Only the binary depends on this crate. It prints nothing: the caller
//! builds the [`OrtBackend`] (with its notices) that [`Backends::new`] takes.

use std::path::Path;
use wgraph_engine::batch::BatchPolicy;
use wgraph_engine::model::{Backend, BackendKind, LoadedModel, ModelError, ModelOptions};
use wgraph_ort::OrtBackend;

/// What a build without the `wonnx` feature answers `backend = wonnx` with.
pub const NO_WONNX: &str =
    "this wgraph was built without the wonnx feature: cargo build --release --features wonnx";

/// `--triton-server`, set once by `main` before any command runs.
static TRITON_SERVER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Every `backend = triton` model of this process goes to `server`
/// (`--triton-server`), whatever its graph says. Called once, by `main`.
pub fn set_triton_server(server: Option<String>) {
    let _ = TRITON_SERVER.set(server);
}

/// Routes loads by [`ModelOptions::backend`].
#[derive(Debug, Clone, Default)]
pub struct Backends {
    ort: OrtBackend,
    triton: wgraph_triton::TritonBackend,
    #[cfg(feature = "wonnx")]
    wonnx: wgraph_wonnx::WonnxBackend,
    /// Calls from many sessions fused per model (`serve`'s players, `bench
    /// --players`); `None`: every call on its own.
    batch: Option<BatchPolicy>,
    /// Fuse calls of models on a Triton server too (otherwise its dynamic
    /// batcher does).
    batch_remote: bool,
}

impl Backends {
    /// Every backend this build has, with `ort` as the caller configured it
    /// (the binary's announces long load-time work on stderr:
    /// [`OrtBackend::with_notices`]). Creating them is free.
    pub fn new(ort: OrtBackend) -> Self {
        Backends {
            ort,
            triton: wgraph_triton::TritonBackend::new()
                .with_server(TRITON_SERVER.get().cloned().flatten()),
            #[cfg(feature = "wonnx")]
            wonnx: Default::default(),
            batch: None,
            batch_remote: false,
        }
    }

    /// The Triton backend (clones share its record of the servers used).
    pub fn triton(&self) -> &wgraph_triton::TritonBackend {
        &self.triton
    }

    /// These backends with every batchable model they load behind a
    /// batching executor ([`wgraph_engine::batch`]): what a server of many
    /// sessions of one graph uses. `remote`: models on a Triton server too
    /// (otherwise they are left to its dynamic batcher).
    pub fn batched(mut self, policy: BatchPolicy, remote: bool) -> Self {
        self.batch = Some(policy);
        self.batch_remote = remote;
        self
    }
}

impl Backend for Backends {
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        let loaded = self.route(path, options)?;
        Ok(match &self.batch {
            Some(policy) if self.fuses(options.backend) => LoadedModel {
                model: wgraph_engine::batch::batched(loaded.model, policy),
                warnings: loaded.warnings,
            },
            _ => loaded,
        })
    }
}

impl Backends {
    /// Whether calls of a model on `backend` are fused across sessions:
    /// with a batch policy, always for models run here, for models on a
    /// Triton server only when asked (`--batch-across-players on`).
    fn fuses(&self, backend: BackendKind) -> bool {
        self.batch.is_some() && (self.batch_remote || backend != BackendKind::Triton)
    }

    /// The backend crate `options.backend` names loads `path`.
    fn route(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        match options.backend {
            BackendKind::Ort => self.ort.load(path, options),
            BackendKind::Triton => self.triton.load(path, options),
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

/// The cargo feature a backend kind needs in a build that has
/// (`has_wonnx`) or lacks the `wonnx` feature, when that build lacks it
/// (`Some("wonnx")` for [`BackendKind::Wonnx`] without the feature): the
/// decision on its own, testable in either build.
pub fn missing_feature_in(kind: BackendKind, has_wonnx: bool) -> Option<&'static str> {
    match kind {
        BackendKind::Wonnx if !has_wonnx => Some("wonnx"),
        _ => None,
    }
}

/// The one note `wgraph check` prints for a graph whose models ask for a
/// backend this build lacks.
pub fn feature_note(feature: &str) -> String {
    format!(
        "needs the `{feature}` feature to run: cargo build --release --features {feature} (checked with ONNX Runtime instead; {feature}'s own operator checks were skipped)"
    )
}

/// The backends as `wgraph check` uses them: a model declared for a backend
/// this build lacks (`backend = wonnx` without the `wonnx` feature) is
/// loaded with ONNX Runtime instead — the same ONNX file, so the same ports
/// and types — and the feature is remembered, so `check` can say once that
/// the graph needs it instead of failing at every model. `run` and the other
/// commands keep [`Backends`], which refuse such a model.
#[derive(Debug, Default)]
pub struct CheckBackends {
    inner: Backends,
    has_wonnx: bool,
    missing: std::sync::Mutex<std::collections::BTreeSet<&'static str>>,
}

impl CheckBackends {
    /// `inner` (made with [`Backends::new`]) for this build.
    pub fn new(inner: Backends) -> Self {
        Self::with_features(inner, cfg!(feature = "wonnx"))
    }

    /// `inner` as if this build had (or lacked) the `wonnx` feature.
    pub fn with_features(inner: Backends, has_wonnx: bool) -> Self {
        CheckBackends {
            inner,
            has_wonnx,
            missing: Default::default(),
        }
    }

    /// The features models asked for since the last call, and forgets them
    /// (one graph file at a time).
    pub fn take_missing(&self) -> Vec<&'static str> {
        let mut missing = self.missing.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *missing).into_iter().collect()
    }
}

impl Backend for CheckBackends {
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        match missing_feature_in(options.backend, self.has_wonnx) {
            None => self.inner.load(path, options),
            Some(feature) => {
                let loaded = self.inner.load(
                    path,
                    &ModelOptions {
                        backend: BackendKind::Ort,
                        ..options.clone()
                    },
                )?;
                self.missing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(feature);
                Ok(loaded)
            }
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

    fn backends() -> Backends {
        Backends::new(OrtBackend::new())
    }

    /// `on` fuses every model's calls; `auto` leaves models on Triton to
    /// its dynamic batcher; without a policy nothing is fused.
    #[test]
    fn which_models_are_fused_across_sessions() {
        let policy = BatchPolicy::default();
        let on = backends().batched(policy.clone(), true);
        let auto = backends().batched(policy, false);
        let off = backends();
        for (backends, ort, triton) in [
            (&on, true, true),
            (&auto, true, false),
            (&off, false, false),
        ] {
            assert_eq!(backends.fuses(BackendKind::Ort), ort);
            assert_eq!(backends.fuses(BackendKind::Triton), triton);
        }
    }

    /// Without the feature, `backend = wonnx` is a plain error naming the
    /// feature and the build command; with it, the load reaches wonnx (a
    /// missing file is that backend's own error).
    #[test]
    fn wonnx_without_the_feature_names_the_build_command() {
        let options = ModelOptions {
            backend: BackendKind::Wonnx,
            ..ModelOptions::default()
        };
        let err = backends()
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

    /// Without the `wonnx` feature a `backend = wonnx` model needs it; with
    /// it, or on ONNX Runtime, nothing is missing.
    #[test]
    fn which_backend_needs_a_feature() {
        assert_eq!(missing_feature_in(BackendKind::Wonnx, false), Some("wonnx"));
        assert_eq!(missing_feature_in(BackendKind::Wonnx, true), None);
        assert_eq!(missing_feature_in(BackendKind::Ort, false), None);
        assert_eq!(missing_feature_in(BackendKind::Ort, true), None);
        assert!(feature_note("wonnx").contains("cargo build --release --features wonnx"));
    }

    /// `check` in a build without the feature: a wonnx model's load goes to
    /// ONNX Runtime (a missing file is ONNX Runtime's own error, not
    /// "built without the wonnx feature") and the feature is noted once.
    #[test]
    fn check_loads_a_wonnx_model_with_ort_and_notes_the_feature() {
        let options = ModelOptions {
            backend: BackendKind::Wonnx,
            ..ModelOptions::default()
        };
        let check = CheckBackends::with_features(backends(), false);
        for _ in 0..2 {
            let err = check
                .load(Path::new("/nonexistent/m.onnx"), &options)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("does not exist"), "{err}");
        }
        // A failed load proves nothing about the feature.
        assert!(check.take_missing().is_empty());
        let model = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models/sqrt.onnx");
        for _ in 0..2 {
            let loaded = check.load(&model, &options);
            assert!(loaded.is_ok(), "{:?}", loaded.err().map(|e| e.to_string()));
        }
        assert_eq!(check.take_missing(), vec!["wonnx"]);
        assert!(check.take_missing().is_empty(), "forgotten after each file");
        // With the feature (or on ort) nothing is noted.
        let ort = ModelOptions::default();
        assert!(
            CheckBackends::with_features(backends(), false)
                .load(&model, &ort)
                .is_ok()
        );
        let with = CheckBackends::with_features(backends(), true);
        let _ = with.load(Path::new("/nonexistent/m.onnx"), &options);
        assert!(with.take_missing().is_empty());
    }
}
