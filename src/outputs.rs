//! What a run may write: the library's rules ([`wgraph_session::outputs`])
//! and the note, printed on stderr, that a live world's file sinks are
//! skipped.

use wgraph_engine::graph::Graph;
use wgraph_engine::node::OutputConfig;
pub use wgraph_session::outputs::{front_end, run};

/// Says once, on stderr, what a live world without `--out` does not write
/// (`label` names the world): nothing when it writes everything or has
/// nothing to write.
pub fn note_skipped(label: &str, graph: &Graph, output: &OutputConfig, frames_skipped: bool) {
    if let Some(note) = wgraph_session::outputs::skipped_note(label, graph, output, frames_skipped)
    {
        eprintln!("{note}");
    }
}
