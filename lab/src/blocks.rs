//! `wgraph blocks FILE NODE`: which blocks of a `block_denoiser` Yume's block
//! cache can skip — the MSE importance of each block (Yume, arXiv 2507.17744,
//! §5.6.2, eq. 14), measured on the graph's own run.
//!
//! Main types: [`BlocksOptions`] in, [`BlocksReport`] (with a
//! [`BlockScore`] per block) out, from [`blocks`]; [`rank`] and
//! [`cache_line`] are the decision on their own.
//!
//! The graph runs `frames` ticks with the node's `importance = true`
//! (and `cache_steps` when given): every call of the denoiser runs in full,
//! and in each segment of 1 + l_c calls — a full call at t_n, then l_c more —
//! the call at t_{n−l_c} also runs once per block i with that block alone
//! replaced by its residual cached at t_n (bf16), and scores the MSE of the
//! denoiser's output against the real one. The node's state holds the sums
//! ([`wgraph_nodes::block_importance`], read with `Runner::inspect_state`
//! after the run); the score of a block is its mean over every segment of
//! every tick. The `propose` lowest-scoring blocks are given as a
//! `cache = [...]` line to paste into the graph (Yume caches its 10 lowest
//! of 40).

use crate::LabError;
use crate::load::{LoadRequest, Models, load};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use wgraph_engine::graph::Graph;
use wgraph_engine::load::PathOverride;
use wgraph_engine::node::{DisplayTarget, OutputConfig};
use wgraph_engine::schedule::{RunConfig, Runner};

/// What `wgraph blocks` measures.
#[derive(Debug, Clone)]
pub struct BlocksOptions {
    /// The graph file.
    pub file: PathBuf,
    /// The `block_denoiser` node to measure.
    pub node: String,
    /// Ticks to run.
    pub frames: u64,
    /// l_c: ablate this many calls after each full call (default: the node's `cache_steps`).
    pub cache_steps: Option<u64>,
    /// How many of the lowest-scoring blocks to propose (default: a quarter
    /// of the blocks, at least 1).
    pub propose: Option<usize>,
    /// Action file fed to the graph's `actions` nodes.
    pub actions: Option<PathBuf>,
    /// `NODE.PARAM=VALUE` and `NODE=KIND` changes.
    pub set: Vec<String>,
    /// Seed for every random source (replaces the world's seed).
    pub seed: Option<u64>,
    /// Where the graph's file sinks write (the display is discarded);
    /// removed at the end.
    pub work: PathBuf,
}

/// One block's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockScore {
    /// The block's position in the node's `blocks` list.
    pub index: usize,
    /// The block's model name.
    pub model: String,
    /// Its score: the mean MSE over segments.
    pub mse: f64,
    /// 1 = the least important (lowest score).
    pub rank: usize,
}

/// The measured importance of a node's blocks (`wgraph blocks --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlocksReport {
    /// The graph file, as given.
    pub graph: String,
    /// The node measured.
    pub node: String,
    /// Ticks run.
    pub ticks: u64,
    /// l_c: calls ablated after each full call.
    pub cache_steps: i64,
    /// Segments measured.
    pub segments: u64,
    /// Every block, in index order.
    pub blocks: Vec<BlockScore>,
    /// How many blocks are proposed.
    pub propose: usize,
    /// The proposed blocks, ascending.
    pub cache: Vec<usize>,
}

impl BlocksReport {
    /// The text `wgraph blocks` prints: the table, how it was scored and
    /// the line to paste.
    pub fn text(&self) -> String {
        let width = self
            .blocks
            .iter()
            .map(|b| b.model.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let (node, l) = (&self.node, self.cache_steps);
        let mut text = format!(
            "block importance of `{node}` ({}): {} ticks, {} segments, l_c = {l}\n",
            self.graph, self.ticks, self.segments
        );
        text += &format!(
            "{:>5}  {:<width$}  {:>12}  {:>4}\n",
            "block", "model", "MSE score", "rank"
        );
        for b in &self.blocks {
            text += &format!(
                "{:>5}  {:<width$}  {:>12.4e}  {:>4}\n",
                b.index, b.model, b.mse, b.rank
            );
        }
        text += &format!(
            "score: mean over segments of the MSE of `{node}`'s output with the block alone replaced by its residual cached {l} call(s) earlier (Yume eq. 14); rank 1 = the least important\n"
        );
        text += &format!(
            "proposed: the {} lowest-scoring block(s), for `{node}`:\n",
            self.propose
        );
        text + &cache_line(&self.cache) + "\n"
    }
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

/// Measures the importance of `options.node`'s blocks, loading models with
/// `models`.
pub fn blocks(options: &BlocksOptions, models: &Models) -> Result<BlocksReport, LabError> {
    let result = measure(options, models);
    let _ = std::fs::remove_dir_all(&options.work);
    result
}

fn measure(options: &BlocksOptions, models: &Models) -> Result<BlocksReport, LabError> {
    let node_name = options.node.as_str();
    let load_with = |extra: &[String]| -> Result<Arc<Graph>, LabError> {
        let request = LoadRequest {
            set: options.set.iter().chain(extra).cloned().collect(),
            seed: options.seed,
            paths: options
                .actions
                .as_deref()
                .map(PathOverride::actions)
                .into_iter()
                .collect(),
            output: OutputConfig {
                dir: options.work.clone(),
                display: DisplayTarget::Discard,
                ..OutputConfig::default()
            },
        };
        Ok(Arc::new(load(&options.file, &request, models)?.graph))
    };
    // The graph as written: the node must be a block_denoiser.
    let plain = load_with(&[])?;
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
    let Some(id) = plain.find(node_name) else {
        return Err(LabError::Usage(format!(
            "{} has no node `{node_name}` (block_denoiser nodes: {listed})",
            options.file.display(),
        )));
    };
    let node = plain.node(id);
    if node.kind != "block_denoiser" {
        return Err(LabError::Usage(format!(
            "`{node_name}` is a `{}` node; `wgraph blocks` measures a `block_denoiser` ({listed})",
            node.kind
        )));
    }
    let block_models = node.params.model_ref_list("blocks").unwrap_or_default();
    let k = options.propose.unwrap_or((block_models.len() / 4).max(1));
    if k == 0 || k > block_models.len() {
        return Err(LabError::Usage(format!(
            "--propose {k}: `{node_name}` has {} blocks; propose between 1 and {}",
            block_models.len(),
            block_models.len()
        )));
    }
    let mut extra = vec![format!("{node_name}.importance=true")];
    if let Some(l) = options.cache_steps {
        extra.push(format!("{node_name}.cache_steps={l}"));
    }
    let graph = load_with(&extra)?;
    let cache_steps = graph
        .find(node_name)
        .and_then(|id| graph.node(id).params.int("cache_steps").ok())
        .unwrap_or(1);
    let mut runner =
        Runner::new(Arc::clone(&graph)).map_err(|e| LabError::Runtime(e.to_string()))?;
    let run = RunConfig {
        ticks: options.frames,
        workers: 0,
        pipeline_depth: 1,
    };
    let report = runner
        .run(&run, &mut |_| {})
        .map_err(|e| LabError::Runtime(e.to_string()))?;
    let importance = runner
        .inspect_state(node_name, |s| wgraph_nodes::block_importance(s).cloned())
        .flatten()
        .ok_or_else(|| {
            LabError::Runtime(format!("internal: `{node_name}` has no importance state"))
        })?;
    let Some(scores) = importance.scores() else {
        return Err(LabError::Runtime(format!(
            "no segment measured in {} ticks: `{node_name}` must be called at least cache_steps + 1 = {} times per tick (its sampler's steps) for a call to come {cache_steps} after a full one",
            report.ticks,
            cache_steps + 1
        )));
    };
    let (table, proposal) = rank(&block_models, &scores, k);
    Ok(BlocksReport {
        graph: options.file.display().to_string(),
        node: options.node.clone(),
        ticks: report.ticks,
        cache_steps,
        segments: importance.segments,
        blocks: table,
        propose: k,
        cache: proposal,
    })
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

    /// The report prints the table and the line to paste, and its JSON
    /// has the keys `wgraph blocks --json` always wrote.
    #[test]
    fn the_report_prints_the_proposal_and_serialises() {
        let models: Vec<String> = vec!["embed_block_a".into(), "b".into()];
        let (blocks, cache) = rank(&models, &[0.2, 0.1], 1);
        let report = BlocksReport {
            graph: "g.world".into(),
            node: "dit".into(),
            ticks: 2,
            cache_steps: 1,
            segments: 4,
            blocks,
            propose: 1,
            cache,
        };
        let text = report.text();
        assert!(
            text.contains("`dit` (g.world): 2 ticks, 4 segments, l_c = 1"),
            "{text}"
        );
        assert!(text.ends_with("cache = [1]\n"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["blocks"][1]["rank"], 1);
        assert_eq!(json["cache"], serde_json::json!([1]));
        assert_eq!(json["propose"], 1);
    }
}
