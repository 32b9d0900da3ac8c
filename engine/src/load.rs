//! The front door: a graph file, with its includes and the command line's
//! changes, to a checked and built [`Graph`] — the one way every caller
//! (the CLI's commands, a live world's rebuilds, the fuzzer, tests and
//! benches) loads a graph.
//!
//! [`load`] runs the pipeline: read and parse the file and its includes
//! (through a [`FileLoader`]: disk, or a recording's texts), [`validate()`]
//! names, apply [`LoadOptions::set`] (`NODE.PARAM=VALUE` parsed as graph
//! syntax, `NODE=KIND` kind swaps) and [`PathOverride`]s (`--actions FILE`),
//! then [`build_graph`]. Errors are collected, not thrown: name errors do not
//! hide the graph's shape errors ([`LoadError::Graph`] carries every
//! diagnostic with the sources to render them); a malformed flag is a
//! [`LoadError::Usage`].
//!
//! [`Loaded`] keeps what callers need besides the graph: the sources (to
//! render warnings), every file the graph read (to watch them), and how
//! long parsing and building took.

use crate::build::{BuildOptions, KindOverride, Override, RetuneError, build_graph, retune};
use crate::graph::Graph;
use crate::model::{Backend, BackendKind, Provider};
use crate::node::OutputConfig;
use crate::registry::Registry;
use crate::world::ParamSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wgraph_grammar::ast::{self, Statement, ValueKind};
use wgraph_grammar::diagnostic::Diagnostics;
use wgraph_grammar::source::{SourceMap, Span};
use wgraph_grammar::{FileLoader, load_graph, parse_value, validate};

/// What to load, besides the file.
pub struct LoadOptions<'a> {
    /// The node kinds a graph may use.
    pub registry: &'a Registry,
    /// `NODE.PARAM=VALUE` changes and `NODE=KIND` swaps (`--set`).
    pub set: Vec<String>,
    /// A live world's parameter changes, applied after `set` (each value
    /// parsed once, as graph syntax).
    pub changes: Vec<ParamSet>,
    /// `--seed`: replaces the world's seed.
    pub seed: Option<u64>,
    /// Path parameters set from the command line (`--actions FILE`, eval's start frame).
    pub paths: Vec<PathOverride>,
    pub output: OutputConfig,
    /// Replaces every model's execution provider.
    pub provider: Option<Provider>,
    /// Replaces every model's backend.
    pub backend_kind: Option<BackendKind>,
    /// Loads the graph's models; None: a graph with models is an error.
    pub backend: Option<&'a dyn Backend>,
}

impl<'a> LoadOptions<'a> {
    /// The graph as written: no changes, no models, outputs discarded.
    pub fn new(registry: &'a Registry) -> Self {
        LoadOptions {
            registry,
            set: Vec::new(),
            changes: Vec::new(),
            seed: None,
            paths: Vec::new(),
            output: OutputConfig::default(),
            provider: None,
            backend_kind: None,
            backend: None,
        }
    }

    /// Loads models with `backend`.
    pub fn with_backend(mut self, backend: &'a dyn Backend) -> Self {
        self.backend = Some(backend);
        self
    }
}

/// A loaded graph: the graph, its sources (to render warnings) and every
/// file it read.
pub struct Loaded {
    pub graph: Graph,
    pub sources: SourceMap,
    pub files: Vec<PathBuf>,
    /// Reading and parsing the graph files, includes and flags.
    pub parse: Duration,
    /// Checking and building (models loaded and probed included).
    pub build: Duration,
}

/// Why [`load`] failed.
#[derive(Debug)]
pub enum LoadError {
    /// The graph (or a `--set` value) has errors: every one of them, sorted,
    /// with the sources they point into.
    Graph {
        sources: SourceMap,
        diagnostics: Diagnostics,
        /// The files parsed (the errors are the checker's), or not.
        parsed: bool,
    },
    /// A flag that is not what it should be (`--set` without `=`, `--actions`
    /// for a graph with no `actions` node).
    Usage(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Graph { diagnostics, .. } => {
                let errors = diagnostics.iter().filter(|d| d.is_error()).count();
                write!(f, "{errors} error{}", if errors == 1 { "" } else { "s" })
            }
            LoadError::Usage(u) => f.write_str(u),
        }
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    /// Each problem on one line (`file:line:col: message`), for tests and
    /// logs; [`wgraph_grammar::diagnostic::render`] draws them for people.
    pub fn lines(&self) -> Vec<String> {
        match self {
            LoadError::Graph {
                sources,
                diagnostics,
                ..
            } => diagnostics.iter().map(|d| d.short(sources)).collect(),
            LoadError::Usage(u) => vec![u.clone()],
        }
    }
}

/// A flag that is not `NODE.PARAM=VALUE` (inside [`load`]).
#[derive(Debug)]
struct UsageError(String);

/// Parses, includes, validates and builds `path` (see the module docs).
pub fn load(
    path: &Path,
    options: &LoadOptions<'_>,
    loader: &dyn FileLoader,
) -> Result<Loaded, LoadError> {
    let mut sources = SourceMap::new();
    let started = Instant::now();
    let mut parsed_at = None;
    let mut parsed_ok = false;
    let result = (|| -> Result<Result<Graph, Diagnostics>, UsageError> {
        let parsed = match load_graph(path, &mut sources, loader) {
            Ok(g) => g,
            Err(d) => return Ok(Err(d)),
        };
        parsed_ok = true;
        let mut diags = validate(&parsed);
        let mut overrides = Vec::new();
        let mut kind_overrides = Vec::new();
        for flag in &options.set {
            if let Some(k) = parse_kind_set(flag, &mut sources) {
                kind_overrides.push(k);
                continue;
            }
            match parse_set(flag, &mut sources) {
                Ok(Ok(o)) => overrides.push(o),
                Ok(Err(d)) => diags.extend(d),
                Err(u) => return Err(u),
            }
        }
        for change in &options.changes {
            match parse_override(&change.node, &change.param, &change.value, &mut sources) {
                Ok(o) => overrides.push(o),
                Err(d) => diags.extend(d),
            }
        }
        for p in &options.paths {
            overrides.extend(path_overrides(&parsed, p, &mut sources)?);
        }
        parsed_at = Some(started.elapsed());
        let build = BuildOptions {
            registry: options.registry,
            output: options.output.clone(),
            overrides,
            kind_overrides,
            seed: options.seed,
            backend: options.backend,
            provider: options.provider,
            backend_kind: options.backend_kind,
        };
        if !diags.has_errors() {
            return Ok(build_graph(&parsed, &sources, &build));
        }
        // Name errors (a duplicate node or model, a bad `--set`) do not hide
        // the graph's other problems: it is checked too, with the later of
        // two same-named declarations left out (the one the error points
        // at), and every error is reported in one run.
        if let Err(more) = build_graph(&without_duplicates(&parsed), &sources, &build) {
            diags.extend(more);
        }
        Ok(Err(diags))
    })();
    match result {
        Err(u) => Err(LoadError::Usage(u.0)),
        Ok(Ok(graph)) => {
            let files = files_of(&graph, &sources);
            let parse = parsed_at.unwrap_or_default();
            Ok(Loaded {
                graph,
                sources,
                files,
                parse,
                build: started.elapsed().saturating_sub(parse),
            })
        }
        Ok(Err(diags)) => Err(LoadError::Graph {
            sources,
            diagnostics: diags.sorted(),
            parsed: parsed_ok,
        }),
    }
}

/// Sets path parameter `param` of every node of kind `kind` (and name `name`, if
/// given), e.g. `--actions FILE` for `actions` nodes.
#[derive(Debug, Clone)]
pub struct PathOverride {
    pub kind: &'static str,
    pub name: Option<&'static str>,
    pub param: &'static str,
    pub path: std::path::PathBuf,
    /// Shown in messages (`--actions`).
    pub flag: &'static str,
    /// When no node matches: a usage error (true) or nothing (false).
    pub required: bool,
}

impl PathOverride {
    /// `--actions FILE`: the action file of every `actions` node.
    pub fn actions(path: &Path) -> Self {
        PathOverride {
            kind: "actions",
            name: None,
            param: "path",
            path: path.to_path_buf(),
            flag: "--actions",
            required: true,
        }
    }
}

/// `parsed` without the second and later declarations of a node or model
/// name (what [`validate`] reports as duplicates).
fn without_duplicates(parsed: &ast::Graph) -> ast::Graph {
    let mut seen = std::collections::HashSet::new();
    let mut graph = parsed.clone();
    graph.statements.retain(|s| match s {
        Statement::Node(n) => seen.insert(n.name.name.clone()),
        Statement::Model(m) => seen.insert(m.name.name.clone()),
        _ => true,
    });
    graph
}

/// Every file a graph was built from: graph files (includes too), models,
/// and the files node parameters name (images, action files, arrays).
fn files_of(graph: &Graph, sources: &SourceMap) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = sources
        .files()
        .filter_map(|(_, f)| f.path.clone())
        .collect();
    files.extend(
        graph
            .models
            .iter()
            .flat_map(|m| crate::model::model_files(&m.path)),
    );
    for n in &graph.nodes {
        for (_, v) in n.params.iter() {
            if let crate::params::ParamValue::Path(p) = v
                && p.is_file()
            {
                files.push(p.clone());
            }
        }
    }
    files.sort();
    files.dedup();
    files
}

/// `NODE=KIND` (no `.` before the `=`, an identifier after it) → a kind swap.
fn parse_kind_set(flag: &str, sources: &mut SourceMap) -> Option<KindOverride> {
    let (node, kind) = flag.split_once('=')?;
    let ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    if !ident(node) || !ident(kind) {
        return None;
    }
    let file = sources.add(format!("--set {node}"), None, kind.to_string());
    Some(KindOverride {
        node: node.to_string(),
        kind: kind.to_string(),
        span: Span::new(file, 0, kind.len()),
    })
}

/// `NODE.PARAM=VALUE` → an override whose value is parsed as graph syntax
/// (a bare word that does not parse is taken as a string).
fn parse_set(
    flag: &str,
    sources: &mut SourceMap,
) -> Result<Result<Override, Diagnostics>, UsageError> {
    let (target, text) = flag.split_once('=').ok_or_else(|| {
        UsageError(format!(
            "--set `{flag}`: expected NODE.PARAM=VALUE (or NODE=KIND to swap a node's kind)"
        ))
    })?;
    let (node, param) = target
        .split_once('.')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        .ok_or_else(|| {
            UsageError(format!(
                "--set `{flag}`: expected NODE.PARAM=VALUE, e.g. sampler.steps=8, or NODE=KIND, e.g. sampler=euler"
            ))
        })?;
    Ok(parse_override(node, param, text, sources))
}

/// `NODE.PARAM` set to `text`, parsed as graph syntax in a pseudo-file of
/// `sources` (a bare word that does not parse is taken as a string).
pub fn parse_override(
    node: &str,
    param: &str,
    text: &str,
    sources: &mut SourceMap,
) -> Result<Override, Diagnostics> {
    let file = sources.add(format!("--set {node}.{param}"), None, text.to_string());
    let value = match parse_value(sources, file) {
        Ok(v) => v,
        Err(diags) => {
            let bare = !text.is_empty()
                && !text.starts_with([
                    '"', '[', '{', '@', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
                ]);
            if !bare {
                return Err(diags);
            }
            ast::Value {
                kind: ValueKind::Str(text.to_string()),
                span: Span::new(file, 0, text.len()),
            }
        }
    };
    Ok(Override {
        node: node.to_string(),
        param: param.to_string(),
        span: value.span,
        value,
    })
}

/// A live parameter change made to a loaded graph without a rebuild:
/// `NODE.PARAM = text` parsed as [`parse_override`] does, then
/// [`crate::build::retune`]. `sources` are the graph's (the value's
/// pseudo-file is added to them, so errors render with both).
pub fn retune_loaded(
    graph: &Graph,
    sources: &mut SourceMap,
    options: &LoadOptions<'_>,
    node: &str,
    param: &str,
    text: &str,
) -> Result<Graph, RetuneError> {
    let change = parse_override(node, param, text, sources).map_err(RetuneError::Graph)?;
    retune(graph, sources, options.registry, &options.output, &change)
}

/// The overrides one [`PathOverride`] makes.
fn path_overrides(
    parsed: &ast::Graph,
    p: &PathOverride,
    sources: &mut SourceMap,
) -> Result<Vec<Override>, UsageError> {
    let text = p.path.display().to_string();
    let nodes: Vec<&ast::NodeDecl> = parsed
        .statements
        .iter()
        .filter_map(|s| match s {
            Statement::Node(n)
                if n.kind.name == p.kind && p.name.is_none_or(|name| n.name.name == name) =>
            {
                Some(n)
            }
            _ => None,
        })
        .collect();
    if nodes.is_empty() && p.required {
        return Err(UsageError(format!(
            "{} {text}: the graph has no `{}` node to feed (add `node x: {} {{ {} = \"...\" }}`)",
            p.flag, p.kind, p.kind, p.param
        )));
    }
    let file = sources.add(p.flag, None, text.clone());
    let span = Span::new(file, 0, text.len());
    Ok(nodes
        .into_iter()
        .map(|n| Override {
            node: n.name.name.clone(),
            param: p.param.into(),
            value: ast::Value {
                kind: ValueKind::Str(text.clone()),
                span,
            },
            span,
        })
        .collect())
}
