//! `concat`: joins two f32 tensors along one axis — e.g. Yume's I2V
//! conditioning, `[mask ; start latent]` on the channel axis (1).
//!
//! `a` and `b` have the same rank and equal dimensions except on `axis`;
//! the output's `axis` dimension is the sum. A negative `axis` counts from
//! the end (−1 is the last), as in NumPy.

use crate::common::*;

/// The `concat` kind.
pub struct Concat;

impl NodeKind for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn summary(&self) -> &'static str {
        "joins `a` and `b` along `axis` (Yume's I2V conditioning: [mask ; start latent] on channels)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[ParamSpec::optional(
            "axis",
            ParamType::Int,
            ParamDefault::Int(1),
            "the axis to join along (negative: from the end)",
        )];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(ConcatNode {
            axis: cx.params.int("axis")?,
        }))
    }
}

struct ConcatNode {
    axis: i64,
}

impl ConcatNode {
    /// The axis as an index into a shape of `rank` dimensions.
    fn axis_of(&self, rank: usize) -> Option<usize> {
        let r = i64::try_from(rank).ok()?;
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        usize::try_from(a).ok().filter(|&a| a < rank)
    }
}

impl Node for ConcatNode {
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
        let rank = a.shape.len();
        let axis = self.axis_of(rank).ok_or_else(|| {
            TypeError::input(
                0,
                format!(
                    "`axis = {}` is out of range for {a} ({rank} dimensions)",
                    self.axis
                ),
            )
        })?;
        // `b` must match `a` everywhere but on `axis`.
        let mut pattern = a.clone();
        pattern.shape[axis] = Dim::Sym("*".into());
        let want = if rank == 1 {
            "an f32 tensor of rank 1".to_string()
        } else {
            let dims: Vec<String> = pattern.shape.iter().map(ToString::to_string).collect();
            format!("f32[{}] (`a` but for axis {axis})", dims.join(", "))
        };
        let b = tensor_in(inputs, 1, &want, |b| unify_types(&pattern, b).is_some())?;
        let mut out = unify_types(&pattern, b).unwrap_or(pattern);
        out.shape[axis] = match (&a.shape[axis], &b.shape[axis]) {
            (Dim::Known(m), Dim::Known(n)) => Dim::Known(m + n),
            (m, n) => Dim::Sym(format!("{m}+{n}")),
        };
        Ok(vec![ValueType::Tensor(out)])
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let (a, b) = (tensor_arg(inputs, 0)?, tensor_arg(inputs, 1)?);
        let (sa, sb) = (a.shape(), b.shape());
        let mismatch = || {
            NodeError::new(format!(
                "cannot join {} and {} along axis {}",
                a.tensor_type(),
                b.tensor_type(),
                self.axis
            ))
        };
        let axis = self.axis_of(sa.len()).ok_or_else(mismatch)?;
        let same_elsewhere = sa.len() == sb.len()
            && sa
                .iter()
                .zip(sb)
                .enumerate()
                .all(|(i, (m, n))| i == axis || m == n);
        if !same_elsewhere {
            return Err(mismatch());
        }
        let (x, y) = (a.host_f32()?, b.host_f32()?);
        let inner: usize = sa[axis + 1..].iter().product();
        let (ca, cb) = (sa[axis] * inner, sb[axis] * inner);
        let outer: usize = sa[..axis].iter().product();
        let mut out = Vec::with_capacity(x.len() + y.len());
        for o in 0..outer {
            out.extend_from_slice(&x[o * ca..(o + 1) * ca]);
            out.extend_from_slice(&y[o * cb..(o + 1) * cb]);
        }
        let mut shape = sa.to_vec();
        shape[axis] += sb[axis];
        f32_out(&shape, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    fn join(axis: i64, a: Value, b: Value) -> (Vec<usize>, Vec<f32>) {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Concat, vec![("axis", P::Int(axis))], dir.path()).unwrap();
        let out = run(&*node, 1, |_| vec![a.clone(), b.clone()]).unwrap();
        let t = out[0].0[0].as_tensor().unwrap();
        (t.shape().to_vec(), t.host_f32().unwrap().to_vec())
    }

    #[test]
    fn joins_channels_and_other_axes() {
        // [1, 1, 2, 2] mask ; [1, 2, 2, 2] latent → [1, 3, 2, 2].
        let mask = t32(&[1, 1, 2, 2], vec![1.0; 4]);
        let lat = t32(&[1, 2, 2, 2], (0..8).map(|i| i as f32).collect());
        let (shape, data) = join(1, mask, lat);
        assert_eq!(shape, [1, 3, 2, 2]);
        assert_eq!(data, [1., 1., 1., 1., 0., 1., 2., 3., 4., 5., 6., 7.]);
        let a = t32(&[2, 2], vec![1., 2., 3., 4.]);
        let b = t32(&[2, 1], vec![9., 8.]);
        assert_eq!(
            join(-1, a.clone(), b),
            (vec![2, 3], vec![1., 2., 9., 3., 4., 8.])
        );
        let c = t32(&[1, 2], vec![5., 6.]);
        assert_eq!(join(0, a, c), (vec![3, 2], vec![1., 2., 3., 4., 5., 6.]));
    }

    #[test]
    fn infer_checks_rank_dims_and_axis() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Concat, vec![], dir.path()).unwrap();
        let f = |s: &[usize]| ValueType::tensor(DType::F32, s);
        assert_eq!(
            infer(&*node, &[f(&[1, 4, 8, 8]), f(&[1, 16, 8, 8])]).unwrap(),
            [f(&[1, 20, 8, 8])]
        );
        let e = infer(&*node, &[f(&[1, 4, 8, 8]), f(&[1, 16, 8, 4])]).unwrap_err();
        assert_eq!(
            (e.input, e.message.as_str()),
            (
                Some(1),
                "expected f32[1, *, 8, 8] (`a` but for axis 1), found f32[1, 16, 8, 4]"
            )
        );
        assert!(infer(&*node, &[f(&[1, 4, 8, 8]), f(&[1, 4, 8])]).is_err());
        let e = infer(&*node, &[f(&[4]), f(&[4])]).unwrap_err();
        assert_eq!(
            (e.input, e.message.as_str()),
            (
                Some(0),
                "`axis = 1` is out of range for f32[4] (1 dimensions)"
            )
        );
        let e = infer(
            &*node,
            &[ValueType::tensor(DType::I64, &[1, 2]), f(&[1, 2])],
        )
        .unwrap_err();
        assert_eq!(e.message, "expected an f32 tensor, found i64[1, 2]");
        let sym = ValueType::Tensor(TensorType {
            dtype: DType::F32,
            shape: vec![Dim::Known(1), Dim::Sym("c".into())],
        });
        let out = infer(&*node, &[sym, f(&[1, 3])]).unwrap();
        assert_eq!(out[0].to_string(), "f32[1, c+3]");
        // Data that disagrees with the types is an error, not a panic.
        let settings = wgraph_engine::settings::Settings::default();
        let mut none = wgraph_engine::node::NoCallees;
        let mut cx = TickContext::new(0, &settings, &mut none);
        let ins = [
            Some(t32(&[1, 2], vec![0.0; 2])),
            Some(t32(&[2, 2], vec![0.0; 4])),
        ];
        let e = node.eval(&mut node.init_state().unwrap(), &ins, &mut cx);
        assert_eq!(
            e.unwrap_err().message,
            "cannot join f32[1, 2] and f32[2, 2] along axis 1"
        );
    }
}
