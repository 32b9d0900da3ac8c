//! `npy`: a tensor (or a sequence of tensors) from a NumPy `.npy` file.

use crate::common::*;
use wgraph_engine::npy::read_npy;
use wgraph_engine::tensor::{HostData, NonFinite};

/// The `npy` kind.
pub struct Npy;

const ON_END: &[&str] = &["hold", "loop", "stop"];

impl NodeKind for Npy {
    fn name(&self) -> &'static str {
        "npy"
    }
    fn summary(&self) -> &'static str {
        "a tensor read from a .npy file, whole or one slice of axis 0 per tick"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::required(
                "path",
                ParamType::Path,
                "the .npy file (f4 f8 f2, i8 i4 i2 i1, u1 u2 u4, b1), read as the dtype of the same width",
            ),
            ParamSpec::optional(
                "sequence",
                ParamType::Bool,
                ParamDefault::Bool(false),
                "emit slice t of axis 0 at tick t instead of the whole tensor",
            ),
            ParamSpec::optional(
                "on_end",
                ParamType::Choice(ON_END),
                ParamDefault::Choice("hold"),
                "past the last slice: hold it, loop, or stop the run",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let path = cx.params.path("path")?;
        let whole = read_npy(&read_source("path", &path, wgraph_engine::input::DATA)?)
            .map_err(|e| BuildError::param("path", format!("`{}`: {e}", path.display())))?;
        let non_finite = whole.host().ok().and_then(HostData::non_finite);
        if let Some(NonFinite { first: i, .. }) = non_finite
            && !cx.settings.allow_nonfinite
        {
            let msg = format!(
                "`{}` holds a non-finite value at element {i} (a graph that means it says `world {{ on_nonfinite = allow }}`)",
                path.display()
            );
            return Err(BuildError::param("path", msg));
        }
        let slices = if cx.params.bool("sequence")? {
            split_axis0(&whole)
                .map_err(|e| BuildError::param("path", format!("`{}` {e}", path.display())))?
        } else {
            vec![whole]
        };
        Ok(Box::new(NpyNode {
            ty: slices[0].tensor_type(),
            slices,
            on_end: cx.params.choice("on_end")?,
        }))
    }
}

/// The slices of `t` along axis 0.
fn split_axis0(t: &Tensor) -> Result<Vec<Tensor>, String> {
    let (&n, rest) = t
        .shape()
        .split_first()
        .ok_or("is a scalar; `sequence = true` needs an array with a first axis")?;
    if n == 0 {
        return Err("has no slices along axis 0".into());
    }
    let k = t.len() / n;
    let slice = |i: usize| Tensor::from_host(rest, t.host()?.slice(i * k..(i + 1) * k));
    (0..n)
        .map(slice)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

struct NpyNode {
    slices: Vec<Tensor>,
    ty: TensorType,
    on_end: String,
}

impl Node for NpyNode {
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
        Ok(vec![ValueType::Tensor(self.ty.clone())])
    }
    fn eval(
        &self,
        _: &mut State,
        _: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let n = self.slices.len();
        let t = usize::try_from(cx.tick).unwrap_or(usize::MAX);
        let i = match self.on_end.as_str() {
            "loop" => t % n,
            "stop" if t + 1 >= n => {
                cx.request_stop();
                n - 1
            }
            _ => t.min(n - 1),
        };
        Ok(vec![self.slices[i].clone().into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    fn setup(t: &Tensor) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        std::fs::write(&path, wgraph_engine::npy::write_npy(t).unwrap()).unwrap();
        (dir, path)
    }

    #[test]
    fn whole_tensor_every_tick() {
        let t = Tensor::from_i64(&[2, 2], vec![1, 2, 3, 4]).unwrap();
        let (dir, path) = setup(&t);
        let node = build(&Npy, vec![("path", P::Path(path))], dir.path()).unwrap();
        let out = run(&*node, 3, |_| vec![]).unwrap();
        assert!(
            out.iter()
                .all(|(o, stop)| o[0] == t.clone().into() && !stop)
        );
    }

    #[test]
    fn sequence_hold_loop_stop() {
        let t = Tensor::from_f32(&[3, 2], vec![0., 0., 1., 1., 2., 2.]).unwrap();
        let (dir, path) = setup(&t);
        for (on_end, want, stops) in [
            ("hold", [0., 1., 2., 2., 2.], [false; 5]),
            ("loop", [0., 1., 2., 0., 1.], [false; 5]),
            (
                "stop",
                [0., 1., 2., 2., 2.],
                [false, false, true, true, true],
            ),
        ] {
            let params = vec![
                ("path", P::Path(path.clone())),
                ("sequence", P::Bool(true)),
                ("on_end", P::Choice(on_end.into())),
            ];
            let node = build(&Npy, params, dir.path()).unwrap();
            let out = run(&*node, 5, |_| vec![]).unwrap();
            let got: Vec<f32> = out.iter().map(|(o, _)| f32s(o, 0)[1]).collect();
            assert_eq!(got, want, "{on_end}");
            assert_eq!(
                out.iter().map(|o| o.1).collect::<Vec<_>>(),
                stops,
                "{on_end}"
            );
        }
    }

    #[test]
    fn build_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("x.npy");
        let e = build(&Npy, vec![("path", P::Path(missing.clone()))], dir.path()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("path"));
        assert_eq!(
            e.message,
            format!(
                "cannot read `{}`: No such file or directory",
                missing.display()
            )
        );
        std::fs::write(&missing, b"hello").unwrap();
        let e = build(&Npy, vec![("path", P::Path(missing.clone()))], dir.path()).unwrap_err();
        assert!(
            e.message
                .ends_with("x.npy`: not a .npy file: bad magic (expected \\x93NUMPY)"),
            "{}",
            e.message
        );
        let (dir, path) = setup(&Tensor::scalar_f32(1.0));
        let params = vec![("path", P::Path(path)), ("sequence", P::Bool(true))];
        assert!(
            build(&Npy, params, dir.path())
                .unwrap_err()
                .message
                .contains("scalar")
        );
        let (dir, path) = setup(&Tensor::from_f32(&[1], vec![f32::NAN]).unwrap());
        let e = build(&Npy, vec![("path", P::Path(path))], dir.path()).unwrap_err();
        assert!(e.message.contains("non-finite"));
    }
}
