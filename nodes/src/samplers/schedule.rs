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
//!
//! | file | concern |
//! |---|---|
//! | `schedule.rs` | `NoiseModel`, `VpTable`, `Scheduler`, `Init`, `Schedule` (levels per scheduler and noise model), the shared parameters |
//! | `schedule/spacing.rs` | the numeric series behind the schedulers: `beta_timesteps`, `linspace`, `vp_timesteps`, Karras / exponential ramps, `simple` |
//! | `schedule/tests.rs` | the tests |

use super::diffusion::{DynamicShift, Spacing, alphas_cumprod, shifted};
use crate::common::*;

mod spacing;
pub use spacing::{beta_timesteps, linspace, vp_timesteps};
use spacing::{ramp, simple_levels, ve_table};

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

#[cfg(test)]
mod tests;
