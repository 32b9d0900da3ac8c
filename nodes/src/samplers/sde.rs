//! `sde`: Euler–Maruyama on the rectified-flow path, in Yume's form.
//!
//! On the shifted schedule of [`super::flow_schedule`], each step calls the
//! denoiser at σᵢ for x₀ (and v = ε − x₀), then, with dσ = σᵢ₊₁ − σᵢ:
//! `score = −(x − (1−σᵢ)·x₀)/σᵢ²`,
//! `x ← x + dσ·v − ½η²·score·dσ + η·√(−dσ)·z`
//! (Yume's `sample_sde`, η = 0.3 there). `z` is the step noise (the seeded
//! RNG, or the wired `step_noise`). η = 0 is `euler`.

use super::{DENOISER, ETA, Sampler, Sampling, Schedule, StepRule, eta_param, flow_sampler_params};
use crate::common::*;
use wgraph_kernels::{SdeCoef, host};

/// The `sde` kind.
pub struct Sde;

impl NodeKind for Sde {
    fn name(&self) -> &'static str {
        "sde"
    }
    fn summary(&self) -> &'static str {
        "rectified-flow Euler–Maruyama (Yume's SDE sampler, η): Euler plus a score correction and fresh noise each step"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = flow_sampler_params![ETA, DENOISER,];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let schedule = Schedule::from_params(cx)?;
        let eta = eta_param(cx)?;
        Sampler::node(cx, SdeRule { schedule, eta })
    }
}

/// Yume's Euler–Maruyama step rule.
struct SdeRule {
    schedule: Schedule,
    eta: f64,
}

impl StepRule for SdeRule {
    fn kind(&self) -> &'static str {
        "sde"
    }
    fn noise_draws(&self) -> Option<usize> {
        Some(self.schedule.steps())
    }
    fn sample(&self, m: &mut Sampling<'_, '_>, mut x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        let mut z = Vec::new();
        for (i, pair) in m.enter_flow(&self.schedule, &mut x).windows(2).enumerate() {
            let (s, s_next) = (pair[0], pair[1]);
            let (x0, eps) = m.denoise(&x, s)?;
            m.step_noise(i, &mut z, x.len())?;
            let ds = s_next - s;
            let amp = self.eta * (-ds).max(0.0).sqrt();
            let coef = SdeCoef {
                s,
                ds,
                eta: self.eta,
                amp,
            };
            host::sde_step(&mut x, &x0, &eps, &z, &coef);
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use crate::samplers::test_support::PerfectFlow;
    use wgraph_engine::params::ParamValue as P;

    /// Against an independent f64 loop of Yume's formula, with the same
    /// injected step noise.
    #[test]
    fn matches_yumes_formula_with_injected_noise() {
        let dir = tempfile::tempdir().unwrap();
        let (steps, shift, eta) = (4usize, 3.0, 0.3);
        let params = vec![
            ("steps", P::Int(steps as i64)),
            ("shift", P::Float(shift)),
            ("eta", P::Float(eta)),
            ("denoiser", P::NodeRef("d".into())),
        ];
        let node = build(&Sde, params, dir.path()).unwrap();
        let n = 6;
        let target: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
        let noise: Vec<f32> = (0..n).map(|i| (i as f32 * 1.1).cos()).collect();
        let zs: Vec<f32> = (0..steps * n).map(|i| (i as f32 * 0.37).cos()).collect();
        let (mut m, mut inf) = (PerfectFlow::new(&target), PerfectFlow::new(&target));
        let out = run_with(
            &*node,
            1,
            |_| vec![t32(&[1, n], noise.clone()), t32(&[steps, 1, n], zs.clone())],
            &mut m,
            &mut inf,
        )
        .unwrap();
        let got = f32s(&out[0].0, 0);
        // Reference: σ schedule and the update, written out again here.
        let sig: Vec<f64> = (0..steps)
            .map(|i| 1.0 - i as f64 / steps as f64)
            .map(|s| shift * s / (1.0 + (shift - 1.0) * s))
            .chain([0.0])
            .collect();
        let mut x: Vec<f64> = noise.iter().map(|&v| f64::from(v)).collect();
        for i in 0..steps {
            let (s, s2) = (sig[i], sig[i + 1]);
            for k in 0..n {
                let c = f64::from(target[k]);
                let v = (x[k] - c) / s; // the perfect velocity
                let x0 = x[k] - s * v;
                let score = -(x[k] - (1.0 - s) * x0) / (s * s);
                let z = f64::from(zs[i * n + k]);
                x[k] +=
                    (s2 - s) * v - 0.5 * eta * eta * score * (s2 - s) + eta * (s - s2).sqrt() * z;
            }
        }
        let err = got
            .iter()
            .zip(&x)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        assert!(err <= 1e-5, "max abs error {err}");
        // η = 0 is Euler: the target exactly.
        let params = vec![("eta", P::Float(0.0)), ("denoiser", P::NodeRef("d".into()))];
        let node = build(&Sde, params, dir.path()).unwrap();
        let (mut m, mut inf) = (PerfectFlow::new(&target), PerfectFlow::new(&target));
        let out = run_with(
            &*node,
            1,
            |_| vec![t32(&[1, n], noise.clone())],
            &mut m,
            &mut inf,
        )
        .unwrap();
        let got = f32s(&out[0].0, 0);
        assert!(got.iter().zip(&target).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn step_noise_of_the_wrong_shape_is_a_type_error() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Sde, vec![("denoiser", P::NodeRef("d".into()))], dir.path()).unwrap();
        let mut inf = PerfectFlow::new(&[0.0; 4]);
        let ins = [
            Some(ValueType::tensor(DType::F32, &[1, 4])),
            Some(ValueType::tensor(DType::F32, &[3, 1, 4])),
        ];
        let e = node.infer(&ins, &mut inf).unwrap_err();
        assert_eq!(e.input, Some(1));
        assert_eq!(
            e.message,
            "`step_noise` must be f32[4, 1, 4] (one noise tensor per step), found f32[3, 1, 4]"
        );
    }
}
