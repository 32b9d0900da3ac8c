//! `scale` and `clamp`: elementwise maps of one f32 tensor `x`.

use crate::common::*;

/// The `scale` kind: `x * factor + offset`.
pub struct Scale;

impl NodeKind for Scale {
    fn name(&self) -> &'static str {
        "scale"
    }
    fn summary(&self) -> &'static str {
        "x * factor + offset, elementwise"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "factor",
                ParamType::Float,
                ParamDefault::Float(1.0),
                "multiplier",
            ),
            ParamSpec::optional(
                "offset",
                ParamType::Float,
                ParamDefault::Float(0.0),
                "added after scaling",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let (factor, offset) = (
            finite_param(cx, "factor")? as f32,
            finite_param(cx, "offset")? as f32,
        );
        Ok(Box::new(UnaryNode(Box::new(move |v| v * factor + offset))))
    }
}

/// The `clamp` kind: limits values to [min, max] (NaN becomes `min`).
pub struct Clamp;

impl NodeKind for Clamp {
    fn name(&self) -> &'static str {
        "clamp"
    }
    fn summary(&self) -> &'static str {
        "x limited to [min, max], elementwise"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "min",
                ParamType::Float,
                ParamDefault::Float(-1.0),
                "lower bound",
            ),
            ParamSpec::optional(
                "max",
                ParamType::Float,
                ParamDefault::Float(1.0),
                "upper bound (>= min)",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let (min, max) = (
            finite_param(cx, "min")? as f32,
            finite_param(cx, "max")? as f32,
        );
        if min > max {
            return Err(BuildError::param(
                "max",
                format!("`max` ({max}) is below `min` ({min})"),
            ));
        }
        Ok(Box::new(UnaryNode(Box::new(move |v: f32| {
            v.max(min).min(max)
        }))))
    }
}

struct UnaryNode(Box<dyn Fn(f32) -> f32 + Send + Sync>);

impl Node for UnaryNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("x")]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("out")]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        Ok(vec![ValueType::Tensor(f32_in(inputs, 0)?.clone())])
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let x = tensor_arg(inputs, 0)?;
        f32_out(
            x.shape(),
            x.host_f32()?.iter().map(|&v| (self.0)(v)).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    #[test]
    fn scale_and_clamp() {
        let dir = tempfile::tempdir().unwrap();
        let x = t32(&[4], vec![-3., 0., 0.5, f32::NAN]);
        let params = vec![("factor", P::Float(2.0)), ("offset", P::Int(1))];
        let node = build(&Scale, params, dir.path()).unwrap();
        let out = f32s(&run(&*node, 1, |_| vec![x.clone()]).unwrap()[0].0, 0);
        assert_eq!(out[..3], [-5., 1., 2.]);
        let node = build(&Clamp, vec![], dir.path()).unwrap();
        assert_eq!(
            f32s(&run(&*node, 1, |_| vec![x.clone()]).unwrap()[0].0, 0),
            [-1., 0., 0.5, -1.]
        );
        let bad = vec![("min", P::Float(2.0)), ("max", P::Float(1.0))];
        assert_eq!(
            build(&Clamp, bad, dir.path()).unwrap_err().param.as_deref(),
            Some("max")
        );
        let e = infer(&*node, &[ValueType::Actions]).unwrap_err();
        assert_eq!(e.message, "expected an f32 tensor, found actions");
    }
}
