//! `wgraph eval FILE --world-seed K --actions A --frames N --json OUT`: a
//! graph against the ground-truth world. The flags become
//! [`wgraph_lab::eval::EvalOptions`], the lab evaluates
//! ([`wgraph_lab::eval::evaluate`]: what is measured and how is described
//! there), and this prints the report's summary and writes it as JSON.

use crate::Outcome;
use crate::commands::{lab_failure, lab_models, usage};
use crate::flags::{ModelFlags, SetFlags};
use std::path::{Path, PathBuf};
use wgraph_groundtruth::Theme;
use wgraph_lab::LabError;
use wgraph_lab::eval::{EvalOptions, EvalReport, Instructions, evaluate};
use wgraph_lab::quality::Drift;

/// `wgraph eval`'s flags.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The graph file (`.world`).
    file: PathBuf,
    /// Seed of the ground-truth world (held out: 1000 and above).
    #[arg(long)]
    world_seed: u64,
    /// Look of the ground-truth world: dungeon, neon or forest.
    #[arg(long, default_value = "dungeon")]
    theme: String,
    /// The action file fed to both the graph and the ground truth.
    #[arg(long)]
    actions: PathBuf,
    /// Ticks to compare.
    #[arg(long, default_value_t = 32)]
    frames: u64,
    /// Where to write the figures.
    #[arg(long, value_name = "FILE.json")]
    json: PathBuf,
    /// A picture: ground truth (top row) over generated frames (bottom
    /// row), up to 12 ticks, labelled.
    #[arg(long, value_name = "OUT.png")]
    strip: Option<PathBuf>,
    /// A plot of PSNR and edges kept over ticks, with the drift tick (.png or .svg).
    #[arg(long, value_name = "OUT.png")]
    plot: Option<PathBuf>,
    /// Inverse-dynamics model (default: models-onnx/trained/idm.onnx when present).
    #[arg(long)]
    idm: Option<PathBuf>,
    /// Drift: the first tick whose PSNR falls below this many dB (or see --drift-fraction).
    #[arg(long, default_value_t = 15.0)]
    drift_db: f64,
    /// Drift: the first tick whose frame keeps less than this share of the
    /// ground-truth edges tick 1 kept (or see --drift-db).
    #[arg(long, default_value_t = 0.5, value_name = "0..1")]
    drift_fraction: f64,
    /// Evaluate on a training seed anyway.
    #[arg(long)]
    allow_training_seed: bool,
    #[command(flatten)]
    params: SetFlags,
    /// Score instruction following: `auto` (a seeded script of 2-4 events
    /// for this world seed) or a file of `TICK: caption` lines. The events
    /// go to the ground truth and to the graph (every `prompt_schedule`
    /// node's schedule, every `world` node's `events`).
    #[arg(long, value_name = "auto|FILE")]
    instructions: Option<String>,
    /// Instruction following: ticks after an event's tick within which its
    /// effect must be seen.
    #[arg(long, default_value_t = 4, value_name = "K")]
    event_window: u64,
}

/// The options `args` ask for, with `theme` (parsed by the caller).
fn options(args: &EvalArgs, theme: Theme) -> EvalOptions {
    EvalOptions {
        file: args.file.clone(),
        world_seed: args.world_seed,
        theme,
        actions: args.actions.clone(),
        frames: args.frames,
        strip: args.strip.clone(),
        plot: args.plot.clone(),
        idm: args.idm.clone(),
        drift: Drift {
            fraction: args.drift_fraction,
            db: args.drift_db,
        },
        allow_training_seed: args.allow_training_seed,
        set: args.params.set.clone(),
        instructions: args.instructions.as_ref().map(|a| match a.as_str() {
            "auto" => Instructions::Auto,
            file => Instructions::File(file.into()),
        }),
        event_window: args.event_window,
    }
}

/// `wgraph eval FILE --world-seed K --actions A --frames N --json OUT`
pub fn eval(args: &EvalArgs) -> Outcome {
    let theme = Theme::parse(&args.theme);
    let options = options(args, theme.unwrap_or(Theme::Dungeon));
    // The flags are checked in the order they always were: seed, frames,
    // drift, plot, then the theme.
    if let Err(e) = options.validate() {
        return lab_failure(e);
    }
    if theme.is_none() {
        return usage(&format!(
            "--theme {}: expected dungeon, neon or forest",
            args.theme
        ));
    }
    let report = match evaluate(
        &options,
        &lab_models(crate::load::backends(), ModelFlags::default()),
    ) {
        Ok(r) => r,
        Err(e) => return lab_failure(e),
    };
    print!("{}", report.summary());
    if let Err(e) = to_json(&report).and_then(|json| write_json(&args.json, json)) {
        return lab_failure(LabError::Runtime(e));
    }
    // A malformed depth stream fails the run once every figure is written.
    match report.depth_error_problem {
        Some(problem) => lab_failure(LabError::Runtime(problem)),
        None => Outcome::Ok,
    }
}

/// `bench`'s quality columns: the lab's evaluation of `options` as JSON,
/// printing nothing but errors (a malformed depth stream is one).
pub(crate) fn quality(options: &EvalOptions) -> Result<serde_json::Value, Outcome> {
    let report = evaluate(
        options,
        &lab_models(crate::load::backends(), ModelFlags::default()),
    )
    .map_err(lab_failure)?;
    match report.depth_error_problem {
        Some(problem) => Err(lab_failure(LabError::Runtime(problem))),
        None => to_json(&report).map_err(|e| lab_failure(LabError::Runtime(e))),
    }
}

/// A report as JSON (objects' keys sorted, as the files always had them).
fn to_json(report: &EvalReport) -> Result<serde_json::Value, String> {
    serde_json::to_value(report).map_err(|e| e.to_string())
}

/// Writes `json`, pretty, whole or not at all; the error names the file.
pub(crate) fn write_json(path: &Path, json: serde_json::Value) -> Result<(), String> {
    serde_json::to_string_pretty(&json)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            wgraph_engine::output::write_file(path, (s + "\n").as_bytes())
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
