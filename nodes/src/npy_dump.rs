//! `npy_dump`: writes each tick's tensor as a numbered `.npy` file.

use crate::common::*;
use wgraph_engine::npy::write_npy;

/// The `npy_dump` kind.
pub struct NpyDump;

impl NodeKind for NpyDump {
    fn name(&self) -> &'static str {
        "npy_dump"
    }
    fn summary(&self) -> &'static str {
        "writes each tick's tensor to <out>/<dir>/<prefix>_<tick>.npy"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "dir",
                ParamType::OutPath,
                ParamDefault::Str("tensors"),
                "directory, relative to the run's output directory (inside it)",
            ),
            ParamSpec::optional(
                "prefix",
                ParamType::FileName,
                ParamDefault::Str(""),
                "file name prefix; empty = the node's name",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let prefix = cx.file_name_part("prefix")?;
        let node = NpyDumpNode {
            dir: cx.output_path("dir")?,
            prefix: if prefix.is_empty() {
                cx.name.to_string()
            } else {
                prefix
            },
            keep_last: cx.output.keep_last,
        };
        Ok(file_sink(cx, Box::new(node)))
    }
}

struct NpyDumpNode {
    dir: PathBuf,
    prefix: String,
    /// `--keep-last N`: only the newest N files are kept.
    keep_last: Option<std::num::NonZeroU64>,
}

impl NpyDumpNode {
    /// The file of tick `tick`.
    fn path(&self, tick: u64) -> PathBuf {
        self.dir.join(format!("{}_{:05}.npy", self.prefix, tick))
    }
}

impl Node for NpyDumpNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("tensor")]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        tensor_in(inputs, 0, "a tensor", |_| true)?;
        Ok(vec![])
    }
    fn init_state(&self) -> Result<State, NodeError> {
        create_dir(&self.dir)?;
        Ok(Box::new(()))
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let path = self.path(cx.tick);
        let bytes = write_npy(tensor_arg(inputs, 0)?)?;
        wgraph_engine::output::write_confined(&path, &bytes).map_err(|e| {
            NodeError::new(format!(
                "cannot write `{}`: {}",
                path.display(),
                io_message(&e)
            ))
        })?;
        keep_last(self.keep_last, cx.tick, |t| self.path(t))?;
        Ok(vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;

    #[test]
    fn round_trips_each_tick() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&NpyDump, vec![], dir.path()).unwrap();
        assert!(
            !dir.path().join("tensors").exists(),
            "building creates nothing"
        );
        let t = |tick: u64| Tensor::from_i64(&[2, 1], vec![tick as i64, -5]).unwrap();
        run(&*node, 2, |tick| vec![t(tick).into()]).unwrap();
        for tick in 0..2 {
            let bytes = std::fs::read(dir.path().join(format!("tensors/n_{tick:05}.npy"))).unwrap();
            assert_eq!(wgraph_engine::npy::read_npy(&bytes).unwrap(), t(tick));
        }
        let e = infer(&*node, &[ValueType::Actions]).unwrap_err();
        assert_eq!(e.message, "expected a tensor, found actions");
    }
}
