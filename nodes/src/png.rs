//! `png`: writes each tick's image as a numbered PNG file.

use crate::common::*;
use crate::image_io::{RANGE_PARAM, Range, write_png};

/// The `png` kind.
pub struct Png;

impl NodeKind for Png {
    fn name(&self) -> &'static str {
        "png"
    }
    fn summary(&self) -> &'static str {
        "writes each tick's image to <out>/<dir>/<prefix>_<tick>.png"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "dir",
                ParamType::OutPath,
                ParamDefault::Str("frames"),
                "directory, relative to the run's output directory (inside it)",
            ),
            ParamSpec::optional(
                "prefix",
                ParamType::FileName,
                ParamDefault::Str("frame"),
                "file name prefix",
            ),
            RANGE_PARAM,
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let sink = PngSink {
            dir: cx.output_path("dir")?,
            prefix: cx.file_name_part("prefix")?,
            range: Range::from_params(cx)?,
            keep_last: cx.output.keep_last,
        };
        Ok(file_sink(cx, Box::new(sink)))
    }
}

/// A configured PNG frame sink (also what `display` builds for a directory).
pub(crate) struct PngSink {
    pub(crate) dir: PathBuf,
    pub(crate) prefix: String,
    pub(crate) range: Range,
    /// `--keep-last N`: only the newest N frames are kept.
    pub(crate) keep_last: Option<std::num::NonZeroU64>,
}

impl PngSink {
    /// The file of tick `tick`.
    fn path(&self, tick: u64) -> PathBuf {
        self.dir.join(format!("{}_{:05}.png", self.prefix, tick))
    }
}

impl Node for PngSink {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("image")]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        image_in(inputs, 0)?;
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
        write_png(tensor_arg(inputs, 0)?, self.range, &self.path(cx.tick))?;
        keep_last(self.keep_last, cx.tick, |t| self.path(t))?;
        Ok(vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    #[test]
    fn writes_numbered_frames_that_decode() {
        let dir = tempfile::tempdir().unwrap();
        let params = vec![
            ("dir", P::Str("a/b".into())),
            ("prefix", P::Str("x".into())),
        ];
        let node = build(&Png, params, dir.path()).unwrap();
        assert!(!dir.path().join("a").exists(), "building creates nothing");
        run(&*node, 3, |t| {
            vec![t32(&[1, 3, 2, 5], vec![t as f32 / 2.0 - 1.0; 30])]
        })
        .unwrap();
        for t in 0..3 {
            let img = image::open(dir.path().join(format!("a/b/x_{t:05}.png")))
                .unwrap()
                .to_rgb8();
            assert_eq!((img.width(), img.height()), (5, 2));
            assert_eq!(img.get_pixel(0, 0).0[0], [0, 64, 128][t]);
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("a/b")).unwrap().count(),
            3
        );
        let gray = build(&Png, vec![], dir.path()).unwrap();
        run(&*gray, 1, |_| vec![t32(&[1, 1, 2, 2], vec![1.0; 4])]).unwrap();
        let img = image::open(dir.path().join("frames/frame_00000.png")).unwrap();
        assert_eq!(img.as_luma8().unwrap().as_raw(), &[255; 4]);
    }
}
