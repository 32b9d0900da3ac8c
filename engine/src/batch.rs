//! Batching across sessions: calls of one model from many live worlds run
//! as one call.
//!
//! A server that gives every player their own world (`wgraph serve`, `wgraph
//! bench --players`) loads each model once ([`ModelCache`](crate::model::ModelCache))
//! and every player's session calls that one model from its own tick
//! thread. [`batched`] wraps such a model in a [`BatchedModel`]: callers hand
//! their inputs to one executor thread per model, which takes every call
//! waiting (up to [`BatchPolicy::max_rows`] rows), stacks them on the batch
//! axis, runs the model once and splits the outputs back, row for row.
//!
//! - **A lone caller runs in its own thread.** While one thread alone has
//!   called the model in the last [`ACTIVE`] and no other call is in
//!   flight, its call runs inline: a single player pays no hand-off to the
//!   executor (counted as a batch of one). A second caller turns it off.
//! - **When calls are fused.** The executor takes what is queued when it is
//!   free. It waits for more (at most [`BatchPolicy::wait`]) only while it
//!   has fewer calls than there are callers: the threads that called the
//!   model in the last [`ACTIVE`] (a bounded record of the last
//!   [`CALLERS`] calls). A lone player never waits, and players whose ticks
//!   line up (a server's players tick on one clock,
//!   [`TickGrid`](crate::world::TickGrid)) are caught together even when a
//!   busy machine wakes their threads a little apart. Under load, calls
//!   queue while a batch runs, so batches grow by themselves.
//! - **What is batchable.** A model whose every input and output has a
//!   dynamic first axis (a named or unnamed dimension, never a fixed size);
//!   a model fixed to batch 1 is returned unwrapped and called one call at a
//!   time as before. Calls are fused only when their inputs agree in dtype
//!   and in every axis after the first, and all are in host memory; any
//!   other call runs on its own, in its caller's thread.
//! - **Results.** A batch of one is the unbatched call itself. Fused rows
//!   equal the rows run alone exactly when the backend's kernels do not
//!   depend on the batch size (ONNX Runtime on the CPU, for the shipped
//!   Yan-Sim models: tested) and within the kernels' rounding otherwise.
//!   Sessions that must stay bit-exact for replay run unbatched
//!   (`--batch-across-players off`).
//! - **Failures stay with their caller.** When a fused call fails, or its
//!   outputs do not come back batch-major, each call is run again on its own,
//!   so one player's bad input is that player's error only. If the executor
//!   is gone, calls run directly.
//! - **Bounded.** The queue holds at most one call per calling thread (each
//!   caller waits for its answer); [`BatchStats`] are fixed-size counters.

use crate::model::{Model, ModelError, ModelSignature, Provider};
use crate::tensor::{HostData, Storage, Tensor};
use crate::types::Dim;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// How calls are fused.
#[derive(Debug, Clone)]
pub struct BatchPolicy {
    /// Most rows in one fused call (at least 1).
    pub max_rows: usize,
    /// Longest an executor waits for more calls once it has one; zero never
    /// waits (it still takes every call already queued).
    pub wait: Duration,
    /// Calls an executor waits for (up to `wait`) before it runs a batch,
    /// at least: 1 (or 0) lets it adapt (see the module docs); a tool that
    /// wants every call of N lock-step sessions fused (`bench
    /// --verify-batching`) sets N once they run. Shared, so it can change
    /// while the executors run.
    pub min_calls: Arc<std::sync::atomic::AtomicUsize>,
    /// Where the fused calls are counted (shared by every model of a graph).
    pub stats: Arc<BatchStats>,
    /// A lone caller's call runs in its own thread (see the module docs);
    /// false sends every call through the executor.
    pub inline_lone_caller: bool,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy {
            max_rows: 16,
            wait: Duration::from_micros(500),
            min_calls: Arc::new(std::sync::atomic::AtomicUsize::new(1)),
            stats: Arc::default(),
            inline_lone_caller: true,
        }
    }
}

/// Largest batch size counted on its own in `BatchStats::sizes`; larger
/// ones are counted in its last bucket.
pub const SIZE_BUCKETS: usize = 64;

/// Counters of the calls a set of [`BatchedModel`]s made: fixed size.
#[derive(Debug)]
pub struct BatchStats {
    calls: AtomicU64,
    batches: AtomicU64,
    /// `sizes[k]`: model calls that carried `k + 1` callers' calls (the
    /// last bucket: that many or more).
    sizes: [AtomicU64; SIZE_BUCKETS],
    /// Fused calls that failed and were run again one by one.
    split_retries: AtomicU64,
}

impl Default for BatchStats {
    fn default() -> Self {
        BatchStats {
            calls: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            sizes: std::array::from_fn(|_| AtomicU64::new(0)),
            split_retries: AtomicU64::new(0),
        }
    }
}

/// A reading of [`BatchStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSummary {
    /// Calls sessions made.
    pub calls: u64,
    /// Model calls those became.
    pub batches: u64,
    /// `sizes[k]`: model calls that carried `k + 1` sessions' calls.
    pub sizes: Vec<u64>,
    /// Fused calls that failed and were run again one by one.
    pub split_retries: u64,
}

impl BatchSummary {
    /// Sessions' calls per model call (1.0 when nothing was fused; 0 when
    /// nothing ran).
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.calls as f64 / self.batches as f64
        }
    }
}

impl BatchStats {
    fn record(&self, callers: usize) {
        self.calls.fetch_add(callers as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        let bucket = callers.clamp(1, SIZE_BUCKETS) - 1;
        self.sizes[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Sets every counter to zero.
    pub fn reset(&self) {
        for c in [&self.calls, &self.batches, &self.split_retries]
            .into_iter()
            .chain(&self.sizes)
        {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn summary(&self) -> BatchSummary {
        let mut sizes: Vec<u64> = self
            .sizes
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        while sizes.last() == Some(&0) {
            sizes.pop();
        }
        BatchSummary {
            calls: self.calls.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            sizes,
            split_retries: self.split_retries.load(Ordering::Relaxed),
        }
    }
}

/// True when every input and output of `signature` has a dynamic first
/// axis, so calls can be stacked on it.
pub fn is_batchable(signature: &ModelSignature) -> bool {
    let ports = signature.inputs.iter().chain(&signature.outputs);
    let mut named: Option<&str> = None;
    for port in ports {
        match port.ty.shape.first() {
            Some(Dim::Sym(name)) if !name.starts_with(crate::types::UNNAMED) => {
                // Two named first axes must be one name (one batch).
                if named.is_some_and(|n| n != name) {
                    return false;
                }
                named = Some(name);
            }
            Some(Dim::Sym(_)) => {}
            _ => return false,
        }
    }
    !signature.inputs.is_empty() && !signature.outputs.is_empty()
}

/// `model` behind a batching executor when it [`is_batchable`] and the
/// policy allows more than one row; otherwise `model` itself.
pub fn batched(model: Arc<dyn Model>, policy: &BatchPolicy) -> Arc<dyn Model> {
    if policy.max_rows < 2 || !is_batchable(model.signature()) {
        return model;
    }
    Arc::new(BatchedModel::new(model, policy.clone()))
}

/// One call waiting for the executor.
struct Call {
    inputs: Vec<Tensor>,
    rows: usize,
    reply: Sender<Result<Vec<Tensor>, ModelError>>,
}

/// A caller counts as active this long after its last call.
pub const ACTIVE: Duration = Duration::from_secs(1);
/// Calls remembered to count the active callers.
pub const CALLERS: usize = 64;

/// The threads that called lately: a fixed-size record of the last
/// [`CALLERS`] calls.
struct Callers {
    seen: [Option<(ThreadId, Instant)>; CALLERS],
    next: usize,
}

impl Callers {
    fn new() -> Self {
        Callers {
            seen: [None; CALLERS],
            next: 0,
        }
    }

    fn record(&mut self, caller: ThreadId, at: Instant) {
        self.seen[self.next] = Some((caller, at));
        self.next = (self.next + 1) % CALLERS;
    }

    /// Distinct threads that called within [`ACTIVE`] before `now`.
    fn active(&self, now: Instant) -> usize {
        let mut ids: Vec<ThreadId> = Vec::with_capacity(CALLERS);
        for (id, at) in self.seen.iter().flatten() {
            if now.saturating_duration_since(*at) <= ACTIVE && !ids.contains(id) {
                ids.push(*id);
            }
        }
        ids.len()
    }
}

/// What the callers and the executor share: who called lately, and how
/// many calls are in flight.
struct Lane {
    callers: std::sync::Mutex<Callers>,
    /// Calls running inline, queued or with the executor.
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Lane {
    /// Records a call of `caller` now; the distinct callers of the last [`ACTIVE`].
    fn record(&self, caller: ThreadId) -> usize {
        let now = Instant::now();
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        callers.record(caller, now);
        callers.active(now)
    }

    fn active(&self) -> usize {
        let callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        callers.active(Instant::now())
    }
}

/// A model whose calls from many threads are fused (see the module docs).
pub struct BatchedModel {
    inner: Arc<dyn Model>,
    queue: Option<Sender<Call>>,
    executor: Option<std::thread::JoinHandle<()>>,
    lane: Arc<Lane>,
    policy: BatchPolicy,
}

impl BatchedModel {
    /// Starts the executor thread of `inner`.
    pub fn new(inner: Arc<dyn Model>, policy: BatchPolicy) -> Self {
        let (queue, calls) = crossbeam_channel::unbounded();
        let lane = Arc::new(Lane {
            callers: std::sync::Mutex::new(Callers::new()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        });
        let executor = {
            let (inner, lane, policy) = (Arc::clone(&inner), Arc::clone(&lane), policy.clone());
            std::thread::Builder::new()
                .name("wgraph-batch".into())
                .spawn(move || execute(&*inner, &calls, &policy, &lane))
                .ok()
        };
        BatchedModel {
            inner,
            // Without an executor (the thread could not start) calls run directly.
            queue: executor.as_ref().map(|_| queue),
            executor,
            lane,
            policy,
        }
    }
}

impl BatchedModel {
    /// Calls waiting for the executor now.
    pub fn queued(&self) -> usize {
        self.queue.as_ref().map_or(0, Sender::len)
    }
}

impl Drop for BatchedModel {
    fn drop(&mut self) {
        // Closing the queue ends the executor; joining it frees the model now.
        self.queue = None;
        if let Some(thread) = self.executor.take() {
            let _ = thread.join();
        }
    }
}

impl Model for BatchedModel {
    fn signature(&self) -> &ModelSignature {
        self.inner.signature()
    }
    fn provider(&self) -> Provider {
        self.inner.provider()
    }
    fn prepare(&self, input_shapes: &[Vec<usize>]) -> Result<(), ModelError> {
        self.inner.prepare(input_shapes)
    }
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let (Some(queue), Some(rows)) = (&self.queue, rows_of(inputs)) else {
            return self.inner.run(inputs);
        };
        let active = self.lane.record(std::thread::current().id());
        let lone = self.policy.inline_lone_caller
            && active == 1
            && self.policy.min_calls.load(Ordering::Relaxed) <= 1;
        if lone
            && self
                .lane
                .in_flight
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let _flight = InFlight(&self.lane);
            self.policy.stats.record(1);
            return self.inner.run(inputs);
        }
        self.lane.in_flight.fetch_add(1, Ordering::AcqRel);
        let _flight = InFlight(&self.lane);
        let (reply, answer) = crossbeam_channel::bounded(1);
        let call = Call {
            inputs: inputs.to_vec(),
            rows,
            reply,
        };
        if let Err(returned) = queue.send(call) {
            return self.inner.run(&returned.0.inputs);
        }
        answer.recv().unwrap_or_else(|_| {
            Err(ModelError::Run(
                "the batching executor stopped before answering".into(),
            ))
        })
    }
}

/// One call in flight until dropped (also when the model panics).
struct InFlight<'a>(&'a Lane);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The rows of a call that can be fused: every input in host memory with
/// the same first axis.
fn rows_of(inputs: &[Tensor]) -> Option<usize> {
    let rows = *inputs.first()?.shape().first()?;
    let fits = inputs
        .iter()
        .all(|t| t.is_host() && t.shape().first() == Some(&rows));
    (fits && rows > 0).then_some(rows)
}

/// True when `b` can be stacked under `a`: same dtypes, same axes after the first.
fn compatible(a: &Call, b: &Call) -> bool {
    a.inputs.len() == b.inputs.len()
        && a.inputs
            .iter()
            .zip(&b.inputs)
            .all(|(x, y)| x.dtype() == y.dtype() && x.shape()[1..] == y.shape()[1..])
}

/// The executor: takes calls, fuses them, answers each.
fn execute(model: &dyn Model, calls: &Receiver<Call>, policy: &BatchPolicy, lane: &Lane) {
    let max_rows = policy.max_rows.max(1);
    let mut held: Option<Call> = None;
    loop {
        let first = match held.take() {
            Some(call) => call,
            None => match calls.recv() {
                Ok(call) => call,
                Err(_) => return,
            },
        };
        let now = Instant::now();
        let expected = lane.active().max(policy.min_calls.load(Ordering::Relaxed));
        let deadline = now + policy.wait;
        let mut rows = first.rows;
        let mut group = vec![first];
        while rows < max_rows {
            let more = if group.len() < expected && !policy.wait.is_zero() {
                calls.recv_deadline(deadline).map_err(|e| match e {
                    RecvTimeoutError::Timeout => TryRecvError::Empty,
                    RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                })
            } else {
                calls.try_recv()
            };
            let Ok(call) = more else { break };
            if compatible(&group[0], &call) && rows + call.rows <= max_rows {
                rows += call.rows;
                group.push(call);
            } else {
                held = Some(call);
                break;
            }
        }
        run_group(model, group, rows, &policy.stats);
    }
}

/// Runs `group` as one call (or each alone when it cannot be fused) and answers every caller.
fn run_group(model: &dyn Model, group: Vec<Call>, rows: usize, stats: &BatchStats) {
    if group.len() == 1 {
        stats.record(1);
        let call = &group[0];
        let _ = call.reply.send(model.run(&call.inputs));
        return;
    }
    stats.record(group.len());
    match fused(model, &group, rows) {
        Some(outputs) => {
            for (call, out) in group.iter().zip(outputs) {
                let _ = call.reply.send(Ok(out));
            }
        }
        None => {
            stats.split_retries.fetch_add(1, Ordering::Relaxed);
            for call in &group {
                stats.record(1);
                let _ = call.reply.send(model.run(&call.inputs));
            }
        }
    }
}

/// The group's calls stacked, run once and split: each caller's outputs, or
/// `None` when any step fails (the caller then runs them one by one).
fn fused(model: &dyn Model, group: &[Call], rows: usize) -> Option<Vec<Vec<Tensor>>> {
    let inputs = (0..group[0].inputs.len())
        .map(|i| {
            let parts: Vec<&HostData> = group
                .iter()
                .map(|c| c.inputs[i].host().ok())
                .collect::<Option<_>>()?;
            let mut shape = group[0].inputs[i].shape().to_vec();
            shape[0] = rows;
            Tensor::from_host(&shape, HostData::concat(&parts).ok()?).ok()
        })
        .collect::<Option<Vec<Tensor>>>()?;
    let outputs = model.run(&inputs).ok()?;
    let mut split: Vec<Vec<Tensor>> = group.iter().map(|_| Vec::new()).collect();
    for output in &outputs {
        let output = output.to_host().ok()?;
        let shape = output.shape();
        if shape.first() != Some(&rows) {
            return None;
        }
        let row_len = output.len() / rows;
        let Storage::Host(data) = output.storage() else {
            return None;
        };
        let mut start = 0;
        for (call, out) in group.iter().zip(&mut split) {
            let mut part_shape = shape.to_vec();
            part_shape[0] = call.rows;
            let len = call.rows * row_len;
            out.push(Tensor::from_host(&part_shape, data.slice(start..start + len)).ok()?);
            start += len;
        }
    }
    Some(split)
}

#[cfg(test)]
mod tests;
