//! The small subcommands (check, graph, kinds, doctor) and what the
//! commands share of the lab (`lab_models`, `lab_failure`); each bigger
//! command is in a file of its own.

use crate::Outcome;
use crate::flags::{ModelFlags, SetFlags};
use crate::load::{LoadConfig, Loaded, load};
use clap::ValueEnum;
use std::path::PathBuf;
use wgraph_engine::describe;
use wgraph_engine::node::OutputConfig;
use wgraph_lab::LabError;
use wgraph_lab::load::Models;

pub(crate) fn usage(message: &str) -> Outcome {
    eprintln!(
        "error: {}",
        wgraph_grammar::diagnostic::escape_controls(message)
    );
    Outcome::Usage
}

/// `wgraph check`'s flags.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelFlags,
}

/// `wgraph graph`'s flags.
#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    /// The graph file (`.world`).
    file: PathBuf,
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    format: GraphFormat,
    #[command(flatten)]
    params: SetFlags,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphFormat {
    Dot,
    Json,
    Mermaid,
}

/// `wgraph check FILE...`
pub fn check(args: &CheckArgs) -> Outcome {
    let mut outcome = Outcome::Ok;
    // A model on a backend this build lacks is checked with ONNX Runtime and
    // noted once (see `CheckBackends`); `--backend wonnx` asked for it
    // explicitly and stays an error.
    let fallback = wgraph_backends::CheckBackends::new(crate::load::backends());
    let plain = crate::load::backends();
    let backend: &dyn wgraph_engine::model::Backend = match args.model.backend {
        Some(_) => &plain,
        None => &fallback,
    };
    for file in &args.files {
        let config = LoadConfig {
            set: &[],
            seed: None,
            paths: Vec::new(),
            output: OutputConfig::default(),
            provider: args.model.provider(),
            backend_kind: args.model.backend_kind(),
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
                        wgraph_backends::feature_note(feature)
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
pub fn graph(args: &GraphArgs) -> Outcome {
    let backend = crate::load::backends();
    let config = LoadConfig {
        set: &args.params.set,
        seed: None,
        paths: Vec::new(),
        output: OutputConfig::default(),
        provider: None,
        backend_kind: None,
        backend: &backend,
    };
    let graph = match load(&args.file, &config) {
        Loaded::Graph(g) => g,
        Loaded::Errors => return Outcome::GraphErrors,
        Loaded::Usage(u) => return usage(&u),
    };
    let text = match args.format {
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
    let Some(name) = kind else {
        print!("{}", describe::kinds_list(&registry));
        return Outcome::Ok;
    };
    let Some(k) = registry.get(name) else {
        let hint = wgraph_grammar::diagnostic::did_you_mean(name, registry.names())
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        return usage(&format!("unknown node kind `{name}`{hint}"));
    };
    let ports = wgraph_nodes::ports::default_ports(k.as_ref());
    let ports = ports.as_ref().map(|p| describe::KindPorts {
        inputs: &p.inputs,
        outputs: &p.outputs,
        calls: &p.calls,
    });
    print!("{}", describe::kind_help(k.as_ref(), ports));
    Outcome::Ok
}

/// `wgraph doctor`: exits 3 when no ONNX Runtime is usable, so scripts can tell.
pub fn doctor(json: bool) -> Outcome {
    let report = wgraph_ort::doctor();
    let outcome = if report.runtime.is_ok() {
        Outcome::Ok
    } else {
        Outcome::RuntimeFailure
    };
    let (wonnx_text, wonnx_json) = wgraph_backends::wonnx_report();
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

/// The lab's [`Models`]: `backend` with `--provider`/`--backend` applied,
/// the nearest shipped graphs named for a missing file, warnings on stderr.
pub(crate) fn lab_models(
    backend: impl wgraph_engine::model::Backend + 'static,
    flags: ModelFlags,
) -> Models {
    Models {
        provider: flags.provider(),
        backend_kind: flags.backend_kind(),
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
