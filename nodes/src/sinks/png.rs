//! `png`: writes each tick's image as a numbered PNG file.

use super::{Sink, TickFiles, file_sink};
use crate::common::*;
use crate::image_io::{RANGE_PARAM, Range, png_bytes};

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
            files: TickFiles {
                dir: cx.output_path("dir")?,
                prefix: cx.file_name_part("prefix")?,
                ext: "png",
                keep_last: cx.output.keep_last,
            },
            range: Range::from_params(cx)?,
        };
        Ok(file_sink(cx, sink))
    }
}

/// A configured PNG frame sink (also what `display` builds for a directory).
pub(crate) struct PngSink {
    pub(crate) files: TickFiles,
    pub(crate) range: Range,
}

impl Sink for PngSink {
    type Open = ();
    fn open(&self) -> Result<(), NodeError> {
        self.files.create()
    }
    fn write(&self, _: &mut (), image: &Tensor, tick: u64) -> Result<(), NodeError> {
        self.files
            .write(tick, |path| png_bytes(image, self.range, path))
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
