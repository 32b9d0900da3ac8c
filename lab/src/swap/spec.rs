//! The pieces of a sampler swap that need no run: [`Swap`] specs
//! ([`parse_swap`]) and their [`combinations`], `--reference` settings
//! ([`split_settings`]), the [`pareto_front`] of (time, quality), the
//! [`recommend`]ation for a target, and [`truth_plot_path`].

use serde::Serialize;
use std::path::{Path, PathBuf};

/// One `--swap`: the target (`NODE.PARAM` or `NODE`) and its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Swap {
    /// `NODE.PARAM` (a parameter) or `NODE` (the node's kind).
    pub target: String,
    /// The values tried, in order.
    pub values: Vec<String>,
}

/// Parses `NODE.PARAM=V1,V2` / `NODE=K1,K2`; commas inside a list, a
/// record or a string belong to the value.
pub fn parse_swap(spec: &str) -> Result<Swap, String> {
    let (target, values_text) = spec.split_once('=').ok_or_else(|| {
        format!("--swap `{spec}`: expected NODE.PARAM=V1,V2,... or NODE=KIND1,KIND2,...")
    })?;
    let mut values: Vec<String> = Vec::new();
    let (mut current, mut depth, mut quoted) = (String::new(), 0i32, false);
    for c in values_text.chars() {
        match c {
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            ',' if depth == 0 && !quoted => {
                values.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    values.push(current);
    let values: Vec<String> = values
        .into_iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if target.trim().is_empty() || values.is_empty() {
        return Err(format!("--swap `{spec}`: a target and at least one value"));
    }
    Ok(Swap {
        target: target.trim().to_string(),
        values,
    })
}

/// Every combination, as lists of `--set` changes (the first swap varies slowest).
pub fn combinations(swaps: &[Swap]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for s in swaps {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                s.values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push(format!("{}={v}", s.target));
                    c
                })
            })
            .collect();
    }
    out
}

/// `--reference` flags, each one or several settings separated by spaces
/// (`"sampler=dpmpp_2m sampler.steps=50"`); spaces inside quotes, lists
/// and records belong to the value.
pub fn split_settings(flags: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for flag in flags {
        let (mut current, mut depth, mut quoted) = (String::new(), 0i32, false);
        for c in flag.chars() {
            match c {
                '"' => quoted = !quoted,
                '[' | '{' if !quoted => depth += 1,
                ']' | '}' if !quoted => depth -= 1,
                c if c.is_whitespace() && depth == 0 && !quoted => {
                    // A space next to `=` or a comma belongs to the value.
                    let ends_open = current.ends_with('=') || current.ends_with(',');
                    if !current.is_empty() && !ends_open {
                        out.push(std::mem::take(&mut current));
                    }
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

/// Why a combination was skipped: the first error line of its failure.
pub(super) fn skip_reason(error: &str) -> String {
    let line = error
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("error"))
        .or_else(|| error.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("failed");
    let line = line.strip_prefix("error:").unwrap_or(line).trim();
    let mut short: String = line.chars().take(120).collect();
    if line.chars().count() > 120 {
        short.push('…');
    }
    short
}

/// Quality differences below this (dB) are ties: settings whose frames
/// agree to rounding are equally good, and the faster one wins.
pub const QUALITY_TIE_DB: f64 = 0.01;

/// Indices of the rows on the Pareto front of (time, quality): no other
/// row is at least as fast and at least as good, and better in one
/// (qualities within [`QUALITY_TIE_DB`] count as equal). `points`:
/// (index, ms, quality).
pub fn pareto_front(points: &[(usize, f64, f64)]) -> Vec<usize> {
    let eps = QUALITY_TIE_DB;
    points
        .iter()
        .filter(|&&(i, ms, q)| {
            !points.iter().any(|&(j, ms2, q2)| {
                j != i && ms2 <= ms && q2 >= q - eps && (ms2 < ms || q2 > q + eps)
            })
        })
        .map(|&(i, _, _)| i)
        .collect()
}

/// The recommendation for a target: the row's index, or a line saying why
/// none fits. `rows`: (index, ms p50, fps, quality). With `target_fps`, the
/// best quality at that speed; with `target_psnr`, the fastest at that quality.
pub fn recommend(
    rows: &[(usize, f64, f64, f64)],
    target_fps: Option<f64>,
    target_psnr: Option<f64>,
) -> Result<usize, String> {
    let best = |a: &&(usize, f64, f64, f64), b: &&(usize, f64, f64, f64)| {
        a.3.total_cmp(&b.3).then(b.1.total_cmp(&a.1))
    };
    if let Some(f) = target_fps {
        return rows
            .iter()
            .filter(|r| r.2 >= f)
            .max_by(best)
            .map(|r| r.0)
            .ok_or_else(|| format!("no setting reaches {f} fps"));
    }
    if let Some(p) = target_psnr {
        return rows
            .iter()
            .filter(|r| r.3 >= p)
            .min_by(|a, b| a.1.total_cmp(&b.1).then(b.3.total_cmp(&a.3)))
            .map(|r| r.0)
            .ok_or_else(|| format!("no setting reaches {p} dB"));
    }
    Err("give --target-fps or --target-psnr for a recommendation".into())
}

/// The path of the ground-truth plot beside `plot`: `NAME-gt.EXT`.
pub fn truth_plot_path(plot: &Path) -> PathBuf {
    let stem = plot
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = plot
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "png".into());
    plot.with_file_name(format!("{stem}-gt.{ext}"))
}
