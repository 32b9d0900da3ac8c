//! From a parsed graph to a checked [`Graph`].
//!
//! [`build_graph`] runs the checks in phases and collects every error of every
//! phase it can reach, so one `wgraph check` shows all problems at once:
//!
//! 1. **settings** — the `world { }` blocks merged (the root file wins over
//!    includes) and checked against [`SETTINGS`](crate::settings::SETTINGS);
//! 2. **static node checks** — kind names against the registry ("did you
//!    mean"), parameters against the kind's table, `@node` and model
//!    references against the graph's names. No file is opened;
//! 3. **filesystem checks** — model files exist, and each node's
//!    [`NodeKind::build`](crate::node::NodeKind::build) opens what its
//!    parameters name;
//! 4. **wiring** — ports resolved by name, one feed per input, call inputs
//!    left to callers, required inputs connected;
//! 5. **cycles** — data and call edges must form a DAG (feedback edges are
//!    the only way back);
//! 6. **types** — [`Node::infer`](crate::node::Node::infer) in topological
//!    order, callables inferred through their callers, feedback init values
//!    checked against what the edge carries on later ticks.
//!
//! A node that failed an earlier phase is left out of later ones, so one
//! mistake does not cascade into a page of errors — except an input fed by
//! a feedback edge from a failed node, which is still typed with its `init`
//! (tick 0's value), so shape errors show next to name errors.
//!
//! Type errors are located where the mistake is: a wrong feedback init at
//! the `init`; a value whose type a parameter fixes
//! ([`Node::output_set_by`](crate::node::Node::output_set_by), a `noise`
//! node's `shape`) that a callee rejects when its caller passes it on (a
//! sampler's noise as the denoiser's `x`) at that parameter, once.

use crate::graph::{EdgeKind, Graph, GraphEdge, GraphNode, ModelInfo, NodeId};
use crate::model::{Backend, BackendKind, ModelOptions, ModelTable, Provider};
use crate::node::{BuildContext, InferCalls, Node, OutputConfig, PortRole, PortSpec, TypeError};
use crate::params::{
    Default, ParamContext, ParamSpec, ParamType, ParamValue, Params, check_params,
};
use crate::registry::Registry;
use crate::settings::{BACKENDS, PROVIDERS, SETTINGS, Settings};
use crate::tensor::Tensor;
use crate::types::ValueType;
use crate::value::Value;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;
use std::sync::Arc;
use wgraph_grammar::ast::{self, DimExpr, Entry, Init, PortRef, Record, Statement};
use wgraph_grammar::diagnostic::{Diagnostic, Diagnostics, closest, did_you_mean, port_syntax};
use wgraph_grammar::source::{SourceMap, Span};

/// Options of a `model` declaration.
pub const MODEL_OPTIONS: &[ParamSpec] = &[
    ParamSpec::optional(
        "provider",
        ParamType::Choice(PROVIDERS),
        Default::Choice("default"),
        "execution provider; default: the world's",
    ),
    ParamSpec::optional(
        "backend",
        ParamType::Choice(BACKENDS),
        Default::Choice("default"),
        "model backend: ort (ONNX Runtime), wonnx (WebGPU) or triton (Triton Inference Server); default: the world's",
    ),
    ParamSpec::optional(
        "server",
        ParamType::Str,
        Default::Absent,
        "backend = triton: the server's gRPC HOST:PORT (default: the world's `triton_server`, else 127.0.0.1:8001; `--triton-server` replaces it); the model on the server has the declaration's name",
    ),
    ParamSpec::optional(
        "timeout_ms",
        ParamType::Int,
        Default::Absent,
        "backend = triton: deadline of one call in milliseconds (default 10000)",
    ),
    ParamSpec::optional("device_id", ParamType::Int, Default::Int(0), "GPU index"),
    ParamSpec::optional(
        "fp16",
        ParamType::Bool,
        Default::Bool(false),
        "run in half precision where the provider can",
    ),
    ParamSpec::optional(
        "strict",
        ParamType::Bool,
        Default::Bool(false),
        "fail instead of falling back to CPU when the provider is unavailable",
    ),
    ParamSpec::optional(
        "engine_cache",
        ParamType::Path,
        Default::Str(""),
        "TensorRT engine cache directory",
    ),
    ParamSpec::optional(
        "io_binding",
        ParamType::Bool,
        Default::Absent,
        "bind inputs and outputs in place so outputs stay on the GPU (default: on for cuda/tensorrt, off on cpu)",
    ),
    ParamSpec::optional(
        "cuda_graph",
        ParamType::Bool,
        Default::Bool(false),
        "capture the model as a CUDA graph (fixed shapes; fixed-address buffers on every provider)",
    ),
    ParamSpec::optional(
        "threads",
        ParamType::Int,
        Default::Int(0),
        "intra-op threads of this model (0: the runtime's default, every core); 1 lets models of consecutive ticks overlap on separate cores",
    ),
    // The model contract's metadata, given in the graph (overrides the file's
    // `wgraph.KEY`): a user's own export works without editing it.
    ParamSpec::optional(
        "role",
        ParamType::Choice(MODEL_ROLES),
        Default::Absent,
        "what the model is (wgraph.role): the node kinds that accept it check this",
    ),
    ParamSpec::optional(
        "prediction",
        ParamType::Choice(&["epsilon", "velocity", "sample", "v"]),
        Default::Absent,
        "denoisers: what the output is (wgraph.prediction); v = diffusers' v_prediction",
    ),
    ParamSpec::optional(
        "schedule",
        ParamType::Choice(&["scaled_linear", "linear", "rectified_flow", "ve"]),
        Default::Absent,
        "denoisers: the noise process (wgraph.schedule); VP schedules need beta_start and beta_end, ve (x = x₀ + σ·ε, called with σ: k-diffusion's D(x, σ)) sigma_min and sigma_max",
    ),
    ParamSpec::optional(
        "beta_start",
        ParamType::Float,
        Default::Absent,
        "VP denoisers: β of the first training timestep (wgraph.beta_start)",
    ),
    ParamSpec::optional(
        "beta_end",
        ParamType::Float,
        Default::Absent,
        "VP denoisers: β of the last training timestep (wgraph.beta_end)",
    ),
    ParamSpec::optional(
        "train_steps",
        ParamType::Int,
        Default::Absent,
        "VP denoisers: training timesteps T (wgraph.train_steps, default 1000)",
    ),
    ParamSpec::optional(
        "sigma_min",
        ParamType::Float,
        Default::Absent,
        "ve denoisers: the smallest σ it was trained on (wgraph.sigma_min)",
    ),
    ParamSpec::optional(
        "sigma_max",
        ParamType::Float,
        Default::Absent,
        "ve denoisers: the largest σ it was trained on (wgraph.sigma_max)",
    ),
    ParamSpec::optional(
        "time_scale",
        ParamType::Float,
        Default::Absent,
        "flow denoisers: the model takes t = time_scale·σ (wgraph.time_scale, default 1000)",
    ),
    ParamSpec::optional(
        "tokenizer",
        ParamType::Str,
        Default::Absent,
        "text encoders: the tokenizer as JSON (wgraph.tokenizer, see models-onnx/README.md)",
    ),
    ParamSpec::optional(
        "keys",
        ParamType::Str,
        Default::Absent,
        "action embedders: the key order of the multi-hot input, comma-separated (wgraph.keys)",
    ),
    // The role's port names mapped onto the file's: an export runs unedited.
    ParamSpec::optional(
        "inputs",
        ParamType::Record,
        Default::Absent,
        "the role's input names mapped onto the file's: { x = \"sample\", t = \"timestep\", … }",
    ),
    ParamSpec::optional(
        "outputs",
        ParamType::Record,
        Default::Absent,
        "the role's output names mapped onto the file's: { epsilon = \"noise_pred\" }",
    ),
];

/// The roles a model can have (`wgraph.role`).
pub const MODEL_ROLES: &[&str] = &[
    "vae_encoder",
    "vae_decoder",
    "image_encoder",
    "text_encoder",
    "action_embedder",
    "denoiser",
    "controlnet",
    "idm",
    "denoiser_embed",
    "denoiser_block",
    "denoiser_head",
];

/// The `model` declaration options that are contract metadata (`wgraph.KEY`).
const CONTRACT_KEYS: [&str; 11] = [
    "role",
    "prediction",
    "schedule",
    "beta_start",
    "beta_end",
    "train_steps",
    "sigma_min",
    "sigma_max",
    "time_scale",
    "tokenizer",
    "keys",
];

/// The `model` declaration options that give contract metadata, as
/// `wgraph.KEY` entries (numbers written as the graph wrote them).
fn metadata_overrides(options: &Params) -> std::collections::BTreeMap<String, String> {
    use crate::params::ParamValue;
    let mut out = std::collections::BTreeMap::new();
    for key in CONTRACT_KEYS {
        let value = match options.get(key) {
            Some(ParamValue::Choice(v) | ParamValue::Str(v)) => v.clone(),
            Some(ParamValue::Float(f)) => f.to_string(),
            Some(ParamValue::Int(i)) => i.to_string(),
            _ => continue,
        };
        out.insert(format!("wgraph.{key}"), value);
    }
    for (param, prefix) in [
        ("inputs", crate::model_ports::INPUT_PREFIX),
        ("outputs", crate::model_ports::OUTPUT_PREFIX),
    ] {
        if let Some(ParamValue::Record(r)) = options.get(param) {
            for e in &r.entries {
                if let ast::ValueKind::Str(file) = &e.value.kind {
                    out.insert(format!("{prefix}{}", e.key.name), file.clone());
                }
            }
        }
    }
    out
}

/// The `inputs`/`outputs` records of a `model` declaration: every value a
/// string (the file's port name); an error at the first that is not.
fn check_port_mappings(m: &ast::ModelDecl, options: &Params) -> Result<(), Diagnostic> {
    use crate::params::ParamValue;
    for param in ["inputs", "outputs"] {
        let Some(ParamValue::Record(r)) = options.get(param) else {
            continue;
        };
        for (k, e) in r.entries.iter().enumerate() {
            if !matches!(e.value.kind, ast::ValueKind::Str(_)) {
                return Err(Diagnostic::error(
                    e.value.span,
                    format!(
                        "model `{}`: `{param}.{}` must be the file's port name, a string",
                        m.name.name, e.key.name
                    ),
                )
                .with_help(format!("write it quoted: `{} = \"…\"`", e.key.name)));
            }
            if r.entries[..k].iter().any(|o| o.key.name == e.key.name) {
                return Err(Diagnostic::error(
                    e.key.span,
                    format!(
                        "model `{}`: `{param}.{}` is mapped twice",
                        m.name.name, e.key.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Where the mapping entry an [`AdaptError`](crate::model_ports::AdaptError)
/// is about was written: its value, else the record, else the declaration.
fn adapt_error_span(
    m: &ast::ModelDecl,
    options: &Params,
    e: &crate::model_ports::AdaptError,
) -> Span {
    use crate::params::ParamValue;
    let Some((side, key)) = &e.entry else {
        return options.span("inputs").unwrap_or(m.span);
    };
    match options.get(side.param()) {
        Some(ParamValue::Record(r)) => r.get(key).map(|entry| entry.value.span).unwrap_or(r.span),
        _ => m.span,
    }
}

/// Where element `index` of list parameter `param` of `decl` was written.
fn item_span(decl: &ast::NodeDecl, param: &str, index: usize) -> Option<Span> {
    match &decl.params.get(param)?.value.kind {
        ast::ValueKind::List(items) => items.get(index).map(|v| v.span),
        _ => None,
    }
}

/// `--set NODE.PARAM=VALUE`: a parameter written outside the graph file.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub node: String,
    pub param: String,
    /// The value, parsed from a pseudo-file in the same [`SourceMap`].
    pub value: ast::Value,
    /// The whole flag text (for "no node named ..." errors).
    pub span: Span,
}

/// `--set NODE=KIND`: a node of another kind, keeping the parameters both
/// kinds declare (a sampler swapped for another, its `steps` kept).
#[derive(Debug, Clone, PartialEq)]
pub struct KindOverride {
    pub node: String,
    pub kind: String,
    /// The flag text, in a pseudo-file of the same [`SourceMap`].
    pub span: Span,
}

/// What building needs besides the parsed graph.
pub struct BuildOptions<'a> {
    pub registry: &'a Registry,
    pub output: OutputConfig,
    pub overrides: Vec<Override>,
    /// Kind swaps, applied before parameter overrides.
    pub kind_overrides: Vec<KindOverride>,
    /// `--seed`: replaces the world's seed.
    pub seed: Option<u64>,
    /// Loads `model` declarations; None: a graph with models is an error.
    pub backend: Option<&'a dyn Backend>,
    /// `--provider`: replaces every model's provider.
    pub provider: Option<Provider>,
    /// `--backend`: replaces every model's backend.
    pub backend_kind: Option<BackendKind>,
}

/// Builds and checks a graph; on failure returns every error found.
pub fn build_graph(
    parsed: &ast::Graph,
    sources: &SourceMap,
    options: &BuildOptions<'_>,
) -> Result<Graph, Diagnostics> {
    let mut b = Builder {
        sources,
        options,
        diags: Diagnostics::new(),
        nodes: Vec::new(),
        failed: HashMap::new(),
        attempted: std::collections::HashSet::new(),
        bad_edge_into: std::collections::HashSet::new(),
        referenced_by_failed: std::collections::HashSet::new(),
        by_name: HashMap::new(),
        edges: Vec::new(),
        miswired: Vec::new(),
        loaded: HashMap::new(),
        init_spans: HashMap::new(),
        orphan_inits: Vec::new(),
    };
    let settings = b.settings(parsed);
    let (models, table) = b.models(parsed, &settings);
    b.nodes(parsed, &settings, &models, &table);
    b.edges(parsed, &settings);
    b.calls();
    b.unconnected();
    let built = b.order();
    if let Some((dag, order)) = &built {
        b.infer(order);
        let _ = dag;
    }
    if b.diags.has_errors() {
        return Err(b.diags.sorted());
    }
    let (dag, order) = built.ok_or_else(|| b.diags.clone())?;
    let nodes = b.nodes.into_iter().map(|(n, _)| n).collect();
    Ok(Graph {
        settings,
        nodes,
        edges: b.edges,
        models,
        model_table: table,
        dag,
        order,
        warnings: b.diags.sorted(),
    })
}

/// A node being built, with what later phases need.
struct Builder<'a> {
    sources: &'a SourceMap,
    options: &'a BuildOptions<'a>,
    diags: Diagnostics,
    /// Successfully configured nodes (and the declaration they came from).
    nodes: Vec<(GraphNode, ast::NodeDecl)>,
    /// Names of declared nodes that failed to configure (edges to them are skipped).
    failed: HashMap<String, Span>,
    /// Inputs whose edge was written but dropped after its own error (a
    /// failed node, a bad port): not reported again as "not connected".
    attempted: std::collections::HashSet<(NodeId, usize)>,
    /// Nodes an edge named a missing input of (reported): their unconnected
    /// inputs are a consequence.
    bad_edge_into: std::collections::HashSet<NodeId>,
    /// Nodes a failed node referenced with `@name` (a sampler that failed to
    /// build): not reported again as "no node calls it".
    referenced_by_failed: std::collections::HashSet<String>,
    by_name: HashMap<String, NodeId>,
    edges: Vec<GraphEdge>,
    /// Nodes with a wiring error: left out of type inference (no cascades).
    miswired: Vec<bool>,
    /// Models already loaded, by file and options: two declarations of one
    /// file share one session.
    loaded: HashMap<(std::path::PathBuf, ModelOptions), Arc<dyn crate::model::Model>>,
    /// Where each feedback edge's `init` is written, by index into `edges`:
    /// a type error about tick 0's value points there.
    init_spans: HashMap<usize, Span>,
    /// Feedback edges whose producer failed its own check (an unknown kind,
    /// a misspelt `@node`): the input still gets the init on tick 0, so
    /// its node is type-checked with it (input, init value, init span) and
    /// one `check` shows the shape errors next to the name errors.
    orphan_inits: Vec<((NodeId, usize), Value, Span)>,
}

impl Builder<'_> {
    fn settings(&mut self, parsed: &ast::Graph) -> Settings {
        let root = parsed.root;
        let mut merged: Vec<Entry> = Vec::new();
        let mut span = None;
        for st in &parsed.statements {
            let Statement::Settings(record) = st else {
                continue;
            };
            span.get_or_insert(record.span);
            let from_root = Some(record.span.file) == root;
            for e in &record.entries {
                match merged.iter_mut().find(|m| m.key.name == e.key.name) {
                    None => merged.push(e.clone()),
                    Some(existing) if existing.key.span.file == e.key.span.file => {
                        self.diags.push(
                            Diagnostic::error(
                                e.key.span,
                                format!("setting `{}` is set twice", e.key.name),
                            )
                            .with_label("second setting")
                            .with_secondary(existing.key.span, "first set here"),
                        );
                    }
                    // The root file overrides what includes set.
                    Some(existing) if from_root => *existing = e.clone(),
                    Some(_) => {}
                }
            }
        }
        let record = Record {
            entries: merged,
            span: span.unwrap_or_default(),
        };
        let cx = ParamContext {
            sources: self.sources,
            settings: None,
            owner: "`world`".into(),
        };
        let params = check_params(SETTINGS, &record, record.span, &cx, &mut self.diags);
        let (mut settings, problems) = Settings::from_params(&params);
        for (name, message) in problems {
            let span = params.span(name).unwrap_or(record.span);
            self.diags.push(Diagnostic::error(span, message));
        }
        if let Some(seed) = self.options.seed {
            settings.seed = seed;
        }
        settings
    }

    fn models(&mut self, parsed: &ast::Graph, settings: &Settings) -> (Vec<ModelInfo>, ModelTable) {
        let mut models = Vec::new();
        let mut table = ModelTable::new();
        for st in &parsed.statements {
            let Statement::Model(m) = st else { continue };
            let cx = ParamContext {
                sources: self.sources,
                settings: Some(settings),
                owner: format!("model `{}`", m.name.name),
            };
            let before = self.diags.len();
            let options = check_params(MODEL_OPTIONS, &m.options, m.span, &cx, &mut self.diags);
            let path = self.sources.get(m.path_span.file).base_dir().join(&m.path);
            let usable = crate::input::check(&path, crate::input::MODEL);
            if let Err(e) = &usable {
                let message = if e.kind() == std::io::ErrorKind::NotFound {
                    format!("model file `{}` not found", m.path)
                } else {
                    format!("model file `{}`: {e}", m.path)
                };
                self.diags.push(
                    Diagnostic::error(m.path_span, message)
                        .with_label(format!("looked for {}", path.display())),
                );
            } else if self.diags.len() == before {
                self.load_model(m, &path, &options, settings, &mut table);
            }
            models.push(ModelInfo {
                name: m.name.name.clone(),
                path,
                options,
                span: m.span,
            });
        }
        (models, table)
    }

    fn load_model(
        &mut self,
        m: &ast::ModelDecl,
        path: &std::path::Path,
        options: &Params,
        settings: &Settings,
        table: &mut ModelTable,
    ) {
        let Some(backend) = self.options.backend else {
            self.diags.push(Diagnostic::error(
                m.span,
                format!(
                    "model `{}`: no model backend is available in this program",
                    m.name.name
                ),
            ));
            return;
        };
        if let Ok(t) = options.int("threads")
            && !(0..=1024).contains(&t)
        {
            let span = options.span("threads").unwrap_or(m.span);
            self.diags.push(Diagnostic::error(
                span,
                format!(
                    "model `{}`: `threads` must be between 0 and 1024, found {t}",
                    m.name.name
                ),
            ));
            return;
        }
        // Contract values written in the graph, checked where they are written
        // (combinations, e.g. a VP schedule without betas, are checked by the
        // node kinds that read them, as for the file's own metadata).
        let ranges: [(&str, f64, f64, &str); 6] = [
            (
                "time_scale",
                0.0,
                1e6,
                "positive (the model takes t = time_scale·σ)",
            ),
            ("beta_start", 0.0, 1.0, "between 0 and 1"),
            ("beta_end", 0.0, 1.0, "between 0 and 1"),
            ("train_steps", 0.0, 100_000.0, "between 1 and 100000"),
            ("sigma_min", 0.0, 1e6, "positive"),
            ("sigma_max", 0.0, 1e6, "positive"),
        ];
        for (key, lo, hi, what) in ranges {
            let Some(v) = options
                .opt_float(key)
                .or_else(|| options.int(key).ok().map(|i| i as f64))
            else {
                continue;
            };
            if !(v > lo && v <= hi) || (key == "train_steps" && v < 1.0) {
                let span = options.span(key).unwrap_or(m.span);
                self.diags.push(Diagnostic::error(
                    span,
                    format!("model `{}`: `{key}` must be {what}, found {v}", m.name.name),
                ));
                return;
            }
        }
        let provider = self.options.provider.unwrap_or_else(|| {
            options
                .choice("provider")
                .ok()
                .and_then(|p| Provider::parse(&p))
                .or_else(|| Provider::parse(&settings.provider))
                .unwrap_or(Provider::Cpu)
        });
        let backend_kind = self.options.backend_kind.unwrap_or_else(|| {
            options
                .choice("backend")
                .ok()
                .and_then(|b| BackendKind::parse(&b))
                .or_else(|| BackendKind::parse(&settings.backend))
                .unwrap_or_default()
        });
        // A remote model's address, name on the server and deadline; local
        // backends take none (a declaration that gives them is told so).
        let remote = backend_kind == BackendKind::Triton;
        if !remote {
            for key in ["server", "timeout_ms"] {
                if let Some(span) = options.span(key) {
                    self.diags.push(Diagnostic::warning(
                        span,
                        format!(
                            "model `{}`: `{key}` is ignored: the model runs on backend `{backend_kind}`, not `triton`",
                            m.name.name
                        ),
                    ));
                }
            }
        }
        if let Ok(t) = options.int("timeout_ms")
            && !(1..=3_600_000).contains(&t)
        {
            let span = options.span("timeout_ms").unwrap_or(m.span);
            self.diags.push(Diagnostic::error(
                span,
                format!(
                    "model `{}`: `timeout_ms` must be between 1 and 3600000, found {t}",
                    m.name.name
                ),
            ));
            return;
        }
        let server = options
            .string("server")
            .ok()
            .or_else(|| Some(settings.triton_server.clone()))
            .filter(|s| remote && !s.is_empty());
        let timeout_ms = options
            .int("timeout_ms")
            .ok()
            .and_then(|t| u64::try_from(t).ok())
            .filter(|_| remote);
        let remote_name = remote.then(|| m.name.name.clone());
        let engine_cache = options
            .path("engine_cache")
            .ok()
            .filter(|p| !p.as_os_str().is_empty() && p.file_name().is_some());
        let model_options = ModelOptions {
            backend: backend_kind,
            provider,
            device_id: options
                .int("device_id")
                .ok()
                .and_then(|d| u32::try_from(d).ok())
                .unwrap_or(0),
            fp16: options.bool("fp16").unwrap_or(false),
            strict: options.bool("strict").unwrap_or(false),
            engine_cache,
            threads: options
                .int("threads")
                .ok()
                .and_then(|t| usize::try_from(t).ok())
                .filter(|&t| t > 0),
            io_binding: options.bool("io_binding").ok(),
            cuda_graph: options.bool("cuda_graph").unwrap_or(false),
            server,
            remote_name,
            timeout_ms,
        };
        let key = (
            path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            model_options.clone(),
        );
        if let Err(d) = check_port_mappings(m, options) {
            self.diags.push(d);
            return;
        }
        if let Some(model) = self.loaded.get(&key) {
            let model = Arc::clone(model);
            if self.check_adaptation(m, options, &*model) {
                let model = backend.with_metadata(model, metadata_overrides(options));
                table.insert(m.name.name.clone(), model);
            }
            return;
        }
        match backend.load(path, &model_options) {
            Ok(loaded) => {
                self.loaded.insert(key, Arc::clone(&loaded.model));
                for w in loaded.warnings {
                    self.diags.push(Diagnostic::warning(
                        m.span,
                        format!("model `{}`: {w}", m.name.name),
                    ));
                }
                if self.check_adaptation(m, options, &*loaded.model) {
                    let model = backend.with_metadata(loaded.model, metadata_overrides(options));
                    table.insert(m.name.name.clone(), model);
                }
            }
            Err(e) => {
                let mut d = Diagnostic::error(
                    m.path_span,
                    format!("cannot load model `{}`: {e}", m.name.name),
                )
                .with_label(path.display().to_string());
                // Point at the declaration's choice of backend, when it made one.
                if self.options.backend_kind.is_none()
                    && backend_kind != BackendKind::Ort
                    && let Some(span) = options.span("backend")
                {
                    d = d.with_secondary(span, format!("backend `{backend_kind}` chosen here"));
                }
                self.diags.push(d)
            }
        }
    }

    /// Checks that `model`'s ports adapt as the declaration says (names
    /// mapped, timestep convertible); false (with an error at the mapping)
    /// when they do not.
    fn check_adaptation(
        &mut self,
        m: &ast::ModelDecl,
        options: &Params,
        model: &dyn crate::model::Model,
    ) -> bool {
        match crate::model_ports::adaptation(model.signature(), &metadata_overrides(options)) {
            Ok(_) => true,
            Err(e) => {
                let mut d = Diagnostic::error(
                    adapt_error_span(m, options, &e),
                    format!("model `{}`: {}", m.name.name, e.message),
                );
                if let Some(h) = &e.help {
                    d = d.with_help(h.clone());
                }
                self.diags.push(d);
                false
            }
        }
    }

    fn nodes(
        &mut self,
        parsed: &ast::Graph,
        settings: &Settings,
        models: &[ModelInfo],
        table: &ModelTable,
    ) {
        let decls: Vec<&ast::NodeDecl> = parsed
            .statements
            .iter()
            .filter_map(|s| match s {
                Statement::Node(n) => Some(n),
                _ => None,
            })
            .collect();
        let names: Vec<&str> = decls.iter().map(|d| d.name.name.as_str()).collect();
        for ov in &self.options.kind_overrides {
            if !names.contains(&ov.node.as_str()) {
                let mut d =
                    Diagnostic::error(ov.span, format!("`--set`: no node named `{}`", ov.node));
                if let Some(h) = did_you_mean(&ov.node, names.iter().copied()) {
                    d = d.with_help(h);
                }
                self.diags.push(d);
            }
        }
        for ov in &self.options.overrides {
            if !names.contains(&ov.node.as_str()) {
                let mut d =
                    Diagnostic::error(ov.span, format!("`--set`: no node named `{}`", ov.node));
                if let Some(h) = did_you_mean(&ov.node, names.iter().copied()) {
                    d = d.with_help(h);
                }
                self.diags.push(d);
            }
        }
        for decl in decls {
            let mut decl = decl.clone();
            self.apply_overrides(&mut decl);
            match self.node(&decl, settings, models, table, &names) {
                Some(node) => {
                    self.by_name
                        .insert(decl.name.name.clone(), NodeId(self.nodes.len()));
                    self.nodes.push((node, decl));
                }
                None => {
                    self.failed.insert(decl.name.name.clone(), decl.span);
                    for e in &decl.params.entries {
                        if let ast::ValueKind::NodeRef(target) = &e.value.kind {
                            self.referenced_by_failed.insert(target.clone());
                        }
                    }
                }
            }
        }
    }

    fn apply_overrides(&self, decl: &mut ast::NodeDecl) {
        for ov in self
            .options
            .kind_overrides
            .iter()
            .filter(|o| o.node == decl.name.name)
        {
            decl.kind = ast::Ident {
                name: ov.kind.clone(),
                span: ov.span,
            };
            // Keep what the new kind declares; an unknown kind is reported
            // by `node` at the flag.
            if let Some(kind) = self.options.registry.get(&ov.kind) {
                let declared: Vec<&str> = kind.params().iter().map(|p| p.name).collect();
                decl.params
                    .entries
                    .retain(|e| declared.contains(&e.key.name.as_str()));
            }
        }
        for ov in self
            .options
            .overrides
            .iter()
            .filter(|o| o.node == decl.name.name)
        {
            let entry = Entry {
                key: ast::Ident {
                    name: ov.param.clone(),
                    span: ov.span,
                },
                value: ov.value.clone(),
            };
            match decl
                .params
                .entries
                .iter_mut()
                .find(|e| e.key.name == ov.param)
            {
                Some(existing) => *existing = entry,
                None => decl.params.entries.push(entry),
            }
        }
    }

    /// Static checks, then `build`. None when the node cannot be configured.
    fn node(
        &mut self,
        decl: &ast::NodeDecl,
        settings: &Settings,
        models: &[ModelInfo],
        table: &ModelTable,
        node_names: &[&str],
    ) -> Option<GraphNode> {
        let Some(kind) = self.options.registry.get(&decl.kind.name).cloned() else {
            let mut d = Diagnostic::error(
                decl.kind.span,
                format!("unknown node kind `{}`", decl.kind.name),
            )
            .with_label("not a registered kind");
            d = match did_you_mean(&decl.kind.name, self.options.registry.names()) {
                Some(h) => d.with_help(h),
                None => d.with_help("`wgraph kinds` lists every node kind"),
            };
            self.diags.push(d);
            return None;
        };
        let owner = format!("node `{}` ({})", decl.name.name, kind.name());
        let cx = ParamContext {
            sources: self.sources,
            settings: Some(settings),
            owner: owner.clone(),
        };
        let before = self.diags.len();
        let params = check_params(kind.params(), &decl.params, decl.span, &cx, &mut self.diags);
        for (name, value) in params.iter() {
            let span = params.span(name).unwrap_or(decl.span);
            match value {
                ParamValue::NodeRef(target) if !node_names.contains(&target.as_str()) => {
                    let mut d = Diagnostic::error(
                        span,
                        format!("`{name}` of {owner} refers to no node `{target}`"),
                    );
                    if let Some(h) = did_you_mean(target, node_names.iter().copied()) {
                        d = d.with_help(h);
                    }
                    // The node meant is not "uncalled" because of this typo.
                    if let Some(meant) = closest(target, node_names.iter().copied()) {
                        self.referenced_by_failed.insert(meant.to_string());
                    }
                    self.diags.push(d);
                }
                ParamValue::NodeRef(target) if *target == decl.name.name => {
                    self.diags.push(Diagnostic::error(
                        span,
                        format!("{owner} cannot call itself"),
                    ));
                }
                ParamValue::ModelRef(m) if !models.iter().any(|x| &x.name == m) => {
                    let mut d = Diagnostic::error(
                        span,
                        format!("`{name}` of {owner} refers to no model `{m}`"),
                    );
                    if let Some(h) = did_you_mean(m, models.iter().map(|x| x.name.as_str())) {
                        d = d.with_help(h);
                    }
                    self.diags.push(d);
                }
                ParamValue::ModelRefList(list) => {
                    for (i, m) in list.iter().enumerate() {
                        if models.iter().any(|x| &x.name == m) {
                            continue;
                        }
                        let mut d = Diagnostic::error(
                            item_span(decl, name, i).unwrap_or(span),
                            format!("`{name}` of {owner} refers to no model `{m}` (element {i})"),
                        );
                        if let Some(h) = did_you_mean(m, models.iter().map(|x| x.name.as_str())) {
                            d = d.with_help(h);
                        }
                        self.diags.push(d);
                    }
                }
                _ => {}
            }
        }
        if self.diags.len() > before {
            return None;
        }
        let base_dir = self.sources.get(decl.span.file).base_dir();
        let bcx = BuildContext {
            name: &decl.name.name,
            params: &params,
            settings,
            base_dir: &base_dir,
            output: &self.options.output,
            models: table,
        };
        let node: Arc<dyn Node> = match kind.build(&bcx) {
            Ok(n) => Arc::from(n),
            Err(e) if e.consequence => return None,
            Err(e) => {
                let span = e
                    .param
                    .as_deref()
                    .and_then(|p| {
                        e.item
                            .and_then(|i| item_span(decl, p, i))
                            .or_else(|| params.span(p))
                    })
                    .unwrap_or(decl.span);
                self.diags
                    .push(Diagnostic::error(span, format!("{owner}: {}", e.message)));
                return None;
            }
        };
        let inputs = node.inputs();
        let outputs = node.outputs();
        Some(GraphNode {
            name: decl.name.name.clone(),
            kind: kind.name(),
            params,
            input_types: vec![None; inputs.len()],
            output_types: Vec::new(),
            inputs,
            outputs,
            node,
            callees: Vec::new(),
            call_arg_slots: Vec::new(),
            is_callee: false,
            span: decl.span,
        })
    }

    /// Resolves `node` or `node.port` on one side; None after reporting.
    fn port(&mut self, r: &PortRef, output: bool) -> Option<(NodeId, usize)> {
        let Some(&id) = self.by_name.get(&r.node.name) else {
            if !self.failed.contains_key(&r.node.name) {
                let mut d =
                    Diagnostic::error(r.node.span, format!("no node named `{}`", r.node.name))
                        .with_label("unknown node");
                let names = self
                    .by_name
                    .keys()
                    .map(String::as_str)
                    .chain(self.failed.keys().map(String::as_str));
                if let Some(h) = did_you_mean(&r.node.name, names) {
                    d = d.with_help(h);
                }
                self.diags.push(d);
            }
            return None;
        };
        let node = &self.nodes[id.0].0;
        let side = if output { "output" } else { "input" };
        let ports: &[PortSpec] = if output { &node.outputs } else { &node.inputs };
        let listing = || {
            if ports.is_empty() {
                format!("`{}` ({}) has no {side}s", node.name, node.kind)
            } else {
                format!(
                    "{side}s of `{}` ({}): {}",
                    node.name,
                    node.kind,
                    ports
                        .iter()
                        .map(|p| port_syntax(&p.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        match &r.port {
            Some(port) => match ports.iter().position(|p| p.name == port.name) {
                Some(i) => Some((id, i)),
                None => {
                    let mut d = Diagnostic::error(
                        port.span,
                        format!(
                            "node `{}` ({}) has no {side} `{}`",
                            node.name, node.kind, port.name
                        ),
                    )
                    .with_label(format!("unknown {side}"));
                    let spelled: Vec<String> = ports.iter().map(|p| port_syntax(&p.name)).collect();
                    d = match did_you_mean(&port.name, spelled.iter().map(String::as_str)) {
                        Some(h) => d.with_help(format!("{h} ({})", listing())),
                        None => d.with_help(listing()),
                    };
                    self.diags.push(d);
                    None
                }
            },
            None => {
                let mut candidates: Vec<usize> = (0..ports.len())
                    .filter(|&i| output || ports[i].role != PortRole::Call)
                    .collect();
                // A bare edge goes to the one required input: optional
                // inputs (a sampler's `step_noise`, `reuse`) never make an
                // old graph's `n -> s` ambiguous.
                let required: Vec<usize> = candidates
                    .iter()
                    .copied()
                    .filter(|&i| ports[i].role == PortRole::Wired)
                    .collect();
                if !output && required.len() == 1 {
                    candidates = required;
                }
                if let [only] = candidates.as_slice() {
                    Some((id, *only))
                } else {
                    let message = if candidates.is_empty() {
                        format!(
                            "node `{}` ({}) has no {side} to connect",
                            node.name, node.kind
                        )
                    } else {
                        format!(
                            "node `{}` ({}) has several {side}s; name one as `{}.PORT`",
                            node.name, node.kind, node.name
                        )
                    };
                    self.diags
                        .push(Diagnostic::error(r.span, message).with_help(listing()));
                    None
                }
            }
        }
    }

    fn edges(&mut self, parsed: &ast::Graph, settings: &Settings) {
        for st in &parsed.statements {
            let (from, to, init, span) = match st {
                Statement::Edge(e) => (&e.from, &e.to, None, e.span),
                Statement::Feedback(f) => (&f.from, &f.to, Some(&f.init), f.span),
                _ => continue,
            };
            let src = self.port(from, true);
            let dst = self.port(to, false);
            let kind = match init {
                None => Some(EdgeKind::Data),
                Some(init) => self
                    .init_value(init, settings)
                    .map(|init| EdgeKind::Feedback { init }),
            };
            let (Some((from_id, from_port)), Some((to_id, to_port)), Some(kind)) =
                (src, dst, kind.as_ref())
            else {
                // The edge's error is reported; its input is not "unconnected",
                // nor (for an input the node lacks) are the node's others: the
                // edge was meant for one of them.
                match dst {
                    Some(d) => match (&kind, init) {
                        // From a node that failed its own check: tick 0's
                        // value is still known.
                        (Some(EdgeKind::Feedback { init: value }), Some(init))
                            if src.is_none()
                                && self.failed.contains_key(&from.node.name)
                                && self.nodes[d.0.0].0.inputs[d.1].role != PortRole::Call =>
                        {
                            self.orphan_inits.push((d, value.clone(), init.span()));
                        }
                        _ => {
                            self.attempted.insert(d);
                        }
                    },
                    None => {
                        if let Some(&id) = self.by_name.get(&to.node.name) {
                            self.bad_edge_into.insert(id);
                        }
                    }
                }
                continue;
            };
            let target = &self.nodes[to_id.0].0;
            let port = &target.inputs[to_port];
            if port.role == PortRole::Call {
                self.diags.push(
                    Diagnostic::error(
                        to.span,
                        format!(
                            "input `{}` of `{}` is supplied by the node that calls it; it cannot be wired",
                            port.name, target.name
                        ),
                    )
                    .with_help(format!("reference the node as `@{}` from a sampler instead", target.name)),
                );
                continue;
            }
            if let Some(first) = self
                .edges
                .iter()
                .find(|e| e.to == to_id && e.to_port == to_port)
            {
                self.diags.push(
                    Diagnostic::error(
                        to.span,
                        format!("input `{}.{}` is already connected", target.name, port.name),
                    )
                    .with_label("second connection")
                    .with_secondary(first.span, "first connected here"),
                );
                continue;
            }
            if let Some(init) = init {
                self.init_spans.insert(self.edges.len(), init.span());
            }
            self.edges.push(GraphEdge {
                from: from_id,
                from_port,
                to: to_id,
                to_port,
                kind: kind.clone(),
                span,
            });
        }
    }

    fn init_value(&mut self, init: &Init, settings: &Settings) -> Option<Value> {
        // Sizes may say H, W and F, as everywhere else in a graph.
        let shape = |dims: &[DimExpr], diags: &mut Diagnostics| -> Option<Vec<usize>> {
            let mut out = Vec::new();
            for d in dims {
                match d {
                    DimExpr::Known(n) => out.push(usize::try_from(*n).ok()?),
                    DimExpr::Symbol(s) => match settings.dim(s) {
                        Some(n) => out.push(n),
                        None => {
                            diags.push(
                                Diagnostic::error(
                                    init.span(),
                                    format!("feedback init: unknown dimension symbol `{s}`"),
                                )
                                .with_help(
                                    "shapes may use H and W (from `resolution`) and F (from `frames_per_tick`)",
                                ),
                            );
                            return None;
                        }
                    },
                }
            }
            Some(out)
        };
        let result = match init {
            Init::Zeros { shape: dims, .. } => {
                shape(dims, &mut self.diags).map(|s| Tensor::full_f32(&s, 0.0))
            }
            Init::Fill {
                value, shape: dims, ..
            } => shape(dims, &mut self.diags).map(|s| Tensor::full_f32(&s, *value as f32)),
            Init::Npy { path, span } => {
                let full = self.sources.get(span.file).base_dir().join(path);
                match crate::npy::read_npy_file(&full) {
                    Ok(t) if t.host().is_ok_and(|d| d.non_finite().is_some()) => {
                        self.diags.push(Diagnostic::error(
                            *span,
                            format!("feedback init: `{path}` holds NaN or infinite values"),
                        ));
                        None
                    }
                    Ok(t) => Some(Ok(t)),
                    Err(e) => {
                        self.diags
                            .push(Diagnostic::error(*span, format!("feedback init: {e}")));
                        None
                    }
                }
            }
        }?;
        match result {
            Ok(t) => Some(Value::Tensor(t)),
            Err(e) => {
                self.diags.push(Diagnostic::error(
                    init.span(),
                    format!("feedback init: {e}"),
                ));
                None
            }
        }
    }

    fn calls(&mut self) {
        self.miswired = vec![false; self.nodes.len()];
        let mut called_by: HashMap<NodeId, NodeId> = HashMap::new();
        for caller in 0..self.nodes.len() {
            let specs = self.nodes[caller].0.node.calls();
            for spec in specs {
                let node = &self.nodes[caller].0;
                let param_span = node.params.span(&spec.param).unwrap_or(node.span);
                let Ok(target) = node.params.node_ref(&spec.param) else {
                    self.diags.push(Diagnostic::error(
                        node.span,
                        format!("internal: `{}` ({}) declares a call through `{}`, which is not a node reference", node.name, node.kind, spec.param),
                    ));
                    continue;
                };
                let Some(&callee) = self.by_name.get(&target) else {
                    // Reported by the static check, or the callee failed to
                    // build (reported there): the caller cannot be typed.
                    self.miswired[caller] = true;
                    continue;
                };
                let callee_node = &self.nodes[callee.0].0;
                let call_inputs: Vec<&str> = callee_node
                    .inputs
                    .iter()
                    .filter(|p| p.role == PortRole::Call)
                    .map(|p| p.name.as_str())
                    .collect();
                let mut slots = Vec::new();
                for arg in &spec.args {
                    match callee_node
                        .inputs
                        .iter()
                        .position(|p| &p.name == arg && p.role == PortRole::Call)
                    {
                        Some(i) => slots.push(i),
                        None => break,
                    }
                }
                if slots.len() != spec.args.len() || call_inputs.len() != spec.args.len() {
                    self.miswired[caller] = true;
                    self.diags.push(
                        Diagnostic::error(
                            param_span,
                            format!(
                                "`{}` ({}) calls `{}` with ({}), but `{}` ({}) takes ({}) from its caller",
                                node.name,
                                node.kind,
                                callee_node.name,
                                spec.args.join(", "),
                                callee_node.name,
                                callee_node.kind,
                                call_inputs.join(", ")
                            ),
                        )
                        .with_secondary(callee_node.span, "declared here"),
                    );
                    continue;
                }
                called_by.insert(callee, NodeId(caller));
                self.nodes[caller].0.callees.push(callee);
                self.nodes[caller].0.call_arg_slots.push(slots);
            }
        }
        for (i, (node, _)) in self.nodes.iter_mut().enumerate() {
            let id = NodeId(i);
            let takes_calls = node.inputs.iter().any(|p| p.role == PortRole::Call);
            node.is_callee = called_by.contains_key(&id);
            if takes_calls && !node.is_callee && self.referenced_by_failed.contains(&node.name) {
                // Its caller failed to build (reported there): no second error.
                self.miswired[i] = true;
            } else if takes_calls && !node.is_callee {
                self.miswired[i] = true;
                let names: Vec<&str> = node
                    .inputs
                    .iter()
                    .filter(|p| p.role == PortRole::Call)
                    .map(|p| p.name.as_str())
                    .collect();
                self.diags.push(
                    Diagnostic::error(
                        node.span,
                        format!(
                            "node `{}` ({}) takes ({}) from a caller, but no node calls it",
                            node.name,
                            node.kind,
                            names.join(", ")
                        ),
                    )
                    .with_help(format!(
                        "use it from a sampler: `denoiser = @{}`",
                        node.name
                    )),
                );
            }
        }
        for e in &self.edges {
            if let Some(caller) = called_by.get(&e.from) {
                let callee = &self.nodes[e.from.0].0;
                self.diags.push(Diagnostic::error(
                    e.span,
                    format!(
                        "`{}` is called by `{}`; its outputs go to its caller and cannot be wired",
                        callee.name, self.nodes[caller.0].0.name
                    ),
                ));
            }
        }
    }

    fn unconnected(&mut self) {
        let mut miswired = std::mem::take(&mut self.miswired);
        for (i, (node, _)) in self.nodes.iter().enumerate() {
            let mut missing = Vec::new();
            for (p, port) in node.inputs.iter().enumerate() {
                if port.role != PortRole::Wired {
                    continue;
                }
                if self.attempted.contains(&(NodeId(i), p)) {
                    // Its edge failed: leave the node out of type inference.
                    miswired[i] = true;
                    continue;
                }
                if !self
                    .edges
                    .iter()
                    .any(|e| e.to == NodeId(i) && e.to_port == p)
                    && !self.orphan_inits.iter().any(|o| o.0 == (NodeId(i), p))
                {
                    missing.push((port.name.as_str(), node.node.input_type(p)));
                }
            }
            if missing.is_empty() {
                continue;
            }
            miswired[i] = true;
            if self.bad_edge_into.contains(&NodeId(i)) {
                continue;
            }
            // One error per node, naming every input it lacks.
            let listed: Vec<String> = missing
                .iter()
                .map(|(p, _)| format!("`{}.{}`", node.name, port_syntax(p)))
                .collect();
            let message = match listed.as_slice() {
                [one] => format!("input {one} is not connected"),
                many => format!("inputs {} are not connected", many.join(", ")),
            };
            // Each with the type it takes, when the node knows it.
            let help: Vec<String> = missing
                .iter()
                .map(|(p, ty)| {
                    let wire = format!("`some_node.out -> {}.{}`", node.name, port_syntax(p));
                    match ty {
                        Some(ty) => format!("{wire} (it takes {ty})"),
                        None => wire,
                    }
                })
                .collect();
            self.diags.push(
                Diagnostic::error(node.span, message)
                    .with_label(format!(
                        "`{}` ({}) needs {}",
                        node.name,
                        node.kind,
                        missing
                            .iter()
                            .map(|(p, _)| format!("`{p}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .with_help(format!("connect it: {}", help.join(", "))),
            );
        }
        self.miswired = miswired;
    }

    /// The dependency DAG and the schedule order; None (after reporting) on a cycle.
    fn order(&mut self) -> Option<(DiGraph<NodeId, ()>, Vec<NodeId>)> {
        let mut dag = DiGraph::<NodeId, ()>::new();
        let idx: Vec<NodeIndex> = (0..self.nodes.len())
            .map(|i| dag.add_node(NodeId(i)))
            .collect();
        for e in &self.edges {
            if e.kind == EdgeKind::Data {
                dag.update_edge(idx[e.from.0], idx[e.to.0], ());
            }
        }
        for (i, (node, _)) in self.nodes.iter().enumerate() {
            for c in &node.callees {
                dag.update_edge(idx[c.0], idx[i], ());
            }
        }
        match toposort(&dag, None) {
            Ok(sorted) => {
                let order = sorted
                    .into_iter()
                    .map(|n| dag[n])
                    .filter(|id| !self.nodes[id.0].0.is_callee)
                    .collect();
                Some((dag, order))
            }
            Err(_) => {
                for scc in tarjan_scc(&dag) {
                    let self_loop = scc.len() == 1 && dag.contains_edge(scc[0], scc[0]);
                    if scc.len() < 2 && !self_loop {
                        continue;
                    }
                    let members: Vec<NodeId> = scc.iter().rev().map(|n| dag[*n]).collect();
                    let names: Vec<&str> = members
                        .iter()
                        .map(|m| self.nodes[m.0].0.name.as_str())
                        .collect();
                    let span = self
                        .edges
                        .iter()
                        .find(|e| {
                            e.kind == EdgeKind::Data
                                && members.contains(&e.from)
                                && members.contains(&e.to)
                        })
                        .map(|e| e.span)
                        .unwrap_or(self.nodes[members[0].0].0.span);
                    let mut chain = names.join(" → ");
                    chain.push_str(&format!(" → {}", names[0]));
                    self.diags.push(
                        Diagnostic::error(span, format!("cycle without a feedback edge: {chain}"))
                            .with_label("this edge closes the cycle")
                            .with_help(
                                "a value can only flow back to an earlier node across ticks: write \
                                 `feedback a.out -> b.in init zeros(SHAPE)` for one edge of the cycle",
                            ),
                    );
                }
                None
            }
        }
    }

    fn infer(&mut self, order: &[NodeId]) {
        let mut ok: Vec<bool> = self.miswired.iter().map(|m| !m).collect();
        // A caller of a miswired callee is left out too (its error is the callee's).
        let mut changed = true;
        while changed {
            changed = false;
            for (i, (node, _)) in self.nodes.iter().enumerate() {
                if ok[i] && node.callees.iter().any(|c| !ok[c.0]) {
                    ok[i] = false;
                    changed = true;
                }
            }
        }
        for &id in order {
            if !ok[id.0] {
                continue;
            }
            let Some(types) = self.wired_types(id, &ok) else {
                ok[id.0] = false;
                continue;
            };
            let node = Arc::clone(&self.nodes[id.0].0.node);
            let mut calls = CallInference {
                builder: self,
                caller: id,
                ok: &ok,
                depth: 0,
            };
            let result = node.infer(&types, &mut calls);
            match result {
                Ok(outputs) => {
                    if !self.accept(id, types, outputs) {
                        ok[id.0] = false;
                    }
                }
                Err(e) => {
                    ok[id.0] = false;
                    self.report_type_error(id, &types, e);
                }
            }
        }
        // Feedback edges: the init value must have the type the edge carries later.
        for e in &self.edges {
            let EdgeKind::Feedback { init } = &e.kind else {
                continue;
            };
            let Some(out) = self.nodes[e.from.0].0.output_types.get(e.from_port) else {
                continue;
            };
            let init_ty = init.value_type();
            if &init_ty != out {
                let from = &self.nodes[e.from.0].0;
                // An output one step longer than its own input along one axis
                // (a cache that appends): no init fixes that.
                let grows = match (init_ty.as_tensor(), out.as_tensor()) {
                    (Some(a), Some(b)) if a.dtype == b.dtype && a.shape.len() == b.shape.len() => {
                        let diff: Vec<(usize, usize)> = a
                            .shape
                            .iter()
                            .zip(&b.shape)
                            .filter_map(|(x, y)| match (x, y) {
                                (crate::types::Dim::Known(x), crate::types::Dim::Known(y))
                                    if x != y =>
                                {
                                    Some((*x, *y))
                                }
                                _ => None,
                            })
                            .collect();
                        matches!(diff.as_slice(), [(x, y)] if y > x)
                    }
                    _ => false,
                };
                let help = if grows {
                    "the value grows each tick (the output is longer than the input it was given): a feedback edge carries one fixed type, so keep a fixed-size cache (roll it: drop the oldest entry as the model appends one)".to_string()
                } else {
                    format!("make the init {out}")
                };
                self.diags.push(
                    Diagnostic::error(
                        e.span,
                        format!(
                            "feedback `{}.{}`: the init value is {init_ty} but the edge carries {out}",
                            from.name, from.outputs[e.from_port].name
                        ),
                    )
                    .with_help(help),
                );
            }
        }
    }

    /// Input types of a node from its feeding edges; None when a producer failed.
    fn wired_types(&self, id: NodeId, ok: &[bool]) -> Option<Vec<Option<ValueType>>> {
        let node = &self.nodes[id.0].0;
        let mut types = vec![None; node.inputs.len()];
        for ((_, port), init, _) in self.orphan_inits.iter().filter(|o| o.0.0 == id) {
            types[*port] = Some(init.value_type());
        }
        for e in self.edges.iter().filter(|e| e.to == id) {
            types[e.to_port] = match &e.kind {
                EdgeKind::Feedback { init } => Some(init.value_type()),
                EdgeKind::Data => {
                    if !ok[e.from.0] {
                        return None;
                    }
                    Some(
                        self.nodes[e.from.0]
                            .0
                            .output_types
                            .get(e.from_port)?
                            .clone(),
                    )
                }
            };
        }
        Some(types)
    }

    /// Records a node's inferred types; false (with an error) when they
    /// cannot be run: a wrong count, or an output over the tensor size limit.
    fn accept(
        &mut self,
        id: NodeId,
        types: Vec<Option<ValueType>>,
        outputs: Vec<ValueType>,
    ) -> bool {
        let node = &mut self.nodes[id.0].0;
        for (port, out) in node.outputs.iter().zip(&outputs) {
            let ValueType::Tensor(t) = out else { continue };
            let Some(shape) = t.known_shape() else {
                continue;
            };
            if let Err(e) = crate::tensor::checked_elements(&shape) {
                self.diags.push(
                    Diagnostic::error(
                        node.span,
                        format!("output `{}.{}` would be {t}: {e}", node.name, port.name),
                    )
                    .with_help("check the sizes feeding this node"),
                );
                return false;
            }
        }
        if outputs.len() != node.outputs.len() {
            self.diags.push(Diagnostic::error(
                node.span,
                format!(
                    "internal: `{}` ({}) inferred {} output types for {} outputs",
                    node.name,
                    node.kind,
                    outputs.len(),
                    node.outputs.len()
                ),
            ));
            return false;
        }
        node.input_types = types;
        node.output_types = outputs;
        true
    }

    /// The parameter that fixes the type of output `port` of node `id`, and
    /// where it is written ([`Node::output_set_by`]).
    fn set_by(&self, id: NodeId, port: usize) -> Option<(&'static str, Span)> {
        let node = &self.nodes[id.0].0;
        let param = node.node.output_set_by(port)?;
        Some((param, node.params.span(param)?))
    }

    /// A callee rejected argument `arg` of its call, of type `ty`: when that
    /// argument is a value the caller received on a data edge from an
    /// output a parameter fixes (a sampler's `noise`, passed on as `x`),
    /// the error is reported once, at that parameter. True when reported.
    fn report_at_call_origin(
        &mut self,
        caller: NodeId,
        callee: NodeId,
        arg: &str,
        ty: &ValueType,
        e: &TypeError,
    ) -> bool {
        let Some(edge) = self.edges.iter().find(|x| {
            x.to == caller
                && x.kind == EdgeKind::Data
                && self.nodes[x.from.0].0.output_types.get(x.from_port) == Some(ty)
                && self.set_by(x.from, x.from_port).is_some()
        }) else {
            return false;
        };
        let Some((param, span)) = self.set_by(edge.from, edge.from_port) else {
            return false;
        };
        let (caller, callee, from) = (
            &self.nodes[caller.0].0,
            &self.nodes[callee.0].0,
            &self.nodes[edge.from.0].0,
        );
        let from_port = format!(
            "{}.{}",
            from.name,
            port_syntax(&from.outputs[edge.from_port].name)
        );
        let input = port_syntax(&caller.inputs[edge.to_port].name);
        self.diags.push(
            Diagnostic::error(
                span,
                format!(
                    "type mismatch: `{}` ({}) calls `{}` ({}) with its `{input}` as `{arg}`: {}",
                    caller.name, caller.kind, callee.name, callee.kind, e.message
                ),
            )
            .with_label(format!("`{}.{param}` makes `{from_port}` {ty}", from.name))
            .with_secondary(
                edge.span,
                format!("`{from_port}` feeds `{}.{input}` here", caller.name),
            )
            .with_secondary(
                callee.span,
                format!("`{}` ({}) declared here", callee.name, callee.kind),
            ),
        );
        true
    }

    fn report_type_error(&mut self, id: NodeId, types: &[Option<ValueType>], e: TypeError) {
        if e.consequence {
            return;
        }
        let node = &self.nodes[id.0].0;
        let owner = format!("`{}` ({})", node.name, node.kind);
        let d = match e.input {
            Some(i) if i < node.inputs.len() => {
                let port = &node.inputs[i];
                match self
                    .edges
                    .iter()
                    .enumerate()
                    .find(|(_, x)| x.to == id && x.to_port == i)
                {
                    Some((index, edge)) => {
                        let from = &self.nodes[edge.from.0].0;
                        let found = types[i]
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default();
                        let from_port = format!(
                            "{}.{}",
                            from.name,
                            port_syntax(&from.outputs[edge.from_port].name)
                        );
                        let message = format!(
                            "type mismatch at input `{}.{}`: {}",
                            node.name,
                            port_syntax(&port.name),
                            e.message
                        );
                        let init = self.init_spans.get(&index).copied();
                        let set_by = self.set_by(edge.from, edge.from_port);
                        match (&edge.kind, init, set_by) {
                            // Tick 0's value is the init, not the producer's output.
                            (EdgeKind::Feedback { .. }, Some(init), _) => {
                                Diagnostic::error(init, message)
                                    .with_label(format!(
                                        "the init, the value of `{from_port}` on tick 0, is {found}"
                                    ))
                                    .with_secondary(node.span, format!("{owner} declared here"))
                            }
                            // The value's type was written in a parameter: say where.
                            (EdgeKind::Data, _, Some((param, span))) => {
                                Diagnostic::error(edge.span, message)
                                    .with_label(format!("`{from_port}` gives {found}"))
                                    .with_secondary(
                                        span,
                                        format!("`{}.{param}` makes it {found}", from.name),
                                    )
                                    .with_secondary(node.span, format!("{owner} declared here"))
                            }
                            _ => Diagnostic::error(edge.span, message)
                                .with_label(format!("`{from_port}` gives {found}"))
                                .with_secondary(node.span, format!("{owner} declared here")),
                        }
                    }
                    None => match self.orphan_inits.iter().find(|o| o.0 == (id, i)) {
                        Some((_, init, span)) => Diagnostic::error(
                            *span,
                            format!(
                                "type mismatch at input `{}.{}`: {}",
                                node.name,
                                port_syntax(&port.name),
                                e.message
                            ),
                        )
                        .with_label(format!(
                            "the init, tick 0's value, is {}",
                            init.value_type()
                        ))
                        .with_secondary(node.span, format!("{owner} declared here")),
                        None => Diagnostic::error(
                            node.span,
                            format!("{owner}, input `{}`: {}", port.name, e.message),
                        ),
                    },
                }
            }
            _ => Diagnostic::error(node.span, format!("{owner}: {}", e.message)),
        };
        self.diags.push(d);
    }
}

/// Infers a callee's outputs for its caller, with the callee's wired inputs.
struct CallInference<'b, 'a> {
    builder: &'b mut Builder<'a>,
    caller: NodeId,
    ok: &'b [bool],
    depth: usize,
}

impl InferCalls for CallInference<'_, '_> {
    fn callee_prediction(&self, index: usize) -> Option<crate::node::Prediction> {
        let caller = &self.builder.nodes[self.caller.0].0;
        let callee = caller.callees.get(index)?;
        self.builder.nodes[callee.0].0.node.prediction()
    }

    fn callee_outputs(&self, index: usize) -> Vec<String> {
        let caller = &self.builder.nodes[self.caller.0].0;
        caller
            .callees
            .get(index)
            .map(|c| {
                self.builder.nodes[c.0]
                    .0
                    .outputs
                    .iter()
                    .map(|p| p.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn infer_call(
        &mut self,
        index: usize,
        args: &[ValueType],
    ) -> Result<Vec<ValueType>, TypeError> {
        let caller = &self.builder.nodes[self.caller.0].0;
        let (Some(&callee), Some(slots)) =
            (caller.callees.get(index), caller.call_arg_slots.get(index))
        else {
            return Err(TypeError::node(format!("internal: no callable #{index}")));
        };
        let slots = slots.clone();
        if args.len() != slots.len() {
            return Err(TypeError::node(format!(
                "internal: callable #{index} takes {} arguments, {} given",
                slots.len(),
                args.len()
            )));
        }
        if self.depth > 32 {
            return Err(TypeError::node("calls nested deeper than 32 levels"));
        }
        let Some(mut types) = self.builder.wired_types(callee, self.ok) else {
            return Err(TypeError::consequence_of(
                "a node feeding the callee failed its own check",
            ));
        };
        for (slot, ty) in slots.iter().zip(args) {
            types[*slot] = Some(ty.clone());
        }
        let node = Arc::clone(&self.builder.nodes[callee.0].0.node);
        let mut nested = CallInference {
            builder: &mut *self.builder,
            caller: callee,
            ok: self.ok,
            depth: self.depth + 1,
        };
        match node.infer(&types, &mut nested) {
            Ok(outputs) => {
                self.builder.accept(callee, types, outputs.clone());
                Ok(outputs)
            }
            Err(e) => {
                let callee_name = self.builder.nodes[callee.0].0.name.clone();
                // An argument the callee refused that came from a parameter
                // (a sampler's noise `shape`): one error, at that parameter.
                let refused = e.input.and_then(|i| {
                    let k = slots.iter().position(|s| *s == i)?;
                    let arg = self.builder.nodes[callee.0].0.inputs[i].name.clone();
                    Some((arg, args.get(k)?.clone()))
                });
                if !e.consequence
                    && let Some((arg, ty)) = refused
                    && self
                        .builder
                        .report_at_call_origin(self.caller, callee, &arg, &ty, &e)
                {
                    return Err(TypeError::consequence_of(format!(
                        "its callable `{callee_name}` rejected the call (reported at the value's origin)"
                    )));
                }
                self.builder.report_type_error(callee, &types, e.clone());
                Err(TypeError::node(format!(
                    "its callable `{callee_name}` rejected the call: {}",
                    e.message
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every contract key a `model` declaration can carry is one of its
    /// checked options, so the graph parser accepts and types it.
    #[test]
    fn every_contract_key_is_a_model_option() {
        for key in CONTRACT_KEYS {
            let spec = MODEL_OPTIONS.iter().find(|s| s.name == key);
            assert!(spec.is_some(), "`{key}` is not in MODEL_OPTIONS");
            assert_eq!(spec.and_then(|s| s.default), Some(Default::Absent), "{key}");
        }
    }
}
