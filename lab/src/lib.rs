//! wgraph's laboratory: everything that measures a world rather than runs one.
//!
//! The binary's `eval`, `bench`, `loadtest`, `blocks` and `kernels`
//! commands are flags and wiring over this crate: each entry point here
//! takes an options struct (plain data, no command-line types) and returns
//! a serializable report, or a [`LabError`] the binary maps to an exit code.
//!
//! # Modules
//! - [`load`]: graphs loaded with the caller's [`load::Models`].
//! - [`quality`]: frame metrics (PSNR, SSIM, detail) and strips.
//! - [`plot`]: line plots drawn as SVG and rasterised to PNG.
//! - [`eval`]: a graph's rollouts scored against the ground-truth world.
//! - [`swap`]: samplers swapped in one graph, each evaluated in memory.
//! - [`bench`]: one graph's tick timings (and the Python baseline, [`pybaseline`]).
//! - [`blocks`]: the block cache's accuracy/speed trade-off.
//! - [`players`]: many sessions of one graph in one process, batched or not.
//! - [`dataset`]: ground-truth episodes written as training data.
//! - [`loadtest`]: scripted players against a running `wgraph serve`.
//! - [`kernels`]: the step-math cases timed and checked on a device.
//!
//! # Dependency rule
//! The lab depends on the engine, the node kinds, the session, the
//! ground-truth and the step-math kernels crates; never on the binary or
//! the web server. Models are loaded through the `Backend` the caller
//! passes in.

pub mod bench;
pub mod blocks;
pub mod dataset;
pub mod eval;
pub mod kernels;
pub mod load;
pub mod loadtest;
pub mod players;
pub mod plot;
pub mod pybaseline;
pub mod quality;
pub mod swap;

/// Why a lab entry point failed; the binary maps each to an exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// The graph did not load: its diagnostics, rendered as `wgraph check`
    /// prints them (exit code 1).
    #[error("{0}")]
    Graph(String),
    /// An option that is not what it should be (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The run failed after it started (exit code 3).
    #[error("{0}")]
    Runtime(String),
}

impl From<wgraph_session::Failure> for LabError {
    fn from(failure: wgraph_session::Failure) -> Self {
        match failure {
            wgraph_session::Failure::Errors(text) => LabError::Graph(text),
            wgraph_session::Failure::Usage(text) => LabError::Usage(text),
        }
    }
}
