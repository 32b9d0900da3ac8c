//! A server's model as the graph sees it: [`signature_of`] merges the
//! server's metadata with the local `.onnx` file (its dimension names, its
//! `wgraph.*` metadata) and lists every difference between the two copies;
//! [`Reshapes`] are the `config.pbtxt` reshapes a call must undo.

use crate::{dtype_of_triton, onnx, proto, triton_dtype};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use wgraph_engine::model::{ModelPort, ModelSignature};
use wgraph_engine::types::{Dim, TensorType};

/// A port whose `config.pbtxt` has a `reshape` (how a rank-1 batched input
/// like a timestep `[batch]` is served: `dims: [1]`, `reshape: { shape: [] }`):
/// it travels in the config's `dims` and the model sees the reshape.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reshapes {
    /// The model has a batch axis (`max_batch_size > 0`).
    pub(crate) batch: bool,
    /// The server's `max_batch_size` (0: no batch axis): a call of more
    /// rows is sent in parts of at most this many.
    pub(crate) max_batch: usize,
    /// Per input: the `dims` it is sent with, when reshaped.
    pub(crate) inputs: Vec<Option<Vec<i64>>>,
    /// Per output name: the reshape's shape, when reshaped.
    pub(crate) outputs: HashMap<String, Vec<i64>>,
}

impl Reshapes {
    /// Rewrites `metadata`'s shapes to what the model sees, and remembers
    /// how each reshaped port travels.
    pub(crate) fn apply(
        metadata: &mut proto::ModelMetadataResponse,
        config: Option<&proto::ModelConfig>,
    ) -> Reshapes {
        let Some(config) = config else {
            return Reshapes {
                inputs: vec![None; metadata.inputs.len()],
                ..Reshapes::default()
            };
        };
        let batch = config.max_batch_size > 0;
        let prefix: &[i64] = if batch { &[-1] } else { &[] };
        let mut r = Reshapes {
            batch,
            max_batch: usize::try_from(config.max_batch_size.max(0)).unwrap_or(0),
            ..Reshapes::default()
        };
        for t in &mut metadata.inputs {
            let reshaped = config
                .input
                .iter()
                .find(|i| i.name == t.name)
                .and_then(|i| {
                    i.reshape
                        .as_ref()
                        .map(|re| (i.dims.clone(), re.shape.clone()))
                });
            r.inputs.push(reshaped.map(|(dims, shape)| {
                t.shape = [prefix, &shape].concat();
                dims
            }));
        }
        for t in &mut metadata.outputs {
            if let Some(re) = config
                .output
                .iter()
                .find(|o| o.name == t.name)
                .and_then(|o| o.reshape.as_ref())
            {
                t.shape = [prefix, &re.shape].concat();
                r.outputs.insert(t.name.clone(), re.shape.clone());
            }
        }
        r
    }
}

pub(crate) fn show_server_shape(dims: &[i64]) -> String {
    let d: Vec<String> = dims
        .iter()
        .map(|&d| {
            if d < 0 {
                "-1".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", d.join(", "))
}

fn show_local_shape(dims: &[onnx::LocalDim]) -> String {
    let d: Vec<String> = dims
        .iter()
        .map(|d| match d {
            onnx::LocalDim::Known(n) => n.to_string(),
            onnx::LocalDim::Sym(Some(s)) => s.clone(),
            onnx::LocalDim::Sym(None) => "?".to_string(),
        })
        .collect();
    format!("[{}]", d.join(", "))
}

/// The model's signature from the server's metadata, with the local file's
/// dimension names where the server says `-1`, and the server's `wgraph.*`
/// config parameters over the local file's metadata. Every difference
/// between the two copies is listed in the one error.
pub(crate) fn signature_of(
    metadata: &proto::ModelMetadataResponse,
    config: Option<&proto::ModelConfig>,
    local: Option<&onnx::LocalModel>,
    path: &Path,
) -> Result<(ModelSignature, Vec<Vec<i64>>), String> {
    let mut problems = Vec::new();
    let mut port = |kind: &str, t: &proto::model_metadata_response::TensorMetadata| {
        let Some(dtype) = dtype_of_triton(&t.datatype) else {
            problems.push(format!(
                "{kind} `{}` has datatype {}, which wgraph does not support",
                t.name, t.datatype
            ));
            return None;
        };
        let local_port = local.and_then(|l| l.port(&t.name));
        if let Some(l) = local
            && !l.inputs.is_empty()
            && local_port.is_none()
        {
            problems.push(format!(
                "{kind} `{}` of the server's model is not in {}",
                t.name,
                path.display()
            ));
        }
        if let Some(lp) = local_port {
            let same_rank = lp.dims.len() == t.shape.len();
            let fixed_differs = same_rank
                && lp.dims.iter().zip(&t.shape).any(|(l, &s)| {
                    matches!(l, onnx::LocalDim::Known(n) if s >= 0 && usize::try_from(s).ok() != Some(*n))
                });
            if lp.dtype != Some(dtype) || !same_rank || fixed_differs {
                problems.push(format!(
                    "{kind} `{}` is {}{} on the server but {}{} in {}",
                    t.name,
                    t.datatype,
                    show_server_shape(&t.shape),
                    lp.dtype.map(triton_dtype).unwrap_or("an unsupported type"),
                    show_local_shape(&lp.dims),
                    path.display()
                ));
            }
        }
        let shape = t
            .shape
            .iter()
            .enumerate()
            .map(|(i, &s)| match usize::try_from(s) {
                Ok(n) => Dim::Known(n),
                Err(_) => match local_port.and_then(|p| p.dims.get(i)) {
                    Some(onnx::LocalDim::Known(n)) => Dim::Known(*n),
                    Some(onnx::LocalDim::Sym(Some(sym))) => Dim::Sym(sym.clone()),
                    _ => Dim::unnamed(&format!("{kind} {}", t.name), i),
                },
            })
            .collect();
        Some(ModelPort {
            name: t.name.clone(),
            ty: TensorType { dtype, shape },
        })
    };
    let inputs: Vec<ModelPort> = metadata
        .inputs
        .iter()
        .filter_map(|t| port("input", t))
        .collect();
    let outputs: Vec<ModelPort> = metadata
        .outputs
        .iter()
        .filter_map(|t| port("output", t))
        .collect();
    if let Some(l) = local {
        for lp in &l.inputs {
            if !metadata.inputs.iter().any(|t| t.name == lp.name) {
                problems.push(format!(
                    "input `{}` of {} is not an input of the server's model",
                    lp.name,
                    path.display()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "the server's model differs from the local file: {}",
            problems.join("; ")
        ));
    }
    let mut meta: BTreeMap<String, String> = local.map(|l| l.metadata.clone()).unwrap_or_default();
    if let Some(c) = config {
        for (k, v) in &c.parameters {
            if k.starts_with("wgraph.") {
                meta.insert(k.clone(), v.string_value.clone());
            }
        }
    }
    let input_dims = metadata.inputs.iter().map(|t| t.shape.clone()).collect();
    Ok((
        ModelSignature {
            inputs,
            outputs,
            metadata: meta,
        },
        input_dims,
    ))
}
