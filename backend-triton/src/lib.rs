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

pub mod onnx;
pub mod repo;
mod runtime;

/// Triton's gRPC API, generated at build time from the vendored
/// `proto/grpc_service.proto` and `proto/model_config.proto` (BSD-3,
/// NVIDIA; see `proto/LICENSE`).
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("inference");
}

pub use runtime::runtime;

use proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use wgraph_engine::model::{
    Backend, LoadedModel, Model, ModelError, ModelOptions, ModelPort, ModelSignature, Provider,
};
use wgraph_engine::tensor::{DType, HostData, Tensor};
use wgraph_engine::types::{Dim, TensorType};

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

/// Models on Triton Inference Servers, behind the engine's [`Backend`].
/// Cheap to create; connections (one gRPC channel per server address,
/// shared by its models) are made on first load.
#[derive(Default, Clone)]
pub struct TritonBackend {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Replaces every model's server (`--triton-server`).
    server_override: Option<String>,
    /// The servers this backend (and its clones) loaded models from.
    used: Arc<Mutex<BTreeSet<String>>>,
}

impl std::fmt::Debug for TritonBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TritonBackend")
            .field("server_override", &self.server_override)
            .finish_non_exhaustive()
    }
}

impl TritonBackend {
    /// A backend that asks each model's own server.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every model on `server` (`HOST:PORT`), whatever its graph says
    /// (`--triton-server`).
    pub fn with_server(mut self, server: Option<String>) -> Self {
        self.server_override = server;
        self
    }

    /// `--triton-server`, when given: every model's server.
    pub fn server_override(&self) -> Option<&str> {
        self.server_override.as_deref()
    }

    /// The servers this backend or a clone of it has loaded a model from.
    pub fn servers_used(&self) -> Vec<String> {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Every model's counters on `server` (Triton's `ModelStatistics`, all
    /// models, all versions summed), by model name: how many requests it
    /// answered and in how many executions (what its dynamic batcher fused).
    /// Counters are the server's since it started, whoever called:
    /// [`ModelCounts::since`] of two readings gives one run's share.
    pub fn statistics(&self, server: &str) -> Result<BTreeMap<String, ModelCounts>, String> {
        let at = format!("Triton at {server}");
        let channel = self.channel(server).map_err(|e| format!("{at}: {e}"))?;
        let mut client = GrpcInferenceServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(usize::MAX);
        let timeout = Duration::from_millis(DEFAULT_TIMEOUT_MS);
        let response = runtime::block_on(async move {
            call(timeout, |t| {
                client.model_statistics(request(proto::ModelStatisticsRequest::default(), t))
            })
            .await
        })
        .map_err(|e| format!("{at}: {e}"))?
        .map_err(|e| format!("{at}: ModelStatistics failed: {e}"))?;
        Ok(ModelCounts::of_response(&response))
    }

    /// The address a model with `options` is asked at.
    pub fn server_of(&self, options: &ModelOptions) -> String {
        self.server_override
            .clone()
            .or_else(|| options.server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string())
    }

    fn channel(&self, server: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(server) {
            return Ok(c.clone());
        }
        if server.contains("://") || server.contains('/') {
            return Err(format!(
                "`{server}` is not a HOST:PORT address (write the gRPC address without a scheme, e.g. {DEFAULT_SERVER})"
            ));
        }
        let endpoint = Endpoint::from_shared(format!("http://{server}"))
            .map_err(|e| format!("`{server}` is not a HOST:PORT address: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let rt = runtime().map_err(|e| e.to_string())?;
        let _inside = rt.enter();
        let channel = endpoint.connect_lazy();
        channels.insert(server.to_string(), channel.clone());
        Ok(channel)
    }
}

/// One model's counters on a server, from Triton's `ModelStatistics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelCounts {
    /// Requests answered successfully (`inference_stats.success.count`).
    pub requests: u64,
    /// Rows inferred: requests times their batch size (`inference_count`).
    pub rows: u64,
    /// Model executions (`execution_count`): a request the dynamic batcher
    /// fused with others shares one execution with them.
    pub executions: u64,
}

impl ModelCounts {
    /// Per model name, from a `ModelStatistics` answer (versions summed).
    pub fn of_response(response: &proto::ModelStatisticsResponse) -> BTreeMap<String, ModelCounts> {
        let mut out: BTreeMap<String, ModelCounts> = BTreeMap::new();
        for m in &response.model_stats {
            let c = out.entry(m.name.clone()).or_default();
            c.requests += m
                .inference_stats
                .as_ref()
                .and_then(|s| s.success.as_ref())
                .map_or(0, |s| s.count);
            c.rows += m.inference_count;
            c.executions += m.execution_count;
        }
        out
    }

    /// What happened between the reading `before` and this one.
    pub fn since(&self, before: &ModelCounts) -> ModelCounts {
        ModelCounts {
            requests: self.requests.saturating_sub(before.requests),
            rows: self.rows.saturating_sub(before.rows),
            executions: self.executions.saturating_sub(before.executions),
        }
    }

    /// These counts and `other`'s together.
    pub fn plus(&self, other: &ModelCounts) -> ModelCounts {
        ModelCounts {
            requests: self.requests + other.requests,
            rows: self.rows + other.rows,
            executions: self.executions + other.executions,
        }
    }

    /// Requests per execution: how many requests the dynamic batcher fused
    /// into one execution, on average (`None` without executions).
    pub fn requests_per_execution(&self) -> Option<f64> {
        (self.executions > 0).then(|| self.requests as f64 / self.executions as f64)
    }

    /// Rows (batch entries) per execution (`None` without executions).
    pub fn rows_per_execution(&self) -> Option<f64> {
        (self.executions > 0).then(|| self.rows as f64 / self.executions as f64)
    }
}

/// One model on a server.
pub struct TritonModel {
    client: GrpcInferenceServiceClient<Channel>,
    /// The model's name on the server.
    name: String,
    server: String,
    timeout: Duration,
    signature: ModelSignature,
    /// The server's shape of each input as the model sees it (`-1`: any size).
    input_dims: Vec<Vec<i64>>,
    /// Reshapes of `config.pbtxt` ([`Reshapes`]).
    reshapes: Reshapes,
}

/// A port whose `config.pbtxt` has a `reshape` (how a rank-1 batched input
/// like a timestep `[batch]` is served: `dims: [1]`, `reshape: { shape: [] }`):
/// it travels in the config's `dims` and the model sees the reshape.
#[derive(Debug, Clone, Default)]
struct Reshapes {
    /// The model has a batch axis (`max_batch_size > 0`).
    batch: bool,
    /// The server's `max_batch_size` (0: no batch axis): a call of more
    /// rows is sent in parts of at most this many.
    max_batch: usize,
    /// Per input: the `dims` it is sent with, when reshaped.
    inputs: Vec<Option<Vec<i64>>>,
    /// Per output name: the reshape's shape, when reshaped.
    outputs: HashMap<String, Vec<i64>>,
}

impl Reshapes {
    /// Rewrites `metadata`'s shapes to what the model sees, and remembers
    /// how each reshaped port travels.
    fn apply(
        metadata: &mut proto::ModelMetadataResponse,
        config: Option<&proto::ModelConfig>,
    ) -> Reshapes {
        let Some(config) = config else {
            return Reshapes {
                inputs: vec![None; metadata.inputs.len()],
                ..Reshapes::default()
            };
        };
        let batch = config.max_batch_size > 0;
        let prefix: &[i64] = if batch { &[-1] } else { &[] };
        let mut r = Reshapes {
            batch,
            max_batch: usize::try_from(config.max_batch_size.max(0)).unwrap_or(0),
            ..Reshapes::default()
        };
        for t in &mut metadata.inputs {
            let reshaped = config
                .input
                .iter()
                .find(|i| i.name == t.name)
                .and_then(|i| {
                    i.reshape
                        .as_ref()
                        .map(|re| (i.dims.clone(), re.shape.clone()))
                });
            r.inputs.push(reshaped.map(|(dims, shape)| {
                t.shape = [prefix, &shape].concat();
                dims
            }));
        }
        for t in &mut metadata.outputs {
            if let Some(re) = config
                .output
                .iter()
                .find(|o| o.name == t.name)
                .and_then(|o| o.reshape.as_ref())
            {
                t.shape = [prefix, &re.shape].concat();
                r.outputs.insert(t.name.clone(), re.shape.clone());
            }
        }
        r
    }
}

impl std::fmt::Debug for TritonModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TritonModel")
            .field("name", &self.name)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// How a gRPC call went wrong.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("{}", describe_status(.0))]
    Status(tonic::Status),
}

impl CallError {
    /// The server is not there (down, restarting, refusing): worth a retry.
    fn server_gone(&self) -> bool {
        match self {
            CallError::Timeout(_) => false,
            CallError::Status(s) => {
                matches!(
                    s.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                ) && !s.message().contains("unknown model")
            }
        }
    }
}

fn describe_status(s: &tonic::Status) -> String {
    use std::error::Error;
    let mut text = format!("{:?}: {}", s.code(), s.message());
    let mut source = s.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// Runs one call with a deadline (sent to the server too, as `grpc-timeout`).
async fn call<T, F, Fut>(timeout: Duration, f: F) -> Result<T, CallError>
where
    F: FnOnce(Duration) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let started = Instant::now();
    match tokio::time::timeout(timeout, f(timeout)).await {
        Err(_) => Err(CallError::Timeout(ms)),
        // The server's deadline, or tonic's own (`Cancelled: Timeout expired`).
        Ok(Err(s)) if s.code() == tonic::Code::DeadlineExceeded || started.elapsed() >= timeout => {
            Err(CallError::Timeout(ms))
        }
        Ok(Err(s)) => Err(CallError::Status(s)),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    r
}

impl Backend for TritonBackend {
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        let server = self.server_of(options);
        let name = options.remote_name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let timeout_ms = options.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        let timeout = Duration::from_millis(timeout_ms);
        let at = format!("model `{name}` on Triton at {server}");
        let channel = self
            .channel(&server)
            .map_err(|e| ModelError::Load(format!("{at}: {e}")))?;
        let client = GrpcInferenceServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(usize::MAX);
        let local = onnx::LocalModel::read(path).ok();
        let fetched = runtime::block_on(fetch(client.clone(), name.clone(), timeout))
            .map_err(|e| ModelError::Runtime(format!("{at}: {e}")))?;
        let (mut metadata, config) = fetched.map_err(|e| match e {
            FetchError::Down(e) => ModelError::Load(format!(
                "{at}: cannot reach the server (tried ServerReady over gRPC to http://{server}, connect timeout {} s, deadline {timeout_ms} ms): {e}; is tritonserver running with --grpc-port set to this port?",
                CONNECT_TIMEOUT.as_secs()
            )),
            FetchError::NotReady => ModelError::Load(format!(
                "{at}: the server answers but is not ready (ServerReady: false)"
            )),
            FetchError::Missing { error, available } => ModelError::Load(format!(
                "{at}: the server has no such model ({error}); it has: {}. A model on Triton is named after the graph's `model` declaration: `wgraph triton-repo` writes a repository with these names",
                if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                }
            )),
            FetchError::Other(e) => ModelError::Load(format!("{at}: {e}")),
        })?;
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server.clone());
        let reshapes = Reshapes::apply(&mut metadata, config.as_ref());
        let (signature, input_dims) =
            signature_of(&metadata, config.as_ref(), local.as_ref(), path)
                .map_err(|e| ModelError::Load(format!("{at}: {e}")))?;
        Ok(LoadedModel {
            model: Arc::new(TritonModel {
                client,
                name,
                server,
                timeout,
                signature,
                input_dims,
                reshapes,
            }),
            warnings: Vec::new(),
        })
    }
}

enum FetchError {
    Down(CallError),
    NotReady,
    Missing {
        error: CallError,
        available: Vec<String>,
    },
    Other(String),
}

async fn fetch(
    mut client: GrpcInferenceServiceClient<Channel>,
    name: String,
    timeout: Duration,
) -> Result<(proto::ModelMetadataResponse, Option<proto::ModelConfig>), FetchError> {
    let ready = call(timeout, |t| {
        client.server_ready(request(proto::ServerReadyRequest {}, t))
    })
    .await
    .map_err(FetchError::Down)?;
    if !ready.ready {
        return Err(FetchError::NotReady);
    }
    let metadata = call(timeout, |t| {
        client.model_metadata(request(
            proto::ModelMetadataRequest {
                name: name.clone(),
                version: String::new(),
            },
            t,
        ))
    })
    .await;
    let metadata = match metadata {
        Ok(m) => m,
        Err(error) => {
            let available = call(timeout, |t| {
                client.repository_index(request(
                    proto::RepositoryIndexRequest {
                        repository_name: String::new(),
                        ready: true,
                    },
                    t,
                ))
            })
            .await
            .map(|r| {
                r.models
                    .into_iter()
                    .map(|m| format!("`{}`", m.name))
                    .collect()
            })
            .unwrap_or_default();
            return Err(FetchError::Missing { error, available });
        }
    };
    let config = call(timeout, |t| {
        client.model_config(request(
            proto::ModelConfigRequest {
                name: name.clone(),
                version: String::new(),
            },
            t,
        ))
    })
    .await
    .map_err(|e| FetchError::Other(format!("ModelConfig failed: {e}")))?
    .config;
    Ok((metadata, config))
}

fn show_server_shape(dims: &[i64]) -> String {
    let d: Vec<String> = dims
        .iter()
        .map(|&d| {
            if d < 0 {
                "-1".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", d.join(", "))
}

fn show_local_shape(dims: &[onnx::LocalDim]) -> String {
    let d: Vec<String> = dims
        .iter()
        .map(|d| match d {
            onnx::LocalDim::Known(n) => n.to_string(),
            onnx::LocalDim::Sym(Some(s)) => s.clone(),
            onnx::LocalDim::Sym(None) => "?".to_string(),
        })
        .collect();
    format!("[{}]", d.join(", "))
}

/// The model's signature from the server's metadata, with the local file's
/// dimension names where the server says `-1`, and the server's `wgraph.*`
/// config parameters over the local file's metadata. Every difference
/// between the two copies is listed in the one error.
fn signature_of(
    metadata: &proto::ModelMetadataResponse,
    config: Option<&proto::ModelConfig>,
    local: Option<&onnx::LocalModel>,
    path: &Path,
) -> Result<(ModelSignature, Vec<Vec<i64>>), String> {
    let mut problems = Vec::new();
    let mut port = |kind: &str, t: &proto::model_metadata_response::TensorMetadata| {
        let Some(dtype) = dtype_of_triton(&t.datatype) else {
            problems.push(format!(
                "{kind} `{}` has datatype {}, which wgraph does not support",
                t.name, t.datatype
            ));
            return None;
        };
        let local_port = local.and_then(|l| l.port(&t.name));
        if let Some(l) = local
            && !l.inputs.is_empty()
            && local_port.is_none()
        {
            problems.push(format!(
                "{kind} `{}` of the server's model is not in {}",
                t.name,
                path.display()
            ));
        }
        if let Some(lp) = local_port {
            let same_rank = lp.dims.len() == t.shape.len();
            let fixed_differs = same_rank
                && lp.dims.iter().zip(&t.shape).any(|(l, &s)| {
                    matches!(l, onnx::LocalDim::Known(n) if s >= 0 && usize::try_from(s).ok() != Some(*n))
                });
            if lp.dtype != Some(dtype) || !same_rank || fixed_differs {
                problems.push(format!(
                    "{kind} `{}` is {}{} on the server but {}{} in {}",
                    t.name,
                    t.datatype,
                    show_server_shape(&t.shape),
                    lp.dtype.map(triton_dtype).unwrap_or("an unsupported type"),
                    show_local_shape(&lp.dims),
                    path.display()
                ));
            }
        }
        let shape = t
            .shape
            .iter()
            .enumerate()
            .map(|(i, &s)| match usize::try_from(s) {
                Ok(n) => Dim::Known(n),
                Err(_) => match local_port.and_then(|p| p.dims.get(i)) {
                    Some(onnx::LocalDim::Known(n)) => Dim::Known(*n),
                    Some(onnx::LocalDim::Sym(Some(sym))) => Dim::Sym(sym.clone()),
                    _ => Dim::unnamed(&format!("{kind} {}", t.name), i),
                },
            })
            .collect();
        Some(ModelPort {
            name: t.name.clone(),
            ty: TensorType { dtype, shape },
        })
    };
    let inputs: Vec<ModelPort> = metadata
        .inputs
        .iter()
        .filter_map(|t| port("input", t))
        .collect();
    let outputs: Vec<ModelPort> = metadata
        .outputs
        .iter()
        .filter_map(|t| port("output", t))
        .collect();
    if let Some(l) = local {
        for lp in &l.inputs {
            if !metadata.inputs.iter().any(|t| t.name == lp.name) {
                problems.push(format!(
                    "input `{}` of {} is not an input of the server's model",
                    lp.name,
                    path.display()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "the server's model differs from the local file: {}",
            problems.join("; ")
        ));
    }
    let mut meta: BTreeMap<String, String> = local.map(|l| l.metadata.clone()).unwrap_or_default();
    if let Some(c) = config {
        for (k, v) in &c.parameters {
            if k.starts_with("wgraph.") {
                meta.insert(k.clone(), v.string_value.clone());
            }
        }
    }
    let input_dims = metadata.inputs.iter().map(|t| t.shape.clone()).collect();
    Ok((
        ModelSignature {
            inputs,
            outputs,
            metadata: meta,
        },
        input_dims,
    ))
}

impl TritonModel {
    /// The model's name on the server.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's address.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn at(&self) -> String {
        format!("model `{}` on Triton at {}", self.name, self.server)
    }

    /// The request for `inputs`, checked against the server's metadata.
    fn infer_request(&self, inputs: &[Tensor]) -> Result<proto::ModelInferRequest, ModelError> {
        self.signature
            .check_input_count(inputs)
            .map_err(|e| ModelError::Run(format!("{}: {e}", self.at())))?;
        let mut tensors = Vec::with_capacity(inputs.len());
        let mut raw = Vec::with_capacity(inputs.len());
        for (((input, port), dims), wire) in inputs
            .iter()
            .zip(&self.signature.inputs)
            .zip(&self.input_dims)
            .zip(&self.reshapes.inputs)
        {
            let fits = input.dtype() == port.ty.dtype
                && input.shape().len() == dims.len()
                && input
                    .shape()
                    .iter()
                    .zip(dims)
                    .all(|(&n, &d)| d < 0 || usize::try_from(d).ok() == Some(n));
            if !fits {
                return Err(ModelError::Run(format!(
                    "{}: input `{}` is {}{:?}, but the server's metadata says {}{}",
                    self.at(),
                    port.name,
                    triton_dtype(input.dtype()),
                    input.shape(),
                    triton_dtype(port.ty.dtype),
                    show_server_shape(dims)
                )));
            }
            let host = input.to_host().map_err(|e| {
                ModelError::Run(format!("{}: input `{}`: {e}", self.at(), port.name))
            })?;
            let data = host.host().map_err(|e| {
                ModelError::Run(format!("{}: input `{}`: {e}", self.at(), port.name))
            })?;
            raw.push(data.to_le_bytes());
            tensors.push(proto::model_infer_request::InferInputTensor {
                name: port.name.clone(),
                datatype: triton_dtype(port.ty.dtype).to_string(),
                shape: match wire {
                    // Sent as the config's dims, under the batch axis.
                    Some(wire) => {
                        let batch = input
                            .shape()
                            .first()
                            .copied()
                            .filter(|_| self.reshapes.batch);
                        batch
                            .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
                            .into_iter()
                            .chain(wire.iter().copied())
                            .collect()
                    }
                    None => input
                        .shape()
                        .iter()
                        .map(|&n| i64::try_from(n).unwrap_or(i64::MAX))
                        .collect(),
                },
                parameters: HashMap::new(),
                contents: None,
            });
        }
        Ok(proto::ModelInferRequest {
            model_name: self.name.clone(),
            model_version: String::new(),
            id: String::new(),
            parameters: HashMap::new(),
            inputs: tensors,
            outputs: self
                .signature
                .outputs
                .iter()
                .map(|p| proto::model_infer_request::InferRequestedOutputTensor {
                    name: p.name.clone(),
                    parameters: HashMap::new(),
                })
                .collect(),
            raw_input_contents: raw,
        })
    }

    /// The outputs of `response`, in signature order.
    fn outputs(&self, response: proto::ModelInferResponse) -> Result<Vec<Tensor>, ModelError> {
        let err = |m: String| ModelError::Run(format!("{}: {m}", self.at()));
        if response.raw_output_contents.len() != response.outputs.len() {
            return Err(err(format!(
                "the server answered {} output(s) with {} raw contents",
                response.outputs.len(),
                response.raw_output_contents.len()
            )));
        }
        let mut by_name: HashMap<&str, (&proto::model_infer_response::InferOutputTensor, &[u8])> =
            HashMap::new();
        for (t, raw) in response.outputs.iter().zip(&response.raw_output_contents) {
            by_name.insert(t.name.as_str(), (t, raw.as_slice()));
        }
        let mut out = Vec::with_capacity(self.signature.outputs.len());
        for port in &self.signature.outputs {
            let Some((t, raw)) = by_name.get(port.name.as_str()) else {
                return Err(err(format!(
                    "the server's answer has no output `{}`",
                    port.name
                )));
            };
            let dtype = dtype_of_triton(&t.datatype).filter(|&d| d == port.ty.dtype);
            let Some(dtype) = dtype else {
                return Err(err(format!(
                    "output `{}` came back as {}, but the server's metadata says {}",
                    port.name,
                    t.datatype,
                    triton_dtype(port.ty.dtype)
                )));
            };
            let mut shape: Option<Vec<usize>> =
                t.shape.iter().map(|&d| usize::try_from(d).ok()).collect();
            // A reshaped output comes back in the config's dims.
            if let (Some(s), Some(re)) = (shape.as_mut(), self.reshapes.outputs.get(&port.name)) {
                let batch = s.first().copied().filter(|_| self.reshapes.batch);
                let dims: Option<Vec<usize>> =
                    re.iter().map(|&d| usize::try_from(d).ok()).collect();
                if let Some(dims) = dims {
                    let reshaped: Vec<usize> = batch.into_iter().chain(dims).collect();
                    if reshaped.iter().product::<usize>() == s.iter().product::<usize>() {
                        *s = reshaped;
                    }
                }
            }
            let Some(shape) = shape else {
                return Err(err(format!(
                    "output `{}` came back with shape {:?}",
                    port.name, t.shape
                )));
            };
            let data = HostData::from_le_bytes(dtype, raw).ok_or_else(|| {
                err(format!(
                    "output `{}`: {} bytes are not whole {} elements",
                    port.name,
                    raw.len(),
                    t.datatype
                ))
            })?;
            let tensor = Tensor::from_host(&shape, data)
                .map_err(|e| err(format!("output `{}`: {e}", port.name)))?;
            out.push(tensor);
        }
        Ok(out)
    }
}

impl Model for TritonModel {
    fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    /// The server's devices are its own business: reported as the CPU.
    fn provider(&self) -> Provider {
        Provider::Cpu
    }

    /// A call of more rows than the server's `max_batch_size` (a batch of
    /// players' calls, a window) is sent in parts and joined back.
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let max = self.reshapes.max_batch;
        let rows = inputs.first().and_then(|t| t.shape().first().copied());
        match rows {
            Some(rows)
                if self.reshapes.batch
                    && max > 0
                    && rows > max
                    && inputs.iter().all(|t| t.shape().first() == Some(&rows)) =>
            {
                let mut parts = Vec::new();
                for start in (0..rows).step_by(max) {
                    let part = rows_of(inputs, start..(start + max).min(rows))?;
                    parts.push(self.run_once(&part)?);
                }
                join_rows(&parts)
            }
            _ => self.run_once(inputs),
        }
    }
}

/// Rows `range` of every tensor (all batch-major, in host memory).
fn rows_of(inputs: &[Tensor], range: std::ops::Range<usize>) -> Result<Vec<Tensor>, ModelError> {
    inputs
        .iter()
        .map(|t| {
            let host = t.to_host().map_err(|e| ModelError::Run(e.to_string()))?;
            let rows = host.shape()[0].max(1);
            let row_len = host.len() / rows;
            let data = host.host().map_err(|e| ModelError::Run(e.to_string()))?;
            let mut shape = host.shape().to_vec();
            shape[0] = range.len();
            Tensor::from_host(
                &shape,
                data.slice(range.start * row_len..range.end * row_len),
            )
            .map_err(|e| ModelError::Run(e.to_string()))
        })
        .collect()
}

/// The parts' outputs joined on the batch axis, output by output.
fn join_rows(parts: &[Vec<Tensor>]) -> Result<Vec<Tensor>, ModelError> {
    let Some(first) = parts.first() else {
        return Ok(Vec::new());
    };
    (0..first.len())
        .map(|i| {
            let pieces: Vec<&Tensor> = parts.iter().filter_map(|p| p.get(i)).collect();
            let data = pieces
                .iter()
                .map(|t| t.host())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ModelError::Run(e.to_string()))?;
            let mut shape = first[i].shape().to_vec();
            shape[0] = pieces.iter().map(|t| t.shape()[0]).sum();
            let joined = HostData::concat(&data).map_err(|e| ModelError::Run(e.to_string()))?;
            Tensor::from_host(&shape, joined).map_err(|e| ModelError::Run(e.to_string()))
        })
        .collect()
}

impl TritonModel {
    /// One ModelInfer (retried while the server restarts).
    fn run_once(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let request_message = self.infer_request(inputs)?;
        let client = self.client.clone();
        let timeout = self.timeout;
        let result = runtime::block_on(async move {
            let started = Instant::now();
            let mut pause = FIRST_RETRY_PAUSE;
            let mut tries = 0u32;
            loop {
                tries += 1;
                let message = request_message.clone();
                let mut client = client.clone();
                let answer = call(timeout, |t| async move {
                    client.model_infer(request(message, t)).await
                })
                .await;
                match answer {
                    Ok(r) => return Ok(r),
                    Err(e) if e.server_gone() && tries <= RETRIES => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    }
                    Err(e) => return Err((e, tries, started.elapsed())),
                }
            }
        })
        .map_err(|e| ModelError::Runtime(format!("{}: {e}", self.at())))?;
        match result {
            Ok(response) => self.outputs(response),
            Err((e @ CallError::Timeout(_), _, _)) => Err(ModelError::Run(format!(
                "{}: ModelInfer {e} (the model's `timeout_ms`)",
                self.at()
            ))),
            Err((e, tries, spent)) if e.server_gone() => Err(ModelError::Run(format!(
                "{}: the server is gone (stopped or restarting?): ModelInfer tried {tries} times over {:.1} s: {e}",
                self.at(),
                spent.as_secs_f64()
            ))),
            Err((e, _, _)) => Err(ModelError::Run(format!(
                "{}: ModelInfer failed: {e}",
                self.at()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call of more rows than the server takes is sent in parts and
    /// joined back: the parts' rows, in order, equal the whole.
    #[test]
    fn a_call_splits_into_parts_of_at_most_max_rows_and_joins_back() {
        let x = Tensor::from_host(
            &[5, 2],
            HostData::F32((0..10).map(|v| v as f32).collect::<Vec<_>>().into()),
        )
        .unwrap();
        let t =
            Tensor::from_host(&[5], HostData::F32(vec![0.1, 0.2, 0.3, 0.4, 0.5].into())).unwrap();
        let parts: Vec<Vec<Tensor>> = (0..5)
            .step_by(2)
            .map(|start| rows_of(&[x.clone(), t.clone()], start..(start + 2).min(5)).unwrap())
            .collect();
        assert_eq!(
            parts.iter().map(|p| p[0].shape()[0]).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(
            parts[2][0].host().unwrap(),
            &HostData::F32(vec![8.0, 9.0].into())
        );
        assert_eq!(
            parts[1][1].host().unwrap(),
            &HostData::F32(vec![0.3, 0.4].into())
        );
        let joined = join_rows(&parts).unwrap();
        assert_eq!(joined, vec![x, t]);
    }

    #[test]
    fn dtype_names_round_trip() {
        for d in DType::ALL {
            assert_eq!(dtype_of_triton(triton_dtype(d)), Some(d));
            assert_eq!(
                dtype_of_triton(&format!("TYPE_{}", triton_dtype(d))),
                Some(d)
            );
        }
        assert_eq!(dtype_of_triton("BYTES"), None);
        assert_eq!(
            RETRY_BUDGET,
            (0..RETRIES)
                .map(|k| (FIRST_RETRY_PAUSE * 2u32.pow(k)).min(MAX_RETRY_PAUSE))
                .sum()
        );
    }

    fn meta(
        name: &str,
        dtype: &str,
        shape: &[i64],
    ) -> proto::model_metadata_response::TensorMetadata {
        proto::model_metadata_response::TensorMetadata {
            name: name.into(),
            datatype: dtype.into(),
            shape: shape.to_vec(),
        }
    }

    /// The server's `-1` takes the local file's dimension name; a
    /// differing dtype or fixed size is an error naming both copies.
    #[test]
    fn the_signature_merges_the_local_file_and_lists_differences() {
        let local = onnx::LocalModel {
            inputs: vec![onnx::LocalPort {
                name: "x".into(),
                dtype: Some(DType::F32),
                dims: vec![
                    onnx::LocalDim::Sym(Some("batch".into())),
                    onnx::LocalDim::Known(4),
                ],
            }],
            outputs: vec![onnx::LocalPort {
                name: "y".into(),
                dtype: Some(DType::F32),
                dims: vec![onnx::LocalDim::Sym(None), onnx::LocalDim::Known(2)],
            }],
            metadata: [("wgraph.role".to_string(), "vae_decoder".to_string())].into(),
        };
        let mut response = proto::ModelMetadataResponse {
            inputs: vec![meta("x", "FP32", &[-1, 4])],
            outputs: vec![meta("y", "FP32", &[-1, 2])],
            ..Default::default()
        };
        let mut config = proto::ModelConfig::default();
        config.parameters.insert(
            "wgraph.role".into(),
            proto::ModelParameter {
                string_value: "denoiser".into(),
            },
        );
        let (sig, dims) =
            signature_of(&response, Some(&config), Some(&local), Path::new("m.onnx")).unwrap();
        assert_eq!(
            sig.inputs[0].ty.shape,
            [Dim::Sym("batch".into()), Dim::Known(4)]
        );
        assert!(sig.outputs[0].ty.shape[0].is_unnamed());
        assert_eq!(sig.meta("wgraph.role"), Some("denoiser"));
        assert_eq!(dims, [vec![-1, 4]]);
        response.inputs = vec![meta("x", "INT64", &[-1, 5])];
        let err = signature_of(&response, None, Some(&local), Path::new("m.onnx")).unwrap_err();
        assert!(
            err.contains("input `x` is INT64[-1, 5] on the server but FP32[batch, 4] in m.onnx"),
            "{err}"
        );
    }

    /// `ModelStatistics` read into counts: versions of one model summed, a
    /// run's share the difference of two readings, fusion the ratios.
    #[test]
    fn statistics_give_requests_per_execution() {
        let stats =
            |name: &str, requests: u64, rows: u64, executions: u64| proto::ModelStatistics {
                name: name.into(),
                inference_count: rows,
                execution_count: executions,
                inference_stats: Some(proto::InferStatistics {
                    success: Some(proto::StatisticDuration {
                        count: requests,
                        ns: 1,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
        let before = ModelCounts::of_response(&proto::ModelStatisticsResponse {
            model_stats: vec![stats("dit", 10, 10, 10), stats("vae", 0, 0, 0)],
        });
        let after = ModelCounts::of_response(&proto::ModelStatisticsResponse {
            model_stats: vec![
                stats("dit", 40, 70, 15),
                stats("dit", 2, 2, 2),
                stats("vae", 0, 0, 0),
            ],
        });
        let dit = after["dit"].since(&before["dit"]);
        assert_eq!(
            dit,
            ModelCounts {
                requests: 32,
                rows: 62,
                executions: 7
            }
        );
        assert_eq!(dit.requests_per_execution(), Some(32.0 / 7.0));
        assert_eq!(dit.rows_per_execution(), Some(62.0 / 7.0));
        assert_eq!(
            after["vae"].since(&before["vae"]).requests_per_execution(),
            None
        );
        assert_eq!(dit.plus(&dit).requests, 64);
        // A counter that went down (the server restarted) is not negative.
        assert_eq!(before["dit"].since(&after["dit"]).requests, 0);
    }

    /// A server that is not there: a load error naming the model, the
    /// address and what was tried — never a panic, and bounded in time.
    #[test]
    fn a_server_that_is_down_is_a_clear_load_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let options = ModelOptions {
            backend: wgraph_engine::model::BackendKind::Triton,
            server: Some(format!("127.0.0.1:{port}")),
            remote_name: Some("dit".into()),
            timeout_ms: Some(2000),
            ..ModelOptions::default()
        };
        let err = TritonBackend::new()
            .load(Path::new("/nonexistent/dit.onnx"), &options)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(&format!("model `dit` on Triton at 127.0.0.1:{port}: cannot reach the server (tried ServerReady")),
            "{err}"
        );
    }
}
