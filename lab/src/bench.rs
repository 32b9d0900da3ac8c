//! `wgraph bench FILE`: one graph's tick timings against a baseline.
//!
//! Main types: [`BenchOptions`] in, [`BenchReport`] out ([`bench`]), and
//! [`RecordingBackend`], the backend wrapper the raw baseline replays.
//!
//! With `--baseline raw`, every model of the graph is wrapped in a
//! recording model. A round runs the graph for N ticks (the engine:
//! scheduling, node logic, sampler math, noise, sinks) while recording each
//! model call and its inputs; then the raw baseline replays exactly those
//! calls, in order, straight on the models. Rounds alternate engine, raw,
//! engine, raw, so both see the same machine state; the figures are means
//! over rounds. The raw loop is the floor of what any implementation must
//! pay for these model calls, so `engine_ms_per_tick / raw_ms_per_tick`
//! bounds the engine's overhead from above (it also counts the non-model
//! work a hand-written loop would do). With `--baseline python` the other
//! half of each round is Yan-Sim's Python loop ([`crate::pybaseline`]).

use crate::LabError;
use crate::load::{LoadRequest, Models};
use crate::pybaseline::{PythonLoop, PythonSetup};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wgraph_engine::graph::Graph;
use wgraph_engine::metrics::MetricsReport;
use wgraph_engine::model::{
    Backend, LoadedModel, Model, ModelError, ModelOptions, ModelSignature, Provider,
};
use wgraph_engine::node::{DisplayTarget, OutputConfig};
use wgraph_engine::schedule::{RunConfig, RunReport, Runner};
use wgraph_engine::tensor::Tensor;
use wgraph_grammar::FsLoader;

/// One recorded call: which model (its index in load order), with which inputs.
pub type Call = (usize, Vec<Tensor>);

/// Wraps a backend so that every model it loads records its calls.
pub struct RecordingBackend<'a> {
    /// The backend that loads the models.
    pub inner: &'a dyn Backend,
    /// The calls recorded so far, in order.
    pub log: Arc<Mutex<Vec<Call>>>,
    /// Every model loaded, unwrapped, in load order.
    pub models: Mutex<Vec<Arc<dyn Model>>>,
}

impl<'a> RecordingBackend<'a> {
    /// Records the calls of every model `inner` loads.
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
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
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

/// What the engine is timed against.
#[derive(Debug, Clone)]
pub enum Baseline {
    /// The graph's own model calls, replayed in a plain loop.
    Raw,
    /// Yan-Sim's Python loop (yan-sim graphs only).
    Python {
        /// The loop's DDIM steps (default: the graph's `sampler.steps`, else 4).
        steps: Option<u64>,
        /// Where its environment is made when there is none.
        setup: PythonSetup,
    },
}

/// What `wgraph bench FILE` measures.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The graph file.
    pub file: PathBuf,
    /// Frames per round (rounded up to whole ticks).
    pub frames: u64,
    /// Timed rounds, after one warm-up round.
    pub rounds: u32,
    /// `NODE.PARAM=VALUE` and `NODE=KIND` changes.
    pub set: Vec<String>,
    /// Worker threads of the engine (`None`: the engine's default).
    pub workers: Option<usize>,
    /// Ticks in flight when using workers (at least 1).
    pub pipeline: usize,
    /// What the engine is timed against.
    pub baseline: Baseline,
    /// A scratch folder for the graph's sinks and the Python script;
    /// removed at the end.
    pub work: PathBuf,
}

/// The figures of one `wgraph bench FILE` (its `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The graph file, as given.
    pub graph: String,
    /// `raw` or `python`.
    pub baseline: String,
    /// The Python loop's DDIM steps (Python baseline only).
    pub baseline_steps: Option<u64>,
    /// Ticks each round runs.
    pub ticks_per_round: u64,
    /// Timed rounds.
    pub rounds: u32,
    /// The engine's worker threads.
    pub workers: usize,
    /// Ticks in flight.
    pub pipeline_depth: usize,
    /// Model calls the graph makes per tick.
    pub model_calls_per_tick: f64,
    /// The baseline's mean ms per tick (named for the raw loop; the same
    /// figure as `baseline_ms_per_tick`).
    pub raw_ms_per_tick: f64,
    /// The engine's mean ms per tick.
    pub engine_ms_per_tick: f64,
    /// Engine over baseline (0 when the baseline took no time).
    pub engine_over_raw: f64,
    /// The baseline's mean ms per tick.
    pub baseline_ms_per_tick: f64,
    /// Engine over baseline (0 when the baseline took no time).
    pub engine_over_baseline: f64,
    /// The engine's ticks per second.
    pub engine_fps: f64,
    /// The baseline's ms per tick, per timed round.
    pub raw_ms_per_tick_rounds: Vec<f64>,
    /// The engine's ms per tick, per timed round.
    pub engine_ms_per_tick_rounds: Vec<f64>,
    /// The machine's cores.
    pub cores: usize,
    /// Unpaced, keys are read as a tick starts and its frame is out as it
    /// ends: the action-to-frame latency is the tick's latency (a paced
    /// world adds the wait for the next tick; `serve --metrics` measures it).
    pub action_to_frame_p50_ms: Option<f64>,
    /// See [`BenchReport::action_to_frame_p50_ms`].
    pub action_to_frame_p99_ms: Option<f64>,
    /// The last timed round's per-node metrics.
    pub metrics: Option<MetricsReport>,
    /// The quality columns (`wgraph eval`'s report), filled by the caller.
    pub quality: Option<serde_json::Value>,
}

impl BenchReport {
    /// The lines `wgraph bench` prints: the action-to-frame latency (when
    /// measured) and engine against baseline.
    pub fn summary(&self) -> String {
        let ratio = self.engine_over_baseline;
        let (engine, base) = (self.engine_ms_per_tick, self.baseline_ms_per_tick);
        let mut text = String::new();
        if let (Some(p50), Some(p99)) = (self.action_to_frame_p50_ms, self.action_to_frame_p99_ms) {
            text += &format!(
                "action-to-frame (key read at a tick's start, frame out at its end): p50 {p50:.2} ms, p99 {p99:.2} ms\n"
            );
        }
        if self.baseline == "python" {
            text += &format!(
                "{}: engine {engine:.3} ms/tick ({:.1} fps), Python loop (onnxruntime + numpy, DDIM {} steps) {base:.3} ms/tick ({:.1} fps); engine/python = {ratio:.3}\n",
                self.graph,
                self.engine_fps,
                self.baseline_steps.unwrap_or(0),
                per_second(base),
            );
        } else {
            text += &format!(
                "{}: engine {engine:.3} ms/tick ({:.1} fps), raw loop of the same {:.0} model calls {base:.3} ms/tick; engine/raw = {ratio:.3}\n",
                self.graph, self.engine_fps, self.model_calls_per_tick,
            );
        }
        text
    }
}

/// Ticks per second at `ms` per tick (0 for no time).
fn per_second(ms: f64) -> f64 {
    if ms > 0.0 { 1e3 / ms } else { 0.0 }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Times `options.file` against its baseline, loading models with `models`.
pub fn bench(options: &BenchOptions, models: &Models) -> Result<BenchReport, LabError> {
    if options.frames == 0 || options.rounds == 0 {
        return Err(LabError::Usage(
            "--frames and --rounds must be at least 1".into(),
        ));
    }
    if options.pipeline == 0 {
        return Err(LabError::Usage("--pipeline must be at least 1".into()));
    }
    let result = measure(options, models);
    let _ = std::fs::remove_dir_all(&options.work);
    result
}

fn measure(options: &BenchOptions, models: &Models) -> Result<BenchReport, LabError> {
    let recording = RecordingBackend::new(models.backend.as_ref());
    let request = LoadRequest {
        set: options.set.clone(),
        output: OutputConfig {
            dir: options.work.clone(),
            display: DisplayTarget::Discard,
            ..OutputConfig::default()
        },
        ..LoadRequest::default()
    };
    let graph = Arc::new(
        crate::load::load_rendered(&options.file, &request, models, &recording, &FsLoader)
            .map_err(LabError::from)?
            .graph,
    );
    let ticks = options
        .frames
        .div_ceil(graph.settings.frames_per_tick as u64);
    let run_config = RunConfig {
        ticks,
        workers: options
            .workers
            .unwrap_or_else(|| RunConfig::default().workers),
        pipeline_depth: options.pipeline,
    };
    let python = match &options.baseline {
        Baseline::Raw => None,
        Baseline::Python { steps, setup } => Some(
            PythonLoop::prepare(&graph, setup, &options.work, *steps).map_err(LabError::Usage)?,
        ),
    };
    let mut engine_ms = Vec::new();
    let mut raw_ms = Vec::new();
    let mut calls_per_tick = 0.0;
    let mut last_report = None;
    // Round 0 warms up (sessions, allocations) and is not timed.
    for round in 0..=options.rounds {
        recording.take();
        let (elapsed, report) = engine_round(&graph, &run_config).map_err(LabError::Runtime)?;
        let done = report.ticks.max(1);
        let calls = recording.take();
        let baseline_ms = match &python {
            Some(python) => python.round(done),
            None => recording
                .replay(&calls)
                .map(|d| d.as_secs_f64() * 1e3 / done as f64)
                .map_err(|e| format!("raw loop: {e}")),
        }
        .map_err(LabError::Runtime)?;
        if round > 0 {
            engine_ms.push(elapsed.as_secs_f64() * 1e3 / done as f64);
            raw_ms.push(baseline_ms);
            calls_per_tick = calls.len() as f64 / done as f64;
            last_report = Some(report);
        }
    }
    let (engine, raw) = (mean(&engine_ms), mean(&raw_ms));
    let ratio = if raw > 0.0 { engine / raw } else { 0.0 };
    let nodes = last_report.map(|r| r.metrics.report(&graph));
    Ok(BenchReport {
        graph: options.file.display().to_string(),
        baseline: if python.is_some() { "python" } else { "raw" }.into(),
        baseline_steps: python.as_ref().map(|p| p.steps),
        ticks_per_round: ticks,
        rounds: options.rounds,
        workers: run_config.workers,
        pipeline_depth: run_config.pipeline_depth,
        model_calls_per_tick: calls_per_tick,
        raw_ms_per_tick: raw,
        engine_ms_per_tick: engine,
        engine_over_raw: ratio,
        baseline_ms_per_tick: raw,
        engine_over_baseline: ratio,
        engine_fps: per_second(engine),
        raw_ms_per_tick_rounds: raw_ms,
        engine_ms_per_tick_rounds: engine_ms,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        action_to_frame_p50_ms: nodes.as_ref().map(|n| n.tick.p50_ms),
        action_to_frame_p99_ms: nodes.as_ref().map(|n| n.tick.p99_ms),
        metrics: nodes,
        quality: None,
    })
}

/// One round of the engine: a fresh runner, `config.ticks` ticks, timed.
fn engine_round(graph: &Arc<Graph>, config: &RunConfig) -> Result<(Duration, RunReport), String> {
    let mut runner = Runner::new(Arc::clone(graph)).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let report = runner.run(config, &mut |_| {}).map_err(|e| e.to_string())?;
    Ok((start.elapsed(), report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(baseline: &str) -> BenchReport {
        BenchReport {
            graph: "g.world".into(),
            baseline: baseline.into(),
            baseline_steps: (baseline == "python").then_some(4),
            ticks_per_round: 8,
            rounds: 2,
            workers: 0,
            pipeline_depth: 2,
            model_calls_per_tick: 3.0,
            raw_ms_per_tick: 2.0,
            engine_ms_per_tick: 4.0,
            engine_over_raw: 2.0,
            baseline_ms_per_tick: 2.0,
            engine_over_baseline: 2.0,
            engine_fps: 250.0,
            raw_ms_per_tick_rounds: vec![2.0, 2.0],
            engine_ms_per_tick_rounds: vec![4.0, f64::NAN],
            cores: 2,
            action_to_frame_p50_ms: None,
            action_to_frame_p99_ms: None,
            metrics: None,
            quality: None,
        }
    }

    /// The `--json` document keeps the keys scripts read, a figure that is
    /// not a number is written as null, and the summary names the baseline.
    #[test]
    fn the_report_serialises_with_the_documented_keys() {
        let json = serde_json::to_value(report("raw")).unwrap();
        for key in [
            "graph",
            "baseline",
            "baseline_steps",
            "engine_over_baseline",
            "engine_ms_per_tick_rounds",
            "action_to_frame_p99_ms",
            "metrics",
            "quality",
        ] {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
        assert_eq!(
            json["engine_ms_per_tick_rounds"][1],
            serde_json::Value::Null
        );
        assert_eq!(json["baseline_steps"], serde_json::Value::Null);
        let text = report("raw").summary();
        assert!(
            text.contains("raw loop of the same 3 model calls 2.000 ms/tick; engine/raw = 2.000"),
            "{text}"
        );
        let text = report("python").summary();
        assert!(
            text.contains(
                "Python loop (onnxruntime + numpy, DDIM 4 steps) 2.000 ms/tick (500.0 fps)"
            ),
            "{text}"
        );
        assert!(!text.contains("action-to-frame"));
    }
}
