//! `npy_dump`: writes each tick's tensor as a numbered `.npy` file.

use super::{Sink, TickFiles, file_sink};
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
        let sink = NpyDumpSink(TickFiles {
            dir: cx.output_path("dir")?,
            prefix: if prefix.is_empty() {
                cx.name.to_string()
            } else {
                prefix
            },
            ext: "npy",
            keep_last: cx.output.keep_last,
        });
        Ok(file_sink(cx, sink))
    }
}

/// A configured `.npy` sink: any tensor, a file per tick.
struct NpyDumpSink(TickFiles);

impl Sink for NpyDumpSink {
    type Open = ();
    const INPUT: &'static str = "tensor";
    fn check(&self, inputs: &[Option<ValueType>]) -> Result<(), TypeError> {
        tensor_in(inputs, 0, "a tensor", |_| true).map(drop)
    }
    fn open(&self) -> Result<(), NodeError> {
        self.0.create()
    }
    fn write(&self, _: &mut (), tensor: &Tensor, tick: u64) -> Result<(), NodeError> {
        self.0.write(tick, |_| Ok(write_npy(tensor)?))
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
