//! The model backend interface.
//!
//! Nodes that run neural networks (encoders, denoisers, decoders, ...) do so
//! through a [`Model`]: a loaded network with a [`ModelSignature`] (named,
//! typed inputs and outputs plus string metadata) and a `run` that maps input
//! tensors to output tensors. A [`Backend`] loads models from files. ONNX
//! Runtime is one backend (crate `wgraph-ort`); a remote serving engine or
//! wonnx would be others (ROADMAP §4, §5). The engine and the node kinds see
//! only these traits.
//!
//! Models are loaded once per `model` declaration when a graph is built and
//! shared (`Arc`) by every node that names them. `Model::run` takes `&self`:
//! a backend whose sessions need exclusive access serialises per model, never
//! behind one global lock.

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

/// How to load one model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelOptions {
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
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            provider: Provider::Cpu,
            device_id: 0,
            fp16: false,
            strict: false,
            engine_cache: None,
            threads: None,
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
}

/// A model plus what loading it had to say (e.g. a provider fallback).
pub struct LoadedModel {
    pub model: Arc<dyn Model>,
    pub warnings: Vec<String>,
}

/// Loads models from files.
pub trait Backend: Send + Sync {
    /// Loads `path`; the same backend may be asked for many models.
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError>;
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
