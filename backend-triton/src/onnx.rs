//! What the Triton backend reads from the graph's local `.onnx` file: the
//! `wgraph.*` contract metadata (`metadata_props`) and the ports' element
//! types and dimensions (their symbolic names, which a Triton server
//! reports only as `-1`).
//!
//! A few hand-written prost messages with just the fields needed (ONNX's
//! field numbers); every other field of the file is skipped by prost, so no
//! `onnx.proto` is vendored. [`LocalModel::read`] also serves
//! `wgraph triton-repo`, which writes a `config.pbtxt` from the same ports.

use std::collections::BTreeMap;
use std::path::Path;
use wgraph_engine::tensor::DType;

#[derive(Clone, PartialEq, prost::Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StringStringEntry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorName>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfo>,
}

/// A `TensorProto` with only its name (an initializer listed among the inputs).
#[derive(Clone, PartialEq, prost::Message)]
struct TensorName {
    #[prost(string, tag = "8")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ValueInfo {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<ShapeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<DimProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DimProto {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    dim_param: Option<String>,
}

/// One dimension of a local port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalDim {
    /// A fixed size.
    Known(usize),
    /// A symbolic dimension (`batch`); `None` when the file leaves it unnamed.
    Sym(Option<String>),
}

/// A port of the local file: name, element type (`None`: one wgraph has
/// no dtype for), dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPort {
    pub name: String,
    pub dtype: Option<DType>,
    pub dims: Vec<LocalDim>,
}

/// What the local `.onnx` file says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalModel {
    /// The graph's inputs (initializers listed as inputs left out).
    pub inputs: Vec<LocalPort>,
    pub outputs: Vec<LocalPort>,
    /// `metadata_props`.
    pub metadata: BTreeMap<String, String>,
}

/// The wgraph dtype of an ONNX `TensorProto.DataType`.
pub fn dtype_of_onnx(elem: i32) -> Option<DType> {
    Some(match elem {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        10 => DType::F16,
        11 => DType::F64,
        12 => DType::U32,
        _ => return None,
    })
}

impl LocalModel {
    /// Reads `path` (an ONNX model; its external data is not read).
    pub fn read(path: &Path) -> Result<LocalModel, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::decode(&bytes).map_err(|e| format!("{} is not an ONNX model: {e}", path.display()))
    }

    /// Decodes an ONNX `ModelProto`.
    pub fn decode(bytes: &[u8]) -> Result<LocalModel, String> {
        let model = <ModelProto as prost::Message>::decode(bytes).map_err(|e| e.to_string())?;
        let graph = model.graph.unwrap_or_default();
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let port = |v: &ValueInfo| {
            let tensor = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
            LocalPort {
                name: v.name.clone(),
                dtype: tensor.and_then(|t| dtype_of_onnx(t.elem_type)),
                dims: tensor
                    .and_then(|t| t.shape.as_ref())
                    .map(|s| {
                        s.dim
                            .iter()
                            .map(|d| match (d.dim_value, &d.dim_param) {
                                (Some(v), _) if v >= 0 => {
                                    LocalDim::Known(usize::try_from(v).unwrap_or(usize::MAX))
                                }
                                (_, Some(p)) if !p.is_empty() => LocalDim::Sym(Some(p.clone())),
                                _ => LocalDim::Sym(None),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        };
        Ok(LocalModel {
            inputs: graph
                .input
                .iter()
                .filter(|v| !initializers.contains(&v.name.as_str()))
                .map(port)
                .collect(),
            outputs: graph.output.iter().map(port).collect(),
            metadata: model
                .metadata_props
                .into_iter()
                .map(|e| (e.key, e.value))
                .collect(),
        })
    }

    /// The input or output called `name`.
    pub fn port(&self, name: &str) -> Option<&LocalPort> {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .find(|p| p.name == name)
    }
}
