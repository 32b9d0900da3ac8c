//! The diffusion math every sampler and denoiser shares: noise schedules,
//! the shift that warps them, the VP (DDPM) ↔ rectified-flow conversion,
//! and how a model's output reads as (x₀, ε) estimates.
//!
//! - Flow schedules: σ from 1 to 0 ([`flow_schedule`]), warped by the shift
//!   `σ ← s·σ/(1 + (s−1)·σ)` ([`shifted`]; Yume, SD3, Self-Forcing's level
//!   lists), fixed or from the latent's size ([`DynamicShift`]; the schedules
//!   themselves are [`super::schedule`]'s).
//! - VP schedules: ᾱ from the betas ([`alphas_cumprod`]), DDIM's inference
//!   timesteps ([`ddim_timesteps`], [`Spacing`]), ᾱ at a fractional
//!   timestep ([`alpha_at`]).
//! - The correspondence: a flow point `(1−σ)·x₀ + σ·ε` is the VP point
//!   `√ᾱ·x₀ + √(1−ᾱ)·ε` over `√ᾱ + √(1−ᾱ)` ([`vp_scale`]), so
//!   `σ = √(1−ᾱ)/(√ᾱ + √(1−ᾱ))` ([`flow_sigma_of_alpha`]; the inverse, a VP
//!   model's timestep of a flow level, is [`VpAsFlow::timestep`]).
//! - [`Readout`]: a model's prediction (velocity, ε, v, x₀) as (x₀, ε), and
//!   back.

use crate::common::*;

/// The flow shift `σ ← s·σ / (1 + (s − 1)·σ)`: larger `shift` spends more
/// steps at high noise (s = 1 leaves σ as it is).
pub fn shifted(sigma: f64, shift: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

/// The σ schedule of `steps` steps: `linspace(1, 0, steps + 1)[..steps]`,
/// shifted by `σ ← s·σ / (1 + (s − 1)·σ)`, then a final 0 (`steps + 1` values).
pub fn flow_schedule(steps: usize, shift: f64) -> Vec<f64> {
    (0..steps)
        .map(|i| 1.0 - i as f64 / steps as f64)
        .map(|s| shifted(s, shift))
        .chain([0.0])
        .collect()
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

/// A VP ε-model seen as a flow model: its ᾱ table (and σ table).
#[derive(Debug, Clone)]
pub struct VpAsFlow {
    table: super::schedule::VpTable,
}

impl VpAsFlow {
    pub fn new(alphas_cumprod: Vec<f64>) -> Self {
        VpAsFlow {
            table: super::schedule::VpTable::new(alphas_cumprod),
        }
    }

    /// The ᾱ table.
    pub fn table(&self) -> &[f64] {
        self.table.alphas_cumprod()
    }

    /// The ᾱ and σ tables.
    pub fn vp_table(&self) -> &super::schedule::VpTable {
        &self.table
    }

    /// The model's training timesteps (the table's length).
    pub fn train_steps(&self) -> usize {
        self.table.train_steps()
    }

    /// The (fractional) timestep of flow level σ — its VE σ `σ/(1−σ)`
    /// interpolated in log σ between the table's neighbours, as diffusers'
    /// `_sigma_to_t` — and its ᾱ `1/(1 + σ_VE²)` (both clamped to the
    /// table's range).
    pub fn timestep(&self, sigma: f64) -> (f64, f64) {
        vp_timestep(&self.table, sigma)
    }
}

/// [`VpAsFlow::timestep`] over a [`VpTable`](super::schedule::VpTable).
pub fn vp_timestep(table: &super::schedule::VpTable, sigma: f64) -> (f64, f64) {
    if table.train_steps() == 0 {
        return (0.0, 1.0);
    }
    let ve = super::schedule::from_flow(sigma.clamp(0.0, 1.0))
        .clamp(table.sigma_min(), table.sigma_max());
    (table.t_of_sigma(ve), 1.0 / (1.0 + ve * ve))
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
    /// VE (`x = x₀ + σ·ε`, called with σ), the clean sample x₀:
    /// k-diffusion's denoiser `D(x, σ)`.
    VeSample,
    /// VE, the noise ε.
    VeEpsilon,
}

/// The VE σ of a noise level given as ᾱ = 1/(1+σ²) (how a ve model's
/// level reaches [`Readout::estimate`]).
fn ve_sigma(alpha: f64) -> f64 {
    ((1.0 - alpha) / alpha).sqrt()
}

impl Readout {
    /// The readout of a model that says what it predicts; an error says why
    /// the pair cannot be read (for the sampler's message).
    pub fn of(prediction: &Prediction) -> Result<Readout, String> {
        if let NoiseProcess::Ve { .. } = prediction.process {
            return match prediction.output.as_str() {
                "sample" | "x0" => Ok(Readout::VeSample),
                "epsilon" => Ok(Readout::VeEpsilon),
                other => Err(format!(
                    "it predicts `{other}` on the ve process, where a model predicts `sample` (k-diffusion's D(x, σ)) or `epsilon`"
                )),
            };
        }
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

    /// Whether the model is called with the VE σ on `x = x₀ + σ·ε`.
    pub fn is_ve(self) -> bool {
        matches!(self, Readout::VeSample | Readout::VeEpsilon)
    }

    /// The (x₀, ε) estimates from the model's output `y` at its input `xm`:
    /// the flow point at level σ for flow models (`xm = (1−σ)·x₀ + σ·ε`),
    /// the VP point at ᾱ for VP models (`xm = √ᾱ·x₀ + √(1−ᾱ)·ε`), the VE
    /// point for ve models (`xm = x₀ + σ·ε`, σ given as ᾱ = 1/(1+σ²)).
    pub fn estimate(self, xm: f64, y: f64, sigma: f64, alpha: f64) -> (f64, f64) {
        let (sa, sb) = (alpha.sqrt(), (1.0 - alpha).sqrt());
        match self {
            Readout::VeSample => (y, (xm - y) / ve_sigma(alpha)),
            Readout::VeEpsilon => (xm - ve_sigma(alpha) * y, y),
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
            Readout::VeSample => x0,
            Readout::VeEpsilon => (xm - x0) / ve_sigma(alpha),
        }
    }
}

/// ᾱ at a (fractional) timestep `t` of a VP table: linear between the
/// integer timesteps (as [`VpAsFlow::timestep`] chose `t`), clamped to the
/// table.
pub fn alpha_at(alphas_cumprod: &[f64], t: f64) -> f64 {
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

/// The factor from a flow point to the VP point of the same noise level ᾱ:
/// `x_vp = (√ᾱ + √(1−ᾱ))·x_flow`.
pub fn vp_scale(alpha: f64) -> f64 {
    alpha.sqrt() + (1.0 - alpha).sqrt()
}

/// The flow σ of the VP noise level ᾱ: `√(1−ᾱ)/(√ᾱ + √(1−ᾱ))`.
pub fn flow_sigma_of_alpha(alpha: f64) -> f64 {
    let (sa, sb) = (alpha.sqrt(), (1.0 - alpha).sqrt());
    sb / (sa + sb)
}

/// How inference timesteps are spread over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    /// `(arange(N)·(T//N))[::-1]`: ends at 0, starts below T−1.
    Leading,
    /// `round(arange(T, 0, −T/N)) − 1`: starts at T−1.
    Trailing,
    /// `round(linspace(0, T−1, N))[::-1]`: both ends.
    Linspace,
}

impl Spacing {
    /// From a `spacing` choice (anything unknown is `trailing`).
    pub fn parse(s: &str) -> Spacing {
        match s {
            "leading" => Spacing::Leading,
            "linspace" => Spacing::Linspace,
            _ => Spacing::Trailing,
        }
    }
}

/// The `steps` inference timesteps (descending) out of `train_steps`, as
/// diffusers' `DDIMScheduler.set_timesteps` computes them, NumPy's float
/// arithmetic and round-half-to-even included. For `trailing`, NumPy's
/// `arange` sometimes yields one extra element (a trailing −1, e.g. N = 61,
/// T = 1000); this returns exactly `steps` values.
pub fn ddim_timesteps(steps: usize, train_steps: usize, spacing: Spacing) -> Vec<usize> {
    let (n, t) = (steps, train_steps);
    let round = |v: f64| v.round_ties_even().clamp(0.0, t.saturating_sub(1) as f64) as usize;
    match spacing {
        Spacing::Leading => {
            let ratio = t / n.max(1);
            (0..n).rev().map(|i| i * ratio).collect()
        }
        Spacing::Trailing => {
            // NumPy's arange: v_i = start + i·δ, δ = (start + step) − start.
            let tf = t as f64;
            let delta = (tf - tf / n as f64) - tf;
            (0..n)
                .map(|i| ((tf + i as f64 * delta).round_ties_even() - 1.0).max(0.0) as usize)
                .collect()
        }
        Spacing::Linspace => {
            // NumPy's linspace: i·step, the last value exactly `stop`.
            let stop = t.saturating_sub(1) as f64;
            let step = if n > 1 { stop / (n - 1) as f64 } else { 0.0 };
            (0..n)
                .rev()
                .map(|i| {
                    if i + 1 == n && n > 1 {
                        round(stop)
                    } else {
                        round(i as f64 * step)
                    }
                })
                .collect()
        }
    }
}

/// ᾱₜ for t in 0..T: the cumulative product of `1 − β`, with β from
/// `linspace(√b0, √b1, T)²` (`scaled`) or `linspace(b0, b1, T)`.
pub fn alphas_cumprod(b0: f64, b1: f64, t: usize, scaled: bool) -> Vec<f64> {
    let lin = |a: f64, b: f64, i: usize| {
        if t > 1 {
            a + (b - a) * i as f64 / (t - 1) as f64
        } else {
            a
        }
    };
    let mut acc = 1.0;
    (0..t)
        .map(|i| {
            let beta = if scaled {
                lin(b0.sqrt(), b1.sqrt(), i).powi(2)
            } else {
                lin(b0, b1, i)
            };
            acc *= 1.0 - beta;
            acc
        })
        .collect()
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
            Readout::VeSample,
            Readout::VeEpsilon,
        ] {
            let (sigma, alpha) = (0.4, 0.6);
            let y = readout.prediction(xm, x0, sigma, alpha);
            let (a, e) = readout.estimate(xm, y, sigma, alpha);
            assert!((a - x0).abs() < 1e-12, "{readout:?}: x0 {a}");
            let want = if readout.is_ve() {
                (xm - x0) / ((1.0 - alpha) / alpha).sqrt()
            } else if readout.is_vp() {
                (xm - alpha.sqrt() * x0) / (1.0 - alpha).sqrt()
            } else {
                (xm - (1.0 - sigma) * x0) / sigma
            };
            assert!((e - want).abs() < 1e-12, "{readout:?}: eps {e}");
        }
    }
}
