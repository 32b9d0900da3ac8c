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

impl DoctorReport {
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
        json!({
            "runtime": runtime,
            "providers": providers,
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
                let state = match &p.available {
                    Ok(true) => "available".to_string(),
                    Ok(false) => "not in this build".to_string(),
                    Err(e) => format!("unknown ({e})"),
                };
                writeln!(f, "  {:<9} {state}", p.provider.name())?;
            }
        }
        if self.gpus.is_empty() {
            write!(f, "GPUs: none found")
        } else {
            write!(f, "GPUs (from {}):", self.gpu_source)?;
            for g in &self.gpus {
                write!(f, "\n  {g}")?;
            }
            Ok(())
        }
    }
}
