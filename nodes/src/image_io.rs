//! Image tensors ↔ 8-bit pixels, shared by the `image` source and the `png`,
//! `gif` and `display` sinks.
//!
//! An image tensor is f32 `[1, C, H, W]` (C = 3 for RGB, 1 for gray), with
//! values in [-1, 1] ([`Range::Signed`], the VAE convention) or in [0, 1]
//! ([`Range::Unit`]).

use crate::common::*;
use image::{DynamicImage, GrayImage, RgbImage};

/// The choices of a `range` parameter.
pub const RANGES: &[&str] = &["signed", "unit"];

/// The `range` parameter row shared by image kinds.
pub const RANGE_PARAM: ParamSpec = ParamSpec::optional(
    "range",
    ParamType::Choice(RANGES),
    ParamDefault::Choice("signed"),
    "pixel values: signed = [-1, 1], unit = [0, 1]",
);

/// How pixel values map to tensor values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// [-1, 1]
    Signed,
    /// [0, 1]
    Unit,
}

impl Range {
    /// The `range` parameter of a node.
    pub fn from_params(cx: &BuildContext<'_>) -> Result<Range, BuildError> {
        Ok(match cx.params.choice("range")?.as_str() {
            "unit" => Range::Unit,
            _ => Range::Signed,
        })
    }

    /// Tensor value of a pixel byte.
    pub fn to_value(self, p: u8) -> f32 {
        match self {
            Range::Signed => f32::from(p) / 127.5 - 1.0,
            Range::Unit => f32::from(p) / 255.0,
        }
    }

    /// Pixel byte of a tensor value (clamped and rounded; frames with NaN are refused before this).
    pub fn to_byte(self, v: f32) -> u8 {
        let p = match self {
            Range::Signed => (v + 1.0) * 127.5,
            Range::Unit => v * 255.0,
        };
        p.round().clamp(0.0, 255.0) as u8
    }
}

/// An RGB image as an f32 `[1, 3, H, W]` tensor.
pub fn image_to_tensor(img: &RgbImage, range: Range) -> Result<Tensor, NodeError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = vec![0.0f32; 3 * h * w];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            data[c * h * w + i] = range.to_value(p.0[c]);
        }
    }
    Ok(Tensor::from_f32(&[1, 3, h, w], data)?)
}

/// An f32 `[1, C, H, W]` tensor (C = 1 or 3) as a gray or RGB image.
pub fn tensor_to_image(t: &Tensor, range: Range) -> Result<DynamicImage, NodeError> {
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
    finite_frame(data)?;
    let plane = h * w;
    let bytes: Vec<u8> = (0..plane)
        .flat_map(|i| (0..c).map(move |ch| range.to_byte(data[ch * plane + i])))
        .collect();
    let (wu, hu) = (
        u32::try_from(w).map_err(|_| NodeError::new("image too wide"))?,
        u32::try_from(h).map_err(|_| NodeError::new("image too tall"))?,
    );
    let bad = || NodeError::new("internal: pixel buffer size");
    Ok(if c == 1 {
        DynamicImage::ImageLuma8(GrayImage::from_raw(wu, hu, bytes).ok_or_else(bad)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(wu, hu, bytes).ok_or_else(bad)?)
    })
}

/// Sinks refuse frames holding NaN or infinities (the scheduler already
/// fails the node that produced them; this is the sink's own guard).
pub fn finite_frame(data: &[f32]) -> Result<(), NodeError> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(NodeError::new(format!(
            "the image holds a non-finite value ({}) at element {i}; refusing to write it as a frame",
            data[i]
        ))),
        None => Ok(()),
    }
}

/// An image tensor encoded as PNG, with fast compression: frames are
/// written every tick, on the hot path. `path` is the file it is for, named
/// in an encoding error.
pub fn png_bytes(t: &Tensor, range: Range, path: &Path) -> Result<Vec<u8>, NodeError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let img = tensor_to_image(t, range)?;
    let mut bytes = Vec::new();
    let encoder = PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, FilterType::Sub);
    img.write_with_encoder(encoder)
        .map_err(|e| NodeError::new(format!("cannot write `{}`: {e}", path.display())))?;
    Ok(bytes)
}

/// Writes an image tensor as a PNG file under the output directory (a link
/// at `path` is replaced, never followed: [`wgraph_engine::output::write_confined`]).
/// Encoded in memory, then written whole (temp file + rename): a full disk
/// fails the run naming the file and leaves no empty frame.
pub fn write_png(t: &Tensor, range: Range, path: &Path) -> Result<(), NodeError> {
    let bytes = png_bytes(t, range, path)?;
    wgraph_engine::output::write_confined(path, &bytes).map_err(|e| {
        NodeError::new(format!(
            "cannot write `{}`: {}",
            path.display(),
            io_message(&e)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_round_trip_in_both_ranges() {
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 100, y as u8 * 255, 7]));
        for range in [Range::Signed, Range::Unit] {
            let t = image_to_tensor(&img, range).unwrap();
            assert_eq!(t.shape(), &[1, 3, 2, 3]);
            let back = tensor_to_image(&t, range).unwrap().to_rgb8();
            assert_eq!(back, img);
        }
        assert_eq!(Range::Signed.to_byte(f32::NAN), 0);
        assert_eq!(Range::Signed.to_byte(5.0), 255);
        let gray = Tensor::from_f32(&[1, 1, 1, 2], vec![0.0, 1.0]).unwrap();
        let g = tensor_to_image(&gray, Range::Unit).unwrap();
        assert_eq!(g.as_luma8().unwrap().as_raw(), &[0, 255]);
        assert!(tensor_to_image(&Tensor::scalar_f32(0.0), Range::Unit).is_err());
    }
}
