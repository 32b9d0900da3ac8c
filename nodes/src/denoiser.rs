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
//! **Cheaper guidance.** Both read the call's noise level: σ = t/1000 of the
//! samplers' flow convention (before `wgraph.time_scale`), or, for a VP
//! model called at timestep t, the flow σ of the same level,
//! `√(1−ᾱₜ)/(√ᾱₜ + √(1−ᾱₜ))` (ᾱ linear between integer timesteps).
//! - `guidance_interval = [lo, hi]` (Kynkäänniemi et al. 2024) guides only
//!   while lo ≤ σ ≤ hi; outside, one pass with every condition kept.
//! - `guidance_mode = residual` (StreamDiffusion's self-negative residual
//!   CFG, Kodaira et al. 2023) does not run p₀: it is the prediction whose x₀
//!   estimate is the reference latent r (`residual_reference`, a condition
//!   of x's type, else zeros) — its ε estimate is the paper's virtual
//!   residual noise `(x − √ᾱ·r)/√(1−ᾱ)` (flow: `(x − (1−σ)·r)/σ`), so the
//!   velocity is `(x − r)/σ`. Every call is defined by its own x and σ; no
//!   state is kept. One condition then costs one pass, not two.
//!
//! **Windows of frames** (diffusion forcing, the `df_window` sampler): a
//! call may carry several frames as rows of `x` (oldest first) with one
//! timestep per row. A condition wired with one row is repeated for every
//! row. `chain = "context"` names the condition that holds the previous
//! frame: row k's value is row k−1 of `x` (the noisy latent of the frame
//! before it, as the caller passes it) and row 0's the wired one. A model
//! trained with noisy context (diffusion forcing) reads how noisy its context
//! is from a level input — `chain_level`, or the model's
//! `wgraph.context_level_input` — which the node fills itself: row k gets the
//! model timestep of row k−1, row 0 (and every row of an unchained call) 0.
//!
//! **ControlNet** (`controlnet` kind): a second model maps (`x`, `t`, `hint`)
//! to a residual that is scaled by `scale` and fed to the base model's
//! `control` input (Yan-Edit's depth-conditioned renderer).

use crate::common::*;
use crate::model_io::{
    batchable, model_with_role, resolved_outputs, run_model, run_model_rows, stack, unify_port,
    unstack,
};
use crate::samplers::{Readout, alpha_at, ddim::alphas_cumprod, flow_sigma_of_alpha};
use std::sync::Arc;
use wgraph_engine::model::Model;
use wgraph_engine::types::Bindings;

const GUIDANCE_MODES: &[&str] = &["standard", "residual"];

/// `guidance_interval`, `guidance_mode`, `residual_reference` (both kinds).
const GUIDANCE_INTERVAL: ParamSpec = ParamSpec::optional(
    "guidance_interval",
    ParamType::FloatList,
    ParamDefault::Absent,
    "[lo, hi]: guide only at noise levels lo <= σ <= hi (flow σ in [0, 1]; a VP model at the flow σ of its ᾱ), one conditional pass elsewhere (Kynkäänniemi et al. 2024)",
);
const GUIDANCE_MODE: ParamSpec = ParamSpec::optional(
    "guidance_mode",
    ParamType::Choice(GUIDANCE_MODES),
    ParamDefault::Choice("standard"),
    "standard: one pass per level of `guidance`; residual: the all-dropped pass is not run but replaced by the virtual residual toward `residual_reference` (StreamDiffusion's self-negative RCFG)",
);
const RESIDUAL_REFERENCE: ParamSpec = ParamSpec::optional(
    "residual_reference",
    ParamType::Str,
    ParamDefault::Absent,
    "the condition holding the reference latent x₀ of residual mode (the type of x, e.g. \"context\"; standard mode ignores it); absent: zeros",
);

/// `chain`, `chain_level` (both kinds): diffusion-forcing windows.
/// `max_batch` (both kinds): stream batching's knob.
const MAX_BATCH: ParamSpec = ParamSpec::optional(
    "max_batch",
    ParamType::Int,
    ParamDefault::Int(0),
    "the most rows one model run takes (0: no limit): guidance passes and window frames are stacked into one run up to it, split into several above it (1: every pass and frame its own run)",
);
const CHAIN: ParamSpec = ParamSpec::optional(
    "chain",
    ParamType::Str,
    ParamDefault::Absent,
    "the condition that holds the previous frame (e.g. \"context\"): in a call over a window of frames (rows of x, oldest first), row k's is row k-1 of x and row 0's the wired one",
);
const CHAIN_LEVEL: ParamSpec = ParamSpec::optional(
    "chain_level",
    ParamType::Str,
    ParamDefault::Absent,
    "a model input (f32[batch]) the node fills with the chained condition's timestep (row 0: 0); default: the model's wgraph.context_level_input",
);

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
    GUIDANCE_INTERVAL,
    GUIDANCE_MODE,
    RESIDUAL_REFERENCE,
    CHAIN,
    CHAIN_LEVEL,
    MAX_BATCH,
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
    GUIDANCE_INTERVAL,
    GUIDANCE_MODE,
    RESIDUAL_REFERENCE,
    CHAIN,
    CHAIN_LEVEL,
    MAX_BATCH,
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
    /// `guidance_interval`: guide only for lo <= σ <= hi.
    interval: Option<(f64, f64)>,
    /// `guidance_mode = residual`: how to write the virtual negative.
    residual: Option<Residual>,
    /// A VP model's ᾱ table (for the noise level of a call).
    alphas: Option<Vec<f64>>,
    /// `max_batch`: the most rows per model run (0: no limit).
    max_batch: usize,
    /// `chain`: index into `conditions` of the previous frame.
    chain: Option<usize>,
    /// Model input the node fills with the chained condition's timestep.
    level_input: Option<usize>,
}

/// Self-negative residual CFG: p₀ is the model output whose x₀ estimate is
/// the reference latent.
struct Residual {
    readout: Readout,
    /// Index into `conditions` of the reference latent; `None`: zeros.
    reference: Option<usize>,
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
        let level_input = chain_level_input(cx, sig, &model_name, (x, t, control_input))?;
        let conditions: Vec<usize> = (0..sig.inputs.len())
            .filter(|&i| i != x && i != t && Some(i) != control_input && Some(i) != level_input)
            .collect();
        let chain = condition_param(cx, "chain", &conditions, sig, &format!("`{model_name}`"))?;
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
        let interval = guidance_interval(cx, guidance.is_empty())?;
        let residual = residual_mode(
            cx,
            guidance.is_empty(),
            &conditions,
            sig,
            &prediction,
            &process,
        )?;
        let alphas = match &process {
            NoiseProcess::Vp {
                beta_start,
                beta_end,
                train_steps,
                scaled,
            } => Some(alphas_cumprod(
                *beta_start,
                *beta_end,
                *train_steps,
                *scaled,
            )),
            _ => None,
        };
        let max_batch = cx.params.int("max_batch")?;
        let max_batch = usize::try_from(max_batch).map_err(|_| {
            BuildError::param(
                "max_batch",
                format!("`max_batch` must be 0 (no limit) or a number of rows, found {max_batch}"),
            )
        })?;
        Ok(DenoiserNode {
            max_batch,
            chain,
            level_input,
            interval,
            residual,
            alphas,
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

    /// The noise level of a call at the samplers' `t`: (flow σ, ᾱ) — ᾱ of
    /// the timestep for a VP model, 0 for a flow model.
    fn level(&self, t: f32) -> (f64, f64) {
        match &self.alphas {
            Some(table) => {
                let alpha = alpha_at(table, f64::from(t));
                (flow_sigma_of_alpha(alpha), alpha)
            }
            None => (f64::from(t) / 1000.0, 0.0),
        }
    }

    /// Runs one pass (one call) and returns its prediction.
    fn run_pass(&self, inputs: &[Tensor]) -> Result<Tensor, NodeError> {
        run_model_rows(&*self.model, &self.model_name, inputs, self.max_batch)?
            .into_iter()
            .next()
            .ok_or_else(|| NodeError::new("denoiser gave no output"))
    }

    /// The model inputs of one guidance pass: conditions in `dropped` zeroed.
    fn pass(
        &self,
        x: &Tensor,
        t: &Tensor,
        conds: &[Tensor],
        control: Option<&Tensor>,
        (dropped, nulls): (&[usize], &[Option<Tensor>]),
        level: Option<&Tensor>,
    ) -> Result<Vec<Tensor>, NodeError> {
        let sig = self.model.signature();
        let mut inputs = Vec::with_capacity(sig.inputs.len());
        for i in 0..sig.inputs.len() {
            let tensor = if i == self.x {
                x.clone()
            } else if i == self.t {
                t.clone()
            } else if Some(i) == self.level_input {
                level
                    .cloned()
                    .ok_or_else(|| NodeError::new("internal: missing context level"))?
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

    /// The level input of a call with `rows` rows at (model) timesteps `t`:
    /// row k of a chained window gets row k−1's timestep, row 0 (and every
    /// row of an unchained call) 0.
    fn context_level(&self, t: &Tensor, rows: usize) -> Result<Tensor, NodeError> {
        let ts = t.host_f32()?;
        let mut level = vec![0.0_f32; rows];
        if self.chain.is_some() {
            for (l, &t) in level.iter_mut().skip(1).zip(ts) {
                *l = t;
            }
        }
        Ok(Tensor::from_f32(&[rows], level)?)
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

/// A string parameter naming one of the model's conditions (`chain`,
/// `residual_reference`): its index into `conditions`, or an error listing
/// them; `None` when the parameter is not set.
fn condition_param(
    cx: &BuildContext<'_>,
    param: &str,
    conditions: &[usize],
    sig: &wgraph_engine::model::ModelSignature,
    owner: &str,
) -> Result<Option<usize>, BuildError> {
    let Ok(name) = cx.params.string(param) else {
        return Ok(None);
    };
    conditions
        .iter()
        .position(|&i| sig.inputs[i].name == name)
        .map(Some)
        .ok_or_else(|| {
            let names: Vec<&str> = conditions
                .iter()
                .map(|&i| sig.inputs[i].name.as_str())
                .collect();
            BuildError::param(
                param,
                format!(
                    "`{name}` is not a condition of {owner} (conditions: {})",
                    names.join(", ")
                ),
            )
        })
}

/// The model input a diffusion-forcing denoiser reads its context's noise
/// level from: `chain_level`, else the model's `wgraph.context_level_input`;
/// checked to be an f32 `[batch]` input other than x, t and control.
fn chain_level_input(
    cx: &BuildContext<'_>,
    sig: &wgraph_engine::model::ModelSignature,
    model_name: &str,
    (x, t, control): (usize, usize, Option<usize>),
) -> Result<Option<usize>, BuildError> {
    let (name, param) = match cx.params.string("chain_level") {
        Ok(name) => (name, "chain_level"),
        Err(_) => match sig.meta("wgraph.context_level_input") {
            Some(name) => (name.to_string(), "model"),
            None => return Ok(None),
        },
    };
    let Some((i, port)) = sig.input(&name) else {
        let names: Vec<&str> = sig.inputs.iter().map(|p| p.name.as_str()).collect();
        return Err(BuildError::param(
            param,
            format!(
                "the context level input `{name}` is not an input of `{model_name}` (inputs: {})",
                names.join(", ")
            ),
        ));
    };
    if i == x
        || i == t
        || Some(i) == control
        || port.ty.dtype != DType::F32
        || port.ty.shape.len() != 1
    {
        return Err(BuildError::param(
            param,
            format!(
                "the context level input `{name}` of `{model_name}` must be an f32 [batch] input other than x, t and control, found {}",
                port.ty
            ),
        ));
    }
    Ok(Some(i))
}

/// `t` with its one row repeated `rows` times.
fn repeat_rows(t: &Tensor, rows: usize) -> Result<Tensor, NodeError> {
    let parts = vec![t; rows];
    stack(&parts)
}

/// The chained condition of a window call: row 0 as wired, row k the row
/// k−1 of `x` (the previous frame of the window).
fn chained(wired: &Tensor, x: &Tensor) -> Result<Tensor, NodeError> {
    if wired.shape() != x.shape() {
        return Err(NodeError::new(format!(
            "`chain`: the chained condition is {} but x is {}",
            wired.tensor_type(),
            x.tensor_type()
        )));
    }
    let (w, xs) = (wired.host_f32()?, x.host_f32()?);
    let row = w.len() / x.shape()[0].max(1);
    let mut data = Vec::with_capacity(w.len());
    data.extend_from_slice(&w[..row]);
    data.extend_from_slice(&xs[..xs.len() - row]);
    Ok(Tensor::from_f32(x.shape(), data)?)
}

/// `guidance_interval = [lo, hi]`, checked: 0 <= lo <= hi <= 1, and only
/// with `guidance`.
fn guidance_interval(
    cx: &BuildContext<'_>,
    unguided: bool,
) -> Result<Option<(f64, f64)>, BuildError> {
    const P: &str = "guidance_interval";
    if cx.params.get(P).is_none() {
        return Ok(None);
    }
    let v = cx.params.float_list(P)?;
    let [lo, hi] = v[..] else {
        return Err(BuildError::param(
            P,
            format!(
                "`{P}` is [lo, hi], two noise levels; found {} numbers",
                v.len()
            ),
        ));
    };
    if !(0.0 <= lo && lo <= hi && hi <= 1.0) {
        return Err(BuildError::param(
            P,
            format!(
                "`{P}` needs 0 <= lo <= hi <= 1 (flow σ; a VP model's level as the flow σ of its ᾱ), found [{lo}, {hi}]"
            ),
        ));
    }
    if unguided {
        return Err(BuildError::param(
            P,
            format!(
                "`{P}` limits `guidance`, which is not set: add `guidance = {{ condition = scale }}` or remove it"
            ),
        ));
    }
    Ok(Some((lo, hi)))
}

/// `guidance_mode` and `residual_reference`, checked: residual needs
/// `guidance` and a model whose output converts to x₀ and ε; the
/// reference names a condition (in any mode, so that `bench --swap` can
/// switch modes under one reference; only residual reads it).
fn residual_mode(
    cx: &BuildContext<'_>,
    unguided: bool,
    conditions: &[usize],
    sig: &wgraph_engine::model::ModelSignature,
    prediction: &str,
    process: &NoiseProcess,
) -> Result<Option<Residual>, BuildError> {
    let residual = cx
        .params
        .choice("guidance_mode")
        .is_ok_and(|m| m == "residual");
    let reference = condition_param(cx, "residual_reference", conditions, sig, "the model")?;
    if !residual {
        return Ok(None);
    }
    if unguided {
        return Err(BuildError::param(
            "guidance_mode",
            "`guidance_mode = residual` replaces a pass of `guidance`, which is not set: add `guidance = { condition = scale }`",
        ));
    }
    let readout = Readout::of(&Prediction {
        output: prediction.to_string(),
        process: process.clone(),
    })
    .map_err(|why| {
        BuildError::param(
            "guidance_mode",
            format!("`guidance_mode = residual` needs x₀ and ε from the model's output, but {why}"),
        )
    })?;
    Ok(Some(Residual { readout, reference }))
}

/// The predictions a denoiser's `wgraph.prediction` may name.
pub(crate) const PREDICTIONS: &[&str] =
    &["epsilon", "velocity", "sample", "x0", "v", "v_prediction"];

/// The noise process a denoiser's metadata declares, checked, and the
/// factor from the samplers' `t` convention (`1000·σ` for flow) to the
/// model's (`time_scale·σ`; `None` when it is 1000).
///
/// - `wgraph.schedule = scaled_linear | linear` with `wgraph.beta_start`,
///   `wgraph.beta_end` (0 < β₀ ≤ β₁ < 1) and optional `wgraph.train_steps`
///   (default 1000): VP; the model is called at integer-valued timesteps.
/// - `rectified_flow` or no schedule: flow, with `wgraph.time_scale`
///   (default 1000) > 0.
pub(crate) fn noise_process(
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
    fn input_type(&self, port: usize) -> Option<String> {
        // Ports: x, t (from the caller), the conditions, then `hint`.
        let i = *self.conditions.get(port.checked_sub(2)?)?;
        Some(self.model.signature().inputs.get(i)?.ty.to_string())
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
        // A window call (x with n > 1 rows) repeats one-row conditions.
        let rows = match get(0) {
            Some(ValueType::Tensor(xt)) if self.batch => match xt.shape.first() {
                Some(Dim::Known(n)) if *n > 1 => Some(*n),
                _ => None,
            },
            _ => None,
        };
        for (k, &mi) in self.conditions.iter().enumerate() {
            let widened = match (get(2 + k), rows) {
                (Some(ValueType::Tensor(ct)), Some(n))
                    if ct.shape.first() == Some(&Dim::Known(1)) =>
                {
                    let mut w = ct.clone();
                    w.shape[0] = Dim::Known(n);
                    Some(ValueType::Tensor(w))
                }
                _ => None,
            };
            unify_port(
                &mut b,
                &sig.inputs[mi],
                2 + k,
                widened.as_ref().or(get(2 + k)),
            )?;
        }
        if let Some(ci) = self.chain
            && let (Some(ValueType::Tensor(xt)), Some(ValueType::Tensor(ct))) =
                (get(0), get(2 + ci))
        {
            let mut row = xt.clone();
            if let Some(d) = row.shape.first_mut() {
                *d = Dim::Known(1);
            }
            if unify_types(xt, ct).is_none() && unify_types(&row, ct).is_none() {
                return Err(TypeError::input(
                    2 + ci,
                    format!(
                        "`chain = \"{}\"` must have the type of one row of `x` ({row}): it is the previous frame; found {ct}",
                        sig.inputs[self.conditions[ci]].name
                    ),
                ));
            }
        }
        if let Some(ci) = self.residual.as_ref().and_then(|r| r.reference)
            && let (Some(ValueType::Tensor(xt)), Some(ValueType::Tensor(rt))) =
                (get(0), get(2 + ci))
            && unify_types(xt, rt).is_none()
        {
            return Err(TypeError::input(
                2 + ci,
                format!(
                    "`residual_reference = \"{}\"` must have the type of `x` ({xt}): it is the x₀ the residual points to; found {rt}",
                    sig.inputs[self.conditions[ci]].name
                ),
            ));
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
        let rows = x.shape().first().copied().unwrap_or(1);
        let mut conds = (0..self.conditions.len())
            .map(|k| {
                let c = tensor_arg(inputs, 2 + k)?;
                if rows > 1 && c.shape().first() == Some(&1) {
                    repeat_rows(c, rows)
                } else {
                    Ok(c.clone())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(ci) = self.chain
            && rows > 1
        {
            conds[ci] = chained(&conds[ci], x)?;
        }
        let level = match self.level_input {
            Some(_) => Some(self.context_level(t, rows)?),
            None => None,
        };
        let level = level.as_ref();
        let control = match &self.control {
            Some(_) => Some(self.control_residual(x, t, tensor_arg(inputs, self.hint_input())?)?),
            None => None,
        };
        let k = self.guidance.len();
        let ts = tensor_arg(inputs, 1)?.host_f32()?;
        if k > 0
            && (self.interval.is_some() || self.residual.is_some())
            && ts.iter().any(|&v| v != ts[0])
        {
            return Err(NodeError::new(
                "`guidance_interval` and `guidance_mode = residual` need one noise level per call, but this call has rows at different levels (a df_window): remove them or use standard guidance",
            ));
        }
        let noise_level = self.level(ts.first().copied().unwrap_or(0.0));
        // Outside the guidance interval: one pass, every condition kept.
        if k > 0
            && self
                .interval
                .is_some_and(|(lo, hi)| !(lo <= noise_level.0 && noise_level.0 <= hi))
        {
            let pass = self.pass(x, t, &conds, control.as_ref(), (&[], &[]), level)?;
            return Ok(vec![self.run_pass(&pass)?.into()]);
        }
        let nulls = state_mut::<Vec<Option<Tensor>>>(state)?;
        for &ci in &self.guided {
            if nulls[ci]
                .as_ref()
                .is_none_or(|z| z.shape() != conds[ci].shape())
            {
                nulls[ci] = Some(Tensor::full_f32(conds[ci].shape(), 0.0)?);
            }
        }
        // Residual mode computes p₁ … p_k; p₀ is the virtual residual.
        let first = usize::from(self.residual.is_some() && k > 0);
        let passes = (first..=k)
            .map(|j| {
                self.pass(
                    x,
                    t,
                    &conds,
                    control.as_ref(),
                    (&self.guided[j..], nulls),
                    level,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut preds: Vec<Tensor> = if passes.len() > 1 && self.batch {
            let stacked = (0..passes[0].len())
                .map(|i| stack(&passes.iter().map(|p| &p[i]).collect::<Vec<_>>()))
                .collect::<Result<Vec<_>, _>>()?;
            let out = run_model_rows(&*self.model, &self.model_name, &stacked, self.max_batch)?;
            unstack(
                out.first()
                    .ok_or_else(|| NodeError::new("denoiser gave no output"))?,
                passes.len(),
            )?
        } else {
            passes
                .iter()
                .map(|p| self.run_pass(p))
                .collect::<Result<Vec<_>, _>>()?
        };
        if k == 0 {
            return Ok(vec![preds.swap_remove(0).into()]);
        }
        if let (Some(r), 1) = (&self.residual, first) {
            let reference = r.reference.map(|ci| &conds[ci]);
            preds.insert(
                0,
                residual_prediction(r.readout, x, reference, noise_level)?,
            );
        }
        let mut result = preds[0].host_f32()?.to_vec();
        for (j, (_, scale)) in self.guidance.iter().enumerate() {
            let (prev, cur) = (preds[j].host_f32()?, preds[j + 1].host_f32()?);
            wgraph_kernels::host::guidance(&mut result, cur, prev, *scale);
        }
        f32_out(preds[0].shape(), result)
    }
}

/// Residual CFG's p₀ at a call on `x` at `level` (flow σ, ᾱ): the output
/// whose x₀ estimate is `reference` (zeros when `None`) — its ε estimate
/// is the virtual residual noise from the reference to `x`.
fn residual_prediction(
    readout: Readout,
    x: &Tensor,
    reference: Option<&Tensor>,
    (sigma, alpha): (f64, f64),
) -> Result<Tensor, NodeError> {
    let degenerate = if readout.is_vp() {
        alpha >= 1.0
    } else {
        sigma <= 0.0
    };
    if degenerate {
        return Err(NodeError::new(format!(
            "residual guidance at noise level σ = {sigma}: no noise to take a residual of"
        )));
    }
    let xs = x.host_f32()?;
    let zeros;
    let r = match reference {
        Some(r) if r.shape() == x.shape() => r.host_f32()?,
        Some(r) => {
            return Err(NodeError::new(format!(
                "`residual_reference` is {} but x is {}",
                r.tensor_type(),
                x.tensor_type()
            )));
        }
        None => {
            zeros = vec![0.0; xs.len()];
            &zeros
        }
    };
    let y = xs
        .iter()
        .zip(r)
        .map(|(&xv, &rv)| readout.prediction(f64::from(xv), f64::from(rv), sigma, alpha) as f32)
        .collect();
    Ok(Tensor::from_f32(x.shape(), y)?)
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
        eval_at(node, 500.0, text, action)
    }

    /// The node called at `t` (σ = t/1000) on x = [1, 2].
    fn eval_at(node: &dyn Node, t: f32, text: f32, action: f32) -> Vec<f32> {
        let settings = Settings::default();
        let mut none = NoCallees;
        let mut cx = TickContext::new(0, &settings, &mut none);
        let mut state = node.init_state().unwrap();
        let ins = [
            Some(Tensor::from_f32(&[1, 2], vec![1.0, 2.0]).unwrap().into()),
            Some(Tensor::from_f32(&[1], vec![t]).unwrap().into()),
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

    /// `max_batch` cuts the stacked passes into runs of at most that many
    /// rows, with the same result: 3 passes → runs of 2 + 1 rows, or 3 × 1.
    #[test]
    fn max_batch_splits_stacked_passes_without_changing_the_result() {
        for (max_batch, runs) in [
            (0, vec![vec![3, 2]]),
            (2, vec![vec![2, 2], vec![1, 2]]),
            (1, vec![vec![1, 2]; 3]),
        ] {
            let model = dit(true);
            let node = build_with(
                &Denoiser,
                vec![
                    ("model", ParamValue::ModelRef("m".into())),
                    ("guidance", guidance(&[("text", 5.0), ("action", 2.0)])),
                    ("max_batch", ParamValue::Int(max_batch)),
                ],
                vec![("m", model.clone())],
            )
            .unwrap();
            let got = eval(&*node, 1.0, 1.0);
            assert!(
                (got[0] - (1.5 + 50.0 + 200.0)).abs() < 1e-4,
                "{max_batch}: {got:?}"
            );
            assert_eq!(*model.calls.lock().unwrap(), runs, "max_batch {max_batch}");
        }
        let err = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("max_batch", ParamValue::Int(-1)),
            ],
            vec![("m", dit(true))],
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("max_batch"), "{err}");
    }

    /// A window call (rows at several levels, oldest first): one-row
    /// conditions are repeated, `chain` hands row k the row k−1 of x, and
    /// the level input (here from the model's metadata) gets row k−1's t.
    #[test]
    fn window_calls_repeat_conditions_and_chain_the_previous_frame() {
        let model = fake(
            &[
                "x:f32:batch,1",
                "t:f32:batch",
                "context:f32:batch,1",
                "context_t:f32:batch",
                "action:f32:batch,1",
            ],
            &["velocity:f32:batch,1"],
            &[
                ("wgraph.role", "denoiser"),
                ("wgraph.prediction", "velocity"),
                ("wgraph.context_level_input", "context_t"),
            ],
            |ins| {
                let h: Vec<&[f32]> = ins.iter().map(|t| t.host_f32().unwrap()).collect();
                let out = (0..h[0].len())
                    .map(|r| h[2][r] * 1000.0 + h[3][r] + h[4][r] * 0.5)
                    .collect();
                vec![Tensor::from_f32(&[h[0].len(), 1], out).unwrap()]
            },
        );
        let node = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("chain", ParamValue::Str("context".into())),
            ],
            vec![("m", model)],
        )
        .unwrap();
        assert_eq!(
            node.inputs()
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["x", "t", "context", "action"],
            "the level input is filled by the node, not wired"
        );
        let settings = Settings::default();
        let mut none = NoCallees;
        let mut cx = TickContext::new(0, &settings, &mut none);
        let mut state = node.init_state().unwrap();
        let ins = [
            Some(
                Tensor::from_f32(&[3, 1], vec![1.0, 2.0, 3.0])
                    .unwrap()
                    .into(),
            ),
            Some(
                Tensor::from_f32(&[3], vec![250.0, 500.0, 750.0])
                    .unwrap()
                    .into(),
            ),
            Some(Tensor::from_f32(&[1, 1], vec![9.0]).unwrap().into()),
            Some(Tensor::from_f32(&[1, 1], vec![4.0]).unwrap().into()),
        ];
        let out = node.eval(&mut state, &ins, &mut cx).unwrap();
        let got = out[0].as_tensor().unwrap().host_f32().unwrap().to_vec();
        // Row 0: context 9 (wired), level 0; row 1: context 1 (x row 0),
        // level 250; row 2: context 2, level 500; action 4 on every row.
        assert_eq!(got, [9002.0, 1252.0, 2502.0]);
        // A chain naming no condition is refused at build, listing them.
        let err = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("chain", ParamValue::Str("ctx".into())),
            ],
            vec![("m", dit(true))],
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .contains("`ctx` is not a condition of `m` (conditions: text, action)"),
            "{err}"
        );
    }

    fn guided(model: &Arc<FakeModel>, extra: Vec<(&'static str, ParamValue)>) -> Box<dyn Node> {
        let mut params = vec![
            ("model", ParamValue::ModelRef("m".into())),
            ("guidance", guidance(&[("text", 5.0)])),
        ];
        params.extend(extra);
        build_with(&Denoiser, params, vec![("m", model.clone())]).unwrap()
    }

    #[test]
    fn guidance_interval_runs_one_conditional_pass_outside_it() {
        for batch in [true, false] {
            let model = dit(batch);
            let node = guided(
                &model,
                vec![("guidance_interval", ParamValue::FloatList(vec![0.5, 0.8]))],
            );
            // σ = 0.9: outside; the conditional prediction, one pass.
            let got = eval_at(&*node, 900.0, 1.0, 1.0);
            assert_eq!(got, vec![1.0 + 0.9 + 110.0, 2.0 + 0.9 + 110.0]);
            assert_eq!(model.calls.lock().unwrap().clone(), vec![vec![1, 2]]);
            // σ = 0.5 and 0.8 (the ends): inside; p0 + 5·(p1 − p0), two passes.
            for t in [500.0, 800.0] {
                model.calls.lock().unwrap().clear();
                let got = eval_at(&*node, t, 1.0, 1.0);
                let p0 = 1.0 + t / 1000.0 + 100.0;
                assert!((got[0] - (p0 + 5.0 * 10.0)).abs() < 1e-4, "{got:?}");
                let calls = model.calls.lock().unwrap().clone();
                if batch {
                    assert_eq!(calls, vec![vec![2, 2]], "two passes stacked");
                } else {
                    assert_eq!(calls.len(), 2);
                }
            }
        }
    }

    #[test]
    fn guidance_interval_on_a_vp_model_reads_the_flow_sigma_of_its_level() {
        let model = fake(
            &["x:f32:1,2", "t:f32:1", "text:f32:1,3"],
            &["epsilon:f32:1,2"],
            &[
                ("wgraph.role", "denoiser"),
                ("wgraph.prediction", "epsilon"),
                ("wgraph.schedule", "scaled_linear"),
                ("wgraph.beta_start", "0.00085"),
                ("wgraph.beta_end", "0.012"),
            ],
            |ins| vec![ins[0].clone()],
        );
        let node = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("guidance", guidance(&[("text", 2.0)])),
                ("guidance_interval", ParamValue::FloatList(vec![0.0, 0.5])),
            ],
            vec![("m", model.clone())],
        )
        .unwrap();
        let run = |t: f32| {
            model.calls.lock().unwrap().clear();
            let settings = Settings::default();
            let mut none = NoCallees;
            let mut cx = TickContext::new(0, &settings, &mut none);
            let mut state = node.init_state().unwrap();
            let ins = [
                Some(Tensor::from_f32(&[1, 2], vec![1.0, 2.0]).unwrap().into()),
                Some(Tensor::from_f32(&[1], vec![t]).unwrap().into()),
                Some(Tensor::full_f32(&[1, 3], 1.0).unwrap().into()),
            ];
            node.eval(&mut state, &ins, &mut cx).unwrap();
            model.calls.lock().unwrap().len()
        };
        // ᾱ at t = 999 is 0.0047 (flow σ 0.94): outside; t = 300 (ᾱ 0.58, σ 0.46): inside.
        let table = alphas_cumprod(0.00085, 0.012, 1000, true);
        assert!(flow_sigma_of_alpha(table[999]) > 0.9);
        assert!(flow_sigma_of_alpha(table[300]) < 0.5);
        assert_eq!(run(999.0), 1);
        assert_eq!(run(300.0), 2);
        // Fractional timesteps: ᾱ linear between the integer ones.
        let a = alpha_at(&table, 300.25);
        assert!((a - (0.75 * table[300] + 0.25 * table[301])).abs() < 1e-12);
    }

    #[test]
    fn residual_guidance_replaces_the_unconditional_pass() {
        for batch in [true, false] {
            let model = dit(batch);
            let node = guided(
                &model,
                vec![("guidance_mode", ParamValue::Choice("residual".into()))],
            );
            // p0 = the velocity toward x0 = 0: (x − 0)/σ = [2, 4] at σ = 0.5;
            // p1 = x + 0.5 + 110; p = p0 + 5·(p1 − p0).
            let got = eval_at(&*node, 500.0, 1.0, 1.0);
            let want = [2.0 + 5.0 * (111.5 - 2.0), 4.0 + 5.0 * (112.5 - 4.0)];
            assert!((got[0] - want[0]).abs() < 1e-3, "{got:?}");
            assert!((got[1] - want[1]).abs() < 1e-3, "{got:?}");
            assert_eq!(
                model.calls.lock().unwrap().clone(),
                vec![vec![1, 2]],
                "one pass instead of two"
            );
        }
        // Two conditions: p1 and p2 are run (stacked), p0 is the residual.
        let model = dit(true);
        let node = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("guidance", guidance(&[("text", 5.0), ("action", 2.0)])),
                ("guidance_mode", ParamValue::Choice("residual".into())),
            ],
            vec![("m", model.clone())],
        )
        .unwrap();
        let got = eval_at(&*node, 500.0, 1.0, 1.0);
        // p1 = x + 0.5 + 10, p2 = p1 + 100
        let want = 2.0 + 5.0 * (11.5 - 2.0) + 2.0 * 100.0;
        assert!((got[0] - want).abs() < 1e-3, "{got:?}");
        assert_eq!(model.calls.lock().unwrap().clone(), vec![vec![2, 2]]);
    }

    #[test]
    fn cheaper_guidance_parameters_are_checked() {
        let model = dit(true);
        let err = |extra: Vec<(&'static str, ParamValue)>, with_guidance: bool| {
            let mut params = vec![("model", ParamValue::ModelRef("m".into()))];
            if with_guidance {
                params.push(("guidance", guidance(&[("text", 5.0)])));
            }
            params.extend(extra);
            let e = build_with(&Denoiser, params, vec![("m", model.clone())])
                .err()
                .unwrap();
            format!("{}: {}", e.param.unwrap_or_default(), e.message)
        };
        let interval = |v: Vec<f64>| vec![("guidance_interval", ParamValue::FloatList(v))];
        let residual = ("guidance_mode", ParamValue::Choice("residual".into()));
        let cases = [
            (
                err(interval(vec![0.8, 0.2]), true),
                "needs 0 <= lo <= hi <= 1",
            ),
            (err(interval(vec![0.2, 1.5]), true), "found [0.2, 1.5]"),
            (err(interval(vec![0.2]), true), "found 1 numbers"),
            (err(interval(vec![0.2, 0.8]), false), "which is not set"),
            (
                err(vec![residual.clone()], false),
                "guidance_mode: `guidance_mode = residual` replaces a pass",
            ),
            (
                err(
                    vec![("residual_reference", ParamValue::Str("ctx".into()))],
                    true,
                ),
                "`ctx` is not a condition of the model",
            ),
            (
                err(
                    vec![
                        residual.clone(),
                        ("residual_reference", ParamValue::Str("ctx".into())),
                    ],
                    true,
                ),
                "`ctx` is not a condition of the model (conditions: text, action)",
            ),
        ];
        for (got, want) in cases {
            assert!(got.contains(want), "{got}");
        }
        // The reference must have x's type.
        let node = guided(
            &model,
            vec![
                residual,
                ("residual_reference", ParamValue::Str("text".into())),
            ],
        );
        let types = [
            Some(ValueType::tensor(DType::F32, &[1, 2])),
            Some(ValueType::tensor(DType::F32, &[1])),
            Some(ValueType::tensor(DType::F32, &[1, 3])),
            Some(ValueType::tensor(DType::F32, &[1, 1])),
        ];
        let e = node.infer(&types, &mut NoInferCalls).unwrap_err();
        assert_eq!(e.input, Some(2));
        assert!(
            e.message.contains("must have the type of `x` (f32[1, 2])"),
            "{}",
            e.message
        );
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
