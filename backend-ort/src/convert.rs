//! Value conversion between ONNX Runtime and engine tensors: session
//! outputs copied into [`Tensor`]s, shapes as ONNX Runtime's `i64`s.

use crate::signature::dtype_of;
use ort::value::{DynValue, PrimitiveTensorElementType, ValueType};
use wgraph_engine::model::ModelError;
use wgraph_engine::tensor::{DType, Element, Tensor, f16};

/// Copies one session output into an engine tensor.
pub(crate) fn to_tensor(name: &str, value: &DynValue) -> Result<Tensor, ModelError> {
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

pub(crate) fn as_i64_shape(shape: &[usize]) -> Result<Vec<i64>, ModelError> {
    shape
        .iter()
        .map(|&d| {
            i64::try_from(d).map_err(|_| ModelError::Run(format!("dimension {d} is too large")))
        })
        .collect()
}
