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
//! Shared:
//! - [`diffusion`] — the math: flow schedules and their shift, VP ᾱ
//!   schedules and DDIM timesteps, the VP ↔ flow correspondence, and
//!   [`Readout`] (a model's prediction as x₀ and ε);
//! - `call.rs` — how a sampler calls its denoiser: the `@denoiser(x, t)`
//!   callable, the build-time checks, `FlowCall` (the denoiser at a flow
//!   level σ, whatever it predicts);
//! - `step.rs` — the sampler core: a `StepRule` and the `Sampler` node
//!   around it, step noise (the seeded RNG, or the wired `step_noise`);
//! - here: the parameters every sampler shares;
//! - `test_support.rs` (tests only) — the perfect denoisers the samplers'
//!   unit tests run on (`PerfectFlow`, `PerfectEps`).
//!
//! **To add a sampler:** a file with its `NodeKind` (parameters:
//! `flow_sampler_params![…its own…]`, built with `Sampler::node(cx, rule)`)
//! and a `StepRule` whose `sample` is the step rule over
//! `Sampling::denoise` — `euler.rs` is the smallest — and one entry in the
//! crate's `KINDS`. A sampler with state across ticks (`df_window`) or two
//! callables (`aam`) implements `Node` itself over the same helpers.

pub mod aam;
mod call;
pub mod ddim;
pub mod df_window;
pub mod diffusion;
pub mod euler;
pub mod kdiffusion;
pub mod schedule;
pub mod sde;
pub mod self_forcing;
mod step;
pub mod tts;
pub mod vp;

use crate::common::*;

pub(crate) use call::{DenoiserCall, FlowCall};
pub use diffusion::{DynamicShift, Readout, flow_schedule};
pub use schedule::{NoiseModel, Schedule, Scheduler, VpTable};
pub(crate) use step::{Sampler, Sampling, StepRule};

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

/// `scheduler`: how the levels are spread ([`schedule::Scheduler`]).
pub(crate) const SCHEDULER: ParamSpec = ParamSpec::optional(
    "scheduler",
    ParamType::Choice(schedule::SCHEDULERS),
    ParamDefault::Choice("default"),
    "levels: default (flow: simple, VP: normal, ve: karras), normal (flow: SD3's; VP: diffusers' spaced timesteps), simple, karras, exponential, sgm_uniform, beta",
);
/// `sigmas`: an explicit list of levels.
pub(crate) const SIGMAS: ParamSpec = ParamSpec::optional(
    "sigmas",
    ParamType::FloatList,
    ParamDefault::Absent,
    "explicit native levels, decreasing (flow σ, or a VP model's √((1−ᾱ)/ᾱ)); replaces `scheduler` and `steps`",
);
/// `spacing`: a VP model's timestep spacing (`normal` scheduler).
pub(crate) const SPACING: ParamSpec = ParamSpec::optional(
    "spacing",
    ParamType::Choice(&["leading", "trailing", "linspace"]),
    ParamDefault::Choice("trailing"),
    "VP models, normal scheduler: diffusers' `timestep_spacing` (trailing starts at T-1)",
);
/// `steps_offset`: added to `leading` timesteps.
pub(crate) const STEPS_OFFSET: ParamSpec = ParamSpec::optional(
    "steps_offset",
    ParamType::Int,
    ParamDefault::Int(0),
    "VP models, leading spacing: diffusers' `steps_offset` (1 for Stable Diffusion)",
);
/// `init_noise`: how the start noise enters ([`schedule::Init`]).
pub(crate) const INIT_NOISE: ParamSpec = ParamSpec::optional(
    "init_noise",
    ParamType::Choice(schedule::INITS),
    ParamDefault::Choice("vp"),
    "start noise: vp = the VP point x_T (DDIM, DPMSolver; flow: x = noise), sigma = noise·σ₀ (k-diffusion)",
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
    "the denoiser: flow velocity / x₀, VP ε / v / x₀, or ve x₀ / ε (converted from its metadata)",
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
            super::SCHEDULER,
            super::SIGMAS,
            super::SPACING,
            super::STEPS_OFFSET,
            super::INIT_NOISE,
            $($own),*
        ]
    };
}
pub(crate) use flow_sampler_params;

#[cfg(test)]
pub(crate) mod test_support;
