//! Loading a graph file into a checked [`Graph`], rendering any diagnostics.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use wgraph_engine::build::{BuildOptions, KindOverride, Override, build_graph};
use wgraph_engine::graph::Graph;
use wgraph_engine::model::{Backend, BackendKind, Provider};
use wgraph_engine::node::OutputConfig;
use wgraph_grammar::ast::{self, Statement, ValueKind};
use wgraph_grammar::diagnostic::{Diagnostics, render};
use wgraph_grammar::source::{SourceMap, Span};
use wgraph_grammar::{FileLoader, FsLoader, load_graph, parse_value, validate};

/// What to load, besides the file.
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

/// A flag that is not `NODE.PARAM=VALUE`.
#[derive(Debug)]
pub struct UsageError(pub String);

/// The outcome of loading: the graph, or diagnostics (already rendered to stderr).
pub enum Loaded {
    Graph(std::sync::Arc<Graph>),
    Errors,
    Usage(UsageError),
}

/// A graph loaded without printing: the graph, its sources (for rendering
/// warnings) and every file it read.
pub struct Quiet {
    pub graph: Graph,
    pub sources: SourceMap,
    pub files: Vec<PathBuf>,
    /// Reading and parsing the graph files, includes and flags.
    pub parse: std::time::Duration,
    /// Checking and building (models loaded and probed included).
    pub build: std::time::Duration,
}

/// Why [`load_quiet`] failed.
pub enum Failure {
    /// Graph errors, rendered exactly as `wgraph check` prints them.
    Errors(String),
    Usage(UsageError),
}

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
    if !q.graph.warnings.is_empty() {
        eprint!(
            "{}",
            render(
                &q.sources,
                &q.graph.warnings,
                std::io::stderr().is_terminal()
            )
        );
    }
}

/// [`load`] without printing; `extra` are more `NODE.PARAM=VALUE` changes
/// applied after `config.set` (a live world's parameter changes); graph
/// files are read through `loader` (disk, or a recording's texts).
pub fn load_quiet(
    path: &Path,
    config: &LoadConfig<'_>,
    extra: &[String],
    loader: &dyn FileLoader,
) -> Result<Quiet, Failure> {
    let mut sources = SourceMap::new();
    let registry = wgraph_nodes::registry();
    let started = std::time::Instant::now();
    let mut parsed_at = None;
    let result = (|| -> Result<Result<Graph, Diagnostics>, UsageError> {
        let parsed = match load_graph(path, &mut sources, loader) {
            Ok(g) => g,
            Err(mut d) => {
                // A graph file that is not there (`wgraph run sim.world`):
                // name the shipped graphs it is closest to.
                if !path.exists()
                    && let [only] = d.0.as_mut_slice()
                    && only.help.is_none()
                {
                    only.help = Some(missing_graph_help(path));
                }
                return Ok(Err(d));
            }
        };
        let mut diags = validate(&parsed);
        let mut overrides = Vec::new();
        let mut kind_overrides = Vec::new();
        for flag in config.set.iter().chain(extra) {
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
        for p in &config.paths {
            overrides.extend(path_overrides(&parsed, p, &mut sources)?);
        }
        parsed_at = Some(started.elapsed());
        let options = BuildOptions {
            registry: &registry,
            output: config.output.clone(),
            overrides,
            kind_overrides,
            seed: config.seed,
            backend: Some(config.backend),
            provider: config.provider,
            backend_kind: config.backend_kind,
        };
        if !diags.has_errors() {
            return Ok(build_graph(&parsed, &sources, &options));
        }
        // Name errors (a duplicate node or model, a bad `--set`) do not hide
        // the graph's other problems: it is checked too, with the later of
        // two same-named declarations left out (the one the error points
        // at), and every error is reported in one run.
        if let Err(more) = build_graph(&without_duplicates(&parsed), &sources, &options) {
            diags.extend(more);
        }
        Ok(Err(diags))
    })();
    match result {
        Err(u) => Err(Failure::Usage(u)),
        Ok(Ok(graph)) => {
            let files = files_of(&graph, &sources);
            let parse = parsed_at.unwrap_or_default();
            Ok(Quiet {
                graph,
                sources,
                files,
                parse,
                build: started.elapsed().saturating_sub(parse),
            })
        }
        Ok(Err(diags)) => {
            let diags = diags.sorted();
            let mut text = render(&sources, &diags, std::io::stderr().is_terminal());
            let errors = diags.iter().filter(|d| d.is_error()).count();
            text.push_str(&format!(
                "{}: {errors} error{}\n",
                path.display(),
                if errors == 1 { "" } else { "s" }
            ));
            Err(Failure::Errors(text))
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

/// The directories shipped graphs live in: `graphs/` and `examples/` under
/// the current directory and under wgraph's source tree (when it is still
/// where the binary was built from, as after `cargo install --path .`).
fn graph_dirs() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::new()];
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    let same = |a: &Path, b: &Path| {
        a.canonicalize()
            .ok()
            .is_some_and(|a| b.canonicalize().ok() == Some(a))
    };
    if source.is_dir() && !same(Path::new("."), source) {
        roots.push(source.to_path_buf());
    }
    roots
        .iter()
        .flat_map(|r| [r.join("graphs"), r.join("examples")])
        .filter(|d| d.is_dir())
        .collect()
}

/// How close a shipped graph's name is to the name the user typed (0..1):
/// Jaro–Winkler on the names without `.world`, and a high score when one
/// contains the other (`sim` in `yan-sim`), higher the more of it matches.
fn name_score(typed: &str, shipped: &str) -> f64 {
    let (typed, shipped) = (typed.to_lowercase(), shipped.to_lowercase());
    let jw = strsim::jaro_winkler(&typed, &shipped);
    let (short, long) = if typed.len() <= shipped.len() {
        (&typed, &shipped)
    } else {
        (&shipped, &typed)
    };
    let contained = if short.len() >= 3 && long.contains(short.as_str()) {
        0.85 + 0.15 * short.len() as f64 / long.len().max(1) as f64
    } else {
        0.0
    };
    jw.max(contained)
}

/// The shipped graphs closest to `missing` (best first, at most three), as
/// paths the user can type from here.
pub fn nearest_graphs(missing: &Path) -> Vec<PathBuf> {
    let typed = missing
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut scored: Vec<(f64, PathBuf)> = graph_dirs()
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "world") && p.is_file())
        .filter_map(|p| {
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            let score = name_score(&typed, &stem);
            (score >= 0.8).then_some((score, p))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, p)| p).collect()
}

/// The help for a graph file that does not exist: the nearest shipped
/// graphs, else where they are and how to start a new one.
fn missing_graph_help(missing: &Path) -> String {
    let quoted = |p: &PathBuf| format!("`{}`", p.display());
    match nearest_graphs(missing).as_slice() {
        [] => {
            let dirs: Vec<String> = graph_dirs()
                .iter()
                .map(|d| format!("{}/", d.display()))
                .collect();
            let start = format!(
                "start a new world with `wgraph new {}`",
                missing
                    .file_stem()
                    .map_or("my-world".into(), |s| s.to_string_lossy())
            );
            if dirs.is_empty() {
                start
            } else {
                format!(
                    "the shipped graphs are in {}; or {start}",
                    dirs.join(" and ")
                )
            }
        }
        [best] => format!("did you mean {}?", quoted(best)),
        [best, rest @ ..] => format!(
            "did you mean {}? (also close: {})",
            quoted(best),
            rest.iter().map(quoted).collect::<Vec<_>>().join(", ")
        ),
    }
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
            .flat_map(|m| wgraph_engine::model::model_files(&m.path)),
    );
    for n in &graph.nodes {
        for (_, v) in n.params.iter() {
            if let wgraph_engine::params::ParamValue::Path(p) = v
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
    let file = sources.add(format!("--set {target}"), None, text.to_string());
    let value = match parse_value(sources, file) {
        Ok(v) => v,
        Err(diags) => {
            let bare = !text.is_empty()
                && !text.starts_with([
                    '"', '[', '{', '@', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
                ]);
            if !bare {
                return Ok(Err(diags));
            }
            ast::Value {
                kind: ValueKind::Str(text.to_string()),
                span: Span::new(file, 0, text.len()),
            }
        }
    };
    Ok(Ok(Override {
        node: node.to_string(),
        param: param.to_string(),
        span: value.span,
        value,
    }))
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
