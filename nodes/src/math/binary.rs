//! `add`, `sub`, `mul`, `lerp`: elementwise ops on two f32 tensors `a` and
//! `b` of one shape; `b` may also be a single element (rank 0 or all ones),
//! applied to every element of `a`.

use crate::common::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
    Lerp(f32),
}

impl Op {
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Op::Add => a + b,
            Op::Sub => a - b,
            Op::Mul => a * b,
            Op::Lerp(t) => a * (1.0 - t) + b * t,
        }
    }
}

macro_rules! binary_kind {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $summary:literal, $op:expr) => {
        $(#[$doc])*
        pub struct $ty;

        impl NodeKind for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn summary(&self) -> &'static str {
                $summary
            }
            fn params(&self) -> &'static [ParamSpec] {
                &[]
            }
            fn build(&self, _: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
                Ok(Box::new(BinaryNode($op)))
            }
        }
    };
}

binary_kind!(
    /// The `add` kind.
    Add, "add", "a + b, elementwise (b may be a single element)", Op::Add
);
binary_kind!(
    /// The `sub` kind.
    Sub, "sub", "a - b, elementwise (b may be a single element)", Op::Sub
);
binary_kind!(
    /// The `mul` kind.
    Mul, "mul", "a * b, elementwise (b may be a single element)", Op::Mul
);

/// The `lerp` kind.
pub struct Lerp;

impl NodeKind for Lerp {
    fn name(&self) -> &'static str {
        "lerp"
    }
    fn summary(&self) -> &'static str {
        "a * (1 - t) + b * t, elementwise"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[ParamSpec::optional(
            "t",
            ParamType::Float,
            ParamDefault::Float(0.5),
            "weight of b",
        )];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(BinaryNode(
            Op::Lerp(finite_param(cx, "t")? as f32),
        )))
    }
}

struct BinaryNode(Op);

/// A single-element tensor type.
fn single(t: &TensorType) -> bool {
    t.shape.iter().all(|d| *d == Dim::Known(1))
}

impl Node for BinaryNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("a"), PortSpec::wired("b")]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("out")]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let a = f32_in(inputs, 0)?;
        let want = format!("{a} (the type of `a`) or a single f32 element");
        let b = tensor_in(inputs, 1, &want, |b| {
            unify_types(a, b).is_some() || (b.dtype == DType::F32 && single(b))
        })?;
        Ok(vec![ValueType::Tensor(
            unify_types(a, b).unwrap_or_else(|| a.clone()),
        )])
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let (a, b) = (tensor_arg(inputs, 0)?, tensor_arg(inputs, 1)?);
        let (x, y) = (a.host_f32()?, b.host_f32()?);
        let out = if a.shape() == b.shape() {
            x.iter().zip(y).map(|(&p, &q)| self.0.apply(p, q)).collect()
        } else if let [q] = *y {
            x.iter().map(|&p| self.0.apply(p, q)).collect()
        } else {
            return Err(NodeError::new(format!(
                "`b` is {} but `a` is {}",
                b.tensor_type(),
                a.tensor_type()
            )));
        };
        f32_out(a.shape(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    fn apply(kind: &dyn NodeKind, params: Vec<(&'static str, P)>, a: Value, b: Value) -> Vec<f32> {
        let dir = tempfile::tempdir().unwrap();
        let node = build(kind, params, dir.path()).unwrap();
        f32s(
            &run(&*node, 1, |_| vec![a.clone(), b.clone()]).unwrap()[0].0,
            0,
        )
    }

    #[test]
    fn elementwise_and_scalar_b() {
        let a = t32(&[2, 2], vec![1., 2., 3., 4.]);
        let b = t32(&[2, 2], vec![4., 3., 2., 1.]);
        assert_eq!(apply(&Add, vec![], a.clone(), b.clone()), [5.; 4]);
        assert_eq!(
            apply(&Sub, vec![], a.clone(), b.clone()),
            [-3., -1., 1., 3.]
        );
        assert_eq!(
            apply(&Mul, vec![], a.clone(), Tensor::scalar_f32(2.).into()),
            [2., 4., 6., 8.]
        );
        assert_eq!(
            apply(&Sub, vec![], a.clone(), t32(&[1, 1], vec![1.])),
            [0., 1., 2., 3.]
        );
        assert_eq!(
            apply(&Lerp, vec![("t", P::Float(0.25))], a, b),
            [1.75, 2.25, 2.75, 3.25]
        );
    }

    #[test]
    fn infer_rejects_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Add, vec![], dir.path()).unwrap();
        let f = |s: &[usize]| ValueType::tensor(DType::F32, s);
        let e = infer(&*node, &[f(&[1, 3]), f(&[3, 1])]).unwrap_err();
        assert_eq!(e.input, Some(1));
        assert_eq!(
            e.message,
            "expected f32[1, 3] (the type of `a`) or a single f32 element, found f32[3, 1]"
        );
        let e = infer(&*node, &[ValueType::tensor(DType::I64, &[1]), f(&[1])]).unwrap_err();
        assert_eq!(
            (e.input, e.message.as_str()),
            (Some(0), "expected an f32 tensor, found i64[1]")
        );
        assert!(infer(&*node, &[f(&[1, 3]), ValueType::tensor(DType::I64, &[1])]).is_err());
        assert_eq!(infer(&*node, &[f(&[2]), f(&[])]).unwrap(), [f(&[2])]);
        let sym = ValueType::Tensor(TensorType {
            dtype: DType::F32,
            shape: vec![Dim::Sym("n".into())],
        });
        assert_eq!(infer(&*node, &[sym, f(&[4])]).unwrap(), [f(&[4])]);
    }
}
