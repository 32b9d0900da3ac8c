//! Runs bound in place: ONNX Runtime's IoBinding, outputs that stay on the
//! device, and fixed-address buffers for CUDA graphs.
//!
//! [`BindPlan`] is decided when a model loads (from its provider and the
//! `io_binding` / `cuda_graph` options). [`run_bound`] then runs one call:
//!
//! - an input that is already an [`OrtDeviceValue`] (another model's
//!   output) is bound where it lies — no copy;
//! - a host input is bound as a view of its memory; on a GPU provider ONNX
//!   Runtime uploads it, and that upload is counted
//!   ([`wgraph_engine::transfers`]);
//! - outputs are bound to the plan's memory: the GPU (they come back as
//!   device tensors, [`OrtDeviceValue`]) or the host;
//! - with fixed buffers (`cuda_graph`), inputs are first copied into
//!   buffers allocated once, and outputs land in buffers allocated once, so
//!   every run sees the same addresses — what a captured CUDA graph needs.
//!   Results are copied out of the fixed outputs (device to device on a
//!   GPU), because the next run overwrites them.
//!
//! On the CPU provider the same code runs with host memory everywhere,
//! which is how the tests check it on machines without a GPU.

use crate::convert::to_tensor;
use crate::signature::describe;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::{DynTensor, DynValue};
use std::sync::Arc;
use wgraph_engine::model::ModelError;
use wgraph_engine::model::ModelSignature;
use wgraph_engine::tensor::{DType, Device, DeviceBuffer, HostData, Storage, Tensor, TensorError};
use wgraph_engine::transfers::{self, Direction};
use wgraph_engine::types::Dim;

/// How a model's runs bind their tensors, decided at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BindPlan {
    /// The CUDA device outputs stay on; `None`: outputs come to the host.
    pub output_device: Option<i32>,
    /// Whether the session runs on a GPU (so host inputs are uploads).
    pub on_gpu: bool,
    /// Fixed-address input and output buffers (CUDA graphs).
    pub fixed: bool,
}

/// A tensor in ONNX Runtime's device memory: one model's output, fed to the
/// next model as it is.
#[derive(Debug)]
pub struct OrtDeviceValue {
    value: DynValue,
    device_id: i32,
    dtype: DType,
    len: usize,
}

impl DeviceBuffer for OrtDeviceValue {
    fn device(&self) -> Device {
        Device::Gpu {
            api: "cuda",
            index: u32::try_from(self.device_id).unwrap_or(0),
        }
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
    fn download(&self) -> Result<HostData, TensorError> {
        let fail = |message: String| TensorError::Download {
            device: self.device(),
            message,
        };
        let host = self
            .value
            .view()
            .downcast::<ort::value::DynTensorValueType>()
            .map_err(|e| fail(e.to_string()))?
            .to(AllocationDevice::CPU, 0)
            .map_err(|e| fail(e.to_string()))?
            .into_dyn();
        let tensor = to_tensor("output", &host).map_err(|e| fail(e.to_string()))?;
        tensor.host().cloned()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Buffers allocated once for one set of input shapes, so every run with
/// those shapes binds the same addresses.
#[derive(Debug)]
struct FixedBuffers {
    inputs: Vec<DynTensor>,
    outputs: Vec<DynTensor>,
    input_shapes: Vec<Vec<usize>>,
}

/// The fixed buffers of a model, one set per input shape set it is run
/// with (a guided denoiser runs with one row and with two, say); on CUDA
/// each set is its own captured graph (`gpu_graph_id`). Bounded by
/// [`MAX_SHAPE_SETS`].
#[derive(Debug, Default)]
pub(crate) struct FixedSets {
    sets: Vec<FixedBuffers>,
}

/// Input shape sets one `cuda_graph` model may be run with.
pub(crate) const MAX_SHAPE_SETS: usize = 8;

fn run_error(e: impl std::fmt::Display) -> ModelError {
    ModelError::Run(format!("ONNX Runtime failed: {e}"))
}

fn memory(device: Option<i32>) -> Result<MemoryInfo<'static>, ModelError> {
    let (where_, id) = match device {
        Some(id) => (AllocationDevice::CUDA, id),
        None => (AllocationDevice::CPU, 0),
    };
    MemoryInfo::new(where_, id, AllocatorType::Device, MemoryType::Default)
        .map_err(|e| ModelError::Run(format!("cannot describe the output memory: {e}")))
}

fn ort_dtype(dtype: DType) -> ort::value::TensorElementType {
    use ort::value::TensorElementType as T;
    match dtype {
        DType::F32 => T::Float32,
        DType::F64 => T::Float64,
        DType::F16 => T::Float16,
        DType::I64 => T::Int64,
        DType::I32 => T::Int32,
        DType::I16 => T::Int16,
        DType::I8 => T::Int8,
        DType::U8 => T::Uint8,
        DType::U16 => T::Uint16,
        DType::U32 => T::Uint32,
        DType::Bool => T::Bool,
    }
}

/// The shape of output `port` for these input shapes: known dimensions as
/// they are, a named dimension as the input dimension of the same name.
fn output_shape(
    signature: &ModelSignature,
    output: usize,
    input_shapes: &[Vec<usize>],
) -> Result<Vec<usize>, ModelError> {
    let port = &signature.outputs[output];
    port.ty
        .shape
        .iter()
        .map(|dim| match dim {
            Dim::Known(n) => Ok(*n),
            d @ Dim::Sym(name) => signature
                .inputs
                .iter()
                .zip(input_shapes)
                .find_map(|(input, shape)| {
                    input
                        .ty
                        .shape
                        .iter()
                        .position(|i| !d.is_unnamed() && matches!(i, Dim::Sym(s) if s == name))
                        .and_then(|i| shape.get(i).copied())
                })
                .ok_or_else(|| {
                    ModelError::Run(format!(
                        "cuda_graph needs fixed output shapes, but output `{}` is {} and no input fixes `{d}`: export the model with static shapes",
                        port.name, port.ty
                    ))
                }),
        })
        .collect()
}

impl FixedSets {
    /// The index of the buffer set for these input shapes, allocated on
    /// first use.
    fn ensure(
        &mut self,
        session: &Session,
        signature: &ModelSignature,
        inputs: &[Tensor],
        device: Option<i32>,
    ) -> Result<usize, ModelError> {
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        if let Some(i) = self.sets.iter().position(|s| s.input_shapes == shapes) {
            return Ok(i);
        }
        if self.sets.len() >= MAX_SHAPE_SETS {
            let seen: Vec<String> = self
                .sets
                .iter()
                .map(|s| {
                    let dims: Vec<String> =
                        s.input_shapes.iter().map(|d| format!("{d:?}")).collect();
                    dims.join(" ")
                })
                .collect();
            return Err(ModelError::Run(format!(
                "cuda_graph needs fixed shapes, and this model has already been run with {MAX_SHAPE_SETS} input shape sets ({}); input `{}` is now {}: drop `cuda_graph` for a model whose shapes vary",
                seen.join("; "),
                signature.inputs.first().map_or("?", |p| p.name.as_str()),
                describe(
                    inputs.first().map_or(DType::F32, Tensor::dtype),
                    shapes.first().map_or(&[][..], |s| &s[..])
                )
            )));
        }
        self.sets.push(FixedBuffers::allocate(
            session, signature, inputs, shapes, device,
        )?);
        Ok(self.sets.len() - 1)
    }
}

impl FixedBuffers {
    fn allocate(
        session: &Session,
        signature: &ModelSignature,
        inputs: &[Tensor],
        shapes: Vec<Vec<usize>>,
        device: Option<i32>,
    ) -> Result<FixedBuffers, ModelError> {
        let allocator = match device {
            Some(_) => Allocator::new(session, memory(device)?)
                .map_err(|e| ModelError::Run(format!("cannot allocate on the GPU: {e}")))?,
            None => Allocator::default(),
        };
        let alloc = |dtype: DType, shape: &[usize], name: &str| {
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            DynTensor::new(&allocator, ort_dtype(dtype), dims).map_err(|e| {
                ModelError::Run(format!(
                    "cannot allocate the fixed buffer of `{name}` ({}): {e}",
                    describe(dtype, shape)
                ))
            })
        };
        let mut ins = Vec::with_capacity(inputs.len());
        for (port, t) in signature.inputs.iter().zip(inputs) {
            ins.push(alloc(t.dtype(), t.shape(), &port.name)?);
        }
        let mut outs = Vec::with_capacity(signature.outputs.len());
        for (i, port) in signature.outputs.iter().enumerate() {
            let shape = output_shape(signature, i, &shapes)?;
            outs.push(alloc(port.ty.dtype, &shape, &port.name)?);
        }
        Ok(FixedBuffers {
            inputs: ins,
            outputs: outs,
            input_shapes: shapes,
        })
    }
}

/// A host tensor as an ONNX Runtime value that owns a copy of the
/// elements. (A borrowed view would do without the copy, but ort 2.0.0-rc.15
/// clones borrowed inputs at `bind_input` through an identity session that
/// deadlocks on its own lock; an owned value is bound as it is.)
fn host_value(tensor: &Tensor) -> Result<DynValue, ModelError> {
    let shape: Vec<i64> = tensor.shape().iter().map(|&d| d as i64).collect();
    let host = tensor.host().map_err(|e| ModelError::Run(e.to_string()))?;
    wgraph_engine::with_host_data!(
        host,
        d => ort::value::Tensor::from_array((shape, d.to_vec())).map(|v| v.into_dyn())
    )
    .map_err(|e| ModelError::Run(e.to_string()))
}

/// An ONNX Runtime output as an engine tensor: a device tensor when it is
/// in GPU memory, else a host copy.
fn output_tensor(name: &str, value: DynValue, device_id: i32) -> Result<Tensor, ModelError> {
    let info = value
        .view()
        .downcast::<ort::value::DynTensorValueType>()
        .map(|t| t.memory_info().is_cpu_accessible())
        .map_err(|e| ModelError::Run(format!("output `{name}`: {e}")))?;
    if info {
        return to_tensor(name, &value);
    }
    let ort::value::ValueType::Tensor { ty, shape, .. } = value.dtype().clone() else {
        return Err(ModelError::Run(format!("output `{name}` is not a tensor")));
    };
    let dtype = crate::signature::dtype_of(ty)
        .ok_or_else(|| ModelError::Run(format!("output `{name}` has unsupported dtype {ty}")))?;
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                ModelError::Run(format!("output `{name}` has a negative dimension {d}"))
            })
        })
        .collect::<Result<_, _>>()?;
    let len = dims.iter().product();
    let buffer = OrtDeviceValue {
        value,
        device_id,
        dtype,
        len,
    };
    Tensor::from_device(&dims, Arc::new(buffer)).map_err(|e| ModelError::Run(e.to_string()))
}

/// Runs one call bound in place (see the module docs).
pub(crate) fn run_bound(
    session: &mut Session,
    fixed: &mut FixedSets,
    signature: &ModelSignature,
    inputs: &[Tensor],
    plan: BindPlan,
) -> Result<Vec<Tensor>, ModelError> {
    // Device tensors of other owners, or any device tensor given to a
    // session on the CPU, come home first (counted).
    let mut owned: Vec<Tensor> = Vec::with_capacity(inputs.len());
    for t in inputs {
        let foreign = match t.storage() {
            Storage::Device(d) => {
                !plan.on_gpu || d.0.as_any().downcast_ref::<OrtDeviceValue>().is_none()
            }
            _ => false,
        };
        owned.push(if foreign {
            t.to_host().map_err(|e| ModelError::Run(e.to_string()))?
        } else {
            t.clone()
        });
    }
    // Host inputs as ONNX Runtime values.
    let mut views: Vec<Option<DynValue>> = Vec::with_capacity(owned.len());
    for t in &owned {
        views.push(if t.is_host() {
            Some(host_value(t)?)
        } else {
            None
        });
    }
    let mut binding = session.create_binding().map_err(run_error)?;
    let set = if plan.fixed {
        Some(fixed.ensure(session, signature, &owned, plan.output_device)?)
    } else {
        None
    };
    let mut fixed = set.and_then(|i| fixed.sets.get_mut(i));
    for (i, (port, t)) in signature.inputs.iter().zip(&owned).enumerate() {
        let value: &DynValue = match (&views[i], t.storage()) {
            (Some(view), _) => view,
            (None, Storage::Device(d)) => match d.0.as_any().downcast_ref::<OrtDeviceValue>() {
                Some(v) => &v.value,
                None => {
                    return Err(ModelError::Run(format!(
                        "input `{}`: unknown device memory",
                        port.name
                    )));
                }
            },
            (None, _) => return Err(ModelError::Run(format!("input `{}`: no data", port.name))),
        };
        if t.is_host() && plan.on_gpu {
            transfers::record(Direction::HostToDevice, t.byte_len());
        }
        if let Some(fixed) = fixed.as_deref_mut() {
            let target = &mut fixed.inputs[i];
            value
                .view()
                .downcast::<ort::value::DynTensorValueType>()
                .map_err(|e| ModelError::Run(format!("input `{}`: {e}", port.name)))?
                .copy_into(target.view_mut())
                .map_err(|e| {
                    ModelError::Run(format!(
                        "input `{}`: cannot copy into its fixed buffer: {e}",
                        port.name
                    ))
                })?;
            binding
                .bind_input(&port.name, &fixed.inputs[i])
                .map_err(run_error)?;
        } else {
            binding.bind_input(&port.name, value).map_err(run_error)?;
        }
    }
    let out_memory = memory(plan.output_device)?;
    for (i, port) in signature.outputs.iter().enumerate() {
        if let Some(fixed) = fixed.as_deref_mut() {
            binding
                .bind_output(&port.name, fixed.outputs[i].view_mut())
                .map_err(run_error)?;
        } else {
            binding
                .bind_output_to_device(&port.name, &out_memory)
                .map_err(run_error)?;
        }
    }
    let mut outputs = match set {
        // One captured CUDA graph per shape set.
        Some(id) if plan.on_gpu => {
            let mut options = ort::session::RunOptions::new().map_err(run_error)?;
            options
                .set("gpu_graph_id", id.to_string())
                .map_err(run_error)?;
            session
                .run_binding_with_options(&binding, &options)
                .map_err(run_error)?
        }
        _ => session.run_binding(&binding).map_err(run_error)?,
    };
    let device_id = plan.output_device.unwrap_or(0);
    let mut result = Vec::with_capacity(signature.outputs.len());
    for (i, port) in signature.outputs.iter().enumerate() {
        let tensor = if let Some(fixed) = fixed.as_deref() {
            // The next run overwrites the fixed buffer: copy the result out.
            let buffer = &fixed.outputs[i];
            match plan.output_device {
                Some(id) => {
                    let copy = buffer
                        .to(AllocationDevice::CUDA, id)
                        .map_err(|e| ModelError::Run(format!("output `{}`: {e}", port.name)))?;
                    output_tensor(&port.name, copy.into_dyn(), device_id)?
                }
                None => to_tensor(&port.name, &buffer.view().into_dyn())?,
            }
        } else {
            let value = outputs.remove(&port.name).ok_or_else(|| {
                ModelError::Run(format!("ONNX Runtime returned no output `{}`", port.name))
            })?;
            output_tensor(&port.name, value, device_id)?
        };
        if tensor.is_host() && plan.on_gpu && plan.output_device.is_none() {
            transfers::record(Direction::DeviceToHost, tensor.byte_len());
        }
        result.push(tensor);
    }
    drop(outputs);
    drop(binding);
    drop(views);
    Ok(result)
}
