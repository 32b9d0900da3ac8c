//! `ddim`: the DDIM sampler of an ε-predicting (noise-predicting) denoiser,
//! with diffusers' `DDIMScheduler` semantics — Yan-Sim's "DDIM, 4
//! deterministic steps".
//!
//! - ᾱ from the betas: `scaled_linear` = `linspace(√β₀, √β₁, T)²`, `linear`
//!   = `linspace(β₀, β₁, T)`; ᾱₜ = ∏ₛ≤ₜ (1 − βₛ). Computed in f64 (diffusers
//!   uses f32: the values agree to ~2e-6 relative).
//! - Timesteps ([`ddim_timesteps`]): `leading`, `trailing` or `linspace`
//!   spacing, `steps_offset` added to `leading` ones.
//! - Each step calls the denoiser at `(x, t)` (t: `f32[1]` holding the integer
//!   timestep) for ε, then, with the previous timestep `t − T//N` (ᾱ = 1
//!   below 0: `set_alpha_to_one`):
//!   `x₀ = (x − √(1−ᾱₜ)·ε)/√ᾱₜ`,
//!   `σ = η·√((1−ᾱₚ)/(1−ᾱₜ)·(1 − ᾱₜ/ᾱₚ))`,
//!   `x ← √ᾱₚ·x₀ + √(1−ᾱₚ−σ²)·ε + σ·z`
//!   (the square root's argument is clamped at 0, which only matters for
//!   η > 1). `clip_sample` clamps x₀ to ±`clip_sample_range`; no
//!   thresholding (diffusers' defaults for
//!   latent models).
//! - `z` is Gaussian from the counter-based RNG keyed by the world seed and
//!   the node's name (so two samplers draw independent noise), the tick and
//!   the step: reproducible, and independent of which ticks ran before.
//!
//! Any denoiser whose prediction converts runs ([`super::Readout`]): VP
//! models predicting ε, v (diffusers' `v_prediction`) or x₀ are called at
//! `(x, t)` and their output converted to ε; a rectified-flow model
//! (velocity or x₀; its metadata names no beta schedule) is called at the
//! flow point of the same ᾱ, `σ = √(1−ᾱ)/(√ᾱ + √(1−ᾱ))`,
//! `x_flow = x/(√ᾱ + √(1−ᾱ))`, `t = 1000σ` — a velocity gives
//! `ε = x_flow + (1−σ)·v`. The ᾱ table is the one a VP model declares
//! (`VpParams::table`); this node's β parameters are for models that
//! declare none, and contradicting the model's is an error at `check`.
//!
//! With a `scheduler` (or `sigmas`) other than the default, `ddim` steps in
//! σ on that scheduler's levels of the same VP table ([`VpParams::sigma_steps`]:
//! the model called at `x/√(σ²+1)` and σ's fractional timestep): the DDIM
//! step there is Euler's, `x ← D + (σ'/σ)·(x − D)` (k-diffusion's
//! `sample_euler`, ComfyUI's `ddim`); η > 0 is refused (DDIM's noise is
//! defined between whole timesteps: `ddpm` or `euler_ancestral` add noise on
//! such levels).
//!
//! Like diffusers, the result is the sample at the last step's previous
//! timestep: clean when that is below 0 (always for `leading` and
//! `linspace`), at timestep 0 (ᾱ₀ = 1 − β₀) otherwise (`trailing` when
//! `T//N` ≤ the last timestep, e.g. N = 6 or 7 for T = 1000).

use super::diffusion::{flow_sigma_of_alpha, vp_scale};
use super::schedule::{
    Init, NoiseModel, Schedule, Scheduler, VpTable, init_param, scheduler_param,
};
use super::{Sampler, Sampling, StepRule};
use crate::common::*;
use wgraph_kernels::{DdimCoef, host};

pub use super::diffusion::{Spacing, ddim_timesteps};

/// The `ddim` kind.
pub struct Ddim;

/// The choices of `spacing`.
pub(crate) const SPACINGS: &[&str] = &["leading", "trailing", "linspace"];
/// The choices of `schedule`.
pub(crate) const SCHEDULES: &[&str] = &["scaled_linear", "linear"];

impl NodeKind for Ddim {
    fn name(&self) -> &'static str {
        "ddim"
    }
    fn summary(&self) -> &'static str {
        "DDIM sampler (Yan-Sim's few-step deterministic sampler): denoises `noise` with a denoiser(x, t) — VP ε, v or x₀, or a flow model, converted"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = vp_sampler_params![
            ParamSpec::optional(
                "eta",
                ParamType::Float,
                ParamDefault::Float(0.0),
                "η >= 0: 0 = deterministic DDIM, 1 = DDPM-like fresh noise each step",
            ),
            ParamSpec::required(
                "denoiser",
                ParamType::NodeRef,
                "the denoiser (call inputs x and t): VP ε / v / x₀ (its declared betas), or flow velocity / x₀ (converted)",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let vp = VpParams::from_params(cx)?;
        let eta = finite_param(cx, "eta")?;
        if eta < 0.0 {
            return Err(BuildError::param(
                "eta",
                format!("`eta` must not be negative, found {eta}"),
            ));
        }
        if eta > 0.0 && vp.sigma.is_some() {
            return Err(BuildError::param(
                "eta",
                format!(
                    "`eta = {eta}` is DDIM's noise between whole timesteps of the default scheduler; with `scheduler` or `sigmas` `ddim` is the deterministic step (η = 0): remove `eta`, or use `ddpm` / `euler_ancestral` for fresh noise on these levels"
                ),
            ));
        }
        Sampler::node(cx, DdimRule { vp, eta })
    }
}

/// The VP parameters of the VP-space samplers (`ddim`, `ddpm`, `lcm`):
/// steps, spacing and the β schedule — the model's declared one unless the
/// node sets its own (`beta_start`, `beta_end`, `train_steps`, `schedule`;
/// setting them on a model that declares other betas is an error at
/// `check`) — and diffusers' `steps_offset`, `set_alpha_to_one`,
/// `clip_sample` / `clip_sample_range`.
#[derive(Debug, Clone)]
pub(crate) struct VpParams {
    pub steps: usize,
    pub spacing: Spacing,
    pub steps_offset: usize,
    pub set_alpha_to_one: bool,
    pub clip: Option<f64>,
    /// This node's own betas (the defaults, or what it sets).
    pub own: (f64, f64, usize, bool),
    /// Whether any of the β parameters is written on the node.
    pub explicit: bool,
    /// The table of `own` (for flow models and undeclared ones).
    pub own_table: VpTable,
    /// Off the default scheduler (`scheduler` or `sigmas`): the levels the
    /// sampler steps on, σ of its VP table ([`VpParams::sigma_steps`]);
    /// `None`: diffusers' whole timesteps.
    pub sigma: Option<Schedule>,
}

impl VpParams {
    pub(crate) fn from_params(cx: &BuildContext<'_>) -> Result<VpParams, BuildError> {
        let train_steps = cx.params.int("train_steps")?;
        let train_steps = usize::try_from(train_steps)
            .ok()
            .filter(|t| (1..=100_000).contains(t))
            .ok_or_else(|| {
                BuildError::param(
                    "train_steps",
                    format!("`train_steps` must be between 1 and 100000, found {train_steps}"),
                )
            })?;
        let scheduler = scheduler_param(cx)?;
        let steps = match &scheduler {
            Scheduler::Explicit(list) => list.len() as i64,
            _ => cx.params.int("steps")?,
        };
        let steps = usize::try_from(steps)
            .ok()
            .filter(|s| (1..=train_steps).contains(s))
            .ok_or_else(|| {
                BuildError::param(
                    "steps",
                    format!(
                        "`steps` must be between 1 and train_steps ({train_steps}), found {steps}"
                    ),
                )
            })?;
        let (b0, b1) = (
            finite_param(cx, "beta_start")?,
            finite_param(cx, "beta_end")?,
        );
        if !(b0 > 0.0 && b0 < 1.0) {
            return Err(BuildError::param(
                "beta_start",
                format!("`beta_start` must be in (0, 1), found {b0}"),
            ));
        }
        if !(b1 >= b0 && b1 < 1.0) {
            return Err(BuildError::param(
                "beta_end",
                format!("`beta_end` must be in [beta_start, 1), found {b1}"),
            ));
        }
        let spacing = Spacing::parse(&cx.params.choice("spacing")?);
        let scaled = cx.params.choice("schedule")? == "scaled_linear";
        let offset = cx.params.int("steps_offset")?;
        let steps_offset = usize::try_from(offset)
            .ok()
            .filter(|o| *o < train_steps)
            .ok_or_else(|| {
                BuildError::param(
                    "steps_offset",
                    format!("`steps_offset` must be between 0 and train_steps − 1, found {offset}"),
                )
            })?;
        let init = init_param(cx)?;
        let sigma = match scheduler {
            // Written on the node (or, where no source position is known,
            // not the default).
            Scheduler::Default if cx.params.span("init_noise").is_some() || init != Init::Vp => {
                return Err(BuildError::param(
                    "init_noise",
                    "`init_noise` applies with a `scheduler` or `sigmas`: on the default one the sampler starts, as diffusers', at the VP point x_T = noise",
                ));
            }
            Scheduler::Default => None,
            scheduler => Some(
                Schedule::fixed(steps, 1.0)
                    .with_scheduler(scheduler)
                    .with_spacing(spacing, steps_offset)
                    .with_init(init),
            ),
        };
        let clip = if cx.params.bool("clip_sample")? {
            let r = finite_param(cx, "clip_sample_range")?;
            if r <= 0.0 {
                return Err(BuildError::param(
                    "clip_sample_range",
                    format!("`clip_sample_range` must be positive, found {r}"),
                ));
            }
            Some(r)
        } else {
            None
        };
        // Written on the node (or, where no source position is known,
        // different from the default).
        let explicit = ["beta_start", "beta_end", "train_steps", "schedule"]
            .iter()
            .any(|p| cx.params.span(p).is_some())
            || (b0, b1, train_steps, scaled) != (0.00085, 0.012, 1000, true);
        Ok(VpParams {
            steps,
            spacing,
            steps_offset,
            set_alpha_to_one: cx.params.bool("set_alpha_to_one")?,
            clip,
            own: (b0, b1, train_steps, scaled),
            explicit,
            own_table: VpTable::from_betas(b0, b1, train_steps, scaled),
            sigma,
        })
    }

    /// The ᾱ table the sampler runs on: a VP model's declared one unless
    /// this node sets its own; this node's for a flow model.
    pub(crate) fn table<'a>(&'a self, model: &'a NoiseModel) -> &'a VpTable {
        match model {
            NoiseModel::Vp(vp) if !self.explicit => vp,
            _ => &self.own_table,
        }
    }

    /// At `check`: betas written on the node that differ from the ones the
    /// model declares are an error (one of them is wrong).
    pub(crate) fn check(&self, kind: &str, model: &NoiseModel) -> Result<(), TypeError> {
        if let NoiseModel::Vp(vp) = model
            && self.explicit
            && vp.alphas_cumprod() != self.own_table.alphas_cumprod()
        {
            return Err(TypeError::node(format!(
                "`{kind}` sets betas {} {}–{} over {} steps, but its denoiser's model declares other ones: remove `beta_start`/`beta_end`/`schedule`/`train_steps` from the sampler (it reads the model's)",
                if self.own.3 {
                    "scaled_linear"
                } else {
                    "linear"
                },
                self.own.0,
                self.own.1,
                self.own.2
            )));
        }
        Ok(())
    }

    /// The inference timesteps (descending) on a table of `train_steps`.
    pub(crate) fn timesteps(&self, train_steps: usize) -> Vec<usize> {
        let mut ts = ddim_timesteps(self.steps, train_steps, self.spacing);
        if self.spacing == Spacing::Leading {
            ts.iter_mut()
                .for_each(|t| *t = (*t + self.steps_offset).min(train_steps - 1));
        }
        ts
    }

    /// ᾱ of the step before `t` (`t − T//N`); below 0 it is 1
    /// (`set_alpha_to_one`) or ᾱ₀.
    pub(crate) fn alpha_prev(&self, ac: &[f64], t: usize) -> f64 {
        let ratio = ac.len() / self.steps;
        match t.checked_sub(ratio) {
            Some(p) => ac[p],
            None if self.set_alpha_to_one => 1.0,
            None => ac[0],
        }
    }

    /// Off the default scheduler: k-diffusion's loop on the levels of
    /// `schedule`, σ of the sampler's VP table in the VE form
    /// `x = x₀ + σ·ε` (the start noise entered per `init_noise`). At each σ
    /// the denoiser is called at `x/√(σ²+1)` and the fractional timestep of
    /// σ (log-σ interpolation, [`VpTable::t_of_sigma`]; a flow model at the
    /// flow point of that ᾱ, [`vp_denoise`]) for D, the x₀ estimate
    /// (clipped per `clip_sample`; with `lcm`'s boundary condition, see
    /// [`lcm_boundary`]); then `step(m, i, σ, σ', x, D)`, except the step to
    /// σ' = 0, which lands on D.
    pub(crate) fn sigma_steps(
        &self,
        schedule: &Schedule,
        m: &mut Sampling<'_, '_>,
        mut x: Vec<f32>,
        lcm_scaling: Option<f64>,
        mut step: impl FnMut(
            &mut Sampling<'_, '_>,
            usize,
            f64,
            f64,
            &mut [f32],
            &[f32],
        ) -> Result<(), NodeError>,
    ) -> Result<Vec<f32>, NodeError> {
        let table = self.table(m.model()).clone();
        let (levels, entry) = schedule.enter_native(&NoiseModel::Vp(table.clone()), &[]);
        x.iter_mut().for_each(|v| *v *= entry);
        for (i, w) in levels.windows(2).enumerate() {
            let (s, s1) = (w[0], w[1]);
            let c = s.clamp(table.sigma_min(), table.sigma_max());
            let (t, a) = (table.t_of_sigma(c), 1.0 / (1.0 + c * c));
            let xin: Vec<f32> = x
                .iter()
                .map(|v| (f64::from(*v) * a.sqrt()) as f32)
                .collect();
            let (mut den, _) = vp_denoise(m, &xin, t, a)?;
            for (k, d) in den.iter_mut().enumerate() {
                let mut v = f64::from(*d);
                if let Some(r) = self.clip {
                    v = v.clamp(-r, r);
                }
                if let Some(scaling) = lcm_scaling {
                    let (c_skip, c_out) = lcm_boundary(t, scaling);
                    v = c_out * v + c_skip * f64::from(xin[k]);
                }
                *d = v as f32;
            }
            if s1 == 0.0 {
                x = den;
            } else {
                step(m, i, s, s1, &mut x, &den)?;
            }
        }
        Ok(x)
    }
}

/// LCM's consistency boundary condition at timestep `t` (σ_data = 0.5):
/// `(c_skip, c_out)` of `c_skip·x + c_out·x₀`, x the VP point the model is
/// called at (diffusers' `LCMScheduler`).
pub(crate) fn lcm_boundary(t: f64, scaling: f64) -> (f64, f64) {
    let (scaled, sd2) = (t * scaling, 0.25);
    (
        sd2 / (scaled * scaled + sd2),
        scaled / (scaled * scaled + sd2).sqrt(),
    )
}

/// `x ← D + r·(x − D) + c·z` in f64, element-wise (the σ-space steps:
/// r = σ'/σ for DDIM, σ_down/σ for DDPM, 0 for LCM).
pub(crate) fn toward(x: &mut [f32], den: &[f32], r: f64, noise: Option<(f64, &[f32])>) {
    for (k, v) in x.iter_mut().enumerate() {
        let d = f64::from(den[k]);
        let z = noise.map_or(0.0, |(c, z)| c * f64::from(z[k]));
        *v = (d + r * (f64::from(*v) - d) + z) as f32;
    }
}

/// The parameters of the VP-space samplers, then the kind's own.
macro_rules! vp_sampler_params {
    ($($own:expr),* $(,)?) => {
        &[
            ParamSpec::optional(
                "steps",
                ParamType::Int,
                ParamDefault::Int(4),
                "number of denoiser calls (1 to train_steps)",
            ),
            ParamSpec::optional(
                "spacing",
                ParamType::Choice(SPACINGS),
                ParamDefault::Choice("trailing"),
                "timestep spacing (diffusers' `timestep_spacing`); trailing starts at T-1",
            ),
            ParamSpec::optional(
                "scheduler",
                ParamType::Choice(super::schedule::SCHEDULERS),
                ParamDefault::Choice("default"),
                "levels: default = diffusers' whole timesteps (`spacing`); normal, simple, karras, exponential, sgm_uniform, beta = that scheduler's σ of the model's table, stepped in σ (k-diffusion / ComfyUI)",
            ),
            super::SIGMAS,
            ParamSpec::optional(
                "init_noise",
                ParamType::Choice(super::schedule::INITS),
                ParamDefault::Choice("vp"),
                "with `scheduler` or `sigmas`: start noise at the VP point x_T (vp) or noise·σ₀ (sigma, k-diffusion)",
            ),
            ParamSpec::optional(
                "steps_offset",
                ParamType::Int,
                ParamDefault::Int(0),
                "added to `leading` timesteps (diffusers' `steps_offset`; 1 for Stable Diffusion)",
            ),
            ParamSpec::optional(
                "set_alpha_to_one",
                ParamType::Bool,
                ParamDefault::Bool(true),
                "ᾱ before timestep 0: 1 (true) or ᾱ₀ (diffusers' `set_alpha_to_one`)",
            ),
            ParamSpec::optional(
                "clip_sample",
                ParamType::Bool,
                ParamDefault::Bool(false),
                "clamp the x₀ estimate to ±clip_sample_range (diffusers' `clip_sample`)",
            ),
            ParamSpec::optional(
                "clip_sample_range",
                ParamType::Float,
                ParamDefault::Float(1.0),
                "the clamp of `clip_sample`",
            ),
            ParamSpec::optional(
                "beta_start",
                ParamType::Float,
                ParamDefault::Float(0.00085),
                "β of the first training timestep (0 < beta_start <= beta_end < 1); default: the model's declared schedule, else 0.00085",
            ),
            ParamSpec::optional(
                "beta_end",
                ParamType::Float,
                ParamDefault::Float(0.012),
                "β of the last training timestep; default: the model's, else 0.012",
            ),
            ParamSpec::optional(
                "train_steps",
                ParamType::Int,
                ParamDefault::Int(1000),
                "number of training timesteps T (diffusers' `num_train_timesteps`); default: the model's, else 1000",
            ),
            ParamSpec::optional(
                "schedule",
                ParamType::Choice(SCHEDULES),
                ParamDefault::Choice("scaled_linear"),
                "β schedule: scaled_linear = linspace(√β₀, √β₁, T)², linear = linspace(β₀, β₁, T); default: the model's",
            ),
            $($own),*
        ]
    };
}
pub(crate) use vp_sampler_params;

/// DDIM's step rule.
struct DdimRule {
    vp: VpParams,
    eta: f64,
}

impl StepRule for DdimRule {
    /// A denoiser that declares no prediction is read as ε (this node's own
    /// schedule is VP), unless its output is named `velocity`; flow models
    /// are called at the flow point matching each ᾱ.
    const EPSILON_OK: bool = true;
    fn kind(&self) -> &'static str {
        "ddim"
    }
    fn check(&self, model: &NoiseModel) -> Result<(), TypeError> {
        self.vp.check("ddim", model)
    }
    fn noise_draws(&self) -> Option<usize> {
        Some(self.vp.steps)
    }
    fn sample(&self, m: &mut Sampling<'_, '_>, mut x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        if let Some(schedule) = &self.vp.sigma {
            // η = 0 (checked at build): the DDIM step in σ is Euler's,
            // x ← D + (σ'/σ)·(x − D) (k-diffusion's `sample_euler`).
            return self
                .vp
                .sigma_steps(schedule, m, x, None, |_, _, s, s1, x, den| {
                    toward(x, den, s1 / s, None);
                    Ok(())
                });
        }
        let mut z = Vec::new();
        let table = self.vp.table(m.model()).clone();
        let ac = table.alphas_cumprod();
        for (i, t) in self.vp.timesteps(ac.len()).into_iter().enumerate() {
            let (a_t, a_p) = (ac[t], self.vp.alpha_prev(ac, t));
            let var = (1.0 - a_p) / (1.0 - a_t) * (1.0 - a_t / a_p);
            let std = self.eta * var.max(0.0).sqrt();
            let (x0, eps) = vp_denoise(m, &x, t as f64, a_t)?;
            if std > 0.0 {
                m.step_noise(i, &mut z, x.len())?;
            }
            match self.vp.clip {
                None => {
                    let coef = DdimCoef {
                        sa_t: a_t.sqrt(),
                        sb_t: (1.0 - a_t).sqrt(),
                        sa_p: a_p.sqrt(),
                        dir: (1.0 - a_p - std * std).max(0.0).sqrt(),
                        std,
                    };
                    host::ddim_step(&mut x, &eps, (std > 0.0).then_some(&z[..]), &coef);
                }
                Some(r) => {
                    let dir = (1.0 - a_p - std * std).max(0.0).sqrt();
                    for (k, v) in x.iter_mut().enumerate() {
                        let x0 = f64::from(x0[k]).clamp(-r, r);
                        let noise = if std > 0.0 {
                            std * f64::from(z[k])
                        } else {
                            0.0
                        };
                        *v = (a_p.sqrt() * x0 + dir * f64::from(eps[k]) + noise) as f32;
                    }
                }
            }
        }
        Ok(x)
    }
}

/// The denoiser at VP timestep `t` (ᾱ = `a_t`; whole on the default
/// scheduler, fractional off it) on the VP point `x`: a VP
/// model is called as it is at `(x, t)`; a flow model at the flow point of
/// the same ᾱ, `σ = √(1−ᾱ)/(√ᾱ + √(1−ᾱ))`, `x/(√ᾱ + √(1−ᾱ))`, `t = 1000σ`.
/// Returns the (x₀, ε) estimates (the VP point's; ε is the flow point's too).
pub(crate) fn vp_denoise(
    m: &mut Sampling<'_, '_>,
    x: &[f32],
    t: f64,
    a_t: f64,
) -> Result<(Vec<f32>, Vec<f32>), NodeError> {
    let readout = m.readout();
    let flow = !readout.is_vp();
    let norm = if flow { vp_scale(a_t) } else { 1.0 };
    let sigma = flow_sigma_of_alpha(a_t);
    let (tm, xt) = if flow {
        let scaled: Vec<f32> = x.iter().map(|v| (f64::from(*v) / norm) as f32).collect();
        ((1000.0 * sigma) as f32, scaled)
    } else {
        (t as f32, x.to_vec())
    };
    let y = m.call_raw(xt, tm)?;
    let y = y.host_f32()?;
    let (mut x0, mut eps) = (Vec::with_capacity(x.len()), Vec::with_capacity(x.len()));
    for (&xv, &yv) in x.iter().zip(y) {
        let xm = f64::from(xv) / norm;
        let (a, e) = readout.estimate(xm, f64::from(yv), sigma, a_t);
        // A flow model's x₀ is the VP point's; its ε too.
        x0.push(a as f32);
        eps.push(e as f32);
    }
    Ok((x0, eps))
}

#[cfg(test)]
mod tests;
