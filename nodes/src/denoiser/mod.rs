//! The callables a sampler calls (`@denoiser(x, t)`): a diffusion network
//! with its guidance and windows, the same network split at its blocks, and
//! an exact analytic velocity for tests and benchmarks.
//!
//! | file | kinds / concern |
//! |---|---|
//! | `mod.rs` | `denoiser` — the node (`DenoiserNode`, shared by every kind here but `target_flow`): ports from the network, passes, `max_batch` |
//! | `network.rs` | `Network`: what one pass runs — one model (`ModelNetwork`) or the block split |
//! | `contract.rs` | the noise contract a denoiser's metadata declares (`wgraph.prediction`, `wgraph.schedule`, `wgraph.time_scale`) |
//! | `guidance.rs` | classifier-free guidance: nested CFG, `guidance_interval`, residual CFG |
//! | `window.rs` | windows of frames (`df_window`): repeated conditions, `chain`, the context level |
//! | `controlnet.rs` | `controlnet` — a denoiser plus a ControlNet branch on a `hint` |
//! | `blocks.rs` | `block_denoiser` — the node over a `BlockNetwork`: embed → blocks → head, with Yume's block cache |
//! | `target_flow.rs` | `target_flow` — the exact velocity toward a known target |
//!
//! **The `denoiser` kind.** A sampler calls the node with `x` (the noisy
//! latent) and `t` (the model timestep, `f32[1]`); every other input of the
//! model is a *condition* wired in the graph under the model's own input name
//! (`context`, `action`, `text`, ...). The single output is named after the
//! model's `wgraph.prediction` metadata (`velocity`, `epsilon` or `sample`),
//! so a sampler can check at build time that it gets the prediction it
//! integrates. The samplers' `t = 1000σ` is rescaled to the model's
//! `wgraph.time_scale` ([`contract`]). Guidance ([`guidance`]) runs one
//! *pass* of the model per guidance level; when the model's batch dimension
//! is symbolic the passes are stacked into one run, and `max_batch` caps
//! the rows of one run (more are split into several runs and joined).
//! A call may carry a window of frames as rows ([`window`]).
//!
//! **Networks.** What a pass runs is a `network::Network`: the `model`
//! of a `denoiser` or `controlnet`, or the embed → blocks → head split of a
//! `block_denoiser` ([`blocks`]), whose block cache lives behind the same
//! interface — so guidance, windows and `max_batch` work the same on it.

pub mod blocks;
mod contract;
pub mod controlnet;
mod guidance;
mod network;
pub mod target_flow;
mod window;

use crate::common::*;
use crate::models::io::{batchable, model_with_role, unify_port};
use crate::samplers::diffusion::{alpha_at, alphas_cumprod, flow_sigma_of_alpha};
use controlnet::ControlBranch;
use guidance::{GUIDANCE_INTERVAL, GUIDANCE_MODE, RESIDUAL_REFERENCE, Residual};
use network::{ModelNetwork, Network, Passes, Run};
use wgraph_engine::types::Bindings;
use window::{CHAIN, CHAIN_LEVEL};

pub(crate) use contract::{PREDICTIONS, noise_process};

/// `max_batch` (`denoiser`, `controlnet`): stream batching's knob.
const MAX_BATCH: ParamSpec = ParamSpec::optional(
    "max_batch",
    ParamType::Int,
    ParamDefault::Int(0),
    "the most rows one model run takes (0: no limit): guidance passes and window frames are stacked into one run up to it, split into several above it (1: every pass and frame its own run)",
);

const DENOISER_PARAMS: &[ParamSpec] = &[
    ParamSpec::required(
        "model",
        ParamType::ModelRef,
        "the denoising network (wgraph.role = denoiser)",
    ),
    ParamSpec::optional(
        "guidance",
        ParamType::Record,
        ParamDefault::Absent,
        "classifier-free guidance: { condition = scale, ... }, nested in the order written",
    ),
    GUIDANCE_INTERVAL,
    GUIDANCE_MODE,
    RESIDUAL_REFERENCE,
    CHAIN,
    CHAIN_LEVEL,
    MAX_BATCH,
];

/// A denoising network called by a sampler.
pub struct Denoiser;

impl NodeKind for Denoiser {
    fn name(&self) -> &'static str {
        "denoiser"
    }
    fn summary(&self) -> &'static str {
        "a diffusion network as a sampler's callable: (x, t) + wired conditions → prediction, with multi-condition CFG"
    }
    fn params(&self) -> &'static [ParamSpec] {
        DENOISER_PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(DenoiserNode::build(
            cx,
            Box::new(model_network(cx, "denoiser")?),
            None,
        )?))
    }
}

/// The network of a `denoiser` or `controlnet`: its `model`, which must be
/// a denoiser.
fn model_network(cx: &BuildContext<'_>, kind: &str) -> Result<ModelNetwork, BuildError> {
    let model = model_with_role(cx, "model", &["denoiser"], kind)?;
    Ok(ModelNetwork::new(model, cx.params.model_ref("model")?))
}

/// A network with guidance, windows and `max_batch` (and, for
/// `controlnet`, a control branch): every kind of this module but
/// `target_flow`.
struct DenoiserNode {
    net: Box<dyn Network>,
    /// The model the network's inputs are named after, in messages.
    model_name: String,
    /// Model input index of x, t, and of each wired condition (node input 2 + i).
    x: usize,
    t: usize,
    conditions: Vec<usize>,
    /// Model input index fed by the control branch.
    control_input: Option<usize>,
    control: Option<ControlBranch>,
    /// (index into `conditions`, scale), in nesting order.
    guidance: Vec<(usize, f32)>,
    /// The condition indices of `guidance`, in the same order.
    guided: Vec<usize>,
    prediction: String,
    /// The noise process the model's metadata declares.
    process: NoiseProcess,
    /// `t` from the samplers (`1000·σ`) times this is the model's `t`
    /// (`wgraph.time_scale / 1000`); `None`: passed as is.
    time_factor: Option<f32>,
    batch: bool,
    /// `guidance_interval`: guide only for lo <= σ <= hi.
    interval: Option<(f64, f64)>,
    /// `guidance_mode = residual`: how to write the virtual negative.
    residual: Option<Residual>,
    /// A VP model's ᾱ table (for the noise level of a call).
    alphas: Option<Vec<f64>>,
    /// `max_batch`: the most rows per model run (0: no limit).
    max_batch: usize,
    /// `chain`: index into `conditions` of the previous frame.
    chain: Option<usize>,
    /// Model input the node fills with the chained condition's timestep.
    level_input: Option<usize>,
}

impl DenoiserNode {
    fn build(
        cx: &BuildContext<'_>,
        net: Box<dyn Network>,
        control: Option<ControlBranch>,
    ) -> Result<Self, BuildError> {
        let naming = net.naming();
        let (model_name, model_param) = naming.inputs;
        let (contract_name, contract_param) = naming.contract;
        let sig = net.signature();
        let need = |n: &str| {
            sig.input(n).map(|(i, _)| i).ok_or_else(|| {
                BuildError::param(
                    model_param,
                    format!(
                        "denoiser `{model_name}` has no input `{n}`; a denoiser takes x and t (map the file's names in its declaration: `inputs = {{ x = \"…\", t = \"…\" }}`)"
                    ),
                )
            })
        };
        let (x, t) = (need("x")?, need("t")?);
        let control_input = match &control {
            Some(_) => Some(sig.input("control").map(|(i, _)| i).ok_or_else(|| {
                BuildError::param(
                    model_param,
                    format!("`{model_name}` has no `control` input for a ControlNet residual"),
                )
            })?),
            None => None,
        };
        let level_input = window::chain_level_input(
            cx,
            sig,
            (&model_name, contract_param),
            (x, t, control_input),
        )?;
        let conditions: Vec<usize> = (0..sig.inputs.len())
            .filter(|&i| i != x && i != t && Some(i) != control_input && Some(i) != level_input)
            .collect();
        let chain = condition_param(cx, "chain", &conditions, sig, &format!("`{model_name}`"))?;
        if sig.outputs.len() != 1 {
            return Err(BuildError::param(
                contract_param,
                format!("denoiser `{contract_name}` must have exactly one output"),
            ));
        }
        let prediction = sig
            .meta("wgraph.prediction")
            .unwrap_or(sig.outputs[0].name.as_str())
            .to_string();
        if let Some(p) = sig.meta("wgraph.prediction")
            && !PREDICTIONS.contains(&p)
        {
            return Err(BuildError::param(
                contract_param,
                format!(
                    "model `{contract_name}`: wgraph.prediction `{p}` is not one of {}",
                    PREDICTIONS.join(", ")
                ),
            ));
        }
        let (process, time_factor) = noise_process(&sig.metadata).map_err(|why| {
            BuildError::param(
                contract_param,
                format!("model `{contract_name}`'s metadata: {why}"),
            )
        })?;
        let guidance = guidance::guidance_param(cx, &conditions, sig, &model_name)?;
        let batch = net.batchable()
            && control
                .as_ref()
                .is_none_or(|c| batchable(c.model.signature()));
        let interval = guidance::guidance_interval(cx, guidance.is_empty())?;
        let residual = guidance::residual_mode(
            cx,
            guidance.is_empty(),
            &conditions,
            sig,
            &prediction,
            &process,
        )?;
        let alphas = match &process {
            NoiseProcess::Vp {
                beta_start,
                beta_end,
                train_steps,
                scaled,
            } => Some(alphas_cumprod(
                *beta_start,
                *beta_end,
                *train_steps,
                *scaled,
            )),
            _ => None,
        };
        let max_batch = cx.params.int("max_batch")?;
        let max_batch = usize::try_from(max_batch).map_err(|_| {
            BuildError::param(
                "max_batch",
                format!("`max_batch` must be 0 (no limit) or a number of rows, found {max_batch}"),
            )
        })?;
        Ok(DenoiserNode {
            max_batch,
            chain,
            level_input,
            interval,
            residual,
            alphas,
            guided: guidance.iter().map(|(c, _)| *c).collect(),
            x,
            t,
            conditions,
            control_input,
            control,
            guidance,
            prediction,
            process,
            time_factor,
            batch,
            model_name,
            net,
        })
    }

    /// The noise level of a call at the samplers' `t`: (flow σ, ᾱ) — ᾱ of
    /// the timestep for a VP model, of σ = t for a ve model, 0 for a flow
    /// model.
    fn level(&self, t: f32) -> (f64, f64) {
        match &self.alphas {
            Some(table) => {
                let alpha = alpha_at(table, f64::from(t));
                (flow_sigma_of_alpha(alpha), alpha)
            }
            // A ve model is called with σ: its flow level, and the ᾱ of the
            // VE σ (1/(1+σ²)), which its readout reads σ from.
            None if matches!(self.process, NoiseProcess::Ve { .. }) => {
                let s = f64::from(t);
                (crate::samplers::schedule::to_flow(s), 1.0 / (1.0 + s * s))
            }
            None => (f64::from(t) / 1000.0, 0.0),
        }
    }

    /// Runs the passes `passes` of call `call` (tick, call of the tick),
    /// stacked in `inputs`, through the network: their prediction.
    fn run_passes(
        &self,
        st: &mut DenoiserState,
        (tick, call): (u64, u64),
        passes: Passes,
        inputs: &[Tensor],
    ) -> Result<Tensor, NodeError> {
        let run = Run { tick, call, passes };
        self.net.run(&mut st.net, run, inputs, self.max_batch)
    }

    /// The model inputs of one guidance pass: conditions in `dropped` zeroed.
    fn pass(
        &self,
        x: &Tensor,
        t: &Tensor,
        conds: &[Tensor],
        control: Option<&Tensor>,
        (dropped, nulls): (&[usize], &[Option<Tensor>]),
        level: Option<&Tensor>,
    ) -> Result<Vec<Tensor>, NodeError> {
        let sig = self.net.signature();
        let mut inputs = Vec::with_capacity(sig.inputs.len());
        for i in 0..sig.inputs.len() {
            let tensor = if i == self.x {
                x.clone()
            } else if i == self.t {
                t.clone()
            } else if Some(i) == self.level_input {
                level
                    .cloned()
                    .ok_or_else(|| NodeError::new("internal: missing context level"))?
            } else if Some(i) == self.control_input {
                control
                    .cloned()
                    .ok_or_else(|| NodeError::new("internal: missing control residual"))?
            } else {
                let ci = self
                    .conditions
                    .iter()
                    .position(|&c| c == i)
                    .ok_or_else(|| NodeError::new("internal: unknown model input"))?;
                if dropped.contains(&ci) {
                    nulls
                        .get(ci)
                        .cloned()
                        .flatten()
                        .ok_or_else(|| NodeError::new("internal: missing null condition"))?
                } else {
                    conds[ci].clone()
                }
            };
            inputs.push(tensor);
        }
        Ok(inputs)
    }
}

/// A string parameter naming one of the model's conditions (`chain`,
/// `residual_reference`): its index into `conditions`, or an error listing
/// them; `None` when the parameter is not set.
fn condition_param(
    cx: &BuildContext<'_>,
    param: &str,
    conditions: &[usize],
    sig: &wgraph_engine::model::ModelSignature,
    owner: &str,
) -> Result<Option<usize>, BuildError> {
    let Ok(name) = cx.params.string(param) else {
        return Ok(None);
    };
    conditions
        .iter()
        .position(|&i| sig.inputs[i].name == name)
        .map(Some)
        .ok_or_else(|| {
            let names: Vec<&str> = conditions
                .iter()
                .map(|&i| sig.inputs[i].name.as_str())
                .collect();
            BuildError::param(
                param,
                format!(
                    "`{name}` is not a condition of {owner} (conditions: {})",
                    names.join(", ")
                ),
            )
        })
}

impl Node for DenoiserNode {
    fn prediction(&self) -> Option<Prediction> {
        Some(Prediction {
            output: self.prediction.clone(),
            process: self.process.clone(),
        })
    }
    fn inputs(&self) -> Vec<PortSpec> {
        let sig = self.net.signature();
        let mut ports = vec![PortSpec::call("x"), PortSpec::call("t")];
        ports.extend(
            self.conditions
                .iter()
                .map(|&i| PortSpec::wired(&sig.inputs[i].name)),
        );
        if self.control.is_some() {
            ports.push(PortSpec::wired("hint"));
        }
        ports
    }
    fn input_type(&self, port: usize) -> Option<String> {
        // Ports: x, t (from the caller), the conditions, then `hint`.
        let i = *self.conditions.get(port.checked_sub(2)?)?;
        Some(self.net.signature().inputs.get(i)?.ty.to_string())
    }

    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output(&self.prediction)]
    }

    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let sig = self.net.signature();
        let mut b = Bindings::new();
        let get = |i: usize| inputs.get(i).and_then(Option::as_ref);
        unify_port(&mut b, &sig.inputs[self.x], 0, get(0))?;
        unify_port(&mut b, &sig.inputs[self.t], 1, get(1))?;
        // A window call (x with n > 1 rows) repeats one-row conditions.
        let rows = match get(0) {
            Some(ValueType::Tensor(xt)) if self.batch => match xt.shape.first() {
                Some(Dim::Known(n)) if *n > 1 => Some(*n),
                _ => None,
            },
            _ => None,
        };
        for (k, &mi) in self.conditions.iter().enumerate() {
            let widened = match (get(2 + k), rows) {
                (Some(ValueType::Tensor(ct)), Some(n))
                    if ct.shape.first() == Some(&Dim::Known(1)) =>
                {
                    let mut w = ct.clone();
                    w.shape[0] = Dim::Known(n);
                    Some(ValueType::Tensor(w))
                }
                _ => None,
            };
            unify_port(
                &mut b,
                &sig.inputs[mi],
                2 + k,
                widened.as_ref().or(get(2 + k)),
            )?;
        }
        self.check_chain(inputs)?;
        self.check_reference(inputs)?;
        self.infer_control(inputs, &mut b)?;
        self.net.resolved_outputs(&b)
    }

    /// The null embeddings of guided conditions (zeros), made once per run,
    /// and the network's state.
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(DenoiserState {
            nulls: vec![None; self.conditions.len()],
            tick: None,
            call: 0,
            net: self.net.init_state(),
        }))
    }

    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let st = state_mut::<DenoiserState>(state)?;
        let call = st.begin_call(cx.tick);
        let x = tensor_arg(inputs, 0)?;
        let scaled_t;
        let t = match self.time_factor {
            Some(f) => {
                let t = tensor_arg(inputs, 1)?;
                let data = t.host_f32()?.iter().map(|v| v * f).collect();
                scaled_t = Tensor::from_f32(t.shape(), data)?;
                &scaled_t
            }
            None => tensor_arg(inputs, 1)?,
        };
        let rows = x.shape().first().copied().unwrap_or(1);
        let conds = self.window_conditions(inputs, x)?;
        let level = match self.level_input {
            Some(_) => Some(self.context_level(t, rows)?),
            None => None,
        };
        let level = level.as_ref();
        let control = match &self.control {
            Some(_) => Some(self.control_residual(x, t, tensor_arg(inputs, self.hint_input())?)?),
            None => None,
        };
        let ts = tensor_arg(inputs, 1)?.host_f32()?;
        self.guide((st, call), ts, (x, t), &conds, control.as_ref(), level)
    }
}

/// The state of a [`DenoiserNode`].
struct DenoiserState {
    /// The null embeddings of guided conditions (zeros), by condition.
    nulls: Vec<Option<Tensor>>,
    /// The tick of the last call.
    tick: Option<u64>,
    /// The number of the last call within its tick.
    call: u64,
    /// The network's state ([`Network::init_state`]).
    net: State,
}

impl DenoiserState {
    /// Counts a call at `tick`: (tick, its number within the tick).
    fn begin_call(&mut self, tick: u64) -> (u64, u64) {
        if self.tick == Some(tick) {
            self.call += 1;
        } else {
            self.tick = Some(tick);
            self.call = 0;
        }
        (tick, self.call)
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! Fixtures of the denoiser tests: a fake model whose prediction shows
    //! which conditions it saw, and the node called on it.
    pub use super::*;
    pub use crate::models::io::fake::{FakeModel, build_with, fake};
    pub use std::sync::Arc;
    pub use wgraph_engine::node::{NoCallees, NoInferCalls};
    pub use wgraph_engine::params::ParamValue;
    pub use wgraph_engine::settings::Settings;
    use wgraph_grammar_free::*;
    pub mod wgraph_grammar_free {
        //! Records for the `guidance` parameter, built without the parser.
        pub use wgraph_engine::params::{AstEntry, AstIdent, AstRecord, AstValue, AstValueKind};
    }

    /// pred = x + t/1000 + 10·text + 100·action (per element, using element 0 of each condition)
    pub fn dit(batch: bool) -> Arc<FakeModel> {
        let b = if batch { "batch" } else { "1" };
        fake(
            &[
                &format!("x:f32:{b},2"),
                &format!("t:f32:{b}"),
                &format!("text:f32:{b},3"),
                &format!("action:f32:{b},1"),
            ],
            &[&format!("velocity:f32:{b},2")],
            &[
                ("wgraph.role", "denoiser"),
                ("wgraph.prediction", "velocity"),
            ],
            |ins| {
                let n = ins[0].shape()[0];
                let (x, t, text, action) = (
                    ins[0].host_f32().unwrap(),
                    ins[1].host_f32().unwrap(),
                    ins[2].host_f32().unwrap(),
                    ins[3].host_f32().unwrap(),
                );
                let mut out = Vec::new();
                for s in 0..n {
                    for e in 0..2 {
                        out.push(
                            x[s * 2 + e] + t[s] / 1000.0 + 10.0 * text[s * 3] + 100.0 * action[s],
                        );
                    }
                }
                vec![Tensor::from_f32(&[n, 2], out).unwrap()]
            },
        )
    }

    pub fn guidance(pairs: &[(&str, f64)]) -> ParamValue {
        let span = Default::default();
        ParamValue::Record(AstRecord {
            entries: pairs
                .iter()
                .map(|(k, v)| AstEntry {
                    key: AstIdent {
                        name: k.to_string(),
                        span,
                    },
                    value: AstValue {
                        kind: AstValueKind::Float(*v),
                        span,
                    },
                })
                .collect(),
            span,
        })
    }

    pub fn eval(node: &dyn Node, text: f32, action: f32) -> Vec<f32> {
        eval_at(node, 500.0, text, action)
    }

    /// The node called at `t` (σ = t/1000) on x = [1, 2].
    pub fn eval_at(node: &dyn Node, t: f32, text: f32, action: f32) -> Vec<f32> {
        let settings = Settings::default();
        let mut none = NoCallees;
        let mut cx = TickContext::new(0, &settings, &mut none);
        let mut state = node.init_state().unwrap();
        let ins = [
            Some(Tensor::from_f32(&[1, 2], vec![1.0, 2.0]).unwrap().into()),
            Some(Tensor::from_f32(&[1], vec![t]).unwrap().into()),
            Some(Tensor::full_f32(&[1, 3], text).unwrap().into()),
            Some(Tensor::full_f32(&[1, 1], action).unwrap().into()),
        ];
        let out = node.eval(&mut state, &ins, &mut cx).unwrap();
        out[0].as_tensor().unwrap().host_f32().unwrap().to_vec()
    }

    pub fn guided(model: &Arc<FakeModel>, extra: Vec<(&'static str, ParamValue)>) -> Box<dyn Node> {
        let mut params = vec![
            ("model", ParamValue::ModelRef("m".into())),
            ("guidance", guidance(&[("text", 5.0)])),
        ];
        params.extend(extra);
        build_with(&Denoiser, params, vec![("m", model.clone())]).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    #[test]
    fn ports_are_call_inputs_then_conditions_and_output_is_the_prediction() {
        let node = build_with(
            &Denoiser,
            vec![("model", ParamValue::ModelRef("m".into()))],
            vec![("m", dit(true))],
        )
        .unwrap();
        let names: Vec<_> = node
            .inputs()
            .iter()
            .map(|p| (p.name.clone(), p.role))
            .collect();
        assert_eq!(names[0], ("x".into(), wgraph_engine::node::PortRole::Call));
        assert_eq!(names[2].0, "text");
        assert_eq!(node.outputs()[0].name, "velocity");
        let types = [
            Some(ValueType::tensor(DType::F32, &[1, 2])),
            Some(ValueType::tensor(DType::F32, &[1])),
            Some(ValueType::tensor(DType::F32, &[1, 3])),
            Some(ValueType::tensor(DType::F32, &[1, 1])),
        ];
        assert_eq!(
            node.infer(&types, &mut NoInferCalls).unwrap(),
            vec![ValueType::tensor(DType::F32, &[1, 2])]
        );
        let mut bad = types.clone();
        bad[2] = Some(ValueType::tensor(DType::F32, &[1, 4]));
        let e = node.infer(&bad, &mut NoInferCalls).unwrap_err();
        assert_eq!(e.input, Some(2));
        assert!(
            e.message
                .contains("model input `text` expects f32[batch, 3], found f32[1, 4]"),
            "{}",
            e.message
        );
    }

    #[test]
    fn no_guidance_is_one_plain_call() {
        let node = build_with(
            &Denoiser,
            vec![("model", ParamValue::ModelRef("m".into()))],
            vec![("m", dit(true))],
        )
        .unwrap();
        assert_eq!(
            eval(&*node, 1.0, 1.0),
            vec![1.0 + 0.5 + 10.0 + 100.0, 2.0 + 0.5 + 110.0]
        );
    }

    /// `max_batch` cuts the stacked passes into runs of at most that many
    /// rows, with the same result: 3 passes → runs of 2 + 1 rows, or 3 × 1.
    #[test]
    fn max_batch_splits_stacked_passes_without_changing_the_result() {
        for (max_batch, runs) in [
            (0, vec![vec![3, 2]]),
            (2, vec![vec![2, 2], vec![1, 2]]),
            (1, vec![vec![1, 2]; 3]),
        ] {
            let model = dit(true);
            let node = build_with(
                &Denoiser,
                vec![
                    ("model", ParamValue::ModelRef("m".into())),
                    ("guidance", guidance(&[("text", 5.0), ("action", 2.0)])),
                    ("max_batch", ParamValue::Int(max_batch)),
                ],
                vec![("m", model.clone())],
            )
            .unwrap();
            let got = eval(&*node, 1.0, 1.0);
            assert!(
                (got[0] - (1.5 + 50.0 + 200.0)).abs() < 1e-4,
                "{max_batch}: {got:?}"
            );
            assert_eq!(*model.calls.lock().unwrap(), runs, "max_batch {max_batch}");
        }
        let err = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("max_batch", ParamValue::Int(-1)),
            ],
            vec![("m", dit(true))],
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("max_batch"), "{err}");
    }
}
