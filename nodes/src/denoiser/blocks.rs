//! `block_denoiser`: a diffusion transformer split at its blocks, run block by
//! block — a callable denoiser like `denoiser`, with Yume's block cache
//! (Yume, arXiv 2507.17744, §5.6.2, eqs. 12–14).
//!
//! The split is a `BlockNetwork`, a `Network` run by the same node as a
//! `denoiser` (`DenoiserNode`): guidance (`guidance`, `guidance_interval`,
//! `guidance_mode`), windows (`chain`, `chain_level`) and `max_batch` are
//! the `denoiser`'s, on the embed's inputs. The cache is the network's
//! state (`BlockState`) inside the node's.
//!
//! Three kinds of model make one denoiser:
//! - `embed` (`wgraph.role = denoiser_embed`) takes the denoiser's inputs —
//!   `x` and `t` from the sampler, every other input a condition wired in the
//!   graph under its own name — and gives the token sequence `h` plus what
//!   the blocks and the head need (the adaLN condition `c`, the
//!   preconditioning's posterior mean, …);
//! - each of `blocks` (`denoiser_block`) maps `h` to `h` (one output of `h`'s
//!   type); its other inputs are fed by the embed's outputs of the same name;
//! - `head` (`denoiser_head`) takes the last `h` and, by name, embed outputs
//!   or the denoiser's own inputs, and gives the prediction. The head carries
//!   the denoiser contract (`wgraph.prediction`, `wgraph.schedule`,
//!   `wgraph.time_scale`), so every sampler runs the node as it runs a
//!   `denoiser`; `t` reaches the embed rescaled to the head's `time_scale`.
//!
//! **Block cache** (eqs. 12–13). With `cache = [i, …]` and `cache_steps =
//! l_c`, the calls of a tick go in segments of 1 + l_c: a full call (t_n)
//! runs every block and stores, for each cached block l, the residual
//! C^l = Block^l(h^{l−1}) − h^{l−1} in bfloat16; the next l_c calls
//! (t_{n−1} … t_{n−l_c}) compute h^l = h^{l−1} + C^l for the cached blocks and
//! run the others; then a full call again. The first call of a tick is full
//! (a cache never crosses ticks), and so is a call whose `h` has another
//! shape than the cache's (another batch size). Under guidance each run of
//! a call — the stacked passes, or each pass alone when they cannot be
//! stacked — has its own cache (a `Slot`, keyed by the passes it
//! carries), so a conditional pass never reuses an unconditional one's
//! residuals. The state is the tick and, per slot, the call of its last
//! full run and one bf16 buffer per cached block, reused from call to call:
//! nothing grows (at most k + 2 slots for k guided conditions).
//!
//! **Importance** (eq. 14; `importance = true`, which `wgraph blocks` sets):
//! every call runs in full, so the frames are those of `cache = []`; the call
//! l_c after each full one also ablates each block i alone — h^i = h^{i−1} +
//! C^i with C^i (bf16) from that full call, the later blocks and the head run
//! as usual — and adds the MSE of that output against the real one to block
//! i's score (with guidance, once per run: each slot is measured).
//! [`block_importance`] reads the sums from the node's state; the
//! measuring is in `blocks/importance.rs`.

use super::guidance::{GUIDANCE_INTERVAL, GUIDANCE_MODE, RESIDUAL_REFERENCE};
use super::network::{Naming, Network, Passes, Run};
use super::window::{CHAIN, CHAIN_LEVEL};
use super::{DenoiserNode, MAX_BATCH};
use crate::common::*;
use crate::models::io::{batchable, model_with_role, resolved_outputs, run_model_rows};
use half::bf16;
use std::sync::Arc;
use wgraph_engine::model::{Model, ModelSignature};
use wgraph_engine::types::Bindings;

const KIND: &str = "block_denoiser";

const PARAMS: &[ParamSpec] = &[
    ParamSpec::required(
        "embed",
        ParamType::ModelRef,
        "the model before the blocks (wgraph.role = denoiser_embed): the denoiser's inputs x, t and conditions → h (tokens) and what blocks and head read by name",
    ),
    ParamSpec::required(
        "blocks",
        ParamType::ModelRefList,
        "the transformer blocks in order (wgraph.role = denoiser_block), each (h, embed outputs by name) → h",
    ),
    ParamSpec::required(
        "head",
        ParamType::ModelRef,
        "the model after the blocks (wgraph.role = denoiser_head; carries wgraph.prediction, schedule, time_scale): (h, embed outputs or inputs by name) → prediction",
    ),
    ParamSpec::optional(
        "cache",
        ParamType::IntList,
        ParamDefault::Absent,
        "indices of the blocks whose residual is cached at a full call and reused for the next `cache_steps` calls (Yume's L_cache); absent or []: every call runs every block",
    ),
    ParamSpec::optional(
        "cache_steps",
        ParamType::Int,
        ParamDefault::Int(1),
        "l_c: calls after each full call that reuse the cached residuals (acceleration ratio 1:l_c), 1..=1000",
    ),
    ParamSpec::optional(
        "importance",
        ParamType::Bool,
        ParamDefault::Bool(false),
        "measure each block's importance (Yume eq. 14: the MSE of the output with the block alone replaced by its cached residual, `cache_steps` calls after a full one); every call then runs in full. Set by `wgraph blocks`",
    ),
    ParamSpec::optional(
        "guidance",
        ParamType::Record,
        ParamDefault::Absent,
        "classifier-free guidance on the embed's conditions: { condition = scale, ... }, nested in the order written, as `denoiser`'s (each run of passes keeps its own block cache)",
    ),
    GUIDANCE_INTERVAL,
    GUIDANCE_MODE,
    RESIDUAL_REFERENCE,
    CHAIN,
    CHAIN_LEVEL,
    MAX_BATCH,
];

/// A denoiser run block by block, with Yume's block cache.
pub struct BlockDenoiser;

impl NodeKind for BlockDenoiser {
    fn name(&self) -> &'static str {
        KIND
    }
    fn summary(&self) -> &'static str {
        "a denoiser split into embed → blocks → head models, a sampler's callable with the denoiser's guidance and windows; `cache` reuses blocks' residuals for `cache_steps` calls (Yume's block cache)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let net = BlockNetwork::build(cx)?;
        Ok(Box::new(DenoiserNode::build(cx, Box::new(net), None)?))
    }
}

/// What feeds a model input: the running token sequence, an embed output,
/// or one of the embed's inputs (the denoiser's x, scaled t or a condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Hidden,
    EmbedOut(usize),
    EmbedIn(usize),
}

struct Part {
    model: Arc<dyn Model>,
    name: String,
    /// One per model input.
    feeds: Vec<Feed>,
}

impl Part {
    /// Model input index of the token sequence.
    fn hidden(&self) -> Option<usize> {
        self.feeds.iter().position(|f| *f == Feed::Hidden)
    }
}

/// A denoiser split at its blocks (embed → blocks → head) with Yume's block
/// cache: the network of a `block_denoiser`. As one model it takes the
/// embed's inputs and gives the head's prediction under the head's
/// contract; a part that reads one of the embed's inputs gets it as the
/// pass has it (`t` rescaled to the head's `time_scale`, a guided
/// condition dropped).
pub(super) struct BlockNetwork {
    embed: Arc<dyn Model>,
    embed_name: String,
    /// Embed output index of `h`.
    embed_h: usize,
    blocks: Vec<Part>,
    head: Part,
    /// The split as one model: the embed's inputs, the head's outputs and
    /// metadata.
    sig: ModelSignature,
    /// Per block: its residual is cached.
    cached: Vec<bool>,
    cache_steps: usize,
    importance: bool,
}

/// A cached residual, bf16 (eq. 12), with the shape of `h` it was taken at.
#[derive(Default)]
struct Residual {
    shape: Vec<usize>,
    data: Vec<bf16>,
}

impl Residual {
    fn store(&mut self, shape: &[usize], before: &[f32], after: &[f32]) {
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        self.data.clear();
        self.data
            .extend(after.iter().zip(before).map(|(a, b)| bf16::from_f32(a - b)));
    }

    fn fits(&self, shape: &[usize]) -> bool {
        !self.data.is_empty() && self.shape == shape
    }

    /// `h + C` (eq. 13).
    fn apply(&self, h: &Tensor) -> Result<Tensor, NodeError> {
        let data = h
            .host_f32()?
            .iter()
            .zip(&self.data)
            .map(|(v, c)| v + c.to_f32())
            .collect();
        Ok(Tensor::from_f32(h.shape(), data)?)
    }
}

/// The block cache's state, the node's network state: a cache per kind of
/// run ([`Slot`]) and the importance sums.
struct BlockState {
    /// The tick of the last run.
    tick: Option<u64>,
    /// One per kind of run seen (at most k + 2 for k guided conditions).
    slots: Vec<Slot>,
    importance: BlockImportance,
}

/// The cache of the runs that carry the guidance passes `passes`.
struct Slot {
    passes: Passes,
    /// The call (of this tick) of the last full run; `None` before the
    /// first of the tick.
    full_at: Option<u64>,
    /// One per block (empty buffers for blocks that are not cached).
    residuals: Vec<Residual>,
}

impl BlockState {
    /// The index of the slot of `run` in `slots`, made on its first use; a
    /// new tick forgets every slot's full run (a cache never crosses ticks).
    fn slot(&mut self, run: Run, blocks: usize) -> usize {
        if self.tick != Some(run.tick) {
            self.tick = Some(run.tick);
            for s in &mut self.slots {
                s.full_at = None;
            }
        }
        match self.slots.iter().position(|s| s.passes == run.passes) {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    passes: run.passes,
                    full_at: None,
                    residuals: (0..blocks).map(|_| Residual::default()).collect(),
                });
                self.slots.len() - 1
            }
        }
    }
}

impl Slot {
    /// Calls since the slot's last full run in this tick (`None`: none yet).
    fn age(&self, call: u64) -> Option<u64> {
        self.full_at.map(|f| call.saturating_sub(f))
    }

    /// Whether every cached block (`cached[i]`) has a residual of `shape`.
    fn fits(&self, cached: &[bool], shape: &[usize]) -> bool {
        cached
            .iter()
            .zip(&self.residuals)
            .all(|(&c, r)| !c || r.fits(shape))
    }
}

/// The model named by element `i` of `blocks`, checked to be a block.
fn block_part(
    i: usize,
    name: String,
    model: Arc<dyn Model>,
    embed_outputs: &[String],
) -> Result<Part, BuildError> {
    let sig = model.signature();
    let err = |m: String| {
        BuildError::item(
            "blocks",
            i,
            format!("`blocks` element {i} (model `{name}`) {m}"),
        )
    };
    match sig.meta("wgraph.role") {
        Some("denoiser_block") => {}
        other => {
            return Err(err(format!(
                "has role `{}`; `blocks` takes models with wgraph.role = denoiser_block (declare it with `role = denoiser_block` if the file lacks it)",
                other.unwrap_or("none")
            )));
        }
    }
    if sig.outputs.len() != 1 {
        return Err(err(format!(
            "has {} outputs; a block gives one, the new h",
            sig.outputs.len()
        )));
    }
    let mut feeds = Vec::with_capacity(sig.inputs.len());
    for port in &sig.inputs {
        if port.name == "h" {
            feeds.push(Feed::Hidden);
        } else if let Some(j) = embed_outputs.iter().position(|o| *o == port.name) {
            feeds.push(Feed::EmbedOut(j));
        } else {
            return Err(err(format!(
                "input `{}` is neither `h` nor an output of the embed (outputs: {})",
                port.name,
                embed_outputs.join(", ")
            )));
        }
    }
    if !feeds.contains(&Feed::Hidden) {
        let names: Vec<&str> = sig.inputs.iter().map(|p| p.name.as_str()).collect();
        return Err(err(format!(
            "has no input `h` (inputs: {}); a block maps the token sequence h to h",
            names.join(", ")
        )));
    }
    Ok(Part { model, name, feeds })
}

impl BlockNetwork {
    /// The parts named by `embed`, `blocks` and `head`, checked against
    /// each other by name, and the cache parameters.
    pub(super) fn build(cx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let embed = model_with_role(cx, "embed", &["denoiser_embed"], KIND)?;
        let embed_name = cx.params.model_ref("embed")?;
        let head_model = model_with_role(cx, "head", &["denoiser_head"], KIND)?;
        let head_name = cx.params.model_ref("head")?;
        let esig = embed.signature();
        for n in ["x", "t"] {
            if esig.input(n).is_none() {
                return Err(BuildError::param(
                    "embed",
                    format!(
                        "embed `{embed_name}` has no input `{n}`; the embed takes the denoiser's x and t"
                    ),
                ));
            }
        }
        let embed_outputs: Vec<String> = esig.outputs.iter().map(|p| p.name.clone()).collect();
        let embed_h = embed_outputs.iter().position(|o| o == "h").ok_or_else(|| {
            BuildError::param(
                "embed",
                format!(
                    "embed `{embed_name}` has no output `h` (outputs: {}); it gives the token sequence the blocks run on",
                    embed_outputs.join(", ")
                ),
            )
        })?;
        let listed = cx.model_list("blocks")?;
        if listed.is_empty() {
            return Err(BuildError::param(
                "blocks",
                "`blocks` is empty: list the block models in order",
            ));
        }
        let blocks = listed
            .into_iter()
            .enumerate()
            .map(|(i, (name, model))| block_part(i, name, model, &embed_outputs))
            .collect::<Result<Vec<_>, _>>()?;
        let head = head_part(head_model, head_name, &embed_outputs, esig)?;
        let hsig = head.model.signature();
        let sig = ModelSignature {
            inputs: esig.inputs.clone(),
            outputs: hsig.outputs.clone(),
            metadata: hsig.metadata.clone(),
        };
        let mut cached = vec![false; blocks.len()];
        if cx.params.get("cache").is_some() {
            for (k, &i) in cx.params.int_list("cache")?.iter().enumerate() {
                let index = usize::try_from(i).ok().filter(|&i| i < blocks.len());
                let Some(index) = index else {
                    return Err(BuildError::item(
                        "cache",
                        k,
                        format!(
                            "block {i} does not exist: `blocks` has {} (indices 0..={})",
                            blocks.len(),
                            blocks.len() - 1
                        ),
                    ));
                };
                if cached[index] {
                    return Err(BuildError::item(
                        "cache",
                        k,
                        format!("block {i} is listed twice"),
                    ));
                }
                cached[index] = true;
            }
        }
        let steps = cx.params.int("cache_steps")?;
        let cache_steps = usize::try_from(steps)
            .ok()
            .filter(|s| (1..=1000).contains(s))
            .ok_or_else(|| {
                BuildError::param(
                    "cache_steps",
                    format!("`cache_steps` must be between 1 and 1000, found {steps}"),
                )
            })?;
        Ok(BlockNetwork {
            embed,
            embed_name,
            embed_h,
            blocks,
            head,
            sig,
            cached,
            cache_steps,
            importance: cx.params.bool("importance")?,
        })
    }

    /// The inputs of `part` with the token sequence `h`.
    fn part_inputs(
        part: &Part,
        h: &Tensor,
        embed_in: &[Tensor],
        embed_out: &[Tensor],
    ) -> Result<Vec<Tensor>, NodeError> {
        part.feeds
            .iter()
            .map(|f| {
                match f {
                    Feed::Hidden => Some(h),
                    Feed::EmbedOut(j) => embed_out.get(*j),
                    Feed::EmbedIn(j) => embed_in.get(*j),
                }
                .cloned()
                .ok_or_else(|| {
                    NodeError::new(format!(
                        "model `{}`: the embed gave fewer outputs than it declares",
                        part.name
                    ))
                })
            })
            .collect()
    }

    /// Runs `part` on `h`, at most `rows` rows per model run (0: no limit).
    fn run_part(
        part: &Part,
        h: &Tensor,
        (embed_in, embed_out): (&[Tensor], &[Tensor]),
        rows: usize,
    ) -> Result<Tensor, NodeError> {
        let inputs = Self::part_inputs(part, h, embed_in, embed_out)?;
        run_model_rows(&*part.model, &part.name, &inputs, rows)?
            .into_iter()
            .next()
            .ok_or_else(|| NodeError::new(format!("model `{}` gave no output", part.name)))
    }

    /// Runs block `part` on `h`; its output must have `h`'s shape (checked
    /// at build time for the wired types; a model may still disagree).
    fn run_block(
        part: &Part,
        h: &Tensor,
        embed: (&[Tensor], &[Tensor]),
        rows: usize,
    ) -> Result<Tensor, NodeError> {
        let out = Self::run_part(part, h, embed, rows)?;
        if out.shape() != h.shape() || out.dtype() != DType::F32 {
            return Err(NodeError::new(format!(
                "block `{}` turned h: {} into {}",
                part.name,
                h.tensor_type(),
                out.tensor_type()
            )));
        }
        Ok(out)
    }

    /// Blocks `from..` and the head on `h`: the prediction.
    fn finish_from(
        &self,
        from: usize,
        mut h: Tensor,
        embed: (&[Tensor], &[Tensor]),
        rows: usize,
    ) -> Result<Tensor, NodeError> {
        for block in &self.blocks[from..] {
            h = Self::run_block(block, &h, embed, rows)?;
        }
        Self::run_part(&self.head, &h, embed, rows)
    }

    /// A run with the cache: a full run stores the cached blocks'
    /// residuals, a run within `cache_steps` calls of its slot's last full
    /// run (at the same shape of `h`) adds them instead of running them.
    fn run_cached(
        &self,
        slot: &mut Slot,
        call: u64,
        mut h: Tensor,
        embed: (&[Tensor], &[Tensor]),
        rows: usize,
    ) -> Result<Tensor, NodeError> {
        let reuse = slot
            .age(call)
            .is_some_and(|a| (1..=self.cache_steps as u64).contains(&a))
            && slot.fits(&self.cached, h.shape());
        if !reuse {
            slot.full_at = Some(call);
        }
        for (i, block) in self.blocks.iter().enumerate() {
            if !self.cached[i] {
                h = Self::run_block(block, &h, embed, rows)?;
            } else if reuse {
                h = slot.residuals[i].apply(&h)?;
            } else {
                let out = Self::run_block(block, &h, embed, rows)?;
                slot.residuals[i].store(h.shape(), h.host_f32()?, out.host_f32()?);
                h = out;
            }
        }
        Self::run_part(&self.head, &h, embed, rows)
    }
}

/// The head, checked: role, one output, `h` and inputs fed by name.
fn head_part(
    model: Arc<dyn Model>,
    name: String,
    embed_outputs: &[String],
    esig: &ModelSignature,
) -> Result<Part, BuildError> {
    let sig = model.signature();
    if sig.outputs.len() != 1 {
        return Err(BuildError::param(
            "head",
            format!(
                "head `{name}` has {} outputs; it gives one, the prediction",
                sig.outputs.len()
            ),
        ));
    }
    let mut feeds = Vec::with_capacity(sig.inputs.len());
    for port in &sig.inputs {
        let feed = if port.name == "h" {
            Feed::Hidden
        } else if let Some(j) = embed_outputs.iter().position(|o| *o == port.name) {
            Feed::EmbedOut(j)
        } else if let Some((j, _)) = esig.input(&port.name) {
            Feed::EmbedIn(j)
        } else {
            return Err(BuildError::param(
                "head",
                format!(
                    "head `{name}`: input `{}` is not `h`, an output of the embed ({}) or an input of the denoiser",
                    port.name,
                    embed_outputs.join(", ")
                ),
            ));
        };
        feeds.push(feed);
    }
    let part = Part { model, name, feeds };
    if part.hidden().is_none() {
        return Err(BuildError::param(
            "head",
            format!(
                "head `{}` has no input `h`: it reads the last block's h",
                part.name
            ),
        ));
    }
    Ok(part)
}

impl Network for BlockNetwork {
    fn signature(&self) -> &ModelSignature {
        &self.sig
    }

    fn naming(&self) -> Naming {
        Naming {
            inputs: (self.embed_name.clone(), "embed"),
            contract: (self.head.name.clone(), "head"),
        }
    }

    /// Every part's every port has a free batch axis.
    fn batchable(&self) -> bool {
        batchable(self.embed.signature())
            && self
                .blocks
                .iter()
                .chain([&self.head])
                .all(|p| batchable(p.model.signature()))
    }

    /// The embed against the bound inputs, each block against the embed's
    /// outputs and the running `h` (which it must keep), the head against
    /// both: every shape is checked here, before anything runs.
    fn resolved_outputs(&self, b: &Bindings) -> Result<Vec<ValueType>, TypeError> {
        let esig = self.embed.signature();
        let embed_in: Vec<TensorType> = esig.inputs.iter().map(|p| b.apply(&p.ty)).collect();
        let embed_out: Vec<TensorType> = resolved_outputs(&*self.embed, b)
            .map_err(|e| TypeError::node(format!("embed `{}`: {}", self.embed_name, e.message)))?
            .into_iter()
            .map(|v| {
                v.as_tensor().cloned().ok_or_else(|| {
                    TypeError::node(format!(
                        "embed `{}`: an output is not a tensor",
                        self.embed_name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let mut h = embed_out[self.embed_h].clone();
        let feed_type = |f: &Feed, h: &TensorType| match f {
            Feed::Hidden => h.clone(),
            Feed::EmbedOut(j) => embed_out[*j].clone(),
            Feed::EmbedIn(j) => embed_in[*j].clone(),
        };
        for (i, block) in self.blocks.iter().enumerate() {
            let sig = block.model.signature();
            let mut bb = Bindings::new();
            for (port, feed) in sig.inputs.iter().zip(&block.feeds) {
                let given = feed_type(feed, &h);
                let from = match feed {
                    Feed::Hidden if i == 0 => "the embed's `h`".to_string(),
                    Feed::Hidden => format!("block {}'s output", i - 1),
                    _ => format!("the embed's `{}`", port.name),
                };
                bb.unify(&port.ty, &given).map_err(|why| {
                    TypeError::node(format!(
                        "`blocks` element {i} (model `{}`): input `{}` expects {}, but {from} is {given}: {why}",
                        block.name, port.name, port.ty
                    ))
                })?;
            }
            let out = resolved_outputs(&*block.model, &bb)
                .map_err(|e| {
                    TypeError::node(format!(
                        "`blocks` element {i} (model `{}`): {}",
                        block.name, e.message
                    ))
                })?
                .swap_remove(0);
            let out = out.as_tensor().cloned().ok_or_else(|| {
                TypeError::node(format!(
                    "block `{}`: its output is not a tensor",
                    block.name
                ))
            })?;
            if unify_types(&h, &out).is_none() {
                return Err(TypeError::node(format!(
                    "`blocks` element {i} (model `{}`) turns h: {h} into {out}; a block must keep h's type",
                    block.name
                )));
            }
            h = out;
        }
        let hsig = self.head.model.signature();
        let mut hb = Bindings::new();
        for (port, feed) in hsig.inputs.iter().zip(&self.head.feeds) {
            let given = feed_type(feed, &h);
            hb.unify(&port.ty, &given).map_err(|why| {
                TypeError::node(format!(
                    "`head` (model `{}`): input `{}` expects {}, but it is fed {given}: {why}",
                    self.head.name, port.name, port.ty
                ))
            })?;
        }
        resolved_outputs(&*self.head.model, &hb).map_err(|e| {
            TypeError::node(format!(
                "`head` (model `{}`): {}",
                self.head.name, e.message
            ))
        })
    }

    fn init_state(&self) -> State {
        Box::new(BlockState {
            tick: None,
            slots: Vec::new(),
            importance: BlockImportance {
                sums: vec![0.0; self.blocks.len()],
                segments: 0,
            },
        })
    }

    fn run(
        &self,
        state: &mut State,
        run: Run,
        inputs: &[Tensor],
        rows: usize,
    ) -> Result<Tensor, NodeError> {
        let st = state_mut::<BlockState>(state)?;
        let embed_out = run_model_rows(&*self.embed, &self.embed_name, inputs, rows)?;
        let h = embed_out
            .get(self.embed_h)
            .cloned()
            .ok_or_else(|| NodeError::new(format!("embed `{}` gave no `h`", self.embed_name)))?;
        let embed = (inputs, embed_out.as_slice());
        if self.importance {
            let i = st.slot(run, self.blocks.len());
            let slot = (&mut st.slots[i], &mut st.importance);
            return self.run_importance(slot, run.call, h, embed, rows);
        }
        if !self.cached.iter().any(|&c| c) {
            return self.finish_from(0, h, embed, rows);
        }
        let i = st.slot(run, self.blocks.len());
        self.run_cached(&mut st.slots[i], run.call, h, embed, rows)
    }
}

mod importance;
pub use importance::{BlockImportance, block_importance};

#[cfg(test)]
mod tests;
