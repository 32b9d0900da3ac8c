//! `wgraph bench FILE --baseline raw`: the graph against a loop of the same
//! model calls with no engine.
//!
//! Every model of the graph is wrapped in a [`RecordingModel`]. A round runs
//! the graph for N ticks (the engine: scheduling, node logic, sampler math,
//! noise, sinks) while recording each model call and its inputs; then the raw
//! baseline replays exactly those calls, in order, straight on the models.
//! Rounds alternate engine, raw, engine, raw, so both see the same machine
//! state; the figures are means over rounds. The raw loop is the floor of
//! what any implementation must pay for these model calls, so
//! `engine_ms_per_tick / raw_ms_per_tick` bounds the engine's overhead from
//! above (it also counts the non-model work a hand-written loop would do).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wgraph_engine::model::{
    Backend, LoadedModel, Model, ModelError, ModelOptions, ModelSignature, Provider,
};
use wgraph_engine::tensor::Tensor;

/// One recorded call: which model, with which inputs.
type Call = (usize, Vec<Tensor>);

/// Wraps a backend so that every model it loads records its calls.
pub struct RecordingBackend<'a> {
    pub inner: &'a dyn Backend,
    pub log: Arc<Mutex<Vec<Call>>>,
    pub models: Mutex<Vec<Arc<dyn Model>>>,
}

impl<'a> RecordingBackend<'a> {
    pub fn new(inner: &'a dyn Backend) -> Self {
        RecordingBackend {
            inner,
            log: Arc::new(Mutex::new(Vec::new())),
            models: Mutex::new(Vec::new()),
        }
    }

    /// Takes the calls recorded so far.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replays calls on the unwrapped models; returns the elapsed time.
    pub fn replay(&self, calls: &[Call]) -> Result<Duration, ModelError> {
        let models = self
            .models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let start = Instant::now();
        for (id, inputs) in calls {
            let model = models
                .get(*id)
                .ok_or_else(|| ModelError::Run(format!("internal: no model #{id}")))?;
            model.run(inputs)?;
        }
        Ok(start.elapsed())
    }
}

impl Backend for RecordingBackend<'_> {
    fn load(
        &self,
        path: &std::path::Path,
        options: &ModelOptions,
    ) -> Result<LoadedModel, ModelError> {
        let loaded = self.inner.load(path, options)?;
        let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
        let id = models.len();
        models.push(Arc::clone(&loaded.model));
        Ok(LoadedModel {
            model: Arc::new(RecordingModel {
                inner: loaded.model,
                id,
                log: Arc::clone(&self.log),
            }),
            warnings: loaded.warnings,
        })
    }
}

/// A model that logs its calls (a clone of the inputs: shared, not copied).
struct RecordingModel {
    inner: Arc<dyn Model>,
    id: usize,
    log: Arc<Mutex<Vec<Call>>>,
}

impl Model for RecordingModel {
    fn signature(&self) -> &ModelSignature {
        self.inner.signature()
    }
    fn provider(&self) -> Provider {
        self.inner.provider()
    }
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((self.id, inputs.to_vec()));
        self.inner.run(inputs)
    }
    fn prepare(&self, input_shapes: &[Vec<usize>]) -> Result<(), ModelError> {
        self.inner.prepare(input_shapes)
    }
}
