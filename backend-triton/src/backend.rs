//! [`TritonBackend`]: the engine's [`Backend`] for models on Triton servers.
//!
//! Loading a model asks its server (`ServerReady`, `ModelMetadata`,
//! `ModelConfig`, and `RepositoryIndex` to list what it has when the model
//! is missing) and checks the answer against the local file
//! ([`signature_of`](crate::signature::signature_of)); one gRPC channel per
//! server address is shared by the backend's clones and models.

use crate::call::{CallError, call, request};
use crate::model::TritonModel;
use crate::signature::{Reshapes, signature_of};
use crate::{
    CONNECT_TIMEOUT, DEFAULT_SERVER, DEFAULT_TIMEOUT_MS, MAX_MESSAGE, ModelCounts, onnx, proto,
    runtime,
};
use proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use wgraph_engine::model::{Backend, LoadedModel, ModelError, ModelOptions};

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
