//! Where a session's graphs come from: [`FileSource`], the
//! [`GraphSource`] that builds a graph file with the command line's changes
//! and a live world's parameter changes, through the engine's front door
//! ([`wgraph_engine::load::load`]) and a [`ModelCache`] (a rebuild reloads
//! only models whose files or options changed).
//!
//! A live parameter change is first made to the one node it names
//! ([`GraphSource::retune`], the engine's [`retune_loaded`]): the value is
//! parsed into the last build's sources and checked against the node's
//! kind; nothing is parsed again, no model looked up. A change that would
//! rewire the graph rebuilds it.
//!
//! [`load_rendered`] is the front door with its diagnostics rendered as
//! `wgraph check` prints them ([`Failure::Errors`]); [`provenance`] is what
//! a recording keeps of one build.

use serde_json::{Value as Json, json};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wgraph_engine::build::RetuneError;
use wgraph_engine::graph::Graph;
use wgraph_engine::load::{LoadError, LoadOptions, Loaded, PathOverride, retune_loaded};
use wgraph_engine::model::{Backend, BackendKind, ModelCache, Provider, file_digest};
use wgraph_engine::node::OutputConfig;
use wgraph_engine::world::{Built, GraphSource, ParamSet};
use wgraph_grammar::diagnostic::{Diagnostics, render};
use wgraph_grammar::source::SourceMap;
use wgraph_grammar::{FileLoader, FsLoader};

/// Why a graph could not be loaded, ready to print.
#[derive(Debug)]
pub enum Failure {
    /// Graph errors, rendered exactly as `wgraph check` prints them (with
    /// the `FILE: N errors` line).
    Errors(String),
    /// A flag that is not what it should be.
    Usage(String),
}

/// Where a session's warnings go (the program prints them).
pub type Notices = Arc<dyn Fn(&str) + Send + Sync>;

/// Adds help to the lone error of a graph file that is not there (the CLI
/// names the shipped graphs closest to it).
pub type MissingFileHelp = fn(&Path) -> String;

/// [`wgraph_engine::load::load`] with its diagnostics rendered for a
/// terminal (colour when stderr is one).
pub fn load_rendered(
    path: &Path,
    options: &LoadOptions<'_>,
    loader: &dyn FileLoader,
    missing_file_help: Option<MissingFileHelp>,
) -> Result<Loaded, Failure> {
    match wgraph_engine::load::load(path, options, loader) {
        Ok(loaded) => Ok(loaded),
        Err(LoadError::Usage(u)) => Err(Failure::Usage(u)),
        Err(LoadError::Graph {
            sources,
            mut diagnostics,
            ..
        }) => {
            if let Some(help) = missing_file_help
                && !path.exists()
                && let [only] = diagnostics.0.as_mut_slice()
                && only.help.is_none()
            {
                only.help = Some(help(path));
            }
            Err(Failure::Errors(rendered_errors(
                path,
                &sources,
                &diagnostics,
            )))
        }
    }
}

/// Diagnostics as `wgraph check` prints them: each drawn (colour when
/// stderr is a terminal), then the `FILE: N errors` line.
fn rendered_errors(path: &Path, sources: &SourceMap, diagnostics: &Diagnostics) -> String {
    let mut text = render(sources, diagnostics, std::io::stderr().is_terminal());
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    text.push_str(&format!(
        "{}: {errors} error{}\n",
        path.display(),
        if errors == 1 { "" } else { "s" }
    ));
    text
}

/// A loaded graph's warnings, rendered (empty when it has none).
pub fn rendered_warnings(loaded: &Loaded) -> String {
    if loaded.graph.warnings.is_empty() {
        return String::new();
    }
    render(
        &loaded.sources,
        &loaded.graph.warnings,
        std::io::stderr().is_terminal(),
    )
}

/// Builds a graph file with the command line's flags and a live world's
/// parameter changes (see the module docs).
pub struct FileSource<B: Backend> {
    pub file: PathBuf,
    /// `--set` flags: `NODE.PARAM=VALUE`, `NODE=KIND`.
    pub set: Vec<String>,
    pub seed: Option<u64>,
    pub paths: Vec<PathOverride>,
    pub output: OutputConfig,
    pub provider: Option<Provider>,
    /// Replaces every model's backend.
    pub backend_kind: Option<BackendKind>,
    pub models: Arc<ModelCache<B>>,
    /// Note what each build was made from (`--record`).
    pub record: bool,
    /// Help for a graph file that is not there.
    pub missing_file_help: Option<MissingFileHelp>,
    /// Where the warnings of each build go.
    pub notices: Notices,
    /// What the last build left for [`GraphSource::retune`].
    pub(crate) last: Mutex<Option<LastBuild>>,
}

/// What a live parameter change made without a rebuild needs of the build
/// before it: its sources (the new value's errors render against them),
/// its files, and the changes it was made with.
pub(crate) struct LastBuild {
    sources: SourceMap,
    files: Vec<PathBuf>,
    /// The live changes (`NODE.PARAM=VALUE`) on top of `--set`.
    extra: Vec<String>,
    /// Values parsed into `sources` since the last full build; past
    /// [`MAX_RETUNES`] the next change rebuilds (the sources stay bounded).
    retunes: usize,
}

/// Live changes made in place between two full builds (each adds its
/// value's text to the sources).
const MAX_RETUNES: usize = 256;

impl<B: Backend> FileSource<B> {
    fn load(&self, changes: &[ParamSet]) -> Result<Loaded, Failure> {
        let registry = wgraph_nodes::registry();
        let options = LoadOptions {
            registry: &registry,
            set: self.set.clone(),
            changes: changes.to_vec(),
            seed: self.seed,
            paths: self.paths.clone(),
            output: self.output.clone(),
            provider: self.provider,
            backend_kind: self.backend_kind,
            backend: Some(&*self.models as &dyn Backend),
        };
        load_rendered(&self.file, &options, &FsLoader, self.missing_file_help)
    }

    /// The first build, its warnings to `notices`; errors come back
    /// rendered.
    pub fn build_first(&self) -> Result<Built, Failure> {
        let loaded = self.load(&[])?;
        self.warn(&loaded);
        self.models.retain(&loaded.graph.model_table);
        Ok(self.built(loaded, &[]))
    }

    fn warn(&self, loaded: &Loaded) {
        let text = rendered_warnings(loaded);
        if !text.is_empty() {
            (self.notices)(text.trim_end());
        }
    }

    fn built(&self, loaded: Loaded, extra: &[String]) -> Built {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(LastBuild {
            sources: loaded.sources.clone(),
            files: loaded.files.clone(),
            extra: extra.to_vec(),
            retunes: 0,
        });
        let provenance = self.record.then(|| {
            let sets: Vec<String> = self.set.iter().chain(extra).cloned().collect();
            Arc::new(provenance(&sets, &loaded.sources, &loaded.files))
        });
        // Model files are hashed only when their stamps changed: a
        // parameter edit hashes nothing, and the reload line says so by
        // having no `models hashed` phase.
        let hashed = self.models.take_hashed();
        let mut phases = vec![("parse", loaded.parse), ("check+build", loaded.build)];
        if !hashed.is_empty() {
            phases.push(("models hashed", hashed.iter().map(|h| h.took).sum()));
        }
        phases.push(("models loaded", self.models.take_load_time()));
        Built {
            phases,
            graph: loaded.graph,
            files: loaded.files,
            provenance,
        }
    }
}

impl<B: Backend> GraphSource for FileSource<B> {
    fn build(&self, sets: &[ParamSet]) -> Result<Built, String> {
        // As a recording keeps them (`--set` syntax).
        let extra: Vec<String> = sets
            .iter()
            .map(|s| format!("{}.{}={}", s.node, s.param, s.value))
            .collect();
        // Model load and hash times count from here (not failed builds before).
        let _ = self.models.take_load_time();
        let _ = self.models.take_hashed();
        match self.load(sets) {
            Ok(loaded) => {
                self.warn(&loaded);
                // The cache keeps only what the new graph uses (bounded).
                self.models.retain(&loaded.graph.model_table);
                for h in self.models.peek_hashed() {
                    (self.notices)(&format!(
                        "note: model {} hashed again ({:.1} MiB in {:.0} ms): its files' size, mtime or inode changed, or they were written just before it was last hashed",
                        wgraph_grammar::diagnostic::escape_controls(&h.path.display().to_string()),
                        h.bytes as f64 / (1024.0 * 1024.0),
                        h.took.as_secs_f64() * 1e3
                    ));
                }
                Ok(self.built(loaded, &extra))
            }
            Err(Failure::Errors(text)) => Err(text),
            Err(Failure::Usage(u)) => Err(format!("error: {u}\n")),
        }
    }

    fn retune(&self, current: &Graph, set: &ParamSet) -> Option<Result<Built, String>> {
        let mut guard = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let last = guard.as_mut().filter(|l| l.retunes < MAX_RETUNES)?;
        let registry = wgraph_nodes::registry();
        let mut options = LoadOptions::new(&registry);
        options.output = self.output.clone();
        let started = Instant::now();
        let mut sources = last.sources.clone();
        let graph = match retune_loaded(
            current,
            &mut sources,
            &options,
            &set.node,
            &set.param,
            &set.value,
        ) {
            Ok(graph) => graph,
            Err(RetuneError::NeedsRebuild(_)) => return None,
            Err(RetuneError::Graph(diagnostics)) => {
                return Some(Err(rendered_errors(&self.file, &sources, &diagnostics)));
            }
        };
        let took = started.elapsed();
        last.sources = sources;
        last.retunes += 1;
        let prefix = format!("{}.{}=", set.node, set.param);
        last.extra.retain(|s| !s.starts_with(&prefix));
        last.extra.push(format!("{prefix}{}", set.value));
        let provenance = self.record.then(|| {
            let sets: Vec<String> = self.set.iter().chain(&last.extra).cloned().collect();
            Arc::new(provenance(&sets, &last.sources, &last.files))
        });
        Some(Ok(Built {
            graph,
            files: last.files.clone(),
            provenance,
            phases: vec![("node rebuilt", took)],
        }))
    }
}

/// Hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a recording needs of one build: the parameter changes, every graph
/// text, and the digest of every other file.
pub fn provenance(sets: &[String], sources: &SourceMap, files: &[PathBuf]) -> Json {
    let texts: serde_json::Map<String, Json> = sources
        .files()
        .filter_map(|(_, f)| {
            let p = f.path.as_ref()?;
            Some((p.display().to_string(), json!(f.text)))
        })
        .collect();
    let digests: serde_json::Map<String, Json> = files
        .iter()
        .filter(|p| !texts.contains_key(&p.display().to_string()))
        .filter_map(|p| Some((p.display().to_string(), json!(hex(&file_digest(p).ok()?)))))
        .collect();
    json!({ "sets": sets, "sources": texts, "files": digests })
}
