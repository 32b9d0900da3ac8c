//! The k-diffusion samplers, named as ComfyUI and k-diffusion users know
//! them: `euler_ancestral`, `heun`, `dpmpp_2m`, `dpmpp_2m_sde`,
//! `dpmpp_3m_sde`. Each is k-diffusion's `sample_*` over the model's
//! native σ ([`super::schedule`]): on a VP model the VE form
//! `x = x₀ + σ·ε` exactly as k-diffusion (and diffusers' Euler-ancestral,
//! Heun and DPMSolverMultistep schedulers, which agree with it); on a flow
//! model the same rules with `α = 1 − σ` in `x = α·x₀ + σ·ε` (ComfyUI's
//! and diffusers' flow forms: `euler_ancestral` is ComfyUI's `_RF` rule, the
//! DPM-Solver++ ones use λ = log(α/σ)).
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

/// A multistep sampler's memory of an earlier step: its x₀ estimate and
/// its step size in λ.
type Past = (Vec<f32>, f64);

struct KRule {
    kind: &'static str,
    rule: Rule,
    schedule: Schedule,
    eta: f64,
    s_noise: f64,
    order: usize,
}

/// `α` of `x = α·x₀ + σ·ε` at native σ: 1 (VE), 1 − σ (flow).
fn alpha(model: &NoiseModel, sigma: f64) -> f64 {
    match model {
        NoiseModel::Flow => 1.0 - sigma,
        NoiseModel::Vp(_) => 1.0,
    }
}

/// λ = log(α/σ) (k-diffusion's t = −log σ on VE).
fn lambda(model: &NoiseModel, sigma: f64) -> f64 {
    match model {
        NoiseModel::Flow => (1.0 - sigma).ln() - sigma.ln(),
        NoiseModel::Vp(_) => -sigma.ln(),
    }
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
        match self.rule {
            Rule::EulerAncestral => self.euler_ancestral(m, &model, &sigmas, x),
            Rule::Heun => heun(m, &sigmas, x),
            Rule::Dpmpp2m => dpmpp_2m(m, &model, &sigmas, x),
            Rule::Dpmpp2mSde => self.dpmpp_2m_sde(m, &model, &sigmas, x),
            Rule::Dpmpp3mSde => self.dpmpp_3m_sde(m, &model, &sigmas, x),
            Rule::UniPc => self.uni_pc(m, &model, &sigmas, x),
        }
    }
}

/// `x ← a·x + b·d + c·z` in f64, element-wise.
fn combine(x: &mut [f32], a: f64, terms: &[(f64, &[f32])]) {
    for (k, v) in x.iter_mut().enumerate() {
        let mut acc = a * f64::from(*v);
        for (c, t) in terms {
            acc += c * f64::from(t[k]);
        }
        *v = acc as f32;
    }
}

fn heun(m: &mut Sampling<'_, '_>, sigmas: &[f64], mut x: Vec<f32>) -> Result<Vec<f32>, NodeError> {
    for w in sigmas.windows(2) {
        let (s, s1) = (w[0], w[1]);
        let den = m.denoise_native(&x, s)?;
        let d: Vec<f64> = x
            .iter()
            .zip(&den)
            .map(|(&xv, &dv)| (f64::from(xv) - f64::from(dv)) / s)
            .collect();
        let dt = s1 - s;
        if s1 == 0.0 {
            for (v, dv) in x.iter_mut().zip(&d) {
                *v = (f64::from(*v) + dv * dt) as f32;
            }
            continue;
        }
        let x2: Vec<f32> = x
            .iter()
            .zip(&d)
            .map(|(&v, dv)| (f64::from(v) + dv * dt) as f32)
            .collect();
        let den2 = m.denoise_native(&x2, s1)?;
        for (k, v) in x.iter_mut().enumerate() {
            let d2 = (f64::from(x2[k]) - f64::from(den2[k])) / s1;
            *v = (f64::from(*v) + (d[k] + d2) / 2.0 * dt) as f32;
        }
    }
    Ok(x)
}

fn dpmpp_2m(
    m: &mut Sampling<'_, '_>,
    model: &NoiseModel,
    sigmas: &[f64],
    mut x: Vec<f32>,
) -> Result<Vec<f32>, NodeError> {
    let mut old: Option<Vec<f32>> = None;
    for i in 0..sigmas.len() - 1 {
        let (s, s1) = (sigmas[i], sigmas[i + 1]);
        let den = m.denoise_native(&x, s)?;
        if s1 == 0.0 {
            x.clone_from(&den);
        } else {
            let h = lambda(model, s1) - lambda(model, s);
            let (ratio, a1) = (s1 / s, alpha(model, s1));
            let c = -a1 * (-h).exp_m1();
            match &old {
                Some(prev) if i > 0 => {
                    let r = (lambda(model, s) - lambda(model, sigmas[i - 1])) / h;
                    let (p, q) = (1.0 + 1.0 / (2.0 * r), 1.0 / (2.0 * r));
                    combine(&mut x, ratio, &[(c * p, &den), (-c * q, prev)]);
                }
                _ => combine(&mut x, ratio, &[(c, &den)]),
            }
        }
        old = Some(den);
    }
    Ok(x)
}

impl KRule {
    fn euler_ancestral(
        &self,
        m: &mut Sampling<'_, '_>,
        model: &NoiseModel,
        sigmas: &[f64],
        mut x: Vec<f32>,
    ) -> Result<Vec<f32>, NodeError> {
        let mut z = Vec::new();
        for i in 0..sigmas.len() - 1 {
            let (s, s1) = (sigmas[i], sigmas[i + 1]);
            let den = m.denoise_native(&x, s)?;
            if s1 == 0.0 {
                // k-diffusion: d·(0 − σ) lands on the estimate; RF: x = x₀.
                x.clone_from(&den);
                continue;
            }
            m.step_noise(i, &mut z, x.len())?;
            match model {
                NoiseModel::Vp(_) => {
                    // get_ancestral_step(σ, σ', η).
                    let up = if self.eta > 0.0 {
                        s1.min(self.eta * (s1 * s1 * (s * s - s1 * s1) / (s * s)).max(0.0).sqrt())
                    } else {
                        0.0
                    };
                    let down = (s1 * s1 - up * up).max(0.0).sqrt();
                    // x + d·(σ_down − σ), d = (x − x₀)/σ.
                    let f = (down - s) / s;
                    combine(&mut x, 1.0 + f, &[(-f, &den), (up * self.s_noise, &z)]);
                }
                NoiseModel::Flow => {
                    // ComfyUI's sample_euler_ancestral_RF.
                    let ratio = 1.0 + (s1 / s - 1.0) * self.eta;
                    let down = s1 * ratio;
                    let (a1, ad) = (1.0 - s1, 1.0 - down);
                    let renoise = (s1 * s1 - down * down * a1 * a1 / (ad * ad))
                        .max(0.0)
                        .sqrt();
                    let r = down / s;
                    let k = if self.eta > 0.0 { a1 / ad } else { 1.0 };
                    let amp = if self.eta > 0.0 {
                        renoise * self.s_noise
                    } else {
                        0.0
                    };
                    combine(&mut x, k * r, &[(k * (1.0 - r), &den), (amp, &z)]);
                }
            }
        }
        Ok(x)
    }

    fn dpmpp_2m_sde(
        &self,
        m: &mut Sampling<'_, '_>,
        model: &NoiseModel,
        sigmas: &[f64],
        mut x: Vec<f32>,
    ) -> Result<Vec<f32>, NodeError> {
        let mut z = Vec::new();
        let mut old: Option<(Vec<f32>, f64)> = None;
        for i in 0..sigmas.len() - 1 {
            let (s, s1) = (sigmas[i], sigmas[i + 1]);
            let den = m.denoise_native(&x, s)?;
            if s1 == 0.0 {
                x.clone_from(&den);
                old = Some((den, 0.0));
                continue;
            }
            let h = lambda(model, s1) - lambda(model, s);
            let eta_h = self.eta * h;
            let a1 = alpha(model, s1);
            let c = -a1 * (-h - eta_h).exp_m1();
            let mut terms: Vec<(f64, &[f32])> = vec![(c, &den)];
            if let Some((prev, h_last)) = &old {
                let r = h_last / h;
                // midpoint: ½·(1 − e^{−h−ηh})·(1/r)·(D − D_old).
                terms[0].0 += 0.5 * c / r;
                terms.push((-0.5 * c / r, prev));
            }
            if self.eta > 0.0 {
                m.step_noise(i, &mut z, x.len())?;
                terms.push((s1 * (-(-2.0 * eta_h).exp_m1()).sqrt() * self.s_noise, &z));
            }
            combine(&mut x, s1 / s * (-eta_h).exp(), &terms);
            old = Some((den, h));
        }
        Ok(x)
    }

    fn dpmpp_3m_sde(
        &self,
        m: &mut Sampling<'_, '_>,
        model: &NoiseModel,
        sigmas: &[f64],
        mut x: Vec<f32>,
    ) -> Result<Vec<f32>, NodeError> {
        let mut z = Vec::new();
        // (denoised, h) of the last two steps.
        let (mut d1, mut d2): (Option<Past>, Option<Past>) = (None, None);
        for i in 0..sigmas.len() - 1 {
            let (s, s1) = (sigmas[i], sigmas[i + 1]);
            let den = m.denoise_native(&x, s)?;
            if s1 == 0.0 {
                x.clone_from(&den);
                continue;
            }
            let h = lambda(model, s1) - lambda(model, s);
            let h_eta = h * (self.eta + 1.0);
            let a1 = alpha(model, s1);
            let lead = s1 / s * (-self.eta * h).exp();
            // Coefficients of D, D₁, D₂ in α'·(1 − e^{−h_η})·D + α'·(φ₂·d₁ − φ₃·d₂).
            let mut c = [-a1 * (-h_eta).exp_m1(), 0.0, 0.0];
            let phi2 = (-h_eta).exp_m1() / h_eta + 1.0;
            match (&d1, &d2) {
                (Some((_, h1)), Some((_, h2))) => {
                    let (r0, r1) = (h1 / h, h2 / h);
                    let phi3 = phi2 / h_eta - 0.5;
                    // d1_0 = (D − D₁)/r0, d1_1 = (D₁ − D₂)/r1,
                    // d₁ = d1_0 + (d1_0 − d1_1)·r0/(r0+r1), d₂ = (d1_0 − d1_1)/(r0+r1).
                    let a = [1.0 / r0, -1.0 / r0, 0.0];
                    let b = [0.0, 1.0 / r1, -1.0 / r1];
                    for j in 0..3 {
                        let diff = a[j] - b[j];
                        let d1c = a[j] + diff * r0 / (r0 + r1);
                        let d2c = diff / (r0 + r1);
                        c[j] += a1 * (phi2 * d1c - phi3 * d2c);
                    }
                }
                (Some((_, h1)), None) => {
                    let r = h1 / h;
                    c[0] += a1 * phi2 / r;
                    c[1] -= a1 * phi2 / r;
                }
                _ => {}
            }
            let mut terms: Vec<(f64, &[f32])> = vec![(c[0], &den)];
            if let Some((den1, _)) = &d1 {
                terms.push((c[1], den1));
            }
            if let Some((den2, _)) = &d2 {
                terms.push((c[2], den2));
            }
            if self.eta > 0.0 {
                m.step_noise(i, &mut z, x.len())?;
                let amp = s1 * (-(-2.0 * h * self.eta).exp_m1()).sqrt() * self.s_noise;
                terms.push((amp, &z));
            }
            combine(&mut x, lead, &terms);
            d2 = d1.take();
            d1 = Some((den, h));
        }
        Ok(x)
    }
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

impl KRule {
    /// diffusers' `UniPCMultistepScheduler` (bh2, `predict_x0`,
    /// `lower_order_final`): each step first corrects the latent it just
    /// evaluated with the new estimate (UniC), then predicts the next
    /// (UniP) from the last `order` estimates.
    fn uni_pc(
        &self,
        m: &mut Sampling<'_, '_>,
        model: &NoiseModel,
        sigmas: &[f64],
        mut x: Vec<f32>,
    ) -> Result<Vec<f32>, NodeError> {
        let n = sigmas.len() - 1;
        let lam = |i: usize| lambda(model, sigmas[i]);
        // The x₀ estimates of the last `order` steps, oldest first.
        let mut outs: std::collections::VecDeque<Vec<f32>> = Default::default();
        let mut last: Option<Vec<f32>> = None;
        let (mut this_order, mut lower) = (0usize, 0usize);
        for i in 0..n {
            let den = m.denoise_native(&x, sigmas[i])?;
            if let (Some(prev), true) = (&last, i > 0) {
                // UniC from step i − 1 to i, with the new estimate.
                let order = this_order;
                let m0 = &outs[outs.len() - 1];
                let h = lam(i) - lam(i - 1);
                let mut rks = Vec::new();
                let mut d1s: Vec<Vec<f64>> = Vec::new();
                for k in 1..order {
                    let mi = &outs[outs.len() - 1 - k];
                    let rk = (lam(i - 1 - k) - lam(i - 1)) / h;
                    rks.push(rk);
                    d1s.push(
                        mi.iter()
                            .zip(m0)
                            .map(|(&a, &b)| (f64::from(a) - f64::from(b)) / rk)
                            .collect(),
                    );
                }
                rks.push(1.0);
                let (h_phi_1, b_h, r, b) = unipc_terms(h, &rks);
                let rhos = if order == 1 { vec![0.5] } else { solve(r, b) };
                let a_t = alpha(model, sigmas[i]);
                let ratio = sigmas[i] / sigmas[i - 1];
                for (k, v) in x.iter_mut().enumerate() {
                    let m0k = f64::from(m0[k]);
                    let corr: f64 = d1s.iter().zip(&rhos).map(|(d, r)| r * d[k]).sum();
                    let d1_t = f64::from(den[k]) - m0k;
                    let rho_t = rhos[rhos.len() - 1];
                    *v = (ratio * f64::from(prev[k])
                        - a_t * h_phi_1 * m0k
                        - a_t * b_h * (corr + rho_t * d1_t)) as f32;
                }
            }
            outs.push_back(den);
            if outs.len() > self.order {
                outs.pop_front();
            }
            this_order = self.order.min(n - i).min(lower + 1);
            last = Some(x.clone());
            // UniP from step i to i + 1.
            let m0 = &outs[outs.len() - 1];
            if sigmas[i + 1] == 0.0 {
                x.clone_from(m0);
            } else {
                let order = this_order;
                let h = lam(i + 1) - lam(i);
                let mut rks = Vec::new();
                let mut d1s: Vec<Vec<f64>> = Vec::new();
                for k in 1..order {
                    let mi = &outs[outs.len() - 1 - k];
                    let rk = (lam(i - k) - lam(i)) / h;
                    rks.push(rk);
                    d1s.push(
                        mi.iter()
                            .zip(m0)
                            .map(|(&a, &b)| (f64::from(a) - f64::from(b)) / rk)
                            .collect(),
                    );
                }
                rks.push(1.0);
                let (h_phi_1, b_h, r, b) = unipc_terms(h, &rks);
                let rhos: Vec<f64> = match order {
                    1 => vec![],
                    2 => vec![0.5],
                    _ => {
                        let k = order - 1;
                        let r: Vec<Vec<f64>> = r[..k].iter().map(|row| row[..k].to_vec()).collect();
                        solve(r, b[..k].to_vec())
                    }
                };
                let a_t = alpha(model, sigmas[i + 1]);
                let ratio = sigmas[i + 1] / sigmas[i];
                for (k, v) in x.iter_mut().enumerate() {
                    let pred: f64 = d1s.iter().zip(&rhos).map(|(d, r)| r * d[k]).sum();
                    *v = (ratio * f64::from(*v)
                        - a_t * h_phi_1 * f64::from(m0[k])
                        - a_t * b_h * pred) as f32;
                }
            }
            if lower < self.order {
                lower += 1;
            }
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use crate::samplers::testing::PerfectFlow;
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
