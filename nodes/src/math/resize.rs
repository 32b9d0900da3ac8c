//! `resize`: bilinear resampling of `[N, C, H, W]` tensors (half-pixel
//! centres, like PyTorch's `interpolate(mode="bilinear", align_corners=False)`).

use crate::common::*;

/// The `resize` kind.
pub struct Resize;

impl NodeKind for Resize {
    fn name(&self) -> &'static str {
        "resize"
    }
    fn summary(&self) -> &'static str {
        "bilinear resize of f32[N, C, H, W] to [N, C, h, w]"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[ParamSpec::required(
            "size",
            ParamType::Shape,
            "the new size hxw",
        )];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        match *cx.params.shape("size")? {
            [h, w] if h > 0 && w > 0 => {
                wgraph_engine::tensor::checked_elements(&[h, w])
                    .map_err(|e| BuildError::param("size", e.to_string()))?;
                Ok(Box::new(ResizeNode { h, w }))
            }
            ref s => Err(BuildError::param(
                "size",
                format!("`size` must be two positive sides like 32x32, found {s:?}"),
            )),
        }
    }
}

struct ResizeNode {
    h: usize,
    w: usize,
}

/// For each output index along one axis: the two source indices and the
/// weight of the second.
fn taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(src - 1);
            (i0, (i0 + 1).min(src - 1), (s - i0 as f64) as f32)
        })
        .collect()
}

impl Node for ResizeNode {
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
        let x = tensor_in(inputs, 0, "f32[N, C, H, W]", |t| {
            t.dtype == DType::F32 && t.shape.len() == 4
        })?;
        let mut shape = x.shape.clone();
        shape[2] = Dim::Known(self.h);
        shape[3] = Dim::Known(self.w);
        Ok(vec![ValueType::Tensor(TensorType {
            dtype: DType::F32,
            shape,
        })])
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let x = tensor_arg(inputs, 0)?;
        let [n, c, h, w] = *x.shape() else {
            return Err(NodeError::new(format!(
                "expected f32[N, C, H, W], found {}",
                x.tensor_type()
            )));
        };
        let data = x.host_f32()?;
        let mut out = Vec::with_capacity(n * c * self.h * self.w);
        if h * w > 0 {
            let (ys, xs) = (taps(h, self.h), taps(w, self.w));
            for plane in data.chunks_exact(h * w) {
                for &(y0, y1, fy) in &ys {
                    let (r0, r1) = (&plane[y0 * w..][..w], &plane[y1 * w..][..w]);
                    out.extend(xs.iter().map(|&(x0, x1, fx)| {
                        let top = r0[x0] + (r0[x1] - r0[x0]) * fx;
                        let bottom = r1[x0] + (r1[x1] - r1[x0]) * fx;
                        top + (bottom - top) * fy
                    }));
                }
            }
        } else if n * c > 0 {
            return Err(NodeError::new(format!(
                "cannot resize an empty {}",
                x.tensor_type()
            )));
        }
        f32_out(&[n, c, self.h, self.w], out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    fn resize(x: Value, h: usize, w: usize) -> Vec<f32> {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Resize, vec![("size", P::Shape(vec![h, w]))], dir.path()).unwrap();
        f32s(&run(&*node, 1, |_| vec![x.clone()]).unwrap()[0].0, 0)
    }

    #[test]
    fn bilinear_half_pixel() {
        // 1x2 -> 1x4: PyTorch gives [0, 0.25, 0.75, 1].
        assert_eq!(
            resize(t32(&[1, 1, 1, 2], vec![0., 1.]), 1, 4),
            [0., 0.25, 0.75, 1.]
        );
        // 2x2 -> 1x1 averages all four.
        assert_eq!(
            resize(t32(&[1, 1, 2, 2], vec![0., 1., 2., 3.]), 1, 1),
            [1.5]
        );
        // 4 -> 2 averages pairs; two planes stay apart.
        let x = t32(&[1, 2, 1, 4], vec![0., 2., 4., 6., 1., 1., 1., 1.]);
        assert_eq!(resize(x, 1, 2), [1., 5., 1., 1.]);
        let x = t32(&[1, 1, 2, 3], (0..6).map(|v| v as f32).collect());
        assert_eq!(
            resize(x, 2, 3),
            (0..6).map(|v| v as f32).collect::<Vec<_>>()
        );
    }

    #[test]
    fn rejects_bad_size_and_rank() {
        let dir = tempfile::tempdir().unwrap();
        assert!(build(&Resize, vec![("size", P::Shape(vec![2]))], dir.path()).is_err());
        assert!(build(&Resize, vec![("size", P::Shape(vec![0, 2]))], dir.path()).is_err());
        let node = build(&Resize, vec![("size", P::Shape(vec![2, 2]))], dir.path()).unwrap();
        let e = infer(&*node, &[ValueType::tensor(DType::F32, &[3, 4])]).unwrap_err();
        assert_eq!(e.message, "expected f32[N, C, H, W], found f32[3, 4]");
    }
}
