//! `display`: the frames a user watches, written where the run's output
//! configuration says — numbered PNGs in a directory, one animated GIF, or
//! a raw YUV4MPEG2 stream (a `.y4m` file or `-`, standard output). It
//! builds a [`PngSink`](super::png), a [`GifSink`](super::gif) or a
//! [`Y4mSink`](super::y4m).

use super::gif::{GifSink, frame_delay};
use super::png::PngSink;
use super::y4m::{Y4mSink, fps_ratio};
use super::{Sink, SinkNode, TickFiles};
use crate::common::*;
use crate::image_io::{RANGE_PARAM, Range};
use wgraph_engine::node::{DisplaySpec, DisplayTarget, PixelRange};

/// The `display` kind.
pub struct Display;

impl NodeKind for Display {
    fn name(&self) -> &'static str {
        "display"
    }
    fn summary(&self) -> &'static str {
        "shows each tick's image: frame_<tick>.png files, a GIF or a y4m stream, as the run's --out says"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[RANGE_PARAM];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let range = Range::from_params(cx)?;
        let pixels = match range {
            Range::Signed => PixelRange::Signed,
            Range::Unit => PixelRange::Unit,
        };
        let sink: Box<dyn Node> = match &cx.output.display {
            DisplayTarget::PngDir(dir) => Box::new(SinkNode(PngSink {
                files: TickFiles {
                    dir: dir.clone(),
                    prefix: "frame".into(),
                    ext: "png",
                    keep_last: cx.output.keep_last,
                },
                range,
            })),
            DisplayTarget::Gif(path) => Box::new(SinkNode(GifSink {
                path: path.clone(),
                delay: frame_delay(cx.settings.fps),
                range,
                confined: false,
            })),
            DisplayTarget::Y4m(path) => Box::new(SinkNode(Y4mSink {
                path: path.clone(),
                fps: fps_ratio(cx.settings.fps),
                range,
                confined: false,
            })),
            DisplayTarget::Discard => Box::new(SinkNode(DiscardSink { range })),
        };
        Ok(Box::new(Shown(sink, pixels)))
    }
}

/// The display's sink, marked as the node whose image front ends show
/// ([`Node::displays`]).
struct Shown(Box<dyn Node>, PixelRange);

impl Node for Shown {
    fn inputs(&self) -> Vec<PortSpec> {
        self.0.inputs()
    }
    fn input_type(&self, _port: usize) -> Option<String> {
        Some("an f32[1, 3, H, W] image in [-1, 1]".to_string())
    }
    fn outputs(&self) -> Vec<PortSpec> {
        self.0.outputs()
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        calls: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        self.0.infer(inputs, calls)
    }
    fn init_state(&self) -> Result<State, NodeError> {
        self.0.init_state()
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        self.0.eval(state, inputs, cx)
    }
    fn finish(&self, state: &mut State) -> Result<(), NodeError> {
        self.0.finish(state)
    }
    fn carry(&self, old: &State, cx: &CarryContext) -> Carry {
        self.0.carry(old, cx)
    }
    fn displays(&self) -> Option<DisplaySpec> {
        Some(DisplaySpec {
            input: 0,
            range: self.1,
        })
    }
}

/// Checks each frame like the other sinks (shape, finite values) and drops it.
struct DiscardSink {
    range: Range,
}

impl Sink for DiscardSink {
    type Open = ();
    fn open(&self) -> Result<(), NodeError> {
        Ok(())
    }
    fn write(&self, _: &mut (), image: &Tensor, _: u64) -> Result<(), NodeError> {
        crate::image_io::tensor_to_image(image, self.range).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::node::OutputConfig;
    use wgraph_engine::settings::Settings;

    #[test]
    fn png_dir_gif_or_y4m() {
        let dir = tempfile::tempdir().unwrap();
        let image = |_| vec![t32(&[1, 3, 4, 6], vec![0.5; 72])];
        let out = OutputConfig::for_path(&dir.path().join("frames")).unwrap();
        let node = build_in(&Display, vec![], &out, &Settings::default()).unwrap();
        run(&*node, 2, image).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("frames"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2);
        let img = image::open(dir.path().join("frames/frame_00001.png")).unwrap();
        assert_eq!((img.width(), img.height()), (6, 4));

        let out = OutputConfig::for_path(&dir.path().join("world.gif")).unwrap();
        let node = build_in(&Display, vec![], &out, &Settings::default()).unwrap();
        run(&*node, 3, image).unwrap();
        let frames = crate::sinks::gif::tests::frames(&dir.path().join("world.gif"));
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].buffer().dimensions(), (6, 4));

        let out = OutputConfig::for_path(&dir.path().join("world.y4m")).unwrap();
        let node = build_in(&Display, vec![], &out, &Settings::default()).unwrap();
        run(&*node, 2, image).unwrap();
        let p =
            crate::sinks::y4m::tests::parse(&std::fs::read(dir.path().join("world.y4m")).unwrap());
        assert_eq!(p.header[1..3], ["W6", "H4"]);
        assert_eq!(p.frames.len(), 2);
        // `-` is standard output: building opens nothing.
        let out = OutputConfig::for_path(Path::new("-")).unwrap();
        build_in(&Display, vec![], &out, &Settings::default()).unwrap();
    }
}
