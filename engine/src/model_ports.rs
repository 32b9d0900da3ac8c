//! A model's ports as its role names them: what lets an export run
//! unedited.
//!
//! The `model` declaration may map a role's port names onto the file's
//! (`inputs = { x = "sample", t = "timestep" }`, `outputs = { epsilon =
//! "noise_pred" }`); the mapping reaches the model as metadata entries
//! `wgraph.input.ROLE_NAME = FILE_NAME` / `wgraph.output.…` (so it is part of
//! the model's identity, like the rest of the graph's metadata: see
//! [`crate::model::with_metadata`]). For the roles a sampler calls
//! (`denoiser`, `controlnet`) the engine also adapts the timestep `t`:
//!
//! - its dtype: the samplers give f32; a file's i64 or i32 (rounded to the
//!   nearest integer), f16 or f64 timestep is converted on each call;
//! - its shape: a scalar, `[1]` or `[batch]` file timestep is seen as
//!   `[batch]` (one per row of `x`);
//! - a fixed batch of one (every port's first axis 1, as exports without
//!   `dynamic_axes` come): the model is seen with a free batch axis and a
//!   call of n rows (a window of frames, stacked guidance passes) runs row by
//!   row, as `max_batch = 1` would. A scalar timestep with several rows of
//!   `x` runs row by row too.
//!
//! What cannot be adapted is an [`AdaptError`] at `check`, naming the
//! mapping entry it is about.

use crate::model::{Model, ModelError, ModelPort, ModelSignature};
use crate::tensor::{DType, HostData, Tensor};
use crate::types::{Dim, TensorType};
use std::collections::BTreeMap;

/// Metadata key prefix of an input mapping (`wgraph.input.x = sample`).
pub const INPUT_PREFIX: &str = "wgraph.input.";
/// Metadata key prefix of an output mapping.
pub const OUTPUT_PREFIX: &str = "wgraph.output.";

/// The roles whose `x`/`t` ports the engine adapts.
const CALLED_ROLES: [&str; 2] = ["denoiser", "controlnet"];

/// Why a model's ports cannot be adapted as declared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AdaptError {
    /// The mapping entry it is about (`inputs.t`, `outputs.epsilon`), or
    /// `None` for the declaration as a whole.
    pub entry: Option<(Side, String)>,
    pub message: String,
    /// What to write instead, when there is something to say.
    pub help: Option<String>,
}

/// Which record of the declaration an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Inputs,
    Outputs,
}

impl Side {
    pub fn param(self) -> &'static str {
        match self {
            Side::Inputs => "inputs",
            Side::Outputs => "outputs",
        }
    }
}

/// How the timestep is converted on each call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TimeConversion {
    index: usize,
    dtype: DType,
    scalar: bool,
}

/// The adaptation of one model: presented signature plus what `run` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adaptation {
    signature: ModelSignature,
    time: Option<TimeConversion>,
    /// Index of `x` (the input whose rows a call has).
    x: Option<usize>,
    /// Run a call of several rows row by row.
    per_row: bool,
    /// The file's own port shapes, to map `prepare`'s shapes back.
    file_inputs: Vec<ModelPort>,
}

fn names(ports: &[ModelPort]) -> String {
    ports
        .iter()
        .map(|p| format!("`{}`", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renames `ports` by `mapping` (role name → file name).
fn rename(
    ports: &[ModelPort],
    mapping: &[(String, String)],
    side: Side,
) -> Result<Vec<ModelPort>, AdaptError> {
    let what = match side {
        Side::Inputs => "input",
        Side::Outputs => "output",
    };
    let mut out = ports.to_vec();
    for (k, (role, file)) in mapping.iter().enumerate() {
        let entry = Some((side, role.clone()));
        let Some(i) = ports.iter().position(|p| &p.name == file) else {
            return Err(AdaptError {
                entry,
                message: format!(
                    "`{}.{role}` maps to `{file}`, but the file has no {what} `{file}` (its {what}s: {})",
                    side.param(),
                    names(ports)
                ),
                help: None,
            });
        };
        if let Some((other, _)) = mapping[..k].iter().find(|(_, f)| f == file) {
            return Err(AdaptError {
                entry,
                message: format!(
                    "`{}.{role}` maps to `{file}`, which `{}.{other}` already maps to",
                    side.param(),
                    side.param()
                ),
                help: None,
            });
        }
        // A role name that the file already uses for another, unmapped port.
        if let Some(clash) = ports.iter().position(|p| &p.name == role)
            && clash != i
            && !mapping.iter().any(|(_, f)| f == role)
        {
            return Err(AdaptError {
                entry,
                message: format!(
                    "`{}.{role}` would give two {what}s the name `{role}`: the file has an {what} `{role}` of its own",
                    side.param()
                ),
                help: Some(format!(
                    "map the file's `{role}` to another name as well, or leave `{role}` unmapped"
                )),
            });
        }
        out[i].name = role.clone();
    }
    Ok(out)
}

/// The mapping entries of `overrides` with `prefix`, in key order.
fn mapping(overrides: &BTreeMap<String, String>, prefix: &str) -> Vec<(String, String)> {
    overrides
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
        .collect()
}

/// The adaptation `model`'s file `signature` needs under the graph's
/// metadata `overrides` (port mappings included); `None` when it is seen
/// as it is.
pub fn adaptation(
    signature: &ModelSignature,
    overrides: &BTreeMap<String, String>,
) -> Result<Option<Adaptation>, AdaptError> {
    let ins = mapping(overrides, INPUT_PREFIX);
    let outs = mapping(overrides, OUTPUT_PREFIX);
    let mut sig = signature.clone();
    sig.metadata
        .extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    sig.inputs = rename(&signature.inputs, &ins, Side::Inputs)?;
    sig.outputs = rename(&signature.outputs, &outs, Side::Outputs)?;
    let role = sig.meta("wgraph.role").unwrap_or("").to_string();
    let mut time = None;
    let mut per_row = false;
    let mut x = None;
    if CALLED_ROLES.contains(&role.as_str()) {
        let entry = |name: &str| {
            ins.iter()
                .any(|(r, _)| r == name)
                .then(|| (Side::Inputs, name.to_string()))
        };
        // The ports a sampler calls must exist under the role's names.
        for need in ["x", "t"] {
            if sig.input(need).is_none() {
                let file_names = names(&signature.inputs);
                return Err(AdaptError {
                    entry: None,
                    message: format!(
                        "a {role} takes inputs `x` and `t`, and this model has no `{need}` (the file's inputs: {file_names})"
                    ),
                    help: Some(format!(
                        "map the file's names onto the role's in the declaration: `inputs = {{ x = \"…\", t = \"…\" }}` with names from {file_names}"
                    )),
                });
            }
        }
        let (xi, xp) = sig
            .input("x")
            .map(|(i, p)| (i, p.clone()))
            .ok_or_else(|| AdaptError {
                entry: None,
                message: "internal: no x".into(),
                help: None,
            })?;
        let (ti, tp) = sig
            .input("t")
            .map(|(i, p)| (i, p.clone()))
            .ok_or_else(|| AdaptError {
                entry: None,
                message: "internal: no t".into(),
                help: None,
            })?;
        x = Some(xi);
        let tname = &signature.inputs[ti].name;
        if !matches!(
            tp.ty.dtype,
            DType::F32 | DType::F64 | DType::F16 | DType::I64 | DType::I32
        ) {
            return Err(AdaptError {
                entry: entry("t"),
                message: format!(
                    "the timestep input `{tname}` is {}: wgraph converts its f32 timesteps to f32, f64, f16, i64 or i32 only",
                    tp.ty
                ),
                help: None,
            });
        }
        if tp.ty.shape.len() > 1 {
            return Err(AdaptError {
                entry: entry("t"),
                message: format!(
                    "the timestep input `{tname}` is {}: a timestep is a scalar, [1] or [batch]",
                    tp.ty
                ),
                help: None,
            });
        }
        let scalar = tp.ty.shape.is_empty();
        let first = |p: &ModelPort| p.ty.shape.first().cloned();
        // A fixed batch of one: every port of rank ≥ 1 has a first axis of 1.
        per_row = first(&xp) == Some(Dim::Known(1))
            && sig
                .inputs
                .iter()
                .chain(&sig.outputs)
                .filter(|p| !p.ty.shape.is_empty())
                .all(|p| first(p) == Some(Dim::Known(1)));
        let batch = if per_row {
            Dim::Sym("batch".into())
        } else {
            match first(&xp) {
                Some(d) => d,
                None => Dim::Known(1),
            }
        };
        if per_row {
            for p in sig.inputs.iter_mut().chain(sig.outputs.iter_mut()) {
                if let Some(d) = p.ty.shape.first_mut() {
                    *d = batch.clone();
                }
            }
        }
        let presented = TensorType {
            dtype: DType::F32,
            shape: if scalar {
                vec![batch]
            } else {
                sig.inputs[ti].ty.shape.clone()
            },
        };
        if presented != sig.inputs[ti].ty || tp.ty.dtype != DType::F32 {
            time = Some(TimeConversion {
                index: ti,
                dtype: tp.ty.dtype,
                scalar,
            });
        }
        sig.inputs[ti].ty = presented;
        // A scalar timestep serves one row at a time.
        per_row |= scalar;
    }
    if ins.is_empty() && outs.is_empty() && time.is_none() && !per_row {
        return Ok(None);
    }
    Ok(Some(Adaptation {
        signature: sig,
        time,
        x,
        per_row,
        file_inputs: signature.inputs.clone(),
    }))
}

/// True when `model` needs a wrapper for `overrides`: metadata to add, or
/// ports to adapt (an adaptation that fails is left to `check` to report).
pub fn needs_wrapper(signature: &ModelSignature, overrides: &BTreeMap<String, String>) -> bool {
    !overrides.is_empty() || !matches!(adaptation(signature, overrides), Ok(None))
}

impl Adaptation {
    pub fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    /// The timestep as the file takes it.
    fn timestep(&self, t: &Tensor, conv: &TimeConversion) -> Result<Tensor, ModelError> {
        let HostData::F32(values) = t.host().map_err(|e| ModelError::Run(e.to_string()))? else {
            return Err(ModelError::Run(format!(
                "the timestep is {}, expected f32",
                t.tensor_type()
            )));
        };
        let shape: Vec<usize> = if conv.scalar {
            if values.len() != 1 {
                return Err(ModelError::Run(format!(
                    "the model takes one scalar timestep, got {} values",
                    values.len()
                )));
            }
            vec![]
        } else {
            t.shape().to_vec()
        };
        let round = |v: f32| -> Result<f64, ModelError> {
            if v.is_finite() {
                Ok(f64::from(v).round())
            } else {
                Err(ModelError::Run(format!("timestep {v} is not finite")))
            }
        };
        let data = match conv.dtype {
            DType::F32 => HostData::F32(values.clone()),
            DType::F64 => HostData::F64(values.iter().map(|&v| f64::from(v)).collect()),
            DType::F16 => HostData::F16(values.iter().map(|&v| half::f16::from_f32(v)).collect()),
            DType::I64 => HostData::I64(
                values
                    .iter()
                    .map(|&v| round(v).map(|r| r as i64))
                    .collect::<Result<_, _>>()?,
            ),
            DType::I32 => HostData::I32(
                values
                    .iter()
                    .map(|&v| round(v).map(|r| r as i32))
                    .collect::<Result<_, _>>()?,
            ),
            other => {
                return Err(ModelError::Run(format!(
                    "internal: timestep dtype {other:?}"
                )));
            }
        };
        Tensor::from_host(&shape, data).map_err(|e| ModelError::Run(e.to_string()))
    }

    /// The rows of a call (`x`'s first axis).
    fn rows(&self, inputs: &[Tensor]) -> usize {
        self.x
            .and_then(|i| inputs.get(i))
            .and_then(|x| x.shape().first().copied())
            .unwrap_or(1)
    }

    /// One call, converted for the file.
    fn run_once(&self, inner: &dyn Model, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        match &self.time {
            Some(conv) => {
                let mut converted = inputs.to_vec();
                let t = inputs
                    .get(conv.index)
                    .ok_or_else(|| ModelError::Run("missing timestep input".into()))?;
                converted[conv.index] = self.timestep(t, conv)?;
                inner.run(&converted)
            }
            None => inner.run(inputs),
        }
    }

    /// Runs `inner` (the file's model) on inputs in the presented form.
    pub fn run(&self, inner: &dyn Model, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        self.signature.check_input_count(inputs)?;
        let rows = self.rows(inputs);
        if !self.per_row || rows <= 1 {
            return self.run_once(inner, inputs);
        }
        let err = |e: crate::tensor::TensorError| ModelError::Run(e.to_string());
        let mut outs: Vec<Vec<Tensor>> = Vec::with_capacity(rows);
        for r in 0..rows {
            let row = inputs
                .iter()
                .map(|t| {
                    if t.shape().first() != Some(&rows) {
                        return Ok(t.clone());
                    }
                    let host = t.to_host().map_err(err)?;
                    let per = host.len() / rows;
                    let mut shape = host.shape().to_vec();
                    shape[0] = 1;
                    let data = host.host().map_err(err)?.slice(r * per..(r + 1) * per);
                    Tensor::from_host(&shape, data).map_err(err)
                })
                .collect::<Result<Vec<_>, ModelError>>()?;
            outs.push(self.run_once(inner, &row)?);
        }
        let n = outs.first().map_or(0, Vec::len);
        (0..n)
            .map(|o| {
                let parts = outs
                    .iter()
                    .map(|p| p[o].to_host().map_err(err))
                    .collect::<Result<Vec<_>, _>>()?;
                let hosts = parts
                    .iter()
                    .map(|p| p.host().map_err(err))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut shape = parts[0].shape().to_vec();
                match shape.first_mut() {
                    Some(d) => *d = parts.iter().map(|p| p.shape()[0]).sum(),
                    None => shape = vec![parts.len()],
                }
                Tensor::from_host(&shape, HostData::concat(&hosts).map_err(err)?).map_err(err)
            })
            .collect()
    }

    /// `prepare`'s shapes (presented form) as the file takes them.
    pub fn file_shapes(&self, shapes: &[Vec<usize>]) -> Vec<Vec<usize>> {
        let rows = self
            .x
            .and_then(|i| shapes.get(i))
            .and_then(|s| s.first().copied())
            .unwrap_or(1);
        shapes
            .iter()
            .zip(&self.file_inputs)
            .map(|(s, port)| {
                if port.ty.shape.is_empty() {
                    return vec![];
                }
                let mut s = s.clone();
                if self.per_row
                    && rows > 1
                    && let Some(d) = s.first_mut()
                    && *d == rows
                {
                    *d = 1;
                }
                s
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, dtype: DType, shape: &[Dim]) -> ModelPort {
        ModelPort {
            name: name.into(),
            ty: TensorType {
                dtype,
                shape: shape.to_vec(),
            },
        }
    }

    fn unet(t: ModelPort, batch: Dim) -> ModelSignature {
        ModelSignature {
            inputs: vec![
                port("sample", DType::F32, &[batch.clone(), Dim::Known(2)]),
                t,
            ],
            outputs: vec![port("noise_pred", DType::F32, &[batch, Dim::Known(2)])],
            metadata: BTreeMap::new(),
        }
    }

    fn decl(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const MAPPED: [(&str, &str); 3] = [
        ("wgraph.role", "denoiser"),
        ("wgraph.input.x", "sample"),
        ("wgraph.input.t", "timestep"),
    ];

    #[test]
    fn names_are_mapped_and_the_timestep_is_presented_as_f32_rows() {
        let b = Dim::Sym("batch".into());
        let sig = unet(
            port("timestep", DType::I64, std::slice::from_ref(&b)),
            b.clone(),
        );
        let a = adaptation(&sig, &decl(&MAPPED)).unwrap().unwrap();
        let s = a.signature();
        assert_eq!(s.inputs[0].name, "x");
        assert_eq!(s.inputs[1].name, "t");
        assert_eq!(s.inputs[1].ty.to_string(), "f32[batch]");
        assert!(!a.per_row);
        let t = Tensor::from_f32(&[2], vec![499.6, 3.2]).unwrap();
        let conv = a.time.clone().unwrap();
        let got = a.timestep(&t, &conv).unwrap();
        assert_eq!(got.host().unwrap(), &HostData::I64(vec![500i64, 3].into()));
    }

    #[test]
    fn a_fixed_batch_of_one_is_seen_with_a_free_batch_and_run_row_by_row() {
        let sig = unet(port("timestep", DType::F32, &[]), Dim::Known(1));
        let a = adaptation(&sig, &decl(&MAPPED)).unwrap().unwrap();
        assert!(a.per_row);
        assert_eq!(a.signature().inputs[0].ty.to_string(), "f32[batch, 2]");
        assert_eq!(a.signature().inputs[1].ty.to_string(), "f32[batch]");
        assert_eq!(a.signature().outputs[0].ty.to_string(), "f32[batch, 2]");
        assert_eq!(
            a.file_shapes(&[vec![3, 2], vec![3]]),
            vec![vec![1, 2], vec![]]
        );
    }

    #[test]
    fn mapping_errors_name_the_entry_and_the_files_names() {
        let b = Dim::Sym("batch".into());
        let sig = unet(port("timestep", DType::F32, std::slice::from_ref(&b)), b);
        let e = adaptation(
            &sig,
            &decl(&[("wgraph.input.x", "sample"), ("wgraph.input.t", "tstep")]),
        )
        .unwrap_err();
        assert_eq!(e.entry, Some((Side::Inputs, "t".into())));
        assert!(e.message.contains("`sample`, `timestep`"), "{}", e.message);
        let e = adaptation(
            &sig,
            &decl(&[("wgraph.role", "denoiser"), ("wgraph.input.x", "sample")]),
        )
        .unwrap_err();
        assert_eq!(e.entry, None);
        assert!(e.message.contains("no `t`"), "{}", e.message);
        let bad = unet(
            port("timestep", DType::Bool, &[Dim::Known(1)]),
            Dim::Known(1),
        );
        let e = adaptation(&bad, &decl(&MAPPED)).unwrap_err();
        assert_eq!(e.entry, Some((Side::Inputs, "t".into())));
        assert!(e.message.contains("bool"), "{}", e.message);
    }

    #[test]
    fn a_model_seen_as_it_is_needs_no_adaptation() {
        let b = Dim::Sym("batch".into());
        let mut sig = unet(port("t", DType::F32, std::slice::from_ref(&b)), b);
        sig.inputs[0].name = "x".into();
        assert_eq!(
            adaptation(&sig, &decl(&[("wgraph.role", "denoiser")])).unwrap(),
            None
        );
    }
}
