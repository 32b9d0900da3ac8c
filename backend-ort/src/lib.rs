//! ONNX Runtime backend for wgraph.
//!
//! [`OrtBackend`] implements the engine's [`Backend`] trait: it loads `.onnx`
//! files into [`OrtModel`]s, which implement [`Model`]. Nothing is linked at
//! build time: the ONNX Runtime shared library is found (or installed into
//! wgraph's cache) on first use by [`runtime::runtime`]; see [`runtime`](mod@runtime) for
//! the search order. [`doctor::doctor`] reports what was found, which
//! execution providers the library offers and which GPUs the machine has.
//!
//! Supported port dtypes are `f32`, `f64`, `f16`, `i64`, `i32`, `i16`, `i8`,
//! `u8`, `u16`, `u32` and `bool` (string, u64, bf16, complex and 8-bit-float
//! ports are refused at load); dynamic dimensions become
//! [`Dim::Sym`] (named after the ONNX `dim_param`, or `?` when unnamed). The
//! ONNX custom metadata (`metadata_props`) becomes
//! [`ModelSignature::metadata`].
//!
//! Providers: CPU by default; CUDA and TensorRT (with CUDA as its fallback
//! for nodes TensorRT does not take) when [`ModelOptions::provider`] asks.
//! When the requested provider cannot be used, `strict` loads fail with
//! [`ModelError::Provider`]; otherwise the model is loaded on the next
//! provider down (TensorRT → CUDA → CPU) and [`LoadedModel::warnings`] says
//! so.
//!
//! ```no_run
//! use wgraph_engine::model::{Backend, ModelOptions};
//! use wgraph_engine::tensor::Tensor;
//! use wgraph_ort::OrtBackend;
//!
//! let loaded = OrtBackend::new().load("add.onnx".as_ref(), &ModelOptions::default())?;
//! let x = Tensor::from_f32(&[1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
//! let out = loaded.model.run(&[x.clone(), x])?;
//! assert_eq!(out[0].host_f32().unwrap(), &[2.0, 4.0, 6.0, 8.0]);
//! # Ok::<(), wgraph_engine::model::ModelError>(())
//! ```

#![warn(missing_docs)]

mod binding;
pub mod doctor;
mod private;
pub mod runtime;
pub mod tensorrt;

pub use binding::OrtDeviceValue;

use ort::ep::{self, ExecutionProvider, ExecutionProviderDispatch};
use ort::session::Session;
use ort::session::builder::SessionBuilder;
use ort::value::{DynValue, PrimitiveTensorElementType, TensorElementType, TensorRef, ValueType};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wgraph_engine::model::{
    Backend, LoadedModel, Model, ModelError, ModelOptions, ModelPort, ModelSignature, Provider,
};
use wgraph_engine::tensor::{DType, Element, Tensor, f16};
use wgraph_engine::transfers::{self, Direction};
use wgraph_engine::types::{Dim, TensorType};

pub use doctor::{DoctorReport, doctor};
pub use runtime::{RuntimeInfo, RuntimeSource, runtime};

/// Loads ONNX models with ONNX Runtime.
///
/// Stateless: the runtime itself is process-wide (see [`runtime()`]), and each
/// loaded model owns its session.
#[derive(Clone, Default)]
pub struct OrtBackend {
    notices: Option<Notices>,
}

impl fmt::Debug for OrtBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrtBackend")
            .field("notices", &self.notices.is_some())
            .finish()
    }
}

impl OrtBackend {
    /// A backend. Creating one is free; the runtime is found on the first
    /// [`load`](Backend::load).
    pub fn new() -> Self {
        OrtBackend::default()
    }

    /// Tells `notices` about work that takes long before it starts (a
    /// TensorRT engine build at [`Model::prepare`]), so a user is not left
    /// looking at a silent terminal for minutes.
    pub fn with_notices(mut self, notices: Notices) -> Self {
        self.notices = Some(notices);
        self
    }
}

/// A model loaded into an ONNX Runtime session.
///
/// The session sits behind a mutex of its own: runs of one model are
/// serialised, different models run in parallel.
pub struct OrtModel {
    inner: Mutex<SessionState>,
    signature: ModelSignature,
    provider: Provider,
    /// How runs bind their tensors (`None`: plain runs from host memory).
    plan: Option<binding::BindPlan>,
    /// What the model was loaded from and with (a TensorRT session is
    /// rebuilt with shape profiles in [`Model::prepare`]).
    path: PathBuf,
    options: ModelOptions,
    notices: Option<Notices>,
}

/// The session and what belongs to it.
struct SessionState {
    session: Session,
    fixed: binding::FixedSets,
    /// Input shape sets already prepared (bounded by [`MAX_PREPARED`]).
    prepared: Vec<Vec<Vec<usize>>>,
    /// The TensorRT shape profile the session was built with.
    profile: Option<tensorrt::Profile>,
}

/// Shape sets [`Model::prepare`] remembers per model; a graph uses a few.
const MAX_PREPARED: usize = 16;

/// Where a backend says what takes long (an engine build) before it starts.
pub type Notices = Arc<dyn Fn(&str) + Send + Sync>;

impl fmt::Debug for OrtModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrtModel")
            .field("signature", &self.signature)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Backend for OrtBackend {
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        let mut model = OrtModel::load(path, options)?;
        model.0.notices = self.notices.clone();
        let warnings = model.1;
        Ok(LoadedModel {
            model: Arc::new(model.0),
            warnings,
        })
    }
}

/// Whether the loaded ONNX Runtime was built with `provider`.
pub fn provider_available(provider: Provider) -> Result<bool, ModelError> {
    runtime::ensure()?;
    let answer = match provider {
        Provider::Cpu => ep::CPU::is_available(),
        Provider::Cuda => ep::CUDA::is_available(),
        Provider::TensorRt => ep::TensorRT::is_available(),
    };
    answer.map_err(|e| {
        ModelError::Runtime(format!(
            "cannot ask ONNX Runtime whether {provider} is available: {e}"
        ))
    })
}

/// The providers (of cpu, cuda, tensorrt) the loaded ONNX Runtime was built with.
pub fn available_providers() -> Result<Vec<Provider>, ModelError> {
    let mut out = Vec::new();
    for p in [Provider::Cpu, Provider::Cuda, Provider::TensorRt] {
        if provider_available(p)? {
            out.push(p);
        }
    }
    Ok(out)
}

fn names(providers: &[Provider]) -> String {
    if providers.is_empty() {
        return "none".to_string();
    }
    providers
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a provider could not be used (one attempt).
struct Unavailable {
    provider: Provider,
    reason: String,
}

impl OrtModel {
    /// Loads `path` (see the [crate docs](crate) for provider fallback).
    /// Returns the model and the warnings loading produced.
    pub fn load(
        path: &Path,
        options: &ModelOptions,
    ) -> Result<(OrtModel, Vec<String>), ModelError> {
        let rt = runtime::ensure()?;
        let shown = path.display();
        match wgraph_engine::input::check(path, wgraph_engine::input::MODEL) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                return Err(ModelError::Load(format!("model {shown}: {e}")));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::Load(format!(
                    "model file {shown} does not exist"
                )));
            }
            Err(e) => return Err(ModelError::Load(format!("cannot read model {shown}: {e}"))),
        }

        let chain: &[Provider] = match options.provider {
            Provider::Cpu => &[Provider::Cpu],
            Provider::Cuda => &[Provider::Cuda, Provider::Cpu],
            Provider::TensorRt => &[Provider::TensorRt, Provider::Cuda, Provider::Cpu],
        };
        let lib = rt.info.path.display();
        let mut failures: Vec<Unavailable> = Vec::new();
        let mut session = None;
        for &provider in chain {
            if options.strict && provider != options.provider {
                break;
            }
            let reason = match provider_available(provider) {
                Ok(true) => None,
                Ok(false) => Some(format!(
                    "is not available in {lib} (this build has: {})",
                    names(&available_providers().unwrap_or_default())
                )),
                Err(e) => Some(e.to_string()),
            };
            if let Some(reason) = reason {
                failures.push(Unavailable { provider, reason });
                continue;
            }
            match commit(rt, path, provider, options, None) {
                Ok(s) => {
                    session = Some((s, provider));
                    break;
                }
                Err(Failure::Setup(e)) => return Err(e),
                Err(Failure::Commit(message)) => {
                    if provider == Provider::Cpu {
                        return Err(load_error(path, &message));
                    }
                    // A GPU provider failed to build the session: was it
                    // the provider or the model? Ask the CPU.
                    if let Err(Failure::Commit(cpu_message)) =
                        commit(rt, path, Provider::Cpu, &ModelOptions::default(), None)
                    {
                        return Err(load_error(path, &cpu_message));
                    }
                    failures.push(Unavailable {
                        provider,
                        reason: format!("failed to start on {lib}: {message}"),
                    });
                }
            }
        }

        let Some((session, provider)) = session else {
            let f = failures.first();
            let reason = f.map(|f| f.reason.as_str()).unwrap_or("could not be used");
            return Err(ModelError::Provider(format!(
                "cannot load {shown}: provider `{}` {reason}; for GPU providers install the GPU build of ONNX Runtime (`pip install onnxruntime-gpu`) or point {} at it, or drop `strict` to fall back to CPU",
                options.provider,
                runtime::ENV_DYLIB_PATH
            )));
        };
        // One plain warning: what was asked for, why it failed, what is used.
        let mut warnings = Vec::new();
        if !failures.is_empty() {
            let first = &failures[0];
            let reasons: Vec<String> = failures
                .iter()
                .enumerate()
                .map(|(i, f)| match i {
                    0 => format!("provider `{}` {}", f.provider, f.reason),
                    _ if f.reason == first.reason => {
                        format!("fallback `{}` is not available either", f.provider)
                    }
                    _ => format!("fallback `{}` {}", f.provider, f.reason),
                })
                .collect();
            warnings.push(format!(
                "{shown}: {}; loaded on `{provider}` instead",
                reasons.join("; ")
            ));
        }

        let signature = signature_of(&session, path)?;
        let on_gpu = provider != Provider::Cpu;
        if options.cuda_graph && !on_gpu {
            warnings.push(format!(
                "{shown}: `cuda_graph` needs the CUDA provider; on `{provider}` the model runs with fixed-address buffers and no graph"
            ));
        }
        let bound = options.io_binding.unwrap_or(on_gpu) || options.cuda_graph;
        let device = i32::try_from(options.device_id).unwrap_or(0);
        let plan = bound.then_some(binding::BindPlan {
            output_device: on_gpu.then_some(device),
            on_gpu,
            fixed: options.cuda_graph,
        });
        Ok((
            OrtModel {
                inner: Mutex::new(SessionState {
                    session,
                    fixed: binding::FixedSets::default(),
                    prepared: Vec::new(),
                    profile: None,
                }),
                signature,
                provider,
                plan,
                path: path.to_path_buf(),
                options: options.clone(),
                notices: None,
            },
            warnings,
        ))
    }
}

/// A failure to build a session.
enum Failure {
    /// Options could not be set (not the model's fault): final.
    Setup(ModelError),
    /// ONNX Runtime refused to create the session.
    Commit(String),
}

fn load_error(path: &Path, message: &str) -> ModelError {
    let lower = message.to_ascii_lowercase();
    if let Some(advice) = operator_advice(message) {
        return ModelError::Load(format!("cannot load model {}: {advice}", path.display()));
    }
    let what = if lower.contains("protobuf parsing failed") || lower.contains("invalid_protobuf") {
        "it is not an ONNX model"
    } else {
        "ONNX Runtime could not load it"
    };
    ModelError::Load(format!(
        "cannot load model {}: {what} ({})",
        path.display(),
        message.trim()
    ))
}

/// The text between `start` and the next `end` in `s`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

/// How to convert a model to an opset: the ONNX package's version converter.
fn convert_hint(opset: &str) -> String {
    format!(
        "convert it with the ONNX package's version converter (`python3 -c \"import onnx, onnx.version_converter as c; \
         onnx.save(c.convert_version(onnx.load('IN.onnx'), {opset}), 'OUT.onnx')\"`) or re-export it \
         (`torch.onnx.export(..., opset_version={opset})`)"
    )
}

/// A clear message for the operator and opset errors ONNX Runtime gives
/// when a model needs more than it has: which operator or opset, and how
/// to convert the model.
fn operator_advice(message: &str) -> Option<String> {
    // "Opset 40 is under development … Current official support for domain
    // ai.onnx is till opset 26."
    if let (Some(opset), Some(rest)) = (
        between(message, "Opset ", " is under development"),
        message.split("Current official support for domain ").nth(1),
    ) {
        let (domain, max) = rest.split_once(" is till opset ")?;
        let max = max.trim_end_matches(|c: char| !c.is_ascii_digit());
        return Some(format!(
            "it uses opset {opset} of `{domain}`, but this ONNX Runtime supports up to opset {max}: {}",
            convert_hint(max)
        ));
    }
    // "Could not find an implementation for ConvInteger(10) node with name …"
    if let Some(op) = between(message, "Could not find an implementation for ", " node") {
        return Some(format!(
            "this ONNX Runtime has no implementation of operator {op} (operator(opset version)) for the types the model uses: \
             {}, or change the types the operator gets",
            convert_hint("17")
        ));
    }
    // "com.example:FancyOp(-1) is not a registered function/op"
    if let Some(op) = message
        .split_whitespace()
        .find(|w| w.contains(':') && w.contains('('))
        .filter(|_| message.contains("is not a registered function/op"))
    {
        let op = op.trim_start_matches("error:");
        return Some(format!(
            "operator {op} is not one this ONNX Runtime knows (a custom operator needs its library): \
             re-export the model with standard ONNX operators"
        ));
    }
    None
}

/// Builds a session for `path` on `provider` only.
fn commit(
    rt: &runtime::Runtime,
    path: &Path,
    provider: Provider,
    options: &ModelOptions,
    profile: Option<&tensorrt::Profile>,
) -> Result<Session, Failure> {
    let setup = |e: String| Failure::Setup(ModelError::Runtime(e));
    let mut builder: SessionBuilder = Session::builder(&rt.env).map_err(|e| {
        setup(format!(
            "cannot create an ONNX Runtime session builder: {e}"
        ))
    })?;
    if let Some(threads) = options.threads {
        builder = builder
            .with_intra_threads(threads)
            .map_err(|e| setup(format!("cannot set {threads} intra-op threads: {e}")))?;
    }
    let eps = execution_providers(provider, options, profile).map_err(Failure::Setup)?;
    if !eps.is_empty() {
        builder = builder
            .with_execution_providers(eps)
            .map_err(|e| Failure::Commit(format!("cannot register provider `{provider}`: {e}")))?;
    }
    // ONNX Runtime maps external-data files; a write to a mapped file
    // (an in-place `cp`) would fault the process. It maps a private copy.
    let copy = private::copy(path).map_err(Failure::Setup)?;
    let from = copy.as_ref().map_or(path, |c| c.model.as_path());
    builder.commit_from_file(from).map_err(|e| {
        let message = e.to_string();
        Failure::Commit(match &copy {
            Some(c) => c.unprivate(&message),
            None => message,
        })
    })
}

/// The execution providers to register for one attempt. The first one must
/// register (`error_on_failure`); the CUDA fallback behind TensorRT may not.
fn execution_providers(
    provider: Provider,
    options: &ModelOptions,
    profile: Option<&tensorrt::Profile>,
) -> Result<Vec<ExecutionProviderDispatch>, ModelError> {
    use ep::ArbitrarilyConfigurableExecutionProvider;
    let device = i32::try_from(options.device_id).map_err(|_| {
        ModelError::Provider(format!("device id {} is out of range", options.device_id))
    })?;
    let cuda = || {
        ep::CUDA::default()
            .with_device_id(device)
            .with_cuda_graph(options.cuda_graph)
            .build()
    };
    Ok(match provider {
        Provider::Cpu => Vec::new(),
        Provider::Cuda => vec![cuda().error_on_failure()],
        Provider::TensorRt => {
            let cache = tensorrt::cache_dir(options);
            if let Some(dir) = &cache {
                std::fs::create_dir_all(dir).map_err(|e| {
                    ModelError::Load(format!(
                        "cannot create the TensorRT engine cache folder {}: {e}",
                        dir.display()
                    ))
                })?;
                if dir.to_str().is_none_or(|s| s.contains('\0')) {
                    return Err(ModelError::Load(format!(
                        "the TensorRT engine cache folder {} must be a UTF-8 path",
                        dir.display()
                    )));
                }
            }
            let mut trt = ep::TensorRT::default().with_device_id(device);
            for (key, value) in tensorrt::options(options, cache.as_deref(), profile) {
                trt = trt.with_arbitrary_config(key, value);
            }
            let mut eps = vec![trt.build().error_on_failure()];
            if ep::CUDA::is_available().unwrap_or(false) {
                eps.push(cuda().fail_silently());
            }
            eps
        }
    })
}

/// Maps an ONNX element type to a wgraph dtype.
fn dtype_of(ty: TensorElementType) -> Option<DType> {
    Some(match ty {
        TensorElementType::Float32 => DType::F32,
        TensorElementType::Float64 => DType::F64,
        TensorElementType::Float16 => DType::F16,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Int16 => DType::I16,
        TensorElementType::Int8 => DType::I8,
        TensorElementType::Uint8 => DType::U8,
        TensorElementType::Uint16 => DType::U16,
        TensorElementType::Uint32 => DType::U32,
        TensorElementType::Bool => DType::Bool,
        _ => return None,
    })
}

/// The supported dtypes, for messages: `f32, f64, …, bool`.
fn supported() -> String {
    DType::ALL.map(DType::name).join(", ")
}

/// The engine type of one session input or output.
fn port_type(
    kind: &str,
    name: &str,
    ty: &ValueType,
    path: &Path,
) -> Result<TensorType, ModelError> {
    let ValueType::Tensor {
        ty: elem,
        shape,
        dimension_symbols,
    } = ty
    else {
        return Err(ModelError::Load(format!(
            "model {}: {kind} `{name}` is a {ty}, not a tensor; wgraph-ort supports tensor ports only",
            path.display()
        )));
    };
    let dtype = dtype_of(*elem).ok_or_else(|| {
        ModelError::Load(format!(
            "model {}: {kind} `{name}` has dtype {elem}, which wgraph-ort does not support (supported: {})",
            path.display(),
            supported()
        ))
    })?;
    let dims = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| match usize::try_from(d) {
            Ok(n) => Dim::Known(n),
            Err(_) => {
                let sym = dimension_symbols.get(i).map(String::as_str).unwrap_or("");
                if sym.is_empty() {
                    // Unnamed: its own unknown, never equal to another `?`.
                    Dim::unnamed(&format!("{kind} {name}"), i)
                } else {
                    Dim::Sym(sym.into())
                }
            }
        })
        .collect();
    Ok(TensorType { dtype, shape: dims })
}

fn signature_of(session: &Session, path: &Path) -> Result<ModelSignature, ModelError> {
    let mut inputs = Vec::new();
    for outlet in session.inputs() {
        inputs.push(ModelPort {
            name: outlet.name().to_string(),
            ty: port_type("input", outlet.name(), outlet.dtype(), path)?,
        });
    }
    let mut outputs = Vec::new();
    for outlet in session.outputs() {
        outputs.push(ModelPort {
            name: outlet.name().to_string(),
            ty: port_type("output", outlet.name(), outlet.dtype(), path)?,
        });
    }
    let mut metadata = BTreeMap::new();
    let meta = session.metadata().map_err(|e| {
        ModelError::Load(format!(
            "model {}: cannot read its metadata: {e}",
            path.display()
        ))
    })?;
    let keys = meta.custom_keys().map_err(|e| {
        ModelError::Load(format!(
            "model {}: cannot read its metadata: {e}",
            path.display()
        ))
    })?;
    for key in keys {
        if let Some(value) = meta.custom(&key) {
            metadata.insert(key, value);
        }
    }
    Ok(ModelSignature {
        inputs,
        outputs,
        metadata,
    })
}

/// `f32[1, 16, 8, 8]`.
fn describe(dtype: DType, shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("{dtype}[{}]", dims.join(", "))
}

impl OrtModel {
    /// Checks inputs against the signature: count, dtype, rank, every known
    /// dimension, and that a named dimension has one size across inputs.
    fn check_inputs(&self, inputs: &[Tensor]) -> Result<(), ModelError> {
        self.signature.check_input_count(inputs)?;
        let ports = &self.signature.inputs;
        let mut bound: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
        for (port, tensor) in ports.iter().zip(inputs) {
            let mismatch = || {
                ModelError::Run(format!(
                    "input `{}` expects {}, got {}",
                    port.name,
                    port.ty,
                    describe(tensor.dtype(), tensor.shape())
                ))
            };
            if tensor.dtype() != port.ty.dtype || tensor.shape().len() != port.ty.shape.len() {
                return Err(mismatch());
            }
            for (dim, &got) in port.ty.shape.iter().zip(tensor.shape()) {
                match dim {
                    Dim::Known(n) if *n != got => return Err(mismatch()),
                    Dim::Known(_) => {}
                    d if d.is_unnamed() => {}
                    Dim::Sym(s) => match bound.get(s.as_str()) {
                        Some(&(size, other)) if size != got => {
                            return Err(ModelError::Run(format!(
                                "input `{}` expects {}, got {}: `{s}` is {size} in input `{other}` but {got} here",
                                port.name,
                                port.ty,
                                describe(tensor.dtype(), tensor.shape())
                            )));
                        }
                        Some(_) => {}
                        None => {
                            bound.insert(s, (got, &port.name));
                        }
                    },
                }
            }
        }
        Ok(())
    }
}

/// Copies one session output into an engine tensor.
fn to_tensor(name: &str, value: &DynValue) -> Result<Tensor, ModelError> {
    let fail = |e: String| ModelError::Run(format!("output `{name}`: {e}"));
    let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
        return Err(fail(format!("is a {}, not a tensor", value.dtype())));
    };
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| fail(format!("has a negative dimension {d}"))))
        .collect::<Result<_, _>>()?;
    let empty = dims.contains(&0);
    let Some(dtype) = dtype_of(*ty) else {
        return Err(fail(format!("has unsupported dtype {ty}")));
    };
    let tensor = match dtype {
        DType::F32 => extract::<f32>(value, &dims, empty),
        DType::F64 => extract::<f64>(value, &dims, empty),
        DType::F16 => extract::<f16>(value, &dims, empty),
        DType::I64 => extract::<i64>(value, &dims, empty),
        DType::I32 => extract::<i32>(value, &dims, empty),
        DType::I16 => extract::<i16>(value, &dims, empty),
        DType::I8 => extract::<i8>(value, &dims, empty),
        DType::U8 => extract::<u8>(value, &dims, empty),
        DType::U16 => extract::<u16>(value, &dims, empty),
        DType::U32 => extract::<u32>(value, &dims, empty),
        DType::Bool => extract::<bool>(value, &dims, empty),
    }
    .map_err(fail)?;
    Ok(tensor)
}

/// One output's elements of type `T`, copied into an engine tensor of
/// shape `dims` (`empty`: it has no elements, and ONNX Runtime may give no
/// buffer to read).
fn extract<T: Element + PrimitiveTensorElementType>(
    value: &DynValue,
    dims: &[usize],
    empty: bool,
) -> Result<Tensor, String> {
    let data = if empty {
        Vec::new()
    } else {
        copy_out(
            value
                .try_extract_tensor::<T>()
                .map_err(|e| e.to_string())?
                .1,
        )?
    };
    Tensor::from_vec(dims, data).map_err(|e| e.to_string())
}

/// A model output copied out of ONNX Runtime's buffer; its size comes from
/// the model at run time, so a failed allocation is an error, not an abort.
fn copy_out<T: Copy>(data: &[T]) -> Result<Vec<T>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(data.len())
        .map_err(|_| format!("no memory to copy {} values", data.len()))?;
    v.extend_from_slice(data);
    Ok(v)
}

fn as_i64_shape(shape: &[usize]) -> Result<Vec<i64>, ModelError> {
    shape
        .iter()
        .map(|&d| {
            i64::try_from(d).map_err(|_| ModelError::Run(format!("dimension {d} is too large")))
        })
        .collect()
}

impl Model for OrtModel {
    fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    fn provider(&self) -> Provider {
        self.provider
    }

    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        self.check_inputs(inputs)?;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *inner;
        if let Some(plan) = self.plan {
            return binding::run_bound(
                &mut inner.session,
                &mut inner.fixed,
                &self.signature,
                inputs,
                plan,
            );
        }
        let on_gpu = self.provider != Provider::Cpu;
        // A device tensor given to a model that runs from host memory comes
        // home first (counted).
        let hosts: std::borrow::Cow<'_, [Tensor]> = if inputs.iter().all(Tensor::is_host) {
            inputs.into()
        } else {
            inputs
                .iter()
                .map(Tensor::to_host)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ModelError::Run(e.to_string()))?
                .into()
        };
        let mut values: Vec<(String, ort::session::SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (port, tensor) in self.signature.inputs.iter().zip(hosts.iter()) {
            let shape = as_i64_shape(tensor.shape())?;
            let fail = |e: String| ModelError::Run(format!("input `{}`: {e}", port.name));
            let host = tensor.host().map_err(|e| fail(e.to_string()))?;
            let value: ort::session::SessionInputValue<'_> = wgraph_engine::with_host_data!(
                host,
                d => TensorRef::from_array_view((shape, &d[..])).map(Into::into)
            )
            .map_err(|e| fail(e.to_string()))?;
            values.push((port.name.clone(), value));
            if on_gpu {
                // ONNX Runtime uploads it for the GPU provider.
                transfers::record(Direction::HostToDevice, tensor.byte_len());
            }
        }

        let outputs = inner
            .session
            .run(values)
            .map_err(|e| ModelError::Run(format!("ONNX Runtime failed: {e}")))?;
        self.signature
            .outputs
            .iter()
            .map(|port| {
                let value = outputs.get(&port.name).ok_or_else(|| {
                    ModelError::Run(format!("ONNX Runtime returned no output `{}`", port.name))
                })?;
                let t = to_tensor(&port.name, value)?;
                if on_gpu {
                    transfers::record(Direction::DeviceToHost, t.byte_len());
                }
                Ok(t)
            })
            .collect()
    }

    /// Build-time work for these input shapes: on TensorRT, a session
    /// with a shape profile covering them (for models with symbolic
    /// dimensions) and one warm-up run that builds — or loads from the
    /// cache — the engine; with `cuda_graph`, a warm-up run that allocates
    /// the fixed buffers (and, on CUDA, captures the graph). Nothing on a
    /// plain CPU model.
    fn prepare(&self, input_shapes: &[Vec<usize>]) -> Result<(), ModelError> {
        let trt = self.provider == Provider::TensorRt;
        if !trt && !self.options.cuda_graph {
            return Ok(());
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.prepared.iter().any(|p| p == input_shapes) {
            return Ok(());
        }
        let symbolic = self
            .signature
            .inputs
            .iter()
            .any(|p| p.ty.shape.iter().any(|d| matches!(d, Dim::Sym(_))));
        if trt && symbolic {
            let names: Vec<String> = self
                .signature
                .inputs
                .iter()
                .map(|p| p.name.clone())
                .collect();
            let profile = match &inner.profile {
                Some(p) if p.covers(input_shapes) => None,
                Some(p) => Some(p.widened(input_shapes)),
                None => Some(tensorrt::Profile::exact(&names, input_shapes)),
            };
            if let Some(profile) = profile {
                let rt = runtime::ensure()?;
                let session = commit(
                    rt,
                    &self.path,
                    Provider::TensorRt,
                    &self.options,
                    Some(&profile),
                )
                .map_err(|f| match f {
                    Failure::Setup(e) => e,
                    Failure::Commit(m) => load_error(&self.path, &m),
                })?;
                inner.session = session;
                inner.fixed = binding::FixedSets::default();
                inner.profile = Some(profile);
            }
        }
        let zeros = self
            .signature
            .inputs
            .iter()
            .zip(input_shapes)
            .map(|(p, s)| Tensor::zeros(p.ty.dtype, s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ModelError::Run(e.to_string()))?;
        if trt && let Some(notices) = &self.notices {
            let cache = tensorrt::cache_dir(&self.options).map_or_else(
                || "no cache folder".to_string(),
                |d| format!("cached in {}", d.display()),
            );
            let shapes: Vec<String> = input_shapes.iter().map(|s| format!("{s:?}")).collect();
            notices(&format!(
                "{}: building the TensorRT engine for inputs {} (the first build takes minutes; {cache})",
                self.path.display(),
                shapes.join(", ")
            ));
        }
        drop(inner);
        let started = std::time::Instant::now();
        self.run(&zeros)?;
        if trt && let Some(notices) = &self.notices {
            notices(&format!(
                "{}: TensorRT engine ready in {:.1} s",
                self.path.display(),
                started.elapsed().as_secs_f64()
            ));
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.prepared.len() >= MAX_PREPARED {
            inner.prepared.remove(0);
        }
        inner.prepared.push(input_shapes.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod advice_tests {
    #[test]
    fn opset_and_operator_errors_name_the_operator_and_the_fix() {
        let future = "Load model from m.onnx failed:/src/model_load_utils.h:46 void f() ONNX Runtime only *guarantees* support for models stamped with official released onnx opset versions. Opset 40 is under development and support for this is limited. Current official support for domain ai.onnx is till opset 26.";
        let m = super::operator_advice(future).unwrap();
        assert!(m.starts_with("it uses opset 40 of `ai.onnx`, but this ONNX Runtime supports up to opset 26: convert it"), "{m}");
        assert!(
            m.contains("convert_version(onnx.load('IN.onnx'), 26)"),
            "{m}"
        );
        let custom = "Load model from m.onnx failed:Fatal error: com.example:FancyOp(-1) is not a registered function/op";
        let m = super::operator_advice(custom).unwrap();
        assert!(
            m.starts_with("operator com.example:FancyOp(-1) is not one this ONNX Runtime knows"),
            "{m}"
        );
        let missing = "Could not find an implementation for ConvInteger(10) node with name 'c'";
        let m = super::operator_advice(missing).unwrap();
        assert!(m.contains("operator ConvInteger(10)"), "{m}");
        assert_eq!(super::operator_advice("some other failure"), None);
    }
}
