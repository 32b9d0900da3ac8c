//! `gif`: writes the images of a run as one looping animated GIF.
//!
//! The file is created when the run starts and each frame is encoded as it
//! arrives (written straight to the file), so the frames of a run that fails
//! later are kept.

use crate::common::*;
use crate::image_io::{RANGE_PARAM, Range, tensor_to_image};
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame};
use std::fs::File;
use std::time::Duration;

/// The `gif` kind.
pub struct Gif;

impl NodeKind for Gif {
    fn name(&self) -> &'static str {
        "gif"
    }
    fn summary(&self) -> &'static str {
        "writes every tick's image into one looping animated GIF"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "path",
                ParamType::Str,
                ParamDefault::Str("out.gif"),
                "the GIF, relative to the run's output directory",
            ),
            ParamSpec::optional(
                "fps",
                ParamType::Float,
                ParamDefault::Float(0.0),
                "frames per second; 0 = the world's fps",
            ),
            RANGE_PARAM,
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let fps = match finite_param(cx, "fps")? {
            0.0 => cx.settings.fps,
            f if f > 0.0 => f,
            f => {
                return Err(BuildError::param(
                    "fps",
                    format!("`fps` must be positive (or 0), found {f}"),
                ));
            }
        };
        Ok(Box::new(GifSink {
            path: cx.output.dir.join(cx.params.string("path")?),
            delay: frame_delay(fps),
            range: Range::from_params(cx)?,
        }))
    }
}

/// A configured GIF sink (also what `display` builds for a `.gif` target).
pub(crate) struct GifSink {
    pub(crate) path: PathBuf,
    pub(crate) delay: Delay,
    pub(crate) range: Range,
}

/// The open GIF: the encoder and the size of its first frame.
struct Open {
    encoder: GifEncoder<File>,
    size: Option<(u32, u32)>,
    path: PathBuf,
}

/// The time each frame shows at `fps` frames per second.
pub(crate) fn frame_delay(fps: f64) -> Delay {
    Delay::from_saturating_duration(Duration::try_from_secs_f64(1.0 / fps).unwrap_or(Duration::MAX))
}

impl GifSink {
    fn error(&self, e: impl std::fmt::Display) -> NodeError {
        NodeError::new(format!("cannot write `{}`: {e}", self.path.display()))
    }
}

impl Node for GifSink {
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
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir(parent)?;
        }
        let file = File::create(&self.path).map_err(|e| self.error(io_message(&e)))?;
        // Unbuffered on purpose: every frame reaches the file as it is encoded.
        let mut encoder = GifEncoder::new_with_speed(file, 10);
        encoder
            .set_repeat(Repeat::Infinite)
            .map_err(|e| self.error(e))?;
        Ok(Box::new(Some(Open {
            encoder,
            size: None,
            path: self.path.clone(),
        })))
    }
    fn carry(&self, old: &State, cx: &CarryContext) -> Carry {
        let old = old
            .downcast_ref::<Option<Open>>()
            .and_then(Option::as_ref)
            .map(|o| (o.path.as_path(), o.size.is_some()));
        carry_stream(old, &self.path, cx)
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let open = state_mut::<Option<Open>>(state)?
            .as_mut()
            .ok_or_else(|| NodeError::new("internal: GIF already finished"))?;
        let rgba = tensor_to_image(tensor_arg(inputs, 0)?, self.range)?.to_rgba8();
        let size = *open.size.get_or_insert(rgba.dimensions());
        if size != rgba.dimensions() {
            return Err(self.error(format!(
                "frame is {}x{} but the first frame was {}x{}",
                rgba.height(),
                rgba.width(),
                size.1,
                size.0
            )));
        }
        open.encoder
            .encode_frame(Frame::from_parts(rgba, 0, 0, self.delay))
            .map_err(|e| self.error(e))?;
        Ok(vec![])
    }
    fn finish(&self, state: &mut State) -> Result<(), NodeError> {
        // Dropping the encoder writes the GIF trailer.
        drop(state_mut::<Option<Open>>(state)?.take());
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::common::testing::*;
    use image::AnimationDecoder;
    use image::codecs::gif::GifDecoder;
    use wgraph_engine::params::ParamValue as P;

    /// The frames of a GIF file.
    pub fn frames(path: &Path) -> Vec<Frame> {
        let file = std::io::BufReader::new(File::open(path).unwrap());
        let decoder = GifDecoder::new(file).unwrap();
        decoder.into_frames().collect_frames().unwrap()
    }

    #[test]
    fn writes_an_animation_that_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Gif, vec![("path", P::Str("sub/a.gif".into()))], dir.path()).unwrap();
        assert!(!dir.path().join("sub").exists(), "building creates nothing");
        run(&*node, 4, |t| {
            vec![t32(&[1, 3, 6, 10], vec![t as f32 / 3.0; 180])]
        })
        .unwrap();
        let fs = frames(&dir.path().join("sub/a.gif"));
        assert_eq!(fs.len(), 4);
        assert!(fs.iter().all(|f| f.buffer().dimensions() == (10, 6)));
        // The world's 8 fps, in GIF's 10 ms units.
        assert_eq!(fs[0].delay().numer_denom_ms(), (120, 1));
    }

    #[test]
    fn frames_survive_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Gif, vec![("fps", P::Float(4.0))], dir.path()).unwrap();
        let err = run(&*node, 3, |t| {
            let h = if t == 2 { 5 } else { 4 };
            vec![t32(&[1, 1, h, 4], vec![0.0; h * 4])]
        })
        .unwrap_err();
        assert!(
            err.message
                .contains("frame is 5x4 but the first frame was 4x4"),
            "{}",
            err.message
        );
        let fs = frames(&dir.path().join("out.gif"));
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[1].delay().numer_denom_ms(), (250, 1));
    }
}
