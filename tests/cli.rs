//! The `wgraph` binary, driven as a user would: one integration-test binary
//! (one build, one link), one module file per command or area under
//! `tests/cli/`; the helpers they share are in `tests/cli/support.rs`.
//!
//! A test that needs something installed installs it first, once per run
//! (`chromium()`, `ensure_vulkan()`), so `cargo test --workspace
//! --all-features` passes on a fresh machine whatever order the tests run
//! in. No test counts frames or ticks per second of wall-clock: counts are
//! against the ticks actually run, and time limits only catch hangs.
//!
//! One area: `cargo test --workspace --all-features --test cli -- live::`.

#[path = "cli/support.rs"]
mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The in-tree fuzzer (also run long by `examples/fuzz_check.rs`).
#[path = "fuzz/mod.rs"]
mod fuzz;

// Graph files.

/// `wgraph check`: shipped graphs, broken fixtures, arbitrary bytes.
#[path = "cli/check.rs"]
mod check;

/// `wgraph graph`: JSON, DOT, Mermaid.
#[path = "cli/graph.rs"]
mod graph;

/// A new user's first steps: README, `wgraph new`, errors, did-you-mean.
#[path = "cli/first_contact.rs"]
mod first_contact;

// Running.

/// `wgraph run` on the examples: frames, outputs, flags, exit codes.
#[path = "cli/run.rs"]
mod run;

/// The shipped graphs render; outputs, actions, providers, doctor, bench.
#[path = "cli/seed_graphs.rs"]
mod seed_graphs;

/// `--save-state` / `--load-state`.
#[path = "cli/snapshots.rs"]
mod snapshots;

/// What a run may write, and where.
#[path = "cli/output_safety.rs"]
mod output_safety;

/// Faults met cleanly: unbounded inputs, NaN, full disks, signals; the fuzzer.
#[path = "cli/faults.rs"]
mod faults;

/// Panics, hangs and lost work: fps bounds, stops, killed recordings.
#[path = "cli/lost_work.rs"]
mod lost_work;

/// `--version`, `kinds`, closed pipes, flag mistakes, models-onnx/check.py.
#[path = "cli/misc.rs"]
mod misc;

// Live worlds.

/// `run --watch`: reloads, record and replay, degrade, events, signals.
#[path = "cli/live.rs"]
mod live;

/// Models with external data: writes to running weights, what reloads and
/// what is hashed, memory across reloads.
#[path = "cli/large_models.rs"]
mod large_models;

/// Yan-Edit restyled and re-themed while it runs.
#[path = "cli/yan_edit_live.rs"]
mod yan_edit_live;

/// `wgraph serve` in headless chromium, and its WebSocket protocol.
#[path = "cli/browser.rs"]
mod browser;

/// `serve`'s hosts, origins, tokens, connection caps, client text.
#[path = "cli/serve_security.rs"]
mod serve_security;

/// `serve`'s world per player: own worlds, resume, the grace period, full.
#[path = "cli/serve_players.rs"]
mod serve_players;

/// `wgraph loadtest`: scripted players on a `wgraph serve`, refusals, loopback only.
#[path = "cli/loadtest.rs"]
mod loadtest;

/// Batching across players: `bench --players`, `--verify-batching` per sampler.
#[path = "cli/batching.rs"]
mod batching;

/// Two replicas behind HAProxy sharing a session store; one dies.
#[path = "cli/failover.rs"]
mod failover;

/// `wgraph play` in a pseudo-terminal.
#[path = "cli/terminal_player.rs"]
mod terminal_player;

// Ground truth and scores.

/// `wgraph dataset`.
#[path = "cli/dataset.rs"]
mod dataset;

/// `wgraph eval`.
#[path = "cli/eval.rs"]
mod eval;

/// `bench --baseline python`.
#[path = "cli/python_baseline.rs"]
mod python_baseline;

/// `bench --swap`.
#[path = "cli/bench_swap.rs"]
mod bench_swap;

// Models, samplers and backends.

/// Every sampler and guidance against its NumPy reference.
#[path = "cli/sampler_reference.rs"]
mod sampler_reference;

/// Samplers against diffusers / k-diffusion on an exported UNet (committed
/// references): `cargo test --workspace --all-features --test cli -- sampler_parity::`.
#[path = "cli/sampler_parity.rs"]
mod sampler_parity;

/// Exports wired unedited (port mappings, timestep conversion, batch-1
/// exports): `cargo test --workspace --all-features --test cli -- export_variants::`.
#[path = "cli/export_variants.rs"]
mod export_variants;

/// Yume's block cache and `wgraph blocks`.
#[path = "cli/block_cache.rs"]
mod block_cache;

/// The generic `model` kind and model roles.
#[path = "cli/generic_model.rs"]
mod generic_model;

/// Non-f32 ports through the `model` kind.
#[path = "cli/model_dtypes.rs"]
mod model_dtypes;

/// Real PyTorch models as their exporters write them.
#[path = "cli/exported_models.rs"]
mod exported_models;

/// The ONNX package's backend-test models against ONNX Runtime.
#[path = "cli/onnx_backend.rs"]
mod onnx_backend;

/// GPU paths (IoBinding, `cuda_graph`, TensorRT/CUDA fallback) on any machine.
#[path = "cli/gpu_paths.rs"]
mod gpu_paths;

/// The wonnx (WebGPU) backend, on lavapipe where there is no GPU.
#[path = "cli/wonnx.rs"]
mod wonnx;

/// The triton backend and `wgraph triton-repo`, against a real Triton server.
#[path = "cli/triton.rs"]
mod triton;

/// `wgraph kernels` and the CUDA kernels.
#[path = "cli/kernels.rs"]
mod kernels;
