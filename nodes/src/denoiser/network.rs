//! The network a denoiser node runs per guidance pass: [`Network`], with
//! [`ModelNetwork`] (one model: the `denoiser` and `controlnet` kinds) and
//! `blocks::BlockNetwork` (a model split at its blocks, with Yume's block
//! cache: `block_denoiser`). Guidance, windows and `max_batch` are written
//! once, in the node around it (`DenoiserNode`), over this trait.
//!
//! A network sees *runs*: one model run of one call, carrying the rows of
//! one or several guidance passes ([`Passes`]), stacked. A network with
//! state across calls (the block cache) keeps it in the [`State`] it makes
//! and the node hands back on every run, with the [`Run`] saying which
//! tick, which call of the tick and which passes it is.

use crate::common::*;
use crate::models::io::{batchable, resolved_outputs, run_model_rows};
use std::sync::Arc;
use wgraph_engine::model::{Model, ModelSignature};
use wgraph_engine::types::Bindings;

/// The guidance passes one run carries, stacked on the batch axis:
/// passes `first .. first + count`. Pass `j` of a call guided on `k`
/// conditions drops the guided conditions `j..k` (pass 0 drops them all,
/// pass `k` none); an unguided call, or one outside `guidance_interval`,
/// is pass `k` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Passes {
    /// The first pass of the run.
    pub first: usize,
    /// How many passes are stacked in it.
    pub count: usize,
}

/// Which run of the node this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run {
    /// The tick of the call.
    pub tick: u64,
    /// The call's number within the tick (0 for its first call).
    pub call: u64,
    /// The passes the run carries.
    pub passes: Passes,
}

/// Who declares what, for build errors that name a parameter.
pub(super) struct Naming {
    /// The model whose inputs the call feeds (x, t, conditions), as named
    /// in messages, and the parameter naming it.
    pub inputs: (String, &'static str),
    /// The model whose metadata declares the noise contract
    /// (`wgraph.prediction`, `wgraph.schedule`, …), and its parameter.
    pub contract: (String, &'static str),
}

/// A diffusion network as one pass of a denoiser runs it: inputs as its
/// [`signature`](Network::signature) lists them (x, t, conditions, …),
/// one output, the prediction.
pub(super) trait Network: Send + Sync {
    /// The network as one model: its inputs (x, t and the conditions), its
    /// one output (the prediction), and metadata declaring the contract.
    fn signature(&self) -> &ModelSignature;

    /// The models that name the network's ports and contract.
    fn naming(&self) -> Naming;

    /// Whether several passes may be stacked on a free batch axis.
    fn batchable(&self) -> bool {
        batchable(self.signature())
    }

    /// The output types for inputs bound as in `bindings` (the build-time
    /// check of everything inside the network).
    fn resolved_outputs(&self, bindings: &Bindings) -> Result<Vec<ValueType>, TypeError>;

    /// The state the node keeps for the network across calls.
    fn init_state(&self) -> State {
        Box::new(())
    }

    /// One run: `inputs` in the order of the signature, at most `max_rows`
    /// rows per model run (0: no limit); the prediction.
    fn run(
        &self,
        state: &mut State,
        run: Run,
        inputs: &[Tensor],
        max_rows: usize,
    ) -> Result<Tensor, NodeError>;
}

/// One model (`wgraph.role = denoiser`): the `denoiser`'s network.
pub(super) struct ModelNetwork {
    model: Arc<dyn Model>,
    name: String,
}

impl ModelNetwork {
    /// The network of model `model`, named `name` in the graph.
    pub(super) fn new(model: Arc<dyn Model>, name: String) -> Self {
        ModelNetwork { model, name }
    }
}

impl Network for ModelNetwork {
    fn signature(&self) -> &ModelSignature {
        self.model.signature()
    }

    fn naming(&self) -> Naming {
        Naming {
            inputs: (self.name.clone(), "model"),
            contract: (self.name.clone(), "model"),
        }
    }

    fn resolved_outputs(&self, bindings: &Bindings) -> Result<Vec<ValueType>, TypeError> {
        resolved_outputs(&*self.model, bindings)
    }

    fn run(
        &self,
        _: &mut State,
        _: Run,
        inputs: &[Tensor],
        max_rows: usize,
    ) -> Result<Tensor, NodeError> {
        run_model_rows(&*self.model, &self.name, inputs, max_rows)?
            .into_iter()
            .next()
            .ok_or_else(|| NodeError::new("denoiser gave no output"))
    }
}
