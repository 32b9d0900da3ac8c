//! `euler`: a rectified-flow Euler sampler that calls a denoiser.
//!
//! Starting from the noise at the schedule's first level (σ = 1 on a flow
//! model; a VP model's largest, see [`super::schedule`]) it takes `steps` steps
//! `x ← x + (σ_{i+1} − σ_i)·v`, where `v` is the denoiser's velocity at
//! `(x, t = 1000·σ_i)`, ending at σ = 0. The σ schedule is Yume's shifted
//! linear one ([`flow_schedule`]), or with `dynamic_shift = true` one whose
//! shift follows the latent's size ([`super::DynamicShift`]).
//!
//! An ε-predicting VP (DDPM) denoiser runs too, converted at build time from
//! its metadata (see [`super::diffusion::VpAsFlow`]): the flow point `x = (1−σ)·x₀ + σ·ε` is
//! the VP point `x_vp = √ᾱ·x₀ + √(1−ᾱ)·ε` divided by `√ᾱ + √(1−ᾱ)`, so
//! `σ = √(1−ᾱ)/(√ᾱ + √(1−ᾱ))` picks ᾱ (and a fractional timestep t in the
//! model's ᾱ table); the model's ε gives `x₀ = (x_vp − √(1−ᾱ)·ε)/√ᾱ` and the
//! velocity `v = ε − x₀`.

use super::{DENOISER, Sampler, Sampling, Schedule, StepRule, flow_sampler_params};
use crate::common::*;
use wgraph_kernels::host;

pub use super::diffusion::flow_schedule;

/// The `euler` kind.
pub struct Euler;

impl NodeKind for Euler {
    fn name(&self) -> &'static str {
        "euler"
    }
    fn summary(&self) -> &'static str {
        "rectified-flow Euler sampler: denoises `noise` in `steps` calls of a denoiser(x, t)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = flow_sampler_params![DENOISER,];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let schedule = Schedule::from_params(cx)?;
        Sampler::node(cx, EulerRule { schedule })
    }
}

/// Euler's step rule: `x ← x + (σ_{i+1} − σ_i)·v` down the schedule.
struct EulerRule {
    schedule: Schedule,
}

impl StepRule for EulerRule {
    fn kind(&self) -> &'static str {
        "euler"
    }
    fn noise_draws(&self) -> Option<usize> {
        None
    }
    fn sample(&self, m: &mut Sampling<'_, '_>, mut x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        for pair in m.enter_flow(&self.schedule, &mut x).windows(2) {
            let (x0, eps) = m.denoise(&x, pair[0])?;
            let dt = (pair[1] - pair[0]) as f32;
            host::axpy_diff(&mut x, &eps, &x0, dt);
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use crate::denoiser::target_flow::TargetFlow;
    use crate::samplers::test_support::PerfectEps;
    use wgraph_engine::node::{Callees, NoCallees};
    use wgraph_engine::params::ParamValue as P;
    use wgraph_engine::settings::Settings;

    /// Runs a `target_flow` node as callable #0, with `target` wired in.
    struct Flow {
        node: Box<dyn Node>,
        target: Value,
        calls: usize,
    }

    impl Callees for Flow {
        fn call(&mut self, index: usize, args: Vec<Value>) -> Result<Vec<Value>, NodeError> {
            assert_eq!(index, 0);
            self.calls += 1;
            let settings = Settings::default();
            let mut none = NoCallees;
            let mut cx = TickContext::new(0, &settings, &mut none);
            let ins: Vec<_> = args
                .into_iter()
                .chain([self.target.clone()])
                .map(Some)
                .collect();
            self.node.eval(&mut self.node.init_state()?, &ins, &mut cx)
        }
    }

    impl InferCalls for Flow {
        fn callee_outputs(&self, _: usize) -> Vec<String> {
            self.node.outputs().into_iter().map(|p| p.name).collect()
        }
        fn infer_call(
            &mut self,
            _: usize,
            args: &[ValueType],
        ) -> Result<Vec<ValueType>, TypeError> {
            let ins: Vec<_> = args
                .iter()
                .cloned()
                .chain([self.target.value_type()])
                .map(Some)
                .collect();
            self.node
                .infer(&ins, &mut wgraph_engine::node::NoInferCalls)
        }
    }

    fn flow(target: Value) -> Flow {
        let dir = tempfile::tempdir().unwrap();
        Flow {
            node: build(&TargetFlow, vec![], dir.path()).unwrap().0,
            target,
            calls: 0,
        }
    }

    #[test]
    fn schedule_matches_yume() {
        let s = flow_schedule(4, 7.0);
        let want = [1.0, 0.954545, 0.875, 0.7, 0.0];
        assert!(
            s.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{s:?}"
        );
        assert_eq!(flow_schedule(2, 1.0), [1.0, 0.5, 0.0]);
    }

    #[test]
    fn recovers_the_target_for_any_steps_and_shift() {
        let dir = tempfile::tempdir().unwrap();
        let target: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let noise: Vec<f32> = (0..24).map(|i| (i as f32 * 1.3).cos() * 2.0).collect();
        for steps in 1..=8 {
            for shift in [1.0, 3.0, 7.0] {
                let params = vec![
                    ("steps", P::Int(steps)),
                    ("shift", P::Float(shift)),
                    ("denoiser", P::NodeRef("d".into())),
                ];
                let node = build(&Euler, params, dir.path()).unwrap();
                let mut f = flow(t32(&[1, 2, 3, 4], target.clone()));
                let mut inf = flow(t32(&[1, 2, 3, 4], target.clone()));
                let out = run_with(
                    &*node,
                    1,
                    |_| vec![t32(&[1, 2, 3, 4], noise.clone())],
                    &mut f,
                    &mut inf,
                )
                .unwrap();
                assert_eq!(f.calls, steps as usize);
                let got = f32s(&out[0].0, 0);
                let err = got
                    .iter()
                    .zip(&target)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(err < 1e-4, "steps {steps} shift {shift}: error {err}");
            }
        }
    }

    /// `euler` runs an ε-predicting VP model (yan-sim's kind) through the
    /// flow/VP conversion and recovers its x₀; the timesteps it calls the
    /// model at decrease from the table's end.
    #[test]
    fn runs_a_vp_epsilon_model_converted_to_flow() {
        let dir = tempfile::tempdir().unwrap();
        let target: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let noise: Vec<f32> = (0..24).map(|i| (i as f32 * 1.3).cos()).collect();
        let ac = crate::samplers::diffusion::alphas_cumprod(0.00085, 0.012, 1000, true);
        for (steps, shift) in [(1, 1.0), (2, 1.0), (4, 3.0), (8, 5.0)] {
            let params = vec![
                ("steps", P::Int(steps)),
                ("shift", P::Float(shift)),
                ("denoiser", P::NodeRef("d".into())),
            ];
            let node = build(&Euler, params, dir.path()).unwrap();
            let vp = || PerfectEps::vp(&target, 0.00085, 0.012, true);
            let (mut model, mut inf) = (vp(), vp());
            let out = run_with(
                &*node,
                1,
                |_| vec![t32(&[1, 24], noise.clone())],
                &mut model,
                &mut inf,
            )
            .unwrap();
            assert_eq!(model.ts.len(), steps as usize);
            assert_eq!(
                model.ts[0], 999.0,
                "the first level is the table's last timestep"
            );
            // Non-increasing: σ above the table's largest (≈ 0.936) clamps to t = 999.
            assert!(model.ts.windows(2).all(|w| w[1] <= w[0]), "{:?}", model.ts);
            let err = f32s(&out[0].0, 0)
                .iter()
                .zip(&target)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            if steps > 1 {
                assert!(err < 1e-4, "steps {steps}: error {err}");
            }
        }
        // σ ↔ ᾱ is the VP/flow correspondence, both ways.
        let vp = crate::samplers::diffusion::VpAsFlow::new(ac.clone());
        for sigma in [0.1, 0.5, 0.9] {
            let (t, a) = vp.timestep(sigma);
            let back = (1.0 - a).sqrt() / (a.sqrt() + (1.0 - a).sqrt());
            assert!((back - sigma).abs() < 1e-12, "σ {sigma} → t {t} → σ {back}");
            assert!((0.0..999.0).contains(&t));
        }
    }

    #[test]
    fn infer_checks_the_denoiser_output() {
        let dir = tempfile::tempdir().unwrap();
        let params = vec![("denoiser", P::NodeRef("d".into()))];
        let node = build(&Euler, params, dir.path()).unwrap();
        let noise = [Some(ValueType::tensor(DType::F32, &[1, 4]))];
        assert_eq!(
            node.infer(&noise, &mut flow(t32(&[1, 4], vec![0.0; 4])))
                .unwrap(),
            [noise[0].clone().unwrap()]
        );
        let e = node
            .infer(&noise, &mut flow(t32(&[1, 5], vec![0.0; 5])))
            .unwrap_err();
        assert_eq!(
            e.message,
            "denoiser `@d`: expected f32[1, 4] (the type of `x`), found f32[1, 5]"
        );

        struct Wrong;
        impl InferCalls for Wrong {
            fn infer_call(
                &mut self,
                _: usize,
                _: &[ValueType],
            ) -> Result<Vec<ValueType>, TypeError> {
                Ok(vec![ValueType::tensor(DType::I64, &[2])])
            }
        }
        let e = node.infer(&noise, &mut Wrong).unwrap_err();
        assert_eq!(e.input, None);
        assert_eq!(
            e.message,
            "the denoiser `@d` returns i64[2] as its first output, but the sampler needs f32[1, 4] (the type of `noise`)"
        );

        /// A callee whose first output is named `name`.
        struct Named(&'static str);
        impl InferCalls for Named {
            fn callee_outputs(&self, _: usize) -> Vec<String> {
                vec![self.0.into(), "extra".into()]
            }
            fn infer_call(
                &mut self,
                _: usize,
                args: &[ValueType],
            ) -> Result<Vec<ValueType>, TypeError> {
                Ok(vec![args[0].clone()])
            }
        }
        assert!(node.infer(&noise, &mut Named("velocity")).is_ok());
        let e = node.infer(&noise, &mut Named("epsilon")).unwrap_err();
        assert_eq!(
            e.message,
            "`euler` needs a velocity-predicting denoiser, but `denoiser = @d` gives `epsilon` (use `ddim` for epsilon models)"
        );
        let e = node.infer(&noise, &mut Named("out")).unwrap_err();
        assert_eq!(
            e.message,
            "`euler` needs a velocity-predicting denoiser, but `denoiser = @d` gives `out` (its first output must be named `velocity`)"
        );

        let bad = vec![("steps", P::Int(0)), ("denoiser", P::NodeRef("d".into()))];
        assert_eq!(
            build(&Euler, bad, dir.path()).unwrap_err().param.as_deref(),
            Some("steps")
        );
        let bad = vec![
            ("shift", P::Float(0.0)),
            ("denoiser", P::NodeRef("d".into())),
        ];
        assert_eq!(
            build(&Euler, bad, dir.path()).unwrap_err().param.as_deref(),
            Some("shift")
        );
    }

    /// Issue 21's second bug: flow-space samplers on a VP model started at
    /// flow σ = 1, a level the model does not have — its first call saw
    /// 1.066 × the noise. The levels are the model's (the first at its last
    /// timestep) and the noise enters as DDIM's x_T: the first call gets the
    /// noise itself, for every flow-space sampler.
    #[test]
    fn flow_samplers_enter_a_vp_model_at_its_top_level() {
        let dir = tempfile::tempdir().unwrap();
        let target: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let noise: Vec<f32> = (0..24).map(|i| (i as f32 * 1.3).cos()).collect();
        let kinds: [&dyn NodeKind; 4] = [
            &Euler,
            &crate::samplers::sde::Sde,
            &crate::samplers::tts::TTS_ODE,
            &crate::samplers::aam::Aam,
        ];
        for kind in kinds {
            let params = vec![("steps", P::Int(4)), ("denoiser", P::NodeRef("d".into()))];
            let node = build(kind, params, dir.path()).unwrap();
            let vp = || PerfectEps::vp(&target, 0.00085, 0.012, true);
            let (mut model, mut inf) = (vp(), vp());
            run_with(
                &*node,
                1,
                |_| vec![t32(&[1, 1, 4, 6], noise.clone())],
                &mut model,
                &mut inf,
            )
            .unwrap();
            assert_eq!(model.ts[0], 999.0, "{}", kind.name());
            let err = model.xs[0]
                .iter()
                .zip(&noise)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                err < 1e-6,
                "{}: first call off the noise by {err}",
                kind.name()
            );
        }
    }
}
