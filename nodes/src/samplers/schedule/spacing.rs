//! The spacing of a schedule's levels: the numeric series behind each
//! `Scheduler` — ComfyUI's `beta` (its timesteps from the inverse of the
//! regularized incomplete beta function, [`beta_timesteps`]) and `simple`
//! (every ⌊T/N⌋-th entry of a σ table), Karras / exponential ramps between
//! σ_min and σ_max, NumPy's `linspace` ([`linspace`]), a ve model's σ table,
//! and diffusers' spaced VP timesteps ([`vp_timesteps`]). Pure functions of
//! numbers; `Schedule::levels` (in `schedule.rs`) picks one per scheduler
//! and noise model.

use super::{FLOW_TRAIN_STEPS, Scheduler};
use crate::samplers::diffusion::Spacing;

/// ComfyUI's σ table of a ve model (`ModelSamplingContinuousEDM`): 1000
/// levels log-linear from σ_min to σ_max, for `simple` and `beta`.
pub(super) fn ve_table(sigma_min: f64, sigma_max: f64) -> Vec<f64> {
    linspace(sigma_min.ln(), sigma_max.ln(), FLOW_TRAIN_STEPS)
        .into_iter()
        .map(f64::exp)
        .collect()
}

/// ComfyUI's `simple`: σ at `T−1 − ⌊i·T/N⌋` of a table of T levels.
pub(super) fn simple_levels(table: &[f64], n: usize) -> Vec<f64> {
    let t = table.len();
    (0..n)
        .map(|i| {
            let k = (i as f64 * t as f64 / n as f64).floor() as usize;
            table[t.saturating_sub(1 + k.min(t - 1))]
        })
        .collect()
}
/// ComfyUI's `beta_scheduler` timesteps (α = β = 0.6) on a table of
/// `train` entries: `rint(ppf(1 − i/N)·(train − 1))`, consecutive repeats
/// dropped.
pub fn beta_timesteps(steps: usize, train: usize) -> Vec<usize> {
    let last = train.saturating_sub(1) as f64;
    let mut out: Vec<usize> = Vec::with_capacity(steps);
    for i in 0..steps {
        let q = 1.0 - i as f64 / steps as f64;
        let t = (beta_ppf(q, 0.6, 0.6) * last).round_ties_even() as usize;
        if out.last() != Some(&t) {
            out.push(t);
        }
    }
    out
}

/// The inverse of the regularized incomplete beta function (bisection to
/// 1e-12; SciPy's `beta.ppf`).
pub(super) fn beta_ppf(q: f64, a: f64, b: f64) -> f64 {
    if q <= 0.0 {
        return 0.0;
    }
    if q >= 1.0 {
        return 1.0;
    }
    if a == b && q == 0.5 {
        // The median of a symmetric Beta, exactly (as SciPy gives it).
        return 0.5;
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if reg_inc_beta(mid, a, b) < q {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-13 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The regularized incomplete beta function I_x(a, b) (Lentz's continued
/// fraction, as Numerical Recipes' `betai`).
pub(super) fn reg_inc_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(x, a, b) / a
    } else {
        1.0 - front * beta_cf(1.0 - x, b, a) / b
    }
}

fn beta_cf(x: f64, a: f64, b: f64) -> f64 {
    let tiny = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..500 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// `np.linspace(a, b, n)`: `a + i·(b−a)/(n−1)`, the last exactly `b`.
pub fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![a],
        _ => {
            let step = (b - a) / (n - 1) as f64;
            (0..n)
                .map(|i| if i + 1 == n { b } else { a + i as f64 * step })
                .collect()
        }
    }
}

/// Karras (ρ = 7) or exponential levels from σ_max down to σ_min.
pub(super) fn ramp(scheduler: &Scheduler, n: usize, smin: f64, smax: f64) -> Vec<f64> {
    match scheduler {
        Scheduler::Karras => {
            let rho = 7.0;
            let (max_inv, min_inv) = (smax.powf(1.0 / rho), smin.powf(1.0 / rho));
            linspace(0.0, 1.0, n)
                .into_iter()
                .map(|r| (max_inv + r * (min_inv - max_inv)).powf(rho))
                .collect()
        }
        _ => linspace(smax.ln(), smin.ln(), n)
            .into_iter()
            .map(f64::exp)
            .collect(),
    }
}

/// diffusers' spaced inference timesteps (descending, as floats):
/// `leading` `arange(N)·(T//N) + offset`, `trailing`
/// `round(arange(T, 0, −T/N)) − 1`, `linspace` `linspace(0, T−1, N)`
/// (fractional; `EulerDiscreteScheduler`).
pub fn vp_timesteps(steps: usize, train_steps: usize, spacing: Spacing, offset: usize) -> Vec<f64> {
    let last = train_steps.saturating_sub(1) as f64;
    match spacing {
        Spacing::Linspace => linspace(0.0, last, steps).into_iter().rev().collect(),
        Spacing::Leading | Spacing::Trailing => {
            crate::samplers::diffusion::ddim_timesteps(steps, train_steps, spacing)
                .into_iter()
                .map(|t| {
                    if spacing == Spacing::Leading {
                        (t + offset) as f64
                    } else {
                        t as f64
                    }
                    .min(last)
                })
                .collect()
        }
    }
}
