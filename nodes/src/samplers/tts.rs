//! `tts_ode`, `tts_sde`: Yume's Time Travel Sampling (arXiv 2507.17744,
//! Alg. 3), in the form of Yume's code (BRIEF §3): every `interval`-th step
//! looks ahead `depth` steps from the current latent (plain Euler steps for
//! `tts_ode`; Euler–Maruyama steps in Yume's form for `tts_sde`), and the
//! real step then uses the velocity found at the look-ahead's deepest point
//! instead of the velocity here. Other steps are ordinary Euler (or SDE)
//! steps. A look-ahead costs `depth` extra denoiser calls.
//!
//! Where the paper's Alg. 3 differs from the code (it re-noises the
//! look-ahead back up a level, line 9), this follows the code; with
//! `depth = 0` both are `euler` / `sde`.

use super::{DENOISER, ETA, Sampler, Sampling, Schedule, StepRule, eta_param, flow_sampler_params};
use crate::common::*;
use wgraph_kernels::host;

/// The `tts_ode` kind (deterministic) and the `tts_sde` kind (η).
pub struct Tts {
    sde: bool,
}

/// `tts_ode`.
pub const TTS_ODE: Tts = Tts { sde: false };
/// `tts_sde`.
pub const TTS_SDE: Tts = Tts { sde: true };

/// `interval` of Time Travel Sampling.
const INTERVAL: ParamSpec = ParamSpec::optional(
    "interval",
    ParamType::Int,
    ParamDefault::Int(2),
    "travel every `interval`-th step (Yume's code: 2)",
);
/// `depth` of Time Travel Sampling.
const DEPTH: ParamSpec = ParamSpec::optional(
    "depth",
    ParamType::Int,
    ParamDefault::Int(2),
    "look-ahead steps l (Yume's code: 2); 0 is plain Euler / SDE",
);
const ODE_PARAMS: &[ParamSpec] = flow_sampler_params![INTERVAL, DEPTH, DENOISER,];
const SDE_PARAMS: &[ParamSpec] = flow_sampler_params![INTERVAL, DEPTH, ETA, DENOISER,];

impl NodeKind for Tts {
    fn name(&self) -> &'static str {
        if self.sde { "tts_sde" } else { "tts_ode" }
    }
    fn summary(&self) -> &'static str {
        if self.sde {
            "Yume's Time Travel Sampling on the SDE: every interval-th step reuses the velocity of a depth-step look-ahead"
        } else {
            "Yume's Time Travel Sampling on the ODE: every interval-th step reuses the velocity of a depth-step look-ahead"
        }
    }
    fn params(&self) -> &'static [ParamSpec] {
        if self.sde { SDE_PARAMS } else { ODE_PARAMS }
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let schedule = Schedule::from_params(cx)?;
        let count = |name: &str, lo: i64| -> Result<usize, BuildError> {
            let v = cx.params.int(name)?;
            usize::try_from(v)
                .ok()
                .filter(|&n| n as i64 >= lo && n <= 1000)
                .ok_or_else(|| {
                    BuildError::param(
                        name,
                        format!("`{name}` must be between {lo} and 1000, found {v}"),
                    )
                })
        };
        let eta = if self.sde { eta_param(cx)? } else { 0.0 };
        let rule = TtsRule {
            kind: self.name(),
            schedule,
            interval: count("interval", 1)?,
            depth: count("depth", 0)?,
            eta,
        };
        Sampler::node(cx, rule)
    }
}

/// Time Travel Sampling's step rule.
struct TtsRule {
    kind: &'static str,
    schedule: Schedule,
    interval: usize,
    depth: usize,
    eta: f64,
}

impl TtsRule {
    /// One Euler (η = 0) or Euler–Maruyama step from σ to σ' with velocity
    /// `v` and x₀ estimate `x0`; `z` is the step noise.
    fn step(&self, x: &mut [f32], x0: &[f32], v: &[f64], s: f64, s_next: f64, z: &[f32]) {
        let ds = s_next - s;
        if self.eta <= 0.0 {
            host::axpy_wide(x, v, ds);
            return;
        }
        let amp = self.eta * (-ds).max(0.0).sqrt();
        for k in 0..x.len() {
            let xf = f64::from(x[k]);
            let mut next = xf + ds * v[k];
            if self.eta > 0.0 {
                let score = -(xf - (1.0 - s) * f64::from(x0[k])) / (s * s);
                next += -0.5 * self.eta * self.eta * score * ds + amp * f64::from(z[k]);
            }
            x[k] = next as f32;
        }
    }
}

impl StepRule for TtsRule {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn noise_draws(&self) -> Option<usize> {
        Some(self.schedule.steps())
    }
    fn sample(&self, m: &mut Sampling<'_, '_>, mut x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        let sigmas = m.enter_flow(&self.schedule, &mut x);
        let n = self.schedule.steps();
        let mut z = Vec::new();
        let velocity = |x0: &[f32], eps: &[f32]| -> Vec<f64> {
            x0.iter()
                .zip(eps)
                .map(|(&a, &e)| f64::from(e) - f64::from(a))
                .collect()
        };
        for i in 0..n {
            let (s, s_next) = (sigmas[i], sigmas[i + 1]);
            let (x0, eps) = m.denoise(&x, s)?;
            let mut v = velocity(&x0, &eps);
            let mut x0_used = x0;
            // Travel: look ahead `depth` steps (deterministic), reuse the
            // velocity found at the deepest point.
            if self.depth > 0 && i % self.interval == 0 && i + 1 < n {
                let mut ahead = x.clone();
                let (mut va, mut x0a) = (v.clone(), x0_used.clone());
                let last = (i + self.depth).min(n - 1);
                for j in i..last {
                    host::axpy_wide(&mut ahead, &va, sigmas[j + 1] - sigmas[j]);
                    let (x0j, epsj) = m.denoise(&ahead, sigmas[j + 1])?;
                    va = velocity(&x0j, &epsj);
                    x0a = x0j;
                }
                v = va;
                x0_used = x0a;
            }
            if self.eta > 0.0 {
                m.step_noise(i, &mut z, x.len())?;
            } else {
                z.clear();
                z.resize(x.len(), 0.0);
            }
            self.step(&mut x, &x0_used, &v, s, s_next, &z);
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

    /// With a perfect flow model every velocity points at x₀, so the look-
    /// ahead's velocity is the one here up to the level: TTS-ODE recovers
    /// x₀ and makes `depth` extra calls on every `interval`-th step.
    #[test]
    fn travels_on_schedule_and_recovers_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target: Vec<f32> = (0..6).map(|i| (i as f32 * 0.7).sin()).collect();
        let noise: Vec<f32> = (0..6).map(|i| (i as f32 * 1.1).cos()).collect();
        for (steps, interval, depth, calls) in
            [(4, 2, 2, 4 + 2 + 1), (4, 1, 1, 4 + 3), (6, 2, 0, 6)]
        {
            let params = vec![
                ("steps", P::Int(steps)),
                ("interval", P::Int(interval)),
                ("depth", P::Int(depth)),
                ("denoiser", P::NodeRef("d".into())),
            ];
            let node = build(&TTS_ODE, params, dir.path()).unwrap();
            let (mut m, mut inf) = (PerfectFlow::new(&target), PerfectFlow::new(&target));
            let out = run_with(
                &*node,
                1,
                |_| vec![t32(&[1, 6], noise.clone())],
                &mut m,
                &mut inf,
            )
            .unwrap();
            assert_eq!(
                m.ts.len(),
                calls,
                "steps {steps} interval {interval} depth {depth}: {:?}",
                m.ts
            );
            let got = f32s(&out[0].0, 0);
            assert!(
                got.iter().zip(&target).all(|(a, b)| (a - b).abs() < 1e-4),
                "{got:?}"
            );
        }
        // tts_sde with η = 0 is tts_ode.
        let params = vec![("eta", P::Float(0.0)), ("denoiser", P::NodeRef("d".into()))];
        let node = build(&TTS_SDE, params, dir.path()).unwrap();
        let (mut m, mut inf) = (PerfectFlow::new(&target), PerfectFlow::new(&target));
        let out = run_with(
            &*node,
            1,
            |_| vec![t32(&[1, 6], noise.clone())],
            &mut m,
            &mut inf,
        )
        .unwrap();
        assert!(
            f32s(&out[0].0, 0)
                .iter()
                .zip(&target)
                .all(|(a, b)| (a - b).abs() < 1e-4)
        );
    }
}
