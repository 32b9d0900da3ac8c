//! Model signatures: ONNX element types to engine dtypes, session inputs
//! and outputs to [`ModelSignature`] ports (symbolic dimensions, metadata),
//! and the check of a run's inputs against them.

use crate::OrtModel;
use ort::session::Session;
use ort::value::{TensorElementType, ValueType};
use std::collections::BTreeMap;
use std::path::Path;
use wgraph_engine::model::{ModelError, ModelPort, ModelSignature};
use wgraph_engine::tensor::{DType, Tensor};
use wgraph_engine::types::{Dim, TensorType};

/// Maps an ONNX element type to a wgraph dtype.
pub(crate) fn dtype_of(ty: TensorElementType) -> Option<DType> {
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

pub(crate) fn signature_of(session: &Session, path: &Path) -> Result<ModelSignature, ModelError> {
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
pub(crate) fn describe(dtype: DType, shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("{dtype}[{}]", dims.join(", "))
}

impl OrtModel {
    /// Checks inputs against the signature: count, dtype, rank, every known
    /// dimension, and that a named dimension has one size across inputs.
    pub(crate) fn check_inputs(&self, inputs: &[Tensor]) -> Result<(), ModelError> {
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
