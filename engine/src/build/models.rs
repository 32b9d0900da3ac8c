//! Model declarations (build phases 2–3 for `model`): [`MODEL_OPTIONS`],
//! the options a `model` declaration takes, and [`MODEL_ROLES`]; the
//! builder's `models`, which checks each declaration's options, loads it
//! through the caller's backend (two declarations of one file with the same
//! options share one session) and checks its port mappings and adaptation.

use super::Builder;
use crate::graph::ModelInfo;
use crate::model::{BackendKind, ModelOptions, ModelTable, Provider};
use crate::params::{Default, ParamContext, ParamSpec, ParamType, Params, check_params};
use crate::settings::{BACKENDS, PROVIDERS, Settings};
use std::sync::Arc;
use wgraph_grammar::ast::{self, Statement};
use wgraph_grammar::diagnostic::Diagnostic;
use wgraph_grammar::source::Span;

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
pub(super) const CONTRACT_KEYS: [&str; 11] = [
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

impl Builder<'_> {
    pub(super) fn models(
        &mut self,
        parsed: &ast::Graph,
        settings: &Settings,
    ) -> (Vec<ModelInfo>, ModelTable) {
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

    pub(super) fn load_model(
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
    pub(super) fn check_adaptation(
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
}
