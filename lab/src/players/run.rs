//! The players' runs: N sessions in this process ([`in_process`], batched
//! or not, on one model cache) and N `wgraph run` processes
//! ([`processes`]), each giving one round's figures.

use super::triton::{TritonWatch, counts_between};
use super::{Figures, PlayerBackends, PlayersOptions};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wgraph_engine::batch::BatchPolicy;
use wgraph_engine::model::{Backend, LoadedModel, Model, ModelCache, ModelError, ModelOptions};
use wgraph_engine::schedule::RunConfig;
use wgraph_engine::world::{WorldConfig, WorldEvent};
use wgraph_session::{OpenError, Session, SessionOptions};
use wgraph_triton::TritonBackend;

/// A shared backend as a sized one (what a model cache holds).
pub(super) struct Shared(Arc<dyn Backend>);

impl Backend for Shared {
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        self.0.load(path, options)
    }
    fn with_metadata(
        &self,
        model: Arc<dyn Model>,
        overrides: BTreeMap<String, String>,
    ) -> Arc<dyn Model> {
        self.0.with_metadata(model, overrides)
    }
}

/// N sessions in this process, one model cache (batched or not), run at once.
pub(super) fn in_process(
    options: &PlayersOptions,
    backends: &dyn PlayerBackends,
    n: usize,
    policy: Option<BatchPolicy>,
    watch: &mut TritonWatch,
) -> Result<Figures, String> {
    let stats = policy.as_ref().map(|p| Arc::clone(&p.stats));
    let (sessions, triton) = open_sessions(options, backends, n, None, policy)?;
    watch.servers.extend(triton.servers_used());
    // Only the ticks' calls count (not those the sessions made as they opened).
    if let Some(s) = &stats {
        s.reset();
    }
    let triton_before = watch.read();
    let start = Instant::now();
    let threads: Vec<_> = sessions
        .into_iter()
        .map(|mut session| {
            std::thread::spawn(move || {
                let mut latency = histogram();
                let mut ticks = 0u64;
                let begun = Instant::now();
                let end = session.run(&mut |event| {
                    if let WorldEvent::Tick { latency: l, .. } = event {
                        ticks += 1;
                        let _ = latency.record(l.as_micros().max(1) as u64);
                    }
                });
                (
                    end.map_err(|e| e.to_string()),
                    ticks,
                    begun.elapsed(),
                    latency,
                )
            })
        })
        .collect();
    let mut figures = Figures::default();
    let mut total = 0;
    for t in threads {
        let (end, ticks, took, latency) = t
            .join()
            .map_err(|_| "a session's thread panicked".to_string())?;
        end?;
        total += ticks;
        figures
            .fps
            .push(ticks as f64 / took.as_secs_f64().max(1e-9));
        figures
            .p50_ms
            .push(latency.value_at_quantile(0.5) as f64 / 1000.0);
        figures
            .p99_ms
            .push(latency.value_at_quantile(0.99) as f64 / 1000.0);
    }
    figures.session_ticks_per_s = total as f64 / start.elapsed().as_secs_f64().max(1e-9);
    figures.mean_batch = stats.map(|s| s.summary().mean_batch());
    figures.triton = counts_between(triton_before, watch.read());
    Ok(figures)
}

/// `n` sessions of the graph on one model cache (batched by `policy`, or
/// not), unpaced, each to run `options.frames`; `seeds` gives each its
/// seed. With them, their Triton backend (which servers they loaded
/// models from).
pub(super) fn open_sessions(
    options: &PlayersOptions,
    backends: &dyn PlayerBackends,
    n: usize,
    seeds: Option<&[u64]>,
    policy: Option<BatchPolicy>,
) -> Result<(Vec<Session<Shared>>, TritonBackend), String> {
    let remote = options.batch.remote();
    let (backend, triton) = backends.make(policy.map(|p| (p, remote)));
    let models = Arc::new(ModelCache::new(Shared(backend)));
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let session_options = SessionOptions {
            set: options.set.clone(),
            seed: seeds.and_then(|s| s.get(i).copied()).or(options.seed),
            output: options.output.clone(),
            provider: options.provider,
            backend_kind: options.backend_kind,
            missing_file_help: options.missing_file_help,
            ..SessionOptions::new(&options.file)
        };
        let frames = options.frames;
        let workers = options
            .workers
            .unwrap_or_else(|| RunConfig::default().workers);
        let pipeline = options.pipeline;
        let session = Session::open(session_options, Arc::clone(&models), move |graph| {
            Ok(WorldConfig {
                workers,
                pipeline_depth: pipeline,
                max_ticks: Some(frames.div_ceil(graph.settings.frames_per_tick as u64)),
                fps: None,
                ..WorldConfig::default()
            })
        })
        .map_err(|e| match e {
            OpenError::Graph(text) => text,
            OpenError::Usage(u) | OpenError::Runtime(u) => u,
        })?;
        sessions.push(session);
    }
    Ok((sessions, triton))
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 hour, 3 significant digits: fixed size.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
    })
}

/// N `wgraph run` processes at once; each reports its own tick loop.
pub(super) fn processes(
    options: &PlayersOptions,
    n: usize,
    scratch: &Path,
    watch: &mut TritonWatch,
) -> Result<Figures, String> {
    let exe = &options.exe;
    let triton_before = watch.read();
    let mut children = Vec::with_capacity(n);
    for i in 0..n {
        let metrics: PathBuf = scratch.join(format!("run-{n}-{i}.json"));
        let _ = std::fs::remove_file(&metrics);
        let mut cmd = std::process::Command::new(exe);
        // `--watch` without `--out` writes nothing, as the in-process worlds;
        // `--fps 0` runs as fast as it can.
        cmd.arg("run")
            .arg(&options.file)
            .args(["--watch", "--fps", "0", "--frames"])
            .arg(options.frames.to_string())
            .arg("--metrics")
            .arg(&metrics)
            .arg("--pipeline")
            .arg(options.pipeline.to_string());
        if let Some(w) = options.workers {
            cmd.arg("--workers").arg(w.to_string());
        }
        if let Some(server) = watch.reader.server_override() {
            cmd.arg("--triton-server").arg(server);
        }
        for s in &options.set {
            cmd.arg("--set").arg(s);
        }
        cmd.args(&options.run_flags)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        children.push((child, metrics));
    }
    let mut figures = Figures::default();
    let mut total = 0.0;
    let mut slowest = 0.0f64;
    let mut failure = None;
    for (child, metrics) in children {
        let output = child
            .wait_with_output()
            .map_err(|e| format!("a `wgraph run` process: {e}"))?;
        if !output.status.success() {
            failure.get_or_insert_with(|| {
                format!(
                    "a `wgraph run` process failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                )
            });
            continue;
        }
        let doc: serde_json::Value = std::fs::read_to_string(&metrics)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| {
                format!(
                    "a `wgraph run` process wrote no metrics to {}",
                    metrics.display()
                )
            })?;
        let m = &doc["metrics"];
        let ticks = m["ticks"].as_f64().unwrap_or(0.0);
        let wall = m["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        total += ticks;
        slowest = slowest.max(wall);
        figures
            .fps
            .push(m["ticks_per_second"].as_f64().unwrap_or(0.0));
        figures
            .p50_ms
            .push(m["tick"]["p50_ms"].as_f64().unwrap_or(0.0));
        figures
            .p99_ms
            .push(m["tick"]["p99_ms"].as_f64().unwrap_or(0.0));
    }
    if let Some(f) = failure {
        return Err(f);
    }
    figures.session_ticks_per_s = if slowest > 0.0 { total / slowest } else { 0.0 };
    figures.triton = counts_between(triton_before, watch.read());
    Ok(figures)
}
