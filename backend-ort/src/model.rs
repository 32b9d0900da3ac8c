//! [`OrtModel`]: a model loaded into an ONNX Runtime session, and its load
//! with provider fallback (TensorRT → CUDA → CPU) and the warning that says
//! so. Running it is in `run`, its signature in `signature`.

use crate::advice::load_error;
use crate::providers::{available_providers, names, provider_available};
use crate::session::{Failure, commit};
use crate::signature::signature_of;
use crate::{Notices, binding, runtime, tensorrt};
use ort::session::Session;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use wgraph_engine::model::{ModelError, ModelOptions, ModelSignature, Provider};

/// A model loaded into an ONNX Runtime session.
///
/// The session sits behind a mutex of its own: runs of one model are
/// serialised, different models run in parallel.
pub struct OrtModel {
    pub(crate) inner: Mutex<SessionState>,
    pub(crate) signature: ModelSignature,
    pub(crate) provider: Provider,
    /// How runs bind their tensors (`None`: plain runs from host memory).
    pub(crate) plan: Option<binding::BindPlan>,
    /// What the model was loaded from and with (a TensorRT session is
    /// rebuilt with shape profiles in
    /// [`Model::prepare`](wgraph_engine::model::Model::prepare)).
    pub(crate) path: PathBuf,
    pub(crate) options: ModelOptions,
    pub(crate) notices: Option<Notices>,
}

/// The session and what belongs to it.
pub(crate) struct SessionState {
    pub(crate) session: Session,
    pub(crate) fixed: binding::FixedSets,
    /// Input shape sets already prepared (bounded by [`MAX_PREPARED`]).
    pub(crate) prepared: Vec<Vec<Vec<usize>>>,
    /// The TensorRT shape profile the session was built with.
    pub(crate) profile: Option<tensorrt::Profile>,
}

/// Shape sets [`Model::prepare`](wgraph_engine::model::Model::prepare)
/// remembers per model; a graph uses a few.
pub(crate) const MAX_PREPARED: usize = 16;

impl fmt::Debug for OrtModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrtModel")
            .field("signature", &self.signature)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// Why a provider could not be used (one attempt).
struct Unavailable {
    provider: Provider,
    reason: String,
}

impl OrtModel {
    /// Loads `path` (see the [crate docs](crate) for provider fallback).
    /// Returns the model and the warnings loading produced.
    pub fn load(
        path: &Path,
        options: &ModelOptions,
    ) -> Result<(OrtModel, Vec<String>), ModelError> {
        let rt = runtime::ensure()?;
        let shown = path.display();
        match wgraph_engine::input::check(path, wgraph_engine::input::MODEL) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                return Err(ModelError::Load(format!("model {shown}: {e}")));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::Load(format!(
                    "model file {shown} does not exist"
                )));
            }
            Err(e) => return Err(ModelError::Load(format!("cannot read model {shown}: {e}"))),
        }

        let chain: &[Provider] = match options.provider {
            Provider::Cpu => &[Provider::Cpu],
            Provider::Cuda => &[Provider::Cuda, Provider::Cpu],
            Provider::TensorRt => &[Provider::TensorRt, Provider::Cuda, Provider::Cpu],
        };
        let lib = rt.info.path.display();
        let mut failures: Vec<Unavailable> = Vec::new();
        let mut session = None;
        for &provider in chain {
            if options.strict && provider != options.provider {
                break;
            }
            let reason = match provider_available(provider) {
                Ok(true) => None,
                Ok(false) => Some(format!(
                    "is not available in {lib} (this build has: {})",
                    names(&available_providers().unwrap_or_default())
                )),
                Err(e) => Some(e.to_string()),
            };
            if let Some(reason) = reason {
                failures.push(Unavailable { provider, reason });
                continue;
            }
            match commit(rt, path, provider, options, None) {
                Ok(s) => {
                    session = Some((s, provider));
                    break;
                }
                Err(Failure::Setup(e)) => return Err(e),
                Err(Failure::Commit(message)) => {
                    if provider == Provider::Cpu {
                        return Err(load_error(path, &message));
                    }
                    // A GPU provider failed to build the session: was it
                    // the provider or the model? Ask the CPU.
                    if let Err(Failure::Commit(cpu_message)) =
                        commit(rt, path, Provider::Cpu, &ModelOptions::default(), None)
                    {
                        return Err(load_error(path, &cpu_message));
                    }
                    failures.push(Unavailable {
                        provider,
                        reason: format!("failed to start on {lib}: {message}"),
                    });
                }
            }
        }

        let Some((session, provider)) = session else {
            let f = failures.first();
            let reason = f.map(|f| f.reason.as_str()).unwrap_or("could not be used");
            return Err(ModelError::Provider(format!(
                "cannot load {shown}: provider `{}` {reason}; for GPU providers install the GPU build of ONNX Runtime (`pip install onnxruntime-gpu`) or point {} at it, or drop `strict` to fall back to CPU",
                options.provider,
                runtime::ENV_DYLIB_PATH
            )));
        };
        // One plain warning: what was asked for, why it failed, what is used.
        let mut warnings = Vec::new();
        if !failures.is_empty() {
            let first = &failures[0];
            let reasons: Vec<String> = failures
                .iter()
                .enumerate()
                .map(|(i, f)| match i {
                    0 => format!("provider `{}` {}", f.provider, f.reason),
                    _ if f.reason == first.reason => {
                        format!("fallback `{}` is not available either", f.provider)
                    }
                    _ => format!("fallback `{}` {}", f.provider, f.reason),
                })
                .collect();
            warnings.push(format!(
                "{shown}: {}; loaded on `{provider}` instead",
                reasons.join("; ")
            ));
        }

        let signature = signature_of(&session, path)?;
        let on_gpu = provider != Provider::Cpu;
        if options.cuda_graph && !on_gpu {
            warnings.push(format!(
                "{shown}: `cuda_graph` needs the CUDA provider; on `{provider}` the model runs with fixed-address buffers and no graph"
            ));
        }
        let bound = options.io_binding.unwrap_or(on_gpu) || options.cuda_graph;
        let device = i32::try_from(options.device_id).unwrap_or(0);
        let plan = bound.then_some(binding::BindPlan {
            output_device: on_gpu.then_some(device),
            on_gpu,
            fixed: options.cuda_graph,
        });
        Ok((
            OrtModel {
                inner: Mutex::new(SessionState {
                    session,
                    fixed: binding::FixedSets::default(),
                    prepared: Vec::new(),
                    profile: None,
                }),
                signature,
                provider,
                plan,
                path: path.to_path_buf(),
                options: options.clone(),
                notices: None,
            },
            warnings,
        ))
    }
}
