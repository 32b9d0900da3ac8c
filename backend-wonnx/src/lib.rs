//! wonnx backend for wgraph: ONNX models on WebGPU through wgpu (Vulkan,
//! Metal, DX12), with no ONNX Runtime involved.
//!
//! [`WonnxBackend`] implements the engine's [`Backend`] trait: it loads
//! `.onnx` files into [`WonnxModel`]s, which implement [`Model`]. Loading
//! first reads the ONNX graph itself ([`check_model`]) and refuses, with the
//! operator and node or the input and dimension named, what wonnx cannot
//! run: an operator missing from [`SUPPORTED_OPS`], a symbolic (dynamic)
//! dimension, a value without a static shape, an element type other than
//! `f32`, `i32`, `i64` or `u8`. Only then does it look for a WebGPU adapter
//! ([`adapter`]) and hand the model to wonnx, so a model that cannot work is
//! refused the same way on a machine without a GPU.
//!
//! wonnx needs static shapes for every value (its `value_info`); the shipped
//! models have a symbolic `batch`, and some use operators wonnx lacks, so
//! `models-onnx/decompose_for_wonnx.py` rewrites them (exactly) into models
//! this backend loads. The custom metadata (`metadata_props`) becomes
//! [`ModelSignature::metadata`], as with the ONNX Runtime backend.
//!
//! Nothing here panics on a user's model or machine: wgpu panics when it has
//! no adapter or on a validation error, so the adapter is found first and
//! every call into wonnx runs under `catch_unwind`; both become
//! [`WonnxError`]s, mapped to [`ModelError`].
//!
//! [`doctor`] says whether the backend is usable here (an adapter and its API).

#![warn(missing_docs)]

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};
use wgraph_engine::model::{
    Backend, LoadedModel, Model, ModelError, ModelOptions, ModelPort, ModelSignature, Provider,
};
use wgraph_engine::tensor::{DType, Tensor};
use wgraph_engine::types::{Dim, TensorType};
use wonnx::onnx::{ModelProto, TensorProto_DataType, TypeProto_oneof_value, ValueInfoProto};
use wonnx::utils::{InputTensor, OutputTensor};

/// The wonnx version whose operators [`SUPPORTED_OPS`] lists.
pub const WONNX_VERSION: &str = "0.5.1";

/// The ONNX operators (domain `ai.onnx`) wonnx 0.5.1 runs.
///
/// Taken from wonnx 0.5.1's source: the operators `compile()` in
/// `src/compiler.rs` has a shader for, plus those its optimizer folds or
/// its GPU model aliases (`Constant`, `Shape`, `Size`, `ConstantOfShape` in
/// `src/optimizer.rs`; `Reshape`, `Identity`, `Flatten`, `Squeeze`,
/// `Unsqueeze`, `Dropout` in `src/gpu.rs`). Its `Sum` is listed there but
/// returns "unimplemented", so it is left out. Update this with the wonnx
/// dependency.
pub const SUPPORTED_OPS: &[&str] = &[
    // Element-wise maps (compiler.rs, endomorphism/map.wgsl).
    "Abs",
    "Acos",
    "Acosh",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "Ceil",
    "Cos",
    "Cosh",
    "Exp",
    "Floor",
    "Log",
    "Neg",
    "Reciprocal",
    "Round",
    "Sign",
    "Sin",
    "Sinh",
    "Sqrt",
    "Tan",
    "Tanh",
    // Activations.
    "Celu",
    "Clip",
    "Elu",
    "LeakyRelu",
    "Relu",
    "Sigmoid",
    "Softplus",
    "Softsign",
    // Binary, broadcasting.
    "Add",
    "And",
    "Div",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "Less",
    "LessOrEqual",
    "Mod",
    "Mul",
    "Or",
    "PRelu",
    "Pow",
    "Sub",
    // Reductions.
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    // Convolution, pooling, normalisation, matrices.
    "AveragePool",
    "BatchNormalization",
    "Conv",
    "Gemm",
    "GlobalAveragePool",
    "MatMul",
    "MaxPool",
    "Softmax",
    // Data movement.
    "Cast",
    "Concat",
    "Gather",
    "OneHot",
    "Pad",
    "Resize",
    "Split",
    "Transpose",
    // Folded by the optimizer or aliased on the GPU.
    "Constant",
    "ConstantOfShape",
    "Dropout",
    "Flatten",
    "Identity",
    "Reshape",
    "Shape",
    "Size",
    "Squeeze",
    "Unsqueeze",
];

/// What to run when a model is refused: the rewriting script.
const DECOMPOSE_HINT: &str = "models-onnx/decompose_for_wonnx.py rewrites a model into one wonnx runs (static shapes, operators it has)";

/// Why a model cannot be loaded or run on wonnx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WonnxError {
    /// No WebGPU adapter: no Vulkan, Metal or DX12 driver.
    #[error(
        "no WebGPU adapter (Vulkan/Metal/DX12) found: install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers"
    )]
    NoAdapter,
    /// The file is missing, unreadable or not an ONNX model.
    #[error("{0}")]
    File(String),
    /// Operators wonnx does not have: `(operator, first node using it)`.
    #[error("{}", unsupported_ops_message(.0))]
    UnsupportedOps(Vec<(String, String)>),
    /// A graph input or output with a symbolic (dynamic) dimension.
    #[error(
        "{what} `{name}` has a symbolic dimension `{dim}` (dimension {index}): the wonnx backend needs static shapes; {DECOMPOSE_HINT} (--dim {dim}=SIZE)"
    )]
    SymbolicDim {
        /// `input` or `output`.
        what: &'static str,
        /// The input's or output's name.
        name: String,
        /// The dimension's name (`dim_param`), `?` when unnamed.
        dim: String,
        /// Its position.
        index: usize,
    },
    /// A value whose shape the model does not state.
    #[error(
        "value `{value}` (output of node `{node}`, {op}) has no static shape in the model's value_info: wonnx needs one for every value; {DECOMPOSE_HINT}"
    )]
    NoShape {
        /// The value.
        value: String,
        /// The node that computes it.
        node: String,
        /// That node's operator.
        op: String,
    },
    /// An element type wonnx cannot take.
    #[error("{what} `{name}` is {dtype}: the wonnx backend takes f32, i32, i64 and u8 tensors")]
    Dtype {
        /// `input` or `output`.
        what: &'static str,
        /// The port.
        name: String,
        /// The ONNX type's name.
        dtype: String,
    },
    /// wonnx refused or failed to compile the model.
    #[error("wonnx cannot compile it: {0}")]
    Compile(String),
    /// A run failed.
    #[error("{0}")]
    Run(String),
}

fn unsupported_ops_message(ops: &[(String, String)]) -> String {
    let list: Vec<String> = ops
        .iter()
        .map(|(op, node)| format!("`{op}` (node `{node}`)"))
        .collect();
    format!(
        "wonnx {WONNX_VERSION} has no operator {}; {DECOMPOSE_HINT}, or use `backend = ort`",
        list.join(", ")
    )
}

impl WonnxError {
    fn into_model_error(self, path: &Path) -> ModelError {
        let shown = path.display();
        match self {
            WonnxError::NoAdapter => ModelError::Runtime(self.to_string()),
            WonnxError::Run(m) => ModelError::Run(m),
            WonnxError::File(m) => ModelError::Load(m),
            other => ModelError::Load(format!("cannot load model {shown} on wonnx: {other}")),
        }
    }
}

/// A WebGPU adapter: its name and graphics API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// The adapter's name, e.g. `llvmpipe (LLVM 19.1.7, 256 bits)`.
    pub name: String,
    /// `Vulkan`, `Metal`, `Dx12`, `Gl`, ...
    pub backend: String,
    /// `Cpu`, `DiscreteGpu`, `IntegratedGpu`, ...
    pub device_type: String,
}

impl fmt::Display for AdapterInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.backend, self.device_type)
    }
}

/// The adapter wonnx will use (the same search it makes: `WGPU_BACKEND`
/// and `WGPU_ADAPTER_NAME` are honoured), or [`WonnxError::NoAdapter`].
/// Found once per process; never panics.
pub fn adapter() -> Result<AdapterInfo, WonnxError> {
    static FOUND: std::sync::OnceLock<Result<AdapterInfo, WonnxError>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            catch_unwind(|| {
                let backends =
                    wgpu::util::backend_bits_from_env().unwrap_or(wgpu::Backends::PRIMARY);
                let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                    backends,
                    dx12_shader_compiler: wgpu::Dx12Compiler::Fxc,
                });
                let adapter = pollster::block_on(
                    wgpu::util::initialize_adapter_from_env_or_default(&instance, backends, None),
                )?;
                let info = adapter.get_info();
                Some(AdapterInfo {
                    name: info.name,
                    backend: format!("{:?}", info.backend),
                    device_type: format!("{:?}", info.device_type),
                })
            })
            .ok()
            .flatten()
            .ok_or(WonnxError::NoAdapter)
        })
        .clone()
}

/// Loads ONNX models with wonnx (WebGPU). Stateless: each model owns its
/// GPU device and compiled shaders.
#[derive(Debug, Clone, Copy, Default)]
pub struct WonnxBackend;

impl WonnxBackend {
    /// A backend. Creating one is free; the adapter is found on the first load.
    pub fn new() -> Self {
        WonnxBackend
    }
}

impl Backend for WonnxBackend {
    fn load(&self, path: &Path, _options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        let model = WonnxModel::load(path).map_err(|e| e.into_model_error(path))?;
        Ok(LoadedModel {
            model: Arc::new(model),
            warnings: Vec::new(),
        })
    }
}

/// A model compiled for WebGPU by wonnx.
///
/// Runs of one model are serialised (one GPU queue per model).
pub struct WonnxModel {
    session: Mutex<wonnx::Session>,
    signature: ModelSignature,
}

impl fmt::Debug for WonnxModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WonnxModel")
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

/// Reads and parses an ONNX file.
fn read_model(path: &Path) -> Result<ModelProto, WonnxError> {
    use protobuf::Message;
    let shown = path.display();
    match wgraph_engine::input::check(path, wgraph_engine::input::MODEL) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(WonnxError::File(format!(
                "model file {shown} does not exist"
            )));
        }
        Err(e) => return Err(WonnxError::File(format!("model {shown}: {e}"))),
    }
    let bytes = std::fs::read(path)
        .map_err(|e| WonnxError::File(format!("cannot read model {shown}: {e}")))?;
    ModelProto::parse_from_bytes(&bytes).map_err(|e| {
        WonnxError::File(format!(
            "cannot load model {shown}: it is not an ONNX model ({e})"
        ))
    })
}

/// The engine's dtype of an ONNX element type wonnx takes.
fn dtype_of(elem_type: i32) -> Result<DType, String> {
    use protobuf::ProtobufEnum;
    match TensorProto_DataType::from_i32(elem_type) {
        Some(TensorProto_DataType::FLOAT) => Ok(DType::F32),
        Some(TensorProto_DataType::INT32) => Ok(DType::I32),
        Some(TensorProto_DataType::INT64) => Ok(DType::I64),
        Some(TensorProto_DataType::UINT8) => Ok(DType::U8),
        Some(other) => Err(format!("{other:?}").to_ascii_lowercase()),
        None => Err(format!("element type {elem_type}")),
    }
}

/// A graph input's or output's port: static dims and a dtype wonnx takes.
fn port(what: &'static str, vi: &ValueInfoProto) -> Result<ModelPort, WonnxError> {
    let name = vi.get_name().to_string();
    let Some(TypeProto_oneof_value::tensor_type(t)) = &vi.get_field_type().value else {
        return Err(WonnxError::Dtype {
            what,
            name,
            dtype: "not a tensor".into(),
        });
    };
    let dtype = dtype_of(t.get_elem_type()).map_err(|dtype| WonnxError::Dtype {
        what,
        name: name.clone(),
        dtype,
    })?;
    let mut shape = Vec::new();
    for (index, d) in t.get_shape().get_dim().iter().enumerate() {
        if d.has_dim_value() && d.get_dim_value() > 0 {
            let n = usize::try_from(d.get_dim_value()).map_err(|_| WonnxError::SymbolicDim {
                what,
                name: name.clone(),
                dim: d.get_dim_value().to_string(),
                index,
            })?;
            shape.push(Dim::Known(n));
        } else {
            let dim = if d.has_dim_param() && !d.get_dim_param().is_empty() {
                d.get_dim_param().to_string()
            } else {
                "?".to_string()
            };
            return Err(WonnxError::SymbolicDim {
                what,
                name,
                dim,
                index,
            });
        }
    }
    Ok(ModelPort {
        name,
        ty: TensorType { dtype, shape },
    })
}

/// Whether `vi` states a static tensor shape.
fn has_static_shape(vi: &ValueInfoProto) -> bool {
    match &vi.get_field_type().value {
        Some(TypeProto_oneof_value::tensor_type(t)) => {
            t.has_shape()
                && t.get_shape()
                    .get_dim()
                    .iter()
                    .all(|d| d.has_dim_value() && d.get_dim_value() > 0)
        }
        _ => false,
    }
}

/// Checks that wonnx can run `model` and returns its signature: every
/// operator in [`SUPPORTED_OPS`] (domain `ai.onnx`), static shapes and
/// supported dtypes on the graph's inputs and outputs, a static shape for
/// every intermediate value. Reads the graph only: no GPU needed.
pub fn check_model(model: &ModelProto) -> Result<ModelSignature, WonnxError> {
    let graph = model.get_graph();
    let mut unsupported: Vec<(String, String)> = Vec::new();
    for node in graph.get_node() {
        let domain = node.get_domain();
        let op = node.get_op_type();
        let known = (domain.is_empty() || domain == "ai.onnx") && SUPPORTED_OPS.contains(&op);
        if known {
            continue;
        }
        let op = if domain.is_empty() || domain == "ai.onnx" {
            op.to_string()
        } else {
            format!("{domain}:{op}")
        };
        if !unsupported.iter().any(|(o, _)| *o == op) {
            let name = if node.get_name().is_empty() {
                node.get_output().first().cloned().unwrap_or_default()
            } else {
                node.get_name().to_string()
            };
            unsupported.push((op, name));
        }
    }
    if !unsupported.is_empty() {
        return Err(WonnxError::UnsupportedOps(unsupported));
    }
    let initializers: std::collections::HashSet<&str> = graph
        .get_initializer()
        .iter()
        .map(|t| t.get_name())
        .collect();
    let inputs = graph
        .get_input()
        .iter()
        .filter(|vi| !initializers.contains(vi.get_name()))
        .map(|vi| port("input", vi))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = graph
        .get_output()
        .iter()
        .map(|vi| port("output", vi))
        .collect::<Result<Vec<_>, _>>()?;
    let mut shaped: std::collections::HashSet<&str> = graph
        .get_value_info()
        .iter()
        .filter(|vi| has_static_shape(vi))
        .map(|vi| vi.get_name())
        .collect();
    shaped.extend(graph.get_output().iter().map(|vi| vi.get_name()));
    for node in graph.get_node() {
        for value in node.get_output() {
            if !value.is_empty() && !shaped.contains(value.as_str()) {
                return Err(WonnxError::NoShape {
                    value: value.clone(),
                    node: node.get_name().to_string(),
                    op: node.get_op_type().to_string(),
                });
            }
        }
    }
    let metadata: BTreeMap<String, String> = model
        .get_metadata_props()
        .iter()
        .map(|p| (p.get_key().to_string(), p.get_value().to_string()))
        .collect();
    Ok(ModelSignature {
        inputs,
        outputs,
        metadata,
    })
}

/// A panic's message.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "wgpu panicked".to_string())
}

impl WonnxModel {
    /// Checks and compiles `path` (see the [crate docs](crate)).
    pub fn load(path: &Path) -> Result<WonnxModel, WonnxError> {
        let model = read_model(path)?;
        let signature = check_model(&model)?;
        adapter()?;
        let session = catch_unwind(AssertUnwindSafe(|| {
            pollster::block_on(wonnx::Session::from_model(model))
        }))
        .map_err(|p| WonnxError::Compile(panic_text(p.as_ref())))?
        .map_err(|e| WonnxError::Compile(e.to_string()))?;
        Ok(WonnxModel {
            session: Mutex::new(session),
            signature,
        })
    }

    fn check_inputs(&self, inputs: &[Tensor]) -> Result<(), ModelError> {
        self.signature.check_input_count(inputs)?;
        let ports = &self.signature.inputs;
        for (port, tensor) in ports.iter().zip(inputs) {
            if tensor.tensor_type() != port.ty {
                return Err(ModelError::Run(format!(
                    "input `{}` expects {}, got {} (the wonnx backend takes static shapes only)",
                    port.name,
                    port.ty,
                    tensor.tensor_type()
                )));
            }
        }
        Ok(())
    }
}

/// The shape of a port (all known: [`check_model`] refused the rest).
fn known_shape(port: &ModelPort) -> Vec<usize> {
    port.ty
        .shape
        .iter()
        .map(|d| match d {
            Dim::Known(n) => *n,
            Dim::Sym(_) => 0,
        })
        .collect()
}

fn to_tensor(port: &ModelPort, out: OutputTensor) -> Result<Tensor, String> {
    let shape = known_shape(port);
    let tensor = match (port.ty.dtype, out) {
        (DType::F32, OutputTensor::F32(v)) => Tensor::from_vec(&shape, v),
        (DType::I32, OutputTensor::I32(v)) => Tensor::from_vec(&shape, v),
        (DType::I64, OutputTensor::I64(v)) => Tensor::from_vec(&shape, v),
        // wonnx computes i64 as i32 on the GPU.
        (DType::I64, OutputTensor::I32(v)) => {
            Tensor::from_vec(&shape, v.into_iter().map(i64::from).collect::<Vec<_>>())
        }
        (DType::U8, OutputTensor::U8(v)) => Tensor::from_vec(&shape, v),
        (want, _) => {
            return Err(format!(
                "output `{}`: wonnx gave another type than {want}",
                port.name
            ));
        }
    };
    tensor.map_err(|e| format!("output `{}`: {e}", port.name))
}

impl Model for WonnxModel {
    fn signature(&self) -> &ModelSignature {
        &self.signature
    }
    /// wonnx is not one of ONNX Runtime's execution providers; tensors go in
    /// and come out in host memory, so the engine sees [`Provider::Cpu`].
    fn provider(&self) -> Provider {
        Provider::Cpu
    }
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        self.check_inputs(inputs)?;
        let mut feeds: HashMap<String, InputTensor<'_>> = HashMap::new();
        for (port, tensor) in self.signature.inputs.iter().zip(inputs) {
            let err = |e: wgraph_engine::tensor::TensorError| {
                ModelError::Run(format!("input `{}`: {e}", port.name))
            };
            let value = match port.ty.dtype {
                DType::F32 => InputTensor::F32(Cow::Borrowed(tensor.host_f32().map_err(err)?)),
                DType::I32 => {
                    InputTensor::I32(Cow::Borrowed(tensor.host_as::<i32>().map_err(err)?))
                }
                DType::I64 => {
                    InputTensor::I64(Cow::Borrowed(tensor.host_as::<i64>().map_err(err)?))
                }
                DType::U8 => InputTensor::U8(Cow::Borrowed(tensor.host_as::<u8>().map_err(err)?)),
                other => {
                    return Err(ModelError::Run(format!(
                        "input `{}`: the wonnx backend cannot take {other}",
                        port.name
                    )));
                }
            };
            feeds.insert(port.name.clone(), value);
        }
        let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let mut outputs =
            catch_unwind(AssertUnwindSafe(|| pollster::block_on(session.run(&feeds))))
                .map_err(|p| ModelError::Run(format!("wonnx failed: {}", panic_text(p.as_ref()))))?
                .map_err(|e| ModelError::Run(format!("wonnx failed: {e}")))?;
        drop(session);
        self.signature
            .outputs
            .iter()
            .map(|port| {
                let out = outputs.remove(&port.name).ok_or_else(|| {
                    ModelError::Run(format!("wonnx gave no output `{}`", port.name))
                })?;
                to_tensor(port, out).map_err(ModelError::Run)
            })
            .collect()
    }
}

/// Whether the wonnx backend can run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorReport {
    /// The adapter models would run on, or why there is none.
    pub adapter: Result<AdapterInfo, String>,
}

/// Gathers a [`DoctorReport`]. Never panics, never fails.
pub fn doctor() -> DoctorReport {
    DoctorReport {
        adapter: adapter().map_err(|e| e.to_string()),
    }
}

impl DoctorReport {
    /// The report as JSON: `{"usable": bool, "wonnx": "0.5.1", "adapter":
    /// {"name", "api", "device_type"} | null, "error": string | null}`.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.adapter {
            Ok(a) => serde_json::json!({
                "usable": true,
                "wonnx": WONNX_VERSION,
                "adapter": {"name": a.name, "api": a.backend, "device_type": a.device_type},
                "error": null,
            }),
            Err(e) => serde_json::json!({
                "usable": false,
                "wonnx": WONNX_VERSION,
                "adapter": null,
                "error": e,
            }),
        }
    }
}

impl fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.adapter {
            Ok(a) => writeln!(f, "wonnx backend: usable (wonnx {WONNX_VERSION}) on {a}"),
            Err(e) => writeln!(f, "wonnx backend: not usable: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wonnx::onnx::{
        NodeProto, StringStringEntryProto, TensorShapeProto, TensorShapeProto_Dimension, TypeProto,
        TypeProto_Tensor,
    };

    /// A tensor value: `dims` are sizes, or names for symbolic dimensions.
    fn value(name: &str, dims: &[&str]) -> ValueInfoProto {
        let mut shape = TensorShapeProto::new();
        for d in dims {
            let mut dim = TensorShapeProto_Dimension::new();
            match d.parse::<i64>() {
                Ok(n) => dim.set_dim_value(n),
                Err(_) => dim.set_dim_param(d.to_string()),
            }
            shape.mut_dim().push(dim);
        }
        let mut tensor = TypeProto_Tensor::new();
        tensor.set_elem_type(TensorProto_DataType::FLOAT as i32);
        tensor.set_shape(shape);
        let mut ty = TypeProto::new();
        ty.set_tensor_type(tensor);
        let mut vi = ValueInfoProto::new();
        vi.set_name(name.to_string());
        vi.set_field_type(ty);
        vi
    }

    /// `y = OP(x)` with `x` of `dims`, `y` of `[1, 4]`.
    fn model(op: &str, dims: &[&str]) -> ModelProto {
        let mut node = NodeProto::new();
        node.set_op_type(op.to_string());
        node.set_name(format!("/net/{op}"));
        node.mut_input().push("x".to_string());
        node.mut_output().push("y".to_string());
        let mut m = ModelProto::new();
        let g = m.mut_graph();
        g.mut_node().push(node);
        g.mut_input().push(value("x", dims));
        g.mut_output().push(value("y", &["1", "4"]));
        let mut meta = StringStringEntryProto::new();
        meta.set_key("wgraph.role".into());
        meta.set_value("denoiser".into());
        m.mut_metadata_props().push(meta);
        m
    }

    #[test]
    fn a_supported_static_model_gives_its_signature_and_metadata() {
        let sig = check_model(&model("Relu", &["1", "4"])).unwrap();
        assert_eq!(sig.inputs[0].ty.to_string(), "f32[1, 4]");
        assert_eq!(sig.outputs[0].name, "y");
        assert_eq!(sig.meta("wgraph.role"), Some("denoiser"));
    }

    #[test]
    fn refusals_name_the_operator_node_input_and_dimension() {
        let e = check_model(&model("LayerNormalization", &["1", "4"])).unwrap_err();
        assert_eq!(
            e.to_string().split(';').next().unwrap(),
            "wonnx 0.5.1 has no operator `LayerNormalization` (node `/net/LayerNormalization`)"
        );
        let e = check_model(&model("Relu", &["batch", "4"])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("input `x` has a symbolic dimension `batch` (dimension 0)"),
            "{e}"
        );
        // An intermediate value without a shape.
        let mut m = model("Relu", &["1", "4"]);
        let mut second = NodeProto::new();
        second.set_op_type("Relu".into());
        second.set_name("/net/second".into());
        second.mut_input().push("y".into());
        second.mut_output().push("z".into());
        m.mut_graph().mut_node().push(second);
        m.mut_graph().mut_output()[0] = value("z", &["1", "4"]);
        let e = check_model(&m).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("value `y` (output of node `/net/Relu`, Relu) has no static shape"),
            "{e}"
        );
        // A custom domain's operator is named with its domain.
        let mut m = model("FancyOp", &["1", "4"]);
        m.mut_graph().mut_node()[0].set_domain("com.example".into());
        let e = check_model(&m).unwrap_err();
        assert!(e.to_string().contains("`com.example:FancyOp`"), "{e}");
    }

    #[test]
    fn missing_and_non_onnx_files_are_load_errors_not_panics() {
        let dir = std::env::temp_dir().join(format!("wgraph-wonnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.onnx");
        let e = WonnxBackend::new()
            .load(&missing, &ModelOptions::default())
            .err()
            .unwrap();
        assert!(e.to_string().ends_with("does not exist"), "{e}");
        let junk = dir.join("junk.onnx");
        std::fs::write(&junk, b"\xff\xff\xff not protobuf").unwrap();
        let e = WonnxBackend::new()
            .load(&junk, &ModelOptions::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("it is not an ONNX model"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
