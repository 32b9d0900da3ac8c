//! `constant`: a tensor filled with one value.

use crate::common::*;

/// The `constant` kind.
pub struct Constant;

impl NodeKind for Constant {
    fn name(&self) -> &'static str {
        "constant"
    }
    fn summary(&self) -> &'static str {
        "an f32 tensor of one value, the same every tick"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::required("shape", ParamType::Shape, "the tensor's shape"),
            ParamSpec::optional(
                "value",
                ParamType::Float,
                ParamDefault::Float(0.0),
                "every element",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let shape = shape_param(cx, "shape")?;
        let value = finite_param(cx, "value")? as f32;
        let tensor = Tensor::full_f32(&shape, value)
            .map_err(|e| BuildError::param("shape", e.to_string()))?;
        Ok(Box::new(ConstantNode(tensor)))
    }
}

struct ConstantNode(Tensor);

impl Node for ConstantNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("out")]
    }
    fn infer(
        &self,
        _: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        Ok(vec![ValueType::Tensor(self.0.tensor_type())])
    }
    fn output_set_by(&self, _port: usize) -> Option<&'static str> {
        Some("shape")
    }
    fn eval(
        &self,
        _: &mut State,
        _: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        Ok(vec![self.0.clone().into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    #[test]
    fn fills_the_shape() {
        let dir = tempfile::tempdir().unwrap();
        let params = vec![("shape", P::Shape(vec![2, 3])), ("value", P::Float(0.5))];
        let node = build(&Constant, params, dir.path()).unwrap();
        let out = run(&*node, 2, |_| vec![]).unwrap();
        assert_eq!(out[1].0[0], t32(&[2, 3], vec![0.5; 6]));
        let huge = vec![("shape", P::Shape(vec![usize::MAX, 2]))];
        assert!(build(&Constant, huge, dir.path()).is_err());
    }
}
