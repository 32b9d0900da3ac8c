//! The model backend interface.
//!
//! Nodes that run neural networks (encoders, denoisers, decoders, ...) do so
//! through a [`Model`]: a loaded network with a [`ModelSignature`] (named,
//! typed inputs and outputs plus string metadata) and a `run` that maps input
//! tensors to output tensors. A [`Backend`] loads models from files. ONNX
//! Runtime is one backend (crate `wgraph-ort`), wonnx (WebGPU, crate
//! `wgraph-wonnx`) another, a Triton Inference Server over gRPC (crate
//! `wgraph-triton`; [`ModelOptions::server`], `remote_name`, `timeout_ms`)
//! a third. The engine and the node kinds see only these traits and
//! a model's [`BackendKind`] (a name in [`ModelOptions`]): it never depends
//! on a backend crate; the program routes each load by kind.
//!
//! Models are loaded once per `model` declaration when a graph is built and
//! shared (`Arc`) by every node that names them. `Model::run` takes `&self`:
//! a backend whose sessions need exclusive access serialises per model, never
//! behind one global lock.
//!
//! # Files
//! This file has the interface ([`Model`], [`Backend`], [`ModelSignature`],
//! [`ModelOptions`], [`ModelTable`]); `model/cache.rs` the [`ModelCache`],
//! `model/digest.rs` a model's identity ([`model_digest`], [`FileStamp`],
//! [`model_files`]); the unit tests are in `model/tests.rs`.

use crate::tensor::Tensor;
use crate::types::TensorType;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A named, typed model input or output. Dynamic dimensions are [`Dim::Sym`](crate::types::Dim::Sym).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPort {
    pub name: String,
    pub ty: TensorType,
}

/// What a model takes and gives, and what it says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelSignature {
    pub inputs: Vec<ModelPort>,
    pub outputs: Vec<ModelPort>,
    /// Custom metadata (ONNX `metadata_props`), e.g. `wgraph.role`.
    pub metadata: BTreeMap<String, String>,
}

impl ModelSignature {
    pub fn input(&self, name: &str) -> Option<(usize, &ModelPort)> {
        self.inputs.iter().enumerate().find(|(_, p)| p.name == name)
    }
    pub fn output(&self, name: &str) -> Option<(usize, &ModelPort)> {
        self.outputs
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == name)
    }
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// The first check of every backend's `run`: as many inputs as the
    /// model takes, or an error listing its inputs.
    pub fn check_input_count(&self, inputs: &[Tensor]) -> Result<(), ModelError> {
        let ports = &self.inputs;
        if inputs.len() == ports.len() {
            return Ok(());
        }
        let names: Vec<String> = ports.iter().map(|p| format!("`{}`", p.name)).collect();
        Err(ModelError::Run(format!(
            "model takes {} input(s) ({}), got {}",
            ports.len(),
            names.join(", "),
            inputs.len()
        )))
    }
}

/// Execution providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Cpu,
    Cuda,
    TensorRt,
}

impl Provider {
    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "cpu" => Some(Provider::Cpu),
            "cuda" => Some(Provider::Cuda),
            "tensorrt" => Some(Provider::TensorRt),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which backend loads a model: the engine knows only the name; the program
/// (the `wgraph` binary) routes each load to the backend crate of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum BackendKind {
    /// ONNX Runtime (crate `wgraph-ort`): CPU, CUDA, TensorRT.
    #[default]
    Ort,
    /// wonnx (crate `wgraph-wonnx`): WebGPU through wgpu (Vulkan, Metal, DX12).
    Wonnx,
    /// NVIDIA Triton Inference Server (crate `wgraph-triton`): model calls
    /// over the KServe v2 gRPC API to [`ModelOptions::server`].
    Triton,
}

impl BackendKind {
    /// Every backend kind, in the order the docs list them.
    pub const ALL: &[BackendKind] = &[BackendKind::Ort, BackendKind::Wonnx, BackendKind::Triton];

    /// `ort`, `wonnx` or `triton`.
    pub fn parse(s: &str) -> Option<BackendKind> {
        match s {
            "ort" => Some(BackendKind::Ort),
            "wonnx" => Some(BackendKind::Wonnx),
            "triton" => Some(BackendKind::Triton),
            _ => None,
        }
    }
    /// The name used in graphs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ort => "ort",
            BackendKind::Wonnx => "wonnx",
            BackendKind::Triton => "triton",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to load one model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelOptions {
    /// The backend that loads it (`backend = ort | wonnx | triton`).
    pub backend: BackendKind,
    pub provider: Provider,
    pub device_id: u32,
    /// Half precision where the provider supports it (TensorRT).
    pub fp16: bool,
    /// Fail instead of falling back to CPU when the provider is unavailable.
    pub strict: bool,
    /// TensorRT engine cache directory.
    pub engine_cache: Option<PathBuf>,
    /// Intra-op threads (None: the backend's default).
    pub threads: Option<usize>,
    /// Bind inputs and outputs in place (ONNX Runtime's IoBinding), so
    /// outputs stay on the device and device inputs are used where they
    /// are. `None`: on for GPU providers, off on the CPU.
    pub io_binding: Option<bool>,
    /// Capture the model as a CUDA graph (fixed shapes, every node on the
    /// CUDA provider). Implies IoBinding with fixed-address buffers, which
    /// the CPU provider also honours (without a graph).
    pub cuda_graph: bool,
    /// A remote backend's address, `HOST:PORT` (`server = "…"`, else
    /// `world { triton_server }` or `--triton-server`). `None` for local backends.
    pub server: Option<String>,
    /// The model's name on a remote server: the graph's `model` declaration
    /// name (what `wgraph triton-repo` writes). `None` for local backends.
    pub remote_name: Option<String>,
    /// A remote call's deadline in milliseconds (`timeout_ms`); `None`: the
    /// backend's default.
    pub timeout_ms: Option<u64>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            backend: BackendKind::Ort,
            provider: Provider::Cpu,
            device_id: 0,
            fp16: false,
            strict: false,
            engine_cache: None,
            threads: None,
            io_binding: None,
            cuda_graph: false,
            server: None,
            remote_name: None,
            timeout_ms: None,
        }
    }
}

/// A model failed to load or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The runtime library could not be found or initialised.
    #[error("{0}")]
    Runtime(String),
    /// The file is missing or is not a model this backend can load.
    #[error("{0}")]
    Load(String),
    /// The requested provider is unavailable and `strict` was set.
    #[error("{0}")]
    Provider(String),
    /// Inputs did not fit, or the runtime failed during `run`.
    #[error("{0}")]
    Run(String),
}

/// A loaded model.
pub trait Model: Send + Sync {
    fn signature(&self) -> &ModelSignature;
    /// The provider actually in use (after any fallback).
    fn provider(&self) -> Provider;
    /// Runs the model: inputs in signature order, outputs in signature order.
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError>;

    /// Called at build time with input shapes a tick will use (in
    /// signature order), so work that must never happen inside a tick
    /// happens now: a TensorRT engine build (minutes, cached), a CUDA graph
    /// capture, fixed-address buffers. A backend that may take long here
    /// says so itself before it starts (see `wgraph_ort::OrtBackend::with_notices`).
    /// The default does nothing.
    fn prepare(&self, _input_shapes: &[Vec<usize>]) -> Result<(), ModelError> {
        Ok(())
    }
}

/// A model whose metadata is partly given by the graph: the `model`
/// declaration's contract keys (`role`, `prediction`, `schedule`, …)
/// replace the file's `wgraph.*` entries; inputs, outputs and runs are the
/// inner model's.
///
/// The declaration's port mappings (`inputs = { x = "sample" }`, as
/// `wgraph.input.x` entries) and the engine's timestep and batch-1
/// adaptation for the roles a sampler calls are applied here too
/// ([`crate::model_ports`]): the wrapper presents the role's names and
/// converts each call.
struct WithMetadata {
    inner: Arc<dyn Model>,
    signature: ModelSignature,
    adapt: Option<crate::model_ports::Adaptation>,
}

impl Model for WithMetadata {
    fn signature(&self) -> &ModelSignature {
        &self.signature
    }
    fn provider(&self) -> Provider {
        self.inner.provider()
    }
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        match &self.adapt {
            Some(a) => a.run(&*self.inner, inputs),
            None => self.inner.run(inputs),
        }
    }
    fn prepare(&self, input_shapes: &[Vec<usize>]) -> Result<(), ModelError> {
        match &self.adapt {
            Some(a) => self.inner.prepare(&a.file_shapes(input_shapes)),
            None => self.inner.prepare(input_shapes),
        }
    }
}

/// `model` with `overrides` (full keys, e.g. `wgraph.role`) replacing its
/// metadata entries and its ports adapted as they say
/// ([`crate::model_ports::adaptation`]; one that fails is not applied —
/// `build_graph` reports it); the model itself when there is nothing to do.
pub fn with_metadata(model: Arc<dyn Model>, overrides: BTreeMap<String, String>) -> Arc<dyn Model> {
    let adapt = crate::model_ports::adaptation(model.signature(), &overrides)
        .ok()
        .flatten();
    if overrides.is_empty() && adapt.is_none() {
        return model;
    }
    let signature = match &adapt {
        Some(a) => a.signature().clone(),
        None => {
            let mut signature = model.signature().clone();
            signature.metadata.extend(overrides);
            signature
        }
    };
    Arc::new(WithMetadata {
        inner: model,
        signature,
        adapt,
    })
}

/// A model plus what loading it had to say (e.g. a provider fallback).
#[derive(Clone)]
pub struct LoadedModel {
    pub model: Arc<dyn Model>,
    pub warnings: Vec<String>,
}

/// Loads models from files.
pub trait Backend: Send + Sync {
    /// Loads `path`; the same backend may be asked for many models.
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError>;

    /// `model` (one [`Backend::load`] gave) with the graph's metadata
    /// `overrides` (see [`with_metadata`]). A [`ModelCache`] hands back the
    /// same wrapper for the same session and overrides, so the graph's
    /// `model … { role = … }` metadata is part of a model's identity and
    /// a rebuild with unchanged metadata is not a new model.
    fn with_metadata(
        &self,
        model: Arc<dyn Model>,
        overrides: BTreeMap<String, String>,
    ) -> Arc<dyn Model> {
        with_metadata(model, overrides)
    }
}

/// The models of a built graph, by declared name.
#[derive(Clone, Default)]
pub struct ModelTable {
    models: BTreeMap<String, Arc<dyn Model>>,
}

impl ModelTable {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, name: impl Into<String>, model: Arc<dyn Model>) {
        self.models.insert(name.into(), model);
    }
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Model>> {
        self.models.get(name)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn Model>)> {
        self.models.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl fmt::Debug for ModelTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.models.keys()).finish()
    }
}

mod cache;
mod digest;

pub use cache::{Hashed, ModelCache};
pub use digest::{
    FileStamp, ModelDigest, file_digest, file_stamp, model_digest, model_files, remember_digests_in,
};

#[cfg(test)]
mod tests;
