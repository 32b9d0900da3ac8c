//! The spanned syntax tree of a `.world` file.
//!
//! Every node of the tree keeps the [`Span`] it was parsed from, so that the
//! engine can point at the exact text when a later check (an unknown node kind,
//! a shape mismatch between two ports, ...) fails. Nothing here knows what a
//! node kind *means*; that is the engine's job.
//!
//! The main types:
//! - [`WorldFile`]: one parsed file, a list of [`Statement`]s;
//! - [`Graph`]: all statements of a root file and its includes, merged;
//! - [`Value`]: a parameter value (number, string, list, size, record, node reference...).

use crate::source::{FileId, Span};

/// A name written in a graph file (a node, a model, a parameter, a port),
/// with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// One parsed `.world` file.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldFile {
    pub file: FileId,
    pub statements: Vec<Statement>,
}

/// A top-level statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `world { seed = 1  fps = 8 ... }`
    Settings(Record),
    /// `include "parts/sim.world"`
    Include(Include),
    /// `model vae = "vae.onnx" { provider = cpu }`
    Model(ModelDecl),
    /// `node sampler: euler { steps = 4 }`
    Node(NodeDecl),
    /// `a.out -> b.in`
    Edge(Edge),
    /// `feedback a.out -> b.in init zeros(1x4x8x8)`
    Feedback(Feedback),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    /// The path exactly as written (relative to the including file).
    pub path: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelDecl {
    pub name: Ident,
    /// The model file path as written, relative to the file that declares it.
    pub path: String,
    pub path_span: Span,
    pub options: Record,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeDecl {
    pub name: Ident,
    pub kind: Ident,
    pub params: Record,
    pub span: Span,
}

/// `node.port`, or just `node` when the node has a single port on that side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRef {
    pub node: Ident,
    pub port: Option<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: PortRef,
    pub to: PortRef,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub from: PortRef,
    pub to: PortRef,
    pub init: Init,
    pub span: Span,
}

/// The value a feedback edge carries on the first tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// `zeros(1x4x8x8)`
    Zeros { shape: Vec<DimExpr>, span: Span },
    /// `fill(0.5, 1x4x8x8)`
    Fill {
        value: f64,
        shape: Vec<DimExpr>,
        span: Span,
    },
    /// `npy("start_latent.npy")`, relative to the file that declares it.
    Npy { path: String, span: Span },
}

impl Init {
    pub fn span(&self) -> Span {
        match self {
            Init::Zeros { span, .. } | Init::Fill { span, .. } | Init::Npy { span, .. } => *span,
        }
    }
}

/// One dimension of a size literal or shape list: a number, or a symbol such
/// as `H` that the engine resolves from the `world` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DimExpr {
    Known(u64),
    Symbol(String),
}

/// `{ key = value ... }`: parameters of a node, options of a model, settings.
/// Keys are unique (the parser rejects a repeated key).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub entries: Vec<Entry>,
    pub span: Span,
}

impl Record {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key.name == key)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: Ident,
    pub value: Value,
}

/// A parameter value with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// An integer literal: `4`, `-1`.
    Int(i64),
    /// A literal with a fraction or exponent: `7.0`, `1e-3`.
    Float(f64),
    Bool(bool),
    /// `"text"`, escapes resolved.
    Str(String),
    /// A bare identifier: an enum value (`cpu`, `trailing`) or a dimension symbol (`H`).
    Ident(String),
    /// `64x64`, `1x3xHxW`.
    Size(Vec<DimExpr>),
    /// `[1, 2, 3]`
    List(Vec<Value>),
    /// `{ scale = 5.0 }`
    Record(Record),
    /// `@denoiser`: another node of the graph, used as a callable.
    NodeRef(String),
}

impl ValueKind {
    /// A readable name for messages ("expected a number, found a string").
    pub fn describe(&self) -> &'static str {
        match self {
            ValueKind::Int(_) => "an integer",
            ValueKind::Float(_) => "a number",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::Str(_) => "a string",
            ValueKind::Ident(_) => "an identifier",
            ValueKind::Size(_) => "a size",
            ValueKind::List(_) => "a list",
            ValueKind::Record(_) => "a record",
            ValueKind::NodeRef(_) => "a node reference",
        }
    }
}

/// The statements of a root file and all the files it includes, in include
/// order (an included file's statements come where its `include` stood).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    pub root: Option<FileId>,
    pub statements: Vec<Statement>,
}
