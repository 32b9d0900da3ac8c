//! Loading a graph file into a checked [`Graph`] through the engine's front
//! door ([`wgraph_engine::load`]), rendering any diagnostics for a terminal
//! and suggesting the nearest shipped graph for a file that is not there.

use std::path::Path;
use wgraph_engine::graph::Graph;
use wgraph_engine::load::LoadOptions;
pub use wgraph_engine::load::PathOverride;
use wgraph_engine::model::{Backend, BackendKind, Provider};
use wgraph_engine::node::OutputConfig;
use wgraph_grammar::{FileLoader, FsLoader};

/// The ONNX Runtime backend as the CLI uses it: work that takes long at
/// load time (a TensorRT engine build) is announced on stderr before it
/// starts.
pub fn ort_backend() -> wgraph_ort::OrtBackend {
    wgraph_ort::OrtBackend::new().with_notices(std::sync::Arc::new(|message: &str| {
        eprintln!(
            "note: {}",
            wgraph_grammar::diagnostic::escape_controls(message)
        );
    }))
}

/// This build's backends (`wgraph_backends`) as the CLI uses them, with
/// [`ort_backend`]'s notices.
pub fn backends() -> wgraph_backends::Backends {
    wgraph_backends::Backends::new(ort_backend())
}

/// What to load, besides the file (the CLI's side of
/// [`LoadOptions`]: the node kinds are always wgraph's own).
pub struct LoadConfig<'a> {
    pub set: &'a [String],
    pub seed: Option<u64>,
    /// Path parameters set from the command line (`--actions FILE`, eval's start frame).
    pub paths: Vec<PathOverride>,
    pub output: OutputConfig,
    /// Replaces every model's execution provider.
    pub provider: Option<Provider>,
    /// Replaces every model's backend.
    pub backend_kind: Option<BackendKind>,
    /// Loads the graph's models.
    pub backend: &'a dyn Backend,
}

/// The outcome of loading: the graph, or diagnostics (already rendered to stderr).
pub enum Loaded {
    Graph(std::sync::Arc<Graph>),
    Errors,
    /// A flag that is not what it should be (the message).
    Usage(String),
}

/// A graph loaded without printing: the graph, its sources (for rendering
/// warnings) and every file it read.
pub type Quiet = wgraph_engine::load::Loaded;

/// Why [`load_quiet`] failed: graph errors rendered as `wgraph check`
/// prints them, or a usage error.
pub use wgraph_session::Failure;

/// Parses, includes, validates and builds `path`; prints diagnostics (and
/// warnings) to stderr.
pub fn load(path: &Path, config: &LoadConfig<'_>) -> Loaded {
    match load_quiet(path, config, &[], &FsLoader) {
        Ok(q) => {
            print_warnings(&q);
            Loaded::Graph(std::sync::Arc::new(q.graph))
        }
        Err(Failure::Errors(text)) => {
            eprint!("{text}");
            Loaded::Errors
        }
        Err(Failure::Usage(u)) => Loaded::Usage(u),
    }
}

/// Prints a loaded graph's warnings to stderr.
pub fn print_warnings(q: &Quiet) {
    eprint!("{}", wgraph_session::rendered_warnings(q));
}

/// [`load`] without printing; `extra` are more `NODE.PARAM=VALUE` changes
/// applied after `config.set`; graph files are read through `loader` (disk,
/// or a recording's texts). The engine's front door does the work
/// ([`wgraph_session::load_rendered`] renders its diagnostics).
pub fn load_quiet(
    path: &Path,
    config: &LoadConfig<'_>,
    extra: &[String],
    loader: &dyn FileLoader,
) -> Result<Quiet, Failure> {
    let registry = wgraph_nodes::registry();
    let options = LoadOptions {
        registry: &registry,
        set: config.set.iter().chain(extra).cloned().collect(),
        changes: Vec::new(),
        seed: config.seed,
        paths: config.paths.clone(),
        output: config.output.clone(),
        provider: config.provider,
        backend_kind: config.backend_kind,
        backend: Some(config.backend),
    };
    wgraph_session::load_rendered(path, &options, loader, Some(missing_graph_help))
}

/// The help for a graph file that does not exist: the nearest shipped
/// graphs (`graphs/`, `examples/` here and in wgraph's source tree), else
/// where they are and how to start a new one.
pub fn missing_graph_help(missing: &Path) -> String {
    use wgraph_session::suggest;
    suggest::missing_graph_help(
        missing,
        &suggest::graph_dirs(Path::new(env!("CARGO_MANIFEST_DIR"))),
    )
}

/// A session's options as the CLI starts them: `file`, the nearest shipped
/// graphs named when it is not there, warnings printed to stderr.
pub fn session_options(file: &Path) -> wgraph_session::SessionOptions {
    wgraph_session::SessionOptions {
        missing_file_help: Some(missing_graph_help),
        notices: std::sync::Arc::new(|line: &str| eprintln!("{line}")),
        ..wgraph_session::SessionOptions::new(file)
    }
}

/// A model cache on this build's backends: one per graph, so a cache keeps
/// only what its graph uses (the sessions of one graph share it, and so
/// its loaded weights).
pub fn model_cache() -> std::sync::Arc<wgraph_engine::model::ModelCache<wgraph_backends::Backends>>
{
    std::sync::Arc::new(wgraph_engine::model::ModelCache::new(backends()))
}

/// Opens a session with `models`, printing what went wrong; on failure,
/// the exit code.
pub fn open_session(
    options: wgraph_session::SessionOptions,
    models: std::sync::Arc<wgraph_engine::model::ModelCache<wgraph_backends::Backends>>,
    configure: impl FnOnce(&Graph) -> Result<wgraph_engine::world::WorldConfig, String>,
) -> Result<wgraph_session::Session<wgraph_backends::Backends>, crate::Outcome> {
    use wgraph_session::OpenError;
    wgraph_session::Session::open(options, models, configure).map_err(|e| match e {
        OpenError::Graph(text) => {
            eprint!("{text}");
            crate::Outcome::GraphErrors
        }
        // A flag may quote the user's text: shown, never acted on.
        OpenError::Usage(u) => {
            eprintln!("error: {}", wgraph_grammar::diagnostic::escape_controls(&u));
            crate::Outcome::Usage
        }
        OpenError::Runtime(e) => {
            eprintln!("error: {}", wgraph_grammar::diagnostic::escape_controls(&e));
            crate::Outcome::RuntimeFailure
        }
    })
}
