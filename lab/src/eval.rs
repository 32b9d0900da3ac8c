//! A graph against the ground-truth world: [`evaluate`] takes
//! [`EvalOptions`] and returns an [`EvalReport`] (what `wgraph eval` writes
//! as JSON; [`EvalReport::summary`] is what it prints).
//!
//! The ground truth ([`wgraph_groundtruth::World`], held-out seed) renders the start
//! view and, tick by tick, the view after each action. The graph is run from
//! that same start view (every `image` node's `path`, and an `npy` node named
//! `start_depth`, are pointed at it) with the same actions (every `actions`
//! node). Generated frame `t` — the image the graph's `display` node shows
//! on tick `t`, taken from the run ([`displayed_frame`]) — is compared with
//! ground-truth frame `t`: PSNR and SSIM per tick and averaged, drift (the
//! first tick under a PSNR threshold), the VAE round trip of the ground
//! truth (the graph's RGB encoder and decoder), and action accuracy: an
//! inverse-dynamics model p(a | o_t, o_t+1) reads the keys back from
//! generated frame pairs, next to its accuracy on ground-truth pairs.
//!
//! A graph that simulates geometry (Yan-Edit's depth branch) names its depth
//! stream with an `npy_dump` node called `depth_dump` ([`DEPTH_SINK`];
//! signed depth `2·d/16 − 1`, as the `world` node's `depth`); eval then also
//! reports the mean absolute depth error against the ground truth, in maze
//! cells. The theme of the ground truth ([`EvalOptions::theme`]) changes the
//! look only, so running eval twice with two themes (and the graph's style
//! prompt set to match) shows whether a restyle moved the geometry.
//!
//! **Detail over time**: per tick, the generated frame's high-frequency power
//! over the ground truth's ([`crate::quality::detail_ratio`]), and the first
//! tick it falls below one half — a rollout blurring to the scene's mean
//! colours shows here even where PSNR stays high.
//!
//! **Instruction following** ([`EvalOptions::instructions`]): a schedule of
//! event captions ("12: a ghost appears"; [`Instructions::Auto`] is
//! [`wgraph_groundtruth::events::script`] for the world seed) goes to the
//! ground truth and to the graph — every `prompt_schedule` node's
//! `schedule` (tick 0: the global caption of the theme and layout) and every
//! `world` node's `events` are set to it. A detector of events from pixels
//! ([`wgraph_groundtruth::events::detect`]) reads both frame streams; an
//! event is followed when its effect is seen within
//! [`EvalOptions::event_window`] ticks of its tick, and a channel nobody
//! asked for must never be seen
//! ([`wgraph_groundtruth::events::score_instructions`]). The ground truth's
//! own score is reported next to the graph's ([`InstructionFollowing`]), as
//! the detector's check.

mod figures;
mod instructions;

pub use instructions::{EventFollowed, InstructionFollowing};

use crate::LabError;
use crate::load::{LoadRequest, Models, load};
use crate::quality::{
    Drift, PlotLabels, detail_half_tick, detail_ratio, drift_tick, edges_kept, plot_svg, psnr,
    ssim, strip,
};
use figures::{
    action_accuracy, depth_errors, graph_resolution, keys_of, load_idm, reconstruction_psnr,
};
use image::RgbImage;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wgraph_engine::load::PathOverride;
use wgraph_engine::node::{DisplayTarget, OutputConfig, PixelRange};
use wgraph_engine::schedule::{RunConfig, RunEvent, Runner, Shown};
use wgraph_engine::tensor::Tensor;
use wgraph_engine::value::Actions;
use wgraph_groundtruth::events::{self, Event, EventState};
use wgraph_groundtruth::{FIRST_HELD_OUT_SEED, Keys, Theme, World, depth_to_signed};
use wgraph_nodes::image_io::{Range, tensor_to_image};

/// The `npy_dump` node whose tensors eval reads as the graph's depth stream.
pub const DEPTH_SINK: &str = "depth_dump";

/// Where, under the run's output directory, the depth stream goes.
const DEPTH_DIR: &str = "eval-depth-stream";

/// The event schedule an eval scores instruction following against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instructions {
    /// A seeded script of 2-4 events for the world seed
    /// ([`wgraph_groundtruth::events::script`]).
    Auto,
    /// A file of `TICK: caption` lines (`#` comments, blank lines ignored).
    File(PathBuf),
}

/// What [`evaluate`] runs and measures: `wgraph eval`'s flags as plain data.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The graph file.
    pub file: PathBuf,
    /// Seed of the ground-truth world (held out: [`FIRST_HELD_OUT_SEED`] and
    /// above, unless [`EvalOptions::allow_training_seed`]).
    pub world_seed: u64,
    /// Look of the ground-truth world.
    pub theme: Theme,
    /// The action file fed to both the graph and the ground truth.
    pub actions: PathBuf,
    /// Ticks to compare (at least 1).
    pub frames: u64,
    /// A picture to write: ground truth (top row) over generated frames
    /// (bottom row), up to 12 ticks, labelled (any image format by name).
    pub strip: Option<PathBuf>,
    /// A plot to write: PSNR and edges kept over ticks, with the drift tick
    /// (`.png` or `.svg`, checked before the run).
    pub plot: Option<PathBuf>,
    /// Inverse-dynamics model for action accuracy (default:
    /// `models-onnx/trained/idm.onnx` when present; none: no accuracy).
    pub idm: Option<PathBuf>,
    /// When a rollout drifted: edges kept under a share of tick 1's
    /// (`fraction`, between 0 and 1) or PSNR under `db`.
    pub drift: Drift,
    /// Evaluate on a seed below [`FIRST_HELD_OUT_SEED`] anyway.
    pub allow_training_seed: bool,
    /// `NODE.PARAM=VALUE` and `NODE=KIND` changes to the graph, in order.
    pub set: Vec<String>,
    /// Score instruction following against this schedule (none: not scored).
    pub instructions: Option<Instructions>,
    /// Instruction following: ticks after an event's tick within which its
    /// effect must be seen.
    pub event_window: u64,
}

impl Default for EvalOptions {
    /// `wgraph eval`'s defaults: the first held-out seed, dungeon, 32
    /// ticks, drift under 50% of tick 1's edges or 15 dB, a 4-tick event
    /// window, no pictures; `file` and `actions` empty (to be set).
    fn default() -> Self {
        EvalOptions {
            file: PathBuf::new(),
            world_seed: FIRST_HELD_OUT_SEED,
            theme: Theme::Dungeon,
            actions: PathBuf::new(),
            frames: 32,
            strip: None,
            plot: None,
            idm: None,
            drift: Drift {
                fraction: 0.5,
                db: 15.0,
            },
            allow_training_seed: false,
            set: Vec::new(),
            instructions: None,
            event_window: 4,
        }
    }
}

impl EvalOptions {
    /// Checks what needs no file: a held-out seed (or permission), at least
    /// one frame, a drift fraction between 0 and 1, a plot name wgraph can
    /// write. [`evaluate`] checks this first.
    pub fn validate(&self) -> Result<(), LabError> {
        if self.world_seed < FIRST_HELD_OUT_SEED && !self.allow_training_seed {
            return Err(LabError::Usage(format!(
                "--world-seed {} is a training seed; held-out seeds start at {FIRST_HELD_OUT_SEED} (or pass --allow-training-seed)",
                self.world_seed
            )));
        }
        if self.frames == 0 {
            return Err(LabError::Usage("--frames must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.drift.fraction) {
            return Err(LabError::Usage(format!(
                "--drift-fraction {}: expected a share between 0 and 1",
                self.drift.fraction
            )));
        }
        if let Some(plot) = &self.plot {
            crate::plot::check_name(plot).map_err(|e| LabError::Usage(e.to_string()))?;
        }
        Ok(())
    }
}

/// What `wgraph eval` measured, as its JSON file has it. Means over ticks
/// `1..=k` are `None` when fewer than `k` ticks ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// The graph file, as given.
    pub graph: String,
    /// Seed of the ground-truth world.
    pub world_seed: u64,
    /// The ground truth's theme.
    pub theme: &'static str,
    /// The action file, as given.
    pub actions: String,
    /// Ticks compared.
    pub frames: usize,
    /// PSNR against the ground truth per tick (dB, 100 for identical frames).
    pub psnr_per_tick: Vec<f64>,
    /// SSIM against the ground truth per tick.
    pub ssim_per_tick: Vec<f64>,
    /// Mean PSNR over ticks 1-8.
    pub psnr_mean_1_8: Option<f64>,
    /// Mean PSNR over ticks 1-32.
    pub psnr_mean_1_32: Option<f64>,
    /// Mean PSNR over every tick.
    pub psnr_mean_1_n: Option<f64>,
    /// Mean SSIM over ticks 1-8.
    pub ssim_mean_1_8: Option<f64>,
    /// Mean SSIM over ticks 1-32.
    pub ssim_mean_1_32: Option<f64>,
    /// Mean SSIM over every tick.
    pub ssim_mean_1_n: Option<f64>,
    /// Mean PSNR of the ground truth through the graph's RGB VAE.
    pub reconstruction_psnr: Option<f64>,
    /// Share of ticks whose keys the inverse-dynamics model reads back from
    /// generated frame pairs.
    pub action_accuracy: Option<f64>,
    /// The same on ground-truth frame pairs.
    pub action_accuracy_ground_truth: Option<f64>,
    /// Which keys action accuracy scores.
    pub action_accuracy_keys: &'static str,
    /// Action accuracy over the ground truth's.
    pub action_accuracy_ratio: Option<f64>,
    /// Mean absolute depth error per tick (maze cells) of the graph's
    /// [`DEPTH_SINK`] stream; `None` without one.
    pub depth_error_per_tick: Option<Vec<f64>>,
    /// Mean depth error over ticks 1-8.
    pub depth_error_mean_1_8: Option<f64>,
    /// Mean depth error over ticks 1-32.
    pub depth_error_mean_1_32: Option<f64>,
    /// Mean depth error over every tick.
    pub depth_error_mean_1_n: Option<f64>,
    /// What was wrong with the depth stream: the eval failed after
    /// measuring everything else (`wgraph eval` exits 3 after writing the JSON).
    pub depth_error_problem: Option<String>,
    /// The depth error's unit, in words.
    pub depth_error_unit: &'static str,
    /// Share of the ground truth's edges each generated frame keeps.
    pub edges_kept_per_tick: Vec<f64>,
    /// Mean edges kept over ticks 1-8.
    pub edges_kept_mean_1_8: Option<f64>,
    /// Mean edges kept over ticks 1-32.
    pub edges_kept_mean_1_32: Option<f64>,
    /// Mean edges kept over every tick.
    pub edges_kept_mean_1_n: Option<f64>,
    /// Drift: the PSNR threshold (dB).
    pub drift_threshold_db: f64,
    /// Drift: the share of tick 1's edges kept.
    pub drift_fraction: f64,
    /// The first tick (1-based) that drifted.
    pub drift_tick: Option<usize>,
    /// Drift, in words.
    pub drift_definition: String,
    /// Wall time of the graph's run per tick (ms).
    pub ms_per_tick: f64,
    /// High-frequency power of each generated frame over the ground truth's.
    pub detail_per_tick: Vec<f64>,
    /// Mean detail ratio over every tick.
    pub detail_mean_1_n: Option<f64>,
    /// Mean detail ratio over ticks 20-32 (a 32-tick walk's late frames).
    pub detail_mean_20_32: Option<f64>,
    /// The first tick (1-based) whose detail ratio is under one half.
    pub detail_half_tick: Option<usize>,
    /// The detail ratio, in words.
    pub detail_definition: &'static str,
    /// Instruction following, when a schedule was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instruction_following: Option<InstructionFollowing>,
}

/// The mean of `v` over ticks `1..=k`, only when `k` ticks ran: a 16-tick
/// run has no "1-32" figure.
pub fn mean_to(v: &[f64], k: usize) -> Option<f64> {
    (k > 0 && v.len() >= k).then(|| v[..k].iter().sum::<f64>() / k as f64)
}

impl EvalReport {
    /// The lines `wgraph eval` prints (each ends in a newline): the depth
    /// error (when measured), PSNR, SSIM, VAE round trip, action accuracy
    /// and drift; the drift definition; detail; instruction following.
    pub fn summary(&self) -> String {
        let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.2}"));
        let at = |v: &[f64], tick: usize| {
            tick.checked_sub(1)
                .and_then(|i| v.get(i))
                .copied()
                .unwrap_or(f64::NAN)
        };
        let n = self.frames;
        // The tick ranges reported: 1-8 and 1-n, as far as the run went.
        let ranges: Vec<usize> = if n > 8 { vec![8, n] } else { vec![n] };
        let by_range = |v: &[f64], unit: &str| {
            ranges
                .iter()
                .map(|&k| format!("ticks 1-{k} {}{unit}", fmt(mean_to(v, k))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = String::new();
        if let Some(d) = &self.depth_error_per_tick {
            out.push_str(&format!(
                "{}: depth error {} cells\n",
                self.graph,
                by_range(d, "")
            ));
        }
        out.push_str(&format!(
            "{}: {n} ticks; PSNR {}; SSIM {}; VAE round trip {} dB; action accuracy {} (ground truth {}); {}\n",
            self.graph,
            by_range(&self.psnr_per_tick, " dB"),
            by_range(&self.ssim_per_tick, ""),
            fmt(self.reconstruction_psnr),
            fmt(self.action_accuracy),
            fmt(self.action_accuracy_ground_truth),
            match self.drift_tick {
                Some(t) => format!(
                    "drift at tick {t} (edges kept {:.2}, tick 1 {:.2}; PSNR {:.2} dB)",
                    at(&self.edges_kept_per_tick, t),
                    at(&self.edges_kept_per_tick, 1),
                    at(&self.psnr_per_tick, t)
                ),
                None => format!("no drift in {n} ticks"),
            },
        ));
        out.push_str(&format!("  drift: {}\n", self.drift_definition));
        out.push_str(&format!(
            "  detail (high-frequency power vs ground truth): ticks 1-{n} {}{}; {}\n",
            fmt(self.detail_mean_1_n),
            self.detail_mean_20_32
                .map_or(String::new(), |d| format!(", ticks 20-32 {d:.2}")),
            match self.detail_half_tick {
                Some(t) => format!("below half at tick {t}"),
                None => format!("never below half in {n} ticks"),
            }
        ));
        if let Some(r) = &self.instruction_following {
            out.push_str(&format!("  {}\n", r.summary_line()));
        }
        out
    }
}

/// The image a displaying node showed on a tick (the last one, when a
/// graph has several: the one whose file a PNG directory would keep), as
/// the `display` node's PNG would hold it; `None` when no node displayed.
pub fn displayed_frame(shown: &[Shown]) -> Option<Result<RgbImage, String>> {
    let s = shown.last()?;
    Some(shown_image(s))
}

fn shown_image(s: &Shown) -> Result<RgbImage, String> {
    let tensor = s
        .value
        .as_tensor()
        .ok_or_else(|| {
            format!(
                "the display showed a {}, not an image",
                s.value.value_type()
            )
        })?
        .to_host()
        .map_err(|e| e.to_string())?;
    let range = match s.range {
        PixelRange::Signed => Range::Signed,
        PixelRange::Unit => Range::Unit,
    };
    tensor_to_image(&tensor, range)
        .map(|i| i.to_rgb8())
        .map_err(|e| e.to_string())
}

/// A scratch directory of one eval, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, LabError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wgraph-eval-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| LabError::Runtime(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `options.file` against the ground truth with `models` and measures
/// it; writes the strip and the plot when asked. A malformed depth stream
/// is not an error here: it is [`EvalReport::depth_error_problem`], so that
/// nothing measured is lost.
pub fn evaluate(options: &EvalOptions, models: &Models) -> Result<EvalReport, LabError> {
    options.validate()?;
    let usage = LabError::Usage;
    let text = wgraph_engine::input::read_to_string(&options.actions, wgraph_engine::input::TEXT)
        .map_err(|e| usage(format!("--actions {}: {e}", options.actions.display())))?;
    let actions = wgraph_nodes::action_file::parse_action_file(&text).map_err(|(line, m)| {
        usage(format!(
            "--actions {}: line {line}: {m}",
            options.actions.display()
        ))
    })?;
    let schedule = match &options.instructions {
        None => None,
        Some(Instructions::Auto) => Some(events::script(options.world_seed, options.frames)),
        Some(Instructions::File(file)) => {
            Some(instructions::read_instructions(file).map_err(usage)?)
        }
    };
    let scratch = Scratch::new()?;
    measure(options, models, &actions, schedule.as_deref(), &scratch.0)
}

/// The ground truth's frames (and depth) after each of `frames` ticks of
/// `actions`, with `schedule`'s events.
fn ground_truth(
    world: &World,
    actions: &[Actions],
    schedule: &[Event],
    frames: u64,
    (h, w): (usize, usize),
) -> Result<(Vec<RgbImage>, Vec<Vec<f32>>), LabError> {
    let mut pose = world.start_pose();
    let mut truth = Vec::with_capacity(frames as usize);
    let mut truth_depth = Vec::with_capacity(frames as usize);
    let (mut state, mut next) = (EventState::default(), 0);
    for t in 0..frames as usize {
        let keys = actions.get(t).copied().map(keys_of).unwrap_or(Keys::NONE);
        world.step(&mut pose, keys);
        while let Some(e) = schedule.get(next).filter(|e| e.tick <= t as u64) {
            world.apply_event(&mut state, e.kind, &pose);
            next += 1;
        }
        let frame = world.render_events(&pose, &state, t as u64, w, h);
        truth.push(rgb(&frame)?);
        truth_depth.push(frame.depth);
    }
    Ok((truth, truth_depth))
}

fn rgb(frame: &wgraph_groundtruth::Frame) -> Result<RgbImage, LabError> {
    RgbImage::from_raw(frame.width as u32, frame.height as u32, frame.rgb.clone())
        .ok_or_else(|| LabError::Runtime("internal: frame size".into()))
}

/// The path overrides that point the graph at eval's start frame and depth
/// and collect its depth stream.
fn eval_paths(actions: &Path, start_png: &Path, start_depth: &Path) -> Vec<PathOverride> {
    vec![
        PathOverride::actions(actions),
        PathOverride {
            kind: "image",
            name: None,
            param: "path",
            path: start_png.to_path_buf(),
            flag: "eval start frame",
            required: false,
        },
        PathOverride {
            kind: "npy",
            name: Some("start_depth"),
            param: "path",
            path: start_depth.to_path_buf(),
            flag: "eval start depth",
            required: false,
        },
        PathOverride {
            kind: "npy_dump",
            name: Some(DEPTH_SINK),
            param: "dir",
            path: PathBuf::from(DEPTH_DIR),
            flag: "eval depth stream",
            required: false,
        },
    ]
}

fn measure(
    options: &EvalOptions,
    models: &Models,
    actions: &[Actions],
    schedule: Option<&[Event]>,
    work: &Path,
) -> Result<EvalReport, LabError> {
    let fail = LabError::Runtime;
    let start_png = work.join("start.png");
    let start_depth = work.join("start_depth.npy");
    // The depth stream goes under the run's output directory (a graph's
    // output paths stay inside it), in a folder no other sink uses.
    let out_dir = work.join("out");
    let depth_dir = out_dir.join(DEPTH_DIR);
    let world = World::new(options.world_seed, options.theme);
    let mut set = options.set.clone();
    if let Some(schedule) = schedule {
        let global = events::global_caption(options.theme, world.layout());
        set.extend(instructions::instruction_sets(
            &options.file,
            schedule,
            global,
        ));
    }
    let request = LoadRequest {
        set,
        seed: None,
        paths: eval_paths(&options.actions, &start_png, &start_depth),
        output: OutputConfig {
            dir: out_dir,
            // Frames come from the run's events; the display only checks them.
            display: DisplayTarget::Discard,
            ..OutputConfig::default()
        },
    };
    // The start files must exist before the graph is built (its sources
    // read them), at the graph's resolution.
    let (h, w) = graph_resolution(&options.file).unwrap_or((64, 64));
    let start = world.render(&world.start_pose(), w, h);
    let truth_start = rgb(&start)?;
    crate::plot::save_image(&truth_start, &start_png)
        .map_err(|e| fail(format!("cannot write {}: {e}", start_png.display())))?;
    let depth: Vec<f32> = start.depth.iter().map(|d| depth_to_signed(*d)).collect();
    Tensor::from_f32(&[1, 1, h, w], depth)
        .map_err(|e| e.to_string())
        .and_then(|t| wgraph_engine::npy::write_npy(&t).map_err(|e| e.to_string()))
        .and_then(|b| {
            wgraph_engine::output::write_file(&start_depth, &b).map_err(|e| e.to_string())
        })
        .map_err(|e| fail(format!("cannot write the start depth: {e}")))?;
    let graph = Arc::new(load(&options.file, &request, models)?.graph);
    if (graph.settings.height, graph.settings.width) != (h, w) {
        return Err(fail("internal: resolution changed while loading".into()));
    }
    let schedule = schedule.unwrap_or(&[]);
    let (truth, truth_depth) = ground_truth(&world, actions, schedule, options.frames, (h, w))?;
    // The graph, its displayed frames taken from the run.
    let ticks = options
        .frames
        .div_ceil(graph.settings.frames_per_tick.max(1) as u64);
    let mut shown: Vec<Option<Result<RgbImage, String>>> = Vec::new();
    let started = std::time::Instant::now();
    let report = Runner::new(Arc::clone(&graph))
        .and_then(|mut r| {
            r.run(
                &RunConfig {
                    ticks,
                    ..RunConfig::default()
                },
                &mut |event| {
                    if let RunEvent::TickDone { tick, shown: s, .. } = event {
                        let t = *tick as usize;
                        if shown.len() <= t {
                            shown.resize_with(t + 1, || None);
                        }
                        shown[t] = displayed_frame(s);
                    }
                },
            )
        })
        .map_err(|e| fail(e.to_string()))?;
    let ms_per_tick = started.elapsed().as_secs_f64() * 1e3 / report.ticks.max(1) as f64;
    let mut generated = Vec::new();
    for (t, frame) in shown
        .into_iter()
        .chain(std::iter::repeat_with(|| None))
        .take(report.ticks.min(options.frames) as usize)
        .enumerate()
    {
        match frame {
            Some(Ok(img)) => generated.push(img),
            Some(Err(e)) => return Err(fail(format!("the graph's display on tick {t}: {e}"))),
            None => return Err(fail(format!("the graph's display showed no frame {t}"))),
        }
    }
    let n = generated.len();
    let pairs = |f: fn(&RgbImage, &RgbImage) -> f64| -> Vec<f64> {
        truth.iter().zip(&generated).map(|(a, b)| f(a, b)).collect()
    };
    let psnr_per_tick = pairs(psnr);
    let ssim_per_tick = pairs(ssim);
    let edges_kept_per_tick = pairs(edges_kept);
    let detail_per_tick = pairs(detail_ratio);
    let drift = options.drift;
    let drift_tick = drift_tick(&edges_kept_per_tick, &psnr_per_tick, drift);
    let detail_half = detail_half_tick(&detail_per_tick);
    // Ticks 20-32 (1-based), the late frames of a 32-tick walk.
    let detail_late = (n >= 32).then(|| detail_per_tick[19..32].iter().sum::<f64>() / 13.0);
    let instruction_following =
        (!schedule.is_empty() || options.instructions.is_some()).then(|| {
            instructions::instruction_following(
                schedule,
                &truth[..n],
                &generated,
                options.event_window,
            )
        });
    // A malformed depth stream is reported (and fails the eval) after every
    // other figure is measured: nothing measured is lost.
    let (depth_error_per_tick, depth_problem) = match depth_errors(&depth_dir, &truth_depth[..n]) {
        Ok(d) => (d, None),
        Err(e) => (None, Some(e)),
    };
    let reconstruction = reconstruction_psnr(&graph, &truth);
    let idm = load_idm(models.backend.as_ref(), options.idm.as_deref()).map_err(fail)?;
    let (acc_gen, acc_truth) = match &idm {
        Some(m) => {
            let gen_acc = action_accuracy(&**m, &truth_start, &generated, actions);
            let truth_acc = action_accuracy(&**m, &truth_start, &truth, actions);
            match (gen_acc, truth_acc) {
                (Ok(a), Ok(b)) => (Some(a), Some(b)),
                (Err(e), _) | (_, Err(e)) => {
                    return Err(fail(format!("inverse-dynamics model: {e}")));
                }
            }
        }
        None => (None, None),
    };
    let mean = mean_to;
    let depth_mean = |k| depth_error_per_tick.as_deref().and_then(|d| mean(d, k));
    let report = EvalReport {
        graph: options.file.display().to_string(),
        world_seed: options.world_seed,
        theme: options.theme.name(),
        actions: options.actions.display().to_string(),
        frames: n,
        psnr_mean_1_8: mean(&psnr_per_tick, 8),
        psnr_mean_1_32: mean(&psnr_per_tick, 32),
        psnr_mean_1_n: mean(&psnr_per_tick, n),
        ssim_mean_1_8: mean(&ssim_per_tick, 8),
        ssim_mean_1_32: mean(&ssim_per_tick, 32),
        ssim_mean_1_n: mean(&ssim_per_tick, n),
        reconstruction_psnr: reconstruction,
        action_accuracy: acc_gen,
        action_accuracy_ground_truth: acc_truth,
        action_accuracy_keys: "W A S D Left Right Up Down (exact match; Space is not observable)",
        action_accuracy_ratio: match (acc_gen, acc_truth) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        },
        depth_error_mean_1_8: depth_mean(8),
        depth_error_mean_1_32: depth_mean(32),
        depth_error_mean_1_n: depth_mean(n),
        depth_error_per_tick: depth_error_per_tick.clone(),
        depth_error_problem: depth_problem,
        depth_error_unit: "mean absolute depth error in maze cells (ground truth 0-16; from the graph's `depth_dump` node)",
        edges_kept_mean_1_8: mean(&edges_kept_per_tick, 8),
        edges_kept_mean_1_32: mean(&edges_kept_per_tick, 32),
        edges_kept_mean_1_n: mean(&edges_kept_per_tick, n),
        drift_threshold_db: drift.db,
        drift_fraction: drift.fraction,
        drift_tick,
        drift_definition: drift.definition(),
        ms_per_tick,
        detail_mean_1_n: mean(&detail_per_tick, n),
        detail_mean_20_32: detail_late,
        detail_half_tick: detail_half,
        detail_definition: "high-frequency power (mean square of luma minus its 3x3 box blur) of the generated frame over the ground truth's, per tick; detail_half_tick: the first tick under 0.5",
        instruction_following,
        psnr_per_tick,
        ssim_per_tick,
        edges_kept_per_tick,
        detail_per_tick,
    };
    draw(options, &report, &truth, &generated)?;
    Ok(report)
}

/// Writes the strip and the plot `options` ask for.
fn draw(
    options: &EvalOptions,
    report: &EvalReport,
    truth: &[RgbImage],
    generated: &[RgbImage],
) -> Result<(), LabError> {
    let n = generated.len();
    if let Some(path) = &options.strip {
        let count = n.min(12);
        let picks: Vec<usize> = (0..count)
            .map(|i| {
                if count <= 1 {
                    0
                } else {
                    i * (n - 1) / (count - 1)
                }
            })
            .collect();
        strip(truth, generated, &picks)
            .and_then(|img| crate::plot::save_image(&img, path))
            .map_err(|e| LabError::Runtime(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(path) = &options.plot {
        let title = format!(
            "{}: against the ground truth (world seed {}, {}), {n} ticks",
            options.file.display(),
            options.world_seed,
            options.theme.name()
        );
        let labels = PlotLabels {
            title: &title,
            drift: options.drift,
            drift_tick: report.drift_tick,
        };
        let svg = plot_svg(&report.psnr_per_tick, &report.edges_kept_per_tick, &labels);
        crate::plot::save(path, &svg).map_err(|e| LabError::Runtime(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
