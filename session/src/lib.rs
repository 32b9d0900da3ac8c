//! wgraph's live sessions: one graph file become a running world, the way
//! `run`, `play`, `replay` and `serve` (one world or one per player) all
//! open one.
//!
//! The main types:
//!
//! - [`Session`] — a [`World`] with where its graphs come from and who
//!   watches its files. [`Session::open`] loads the graph through the
//!   engine's front door, lets the caller turn it into a [`WorldConfig`]
//!   (the fps, the late-tick policy: they depend on the graph), builds the
//!   world and starts the file watcher; [`Session::run`] runs it, following
//!   each reload with the watcher.
//! - [`SessionOptions`] — the graph file and everything the command line
//!   changes about it (sets, seed, paths, outputs, provider, backend), and
//!   whether the session reloads (`watch`) or records its builds.
//! - [`FileSource`] (module `source`) — the [`GraphSource`] a world
//!   rebuilds through: a graph file with its flags and live parameter
//!   changes, models from a [`ModelCache`].
//! - [`Watcher`] (module `watch`) — notify, debounced, watching the
//!   directories of every file a graph read, so rename-saves are seen.
//! - [`parse_events`] and [`late_policy`] (module `events`) — `--events`
//!   files and the `on_late`/`degrade` policy.
//! - [`replay`] — `Recorder` (`--record`) and `Replay` (`wgraph replay`: a
//!   recording's graph texts and inputs, frame for frame).
//! - [`outputs`] (what a run or a live world may write), [`checks`] (a
//!   run's flags against its graph: `--events`, short action files,
//!   `RunSpan`), [`state_file`] (`--load-state`/`--save-state` files),
//!   [`suggest`] (the nearest shipped graphs for a file that is not there),
//!   [`metrics`] (`wgraph run --metrics`'s document),
//!   [`rss`] (a bounded resident-memory series), [`view`] (a world on its
//!   own thread for a front end that draws its own frames), [`terminal`]
//!   (frames as terminal bytes and keys held, for `wgraph play`).
//!
//! The session prints nothing: warnings of rebuilds and watcher errors go
//! to [`SessionOptions::notices`]; errors come back as [`OpenError`]s, their
//! text ready to print.

pub mod checks;
mod events;
pub mod metrics;
pub mod outputs;
pub mod replay;
pub mod rss;
mod source;
pub mod state_file;
pub mod suggest;
pub mod terminal;
pub mod view;
mod watch;

pub use events::{late_policy, parse_events};
pub use source::{
    Failure, FileSource, MissingFileHelp, Notices, hex, load_rendered, provenance,
    rendered_warnings,
};
pub use watch::Watcher;

use serde_json::Value as Json;
use std::path::PathBuf;
use std::sync::Arc;
use wgraph_engine::graph::Graph;
use wgraph_engine::load::PathOverride;
use wgraph_engine::model::{Backend, BackendKind, ModelCache, Provider};
use wgraph_engine::node::OutputConfig;
use wgraph_engine::schedule::NodeFailure;
use wgraph_engine::world::{GraphSource, World, WorldConfig, WorldEnd, WorldEvent, WorldHandle};

/// What to open (see the crate docs).
#[derive(Clone)]
pub struct SessionOptions {
    pub file: PathBuf,
    /// `--set` flags: `NODE.PARAM=VALUE`, `NODE=KIND`.
    pub set: Vec<String>,
    pub seed: Option<u64>,
    /// Path parameters from the command line (`--actions FILE`).
    pub paths: Vec<PathOverride>,
    pub output: OutputConfig,
    pub provider: Option<Provider>,
    pub backend_kind: Option<BackendKind>,
    /// Reload when the graph's files change.
    pub watch: bool,
    /// The world takes parameter changes (a front end's prompts, scripted
    /// sets) even without `watch`. A world with degrade settings always does.
    pub rebuilds: bool,
    /// Keep what each build was made from (`--record`).
    pub record: bool,
    /// Help for a graph file that is not there.
    pub missing_file_help: Option<MissingFileHelp>,
    /// Where warnings of rebuilds and watcher errors go.
    pub notices: Notices,
}

impl SessionOptions {
    /// `file` as written, nothing changed, no reloads; notices dropped.
    pub fn new(file: impl Into<PathBuf>) -> SessionOptions {
        SessionOptions {
            file: file.into(),
            set: Vec::new(),
            seed: None,
            paths: Vec::new(),
            output: OutputConfig::default(),
            provider: None,
            backend_kind: None,
            watch: false,
            rebuilds: false,
            record: false,
            missing_file_help: None,
            notices: Arc::new(|_: &str| {}),
        }
    }
}

/// Why a session did not open; the text is ready to print.
#[derive(Debug)]
pub enum OpenError {
    /// The graph has errors (rendered, with the `FILE: N errors` line).
    Graph(String),
    /// A flag, or the world configuration the caller made of the graph, is
    /// not what it should be.
    Usage(String),
    /// The world or the file watcher could not start.
    Runtime(String),
}

/// A live world, where its graphs come from, and who watches its files.
pub struct Session<B: Backend> {
    pub world: World,
    /// Every file that graph read.
    pub files: Vec<PathBuf>,
    /// What the first build was made from (with `record`).
    pub provenance: Option<Arc<Json>>,
    pub source: Arc<FileSource<B>>,
    watcher: Option<Watcher>,
    notices: Notices,
}

impl<B: Backend + 'static> Session<B> {
    /// Loads `options.file`, builds its world with the configuration
    /// `configure` makes of the graph, and starts watching its files (with
    /// `options.watch`).
    pub fn open(
        options: SessionOptions,
        models: Arc<ModelCache<B>>,
        configure: impl FnOnce(&Graph) -> Result<WorldConfig, String>,
    ) -> Result<Session<B>, OpenError> {
        let source = Arc::new(FileSource {
            file: options.file.clone(),
            set: options.set.clone(),
            seed: options.seed,
            paths: options.paths.clone(),
            output: options.output.clone(),
            provider: options.provider,
            backend_kind: options.backend_kind,
            models,
            record: options.record,
            missing_file_help: options.missing_file_help,
            notices: Arc::clone(&options.notices),
            last: Default::default(),
        });
        let built = source.build_first().map_err(|f| match f {
            Failure::Errors(text) => OpenError::Graph(text),
            Failure::Usage(u) => OpenError::Usage(u),
        })?;
        let config = configure(&built.graph).map_err(OpenError::Usage)?;
        let rebuilds = options.watch || options.rebuilds || !config.degrade.is_empty();
        let graph = Arc::new(built.graph);
        let world = World::new(
            graph,
            rebuilds.then(|| Arc::clone(&source) as Arc<dyn GraphSource>),
            Vec::new(),
            config,
        )
        .map_err(|e| OpenError::Runtime(e.to_string()))?;
        let watcher = if options.watch {
            Some(Watcher::start(world.handle(), &built.files).map_err(OpenError::Runtime)?)
        } else {
            None
        };
        // The world holds the only reference to its graph: once a reload
        // commits, the old graph and its model sessions are released.
        Ok(Session {
            world,
            files: built.files,
            provenance: built.provenance,
            source,
            watcher,
            notices: options.notices,
        })
    }

    /// The graph running now (a reload replaces it; the session keeps no
    /// other, so an old graph's models are released when a reload commits).
    pub fn graph(&self) -> &Arc<Graph> {
        self.world.graph()
    }

    /// The world's handle (keys, parameter changes, stop).
    pub fn handle(&self) -> WorldHandle {
        self.world.handle()
    }

    /// True when the session reloads as its files change.
    pub fn watching(&self) -> bool {
        self.watcher.is_some()
    }

    /// Runs the world until it ends (see [`World::run`]), calling
    /// `observer` with every event; after each reload the watcher follows
    /// the new graph's files.
    pub fn run(&mut self, observer: &mut dyn FnMut(&WorldEvent)) -> Result<WorldEnd, NodeFailure> {
        let watcher = &mut self.watcher;
        let notices = &self.notices;
        self.world.run(&mut |event| {
            observer(event);
            if let WorldEvent::Reloaded(info) = event
                && let Some(w) = watcher.as_mut()
                && let Err(e) = w.watch(&info.files)
            {
                notices(&format!("warning: {e}"));
            }
        })
    }
}
