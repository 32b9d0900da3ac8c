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
//! ticks never overlap), and handed to [`Node::eval`](crate::node::Node::eval) — never stored in the
//! node, so a reload can keep it.
//!
//! # Files
//! This file has the public types ([`Runner`], [`RunConfig`], [`RunEvent`],
//! [`TickHooks`], [`RunReport`], [`RunError`]) and the runner's API;
//! `schedule/plan.rs` compiles a graph into steps, `schedule/pool.rs` drives
//! ticks (inline or on a worker pool), `schedule/eval.rs` evaluates one task.

use crate::graph::{Graph, NodeId};
use crate::metrics::Metrics;
use crate::node::{DisplaySpec, NodeError, PixelRange, State, TickInput};
use crate::tensor::DType;
use crate::value::Value;
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

mod eval;
mod plan;
mod pool;

use plan::compile;
