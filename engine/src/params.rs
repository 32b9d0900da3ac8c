//! Parameter specifications and checked parameter values.
//!
//! A node kind lists its parameters as [`ParamSpec`]s. The engine checks the
//! parameters written in a graph file against that table *statically* (no file
//! is opened): unknown names, missing required ones, wrong value types,
//! unknown enum choices, unresolvable shape symbols. What passes becomes a
//! [`Params`] map of [`ParamValue`]s that a kind's `build` reads with typed
//! getters; the same table checks `world { }` settings and model options.

use crate::settings::Settings;
use std::collections::BTreeMap;
use std::path::PathBuf;
use wgraph_grammar::ast::{DimExpr, Record, ValueKind};
/// The syntax types a `Record` parameter holds, re-exported so node kinds
/// can read records without depending on the grammar crate.
pub use wgraph_grammar::ast::{
    Entry as AstEntry, Ident as AstIdent, Record as AstRecord, Value as AstValue,
    ValueKind as AstValueKind,
};
use wgraph_grammar::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use wgraph_grammar::source::{SourceMap, Span};

/// What a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Int,
    /// A number (integers are accepted).
    Float,
    Bool,
    Str,
    /// A file path, resolved relative to the file that declares the node.
    Path,
    /// A path a sink writes, relative to the run's output directory; one
    /// that could leave it (absolute, or with `..`) is refused where it is
    /// written ([`crate::output::check_relative`]). Read as a string.
    OutPath,
    /// A part of a file name a sink writes (a prefix): no `/` or `\`.
    /// Read as a string.
    FileName,
    /// One identifier out of a fixed set.
    Choice(&'static [&'static str]),
    /// A tensor shape: a size literal (`1x3xHxW`) or a list of integers and
    /// symbols; `H`, `W` and `F` are resolved from the world settings.
    Shape,
    /// `@node`: another node of the graph, used as a callable.
    NodeRef,
    /// The name of a `model` declaration.
    ModelRef,
    /// A list of `model` declaration names: `[block0, block1]`.
    ModelRefList,
    /// A list of integers: `[1, 2]` (may be empty).
    IntList,
    /// A list of strings.
    StrList,
    /// A list of numbers: `[0.1, 0.8, 0.1]`.
    FloatList,
    /// A record, passed through for the kind to read.
    Record,
}

impl ParamType {
    /// Readable name for messages.
    pub fn describe(&self) -> String {
        match self {
            ParamType::Int => "an integer".into(),
            ParamType::Float => "a number".into(),
            ParamType::Bool => "a boolean (true or false)".into(),
            ParamType::Str => "a string".into(),
            ParamType::Path => "a file path string".into(),
            ParamType::OutPath => "a path string, relative to the run's output directory".into(),
            ParamType::FileName => "a file name string (no `/`)".into(),
            ParamType::Choice(c) => format!("one of {}", c.join(", ")),
            ParamType::Shape => "a shape like 1x3x64x64 or [1, 3, H, W]".into(),
            ParamType::NodeRef => "a node reference like @denoiser".into(),
            ParamType::ModelRef => "the name of a model".into(),
            ParamType::ModelRefList => "a list of model names like [block0, block1]".into(),
            ParamType::IntList => "a list of integers like [1, 2]".into(),
            ParamType::StrList => "a list of strings".into(),
            ParamType::FloatList => "a list of numbers like [0.1, 0.8, 0.1]".into(),
            ParamType::Record => "a record { key = value }".into(),
        }
    }
}

/// A default value for an optional parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'static str),
    Choice(&'static str),
    /// Optional with no value: the kind decides what absence means (its
    /// getter returns an error the kind turns into its own default).
    Absent,
}

/// One row of a node kind's parameter table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    /// `None`: the parameter is required.
    pub default: Option<Default>,
    pub doc: &'static str,
}

impl ParamSpec {
    pub const fn required(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        ParamSpec {
            name,
            ty,
            default: None,
            doc,
        }
    }
    pub const fn optional(
        name: &'static str,
        ty: ParamType,
        default: Default,
        doc: &'static str,
    ) -> Self {
        ParamSpec {
            name,
            ty,
            default: Some(default),
            doc,
        }
    }
}

/// A checked parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Path(PathBuf),
    Choice(String),
    Shape(Vec<usize>),
    NodeRef(String),
    ModelRef(String),
    ModelRefList(Vec<String>),
    IntList(Vec<i64>),
    StrList(Vec<String>),
    FloatList(Vec<f64>),
    Record(Record),
}

impl ParamValue {
    /// The value as JSON (for `wgraph graph --format json`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            ParamValue::Int(v) => json!(v),
            ParamValue::Float(v) => json!(v),
            ParamValue::Bool(v) => json!(v),
            ParamValue::Str(v) | ParamValue::Choice(v) => json!(v),
            ParamValue::Path(p) => json!(p.display().to_string()),
            ParamValue::Shape(s) => json!(s),
            ParamValue::NodeRef(n) => json!(format!("@{n}")),
            ParamValue::ModelRef(m) => json!(m),
            ParamValue::ModelRefList(l) => json!(l),
            ParamValue::IntList(l) => json!(l),
            ParamValue::StrList(l) => json!(l),
            ParamValue::FloatList(l) => json!(l),
            ParamValue::Record(r) => record_to_json(r),
        }
    }
}

impl ParamValue {
    /// The models this value names (`ModelRef`, `ModelRefList`): what a
    /// node using it depends on.
    pub fn model_names(&self) -> Vec<&str> {
        match self {
            ParamValue::ModelRef(m) => vec![m.as_str()],
            ParamValue::ModelRefList(l) => l.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

fn record_to_json(r: &Record) -> serde_json::Value {
    serde_json::Value::Object(
        r.entries
            .iter()
            .map(|e| (e.key.name.clone(), ast_to_json(&e.value)))
            .collect(),
    )
}

fn ast_to_json(v: &AstValue) -> serde_json::Value {
    use serde_json::json;
    match &v.kind {
        ValueKind::Int(i) => json!(i),
        ValueKind::Float(f) => json!(f),
        ValueKind::Bool(b) => json!(b),
        ValueKind::Str(s) | ValueKind::Ident(s) => json!(s),
        ValueKind::Size(d) => json!(
            d.iter()
                .map(|d| match d {
                    DimExpr::Known(n) => json!(n),
                    DimExpr::Symbol(s) => json!(s),
                })
                .collect::<Vec<_>>()
        ),
        ValueKind::List(l) => json!(l.iter().map(ast_to_json).collect::<Vec<_>>()),
        ValueKind::Record(r) => record_to_json(r),
        ValueKind::NodeRef(n) => json!(format!("@{n}")),
    }
}

/// Checked parameters of one node (or settings, or model options), with the
/// span each value was written at (for errors found later, while building).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: BTreeMap<&'static str, (ParamValue, Option<Span>)>,
}

/// A parameter a kind asked for that its own table does not provide: a bug in
/// the kind, reported as an error rather than a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parameter `{0}` is not available as {1}")]
pub struct ParamAccessError(pub String, pub &'static str);

macro_rules! getter {
    ($fn:ident, $variant:ident, $ty:ty, $what:literal) => {
        #[doc = concat!("The value of a parameter declared as ", $what, ".")]
        pub fn $fn(&self, name: &str) -> Result<$ty, ParamAccessError> {
            match self.get(name) {
                Some(ParamValue::$variant(v)) => Ok(v.clone()),
                _ => Err(ParamAccessError(name.to_string(), $what)),
            }
        }
    };
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.get(name).map(|(v, _)| v)
    }

    /// Where the value was written (None for defaults).
    pub fn span(&self, name: &str) -> Option<Span> {
        self.values.get(name).and_then(|(_, s)| *s)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &ParamValue)> {
        self.values.iter().map(|(k, (v, _))| (*k, v))
    }

    /// Sets a value (used for defaults and by tests that build nodes directly).
    pub fn insert(&mut self, name: &'static str, value: ParamValue, span: Option<Span>) {
        self.values.insert(name, (value, span));
    }

    getter!(int, Int, i64, "an integer");
    getter!(bool, Bool, bool, "a boolean");
    getter!(string, Str, String, "a string");
    getter!(path, Path, PathBuf, "a path");
    getter!(choice, Choice, String, "a choice");
    getter!(shape, Shape, Vec<usize>, "a shape");
    getter!(node_ref, NodeRef, String, "a node reference");
    getter!(model_ref, ModelRef, String, "a model name");
    getter!(
        model_ref_list,
        ModelRefList,
        Vec<String>,
        "a list of model names"
    );
    getter!(int_list, IntList, Vec<i64>, "a list of integers");
    getter!(str_list, StrList, Vec<String>, "a list of strings");
    getter!(float_list, FloatList, Vec<f64>, "a list of numbers");
    getter!(record, Record, Record, "a record");

    /// A number parameter (declared Float; integers were widened).
    pub fn float(&self, name: &str) -> Result<f64, ParamAccessError> {
        match self.get(name) {
            Some(ParamValue::Float(v)) => Ok(*v),
            Some(ParamValue::Int(v)) => Ok(*v as f64),
            _ => Err(ParamAccessError(name.to_string(), "a number")),
        }
    }

    /// Like [`Params::float`] but `None` when the parameter is absent.
    pub fn opt_float(&self, name: &str) -> Option<f64> {
        self.float(name).ok()
    }
}

/// What parameter checking needs besides the spec table.
pub struct ParamContext<'a> {
    pub sources: &'a SourceMap,
    /// Resolves `H`, `W`, `F` in shapes.
    pub settings: Option<&'a Settings>,
    /// What the record belongs to, for messages: "node `sampler` (euler)".
    pub owner: String,
}

/// Checks a written record against a spec table; collects every problem.
pub fn check_params(
    specs: &[ParamSpec],
    record: &Record,
    owner_span: Span,
    cx: &ParamContext<'_>,
    diags: &mut Diagnostics,
) -> Params {
    let mut params = Params::default();
    for entry in &record.entries {
        let Some(spec) = specs.iter().find(|s| s.name == entry.key.name) else {
            let mut d = Diagnostic::error(
                entry.key.span,
                format!("unknown parameter `{}` for {}", entry.key.name, cx.owner),
            )
            .with_label("not a parameter of this kind");
            let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
            d = match did_you_mean(&entry.key.name, names.iter().copied()) {
                Some(h) => d.with_help(h),
                None if names.is_empty() => d.with_help("this kind takes no parameters"),
                None => d.with_help(format!("parameters: {}", names.join(", "))),
            };
            diags.push(d);
            continue;
        };
        match convert(spec, &entry.value, cx) {
            Ok(v) => params.insert(spec.name, v, Some(entry.value.span)),
            Err(d) => diags.push(d),
        }
    }
    for spec in specs {
        if params.get(spec.name).is_some() || record.get(spec.name).is_some() {
            continue;
        }
        match spec.default {
            None => diags.push(
                Diagnostic::error(
                    owner_span,
                    format!("missing parameter `{}` for {}", spec.name, cx.owner),
                )
                .with_label(format!("add `{} = ...`", spec.name))
                .with_help(format!(
                    "`{}` is {}: {}",
                    spec.name,
                    spec.ty.describe(),
                    spec.doc
                )),
            ),
            Some(default) => {
                let v = match default {
                    Default::Int(i) => ParamValue::Int(i),
                    Default::Float(f) => ParamValue::Float(f),
                    Default::Bool(b) => ParamValue::Bool(b),
                    Default::Str(s) => ParamValue::Str(s.to_string()),
                    Default::Choice(c) => ParamValue::Choice(c.to_string()),
                    Default::Absent => continue,
                };
                params.insert(spec.name, v, None);
            }
        }
    }
    params
}

fn convert(
    spec: &ParamSpec,
    v: &AstValue,
    cx: &ParamContext<'_>,
) -> Result<ParamValue, Diagnostic> {
    let mismatch = || {
        Diagnostic::error(
            v.span,
            format!(
                "parameter `{}` of {} expects {}, found {}",
                spec.name,
                cx.owner,
                spec.ty.describe(),
                v.kind.describe()
            ),
        )
        .with_label(format!("expected {}", spec.ty.describe()))
    };
    Ok(match (&spec.ty, &v.kind) {
        (ParamType::Int, ValueKind::Int(i)) => ParamValue::Int(*i),
        (ParamType::Float, ValueKind::Int(i)) => ParamValue::Float(*i as f64),
        (ParamType::Float, ValueKind::Float(f)) => ParamValue::Float(*f),
        (ParamType::Bool, ValueKind::Bool(b)) => ParamValue::Bool(*b),
        (ParamType::Str, ValueKind::Str(s)) => ParamValue::Str(s.clone()),
        (ParamType::OutPath, ValueKind::Str(s)) => {
            if let Err(why) = crate::output::check_relative(std::path::Path::new(s)) {
                return Err(Diagnostic::error(
                    v.span,
                    format!(
                        "`{}` of {} must stay inside the run's output directory, but `{s}` {why}",
                        spec.name, cx.owner
                    ),
                )
                .with_label("outside the output directory")
                .with_help(
                    "output paths are relative to the run's output directory; \
                     choose that directory with `--out DIR`",
                ));
            }
            ParamValue::Str(s.clone())
        }
        (ParamType::FileName, ValueKind::Str(s)) => {
            if let Err(c) = crate::output::check_name_part(s) {
                return Err(Diagnostic::error(
                    v.span,
                    format!(
                        "`{}` of {} is part of a file name and may not contain {}",
                        spec.name,
                        cx.owner,
                        if c == '\0' {
                            "a NUL character".to_string()
                        } else {
                            format!("`{c}`")
                        }
                    ),
                )
                .with_label("not a file name")
                .with_help("directories go in the sink's `dir`"));
            }
            ParamValue::Str(s.clone())
        }
        (ParamType::Path, ValueKind::Str(s)) => {
            let base = cx.sources.get(v.span.file).base_dir();
            ParamValue::Path(base.join(s))
        }
        (ParamType::Choice(choices), ValueKind::Ident(s) | ValueKind::Str(s)) => {
            if choices.contains(&s.as_str()) {
                ParamValue::Choice(s.clone())
            } else {
                let d = Diagnostic::error(
                    v.span,
                    format!(
                        "`{s}` is not a valid value for `{}` of {}",
                        spec.name, cx.owner
                    ),
                )
                .with_label(format!("expected one of {}", choices.join(", ")));
                return Err(match did_you_mean(s, choices.iter().copied()) {
                    Some(h) => d.with_help(h),
                    None => d,
                });
            }
        }
        (ParamType::Shape, ValueKind::Size(dims)) => {
            ParamValue::Shape(resolve_dims(dims.iter().cloned(), v.span, cx)?)
        }
        (ParamType::Shape, ValueKind::List(items)) => {
            let mut dims = Vec::new();
            for item in items {
                dims.push(match &item.kind {
                    ValueKind::Int(i) if *i >= 0 => DimExpr::Known(*i as u64),
                    ValueKind::Ident(s) => DimExpr::Symbol(s.clone()),
                    _ => {
                        return Err(Diagnostic::error(
                            item.span,
                            format!(
                                "a dimension of `{}` must be a non-negative integer or H, W, F; found {}",
                                spec.name,
                                item.kind.describe()
                            ),
                        ));
                    }
                });
            }
            ParamValue::Shape(resolve_dims(dims.into_iter(), v.span, cx)?)
        }
        (ParamType::NodeRef, ValueKind::NodeRef(n)) => ParamValue::NodeRef(n.clone()),
        (ParamType::ModelRef, ValueKind::Ident(n) | ValueKind::Str(n)) => {
            ParamValue::ModelRef(n.clone())
        }
        (ParamType::ModelRefList, ValueKind::List(items)) => {
            let mut out = Vec::new();
            for item in items {
                match &item.kind {
                    ValueKind::Ident(n) | ValueKind::Str(n) => out.push(n.clone()),
                    other => {
                        return Err(Diagnostic::error(
                            item.span,
                            format!(
                                "`{}` of {} is a list of model names; found {}",
                                spec.name,
                                cx.owner,
                                other.describe()
                            ),
                        )
                        .with_label("expected the name of a `model` declaration"));
                    }
                }
            }
            ParamValue::ModelRefList(out)
        }
        (ParamType::IntList, ValueKind::List(items)) => {
            let mut out = Vec::new();
            for item in items {
                match &item.kind {
                    ValueKind::Int(i) => out.push(*i),
                    other => {
                        return Err(Diagnostic::error(
                            item.span,
                            format!(
                                "`{}` of {} is a list of integers; found {}",
                                spec.name,
                                cx.owner,
                                other.describe()
                            ),
                        )
                        .with_label("expected an integer"));
                    }
                }
            }
            ParamValue::IntList(out)
        }
        (ParamType::StrList, ValueKind::List(items)) => {
            let mut out = Vec::new();
            for item in items {
                match &item.kind {
                    ValueKind::Str(s) => out.push(s.clone()),
                    other => {
                        return Err(Diagnostic::error(
                            item.span,
                            format!(
                                "`{}` of {} is a list of strings; found {}",
                                spec.name,
                                cx.owner,
                                other.describe()
                            ),
                        ));
                    }
                }
            }
            ParamValue::StrList(out)
        }
        (ParamType::FloatList, ValueKind::List(items)) => {
            let mut out = Vec::new();
            for item in items {
                match &item.kind {
                    ValueKind::Float(f) if f.is_finite() => out.push(*f),
                    ValueKind::Int(i) => out.push(*i as f64),
                    other => {
                        return Err(Diagnostic::error(
                            item.span,
                            format!(
                                "`{}` of {} is a list of numbers; found {}",
                                spec.name,
                                cx.owner,
                                other.describe()
                            ),
                        ));
                    }
                }
            }
            ParamValue::FloatList(out)
        }
        (ParamType::Record, ValueKind::Record(r)) => ParamValue::Record(r.clone()),
        _ => return Err(mismatch()),
    })
}

fn resolve_dims(
    dims: impl Iterator<Item = DimExpr>,
    span: Span,
    cx: &ParamContext<'_>,
) -> Result<Vec<usize>, Diagnostic> {
    dims.map(|d| match d {
        DimExpr::Known(n) => usize::try_from(n)
            .map_err(|_| Diagnostic::error(span, format!("dimension {n} is too large"))),
        DimExpr::Symbol(s) => cx.settings.and_then(|st| st.dim(&s)).ok_or_else(|| {
            Diagnostic::error(span, format!("unknown dimension symbol `{s}`")).with_help(
                "shapes may use H and W (from `resolution`) and F (from `frames_per_tick`)",
            )
        }),
    })
    .collect()
}
