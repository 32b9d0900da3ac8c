//! `start_then`: `start` on tick 0, `then` on every later tick — seeds a
//! loop with a first value, e.g. the context latent of Yume's I2V
//! conditioning starts as the encoded start frame and then follows the
//! sampler:
//!
//! ```text
//! enc.latent -> ctx.start
//! feedback sampler.latent -> ctx.then init zeros(...)
//! ```
//!
//! Both inputs carry the same type (tensors, text or actions); `then` is
//! ignored on tick 0 (so a feedback's `init` value never shows).

use crate::common::*;

/// The `start_then` kind.
pub struct StartThen;

impl NodeKind for StartThen {
    fn name(&self) -> &'static str {
        "start_then"
    }
    fn summary(&self) -> &'static str {
        "`start` on tick 0, `then` afterwards: seeds a feedback loop (I2V context from the start frame)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        &[]
    }
    fn build(&self, _: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(StartThenNode))
    }
}

struct StartThenNode;

impl Node for StartThenNode {
    /// It only chooses which tensor goes on: a latent on the GPU stays there.
    fn accepts_device_inputs(&self) -> bool {
        true
    }

    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("start"), PortSpec::wired("then")]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("out")]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let missing = |i: usize, what: &str| {
            TypeError::input(i, format!("expected {what}, but nothing is connected"))
        };
        let start = inputs
            .first()
            .and_then(Option::as_ref)
            .ok_or_else(|| missing(0, "a value"))?;
        let want = format!("{start} (the type of `start`)");
        let then = inputs
            .get(1)
            .and_then(Option::as_ref)
            .ok_or_else(|| missing(1, &want))?;
        let out = match (start, then) {
            (ValueType::Tensor(a), ValueType::Tensor(b)) => {
                unify_types(a, b).map(ValueType::Tensor)
            }
            (a, b) => (a == b).then(|| a.clone()),
        };
        out.map(|t| vec![t])
            .ok_or_else(|| TypeError::input(1, format!("expected {want}, found {then}")))
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let i = usize::from(cx.tick > 0);
        match inputs.get(i) {
            Some(Some(v)) => Ok(vec![v.clone()]),
            _ => Err(NodeError::new(format!(
                "input `{}`: no value",
                ["start", "then"][i]
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;

    #[test]
    fn start_once_then_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&StartThen, vec![], dir.path()).unwrap();
        let out = run(&*node, 3, |t| {
            vec![
                t32(&[1, 2], vec![7.0, 7.0]),
                t32(&[1, 2], vec![t as f32; 2]),
            ]
        })
        .unwrap();
        assert_eq!(f32s(&out[0].0, 0), [7.0, 7.0]);
        assert_eq!(f32s(&out[1].0, 0), [1.0, 1.0]);
        assert_eq!(f32s(&out[2].0, 0), [2.0, 2.0]);
        let text = |s: &str| Value::Text(s.into());
        let out = run(&*node, 2, |_| vec![text("a"), text("b")]).unwrap();
        assert_eq!((&out[0].0[0], &out[1].0[0]), (&text("a"), &text("b")));
    }

    #[test]
    fn infer_needs_one_type() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&StartThen, vec![], dir.path()).unwrap();
        let f = |s: &[usize]| ValueType::tensor(DType::F32, s);
        assert_eq!(
            infer(&*node, &[f(&[1, 4]), f(&[1, 4])]).unwrap(),
            [f(&[1, 4])]
        );
        let sym = ValueType::Tensor(TensorType {
            dtype: DType::F32,
            shape: vec![Dim::Known(1), Dim::Sym("n".into())],
        });
        assert_eq!(infer(&*node, &[sym, f(&[1, 4])]).unwrap(), [f(&[1, 4])]);
        let e = infer(&*node, &[f(&[1, 4]), f(&[1, 5])]).unwrap_err();
        assert_eq!(
            (e.input, e.message.as_str()),
            (
                Some(1),
                "expected f32[1, 4] (the type of `start`), found f32[1, 5]"
            )
        );
        let e = infer(&*node, &[ValueType::Text, f(&[1])]).unwrap_err();
        assert_eq!(
            e.message,
            "expected text (the type of `start`), found f32[1]"
        );
        let e = node.infer(
            &[Some(ValueType::Text), None],
            &mut wgraph_engine::node::NoInferCalls,
        );
        assert_eq!(
            e.unwrap_err().message,
            "expected text (the type of `start`), but nothing is connected"
        );
    }
}
