//! Frames for front ends: an image tensor as 8-bit RGB.
//!
//! [`RgbFrame::from_tensor`] turns the `display` node's image (f32
//! `[1, 3, H, W]` or `[1, 1, H, W]`, values in the [`PixelRange`] the node
//! declares) into packed RGB bytes, row by row — what a browser canvas or a
//! terminal draws. NaN becomes black; values are clamped.

use crate::node::PixelRange;
use crate::tensor::Tensor;

/// The tensor is not an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FrameError(pub String);

/// Packed 8-bit RGB, `width × height × 3` bytes, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl RgbFrame {
    /// Converts an f32 `[1, C, H, W]` image, C = 1 or 3.
    pub fn from_tensor(t: &Tensor, range: PixelRange) -> Result<RgbFrame, FrameError> {
        let [1, c @ (1 | 3), h, w] = *t.shape() else {
            return Err(FrameError(format!(
                "expected an f32[1, 3, H, W] image, found {}",
                t.tensor_type()
            )));
        };
        let data = t.host_f32().map_err(|e| FrameError(e.to_string()))?;
        let plane = h * w;
        let byte = |v: f32| -> u8 {
            let u = match range {
                PixelRange::Signed => (v + 1.0) * 0.5,
                PixelRange::Unit => v,
            };
            if u.is_nan() {
                0
            } else {
                (u.clamp(0.0, 1.0) * 255.0).round() as u8
            }
        };
        let mut rgb = Vec::with_capacity(plane * 3);
        for i in 0..plane {
            for ch in 0..3 {
                let src = if c == 3 { ch * plane + i } else { i };
                rgb.push(byte(data[src]));
            }
        }
        Ok(RgbFrame {
            width: w,
            height: h,
            rgb,
        })
    }

    /// The pixel at (x, y).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_and_unit_ranges_gray_and_nan() {
        let t = Tensor::from_f32(&[1, 3, 1, 2], vec![-1.0, 1.0, 0.0, f32::NAN, 2.0, -3.0]).unwrap();
        let f = RgbFrame::from_tensor(&t, PixelRange::Signed).unwrap();
        assert_eq!((f.width, f.height), (2, 1));
        assert_eq!(f.pixel(0, 0), [0, 128, 255]);
        assert_eq!(f.pixel(1, 0), [255, 0, 0]);
        let g = Tensor::from_f32(&[1, 1, 1, 1], vec![0.5]).unwrap();
        assert_eq!(
            RgbFrame::from_tensor(&g, PixelRange::Unit).unwrap().rgb,
            vec![128, 128, 128]
        );
        assert!(RgbFrame::from_tensor(&g.reshape(&[1, 1]).unwrap(), PixelRange::Unit).is_err());
    }
}
