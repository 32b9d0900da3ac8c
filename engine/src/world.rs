//! A live world: a graph that runs tick after tick until stopped, takes
//! input while it runs, and is rewired without stopping.
//!
//! The main types:
//!
//! - [`World`] — the session. It owns a [`Runner`] (and through it the
//!   graph, every node's state and the timings), runs ticks on the calling
//!   thread, and between ticks applies what arrived on its control channel.
//!   It is `Send` and owns all its state, so a server can hold many.
//! - [`WorldHandle`] — a cloneable, `Send` remote control for front ends,
//!   file watchers and signal handlers: hold keys, change a parameter,
//!   request a reload, stop. Keys are read when a tick starts (live input is
//!   sampled at tick boundaries, never mid-tick).
//! - [`GraphSource`] — how to (re)build the graph: implemented by the
//!   program that knows the registry, the model backend and the files (the
//!   CLI). The world never parses or loads anything itself.
//! - [`Reloader`] — one background thread that rebuilds graphs off the tick
//!   thread, serially: after a file changed, or with parameter changes on
//!   top of the files; a lone parameter change goes first to
//!   [`GraphSource::retune`], which builds only the node it names. It
//!   answers with a prepared graph (models already
//!   loaded and warmed by the build's probe run) or with the diagnostics;
//!   the world swaps at the next tick boundary
//!   ([`Runner::swap_graph`]) or keeps running the old graph.
//! - [`WorldEvent`] — what subscribers see: frames, ticks, reloads, errors.
//!   A subscriber is a bounded channel; when it is full the event is dropped
//!   for that subscriber only (counted), so a slow viewer never stalls the
//!   ticks.
//! - [`ScriptedEvent`] — `--events` lines (`TICK: NODE.PARAM = VALUE`,
//!   `TICK: keys = W+A`), applied exactly at their tick: the world waits for
//!   the rebuild, so a scripted run is reproducible.
//!
//! # Files
//! `world/clock.rs` — [`TickGrid`] and one world's pacing on it;
//! `world/reload.rs` — the [`Reloader`] thread; `world/tests.rs`. This file
//! keeps the types above and `World::run`'s tick loop with its `TickHooks`
//! (one state machine over the controls, the clock, late ticks and the
//! degrade policy: split, its halves would share every field), so it stays
//! near 1,000 lines.
//!
//! Architecture Invariants: nothing here grows per tick (subscribers are
//! bounded channels, parameter changes are kept one per `NODE.PARAM`,
//! timings are fixed-size summaries); a failed rebuild never touches the
//! running graph.

use crate::graph::Graph;
use crate::metrics::MetricsReport;
use crate::node::{PixelRange, TickInput};
use crate::reload::SwapReport;
use crate::schedule::{
    Advance, NodeFailure, RunConfig, RunError, RunEvent, RunReport, Runner, TickHooks,
};
use crate::settings::LatePolicy;
use crate::snapshot::{RestoreOptions, SnapshotError};
use crate::tensor::Tensor;
use crate::value::{Actions, Value};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, unbounded};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod clock;
mod reload;

use clock::{Clock, Waited};
pub use clock::{LATE_STEPS, TickGrid};
use reload::ReloadRequest;
pub use reload::Reloader;

/// `NODE.PARAM = VALUE`: a parameter change, the value in graph syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSet {
    pub node: String,
    pub param: String,
    /// The value as written (graph syntax, or a bare word taken as a string).
    pub value: String,
}

impl std::fmt::Display for ParamSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} = {}", self.node, self.param, self.value)
    }
}

/// Builds a world's graph: the graph files with parameter changes on top.
pub trait GraphSource: Send + Sync {
    /// Parses, checks and builds the graph (loading and warming its models)
    /// with `sets` applied. On failure returns the diagnostics, rendered as
    /// `wgraph check` prints them (file:line:col).
    fn build(&self, sets: &[ParamSet]) -> Result<Built, String>;

    /// Makes one parameter change to `current` (the graph the world runs,
    /// which this source built) without rebuilding the graph: only the node
    /// `set` names is built again (see [`crate::build::retune`]). `None`
    /// when this source cannot, or the change needs a rebuild; then
    /// [`GraphSource::build`] runs with every change. On failure returns
    /// the diagnostics rendered as [`GraphSource::build`] does.
    fn retune(&self, _current: &Graph, _set: &ParamSet) -> Option<Result<Built, String>> {
        None
    }
}

/// A built graph and the files it was made from.
pub struct Built {
    pub graph: Graph,
    /// Every file the graph read: graph files, includes, models, data.
    pub files: Vec<PathBuf>,
    /// What the source wants remembered about this build (e.g. the graph
    /// texts and file hashes a recording needs); carried to [`ReloadInfo`].
    pub provenance: Option<Arc<serde_json::Value>>,
    /// How long each phase took (`parse`, `check+build`, `models`), for the
    /// reload's log line.
    pub phases: Vec<(&'static str, Duration)>,
}

/// A rebuilt graph, ready to swap in.
pub struct Prepared {
    pub graph: Arc<Graph>,
    pub files: Vec<PathBuf>,
    pub provenance: Option<Arc<serde_json::Value>>,
    pub phases: Vec<(&'static str, Duration)>,
    /// Why it was rebuilt.
    pub cause: ReloadCause,
    /// Parse, check and build time, models included.
    pub prepare: Duration,
}

/// Why a graph was rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadCause {
    /// Files changed on disk.
    Files(Vec<PathBuf>),
    /// A parameter was changed (by a front end or a scripted event).
    Set(ParamSet),
    /// A parameter change was dropped: the graph's own value again.
    Unset { node: String, param: String },
}

impl std::fmt::Display for ReloadCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadCause::Files(files) => {
                let names: Vec<String> = files
                    .iter()
                    .map(|p| {
                        p.file_name()
                            .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
                    })
                    .collect();
                write!(f, "{} changed", names.join(", "))
            }
            ReloadCause::Set(s) => write!(f, "set {s}"),
            ReloadCause::Unset { node, param } => write!(f, "unset {node}.{param}"),
        }
    }
}

/// Messages to a running world, sent through a [`WorldHandle`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Control {
    /// A rebuilt graph to swap in at the next tick boundary.
    Swap(Box<Prepared>),
    /// A rebuild failed; the old graph keeps running.
    ReloadFailed { cause: ReloadCause, message: String },
    /// Stop after the ticks already started.
    Stop,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("cause", &self.cause)
            .field("prepare", &self.prepare)
            .finish()
    }
}

/// What subscribers and the world's observer see.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WorldEvent {
    /// A displayed frame (the `display` node's image) of tick `tick`.
    /// `input_at` is when the key change this frame first reflects was
    /// made (for action-to-frame latency: the front end subtracts it from
    /// the moment it hands the frame to the viewer).
    Frame {
        tick: u64,
        image: Tensor,
        /// How `image`'s values map to pixels ([`crate::frame::RgbFrame`] converts).
        range: PixelRange,
        input_at: Option<Instant>,
    },
    /// The run's timings so far (every [`WorldConfig::stats_every`]).
    Stats(Arc<MetricsReport>),
    /// [`LatePolicy::Degrade`] applied (`level` went up) or undid (down) a
    /// cheaper setting; `why` says what the world's timing was.
    Degraded {
        tick: u64,
        level: usize,
        change: String,
        why: String,
    },
    /// Tick `tick` completed.
    Tick {
        tick: u64,
        /// The live input it ran with.
        input: TickInput,
        latency: Duration,
        /// It started later than the graph's clock allowed (paced worlds).
        late: bool,
    },
    /// A new graph runs from tick `tick`.
    Reloaded(Box<ReloadInfo>),
    /// A rebuild failed; the old graph keeps running. `message` holds the
    /// diagnostics as `wgraph check` prints them.
    ReloadFailed { cause: String, message: String },
    /// A snapshot taken before tick `tick` (see [`crate::snapshot`]), or why
    /// it could not be taken.
    Snapshot {
        tick: u64,
        snapshot: Result<Arc<serde_json::Value>, SnapshotError>,
    },
}

/// One reload, for its log line.
#[derive(Debug, Clone)]
pub struct ReloadInfo {
    /// The first tick the new graph runs.
    pub tick: u64,
    /// The files the new graph was built from.
    pub files: Vec<PathBuf>,
    /// The source's note on the build (see [`Built::provenance`]).
    pub provenance: Option<Arc<serde_json::Value>>,
    /// The source's phase timings (see [`Built::phases`]).
    pub phases: Vec<(&'static str, Duration)>,
    pub cause: String,
    pub swap: SwapReport,
    /// Parse, check and build (models included), off the tick thread.
    pub prepare: Duration,
}

impl ReloadInfo {
    /// One log line: cause, what changed, what was reset, how long each part took.
    pub fn line(&self) -> String {
        let mut line = format!(
            "reloaded at tick {} ({}): {}",
            self.tick,
            self.cause,
            self.swap.diff.summary()
        );
        line.push_str(&format!("; state kept: {} nodes", self.swap.kept.len()));
        if !self.swap.fresh.is_empty() {
            line.push_str(&format!(", fresh: {}", self.swap.fresh.join(", ")));
        }
        if !self.swap.feedback_carried.is_empty() {
            line.push_str(&format!(
                ", feedback carried: {}",
                self.swap.feedback_carried.join(", ")
            ));
        }
        for (node, why) in &self.swap.reset {
            line.push_str(&format!("; reset `{node}`: {why}"));
        }
        for (node, e) in &self.swap.finish_errors {
            line.push_str(&format!("; finishing old `{node}` failed: {e}"));
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let phases = if self.phases.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = self
                .phases
                .iter()
                .map(|(name, d)| format!("{name} {:.1} ms", ms(*d)))
                .collect();
            format!(" ({})", parts.join(", "))
        };
        line.push_str(&format!(
            "; prepare {:.1} ms{phases}, swap {:.2} ms",
            ms(self.prepare),
            ms(self.swap.duration)
        ));
        line
    }
}

/// Live input shared between a world and its handles.
#[derive(Debug, Default)]
struct Live {
    keys: Mutex<LiveKeys>,
    /// The graph the world runs, for the reloader's in-place parameter
    /// changes (weak: nothing but the world holds a running graph).
    graph: Mutex<std::sync::Weak<Graph>>,
}

/// The keys a front end holds, and when they last changed (for the
/// action-to-frame latency of the frame that first reflects the change).
#[derive(Debug, Default)]
struct LiveKeys {
    keys: Option<Actions>,
    changed_at: Option<Instant>,
}

/// A remote control for a running [`World`]: cheap to clone, `Send`.
#[derive(Clone)]
pub struct WorldHandle {
    controls: Sender<Control>,
    live: Arc<Live>,
    reloader: Option<Sender<ReloadRequest>>,
}

impl WorldHandle {
    /// Holds these keys from the next tick on (a front end's key state).
    /// `None` hands the keys back to the graph's action file.
    pub fn set_keys(&self, keys: Option<Actions>) {
        let mut live = self.live.keys.lock().unwrap_or_else(|p| p.into_inner());
        if live.keys != keys {
            live.keys = keys;
            // The first change not yet sampled by a tick keeps its time.
            live.changed_at.get_or_insert_with(Instant::now);
        }
    }

    /// Holds no keys from now on, without counting it as a key change: a
    /// front end's starting state (or a new controller's), for which no
    /// key-to-frame latency is measured.
    pub fn hold_no_keys(&self) {
        let mut live = self.live.keys.lock().unwrap_or_else(|p| p.into_inner());
        live.keys = Some(Actions::none());
    }

    /// Asks for a parameter change; it takes effect at a tick boundary once
    /// the graph is rebuilt (off the tick thread). Without a reloader (a
    /// world built without a [`GraphSource`]) this returns false.
    pub fn set_param(&self, set: ParamSet) -> bool {
        self.reloader
            .as_ref()
            .is_some_and(|r| r.send(ReloadRequest::Set(set, None)).is_ok())
    }

    /// Asks for a rebuild because `files` changed (sent by a file watcher).
    pub fn files_changed(&self, files: Vec<PathBuf>) -> bool {
        self.reloader
            .as_ref()
            .is_some_and(|r| r.send(ReloadRequest::Files(files)).is_ok())
    }

    /// Stops the world after the ticks already started.
    pub fn stop(&self) {
        let _ = self.controls.send(Control::Stop);
    }
}

/// A parameter or key change at a given tick (`--events` lines, and what
/// `--record` writes).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScriptedEvent {
    Set(ParamSet),
    /// Hold these keys from this tick on (`None`: back to the action file).
    Keys(Option<Actions>),
    /// Take a snapshot before this tick (published as [`WorldEvent::Snapshot`]).
    Snapshot,
    /// Rebuild the graph from its source before this tick, as a file change
    /// would (a replay's recorded reloads).
    Rebuild,
}

/// How a world runs.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldConfig {
    /// Worker threads (0: every node on the world's thread).
    pub workers: usize,
    /// Ticks in flight at once with workers.
    pub pipeline_depth: usize,
    /// Stop after this many ticks in all (`--frames`); `None`: until stopped.
    pub max_ticks: Option<u64>,
    /// Start ticks on this clock (ticks per second); `None`: as fast as possible.
    pub fps: Option<f64>,
    /// Events each subscriber channel holds before events are dropped for it.
    pub subscriber_capacity: usize,
    /// Publish [`WorldEvent::Stats`] this often (front ends' HUDs); `None`: never.
    pub stats_every: Option<Duration>,
    /// What a paced world does when ticks run late.
    pub on_late: LatePolicy,
    /// With [`LatePolicy::Degrade`]: cheaper settings applied in order while
    /// the world is behind, undone in reverse once it has caught up.
    pub degrade: Vec<ParamSet>,
    /// `fps` is the graph's own `world { fps }`: a reload that changes it
    /// re-paces the world from the swap on. False when the owner fixed the
    /// rate (a command line's `--fps`), or for an unpaced world.
    pub follow_graph_fps: bool,
    /// Publish a [`WorldEvent::Snapshot`] before every tick that is a
    /// multiple of this (after the first tick the run starts at): what a
    /// server keeps so that a crash loses at most this many ticks.
    pub snapshot_every: Option<std::num::NonZeroU64>,
    /// Start ticks on this shared grid instead of the world's own: every
    /// world given the same grid (a server's players of one graph) starts
    /// its ticks at the same instants, so their model calls arrive together
    /// and are fused ([`crate::batch`]), and a world that fell behind
    /// rejoins the others at the next instant. `None`: the world's clock
    /// starts when it does.
    pub tick_grid: Option<TickGrid>,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            workers: 0,
            pipeline_depth: 2,
            max_ticks: None,
            fps: None,
            subscriber_capacity: 64,
            stats_every: None,
            on_late: LatePolicy::Drop,
            degrade: Vec::new(),
            follow_graph_fps: false,
            snapshot_every: None,
            tick_grid: None,
        }
    }
}

/// Least time between two degrade changes.
pub const DEGRADE_COOLDOWN: Duration = Duration::from_secs(1);
/// No late tick for this long before a degrade step is undone.
pub const RECOVER_AFTER: Duration = Duration::from_secs(3);

/// How a world's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorldEnd {
    /// `max_ticks` reached.
    TickLimit,
    /// A source ran dry (named).
    SourceStopped(String),
    /// [`WorldHandle::stop`] (Ctrl-C, a front end).
    Stopped,
}

/// A subscriber's channel.
struct Subscriber {
    tx: Sender<WorldEvent>,
    dropped: u64,
}

/// A running world (see the module docs).
pub struct World {
    runner: Runner,
    config: WorldConfig,
    controls_tx: Sender<Control>,
    controls: Receiver<Control>,
    live: Arc<Live>,
    reloader: Option<Reloader>,
    subscribers: Vec<Subscriber>,
    script: BTreeMap<u64, Vec<ScriptedEvent>>,
    /// Keys set by scripted events (they win over a handle's live keys).
    scripted_keys: Option<Option<Actions>>,
    late_ticks: u64,
    reloads: u64,
    stop_requested: bool,
    started: Instant,
    /// Degrade settings in force (a prefix of `config.degrade`).
    degrade_level: usize,
    /// When the degrade level last changed, and the last late tick.
    degrade_changed: Instant,
    last_late: Option<Instant>,
}

impl World {
    /// A world running `graph`. With a `source`, it can rebuild its graph
    /// (parameter changes, file reloads); `sets` are the parameter changes
    /// the graph was built with (so reloads keep them).
    pub fn new(
        graph: Arc<Graph>,
        source: Option<Arc<dyn GraphSource>>,
        sets: Vec<ParamSet>,
        config: WorldConfig,
    ) -> Result<World, RunError> {
        let live = Arc::new(Live {
            graph: Mutex::new(Arc::downgrade(&graph)),
            ..Live::default()
        });
        let runner = Runner::new(graph)?;
        let (controls_tx, controls) = unbounded();
        let reloader =
            source.map(|s| Reloader::start(s, controls_tx.clone(), sets, Arc::clone(&live)));
        Ok(World {
            runner,
            config,
            controls_tx,
            controls,
            live,
            reloader,
            subscribers: Vec::new(),
            script: BTreeMap::new(),
            scripted_keys: None,
            late_ticks: 0,
            reloads: 0,
            stop_requested: false,
            started: Instant::now(),
            degrade_level: 0,
            degrade_changed: Instant::now(),
            last_late: None,
        })
    }

    /// A remote control for this world.
    pub fn handle(&self) -> WorldHandle {
        WorldHandle {
            controls: self.controls_tx.clone(),
            live: Arc::clone(&self.live),
            reloader: self.reloader.as_ref().map(|r| r.requests.clone()),
        }
    }

    /// A bounded channel of this world's events (see [`WorldEvent`]).
    pub fn subscribe(&mut self) -> Receiver<WorldEvent> {
        let (tx, rx) = bounded(self.config.subscriber_capacity.max(1));
        self.subscribers.push(Subscriber { tx, dropped: 0 });
        rx
    }

    /// Events to apply at given ticks (`--events`).
    pub fn script(&mut self, events: impl IntoIterator<Item = (u64, ScriptedEvent)>) {
        for (tick, e) in events {
            self.script.entry(tick).or_default().push(e);
        }
    }

    /// The graph running now.
    pub fn graph(&self) -> &Arc<Graph> {
        self.runner.graph()
    }

    /// Ticks completed.
    pub fn ticks_done(&self) -> u64 {
        self.runner.ticks_done()
    }

    /// Ticks that started later than the clock allowed (paced worlds).
    pub fn late_ticks(&self) -> u64 {
        self.late_ticks
    }

    /// Reloads applied.
    pub fn reloads(&self) -> u64 {
        self.reloads
    }

    /// Events dropped for slow subscribers, in all.
    pub fn dropped_events(&self) -> u64 {
        self.subscribers.iter().map(|s| s.dropped).sum()
    }

    /// Runs until the tick limit, a source's end, a stop request, or a node
    /// failure. `observer` sees every event on the tick thread (keep it
    /// short); subscribers get them through their channels.
    pub fn run(&mut self, observer: &mut dyn FnMut(&WorldEvent)) -> Result<WorldEnd, NodeFailure> {
        let mut clock = Clock::new(
            self.config.fps,
            self.runner.ticks_done(),
            self.config.tick_grid,
        );
        let first_tick = self.runner.ticks_done();
        let mut last_stats = Instant::now();
        let mut recent_latency_s = 0.0;
        loop {
            if let Some(every) = self.config.stats_every
                && last_stats.elapsed() >= every
            {
                last_stats = Instant::now();
                let mut metrics = self.runner.metrics().clone();
                metrics.wall = self.started.elapsed();
                let report = Arc::new(metrics.report(self.runner.graph()));
                self.publish(WorldEvent::Stats(report), observer);
            }
            self.apply_controls(observer, &mut clock);
            if self.stop_requested {
                return Ok(WorldEnd::Stopped);
            }
            let now = self.runner.ticks_done();
            if self.config.max_ticks.is_some_and(|m| now >= m) {
                return Ok(WorldEnd::TickLimit);
            }
            // Events for ticks already past (a world restored from a later
            // snapshot) can no longer apply.
            while let Some((&t, _)) = self.script.first_key_value()
                && t < now
            {
                self.script.remove(&t);
            }
            if let Some(events) = self.script.remove(&now) {
                for e in events {
                    self.apply_scripted(e, observer);
                }
                clock.retime(self.config.fps, self.runner.ticks_done());
            }
            let every = self.config.snapshot_every.map(std::num::NonZeroU64::get);
            if let Some(every) = every
                && now > first_tick
                && now.is_multiple_of(every)
            {
                self.apply_scripted(ScriptedEvent::Snapshot, observer);
            }
            // Run until the next scripted event or periodic snapshot, the
            // tick limit, or a control.
            let next_snapshot = every.map(|e| (now / e).saturating_add(1).saturating_mul(e));
            let next_event = self.script.keys().next().copied();
            let limit = [next_event, next_snapshot, self.config.max_ticks]
                .into_iter()
                .flatten()
                .min()
                .map_or(u64::MAX, |l| l.saturating_sub(now).max(1));
            let config = RunConfig {
                ticks: limit,
                workers: self.config.workers,
                pipeline_depth: self.config.pipeline_depth,
            };
            let mut hooks = Hooks {
                world_live: &self.live,
                scripted_keys: self.scripted_keys,
                controls: &self.controls,
                subscribers: &mut self.subscribers,
                observer,
                clock: &mut clock,
                late_ticks: &mut self.late_ticks,
                late: Vec::new(),
                inputs: std::collections::VecDeque::new(),
                stats_due: self.config.stats_every.map(|every| last_stats + every),
                degrade_check: false,
                recover_due: (self.degrade_level > 0).then(|| Instant::now() + DEGRADE_COOLDOWN),
                last_late: None,
                recent_latency: recent_latency_s,
            };
            let advanced = self.runner.advance(&config, &mut hooks);
            let (late, latency) = (hooks.last_late, hooks.recent_latency);
            recent_latency_s = latency;
            if let Some((tick, at)) = late {
                self.last_late = Some(at);
                self.degrade_step(true, tick, latency, observer);
            } else {
                self.degrade_step(false, self.runner.ticks_done(), latency, observer);
            }
            match advanced? {
                Advance::Stopped(node) => return Ok(WorldEnd::SourceStopped(node)),
                Advance::Ran | Advance::Paused => {}
            }
        }
    }

    /// [`LatePolicy::Degrade`]: one step cheaper after a late tick, one step
    /// back once no tick was late for [`RECOVER_AFTER`] and ticks take under
    /// half the period. At most one change per [`DEGRADE_COOLDOWN`]; changes
    /// are parameter changes, rebuilt off the tick thread like any other.
    fn degrade_step(
        &mut self,
        late: bool,
        tick: u64,
        latency_s: f64,
        observer: &mut dyn FnMut(&WorldEvent),
    ) {
        if self.config.on_late != LatePolicy::Degrade
            || self.degrade_changed.elapsed() < DEGRADE_COOLDOWN
        {
            return;
        }
        let Some(reloader) = &self.reloader else {
            return;
        };
        let period = self.config.fps.map_or(0.0, |f| 1.0 / f);
        let ms = |s: f64| s * 1e3;
        if late && self.degrade_level < self.config.degrade.len() {
            let set = self.config.degrade[self.degrade_level].clone();
            if reloader
                .requests
                .send(ReloadRequest::Set(set.clone(), None))
                .is_ok()
            {
                self.degrade_level += 1;
                self.degrade_changed = Instant::now();
                let why = format!(
                    "behind: tick {tick} started late; ticks take {:.1} ms, the period is {:.1} ms",
                    ms(latency_s),
                    ms(period)
                );
                let event = WorldEvent::Degraded {
                    tick,
                    level: self.degrade_level,
                    change: set.to_string(),
                    why,
                };
                self.publish(event, observer);
            }
        } else if !late
            && self.degrade_level > 0
            && self.last_late.is_none_or(|t| t.elapsed() >= RECOVER_AFTER)
            && latency_s < 0.5 * period
        {
            let set = self.config.degrade[self.degrade_level - 1].clone();
            if reloader
                .requests
                .send(ReloadRequest::Unset {
                    node: set.node.clone(),
                    param: set.param.clone(),
                })
                .is_ok()
            {
                self.degrade_level -= 1;
                self.degrade_changed = Instant::now();
                let why = format!(
                    "caught up: ticks take {:.1} ms of a {:.1} ms period",
                    ms(latency_s),
                    ms(period)
                );
                let event = WorldEvent::Degraded {
                    tick,
                    level: self.degrade_level,
                    change: format!("undo {set}"),
                    why,
                };
                self.publish(event, observer);
            }
        }
    }

    /// The world's state between ticks (see [`crate::snapshot`]).
    pub fn snapshot(&self) -> Result<serde_json::Value, SnapshotError> {
        self.runner.snapshot()
    }

    /// Continues from a snapshot: call before [`World::run`]. Refuses one
    /// taken with other parameter values ([`World::restore_with`] may allow it).
    pub fn restore(&mut self, snapshot: &serde_json::Value) -> Result<(), SnapshotError> {
        self.runner.restore(snapshot)
    }

    /// [`World::restore`] with options (see [`Runner::restore_with`]).
    pub fn restore_with(
        &mut self,
        snapshot: &serde_json::Value,
        options: RestoreOptions,
    ) -> Result<(), SnapshotError> {
        self.runner.restore_with(snapshot, options)
    }

    /// Finishes every node (sinks close their files) and reports the run.
    pub fn finish(&mut self) -> Result<RunReport, RunError> {
        self.runner.finish()
    }

    fn apply_controls(&mut self, observer: &mut dyn FnMut(&WorldEvent), clock: &mut Clock) {
        while let Ok(control) = self.controls.try_recv() {
            match control {
                Control::Stop => self.stop_requested = true,
                Control::Swap(prepared) => {
                    self.swap(*prepared, observer);
                    clock.retime(self.config.fps, self.runner.ticks_done());
                }
                Control::ReloadFailed { cause, message } => {
                    self.publish(
                        WorldEvent::ReloadFailed {
                            cause: cause.to_string(),
                            message,
                        },
                        observer,
                    );
                }
            }
        }
    }

    fn apply_scripted(&mut self, event: ScriptedEvent, observer: &mut dyn FnMut(&WorldEvent)) {
        match event {
            ScriptedEvent::Keys(keys) => self.scripted_keys = Some(keys),
            ScriptedEvent::Snapshot => {
                let tick = self.runner.ticks_done();
                let snapshot = self.runner.snapshot().map(Arc::new);
                self.publish(WorldEvent::Snapshot { tick, snapshot }, observer);
            }
            ScriptedEvent::Rebuild => {
                let Some(reloader) = &self.reloader else {
                    return;
                };
                let (tx, rx) = bounded(1);
                if reloader.requests.send(ReloadRequest::Rebuild(tx)).is_ok()
                    && let Ok(control) = rx.recv()
                {
                    self.apply_reply(control, observer);
                }
            }
            ScriptedEvent::Set(set) => {
                let Some(reloader) = &self.reloader else {
                    self.publish(
                        WorldEvent::ReloadFailed {
                            cause: format!("set {set}"),
                            message: "this world cannot rebuild its graph".into(),
                        },
                        observer,
                    );
                    return;
                };
                // Wait for this rebuild: a scripted run is reproducible.
                let (tx, rx) = bounded(1);
                if reloader
                    .requests
                    .send(ReloadRequest::Set(set, Some(tx)))
                    .is_err()
                {
                    return;
                }
                if let Ok(control) = rx.recv() {
                    self.apply_reply(control, observer);
                }
            }
        }
    }

    fn apply_reply(&mut self, control: Control, observer: &mut dyn FnMut(&WorldEvent)) {
        match control {
            Control::Swap(prepared) => self.swap(*prepared, observer),
            Control::ReloadFailed { cause, message } => self.publish(
                WorldEvent::ReloadFailed {
                    cause: cause.to_string(),
                    message,
                },
                observer,
            ),
            Control::Stop => self.stop_requested = true,
        }
    }

    fn swap(&mut self, prepared: Prepared, observer: &mut dyn FnMut(&WorldEvent)) {
        let tick = self.runner.ticks_done();
        match self.runner.swap_graph(Arc::clone(&prepared.graph)) {
            Ok(swap) => {
                self.reloads += 1;
                *self.live.graph.lock().unwrap_or_else(|p| p.into_inner()) =
                    Arc::downgrade(&prepared.graph);
                let fps = prepared.graph.settings.fps;
                if self.config.follow_graph_fps
                    && self.config.fps.is_some()
                    && self.config.fps != Some(fps)
                {
                    // The callers re-time the clock after a swap.
                    self.config.fps = Some(fps);
                }
                let info = ReloadInfo {
                    tick,
                    files: prepared.files,
                    provenance: prepared.provenance,
                    phases: prepared.phases,
                    cause: prepared.cause.to_string(),
                    swap,
                    prepare: prepared.prepare,
                };
                self.publish(WorldEvent::Reloaded(Box::new(info)), observer);
            }
            Err(e) => self.publish(
                WorldEvent::ReloadFailed {
                    cause: prepared.cause.to_string(),
                    message: format!("the new graph could not start: {e}"),
                },
                observer,
            ),
        }
    }

    fn publish(&mut self, event: WorldEvent, observer: &mut dyn FnMut(&WorldEvent)) {
        publish(&mut self.subscribers, event, observer);
    }
}

fn publish(
    subscribers: &mut Vec<Subscriber>,
    event: WorldEvent,
    observer: &mut dyn FnMut(&WorldEvent),
) {
    observer(&event);
    subscribers.retain_mut(|s| match s.tx.try_send(event.clone()) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            s.dropped += 1;
            true
        }
        Err(TrySendError::Disconnected(_)) => false,
    });
}

struct Hooks<'a> {
    world_live: &'a Live,
    scripted_keys: Option<Option<Actions>>,
    controls: &'a Receiver<Control>,
    subscribers: &'a mut Vec<Subscriber>,
    observer: &'a mut dyn FnMut(&WorldEvent),
    clock: &'a mut Clock,
    late_ticks: &'a mut u64,
    /// Ticks admitted late and not yet reported (at most the pipeline depth).
    late: Vec<u64>,
    /// Input of ticks admitted and not yet reported (at most the pipeline
    /// depth), with the time of the key change it first reflects.
    inputs: std::collections::VecDeque<(u64, TickInput, Option<Instant>)>,
    /// When to pause for the next [`WorldEvent::Stats`].
    stats_due: Option<Instant>,
    /// Pause at the next boundary to revisit the degrade level.
    degrade_check: bool,
    /// While degraded: when to pause to see whether the world caught up.
    recover_due: Option<Instant>,
    /// The last late tick seen (for the degrade policy).
    last_late: Option<(u64, Instant)>,
    /// Recent tick latency (exponential average, seconds).
    recent_latency: f64,
}

impl TickHooks for Hooks<'_> {
    fn before_tick(&mut self, tick: u64) -> ControlFlow<()> {
        // Stats (a front end's HUD) are due even while a slow clock waits.
        match self.clock.wait(tick, self.controls, self.stats_due) {
            Waited::OnTime => ControlFlow::Continue(()),
            Waited::Late => {
                *self.late_ticks += 1;
                self.late.push(tick);
                ControlFlow::Continue(())
            }
            Waited::Interrupted => ControlFlow::Break(()),
        }
    }

    fn input(&mut self, tick: u64) -> TickInput {
        let (keys, changed_at) = match self.scripted_keys {
            Some(k) => (k, None),
            None => {
                let mut live = self
                    .world_live
                    .keys
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                (live.keys, live.changed_at.take())
            }
        };
        let input = keys.map_or(TickInput::NONE, TickInput::with_actions);
        self.inputs.push_back((tick, input, changed_at));
        input
    }

    #[allow(irrefutable_let_patterns)] // RunEvent is open to more variants
    fn tick_done(&mut self, event: &RunEvent) -> ControlFlow<()> {
        if let RunEvent::TickDone {
            tick,
            latency,
            shown,
        } = event
        {
            let late = self.late.contains(tick);
            self.late.retain(|t| t > tick);
            let secs = latency.as_secs_f64();
            self.recent_latency = if self.recent_latency == 0.0 {
                secs
            } else {
                0.9 * self.recent_latency + 0.1 * secs
            };
            if late {
                self.last_late = Some((*tick, Instant::now()));
                self.degrade_check = true;
            }
            let mut input = TickInput::NONE;
            let mut input_at = None;
            while let Some(&(t, i, at)) = self.inputs.front() {
                if t > *tick {
                    break;
                }
                input = i;
                input_at = at;
                self.inputs.pop_front();
            }
            for shown in shown {
                if let Value::Tensor(image) = &shown.value {
                    publish(
                        self.subscribers,
                        WorldEvent::Frame {
                            tick: *tick,
                            image: image.clone(),
                            range: shown.range,
                            input_at,
                        },
                        self.observer,
                    );
                }
            }
            publish(
                self.subscribers,
                WorldEvent::Tick {
                    tick: *tick,
                    input,
                    latency: *latency,
                    late,
                },
                self.observer,
            );
        }
        // Pause at this boundary when a control message waits, stats are
        // due, or the degrade policy has something to decide.
        let now = Instant::now();
        let stats_due = self.stats_due.is_some_and(|due| now >= due);
        let recover_due = self.recover_due.is_some_and(|due| now >= due);
        if self.controls.is_empty() && !stats_due && !self.degrade_check && !recover_due {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }
}

#[cfg(test)]
mod tests;
