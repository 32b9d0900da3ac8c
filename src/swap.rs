//! `wgraph bench FILE --swap SPEC...`: every combination of swapped
//! settings (a sampler's kind, its steps, any parameter), one table of speed
//! and quality.
//!
//! A spec is `NODE.PARAM=V1,V2,…` or `NODE=KIND1,KIND2,…`; commas inside a
//! list, a record or a string belong to the value
//! (`dit.guidance_interval=[0, 1],[0.2, 0.8]`). Each combination is the graph with those `--set` flags on top of
//! the command line's, run for `--frames` after a short warm-up, with the
//! same seed and actions as every other, `--rounds` times: the rounds of all
//! combinations interleave, so the machine's changing load falls on each
//! alike. Speed: ms per tick (p50, p99), fps,
//! denoiser calls, denoiser passes (batch rows of `x`: a CFG call stacking
//! two passes counts two) and model calls per tick. Quality: PSNR and SSIM of its
//! frames against a reference run of the same graph at a high-step setting
//! (`--reference`, default `sampler.steps=32`, or `sampler=ddim
//! sampler.steps=32` when the sampler has no steps), and, with `--world-seed` and
//! `--actions`, `wgraph eval`'s figures against the ground truth.

use crate::backends::Backends;
use crate::bench::RecordingBackend;
use crate::load::{Failure, LoadConfig, load_quiet};
use crate::{BenchArgs, Outcome};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value as Json, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wgraph_engine::model::ModelCache;
use wgraph_engine::node::OutputConfig;
use wgraph_engine::schedule::{RunConfig, Runner};
use wgraph_grammar::FsLoader;

/// One `--swap`: the target (`NODE.PARAM` or `NODE`) and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub target: String,
    pub values: Vec<String>,
}

/// Parses `NODE.PARAM=V1,V2` / `NODE=K1,K2`.
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

/// Every combination, as lists of `--set` flags (the first swap varies slowest).
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

/// The figures of one combination, over its timed rounds.
struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    fps: f64,
    denoiser_calls: f64,
    /// Batch rows of the denoisers' `x` per tick: the passes they ran.
    denoiser_passes: f64,
    model_calls: f64,
    frames: Vec<RgbImage>,
}

/// A combination's graph, built and warmed up, ready for timed rounds.
struct Prepared<'a> {
    graph: Arc<wgraph_engine::graph::Graph>,
    recording: RecordingBackend<'a>,
    dir: std::path::PathBuf,
    /// Per timed round: tick p50 and p99 (ms).
    p50s: Vec<f64>,
    p99s: Vec<f64>,
    wall_s: f64,
    ticks: u64,
    denoiser_calls: usize,
    denoiser_passes: usize,
    model_calls: usize,
}

/// Builds the graph with `sets` (on top of `--set`) and warms it up
/// (sessions, allocations; frames discarded).
fn prepare<'a>(
    args: &BenchArgs,
    models: &'a ModelCache<Backends>,
    sets: &[String],
    ticks: u64,
    dir: &Path,
) -> Result<Prepared<'a>, String> {
    let recording = RecordingBackend::new(models);
    let all: Vec<String> = args.set.iter().chain(sets).cloned().collect();
    let config = LoadConfig {
        set: &all,
        seed: None,
        paths: Vec::new(),
        output: OutputConfig {
            dir: dir.to_path_buf(),
            display: wgraph_engine::node::DisplayTarget::PngDir(dir.to_path_buf()),
            ..OutputConfig::default()
        },
        provider: args.provider.map(Into::into),
        backend_kind: args.backend.map(Into::into),
        backend: &recording,
    };
    let graph = match load_quiet(&args.file, &config, &[], &FsLoader) {
        Ok(q) => Arc::new(q.graph),
        Err(Failure::Errors(text)) => return Err(format!("{}:\n{text}", sets.join(" "))),
        Err(Failure::Usage(u)) => return Err(u),
    };
    let warm = RunConfig {
        ticks: ticks.min(2),
        workers: args.workers.unwrap_or(0),
        pipeline_depth: args.pipeline,
    };
    Runner::new(Arc::clone(&graph))
        .and_then(|mut r| r.run(&warm, &mut |_| {}))
        .map_err(|e| e.to_string())?;
    recording.take();
    Ok(Prepared {
        graph,
        recording,
        dir: dir.to_path_buf(),
        p50s: Vec::new(),
        p99s: Vec::new(),
        wall_s: 0.0,
        ticks: 0,
        denoiser_calls: 0,
        denoiser_passes: 0,
        model_calls: 0,
    })
}

impl Prepared<'_> {
    /// One timed round of `ticks` from a fresh run (its frames replace the
    /// last round's in `dir`).
    fn round(&mut self, args: &BenchArgs, ticks: u64) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.recording.take();
        let run_config = RunConfig {
            ticks,
            workers: args.workers.unwrap_or(0),
            pipeline_depth: args.pipeline,
        };
        let started = Instant::now();
        let report = Runner::new(Arc::clone(&self.graph))
            .and_then(|mut r| r.run(&run_config, &mut |_| {}))
            .map_err(|e| e.to_string())?;
        self.wall_s += started.elapsed().as_secs_f64();
        let calls = self.recording.take();
        // Denoiser models by id, with the index of their `x` input.
        let denoisers: Vec<(usize, Option<usize>)> = self
            .recording
            .models
            .lock()
            .map(|m| {
                m.iter()
                    .enumerate()
                    .filter(|(_, m)| {
                        // A `block_denoiser` is counted by its embed (once per call).
                        m.signature().metadata.get("wgraph.role").is_some_and(|r| {
                            r == "denoiser" || r == "controlnet" || r == "denoiser_embed"
                        })
                    })
                    .map(|(i, m)| (i, m.signature().input("x").map(|(x, _)| x)))
                    .collect()
            })
            .unwrap_or_default();
        for (id, inputs) in &calls {
            if let Some((_, x)) = denoisers.iter().find(|(d, _)| d == id) {
                self.denoiser_calls += 1;
                self.denoiser_passes += x
                    .and_then(|x| inputs.get(x))
                    .and_then(|t| t.shape().first().copied())
                    .unwrap_or(1);
            }
        }
        self.model_calls += calls.len();
        self.ticks += report.ticks;
        let stats = report.metrics.tick_latency.stats();
        self.p50s.push(stats.p50_ms);
        self.p99s.push(stats.p99_ms);
        Ok(())
    }

    /// The figures over every round (p50: the median of the rounds' p50s;
    /// p99: the largest round p99; fps: all ticks over all their time), and
    /// the last round's frames.
    fn measured(&self) -> Result<Measured, String> {
        let done = self.ticks.max(1) as f64;
        let rounds = self.p50s.len().max(1) as u64;
        let mut p50s = self.p50s.clone();
        p50s.sort_by(f64::total_cmp);
        let p50 = p50s.get(p50s.len() / 2).copied().unwrap_or(f64::NAN);
        let p99 = self.p99s.iter().copied().fold(f64::NAN, f64::max);
        let mut frames = Vec::new();
        for t in 0..self.ticks / rounds {
            let path = self.dir.join(format!("frame_{t:05}.png"));
            let img = image::open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .to_rgb8();
            frames.push(img);
        }
        Ok(Measured {
            p50_ms: p50,
            p99_ms: p99,
            fps: done / self.wall_s.max(1e-9),
            denoiser_calls: self.denoiser_calls as f64 / done,
            denoiser_passes: self.denoiser_passes as f64 / done,
            model_calls: self.model_calls as f64 / done,
            frames,
        })
    }
}

fn mean_quality(frames: &[RgbImage], reference: &[RgbImage]) -> (f64, f64) {
    let n = frames.len().min(reference.len()).max(1) as f64;
    let (mut p, mut s) = (0.0, 0.0);
    for (a, b) in frames.iter().zip(reference) {
        p += crate::quality::psnr(a, b).min(100.0);
        s += crate::quality::ssim(a, b);
    }
    (p / n, s / n)
}

/// The reference when `--reference` is not given: the graph's `sampler` at
/// 32 steps, or — when its kind has no `steps` (a `df_window`) — DDIM at 32
/// steps on the same denoiser.
fn default_reference(args: &BenchArgs, models: &ModelCache<Backends>, dir: &Path) -> Vec<String> {
    let steps = || vec!["sampler.steps=32".to_string()];
    let config = LoadConfig {
        set: &args.set,
        seed: None,
        paths: Vec::new(),
        output: OutputConfig {
            dir: dir.to_path_buf(),
            display: wgraph_engine::node::DisplayTarget::PngDir(dir.to_path_buf()),
            ..OutputConfig::default()
        },
        provider: args.provider.map(Into::into),
        backend_kind: args.backend.map(Into::into),
        backend: models,
    };
    let Ok(q) = load_quiet(&args.file, &config, &[], &FsLoader) else {
        // The reference run reports the graph's errors.
        return steps();
    };
    let registry = wgraph_nodes::registry();
    let has_steps = q
        .graph
        .nodes
        .iter()
        .find(|n| n.name == "sampler")
        .and_then(|n| registry.get(n.kind))
        .is_none_or(|k| k.params().iter().any(|p| p.name == "steps"));
    if has_steps {
        steps()
    } else {
        vec!["sampler=ddim".into(), "sampler.steps=32".into()]
    }
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
fn skip_reason(error: &str) -> String {
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
const QUALITY_TIE_DB: f64 = 0.01;

/// Indices of the rows on the Pareto front of (time, quality): no other
/// row is at least as fast and at least as good, and better in one
/// (qualities within [`QUALITY_TIE_DB`] count as equal).
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

/// The recommendation for a target: `(row, why)`, or `None` and a line
/// saying why none fits. `rows`: (index, ms p50, fps, quality).
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

/// A combination: built and timed, or skipped (it does not apply to this
/// graph: a parameter the swapped kind lacks, a type that does not fit).
enum Slot<'a> {
    Ready(Box<Prepared<'a>>),
    Skipped(String),
}

/// The path of the ground-truth plot beside `plot`: `NAME-gt.EXT`.
pub fn truth_plot_path(plot: &Path) -> std::path::PathBuf {
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

/// `wgraph bench FILE --swap ...`
pub fn bench_swap(args: &BenchArgs) -> Outcome {
    let swaps: Vec<Swap> = match args.swap.iter().map(|s| parse_swap(s)).collect() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Usage;
        }
    };
    if let Some(path) = &args.plot
        && let Err(e) = crate::plotfile::check_name(path)
    {
        eprintln!("error: --plot: {e}");
        return Outcome::Usage;
    }
    for (flag, v) in [
        ("--target-fps", args.target_fps),
        ("--target-psnr", args.target_psnr),
    ] {
        if let Some(v) = v
            && !(v.is_finite() && v > 0.0)
        {
            eprintln!("error: {flag} must be a positive number, found {v}");
            return Outcome::Usage;
        }
    }
    let combos = combinations(&swaps);
    let work = std::env::temp_dir().join(format!("wgraph-swap-{}", std::process::id()));
    let models = ModelCache::new(Backends::new());
    let reference: Vec<String> = if args.reference.is_empty() {
        default_reference(args, &models, &work.join("probe"))
    } else {
        split_settings(&args.reference)
    };
    let ticks = args.frames;
    let bar = ProgressBar::new(combos.len() as u64 + 1);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} runs [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("reference {}", reference.join(" ")));
    let with_truth = args.world_seed.is_some() && args.actions.is_some();
    let result = (|| -> Result<(Json, String), String> {
        let mut reference_run = prepare(args, &models, &reference, ticks, &work.join("reference"))
            .map_err(|e| format!("the reference ({}) does not run: {e}", reference.join(" ")))?;
        reference_run.round(args, ticks)?;
        let reference_run = reference_run.measured()?;
        bar.inc(1);
        // Every combination built and warmed up first, then timed in
        // interleaved rounds (round r of each before round r + 1 of any), so
        // a change in the machine's load falls on all of them alike. One
        // that does not apply is skipped, not fatal.
        let mut slots: Vec<Slot> = combos
            .iter()
            .enumerate()
            .map(|(i, sets)| {
                match prepare(args, &models, sets, ticks, &work.join(format!("run{i}"))) {
                    Ok(p) => Slot::Ready(Box::new(p)),
                    Err(e) => Slot::Skipped(skip_reason(&e)),
                }
            })
            .collect();
        for _ in 0..args.rounds.max(1) {
            for slot in &mut slots {
                if let Slot::Ready(p) = slot
                    && let Err(e) = p.round(args, ticks)
                {
                    *slot = Slot::Skipped(skip_reason(&e));
                }
            }
        }
        let mut rows = Vec::new();
        for (i, (sets, slot)) in combos.iter().zip(&slots).enumerate() {
            bar.set_message(sets.join(" "));
            let settings: serde_json::Map<String, Json> = sets
                .iter()
                .filter_map(|s| s.split_once('='))
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            let measured = match slot {
                Slot::Ready(p) => p.measured(),
                Slot::Skipped(why) => Err(why.clone()),
            };
            let m = match measured {
                Ok(m) => m,
                Err(why) => {
                    rows.push(json!({"combination": settings, "skipped": why}));
                    bar.inc(1);
                    continue;
                }
            };
            let (psnr, ssim) = mean_quality(&m.frames, &reference_run.frames);
            let truth = match (args.world_seed, &args.actions) {
                (Some(seed), Some(actions)) => {
                    let all: Vec<String> = args.set.iter().chain(sets).cloned().collect();
                    crate::commands::bench_quality_with(
                        args,
                        &all,
                        seed,
                        actions,
                        &work.join(format!("eval{i}")),
                    )
                    .ok()
                }
                _ => None,
            };
            let gt = |k: &str| truth.as_ref().and_then(|q| q[k].as_f64());
            rows.push(json!({
                "combination": settings,
                "ms_per_tick_p50": m.p50_ms,
                "ms_per_tick_p99": m.p99_ms,
                "fps": m.fps,
                "denoiser_calls_per_tick": m.denoiser_calls,
                "denoiser_passes_per_tick": m.denoiser_passes,
                "model_calls_per_tick": m.model_calls,
                "psnr_vs_reference": psnr,
                "ssim_vs_reference": ssim,
                "psnr_vs_ground_truth": gt("psnr_mean_1_n"),
                "ssim_vs_ground_truth": gt("ssim_mean_1_n"),
                "ground_truth": truth,
            }));
            bar.inc(1);
        }
        // Quality for the front and the recommendation: against the ground
        // truth when there is one, else against the reference.
        let quality_key = if with_truth {
            "psnr_vs_ground_truth"
        } else {
            "psnr_vs_reference"
        };
        let figures: Vec<(usize, f64, f64, f64)> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                Some((
                    i,
                    r["ms_per_tick_p50"].as_f64()?,
                    r["fps"].as_f64()?,
                    r[quality_key].as_f64()?,
                ))
            })
            .collect();
        let front = pareto_front(
            &figures
                .iter()
                .map(|&(i, ms, _, q)| (i, ms, q))
                .collect::<Vec<_>>(),
        );
        for (i, r) in rows.iter_mut().enumerate() {
            if r.get("skipped").is_none() {
                r["pareto"] = json!(front.contains(&i));
            }
        }
        let recommended = recommend(&figures, args.target_fps, args.target_psnr);
        let label = |i: usize| combos[i].join(" ");
        let mut table = format!(
            "reference: {} ({:.2} ms/tick p50); quality: {}\n",
            reference.join(" "),
            reference_run.p50_ms,
            if with_truth {
                "PSNR against the ground truth (world seed)"
            } else {
                "PSNR against the reference"
            }
        );
        table.push_str(&format!(
            "{:<40} {:>9} {:>9} {:>7} {:>9} {:>7} {:>9} {:>7}",
            "combination", "p50 ms", "p99 ms", "fps", "denoiser", "passes", "PSNR ref", "SSIM"
        ));
        if with_truth {
            table.push_str(&format!(" {:>9} {:>7}", "PSNR GT", "SSIM GT"));
        }
        table.push_str(" front\n");
        let num = |v: &Json| v.as_f64().unwrap_or(f64::NAN);
        for (i, r) in rows.iter().enumerate() {
            let name = label(i);
            if let Some(why) = r["skipped"].as_str() {
                table.push_str(&format!("{name:<40} skipped: {why}\n"));
                continue;
            }
            table.push_str(&format!(
                "{name:<40} {:>9.2} {:>9.2} {:>7.1} {:>9.1} {:>7.1} {:>9.2} {:>7.3}",
                num(&r["ms_per_tick_p50"]),
                num(&r["ms_per_tick_p99"]),
                num(&r["fps"]),
                num(&r["denoiser_calls_per_tick"]),
                num(&r["denoiser_passes_per_tick"]),
                num(&r["psnr_vs_reference"]),
                num(&r["ssim_vs_reference"])
            ));
            if with_truth {
                table.push_str(&format!(
                    " {:>9.2} {:>7.3}",
                    num(&r["psnr_vs_ground_truth"]),
                    num(&r["ssim_vs_ground_truth"])
                ));
            }
            table.push_str(if front.contains(&i) { "     *\n" } else { "\n" });
        }
        let skipped = rows.iter().filter(|r| r.get("skipped").is_some()).count();
        table.push_str(&format!(
            "* Pareto front: fastest for its quality ({} of {} ran{})\n",
            rows.len() - skipped,
            rows.len(),
            if skipped > 0 {
                format!(", {skipped} skipped: they do not apply")
            } else {
                String::new()
            }
        ));
        let target = match (args.target_fps, args.target_psnr) {
            (Some(f), _) => format!("for ≥ {f} fps"),
            (_, Some(p)) => format!("for ≥ {p} dB"),
            _ => String::new(),
        };
        let recommendation = match &recommended {
            Ok(i) => {
                let r = &rows[*i];
                table.push_str(&format!(
                    "recommended {target}: {} ({:.1} fps, {:.2} ms/tick p50, {:.2} dB)\n",
                    label(*i),
                    num(&r["fps"]),
                    num(&r["ms_per_tick_p50"]),
                    num(&r[quality_key])
                ));
                json!({"combination": r["combination"], "target_fps": args.target_fps, "target_psnr": args.target_psnr})
            }
            Err(why) => {
                let names: Vec<String> = front.iter().map(|&i| label(i)).collect();
                table.push_str(&format!(
                    "recommended: none: {why} (the front: {})\n",
                    names.join("; ")
                ));
                Json::Null
            }
        };
        let json = json!({
            "graph": args.file.display().to_string(),
            "frames": ticks,
            "reference": reference,
            "reference_ms_per_tick_p50": reference_run.p50_ms,
            "quality": quality_key,
            "swaps": swaps.iter().map(|s| json!({"target": s.target, "values": s.values})).collect::<Vec<_>>(),
            "rows": rows,
            "recommended": recommendation,
        });
        Ok((json, table))
    })();
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&work);
    let (json, table) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::RuntimeFailure;
        }
    };
    print!("{table}");
    if let Some(path) = &args.plot {
        let mut plots = vec![(path.clone(), plot_svg(&json))];
        if with_truth {
            plots.push((
                truth_plot_path(path),
                plot_svg_of(
                    &json,
                    "psnr_vs_ground_truth",
                    "PSNR against the ground truth (dB)",
                ),
            ));
        }
        for (path, svg) in plots {
            if let Err(e) = crate::plotfile::save(&path, &svg) {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        }
    }
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&json)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                wgraph_engine::output::write_file(path, (s + "\n").as_bytes())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Outcome::RuntimeFailure;
        }
    }
    Outcome::Ok
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Quality (PSNR against the reference, dB) over speed (ms per tick, p50):
/// one labelled point per combination, axes with ticks, labels and units;
/// the Pareto front in red, joined by a line.
pub fn plot_svg(json: &Json) -> String {
    let reference = json["reference"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    plot_svg_of(
        json,
        "psnr_vs_reference",
        &format!("PSNR against the reference, {reference} (dB)"),
    )
}

/// [`plot_svg`] of the quality figure `key` of each row, the y axis titled
/// `y_title`.
pub fn plot_svg_of(json: &Json, key: &str, y_title: &str) -> String {
    let empty = Vec::new();
    let rows = json["rows"].as_array().unwrap_or(&empty);
    let points: Vec<(f64, f64, String, bool)> = rows
        .iter()
        .filter_map(|r| {
            let x = r["ms_per_tick_p50"].as_f64()?;
            let y = r[key].as_f64()?;
            let label = r["combination"]
                .as_object()?
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" ");
            Some((x, y, label, r["pareto"].as_bool().unwrap_or(false)))
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
        escape_xml(json["graph"].as_str().unwrap_or(""))
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
        escape_xml(y_title)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_combinations() {
        let a = parse_swap("sampler=euler,ddim").unwrap();
        let b = parse_swap("sampler.steps=2, 4").unwrap();
        assert_eq!(b.values, ["2", "4"]);
        assert_eq!(
            combinations(&[a, b]),
            [
                vec!["sampler=euler", "sampler.steps=2"],
                vec!["sampler=euler", "sampler.steps=4"],
                vec!["sampler=ddim", "sampler.steps=2"],
                vec!["sampler=ddim", "sampler.steps=4"],
            ]
        );
        assert!(parse_swap("sampler").is_err());
        assert!(parse_swap("sampler=").is_err());
        // Lists and records keep their commas.
        let c =
            parse_swap("dit.guidance_interval=[0, 1], [0.2, 0.8],{a = 1, b = 2},\"x, y\"").unwrap();
        assert_eq!(
            c.values,
            ["[0, 1]", "[0.2, 0.8]", "{a = 1, b = 2}", "\"x, y\""]
        );
    }

    #[test]
    fn reference_flags_split_into_settings() {
        assert_eq!(
            split_settings(&["sampler=dpmpp_2m sampler.steps=50".into(), "dit.x=1".into()]),
            ["sampler=dpmpp_2m", "sampler.steps=50", "dit.x=1"]
        );
        assert_eq!(
            split_settings(&["dit.guidance_interval=[0, 0.6] a.b=\"x y\"".into()]),
            ["dit.guidance_interval=[0, 0.6]", "a.b=\"x y\""]
        );
    }

    #[test]
    fn the_front_and_the_recommendation() {
        // (row, ms, quality): 1 is slower and worse than 0; 3 is the best.
        let pts = [
            (0, 5.0, 20.0),
            (1, 6.0, 19.0),
            (2, 9.0, 30.0),
            (3, 12.0, 31.0),
        ];
        assert_eq!(pareto_front(&pts), [0, 2, 3]);
        // A tie to rounding: the faster of the two only.
        let tie = [(0, 7.0, 24.4893), (1, 6.0, 24.4892), (2, 9.0, 30.0)];
        assert_eq!(pareto_front(&tie), [1, 2]);
        let rows: Vec<(usize, f64, f64, f64)> = pts
            .iter()
            .map(|&(i, ms, q)| (i, ms, 1000.0 / ms, q))
            .collect();
        assert_eq!(recommend(&rows, Some(100.0), None), Ok(2));
        assert_eq!(recommend(&rows, None, Some(25.0)), Ok(2));
        assert_eq!(recommend(&rows, None, Some(30.5)), Ok(3));
        assert!(
            recommend(&rows, Some(500.0), None)
                .unwrap_err()
                .contains("500 fps")
        );
        assert!(recommend(&rows, None, None).is_err());
        assert_eq!(
            truth_plot_path(Path::new("out/s.png")),
            Path::new("out/s-gt.png")
        );
    }

    #[test]
    fn the_plot_labels_every_point_and_both_axes() {
        let json = json!({
            "graph": "g<1>.world",
            "reference": ["sampler.steps=32"],
            "rows": [
                {"combination": {"sampler": "euler"}, "ms_per_tick_p50": 5.0, "psnr_vs_reference": 20.0},
                {"combination": {"sampler": "ddim"}, "ms_per_tick_p50": 9.0, "psnr_vs_reference": 30.0},
            ],
        });
        let svg = plot_svg(&json);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(">sampler=euler</text>") && svg.contains(">sampler=ddim</text>"));
        assert!(svg.contains("time per tick, p50 (ms)"));
        assert!(svg.contains("PSNR against the reference, sampler.steps=32 (dB)"));
        assert!(svg.contains("g&lt;1&gt;.world"));
    }

    /// Points that sit together get labels that do not overlap (the bench
    /// of yume: ddim 2 and euler 2 at the same speed and quality).
    #[test]
    fn labels_of_close_points_do_not_overlap() {
        let row = |kind: &str, ms: f64, psnr: f64| json!({"combination": {"sampler": kind, "sampler.steps": "2"}, "ms_per_tick_p50": ms, "psnr_vs_reference": psnr});
        let json = json!({
            "graph": "g.world",
            "reference": ["sampler.steps=32"],
            "rows": [row("euler", 7.8, 28.07), row("ddim", 8.3, 27.97), row("sde", 8.0, 28.0), row("far", 40.0, 20.0)],
        });
        let svg = plot_svg(&json);
        // (x, y) of each point label.
        let labels: Vec<(f64, f64)> = svg
            .lines()
            .filter(|l| l.contains("<circle"))
            .map(|l| {
                let text = &l[l.find("<text x=\"").unwrap() + 9..];
                let x: f64 = text[..text.find('"').unwrap()].parse().unwrap();
                let rest = &text[text.find("y=\"").unwrap() + 3..];
                let y: f64 = rest[..rest.find('"').unwrap()].parse().unwrap();
                (x, y)
            })
            .collect();
        assert_eq!(labels.len(), 4);
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                let apart = (a.1 - b.1).abs() >= 14.0 || (a.0 - b.0).abs() > 150.0;
                assert!(apart, "labels at {a:?} and {b:?} overlap:\n{svg}");
            }
        }
        assert!(crate::plotfile::svg_to_png(&svg).is_ok());
    }
}
