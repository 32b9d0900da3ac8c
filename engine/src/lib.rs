//! wgraph's engine: from a parsed `.world` graph to ticks.
//!
//! The pipeline, with the main type of each step:
//!
//! - [`load::load`] — the front door: a graph file with its includes and
//!   the command line's changes, parsed, validated and built in one call
//!   that every caller uses;
//! - [`registry::Registry`] — the table of [`node::NodeKind`]s a graph may use;
//! - [`build::build_graph`] — checks a parsed [`wgraph_grammar::ast::Graph`]
//!   (settings, parameters, files, wiring, cycles, types) and returns a
//!   [`graph::Graph`] or every error as located diagnostics;
//! - [`schedule::Runner`] — owns per-node [`node::State`] and runs ticks,
//!   inline or on a worker pool with pipelining, collecting
//!   [`metrics::Metrics`];
//! - [`world::World`] — a live session around a runner: runs until stopped,
//!   takes keys and parameter changes between ticks, hot-reloads its graph
//!   ([`reload`]: diff and state-carrying swap), and hands frames, ticks and
//!   reload events to any number of subscribers;
//! - [`describe`] — JSON / dot / Mermaid exports of a built graph.
//!
//! Values on edges are [`value::Value`]s (mostly [`tensor::Tensor`]s) whose
//! static [`types::ValueType`]s are checked at build time.
//!
//! API boundary: this crate knows the grammar's AST but nothing of specific
//! node kinds (those live in `wgraph-nodes`), of the CLI, or of terminals.

pub mod batch;
pub mod build;
/// Reading user-named files: regular files only, size limits (from the grammar crate).
pub use wgraph_grammar::input;
pub mod describe;
pub mod frame;
pub mod graph;
pub mod load;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod model_ports;
pub mod node;
pub mod npy;
pub mod onnx_data;
pub mod output;
pub mod params;
pub mod registry;
pub mod reload;
pub mod schedule;
pub mod settings;
pub mod snapshot;
pub mod tensor;
pub mod transfers;
pub mod types;
pub mod value;
pub mod world;
