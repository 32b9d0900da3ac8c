//! `denoiser` and `controlnet`: a diffusion network as a callable.
//!
//! A sampler calls the node with `x` (the noisy latent) and `t` (the model
//! timestep, f32[1]); every other input of the model is a *condition* wired in
//! the graph under the model's own input name (`context`, `action`, `text`,
//! ...). The single output is named after the model's `wgraph.prediction`
//! metadata (`velocity`, `epsilon` or `sample`), so a sampler can check at
//! build time that it gets the prediction it integrates.
//!
//! **Classifier-free guidance** over one or several conditions:
//! `guidance = { text = 5.0, action = 2.0 }` runs the model with
//! p₀ = all listed conditions dropped (zeros, the null embedding),
//! p₁ = `text` kept, p₂ = `text` and `action` kept, and returns
//! p₀ + 5·(p₁ − p₀) + 2·(p₂ − p₁) (nested multi-condition CFG; one condition
//! is ordinary CFG). When the model's batch dimension is symbolic the passes
//! are stacked into one call.
//!
//! **ControlNet** (`controlnet` kind): a second model maps (`x`, `t`, `hint`)
//! to a residual that is scaled by `scale` and fed to the base model's
//! `control` input (Yan-Edit's depth-conditioned renderer).

use crate::common::*;
use crate::model_io::{
    batchable, model_with_role, resolved_outputs, run_model, stack, unify_port, unstack,
};
use std::sync::Arc;
use wgraph_engine::model::Model;
use wgraph_engine::types::Bindings;

const DENOISER_PARAMS: &[ParamSpec] = &[
    ParamSpec::required(
        "model",
        ParamType::ModelRef,
        "the denoising network (wgraph.role = denoiser)",
    ),
    ParamSpec::optional(
        "guidance",
        ParamType::Record,
        ParamDefault::Absent,
        "classifier-free guidance: { condition = scale, ... }, nested in the order written",
    ),
];

const CONTROLNET_PARAMS: &[ParamSpec] = &[
    ParamSpec::required(
        "model",
        ParamType::ModelRef,
        "the base denoiser, with a `control` input",
    ),
    ParamSpec::required(
        "control_model",
        ParamType::ModelRef,
        "the ControlNet branch: (x, t, hint) → control",
    ),
    ParamSpec::optional(
        "scale",
        ParamType::Float,
        ParamDefault::Float(1.0),
        "control strength",
    ),
    ParamSpec::optional(
        "guidance",
        ParamType::Record,
        ParamDefault::Absent,
        "classifier-free guidance: { condition = scale, ... }",
    ),
];

/// A denoising network called by a sampler.
pub struct Denoiser;
/// A denoiser steered by a ControlNet branch on a `hint` (e.g. depth latents).
pub struct ControlNet;

impl NodeKind for Denoiser {
    fn name(&self) -> &'static str {
        "denoiser"
    }
    fn summary(&self) -> &'static str {
        "a diffusion network as a sampler's callable: (x, t) + wired conditions → prediction, with multi-condition CFG"
    }
    fn params(&self) -> &'static [ParamSpec] {
        DENOISER_PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(DenoiserNode::build(cx, None)?))
    }
}

impl NodeKind for ControlNet {
    fn name(&self) -> &'static str {
        "controlnet"
    }
    fn summary(&self) -> &'static str {
        "a denoiser plus a ControlNet branch on a wired `hint`, scaled by `scale` (Yan-Edit renderer)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        CONTROLNET_PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let control = cx.model("control_model")?;
        let name = cx.params.model_ref("control_model")?;
        let role = control.signature().meta("wgraph.role");
        if role != Some("controlnet") {
            return Err(BuildError::param(
                "control_model",
                format!(
                    "model `{name}` has role `{}`; `control_model` needs a controlnet",
                    role.unwrap_or("none")
                ),
            ));
        }
        let sig = control.signature();
        let find = |n: &str| {
            sig.input(n).map(|(i, _)| i).ok_or_else(|| {
                BuildError::param(
                    "control_model",
                    format!("controlnet `{name}` has no input `{n}` (needs x, t, hint)"),
                )
            })
        };
        let branch = ControlBranch {
            x: find("x")?,
            t: find("t")?,
            hint: find("hint")?,
            n_inputs: sig.inputs.len(),
            scale: finite_param(cx, "scale")? as f32,
            model: Arc::clone(&control),
            name,
        };
        if branch.n_inputs != 3 || sig.outputs.len() != 1 {
            return Err(BuildError::param(
                "control_model",
                "a controlnet takes exactly (x, t, hint) and gives one output",
            ));
        }
        Ok(Box::new(DenoiserNode::build(cx, Some(branch))?))
    }
}

struct ControlBranch {
    model: Arc<dyn Model>,
    name: String,
    x: usize,
    t: usize,
    hint: usize,
    n_inputs: usize,
    scale: f32,
}

struct DenoiserNode {
    model: Arc<dyn Model>,
    model_name: String,
    /// Model input index of x, t, and of each wired condition (node input 2 + i).
    x: usize,
    t: usize,
    conditions: Vec<usize>,
    /// Model input index fed by the control branch.
    control_input: Option<usize>,
    control: Option<ControlBranch>,
    /// (index into `conditions`, scale), in nesting order.
    guidance: Vec<(usize, f32)>,
    /// The condition indices of `guidance`, in the same order.
    guided: Vec<usize>,
    prediction: String,
    /// The noise process the model's metadata declares.
    process: NoiseProcess,
    /// `t` from the samplers (`1000·σ`) times this is the model's `t`
    /// (`wgraph.time_scale / 1000`); `None`: passed as is.
    time_factor: Option<f32>,
    batch: bool,
}

impl DenoiserNode {
    fn build(cx: &BuildContext<'_>, control: Option<ControlBranch>) -> Result<Self, BuildError> {
        let kind = if control.is_some() {
            "controlnet"
        } else {
            "denoiser"
        };
        let model = model_with_role(cx, "model", &["denoiser"], kind)?;
        let model_name = cx.params.model_ref("model")?;
        let sig = model.signature();
        let need = |n: &str| {
            sig.input(n).map(|(i, _)| i).ok_or_else(|| {
                BuildError::param(
                    "model",
                    format!("denoiser `{model_name}` has no input `{n}`; a denoiser takes x and t"),
                )
            })
        };
        let (x, t) = (need("x")?, need("t")?);
        let control_input = match &control {
            Some(_) => Some(sig.input("control").map(|(i, _)| i).ok_or_else(|| {
                BuildError::param(
                    "model",
                    format!("`{model_name}` has no `control` input for a ControlNet residual"),
                )
            })?),
            None => None,
        };
        let conditions: Vec<usize> = (0..sig.inputs.len())
            .filter(|&i| i != x && i != t && Some(i) != control_input)
            .collect();
        if sig.outputs.len() != 1 {
            return Err(BuildError::param(
                "model",
                format!("denoiser `{model_name}` must have exactly one output"),
            ));
        }
        let prediction = sig
            .meta("wgraph.prediction")
            .unwrap_or(sig.outputs[0].name.as_str())
            .to_string();
        if let Some(p) = sig.meta("wgraph.prediction")
            && !PREDICTIONS.contains(&p)
        {
            return Err(BuildError::param(
                "model",
                format!(
                    "model `{model_name}`: wgraph.prediction `{p}` is not one of {}",
                    PREDICTIONS.join(", ")
                ),
            ));
        }
        let (process, time_factor) = noise_process(&sig.metadata).map_err(|why| {
            BuildError::param("model", format!("model `{model_name}`'s metadata: {why}"))
        })?;
        let mut guidance = Vec::new();
        if let Ok(record) = cx.params.record("guidance") {
            for e in &record.entries {
                let Some(ci) = conditions
                    .iter()
                    .position(|&i| sig.inputs[i].name == e.key.name)
                else {
                    let names: Vec<&str> = conditions
                        .iter()
                        .map(|&i| sig.inputs[i].name.as_str())
                        .collect();
                    return Err(BuildError::param(
                        "guidance",
                        format!(
                            "`{}` is not a condition of `{model_name}` (conditions: {})",
                            e.key.name,
                            names.join(", ")
                        ),
                    ));
                };
                let scale = match e.value.kind {
                    wgraph_engine::params::AstValueKind::Float(f) => f,
                    wgraph_engine::params::AstValueKind::Int(i) => i as f64,
                    _ => {
                        return Err(BuildError::param(
                            "guidance",
                            format!("the scale of `{}` must be a number", e.key.name),
                        ));
                    }
                };
                guidance.push((ci, scale as f32));
            }
        }
        let batch = batchable(sig)
            && control
                .as_ref()
                .is_none_or(|c| batchable(c.model.signature()));
        Ok(DenoiserNode {
            guided: guidance.iter().map(|(c, _)| *c).collect(),
            x,
            t,
            conditions,
            control_input,
            control,
            guidance,
            prediction,
            process,
            time_factor,
            batch,
            model_name,
            model,
        })
    }

    /// Node input index of the control hint.
    fn hint_input(&self) -> usize {
        2 + self.conditions.len()
    }

    /// The model inputs of one guidance pass: conditions in `dropped` zeroed.
    fn pass(
        &self,
        x: &Tensor,
        t: &Tensor,
        conds: &[Tensor],
        control: Option<&Tensor>,
        dropped: &[usize],
        nulls: &[Option<Tensor>],
    ) -> Result<Vec<Tensor>, NodeError> {
        let sig = self.model.signature();
        let mut inputs = Vec::with_capacity(sig.inputs.len());
        for i in 0..sig.inputs.len() {
            let tensor = if i == self.x {
                x.clone()
            } else if i == self.t {
                t.clone()
            } else if Some(i) == self.control_input {
                control
                    .cloned()
                    .ok_or_else(|| NodeError::new("internal: missing control residual"))?
            } else {
                let ci = self
                    .conditions
                    .iter()
                    .position(|&c| c == i)
                    .ok_or_else(|| NodeError::new("internal: unknown model input"))?;
                if dropped.contains(&ci) {
                    nulls
                        .get(ci)
                        .cloned()
                        .flatten()
                        .ok_or_else(|| NodeError::new("internal: missing null condition"))?
                } else {
                    conds[ci].clone()
                }
            };
            inputs.push(tensor);
        }
        Ok(inputs)
    }

    fn control_residual(&self, x: &Tensor, t: &Tensor, hint: &Tensor) -> Result<Tensor, NodeError> {
        let Some(c) = &self.control else {
            return Err(NodeError::new("internal: no control branch"));
        };
        let mut inputs = vec![x.clone(); c.n_inputs];
        inputs[c.t] = t.clone();
        inputs[c.hint] = hint.clone();
        inputs[c.x] = x.clone();
        let out = run_model(&*c.model, &c.name, &inputs)?;
        let residual = out
            .into_iter()
            .next()
            .ok_or_else(|| NodeError::new("controlnet gave no output"))?;
        let data: Vec<f32> = residual.host_f32()?.iter().map(|v| v * c.scale).collect();
        Ok(Tensor::from_f32(residual.shape(), data)?)
    }
}

/// The predictions a denoiser's `wgraph.prediction` may name.
const PREDICTIONS: &[&str] = &["epsilon", "velocity", "sample", "x0", "v", "v_prediction"];

/// The noise process a denoiser's metadata declares, checked, and the
/// factor from the samplers' `t` convention (`1000·σ` for flow) to the
/// model's (`time_scale·σ`; `None` when it is 1000).
///
/// - `wgraph.schedule = scaled_linear | linear` with `wgraph.beta_start`,
///   `wgraph.beta_end` (0 < β₀ ≤ β₁ < 1) and optional `wgraph.train_steps`
///   (default 1000): VP; the model is called at integer-valued timesteps.
/// - `rectified_flow` or no schedule: flow, with `wgraph.time_scale`
///   (default 1000) > 0.
fn noise_process(
    meta: &std::collections::BTreeMap<String, String>,
) -> Result<(NoiseProcess, Option<f32>), String> {
    let num = |k: &str| -> Result<Option<f64>, String> {
        match meta.get(k) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Some(n)),
                _ => Err(format!("{k} = `{v}` is not a number")),
            },
        }
    };
    match meta.get("wgraph.schedule").map(String::as_str) {
        Some(schedule @ ("scaled_linear" | "linear")) => {
            let (Some(b0), Some(b1)) = (num("wgraph.beta_start")?, num("wgraph.beta_end")?) else {
                return Err(format!(
                    "wgraph.schedule = {schedule} needs wgraph.beta_start and wgraph.beta_end"
                ));
            };
            if !(b0 > 0.0 && b0 <= b1 && b1 < 1.0) {
                return Err(format!(
                    "the betas must satisfy 0 < beta_start <= beta_end < 1, found {b0} and {b1}"
                ));
            }
            let train_steps = match num("wgraph.train_steps")? {
                None => 1000,
                Some(t) if t.fract() == 0.0 && (1.0..=100_000.0).contains(&t) => t as usize,
                Some(t) => {
                    return Err(format!(
                        "wgraph.train_steps must be an integer between 1 and 100000, found {t}"
                    ));
                }
            };
            if meta.contains_key("wgraph.time_scale") {
                return Err(format!(
                    "wgraph.time_scale is for rectified-flow models; a {schedule} (VP) model is called at its integer timesteps 0..{train_steps}"
                ));
            }
            Ok((
                NoiseProcess::Vp {
                    beta_start: b0,
                    beta_end: b1,
                    train_steps,
                    scaled: schedule == "scaled_linear",
                },
                None,
            ))
        }
        None | Some("rectified_flow") => match num("wgraph.time_scale")? {
            None => Ok((NoiseProcess::Flow, None)),
            Some(s) if s > 0.0 && s <= 1e6 => {
                let factor = (s / 1000.0) as f32;
                Ok((NoiseProcess::Flow, (factor != 1.0).then_some(factor)))
            }
            Some(s) => Err(format!(
                "wgraph.time_scale must be positive (t = time_scale·σ), found {s}"
            )),
        },
        Some(other) => Err(format!(
            "wgraph.schedule `{other}` is not one this engine runs (scaled_linear, linear, rectified_flow)"
        )),
    }
}

impl Node for DenoiserNode {
    fn prediction(&self) -> Option<Prediction> {
        Some(Prediction {
            output: self.prediction.clone(),
            process: self.process.clone(),
        })
    }
    fn inputs(&self) -> Vec<PortSpec> {
        let sig = self.model.signature();
        let mut ports = vec![PortSpec::call("x"), PortSpec::call("t")];
        ports.extend(
            self.conditions
                .iter()
                .map(|&i| PortSpec::wired(&sig.inputs[i].name)),
        );
        if self.control.is_some() {
            ports.push(PortSpec::wired("hint"));
        }
        ports
    }

    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output(&self.prediction)]
    }

    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let sig = self.model.signature();
        let mut b = Bindings::new();
        let get = |i: usize| inputs.get(i).and_then(Option::as_ref);
        unify_port(&mut b, &sig.inputs[self.x], 0, get(0))?;
        unify_port(&mut b, &sig.inputs[self.t], 1, get(1))?;
        for (k, &mi) in self.conditions.iter().enumerate() {
            unify_port(&mut b, &sig.inputs[mi], 2 + k, get(2 + k))?;
        }
        if let (Some(c), Some(ci)) = (&self.control, self.control_input) {
            let csig = c.model.signature();
            let mut cb = Bindings::new();
            unify_port(&mut cb, &csig.inputs[c.x], 0, get(0))?;
            unify_port(&mut cb, &csig.inputs[c.t], 1, get(1))?;
            unify_port(
                &mut cb,
                &csig.inputs[c.hint],
                self.hint_input(),
                get(self.hint_input()),
            )?;
            let residual = resolved_outputs(&*c.model, &cb)?.swap_remove(0);
            b.unify(
                &sig.inputs[ci].ty,
                residual
                    .as_tensor()
                    .ok_or_else(|| TypeError::node("controlnet output is not a tensor"))?,
            )
            .map_err(|why| {
                TypeError::node(format!(
                    "controlnet `{}` gives {residual} but `{}` takes `control` as {}: {why}",
                    c.name, self.model_name, sig.inputs[ci].ty
                ))
            })?;
        }
        resolved_outputs(&*self.model, &b)
    }

    /// The null embeddings of guided conditions (zeros), made once per run.
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(vec![None::<Tensor>; self.conditions.len()]))
    }

    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let x = tensor_arg(inputs, 0)?;
        let scaled_t;
        let t = match self.time_factor {
            Some(f) => {
                let t = tensor_arg(inputs, 1)?;
                let data = t.host_f32()?.iter().map(|v| v * f).collect();
                scaled_t = Tensor::from_f32(t.shape(), data)?;
                &scaled_t
            }
            None => tensor_arg(inputs, 1)?,
        };
        let conds = (0..self.conditions.len())
            .map(|k| tensor_arg(inputs, 2 + k).cloned())
            .collect::<Result<Vec<_>, _>>()?;
        let control = match &self.control {
            Some(_) => Some(self.control_residual(x, t, tensor_arg(inputs, self.hint_input())?)?),
            None => None,
        };
        let k = self.guidance.len();
        let nulls = state_mut::<Vec<Option<Tensor>>>(state)?;
        for &ci in &self.guided {
            if nulls[ci]
                .as_ref()
                .is_none_or(|z| z.shape() != conds[ci].shape())
            {
                nulls[ci] = Some(Tensor::full_f32(conds[ci].shape(), 0.0)?);
            }
        }
        let passes = (0..=k)
            .map(|j| self.pass(x, t, &conds, control.as_ref(), &self.guided[j..], nulls))
            .collect::<Result<Vec<_>, _>>()?;
        let preds: Vec<Tensor> = if k > 0 && self.batch {
            let stacked = (0..passes[0].len())
                .map(|i| stack(&passes.iter().map(|p| &p[i]).collect::<Vec<_>>()))
                .collect::<Result<Vec<_>, _>>()?;
            let out = run_model(&*self.model, &self.model_name, &stacked)?;
            unstack(
                out.first()
                    .ok_or_else(|| NodeError::new("denoiser gave no output"))?,
                k + 1,
            )?
        } else {
            passes
                .iter()
                .map(|p| {
                    run_model(&*self.model, &self.model_name, p)?
                        .into_iter()
                        .next()
                        .ok_or_else(|| NodeError::new("denoiser gave no output"))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut result = preds[0].host_f32()?.to_vec();
        for (j, (_, scale)) in self.guidance.iter().enumerate() {
            let (prev, cur) = (preds[j].host_f32()?, preds[j + 1].host_f32()?);
            for ((r, c), p) in result.iter_mut().zip(cur).zip(prev) {
                *r += scale * (c - p);
            }
        }
        if k == 0 {
            return Ok(vec![preds[0].clone().into()]);
        }
        f32_out(preds[0].shape(), result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_io::fake::{FakeModel, build_with, fake};
    use wgraph_engine::node::{NoCallees, NoInferCalls};
    use wgraph_engine::params::ParamValue;
    use wgraph_engine::settings::Settings;
    use wgraph_grammar_free::*;

    mod wgraph_grammar_free {
        //! Records for the `guidance` parameter, built without the parser.
        pub use wgraph_engine::params::{AstEntry, AstIdent, AstRecord, AstValue, AstValueKind};
    }

    /// pred = x + t/1000 + 10·text + 100·action (per element, using element 0 of each condition)
    fn dit(batch: bool) -> Arc<FakeModel> {
        let b = if batch { "batch" } else { "1" };
        fake(
            &[
                &format!("x:f32:{b},2"),
                &format!("t:f32:{b}"),
                &format!("text:f32:{b},3"),
                &format!("action:f32:{b},1"),
            ],
            &[&format!("velocity:f32:{b},2")],
            &[
                ("wgraph.role", "denoiser"),
                ("wgraph.prediction", "velocity"),
            ],
            |ins| {
                let n = ins[0].shape()[0];
                let (x, t, text, action) = (
                    ins[0].host_f32().unwrap(),
                    ins[1].host_f32().unwrap(),
                    ins[2].host_f32().unwrap(),
                    ins[3].host_f32().unwrap(),
                );
                let mut out = Vec::new();
                for s in 0..n {
                    for e in 0..2 {
                        out.push(
                            x[s * 2 + e] + t[s] / 1000.0 + 10.0 * text[s * 3] + 100.0 * action[s],
                        );
                    }
                }
                vec![Tensor::from_f32(&[n, 2], out).unwrap()]
            },
        )
    }

    fn guidance(pairs: &[(&str, f64)]) -> ParamValue {
        let span = Default::default();
        ParamValue::Record(AstRecord {
            entries: pairs
                .iter()
                .map(|(k, v)| AstEntry {
                    key: AstIdent {
                        name: k.to_string(),
                        span,
                    },
                    value: AstValue {
                        kind: AstValueKind::Float(*v),
                        span,
                    },
                })
                .collect(),
            span,
        })
    }

    fn eval(node: &dyn Node, text: f32, action: f32) -> Vec<f32> {
        let settings = Settings::default();
        let mut none = NoCallees;
        let mut cx = TickContext::new(0, &settings, &mut none);
        let mut state = node.init_state().unwrap();
        let ins = [
            Some(Tensor::from_f32(&[1, 2], vec![1.0, 2.0]).unwrap().into()),
            Some(Tensor::from_f32(&[1], vec![500.0]).unwrap().into()),
            Some(Tensor::full_f32(&[1, 3], text).unwrap().into()),
            Some(Tensor::full_f32(&[1, 1], action).unwrap().into()),
        ];
        let out = node.eval(&mut state, &ins, &mut cx).unwrap();
        out[0].as_tensor().unwrap().host_f32().unwrap().to_vec()
    }

    #[test]
    fn ports_are_call_inputs_then_conditions_and_output_is_the_prediction() {
        let node = build_with(
            &Denoiser,
            vec![("model", ParamValue::ModelRef("m".into()))],
            vec![("m", dit(true))],
        )
        .unwrap();
        let names: Vec<_> = node
            .inputs()
            .iter()
            .map(|p| (p.name.clone(), p.role))
            .collect();
        assert_eq!(names[0], ("x".into(), wgraph_engine::node::PortRole::Call));
        assert_eq!(names[2].0, "text");
        assert_eq!(node.outputs()[0].name, "velocity");
        let types = [
            Some(ValueType::tensor(DType::F32, &[1, 2])),
            Some(ValueType::tensor(DType::F32, &[1])),
            Some(ValueType::tensor(DType::F32, &[1, 3])),
            Some(ValueType::tensor(DType::F32, &[1, 1])),
        ];
        assert_eq!(
            node.infer(&types, &mut NoInferCalls).unwrap(),
            vec![ValueType::tensor(DType::F32, &[1, 2])]
        );
        let mut bad = types.clone();
        bad[2] = Some(ValueType::tensor(DType::F32, &[1, 4]));
        let e = node.infer(&bad, &mut NoInferCalls).unwrap_err();
        assert_eq!(e.input, Some(2));
        assert!(
            e.message
                .contains("model input `text` expects f32[batch, 3], found f32[1, 4]"),
            "{}",
            e.message
        );
    }

    #[test]
    fn no_guidance_is_one_plain_call() {
        let node = build_with(
            &Denoiser,
            vec![("model", ParamValue::ModelRef("m".into()))],
            vec![("m", dit(true))],
        )
        .unwrap();
        assert_eq!(
            eval(&*node, 1.0, 1.0),
            vec![1.0 + 0.5 + 10.0 + 100.0, 2.0 + 0.5 + 110.0]
        );
    }

    #[test]
    fn nested_multi_condition_guidance_batched_or_not() {
        for batch in [true, false] {
            let model = dit(batch);
            let node = build_with(
                &Denoiser,
                vec![
                    ("model", ParamValue::ModelRef("m".into())),
                    ("guidance", guidance(&[("text", 5.0), ("action", 2.0)])),
                ],
                vec![("m", model.clone())],
            )
            .unwrap();
            // p0 = x + t (no conditions); p1 = p0 + 10; p2 = p1 + 100
            // p = p0 + 5·10 + 2·100
            let got = eval(&*node, 1.0, 1.0);
            assert!((got[0] - (1.5 + 50.0 + 200.0)).abs() < 1e-4, "{got:?}");
            let calls = model.calls.lock().unwrap().clone();
            if batch {
                assert_eq!(calls, vec![vec![3, 2]], "three passes stacked in one call");
            } else {
                assert_eq!(calls.len(), 3);
            }
        }
    }

    #[test]
    fn guidance_must_name_conditions() {
        let e = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("guidance", guidance(&[("txt", 5.0)])),
            ],
            vec![("m", dit(true))],
        )
        .err()
        .unwrap();
        assert_eq!(e.param.as_deref(), Some("guidance"));
        assert!(
            e.message
                .contains("`txt` is not a condition of `m` (conditions: text, action)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn controlnet_residual_is_scaled_into_the_control_input() {
        let base = fake(
            &["x:f32:batch,2", "t:f32:batch", "control:f32:batch,2"],
            &["velocity:f32:batch,2"],
            &[
                ("wgraph.role", "denoiser"),
                ("wgraph.prediction", "velocity"),
            ],
            |ins| {
                let (x, c) = (ins[0].host_f32().unwrap(), ins[2].host_f32().unwrap());
                vec![
                    Tensor::from_f32(
                        ins[0].shape(),
                        x.iter().zip(c).map(|(a, b)| a + b).collect(),
                    )
                    .unwrap(),
                ]
            },
        );
        let cn = fake(
            &["x:f32:batch,2", "t:f32:batch", "hint:f32:batch,2"],
            &["control:f32:batch,2"],
            &[("wgraph.role", "controlnet")],
            |ins| vec![ins[2].clone()],
        );
        let node = build_with(
            &ControlNet,
            vec![
                ("model", ParamValue::ModelRef("b".into())),
                ("control_model", ParamValue::ModelRef("c".into())),
                ("scale", ParamValue::Float(0.5)),
            ],
            vec![("b", base), ("c", cn)],
        )
        .unwrap();
        assert_eq!(node.inputs().last().unwrap().name, "hint");
        let settings = Settings::default();
        let mut none = NoCallees;
        let mut cx = TickContext::new(0, &settings, &mut none);
        let mut state = node.init_state().unwrap();
        let ins = [
            Some(Tensor::from_f32(&[1, 2], vec![1.0, 2.0]).unwrap().into()),
            Some(Tensor::from_f32(&[1], vec![10.0]).unwrap().into()),
            Some(Tensor::from_f32(&[1, 2], vec![4.0, 8.0]).unwrap().into()),
        ];
        let out = node.eval(&mut state, &ins, &mut cx).unwrap();
        assert_eq!(out[0].as_tensor().unwrap().host_f32().unwrap(), &[3.0, 6.0]);
    }
}
