//! `gif`: writes the images of a run as one looping animated GIF.
//!
//! The file is created when the run starts and each frame is encoded as it
//! arrives. The file is a complete GIF after every frame: each frame is
//! encoded in memory and written after the frames before it, followed by
//! the trailer, in an order that keeps the file valid at every instant
//! (the frame's tail and a new trailer go after the old trailer, then its
//! first byte replaces the old trailer). So the frames of a run that fails
//! later are kept, and a run that is killed — a second Ctrl-C, SIGKILL, a
//! power cut after the data reached the disk — leaves a GIF that decodes.
//! A write error (a full disk) fails the run naming the file; the frames
//! before it stay valid.

use super::{Sink, create_stream_file, file_sink, write_error};
use crate::common::*;
use crate::image_io::{RANGE_PARAM, Range, tensor_to_image};
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame};
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};
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
                ParamType::OutPath,
                ParamDefault::Str("out.gif"),
                "the GIF, relative to the run's output directory (inside it)",
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
        let sink = GifSink {
            path: cx.output_path("path")?,
            delay: frame_delay(fps),
            range: Range::from_params(cx)?,
            confined: true,
        };
        Ok(file_sink(cx, sink))
    }
}

/// A configured GIF sink (also what `display` builds for a `.gif` target).
pub(crate) struct GifSink {
    pub(crate) path: PathBuf,
    pub(crate) delay: Delay,
    pub(crate) range: Range,
    /// The graph named the file (under the output directory): a link at
    /// `path` is replaced, not followed. False for `--out x.gif`, the
    /// user's own path.
    pub(crate) confined: bool,
}

/// The open GIF: the encoder (writing into `encoded`), the file, and the
/// size of its first frame.
pub(crate) struct Open {
    encoder: GifEncoder<Encoded>,
    encoded: Encoded,
    file: File,
    /// Bytes of the file holding whole frames; the trailer follows them.
    len: u64,
    /// A write failed: the file holds the frames before it, and no more.
    failed: bool,
    size: Option<(u32, u32)>,
}

/// Where the encoder writes: memory shared with the sink, which moves each
/// frame's bytes to the file itself.
#[derive(Clone, Default)]
struct Encoded(Arc<Mutex<Vec<u8>>>);

impl Write for Encoded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Encoded {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The GIF trailer byte.
const TRAILER: u8 = 0x3B;

/// Writes `bytes` at `offset`.
fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(bytes)
    }
}

impl Open {
    /// Appends one encoded chunk (the header with the first frame) and a
    /// trailer, keeping the file a valid GIF at every step.
    fn append(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        let Some((&first, rest)) = chunk.split_first() else {
            return Ok(());
        };
        let mut tail = Vec::with_capacity(rest.len() + 1);
        tail.extend_from_slice(rest);
        tail.push(TRAILER);
        let written = write_at(&self.file, &tail, self.len + 1)
            .and_then(|()| write_at(&self.file, &[first], self.len));
        match written {
            Ok(()) => {
                self.len += chunk.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Back to the frames before, with their trailer (best effort:
                // the disk may refuse even that).
                let _ = self.file.set_len(self.len + u64::from(self.len > 0));
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// The time each frame shows at `fps` frames per second.
pub(crate) fn frame_delay(fps: f64) -> Delay {
    Delay::from_saturating_duration(Duration::try_from_secs_f64(1.0 / fps).unwrap_or(Duration::MAX))
}

impl GifSink {
    fn error(&self, e: impl std::fmt::Display) -> NodeError {
        write_error(&self.path, e)
    }
}

impl Sink for GifSink {
    type Open = Open;
    fn open(&self) -> Result<Open, NodeError> {
        let file = create_stream_file(&self.path, self.confined)?;
        let encoded = Encoded::default();
        let mut encoder = GifEncoder::new_with_speed(encoded.clone(), 10);
        encoder
            .set_repeat(Repeat::Infinite)
            .map_err(|e| self.error(e))?;
        Ok(Open {
            encoder,
            encoded,
            file,
            len: 0,
            failed: false,
            size: None,
        })
    }
    fn write(&self, open: &mut Open, image: &Tensor, _: u64) -> Result<(), NodeError> {
        if open.failed {
            return Err(self.error("an earlier write failed"));
        }
        let rgba = tensor_to_image(image, self.range)?.to_rgba8();
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
        let chunk = open.encoded.take();
        open.append(&chunk).map_err(|e| self.error(io_message(&e)))
    }
    // Finishing drops the encoder: the file already ends with a trailer;
    // the one the encoder writes as it is dropped goes to memory and is
    // discarded.
    fn stream(&self) -> Option<&Path> {
        Some(&self.path)
    }
    fn started(open: &Open) -> bool {
        open.size.is_some()
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

    /// After every frame the file on disk is a whole GIF (as a killed run
    /// leaves it), holding exactly the frames so far.
    #[test]
    fn the_file_is_a_valid_gif_after_every_frame() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Gif, vec![], dir.path()).unwrap();
        let path = dir.path().join("out.gif");
        let mut state = node.init_state().unwrap();
        let settings = wgraph_engine::settings::Settings::default();
        for t in 0..3u64 {
            let mut callees = wgraph_engine::node::NoCallees;
            let mut cx = TickContext::new(t, &settings, &mut callees);
            let img = t32(&[1, 3, 4, 5], vec![t as f32 / 3.0; 60]);
            node.eval(&mut state, &[Some(img)], &mut cx).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.last(), Some(&TRAILER));
            assert_eq!(frames(&path).len(), t as usize + 1);
        }
        node.finish(&mut state).unwrap();
        assert_eq!(frames(&path).len(), 3);
        assert_eq!(std::fs::read(&path).unwrap().last(), Some(&TRAILER));
    }

    /// A full device: the write error names the file.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_an_error_naming_the_file() {
        let node = super::super::SinkNode(GifSink {
            path: PathBuf::from("/dev/full"),
            delay: frame_delay(8.0),
            range: Range::Signed,
            confined: false,
        });
        let err = run(&node, 2, |_| vec![t32(&[1, 3, 2, 2], vec![0.0; 12])]).unwrap_err();
        assert_eq!(
            err.message,
            "cannot write `/dev/full`: No space left on device"
        );
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
