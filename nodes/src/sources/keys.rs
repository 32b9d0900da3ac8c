//! `keys`: actions as a multi-hot f32 vector (the Yan / Matrix-Game input).

use crate::common::*;

/// The `keys` kind.
pub struct Keys;

impl NodeKind for Keys {
    fn name(&self) -> &'static str {
        "keys"
    }
    fn summary(&self) -> &'static str {
        "actions as f32[1, 9] multi-hot: W A S D Left Right Up Down Space"
    }
    fn params(&self) -> &'static [ParamSpec] {
        &[]
    }
    fn build(&self, _: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(KeysNode))
    }
}

struct KeysNode;

impl Node for KeysNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("actions")]
    }
    fn input_type(&self, _port: usize) -> Option<String> {
        Some(ValueType::Actions.to_string())
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("out")]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        actions_in(inputs, 0)?;
        Ok(vec![ValueType::tensor(DType::F32, &[1, Key::ALL.len()])])
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        f32_out(
            &[1, Key::ALL.len()],
            actions_arg(inputs, 0)?.multi_hot().to_vec(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;

    #[test]
    fn multi_hot_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Keys, vec![], dir.path()).unwrap();
        let a = Actions::none().with(Key::A).with(Key::Space);
        let out = run(&*node, 1, |_| vec![Value::Actions(a)]).unwrap();
        assert_eq!(f32s(&out[0].0, 0), [0., 1., 0., 0., 0., 0., 0., 0., 1.]);
        let e = infer(&*node, &[ValueType::tensor(DType::I64, &[2])]).unwrap_err();
        assert_eq!(
            (e.input, e.message.as_str()),
            (Some(0), "expected actions, found i64[2]")
        );
    }
}
