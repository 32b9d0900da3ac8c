//! Execution providers: which ones the loaded ONNX Runtime offers
//! ([`provider_available`], [`available_providers`]) and the provider list
//! registered for one session (CUDA, TensorRT with its options and CUDA
//! fallback).

use crate::{runtime, tensorrt};
use ort::ep::{self, ExecutionProvider, ExecutionProviderDispatch};
use wgraph_engine::model::{ModelError, ModelOptions, Provider};

/// Whether the loaded ONNX Runtime was built with `provider`.
pub fn provider_available(provider: Provider) -> Result<bool, ModelError> {
    runtime::ensure()?;
    let answer = match provider {
        Provider::Cpu => ep::CPU::is_available(),
        Provider::Cuda => ep::CUDA::is_available(),
        Provider::TensorRt => ep::TensorRT::is_available(),
    };
    answer.map_err(|e| {
        ModelError::Runtime(format!(
            "cannot ask ONNX Runtime whether {provider} is available: {e}"
        ))
    })
}

/// The providers (of cpu, cuda, tensorrt) the loaded ONNX Runtime was built with.
pub fn available_providers() -> Result<Vec<Provider>, ModelError> {
    let mut out = Vec::new();
    for p in [Provider::Cpu, Provider::Cuda, Provider::TensorRt] {
        if provider_available(p)? {
            out.push(p);
        }
    }
    Ok(out)
}

pub(crate) fn names(providers: &[Provider]) -> String {
    if providers.is_empty() {
        return "none".to_string();
    }
    providers
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The execution providers to register for one attempt. The first one must
/// register (`error_on_failure`); the CUDA fallback behind TensorRT may not.
pub(crate) fn execution_providers(
    provider: Provider,
    options: &ModelOptions,
    profile: Option<&tensorrt::Profile>,
) -> Result<Vec<ExecutionProviderDispatch>, ModelError> {
    use ep::ArbitrarilyConfigurableExecutionProvider;
    let device = i32::try_from(options.device_id).map_err(|_| {
        ModelError::Provider(format!("device id {} is out of range", options.device_id))
    })?;
    let cuda = || {
        ep::CUDA::default()
            .with_device_id(device)
            .with_cuda_graph(options.cuda_graph)
            .build()
    };
    Ok(match provider {
        Provider::Cpu => Vec::new(),
        Provider::Cuda => vec![cuda().error_on_failure()],
        Provider::TensorRt => {
            let cache = tensorrt::cache_dir(options);
            if let Some(dir) = &cache {
                std::fs::create_dir_all(dir).map_err(|e| {
                    ModelError::Load(format!(
                        "cannot create the TensorRT engine cache folder {}: {e}",
                        dir.display()
                    ))
                })?;
                if dir.to_str().is_none_or(|s| s.contains('\0')) {
                    return Err(ModelError::Load(format!(
                        "the TensorRT engine cache folder {} must be a UTF-8 path",
                        dir.display()
                    )));
                }
            }
            let mut trt = ep::TensorRT::default().with_device_id(device);
            for (key, value) in tensorrt::options(options, cache.as_deref(), profile) {
                trt = trt.with_arbitrary_config(key, value);
            }
            let mut eps = vec![trt.build().error_on_failure()];
            if ep::CUDA::is_available().unwrap_or(false) {
                eps.push(cuda().fail_silently());
            }
            eps
        }
    })
}
