//! The samplers: each a short file of its schedule and step rule over the
//! helpers here (k-diffusion's shape).
//!
//! - [`euler`] — rectified-flow Euler with Yume's shifted schedule;
//! - [`sde`] — Euler–Maruyama in Yume's form (η);
//! - [`self_forcing`] — few-step: predict x₀, re-noise with fresh noise to the
//!   next level of a step list;
//! - [`tts`] — Yume's Time Travel Sampling (`tts_ode`, `tts_sde`): every
//!   `interval`-th step reuses the velocity of a `depth`-step look-ahead;
//! - [`ddim`] — DDIM (diffusers semantics) on the VP ᾱ schedule;
//! - [`aam`] — Yume's Anti-Artifact Mechanism: two passes, the second taking
//!   the first's low frequencies for its first steps;
//! - [`df_window`] — diffusion forcing / Yan-Sim's shift-window denoising: a
//!   window of frames at staggered levels, one batched call per frame.
//!
//! Shared: the one callable every sampler has ([`denoiser_call`]), the
//! build-time type check ([`infer_sampler`]), and [`FlowCall`], which calls a
//! denoiser at a flow noise level σ whatever it predicts — a rectified-flow
//! velocity model directly, an ε-predicting VP model through the VP/flow
//! correspondence ([`VpAsFlow`]) — and returns the x₀ and ε estimates a step
//! rule needs. Step noise ([`step_noise`]) comes from the seeded RNG or, when
//! wired, from the sampler's `step_noise` input (one tensor per step, stacked
//! on a leading axis), so a reference can replay exact noise.
//!
//! **To add a sampler:** a file with its `NodeKind` (parameters:
//! `flow_sampler_params![…its own…]`) and a `Node` that keeps a
//! [`DenoiserCall`] (set in `infer`, read by reference in `eval`) and whose
//! `eval` is its step rule over [`FlowCall::denoise`], and one `register`
//! line in the crate's `registry()`.

pub mod aam;
pub mod ddim;
pub mod df_window;
pub mod euler;
pub mod sde;
pub mod self_forcing;
pub mod tts;

use crate::common::*;
use crate::rng::Stream;

pub use euler::flow_schedule;

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
/// f32[1])`; a window of `rows` frames ([`df_window`]) calls with x's
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

/// A VP ε-model seen as a flow model: its ᾱ table.
#[derive(Debug, Clone)]
pub(crate) struct VpAsFlow {
    alphas_cumprod: Vec<f64>,
}

impl VpAsFlow {
    pub(crate) fn new(alphas_cumprod: Vec<f64>) -> Self {
        VpAsFlow { alphas_cumprod }
    }

    /// The ᾱ table.
    pub(crate) fn table(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// The model's training timesteps (the table's length).
    pub(crate) fn train_steps(&self) -> usize {
        self.alphas_cumprod.len()
    }

    /// The (fractional) timestep whose ᾱ matches flow σ, and that ᾱ
    /// (clamped to the table's range).
    pub(crate) fn timestep(&self, sigma: f64) -> (f64, f64) {
        let ac = &self.alphas_cumprod;
        let last = ac.len().saturating_sub(1);
        let sigma = sigma.clamp(0.0, 1.0);
        let target = if sigma >= 1.0 {
            0.0
        } else {
            let r = sigma / (1.0 - sigma);
            1.0 / (1.0 + r * r)
        };
        if ac.is_empty() {
            return (0.0, 1.0);
        }
        if target >= ac[0] {
            return (0.0, ac[0]);
        }
        if target <= ac[last] {
            return (last as f64, ac[last]);
        }
        // ᾱ decreases with t: the first index whose ᾱ is below the target.
        let i = ac.partition_point(|&a| a >= target).max(1);
        let (hi, lo) = (ac[i - 1], ac[i]);
        let frac = (hi - target) / (hi - lo);
        ((i - 1) as f64 + frac, target)
    }
}

/// `steps` (1..=10000), checked.
pub(crate) fn steps_param(cx: &BuildContext<'_>) -> Result<usize, BuildError> {
    let steps = cx.params.int("steps")?;
    usize::try_from(steps)
        .ok()
        .filter(|s| (1..=10_000).contains(s))
        .ok_or_else(|| {
            BuildError::param(
                "steps",
                format!("`steps` must be between 1 and 10000, found {steps}"),
            )
        })
}

/// The σ schedule of a flow-space sampler: `steps` levels from σ = 1 to 0,
/// warped by a fixed `shift` (Yume, SD3) or by one computed from the
/// latent's size (`dynamic_shift`, Flux / diffusers' `use_dynamic_shifting`).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSchedule {
    steps: usize,
    shift: Shift,
}

#[derive(Debug, Clone, PartialEq)]
enum Shift {
    Fixed(f64),
    Dynamic(DynamicShift),
}

/// Resolution-dependent shift: `μ` is linear in the latent's token count
/// (`base_shift` at `base_tokens`, `max_shift` at `max_tokens`, extrapolated
/// beyond), and the shift is `e^μ`, so `σ ← e^μ·σ / (1 + (e^μ − 1)·σ)` — the
/// time shift `e^μ / (e^μ + (1/σ − 1))` of diffusers' flow-match scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicShift {
    pub base_shift: f64,
    pub max_shift: f64,
    pub base_tokens: f64,
    pub max_tokens: f64,
    /// Tokens are the latent's positions after its channel axis over `patch²`.
    pub patch: usize,
}

impl DynamicShift {
    /// Tokens of a latent of `shape` (`[B, C, …]`): positions after the
    /// channel axis, over `patch²`.
    pub fn tokens(&self, shape: &[usize]) -> f64 {
        let positions: usize = shape.iter().skip(2).product();
        positions as f64 / (self.patch * self.patch) as f64
    }

    /// The shift `e^μ` for a latent of `shape`.
    pub fn shift(&self, shape: &[usize]) -> f64 {
        let slope = (self.max_shift - self.base_shift) / (self.max_tokens - self.base_tokens);
        let mu = self.base_shift + slope * (self.tokens(shape) - self.base_tokens);
        mu.exp()
    }
}

impl FlowSchedule {
    /// A fixed-shift schedule.
    pub fn fixed(steps: usize, shift: f64) -> FlowSchedule {
        FlowSchedule {
            steps,
            shift: Shift::Fixed(shift),
        }
    }

    /// The number of denoiser steps.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The `steps + 1` noise levels for a latent of `shape`.
    pub fn sigmas(&self, shape: &[usize]) -> Vec<f64> {
        let shift = match &self.shift {
            Shift::Fixed(s) => *s,
            Shift::Dynamic(d) => d.shift(shape),
        };
        flow_schedule(self.steps, shift)
    }

    /// Reads `steps`, `shift` and the dynamic-shift parameters
    /// ([`FLOW_SCHEDULE_PARAMS`]); `shift` written together with
    /// `dynamic_shift = true` is an error (one of them decides).
    pub(crate) fn from_params(cx: &BuildContext<'_>) -> Result<FlowSchedule, BuildError> {
        let steps = steps_param(cx)?;
        let positive = |name: &str| -> Result<f64, BuildError> {
            let v = finite_param(cx, name)?;
            if v > 0.0 {
                Ok(v)
            } else {
                Err(BuildError::param(
                    name,
                    format!("`{name}` must be positive, found {v}"),
                ))
            }
        };
        let shift = positive("shift")?;
        if !cx.params.bool("dynamic_shift")? {
            return Ok(FlowSchedule::fixed(steps, shift));
        }
        if cx.params.span("shift").is_some() {
            return Err(BuildError::param(
                "shift",
                "`shift` and `dynamic_shift = true` both set the schedule's shift: remove one",
            ));
        }
        let dynamic = DynamicShift {
            base_shift: finite_param(cx, "base_shift")?,
            max_shift: finite_param(cx, "max_shift")?,
            base_tokens: positive("base_tokens")?,
            max_tokens: positive("max_tokens")?,
            patch: usize::try_from(cx.params.int("patch")?)
                .ok()
                .filter(|p| (1..=64).contains(p))
                .ok_or_else(|| BuildError::param("patch", "`patch` must be between 1 and 64"))?,
        };
        if dynamic.max_tokens <= dynamic.base_tokens {
            return Err(BuildError::param(
                "max_tokens",
                format!(
                    "`max_tokens` ({}) must be above `base_tokens` ({})",
                    dynamic.max_tokens, dynamic.base_tokens
                ),
            ));
        }
        Ok(FlowSchedule {
            steps,
            shift: Shift::Dynamic(dynamic),
        })
    }
}

/// `steps` of a flow-space sampler.
pub(crate) const STEPS: ParamSpec = ParamSpec::optional(
    "steps",
    ParamType::Int,
    ParamDefault::Int(4),
    "number of steps (>= 1)",
);
/// `shift` of the shifted flow schedule ([`flow_schedule`]).
pub(crate) const SHIFT: ParamSpec = ParamSpec::optional(
    "shift",
    ParamType::Float,
    ParamDefault::Float(1.0),
    "schedule shift s > 0; larger spends more steps at high noise",
);
/// `dynamic_shift`: a shift computed from the latent's size.
pub(crate) const DYNAMIC_SHIFT: ParamSpec = ParamSpec::optional(
    "dynamic_shift",
    ParamType::Bool,
    ParamDefault::Bool(false),
    "shift = e^μ with μ linear in the latent's tokens (Flux); replaces `shift`",
);
pub(crate) const BASE_SHIFT: ParamSpec = ParamSpec::optional(
    "base_shift",
    ParamType::Float,
    ParamDefault::Float(0.5),
    "dynamic shift: μ at `base_tokens`",
);
pub(crate) const MAX_SHIFT: ParamSpec = ParamSpec::optional(
    "max_shift",
    ParamType::Float,
    ParamDefault::Float(1.15),
    "dynamic shift: μ at `max_tokens`",
);
pub(crate) const BASE_TOKENS: ParamSpec = ParamSpec::optional(
    "base_tokens",
    ParamType::Float,
    ParamDefault::Float(256.0),
    "dynamic shift: token count where μ = `base_shift`",
);
pub(crate) const MAX_TOKENS: ParamSpec = ParamSpec::optional(
    "max_tokens",
    ParamType::Float,
    ParamDefault::Float(4096.0),
    "dynamic shift: token count where μ = `max_shift`",
);
pub(crate) const PATCH: ParamSpec = ParamSpec::optional(
    "patch",
    ParamType::Int,
    ParamDefault::Int(2),
    "dynamic shift: tokens = latent positions / patch²",
);

/// `eta` of the SDE samplers.
pub(crate) const ETA: ParamSpec = ParamSpec::optional(
    "eta",
    ParamType::Float,
    ParamDefault::Float(0.3),
    "noise scale η >= 0 (0: the ODE)",
);
/// The callable every sampler has.
pub(crate) const DENOISER: ParamSpec = ParamSpec::required(
    "denoiser",
    ParamType::NodeRef,
    "the denoiser: flow velocity / x₀, or VP ε / v / x₀ (converted from its metadata)",
);

/// `eta`, checked (>= 0).
pub(crate) fn eta_param(cx: &BuildContext<'_>) -> Result<f64, BuildError> {
    let eta = finite_param(cx, "eta")?;
    if eta < 0.0 {
        return Err(BuildError::param(
            "eta",
            format!("`eta` must be >= 0, found {eta}"),
        ));
    }
    Ok(eta)
}

/// The inputs of a stochastic sampler: `noise`, and the optional `step_noise`.
pub(crate) fn stochastic_inputs() -> Vec<PortSpec> {
    vec![PortSpec::wired("noise"), PortSpec::optional("step_noise")]
}

/// The one output of every sampler.
pub(crate) fn latent_output() -> Vec<PortSpec> {
    vec![PortSpec::output("latent")]
}

/// The wired `step_noise` of a stochastic sampler (input 1), if any.
pub(crate) fn wired_step_noise(inputs: &[Option<Value>]) -> Option<&Tensor> {
    match inputs.get(1) {
        Some(Some(Value::Tensor(t))) => Some(t),
        _ => None,
    }
}

/// How a denoiser's output is read (decided at build time from what its
/// metadata says it predicts, [`Prediction`]): the pairs of noise process
/// and prediction target a sampler can convert to (x₀, ε) estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readout {
    /// Rectified flow, velocity `v = ε − x₀` (called at `t = 1000σ`).
    FlowVelocity,
    /// Rectified flow, the clean sample x₀.
    FlowSample,
    /// VP (DDPM), the noise ε.
    VpEpsilon,
    /// VP, v-prediction `v = √ᾱ·ε − √(1−ᾱ)·x₀` (diffusers' `v_prediction`).
    VpV,
    /// VP, the clean sample x₀.
    VpSample,
}

impl Readout {
    /// The readout of a model that says what it predicts; an error says why
    /// the pair cannot be read (for the sampler's message).
    pub fn of(prediction: &Prediction) -> Result<Readout, String> {
        let vp = matches!(prediction.process, NoiseProcess::Vp { .. });
        match (prediction.output.as_str(), vp) {
            ("velocity", false) => Ok(Readout::FlowVelocity),
            ("sample" | "x0", false) => Ok(Readout::FlowSample),
            ("epsilon", true) => Ok(Readout::VpEpsilon),
            ("v" | "v_prediction", true) => Ok(Readout::VpV),
            ("sample" | "x0", true) => Ok(Readout::VpSample),
            ("velocity", true) => Err(
                "it predicts `velocity` but has a VP beta schedule (for diffusers' v-prediction write `prediction = v`)"
                    .into(),
            ),
            ("epsilon" | "v" | "v_prediction", false) => Err(format!(
                "it predicts `{}` but has no VP beta schedule (`epsilon` and `v` need `schedule`, `beta_start`, `beta_end`)",
                prediction.output
            )),
            (other, _) => Err(format!(
                "it predicts `{other}`, which no sampler reads (epsilon, velocity, sample, v)"
            )),
        }
    }

    /// Whether the model is called at VP points and timesteps.
    pub fn is_vp(self) -> bool {
        matches!(self, Readout::VpEpsilon | Readout::VpV | Readout::VpSample)
    }

    /// The (x₀, ε) estimates from the model's output `y` at its input `xm`:
    /// the flow point at level σ for flow models (`xm = (1−σ)·x₀ + σ·ε`),
    /// the VP point at ᾱ for VP models (`xm = √ᾱ·x₀ + √(1−ᾱ)·ε`).
    pub fn estimate(self, xm: f64, y: f64, sigma: f64, alpha: f64) -> (f64, f64) {
        let (sa, sb) = (alpha.sqrt(), (1.0 - alpha).sqrt());
        match self {
            Readout::FlowVelocity => (xm - sigma * y, xm + (1.0 - sigma) * y),
            Readout::FlowSample => (y, (xm - (1.0 - sigma) * y) / sigma),
            Readout::VpEpsilon => ((xm - sb * y) / sa, y),
            Readout::VpV => (sa * xm - sb * y, sb * xm + sa * y),
            Readout::VpSample => (y, (xm - sa * y) / sb),
        }
    }

    /// The inverse of [`Readout::estimate`]: the output a model would give at
    /// `xm` if its x₀ estimate were `x0` (its ε estimate is then the
    /// residual noise `(xm − (1−σ)·x0)/σ`, VP `(xm − √ᾱ·x0)/√(1−ᾱ)`).
    /// Needs σ > 0 (flow) or ᾱ < 1 (VP).
    pub fn prediction(self, xm: f64, x0: f64, sigma: f64, alpha: f64) -> f64 {
        let (sa, sb) = (alpha.sqrt(), (1.0 - alpha).sqrt());
        match self {
            Readout::FlowVelocity => (xm - x0) / sigma,
            Readout::FlowSample | Readout::VpSample => x0,
            Readout::VpEpsilon => (xm - sa * x0) / sb,
            Readout::VpV => sa * (xm - sa * x0) / sb - sb * x0,
        }
    }
}

/// ᾱ at a (fractional) timestep `t` of a VP table: linear between the
/// integer timesteps (as [`VpAsFlow::timestep`] chose `t`), clamped to the
/// table.
pub(crate) fn alpha_at(alphas_cumprod: &[f64], t: f64) -> f64 {
    let Some(last) = alphas_cumprod.len().checked_sub(1) else {
        return 1.0;
    };
    let t = t.clamp(0.0, last as f64);
    let i = (t.floor() as usize).min(last);
    let frac = t - i as f64;
    if i == last || frac == 0.0 {
        return alphas_cumprod[i];
    }
    alphas_cumprod[i] + frac * (alphas_cumprod[i + 1] - alphas_cumprod[i])
}

/// The flow σ of the VP noise level ᾱ: `√(1−ᾱ)/(√ᾱ + √(1−ᾱ))`.
pub(crate) fn flow_sigma_of_alpha(alpha: f64) -> f64 {
    let (sa, sb) = (alpha.sqrt(), (1.0 - alpha).sqrt());
    sb / (sa + sb)
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
    vp: Option<VpAsFlow>,
    /// Which of the node's callables it is (`Node::calls` order).
    callee: usize,
}

impl FlowCall {
    /// A rectified-flow velocity model (the default before inference).
    pub(crate) const VELOCITY: FlowCall = FlowCall {
        readout: Readout::FlowVelocity,
        vp: None,
        callee: 0,
    };

    /// Type-checks callable `index` (see [`infer_sampler`]; `rows` frames
    /// per call) and picks the call from what it predicts; a VP model brings
    /// its ᾱ table.
    pub(crate) fn infer_callee(
        inputs: &[Option<ValueType>],
        calls: &mut dyn InferCalls,
        index: usize,
        denoiser: &str,
        kind: &str,
        rows: usize,
    ) -> Result<(Vec<ValueType>, FlowCall), TypeError> {
        let (types, readout, prediction) =
            infer_readout(inputs, calls, index, denoiser, kind, false, rows)?;
        let vp = match prediction.map(|p| p.process) {
            Some(NoiseProcess::Vp {
                beta_start,
                beta_end,
                train_steps,
                scaled,
            }) if readout.is_vp() => Some(VpAsFlow::new(ddim::alphas_cumprod(
                beta_start,
                beta_end,
                train_steps,
                scaled,
            ))),
            _ => None,
        };
        Ok((
            types,
            FlowCall {
                readout,
                vp,
                callee: index,
            },
        ))
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
        let levels: Vec<(f32, f64, f64)> = sigmas
            .iter()
            .map(|&sigma| match &self.vp {
                Some(vp) => {
                    let (t, a) = vp.timestep(sigma);
                    (t as f32, a.sqrt() + (1.0 - a).sqrt(), a)
                }
                None => ((1000.0 * sigma) as f32, 1.0, 0.0),
            })
            .collect();
        let row = x.len() / sigmas.len().max(1);
        let t = Tensor::from_f32(&[levels.len()], levels.iter().map(|l| l.0).collect())?;
        let xt = Tensor::from_f32(
            shape,
            x.chunks(row.max(1))
                .zip(&levels)
                .flat_map(|(r, &(_, scale, _))| {
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
        for ((xr, yr), (&sigma, &(_, scale, alpha))) in x
            .chunks(row.max(1))
            .zip(y.chunks(row.max(1)))
            .zip(sigmas.iter().zip(&levels))
        {
            for (&xv, &yv) in xr.iter().zip(yr) {
                let (a, e) =
                    self.readout
                        .estimate(f64::from(xv) * scale, f64::from(yv), sigma, alpha);
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
        match &self.vp {
            Some(vp) => {
                let (_, a) = vp.timestep(sigma0);
                1.0 / (a.sqrt() + (1.0 - a).sqrt())
            }
            None => 1.0,
        }
    }

    /// The `frames` noise levels (flow σ, descending) a window of that many
    /// frames steps through before σ = 0: a VP model's `trailing` DDIM
    /// timesteps (so a window of 4 visits DDIM-4's levels), a flow model's
    /// [`flow_schedule`] with `shift`.
    pub(crate) fn window_levels(&self, frames: usize, shift: f64) -> Vec<f64> {
        match &self.vp {
            Some(vp) => ddim::ddim_timesteps(frames, vp.train_steps(), ddim::Spacing::Trailing)
                .into_iter()
                .map(|t| flow_sigma_of_alpha(alpha_at(vp.table(), t as f64)))
                .chain([0.0])
                .collect(),
            None => flow_schedule(frames, shift),
        }
    }
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
        let (types, call) = FlowCall::infer_callee(inputs, calls, index, denoiser, kind, 1)?;
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

/// The parameters of a flow-schedule sampler: steps and the (fixed or
/// dynamic) shift, then the kind's own.
macro_rules! flow_sampler_params {
    ($($own:expr),* $(,)?) => {
        &[
            super::STEPS,
            super::SHIFT,
            super::DYNAMIC_SHIFT,
            super::BASE_SHIFT,
            super::MAX_SHIFT,
            super::BASE_TOKENS,
            super::MAX_TOKENS,
            super::PATCH,
            $($own),*
        ]
    };
}
pub(crate) use flow_sampler_params;

/// Gaussian noise for step `step` of a stochastic sampler: slice `step` of
/// the wired `step_noise` input when there is one (checked to hold a slice
/// per step), else the counter-based RNG keyed by (seed, tick, step).
pub(crate) fn step_noise(
    wired: Option<&Tensor>,
    seed: u64,
    tick: u64,
    step: usize,
    out: &mut Vec<f32>,
    len: usize,
) -> Result<(), NodeError> {
    out.clear();
    match wired {
        Some(t) => {
            let data = t.host_f32()?;
            let slice = data.get(step * len..(step + 1) * len).ok_or_else(|| {
                NodeError::new(format!(
                    "`step_noise` is {} but step {step} needs elements {}..{}",
                    t.tensor_type(),
                    step * len,
                    (step + 1) * len
                ))
            })?;
            out.extend_from_slice(slice);
        }
        None => {
            out.resize(len, 0.0);
            Stream::new(crate::rng::mix(seed ^ crate::rng::mix(tick)), step as u64)
                .fill_gaussian(out);
        }
    }
    Ok(())
}

/// The `step_noise` input's check: f32 `[steps, *noise]` or, flattened, with
/// `steps × |noise|` elements.
pub(crate) fn check_step_noise(
    inputs: &[Option<ValueType>],
    port: usize,
    steps: usize,
) -> Result<(), TypeError> {
    let (Some(Some(ValueType::Tensor(noise))), Some(Some(sn))) = (inputs.first(), inputs.get(port))
    else {
        return Ok(());
    };
    let want = format!(
        "f32[{steps}, {}] (one noise tensor per step)",
        noise
            .shape
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ok = match sn {
        ValueType::Tensor(t) => {
            let mut expect = vec![Dim::Known(steps)];
            expect.extend(noise.shape.iter().cloned());
            t.dtype == DType::F32 && t.shape == expect
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(TypeError::input(
            port,
            format!("`step_noise` must be {want}, found {sn}"),
        ))
    }
}

/// A perfect rectified-flow denoiser of a known x₀ (velocity `(x − x₀)/σ`
/// at t = 1000σ), recording what it was called with.
#[cfg(test)]
pub(crate) mod testing {
    use crate::common::*;
    use wgraph_engine::node::Callees;

    pub struct PerfectFlow {
        pub x0: Vec<f32>,
        pub ts: Vec<f32>,
        pub xs: Vec<Vec<f32>>,
    }

    impl PerfectFlow {
        pub fn new(x0: &[f32]) -> Self {
            PerfectFlow {
                x0: x0.to_vec(),
                ts: Vec::new(),
                xs: Vec::new(),
            }
        }
    }

    impl Callees for PerfectFlow {
        fn call(&mut self, _: usize, args: Vec<Value>) -> Result<Vec<Value>, NodeError> {
            let (Value::Tensor(x), Value::Tensor(t)) = (&args[0], &args[1]) else {
                return Err(NodeError::new("expected tensors"));
            };
            // One t per row of x (a window call has several).
            let ts = t.host_f32()?.to_vec();
            let xs = x.host_f32()?;
            let row = self.x0.len();
            let v: Vec<f32> = xs
                .chunks(row)
                .zip(&ts)
                .flat_map(|(r, &t)| {
                    let sigma = f64::from(t) / 1000.0;
                    r.iter()
                        .zip(&self.x0)
                        .map(move |(&x, &c)| ((f64::from(x) - f64::from(c)) / sigma) as f32)
                })
                .collect();
            self.ts.extend(ts);
            self.xs.push(xs.to_vec());
            Ok(vec![Tensor::from_f32(x.shape(), v)?.into()])
        }
    }

    impl InferCalls for PerfectFlow {
        fn callee_prediction(&self, _: usize) -> Option<Prediction> {
            Some(Prediction {
                output: "velocity".into(),
                process: NoiseProcess::Flow,
            })
        }
        fn callee_outputs(&self, _: usize) -> Vec<String> {
            vec!["velocity".into()]
        }
        fn infer_call(
            &mut self,
            _: usize,
            args: &[ValueType],
        ) -> Result<Vec<ValueType>, TypeError> {
            Ok(vec![args[0].clone()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `prediction` inverts `estimate`: the output written for an x₀ reads
    /// back as that x₀ and the residual noise, for every readout.
    #[test]
    fn prediction_inverts_estimate() {
        let (xm, x0) = (0.7, -0.3);
        for readout in [
            Readout::FlowVelocity,
            Readout::FlowSample,
            Readout::VpEpsilon,
            Readout::VpV,
            Readout::VpSample,
        ] {
            let (sigma, alpha) = (0.4, 0.6);
            let y = readout.prediction(xm, x0, sigma, alpha);
            let (a, e) = readout.estimate(xm, y, sigma, alpha);
            assert!((a - x0).abs() < 1e-12, "{readout:?}: x0 {a}");
            let want = if readout.is_vp() {
                (xm - alpha.sqrt() * x0) / (1.0 - alpha).sqrt()
            } else {
                (xm - (1.0 - sigma) * x0) / sigma
            };
            assert!((e - want).abs() < 1e-12, "{readout:?}: eps {e}");
        }
    }
}
