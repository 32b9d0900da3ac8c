//! Image quality measures and pictures for `wgraph eval`: PSNR, SSIM, a strip
//! of ground truth over generated frames, and a PSNR-over-ticks plot.
//!
//! Main items: [`psnr`], [`ssim`], [`edges_kept`], [`detail_ratio`] (per
//! frame pair); [`Drift`] and [`drift_tick`] (when a rollout drifted);
//! [`strip`] (a picture) and [`plot_svg`] with its [`PlotLabels`].

use crate::plot::PlotError;
use image::RgbImage;

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

/// Luma gradients (right and down differences) of an image at half
/// resolution (2×2 means), so that fine texture a pixel off is not counted
/// as lost structure.
fn half_res_gradients(img: &RgbImage) -> Vec<(f64, f64)> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let l = luma(img);
    let (hw, hh) = (w / 2, h / 2);
    let half: Vec<f64> = (0..hh * hw)
        .map(|i| {
            let (y, x) = (2 * (i / hw), 2 * (i % hw));
            (l[y * w + x] + l[y * w + x + 1] + l[(y + 1) * w + x] + l[(y + 1) * w + x + 1]) / 4.0
        })
        .collect();
    let mut g = Vec::with_capacity(hw * hh);
    for y in 0..hh.saturating_sub(1) {
        for x in 0..hw.saturating_sub(1) {
            let v = half[y * hw + x];
            g.push((half[y * hw + x + 1] - v, half[(y + 1) * hw + x] - v));
        }
    }
    g
}

/// The share of the ground truth's edges a generated frame reproduces in
/// place, in [0, 1]: the generated luma gradients projected on the ground
/// truth's, `Σ ∇g·∇t / Σ |∇t|²` at half resolution, clamped. 1 for the
/// ground truth itself, near 0 for a frame blurred to its mean colours or
/// one whose structure is elsewhere (noise does not count: it is not where
/// the edges are). A ground-truth frame without edges counts as kept.
pub fn edges_kept(truth: &RgbImage, generated: &RgbImage) -> f64 {
    if truth.dimensions() != generated.dimensions() {
        return 0.0;
    }
    let (t, g) = (half_res_gradients(truth), half_res_gradients(generated));
    let tt: f64 = t.iter().map(|a| a.0 * a.0 + a.1 * a.1).sum();
    let tg: f64 = t.iter().zip(&g).map(|(a, b)| a.0 * b.0 + a.1 * b.1).sum();
    if tt < 1e-9 {
        1.0
    } else {
        (tg / tt).clamp(0.0, 1.0)
    }
}

/// High-frequency power of a frame: the mean square of its luma minus the
/// luma's 3×3 box blur (edges clamped), i.e. the energy a blur removes.
pub fn hf_power(img: &RgbImage) -> f64 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return 0.0;
    }
    let luma: Vec<f64> = img
        .pixels()
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let at = |x: isize, y: isize| {
        let x = x.clamp(0, w as isize - 1) as usize;
        let y = y.clamp(0, h as isize - 1) as usize;
        luma[y * w + x]
    };
    let mut total = 0.0;
    for y in 0..h as isize {
        for x in 0..w as isize {
            let mut blur = 0.0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    blur += at(x + dx, y + dy);
                }
            }
            let d = at(x, y) - blur / 9.0;
            total += d * d;
        }
    }
    total / (w * h) as f64
}

/// Detail kept: the generated frame's [`hf_power`] over the ground truth's
/// (1 for the truth itself, near 0 for a blur, above 1 for added noise;
/// 1 when the truth has no detail at all).
pub fn detail_ratio(truth: &RgbImage, generated: &RgbImage) -> f64 {
    let t = hf_power(truth);
    if t < 1e-9 {
        1.0
    } else {
        hf_power(generated) / t
    }
}

/// The first tick (1-based) whose detail ratio falls below one half.
pub fn detail_half_tick(detail: &[f64]) -> Option<usize> {
    detail.iter().position(|&d| d < 0.5).map(|t| t + 1)
}

/// How `wgraph eval` decides that a run drifted (see [`drift_tick`]).
#[derive(Debug, Clone, Copy)]
pub struct Drift {
    /// A tick drifted when its edges kept fall under this share of tick 1's.
    pub fraction: f64,
    /// ... or when its PSNR falls under this (dB).
    pub db: f64,
}

impl Drift {
    /// The definition in words, for the report and the JSON.
    pub fn definition(&self) -> String {
        format!(
            "the first tick whose frame keeps under {:.0}% of the ground-truth edges that tick 1 kept (edges kept: generated luma gradients projected on the ground truth's, at half resolution) or scores under {} dB PSNR",
            self.fraction * 100.0,
            self.db
        )
    }
}

/// The first tick (1-based) that drifted: its edges kept under
/// `fraction` × tick 1's, or its PSNR under `db`. None when no tick did.
pub fn drift_tick(edges_kept: &[f64], psnr: &[f64], drift: Drift) -> Option<usize> {
    let first = edges_kept.first().copied().unwrap_or(1.0);
    (0..edges_kept.len().min(psnr.len()))
        .find(|&t| edges_kept[t] < drift.fraction * first || psnr[t] < drift.db)
        .map(|t| t + 1)
}

/// Escapes text for SVG.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Height of the strip's header row (the tick numbers), in pixels.
const STRIP_HEADER: u32 = 18;
/// Width of the strip's label column ("ground truth", "generated").
const STRIP_LABELS: u32 = 88;

/// Ground truth (top row) over generated frames (bottom row) for the
/// 0-based frame indices in `ticks`, with a 2-pixel gap: each column headed
/// by its tick (1-based, as eval reports ticks), each row labelled. The
/// labels are drawn with the embedded font ([`crate::plot::svg_to_png`]).
pub fn strip(
    truth: &[RgbImage],
    generated: &[RgbImage],
    ticks: &[usize],
) -> Result<RgbImage, PlotError> {
    let (w, h) = truth.first().map_or((1, 1), |f| f.dimensions());
    let gap = 2;
    let cols = ticks.len().max(1) as u32;
    let (left, top) = (STRIP_LABELS, STRIP_HEADER);
    let (width, height) = (left + cols * (w + gap) - gap, top + 2 * h + gap);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (row, label) in ["ground truth", "generated"].iter().enumerate() {
        let y = top + row as u32 * (h + gap) + h / 2 + 4;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{y}\" text-anchor=\"end\">{label}</text>\n",
            left - 6
        ));
    }
    for (c, &t) in ticks.iter().enumerate() {
        let x = left + c as u32 * (w + gap) + w / 2;
        svg.push_str(&format!(
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">tick {}</text>\n",
            top - 5,
            t + 1
        ));
    }
    svg.push_str("</svg>\n");
    let png = crate::plot::svg_to_png(&svg)?;
    let mut out = image::load_from_memory(&png)
        .map_err(|e| PlotError::Image(format!("cannot draw the strip's labels: {e}")))?
        .to_rgb8();
    for (c, &t) in ticks.iter().enumerate() {
        for (row, frames) in [truth, generated].iter().enumerate() {
            if let Some(f) = frames.get(t) {
                image::imageops::replace(
                    &mut out,
                    f,
                    i64::from(left + c as u32 * (w + gap)),
                    i64::from(top + row as u32 * (h + gap)),
                );
            }
        }
    }
    Ok(out)
}

/// What eval's plot shows besides the figures per tick.
pub struct PlotLabels<'a> {
    /// The title (the graph, the world seed, the theme).
    pub title: &'a str,
    /// The drift definition's thresholds.
    pub drift: Drift,
    /// The tick that drifted (1-based), marked with a vertical line.
    pub drift_tick: Option<usize>,
}

/// An SVG line plot over ticks (1-based on the x axis): PSNR against the
/// ground truth (left axis, 0–50 dB, numbered every 10 dB) and the share
/// of its edges kept (right axis, 0–1), the PSNR drift threshold as a
/// dashed line, the drift tick as a vertical line; a title, axis labels
/// and a legend.
pub fn plot_svg(psnr: &[f64], edges_kept: &[f64], labels: &PlotLabels<'_>) -> String {
    let (w, h) = (720.0f64, 380.0f64);
    let (left, right, top, bottom) = (64.0, 64.0, 52.0, 52.0);
    let n = psnr.len().max(edges_kept.len());
    let x_of = |tick: f64| {
        if n <= 1 {
            left + (w - left - right) / 2.0
        } else {
            left + (tick - 1.0) * (w - left - right) / (n - 1) as f64
        }
    };
    let y_db = |db: f64| h - bottom - db.clamp(0.0, 50.0) / 50.0 * (h - top - bottom);
    let y_share = |v: f64| h - bottom - v.clamp(0.0, 1.0) * (h - top - bottom);
    let (ax0, ax1, ay0, ay1) = (left, w - right, h - bottom, top);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{}</text>\n",
        w / 2.0,
        xml(labels.title)
    );
    // Grid and the left axis: dB every 10.
    for db in (0..=50).step_by(10) {
        let y = y_db(f64::from(db));
        svg.push_str(&format!(
            "<line x1=\"{ax0}\" y1=\"{y:.1}\" x2=\"{ax1}\" y2=\"{y:.1}\" stroke=\"#e1e1e1\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{db}</text>\
             <text x=\"{}\" y=\"{:.1}\">{:.1}</text>\n",
            ax0 - 6.0,
            y + 4.0,
            ax1 + 6.0,
            y + 4.0,
            f64::from(db) / 50.0
        ));
    }
    // The x axis: ticks 1..n, at most ~12 numbers.
    // The last tick is numbered too, unless it would crowd the one before.
    let step = n.div_ceil(12).max(1);
    let last_step = 1 + (n.max(1) - 1) / step * step;
    let numbered = |t: &usize| (t - 1) % step == 0 || (*t == n && 2 * (n - last_step) > step);
    for tick in (1..=n.max(1)).filter(numbered) {
        let x = x_of(tick as f64);
        svg.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{ay0}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{tick}</text>\n",
            ay0 + 5.0,
            ay0 + 18.0
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"{ax0}\" y1=\"{ay0}\" x2=\"{ax1}\" y2=\"{ay0}\" stroke=\"black\"/>\n\
         <line x1=\"{ax0}\" y1=\"{ay0}\" x2=\"{ax0}\" y2=\"{ay1}\" stroke=\"black\"/>\n\
         <line x1=\"{ax1}\" y1=\"{ay0}\" x2=\"{ax1}\" y2=\"{ay1}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">tick</text>\n\
         <text transform=\"translate(20 {}) rotate(-90)\" text-anchor=\"middle\" fill=\"#1e50c8\">PSNR against the ground truth (dB)</text>\n\
         <text transform=\"translate({} {}) rotate(90)\" text-anchor=\"middle\" fill=\"#208040\">share of the ground truth's edges kept</text>\n",
        (ax0 + ax1) / 2.0,
        h - 14.0,
        (ay0 + ay1) / 2.0,
        w - 18.0,
        (ay0 + ay1) / 2.0,
    ));
    // The PSNR threshold, and the drift tick.
    let ty = y_db(labels.drift.db);
    svg.push_str(&format!(
        "<line x1=\"{ax0}\" y1=\"{ty:.1}\" x2=\"{ax1}\" y2=\"{ty:.1}\" stroke=\"#dc2828\" stroke-dasharray=\"4 4\"/>\n"
    ));
    if let Some(t) = labels.drift_tick {
        let x = x_of(t as f64);
        svg.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{ay0}\" x2=\"{x:.1}\" y2=\"{ay1}\" stroke=\"#dc2828\"/>\
             <text x=\"{:.1}\" y=\"{}\" fill=\"#dc2828\">drift at tick {t}</text>\n",
            x + 4.0,
            ay1 + 12.0
        ));
    }
    let line = |values: &[f64], y: &dyn Fn(f64) -> f64, colour: &str| {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x_of((i + 1) as f64), y(*v)))
            .collect();
        format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\n{}",
            points.join(" "),
            points
                .iter()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                    format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"{colour}\"/>")
                })
                .collect::<String>()
        )
    };
    svg.push_str(&line(psnr, &y_db, "#1e50c8"));
    svg.push('\n');
    svg.push_str(&line(edges_kept, &y_share, "#208040"));
    svg.push('\n');
    // Legend.
    let (lx, ly) = (ax0 + 8.0, ay1 - 10.0);
    svg.push_str(&format!(
        "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"#1e50c8\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">PSNR</text>\
         <line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"#208040\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">edges kept</text>\
         <line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"#dc2828\" stroke-dasharray=\"4 4\"/><text x=\"{}\" y=\"{}\">drift threshold {} dB; drift also when edges kept &lt; {:.0}% of tick 1's</text>\n",
        lx + 20.0,
        lx + 24.0,
        ly + 4.0,
        lx + 70.0,
        lx + 90.0,
        lx + 94.0,
        ly + 4.0,
        lx + 170.0,
        lx + 190.0,
        lx + 194.0,
        ly + 4.0,
        labels.drift.db,
        labels.drift.fraction * 100.0
    ));
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

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
        let s = strip(&f, &f, &[0, 2, 4]).unwrap();
        assert_eq!(
            s.dimensions(),
            (STRIP_LABELS + 3 * 34 - 2, STRIP_HEADER + 66)
        );
        // The frames sit under the header, right of the labels.
        assert_eq!(
            s.get_pixel(STRIP_LABELS, STRIP_HEADER),
            f[0].get_pixel(0, 0)
        );
    }

    /// Dark pixels (text) in a region of an image.
    fn dark_in(img: &RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> usize {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 128)
            .count()
    }

    /// The strip's rows are labelled and its columns headed by their ticks.
    #[test]
    fn the_strip_has_row_labels_and_tick_numbers() {
        let f = vec![RgbImage::from_pixel(32, 32, Rgb([255, 255, 255])); 3];
        let s = strip(&f, &f, &[0, 1, 2]).unwrap();
        let (w, h) = s.dimensions();
        // Label column beside each row, header above the frames.
        assert!(dark_in(&s, 0, STRIP_HEADER, STRIP_LABELS, STRIP_HEADER + 32) > 20);
        assert!(dark_in(&s, 0, STRIP_HEADER + 34, STRIP_LABELS, h) > 20);
        assert!(dark_in(&s, STRIP_LABELS, 0, w, STRIP_HEADER) > 20);
    }

    /// The plot has numbered axes, labels and a title; the drift tick is marked.
    #[test]
    fn the_plot_has_axes_labels_and_a_title() {
        let labels = PlotLabels {
            title: "g.world <seed 1001>",
            drift: Drift {
                fraction: 0.5,
                db: 15.0,
            },
            drift_tick: Some(3),
        };
        let svg = plot_svg(&[30.0, 25.0, 10.0], &[0.4, 0.3, 0.1], &labels);
        for want in [
            "g.world &lt;seed 1001&gt;",
            ">tick<",
            "PSNR against the ground truth (dB)",
            "share of the ground truth's edges kept",
            ">0<",
            ">50<",
            ">1<",
            ">3<",
            "drift at tick 3",
        ] {
            assert!(svg.contains(want), "{want} missing in {svg}");
        }
        let png = crate::plot::svg_to_png(&svg).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (720, 380));
        assert!(img.pixels().any(|p| p.0 == [30, 80, 200]), "the PSNR line");
        // Axis numbers left of the plot area are drawn.
        assert!(dark_in(&img, 0, 40, 60, 340) > 50);
    }

    /// Tick 1 keeps 0.4 of the edges; tick 3 keeps under half of that.
    #[test]
    fn drift_is_the_first_tick_that_lost_half_the_edges_or_the_psnr() {
        let d = Drift {
            fraction: 0.5,
            db: 15.0,
        };
        assert_eq!(drift_tick(&[0.4, 0.3, 0.19, 0.3], &[25.0; 4], d), Some(3));
        assert_eq!(
            drift_tick(&[0.4, 0.3, 0.25], &[25.0, 14.0, 25.0], d),
            Some(2)
        );
        assert_eq!(drift_tick(&[1.0; 8], &[100.0; 8], d), None);
        assert_eq!(drift_tick(&[], &[], d), None);
        assert!(
            d.definition()
                .contains("under 50% of the ground-truth edges that tick 1 kept")
        );
    }

    #[test]
    fn detail_is_one_for_the_truth_small_for_a_blur() {
        let a = noisy(1, 40);
        assert!((detail_ratio(&a, &a) - 1.0).abs() < 1e-12);
        let blur = image::imageops::blur(&a, 2.0);
        let d = detail_ratio(&a, &blur);
        assert!(d < 0.3, "{d}");
        let flat = RgbImage::from_pixel(16, 16, Rgb([10, 20, 30]));
        assert!(hf_power(&flat) < 1e-12);
        assert_eq!(detail_ratio(&flat, &a), 1.0);
        assert_eq!(detail_half_tick(&[1.0, 0.7, 0.49, 0.8]), Some(3));
        assert_eq!(detail_half_tick(&[1.0, 0.5]), None);
    }

    #[test]
    fn edges_kept_is_one_for_the_truth_and_small_for_a_blur() {
        let a = noisy(0, 30);
        assert!((edges_kept(&a, &a) - 1.0).abs() < 1e-9);
        let flat = RgbImage::from_pixel(32, 32, Rgb([120, 90, 60]));
        assert!(edges_kept(&a, &flat) < 1e-9);
        assert_eq!(edges_kept(&flat, &a), 1.0, "nothing to keep");
        let blur = image::imageops::blur(&a, 3.0);
        let kept = edges_kept(&a, &blur);
        assert!(kept > 0.0 && kept < 0.6, "{kept}");
    }
}
