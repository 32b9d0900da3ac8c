//! `wgraph bench FILE`: one graph timed by [`wgraph_lab::bench`] against a
//! raw loop of its model calls (or Yan-Sim's Python loop), with quality
//! columns from `wgraph eval`; `--swap` is `swap.rs`'s, `--players`
//! `players.rs`'s.

use crate::commands::{lab_failure, lab_models, usage};
use crate::flags::{ModelFlags, SetFlags};
use crate::{Outcome, players, swap};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use wgraph_lab::bench::{Baseline as LabBaseline, BenchOptions};
use wgraph_lab::pybaseline::PythonSetup;

/// `wgraph bench`'s flags (`swap.rs` and `players.rs` read them too).
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The graph file (`.world`).
    pub file: PathBuf,
    /// The baseline: `raw` replays the graph's model calls in a plain loop;
    /// `python` runs Yan-Sim's researcher-style Python loop (yan-sim only).
    #[arg(long, value_enum, default_value_t = Baseline::Raw)]
    pub baseline: Baseline,
    /// With `--baseline python`: the Python loop's DDIM steps (default: the
    /// graph's `sampler.steps`, 4 when it has none), so the engine's fastest
    /// setting can be timed against Yan-Sim as published (`--baseline-steps 4`)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub baseline_steps: Option<u64>,
    /// Ticks per round.
    #[arg(long, default_value_t = 32)]
    pub frames: u64,
    /// Timed rounds of each (engine, raw, engine, raw, ...), after one warm-up round.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Write the figures as JSON.
    #[arg(long, value_name = "FILE.json")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub params: SetFlags,
    /// Worker threads of the engine (0, the default: the calling thread).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Ticks in flight when using workers.
    #[arg(long, default_value_t = 2)]
    pub pipeline: usize,
    #[command(flatten)]
    pub model: ModelFlags,
    /// Quality columns: evaluate against the ground-truth world with this held-out seed.
    #[arg(long, requires = "actions")]
    pub world_seed: Option<u64>,
    /// The action file for the quality columns.
    #[arg(long)]
    pub actions: Option<PathBuf>,
    /// Compare settings: NODE.PARAM=V1,V2,... or NODE=KIND1,KIND2,...
    /// (repeatable; every combination runs, same seed and actions).
    #[arg(long, value_name = "SPEC")]
    pub swap: Vec<String>,
    /// With --swap: a plot of quality (PSNR against the reference) over ms
    /// per tick, one labelled point per combination (.png or .svg).
    #[arg(long, value_name = "OUT.png", requires = "swap")]
    pub plot: Option<PathBuf>,
    /// With --swap: the high-quality run the others are compared with
    /// (NODE.PARAM=VALUE or NODE=KIND, repeatable or several in one
    /// quoted flag: `--reference "sampler=dpmpp_2m sampler.steps=50"`;
    /// default sampler.steps=32, or sampler=ddim sampler.steps=32 for a
    /// sampler without steps). The table names it.
    #[arg(long, value_name = "NODE.PARAM=VALUE")]
    pub reference: Vec<String>,
    /// With --swap: the last line recommends the best-quality setting that
    /// runs at least this many ticks per second.
    #[arg(
        long,
        value_name = "FPS",
        requires = "swap",
        conflicts_with = "target_psnr"
    )]
    pub target_fps: Option<f64>,
    /// With --swap: the last line recommends the fastest setting whose PSNR
    /// (against the ground truth with --world-seed, else the reference)
    /// is at least this (dB).
    #[arg(long, value_name = "DB", requires = "swap")]
    pub target_psnr: Option<f64>,
    /// Many players: run 1, 2, 4, … sessions of the graph at once — in this
    /// process with their model calls batched, unbatched, and as separate
    /// `wgraph run` processes — and compare session-ticks/s, fps and tick
    /// latency per player (e.g. `--players 1,2,4,8`).
    #[arg(long, value_name = "N,N,...", conflicts_with_all = ["swap", "baseline_steps"])]
    pub players: Option<String>,
    /// With --players: run each count's worlds (seeds --seed, --seed + 1,
    /// …) batched and each alone, compare every frame, and fail when
    /// batching changed one by more than --tolerance.
    #[arg(long, requires = "players")]
    pub verify_batching: bool,
    /// With --verify-batching: the largest difference allowed (0: bit for bit).
    #[arg(long, default_value_t = 0.0, requires = "verify_batching")]
    pub tolerance: f64,
    /// With --players: the first world's seed (default: the graph's).
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub batch: players::BatchArgs,
}

/// `--baseline` values.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Baseline {
    /// The graph's own model calls, replayed in a plain Rust loop.
    Raw,
    /// Yan-Sim written in Python (onnxruntime + numpy), benches/yan_sim.py.
    Python,
}

/// `wgraph bench FILE`: `--swap` and `--players` have commands of their
/// own; one graph is timed by [`wgraph_lab::bench`], its quality columns
/// are `wgraph eval` on the same graph.
pub fn bench(args: &BenchArgs) -> Outcome {
    if args.frames == 0 || args.rounds == 0 {
        return usage("--frames and --rounds must be at least 1");
    }
    if args.baseline_steps.is_some() && args.baseline != Baseline::Python {
        return usage("--baseline-steps sets the Python loop's steps: it needs --baseline python");
    }
    if !args.swap.is_empty() {
        return swap::bench_swap(args);
    }
    if let Some(text) = &args.players {
        return players::bench_players(args, text);
    }
    let baseline = match args.baseline {
        Baseline::Raw => LabBaseline::Raw,
        Baseline::Python => LabBaseline::Python {
            steps: args.baseline_steps,
            setup: PythonSetup {
                cache_base: wgraph_ort::runtime::cache_base(),
                onnxruntime_version: wgraph_ort::runtime::MANAGED_VERSION.into(),
                notice: Some(|line| eprintln!("{line}")),
            },
        },
    };
    let options = BenchOptions {
        file: args.file.clone(),
        frames: args.frames,
        rounds: args.rounds,
        set: args.params.set.clone(),
        workers: args.workers,
        pipeline: args.pipeline,
        baseline,
        work: std::env::temp_dir().join(format!("wgraph-bench-{}", std::process::id())),
    };
    let models = lab_models(crate::load::backends(), args.model);
    let mut report = match wgraph_lab::bench::bench(&options, &models) {
        Ok(r) => r,
        Err(e) => return lab_failure(e),
    };
    if let (Some(world_seed), Some(actions)) = (args.world_seed, &args.actions) {
        match bench_quality(args, world_seed, actions) {
            Ok(q) => report.quality = Some(q),
            Err(outcome) => return outcome,
        }
    }
    print!("{}", report.summary());
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&report)
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

/// The quality columns of a bench: the lab's evaluation, in memory, of the
/// same graph, `--set` flags and frame count.
fn bench_quality(
    args: &BenchArgs,
    world_seed: u64,
    actions: &Path,
) -> Result<serde_json::Value, Outcome> {
    crate::eval::quality(&wgraph_lab::eval::EvalOptions {
        file: args.file.clone(),
        world_seed,
        actions: actions.to_path_buf(),
        frames: args.frames,
        set: args.params.set.clone(),
        ..Default::default()
    })
}
