//! `block_denoiser`: a diffusion transformer split at its blocks, run block by
//! block — a callable denoiser like `denoiser`, with Yume's block cache
//! (Yume, arXiv 2507.17744, §5.6.2, eqs. 12–14).
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
//! shape than the cache's (another batch size). The state is the tick, the
//! calls since the last full one and one bf16 buffer per cached block,
//! reused from call to call: nothing grows.
//!
//! **Importance** (eq. 14; `importance = true`, which `wgraph blocks` sets):
//! every call runs in full, so the frames are those of `cache = []`; the call
//! l_c after each full one also ablates each block i alone — h^i = h^{i−1} +
//! C^i with C^i (bf16) from that full call, the later blocks and the head run
//! as usual — and adds the MSE of that output against the real one to block
//! i's score. [`block_importance`] reads the sums from the node's state.

use super::contract::{PREDICTIONS, noise_process};
use crate::common::*;
use crate::models::io::{model_with_role, resolved_outputs, run_model, unify_port};
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
];

/// A denoiser run block by block, with Yume's block cache.
pub struct BlockDenoiser;

impl NodeKind for BlockDenoiser {
    fn name(&self) -> &'static str {
        KIND
    }
    fn summary(&self) -> &'static str {
        "a denoiser split into embed → blocks → head models, a sampler's callable; `cache` reuses blocks' residuals for `cache_steps` calls (Yume's block cache)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(BlockDenoiserNode::build(cx)?))
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

/// What feeds each embed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmbedIn {
    X,
    T,
    /// Node input `2 + k`.
    Condition(usize),
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

struct BlockDenoiserNode {
    embed: Arc<dyn Model>,
    embed_name: String,
    embed_inputs: Vec<EmbedIn>,
    /// Embed output index of `h`.
    embed_h: usize,
    blocks: Vec<Part>,
    head: Part,
    /// Per block: its residual is cached.
    cached: Vec<bool>,
    cache_steps: usize,
    importance: bool,
    prediction: String,
    process: NoiseProcess,
    /// The samplers' `t` times this is the model's (`time_scale / 1000`).
    time_factor: Option<f32>,
}

/// Running sums of Yume's eq. 14 importance: per block, the MSE of the
/// denoiser's output with that block alone replaced by its cached residual
/// against the real output, added once per measured segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockImportance {
    /// Sum of the MSE scores, per block.
    pub sums: Vec<f64>,
    /// Segments measured (the same for every block).
    pub segments: u64,
}

impl BlockImportance {
    /// The mean score of each block (`None` before any segment).
    pub fn scores(&self) -> Option<Vec<f64>> {
        (self.segments > 0).then(|| self.sums.iter().map(|s| s / self.segments as f64).collect())
    }
}

/// The importance sums a `block_denoiser` with `importance = true` has
/// measured so far, from its state (`Runner::inspect_state`); `None` for the
/// state of any other kind.
pub fn block_importance(state: &State) -> Option<&BlockImportance> {
    state.downcast_ref::<BlockState>().map(|s| &s.importance)
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

struct BlockState {
    /// The tick of the last call.
    tick: Option<u64>,
    /// Calls since the last full call of this tick; `None` before the first.
    since_full: Option<usize>,
    /// One per block (empty buffers for blocks that are not cached).
    residuals: Vec<Residual>,
    importance: BlockImportance,
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

impl BlockDenoiserNode {
    fn build(cx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let embed = model_with_role(cx, "embed", &["denoiser_embed"], KIND)?;
        let embed_name = cx.params.model_ref("embed")?;
        let head_model = model_with_role(cx, "head", &["denoiser_head"], KIND)?;
        let head_name = cx.params.model_ref("head")?;
        let esig = embed.signature();
        let need = |n: &str| {
            esig.input(n).map(|(i, _)| i).ok_or_else(|| {
                BuildError::param(
                    "embed",
                    format!("embed `{embed_name}` has no input `{n}`; the embed takes the denoiser's x and t"),
                )
            })
        };
        let (x, t) = (need("x")?, need("t")?);
        let mut conditions = 0;
        let embed_inputs: Vec<EmbedIn> = (0..esig.inputs.len())
            .map(|i| {
                if i == x {
                    EmbedIn::X
                } else if i == t {
                    EmbedIn::T
                } else {
                    conditions += 1;
                    EmbedIn::Condition(conditions - 1)
                }
            })
            .collect();
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
        let prediction = hsig
            .meta("wgraph.prediction")
            .unwrap_or(hsig.outputs[0].name.as_str())
            .to_string();
        if let Some(p) = hsig.meta("wgraph.prediction")
            && !PREDICTIONS.contains(&p)
        {
            return Err(BuildError::param(
                "head",
                format!(
                    "model `{}`: wgraph.prediction `{p}` is not one of {}",
                    head.name,
                    PREDICTIONS.join(", ")
                ),
            ));
        }
        let (process, time_factor) = noise_process(&hsig.metadata).map_err(|why| {
            BuildError::param("head", format!("model `{}`'s metadata: {why}", head.name))
        })?;
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
        Ok(BlockDenoiserNode {
            embed,
            embed_name,
            embed_inputs,
            embed_h,
            blocks,
            head,
            cached,
            cache_steps,
            importance: cx.params.bool("importance")?,
            prediction,
            process,
            time_factor,
        })
    }

    /// The node input index feeding embed input `i`.
    fn node_input(&self, e: EmbedIn) -> usize {
        match e {
            EmbedIn::X => 0,
            EmbedIn::T => 1,
            EmbedIn::Condition(k) => 2 + k,
        }
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

    fn run_part(
        part: &Part,
        h: &Tensor,
        embed_in: &[Tensor],
        embed_out: &[Tensor],
    ) -> Result<Tensor, NodeError> {
        let inputs = Self::part_inputs(part, h, embed_in, embed_out)?;
        run_model(&*part.model, &part.name, &inputs)?
            .into_iter()
            .next()
            .ok_or_else(|| NodeError::new(format!("model `{}` gave no output", part.name)))
    }

    /// Runs block `part` on `h`; its output must have `h`'s shape (checked
    /// at build time for the wired types; a model may still disagree).
    fn run_block(
        part: &Part,
        h: &Tensor,
        embed_in: &[Tensor],
        embed_out: &[Tensor],
    ) -> Result<Tensor, NodeError> {
        let out = Self::run_part(part, h, embed_in, embed_out)?;
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
        embed_in: &[Tensor],
        embed_out: &[Tensor],
    ) -> Result<Tensor, NodeError> {
        for block in &self.blocks[from..] {
            h = Self::run_block(block, &h, embed_in, embed_out)?;
        }
        Self::run_part(&self.head, &h, embed_in, embed_out)
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

impl Node for BlockDenoiserNode {
    fn prediction(&self) -> Option<Prediction> {
        Some(Prediction {
            output: self.prediction.clone(),
            process: self.process.clone(),
        })
    }

    fn inputs(&self) -> Vec<PortSpec> {
        let sig = self.embed.signature();
        let mut ports = vec![PortSpec::call("x"), PortSpec::call("t")];
        for (i, e) in self.embed_inputs.iter().enumerate() {
            if let EmbedIn::Condition(_) = e {
                ports.push(PortSpec::wired(&sig.inputs[i].name));
            }
        }
        ports
    }
    fn input_type(&self, port: usize) -> Option<String> {
        // Ports: x, t (from the caller), then the embed's conditions in order.
        let sig = self.embed.signature();
        let i = self
            .embed_inputs
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, EmbedIn::Condition(_)))
            .nth(port.checked_sub(2)?)?
            .0;
        Some(sig.inputs.get(i)?.ty.to_string())
    }

    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output(&self.prediction)]
    }

    /// The embed against the wired inputs, each block against the embed's
    /// outputs and the running `h` (which it must keep), the head against
    /// both: every shape is checked here, before anything runs.
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let esig = self.embed.signature();
        let mut b = Bindings::new();
        for (i, e) in self.embed_inputs.iter().enumerate() {
            let node_input = self.node_input(*e);
            let ty = inputs.get(node_input).and_then(Option::as_ref);
            unify_port(&mut b, &esig.inputs[i], node_input, ty)?;
        }
        let embed_in: Vec<TensorType> = esig.inputs.iter().map(|p| b.apply(&p.ty)).collect();
        let embed_out: Vec<TensorType> = resolved_outputs(&*self.embed, &b)
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

    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(BlockState {
            tick: None,
            since_full: None,
            residuals: self.blocks.iter().map(|_| Residual::default()).collect(),
            importance: BlockImportance {
                sums: vec![0.0; self.blocks.len()],
                segments: 0,
            },
        }))
    }

    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let st = state_mut::<BlockState>(state)?;
        if st.tick != Some(cx.tick) {
            st.tick = Some(cx.tick);
            st.since_full = None;
        }
        let mut embed_in = Vec::with_capacity(self.embed_inputs.len());
        for e in &self.embed_inputs {
            let v = tensor_arg(inputs, self.node_input(*e))?;
            embed_in.push(match (e, self.time_factor) {
                (EmbedIn::T, Some(f)) => {
                    let data = v.host_f32()?.iter().map(|t| t * f).collect();
                    Tensor::from_f32(v.shape(), data)?
                }
                _ => v.clone(),
            });
        }
        let embed_out = run_model(&*self.embed, &self.embed_name, &embed_in)?;
        let mut h = embed_out
            .get(self.embed_h)
            .cloned()
            .ok_or_else(|| NodeError::new(format!("embed `{}` gave no `h`", self.embed_name)))?;
        // A call within l_c of the last full one reuses the cache (when the
        // cache was taken at this shape).
        let within = st.since_full.is_some_and(|n| n < self.cache_steps);
        if self.importance {
            return self.eval_importance(st, within, h, &embed_in, &embed_out);
        }
        if !self.cached.iter().any(|&c| c) {
            let out = self.finish_from(0, h, &embed_in, &embed_out)?;
            return Ok(vec![out.into()]);
        }
        let reuse = within
            && self
                .cached
                .iter()
                .zip(&st.residuals)
                .all(|(&c, r)| !c || r.fits(h.shape()));
        st.since_full = Some(if reuse {
            st.since_full.map_or(0, |n| n + 1)
        } else {
            0
        });
        for (i, block) in self.blocks.iter().enumerate() {
            if !self.cached[i] {
                h = Self::run_block(block, &h, &embed_in, &embed_out)?;
            } else if reuse {
                h = st.residuals[i].apply(&h)?;
            } else {
                let out = Self::run_block(block, &h, &embed_in, &embed_out)?;
                st.residuals[i].store(h.shape(), h.host_f32()?, out.host_f32()?);
                h = out;
            }
        }
        let out = Self::run_part(&self.head, &h, &embed_in, &embed_out)?;
        Ok(vec![out.into()])
    }
}

impl BlockDenoiserNode {
    /// A call in importance mode: in full; a full call of the segment stores
    /// every block's residual, the call `cache_steps` after it measures.
    fn eval_importance(
        &self,
        st: &mut BlockState,
        within: bool,
        mut h: Tensor,
        embed_in: &[Tensor],
        embed_out: &[Tensor],
    ) -> Result<Vec<Value>, NodeError> {
        let fits = st.residuals.iter().all(|r| r.fits(h.shape()));
        let since = if within && fits {
            st.since_full.map_or(0, |n| n + 1)
        } else {
            0
        };
        st.since_full = Some(since);
        let measure = since == self.cache_steps;
        let mut block_inputs = Vec::with_capacity(if measure { self.blocks.len() } else { 0 });
        for (i, block) in self.blocks.iter().enumerate() {
            let out = Self::run_block(block, &h, embed_in, embed_out)?;
            if since == 0 {
                st.residuals[i].store(h.shape(), h.host_f32()?, out.host_f32()?);
            }
            if measure {
                block_inputs.push(h);
            }
            h = out;
        }
        let out = Self::run_part(&self.head, &h, embed_in, embed_out)?;
        if measure {
            let reference = out.host_f32()?;
            for (i, before) in block_inputs.iter().enumerate() {
                let ablated = st.residuals[i].apply(before)?;
                let y = self.finish_from(i + 1, ablated, embed_in, embed_out)?;
                let y = y.host_f32()?;
                if y.len() != reference.len() {
                    return Err(NodeError::new(format!(
                        "importance: the output with block {i} ablated has {} values, the real one {}",
                        y.len(),
                        reference.len()
                    )));
                }
                let mse = y
                    .iter()
                    .zip(reference)
                    .map(|(a, b)| {
                        let d = f64::from(*a) - f64::from(*b);
                        d * d
                    })
                    .sum::<f64>()
                    / reference.len().max(1) as f64;
                st.importance.sums[i] += mse;
            }
            st.importance.segments += 1;
        }
        Ok(vec![out.into()])
    }
}

#[cfg(test)]
mod tests;
