//! Tests of the noise/σ layer (`schedule.rs`): VP σ ↔ t, the level
//! spacings of every `Scheduler` against NumPy / SciPy / ComfyUI values,
//! `Schedule::levels` per noise model, and the parameter checks.

use super::spacing::{beta_ppf, reg_inc_beta};
use super::*;

fn sd() -> VpTable {
    VpTable::from_betas(0.00085, 0.012, 1000, true)
}

#[test]
fn sigma_to_t_round_trips_in_log_sigma() {
    let vp = sd();
    for t in [0.0, 1.0, 17.0, 500.0, 998.0, 999.0] {
        let back = vp.t_of_sigma(vp.sigmas()[t as usize]);
        assert!((back - t).abs() < 1e-9, "{t} → {back}");
    }
    // Halfway in log σ between two timesteps is t + ½.
    let s = (0.5 * (vp.sigmas()[10].ln() + vp.sigmas()[11].ln())).exp();
    assert!((vp.t_of_sigma(s) - 10.5).abs() < 1e-9);
    // Clamped at the table's ends.
    assert_eq!(vp.t_of_sigma(1e6), 999.0);
    assert_eq!(vp.t_of_sigma(1e-6), 0.0);
}

/// SciPy: `np.rint(beta.ppf(1 - np.linspace(0, 1, 8, endpoint=False), 0.6, 0.6) * 999)`.
#[test]
fn beta_matches_scipys_quantiles() {
    assert!((beta_ppf(0.5, 0.6, 0.6) - 0.5).abs() < 1e-9);
    // I_x(1, 1) = x; I_x(2, 1) = x².
    assert!((reg_inc_beta(0.3, 1.0, 1.0) - 0.3).abs() < 1e-12);
    assert!((reg_inc_beta(0.3, 2.0, 1.0) - 0.09).abs() < 1e-12);
    let t = beta_timesteps(8, 1000);
    assert_eq!(t, [999, 942, 823, 670, 500, 329, 176, 57]);
}

#[test]
fn karras_and_exponential_span_the_model() {
    let vp = sd();
    let m = NoiseModel::Vp(vp.clone());
    let k = Schedule::fixed(5, 1.0).with_scheduler(Scheduler::Karras);
    let l = k.levels(&m, &[1]);
    assert_eq!(l.len(), 6);
    assert!((l[0] - vp.sigma_max()).abs() < 1e-9 && (l[4] - vp.sigma_min()).abs() < 1e-12);
    assert_eq!(l[5], 0.0);
    let e = Schedule::fixed(3, 1.0).with_scheduler(Scheduler::Exponential);
    let l = e.levels(&m, &[1]);
    let mid = (vp.sigma_max() * vp.sigma_min()).sqrt();
    assert!((l[1] - mid).abs() < 1e-9, "{l:?}");
}

#[test]
fn flow_normal_is_sd3s_default_and_simple_is_fluxs() {
    // diffusers FlowMatchEulerDiscrete(shift=3), 4 steps.
    let s = Schedule::fixed(4, 3.0).with_scheduler(Scheduler::Normal);
    let l = s.levels(&NoiseModel::Flow, &[1]);
    let smin = shifted(0.001, 3.0);
    let want: Vec<f64> = linspace(1.0, smin, 4)
        .into_iter()
        .map(|v| shifted(v, 3.0))
        .chain([0.0])
        .collect();
    assert_eq!(l, want);
    let d = Schedule::fixed(2, 1.0).levels(&NoiseModel::Flow, &[1]);
    assert_eq!(d, [1.0, 0.5, 0.0]);
}

/// A ve model: Karras by default, `normal` log-linear (ComfyUI's EDM),
/// `simple` from its σ_max, and the start noise `noise·σ₀`.
#[test]
fn ve_levels_span_the_declared_range() {
    let m = NoiseModel::Ve {
        sigma_min: 0.002,
        sigma_max: 80.0,
    };
    let d = Schedule::fixed(5, 1.0).levels(&m, &[1]);
    let k = Schedule::fixed(5, 1.0)
        .with_scheduler(Scheduler::Karras)
        .levels(&m, &[1]);
    assert_eq!(d, k);
    assert!(
        (d[0] - 80.0).abs() < 1e-9 && (d[4] - 0.002).abs() < 1e-12,
        "{d:?}"
    );
    let n = Schedule::fixed(3, 1.0)
        .with_scheduler(Scheduler::Normal)
        .levels(&m, &[1]);
    assert!((n[1] - (80.0f64 * 0.002).sqrt()).abs() < 1e-9, "{n:?}");
    let s = Schedule::fixed(4, 1.0)
        .with_scheduler(Scheduler::Simple)
        .levels(&m, &[1]);
    assert!((s[0] - 80.0).abs() < 1e-9 && s[3] > 0.002, "{s:?}");
    let u = Schedule::fixed(2, 1.0)
        .with_scheduler(Scheduler::SgmUniform)
        .levels(&m, &[1]);
    assert!((u[1] - (80.0f64.ln() / 2.0 + 0.002f64.ln() / 2.0).exp()).abs() < 1e-9);
    assert_eq!(Schedule::fixed(4, 1.0).entry_native(&m, 80.0), 80.0);
    assert!((m.lambda(2.0) + 2.0f64.ln()).abs() < 1e-12 && m.alpha(2.0) == 1.0);
}

#[test]
fn vp_levels_stay_inside_the_model_and_enter_at_the_vp_point() {
    let vp = sd();
    let m = NoiseModel::Vp(vp.clone());
    let s = Schedule::fixed(4, 1.0);
    let l = s.flow_levels(&m, &[1]);
    // Trailing: the first level is timestep 999, not flow σ = 1.
    assert!((l[0] - to_flow(vp.sigma_max())).abs() < 1e-12, "{l:?}");
    assert!(l[0] < 0.94);
    // The VP point x_T = noise is, in flow units, noise/(√ᾱ + √(1−ᾱ)).
    let a = vp.alphas_cumprod()[999];
    let e = s.entry_flow(&m, vp.sigma_max());
    assert!((e - 1.0 / (a.sqrt() + (1.0 - a).sqrt())).abs() < 1e-12);
}
