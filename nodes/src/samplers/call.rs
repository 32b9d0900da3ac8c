//! How a sampler calls its denoiser: the one callable every sampler has
//! ([`denoiser_call`]), the build-time checks of what the denoiser takes,
//! returns and predicts ([`infer_sampler`], [`infer_readout`]), and
//! [`FlowCall`], which calls a denoiser at a flow noise level σ whatever it
//! predicts — a rectified-flow velocity model directly, an ε-predicting VP
//! model through the VP/flow correspondence ([`VpAsFlow`]) — and returns
//! the x₀ and ε estimates a step rule needs. [`DenoiserCall`] keeps the
//! call chosen at build time for the ticks.

use super::diffusion::{
    Readout, Spacing, alpha_at, ddim_timesteps, flow_schedule, flow_sigma_of_alpha, vp_scale,
    vp_timestep,
};
use super::schedule::{NoiseModel, VpTable, from_flow, to_flow};
use crate::common::*;

/// When the callee's output names are known (a model's outputs, a kind's
/// ports), its first output must be `want`: a sampler `kind` given a
/// denoiser that predicts something else fails at build time, pointing at
/// the sampler that fits (`other_kind` for `other` predictors).
pub(crate) fn check_prediction(
    calls: &dyn InferCalls,
    index: usize,
    denoiser: &str,
    kind: &str,
    (want, other_kind, other): (&str, &str, &str),
) -> Result<(), TypeError> {
    let names = calls.callee_outputs(index);
    match names.first() {
        None => Ok(()),
        Some(first) if first == want => Ok(()),
        Some(first) => {
            let hint = if first == other {
                format!("use `{other_kind}` for {other} models")
            } else {
                format!("its first output must be named `{want}`")
            };
            let article = if want.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            Err(TypeError::node(format!(
                "`{kind}` needs {article} {want}-predicting denoiser, but `denoiser = @{denoiser}` gives `{first}` ({hint})"
            )))
        }
    }
}

/// The one callable of every sampler: `@denoiser`, called with `(x, t)`.
pub(crate) fn denoiser_call() -> Vec<CallSpec> {
    vec![CallSpec {
        param: "denoiser".into(),
        args: vec!["x".into(), "t".into()],
    }]
}

/// The build-time type check every sampler does: the denoiser predicts
/// `want` (see [`check_prediction`]), accepts `(x, t: f32[1])` with `x` the
/// type of the sampler's `noise` input, and returns that type; the sampler
/// then outputs it.
pub(crate) fn infer_sampler(
    inputs: &[Option<ValueType>],
    calls: &mut dyn InferCalls,
    index: usize,
    denoiser: &str,
    (kind, want): (&str, &str),
    (other_kind, other): (&str, &str),
    rows: usize,
) -> Result<Vec<ValueType>, TypeError> {
    check_prediction(&*calls, index, denoiser, kind, (want, other_kind, other))?;
    infer_denoiser_types(inputs, calls, index, denoiser, rows)
}

/// The type half of [`infer_sampler`], for a denoiser whose prediction is
/// already known from its metadata (its output may have any name). `rows`
/// is 1 for a sampler of one frame: the call is `(x: noise's type, t:
/// f32[1])`; a window of `rows` frames ([`df_window`](super::df_window)) calls with x's
/// leading dimension `rows` and `t: f32[rows]`, and gets that back.
pub(crate) fn infer_denoiser_types(
    inputs: &[Option<ValueType>],
    calls: &mut dyn InferCalls,
    index: usize,
    denoiser: &str,
    rows: usize,
) -> Result<Vec<ValueType>, TypeError> {
    let mut x = f32_in(inputs, 0)?.clone();
    if rows > 1
        && let Some(d) = x.shape.first_mut()
    {
        *d = Dim::Known(rows);
    }
    let x = &x;
    let outs = calls
        .infer_call(
            index,
            &[
                ValueType::Tensor(x.clone()),
                ValueType::tensor(DType::F32, &[rows]),
            ],
        )
        .map_err(|e| TypeError {
            input: None,
            message: format!("denoiser `@{denoiser}`: {}", e.message),
            consequence: e.consequence,
        })?;
    let first = outs.first().and_then(ValueType::as_tensor);
    if first.is_some_and(|v| unify_types(x, v).is_some()) {
        return Ok(vec![
            inputs[0].clone().unwrap_or(ValueType::Tensor(x.clone())),
        ]);
    }
    let found = outs.first().map_or("nothing".into(), ToString::to_string);
    Err(TypeError::node(format!(
        "the denoiser `@{denoiser}` returns {found} as its first output, but the sampler needs {x} (the type of `noise`)"
    )))
}

/// The readout of callable `index` for sampler `kind`: from its [`Prediction`]
/// when it declares one, else from its first output's name (`velocity`, or
/// `epsilon` where `epsilon_ok` — ddim's own schedule — says so), with the
/// type check of [`infer_sampler`].
pub(crate) fn infer_readout(
    inputs: &[Option<ValueType>],
    calls: &mut dyn InferCalls,
    index: usize,
    denoiser: &str,
    kind: &str,
    epsilon_ok: bool,
    rows: usize,
) -> Result<(Vec<ValueType>, Readout, Option<Prediction>), TypeError> {
    if let Some(prediction) = calls.callee_prediction(index) {
        let readout = Readout::of(&prediction)
            .map_err(|why| TypeError::node(format!("`{kind}` cannot run `@{denoiser}`: {why}")))?;
        let types = infer_denoiser_types(inputs, calls, index, denoiser, rows)?;
        return Ok((types, readout, Some(prediction)));
    }
    let names = calls.callee_outputs(index);
    if epsilon_ok && names.first().is_none_or(|n| n != "velocity") {
        let types = infer_sampler(
            inputs,
            calls,
            index,
            denoiser,
            (kind, "epsilon"),
            ("euler", "velocity"),
            rows,
        )?;
        return Ok((types, Readout::VpEpsilon, None));
    }
    let types = infer_sampler(
        inputs,
        calls,
        index,
        denoiser,
        (kind, "velocity"),
        ("ddim", "epsilon"),
        rows,
    )?;
    Ok((types, Readout::FlowVelocity, None))
}

/// How a flow-space sampler calls its denoiser (decided at build time): a
/// flow model at `(x, 1000σ)`, a VP model at the VP point and (fractional)
/// timestep of the same noise level ([`VpAsFlow`]).
#[derive(Debug, Clone)]
pub(crate) struct FlowCall {
    readout: Readout,
    model: NoiseModel,
    /// Which of the node's callables it is (`Node::calls` order).
    callee: usize,
}

impl FlowCall {
    /// A rectified-flow velocity model (the default before inference).
    pub(crate) const VELOCITY: FlowCall = FlowCall {
        readout: Readout::FlowVelocity,
        model: NoiseModel::Flow,
        callee: 0,
    };

    /// Type-checks callable `index` (see [`infer_readout`]; `rows` frames
    /// per call, `epsilon_ok` as there) and picks the call from what it
    /// predicts; a VP model brings its ᾱ table.
    pub(crate) fn infer_callee(
        inputs: &[Option<ValueType>],
        calls: &mut dyn InferCalls,
        index: usize,
        denoiser: &str,
        kind: &str,
        rows: usize,
        epsilon_ok: bool,
    ) -> Result<(Vec<ValueType>, FlowCall), TypeError> {
        let (types, readout, prediction) =
            infer_readout(inputs, calls, index, denoiser, kind, epsilon_ok, rows)?;
        let model = match prediction.map(|p| p.process) {
            Some(NoiseProcess::Vp {
                beta_start,
                beta_end,
                train_steps,
                scaled,
            }) if readout.is_vp() => NoiseModel::Vp(VpTable::from_betas(
                beta_start,
                beta_end,
                train_steps,
                scaled,
            )),
            Some(NoiseProcess::Ve {
                sigma_min,
                sigma_max,
            }) if readout.is_ve() => NoiseModel::Ve {
                sigma_min,
                sigma_max,
            },
            _ => NoiseModel::Flow,
        };
        Ok((
            types,
            FlowCall {
                readout,
                model,
                callee: index,
            },
        ))
    }

    /// The model's noise levels (flow, or its VP table).
    pub(crate) fn model(&self) -> &NoiseModel {
        &self.model
    }

    /// Calls the denoiser at native level σ ([`super::schedule`]: the flow
    /// level of a flow model, the VE σ of a VP model, whose input is then
    /// `x/√(σ²+1)` at the timestep of σ interpolated in log σ, the σ of a
    /// ve model, called at `(x, σ)`) on `x` at that level
    /// (`x = α·x₀ + σ·ε`, α = 1−σ for flow, 1 for VP and VE); returns the
    /// (x₀, ε) estimates.
    pub(crate) fn denoise_native(
        &self,
        cx: &mut TickContext<'_>,
        denoiser: &str,
        shape: &[usize],
        x: &[f32],
        sigma: f64,
    ) -> Result<(Vec<f32>, Vec<f32>), NodeError> {
        let level = match &self.model {
            NoiseModel::Vp(vp) => {
                let s = sigma.clamp(vp.sigma_min(), vp.sigma_max());
                let t = vp.t_of_sigma(s);
                let a = 1.0 / (1.0 + s * s);
                Level {
                    t: t as f32,
                    scale: a.sqrt(),
                    sigma,
                    alpha: a,
                }
            }
            NoiseModel::Ve { .. } => ve_level(sigma, 1.0),
            NoiseModel::Flow => Level {
                t: (1000.0 * sigma) as f32,
                scale: 1.0,
                sigma,
                alpha: 0.0,
            },
        };
        self.run(cx, denoiser, shape, x, &[level])
    }

    /// How the denoiser's output reads.
    pub(crate) fn readout(&self) -> Readout {
        self.readout
    }

    /// Which of the node's callables it is (`Node::calls` order).
    pub(crate) fn callee(&self) -> usize {
        self.callee
    }

    /// Calls the denoiser at flow level σ (0 < σ ≤ 1) on `x` (the flow
    /// point); returns its (x₀, ε) estimates, `x = (1−σ)·x₀ + σ·ε`.
    pub(crate) fn denoise(
        &self,
        cx: &mut TickContext<'_>,
        denoiser: &str,
        shape: &[usize],
        x: &[f32],
        sigma: f64,
    ) -> Result<(Vec<f32>, Vec<f32>), NodeError> {
        self.denoise_rows(cx, denoiser, shape, x, &[sigma])
    }

    /// [`FlowCall::denoise`] on a window: `x` (of `shape`) holds
    /// `sigmas.len()` frames as equal rows, row k at level `sigmas[k]`; one
    /// call with `t: f32[rows]`.
    pub(crate) fn denoise_rows(
        &self,
        cx: &mut TickContext<'_>,
        denoiser: &str,
        shape: &[usize],
        x: &[f32],
        sigmas: &[f64],
    ) -> Result<(Vec<f32>, Vec<f32>), NodeError> {
        // Per row: the model's t, the flow → model scale, and ᾱ (VP).
        let levels: Vec<Level> = sigmas
            .iter()
            .map(|&sigma| match &self.model {
                NoiseModel::Vp(vp) => {
                    let (t, a) = vp_timestep(vp, sigma);
                    Level {
                        t: t as f32,
                        scale: vp_scale(a),
                        sigma,
                        alpha: a,
                    }
                }
                NoiseModel::Ve { sigma_max, .. } => {
                    // The flow point times 1 + σ is the VE point (flow
                    // level 1, pure noise, is read at σ_max).
                    let ve = from_flow(sigma.clamp(0.0, 1.0)).min(*sigma_max);
                    ve_level(ve, 1.0 + ve)
                }
                NoiseModel::Flow => Level {
                    t: (1000.0 * sigma) as f32,
                    scale: 1.0,
                    sigma,
                    alpha: 0.0,
                },
            })
            .collect();
        self.run(cx, denoiser, shape, x, &levels)
    }

    /// One call on `x` with a row per level: the model's input is each row
    /// times its `scale`, read back at (`sigma`, `alpha`).
    fn run(
        &self,
        cx: &mut TickContext<'_>,
        denoiser: &str,
        shape: &[usize],
        x: &[f32],
        levels: &[Level],
    ) -> Result<(Vec<f32>, Vec<f32>), NodeError> {
        let row = x.len() / levels.len().max(1);
        let t = Tensor::from_f32(&[levels.len()], levels.iter().map(|l| l.t).collect())?;
        let xt = Tensor::from_f32(
            shape,
            x.chunks(row.max(1))
                .zip(levels)
                .flat_map(|(r, l)| {
                    let scale = l.scale;
                    r.iter().map(move |v| (f64::from(*v) * scale) as f32)
                })
                .collect(),
        )?;
        let out = cx.call(self.callee, vec![xt.into(), t.into()])?;
        let y = match out.first() {
            Some(Value::Tensor(y)) if y.shape() == shape => y.host_f32()?,
            other => {
                let found = other.map_or("nothing".into(), |v| v.value_type().to_string());
                return Err(NodeError::new(format!(
                    "the denoiser `@{denoiser}` returned {found}, expected f32{shape:?}"
                )));
            }
        };
        let (mut x0, mut eps) = (Vec::with_capacity(x.len()), Vec::with_capacity(x.len()));
        for ((xr, yr), l) in x.chunks(row.max(1)).zip(y.chunks(row.max(1))).zip(levels) {
            for (&xv, &yv) in xr.iter().zip(yr) {
                let (a, e) =
                    self.readout
                        .estimate(f64::from(xv) * l.scale, f64::from(yv), l.sigma, l.alpha);
                x0.push(a as f32);
                eps.push(e as f32);
            }
        }
        Ok((x0, eps))
    }

    /// The factor from a frame of pure noise to its flow point at the top
    /// level σ₀: 1 for a flow model (σ₀ = 1); for a VP model DDIM's start
    /// x_T = noise is a VP point, whose flow point is `noise/(√ᾱ + √(1−ᾱ))`.
    pub(crate) fn entry_scale(&self, sigma0: f64) -> f64 {
        match &self.model {
            NoiseModel::Vp(vp) => {
                let (_, a) = vp_timestep(vp, sigma0);
                1.0 / vp_scale(a)
            }
            // x = noise·σ₀ (VE), whose flow point is noise·σ₀/(1+σ₀).
            NoiseModel::Ve { .. } => sigma0,
            NoiseModel::Flow => 1.0,
        }
    }

    /// The `frames` noise levels (flow σ, descending) a window of that many
    /// frames steps through before σ = 0: a VP model's `trailing` DDIM
    /// timesteps (so a window of 4 visits DDIM-4's levels), a flow model's
    /// [`flow_schedule`] with `shift`.
    pub(crate) fn window_levels(&self, frames: usize, shift: f64) -> Vec<f64> {
        match &self.model {
            NoiseModel::Vp(vp) => ddim_timesteps(frames, vp.train_steps(), Spacing::Trailing)
                .into_iter()
                .map(|t| flow_sigma_of_alpha(alpha_at(vp.alphas_cumprod(), t as f64)))
                .chain([0.0])
                .collect(),
            // A ve model: log-linear from σ_max down to σ_min.
            NoiseModel::Ve {
                sigma_min,
                sigma_max,
            } => super::schedule::linspace(sigma_max.ln(), sigma_min.ln(), frames)
                .into_iter()
                .map(|l| to_flow(l.exp()))
                .chain([0.0])
                .collect(),
            NoiseModel::Flow => flow_schedule(frames, shift),
        }
    }
}

/// A ve model's level: called with `t = σ` on the sampler's point times
/// `scale`, read at ᾱ = 1/(1+σ²) ([`Readout::estimate`]).
fn ve_level(sigma: f64, scale: f64) -> Level {
    Level {
        t: sigma as f32,
        scale,
        sigma,
        alpha: 1.0 / (1.0 + sigma * sigma),
    }
}

/// One row's level in a call: the model's timestep, the factor from the
/// sampler's point to the model's input, and the (σ, ᾱ) its output is read
/// at ([`Readout::estimate`]).
#[derive(Debug, Clone, Copy)]
struct Level {
    t: f32,
    scale: f64,
    sigma: f64,
    alpha: f64,
}

/// How a flow sampler calls its denoiser, chosen once when the graph is
/// built (in `Node::infer`) and read by reference every tick.
#[derive(Debug, Default)]
pub(crate) struct DenoiserCall(std::sync::OnceLock<FlowCall>);

impl DenoiserCall {
    /// [`FlowCall::infer_callee`] for callable `index`, remembering the call.
    pub(crate) fn infer(
        &self,
        inputs: &[Option<ValueType>],
        calls: &mut dyn InferCalls,
        index: usize,
        denoiser: &str,
        kind: &str,
    ) -> Result<Vec<ValueType>, TypeError> {
        let (types, call) = FlowCall::infer_callee(inputs, calls, index, denoiser, kind, 1, false)?;
        // Build-time configuration found by inference; set once.
        let _ = self.0.set(call);
        Ok(types)
    }

    /// Remembers a call inferred elsewhere ([`FlowCall::infer_callee`]).
    pub(crate) fn set(&self, call: FlowCall) {
        // Build-time configuration found by inference; set once.
        let _ = self.0.set(call);
    }

    /// The call chosen at build time (a flow velocity model before that).
    pub(crate) fn get(&self) -> &FlowCall {
        self.0.get().unwrap_or(&FlowCall::VELOCITY)
    }
}
