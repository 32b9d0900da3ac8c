//! The denoiser contract: what a denoiser's metadata declares and this
//! crate checks when it builds a `denoiser`, `controlnet` or
//! `block_denoiser` (whose head carries it) — the prediction
//! (`wgraph.prediction`), the noise process (`wgraph.schedule` with its
//! betas, or rectified flow) and the time scale (`wgraph.time_scale`).

use crate::common::*;

/// The predictions a denoiser's `wgraph.prediction` may name.
pub(crate) const PREDICTIONS: &[&str] =
    &["epsilon", "velocity", "sample", "x0", "v", "v_prediction"];

/// The noise process a denoiser's metadata declares, checked, and the
/// factor from the samplers' `t` convention (`1000·σ` for flow) to the
/// model's (`time_scale·σ`; `None` when it is 1000).
///
/// - `wgraph.schedule = scaled_linear | linear` with `wgraph.beta_start`,
///   `wgraph.beta_end` (0 < β₀ ≤ β₁ < 1) and optional `wgraph.train_steps`
///   (default 1000): VP; the model is called at integer-valued timesteps.
/// - `ve` with `wgraph.sigma_min` < `wgraph.sigma_max`: variance exploding
///   (k-diffusion's `x = x₀ + σ·ε`), the model called with σ itself.
/// - `rectified_flow` or no schedule: flow, with `wgraph.time_scale`
///   (default 1000) > 0.
pub(crate) fn noise_process(
    meta: &std::collections::BTreeMap<String, String>,
) -> Result<(NoiseProcess, Option<f32>), String> {
    let num = |k: &str| -> Result<Option<f64>, String> {
        match meta.get(k) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Some(n)),
                _ => Err(format!("{k} = `{v}` is not a number")),
            },
        }
    };
    match meta.get("wgraph.schedule").map(String::as_str) {
        Some(schedule @ ("scaled_linear" | "linear")) => {
            let (Some(b0), Some(b1)) = (num("wgraph.beta_start")?, num("wgraph.beta_end")?) else {
                return Err(format!(
                    "wgraph.schedule = {schedule} needs wgraph.beta_start and wgraph.beta_end"
                ));
            };
            if !(b0 > 0.0 && b0 <= b1 && b1 < 1.0) {
                return Err(format!(
                    "the betas must satisfy 0 < beta_start <= beta_end < 1, found {b0} and {b1}"
                ));
            }
            let train_steps = match num("wgraph.train_steps")? {
                None => 1000,
                Some(t) if t.fract() == 0.0 && (1.0..=100_000.0).contains(&t) => t as usize,
                Some(t) => {
                    return Err(format!(
                        "wgraph.train_steps must be an integer between 1 and 100000, found {t}"
                    ));
                }
            };
            if meta.contains_key("wgraph.time_scale") {
                return Err(format!(
                    "wgraph.time_scale is for rectified-flow models; a {schedule} (VP) model is called at its integer timesteps 0..{train_steps}"
                ));
            }
            Ok((
                NoiseProcess::Vp {
                    beta_start: b0,
                    beta_end: b1,
                    train_steps,
                    scaled: schedule == "scaled_linear",
                },
                None,
            ))
        }
        Some("ve") => {
            let (Some(lo), Some(hi)) = (num("wgraph.sigma_min")?, num("wgraph.sigma_max")?) else {
                return Err(
                    "wgraph.schedule = ve needs wgraph.sigma_min and wgraph.sigma_max (the σ range it was trained on, e.g. 0.002 and 80)"
                        .into(),
                );
            };
            if !(lo > 0.0 && lo < hi) {
                return Err(format!(
                    "the σ range must satisfy 0 < sigma_min < sigma_max, found {lo} and {hi}"
                ));
            }
            for key in ["wgraph.time_scale", "wgraph.beta_start", "wgraph.beta_end"] {
                if meta.contains_key(key) {
                    return Err(format!(
                        "{key} is not for a ve model: it is called with σ itself, x = x₀ + σ·ε"
                    ));
                }
            }
            Ok((
                NoiseProcess::Ve {
                    sigma_min: lo,
                    sigma_max: hi,
                },
                None,
            ))
        }
        None | Some("rectified_flow") => match num("wgraph.time_scale")? {
            None => Ok((NoiseProcess::Flow, None)),
            Some(s) if s > 0.0 && s <= 1e6 => {
                let factor = (s / 1000.0) as f32;
                Ok((NoiseProcess::Flow, (factor != 1.0).then_some(factor)))
            }
            Some(s) => Err(format!(
                "wgraph.time_scale must be positive (t = time_scale·σ), found {s}"
            )),
        },
        Some(other) => Err(format!(
            "wgraph.schedule `{other}` is not one this engine runs (scaled_linear, linear, rectified_flow, ve)"
        )),
    }
}
