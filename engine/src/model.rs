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

/// A [`Backend`] that remembers what it loaded: asked again for a file whose
/// *contents* (SHA-256) and options are unchanged, it hands back the same
/// session, so a hot reload reloads only the models that really changed.
/// Contents are hashed only when a file's [`FileStamp`] changed (see
/// [`model_digest`]): a rebuild for a parameter edit reads no model file.
/// The graph's metadata for a model ([`Backend::with_metadata`]) is part of
/// its identity: the same session and metadata give the same model back.
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
    /// Model files hashed since the last [`ModelCache::take_hashed`] (bounded).
    hashed: std::sync::Mutex<Vec<Hashed>>,
}

type CacheKey = (PathBuf, ModelOptions, [u8; 32]);

/// Most metadata variants kept per session.
const WRAPPERS: usize = 8;

struct CachedModel {
    age: u64,
    loaded: LoadedModel,
    /// The session with the graphs' metadata, oldest first.
    wrappers: Vec<(BTreeMap<String, String>, Arc<dyn Model>)>,
}

/// One model whose files were read and hashed because their stamps changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// The model file (its external data included in `bytes`).
    pub path: PathBuf,
    pub bytes: u64,
    pub took: std::time::Duration,
}

impl<B: Backend> ModelCache<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        ModelCache {
            inner,
            entries: std::sync::Mutex::new(HashMap::new()),
            inserted: std::sync::atomic::AtomicU64::new(0),
            load_nanos: std::sync::atomic::AtomicU64::new(0),
            hashed: std::sync::Mutex::new(Vec::new()),
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

    /// The models whose files were hashed since the last call (their
    /// size, mtime or inode had changed, or they were new).
    pub fn take_hashed(&self) -> Vec<Hashed> {
        std::mem::take(&mut *self.hashed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The models hashed since the last [`ModelCache::take_hashed`], kept.
    pub fn peek_hashed(&self) -> Vec<Hashed> {
        self.hashed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        let is_used = |m: &Arc<dyn Model>| used.contains(&Arc::as_ptr(m).cast::<()>());
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .retain(|_, c| is_used(&c.loaded.model) || c.wrappers.iter().any(|(_, w)| is_used(w)));
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

/// What a file looked like: its path, size, modification and change times,
/// device and inode. A write in place, a `cp` over it, a rename over it or
/// a `touch` changes it; reading it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    pub path: PathBuf,
    pub len: u64,
    pub modified: Option<std::time::SystemTime>,
    /// Status change time (ns since the epoch; Unix only, else 0): a
    /// write that restores the old mtime still changes it.
    pub changed: i128,
    pub device: u64,
    pub inode: u64,
}

/// How recent a change must be for a stamp not to be trusted (see
/// [`model_digest`]).
const RACY: std::time::Duration = std::time::Duration::from_millis(100);

impl FileStamp {
    /// The file changed within [`RACY`] of `now`.
    fn is_racy(&self, now: std::time::SystemTime) -> bool {
        let Some(limit) = now.checked_sub(RACY) else {
            return true;
        };
        let since_epoch = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i128)
        };
        self.modified.is_none_or(|m| m > limit)
            || (self.changed != 0 && self.changed > since_epoch(limit))
    }
}

/// The stamp of `path` (following links), its errors naming the file.
pub fn file_stamp(path: &Path) -> std::io::Result<FileStamp> {
    let m = std::fs::metadata(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    #[cfg(unix)]
    let (changed, device, inode) = {
        use std::os::unix::fs::MetadataExt;
        (
            i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            m.dev(),
            m.ino(),
        )
    };
    #[cfg(not(unix))]
    let (changed, device, inode) = (0, 0, 0);
    Ok(FileStamp {
        path: path.to_path_buf(),
        len: m.len(),
        modified: m.modified().ok(),
        changed,
        device,
        inode,
    })
}

/// A model's identity: the digest of every file it reads, and whether
/// this call had to hash them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDigest {
    /// SHA-256 over the model file and its external-data files ([`model_files`]).
    pub digest: [u8; 32],
    /// The files, the model file first.
    pub files: Vec<PathBuf>,
    /// Bytes hashed and how long it took; `None` when every file's stamp
    /// was unchanged since the last digest and it was remembered.
    pub hashed: Option<(u64, std::time::Duration)>,
}

/// What [`model_digest`] remembers of one model file.
struct Remembered {
    /// The model file's stamp when its external data were listed.
    model: FileStamp,
    files: Vec<PathBuf>,
    /// `files` were read from the model (not guessed from its neighbours).
    read: bool,
    /// Every file's stamp when `digest` was computed (empty: not yet).
    stamps: Vec<FileStamp>,
    digest: [u8; 32],
}

/// Digests remembered, per model file (process-wide, bounded).
static REMEMBERED: std::sync::LazyLock<std::sync::Mutex<HashMap<PathBuf, Remembered>>> =
    std::sync::LazyLock::new(Default::default);
const REMEMBERED_MAX: usize = 256;

fn remembered() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Remembered>> {
    REMEMBERED.lock().unwrap_or_else(|p| p.into_inner())
}

/// A model's identity ([`ModelDigest`]): the files it reads are the model
/// file and every external-data file its tensors name ([`model_files`]);
/// their contents are hashed only when one of their [`FileStamp`]s (path,
/// size, mtime, ctime, inode) changed since the last call for that model,
/// so a rebuild for a parameter edit reads no model file.
pub fn model_digest(path: &Path) -> std::io::Result<ModelDigest> {
    use sha2::Digest;
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let (files, read) = files_of(path);
    let now = std::time::SystemTime::now();
    let stamps = files
        .iter()
        .map(|f| file_stamp(f))
        .collect::<std::io::Result<Vec<_>>>()?;
    if let Some(r) = remembered().get(&key)
        && r.files == files
        && r.stamps == stamps
    {
        return Ok(ModelDigest {
            digest: r.digest,
            files,
            hashed: None,
        });
    }
    if let Some(digest) = store::lookup(&key, &stamps) {
        remember(key, read, stamps, digest);
        return Ok(ModelDigest {
            digest,
            files,
            hashed: None,
        });
    }
    let started = std::time::Instant::now();
    let mut hasher = sha2::Sha256::new();
    let mut bytes = 0u64;
    let folder = path.parent().unwrap_or(Path::new(""));
    for (i, file) in files.iter().enumerate() {
        if i > 0 {
            // Separate the files, and name each one (renaming one changes the model).
            hasher.update(b"\0");
            let name = file.strip_prefix(folder).unwrap_or(file);
            hasher.update(name.as_os_str().as_encoded_bytes());
            hasher.update(b"\0");
        }
        // A device or FIFO would be read forever.
        let limit = if i == 0 {
            crate::input::MODEL
        } else {
            crate::input::MODEL_DATA
        };
        crate::input::check(file, limit)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
        let mut f = std::fs::File::open(file)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
        bytes += std::io::copy(&mut f, &mut hasher)?;
    }
    let digest: [u8; 32] = hasher.finalize().into();
    let took = started.elapsed();
    // Remembered only when nothing changed while it was read, and no file
    // changed just before it was looked at: file times are coarse (a few
    // ms), so a second write within that time could keep the stamp.
    let after: Option<Vec<FileStamp>> = files.iter().map(|f| file_stamp(f).ok()).collect();
    if after.as_ref() == Some(&stamps) && !stamps.iter().any(|s| s.is_racy(now)) {
        store::save(&key, &stamps, &digest);
        remember(key, read, stamps, digest);
    }
    Ok(ModelDigest {
        digest,
        files,
        hashed: Some((bytes, took)),
    })
}

fn remember(key: PathBuf, read: bool, stamps: Vec<FileStamp>, digest: [u8; 32]) {
    let mut memo = remembered();
    if memo.len() >= REMEMBERED_MAX && !memo.contains_key(&key) {
        memo.clear();
    }
    memo.insert(
        key,
        Remembered {
            model: stamps[0].clone(),
            files: stamps.iter().map(|s| s.path.clone()).collect(),
            read,
            stamps,
            digest,
        },
    );
}

/// Keeps model digests across runs: `wgraph` names a file in its cache
/// ([`remember_digests_in`]), and a model whose files all have the stamps
/// they had when it was last hashed is not hashed again at start.
pub fn remember_digests_in(file: PathBuf) {
    let _ = store::FILE.set(file);
}

mod store {
    //! The file [`super::remember_digests_in`] names: JSON, one entry per
    //! model file (at most [`MAX`]), each its files' stamps and digest.
    //! A store that cannot be read or written is no store.
    use super::FileStamp;
    use serde_json::{Value, json};
    use std::path::{Path, PathBuf};

    pub(super) static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    const MAX: usize = 256;

    fn stamp_json(s: &FileStamp) -> Value {
        let ns = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                .to_string()
        };
        json!({
            "path": s.path.display().to_string(),
            "len": s.len,
            "modified": s.modified.map(ns),
            "changed": s.changed.to_string(),
            "device": s.device,
            "inode": s.inode,
        })
    }

    fn hex(d: &[u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn read(file: &Path) -> serde_json::Map<String, Value> {
        crate::input::read_to_string(file, crate::input::DATA)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("models").and_then(Value::as_object).cloned())
            .unwrap_or_default()
    }

    pub(super) fn lookup(key: &Path, stamps: &[FileStamp]) -> Option<[u8; 32]> {
        let file = FILE.get()?;
        let models = read(file);
        let entry = models.get(&key.display().to_string())?;
        let want: Vec<Value> = stamps.iter().map(stamp_json).collect();
        if entry.get("stamps")?.as_array()? != &want {
            return None;
        }
        let text = entry.get("digest")?.as_str()?;
        let mut digest = [0u8; 32];
        if text.len() != 64 {
            return None;
        }
        for (i, b) in digest.iter_mut().enumerate() {
            *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(digest)
    }

    pub(super) fn save(key: &Path, stamps: &[FileStamp], digest: &[u8; 32]) {
        let Some(file) = FILE.get() else { return };
        let mut models = read(file);
        let name = key.display().to_string();
        if models.len() >= MAX && !models.contains_key(&name) {
            models.clear();
        }
        models.insert(
            name,
            json!({
                "stamps": stamps.iter().map(stamp_json).collect::<Vec<_>>(),
                "digest": hex(digest),
            }),
        );
        let text = json!({ "version": 1, "models": models }).to_string();
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::output::write_file(file, text.as_bytes());
    }
}

/// SHA-256 of a model: of the model file and its external-data files
/// ([`model_files`]), so a retrained `.onnx.data` (or `weights.bin`) alone
/// is a new model. Remembered while the files' stamps are unchanged (see
/// [`model_digest`]).
pub fn file_digest(path: &Path) -> std::io::Result<[u8; 32]> {
    model_digest(path).map(|d| d.digest)
}

/// `path` and the external-data files it reads: for an ONNX model, every
/// file its tensors name (`location`, read from the model:
/// [`crate::onnx_data`]), whatever the exporter called it. A `.onnx` file
/// that cannot be read as ONNX gets the files next to it that exporters
/// write (`NAME.onnx.data`, PyTorch's default; `NAME.onnx_data`;
/// `NAME.data`), those that exist. The list is remembered while the model
/// file's stamp is unchanged.
pub fn model_files(path: &Path) -> Vec<PathBuf> {
    files_of(path).0
}

/// [`model_files`], and whether they were read from the model.
fn files_of(path: &Path) -> (Vec<PathBuf>, bool) {
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let Ok(stamp) = file_stamp(path) else {
        return (vec![path.to_path_buf()], false);
    };
    if let Some(r) = remembered().get(&key)
        && r.read
        && r.model == stamp
    {
        return (r.files.clone(), true);
    }
    let (files, read) = list_model_files(path);
    if !read {
        // Guessed from the files next to it: looked at again every time.
        return (files, false);
    }
    let mut memo = remembered();
    if memo.len() >= REMEMBERED_MAX && !memo.contains_key(&key) {
        memo.clear();
    }
    memo.insert(
        key,
        Remembered {
            model: stamp,
            files: files.clone(),
            read,
            stamps: Vec::new(),
            digest: [0; 32],
        },
    );
    (files, read)
}

/// The files of [`model_files`], and whether they were read from the model.
fn list_model_files(path: &Path) -> (Vec<PathBuf>, bool) {
    let mut files = vec![path.to_path_buf()];
    let folder = path.parent().unwrap_or(Path::new(""));
    match crate::onnx_data::external_locations(path) {
        Ok(locations) => {
            for l in locations {
                let p = folder.join(l);
                if !files.contains(&p) {
                    files.push(p);
                }
            }
            return (files, true);
        }
        Err(_) if path.extension().is_some_and(|e| e == "onnx") => {
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
        Err(_) => {}
    }
    (files, false)
}

impl<B: Backend> Backend for ModelCache<B> {
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        let identity = model_digest(path)
            .map_err(|e| ModelError::Load(format!("cannot read `{}`: {e}", path.display())))?;
        if let Some((bytes, took)) = identity.hashed {
            let mut hashed = self.hashed.lock().unwrap_or_else(|p| p.into_inner());
            if hashed.len() < Self::CAPACITY {
                hashed.push(Hashed {
                    path: path.to_path_buf(),
                    bytes,
                    took,
                });
            }
        }
        let key = (
            path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            options.clone(),
            identity.digest,
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
                wrappers: Vec::new(),
            },
        );
        Ok(loaded)
    }

    fn with_metadata(
        &self,
        model: Arc<dyn Model>,
        overrides: BTreeMap<String, String>,
    ) -> Arc<dyn Model> {
        if !crate::model_ports::needs_wrapper(model.signature(), &overrides) {
            return model;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = entries
            .values_mut()
            .find(|c| Arc::ptr_eq(&c.loaded.model, &model))
        else {
            return with_metadata(model, overrides);
        };
        if let Some((_, w)) = entry.wrappers.iter().find(|(o, _)| *o == overrides) {
            return Arc::clone(w);
        }
        let wrapped = with_metadata(model, overrides.clone());
        if entry.wrappers.len() >= WRAPPERS {
            entry.wrappers.remove(0);
        }
        entry.wrappers.push((overrides, Arc::clone(&wrapped)));
        wrapped
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

    /// A minimal ONNX protobuf whose one tensor is stored in `location`.
    fn model_naming(location: &str) -> Vec<u8> {
        fn field(number: u8, body: &[u8], out: &mut Vec<u8>) {
            out.push(number << 3 | 2);
            out.push(body.len() as u8);
            out.extend_from_slice(body);
        }
        let mut entry = Vec::new();
        field(1, b"location", &mut entry);
        field(2, location.as_bytes(), &mut entry);
        let mut tensor = Vec::new();
        field(8, b"w", &mut tensor);
        field(13, &entry, &mut tensor);
        tensor.extend_from_slice(&[14 << 3, 1]); // data_location = EXTERNAL
        let mut graph = Vec::new();
        field(5, &tensor, &mut graph);
        let mut model = Vec::new();
        field(7, &graph, &mut model);
        model
    }

    /// Files older than the racy window, so their stamps are trusted.
    fn settle() {
        std::thread::sleep(RACY + std::time::Duration::from_millis(50));
    }

    /// The files a model reads are named by the model (`weights.bin`), and
    /// their contents are hashed only when a stamp changed: a second
    /// digest of unchanged files reads nothing; new bytes, or a touch, are
    /// hashed again (the touch finds the same digest).
    #[test]
    fn a_model_is_hashed_only_when_its_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        let data = dir.path().join("weights.bin");
        std::fs::write(&model, model_naming("weights.bin")).unwrap();
        std::fs::write(&data, b"weights v1").unwrap();
        settle();
        assert_eq!(model_files(&model), [model.clone(), data.clone()]);
        let first = model_digest(&model).unwrap();
        assert!(first.hashed.is_some());
        let again = model_digest(&model).unwrap();
        assert_eq!((again.digest, again.hashed), (first.digest, None));
        std::fs::write(&data, b"weights v2").unwrap(); // same size, in place
        settle();
        let changed = model_digest(&model).unwrap();
        assert!(changed.hashed.is_some() && changed.digest != first.digest);
        let f = std::fs::File::options().append(true).open(&data).unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
        drop(f);
        settle();
        let touched = model_digest(&model).unwrap();
        assert!(touched.hashed.is_some());
        assert_eq!(touched.digest, changed.digest);
        assert_eq!(model_digest(&model).unwrap().hashed, None);
        // A missing data file is an error naming it.
        std::fs::remove_file(&data).unwrap();
        let e = model_digest(&model).unwrap_err().to_string();
        assert!(e.contains("weights.bin"), "{e}");
    }

    /// The graph's metadata for a model is part of its identity: the same
    /// session and metadata give the same model on every build (so a
    /// rebuild is no reload), other metadata another wrapper around the
    /// same session, and a graph that holds only the wrapper keeps the
    /// session cached.
    #[test]
    fn graph_metadata_is_part_of_a_models_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, "v1").unwrap();
        let cache = ModelCache::new(Counting(AtomicUsize::new(0)));
        let opts = ModelOptions::default();
        let meta = |role: &str| BTreeMap::from([("wgraph.role".to_string(), role.to_string())]);
        let build = |role: &str| {
            let inner = cache.load(&path, &opts).unwrap().model;
            cache.with_metadata(inner, meta(role))
        };
        let a = build("denoiser");
        assert_eq!(a.signature().meta("wgraph.role"), Some("denoiser"));
        let mut table = ModelTable::new();
        table.insert("m", Arc::clone(&a));
        cache.retain(&table);
        assert_eq!(cache.len(), 1, "the session behind the graph's model stays");
        assert!(Arc::ptr_eq(&a, &build("denoiser")));
        let b = build("encoder");
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(cache.inner().0.load(Ordering::SeqCst), 1);
    }

    /// Digests kept in the store survive the process's memory: a model
    /// whose files kept their stamps is not hashed at the next start.
    #[test]
    fn digests_are_kept_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        remember_digests_in(
            std::env::temp_dir().join(format!("wgraph-test-digests-{}.json", std::process::id())),
        );
        let model = dir.path().join("kept.onnx");
        std::fs::write(&model, model_naming("kept.bin")).unwrap();
        std::fs::write(dir.path().join("kept.bin"), b"weights").unwrap();
        settle();
        let first = model_digest(&model).unwrap();
        assert!(first.hashed.is_some());
        // Forgotten in memory, as a new process starts.
        remembered().remove(&std::path::absolute(&model).unwrap());
        let next = model_digest(&model).unwrap();
        assert_eq!((next.digest, next.hashed), (first.digest, None));
        if let Some(f) = store::FILE.get() {
            let _ = std::fs::remove_file(f);
        }
    }
}
