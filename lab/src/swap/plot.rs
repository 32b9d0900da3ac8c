//! The plot of a sampler swap: quality over speed, one labelled point per
//! combination, the Pareto front in red ([`plot_svg`] of a [`SwapReport`]).

use super::{Quality, SwapReport};

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Quality over speed (ms per tick, p50) of `report`'s rows: one labelled
/// point per combination that ran, axes with ticks, labels and units; the
/// Pareto front in red, joined by a line. `quality`: PSNR against the
/// reference run, or against the ground truth.
pub fn plot_svg(report: &SwapReport, quality: Quality) -> String {
    let y_title = match quality {
        Quality::Reference => format!(
            "PSNR against the reference, {} (dB)",
            report.reference.join(" ")
        ),
        Quality::GroundTruth => "PSNR against the ground truth (dB)".to_string(),
    };
    let points: Vec<(f64, f64, String, bool)> = report
        .rows
        .iter()
        .filter_map(|r| {
            let f = r.figures.as_ref()?;
            let (x, y) = (f.ms_per_tick_p50, f.psnr(quality)?);
            let label = r
                .combination
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            (x.is_finite() && y.is_finite()).then_some((x, y, label, f.pareto))
        })
        .collect();
    let (w, h, left, right, top, bottom) = (900.0, 560.0, 80.0, 260.0, 50.0, 70.0);
    let span = |vals: Vec<f64>| {
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            (0.0, 1.0)
        } else if hi - lo < 1e-9 {
            (lo - 1.0, hi + 1.0)
        } else {
            let pad = (hi - lo) * 0.08;
            (lo - pad, hi + pad)
        }
    };
    let (x0, x1) = span(points.iter().map(|p| p.0).collect());
    let (y0, y1) = span(points.iter().map(|p| p.1).collect());
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" font-size=\"15\">{}: quality against speed (red: the Pareto front)</text>\n",
        left,
        escape_xml(&report.graph)
    );
    // Axes, ticks and labels.
    let (ax0, ay0, ax1, ay1) = (left, h - bottom, w - right, top);
    svg.push_str(&format!(
        "<line x1=\"{ax0}\" y1=\"{ay0}\" x2=\"{ax1}\" y2=\"{ay0}\" stroke=\"black\"/>\n\
         <line x1=\"{ax0}\" y1=\"{ay0}\" x2=\"{ax0}\" y2=\"{ay1}\" stroke=\"black\"/>\n"
    ));
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let (xv, yv) = (x0 + (x1 - x0) * f, y0 + (y1 - y0) * f);
        svg.push_str(&format!(
            "<line x1=\"{x}\" y1=\"{ay0}\" x2=\"{x}\" y2=\"{}\" stroke=\"black\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{xv:.1}</text>\n\
             <line x1=\"{ax0}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"black\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{yv:.1}</text>\n",
            ay0 + 5.0,
            ay0 + 20.0,
            ax0 - 5.0,
            ax0 - 8.0,
            py(yv) + 4.0,
            x = px(xv),
            y = py(yv),
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time per tick, p50 (ms)</text>\n\
         <text transform=\"translate(22 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        (ax0 + ax1) / 2.0,
        h - 25.0,
        (ay0 + ay1) / 2.0,
        escape_xml(&y_title)
    ));
    // The front, joined in order of time.
    let mut front: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.3)
        .map(|p| (px(p.0), py(p.1)))
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    if front.len() > 1 {
        let pts: Vec<String> = front
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        svg.push_str(&format!(
            "<polyline class=\"pareto\" points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-dasharray=\"5 3\"/>\n",
            pts.join(" ")
        ));
    }
    // Labels go right of their point, moved up or down (or to the left)
    // when they would overlap a label already placed; boxes are estimated
    // from the text length at 12 px.
    let mut placed: Vec<(f64, f64, f64, f64)> = Vec::new();
    for (x, y, label, on_front) in &points {
        let (cx, cy) = (px(*x), py(*y));
        let width = 6.8 * label.chars().count() as f64;
        const SHIFTS: [f64; 9] = [0.0, -14.0, 14.0, -28.0, 28.0, -42.0, 42.0, -56.0, 56.0];
        let right = SHIFTS.map(|dy| (cx + 7.0, cy + 4.0 + dy));
        let left = SHIFTS.map(|dy| (cx - 7.0 - width, cy + 4.0 + dy));
        let candidates = right.into_iter().chain(left);
        let overlaps = |(lx, ly): (f64, f64)| {
            lx < 0.0
                || lx + width > w
                || ly < 14.0
                || ly > h
                || placed.iter().any(|&(x0, y0, x1, y1)| {
                    lx < x1 && lx + width > x0 && ly - 11.0 < y1 && ly + 3.0 > y0
                })
        };
        let mut chosen = (cx + 7.0, cy + 4.0);
        for c in candidates {
            if !overlaps(c) {
                chosen = c;
                break;
            }
        }
        placed.push((chosen.0, chosen.1 - 11.0, chosen.0 + width, chosen.1 + 3.0));
        let leader = if (chosen.1 - (cy + 4.0)).abs() > 1.0 || chosen.0 < cx {
            let end_x = if chosen.0 < cx {
                chosen.0 + width
            } else {
                chosen.0
            };
            format!(
                "<line x1=\"{cx:.1}\" y1=\"{cy:.1}\" x2=\"{end_x:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
                chosen.1 - 4.0
            )
        } else {
            String::new()
        };
        let fill = if *on_front { "#d62728" } else { "#1f77b4" };
        svg.push_str(&format!(
            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4\" fill=\"{fill}\"/>{leader}<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            chosen.0,
            chosen.1,
            escape_xml(label)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
