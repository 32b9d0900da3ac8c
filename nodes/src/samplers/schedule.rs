//! The shared noise/σ layer: every schedule a sampler can take, in the
//! model's own noise units, and the σ ↔ t ↔ ᾱ conversions.
//!
//! A model's **native σ** is what k-diffusion calls σ:
//! - a rectified-flow model: the flow level σ ∈ (0, 1], `x = (1−σ)·x₀ + σ·ε`;
//! - a VP (DDPM) model: `σ = √((1−ᾱ)/ᾱ)` (the VE level, `x = x₀ + σ·ε`),
//!   called at `x/√(σ²+1)` and the timestep of σ interpolated in log σ
//!   ([`VpTable::t_of_sigma`], diffusers' and k-diffusion's `_sigma_to_t`);
//! - a ve model (`schedule = ve`, k-diffusion's own models): σ itself on
//!   `x = x₀ + σ·ε`, called at `(x, σ)` — k-diffusion's `model(x, sigma)`.
//!
//! A [`Schedule`] (the `scheduler`, `sigmas`, `spacing`, `steps_offset`,
//! `shift` … parameters every sampler shares) resolves against a
//! [`NoiseModel`] to `steps + 1` native levels ending at 0
//! ([`Schedule::levels`]). Flow-space samplers (`euler`, `sde`, `tts_*`,
//! `aam`) take them as flow levels ([`to_flow`]): a VP model's levels stay
//! inside the range it was trained on (the flow level of its largest σ, not
//! 1), and the start noise enters at that level ([`Init`]).

use super::diffusion::{DynamicShift, Spacing, alphas_cumprod, shifted};
use crate::common::*;

/// The training timesteps of a flow model's σ table (`t = 1000σ`).
pub const FLOW_TRAIN_STEPS: usize = 1000;

/// What noise levels a model has.
#[derive(Debug, Clone, PartialEq)]
pub enum NoiseModel {
    /// Rectified flow: native σ is the flow level.
    Flow,
    /// VP (DDPM): native σ is `√((1−ᾱ)/ᾱ)` over its ᾱ table.
    Vp(VpTable),
    /// VE (k-diffusion): native σ is the model's own input, in
    /// [`sigma_min`, `sigma_max`].
    Ve { sigma_min: f64, sigma_max: f64 },
}

impl NoiseModel {
    /// The native σ as a flow level: σ/(1+σ) for VP and VE, itself for
    /// flow.
    pub fn to_flow(&self, sigma: f64) -> f64 {
        match self {
            NoiseModel::Flow => sigma,
            NoiseModel::Vp(_) | NoiseModel::Ve { .. } => to_flow(sigma),
        }
    }

    /// α of `x = α·x₀ + σ·ε` at native σ: 1 − σ (flow), 1 (VP, VE).
    pub fn alpha(&self, sigma: f64) -> f64 {
        match self {
            NoiseModel::Flow => 1.0 - sigma,
            NoiseModel::Vp(_) | NoiseModel::Ve { .. } => 1.0,
        }
    }

    /// λ = log(α/σ) at native σ (k-diffusion's t = −log σ on VP and VE).
    pub fn lambda(&self, sigma: f64) -> f64 {
        self.alpha(sigma).ln() - sigma.ln()
    }
}

/// ComfyUI's σ table of a ve model (`ModelSamplingContinuousEDM`): 1000
/// levels log-linear from σ_min to σ_max, for `simple` and `beta`.
fn ve_table(sigma_min: f64, sigma_max: f64) -> Vec<f64> {
    linspace(sigma_min.ln(), sigma_max.ln(), FLOW_TRAIN_STEPS)
        .into_iter()
        .map(f64::exp)
        .collect()
}

/// ComfyUI's `simple`: σ at `T−1 − ⌊i·T/N⌋` of a table of T levels.
fn simple_levels(table: &[f64], n: usize) -> Vec<f64> {
    let t = table.len();
    (0..n)
        .map(|i| {
            let k = (i as f64 * t as f64 / n as f64).floor() as usize;
            table[t.saturating_sub(1 + k.min(t - 1))]
        })
        .collect()
}

/// The flow level of a VE σ: `σ/(1+σ)` (∞ → 1).
pub fn to_flow(sigma: f64) -> f64 {
    if sigma.is_infinite() {
        1.0
    } else {
        sigma / (1.0 + sigma)
    }
}

/// The VE σ of a flow level: `σ/(1−σ)`.
pub fn from_flow(sigma: f64) -> f64 {
    if sigma >= 1.0 {
        f64::INFINITY
    } else {
        sigma / (1.0 - sigma)
    }
}

/// A VP model's ᾱ table and its σ table `√((1−ᾱ)/ᾱ)` (ascending in t).
#[derive(Debug, Clone, PartialEq)]
pub struct VpTable {
    alphas_cumprod: Vec<f64>,
    sigmas: Vec<f64>,
    log_sigmas: Vec<f64>,
}

impl VpTable {
    /// From an ᾱ table (decreasing, in (0, 1)).
    pub fn new(alphas_cumprod: Vec<f64>) -> Self {
        let sigmas: Vec<f64> = alphas_cumprod
            .iter()
            .map(|&a| ((1.0 - a) / a).sqrt())
            .collect();
        let log_sigmas = sigmas.iter().map(|s| s.max(1e-10).ln()).collect();
        VpTable {
            alphas_cumprod,
            sigmas,
            log_sigmas,
        }
    }

    /// From betas (`scaled`: scaled-linear), as the model declares them.
    pub fn from_betas(beta_start: f64, beta_end: f64, train_steps: usize, scaled: bool) -> Self {
        VpTable::new(alphas_cumprod(beta_start, beta_end, train_steps, scaled))
    }

    /// The ᾱ table.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// The σ table (σ at each integer timestep).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// The number of training timesteps T.
    pub fn train_steps(&self) -> usize {
        self.sigmas.len()
    }

    /// σ at timestep 0.
    pub fn sigma_min(&self) -> f64 {
        self.sigmas.first().copied().unwrap_or(0.0)
    }

    /// σ at timestep T−1.
    pub fn sigma_max(&self) -> f64 {
        self.sigmas.last().copied().unwrap_or(0.0)
    }

    /// σ at a (fractional) timestep, linear in σ (diffusers'
    /// `np.interp(timesteps, arange(T), sigmas)`).
    pub fn sigma_at(&self, t: f64) -> f64 {
        interp(&self.sigmas, t)
    }

    /// σ at a (fractional) timestep, linear in log σ (k-diffusion's and
    /// ComfyUI's `t_to_sigma`).
    pub fn sigma_at_log(&self, t: f64) -> f64 {
        interp(&self.log_sigmas, t).exp()
    }

    /// The (fractional) timestep of σ, linear in log σ between the table's
    /// neighbours and clamped to [0, T−1] — diffusers' `_sigma_to_t`,
    /// k-diffusion's `sigma_to_t`.
    pub fn t_of_sigma(&self, sigma: f64) -> f64 {
        let ls = &self.log_sigmas;
        if ls.len() < 2 {
            return 0.0;
        }
        let log_sigma = sigma.max(1e-10).ln();
        let below = ls.partition_point(|&l| l <= log_sigma);
        let low = below.saturating_sub(1).min(ls.len() - 2);
        let (lo, hi) = (ls[low], ls[low + 1]);
        let w = ((lo - log_sigma) / (lo - hi)).clamp(0.0, 1.0);
        (1.0 - w) * low as f64 + w * (low + 1) as f64
    }
}

/// `np.interp(t, arange(len), table)`: linear between integer positions,
/// clamped at the ends.
fn interp(table: &[f64], t: f64) -> f64 {
    let Some(last) = table.len().checked_sub(1) else {
        return 0.0;
    };
    let t = t.clamp(0.0, last as f64);
    let i = (t.floor() as usize).min(last);
    let frac = t - i as f64;
    if i == last || frac == 0.0 {
        return table[i];
    }
    table[i] + frac * (table[i + 1] - table[i])
}

/// The `scheduler` choices.
pub const SCHEDULERS: &[&str] = &[
    "default",
    "normal",
    "simple",
    "karras",
    "exponential",
    "sgm_uniform",
    "beta",
];

/// How the `steps` levels are spread.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheduler {
    /// `simple` on flow models, `normal` on VP models.
    Default,
    /// Flow: SD3's default (diffusers' `FlowMatchEulerDiscreteScheduler`,
    /// ComfyUI's `normal`): `shift(linspace(1, shift(1/T), N))`. VP: the
    /// model's σ at diffusers' spaced timesteps (`spacing`, `steps_offset`;
    /// `EulerDiscreteScheduler`), linear in σ between integer timesteps.
    Normal,
    /// Flow: Flux's / Yume's `shift(linspace(1, 0, N+1)[:N])`. VP: ComfyUI's
    /// `simple`, σ at timestep `T−1 − ⌊i·T/N⌋`.
    Simple,
    /// Karras et al. (ρ = 7) between the model's σ_min and σ_max.
    Karras,
    /// Log-linear between σ_max and σ_min.
    Exponential,
    /// ComfyUI's `sgm_uniform`: timesteps `linspace(t_max, t_min, N+1)[:N]`.
    SgmUniform,
    /// ComfyUI's `beta` (α = β = 0.6): timesteps at the Beta
    /// distribution's quantiles `1 − i/N`, rounded, repeats dropped.
    Beta,
    /// An explicit list of native σ (`sigmas = [...]`), decreasing.
    Explicit(Vec<f64>),
}

/// How a sampler's start noise (unit Gaussian) becomes the latent at its
/// first level σ₀ (diffusers' `init_noise_sigma`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// VP: the noise is the VP point x_T (`x = noise·√(σ₀²+1)` in native
    /// units: DDIM, DPMSolver, UniPC, DDPM, LCM, diffusers' Euler with
    /// `leading` spacing). Flow: `x = noise` (σ₀ = 1).
    Vp,
    /// `x = noise·σ₀` (k-diffusion and ComfyUI, also on flow models;
    /// diffusers' Euler with `linspace` or `trailing` spacing).
    Sigma,
}

/// The `init_noise` choices.
pub const INITS: &[&str] = &["vp", "sigma"];

/// A sampler's schedule: the parameters every sampler shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    steps: usize,
    scheduler: Scheduler,
    shift: Shift,
    spacing: Spacing,
    steps_offset: usize,
    init: Init,
}

#[derive(Debug, Clone, PartialEq)]
enum Shift {
    Fixed(f64),
    Dynamic(DynamicShift),
}

impl Schedule {
    /// A fixed-shift schedule of `steps` steps (default scheduler).
    pub fn fixed(steps: usize, shift: f64) -> Schedule {
        Schedule {
            steps,
            scheduler: Scheduler::Default,
            shift: Shift::Fixed(shift),
            spacing: Spacing::Trailing,
            steps_offset: 0,
            init: Init::Vp,
        }
    }

    /// The same schedule with another scheduler.
    pub fn with_scheduler(mut self, scheduler: Scheduler) -> Schedule {
        if let Scheduler::Explicit(s) = &scheduler {
            self.steps = s.len();
        }
        self.scheduler = scheduler;
        self
    }

    /// The same schedule with another VP spacing.
    pub fn with_spacing(mut self, spacing: Spacing, steps_offset: usize) -> Schedule {
        self.spacing = spacing;
        self.steps_offset = steps_offset;
        self
    }

    /// The same schedule with another start-noise rule.
    pub fn with_init(mut self, init: Init) -> Schedule {
        self.init = init;
        self
    }

    /// The number of denoiser levels.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The start-noise rule.
    pub fn init(&self) -> Init {
        self.init
    }

    fn shift_for(&self, shape: &[usize]) -> f64 {
        match &self.shift {
            Shift::Fixed(s) => *s,
            Shift::Dynamic(d) => d.shift(shape),
        }
    }

    /// The `steps + 1` native levels (the last 0) for `model` and a latent
    /// of `shape`.
    pub fn levels(&self, model: &NoiseModel, shape: &[usize]) -> Vec<f64> {
        let n = self.steps;
        let mut out: Vec<f64> = match (&self.scheduler, model) {
            (Scheduler::Explicit(s), _) => s.clone(),
            (Scheduler::Default | Scheduler::Simple, NoiseModel::Flow) => {
                let shift = self.shift_for(shape);
                (0..n)
                    .map(|i| shifted(1.0 - i as f64 / n as f64, shift))
                    .collect()
            }
            (Scheduler::Normal, NoiseModel::Flow) => {
                let shift = self.shift_for(shape);
                let t = FLOW_TRAIN_STEPS as f64;
                // diffusers shifts σ_min once at construction unless the
                // shift is dynamic.
                let smin = match self.shift {
                    Shift::Fixed(s) => shifted(1.0 / t, s),
                    Shift::Dynamic(_) => 1.0 / t,
                };
                linspace(1.0, smin, n)
                    .into_iter()
                    .map(|s| shifted(s, shift))
                    .collect()
            }
            (Scheduler::SgmUniform, NoiseModel::Flow) => {
                let shift = self.shift_for(shape);
                let t = FLOW_TRAIN_STEPS as f64;
                let smin = shifted(1.0 / t, shift);
                // timestep(σ) = 1000σ, σ(t) = shift(t/1000).
                let mut ts = linspace(t, smin * t, n + 1);
                ts.pop();
                ts.into_iter().map(|v| shifted(v / t, shift)).collect()
            }
            (Scheduler::Karras | Scheduler::Exponential, NoiseModel::Flow) => {
                let shift = self.shift_for(shape);
                let smin = shifted(1.0 / FLOW_TRAIN_STEPS as f64, shift);
                ramp(&self.scheduler, n, smin, 1.0)
            }
            (Scheduler::Default | Scheduler::Normal, NoiseModel::Vp(vp)) => {
                vp_timesteps(n, vp.train_steps(), self.spacing, self.steps_offset)
                    .into_iter()
                    .map(|t| vp.sigma_at(t))
                    .collect()
            }
            (Scheduler::Simple, NoiseModel::Vp(vp)) => simple_levels(vp.sigmas(), n),
            (Scheduler::SgmUniform, NoiseModel::Vp(vp)) => {
                let tmax = vp.t_of_sigma(vp.sigma_max());
                let tmin = vp.t_of_sigma(vp.sigma_min());
                let mut ts = linspace(tmax, tmin, n + 1);
                ts.pop();
                ts.into_iter().map(|t| vp.sigma_at_log(t)).collect()
            }
            (Scheduler::Karras | Scheduler::Exponential, NoiseModel::Vp(vp)) => {
                ramp(&self.scheduler, n, vp.sigma_min(), vp.sigma_max())
            }
            (Scheduler::Beta, NoiseModel::Vp(vp)) => beta_timesteps(n, vp.train_steps())
                .into_iter()
                .map(|t| vp.sigmas()[t])
                .collect(),
            // A ve model: k-diffusion's Karras by default; ComfyUI's EDM
            // sampling otherwise (its timestep is log σ / 4, so `normal` is
            // log-linear, as `exponential`).
            (
                Scheduler::Default | Scheduler::Karras | Scheduler::Exponential | Scheduler::Normal,
                &NoiseModel::Ve {
                    sigma_min,
                    sigma_max,
                },
            ) => {
                let scheduler = match self.scheduler {
                    Scheduler::Default | Scheduler::Karras => Scheduler::Karras,
                    _ => Scheduler::Exponential,
                };
                ramp(&scheduler, n, sigma_min, sigma_max)
            }
            (
                Scheduler::SgmUniform,
                &NoiseModel::Ve {
                    sigma_min,
                    sigma_max,
                },
            ) => {
                let mut ls = linspace(sigma_max.ln(), sigma_min.ln(), n + 1);
                ls.pop();
                ls.into_iter().map(f64::exp).collect()
            }
            (
                Scheduler::Simple,
                &NoiseModel::Ve {
                    sigma_min,
                    sigma_max,
                },
            ) => simple_levels(&ve_table(sigma_min, sigma_max), n),
            (
                Scheduler::Beta,
                &NoiseModel::Ve {
                    sigma_min,
                    sigma_max,
                },
            ) => {
                let table = ve_table(sigma_min, sigma_max);
                beta_timesteps(n, table.len())
                    .into_iter()
                    .map(|t| table[t])
                    .collect()
            }
            (Scheduler::Beta, NoiseModel::Flow) => {
                // ComfyUI's flow table: σ(t) = shift((t + 1)/T).
                let shift = self.shift_for(shape);
                let t = FLOW_TRAIN_STEPS;
                beta_timesteps(n, t)
                    .into_iter()
                    .map(|i| shifted((i + 1) as f64 / t as f64, shift))
                    .collect()
            }
        };
        out.push(0.0);
        out
    }

    /// [`Schedule::levels`] as flow levels (for the flow-space samplers).
    pub fn flow_levels(&self, model: &NoiseModel, shape: &[usize]) -> Vec<f64> {
        self.levels(model, shape)
            .into_iter()
            .map(|s| model.to_flow(s))
            .collect()
    }

    /// The flow levels for `model` and `shape`, and the factor from unit
    /// start noise to the flow point at the first ([`Init`]).
    pub fn enter_flow(&self, model: &NoiseModel, shape: &[usize]) -> (Vec<f64>, f32) {
        let native = self.levels(model, shape);
        let entry = self.entry_flow(model, native[0]) as f32;
        let flow = native.into_iter().map(|s| model.to_flow(s)).collect();
        (flow, entry)
    }

    /// The native levels for `model` and `shape`, and the factor from unit
    /// start noise to the latent at the first ([`Init`]).
    pub fn enter_native(&self, model: &NoiseModel, shape: &[usize]) -> (Vec<f64>, f32) {
        let native = self.levels(model, shape);
        let entry = self.entry_native(model, native[0]) as f32;
        (native, entry)
    }

    /// The factor from unit start noise to the latent at native level σ₀
    /// ([`Init`]).
    pub fn entry_native(&self, model: &NoiseModel, sigma0: f64) -> f64 {
        match (self.init, model) {
            (Init::Vp, NoiseModel::Vp(_)) => (sigma0 * sigma0 + 1.0).sqrt(),
            // A ve model has no VP point: k-diffusion's `noise·σ₀` either way.
            (Init::Sigma, _) | (Init::Vp, NoiseModel::Ve { .. }) => sigma0,
            (Init::Vp, NoiseModel::Flow) => 1.0,
        }
    }

    /// The factor from unit start noise to the flow point at native σ₀.
    pub fn entry_flow(&self, model: &NoiseModel, sigma0: f64) -> f64 {
        match model {
            NoiseModel::Flow => self.entry_native(model, sigma0),
            NoiseModel::Vp(_) | NoiseModel::Ve { .. } => {
                self.entry_native(model, sigma0) / (1.0 + sigma0)
            }
        }
    }

    /// Reads the shared parameters (`sampler_params!`): `steps`, `shift` and
    /// the dynamic shift, `scheduler`, `sigmas`, `spacing`, `steps_offset`,
    /// `init_noise`.
    pub(crate) fn from_params(cx: &BuildContext<'_>) -> Result<Schedule, BuildError> {
        let steps = super::steps_param(cx)?;
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
        let shift = if cx.params.bool("dynamic_shift")? {
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
                    .ok_or_else(|| {
                        BuildError::param("patch", "`patch` must be between 1 and 64")
                    })?,
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
            Shift::Dynamic(dynamic)
        } else {
            Shift::Fixed(shift)
        };
        let scheduler = scheduler_param(cx)?;
        let steps = match &scheduler {
            Scheduler::Explicit(list) => list.len(),
            _ => steps,
        };
        let spacing = Spacing::parse(&cx.params.choice("spacing")?);
        let offset = cx.params.int("steps_offset")?;
        let steps_offset = usize::try_from(offset)
            .ok()
            .filter(|o| *o <= 1000)
            .ok_or_else(|| {
                BuildError::param(
                    "steps_offset",
                    format!("`steps_offset` must be between 0 and 1000, found {offset}"),
                )
            })?;
        let init = init_param(cx)?;
        Ok(Schedule {
            steps,
            scheduler,
            shift,
            spacing,
            steps_offset,
            init,
        })
    }
}

/// Reads `scheduler` and `sigmas` (an explicit list replaces `scheduler`
/// and `steps`: writing either beside it is an error).
pub(crate) fn scheduler_param(cx: &BuildContext<'_>) -> Result<Scheduler, BuildError> {
    let scheduler = match cx.params.choice("scheduler")?.as_str() {
        "normal" => Scheduler::Normal,
        "simple" => Scheduler::Simple,
        "karras" => Scheduler::Karras,
        "exponential" => Scheduler::Exponential,
        "sgm_uniform" => Scheduler::SgmUniform,
        "beta" => Scheduler::Beta,
        _ => Scheduler::Default,
    };
    let Ok(list) = cx.params.float_list("sigmas") else {
        return Ok(scheduler);
    };
    if cx.params.span("scheduler").is_some() {
        return Err(BuildError::param(
            "sigmas",
            "`sigmas` and `scheduler` both choose the levels: remove one",
        ));
    }
    if cx.params.span("steps").is_some() {
        return Err(BuildError::param(
            "sigmas",
            "`sigmas` lists the levels, so `steps` is its length: remove `steps`",
        ));
    }
    let mut list = list.clone();
    if list.last() == Some(&0.0) {
        list.pop();
    }
    let ok = !list.is_empty()
        && list.len() <= 10_000
        && list.iter().all(|s| s.is_finite() && *s > 0.0)
        && list.windows(2).all(|w| w[1] < w[0]);
    if !ok {
        return Err(BuildError::param(
            "sigmas",
            format!(
                "`sigmas` must be positive native noise levels, strictly decreasing (a final 0 is optional), found {list:?}"
            ),
        ));
    }
    Ok(Scheduler::Explicit(list))
}

/// Reads `init_noise`.
pub(crate) fn init_param(cx: &BuildContext<'_>) -> Result<Init, BuildError> {
    Ok(match cx.params.choice("init_noise")?.as_str() {
        "sigma" => Init::Sigma,
        _ => Init::Vp,
    })
}

/// ComfyUI's `beta_scheduler` timesteps (α = β = 0.6) on a table of
/// `train` entries: `rint(ppf(1 − i/N)·(train − 1))`, consecutive repeats
/// dropped.
pub fn beta_timesteps(steps: usize, train: usize) -> Vec<usize> {
    let last = train.saturating_sub(1) as f64;
    let mut out: Vec<usize> = Vec::with_capacity(steps);
    for i in 0..steps {
        let q = 1.0 - i as f64 / steps as f64;
        let t = (beta_ppf(q, 0.6, 0.6) * last).round_ties_even() as usize;
        if out.last() != Some(&t) {
            out.push(t);
        }
    }
    out
}

/// The inverse of the regularized incomplete beta function (bisection to
/// 1e-12; SciPy's `beta.ppf`).
fn beta_ppf(q: f64, a: f64, b: f64) -> f64 {
    if q <= 0.0 {
        return 0.0;
    }
    if q >= 1.0 {
        return 1.0;
    }
    if a == b && q == 0.5 {
        // The median of a symmetric Beta, exactly (as SciPy gives it).
        return 0.5;
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if reg_inc_beta(mid, a, b) < q {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-13 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The regularized incomplete beta function I_x(a, b) (Lentz's continued
/// fraction, as Numerical Recipes' `betai`).
fn reg_inc_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(x, a, b) / a
    } else {
        1.0 - front * beta_cf(1.0 - x, b, a) / b
    }
}

fn beta_cf(x: f64, a: f64, b: f64) -> f64 {
    let tiny = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..500 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// `np.linspace(a, b, n)`: `a + i·(b−a)/(n−1)`, the last exactly `b`.
pub fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![a],
        _ => {
            let step = (b - a) / (n - 1) as f64;
            (0..n)
                .map(|i| if i + 1 == n { b } else { a + i as f64 * step })
                .collect()
        }
    }
}

/// Karras (ρ = 7) or exponential levels from σ_max down to σ_min.
fn ramp(scheduler: &Scheduler, n: usize, smin: f64, smax: f64) -> Vec<f64> {
    match scheduler {
        Scheduler::Karras => {
            let rho = 7.0;
            let (max_inv, min_inv) = (smax.powf(1.0 / rho), smin.powf(1.0 / rho));
            linspace(0.0, 1.0, n)
                .into_iter()
                .map(|r| (max_inv + r * (min_inv - max_inv)).powf(rho))
                .collect()
        }
        _ => linspace(smax.ln(), smin.ln(), n)
            .into_iter()
            .map(f64::exp)
            .collect(),
    }
}

/// diffusers' spaced inference timesteps (descending, as floats):
/// `leading` `arange(N)·(T//N) + offset`, `trailing`
/// `round(arange(T, 0, −T/N)) − 1`, `linspace` `linspace(0, T−1, N)`
/// (fractional; `EulerDiscreteScheduler`).
pub fn vp_timesteps(steps: usize, train_steps: usize, spacing: Spacing, offset: usize) -> Vec<f64> {
    let last = train_steps.saturating_sub(1) as f64;
    match spacing {
        Spacing::Linspace => linspace(0.0, last, steps).into_iter().rev().collect(),
        Spacing::Leading | Spacing::Trailing => {
            super::diffusion::ddim_timesteps(steps, train_steps, spacing)
                .into_iter()
                .map(|t| {
                    if spacing == Spacing::Leading {
                        (t + offset) as f64
                    } else {
                        t as f64
                    }
                    .min(last)
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd() -> VpTable {
        VpTable::from_betas(0.00085, 0.012, 1000, true)
    }

    #[test]
    fn sigma_to_t_round_trips_in_log_sigma() {
        let vp = sd();
        for t in [0.0, 1.0, 17.0, 500.0, 998.0, 999.0] {
            let back = vp.t_of_sigma(vp.sigmas()[t as usize]);
            assert!((back - t).abs() < 1e-9, "{t} → {back}");
        }
        // Halfway in log σ between two timesteps is t + ½.
        let s = (0.5 * (vp.sigmas()[10].ln() + vp.sigmas()[11].ln())).exp();
        assert!((vp.t_of_sigma(s) - 10.5).abs() < 1e-9);
        // Clamped at the table's ends.
        assert_eq!(vp.t_of_sigma(1e6), 999.0);
        assert_eq!(vp.t_of_sigma(1e-6), 0.0);
    }

    /// SciPy: `np.rint(beta.ppf(1 - np.linspace(0, 1, 8, endpoint=False), 0.6, 0.6) * 999)`.
    #[test]
    fn beta_matches_scipys_quantiles() {
        assert!((beta_ppf(0.5, 0.6, 0.6) - 0.5).abs() < 1e-9);
        // I_x(1, 1) = x; I_x(2, 1) = x².
        assert!((reg_inc_beta(0.3, 1.0, 1.0) - 0.3).abs() < 1e-12);
        assert!((reg_inc_beta(0.3, 2.0, 1.0) - 0.09).abs() < 1e-12);
        let t = beta_timesteps(8, 1000);
        assert_eq!(t, [999, 942, 823, 670, 500, 329, 176, 57]);
    }

    #[test]
    fn karras_and_exponential_span_the_model() {
        let vp = sd();
        let m = NoiseModel::Vp(vp.clone());
        let k = Schedule::fixed(5, 1.0).with_scheduler(Scheduler::Karras);
        let l = k.levels(&m, &[1]);
        assert_eq!(l.len(), 6);
        assert!((l[0] - vp.sigma_max()).abs() < 1e-9 && (l[4] - vp.sigma_min()).abs() < 1e-12);
        assert_eq!(l[5], 0.0);
        let e = Schedule::fixed(3, 1.0).with_scheduler(Scheduler::Exponential);
        let l = e.levels(&m, &[1]);
        let mid = (vp.sigma_max() * vp.sigma_min()).sqrt();
        assert!((l[1] - mid).abs() < 1e-9, "{l:?}");
    }

    #[test]
    fn flow_normal_is_sd3s_default_and_simple_is_fluxs() {
        // diffusers FlowMatchEulerDiscrete(shift=3), 4 steps.
        let s = Schedule::fixed(4, 3.0).with_scheduler(Scheduler::Normal);
        let l = s.levels(&NoiseModel::Flow, &[1]);
        let smin = shifted(0.001, 3.0);
        let want: Vec<f64> = linspace(1.0, smin, 4)
            .into_iter()
            .map(|v| shifted(v, 3.0))
            .chain([0.0])
            .collect();
        assert_eq!(l, want);
        let d = Schedule::fixed(2, 1.0).levels(&NoiseModel::Flow, &[1]);
        assert_eq!(d, [1.0, 0.5, 0.0]);
    }

    /// A ve model: Karras by default, `normal` log-linear (ComfyUI's EDM),
    /// `simple` from its σ_max, and the start noise `noise·σ₀`.
    #[test]
    fn ve_levels_span_the_declared_range() {
        let m = NoiseModel::Ve {
            sigma_min: 0.002,
            sigma_max: 80.0,
        };
        let d = Schedule::fixed(5, 1.0).levels(&m, &[1]);
        let k = Schedule::fixed(5, 1.0)
            .with_scheduler(Scheduler::Karras)
            .levels(&m, &[1]);
        assert_eq!(d, k);
        assert!(
            (d[0] - 80.0).abs() < 1e-9 && (d[4] - 0.002).abs() < 1e-12,
            "{d:?}"
        );
        let n = Schedule::fixed(3, 1.0)
            .with_scheduler(Scheduler::Normal)
            .levels(&m, &[1]);
        assert!((n[1] - (80.0f64 * 0.002).sqrt()).abs() < 1e-9, "{n:?}");
        let s = Schedule::fixed(4, 1.0)
            .with_scheduler(Scheduler::Simple)
            .levels(&m, &[1]);
        assert!((s[0] - 80.0).abs() < 1e-9 && s[3] > 0.002, "{s:?}");
        let u = Schedule::fixed(2, 1.0)
            .with_scheduler(Scheduler::SgmUniform)
            .levels(&m, &[1]);
        assert!((u[1] - (80.0f64.ln() / 2.0 + 0.002f64.ln() / 2.0).exp()).abs() < 1e-9);
        assert_eq!(Schedule::fixed(4, 1.0).entry_native(&m, 80.0), 80.0);
        assert!((m.lambda(2.0) + 2.0f64.ln()).abs() < 1e-12 && m.alpha(2.0) == 1.0);
    }

    #[test]
    fn vp_levels_stay_inside_the_model_and_enter_at_the_vp_point() {
        let vp = sd();
        let m = NoiseModel::Vp(vp.clone());
        let s = Schedule::fixed(4, 1.0);
        let l = s.flow_levels(&m, &[1]);
        // Trailing: the first level is timestep 999, not flow σ = 1.
        assert!((l[0] - to_flow(vp.sigma_max())).abs() < 1e-12, "{l:?}");
        assert!(l[0] < 0.94);
        // The VP point x_T = noise is, in flow units, noise/(√ᾱ + √(1−ᾱ)).
        let a = vp.alphas_cumprod()[999];
        let e = s.entry_flow(&m, vp.sigma_max());
        assert!((e - 1.0 / (a.sqrt() + (1.0 - a).sqrt())).abs() < 1e-12);
    }
}
