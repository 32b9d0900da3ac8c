//! The scheduler: runs a [`Graph`] tick by tick.
//!
//! A run is a set of tasks `(node, tick)`. Task `(n, t)` may start when
//! - every node feeding `n` (directly, or through a node `n` calls) has run tick `t`;
//! - `n` itself has run tick `t − 1` (a node's ticks run in order, so its
//!   [`State`] is never used by two ticks at once);
//! - every node feeding `n` through a feedback edge has run tick `t − 1`;
//! - tick `t` is inside the pipeline window (at most
//!   [`RunConfig::pipeline_depth`] ticks in flight).
//!
//! With `workers = 0` the [`Runner`] evaluates nodes inline in topological
//! order (lowest overhead). With workers, a coordinator thread hands ready
//! tasks to a pool over crossbeam channels, so independent branches of one
//! tick run in parallel and the sources of tick `t + 1` can run while the
//! sinks of tick `t` are still writing. Results do not depend on the mode:
//! nodes see the same inputs in the same per-node order.
//!
//! A runner is not limited to one run: [`Runner::advance`] runs more ticks
//! from where the last call stopped (the tick counter, node states and the
//! previous tick's outputs that feedback edges read are kept), and
//! [`TickHooks`] lets the caller feed live input at each tick's start and
//! pause at any tick boundary. That is what a live world
//! ([`World`](crate::world::World)) is made of; [`Runner::run`] is the batch
//! form (advance, then finish). [`Runner::swap_graph`] replaces the graph at
//! a tick boundary, carrying state (see [`crate::reload`]).
//!
//! Architecture Invariant: node state is created by [`Runner::new`], owned by
//! the runner (one mutex per node, uncontended by construction: a node's
//! ticks never overlap), and handed to [`Node::eval`] — never stored in the
//! node, so a reload can keep it.

use crate::graph::{EdgeKind, Graph, NodeId};
use crate::metrics::Metrics;
use crate::node::{Callees, DisplaySpec, NodeError, PixelRange, State, TickContext, TickInput};
use crate::tensor::DType;
use crate::value::Value;
use crossbeam_channel::unbounded;
use std::collections::{BTreeMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Number of ticks to run (fewer when a source asks to stop); for
    /// [`Runner::advance`], the most ticks this call runs.
    pub ticks: u64,
    /// Worker threads; 0 runs every node on the calling thread.
    pub workers: usize,
    /// Ticks in flight at once (1 = no pipelining). Only used with workers.
    pub pipeline_depth: usize,
}

impl Default for RunConfig {
    /// Inline by default: model nodes already use every core through ONNX
    /// Runtime's intra-op threads, and handing a node to a worker costs a
    /// thread wake-up — about 1.3 µs on an idle machine but milliseconds when
    /// the cores are busy (measured with `wgraph bench`, see README).
    /// Graphs with wide independent branches opt in with `--workers N`.
    fn default() -> Self {
        RunConfig {
            ticks: 1,
            workers: 0,
            pipeline_depth: 2,
        }
    }
}

/// What the runner reports while running.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunEvent {
    /// Every node has run tick `tick`. `shown` holds the value each
    /// displaying node (see [`Node::displays`](crate::node::Node::displays))
    /// received this tick.
    TickDone {
        tick: u64,
        latency: Duration,
        shown: Vec<Shown>,
    },
}

/// A displayed value of one tick (see [`RunEvent::TickDone`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub node: NodeId,
    pub value: Value,
    pub range: PixelRange,
}

/// What a caller of [`Runner::advance`] supplies at tick boundaries.
pub trait TickHooks {
    /// Called before tick `tick` starts, before [`TickHooks::input`]. A
    /// paced caller waits here for the tick's time; `Break` starts no more
    /// ticks (the run pauses after those already started, as a `Break`
    /// from [`TickHooks::tick_done`] does), so a stop need not wait for it.
    fn before_tick(&mut self, _tick: u64) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// Live input for tick `tick`, sampled when the tick starts.
    fn input(&mut self, _tick: u64) -> TickInput {
        TickInput::NONE
    }
    /// Called as each tick completes, in order; `Break` pauses the run after
    /// the ticks already started (the next `advance` continues from there).
    fn tick_done(&mut self, event: &RunEvent) -> ControlFlow<()>;
}

/// [`TickHooks`] for a plain observer closure.
struct Observe<'a>(&'a mut dyn FnMut(&RunEvent));

impl TickHooks for Observe<'_> {
    fn tick_done(&mut self, event: &RunEvent) -> ControlFlow<()> {
        (self.0)(event);
        ControlFlow::Continue(())
    }
}

/// How an [`Runner::advance`] call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// It ran the ticks it was asked for.
    Ran,
    /// The hooks asked to pause at a tick boundary.
    Paused,
    /// A source asked to stop (named); no more ticks will run.
    Stopped(String),
}

/// A node failed while advancing; see [`Runner::finish`] for the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node `{node}` ({kind}) failed on tick {tick}: {message}")]
pub struct NodeFailure {
    pub node: String,
    pub kind: String,
    pub tick: u64,
    pub message: String,
}

/// How a run ended well.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Ticks completed by every node.
    pub ticks: u64,
    /// The node that asked to stop early, if one did.
    pub stopped_by: Option<String>,
    pub metrics: Metrics,
}

/// A node failed; what was produced before it is kept (sinks are finished).
#[derive(Debug, Clone, thiserror::Error)]
#[error("node `{node}` ({kind}) failed on tick {tick}: {message}")]
pub struct RunError {
    pub node: String,
    pub kind: String,
    pub tick: u64,
    pub message: String,
    /// Ticks fully completed and timings up to the failure.
    pub report: Box<RunReport>,
}

/// Where a node input takes its value from.
#[derive(Debug, Clone)]
enum Source {
    /// Unconnected optional input, or an argument from a caller.
    Empty,
    /// Output `port` of plan node `plan`, same tick.
    Data { plan: usize, port: usize },
    /// Output `port` of plan node `plan`, previous tick; `init` on tick 0.
    Feedback {
        plan: usize,
        port: usize,
        init: Value,
    },
}

/// A callee with the sources of its wired inputs.
#[derive(Debug, Clone)]
struct CallPlan {
    node: NodeId,
    inputs: Vec<Source>,
    arg_slots: Vec<usize>,
    children: Vec<CallPlan>,
}

/// A scheduled node.
#[derive(Debug, Clone)]
struct Step {
    node: NodeId,
    inputs: Vec<Source>,
    calls: Vec<CallPlan>,
    /// Same-tick prerequisites (plan indices, distinct).
    deps: Vec<usize>,
    /// Previous-tick prerequisites (itself and feedback producers, distinct).
    prev_deps: Vec<usize>,
    succ: Vec<usize>,
    prev_succ: Vec<usize>,
    /// Expected dtype and shape of each output (None: not a fully known tensor).
    out_types: Vec<Option<(DType, Vec<usize>)>>,
    /// The input whose value is shown to front ends ([`Node::displays`](crate::node::Node::displays)).
    shows: Option<DisplaySpec>,
}

/// A callee's inputs for one tick, gathered before its caller runs.
struct CallFrame {
    node: NodeId,
    inputs: Vec<Option<Value>>,
    arg_slots: Vec<usize>,
    children: Vec<CallFrame>,
}

struct Task {
    step: usize,
    tick: u64,
    input: TickInput,
    inputs: Vec<Option<Value>>,
    frames: Vec<CallFrame>,
}

struct Done {
    step: usize,
    tick: u64,
    result: Result<Vec<Value>, NodeError>,
    stop: bool,
    times: Vec<(NodeId, Duration)>,
    started: Instant,
    shown: Option<Shown>,
}

/// Runs a graph, holding the per-node state of the run.
pub struct Runner {
    pub(crate) graph: Arc<Graph>,
    pub(crate) states: Vec<Mutex<State>>,
    steps: Vec<Step>,
    /// Outputs of the last completed tick, by plan step (feedback edges read
    /// them); `None` where a step has no value (then its edges' `init`).
    pub(crate) prev: Vec<Option<Vec<Value>>>,
    /// Ticks completed so far (the index of the next tick).
    pub(crate) completed: u64,
    pub(crate) metrics: Metrics,
    stopped_by: Option<String>,
    failure: Option<NodeFailure>,
    finished: bool,
    pub(crate) created: Instant,
}

impl Runner {
    /// Compiles the schedule and creates every node's state.
    pub fn new(graph: Arc<Graph>) -> Result<Self, RunError> {
        let mut states = Vec::with_capacity(graph.nodes.len());
        for n in &graph.nodes {
            let state = n.node.init_state().map_err(|e| RunError {
                node: n.name.clone(),
                kind: n.kind.to_string(),
                tick: 0,
                message: e.message,
                report: Box::new(RunReport {
                    ticks: 0,
                    stopped_by: None,
                    metrics: Metrics::new(graph.nodes.len()),
                }),
            })?;
            states.push(Mutex::new(state));
        }
        Ok(Self::with_states(graph, states))
    }

    /// A runner over `graph` with these node states (one per node).
    pub(crate) fn with_states(graph: Arc<Graph>, states: Vec<Mutex<State>>) -> Self {
        let steps = compile(&graph);
        Runner {
            prev: vec![None; steps.len()],
            metrics: Metrics::new(graph.nodes.len()),
            graph,
            states,
            steps,
            completed: 0,
            stopped_by: None,
            failure: None,
            finished: false,
            created: Instant::now(),
        }
    }

    /// The graph being run.
    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// Ticks completed so far: the index of the next tick.
    pub fn ticks_done(&self) -> u64 {
        self.completed
    }

    /// Timings so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Reads the state of node `name` between ticks (or after the run):
    /// tools that instrument a node (`wgraph blocks` reads the importance
    /// scores a `block_denoiser` measured) downcast it to the kind's state
    /// type. `None` when the graph has no such node.
    pub fn inspect_state<R>(&self, name: &str, f: impl FnOnce(&State) -> R) -> Option<R> {
        let id = self.graph.find(name)?;
        let state = self.states[id.0].lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&state))
    }

    /// The step of plan position `plan`.
    pub(crate) fn plan_node(&self, plan: usize) -> NodeId {
        self.steps[plan].node
    }

    /// Number of plan steps.
    pub(crate) fn plan_len(&self) -> usize {
        self.steps.len()
    }

    /// Runs `config.ticks` ticks, then finishes every node (also on failure).
    pub fn run(
        &mut self,
        config: &RunConfig,
        observer: &mut dyn FnMut(&RunEvent),
    ) -> Result<RunReport, RunError> {
        // A failure is kept in the runner and reported by `finish`.
        let _ = self.advance(config, &mut Observe(observer));
        self.finish()
    }

    /// Runs up to `config.ticks` more ticks from where the last call stopped.
    /// Ends early when a source asks to stop, when `hooks` pauses, or when a
    /// node fails (the failure is also kept for [`Runner::finish`]).
    pub fn advance(
        &mut self,
        config: &RunConfig,
        hooks: &mut dyn TickHooks,
    ) -> Result<Advance, NodeFailure> {
        if let Some(f) = &self.failure {
            return Err(f.clone());
        }
        if let Some(node) = &self.stopped_by {
            return Ok(Advance::Stopped(node.clone()));
        }
        if self.finished || config.ticks == 0 {
            return Ok(Advance::Ran);
        }
        let mut run = RunState {
            paused: false,
            stopped_by: None,
            error: None,
        };
        if config.workers == 0 {
            self.run_inline(config, &mut run, hooks);
        } else {
            self.run_pool(config, &mut run, hooks);
        }
        if let Some((node, tick, message)) = run.error {
            let n = &self.graph.nodes[node];
            let failure = NodeFailure {
                node: n.name.clone(),
                kind: n.kind.to_string(),
                tick,
                message,
            };
            self.failure = Some(failure.clone());
            return Err(failure);
        }
        if let Some(node) = run.stopped_by {
            let name = self.graph.nodes[node].name.clone();
            self.stopped_by = Some(name.clone());
            return Ok(Advance::Stopped(name));
        }
        Ok(if run.paused {
            Advance::Paused
        } else {
            Advance::Ran
        })
    }

    /// Finishes every node (sinks close their files; also after a failure)
    /// and reports the run. Later calls to `advance` run nothing.
    pub fn finish(&mut self) -> Result<RunReport, RunError> {
        let mut error = self
            .failure
            .as_ref()
            .map(|f| (f.node.clone(), f.kind.clone(), f.tick, f.message.clone()));
        if !self.finished {
            self.finished = true;
            for (i, n) in self.graph.nodes.iter().enumerate() {
                let mut state = self.states[i].lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = n.node.finish(&mut state)
                    && error.is_none()
                {
                    error = Some((
                        n.name.clone(),
                        n.kind.to_string(),
                        self.completed,
                        e.message,
                    ));
                }
            }
            self.metrics.wall = self.created.elapsed();
        }
        let report = RunReport {
            ticks: self.completed,
            stopped_by: self.stopped_by.clone(),
            metrics: self.metrics.clone(),
        };
        match error {
            None => Ok(report),
            Some((node, kind, tick, message)) => Err(RunError {
                node,
                kind,
                tick,
                message,
                report: Box::new(report),
            }),
        }
    }

    fn run_inline(&mut self, config: &RunConfig, run: &mut RunState, hooks: &mut dyn TickHooks) {
        let first = self.completed;
        let mut prev = std::mem::take(&mut self.prev);
        prev.resize(self.steps.len(), None);
        for tick in first..first.saturating_add(config.ticks) {
            if hooks.before_tick(tick).is_break() {
                run.paused = true;
                break;
            }
            let input = hooks.input(tick);
            let tick_start = Instant::now();
            let copies_at_start = crate::transfers::totals();
            let mut cur: Vec<Option<Vec<Value>>> = vec![None; self.steps.len()];
            let mut shown = Vec::new();
            let mut stop = false;
            for (s, step) in self.steps.iter().enumerate() {
                let task = Task {
                    step: s,
                    tick,
                    input,
                    inputs: gather(&step.inputs, &cur, &prev, tick),
                    frames: frames(&step.calls, &cur, &prev, tick),
                };
                let done = self.execute(task);
                for (id, d) in &done.times {
                    self.metrics.record(*id, *d);
                }
                match done.result {
                    Ok(values) => cur[s] = Some(values),
                    Err(e) => {
                        run.error = Some((step.node.0, tick, e.message));
                        self.prev = prev;
                        return;
                    }
                }
                if let Some(v) = done.shown {
                    shown.push(v);
                }
                if done.stop && run.stopped_by.is_none() {
                    run.stopped_by = Some(step.node.0);
                    stop = true;
                }
            }
            let latency = tick_start.elapsed();
            self.metrics.tick_latency.record(latency);
            self.metrics
                .copies
                .record(crate::transfers::totals().since(&copies_at_start));
            self.completed = tick + 1;
            prev = cur;
            let flow = hooks.tick_done(&RunEvent::TickDone {
                tick,
                latency,
                shown,
            });
            if stop {
                break;
            }
            if flow.is_break() {
                run.paused = true;
                break;
            }
        }
        self.prev = prev;
    }

    fn run_pool(&mut self, config: &RunConfig, run: &mut RunState, hooks: &mut dyn TickHooks) {
        let depth = config.pipeline_depth.max(1) as u64;
        let first = self.completed;
        let end = first.saturating_add(config.ticks);
        let mut ticks: BTreeMap<u64, TickSlot> = BTreeMap::new();
        if let Some(last) = first.checked_sub(1) {
            // The previous call's last tick, as feedback edges see it.
            let mut values = std::mem::take(&mut self.prev);
            values.resize(self.steps.len(), None);
            ticks.insert(
                last,
                TickSlot {
                    values,
                    pending: vec![0; self.steps.len()],
                    remaining: 0,
                    first_start: Instant::now(),
                    input: TickInput::NONE,
                    shown: Vec::new(),
                },
            );
        }
        let mut metrics = std::mem::take(&mut self.metrics);
        // Ticks overlap here: copies count towards the tick that completes next.
        let mut copies_mark = crate::transfers::totals();
        let this = &*self;
        let mut completed = first;
        let (task_tx, task_rx) = unbounded::<Task>();
        let (done_tx, done_rx) = unbounded::<Done>();
        std::thread::scope(|scope| {
            for _ in 0..config.workers {
                let rx = task_rx.clone();
                let tx = done_tx.clone();
                scope.spawn(move || {
                    for task in rx {
                        if tx.send(this.execute(task)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            let mut ready: VecDeque<(usize, u64)> = VecDeque::new();
            let mut next_tick = first;
            let mut in_flight = 0usize;
            let mut stop_at: Option<u64> = None;
            let limit = |stop_at: Option<u64>| stop_at.map_or(end, |s| (s + 1).min(end));
            loop {
                while next_tick < limit(stop_at)
                    && next_tick < completed + depth
                    && run.error.is_none()
                    && !run.paused
                {
                    if hooks.before_tick(next_tick).is_break() {
                        run.paused = true;
                        break;
                    }
                    let input = hooks.input(next_tick);
                    this.admit(next_tick, input, &mut ticks, &mut ready);
                    next_tick += 1;
                }
                while run.error.is_none() {
                    let Some((s, t)) = ready.pop_front() else {
                        break;
                    };
                    if t >= limit(stop_at) {
                        continue;
                    }
                    let step = &this.steps[s];
                    let slot = &ticks[&t];
                    let empty = Vec::new();
                    let prev = t
                        .checked_sub(1)
                        .and_then(|p| ticks.get(&p))
                        .map_or(&empty, |p| &p.values);
                    let task = Task {
                        step: s,
                        tick: t,
                        input: slot.input,
                        inputs: gather(&step.inputs, &slot.values, prev, t),
                        frames: frames(&step.calls, &slot.values, prev, t),
                    };
                    if task_tx.send(task).is_err() {
                        break;
                    }
                    in_flight += 1;
                }
                if in_flight == 0 {
                    break;
                }
                let Ok(done) = done_rx.recv() else { break };
                in_flight -= 1;
                for (id, d) in &done.times {
                    metrics.record(*id, *d);
                }
                let (s, t) = (done.step, done.tick);
                let values = match done.result {
                    Ok(v) => v,
                    Err(e) => {
                        if run.error.is_none() {
                            run.error = Some((this.steps[s].node.0, t, e.message));
                        }
                        continue;
                    }
                };
                if done.stop && stop_at.is_none_or(|x| t < x) {
                    stop_at = Some(t);
                    run.stopped_by = Some(this.steps[s].node.0);
                }
                let Some(slot) = ticks.get_mut(&t) else {
                    continue;
                };
                slot.values[s] = Some(values);
                if let Some(v) = done.shown {
                    slot.shown.push(v);
                }
                slot.first_start = slot.first_start.min(done.started);
                slot.remaining -= 1;
                for &q in &this.steps[s].succ {
                    slot.pending[q] -= 1;
                    if slot.pending[q] == 0 {
                        ready.push_back((q, t));
                    }
                }
                let complete = slot.remaining == 0;
                if let Some(next) = ticks.get_mut(&(t + 1)) {
                    for &q in &this.steps[s].prev_succ {
                        next.pending[q] -= 1;
                        if next.pending[q] == 0 {
                            ready.push_back((q, t + 1));
                        }
                    }
                }
                if complete {
                    // Ticks complete in order: (n, t) waits for (n, t - 1).
                    let latency = ticks[&t].first_start.elapsed();
                    metrics.tick_latency.record(latency);
                    let now = crate::transfers::totals();
                    metrics.copies.record(now.since(&copies_mark));
                    copies_mark = now;
                    completed = t + 1;
                    let shown = ticks
                        .get_mut(&t)
                        .map(|slot| std::mem::take(&mut slot.shown))
                        .unwrap_or_default();
                    let flow = hooks.tick_done(&RunEvent::TickDone {
                        tick: t,
                        latency,
                        shown,
                    });
                    if flow.is_break() && stop_at.is_none() {
                        // Run what has started; admit nothing more.
                        run.paused = true;
                        stop_at = Some(next_tick.saturating_sub(1));
                    }
                    if t > 0 {
                        ticks.remove(&(t - 1));
                    }
                }
            }
            drop(task_tx);
        });
        self.metrics = metrics;
        self.completed = completed;
        self.prev = completed
            .checked_sub(1)
            .and_then(|last| ticks.remove(&last))
            .map(|slot| slot.values)
            .unwrap_or_else(|| vec![None; self.steps.len()]);
    }

    /// Opens tick `t`: counts each step's unmet prerequisites.
    fn admit(
        &self,
        t: u64,
        input: TickInput,
        ticks: &mut BTreeMap<u64, TickSlot>,
        ready: &mut VecDeque<(usize, u64)>,
    ) {
        // A completed slot (remaining 0) satisfies every previous-tick
        // prerequisite, also where it holds no value (a step added by a reload).
        let prev_done: Option<Vec<bool>> = t.checked_sub(1).and_then(|p| ticks.get(&p)).map(|p| {
            p.values
                .iter()
                .map(|v| p.remaining == 0 || v.is_some())
                .collect()
        });
        let mut pending = Vec::with_capacity(self.steps.len());
        for (s, step) in self.steps.iter().enumerate() {
            let prev_unmet = match &prev_done {
                Some(done) => step.prev_deps.iter().filter(|&&d| !done[d]).count(),
                None => 0,
            };
            let n = step.deps.len() + prev_unmet;
            if n == 0 {
                ready.push_back((s, t));
            }
            pending.push(n);
        }
        ticks.insert(
            t,
            TickSlot {
                values: vec![None; self.steps.len()],
                pending,
                remaining: self.steps.len(),
                first_start: Instant::now(),
                input,
                shown: Vec::new(),
            },
        );
    }

    /// Evaluates one task (on any thread).
    fn execute(&self, task: Task) -> Done {
        let step = &self.steps[task.step];
        let node = self.graph.node(step.node);
        let mut times = Vec::with_capacity(1 + task.frames.len());
        let mut callees = CallRunner {
            runner: self,
            frames: &task.frames,
            tick: task.tick,
            input: &task.input,
            times: &mut times,
        };
        let mut cx =
            TickContext::new(task.tick, &self.graph.settings, &mut callees).with_input(&task.input);
        let started = Instant::now();
        let result = {
            let mut state = self.states[step.node.0]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match host_inputs(&*node.node, &task.inputs) {
                Ok(Some(inputs)) => node.node.eval(&mut state, &inputs, &mut cx),
                Ok(None) => node.node.eval(&mut state, &task.inputs, &mut cx),
                Err(e) => Err(e),
            }
        };
        let elapsed = started.elapsed();
        let stop = cx.stop_requested();
        times.push((step.node, elapsed));
        let allow_nonfinite = self.graph.settings.allow_nonfinite;
        let result = result
            .and_then(|values| check_outputs(node, &step.out_types, values))
            .and_then(|values| check_finite(node, values, allow_nonfinite));
        let shown = step.shows.and_then(|spec| {
            Some(Shown {
                node: step.node,
                value: task.inputs.get(spec.input).cloned().flatten()?,
                range: spec.range,
            })
        });
        Done {
            step: task.step,
            tick: task.tick,
            result,
            stop,
            times,
            started,
            shown,
        }
    }
}

/// Bookkeeping of one `advance` call.
struct RunState {
    paused: bool,
    stopped_by: Option<usize>,
    error: Option<(usize, u64, String)>,
}

/// Values and counters of one tick in flight.
struct TickSlot {
    values: Vec<Option<Vec<Value>>>,
    pending: Vec<usize>,
    remaining: usize,
    first_start: Instant,
    input: TickInput,
    shown: Vec<Shown>,
}

/// Runs a caller's callees with the inputs gathered for this tick.
struct CallRunner<'r> {
    runner: &'r Runner,
    frames: &'r [CallFrame],
    tick: u64,
    input: &'r TickInput,
    times: &'r mut Vec<(NodeId, Duration)>,
}

impl Callees for CallRunner<'_> {
    fn call(&mut self, index: usize, args: Vec<Value>) -> Result<Vec<Value>, NodeError> {
        let frame = self
            .frames
            .get(index)
            .ok_or_else(|| NodeError::new(format!("internal: no callable #{index}")))?;
        if args.len() != frame.arg_slots.len() {
            return Err(NodeError::new(format!(
                "internal: callable #{index} takes {} arguments, {} given",
                frame.arg_slots.len(),
                args.len()
            )));
        }
        let mut inputs = frame.inputs.clone();
        for (slot, value) in frame.arg_slots.iter().zip(args) {
            inputs[*slot] = Some(value);
        }
        let graph = &*self.runner.graph;
        let node = graph.node(frame.node);
        let mut nested = CallRunner {
            runner: self.runner,
            frames: &frame.children,
            tick: self.tick,
            input: self.input,
            times: &mut *self.times,
        };
        let mut cx =
            TickContext::new(self.tick, &graph.settings, &mut nested).with_input(self.input);
        let started = Instant::now();
        let result = {
            let mut state = self.runner.states[frame.node.0]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match host_inputs(&*node.node, &inputs) {
                Ok(Some(host)) => node.node.eval(&mut state, &host, &mut cx),
                Ok(None) => node.node.eval(&mut state, &inputs, &mut cx),
                Err(e) => Err(e),
            }
        };
        self.times.push((frame.node, started.elapsed()));
        result
            .and_then(|values| check_finite(node, values, graph.settings.allow_nonfinite))
            .map_err(|e| {
                NodeError::new(format!("in `{}` ({}): {}", node.name, node.kind, e.message))
            })
    }
}

/// The inputs with every device tensor copied to the host, for a node that
/// reads elements; `None` when nothing needs copying (the common case: no
/// allocation).
fn host_inputs(
    node: &dyn crate::node::Node,
    inputs: &[Option<Value>],
) -> Result<Option<Vec<Option<Value>>>, NodeError> {
    let on_device = |v: &Option<Value>| matches!(v, Some(Value::Tensor(t)) if !t.is_host());
    if node.accepts_device_inputs() || !inputs.iter().any(on_device) {
        return Ok(None);
    }
    inputs
        .iter()
        .map(|v| match v {
            Some(Value::Tensor(t)) if !t.is_host() => Ok(Some(Value::Tensor(t.to_host()?))),
            other => Ok(other.clone()),
        })
        .collect::<Result<Vec<_>, NodeError>>()
        .map(Some)
}

fn gather(
    sources: &[Source],
    cur: &[Option<Vec<Value>>],
    prev: &[Option<Vec<Value>>],
    tick: u64,
) -> Vec<Option<Value>> {
    sources
        .iter()
        .map(|s| match s {
            Source::Empty => None,
            Source::Data { plan, port } => cur.get(*plan)?.as_ref()?.get(*port).cloned(),
            Source::Feedback { plan, port, init } => {
                // Tick 0, or a producer a reload added or reset: the init value.
                let carried = (tick > 0)
                    .then(|| prev.get(*plan)?.as_ref()?.get(*port).cloned())
                    .flatten();
                Some(carried.unwrap_or_else(|| init.clone()))
            }
        })
        .collect()
}

fn frames(
    calls: &[CallPlan],
    cur: &[Option<Vec<Value>>],
    prev: &[Option<Vec<Value>>],
    tick: u64,
) -> Vec<CallFrame> {
    calls
        .iter()
        .map(|c| CallFrame {
            node: c.node,
            inputs: gather(&c.inputs, cur, prev, tick),
            arg_slots: c.arg_slots.clone(),
            children: frames(&c.children, cur, prev, tick),
        })
        .collect()
}

/// Refuses non-finite float values (f32, f64, f16) where they are
/// produced: a NaN or an infinity in an output fails the node that made it
/// (naming the output and the models the node runs), not the sink that
/// would have written a black frame. One pass over each float output; the
/// full count is taken only on the error path.
/// `allow` (`world { on_nonfinite = allow }`) passes them on.
fn check_finite(
    node: &crate::graph::GraphNode,
    values: Vec<Value>,
    allow: bool,
) -> Result<Vec<Value>, NodeError> {
    if allow {
        return Ok(values);
    }
    for (i, v) in values.iter().enumerate() {
        let Value::Tensor(t) = v else { continue };
        let Some(bad) = t.host().ok().and_then(|d| d.non_finite()) else {
            continue;
        };
        let port = node
            .outputs
            .get(i)
            .map_or_else(|| format!("#{i}"), |p| p.name.clone());
        let models: Vec<String> = node
            .params
            .iter()
            .flat_map(|(_, p)| p.model_names())
            .map(|m| format!("`{m}`"))
            .collect();
        let of_model = match models.len() {
            0 => String::new(),
            1 => format!(" (from model {})", models[0]),
            _ => format!(" (from models {})", models.join(", ")),
        };
        return Err(NodeError::new(format!(
            "output `{port}`{of_model} holds a non-finite value ({}) at element {}; \
             {} of its {} values are NaN or infinite",
            bad.value,
            bad.first,
            bad.count,
            t.len()
        )));
    }
    Ok(values)
}

/// Catches a node producing something other than what it declared.
fn check_outputs(
    node: &crate::graph::GraphNode,
    expected: &[Option<(DType, Vec<usize>)>],
    values: Vec<Value>,
) -> Result<Vec<Value>, NodeError> {
    if values.len() != expected.len() {
        return Err(NodeError::new(format!(
            "produced {} outputs, declared {}",
            values.len(),
            expected.len()
        )));
    }
    for ((v, e), port) in values.iter().zip(expected).zip(&node.outputs) {
        if let (Value::Tensor(t), Some((dtype, shape))) = (v, e)
            && (t.dtype() != *dtype || t.shape() != shape.as_slice())
        {
            return Err(NodeError::new(format!(
                "output `{}` is {}{:?} but was declared {}{:?}",
                port.name,
                t.dtype(),
                t.shape(),
                dtype,
                shape
            )));
        }
    }
    Ok(values)
}

/// Turns the graph into plan steps with their prerequisites.
fn compile(graph: &Graph) -> Vec<Step> {
    let plan_of: BTreeMap<NodeId, usize> = graph
        .order
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let sources = |id: NodeId| -> Vec<Source> {
        let node = graph.node(id);
        (0..node.inputs.len())
            .map(|port| match graph.edge_into(id, port) {
                None => Source::Empty,
                Some(e) => {
                    let Some(&plan) = plan_of.get(&e.from) else {
                        return Source::Empty;
                    };
                    match &e.kind {
                        EdgeKind::Data => Source::Data {
                            plan,
                            port: e.from_port,
                        },
                        EdgeKind::Feedback { init } => Source::Feedback {
                            plan,
                            port: e.from_port,
                            init: init.clone(),
                        },
                    }
                }
            })
            .collect()
    };
    fn call_plans(
        graph: &Graph,
        id: NodeId,
        sources: &dyn Fn(NodeId) -> Vec<Source>,
    ) -> Vec<CallPlan> {
        let node = graph.node(id);
        node.callees
            .iter()
            .zip(&node.call_arg_slots)
            .map(|(&c, slots)| CallPlan {
                node: c,
                inputs: sources(c),
                arg_slots: slots.clone(),
                children: call_plans(graph, c, sources),
            })
            .collect()
    }
    fn collect(
        inputs: &[Source],
        calls: &[CallPlan],
        deps: &mut Vec<usize>,
        prev: &mut Vec<usize>,
    ) {
        for s in inputs {
            match s {
                Source::Data { plan, .. } if !deps.contains(plan) => deps.push(*plan),
                Source::Feedback { plan, .. } if !prev.contains(plan) => prev.push(*plan),
                _ => {}
            }
        }
        for c in calls {
            collect(&c.inputs, &c.children, deps, prev);
        }
    }
    let mut steps: Vec<Step> = graph
        .order
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let inputs = sources(id);
            let calls = call_plans(graph, id, &sources);
            let mut deps = Vec::new();
            let mut prev_deps = vec![i];
            collect(&inputs, &calls, &mut deps, &mut prev_deps);
            let out_types = graph
                .node(id)
                .output_types
                .iter()
                .map(|t| {
                    let t = t.as_tensor()?;
                    Some((t.dtype, t.known_shape()?))
                })
                .collect();
            Step {
                node: id,
                inputs,
                calls,
                deps,
                prev_deps,
                succ: Vec::new(),
                prev_succ: Vec::new(),
                out_types,
                shows: graph.node(id).node.displays(),
            }
        })
        .collect();
    for i in 0..steps.len() {
        for d in steps[i].deps.clone() {
            steps[d].succ.push(i);
        }
        for d in steps[i].prev_deps.clone() {
            steps[d].prev_succ.push(i);
        }
    }
    steps
}
