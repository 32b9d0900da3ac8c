//! Image quality measures and pictures for `wgraph eval`: PSNR, SSIM, a strip
//! of ground truth over generated frames, and a PSNR-over-ticks plot.

use image::{Rgb, RgbImage};

/// Peak signal-to-noise ratio of two 8-bit images of equal size, in dB
/// (peak 255). Identical images give 100 dB (a cap, not infinity, so means
/// stay finite).
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let (a, b) = (a.as_raw(), b.as_raw());
    let n = a.len().min(b.len()).max(1);
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum::<f64>()
        / n as f64;
    if mse <= 1e-10 {
        100.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn luma(img: &RgbImage) -> Vec<f64> {
    img.pixels()
        .map(|p| 0.299 * p.0[0] as f64 + 0.587 * p.0[1] as f64 + 0.114 * p.0[2] as f64)
        .collect()
}

/// Structural similarity on luma (Wang et al. 2004): 7×7 Gaussian window,
/// σ = 1.5, K1 = 0.01, K2 = 0.03, mean over all window positions that fit.
pub fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    const R: usize = 3;
    let (w, h) = (a.width() as usize, a.height() as usize);
    if w < 2 * R + 1 || h < 2 * R + 1 || a.dimensions() != b.dimensions() {
        return 0.0;
    }
    let (la, lb) = (luma(a), luma(b));
    let mut kernel = [[0.0f64; 2 * R + 1]; 2 * R + 1];
    let mut sum = 0.0;
    for (y, row) in kernel.iter_mut().enumerate() {
        for (x, k) in row.iter_mut().enumerate() {
            let (dx, dy) = (x as f64 - R as f64, y as f64 - R as f64);
            *k = (-(dx * dx + dy * dy) / (2.0 * 1.5 * 1.5)).exp();
            sum += *k;
        }
    }
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut total = 0.0;
    let mut count = 0usize;
    for cy in R..h - R {
        for cx in R..w - R {
            let (mut ma, mut mb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (ky, row) in kernel.iter().enumerate() {
                for (kx, k) in row.iter().enumerate() {
                    let i = (cy + ky - R) * w + (cx + kx - R);
                    let k = k / sum;
                    let (x, y) = (la[i], lb[i]);
                    ma += k * x;
                    mb += k * y;
                    saa += k * x * x;
                    sbb += k * y * y;
                    sab += k * x * y;
                }
            }
            let (va, vb, cov) = (saa - ma * ma, sbb - mb * mb, sab - ma * mb);
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
        }
    }
    total / count as f64
}

/// Ground truth (top row) over generated frames (bottom row) for the ticks
/// in `ticks`, with a 2-pixel gap.
pub fn strip(truth: &[RgbImage], generated: &[RgbImage], ticks: &[usize]) -> RgbImage {
    let (w, h) = truth.first().map_or((1, 1), |f| f.dimensions());
    let gap = 2;
    let cols = ticks.len().max(1) as u32;
    let mut out = RgbImage::from_pixel(cols * (w + gap) - gap, 2 * h + gap, Rgb([255, 255, 255]));
    for (c, &t) in ticks.iter().enumerate() {
        for (row, frames) in [truth, generated].iter().enumerate() {
            if let Some(f) = frames.get(t) {
                image::imageops::replace(
                    &mut out,
                    f,
                    (c as u32 * (w + gap)) as i64,
                    (row as u32 * (h + gap)) as i64,
                );
            }
        }
    }
    out
}

/// A line plot of PSNR per tick (0–50 dB), with the drift threshold as a
/// dashed red line and grid lines every 10 dB.
pub fn plot(psnr: &[f64], threshold: f64) -> RgbImage {
    let (w, h, margin) = (512u32, 256u32, 16u32);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let y_of = |db: f64| -> u32 {
        let v = (db.clamp(0.0, 50.0) / 50.0) * (h - 2 * margin) as f64;
        h - margin - v.round() as u32
    };
    for db in (0..=50).step_by(10) {
        let y = y_of(db as f64);
        for x in margin..w - margin {
            img.put_pixel(x, y, Rgb([225, 225, 225]));
        }
    }
    let ty = y_of(threshold);
    for x in (margin..w - margin).filter(|x| (x / 4) % 2 == 0) {
        img.put_pixel(x, ty, Rgb([220, 40, 40]));
    }
    let n = psnr.len();
    let x_of = |i: usize| -> f64 {
        if n <= 1 {
            margin as f64
        } else {
            margin as f64 + i as f64 * (w - 2 * margin) as f64 / (n - 1) as f64
        }
    };
    for i in 0..n {
        let (x0, y0) = (x_of(i), y_of(psnr[i]) as f64);
        let (x1, y1) = if i + 1 < n {
            (x_of(i + 1), y_of(psnr[i + 1]) as f64)
        } else {
            (x0, y0)
        };
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for s in 0..=steps {
            let f = s as f64 / steps as f64;
            let (x, y) = (
                (x0 + f * (x1 - x0)).round() as u32,
                (y0 + f * (y1 - y0)).round() as u32,
            );
            for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
                if x + dx < w && y + dy < h {
                    img.put_pixel(x + dx, y + dy, Rgb([30, 80, 200]));
                }
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(seed: u32, amp: i32) -> RgbImage {
        RgbImage::from_fn(32, 32, |x, y| {
            let base = ((x * 7 + y * 3) % 200) as i32;
            let n = (((x * 31 + y * 17 + seed * 13) % 11) as i32 - 5) * amp / 5;
            let v = (base + n).clamp(0, 255) as u8;
            Rgb([v, v / 2, 255 - v])
        })
    }

    #[test]
    fn psnr_of_known_error() {
        let a = RgbImage::from_pixel(4, 4, Rgb([100, 100, 100]));
        let b = RgbImage::from_pixel(4, 4, Rgb([110, 100, 90]));
        // mse = (100 + 0 + 100) / 3
        let want = 10.0 * (255.0f64 * 255.0 / (200.0 / 3.0)).log10();
        assert!((psnr(&a, &b) - want).abs() < 1e-9);
        assert_eq!(psnr(&a, &a), 100.0);
    }

    #[test]
    fn ssim_is_one_for_identical_and_drops_with_noise() {
        let a = noisy(0, 0);
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-9);
        let small = ssim(&a, &noisy(1, 10));
        let large = ssim(&a, &noisy(1, 60));
        assert!(small < 1.0 && large < small, "{small} {large}");
    }

    #[test]
    fn strip_and_plot_have_the_right_size() {
        let f = vec![noisy(0, 0); 5];
        let s = strip(&f, &f, &[0, 2, 4]);
        assert_eq!(s.dimensions(), (3 * 34 - 2, 66));
        let p = plot(&[30.0, 25.0, 10.0], 15.0);
        assert_eq!(p.dimensions(), (512, 256));
        assert!(p.pixels().any(|px| px.0 == [30, 80, 200]));
    }
}
