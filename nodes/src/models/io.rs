//! Shared code of the model-backed kinds: role checks against a model's
//! metadata, type checks of wired ports against its signature, batching.
//!
//! The model contract (written by `models-onnx/export.py`, read here):
//! `wgraph.role` says what a model is (`vae_encoder`, `vae_decoder`,
//! `image_encoder`, `text_encoder`, `action_embedder`, `denoiser`,
//! `controlnet`); denoisers add `wgraph.prediction` (`velocity`, `epsilon`,
//! `sample`); text encoders carry their tokenizer in `wgraph.tokenizer`.

use crate::common::*;
use std::sync::Arc;
use wgraph_engine::model::{Model, ModelPort, ModelSignature};
use wgraph_engine::tensor::HostData;
use wgraph_engine::types::Bindings;

/// The model named by `param`, whose `wgraph.role` must be one of `roles`.
pub(crate) fn model_with_role(
    cx: &BuildContext<'_>,
    param: &str,
    roles: &[&str],
    kind: &str,
) -> Result<Arc<dyn Model>, BuildError> {
    let model = cx.model(param)?;
    let name = cx.params.model_ref(param)?;
    match model.signature().meta("wgraph.role") {
        Some(role) if roles.contains(&role) => Ok(model),
        Some(role) => Err(BuildError::param(
            param,
            format!(
                "model `{name}` has role `{role}` (its wgraph.role, from the file or the graph's `model` declaration); a `{kind}` node needs {}",
                roles.join(" or ")
            ),
        )),
        None => Err(BuildError::param(
            param,
            format!(
                "model `{name}` has no `wgraph.role` metadata; a `{kind}` node needs {} (declare it in the graph: `model {name} = \"…\" {{ role = {} }}`, or run the file with the generic `model` kind)",
                roles.join(" or "),
                roles[0]
            ),
        )),
    }
}

/// Checks the type wired into node input `input` against model input `port`,
/// binding symbolic dimensions.
pub(crate) fn unify_port(
    bindings: &mut Bindings,
    port: &ModelPort,
    input: usize,
    ty: Option<&ValueType>,
) -> Result<(), TypeError> {
    match ty {
        Some(ValueType::Tensor(t)) => bindings.unify(&port.ty, t).map_err(|why| {
            TypeError::input(
                input,
                format!(
                    "model input `{}` expects {}, found {t}: {why}",
                    port.name, port.ty
                ),
            )
        }),
        Some(other) => Err(TypeError::input(
            input,
            format!(
                "model input `{}` expects {}, found {other}",
                port.name, port.ty
            ),
        )),
        None => Err(TypeError::input(
            input,
            format!("model input `{}` ({}) is not connected", port.name, port.ty),
        )),
    }
}

/// The model's output types for inputs bound as in `bindings`. Outputs whose
/// dimensions the inputs do not fix (common in exports from PyTorch, e.g.
/// `[batch, 16, Mul_dim_2, Mul_dim_3]`) are found by running the model once
/// on zeros of the input types — at build time, never per tick.
pub(crate) fn resolved_outputs(
    model: &dyn Model,
    bindings: &Bindings,
) -> Result<Vec<ValueType>, TypeError> {
    let sig = model.signature();
    // Build-time work for the shapes a tick will use (a TensorRT engine,
    // CUDA-graph buffers): now, never inside a tick.
    let input_shapes: Option<Vec<Vec<usize>>> = sig
        .inputs
        .iter()
        .map(|p| bindings.apply(&p.ty).known_shape())
        .collect();
    if let Some(shapes) = &input_shapes {
        model.prepare(shapes).map_err(|e| {
            TypeError::node(format!(
                "preparing the model for its input shapes failed: {e}"
            ))
        })?;
    }
    let applied: Vec<TensorType> = sig.outputs.iter().map(|p| bindings.apply(&p.ty)).collect();
    if applied.iter().all(|t| t.known_shape().is_some()) {
        return Ok(applied.into_iter().map(ValueType::Tensor).collect());
    }
    let mut zeros = Vec::with_capacity(sig.inputs.len());
    for port in &sig.inputs {
        let ty = bindings.apply(&port.ty);
        let shape = ty.known_shape().ok_or_else(|| {
            TypeError::node(format!(
                "model input `{}` is {ty}: its symbolic dimensions are not fixed, so the output shapes cannot be found",
                port.name
            ))
        })?;
        let t = Tensor::zeros(ty.dtype, &shape).map_err(|e| TypeError::node(e.to_string()))?;
        zeros.push(t);
    }
    let outputs = model.run(&zeros).map_err(|e| {
        TypeError::node(format!(
            "running the model once to find its output shapes failed: {e}"
        ))
    })?;
    sig.outputs
        .iter()
        .zip(&applied)
        .zip(&outputs)
        .map(|((port, want), got)| {
            let got_ty = got.tensor_type();
            Bindings::new().unify(want, &got_ty).map_err(|why| {
                TypeError::node(format!(
                    "model output `{}` is declared {want} but comes out {got_ty}: {why}",
                    port.name
                ))
            })?;
            Ok(ValueType::Tensor(got_ty))
        })
        .collect()
}

/// True when dimension 0 of every input and output is symbolic, so several
/// samples can be stacked into one call.
pub(crate) fn batchable(sig: &ModelSignature) -> bool {
    sig.inputs
        .iter()
        .chain(&sig.outputs)
        .all(|p| matches!(p.ty.shape.first(), Some(Dim::Sym(_))))
}

/// Joins tensors `[rows_i, ...]` (equal but for the rows) along axis 0.
pub(crate) fn stack(parts: &[&Tensor]) -> Result<Tensor, NodeError> {
    let first = parts
        .first()
        .ok_or_else(|| NodeError::new("internal: nothing to stack"))?;
    let mut shape = first.shape().to_vec();
    if let Some(d) = shape.first_mut() {
        *d = parts
            .iter()
            .map(|p| p.shape().first().copied().unwrap_or(1))
            .sum();
    }
    let hosts = parts
        .iter()
        .map(|p| p.host())
        .collect::<Result<Vec<_>, _>>()?;
    let t = Tensor::from_host(&shape, HostData::concat(&hosts)?)?;
    Ok(t)
}

/// Splits an f32 tensor `[n·k, ...]` into `n` tensors `[k, ...]`.
pub(crate) fn unstack(t: &Tensor, n: usize) -> Result<Vec<Tensor>, NodeError> {
    let data = t.host_f32()?;
    let rows = t.shape().first().copied().unwrap_or(0);
    if n == 0 || rows % n != 0 {
        return Err(NodeError::new(format!(
            "cannot split {:?} into {n} parts",
            t.shape()
        )));
    }
    let mut shape = t.shape().to_vec();
    shape[0] = rows / n;
    let chunk = data.len() / n;
    data.chunks(chunk.max(1))
        .take(n)
        .map(|c| Ok(Tensor::from_f32(&shape, c.to_vec())?))
        .collect()
}

/// Runs a model and turns its errors into node errors naming the model.
/// The outputs are in host memory, for the node's math: an output a GPU
/// backend left on the device is copied home here (counted). Nodes that
/// only pass outputs on use [`run_model_on_device`].
pub(crate) fn run_model(
    model: &dyn Model,
    name: &str,
    inputs: &[Tensor],
) -> Result<Vec<Tensor>, NodeError> {
    run_model_on_device(model, name, inputs)?
        .iter()
        .map(|t| t.to_host().map_err(NodeError::from))
        .collect()
}

/// [`run_model`] leaving the outputs where the backend put them (on the
/// GPU with a device-resident provider), for a node that hands them on.
pub(crate) fn run_model_on_device(
    model: &dyn Model,
    name: &str,
    inputs: &[Tensor],
) -> Result<Vec<Tensor>, NodeError> {
    model
        .run(inputs)
        .map_err(|e| NodeError::new(format!("model `{name}`: {e}")))
}

/// [`run_model`] with at most `max_rows` rows per call (0: no limit): when
/// every input has more rows (axis 0) than that, the inputs are cut into
/// row chunks, each chunk is one call, and the outputs are joined again —
/// the same result as one batched call, for a model whose rows are
/// independent (a batch axis).
pub(crate) fn run_model_rows(
    model: &dyn Model,
    name: &str,
    inputs: &[Tensor],
    max_rows: usize,
) -> Result<Vec<Tensor>, NodeError> {
    let rows = inputs
        .first()
        .and_then(|t| t.shape().first().copied())
        .unwrap_or(1);
    if max_rows == 0 || rows <= max_rows || inputs.iter().any(|t| t.shape().first() != Some(&rows))
    {
        return run_model(model, name, inputs);
    }
    let mut parts: Vec<Vec<Tensor>> = Vec::new();
    for start in (0..rows).step_by(max_rows) {
        let end = (start + max_rows).min(rows);
        let chunk = inputs
            .iter()
            .map(|t| rows_of(t, start..end))
            .collect::<Result<Vec<_>, _>>()?;
        parts.push(run_model(model, name, &chunk)?);
    }
    let outputs = parts.first().map_or(0, Vec::len);
    (0..outputs)
        .map(|o| stack(&parts.iter().map(|p| &p[o]).collect::<Vec<_>>()))
        .collect()
}

/// Rows `range` (axis 0) of a tensor.
fn rows_of(t: &Tensor, range: std::ops::Range<usize>) -> Result<Tensor, NodeError> {
    let rows = t.shape().first().copied().unwrap_or(1).max(1);
    let per_row = t.len() / rows;
    let mut shape = t.shape().to_vec();
    shape[0] = range.len();
    let data = t.host()?.slice(range.start * per_row..range.end * per_row);
    Ok(Tensor::from_host(&shape, data)?)
}

/// Caches the outputs of a pure model call on inputs that are the very same
/// tensors as last time (a constant start frame, a fixed prompt), so a
/// constant branch costs one model call per run, not one per tick.
#[derive(Default)]
pub(crate) struct SameInputCache {
    inputs: Vec<Tensor>,
    outputs: Vec<Value>,
}

impl SameInputCache {
    pub(crate) fn get(&self, inputs: &[Tensor]) -> Option<Vec<Value>> {
        let same = !self.inputs.is_empty()
            && self.inputs.len() == inputs.len()
            && self
                .inputs
                .iter()
                .zip(inputs)
                .all(|(a, b)| a.shares_data(b));
        same.then(|| self.outputs.clone())
    }

    pub(crate) fn put(&mut self, inputs: Vec<Tensor>, outputs: &[Value]) {
        self.inputs = inputs;
        self.outputs = outputs.to_vec();
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A model implemented in Rust, to test model-backed kinds without a runtime.
    use super::*;
    use std::sync::Mutex;
    use wgraph_engine::model::{ModelError, ModelTable, Provider};
    use wgraph_engine::node::OutputConfig;
    use wgraph_engine::params::ParamValue;
    use wgraph_engine::settings::Settings;

    type RunFn = dyn Fn(&[Tensor]) -> Vec<Tensor> + Send + Sync;

    pub struct FakeModel {
        pub sig: ModelSignature,
        pub f: Box<RunFn>,
        pub calls: Mutex<Vec<Vec<usize>>>,
    }

    impl Model for FakeModel {
        fn signature(&self) -> &ModelSignature {
            &self.sig
        }
        fn provider(&self) -> Provider {
            Provider::Cpu
        }
        fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
            self.calls
                .lock()
                .map_err(|_| ModelError::Run("poisoned".into()))?
                .push(
                    inputs
                        .first()
                        .map(|t| t.shape().to_vec())
                        .unwrap_or_default(),
                );
            Ok((self.f)(inputs))
        }
    }

    /// `"x:f32:batch,16,4,4"` → a port.
    pub fn port(spec: &str) -> ModelPort {
        let mut it = spec.split(':');
        let name = it.next().unwrap_or_default().to_string();
        let dtype = it
            .next()
            .and_then(|d| DType::ALL.into_iter().find(|t| t.name() == d))
            .unwrap_or(DType::F32);
        let shape = it
            .next()
            .unwrap_or_default()
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| {
                d.parse()
                    .map(Dim::Known)
                    .unwrap_or_else(|_| Dim::Sym(d.to_string()))
            })
            .collect();
        ModelPort {
            name,
            ty: TensorType { dtype, shape },
        }
    }

    pub fn fake(
        inputs: &[&str],
        outputs: &[&str],
        meta: &[(&str, &str)],
        f: impl Fn(&[Tensor]) -> Vec<Tensor> + Send + Sync + 'static,
    ) -> Arc<FakeModel> {
        Arc::new(FakeModel {
            sig: ModelSignature {
                inputs: inputs.iter().map(|s| port(s)).collect(),
                outputs: outputs.iter().map(|s| port(s)).collect(),
                metadata: meta
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            f: Box::new(f),
            calls: Mutex::new(Vec::new()),
        })
    }

    /// Builds `kind` with the given params and models (`model = m` etc.).
    pub fn build_with(
        kind: &dyn NodeKind,
        given: Vec<(&'static str, ParamValue)>,
        models: Vec<(&str, Arc<dyn Model>)>,
    ) -> Result<Box<dyn Node>, BuildError> {
        let mut table = ModelTable::new();
        for (n, m) in models {
            table.insert(n, m);
        }
        crate::common::testing::build_with_models(
            kind,
            given,
            &OutputConfig::default(),
            &Settings::default(),
            &table,
        )
        .map(|b| b.0)
    }
}

#[cfg(test)]
mod tests {
    use super::fake::fake;
    use super::*;
    use wgraph_engine::tensor::{Device, DeviceBuffer, TensorError};

    /// Memory on a pretend GPU.
    #[derive(Debug)]
    struct OnDevice(Vec<f32>);

    impl DeviceBuffer for OnDevice {
        fn device(&self) -> Device {
            Device::Gpu {
                api: "test",
                index: 0,
            }
        }
        fn dtype(&self) -> DType {
            DType::F32
        }
        fn len(&self) -> usize {
            self.0.len()
        }
        fn download(&self) -> Result<HostData, TensorError> {
            Ok(HostData::F32(self.0.clone().into()))
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[test]
    fn model_outputs_left_on_a_device_come_home_for_node_math_only() {
        let m = fake(&["x:f32:2"], &["y:f32:2"], &[], |ins| {
            let v: Vec<f32> = ins[0].host_f32().unwrap().iter().map(|x| x * 2.0).collect();
            vec![Tensor::from_device(&[2], Arc::new(OnDevice(v))).unwrap()]
        });
        let x = Tensor::from_f32(&[2], vec![1.0, -3.0]).unwrap();
        let kept = run_model_on_device(&*m, "m", std::slice::from_ref(&x)).unwrap();
        assert!(
            !kept[0].is_host(),
            "a node that hands outputs on gets them where they are"
        );
        let before = wgraph_engine::transfers::totals();
        let host = run_model(&*m, "m", &[x]).unwrap();
        assert_eq!(host[0].host_f32().unwrap(), &[2.0, -6.0]);
        let copied = wgraph_engine::transfers::totals().since(&before);
        assert!(copied.device_to_host >= 1, "{copied:?}");
    }

    #[test]
    fn output_shapes_the_inputs_do_not_fix_are_found_by_one_run() {
        // Like a PyTorch export: the output's spatial dims are anonymous symbols.
        let m = fake(
            &["image:f32:batch,3,8,8"],
            &["latent:f32:batch,4,Mul_2,Mul_3"],
            &[],
            |ins| vec![Tensor::full_f32(&[ins[0].shape()[0], 4, 2, 2], 0.0).unwrap()],
        );
        let mut b = Bindings::new();
        b.unify(
            &m.sig.inputs[0].ty,
            &TensorType::known(DType::F32, &[1, 3, 8, 8]),
        )
        .unwrap();
        assert_eq!(
            resolved_outputs(&*m, &b).unwrap(),
            vec![ValueType::tensor(DType::F32, &[1, 4, 2, 2])]
        );
        assert_eq!(m.calls.lock().unwrap().len(), 1, "one probe run");
        // Fully known outputs need no run.
        let k = fake(&["x:f32:batch,2"], &["y:f32:batch,2"], &[], |ins| {
            vec![ins[0].clone()]
        });
        let mut b = Bindings::new();
        b.unify(&k.sig.inputs[0].ty, &TensorType::known(DType::F32, &[1, 2]))
            .unwrap();
        assert_eq!(
            resolved_outputs(&*k, &b).unwrap(),
            vec![ValueType::tensor(DType::F32, &[1, 2])]
        );
        assert!(k.calls.lock().unwrap().is_empty());
    }
}
