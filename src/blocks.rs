//! `wgraph blocks FILE NODE`: flags → [`wgraph_lab::blocks`] → the table
//! and the `cache = [...]` line to paste into the graph (and `--json`).
//! The measurement (Yume's block importance, eq. 14) is the lab's.

use crate::Outcome;
use crate::commands::{lab_failure, lab_models};
use crate::flags::{ModelFlags, SeedFlag, SetFlags};
use std::path::PathBuf;
use wgraph_engine::model::ModelCache;
use wgraph_lab::blocks::BlocksOptions;

/// Arguments of `wgraph blocks`.
#[derive(clap::Args, Debug)]
pub struct BlocksArgs {
    /// The graph file.
    file: PathBuf,
    /// The `block_denoiser` node to measure.
    node: String,
    /// Ticks to run; each gives (denoiser calls per tick) / (1 + l_c) segments.
    #[arg(long, default_value_t = 16)]
    frames: u64,
    /// l_c: ablate this many calls after each full call (default: the node's `cache_steps`).
    #[arg(long, value_name = "L")]
    cache_steps: Option<u64>,
    /// How many of the lowest-scoring blocks to propose (default: a quarter
    /// of the blocks, at least 1 — Yume proposes 10 of 40).
    #[arg(long, value_name = "K")]
    propose: Option<usize>,
    /// Write the scores and the proposal as JSON.
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// Action file fed to the graph's `actions` nodes (one line per tick).
    #[arg(long)]
    actions: Option<PathBuf>,
    #[command(flatten)]
    params: SetFlags,
    #[command(flatten)]
    seed: SeedFlag,
    #[command(flatten)]
    model: ModelFlags,
}

/// `wgraph blocks FILE NODE ...`
pub fn blocks(args: &BlocksArgs) -> Outcome {
    let options = BlocksOptions {
        file: args.file.clone(),
        node: args.node.clone(),
        frames: args.frames,
        cache_steps: args.cache_steps,
        propose: args.propose,
        actions: args.actions.clone(),
        set: args.params.set.clone(),
        seed: args.seed.seed,
        // Sinks other than the display (discarded) write here.
        work: std::env::temp_dir().join(format!("wgraph-blocks-{}", std::process::id())),
    };
    let models = lab_models(ModelCache::new(crate::load::backends()), args.model);
    let report = match wgraph_lab::blocks::blocks(&options, &models) {
        Ok(r) => r,
        Err(e) => return lab_failure(e),
    };
    print!("{}", report.text());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        if let Err(e) = wgraph_engine::output::write_file(path, text.as_bytes()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Outcome::RuntimeFailure;
        }
    }
    Outcome::Ok
}
