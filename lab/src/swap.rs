//! Sampler swaps (`wgraph bench FILE --swap SPEC...`): every combination of
//! swapped settings (a sampler's kind, its steps, any parameter), one table
//! of speed and quality. [`swap`] takes [`SwapOptions`] and returns a
//! [`SwapReport`] (one [`SwapRow`] per combination; [`SwapReport::table`]
//! is what the command prints, [`plot_svg`] what it draws), telling a
//! [`SwapProgress`] how far it is.
//!
//! A spec is `NODE.PARAM=V1,V2,…` or `NODE=KIND1,KIND2,…` ([`parse_swap`]);
//! commas inside a list, a record or a string belong to the value
//! (`dit.guidance_interval=[0, 1],[0.2, 0.8]`). Each combination is the
//! graph with those `--set` changes on top of the options' own, run for
//! `frames` ticks after a short warm-up, with the same seed and actions as
//! every other, `rounds` times: the rounds of all combinations interleave,
//! so the machine's changing load falls on each alike. Speed: ms per tick
//! (p50, p99), fps, denoiser calls, denoiser passes (batch rows of `x`: a
//! CFG call stacking two passes counts two) and model calls per tick.
//! Quality: PSNR and SSIM of its frames (the images its `display` showed,
//! taken from the run) against a reference run of the same graph at a
//! high-step setting (default `sampler.steps=32`, or `sampler=ddim
//! sampler.steps=32` when the sampler has no steps), and, with
//! [`SwapOptions::ground_truth`], [`crate::eval`]'s figures against the
//! ground truth, evaluated in memory.

mod plot;
mod spec;
mod table;

pub use plot::plot_svg;
pub use spec::{
    QUALITY_TIE_DB, Swap, combinations, pareto_front, parse_swap, recommend, split_settings,
    truth_plot_path,
};

use crate::LabError;
use crate::bench::RecordingBackend;
use crate::eval::{EvalOptions, EvalReport, displayed_frame, evaluate};
use crate::load::{LoadRequest, Models};
use image::RgbImage;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use wgraph_engine::graph::Graph;
use wgraph_engine::load::Loaded;
use wgraph_engine::model::Backend;
use wgraph_engine::node::{DisplayTarget, OutputConfig};
use wgraph_engine::schedule::{RunConfig, RunEvent, Runner, Shown};
use wgraph_grammar::FsLoader;
use wgraph_session::Failure;

/// The ground truth a swap's quality columns are measured against.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    /// Seed of the ground-truth world (held out).
    pub world_seed: u64,
    /// The action file fed to the graph and the ground truth.
    pub actions: PathBuf,
}

/// What [`swap`] compares: `wgraph bench --swap`'s flags as plain data.
#[derive(Debug, Clone)]
pub struct SwapOptions {
    /// The graph file.
    pub file: PathBuf,
    /// The swapped settings; every combination runs ([`combinations`]).
    pub swaps: Vec<Swap>,
    /// The reference run's settings (`NODE.PARAM=VALUE`, `NODE=KIND`);
    /// empty: the graph's `sampler` at 32 steps (DDIM at 32 steps when its
    /// kind has no steps).
    pub reference: Vec<String>,
    /// Ticks per round.
    pub frames: u64,
    /// Timed rounds of each combination.
    pub rounds: u32,
    /// `--set` changes under every combination's.
    pub set: Vec<String>,
    /// Worker threads of the engine (`None` or 0: the calling thread).
    pub workers: Option<usize>,
    /// Ticks in flight when using workers.
    pub pipeline: usize,
    /// Quality against the ground truth too (`wgraph eval`'s figures).
    pub ground_truth: Option<GroundTruth>,
    /// Recommend the best quality at this many ticks per second or more.
    pub target_fps: Option<f64>,
    /// Recommend the fastest setting at this PSNR (dB) or more.
    pub target_psnr: Option<f64>,
}

impl Default for SwapOptions {
    /// 32 ticks, 5 rounds, the calling thread, no swaps, no targets.
    fn default() -> Self {
        SwapOptions {
            file: PathBuf::new(),
            swaps: Vec::new(),
            reference: Vec::new(),
            frames: 32,
            rounds: 5,
            set: Vec::new(),
            workers: None,
            pipeline: 2,
            ground_truth: None,
            target_fps: None,
            target_psnr: None,
        }
    }
}

impl SwapOptions {
    /// Checks the targets: positive numbers.
    pub fn validate(&self) -> Result<(), LabError> {
        for (flag, v) in [
            ("--target-fps", self.target_fps),
            ("--target-psnr", self.target_psnr),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(LabError::Usage(format!(
                    "{flag} must be a positive number, found {v}"
                )));
            }
        }
        Ok(())
    }
}

/// Which quality figure ranks the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Quality {
    /// PSNR against the reference run.
    #[serde(rename = "psnr_vs_reference")]
    Reference,
    /// PSNR against the ground truth.
    #[serde(rename = "psnr_vs_ground_truth")]
    GroundTruth,
}

/// What a sampler swap measured, as `bench --swap --json` writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwapReport {
    /// The graph file, as given.
    pub graph: String,
    /// Ticks per round.
    pub frames: u64,
    /// The reference run's settings.
    pub reference: Vec<String>,
    /// The reference run's ms per tick (p50).
    pub reference_ms_per_tick_p50: f64,
    /// The figure the front and the recommendation rank by.
    pub quality: Quality,
    /// The swapped settings.
    pub swaps: Vec<Swap>,
    /// One row per combination, in [`combinations`] order.
    pub rows: Vec<SwapRow>,
    /// The setting recommended for the target, if one fits.
    pub recommended: Option<Recommended>,
    /// Why none is recommended (no target, or none reaches it).
    #[serde(skip)]
    pub not_recommended: Option<String>,
}

/// One combination: measured, or skipped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwapRow {
    /// The combination's settings: target → value.
    pub combination: BTreeMap<String, String>,
    /// The combination's `--set` changes joined by spaces (its name in the table).
    #[serde(skip)]
    pub label: String,
    /// Why it did not run (it does not apply to this graph).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Its figures, when it ran.
    #[serde(flatten)]
    pub figures: Option<RowFigures>,
}

/// The figures of a combination that ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowFigures {
    /// Median of the rounds' tick p50 (ms).
    pub ms_per_tick_p50: f64,
    /// Largest of the rounds' tick p99 (ms).
    pub ms_per_tick_p99: f64,
    /// Every timed tick over all their time.
    pub fps: f64,
    /// Denoiser (and controlnet) calls per tick.
    pub denoiser_calls_per_tick: f64,
    /// Batch rows of the denoisers' `x` per tick: the passes they ran.
    pub denoiser_passes_per_tick: f64,
    /// Model calls per tick.
    pub model_calls_per_tick: f64,
    /// Mean PSNR of its last round's frames against the reference's (dB).
    pub psnr_vs_reference: f64,
    /// Mean SSIM of the same.
    pub ssim_vs_reference: f64,
    /// Mean PSNR against the ground truth (dB), when measured.
    pub psnr_vs_ground_truth: Option<f64>,
    /// Mean SSIM against the ground truth, when measured.
    pub ssim_vs_ground_truth: Option<f64>,
    /// The whole evaluation against the ground truth.
    pub ground_truth: Option<EvalReport>,
    /// On the Pareto front of (ms p50, quality).
    pub pareto: bool,
}

impl RowFigures {
    /// The PSNR `quality` names.
    pub fn psnr(&self, quality: Quality) -> Option<f64> {
        match quality {
            Quality::Reference => Some(self.psnr_vs_reference),
            Quality::GroundTruth => self.psnr_vs_ground_truth,
        }
    }
}

/// The recommended setting and the target it meets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommended {
    /// Its row.
    #[serde(skip)]
    pub row: usize,
    /// Its settings.
    pub combination: BTreeMap<String, String>,
    /// The speed asked for.
    pub target_fps: Option<f64>,
    /// The quality asked for.
    pub target_psnr: Option<f64>,
}

/// How far a [`swap`] is: what the command line's progress bar shows. Every
/// method does nothing unless implemented (`()` shows nothing).
pub trait SwapProgress {
    /// The runs to come (the reference and each combination) and what runs first.
    fn start(&self, _runs: u64, _message: &str) {}
    /// What is measured now.
    fn message(&self, _message: &str) {}
    /// One more run done.
    fn inc(&self) {}
    /// A combination's evaluation against the ground truth failed (its
    /// columns stay empty).
    fn eval_failed(&self, _error: &LabError) {}
}

impl SwapProgress for () {}

/// The figures of one combination, over its timed rounds.
struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    fps: f64,
    denoiser_calls: f64,
    denoiser_passes: f64,
    model_calls: f64,
    frames: Vec<RgbImage>,
}

/// A combination's graph, built and warmed up, ready for timed rounds.
struct Prepared<'a> {
    graph: Arc<Graph>,
    recording: RecordingBackend<'a>,
    dir: PathBuf,
    /// Per timed round: tick p50 and p99 (ms).
    p50s: Vec<f64>,
    p99s: Vec<f64>,
    wall_s: f64,
    ticks: u64,
    denoiser_calls: usize,
    denoiser_passes: usize,
    model_calls: usize,
    /// What the display showed on each tick of the last round.
    shown: Vec<Option<Shown>>,
}

/// [`crate::load::load_rendered`] quietly (a swap reports failures as skipped
/// rows and its warnings are the reference run's).
fn load_through(
    path: &Path,
    request: &LoadRequest,
    models: &Models,
    backend: &dyn Backend,
) -> Result<Loaded, Failure> {
    let quiet = Models {
        warnings: None,
        ..models.clone()
    };
    crate::load::load_rendered(path, request, &quiet, backend, &FsLoader)
}

/// Where a combination's sinks write; its display only checks frames.
fn request(options: &SwapOptions, sets: &[String], dir: &Path) -> LoadRequest {
    LoadRequest {
        set: options.set.iter().chain(sets).cloned().collect(),
        output: OutputConfig {
            dir: dir.to_path_buf(),
            display: DisplayTarget::Discard,
            ..OutputConfig::default()
        },
        ..LoadRequest::default()
    }
}

fn run_config(options: &SwapOptions, ticks: u64) -> RunConfig {
    RunConfig {
        ticks,
        workers: options.workers.unwrap_or(0),
        pipeline_depth: options.pipeline,
    }
}

/// Builds the graph with `sets` (on top of the options' `set`) and warms
/// it up (sessions, allocations; frames discarded).
fn prepare<'a>(
    options: &SwapOptions,
    models: &'a Models,
    sets: &[String],
    dir: &Path,
) -> Result<Prepared<'a>, String> {
    let recording = RecordingBackend::new(models.backend.as_ref());
    let graph = match load_through(
        &options.file,
        &request(options, sets, dir),
        models,
        &recording,
    ) {
        Ok(q) => Arc::new(q.graph),
        Err(Failure::Errors(text)) => return Err(format!("{}:\n{text}", sets.join(" "))),
        Err(Failure::Usage(u)) => return Err(u),
    };
    Runner::new(Arc::clone(&graph))
        .and_then(|mut r| r.run(&run_config(options, options.frames.min(2)), &mut |_| {}))
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
        shown: Vec::new(),
    })
}

impl Prepared<'_> {
    /// One timed round of `frames` ticks from a fresh run (its frames
    /// replace the last round's).
    fn round(&mut self, options: &SwapOptions) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.recording.take();
        let mut shown: Vec<Option<Shown>> = Vec::new();
        let started = Instant::now();
        let report = Runner::new(Arc::clone(&self.graph))
            .and_then(|mut r| {
                r.run(&run_config(options, options.frames), &mut |event| {
                    if let RunEvent::TickDone { tick, shown: s, .. } = event {
                        let t = *tick as usize;
                        if shown.len() <= t {
                            shown.resize_with(t + 1, || None);
                        }
                        // A clone shares the tensor: converted after timing.
                        shown[t] = s.last().cloned();
                    }
                })
            })
            .map_err(|e| e.to_string())?;
        self.wall_s += started.elapsed().as_secs_f64();
        self.shown = shown;
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
        for t in 0..(self.ticks / rounds) as usize {
            let shown = self.shown.get(t).and_then(Option::as_ref);
            match displayed_frame(shown.map(std::slice::from_ref).unwrap_or_default()) {
                Some(Ok(img)) => frames.push(img),
                Some(Err(e)) => return Err(format!("the display on tick {t}: {e}")),
                None => return Err(format!("the display showed no frame {t}")),
            }
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

/// Mean PSNR (capped at 100 dB) and SSIM of `frames` against `reference`.
pub fn mean_quality(frames: &[RgbImage], reference: &[RgbImage]) -> (f64, f64) {
    let n = frames.len().min(reference.len()).max(1) as f64;
    let (mut p, mut s) = (0.0, 0.0);
    for (a, b) in frames.iter().zip(reference) {
        p += crate::quality::psnr(a, b).min(100.0);
        s += crate::quality::ssim(a, b);
    }
    (p / n, s / n)
}

/// The reference when none is given: the graph's `sampler` at 32 steps, or
/// — when its kind has no `steps` (a `df_window`) — DDIM at 32 steps on the
/// same denoiser.
fn default_reference(options: &SwapOptions, models: &Models, dir: &Path) -> Vec<String> {
    let steps = || vec!["sampler.steps=32".to_string()];
    let request = request(options, &[], dir);
    let Ok(q) = load_through(&options.file, &request, models, models.backend.as_ref()) else {
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

/// A combination: built and timed, or skipped (it does not apply to this
/// graph: a parameter the swapped kind lacks, a type that does not fit).
enum Slot<'a> {
    Ready(Box<Prepared<'a>>),
    Skipped(String),
}

/// A swap's scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the reference and every combination of `options.swaps` with
/// `models` (best a [`wgraph_engine::model::ModelCache`]: the combinations
/// share sessions), and ranks them.
pub fn swap(
    options: &SwapOptions,
    models: &Models,
    progress: &dyn SwapProgress,
) -> Result<SwapReport, LabError> {
    options.validate()?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "wgraph-swap-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )));
    let work = scratch.0.as_path();
    let combos = combinations(&options.swaps);
    let reference: Vec<String> = if options.reference.is_empty() {
        default_reference(options, models, &work.join("probe"))
    } else {
        split_settings(&options.reference)
    };
    progress.start(
        combos.len() as u64 + 1,
        &format!("reference {}", reference.join(" ")),
    );
    let mut reference_run =
        prepare(options, models, &reference, &work.join("reference")).map_err(|e| {
            LabError::Runtime(format!(
                "the reference ({}) does not run: {e}",
                reference.join(" ")
            ))
        })?;
    reference_run.round(options).map_err(LabError::Runtime)?;
    let reference_run = reference_run.measured().map_err(LabError::Runtime)?;
    progress.inc();
    // Every combination built and warmed up first, then timed in
    // interleaved rounds (round r of each before round r + 1 of any), so a
    // change in the machine's load falls on all of them alike. One that
    // does not apply is skipped, not fatal.
    let mut slots: Vec<Slot> = combos
        .iter()
        .enumerate()
        .map(
            |(i, sets)| match prepare(options, models, sets, &work.join(format!("run{i}"))) {
                Ok(p) => Slot::Ready(Box::new(p)),
                Err(e) => Slot::Skipped(spec::skip_reason(&e)),
            },
        )
        .collect();
    for _ in 0..options.rounds.max(1) {
        for slot in &mut slots {
            if let Slot::Ready(p) = slot
                && let Err(e) = p.round(options)
            {
                *slot = Slot::Skipped(spec::skip_reason(&e));
            }
        }
    }
    // The ground truth is evaluated with the graph's own providers, as
    // `wgraph eval` runs it.
    let eval_models = Models {
        provider: None,
        backend_kind: None,
        ..models.clone()
    };
    let mut rows = Vec::new();
    for (sets, slot) in combos.iter().zip(&slots) {
        let label = sets.join(" ");
        progress.message(&label);
        let combination: BTreeMap<String, String> = sets
            .iter()
            .filter_map(|s| s.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let measured = match slot {
            Slot::Ready(p) => p.measured(),
            Slot::Skipped(why) => Err(why.clone()),
        };
        let m = match measured {
            Ok(m) => m,
            Err(why) => {
                rows.push(SwapRow {
                    combination,
                    label,
                    skipped: Some(why),
                    figures: None,
                });
                progress.inc();
                continue;
            }
        };
        let (psnr, ssim) = mean_quality(&m.frames, &reference_run.frames);
        let truth = options.ground_truth.as_ref().and_then(|gt| {
            let eval = EvalOptions {
                file: options.file.clone(),
                world_seed: gt.world_seed,
                actions: gt.actions.clone(),
                frames: options.frames,
                set: options.set.iter().chain(sets).cloned().collect(),
                ..EvalOptions::default()
            };
            ground_truth_report(evaluate(&eval, &eval_models))
                .map_err(|e| progress.eval_failed(&e))
                .ok()
        });
        rows.push(SwapRow {
            combination,
            label,
            skipped: None,
            figures: Some(RowFigures {
                ms_per_tick_p50: m.p50_ms,
                ms_per_tick_p99: m.p99_ms,
                fps: m.fps,
                denoiser_calls_per_tick: m.denoiser_calls,
                denoiser_passes_per_tick: m.denoiser_passes,
                model_calls_per_tick: m.model_calls,
                psnr_vs_reference: psnr,
                ssim_vs_reference: ssim,
                psnr_vs_ground_truth: truth.as_ref().and_then(|q| q.psnr_mean_1_n),
                ssim_vs_ground_truth: truth.as_ref().and_then(|q| q.ssim_mean_1_n),
                ground_truth: truth,
                pareto: false,
            }),
        });
        progress.inc();
    }
    let mut report = SwapReport {
        graph: options.file.display().to_string(),
        frames: options.frames,
        reference,
        reference_ms_per_tick_p50: reference_run.p50_ms,
        quality: if options.ground_truth.is_some() {
            Quality::GroundTruth
        } else {
            Quality::Reference
        },
        swaps: options.swaps.clone(),
        rows,
        recommended: None,
        not_recommended: None,
    };
    rank(&mut report, options.target_fps, options.target_psnr);
    Ok(report)
}

/// An evaluation as a swap uses it: one whose depth stream was malformed
/// failed (as `wgraph eval` exits 3 for it).
fn ground_truth_report(result: Result<EvalReport, LabError>) -> Result<EvalReport, LabError> {
    let report = result?;
    match &report.depth_error_problem {
        Some(problem) => Err(LabError::Runtime(problem.clone())),
        None => Ok(report),
    }
}

/// Marks the Pareto front of (ms p50, quality) and picks the setting
/// recommended for the target: what [`swap`] does with its rows, apart
/// from measuring them.
pub fn rank(report: &mut SwapReport, target_fps: Option<f64>, target_psnr: Option<f64>) {
    let quality = report.quality;
    let figures: Vec<(usize, f64, f64, f64)> = report
        .rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let f = r.figures.as_ref()?;
            let q = f.psnr(quality)?;
            // What JSON cannot hold (NaN) ranks nowhere.
            [f.ms_per_tick_p50, f.fps, q]
                .iter()
                .all(|v| v.is_finite())
                .then_some((i, f.ms_per_tick_p50, f.fps, q))
        })
        .collect();
    let front = pareto_front(
        &figures
            .iter()
            .map(|&(i, ms, _, q)| (i, ms, q))
            .collect::<Vec<_>>(),
    );
    for (i, r) in report.rows.iter_mut().enumerate() {
        if let Some(f) = &mut r.figures {
            f.pareto = front.contains(&i);
        }
    }
    match recommend(&figures, target_fps, target_psnr) {
        Ok(row) => {
            report.recommended = Some(Recommended {
                row,
                combination: report.rows[row].combination.clone(),
                target_fps,
                target_psnr,
            });
            report.not_recommended = None;
        }
        Err(why) => {
            report.recommended = None;
            report.not_recommended = Some(why);
        }
    }
}

#[cfg(test)]
mod tests;
