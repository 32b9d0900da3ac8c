//! Running an [`OrtModel`]: the engine's [`Model`] trait — plain runs from
//! host memory (bound runs are in `binding`) and `prepare`, which builds
//! TensorRT engines and fixed buffers before the first tick.

use crate::advice::load_error;
use crate::convert::{as_i64_shape, to_tensor};
use crate::model::MAX_PREPARED;
use crate::session::{Failure, commit};
use crate::{OrtModel, binding, runtime, tensorrt};
use ort::value::TensorRef;
use wgraph_engine::model::{Model, ModelError, ModelSignature, Provider};
use wgraph_engine::tensor::Tensor;
use wgraph_engine::transfers::{self, Direction};
use wgraph_engine::types::Dim;

impl Model for OrtModel {
    fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    fn provider(&self) -> Provider {
        self.provider
    }

    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        self.check_inputs(inputs)?;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *inner;
        if let Some(plan) = self.plan {
            return binding::run_bound(
                &mut inner.session,
                &mut inner.fixed,
                &self.signature,
                inputs,
                plan,
            );
        }
        let on_gpu = self.provider != Provider::Cpu;
        // A device tensor given to a model that runs from host memory comes
        // home first (counted).
        let hosts: std::borrow::Cow<'_, [Tensor]> = if inputs.iter().all(Tensor::is_host) {
            inputs.into()
        } else {
            inputs
                .iter()
                .map(Tensor::to_host)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ModelError::Run(e.to_string()))?
                .into()
        };
        let mut values: Vec<(String, ort::session::SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (port, tensor) in self.signature.inputs.iter().zip(hosts.iter()) {
            let shape = as_i64_shape(tensor.shape())?;
            let fail = |e: String| ModelError::Run(format!("input `{}`: {e}", port.name));
            let host = tensor.host().map_err(|e| fail(e.to_string()))?;
            let value: ort::session::SessionInputValue<'_> = wgraph_engine::with_host_data!(
                host,
                d => TensorRef::from_array_view((shape, &d[..])).map(Into::into)
            )
            .map_err(|e| fail(e.to_string()))?;
            values.push((port.name.clone(), value));
            if on_gpu {
                // ONNX Runtime uploads it for the GPU provider.
                transfers::record(Direction::HostToDevice, tensor.byte_len());
            }
        }

        let outputs = inner
            .session
            .run(values)
            .map_err(|e| ModelError::Run(format!("ONNX Runtime failed: {e}")))?;
        self.signature
            .outputs
            .iter()
            .map(|port| {
                let value = outputs.get(&port.name).ok_or_else(|| {
                    ModelError::Run(format!("ONNX Runtime returned no output `{}`", port.name))
                })?;
                let t = to_tensor(&port.name, value)?;
                if on_gpu {
                    transfers::record(Direction::DeviceToHost, t.byte_len());
                }
                Ok(t)
            })
            .collect()
    }

    /// Build-time work for these input shapes: on TensorRT, a session
    /// with a shape profile covering them (for models with symbolic
    /// dimensions) and one warm-up run that builds — or loads from the
    /// cache — the engine; with `cuda_graph`, a warm-up run that allocates
    /// the fixed buffers (and, on CUDA, captures the graph). Nothing on a
    /// plain CPU model.
    fn prepare(&self, input_shapes: &[Vec<usize>]) -> Result<(), ModelError> {
        let trt = self.provider == Provider::TensorRt;
        if !trt && !self.options.cuda_graph {
            return Ok(());
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.prepared.iter().any(|p| p == input_shapes) {
            return Ok(());
        }
        let symbolic = self
            .signature
            .inputs
            .iter()
            .any(|p| p.ty.shape.iter().any(|d| matches!(d, Dim::Sym(_))));
        if trt && symbolic {
            let names: Vec<String> = self
                .signature
                .inputs
                .iter()
                .map(|p| p.name.clone())
                .collect();
            let profile = match &inner.profile {
                Some(p) if p.covers(input_shapes) => None,
                Some(p) => Some(p.widened(input_shapes)),
                None => Some(tensorrt::Profile::exact(&names, input_shapes)),
            };
            if let Some(profile) = profile {
                let rt = runtime::ensure()?;
                let session = commit(
                    rt,
                    &self.path,
                    Provider::TensorRt,
                    &self.options,
                    Some(&profile),
                )
                .map_err(|f| match f {
                    Failure::Setup(e) => e,
                    Failure::Commit(m) => load_error(&self.path, &m),
                })?;
                inner.session = session;
                inner.fixed = binding::FixedSets::default();
                inner.profile = Some(profile);
            }
        }
        let zeros = self
            .signature
            .inputs
            .iter()
            .zip(input_shapes)
            .map(|(p, s)| Tensor::zeros(p.ty.dtype, s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ModelError::Run(e.to_string()))?;
        if trt && let Some(notices) = &self.notices {
            let cache = tensorrt::cache_dir(&self.options).map_or_else(
                || "no cache folder".to_string(),
                |d| format!("cached in {}", d.display()),
            );
            let shapes: Vec<String> = input_shapes.iter().map(|s| format!("{s:?}")).collect();
            notices(&format!(
                "{}: building the TensorRT engine for inputs {} (the first build takes minutes; {cache})",
                self.path.display(),
                shapes.join(", ")
            ));
        }
        drop(inner);
        let started = std::time::Instant::now();
        self.run(&zeros)?;
        if trt && let Some(notices) = &self.notices {
            notices(&format!(
                "{}: TensorRT engine ready in {:.1} s",
                self.path.display(),
                started.elapsed().as_secs_f64()
            ));
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.prepared.len() >= MAX_PREPARED {
            inner.prepared.remove(0);
        }
        inner.prepared.push(input_shapes.to_vec());
        Ok(())
    }
}
