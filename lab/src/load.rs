//! Loading graphs for the lab: [`Models`] (which backend loads the models,
//! on which execution provider) plus a [`LoadRequest`] (the changes one
//! measurement makes) through the engine's front door, diagnostics
//! rendered as `wgraph check` prints them and warnings passed to a sink.

use crate::LabError;
use std::path::Path;
use std::sync::Arc;
use wgraph_engine::load::{LoadOptions, Loaded, PathOverride};
use wgraph_engine::model::{Backend, BackendKind, Provider};
use wgraph_engine::node::OutputConfig;
use wgraph_grammar::{FileLoader, FsLoader};
use wgraph_session::{Failure, MissingFileHelp};

/// How a lab run loads models: chosen once by the caller (the binary's
/// backend router, with `--provider`/`--backend` applied to every model).
#[derive(Clone)]
pub struct Models {
    /// Loads every model the graphs declare.
    pub backend: Arc<dyn Backend>,
    /// Replaces every model's execution provider.
    pub provider: Option<Provider>,
    /// Replaces every model's backend.
    pub backend_kind: Option<BackendKind>,
    /// Help for a graph file that is not there (names the nearest shipped graphs).
    pub missing_file_help: Option<MissingFileHelp>,
    /// Where a loaded graph's rendered warnings go (the binary prints them).
    pub warnings: Option<fn(&str)>,
}

impl Models {
    /// `backend` with the graphs' own providers and backends, no help, no warnings.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Models {
            backend,
            provider: None,
            backend_kind: None,
            missing_file_help: None,
            warnings: None,
        }
    }
}

/// The changes one load makes to a graph file.
#[derive(Debug, Clone, Default)]
pub struct LoadRequest {
    /// `NODE.PARAM=VALUE` and `NODE=KIND` changes, in order.
    pub set: Vec<String>,
    /// The graph's seed, replaced.
    pub seed: Option<u64>,
    /// Path parameters set from outside (`--actions FILE`, eval's start frame).
    pub paths: Vec<PathOverride>,
    /// Where the graph's sinks write.
    pub output: OutputConfig,
}

/// Loads `path` from disk with `request`'s changes and `models`' backend.
pub fn load(path: &Path, request: &LoadRequest, models: &Models) -> Result<Loaded, LabError> {
    load_with(path, request, models, &FsLoader)
}

/// [`load`] reading graph files through `files` (disk, or a recording's texts).
pub fn load_with(
    path: &Path,
    request: &LoadRequest,
    models: &Models,
    files: &dyn FileLoader,
) -> Result<Loaded, LabError> {
    load_rendered(path, request, models, models.backend.as_ref(), files).map_err(LabError::from)
}

/// The one load under every other: `request` and `models`' overrides, the
/// models loaded through `backend` (`models.backend` or a wrapper of it,
/// e.g. bench's recording backend), graph files read through `files`;
/// warnings go to `models.warnings`, failures come back as rendered text.
pub fn load_rendered(
    path: &Path,
    request: &LoadRequest,
    models: &Models,
    backend: &dyn Backend,
    files: &dyn FileLoader,
) -> Result<Loaded, Failure> {
    let registry = wgraph_nodes::registry();
    let options = LoadOptions {
        registry: &registry,
        set: request.set.clone(),
        changes: Vec::new(),
        seed: request.seed,
        paths: request.paths.clone(),
        output: request.output.clone(),
        provider: models.provider,
        backend_kind: models.backend_kind,
        backend: Some(backend),
    };
    let loaded = wgraph_session::load_rendered(path, &options, files, models.missing_file_help)?;
    if let Some(sink) = models.warnings {
        let text = wgraph_session::rendered_warnings(&loaded);
        if !text.is_empty() {
            sink(&text);
        }
    }
    Ok(loaded)
}
