//! `ddim`: the DDIM sampler of an ε-predicting (noise-predicting) denoiser,
//! with diffusers' `DDIMScheduler` semantics — Yan-Sim's "DDIM, 4
//! deterministic steps".
//!
//! - ᾱ from the betas: `scaled_linear` = `linspace(√β₀, √β₁, T)²`, `linear`
//!   = `linspace(β₀, β₁, T)`; ᾱₜ = ∏ₛ≤ₜ (1 − βₛ). Computed in f64 (diffusers
//!   uses f32: the values agree to ~2e-6 relative).
//! - Timesteps ([`ddim_timesteps`]): `leading`, `trailing` or `linspace`
//!   spacing, with `steps_offset = 0`.
//! - Each step calls the denoiser at `(x, t)` (t: `f32[1]` holding the integer
//!   timestep) for ε, then, with the previous timestep `t − T//N` (ᾱ = 1
//!   below 0: `set_alpha_to_one`):
//!   `x₀ = (x − √(1−ᾱₜ)·ε)/√ᾱₜ`,
//!   `σ = η·√((1−ᾱₚ)/(1−ᾱₜ)·(1 − ᾱₜ/ᾱₚ))`,
//!   `x ← √ᾱₚ·x₀ + √(1−ᾱₚ−σ²)·ε + σ·z`
//!   (the square root's argument is clamped at 0, which only matters for
//!   η > 1). No `clip_sample`, no thresholding (diffusers' defaults for
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
//! `ε = x_flow + (1−σ)·v`. The ᾱ table is always this node's own parameters.
//!
//! Like diffusers, the result is the sample at the last step's previous
//! timestep: clean when that is below 0 (always for `leading` and
//! `linspace`), at timestep 0 (ᾱ₀ = 1 − β₀) otherwise (`trailing` when
//! `T//N` ≤ the last timestep, e.g. N = 6 or 7 for T = 1000).

use super::diffusion::{alphas_cumprod, flow_sigma_of_alpha, vp_scale};
use super::{Sampler, Sampling, StepRule};
use crate::common::*;
use wgraph_kernels::{DdimCoef, host};

pub use super::diffusion::{Spacing, ddim_timesteps};

/// The `ddim` kind.
pub struct Ddim;

/// The choices of `spacing`.
const SPACINGS: &[&str] = &["leading", "trailing", "linspace"];
/// The choices of `schedule`.
const SCHEDULES: &[&str] = &["scaled_linear", "linear"];

impl NodeKind for Ddim {
    fn name(&self) -> &'static str {
        "ddim"
    }
    fn summary(&self) -> &'static str {
        "DDIM sampler (Yan-Sim's few-step deterministic sampler): denoises `noise` with a denoiser(x, t) — VP ε, v or x₀, or a flow model, converted"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "steps",
                ParamType::Int,
                ParamDefault::Int(4),
                "number of denoiser calls (1 to train_steps)",
            ),
            ParamSpec::optional(
                "eta",
                ParamType::Float,
                ParamDefault::Float(0.0),
                "η >= 0: 0 = deterministic DDIM, 1 = DDPM-like fresh noise each step",
            ),
            ParamSpec::optional(
                "spacing",
                ParamType::Choice(SPACINGS),
                ParamDefault::Choice("trailing"),
                "timestep spacing (diffusers' `timestep_spacing`); trailing starts at T-1",
            ),
            ParamSpec::optional(
                "beta_start",
                ParamType::Float,
                ParamDefault::Float(0.00085),
                "β of the first training timestep (0 < beta_start <= beta_end < 1)",
            ),
            ParamSpec::optional(
                "beta_end",
                ParamType::Float,
                ParamDefault::Float(0.012),
                "β of the last training timestep",
            ),
            ParamSpec::optional(
                "train_steps",
                ParamType::Int,
                ParamDefault::Int(1000),
                "number of training timesteps T (diffusers' `num_train_timesteps`)",
            ),
            ParamSpec::optional(
                "schedule",
                ParamType::Choice(SCHEDULES),
                ParamDefault::Choice("scaled_linear"),
                "β schedule: scaled_linear = linspace(√β₀, √β₁, T)², linear = linspace(β₀, β₁, T)",
            ),
            ParamSpec::required(
                "denoiser",
                ParamType::NodeRef,
                "the denoiser (call inputs x and t): VP ε / v / x₀ on this node's schedule, or flow velocity / x₀ (converted)",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
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
        let steps = cx.params.int("steps")?;
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
        let eta = finite_param(cx, "eta")?;
        if eta < 0.0 {
            return Err(BuildError::param(
                "eta",
                format!("`eta` must not be negative, found {eta}"),
            ));
        }
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
        let ac = alphas_cumprod(b0, b1, train_steps, scaled);
        let ratio = train_steps / steps;
        let plan = ddim_timesteps(steps, train_steps, spacing)
            .into_iter()
            .map(|t| {
                let a_t = ac[t];
                let a_p = t.checked_sub(ratio).map_or(1.0, |p| ac[p]);
                let var = (1.0 - a_p) / (1.0 - a_t) * (1.0 - a_t / a_p);
                Step {
                    t,
                    a_t,
                    a_p,
                    std: eta * var.max(0.0).sqrt(),
                }
            })
            .collect();
        Sampler::node(cx, DdimRule { plan })
    }
}

/// One DDIM step, precomputed at build.
#[derive(Debug, Clone, Copy)]
struct Step {
    t: usize,
    a_t: f64,
    a_p: f64,
    std: f64,
}

/// DDIM's step rule over its precomputed plan.
struct DdimRule {
    plan: Vec<Step>,
}

impl StepRule for DdimRule {
    /// A denoiser that declares no prediction is read as ε (this node's own
    /// schedule is VP), unless its output is named `velocity`; flow models
    /// are called at the flow point matching each ᾱ.
    const EPSILON_OK: bool = true;
    fn kind(&self) -> &'static str {
        "ddim"
    }
    fn noise_draws(&self) -> Option<usize> {
        Some(self.plan.len())
    }
    fn sample(&self, m: &mut Sampling<'_, '_>, mut x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        let mut z = Vec::new();
        let readout = m.readout();
        let flow = !readout.is_vp();
        for (i, s) in self.plan.iter().enumerate() {
            // A flow model is called at the flow point of this ᾱ:
            // σ = √(1−ᾱ)/(√ᾱ+√(1−ᾱ)), x_flow = x/(√ᾱ+√(1−ᾱ)), t = 1000σ.
            let norm = if flow { vp_scale(s.a_t) } else { 1.0 };
            let sigma = flow_sigma_of_alpha(s.a_t);
            let (t, xt) = if flow {
                let scaled: Vec<f32> = x.iter().map(|v| (f64::from(*v) / norm) as f32).collect();
                ((1000.0 * sigma) as f32, scaled)
            } else {
                (s.t as f32, x.clone())
            };
            let y = m.call_raw(xt, t)?;
            let y = y.host_f32()?;
            // ε from the model's output at its input point (the flow point's
            // ε is the VP point's: x_vp = norm·x_flow).
            let eps: Vec<f32> = x
                .iter()
                .zip(y)
                .map(|(&xv, &yv)| {
                    let xm = f64::from(xv) / norm;
                    readout.estimate(xm, f64::from(yv), sigma, s.a_t).1 as f32
                })
                .collect();
            if s.std > 0.0 {
                m.step_noise(i, &mut z, x.len())?;
            }
            let coef = DdimCoef {
                sa_t: s.a_t.sqrt(),
                sb_t: (1.0 - s.a_t).sqrt(),
                sa_p: s.a_p.sqrt(),
                dir: (1.0 - s.a_p - s.std * s.std).max(0.0).sqrt(),
                std: s.std,
            };
            host::ddim_step(&mut x, &eps, (s.std > 0.0).then_some(&z[..]), &coef);
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use crate::samplers::testing::PerfectFlow;
    use wgraph_engine::node::Callees;
    use wgraph_engine::params::ParamValue as P;

    #[test]
    fn timesteps_match_diffusers() {
        use Spacing::*;
        assert_eq!(ddim_timesteps(4, 1000, Leading), [750, 500, 250, 0]);
        assert_eq!(ddim_timesteps(4, 1000, Trailing), [999, 749, 499, 249]);
        assert_eq!(ddim_timesteps(4, 1000, Linspace), [999, 666, 333, 0]);
        // Non-divisible counts (checked against NumPy).
        assert_eq!(ddim_timesteps(3, 1000, Leading), [666, 333, 0]);
        assert_eq!(ddim_timesteps(3, 1000, Trailing), [999, 666, 332]);
        assert_eq!(
            ddim_timesteps(7, 1000, Linspace),
            [999, 832, 666, 500, 333, 166, 0]
        );
        // Round half to even, as NumPy: 937.5 → 938, 812.5 → 812.
        assert_eq!(
            ddim_timesteps(16, 1000, Trailing)[..4],
            [999, 937, 874, 811]
        );
        // One step.
        assert_eq!(ddim_timesteps(1, 1000, Leading), [0]);
        assert_eq!(ddim_timesteps(1, 1000, Trailing), [999]);
        assert_eq!(ddim_timesteps(1, 1000, Linspace), [0]);
        // NumPy's arange gives 62 values here; the first 61 are kept.
        let t = ddim_timesteps(61, 1000, Trailing);
        assert_eq!((t.len(), t[0], t[60]), (61, 999, 15));
    }

    #[test]
    fn alphas_match_stable_diffusion() {
        // NumPy f64: alphas_cumprod[0] = 0.99915, [999] = 0.00466009851
        // (diffusers' f32 gives 0.00466008950).
        let ac = alphas_cumprod(0.00085, 0.012, 1000, true);
        assert!((ac[0] - 0.99915).abs() < 1e-12);
        assert!((ac[999] - 0.004_660_098_513).abs() < 1e-11, "{}", ac[999]);
        let lin = alphas_cumprod(0.0001, 0.02, 1000, false);
        assert!((lin[999] - 4.036e-5).abs() < 1e-7, "{}", lin[999]);
    }

    /// A denoiser returning the exact ε toward a known x₀:
    /// ε = (x − √ᾱₜ·x₀)/√(1−ᾱₜ).
    struct Exact {
        x0: Vec<f32>,
        ac: Vec<f64>,
        name: &'static str,
        seen: Vec<usize>,
        /// The ε returned by the latest call.
        last_eps: Vec<f64>,
    }

    impl Callees for Exact {
        fn call(&mut self, index: usize, args: Vec<Value>) -> Result<Vec<Value>, NodeError> {
            assert_eq!(index, 0);
            let (x, t) = (args[0].as_tensor().unwrap(), args[1].as_tensor().unwrap());
            let t = t.host_f32()?[0];
            assert_eq!(t.fract(), 0.0, "integer timestep");
            let a = self.ac[t as usize];
            self.seen.push(t as usize);
            self.last_eps = x
                .host_f32()?
                .iter()
                .zip(&self.x0)
                .map(|(&x, &x0)| (f64::from(x) - a.sqrt() * f64::from(x0)) / (1.0 - a).sqrt())
                .collect();
            let eps = self.last_eps.iter().map(|&e| e as f32).collect();
            Ok(vec![Tensor::from_f32(x.shape(), eps)?.into()])
        }
    }

    impl InferCalls for Exact {
        fn callee_outputs(&self, _: usize) -> Vec<String> {
            vec![self.name.into()]
        }
        fn infer_call(
            &mut self,
            _: usize,
            args: &[ValueType],
        ) -> Result<Vec<ValueType>, TypeError> {
            Ok(vec![args[0].clone()])
        }
    }

    fn exact(x0: &[f32]) -> Exact {
        Exact {
            x0: x0.to_vec(),
            ac: alphas_cumprod(0.00085, 0.012, 1000, true),
            name: "epsilon",
            seen: vec![],
            last_eps: vec![],
        }
    }

    fn params(steps: i64, spacing: &str, eta: f64) -> Vec<(&'static str, P)> {
        vec![
            ("steps", P::Int(steps)),
            ("spacing", P::Choice(spacing.into())),
            ("eta", P::Float(eta)),
            ("denoiser", P::NodeRef("d".into())),
        ]
    }

    /// `ddim` runs a flow velocity model (Yume's kind) and recovers its x₀.
    #[test]
    fn runs_a_flow_velocity_model() {
        let dir = tempfile::tempdir().unwrap();
        let x0: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let noise: Vec<f32> = (0..24).map(|i| (i as f32 * 1.3).cos()).collect();
        for steps in [1, 2, 4, 8] {
            let node = build(&Ddim, params(steps, "leading", 0.0), dir.path()).unwrap();
            let (mut model, mut inf) = (PerfectFlow::new(&x0), PerfectFlow::new(&x0));
            let out = run_with(
                &*node,
                1,
                |_| vec![t32(&[1, 24], noise.clone())],
                &mut model,
                &mut inf,
            )
            .unwrap();
            assert_eq!(model.ts.len(), steps as usize);
            assert!(
                model.ts.iter().all(|t| *t > 0.0 && *t < 1000.0),
                "{:?}",
                model.ts
            );
            let err = f32s(&out[0].0, 0)
                .iter()
                .zip(&x0)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-4, "steps {steps}: error {err}");
        }
    }

    #[test]
    fn deterministic_ddim_recovers_x0_with_an_exact_denoiser() {
        let dir = tempfile::tempdir().unwrap();
        let x0: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let noise: Vec<f32> = (0..24).map(|i| (i as f32 * 1.3).cos() * 1.5).collect();
        let ac = alphas_cumprod(0.00085, 0.012, 1000, true);
        for spacing in SPACINGS {
            for steps in 1..=8 {
                let node = build(&Ddim, params(steps, spacing, 0.0), dir.path()).unwrap();
                let (mut f, mut inf) = (exact(&x0), exact(&x0));
                let shape = [1, 2, 3, 4];
                let out = run_with(
                    &*node,
                    1,
                    |_| vec![t32(&shape, noise.clone())],
                    &mut f,
                    &mut inf,
                )
                .unwrap();
                let ts = ddim_timesteps(steps as usize, 1000, Spacing::parse(spacing));
                assert_eq!(f.seen, ts);
                let got = f32s(&out[0].0, 0);
                // The predicted x₀ is exact at every step, so the result is
                // x at the last step's previous timestep built from x₀ and
                // the last ε: x₀ itself when that timestep is below 0.
                let last = *ts.last().unwrap();
                let a_f = last
                    .checked_sub(1000 / steps as usize)
                    .map_or(1.0, |p| ac[p]);
                let err = got
                    .iter()
                    .zip(&x0)
                    .zip(&f.last_eps)
                    .map(|((&g, &x0), &e)| {
                        if a_f == 1.0 {
                            assert!((g - x0).abs() < 1e-4, "{spacing} {steps}: {g} vs {x0}");
                        }
                        let want = a_f.sqrt() * f64::from(x0) + (1.0 - a_f).sqrt() * e;
                        (f64::from(g) - want).abs()
                    })
                    .fold(0.0, f64::max);
                assert!(err < 1e-4, "{spacing} steps {steps}: error {err}");
                // Only trailing with T//N <= the last timestep ends at t = 0.
                let clean = spacing != &"trailing" || ![6, 7].contains(&steps);
                assert_eq!(a_f == 1.0, clean, "{spacing} {steps}");
            }
        }
    }

    #[test]
    fn eta_adds_reproducible_noise() {
        let dir = tempfile::tempdir().unwrap();
        let x0 = vec![0.5f32; 16];
        let noise = vec![1.0f32; 16];
        let go = |steps: i64, spacing: &str, eta: f64, tick: u64| {
            let node = build(&Ddim, params(steps, spacing, eta), dir.path()).unwrap();
            let out = run_with(
                &*node,
                tick + 1,
                |_| vec![t32(&[1, 16], noise.clone())],
                &mut exact(&x0),
                &mut exact(&x0),
            )
            .unwrap();
            f32s(&out[tick as usize].0, 0)
        };
        // The last step of `leading` has σ = 0 and lands on the exact x₀,
        // whatever noise came before.
        for eta in [0.0, 1.0] {
            let v = go(4, "leading", eta, 0);
            assert!(v.iter().all(|&v| (v - 0.5).abs() < 1e-4), "{eta}: {v:?}");
        }
        // Trailing N = 6 ends at t = 0 with σ > 0: the output shows the noise.
        let det = go(6, "trailing", 0.0, 0);
        let a = go(6, "trailing", 1.0, 0);
        assert!(a.iter().all(|x| x.is_finite()));
        assert_ne!(a, det);
        assert_eq!(
            a,
            go(6, "trailing", 1.0, 0),
            "same seed, same tick: same noise"
        );
        assert_ne!(a, go(6, "trailing", 1.0, 1), "another tick: other noise");
    }

    #[test]
    fn infer_and_build_errors() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Ddim, params(4, "trailing", 0.0), dir.path()).unwrap();
        assert_eq!(node.calls()[0].args, ["x", "t"]);
        let noise = [Some(ValueType::tensor(DType::F32, &[1, 4]))];
        let mut e = exact(&[0.0; 4]);
        assert!(node.infer(&noise, &mut e).is_ok());
        // A velocity model (no metadata, named by its output) is converted.
        e.name = "velocity";
        assert!(node.infer(&noise, &mut e).is_ok());
        e.name = "out";
        let err = node.infer(&noise, &mut e).unwrap_err();
        assert_eq!(
            err.message,
            "`ddim` needs an epsilon-predicting denoiser, but `denoiser = @d` gives `out` (its first output must be named `epsilon`)"
        );
        let ints = [Some(ValueType::tensor(DType::I64, &[1, 4]))];
        assert_eq!(
            node.infer(&ints, &mut exact(&[0.0; 4]))
                .unwrap_err()
                .message,
            "expected an f32 tensor, found i64[1, 4]"
        );
        for (bad, param) in [
            (("steps", P::Int(0)), "steps"),
            (("steps", P::Int(1001)), "steps"),
            (("eta", P::Float(-0.1)), "eta"),
            (("beta_start", P::Float(0.0)), "beta_start"),
            (("beta_end", P::Float(0.0001)), "beta_end"),
            (("train_steps", P::Int(0)), "train_steps"),
        ] {
            let mut p = vec![("denoiser", P::NodeRef("d".into()))];
            p.push(bad);
            let e = build(&Ddim, p, dir.path()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{}", e.message);
        }
    }
}
