//! Classifier-free guidance of a `denoiser` (or `controlnet`).
//!
//! **Nested CFG** over one or several conditions:
//! `guidance = { text = 5.0, action = 2.0 }` runs the model with
//! p₀ = all listed conditions dropped (zeros, the null embedding),
//! p₁ = `text` kept, p₂ = `text` and `action` kept, and returns
//! p₀ + 5·(p₁ − p₀) + 2·(p₂ − p₁) (nested multi-condition CFG; one condition
//! is ordinary CFG). When the model's batch dimension is symbolic the passes
//! are stacked into one call.
//!
//! **Cheaper guidance.** Both read the call's noise level: σ = t/1000 of the
//! samplers' flow convention (before `wgraph.time_scale`), or, for a VP
//! model called at timestep t, the flow σ of the same level,
//! `√(1−ᾱₜ)/(√ᾱₜ + √(1−ᾱₜ))` (ᾱ linear between integer timesteps).
//! - `guidance_interval = [lo, hi]` (Kynkäänniemi et al. 2024) guides only
//!   while lo ≤ σ ≤ hi; outside, one pass with every condition kept.
//! - `guidance_mode = residual` (StreamDiffusion's self-negative residual
//!   CFG, Kodaira et al. 2023) does not run p₀: it is the prediction whose x₀
//!   estimate is the reference latent r (`residual_reference`, a condition
//!   of x's type, else zeros) — its ε estimate is the paper's virtual
//!   residual noise `(x − √ᾱ·r)/√(1−ᾱ)` (flow: `(x − (1−σ)·r)/σ`), so the
//!   velocity is `(x − r)/σ`. Every call is defined by its own x and σ; no
//!   state is kept. One condition then costs one pass, not two.

use super::network::Passes;
use super::{DenoiserNode, DenoiserState, condition_param};
use crate::common::*;
use crate::models::io::{stack, unstack};
use crate::samplers::Readout;

/// The choices of `guidance_mode`.
const GUIDANCE_MODES: &[&str] = &["standard", "residual"];

/// `guidance_interval` (`denoiser`, `controlnet`).
pub(super) const GUIDANCE_INTERVAL: ParamSpec = ParamSpec::optional(
    "guidance_interval",
    ParamType::FloatList,
    ParamDefault::Absent,
    "[lo, hi]: guide only at noise levels lo <= σ <= hi (flow σ in [0, 1]; a VP model at the flow σ of its ᾱ), one conditional pass elsewhere (Kynkäänniemi et al. 2024)",
);
/// `guidance_mode` (`denoiser`, `controlnet`).
pub(super) const GUIDANCE_MODE: ParamSpec = ParamSpec::optional(
    "guidance_mode",
    ParamType::Choice(GUIDANCE_MODES),
    ParamDefault::Choice("standard"),
    "standard: one pass per level of `guidance`; residual: the all-dropped pass is not run but replaced by the virtual residual toward `residual_reference` (StreamDiffusion's self-negative RCFG)",
);
/// `residual_reference` (`denoiser`, `controlnet`).
pub(super) const RESIDUAL_REFERENCE: ParamSpec = ParamSpec::optional(
    "residual_reference",
    ParamType::Str,
    ParamDefault::Absent,
    "the condition holding the reference latent x₀ of residual mode (the type of x, e.g. \"context\"; standard mode ignores it); absent: zeros",
);

/// `guidance = { condition = scale, … }`: (index into `conditions`,
/// scale) in nesting order; empty when not set.
pub(super) fn guidance_param(
    cx: &BuildContext<'_>,
    conditions: &[usize],
    sig: &wgraph_engine::model::ModelSignature,
    model_name: &str,
) -> Result<Vec<(usize, f32)>, BuildError> {
    let mut guidance = Vec::new();
    if let Ok(record) = cx.params.record("guidance") {
        for e in &record.entries {
            let Some(ci) = conditions
                .iter()
                .position(|&i| sig.inputs[i].name == e.key.name)
            else {
                let names: Vec<&str> = conditions
                    .iter()
                    .map(|&i| sig.inputs[i].name.as_str())
                    .collect();
                return Err(BuildError::param(
                    "guidance",
                    format!(
                        "`{}` is not a condition of `{model_name}` (conditions: {})",
                        e.key.name,
                        names.join(", ")
                    ),
                ));
            };
            let scale = match e.value.kind {
                wgraph_engine::params::AstValueKind::Float(f) => f,
                wgraph_engine::params::AstValueKind::Int(i) => i as f64,
                _ => {
                    return Err(BuildError::param(
                        "guidance",
                        format!("the scale of `{}` must be a number", e.key.name),
                    ));
                }
            };
            guidance.push((ci, scale as f32));
        }
    }
    Ok(guidance)
}

/// `guidance_interval = [lo, hi]`, checked: 0 <= lo <= hi <= 1, and only
/// with `guidance`.
pub(super) fn guidance_interval(
    cx: &BuildContext<'_>,
    unguided: bool,
) -> Result<Option<(f64, f64)>, BuildError> {
    const P: &str = "guidance_interval";
    if cx.params.get(P).is_none() {
        return Ok(None);
    }
    let v = cx.params.float_list(P)?;
    let [lo, hi] = v[..] else {
        return Err(BuildError::param(
            P,
            format!(
                "`{P}` is [lo, hi], two noise levels; found {} numbers",
                v.len()
            ),
        ));
    };
    if !(0.0 <= lo && lo <= hi && hi <= 1.0) {
        return Err(BuildError::param(
            P,
            format!(
                "`{P}` needs 0 <= lo <= hi <= 1 (flow σ; a VP model's level as the flow σ of its ᾱ), found [{lo}, {hi}]"
            ),
        ));
    }
    if unguided {
        return Err(BuildError::param(
            P,
            format!(
                "`{P}` limits `guidance`, which is not set: add `guidance = {{ condition = scale }}` or remove it"
            ),
        ));
    }
    Ok(Some((lo, hi)))
}

/// `guidance_mode` and `residual_reference`, checked: residual needs
/// `guidance` and a model whose output converts to x₀ and ε; the
/// reference names a condition (in any mode, so that `bench --swap` can
/// switch modes under one reference; only residual reads it).
pub(super) fn residual_mode(
    cx: &BuildContext<'_>,
    unguided: bool,
    conditions: &[usize],
    sig: &wgraph_engine::model::ModelSignature,
    prediction: &str,
    process: &NoiseProcess,
) -> Result<Option<Residual>, BuildError> {
    let residual = cx
        .params
        .choice("guidance_mode")
        .is_ok_and(|m| m == "residual");
    let reference = condition_param(cx, "residual_reference", conditions, sig, "the model")?;
    if !residual {
        return Ok(None);
    }
    if unguided {
        return Err(BuildError::param(
            "guidance_mode",
            "`guidance_mode = residual` replaces a pass of `guidance`, which is not set: add `guidance = { condition = scale }`",
        ));
    }
    let readout = Readout::of(&Prediction {
        output: prediction.to_string(),
        process: process.clone(),
    })
    .map_err(|why| {
        BuildError::param(
            "guidance_mode",
            format!("`guidance_mode = residual` needs x₀ and ε from the model's output, but {why}"),
        )
    })?;
    Ok(Some(Residual { readout, reference }))
}

/// Self-negative residual CFG: p₀ is the model output whose x₀ estimate is
/// the reference latent.
pub(super) struct Residual {
    readout: Readout,
    /// Index into `conditions` of the reference latent; `None`: zeros.
    reference: Option<usize>,
}

impl DenoiserNode {
    /// The guided prediction of a call at timesteps `ts` (the samplers'
    /// convention, one per row) on `x` at model time `t`: the passes of
    /// `guidance` (stacked into one run where the batch is free), combined
    /// by nested CFG; one plain pass when unguided or outside
    /// `guidance_interval`. `st` holds the null conditions and the
    /// network's state; `call` is (tick, call of the tick).
    pub(super) fn guide(
        &self,
        (st, call): (&mut DenoiserState, (u64, u64)),
        ts: &[f32],
        (x, t): (&Tensor, &Tensor),
        conds: &[Tensor],
        control: Option<&Tensor>,
        level: Option<&Tensor>,
    ) -> Result<Vec<Value>, NodeError> {
        let k = self.guidance.len();
        if k > 0
            && (self.interval.is_some() || self.residual.is_some())
            && ts.iter().any(|&v| v != ts[0])
        {
            return Err(NodeError::new(
                "`guidance_interval` and `guidance_mode = residual` need one noise level per call, but this call has rows at different levels (a df_window): remove them or use standard guidance",
            ));
        }
        let noise_level = self.level(ts.first().copied().unwrap_or(0.0));
        // Outside the guidance interval: one pass, every condition kept.
        if k > 0
            && self
                .interval
                .is_some_and(|(lo, hi)| !(lo <= noise_level.0 && noise_level.0 <= hi))
        {
            let pass = self.pass(x, t, conds, control, (&[], &[]), level)?;
            let alone = Passes { first: k, count: 1 };
            return Ok(vec![self.run_passes(st, call, alone, &pass)?.into()]);
        }
        let nulls = &mut st.nulls;
        for &ci in &self.guided {
            if nulls[ci]
                .as_ref()
                .is_none_or(|z| z.shape() != conds[ci].shape())
            {
                nulls[ci] = Some(Tensor::full_f32(conds[ci].shape(), 0.0)?);
            }
        }
        // Residual mode computes p₁ … p_k; p₀ is the virtual residual.
        let first = usize::from(self.residual.is_some() && k > 0);
        let passes = (first..=k)
            .map(|j| self.pass(x, t, conds, control, (&self.guided[j..], nulls), level))
            .collect::<Result<Vec<_>, _>>()?;
        let mut preds: Vec<Tensor> = if passes.len() > 1 && self.batch {
            let stacked = (0..passes[0].len())
                .map(|i| stack(&passes.iter().map(|p| &p[i]).collect::<Vec<_>>()))
                .collect::<Result<Vec<_>, _>>()?;
            let all = Passes {
                first,
                count: passes.len(),
            };
            let out = self.run_passes(st, call, all, &stacked)?;
            unstack(&out, passes.len())?
        } else {
            passes
                .iter()
                .zip(first..)
                .map(|(p, j)| self.run_passes(st, call, Passes { first: j, count: 1 }, p))
                .collect::<Result<Vec<_>, _>>()?
        };
        if k == 0 {
            return Ok(vec![preds.swap_remove(0).into()]);
        }
        if let (Some(r), 1) = (&self.residual, first) {
            let reference = r.reference.map(|ci| &conds[ci]);
            preds.insert(
                0,
                residual_prediction(r.readout, x, reference, noise_level)?,
            );
        }
        let mut result = preds[0].host_f32()?.to_vec();
        for (j, (_, scale)) in self.guidance.iter().enumerate() {
            let (prev, cur) = (preds[j].host_f32()?, preds[j + 1].host_f32()?);
            wgraph_kernels::host::guidance(&mut result, cur, prev, *scale);
        }
        f32_out(preds[0].shape(), result)
    }

    /// The build-time check of `residual_reference`: the reference has the
    /// type of `x`.
    pub(super) fn check_reference(&self, inputs: &[Option<ValueType>]) -> Result<(), TypeError> {
        let get = |i: usize| inputs.get(i).and_then(Option::as_ref);
        if let Some(ci) = self.residual.as_ref().and_then(|r| r.reference)
            && let (Some(ValueType::Tensor(xt)), Some(ValueType::Tensor(rt))) =
                (get(0), get(2 + ci))
            && unify_types(xt, rt).is_none()
        {
            return Err(TypeError::input(
                2 + ci,
                format!(
                    "`residual_reference = \"{}\"` must have the type of `x` ({xt}): it is the x₀ the residual points to; found {rt}",
                    self.net.signature().inputs[self.conditions[ci]].name
                ),
            ));
        }
        Ok(())
    }
}

/// Residual CFG's p₀ at a call on `x` at `level` (flow σ, ᾱ): the output
/// whose x₀ estimate is `reference` (zeros when `None`) — its ε estimate
/// is the virtual residual noise from the reference to `x`.
fn residual_prediction(
    readout: Readout,
    x: &Tensor,
    reference: Option<&Tensor>,
    (sigma, alpha): (f64, f64),
) -> Result<Tensor, NodeError> {
    let degenerate = if readout.is_vp() {
        alpha >= 1.0
    } else {
        sigma <= 0.0
    };
    if degenerate {
        return Err(NodeError::new(format!(
            "residual guidance at noise level σ = {sigma}: no noise to take a residual of"
        )));
    }
    let xs = x.host_f32()?;
    let zeros;
    let r = match reference {
        Some(r) if r.shape() == x.shape() => r.host_f32()?,
        Some(r) => {
            return Err(NodeError::new(format!(
                "`residual_reference` is {} but x is {}",
                r.tensor_type(),
                x.tensor_type()
            )));
        }
        None => {
            zeros = vec![0.0; xs.len()];
            &zeros
        }
    };
    let y = xs
        .iter()
        .zip(r)
        .map(|(&xv, &rv)| readout.prediction(f64::from(xv), f64::from(rv), sigma, alpha) as f32)
        .collect();
    Ok(Tensor::from_f32(x.shape(), y)?)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    #[test]
    fn nested_multi_condition_guidance_batched_or_not() {
        for batch in [true, false] {
            let model = dit(batch);
            let node = build_with(
                &Denoiser,
                vec![
                    ("model", ParamValue::ModelRef("m".into())),
                    ("guidance", guidance(&[("text", 5.0), ("action", 2.0)])),
                ],
                vec![("m", model.clone())],
            )
            .unwrap();
            // p0 = x + t (no conditions); p1 = p0 + 10; p2 = p1 + 100
            // p = p0 + 5·10 + 2·100
            let got = eval(&*node, 1.0, 1.0);
            assert!((got[0] - (1.5 + 50.0 + 200.0)).abs() < 1e-4, "{got:?}");
            let calls = model.calls.lock().unwrap().clone();
            if batch {
                assert_eq!(calls, vec![vec![3, 2]], "three passes stacked in one call");
            } else {
                assert_eq!(calls.len(), 3);
            }
        }
    }

    #[test]
    fn guidance_interval_runs_one_conditional_pass_outside_it() {
        for batch in [true, false] {
            let model = dit(batch);
            let node = guided(
                &model,
                vec![("guidance_interval", ParamValue::FloatList(vec![0.5, 0.8]))],
            );
            // σ = 0.9: outside; the conditional prediction, one pass.
            let got = eval_at(&*node, 900.0, 1.0, 1.0);
            assert_eq!(got, vec![1.0 + 0.9 + 110.0, 2.0 + 0.9 + 110.0]);
            assert_eq!(model.calls.lock().unwrap().clone(), vec![vec![1, 2]]);
            // σ = 0.5 and 0.8 (the ends): inside; p0 + 5·(p1 − p0), two passes.
            for t in [500.0, 800.0] {
                model.calls.lock().unwrap().clear();
                let got = eval_at(&*node, t, 1.0, 1.0);
                let p0 = 1.0 + t / 1000.0 + 100.0;
                assert!((got[0] - (p0 + 5.0 * 10.0)).abs() < 1e-4, "{got:?}");
                let calls = model.calls.lock().unwrap().clone();
                if batch {
                    assert_eq!(calls, vec![vec![2, 2]], "two passes stacked");
                } else {
                    assert_eq!(calls.len(), 2);
                }
            }
        }
    }

    #[test]
    fn guidance_interval_on_a_vp_model_reads_the_flow_sigma_of_its_level() {
        let model = fake(
            &["x:f32:1,2", "t:f32:1", "text:f32:1,3"],
            &["epsilon:f32:1,2"],
            &[
                ("wgraph.role", "denoiser"),
                ("wgraph.prediction", "epsilon"),
                ("wgraph.schedule", "scaled_linear"),
                ("wgraph.beta_start", "0.00085"),
                ("wgraph.beta_end", "0.012"),
            ],
            |ins| vec![ins[0].clone()],
        );
        let node = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("guidance", guidance(&[("text", 2.0)])),
                ("guidance_interval", ParamValue::FloatList(vec![0.0, 0.5])),
            ],
            vec![("m", model.clone())],
        )
        .unwrap();
        let run = |t: f32| {
            model.calls.lock().unwrap().clear();
            let settings = Settings::default();
            let mut none = NoCallees;
            let mut cx = TickContext::new(0, &settings, &mut none);
            let mut state = node.init_state().unwrap();
            let ins = [
                Some(Tensor::from_f32(&[1, 2], vec![1.0, 2.0]).unwrap().into()),
                Some(Tensor::from_f32(&[1], vec![t]).unwrap().into()),
                Some(Tensor::full_f32(&[1, 3], 1.0).unwrap().into()),
            ];
            node.eval(&mut state, &ins, &mut cx).unwrap();
            model.calls.lock().unwrap().len()
        };
        // ᾱ at t = 999 is 0.0047 (flow σ 0.94): outside; t = 300 (ᾱ 0.58, σ 0.46): inside.
        let table = alphas_cumprod(0.00085, 0.012, 1000, true);
        assert!(flow_sigma_of_alpha(table[999]) > 0.9);
        assert!(flow_sigma_of_alpha(table[300]) < 0.5);
        assert_eq!(run(999.0), 1);
        assert_eq!(run(300.0), 2);
        // Fractional timesteps: ᾱ linear between the integer ones.
        let a = alpha_at(&table, 300.25);
        assert!((a - (0.75 * table[300] + 0.25 * table[301])).abs() < 1e-12);
    }

    #[test]
    fn residual_guidance_replaces_the_unconditional_pass() {
        for batch in [true, false] {
            let model = dit(batch);
            let node = guided(
                &model,
                vec![("guidance_mode", ParamValue::Choice("residual".into()))],
            );
            // p0 = the velocity toward x0 = 0: (x − 0)/σ = [2, 4] at σ = 0.5;
            // p1 = x + 0.5 + 110; p = p0 + 5·(p1 − p0).
            let got = eval_at(&*node, 500.0, 1.0, 1.0);
            let want = [2.0 + 5.0 * (111.5 - 2.0), 4.0 + 5.0 * (112.5 - 4.0)];
            assert!((got[0] - want[0]).abs() < 1e-3, "{got:?}");
            assert!((got[1] - want[1]).abs() < 1e-3, "{got:?}");
            assert_eq!(
                model.calls.lock().unwrap().clone(),
                vec![vec![1, 2]],
                "one pass instead of two"
            );
        }
        // Two conditions: p1 and p2 are run (stacked), p0 is the residual.
        let model = dit(true);
        let node = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("guidance", guidance(&[("text", 5.0), ("action", 2.0)])),
                ("guidance_mode", ParamValue::Choice("residual".into())),
            ],
            vec![("m", model.clone())],
        )
        .unwrap();
        let got = eval_at(&*node, 500.0, 1.0, 1.0);
        // p1 = x + 0.5 + 10, p2 = p1 + 100
        let want = 2.0 + 5.0 * (11.5 - 2.0) + 2.0 * 100.0;
        assert!((got[0] - want).abs() < 1e-3, "{got:?}");
        assert_eq!(model.calls.lock().unwrap().clone(), vec![vec![2, 2]]);
    }

    #[test]
    fn cheaper_guidance_parameters_are_checked() {
        let model = dit(true);
        let err = |extra: Vec<(&'static str, ParamValue)>, with_guidance: bool| {
            let mut params = vec![("model", ParamValue::ModelRef("m".into()))];
            if with_guidance {
                params.push(("guidance", guidance(&[("text", 5.0)])));
            }
            params.extend(extra);
            let e = build_with(&Denoiser, params, vec![("m", model.clone())])
                .err()
                .unwrap();
            format!("{}: {}", e.param.unwrap_or_default(), e.message)
        };
        let interval = |v: Vec<f64>| vec![("guidance_interval", ParamValue::FloatList(v))];
        let residual = ("guidance_mode", ParamValue::Choice("residual".into()));
        let cases = [
            (
                err(interval(vec![0.8, 0.2]), true),
                "needs 0 <= lo <= hi <= 1",
            ),
            (err(interval(vec![0.2, 1.5]), true), "found [0.2, 1.5]"),
            (err(interval(vec![0.2]), true), "found 1 numbers"),
            (err(interval(vec![0.2, 0.8]), false), "which is not set"),
            (
                err(vec![residual.clone()], false),
                "guidance_mode: `guidance_mode = residual` replaces a pass",
            ),
            (
                err(
                    vec![("residual_reference", ParamValue::Str("ctx".into()))],
                    true,
                ),
                "`ctx` is not a condition of the model",
            ),
            (
                err(
                    vec![
                        residual.clone(),
                        ("residual_reference", ParamValue::Str("ctx".into())),
                    ],
                    true,
                ),
                "`ctx` is not a condition of the model (conditions: text, action)",
            ),
        ];
        for (got, want) in cases {
            assert!(got.contains(want), "{got}");
        }
        // The reference must have x's type.
        let node = guided(
            &model,
            vec![
                residual,
                ("residual_reference", ParamValue::Str("text".into())),
            ],
        );
        let types = [
            Some(ValueType::tensor(DType::F32, &[1, 2])),
            Some(ValueType::tensor(DType::F32, &[1])),
            Some(ValueType::tensor(DType::F32, &[1, 3])),
            Some(ValueType::tensor(DType::F32, &[1, 1])),
        ];
        let e = node.infer(&types, &mut NoInferCalls).unwrap_err();
        assert_eq!(e.input, Some(2));
        assert!(
            e.message.contains("must have the type of `x` (f32[1, 2])"),
            "{}",
            e.message
        );
    }

    #[test]
    fn guidance_must_name_conditions() {
        let e = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("guidance", guidance(&[("txt", 5.0)])),
            ],
            vec![("m", dit(true))],
        )
        .err()
        .unwrap();
        assert_eq!(e.param.as_deref(), Some("guidance"));
        assert!(
            e.message
                .contains("`txt` is not a condition of `m` (conditions: text, action)"),
            "{}",
            e.message
        );
    }
}
