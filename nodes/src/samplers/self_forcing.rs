//! `self_forcing`: the few-step sampler of Self-Forcing (and Yan-Gen,
//! Yume 1.5): a list of noise levels (e.g. [1000, 750, 500, 250]) warped by
//! the shift `σ ← s·σ/(1 + (s−1)·σ)` (s = 5: [1000, 937.5, 833.3, 625]);
//! at each level the denoiser's x₀ estimate is re-noised with *fresh* noise
//! to the next level, `x ← (1−σ')·x₀ + σ'·z`; the output is the last x₀.
//! The fresh noise is the step noise (the seeded RNG, or the wired
//! `step_noise`).

use super::schedule::{NoiseModel, from_flow, to_flow};
use super::{DENOISER, Sampler, Sampling, StepRule};
use crate::common::*;
use wgraph_kernels::host;

/// The `self_forcing` kind.
pub struct SelfForcing;

impl NodeKind for SelfForcing {
    fn name(&self) -> &'static str {
        "self_forcing"
    }
    fn summary(&self) -> &'static str {
        "few-step sampler (Self-Forcing): predict x0, re-noise with fresh noise to the next level of a step list"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "steps",
                ParamType::Int,
                ParamDefault::Int(4),
                "number of levels, evenly spaced from 1000 (4: [1000, 750, 500, 250]) unless `timesteps` lists them",
            ),
            ParamSpec::optional(
                "timesteps",
                ParamType::Shape,
                ParamDefault::Absent,
                "the levels in 1000ths, decreasing from 1000, e.g. [1000, 750, 500, 250]",
            ),
            ParamSpec::optional(
                "shift",
                ParamType::Float,
                ParamDefault::Float(5.0),
                "warp s > 0 of the levels: σ ← s·σ/(1 + (s−1)·σ)",
            ),
            DENOISER,
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let levels = match cx.params.shape("timesteps") {
            Ok(list) => list,
            Err(_) => {
                let steps = cx.params.int("steps")?;
                let n = usize::try_from(steps)
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        BuildError::param(
                            "steps",
                            format!("`steps` must be between 1 and 1000, found {steps}"),
                        )
                    })?;
                (0..n).map(|i| 1000 - i * 1000 / n).collect()
            }
        };
        let ok = !levels.is_empty()
            && levels[0] == 1000
            && levels.windows(2).all(|w| w[1] < w[0])
            && levels.iter().all(|&l| l > 0 && l <= 1000);
        if !ok {
            return Err(BuildError::param(
                "timesteps",
                format!("`timesteps` must start at 1000 and decrease, above 0; found {levels:?}"),
            ));
        }
        let shift = finite_param(cx, "shift")?;
        if shift <= 0.0 {
            return Err(BuildError::param(
                "shift",
                format!("`shift` must be positive, found {shift}"),
            ));
        }
        Sampler::node(
            cx,
            SelfForcingRule {
                sigmas: warp(&levels, shift),
            },
        )
    }
}

/// Levels in 1000ths, as σ, warped by `shift`.
pub fn warp(levels: &[usize], shift: f64) -> Vec<f64> {
    levels
        .iter()
        .map(|&l| l as f64 / 1000.0)
        .map(|s| super::diffusion::shifted(s, shift))
        .collect()
}

/// Self-Forcing's step rule: x₀ at each level, re-noised to the next.
struct SelfForcingRule {
    sigmas: Vec<f64>,
}

impl StepRule for SelfForcingRule {
    fn kind(&self) -> &'static str {
        "self_forcing"
    }
    fn noise_draws(&self) -> Option<usize> {
        // One fresh noise per re-noising: steps − 1.
        Some(self.sigmas.len().saturating_sub(1))
    }
    fn sample(&self, m: &mut Sampling<'_, '_>, mut x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        // A VP model has no flow level 1: level l (σ = l/1000 after the
        // warp) is its timestep σ·T − 1 (1000 → T−1, as `trailing`), and
        // the start noise is the VP point there.
        // A ve model: level l is σ log-linear in l from σ_min to σ_max
        // (ComfyUI's EDM timesteps), the start noise `noise·σ₀`.
        let sigmas: Vec<f64> = match m.model() {
            NoiseModel::Flow => self.sigmas.clone(),
            NoiseModel::Vp(vp) => self
                .sigmas
                .iter()
                .map(|&s| to_flow(vp.sigma_at(s * vp.train_steps() as f64 - 1.0)))
                .collect(),
            NoiseModel::Ve {
                sigma_min,
                sigma_max,
            } => self
                .sigmas
                .iter()
                .map(|&s| to_flow((sigma_min.ln() + s * (sigma_max / sigma_min).ln()).exp()))
                .collect(),
        };
        match (m.model(), sigmas.first()) {
            (NoiseModel::Vp(_), Some(&s0)) => {
                let ve = from_flow(s0);
                let entry = ((ve * ve + 1.0).sqrt() / (1.0 + ve)) as f32;
                x.iter_mut().for_each(|v| *v *= entry);
            }
            (NoiseModel::Ve { .. }, Some(&s0)) => x.iter_mut().for_each(|v| *v *= s0 as f32),
            _ => {}
        }
        let mut x0 = x.clone();
        let mut z = Vec::new();
        for (i, &s) in sigmas.iter().enumerate() {
            x0 = m.denoise(&x, s)?.0;
            if let Some(&next) = sigmas.get(i + 1) {
                m.step_noise(i, &mut z, x.len())?;
                host::renoise(&mut x, &x0, &z, next);
            }
        }
        Ok(x0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use crate::samplers::test_support::PerfectFlow;
    use wgraph_engine::params::ParamValue as P;

    #[test]
    fn levels_warp_like_self_forcing_and_x0_comes_out() {
        let s = warp(&[1000, 750, 500, 250], 5.0);
        let want = [1.0, 0.9375, 0.833_333, 0.625];
        assert!(
            s.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{s:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let node = build(
            &SelfForcing,
            vec![("denoiser", P::NodeRef("d".into()))],
            dir.path(),
        )
        .unwrap();
        let three = vec![("steps", P::Int(3)), ("denoiser", P::NodeRef("d".into()))];
        assert!(build(&SelfForcing, three, dir.path()).is_ok());
        let target: Vec<f32> = (0..8).map(|i| (i as f32 * 0.7).sin()).collect();
        let noise: Vec<f32> = (0..8).map(|i| (i as f32 * 1.1).cos()).collect();
        let step_noise: Vec<f32> = (0..24).map(|i| (i as f32 * 0.3).sin()).collect();
        let (mut m, mut inf) = (PerfectFlow::new(&target), PerfectFlow::new(&target));
        let out = run_with(
            &*node,
            1,
            |_| {
                vec![
                    t32(&[1, 8], noise.clone()),
                    t32(&[3, 1, 8], step_noise.clone()),
                ]
            },
            &mut m,
            &mut inf,
        )
        .unwrap();
        let got = f32s(&out[0].0, 0);
        assert!(
            got.iter().zip(&target).all(|(a, b)| (a - b).abs() < 1e-5),
            "{got:?}"
        );
        let ts: Vec<f32> = m.ts.clone();
        assert_eq!(ts.len(), 4);
        assert!(
            (ts[1] - 937.5).abs() < 1e-3 && (ts[3] - 625.0).abs() < 1e-3,
            "{ts:?}"
        );
        // The second call sees (1 − σ₁)·x₀ + σ₁·z₀: the injected noise.
        let s1 = 0.9375f32;
        let want: Vec<f32> = (0..8)
            .map(|k| (1.0 - s1) * target[k] + s1 * step_noise[k])
            .collect();
        assert!(m.xs[1].iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
    }
}
