//! The small subcommands (check, graph, kinds, doctor) and `bench`; `run` is
//! in `run.rs`, `new` in `new.rs`, each bigger command in a file of its own.

use crate::backends::Backends;
use crate::load::{LoadConfig, Loaded, load};
use crate::{BackendArg, BenchArgs, GraphFormat, Outcome, ProviderArg};
use std::path::{Path, PathBuf};
use wgraph_engine::describe;
use wgraph_engine::node::OutputConfig;
use wgraph_engine::params::{ParamSpec, ParamType};
use wgraph_lab::LabError;
use wgraph_lab::bench::{Baseline as LabBaseline, BenchOptions};
use wgraph_lab::load::Models;
use wgraph_lab::pybaseline::PythonSetup;

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

/// `wgraph bench FILE`: `--swap` and `--players` have commands of their
/// own; one graph is timed by [`wgraph_lab::bench`], its quality columns
/// are `wgraph eval` on the same graph.
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
        return crate::players::bench_players(args, text);
    }
    let work = std::env::temp_dir().join(format!("wgraph-bench-{}", std::process::id()));
    let baseline = match args.baseline {
        crate::Baseline::Raw => LabBaseline::Raw,
        crate::Baseline::Python => LabBaseline::Python {
            steps: args.baseline_steps,
            setup: PythonSetup {
                cache_base: wgraph_ort::runtime::cache_base(),
                onnxruntime_version: wgraph_ort::runtime::MANAGED_VERSION.into(),
                notice: Some(|line| eprintln!("{line}")),
            },
        },
    };
    let options = BenchOptions {
        file: args.file.clone(),
        frames: args.frames,
        rounds: args.rounds,
        set: args.set.clone(),
        workers: args.workers,
        pipeline: args.pipeline,
        baseline,
        work: work.clone(),
    };
    let models = lab_models(Backends::new(), args.provider, args.backend);
    let mut report = match wgraph_lab::bench::bench(&options, &models) {
        Ok(r) => r,
        Err(e) => return lab_failure(e),
    };
    if let (Some(world_seed), Some(actions)) = (args.world_seed, &args.actions) {
        match bench_quality(args, world_seed, actions, &work) {
            Ok(q) => report.quality = Some(q),
            Err(outcome) => return outcome,
        }
    }
    print!("{}", report.summary());
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&report)
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

/// The lab's [`Models`]: `backend` with `--provider`/`--backend` applied,
/// the nearest shipped graphs named for a missing file, warnings on stderr.
pub(crate) fn lab_models(
    backend: impl wgraph_engine::model::Backend + 'static,
    provider: Option<ProviderArg>,
    backend_kind: Option<BackendArg>,
) -> Models {
    Models {
        provider: provider.map(Into::into),
        backend_kind: backend_kind.map(Into::into),
        missing_file_help: Some(crate::load::missing_graph_help),
        warnings: Some(|text| eprint!("{text}")),
        ..Models::new(std::sync::Arc::new(backend))
    }
}

/// Prints why a lab entry point failed, as the CLI prints errors; its exit code.
pub(crate) fn lab_failure(error: LabError) -> Outcome {
    match error {
        LabError::Graph(text) => {
            eprint!("{text}");
            Outcome::GraphErrors
        }
        LabError::Usage(message) => usage(&message),
        other => {
            eprintln!(
                "error: {}",
                wgraph_grammar::diagnostic::escape_controls(&other.to_string())
            );
            Outcome::RuntimeFailure
        }
    }
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

/// [`bench_quality`] with these `--set` flags: the lab's evaluation, in memory.
pub(crate) fn bench_quality_with(
    args: &BenchArgs,
    set: &[String],
    world_seed: u64,
    actions: &Path,
    _work: &Path,
) -> Result<serde_json::Value, Outcome> {
    crate::eval::quality(&wgraph_lab::eval::EvalOptions {
        file: args.file.clone(),
        world_seed,
        actions: actions.to_path_buf(),
        frames: args.frames,
        set: set.to_vec(),
        ..Default::default()
    })
}
