//! wgraph's model backend on NVIDIA Triton Inference Server: a graph's
//! model calls go over the KServe v2 / Open Inference Protocol **gRPC** API
//! (`ModelInfer`) to a server, instead of running in the process.
//!
//! - [`TritonBackend`] implements the engine's [`Backend`]: loading a model
//!   asks the server (`ServerReady`, `ModelMetadata`, `ModelConfig`) what the
//!   model named [`ModelOptions::remote_name`] takes and gives; that is the
//!   [`ModelSignature`] the graph is checked against, exactly as a local
//!   file's would be. The local `.onnx` file of the `model` declaration still
//!   matters: it gives the ports' symbolic dimension names (a server says
//!   only `-1`) and is compared with the server's copy (a differing dtype,
//!   rank, fixed size or port is a load error naming both), and its
//!   `wgraph.*` metadata is the model's contract, under the server
//!   config's `wgraph.*` parameters (which `wgraph triton-repo` writes from
//!   the same file) and the graph's own `model` options.
//! - [`TritonModel`] implements [`Model`]: `run` checks the inputs against
//!   the server's metadata, sends one `ModelInfer` (raw little-endian
//!   contents), and returns the outputs in signature order. A call that
//!   finds the server gone (connection refused or reset, `UNAVAILABLE`) is
//!   retried [`RETRIES`] times with a doubling pause capped at
//!   [`MAX_RETRY_PAUSE`] ([`RETRY_BUDGET`] in all: long enough for a
//!   server to restart and load its models), then fails with the model, the address and
//!   what was tried; a call past its deadline (`timeout_ms`, default
//!   [`DEFAULT_TIMEOUT_MS`]) fails at once.
//! - [`runtime`]: the engine calls `Model::run` synchronously from its tick
//!   threads; the gRPC client lives on one tokio runtime per process, made
//!   on first use and shared by every model and server.
//! - [`repo`]: a Triton model repository for a graph's models
//!   (`wgraph triton-repo`): `config.pbtxt`, the ONNX files, and for the
//!   python backend a `model.py` that runs them with onnxruntime.
//!
//! **Naming rule:** a model on the server has the name of the graph's
//! `model` declaration (`model sim_dit = "dit_sim.onnx"` is `sim_dit`), the
//! name `wgraph triton-repo` gives its folder. Version: the server's latest.
//!
//! Nothing here panics on what a server or a user sends: every failure is a
//! [`ModelError`] whose text names the model and the server's address.
//!
//! # Files
//! `backend.rs` ([`TritonBackend`]: channels, loading), `model.rs`
//! ([`TritonModel`]: calls, retries, parts), `signature.rs` (the server's
//! metadata merged with the local file), `call.rs` (one gRPC call with a
//! deadline), `counts.rs` ([`ModelCounts`]), `onnx.rs`, `repo.rs`,
//! `runtime.rs`; the unit tests are in `tests.rs`.
//!
//! [`Backend`]: wgraph_engine::model::Backend
//! [`Model`]: wgraph_engine::model::Model
//! [`ModelOptions::remote_name`]: wgraph_engine::model::ModelOptions::remote_name
//! [`ModelSignature`]: wgraph_engine::model::ModelSignature
//! [`ModelError`]: wgraph_engine::model::ModelError

mod backend;
mod call;
mod counts;
mod model;
pub mod onnx;
pub mod repo;
mod runtime;
mod signature;

/// Triton's gRPC API, generated at build time from the vendored
/// `proto/grpc_service.proto` and `proto/model_config.proto` (BSD-3,
/// NVIDIA; see `proto/LICENSE`).
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("inference");
}

pub use backend::TritonBackend;
pub use counts::ModelCounts;
pub use model::TritonModel;
pub use runtime::runtime;

use std::time::Duration;
use wgraph_engine::tensor::DType;

/// The server asked when a model names none (`server`, `world { triton_server }`, `--triton-server`).
pub const DEFAULT_SERVER: &str = "127.0.0.1:8001";
/// A call's deadline when the model gives no `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// How long connecting to a server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries of a call that found the server gone (restarting, say).
pub const RETRIES: u32 = 10;
/// The first pause before a retry; each next one doubles, up to [`MAX_RETRY_PAUSE`].
pub const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(250);
/// The largest answer accepted from a server (bytes): a model's outputs
/// beyond this are an error, not an allocation.
pub const MAX_MESSAGE: usize = 1 << 30;
/// The longest pause between two tries.
pub const MAX_RETRY_PAUSE: Duration = Duration::from_secs(4);
/// Every pause of one call's retries together (0.25 + 0.5 + 1 + 2 + 6 × 4 s).
pub const RETRY_BUDGET: Duration = Duration::from_millis(27_750);

/// Triton's datatype name of a wgraph dtype (`FP32`, `INT64`, …).
pub fn triton_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "FP32",
        DType::F64 => "FP64",
        DType::F16 => "FP16",
        DType::I64 => "INT64",
        DType::I32 => "INT32",
        DType::I16 => "INT16",
        DType::I8 => "INT8",
        DType::U8 => "UINT8",
        DType::U16 => "UINT16",
        DType::U32 => "UINT32",
        DType::Bool => "BOOL",
    }
}

/// The wgraph dtype of a Triton datatype name (`FP32`, or `TYPE_FP32` as
/// `config.pbtxt` writes it).
pub fn dtype_of_triton(name: &str) -> Option<DType> {
    let name = name.strip_prefix("TYPE_").unwrap_or(name);
    DType::ALL
        .iter()
        .copied()
        .find(|&d| triton_dtype(d) == name)
}

#[cfg(test)]
mod tests;
