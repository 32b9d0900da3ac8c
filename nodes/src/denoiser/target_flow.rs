//! `target_flow`: the exact rectified-flow velocity toward a known clean
//! sample, a ground-truth denoiser for testing samplers and benchmarks.
//!
//! On the path `x = (1 - σ)·target + σ·noise` the velocity is
//! `dx/dσ = noise - target = (x - target) / σ`. The output is named
//! `velocity`, which is how samplers (`euler`) recognise a velocity
//! predictor.

use crate::common::*;

/// The `target_flow` kind.
pub struct TargetFlow;

impl NodeKind for TargetFlow {
    fn name(&self) -> &'static str {
        "target_flow"
    }
    fn summary(&self) -> &'static str {
        "denoiser stand-in: velocity (x - target) / σ toward a known target, with t = 1000·σ"
    }
    fn params(&self) -> &'static [ParamSpec] {
        &[]
    }
    fn build(&self, _: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(TargetFlowNode))
    }
}

struct TargetFlowNode;

/// σ below this is treated as this (the velocity stays finite at σ = 0).
const MIN_SIGMA: f32 = 1e-6;

impl Node for TargetFlowNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![
            PortSpec::call("x"),
            PortSpec::call("t"),
            PortSpec::wired("target"),
        ]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("velocity")]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let x = f32_in(inputs, 0)?;
        let one = |t: &TensorType| {
            t.dtype == DType::F32
                && t.known_shape()
                    .is_some_and(|s| s.iter().product::<usize>() == 1)
        };
        tensor_in(inputs, 1, "an f32[1] timestep", one)?;
        let target = tensor_in(inputs, 2, &format!("{x} (the type of `x`)"), |t| {
            unify_types(x, t).is_some()
        })?;
        Ok(vec![ValueType::Tensor(
            unify_types(x, target).unwrap_or_else(|| x.clone()),
        )])
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let (x, t, target) = (
            tensor_arg(inputs, 0)?,
            tensor_arg(inputs, 1)?,
            tensor_arg(inputs, 2)?,
        );
        let [t] = *t.host_f32()? else {
            return Err(NodeError::new(format!(
                "`t` must hold one value, found {}",
                t.tensor_type()
            )));
        };
        if x.shape() != target.shape() {
            return Err(NodeError::new(format!(
                "`target` is {} but `x` is {}",
                target.tensor_type(),
                x.tensor_type()
            )));
        }
        let sigma = (t / 1000.0).max(MIN_SIGMA);
        let v = x
            .host_f32()?
            .iter()
            .zip(target.host_f32()?)
            .map(|(&a, &b)| (a - b) / sigma);
        f32_out(x.shape(), v.collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;

    #[test]
    fn velocity_points_from_target() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&TargetFlow, vec![], dir.path()).unwrap();
        assert_eq!(node.outputs(), [PortSpec::output("velocity")]);
        let ins = |t: f32| {
            vec![
                t32(&[2], vec![1.0, 3.0]),
                t32(&[1], vec![t]),
                t32(&[2], vec![0.0, 1.0]),
            ]
        };
        assert_eq!(
            f32s(&run(&*node, 1, |_| ins(500.0)).unwrap()[0].0, 0),
            [2.0, 4.0]
        );
        assert!(
            f32s(&run(&*node, 1, |_| ins(0.0)).unwrap()[0].0, 0)
                .iter()
                .all(|v| v.is_finite())
        );
        let f = |s: &[usize]| ValueType::tensor(DType::F32, s);
        let e = infer(&*node, &[f(&[2]), f(&[2]), f(&[2])]).unwrap_err();
        assert_eq!(
            (e.input, e.message.as_str()),
            (Some(1), "expected an f32[1] timestep, found f32[2]")
        );
        let e = infer(&*node, &[f(&[2]), f(&[1]), f(&[3])]).unwrap_err();
        assert_eq!(e.message, "expected f32[2] (the type of `x`), found f32[3]");
    }
}
