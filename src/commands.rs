//! The small subcommands (check, graph, kinds, doctor) and `bench`; `run` is
//! in `run.rs`, `new` in `new.rs`, each bigger command in a file of its own.

use crate::backends::Backends;
use crate::bench::RecordingBackend;
use crate::load::{LoadConfig, Loaded, load};
use crate::{BackendArg, BenchArgs, GraphFormat, Outcome, ProviderArg};
use std::path::{Path, PathBuf};
use wgraph_engine::describe;
use wgraph_engine::node::{DisplayTarget, OutputConfig};
use wgraph_engine::params::{ParamSpec, ParamType};
use wgraph_engine::schedule::{RunConfig, Runner};

pub(crate) fn usage(message: &str) -> Outcome {
    eprintln!(
        "error: {}",
        wgraph_grammar::diagnostic::escape_controls(message)
    );
    Outcome::Usage
}

/// `wgraph check FILE...`
pub fn check(
    files: &[PathBuf],
    provider: Option<ProviderArg>,
    backend_kind: Option<BackendArg>,
) -> Outcome {
    let mut outcome = Outcome::Ok;
    // A model on a backend this build lacks is checked with ONNX Runtime and
    // noted once (see `CheckBackends`); `--backend wonnx` asked for it
    // explicitly and stays an error.
    let fallback = crate::backends::CheckBackends::new();
    let plain = Backends::new();
    let backend: &dyn wgraph_engine::model::Backend = match backend_kind {
        Some(_) => &plain,
        None => &fallback,
    };
    for file in files {
        let config = LoadConfig {
            set: &[],
            seed: None,
            paths: Vec::new(),
            output: OutputConfig::default(),
            provider: provider.map(Into::into),
            backend_kind: backend_kind.map(Into::into),
            backend,
        };
        let loaded = load(file, &config);
        let missing = fallback.take_missing();
        match loaded {
            Loaded::Graph(graph) => {
                for feature in &missing {
                    eprintln!(
                        "note: {}: {}",
                        file.display(),
                        crate::backends::feature_note(feature)
                    );
                }
                println!(
                    "{}: ok ({} nodes, {} edges{})",
                    file.display(),
                    graph.nodes.len(),
                    graph.edges.len(),
                    missing
                        .iter()
                        .map(|f| format!("; needs the `{f}` feature to run"))
                        .collect::<String>()
                )
            }
            Loaded::Errors => outcome = Outcome::GraphErrors,
            Loaded::Usage(u) => return usage(&u),
        }
    }
    outcome
}

/// `wgraph graph FILE --format F`
pub fn graph(file: &Path, format: GraphFormat, set: &[String]) -> Outcome {
    let backend = Backends::new();
    let config = LoadConfig {
        set,
        seed: None,
        paths: Vec::new(),
        output: OutputConfig::default(),
        provider: None,
        backend_kind: None,
        backend: &backend,
    };
    let graph = match load(file, &config) {
        Loaded::Graph(g) => g,
        Loaded::Errors => return Outcome::GraphErrors,
        Loaded::Usage(u) => return usage(&u),
    };
    let text = match format {
        GraphFormat::Dot => describe::to_dot(&graph),
        GraphFormat::Mermaid => describe::to_mermaid(&graph),
        GraphFormat::Json => match serde_json::to_string_pretty(&describe::to_json(&graph)) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("error: cannot serialise graph: {e}");
                return Outcome::RuntimeFailure;
            }
        },
    };
    print!("{text}");
    Outcome::Ok
}

/// `wgraph kinds [KIND]`
pub fn kinds(kind: Option<&str>) -> Outcome {
    let registry = wgraph_nodes::registry();
    match kind {
        None => {
            // One column for the summaries, as wide as the longest name.
            let width = registry
                .kinds()
                .map(|k| k.name().chars().count())
                .max()
                .unwrap_or(0);
            for k in registry.kinds() {
                println!("{:<width$}  {}", k.name(), k.summary());
            }
            Outcome::Ok
        }
        Some(name) => {
            let Some(k) = registry.get(name) else {
                let hint = wgraph_grammar::diagnostic::did_you_mean(name, registry.names())
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                return usage(&format!("unknown node kind `{name}`{hint}"));
            };
            println!("{}: {}", k.name(), k.summary());
            println!("parameters:");
            if k.params().is_empty() {
                println!("  (none)");
            }
            // Columns as wide as this kind's longest name and type.
            let name_w = k.params().iter().map(|p| p.name.len()).max().unwrap_or(0);
            let rows: Vec<(&str, String, &str)> = k
                .params()
                .iter()
                .map(|p| (p.name, describe_param(p), p.doc))
                .collect();
            let type_w = rows
                .iter()
                .map(|r| r.1.chars().count())
                .max()
                .unwrap_or(0)
                .min(48);
            for (name, ty, doc) in rows {
                if ty.chars().count() > type_w {
                    // A type too long for the column: the doc on its own line,
                    // in the doc column.
                    println!("  {name:<name_w$}  {ty}");
                    println!("  {:<name_w$}  {:<type_w$}  {doc}", "", "");
                } else {
                    println!("  {name:<name_w$}  {ty:<type_w$}  {doc}");
                }
            }
            match wgraph_nodes::ports::default_ports(k.as_ref()) {
                Some(ports) => {
                    let list = |ps: &[wgraph_engine::node::PortSpec], role| -> String {
                        let names: Vec<String> = ps
                            .iter()
                            .filter(|p| p.role == role)
                            .map(|p| wgraph_grammar::diagnostic::port_syntax(&p.name))
                            .collect();
                        if names.is_empty() {
                            "(none)".into()
                        } else {
                            names.join(", ")
                        }
                    };
                    use wgraph_engine::node::PortRole;
                    println!("inputs:  {}", list(&ports.inputs, PortRole::Wired));
                    let optional = list(&ports.inputs, PortRole::Optional);
                    if optional != "(none)" {
                        println!("optional inputs: {optional}");
                    }
                    let called = list(&ports.inputs, PortRole::Call);
                    if called != "(none)" {
                        println!("from its caller: {called}");
                    }
                    for c in &ports.calls {
                        println!("calls:   @{}({})", c.param, c.args.join(", "));
                    }
                    println!("outputs: {}", list(&ports.outputs, PortRole::Wired));
                }
                None => println!(
                    "ports: set by its parameters (a model's inputs and outputs, a file's shape); \
                     `wgraph graph FILE` lists them for a graph that uses it"
                ),
            }
            Outcome::Ok
        }
    }
}

fn describe_param(p: &ParamSpec) -> String {
    let ty = match p.ty {
        ParamType::Choice(c) => c.join("|"),
        other => other.describe(),
    };
    use wgraph_engine::params::Default as D;
    match p.default {
        None => format!("{ty} (required)"),
        Some(D::Absent) => format!("{ty} (optional)"),
        Some(D::Int(i)) => format!("{ty} = {i}"),
        Some(D::Float(f)) => format!("{ty} = {f:?}"),
        Some(D::Bool(b)) => format!("{ty} = {b}"),
        Some(D::Str(s)) => format!("{ty} = {s:?}"),
        Some(D::Choice(c)) => format!("{ty} = {c}"),
    }
}

/// `wgraph doctor`: exits 3 when no ONNX Runtime is usable, so scripts can tell.
pub fn doctor(json: bool) -> Outcome {
    let report = wgraph_ort::doctor();
    let outcome = if report.runtime.is_ok() {
        Outcome::Ok
    } else {
        Outcome::RuntimeFailure
    };
    let (wonnx_text, wonnx_json) = crate::backends::wonnx_report();
    if json {
        let mut value = report.to_json();
        if let Some(object) = value.as_object_mut() {
            object.insert("wonnx".into(), wonnx_json);
            object.insert("cuda_kernels".into(), crate::kernels::status_json());
        }
        match serde_json::to_string_pretty(&value) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        }
    } else {
        let report = report.to_string();
        let newline = if report.ends_with('\n') { "" } else { "\n" };
        print!("{report}{newline}{wonnx_text}");
        println!("{}", crate::kernels::status_text());
    }
    outcome
}

/// `wgraph bench FILE --baseline raw`
pub fn bench(args: &BenchArgs) -> Outcome {
    if args.frames == 0 || args.rounds == 0 {
        return usage("--frames and --rounds must be at least 1");
    }
    if args.baseline_steps.is_some() && args.baseline != crate::Baseline::Python {
        return usage("--baseline-steps sets the Python loop's steps: it needs --baseline python");
    }
    if !args.swap.is_empty() {
        return crate::swap::bench_swap(args);
    }
    if let Some(text) = &args.players {
        return match crate::players::parse_counts(text) {
            Ok(counts) => crate::players::bench_players(args, &counts),
            Err(e) => usage(&e),
        };
    }
    if args.pipeline == 0 {
        return usage("--pipeline must be at least 1");
    }
    let out_dir = std::env::temp_dir().join(format!("wgraph-bench-{}", std::process::id()));
    let ort = Backends::new();
    let recording = RecordingBackend::new(&ort);
    let config = LoadConfig {
        set: &args.set,
        seed: None,
        paths: Vec::new(),
        output: OutputConfig {
            dir: out_dir.clone(),
            display: DisplayTarget::Discard,
            ..OutputConfig::default()
        },
        provider: args.provider.map(Into::into),
        backend_kind: args.backend.map(Into::into),
        backend: &recording,
    };
    let graph = match load(&args.file, &config) {
        Loaded::Graph(g) => g,
        Loaded::Errors => return Outcome::GraphErrors,
        Loaded::Usage(u) => return usage(&u),
    };
    let ticks = args.frames.div_ceil(graph.settings.frames_per_tick as u64);
    let run_config = RunConfig {
        ticks,
        workers: args.workers.unwrap_or_else(|| RunConfig::default().workers),
        pipeline_depth: args.pipeline,
    };
    let engine_round =
        || -> Result<(std::time::Duration, wgraph_engine::schedule::RunReport), String> {
            let mut runner =
                Runner::new(std::sync::Arc::clone(&graph)).map_err(|e| e.to_string())?;
            let start = std::time::Instant::now();
            let report = runner
                .run(&run_config, &mut |_| {})
                .map_err(|e| e.to_string())?;
            Ok((start.elapsed(), report))
        };
    let python = if args.baseline == crate::Baseline::Python {
        let prepared = crate::pybaseline::inputs(&graph).and_then(|(models, actions)| {
            let python = crate::pybaseline::python()?;
            std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
            let script = out_dir.join("yan_sim.py");
            std::fs::write(&script, crate::pybaseline::SCRIPT).map_err(|e| e.to_string())?;
            let steps = args.baseline_steps.unwrap_or_else(|| {
                graph
                    .find("sampler")
                    .and_then(|id| graph.node(id).params.int("steps").ok())
                    .unwrap_or(4) as u64
            });
            Ok((python, script, models, actions, steps))
        });
        match prepared {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::Usage;
            }
        }
    } else {
        None
    };
    let mut engine_ms = Vec::new();
    let mut raw_ms = Vec::new();
    let mut calls_per_tick = 0.0;
    let mut last_report = None;
    // Round 0 warms up (sessions, allocations) and is not timed.
    for round in 0..=args.rounds {
        recording.take();
        let (elapsed, report) = match engine_round() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                let _ = std::fs::remove_dir_all(&out_dir);
                return Outcome::RuntimeFailure;
            }
        };
        let done = report.ticks.max(1);
        let calls = recording.take();
        let baseline_ms = match &python {
            Some((python, script, models, actions, steps)) => {
                crate::pybaseline::round(python, script, models, actions.as_deref(), done, *steps)
            }
            None => recording
                .replay(&calls)
                .map(|d| d.as_secs_f64() * 1e3 / done as f64)
                .map_err(|e| format!("raw loop: {e}")),
        };
        let baseline_ms = match baseline_ms {
            Ok(ms) => ms,
            Err(e) => {
                eprintln!("error: {e}");
                let _ = std::fs::remove_dir_all(&out_dir);
                return Outcome::RuntimeFailure;
            }
        };
        if round > 0 {
            engine_ms.push(elapsed.as_secs_f64() * 1e3 / done as f64);
            raw_ms.push(baseline_ms);
            calls_per_tick = calls.len() as f64 / done as f64;
            last_report = Some(report);
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (engine, raw) = (mean(&engine_ms), mean(&raw_ms));
    let nodes = last_report.map(|r| r.metrics.report(&graph));
    let quality = match (args.world_seed, &args.actions) {
        (Some(world_seed), Some(actions)) => {
            match bench_quality(args, world_seed, actions, &out_dir) {
                Ok(q) => Some(q),
                Err(outcome) => return outcome,
            }
        }
        _ => None,
    };
    let baseline_name = if python.is_some() { "python" } else { "raw" };
    let python_steps = python.as_ref().map(|p| p.4);
    let json = serde_json::json!({
        "graph": args.file.display().to_string(),
        "baseline": baseline_name,
        "baseline_steps": python_steps,
        "ticks_per_round": ticks,
        "rounds": args.rounds,
        "workers": run_config.workers,
        "pipeline_depth": run_config.pipeline_depth,
        "model_calls_per_tick": calls_per_tick,
        "raw_ms_per_tick": raw,
        "engine_ms_per_tick": engine,
        "engine_over_raw": if raw > 0.0 { engine / raw } else { 0.0 },
        "baseline_ms_per_tick": raw,
        "engine_over_baseline": if raw > 0.0 { engine / raw } else { 0.0 },
        "engine_fps": if engine > 0.0 { 1e3 / engine } else { 0.0 },
        "raw_ms_per_tick_rounds": raw_ms,
        "engine_ms_per_tick_rounds": engine_ms,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        // Unpaced, keys are read as a tick starts and its frame is out as it
        // ends: the action-to-frame latency is the tick's latency (a paced
        // world adds the wait for the next tick; `serve --metrics` measures it).
        "action_to_frame_p50_ms": nodes.as_ref().map(|n| n.tick.p50_ms),
        "action_to_frame_p99_ms": nodes.as_ref().map(|n| n.tick.p99_ms),
        "metrics": nodes,
        "quality": quality,
    });
    if let Some(n) = &nodes {
        println!(
            "action-to-frame (key read at a tick's start, frame out at its end): p50 {:.2} ms, p99 {:.2} ms",
            n.tick.p50_ms, n.tick.p99_ms
        );
    }
    if python.is_some() {
        println!(
            "{}: engine {engine:.3} ms/tick ({:.1} fps), Python loop (onnxruntime + numpy, DDIM {} steps) {raw:.3} ms/tick ({:.1} fps); engine/python = {:.3}",
            args.file.display(),
            if engine > 0.0 { 1e3 / engine } else { 0.0 },
            python_steps.unwrap_or(0),
            if raw > 0.0 { 1e3 / raw } else { 0.0 },
            if raw > 0.0 { engine / raw } else { 0.0 },
        );
    } else {
        println!(
            "{}: engine {engine:.3} ms/tick ({:.1} fps), raw loop of the same {calls_per_tick:.0} model calls {raw:.3} ms/tick; engine/raw = {:.3}",
            args.file.display(),
            if engine > 0.0 { 1e3 / engine } else { 0.0 },
            if raw > 0.0 { engine / raw } else { 0.0 },
        );
    }
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&json)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                wgraph_engine::output::write_file(path, (s + "\n").as_bytes())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Outcome::RuntimeFailure;
        }
    }
    Outcome::Ok
}

/// The quality columns of a bench: `wgraph eval` on the same graph, settings
/// and frame count.
pub(crate) fn bench_quality(
    args: &BenchArgs,
    world_seed: u64,
    actions: &Path,
    work: &Path,
) -> Result<serde_json::Value, Outcome> {
    bench_quality_with(args, &args.set, world_seed, actions, work)
}

/// [`bench_quality`] with these `--set` flags.
pub(crate) fn bench_quality_with(
    args: &BenchArgs,
    set: &[String],
    world_seed: u64,
    actions: &Path,
    work: &Path,
) -> Result<serde_json::Value, Outcome> {
    let json = work.with_extension("quality.json");
    let eval_args = crate::EvalArgs {
        file: args.file.clone(),
        world_seed,
        theme: "dungeon".into(),
        actions: actions.to_path_buf(),
        frames: args.frames,
        json: json.clone(),
        strip: None,
        plot: None,
        idm: None,
        drift_db: 15.0,
        drift_fraction: 0.5,
        allow_training_seed: false,
        set: set.to_vec(),
        instructions: None,
        event_window: 4,
        quiet: true,
    };
    let outcome = crate::eval::eval(&eval_args);
    if outcome != Outcome::Ok {
        return Err(outcome);
    }
    let text = std::fs::read_to_string(&json).map_err(|e| {
        eprintln!("error: {e}");
        Outcome::RuntimeFailure
    })?;
    let _ = std::fs::remove_file(&json);
    serde_json::from_str(&text).map_err(|e| {
        eprintln!("error: {e}");
        Outcome::RuntimeFailure
    })
}
