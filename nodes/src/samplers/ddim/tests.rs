//! Tests of `ddim` (`ddim.rs`): diffusers' timesteps and ᾱ, DDIM on perfect
//! ε and flow denoisers (`test_support`'s `PerfectEps`, `PerfectFlow`), the
//! VP samplers on every scheduler, η's noise, and build / check errors.

use super::*;
use crate::common::testing::*;
use crate::samplers::diffusion::alphas_cumprod;
use crate::samplers::test_support::{PerfectEps, PerfectFlow};
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

/// Off the default scheduler `ddim`, `ddpm` and `lcm` step in σ on the
/// scheduler's levels of their VP table, the model called at
/// fractional timesteps: on a perfect flow model `ddim` and `ddpm` end
/// on its x₀; `lcm` on its last consistency estimate (at t = 0,
/// `c_skip = 1`: the input at σ_min, within σ_min of x₀).
#[test]
fn vp_samplers_step_on_any_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let x0: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
    let noise: Vec<f32> = (0..24).map(|i| (i as f32 * 1.3).cos()).collect();
    let kinds: [(&dyn NodeKind, f32); 3] = [
        (&Ddim, 1e-4),
        (&crate::samplers::vp::Ddpm, 1e-4),
        (&crate::samplers::vp::Lcm, 0.1),
    ];
    for (kind, tol) in kinds {
        for scheduler in [
            "normal",
            "simple",
            "karras",
            "exponential",
            "sgm_uniform",
            "beta",
        ] {
            let p = vec![
                ("steps", P::Int(5)),
                ("scheduler", P::Choice(scheduler.into())),
                ("denoiser", P::NodeRef("d".into())),
            ];
            let node = build(kind, p, dir.path()).unwrap();
            let (mut model, mut inf) = (PerfectFlow::new(&x0), PerfectFlow::new(&x0));
            let out = run_with(
                &*node,
                1,
                |_| vec![t32(&[1, 24], noise.clone())],
                &mut model,
                &mut inf,
            )
            .unwrap();
            let name = kind.name();
            assert!(
                model.ts.len() <= 5 && model.ts.len() >= 4,
                "{name} {scheduler}"
            );
            assert!(
                model.ts.iter().any(|t| t.fract() != 0.0),
                "{name} {scheduler}: {:?}",
                model.ts
            );
            let err = f32s(&out[0].0, 0)
                .iter()
                .zip(&x0)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < tol, "{name} {scheduler}: error {err}");
        }
    }
    // `sigmas` sets the levels and the step count.
    let p = vec![
        ("sigmas", P::FloatList(vec![10.0, 2.0, 0.5, 0.1])),
        ("denoiser", P::NodeRef("d".into())),
    ];
    let node = build(&Ddim, p, dir.path()).unwrap();
    let (mut model, mut inf) = (PerfectFlow::new(&x0), PerfectFlow::new(&x0));
    run_with(
        &*node,
        1,
        |_| vec![t32(&[1, 24], noise.clone())],
        &mut model,
        &mut inf,
    )
    .unwrap();
    assert_eq!(model.ts.len(), 4);
    // What has no meaning off the default scheduler is refused, located.
    for (kind, bad, param) in [
        (&Ddim as &dyn NodeKind, ("eta", P::Float(0.5)), "eta"),
        (
            &crate::samplers::vp::Lcm,
            ("original_steps", P::Int(20)),
            "original_steps",
        ),
    ] {
        let p = vec![
            ("scheduler", P::Choice("karras".into())),
            bad,
            ("denoiser", P::NodeRef("d".into())),
        ];
        let e = build(kind, p, dir.path()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(param), "{}", e.message);
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
            let (mut f, mut inf) = (PerfectEps::undeclared(&x0), PerfectEps::undeclared(&x0));
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
            let seen: Vec<usize> = f.ts.iter().map(|&t| t as usize).collect();
            assert_eq!(seen, ts);
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
            &mut PerfectEps::undeclared(&x0),
            &mut PerfectEps::undeclared(&x0),
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
    let mut e = PerfectEps::undeclared(&[0.0; 4]);
    assert!(node.infer(&noise, &mut e).is_ok());
    // A velocity model (no metadata, named by its output) is converted.
    e.output = "velocity";
    assert!(node.infer(&noise, &mut e).is_ok());
    e.output = "out";
    let err = node.infer(&noise, &mut e).unwrap_err();
    assert_eq!(
        err.message,
        "`ddim` needs an epsilon-predicting denoiser, but `denoiser = @d` gives `out` (its first output must be named `epsilon`)"
    );
    let ints = [Some(ValueType::tensor(DType::I64, &[1, 4]))];
    assert_eq!(
        node.infer(&ints, &mut PerfectEps::undeclared(&[0.0; 4]))
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

/// A perfect ε model on the betas a model declares (linear
/// 0.0001–0.02, DDPM's), with that declaration as its metadata.
fn declared(x0: &[f32]) -> PerfectEps {
    PerfectEps::vp(x0, 0.0001, 0.02, false).at_whole_timesteps()
}

/// Issue 21's first bug: `ddim` left at its defaults used scaled_linear
/// 0.00085–0.012 on a model declaring `schedule = linear, beta_start =
/// 0.0001, beta_end = 0.02`. It reads the model's: with a perfect
/// denoiser on those betas, `leading` DDIM lands on x₀.
#[test]
fn ddim_runs_on_the_betas_the_model_declares() {
    let dir = tempfile::tempdir().unwrap();
    let x0: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
    let noise: Vec<f32> = (0..24).map(|i| (i as f32 * 1.3).cos()).collect();
    for steps in [1, 4, 10] {
        let node = build(&Ddim, params(steps, "leading", 0.0), dir.path()).unwrap();
        let (mut model, mut inf) = (declared(&x0), declared(&x0));
        let out = run_with(
            &*node,
            1,
            |_| vec![t32(&[1, 24], noise.clone())],
            &mut model,
            &mut inf,
        )
        .unwrap();
        let err = f32s(&out[0].0, 0)
            .iter()
            .zip(&x0)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-4, "steps {steps}: error {err}");
    }
    // Betas written on the sampler that contradict the model's: an
    // error at check, naming both.
    let mut p = params(4, "leading", 0.0);
    p.push(("beta_end", P::Float(0.015)));
    let node = build(&Ddim, p, dir.path()).unwrap();
    let noise_t = [Some(ValueType::tensor(DType::F32, &[1, 24]))];
    let e = node.infer(&noise_t, &mut declared(&x0)).unwrap_err();
    assert!(e.message.contains("declares other ones"), "{}", e.message);
}
