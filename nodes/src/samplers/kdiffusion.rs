//! The k-diffusion samplers, named as ComfyUI and k-diffusion users know
//! them: `euler_ancestral`, `heun`, `dpmpp_2m`, `dpmpp_2m_sde`,
//! `dpmpp_3m_sde`, and `uni_pc`. Each is a short function over
//! [`Run::steps`] (k-diffusion's loop: the x₀ estimate D at each σ, then the
//! rule's step to σ'), as k-diffusion's `sample_*` over the model's native σ
//! ([`super::schedule`]): on a VP or ve model the VE form `x = x₀ + σ·ε`
//! exactly as k-diffusion (and diffusers' Euler-ancestral, Heun and
//! DPMSolverMultistep schedulers, which agree with it); on a flow model the
//! same rules with `α = 1 − σ` in `x = α·x₀ + σ·ε` (ComfyUI's and diffusers'
//! flow forms: `euler_ancestral` is ComfyUI's `_RF` rule, the DPM-Solver++
//! ones use λ = log(α/σ), [`NoiseModel::lambda`]).
//!
//! Stochastic ones draw their noise through the sampler's step noise (the
//! seeded RNG, or the wired `step_noise`, one tensor per step: draw i is
//! added in step i), so a reference's noise can be replayed exactly.

use super::schedule::NoiseModel;
use super::{DENOISER, Sampler, Sampling, Schedule, StepRule, flow_sampler_params};
use crate::common::*;

/// `s_noise`: the scale of the added noise.
const S_NOISE: ParamSpec = ParamSpec::optional(
    "s_noise",
    ParamType::Float,
    ParamDefault::Float(1.0),
    "scale of the added noise (k-diffusion's `s_noise`)",
);
/// `eta` of the ancestral and SDE samplers (k-diffusion's default 1).
const ETA_ONE: ParamSpec = ParamSpec::optional(
    "eta",
    ParamType::Float,
    ParamDefault::Float(1.0),
    "ancestral / SDE noise η >= 0 (0: the deterministic solver)",
);

/// Which k-diffusion rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    EulerAncestral,
    Heun,
    Dpmpp2m,
    Dpmpp2mSde,
    Dpmpp3mSde,
    UniPc,
}

/// A k-diffusion sampler kind.
pub struct KSampler {
    name: &'static str,
    summary: &'static str,
    rule: Rule,
}

pub const EULER_ANCESTRAL: KSampler = KSampler {
    name: "euler_ancestral",
    summary: "Euler ancestral (k-diffusion `sample_euler_ancestral`, diffusers' EulerAncestralDiscrete): Euler to σ_down, then fresh noise σ_up",
    rule: Rule::EulerAncestral,
};
pub const HEUN: KSampler = KSampler {
    name: "heun",
    summary: "Heun's 2nd-order method (k-diffusion `sample_heun`, Karras et al.): two denoiser calls per step, Euler on the last",
    rule: Rule::Heun,
};
pub const DPMPP_2M: KSampler = KSampler {
    name: "dpmpp_2m",
    summary: "DPM-Solver++(2M) (k-diffusion `sample_dpmpp_2m`, diffusers' DPMSolverMultistep): 2nd-order multistep, one call per step",
    rule: Rule::Dpmpp2m,
};
pub const DPMPP_2M_SDE: KSampler = KSampler {
    name: "dpmpp_2m_sde",
    summary: "DPM-Solver++(2M) SDE, midpoint (k-diffusion `sample_dpmpp_2m_sde`): multistep with fresh noise each step",
    rule: Rule::Dpmpp2mSde,
};
pub const DPMPP_3M_SDE: KSampler = KSampler {
    name: "dpmpp_3m_sde",
    summary: "DPM-Solver++(3M) SDE (k-diffusion `sample_dpmpp_3m_sde`): 3rd-order multistep with fresh noise each step",
    rule: Rule::Dpmpp3mSde,
};

pub const UNI_PC: KSampler = KSampler {
    name: "uni_pc",
    summary: "UniPC (bh2, data prediction; diffusers' UniPCMultistepScheduler): multistep predictor with a corrector from each new call",
    rule: Rule::UniPc,
};

/// `order` of `uni_pc`.
const ORDER: ParamSpec = ParamSpec::optional(
    "order",
    ParamType::Int,
    ParamDefault::Int(2),
    "solver order 1..=3 (diffusers' `solver_order`; lower at the start and on the last step)",
);

impl NodeKind for KSampler {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn params(&self) -> &'static [ParamSpec] {
        const DET: &[ParamSpec] = flow_sampler_params![DENOISER];
        const STOCH: &[ParamSpec] = flow_sampler_params![ETA_ONE, S_NOISE, DENOISER];
        const UNI: &[ParamSpec] = flow_sampler_params![ORDER, DENOISER];
        match self.rule {
            Rule::Heun | Rule::Dpmpp2m => DET,
            Rule::UniPc => UNI,
            _ => STOCH,
        }
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let schedule = Schedule::from_params(cx)?;
        let (eta, s_noise) = match self.rule {
            Rule::Heun | Rule::Dpmpp2m | Rule::UniPc => (0.0, 0.0),
            _ => (super::eta_param(cx)?, finite_param(cx, "s_noise")?),
        };
        let order = if self.rule == Rule::UniPc {
            let o = cx.params.int("order")?;
            usize::try_from(o)
                .ok()
                .filter(|o| (1..=3).contains(o))
                .ok_or_else(|| {
                    BuildError::param("order", format!("`order` must be 1, 2 or 3, found {o}"))
                })?
        } else {
            1
        };
        Sampler::node(
            cx,
            KRule {
                kind: self.name,
                rule: self.rule,
                schedule,
                eta,
                s_noise,
                order,
            },
        )
    }
}

struct KRule {
    kind: &'static str,
    rule: Rule,
    schedule: Schedule,
    eta: f64,
    s_noise: f64,
    order: usize,
}

impl StepRule for KRule {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn noise_draws(&self) -> Option<usize> {
        match self.rule {
            Rule::Heun | Rule::Dpmpp2m | Rule::UniPc => None,
            _ => Some(self.schedule.steps()),
        }
    }
    fn sample(&self, m: &mut Sampling<'_, '_>, mut x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        let sigmas = m.enter_native(&self.schedule, &mut x);
        let model = m.model().clone();
        let run = Run {
            m,
            model: &model,
            sigmas: &sigmas,
        };
        match self.rule {
            Rule::EulerAncestral => self.euler_ancestral(run, x),
            Rule::Heun => heun(run, x),
            // DPM-Solver++(2M) is the 2M SDE's midpoint rule at η = 0.
            Rule::Dpmpp2m | Rule::Dpmpp2mSde => self.dpmpp_2m_sde(run, x),
            Rule::Dpmpp3mSde => self.dpmpp_3m_sde(run, x),
            Rule::UniPc => self.uni_pc(run, x),
        }
    }
}

/// What a sampler runs over: the denoiser, the model's noise levels and
/// the σ list (k-diffusion's `model, x, sigmas`).
struct Run<'r, 'a, 'cx> {
    m: &'r mut Sampling<'a, 'cx>,
    model: &'r NoiseModel,
    sigmas: &'r [f64],
}

/// One step of the σ list: from σ to σ' > 0, h = λ(σ') − λ(σ) (λ =
/// log(α/σ)), α' = α(σ').
#[derive(Debug, Clone, Copy)]
struct Step {
    i: usize,
    s: f64,
    s1: f64,
    h: f64,
    a1: f64,
}

impl Run<'_, '_, '_> {
    /// k-diffusion's loop: the denoiser's x₀ estimate D at each σ, then
    /// `rule`'s step from σ to σ'. A step to σ' = 0 lands on D (every
    /// rule's last step: k-diffusion's `x + d·(0 − σ)` is D).
    fn steps(
        self,
        mut x: Vec<f32>,
        mut rule: impl FnMut(
            &mut Sampling<'_, '_>,
            Step,
            &mut Vec<f32>,
            Vec<f32>,
        ) -> Result<(), NodeError>,
    ) -> Result<Vec<f32>, NodeError> {
        for (i, w) in self.sigmas.windows(2).enumerate() {
            let (s, s1) = (w[0], w[1]);
            let den = self.m.denoise_native(&x, s)?;
            if s1 == 0.0 {
                x = den;
                continue;
            }
            let (h, a1) = (
                self.model.lambda(s1) - self.model.lambda(s),
                self.model.alpha(s1),
            );
            rule(&mut *self.m, Step { i, s, s1, h, a1 }, &mut x, den)?;
        }
        Ok(x)
    }
}

/// `x ← a·x + Σ c·t` in f64, element-wise.
fn combine(x: &mut [f32], a: f64, terms: &[(f64, &[f32])]) {
    for (k, v) in x.iter_mut().enumerate() {
        let mut acc = a * f64::from(*v);
        for (c, t) in terms {
            acc += c * f64::from(t[k]);
        }
        *v = acc as f32;
    }
}

/// The Karras ODE derivative `d = (x − D)/σ` (k-diffusion's `to_d`).
fn to_d(x: &[f32], den: &[f32], sigma: f64) -> Vec<f64> {
    x.iter()
        .zip(den)
        .map(|(&xv, &dv)| (f64::from(xv) - f64::from(dv)) / sigma)
        .collect()
}

/// `x + d·dt`.
fn euler_to(x: &[f32], d: &[f64], dt: f64) -> Vec<f32> {
    x.iter()
        .zip(d)
        .map(|(&v, dv)| (f64::from(v) + dv * dt) as f32)
        .collect()
}

/// `sample_heun` (s_churn = 0): Euler to σ', the slope there, the average.
fn heun(run: Run<'_, '_, '_>, x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
    run.steps(x, |m, st, x, den| {
        let (d, dt) = (to_d(x, &den, st.s), st.s1 - st.s);
        let x2 = euler_to(x, &d, dt);
        let d2 = to_d(&x2, &m.denoise_native(&x2, st.s1)?, st.s1);
        let avg: Vec<f64> = d.iter().zip(&d2).map(|(a, b)| (a + b) / 2.0).collect();
        *x = euler_to(x, &avg, dt);
        Ok(())
    })
}

impl KRule {
    /// `sample_euler_ancestral`: Euler to σ_down, then `σ_up·z`; on a flow
    /// model ComfyUI's `sample_euler_ancestral_RF`.
    fn euler_ancestral(&self, run: Run<'_, '_, '_>, x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        let (eta, flow) = (self.eta, matches!(run.model, NoiseModel::Flow));
        let mut z = Vec::new();
        run.steps(x, |m, Step { i, s, s1, .. }, x, den| {
            m.step_noise(i, &mut z, x.len())?;
            // The step as x ← a·(r·x + (1 − r)·D) + c·z, r = σ_down/σ.
            let (r, a, c) = if flow {
                let down = s1 * (1.0 + (s1 / s - 1.0) * eta);
                let (a1, ad) = (1.0 - s1, 1.0 - down);
                let up = (s1 * s1 - down * down * a1 * a1 / (ad * ad))
                    .max(0.0)
                    .sqrt();
                match eta > 0.0 {
                    true => (down / s, a1 / ad, up),
                    false => (down / s, 1.0, 0.0),
                }
            } else {
                // get_ancestral_step(σ, σ', η).
                let up = s1.min(eta * (s1 * s1 * (s * s - s1 * s1) / (s * s)).max(0.0).sqrt());
                let down = (s1 * s1 - up * up).max(0.0).sqrt();
                (down / s, 1.0, up)
            };
            combine(x, a * r, &[(a * (1.0 - r), &den), (c * self.s_noise, &z)]);
            Ok(())
        })
    }

    /// The DPM-Solver++ (SDE) update: `x ← (σ'/σ)·e^{−ηh}·x + Σ terms`,
    /// plus fresh noise `σ'·√(1 − e^{−2ηh})·s_noise·z` at η > 0.
    fn sde_update<'t>(
        &self,
        m: &mut Sampling<'_, '_>,
        st: Step,
        x: &mut [f32],
        z: &'t mut Vec<f32>,
        mut terms: Vec<(f64, &'t [f32])>,
    ) -> Result<(), NodeError> {
        let eta = self.eta;
        if eta > 0.0 {
            m.step_noise(st.i, z, x.len())?;
            let z: &'t Vec<f32> = z;
            let amp = st.s1 * (-(-2.0 * eta * st.h).exp_m1()).sqrt() * self.s_noise;
            terms.push((amp, z));
        }
        combine(x, st.s1 / st.s * (-eta * st.h).exp(), &terms);
        Ok(())
    }

    /// `sample_dpmpp_2m_sde` (midpoint), and at η = 0 `sample_dpmpp_2m`:
    /// `x ← (σ'/σ)·e^{−ηh}·x + c·D + ½·c/r·(D − D₋₁) + noise`,
    /// c = α'·(1 − e^{−h−ηh}), r = h₋₁/h.
    fn dpmpp_2m_sde(&self, run: Run<'_, '_, '_>, x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        let (eta, mut z) = (self.eta, Vec::new());
        let mut last: Option<(Vec<f32>, f64)> = None;
        run.steps(x, |m, st, x, den| {
            let c = -st.a1 * (-st.h - eta * st.h).exp_m1();
            let mut terms: Vec<(f64, &[f32])> = vec![(c, &den)];
            if let Some((prev, h_last)) = &last {
                let half = 0.5 * c * st.h / h_last;
                terms[0].0 += half;
                terms.push((-half, prev));
            }
            self.sde_update(m, st, x, &mut z, terms)?;
            last = Some((den, st.h));
            Ok(())
        })
    }

    /// `sample_dpmpp_3m_sde`: the exponential-integrator step with φ₂, φ₃
    /// corrections from the last two estimates.
    fn dpmpp_3m_sde(&self, run: Run<'_, '_, '_>, x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        let (eta, mut z) = (self.eta, Vec::new());
        // (D, h) of the last two steps, the latest first.
        let mut past: std::collections::VecDeque<(Vec<f32>, f64)> = Default::default();
        run.steps(x, |m, st, x, den| {
            let h_eta = st.h * (eta + 1.0);
            let phi2 = (-h_eta).exp_m1() / h_eta + 1.0;
            let phi3 = phi2 / h_eta - 0.5;
            // Coefficients of D, D₁, D₂ in α'·(1 − e^{−h_η})·D + α'·(φ₂·d₁ − φ₃·d₂):
            // d1_0 = (D − D₁)/r0, d1_1 = (D₁ − D₂)/r1 (r = h_past/h), and with
            // both d₁ = d1_0 + (d1_0 − d1_1)·r0/(r0+r1), d₂ = (d1_0 − d1_1)/(r0+r1);
            // with one, d₁ = d1_0.
            let mut c = [-st.a1 * (-h_eta).exp_m1(), 0.0, 0.0];
            let r: Vec<f64> = past.iter().map(|(_, h)| h / st.h).collect();
            let r0 = r.first().copied().unwrap_or(1.0);
            let d1_0 = [1.0 / r0, -1.0 / r0, 0.0];
            match r[..] {
                [r0, r1] => {
                    let d1_1 = [0.0, 1.0 / r1, -1.0 / r1];
                    for j in 0..3 {
                        let diff = d1_0[j] - d1_1[j];
                        let d1 = d1_0[j] + diff * r0 / (r0 + r1);
                        c[j] += st.a1 * (phi2 * d1 - phi3 * diff / (r0 + r1));
                    }
                }
                [_] => (0..2).for_each(|j| c[j] += st.a1 * phi2 * d1_0[j]),
                _ => {}
            }
            let mut terms: Vec<(f64, &[f32])> = vec![(c[0], &den)];
            terms.extend(past.iter().zip(&c[1..]).map(|((d, _), &cj)| (cj, &d[..])));
            self.sde_update(m, st, x, &mut z, terms)?;
            past.push_front((den, st.h));
            past.truncate(2);
            Ok(())
        })
    }

    /// diffusers' `UniPCMultistepScheduler` (bh2, `predict_x0`,
    /// `lower_order_final`): each step first corrects the latent it just
    /// evaluated with the new estimate (UniC), then predicts the next
    /// (UniP) from the last `order` estimates.
    fn uni_pc(&self, run: Run<'_, '_, '_>, x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
        let (model, sigmas, n) = (run.model, run.sigmas, run.sigmas.len() - 1);
        // The x₀ estimates of the last `order` steps, oldest first; the
        // latent the last was made at; the order of the last step.
        let mut outs: std::collections::VecDeque<Vec<f32>> = Default::default();
        let (mut at, mut order) = (Vec::new(), 0usize);
        run.steps(x, |_, st, x, den| {
            if st.i > 0 {
                // UniC from step i − 1 to i, with the new estimate.
                *x = unipc(model, sigmas, &outs, st.i - 1, order, &at, Some(&den));
            }
            outs.push_back(den);
            if outs.len() > self.order {
                outs.pop_front();
            }
            order = self.order.min(n - st.i).min(st.i + 1);
            at.clone_from(x);
            // UniP from step i to i + 1.
            *x = unipc(model, sigmas, &outs, st.i, order, x, None);
            Ok(())
        })
    }
}

/// UniPC's update of `x` (at level j, where the last of `outs` was
/// estimated) to level j + 1, of `order`: `(σ'/σ)·x − α'·h_φ₁·m₀ −
/// α'·B_h·Σ ρₖ·D1ₖ`, D1ₖ = (mₖ − m₀)/rₖ over the earlier estimates; the
/// corrector (UniC) adds `ρ_t·(D − m₀)` for the new estimate D and solves
/// the full order system, the predictor (UniP) one order lower.
fn unipc(
    model: &NoiseModel,
    sigmas: &[f64],
    outs: &std::collections::VecDeque<Vec<f32>>,
    j: usize,
    order: usize,
    x: &[f32],
    corrector: Option<&[f32]>,
) -> Vec<f32> {
    let lam = |i: usize| model.lambda(sigmas[i]);
    let m0 = &outs[outs.len() - 1];
    let h = lam(j + 1) - lam(j);
    let mut rks = Vec::new();
    let mut d1s: Vec<Vec<f64>> = Vec::new();
    for k in 1..order {
        let rk = (lam(j - k) - lam(j)) / h;
        rks.push(rk);
        d1s.push(
            outs[outs.len() - 1 - k]
                .iter()
                .zip(m0)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)) / rk)
                .collect(),
        );
    }
    rks.push(1.0);
    let (h_phi_1, b_h, r, b) = unipc_terms(h, &rks);
    let rhos: Vec<f64> = match (corrector, order) {
        (Some(_), 1) | (None, 2) => vec![0.5],
        (Some(_), _) => solve(r, b),
        (None, 1) => vec![],
        (None, _) => {
            let k = order - 1;
            solve(
                r[..k].iter().map(|row| row[..k].to_vec()).collect(),
                b[..k].to_vec(),
            )
        }
    };
    let (a_t, ratio) = (model.alpha(sigmas[j + 1]), sigmas[j + 1] / sigmas[j]);
    x.iter()
        .enumerate()
        .map(|(k, &v)| {
            let m0k = f64::from(m0[k]);
            let mut corr: f64 = d1s.iter().zip(&rhos).map(|(d, r)| r * d[k]).sum();
            if let (Some(den), Some(rho_t)) = (corrector, rhos.last()) {
                corr += rho_t * (f64::from(den[k]) - m0k);
            }
            (ratio * f64::from(v) - a_t * h_phi_1 * m0k - a_t * b_h * corr) as f32
        })
        .collect()
}

/// UniPC's coefficients for a step of size `h` in λ and `order`, with the
/// ratios `rks` (the earlier steps' λ offsets over h, then 1): `h_phi_1 =
/// e^{−h} − 1`, `B_h` (bh2: the same), and `R`, `b` of the order
/// conditions (`R[j] = rksʲ`, `b[j] = h_phi_{j+1}·(j+1)!/B_h`).
fn unipc_terms(h: f64, rks: &[f64]) -> (f64, f64, Vec<Vec<f64>>, Vec<f64>) {
    let order = rks.len();
    let hh = -h;
    let h_phi_1 = hh.exp_m1();
    let b_h = hh.exp_m1();
    let mut h_phi_k = h_phi_1 / hh - 1.0;
    let mut factorial = 1.0;
    let (mut r, mut b) = (Vec::new(), Vec::new());
    for i in 1..=order {
        r.push(rks.iter().map(|rk| rk.powi(i as i32 - 1)).collect());
        b.push(h_phi_k * factorial / b_h);
        factorial *= (i + 1) as f64;
        h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    (h_phi_1, b_h, r, b)
}

/// Solves the small system `a·x = y` (Gaussian elimination, partial
/// pivoting; at most 3×3 here).
fn solve(mut a: Vec<Vec<f64>>, mut y: Vec<f64>) -> Vec<f64> {
    let n = y.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, p);
        y.swap(c, p);
        let pivot = a[c].clone();
        for r in c + 1..n {
            let f = a[r][c] / pivot[c];
            for (v, p) in a[r].iter_mut().zip(&pivot).skip(c) {
                *v -= f * p;
            }
            y[r] -= f * y[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (y[r] - s) / a[r][r];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use crate::samplers::test_support::PerfectFlow;
    use wgraph_engine::params::ParamValue as P;

    /// On a perfect flow model every rule (stochastic ones at η = 0, and
    /// at η = 1 too: fresh noise is re-denoised exactly) ends on its x₀,
    /// for each scheduler; `uni_pc` at each order.
    #[test]
    fn every_rule_recovers_a_perfect_flow_models_target() {
        let dir = tempfile::tempdir().unwrap();
        let x0: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let noise: Vec<f32> = (0..24).map(|i| (i as f32 * 1.3).cos()).collect();
        let kinds = [
            &EULER_ANCESTRAL,
            &HEUN,
            &DPMPP_2M,
            &DPMPP_2M_SDE,
            &DPMPP_3M_SDE,
            &UNI_PC,
        ];
        for kind in kinds {
            for scheduler in [
                "default",
                "normal",
                "karras",
                "exponential",
                "sgm_uniform",
                "beta",
            ] {
                let mut params = vec![
                    ("steps", P::Int(5)),
                    ("scheduler", P::Choice(scheduler.into())),
                    ("denoiser", P::NodeRef("d".into())),
                ];
                if kind.rule == Rule::UniPc {
                    params.push(("order", P::Int(3)));
                }
                let node = build(kind, params, dir.path()).unwrap();
                let (mut model, mut inf) = (PerfectFlow::new(&x0), PerfectFlow::new(&x0));
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
                assert!(err < 1e-4, "{} {scheduler}: error {err}", kind.name);
                let calls = if kind.rule == Rule::Heun { 9 } else { 5 };
                assert_eq!(model.ts.len(), calls, "{} {scheduler}", kind.name);
            }
        }
    }

    #[test]
    fn bad_parameters_are_located() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, bad, param) in [
            (&UNI_PC, ("order", P::Int(4)), "order"),
            (&DPMPP_2M_SDE, ("eta", P::Float(-1.0)), "eta"),
            (
                &DPMPP_2M,
                ("sigmas", P::FloatList(vec![1.0, 2.0])),
                "sigmas",
            ),
            (&HEUN, ("steps", P::Int(0)), "steps"),
        ] {
            let p = vec![bad, ("denoiser", P::NodeRef("d".into()))];
            let e = build(kind, p, dir.path()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{}", e.message);
        }
    }
}
