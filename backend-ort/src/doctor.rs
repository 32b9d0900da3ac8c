//! `doctor`: what ONNX Runtime and GPUs this machine offers wgraph.
//!
//! [`doctor`] gathers a [`DoctorReport`]: the runtime library (path, version,
//! source, or the error that stopped it), which execution providers it was
//! built with, and the GPUs the machine reports. It never panics and never
//! fails; problems become part of the report. Note that it initialises the
//! runtime like a model load would, so on a fresh machine it may install
//! ONNX Runtime into wgraph's cache (see [`runtime`](mod@crate::runtime)).

use crate::runtime::{self, RuntimeInfo};
use serde_json::{Value, json};
use std::fmt;
use std::path::Path;
use std::process::Command;
use wgraph_engine::model::Provider;

/// One execution provider and whether the runtime has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// The provider.
    pub provider: Provider,
    /// `Ok(true)` when the runtime was built with it; `Err` when asking failed.
    pub available: Result<bool, String>,
}

/// What [`doctor`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorReport {
    /// The runtime library, or why there is none.
    pub runtime: Result<RuntimeInfo, String>,
    /// CPU, CUDA and TensorRT (empty when the runtime failed).
    pub providers: Vec<ProviderStatus>,
    /// One line per GPU (`nvidia-smi -L`, else `/proc/driver/nvidia/gpus`);
    /// empty when none was found.
    pub gpus: Vec<String>,
    /// Where the GPU lines came from: `nvidia-smi`, `/proc/driver/nvidia/gpus` or `none`.
    pub gpu_source: String,
}

/// Gathers a [`DoctorReport`]. Never panics, never fails.
pub fn doctor() -> DoctorReport {
    let runtime = std::panic::catch_unwind(runtime::runtime)
        .unwrap_or_else(|_| {
            Err(wgraph_engine::model::ModelError::Runtime(
                "initialising ONNX Runtime panicked".into(),
            ))
        })
        .cloned()
        .map_err(|e| e.to_string());
    let providers = if runtime.is_ok() {
        [Provider::Cpu, Provider::Cuda, Provider::TensorRt]
            .into_iter()
            .map(|provider| {
                let available = std::panic::catch_unwind(|| crate::provider_available(provider))
                    .unwrap_or_else(|_| {
                        Err(wgraph_engine::model::ModelError::Runtime(
                            "the availability check panicked".into(),
                        ))
                    })
                    .map_err(|e| e.to_string());
                ProviderStatus {
                    provider,
                    available,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let (gpus, gpu_source) = gpus();
    DoctorReport {
        runtime,
        providers,
        gpus,
        gpu_source,
    }
}

/// GPU lines and where they came from.
fn gpus() -> (Vec<String>, String) {
    if let Ok(out) = Command::new("nvidia-smi").arg("-L").output() {
        if out.status.success() {
            let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if !lines.is_empty() {
                return (lines, "nvidia-smi".into());
            }
        }
    }
    let proc_dir = Path::new("/proc/driver/nvidia/gpus");
    if let Ok(entries) = std::fs::read_dir(proc_dir) {
        let mut lines: Vec<String> = entries
            .flatten()
            .map(|e| {
                let bus = e.file_name().to_string_lossy().into_owned();
                let model = std::fs::read_to_string(e.path().join("information"))
                    .ok()
                    .and_then(|info| {
                        info.lines()
                            .find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string()))
                    });
                match model {
                    Some(m) => format!("{m} ({bus})"),
                    None => bus,
                }
            })
            .collect();
        lines.sort();
        if !lines.is_empty() {
            return (lines, proc_dir.display().to_string());
        }
    }
    (Vec::new(), "none".into())
}

/// Whether ONNX Runtime's library for `provider` (next to the runtime
/// library) loads here with everything it links against; the loader's
/// error names the first missing library (e.g. `libcublasLt.so.13`).
fn provider_library(runtime: &Path, provider: Provider) -> Result<(), String> {
    let name = match provider {
        Provider::Cpu => return Ok(()),
        Provider::Cuda => "libonnxruntime_providers_cuda.so",
        Provider::TensorRt => "libonnxruntime_providers_tensorrt.so",
    };
    let path = runtime.with_file_name(name);
    if !path.exists() {
        return Err(format!("{} is missing", path.display()));
    }
    // SAFETY: ONNX Runtime loads this very library when the provider is
    // registered; loading it here runs the same initialisers.
    match unsafe { libloading::Library::new(&path) } {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{name} does not load: {e}")),
    }
}

/// Whether TensorRT's runtime library (TensorRT 10) can be loaded here.
fn tensorrt_library() -> Result<(), String> {
    const NAME: &str = "libnvinfer.so.10";
    // SAFETY: loading a shared library runs its initialisers; libnvinfer's
    // are what ONNX Runtime's TensorRT provider would run on load anyway.
    match unsafe { libloading::Library::new(NAME) } {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("TensorRT 10 ({NAME}) is not installed")),
    }
}

impl DoctorReport {
    /// Whether `provider` is usable here and why (or why not), in words.
    pub fn verdict(&self, p: &ProviderStatus) -> (bool, String) {
        let gpu = !self.gpus.is_empty();
        let gpu_build =
            "install the GPU build (`pip install onnxruntime-gpu`) or point ORT_DYLIB_PATH at one";
        match (&p.available, p.provider) {
            (Err(e), _) => (false, format!("unknown: {e}")),
            (Ok(true), Provider::Cpu) => (true, "usable".to_string()),
            (Ok(false), Provider::Cpu) => (false, "not in this build".to_string()),
            (Ok(false), _) => (
                false,
                format!("not in this ONNX Runtime (a CPU build): {gpu_build}"),
            ),
            (Ok(true), _) if !gpu => (
                false,
                "in this build, but no NVIDIA GPU was found: models fall back to cpu".to_string(),
            ),
            (Ok(true), provider)
                if let Ok(info) = &self.runtime
                    && let Err(e) = provider_library(&info.path, provider) =>
            {
                (
                    false,
                    format!(
                        "in this build, but {e}: install CUDA 13 and cuDNN 9 (or put their libraries on LD_LIBRARY_PATH)"
                    ),
                )
            }
            (Ok(true), Provider::TensorRt) => match tensorrt_library() {
                Ok(()) => (true, "usable".to_string()),
                Err(e) => (
                    false,
                    format!("in this build, but {e}: models fall back to cuda"),
                ),
            },
            (Ok(true), _) => (true, "usable".to_string()),
        }
    }

    /// The report as JSON: `{"runtime": {...} | {"error": ...}, "providers": {...}, "gpus": [...]}`.
    pub fn to_json(&self) -> Value {
        let runtime = match &self.runtime {
            Ok(info) => json!({
                "path": info.path.display().to_string(),
                "version": info.version,
                "source": info.source.kind(),
                "source_detail": info.source.to_string(),
            }),
            Err(e) => json!({ "error": e }),
        };
        let providers: serde_json::Map<String, Value> = self
            .providers
            .iter()
            .map(|p| {
                let v = match &p.available {
                    Ok(b) => json!(b),
                    Err(e) => json!({ "error": e }),
                };
                (p.provider.name().to_string(), v)
            })
            .collect();
        let usable: serde_json::Map<String, Value> = self
            .providers
            .iter()
            .map(|p| {
                let (ok, why) = self.verdict(p);
                (
                    p.provider.name().to_string(),
                    json!({ "usable": ok, "why": why }),
                )
            })
            .collect();
        json!({
            "runtime": runtime,
            "providers": providers,
            "usable": usable,
            "gpus": self.gpus,
            "gpu_source": self.gpu_source,
        })
    }
}

impl fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.runtime {
            Ok(info) => {
                writeln!(f, "ONNX Runtime: {}", info.version)?;
                writeln!(f, "  library: {}", info.path.display())?;
                writeln!(f, "  found via: {}", info.source)?;
            }
            Err(e) => writeln!(f, "ONNX Runtime: not usable: {e}")?,
        }
        if !self.providers.is_empty() {
            writeln!(f, "execution providers:")?;
            for p in &self.providers {
                let (_, why) = self.verdict(p);
                writeln!(f, "  {:<9} {why}", p.provider.name())?;
            }
        }
        if self.gpus.is_empty() {
            writeln!(f, "GPUs: none found")
        } else {
            writeln!(f, "GPUs (from {}):", self.gpu_source)?;
            for g in &self.gpus {
                writeln!(f, "  {g}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeSource;
    use std::path::PathBuf;

    fn report(cuda_in_build: bool, gpus: &[&str]) -> DoctorReport {
        DoctorReport {
            runtime: Ok(RuntimeInfo {
                path: PathBuf::from("/nowhere/libonnxruntime.so.1.31.1"),
                version: "1.31.1".into(),
                source: RuntimeSource::EnvVar,
            }),
            providers: vec![
                ProviderStatus {
                    provider: Provider::Cpu,
                    available: Ok(true),
                },
                ProviderStatus {
                    provider: Provider::Cuda,
                    available: Ok(cuda_in_build),
                },
            ],
            gpus: gpus.iter().map(|g| g.to_string()).collect(),
            gpu_source: "test".into(),
        }
    }

    fn why(r: &DoctorReport, i: usize) -> (bool, String) {
        r.verdict(&r.providers[i])
    }

    #[test]
    fn each_provider_says_why_it_is_or_is_not_usable() {
        let cpu_build = report(false, &[]);
        assert_eq!(why(&cpu_build, 0), (true, "usable".to_string()));
        let (ok, w) = why(&cpu_build, 1);
        assert!(
            !ok && w.contains("a CPU build") && w.contains("onnxruntime-gpu"),
            "{w}"
        );
        let (ok, w) = why(&report(true, &[]), 1);
        assert!(!ok && w.contains("no NVIDIA GPU was found"), "{w}");
        let (ok, w) = why(&report(true, &["GPU 0: test"]), 1);
        assert!(
            !ok && w.contains("/nowhere/libonnxruntime_providers_cuda.so is missing"),
            "{w}"
        );
        let text = report(true, &[]).to_string();
        assert!(text.ends_with("GPUs: none found\n"), "{text}");
        let json = report(false, &[]).to_json();
        assert_eq!(json["usable"]["cuda"]["usable"], false);
        assert_eq!(json["usable"]["cpu"]["why"], "usable");
    }
}
