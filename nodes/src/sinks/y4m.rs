//! `y4m`: writes the images of a run as a raw YUV4MPEG2 stream, a file or
//! standard output (`-`), e.g. to pipe into `ffmpeg -i - ...` or `mpv -`.
//!
//! The header is `YUV4MPEG2 W<w> H<h> F<num>:<den> Ip A1:1 C444`, from the
//! first frame's size and the world's fps (an integer fps `n` is `n:1`, any
//! other is `round(1000·fps):1000`). Each tick then writes `FRAME` and the
//! full-resolution Y, U and V planes (4:4:4, 8 bit).
//!
//! Colour: the RGB image (gray: R = G = B) is taken as full-range [0, 1]
//! and converted with the BT.601 matrix to *studio-range* YCbCr — Y in
//! [16, 235], Cb/Cr in [16, 240] — which is what a YUV4MPEG2 reader assumes
//! when the header carries no `XCOLORRANGE` tag (ffmpeg, mpv do):
//! `Y = 16 + 219·(0.299 R + 0.587 G + 0.114 B)`,
//! `Cb = 128 + 112·(B − Y′)/0.886`, `Cr = 128 + 112·(R − Y′)/0.701`.
//!
//! Every frame is written whole in one write and flushed, so the frames of
//! a run that fails later are kept (and a pipe reader sees each frame at
//! once). A write error (a full disk) fails the run naming the file; a
//! file is cut back to its whole frames.

use super::{Sink, create_stream_file, file_sink, write_error};
use crate::common::*;
use crate::image_io::{RANGE_PARAM, Range};
use std::fs::File;
use std::io::{BufWriter, Write};

/// The `y4m` kind.
pub struct Y4m;

impl NodeKind for Y4m {
    fn name(&self) -> &'static str {
        "y4m"
    }
    fn summary(&self) -> &'static str {
        "writes every tick's image into a raw YUV4MPEG2 video stream (a file, or `-` for standard output)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "path",
                ParamType::OutPath,
                ParamDefault::Str("out.y4m"),
                "the stream, relative to the run's output directory (inside it); `-` = standard output",
            ),
            RANGE_PARAM,
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let path = cx.params.string("path")?;
        if path.is_empty() {
            return Err(BuildError::param(
                "path",
                "`path` must name a file (or `-` for standard output)",
            ));
        }
        let path = if path == "-" {
            PathBuf::from("-")
        } else {
            cx.output_path("path")?
        };
        let sink = Y4mSink {
            path,
            fps: fps_ratio(cx.settings.fps),
            range: Range::from_params(cx)?,
            confined: true,
        };
        Ok(file_sink(cx, sink))
    }
}

/// The frame rate as a YUV4MPEG2 ratio: `n:1` for an integer `n`, else
/// `round(1000·fps):1000` (a non-positive or absurd fps gives the world's
/// default of 8).
pub(crate) fn fps_ratio(fps: f64) -> (u64, u64) {
    if !(fps.is_finite() && fps > 0.0 && fps < 1e9) {
        return (8, 1);
    }
    if fps.fract() == 0.0 {
        (fps as u64, 1)
    } else {
        (((fps * 1000.0).round() as u64).max(1), 1000)
    }
}

/// A configured YUV4MPEG2 sink (also what `display` builds for a `.y4m`
/// target or `-`).
pub(crate) struct Y4mSink {
    /// `-` is standard output.
    pub(crate) path: PathBuf,
    pub(crate) fps: (u64, u64),
    pub(crate) range: Range,
    /// The graph named the file (under the output directory): a link at
    /// `path` is replaced, not followed. False for `--out x.y4m`.
    pub(crate) confined: bool,
}

/// Where a stream goes.
pub(crate) enum Out {
    /// A file, and the bytes of it holding the header and whole frames.
    File {
        file: File,
        len: u64,
    },
    Stdout(BufWriter<std::io::Stdout>),
}

impl Out {
    /// Writes one chunk (a frame, the header with the first); a file that
    /// takes part of it is cut back to what it held.
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Out::File { file, len } => match file.write_all(chunk) {
                Ok(()) => {
                    *len += chunk.len() as u64;
                    Ok(())
                }
                Err(e) => {
                    use std::io::{Seek, SeekFrom};
                    let _ = file.set_len(*len);
                    let _ = file.seek(SeekFrom::Start(*len));
                    Err(e)
                }
            },
            Out::Stdout(out) => out.write_all(chunk).and_then(|()| out.flush()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::File { file, .. } => file.flush(),
            Out::Stdout(out) => out.flush(),
        }
    }
}

/// The open stream and the frame size fixed by the header.
pub(crate) struct Open {
    out: Out,
    /// (width, height) once the header is written.
    size: Option<(usize, usize)>,
}

impl Y4mSink {
    fn is_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    fn error(&self, e: impl std::fmt::Display) -> NodeError {
        if self.is_stdout() {
            NodeError::new(format!("cannot write standard output: {e}"))
        } else {
            write_error(&self.path, e)
        }
    }
}

/// The header line for a `w`×`h` stream at `fps`.
pub(crate) fn header(w: usize, h: usize, fps: (u64, u64)) -> String {
    format!("YUV4MPEG2 W{w} H{h} F{}:{} Ip A1:1 C444\n", fps.0, fps.1)
}

/// One frame's Y, U and V planes (each `h·w` bytes, in that order) from an
/// f32 `[1, C, H, W]` image, C = 1 or 3. Returns (width, height, planes).
pub(crate) fn yuv444(t: &Tensor, range: Range) -> Result<(usize, usize, Vec<u8>), NodeError> {
    let (c, h, w) = match *t.shape() {
        [1, c @ (1 | 3), h, w] => (c, h, w),
        _ => {
            return Err(NodeError::new(format!(
                "expected an f32[1, 3, H, W] image, found {}",
                t.tensor_type()
            )));
        }
    };
    let data = t.host_f32()?;
    crate::image_io::finite_frame(data)?;
    let plane = h * w;
    // To [0, 1], clamped.
    let unit = |v: f32| {
        let u = match range {
            Range::Signed => (v + 1.0) * 0.5,
            Range::Unit => v,
        };
        u.clamp(0.0, 1.0)
    };
    let byte = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    let mut out = vec![0u8; 3 * plane];
    for i in 0..plane {
        let (r, g, b) = if c == 3 {
            (
                unit(data[i]),
                unit(data[plane + i]),
                unit(data[2 * plane + i]),
            )
        } else {
            let v = unit(data[i]);
            (v, v, v)
        };
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        out[i] = byte(16.0 + 219.0 * y);
        out[plane + i] = byte(128.0 + 112.0 * (b - y) / 0.886);
        out[2 * plane + i] = byte(128.0 + 112.0 * (r - y) / 0.701);
    }
    Ok((w, h, out))
}

impl Sink for Y4mSink {
    type Open = Open;
    fn open(&self) -> Result<Open, NodeError> {
        let out = if self.is_stdout() {
            Out::Stdout(BufWriter::with_capacity(1 << 16, std::io::stdout()))
        } else {
            let file = create_stream_file(&self.path, self.confined)?;
            Out::File { file, len: 0 }
        };
        Ok(Open { out, size: None })
    }
    fn write(&self, open: &mut Open, image: &Tensor, _: u64) -> Result<(), NodeError> {
        let (w, h, planes) = yuv444(image, self.range)?;
        let mut chunk = Vec::with_capacity(planes.len() + 64);
        match open.size {
            None => chunk.extend_from_slice(header(w, h, self.fps).as_bytes()),
            Some((w0, h0)) if (w0, h0) != (w, h) => {
                return Err(self.error(format!(
                    "frame is {h}x{w} but the stream is {h0}x{w0} (its first frame)"
                )));
            }
            Some(_) => {}
        }
        chunk.extend_from_slice(b"FRAME\n");
        chunk.extend_from_slice(&planes);
        open.out
            .write_chunk(&chunk)
            .map_err(|e| self.error(io_message(&e)))?;
        open.size = Some((w, h));
        Ok(())
    }
    fn close(&self, mut open: Open) -> Result<(), NodeError> {
        open.out.flush().map_err(|e| self.error(io_message(&e)))
    }
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
    use wgraph_engine::node::OutputConfig;
    use wgraph_engine::params::ParamValue as P;
    use wgraph_engine::settings::Settings;

    /// A parsed stream: the header's fields and each frame's planes.
    pub struct Parsed {
        pub header: Vec<String>,
        pub frames: Vec<Vec<u8>>,
    }

    /// Parses a 4:4:4 YUV4MPEG2 stream, checking its framing.
    pub fn parse(bytes: &[u8]) -> Parsed {
        let end = bytes.iter().position(|&b| b == b'\n').expect("header line");
        let header: Vec<String> = std::str::from_utf8(&bytes[..end])
            .unwrap()
            .split(' ')
            .map(String::from)
            .collect();
        assert_eq!(header[0], "YUV4MPEG2");
        let field = |c: char| {
            header
                .iter()
                .find_map(|f| f.strip_prefix(c))
                .unwrap()
                .parse::<usize>()
                .unwrap()
        };
        let size = 3 * field('W') * field('H');
        let mut rest = &bytes[end + 1..];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            assert!(rest.starts_with(b"FRAME\n"), "frame marker");
            frames.push(rest[6..6 + size].to_vec());
            rest = &rest[6 + size..];
        }
        Parsed { header, frames }
    }

    #[test]
    fn header_frames_and_bt601_studio_colours() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Y4m, vec![("path", P::Str("v/a.y4m".into()))], dir.path()).unwrap();
        assert!(!dir.path().join("v").exists(), "building creates nothing");
        // Tick 0 white, 1 black, 2 red, 3 gray 0.6 (one channel).
        run(&*node, 4, |t| match t {
            0 => vec![t32(&[1, 3, 2, 3], vec![1.0; 18])],
            1 => vec![t32(&[1, 3, 2, 3], vec![-1.0; 18])],
            2 => {
                let mut d = vec![-1.0; 18];
                d[..6].fill(1.0);
                vec![t32(&[1, 3, 2, 3], d)]
            }
            _ => vec![t32(&[1, 1, 2, 3], vec![0.2; 6])],
        })
        .unwrap();
        let p = parse(&std::fs::read(dir.path().join("v/a.y4m")).unwrap());
        assert_eq!(
            p.header,
            ["YUV4MPEG2", "W3", "H2", "F8:1", "Ip", "A1:1", "C444"]
        );
        assert_eq!(p.frames.len(), 4);
        let yuv = |f: &[u8]| {
            assert!(f[..6].iter().all(|&b| b == f[0]) && f[6..12].iter().all(|&b| b == f[6]));
            (f[0], f[6], f[12])
        };
        assert_eq!(yuv(&p.frames[0]), (235, 128, 128));
        assert_eq!(yuv(&p.frames[1]), (16, 128, 128));
        assert_eq!(yuv(&p.frames[2]), (81, 90, 240));
        assert_eq!(yuv(&p.frames[3]), (147, 128, 128));
    }

    #[test]
    fn frames_survive_a_failure_and_fps_is_a_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            fps: 29.97,
            ..Settings::default()
        };
        let out = OutputConfig {
            dir: dir.path().to_path_buf(),
            display: wgraph_engine::node::DisplayTarget::PngDir(dir.path().to_path_buf()),
            ..OutputConfig::default()
        };
        let node = build_in(
            &Y4m,
            vec![("range", P::Choice("unit".into()))],
            &out,
            &settings,
        )
        .unwrap();
        let err = run(&*node, 3, |t| {
            let h = if t == 2 { 5 } else { 4 };
            vec![t32(&[1, 3, h, 2], vec![1.0; 3 * h * 2])]
        })
        .unwrap_err();
        assert!(
            err.message.contains("frame is 5x2 but the stream is 4x2"),
            "{}",
            err.message
        );
        let p = parse(&std::fs::read(dir.path().join("out.y4m")).unwrap());
        assert_eq!(p.header[3], "F29970:1000");
        assert_eq!(p.frames.len(), 2);
        assert_eq!(p.frames[1][0], 235);
        assert_eq!(fps_ratio(8.0), (8, 1));
        assert_eq!(fps_ratio(7.5), (7500, 1000));
        assert_eq!(fps_ratio(f64::NAN), (8, 1));
        assert!(build(&Y4m, vec![("path", P::Str(String::new()))], dir.path()).is_err());
    }

    /// A full device: the write error names the file.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_an_error_naming_the_file() {
        let node = super::super::SinkNode(Y4mSink {
            path: PathBuf::from("/dev/full"),
            fps: (8, 1),
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
    fn a_frame_with_nan_is_refused_not_written_black() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Y4m, vec![], dir.path()).unwrap();
        let err = run(&*node, 2, |t| {
            let v = if t == 1 { f32::NAN } else { 0.0 };
            vec![t32(&[1, 3, 2, 2], vec![v; 12])]
        })
        .unwrap_err();
        assert!(
            err.message.contains("non-finite value (NaN)"),
            "{}",
            err.message
        );
        let p = parse(&std::fs::read(dir.path().join("out.y4m")).unwrap());
        assert_eq!(p.frames.len(), 1);
    }
}
