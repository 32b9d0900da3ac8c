//! [`TritonModel`]: the engine's [`Model`] for one model on a server.
//!
//! `run` checks the inputs against the server's metadata, sends one
//! `ModelInfer` (raw little-endian contents; a call of more rows than the
//! server's `max_batch_size` goes in parts, joined back), retries while the
//! server restarts, and returns the outputs in signature order.

use crate::call::{CallError, call, request};
use crate::signature::{Reshapes, show_server_shape};
use crate::{
    FIRST_RETRY_PAUSE, MAX_RETRY_PAUSE, RETRIES, dtype_of_triton, proto, runtime, triton_dtype,
};
use proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use wgraph_engine::model::{Model, ModelError, ModelSignature, Provider};
use wgraph_engine::tensor::{HostData, Tensor};

/// One model on a server.
pub struct TritonModel {
    pub(crate) client: GrpcInferenceServiceClient<Channel>,
    /// The model's name on the server.
    pub(crate) name: String,
    pub(crate) server: String,
    pub(crate) timeout: Duration,
    pub(crate) signature: ModelSignature,
    /// The server's shape of each input as the model sees it (`-1`: any size).
    pub(crate) input_dims: Vec<Vec<i64>>,
    /// Reshapes of `config.pbtxt` ([`Reshapes`]).
    pub(crate) reshapes: Reshapes,
}

impl std::fmt::Debug for TritonModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TritonModel")
            .field("name", &self.name)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
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
pub(crate) fn rows_of(
    inputs: &[Tensor],
    range: std::ops::Range<usize>,
) -> Result<Vec<Tensor>, ModelError> {
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
pub(crate) fn join_rows(parts: &[Vec<Tensor>]) -> Result<Vec<Tensor>, ModelError> {
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
