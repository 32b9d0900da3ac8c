//! The VP-space samplers besides `ddim`, with diffusers' semantics, over
//! the same VP parameters ([`VpParams`]: the model's declared betas,
//! spacing, `steps_offset`, `set_alpha_to_one`, `clip_sample`):
//!
//! - `ddpm` — DDPM ancestral sampling (`DDPMScheduler`, `fixed_small`
//!   variance): `x ← c₀·x₀ + c₁·x + σ·z` with the posterior's mean and
//!   standard deviation between the inference timesteps;
//! - `lcm` — latent consistency models (`LCMScheduler`): timesteps from
//!   `original_steps` (50) skipping, the consistency boundary condition
//!   `c_skip·x + c_out·x₀` (`timestep_scaling` 10, σ_data 0.5), re-noised
//!   with fresh noise to the next timestep; the output is the last estimate.
//!
//! Both draw their noise through the step noise (draw i in step i).
//!
//! With a `scheduler` (or `sigmas`) other than the default, both step in σ
//! on that scheduler's levels of their VP table instead
//! ([`VpParams::sigma_steps`], as ComfyUI runs them): `ddpm` the DDPM
//! posterior between two σ (k-diffusion's ancestral step at η = 1,
//! ComfyUI's `sample_ddpm`), `lcm` the consistency estimate re-noised
//! `x ← D + σ'·z` (ComfyUI's `sample_lcm`, with diffusers' boundary
//! condition at the fractional timestep).

use super::ddim::{
    SCHEDULES, SPACINGS, VpParams, lcm_boundary, toward, vp_denoise, vp_sampler_params,
};
use super::schedule::NoiseModel;
use super::{Sampler, Sampling, StepRule};
use crate::common::*;

const DENOISER: ParamSpec = ParamSpec::required(
    "denoiser",
    ParamType::NodeRef,
    "the denoiser (call inputs x and t): VP ε / v / x₀ (its declared betas), or flow velocity / x₀ (converted)",
);

/// The `ddpm` kind.
pub struct Ddpm;

impl NodeKind for Ddpm {
    fn name(&self) -> &'static str {
        "ddpm"
    }
    fn summary(&self) -> &'static str {
        "DDPM ancestral sampler (diffusers' DDPMScheduler, fixed_small variance): posterior mean plus fresh noise each step"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = vp_sampler_params![DENOISER];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let vp = VpParams::from_params(cx)?;
        Sampler::node(cx, DdpmRule { vp })
    }
}

struct DdpmRule {
    vp: VpParams,
}

impl StepRule for DdpmRule {
    const EPSILON_OK: bool = true;
    fn kind(&self) -> &'static str {
        "ddpm"
    }
    fn check(&self, model: &NoiseModel) -> Result<(), TypeError> {
        self.vp.check("ddpm", model)
    }
    fn noise_draws(&self) -> Option<usize> {
        Some(self.vp.steps)
    }
    fn sample(&self, m: &mut Sampling<'_, '_>, mut x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        let mut z = Vec::new();
        if let Some(schedule) = &self.vp.sigma {
            // The DDPM posterior between two σ, in the VE form: k-diffusion's
            // ancestral step at η = 1 (`get_ancestral_step`), ComfyUI's
            // `sample_ddpm`.
            return self
                .vp
                .sigma_steps(schedule, m, x, None, |m, i, s, s1, x, den| {
                    let up = s1.min((s1 * s1 * (s * s - s1 * s1) / (s * s)).max(0.0).sqrt());
                    let down = (s1 * s1 - up * up).max(0.0).sqrt();
                    m.step_noise(i, &mut z, x.len())?;
                    toward(x, den, down / s, Some((up, &z)));
                    Ok(())
                });
        }
        let table = self.vp.table(m.model()).clone();
        let ac = table.alphas_cumprod();
        for (i, t) in self.vp.timesteps(ac.len()).into_iter().enumerate() {
            let a_t = ac[t];
            // DDPM's ᾱ before timestep 0 is always 1.
            let a_p = t
                .checked_sub(ac.len() / self.vp.steps)
                .map_or(1.0, |p| ac[p]);
            let (b_t, b_p) = (1.0 - a_t, 1.0 - a_p);
            let cur_a = a_t / a_p;
            let cur_b = 1.0 - cur_a;
            let c0 = a_p.sqrt() * cur_b / b_t;
            let c1 = cur_a.sqrt() * b_p / b_t;
            let std = if t > 0 {
                (b_p / b_t * cur_b).max(1e-20).sqrt()
            } else {
                0.0
            };
            let (x0, _) = vp_denoise(m, &x, t as f64, a_t)?;
            if t > 0 {
                m.step_noise(i, &mut z, x.len())?;
            }
            for (k, v) in x.iter_mut().enumerate() {
                let mut x0k = f64::from(x0[k]);
                if let Some(r) = self.vp.clip {
                    x0k = x0k.clamp(-r, r);
                }
                let noise = if t > 0 { std * f64::from(z[k]) } else { 0.0 };
                *v = (c0 * x0k + c1 * f64::from(*v) + noise) as f32;
            }
        }
        Ok(x)
    }
}

/// The `lcm` kind.
pub struct Lcm;

impl NodeKind for Lcm {
    fn name(&self) -> &'static str {
        "lcm"
    }
    fn summary(&self) -> &'static str {
        "latent consistency model sampler (diffusers' LCMScheduler): consistency estimate, re-noised to the next timestep"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = vp_sampler_params![
            ParamSpec::optional(
                "original_steps",
                ParamType::Int,
                ParamDefault::Int(50),
                "the distillation's timestep grid (diffusers' `original_inference_steps`); the steps are picked from it (`spacing` does not apply)",
            ),
            ParamSpec::optional(
                "timestep_scaling",
                ParamType::Float,
                ParamDefault::Float(10.0),
                "boundary condition: c_skip = σ_d²/((t·s)² + σ_d²), c_out = t·s/√((t·s)² + σ_d²), σ_d = 0.5",
            ),
            DENOISER,
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let vp = VpParams::from_params(cx)?;
        let original = cx.params.int("original_steps")?;
        let original = usize::try_from(original)
            .ok()
            .filter(|o| vp.sigma.is_some() || (vp.steps..=vp.own.2).contains(o))
            .ok_or_else(|| {
                BuildError::param(
                    "original_steps",
                    format!(
                        "`original_steps` must be between `steps` ({}) and train_steps, found {original}",
                        vp.steps
                    ),
                )
            })?;
        if vp.sigma.is_some() && (cx.params.span("original_steps").is_some() || original != 50) {
            return Err(BuildError::param(
                "original_steps",
                "`original_steps` picks diffusers' LCM timesteps on the default scheduler; with `scheduler` or `sigmas` the levels are that scheduler's: remove one",
            ));
        }
        let scaling = finite_param(cx, "timestep_scaling")?;
        Sampler::node(
            cx,
            LcmRule {
                vp,
                original,
                scaling,
            },
        )
    }
}

struct LcmRule {
    vp: VpParams,
    original: usize,
    scaling: f64,
}

/// LCM's timesteps: the distillation grid `(1..=O)·(T//O) − 1`, reversed,
/// at `floor(linspace(0, O, N, endpoint = false))`.
pub fn lcm_timesteps(steps: usize, original: usize, train_steps: usize) -> Vec<usize> {
    let k = train_steps / original.max(1);
    let grid: Vec<usize> = (1..=original)
        .rev()
        .map(|i| (i * k).saturating_sub(1))
        .collect();
    (0..steps)
        .map(|i| {
            let idx = (i as f64 * original as f64 / steps as f64).floor() as usize;
            grid[idx.min(grid.len() - 1)]
        })
        .collect()
}

impl StepRule for LcmRule {
    const EPSILON_OK: bool = true;
    fn kind(&self) -> &'static str {
        "lcm"
    }
    fn check(&self, model: &NoiseModel) -> Result<(), TypeError> {
        self.vp.check("lcm", model)
    }
    fn noise_draws(&self) -> Option<usize> {
        Some(self.vp.steps)
    }
    fn sample(&self, m: &mut Sampling<'_, '_>, mut x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        let mut z = Vec::new();
        if let Some(schedule) = &self.vp.sigma {
            // The consistency estimate D, re-noised to σ' with fresh noise
            // (ComfyUI's `sample_lcm`; the output is the last D).
            let scaling = Some(self.scaling);
            return self
                .vp
                .sigma_steps(schedule, m, x, scaling, |m, i, _, s1, x, den| {
                    m.step_noise(i, &mut z, x.len())?;
                    toward(x, den, 0.0, Some((s1, &z)));
                    Ok(())
                });
        }
        let table = self.vp.table(m.model()).clone();
        let ac = table.alphas_cumprod();
        let ts = lcm_timesteps(self.vp.steps, self.original, ac.len());
        let mut out = x.clone();
        for (i, &t) in ts.iter().enumerate() {
            let a_t = ac[t];
            let (c_skip, c_out) = lcm_boundary(t as f64, self.scaling);
            let (x0, _) = vp_denoise(m, &x, t as f64, a_t)?;
            for (k, o) in out.iter_mut().enumerate() {
                let mut x0k = f64::from(x0[k]);
                if let Some(r) = self.vp.clip {
                    x0k = x0k.clamp(-r, r);
                }
                *o = (c_out * x0k + c_skip * f64::from(x[k])) as f32;
            }
            if let Some(&next) = ts.get(i + 1) {
                let a_p = ac[next];
                m.step_noise(i, &mut z, x.len())?;
                for (k, v) in x.iter_mut().enumerate() {
                    *v = (a_p.sqrt() * f64::from(out[k]) + (1.0 - a_p).sqrt() * f64::from(z[k]))
                        as f32;
                }
            }
        }
        Ok(out)
    }
}
