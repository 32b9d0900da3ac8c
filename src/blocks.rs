//! `wgraph blocks FILE NODE`: which blocks of a `block_denoiser` Yume's block
//! cache can skip — the MSE importance of each block (Yume, arXiv 2507.17744,
//! §5.6.2, eq. 14), measured on the graph's own run.
//!
//! The graph runs `--frames` ticks with the node's `importance = true`
//! (and `cache_steps = --cache-steps` when given): every call of the
//! denoiser runs in full, and in each segment of 1 + l_c calls — a full call
//! at t_n, then l_c more — the call at t_{n−l_c} also runs once per block i
//! with that block alone replaced by its residual cached at t_n (bf16), and
//! scores the MSE of the denoiser's output against the real one. The node's
//! state holds the sums ([`wgraph_nodes::block_importance`], read with
//! `Runner::inspect_state` after the run); the score of a block is its mean
//! over every segment of every tick. The `--propose` lowest-scoring blocks
//! are printed as a `cache = [...]` line to paste into the graph (Yume
//! caches its 10 lowest of 40).

use crate::backends::Backends;
use crate::load::{Failure, LoadConfig, PathOverride, load_quiet, print_warnings};
use crate::{BackendArg, Outcome, ProviderArg};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use wgraph_engine::model::ModelCache;
use wgraph_engine::node::{DisplayTarget, OutputConfig};
use wgraph_engine::schedule::{RunConfig, Runner};
use wgraph_grammar::FsLoader;

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
    /// Override a parameter: NODE.PARAM=VALUE (repeatable).
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    set: Vec<String>,
    /// Seed for every random source (replaces the world's seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Load every model on this execution provider.
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
    /// Load every model with this backend (`wonnx` needs a build with the `wonnx` feature).
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
}

/// One block's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockScore {
    pub index: usize,
    pub model: String,
    pub mse: f64,
    /// 1 = the least important (lowest score).
    pub rank: usize,
}

/// Ranks `scores` (lowest first: rank 1) and returns the blocks in index
/// order with their ranks, and the `k` lowest as ascending indices (ties
/// broken by index).
pub fn rank(models: &[String], scores: &[f64], k: usize) -> (Vec<BlockScore>, Vec<usize>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut ranks = vec![0; scores.len()];
    for (r, &i) in order.iter().enumerate() {
        ranks[i] = r + 1;
    }
    let table = scores
        .iter()
        .enumerate()
        .map(|(i, &mse)| BlockScore {
            index: i,
            model: models.get(i).cloned().unwrap_or_default(),
            mse,
            rank: ranks[i],
        })
        .collect();
    let mut proposal: Vec<usize> = order.into_iter().take(k).collect();
    proposal.sort_unstable();
    (table, proposal)
}

/// The line to paste into the graph.
pub fn cache_line(proposal: &[usize]) -> String {
    let list: Vec<String> = proposal.iter().map(ToString::to_string).collect();
    format!("cache = [{}]", list.join(", "))
}

/// `wgraph blocks FILE NODE ...`
pub fn blocks(args: &BlocksArgs) -> Outcome {
    // Sinks other than the display (discarded) write here.
    let scratch = std::env::temp_dir().join(format!("wgraph-blocks-{}", std::process::id()));
    let result = measure(args, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    match result {
        Ok(()) => Outcome::Ok,
        Err((outcome, message)) => {
            if !message.is_empty() {
                eprintln!("{message}");
            }
            outcome
        }
    }
}

type Failed = (Outcome, String);

fn usage(message: String) -> Failed {
    (Outcome::Usage, format!("error: {message}"))
}

fn measure(args: &BlocksArgs, scratch: &std::path::Path) -> Result<(), Failed> {
    let models = ModelCache::new(Backends::new());
    let load = |extra: &[String]| -> Result<Arc<wgraph_engine::graph::Graph>, Failed> {
        let config = LoadConfig {
            set: &args.set,
            seed: args.seed,
            paths: args
                .actions
                .as_deref()
                .map(PathOverride::actions)
                .into_iter()
                .collect(),
            output: OutputConfig {
                dir: scratch.to_path_buf(),
                display: DisplayTarget::Discard,
                ..OutputConfig::default()
            },
            provider: args.provider.map(Into::into),
            backend_kind: args.backend.map(Into::into),
            backend: &models,
        };
        match load_quiet(&args.file, &config, extra, &FsLoader) {
            Ok(q) => {
                print_warnings(&q);
                Ok(Arc::new(q.graph))
            }
            Err(Failure::Errors(text)) => Err((Outcome::GraphErrors, text.trim_end().into())),
            Err(Failure::Usage(u)) => Err(usage(u)),
        }
    };
    // The graph as written: the node must be a block_denoiser.
    let plain = load(&[])?;
    let candidates: Vec<&str> = plain
        .nodes
        .iter()
        .filter(|n| n.kind == "block_denoiser")
        .map(|n| n.name.as_str())
        .collect();
    let listed = if candidates.is_empty() {
        "it has none".to_string()
    } else {
        format!("it has {}", candidates.join(", "))
    };
    let Some(id) = plain.find(&args.node) else {
        return Err(usage(format!(
            "{} has no node `{}` (block_denoiser nodes: {listed})",
            args.file.display(),
            args.node
        )));
    };
    let node = plain.node(id);
    if node.kind != "block_denoiser" {
        return Err(usage(format!(
            "`{}` is a `{}` node; `wgraph blocks` measures a `block_denoiser` ({listed})",
            args.node, node.kind
        )));
    }
    let block_models = node.params.model_ref_list("blocks").unwrap_or_default();
    let k = args.propose.unwrap_or((block_models.len() / 4).max(1));
    if k == 0 || k > block_models.len() {
        return Err(usage(format!(
            "--propose {k}: `{}` has {} blocks; propose between 1 and {}",
            args.node,
            block_models.len(),
            block_models.len()
        )));
    }
    let mut extra = vec![format!("{}.importance=true", args.node)];
    if let Some(l) = args.cache_steps {
        extra.push(format!("{}.cache_steps={l}", args.node));
    }
    let graph = load(&extra)?;
    let cache_steps = graph
        .find(&args.node)
        .and_then(|id| graph.node(id).params.int("cache_steps").ok())
        .unwrap_or(1);
    let mut runner = Runner::new(Arc::clone(&graph))
        .map_err(|e| (Outcome::RuntimeFailure, format!("error: {e}")))?;
    let run = RunConfig {
        ticks: args.frames,
        workers: 0,
        pipeline_depth: 1,
    };
    let report = runner
        .run(&run, &mut |_| {})
        .map_err(|e| (Outcome::RuntimeFailure, format!("error: {e}")))?;
    let importance = runner
        .inspect_state(&args.node, |s| wgraph_nodes::block_importance(s).cloned())
        .flatten()
        .ok_or_else(|| {
            (
                Outcome::RuntimeFailure,
                format!("error: internal: `{}` has no importance state", args.node),
            )
        })?;
    let Some(scores) = importance.scores() else {
        return Err((
            Outcome::RuntimeFailure,
            format!(
                "error: no segment measured in {} ticks: `{}` must be called at least cache_steps + 1 = {} times per tick (its sampler's steps) for a call to come {cache_steps} after a full one",
                report.ticks,
                args.node,
                cache_steps + 1
            ),
        ));
    };
    let (table, proposal) = rank(&block_models, &scores, k);
    let width = block_models
        .iter()
        .map(|m| m.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "block importance of `{}` ({}): {} ticks, {} segments, l_c = {cache_steps}",
        args.node,
        args.file.display(),
        report.ticks,
        importance.segments
    );
    println!(
        "{:>5}  {:<width$}  {:>12}  {:>4}",
        "block", "model", "MSE score", "rank"
    );
    for b in &table {
        println!(
            "{:>5}  {:<width$}  {:>12.4e}  {:>4}",
            b.index, b.model, b.mse, b.rank
        );
    }
    println!(
        "score: mean over segments of the MSE of `{}`'s output with the block alone replaced by its residual cached {cache_steps} call(s) earlier (Yume eq. 14); rank 1 = the least important",
        args.node
    );
    println!(
        "proposed: the {k} lowest-scoring block(s), for `{}`:",
        args.node
    );
    println!("{}", cache_line(&proposal));
    if let Some(path) = &args.json {
        let doc = json!({
            "graph": args.file.display().to_string(),
            "node": args.node,
            "ticks": report.ticks,
            "cache_steps": cache_steps,
            "segments": importance.segments,
            "blocks": table.iter().map(|b| json!({
                "index": b.index, "model": b.model, "mse": b.mse, "rank": b.rank,
            })).collect::<Vec<_>>(),
            "propose": k,
            "cache": proposal,
        });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
        wgraph_engine::output::write_file(path, text.as_bytes()).map_err(|e| {
            (
                Outcome::RuntimeFailure,
                format!("error: cannot write {}: {e}", path.display()),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_scores_rank_first_and_are_proposed_in_index_order() {
        let models: Vec<String> = (0..5).map(|i| format!("b{i}")).collect();
        let (table, proposal) = rank(&models, &[0.5, 0.01, 0.3, 0.02, 0.01], 3);
        let ranks: Vec<usize> = table.iter().map(|b| b.rank).collect();
        // Ties go to the lower index.
        assert_eq!(ranks, [5, 1, 4, 3, 2]);
        assert_eq!(proposal, [1, 3, 4]);
        assert_eq!(cache_line(&proposal), "cache = [1, 3, 4]");
        assert_eq!(cache_line(&[]), "cache = []");
    }
}
