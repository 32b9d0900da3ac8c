//! The model backend interface.
//!
//! Nodes that run neural networks (encoders, denoisers, decoders, ...) do so
//! through a [`Model`]: a loaded network with a [`ModelSignature`] (named,
//! typed inputs and outputs plus string metadata) and a `run` that maps input
//! tensors to output tensors. A [`Backend`] loads models from files. ONNX
//! Runtime is one backend (crate `wgraph-ort`), wonnx (WebGPU, crate
//! `wgraph-wonnx`) another; a remote serving engine would be a third
//! (ROADMAP §4, §5). The engine and the node kinds see only these traits and
//! a model's [`BackendKind`] (a name in [`ModelOptions`]): it never depends
//! on a backend crate; the program routes each load by kind.
//!
//! Models are loaded once per `model` declaration when a graph is built and
//! shared (`Arc`) by every node that names them. `Model::run` takes `&self`:
//! a backend whose sessions need exclusive access serialises per model, never
//! behind one global lock.

use crate::tensor::Tensor;
use crate::types::TensorType;
use std::collections::{BTreeMap, HashMap};
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
}

impl BackendKind {
    /// Every backend kind, in the order the docs list them.
    pub const ALL: &[BackendKind] = &[BackendKind::Ort, BackendKind::Wonnx];

    /// `ort` or `wonnx`.
    pub fn parse(s: &str) -> Option<BackendKind> {
        match s {
            "ort" => Some(BackendKind::Ort),
            "wonnx" => Some(BackendKind::Wonnx),
            _ => None,
        }
    }
    /// The name used in graphs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ort => "ort",
            BackendKind::Wonnx => "wonnx",
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
    /// The backend that loads it (`backend = ort | wonnx`).
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
struct WithMetadata {
    inner: Arc<dyn Model>,
    signature: ModelSignature,
}

impl Model for WithMetadata {
    fn signature(&self) -> &ModelSignature {
        &self.signature
    }
    fn provider(&self) -> Provider {
        self.inner.provider()
    }
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        self.inner.run(inputs)
    }
    fn prepare(&self, input_shapes: &[Vec<usize>]) -> Result<(), ModelError> {
        self.inner.prepare(input_shapes)
    }
}

/// `model` with `overrides` (full keys, e.g. `wgraph.role`) replacing its
/// metadata entries; the model itself when there are none.
pub fn with_metadata(model: Arc<dyn Model>, overrides: BTreeMap<String, String>) -> Arc<dyn Model> {
    if overrides.is_empty() {
        return model;
    }
    let mut signature = model.signature().clone();
    signature.metadata.extend(overrides);
    Arc::new(WithMetadata {
        inner: model,
        signature,
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

/// A [`Backend`] that remembers what it loaded: asked again for a file whose
/// *contents* (SHA-256) and options are unchanged, it hands back the same
/// session, so a hot reload reloads only the models that really changed.
///
/// Entries are keyed by file, options and contents, so the session a
/// running graph uses is still found after a failed edit loaded another
/// version of its file. Bounded: [`ModelCache::retain`] drops the entries a
/// graph no longer uses, and at most [`ModelCache::CAPACITY`] are kept (the
/// oldest go first; a running graph keeps its own sessions alive anyway).
pub struct ModelCache<B> {
    inner: B,
    entries: std::sync::Mutex<HashMap<CacheKey, CachedModel>>,
    /// Insertions so far (orders entries by age).
    inserted: std::sync::atomic::AtomicU64,
    /// Time spent in the inner backend since the last [`ModelCache::take_load_time`].
    load_nanos: std::sync::atomic::AtomicU64,
}

type CacheKey = (PathBuf, ModelOptions, [u8; 32]);

struct CachedModel {
    age: u64,
    loaded: LoadedModel,
}

impl<B: Backend> ModelCache<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        ModelCache {
            inner,
            entries: std::sync::Mutex::new(HashMap::new()),
            inserted: std::sync::atomic::AtomicU64::new(0),
            load_nanos: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Most sessions kept.
    pub const CAPACITY: usize = 32;

    /// Time spent loading models (cache misses) since the last call.
    pub fn take_load_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(
            self.load_nanos
                .swap(0, std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Keeps only the sessions `models` (a built graph's table) uses.
    pub fn retain(&self, models: &ModelTable) {
        let used: Vec<*const ()> = models
            .iter()
            .map(|(_, m)| Arc::as_ptr(m).cast::<()>())
            .collect();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, c| used.contains(&Arc::as_ptr(&c.loaded.model).cast::<()>()));
    }

    /// Number of cached sessions.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// SHA-256 of a file's contents; for a model, of the model file and its
/// external-data files ([`model_files`]), so a retrained `.onnx.data` alone
/// is a new model.
pub fn file_digest(path: &Path) -> std::io::Result<[u8; 32]> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for (i, file) in model_files(path).iter().enumerate() {
        if i > 0 {
            // Separate the files, and name each companion (renaming one changes the model).
            hasher.update(b"\0");
            hasher.update(file.file_name().unwrap_or_default().as_encoded_bytes());
            hasher.update(b"\0");
        }
        // A device or FIFO would be read forever.
        let limit = if i == 0 {
            crate::input::MODEL
        } else {
            crate::input::MODEL_DATA
        };
        crate::input::check(file, limit)?;
        let mut file = std::fs::File::open(file)?;
        std::io::copy(&mut file, &mut hasher)?;
    }
    Ok(hasher.finalize().into())
}

/// `path` and, when it is an ONNX model, the external-data files next to it
/// that exporters write (`NAME.onnx.data`, PyTorch's default;
/// `NAME.onnx_data`; `NAME.data`), those that exist.
pub fn model_files(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    if path.extension().is_some_and(|e| e == "onnx") {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        for companion in [
            format!("{name}.data"),
            format!("{name}_data"),
            format!("{stem}.data"),
        ] {
            let p = path.with_file_name(companion);
            if p.is_file() {
                files.push(p);
            }
        }
    }
    files
}

impl<B: Backend> Backend for ModelCache<B> {
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        let digest = file_digest(path)
            .map_err(|e| ModelError::Load(format!("cannot read `{}`: {e}", path.display())))?;
        let key = (
            path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            options.clone(),
            digest,
        );
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = entries.get(&key) {
                return Ok(c.loaded.clone());
            }
        }
        // Loading happens outside the lock: it may take seconds.
        let started = std::time::Instant::now();
        let loaded = self.inner.load(path, options);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.load_nanos
            .fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        let loaded = loaded?;
        let age = self
            .inserted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        while entries.len() >= Self::CAPACITY {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, c)| c.age)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        entries.insert(
            key,
            CachedModel {
                age,
                loaded: loaded.clone(),
            },
        );
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {

    /// A model exported with external data is the `.onnx` and its `.data`:
    /// a retrained `.data` alone changes the digest (and so reloads).
    #[test]
    fn external_data_is_part_of_a_models_digest() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        std::fs::write(&model, b"graph").unwrap();
        let alone = file_digest(&model).unwrap();
        assert_eq!(model_files(&model), std::slice::from_ref(&model));
        let data = dir.path().join("m.onnx.data");
        std::fs::write(&data, b"weights v1").unwrap();
        assert_eq!(model_files(&model), [model.clone(), data.clone()]);
        let v1 = file_digest(&model).unwrap();
        std::fs::write(&data, b"weights v2").unwrap();
        let v2 = file_digest(&model).unwrap();
        assert!(alone != v1 && v1 != v2);
        // Not a model: only the file itself.
        let text = dir.path().join("a.txt");
        std::fs::write(&text, b"W").unwrap();
        std::fs::write(dir.path().join("a.txt.data"), b"x").unwrap();
        assert_eq!(model_files(&text), [text]);
    }

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fake(ModelSignature);

    impl Model for Fake {
        fn signature(&self) -> &ModelSignature {
            &self.0
        }
        fn provider(&self) -> Provider {
            Provider::Cpu
        }
        fn run(&self, _: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
            Ok(Vec::new())
        }
    }

    /// Counts loads; a file starting with `bad` fails to load.
    struct Counting(AtomicUsize);

    impl Backend for Counting {
        fn load(&self, path: &Path, _: &ModelOptions) -> Result<LoadedModel, ModelError> {
            if std::fs::read(path).is_ok_and(|b| b.starts_with(b"bad")) {
                return Err(ModelError::Load("truncated".into()));
            }
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(LoadedModel {
                model: Arc::new(Fake(ModelSignature {
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    metadata: BTreeMap::new(),
                })),
                warnings: Vec::new(),
            })
        }
    }

    #[test]
    fn the_cache_reloads_only_changed_contents_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        let cache = ModelCache::new(Counting(AtomicUsize::new(0)));
        let opts = ModelOptions::default();
        let load = || cache.load(&path, &opts).map(|l| l.model);
        let loads = || cache.inner().0.load(Ordering::SeqCst);
        std::fs::write(&path, "v1").unwrap();
        let a = load().unwrap();
        std::fs::write(&path, "v1").unwrap(); // rewritten, same contents
        assert!(Arc::ptr_eq(&a, &load().unwrap()));
        assert_eq!(loads(), 1);
        std::fs::write(&path, "bad").unwrap(); // a half-written file: an error
        assert!(load().is_err());
        std::fs::write(&path, "v2").unwrap();
        let b = load().unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        std::fs::write(&path, "v1").unwrap(); // back: the running session again
        assert!(Arc::ptr_eq(&a, &load().unwrap()));
        assert_eq!(loads(), 2);
        let mut table = ModelTable::new();
        table.insert("m", Arc::clone(&a));
        cache.retain(&table);
        assert_eq!(cache.len(), 1);
        for i in 0..100 {
            std::fs::write(&path, format!("v{i}")).unwrap();
            load().unwrap();
        }
        assert!(cache.len() <= ModelCache::<Counting>::CAPACITY);
    }
}
