//! `controlnet`: a denoiser steered by a ControlNet branch — a second model
//! maps (`x`, `t`, `hint`) to a residual that is scaled by `scale` and fed
//! to the base model's `control` input (Yan-Edit's depth-conditioned
//! renderer). Everything else (guidance, windows, `max_batch`) is the
//! `denoiser`'s; the `hint` is the node's last input.

use super::guidance::{GUIDANCE_INTERVAL, GUIDANCE_MODE, RESIDUAL_REFERENCE};
use super::window::{CHAIN, CHAIN_LEVEL};
use super::{DenoiserNode, MAX_BATCH, model_network};
use crate::common::*;
use crate::models::io::{resolved_outputs, run_model, unify_port};
use std::sync::Arc;
use wgraph_engine::model::Model;
use wgraph_engine::types::Bindings;

/// A denoiser steered by a ControlNet branch on a `hint` (e.g. depth latents).
pub struct ControlNet;

const CONTROLNET_PARAMS: &[ParamSpec] = &[
    ParamSpec::required(
        "model",
        ParamType::ModelRef,
        "the base denoiser, with a `control` input",
    ),
    ParamSpec::required(
        "control_model",
        ParamType::ModelRef,
        "the ControlNet branch: (x, t, hint) → control",
    ),
    ParamSpec::optional(
        "scale",
        ParamType::Float,
        ParamDefault::Float(1.0),
        "control strength",
    ),
    ParamSpec::optional(
        "guidance",
        ParamType::Record,
        ParamDefault::Absent,
        "classifier-free guidance: { condition = scale, ... }",
    ),
    GUIDANCE_INTERVAL,
    GUIDANCE_MODE,
    RESIDUAL_REFERENCE,
    CHAIN,
    CHAIN_LEVEL,
    MAX_BATCH,
];

impl NodeKind for ControlNet {
    fn name(&self) -> &'static str {
        "controlnet"
    }
    fn summary(&self) -> &'static str {
        "a denoiser plus a ControlNet branch on a wired `hint`, scaled by `scale` (Yan-Edit renderer)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        CONTROLNET_PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let control = cx.model("control_model")?;
        let name = cx.params.model_ref("control_model")?;
        let role = control.signature().meta("wgraph.role");
        if role != Some("controlnet") {
            return Err(BuildError::param(
                "control_model",
                format!(
                    "model `{name}` has role `{}`; `control_model` needs a controlnet",
                    role.unwrap_or("none")
                ),
            ));
        }
        let sig = control.signature();
        let find = |n: &str| {
            sig.input(n).map(|(i, _)| i).ok_or_else(|| {
                BuildError::param(
                    "control_model",
                    format!("controlnet `{name}` has no input `{n}` (needs x, t, hint)"),
                )
            })
        };
        let branch = ControlBranch {
            x: find("x")?,
            t: find("t")?,
            hint: find("hint")?,
            n_inputs: sig.inputs.len(),
            scale: finite_param(cx, "scale")? as f32,
            model: Arc::clone(&control),
            name,
        };
        if branch.n_inputs != 3 || sig.outputs.len() != 1 {
            return Err(BuildError::param(
                "control_model",
                "a controlnet takes exactly (x, t, hint) and gives one output",
            ));
        }
        let net = model_network(cx, "controlnet")?;
        Ok(Box::new(DenoiserNode::build(
            cx,
            Box::new(net),
            Some(branch),
        )?))
    }
}

/// The ControlNet model and where its inputs are.
pub(super) struct ControlBranch {
    pub(super) model: Arc<dyn Model>,
    name: String,
    x: usize,
    t: usize,
    hint: usize,
    n_inputs: usize,
    scale: f32,
}

impl DenoiserNode {
    /// Node input index of the control hint.
    pub(super) fn hint_input(&self) -> usize {
        2 + self.conditions.len()
    }

    /// The branch's residual for a call, scaled by `scale`.
    pub(super) fn control_residual(
        &self,
        x: &Tensor,
        t: &Tensor,
        hint: &Tensor,
    ) -> Result<Tensor, NodeError> {
        let Some(c) = &self.control else {
            return Err(NodeError::new("internal: no control branch"));
        };
        let mut inputs = vec![x.clone(); c.n_inputs];
        inputs[c.t] = t.clone();
        inputs[c.hint] = hint.clone();
        inputs[c.x] = x.clone();
        let out = run_model(&*c.model, &c.name, &inputs)?;
        let residual = out
            .into_iter()
            .next()
            .ok_or_else(|| NodeError::new("controlnet gave no output"))?;
        let data: Vec<f32> = residual.host_f32()?.iter().map(|v| v * c.scale).collect();
        Ok(Tensor::from_f32(residual.shape(), data)?)
    }

    /// The build-time check of the branch: (x, t, hint) fit the
    /// controlnet, and its output fits the base model's `control` input
    /// (unified into `b`, the base model's bindings).
    pub(super) fn infer_control(
        &self,
        inputs: &[Option<ValueType>],
        b: &mut Bindings,
    ) -> Result<(), TypeError> {
        let (Some(c), Some(ci)) = (&self.control, self.control_input) else {
            return Ok(());
        };
        let get = |i: usize| inputs.get(i).and_then(Option::as_ref);
        let sig = self.net.signature();
        let csig = c.model.signature();
        let mut cb = Bindings::new();
        unify_port(&mut cb, &csig.inputs[c.x], 0, get(0))?;
        unify_port(&mut cb, &csig.inputs[c.t], 1, get(1))?;
        unify_port(
            &mut cb,
            &csig.inputs[c.hint],
            self.hint_input(),
            get(self.hint_input()),
        )?;
        let residual = resolved_outputs(&*c.model, &cb)?.swap_remove(0);
        b.unify(
            &sig.inputs[ci].ty,
            residual
                .as_tensor()
                .ok_or_else(|| TypeError::node("controlnet output is not a tensor"))?,
        )
        .map_err(|why| {
            TypeError::node(format!(
                "controlnet `{}` gives {residual} but `{}` takes `control` as {}: {why}",
                c.name, self.model_name, sig.inputs[ci].ty
            ))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    #[test]
    fn controlnet_residual_is_scaled_into_the_control_input() {
        let base = fake(
            &["x:f32:batch,2", "t:f32:batch", "control:f32:batch,2"],
            &["velocity:f32:batch,2"],
            &[
                ("wgraph.role", "denoiser"),
                ("wgraph.prediction", "velocity"),
            ],
            |ins| {
                let (x, c) = (ins[0].host_f32().unwrap(), ins[2].host_f32().unwrap());
                vec![
                    Tensor::from_f32(
                        ins[0].shape(),
                        x.iter().zip(c).map(|(a, b)| a + b).collect(),
                    )
                    .unwrap(),
                ]
            },
        );
        let cn = fake(
            &["x:f32:batch,2", "t:f32:batch", "hint:f32:batch,2"],
            &["control:f32:batch,2"],
            &[("wgraph.role", "controlnet")],
            |ins| vec![ins[2].clone()],
        );
        let node = build_with(
            &ControlNet,
            vec![
                ("model", ParamValue::ModelRef("b".into())),
                ("control_model", ParamValue::ModelRef("c".into())),
                ("scale", ParamValue::Float(0.5)),
            ],
            vec![("b", base), ("c", cn)],
        )
        .unwrap();
        assert_eq!(node.inputs().last().unwrap().name, "hint");
        let settings = Settings::default();
        let mut none = NoCallees;
        let mut cx = TickContext::new(0, &settings, &mut none);
        let mut state = node.init_state().unwrap();
        let ins = [
            Some(Tensor::from_f32(&[1, 2], vec![1.0, 2.0]).unwrap().into()),
            Some(Tensor::from_f32(&[1], vec![10.0]).unwrap().into()),
            Some(Tensor::from_f32(&[1, 2], vec![4.0, 8.0]).unwrap().into()),
        ];
        let out = node.eval(&mut state, &ins, &mut cx).unwrap();
        assert_eq!(out[0].as_tensor().unwrap().host_f32().unwrap(), &[3.0, 6.0]);
    }
}
