//! `wgraph kernels`: flags → [`wgraph_lab::kernels`] (the step-math cases
//! on the host or the CUDA kernels: per op, the largest difference from the
//! reference and the time per call) → the table or JSON. And the CUDA
//! kernels' status for `wgraph doctor`.

use crate::Outcome;
use crate::commands::lab_failure;
use serde_json::{Value, json};
use wgraph_kernels::{NoCuda, StepMath};
use wgraph_lab::kernels::KernelsOptions;

/// The device `wgraph kernels` runs the cases on.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The host (CPU) implementation, checked against the f64 reference.
    Host,
    /// The CUDA kernels (`--features cuda`), checked against the host.
    Cuda,
}

/// `wgraph kernels`' arguments.
#[derive(clap::Args, Debug)]
pub struct KernelsArgs {
    /// Where to run the step math.
    #[arg(long, value_enum, default_value_t = Device::Host)]
    device: Device,
    /// The CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
    /// Multiplies the cases' sizes (1: the test sizes, ~4k values; at most
    /// 256: latents of 16×2048×2048).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    scale: u16,
    /// Calls per op for the timings (1 to 10000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    reps: u16,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The CUDA kernels' status on device 0, one line for `wgraph doctor`.
pub fn status_text() -> String {
    match wgraph_kernels::probe::cuda_status(0) {
        Ok(i) => format!(
            "CUDA kernels: {} (cuda:{}), compute capability {}.{}, NVRTC {}.{}",
            i.name,
            i.device,
            i.compute_capability.0,
            i.compute_capability.1,
            i.nvrtc_version.0,
            i.nvrtc_version.1
        ),
        Err(NoCuda::NotBuilt) => "CUDA kernels: built without the `cuda` feature".into(),
        Err(e) => format!("CUDA kernels: {e}"),
    }
}

/// The CUDA kernels' status on device 0 as JSON for `wgraph doctor --json`:
/// `{"built", "available", "device", "compute_capability", "nvrtc"}` or
/// `{"built", "available": false, "error"}`.
pub fn status_json() -> Value {
    let built = cfg!(feature = "cuda");
    match wgraph_kernels::probe::cuda_status(0) {
        Ok(i) => json!({
            "built": built,
            "available": true,
            "device": i.name,
            "ordinal": i.device,
            "compute_capability": format!("{}.{}", i.compute_capability.0, i.compute_capability.1),
            "nvrtc": format!("{}.{}", i.nvrtc_version.0, i.nvrtc_version.1),
        }),
        Err(e) => json!({ "built": built, "available": false, "error": e.to_string() }),
    }
}

/// `wgraph kernels`: exit 3 when the device is not usable, 1 when an op
/// differs from its reference by more than the suite's tolerance.
pub fn kernels(args: &KernelsArgs) -> Outcome {
    let cuda_math = match args.device {
        Device::Host => None,
        Device::Cuda => match cuda(args.gpu) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        },
    };
    let options = KernelsOptions {
        scale: usize::from(args.scale),
        reps: usize::from(args.reps),
    };
    let report = match wgraph_lab::kernels::kernels(&options, cuda_math) {
        Ok(r) => r,
        Err(e) => return lab_failure(e),
    };
    if args.json {
        let text = serde_json::to_value(&report).and_then(|v| serde_json::to_string_pretty(&v));
        match text {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        }
    } else {
        print!("{}", report.text());
    }
    if report.failed() {
        eprintln!(
            "error: an op differs from the {} by more than {:e}",
            report.against, report.tolerance
        );
        Outcome::GraphErrors
    } else {
        Outcome::Ok
    }
}

#[cfg(feature = "cuda")]
fn cuda(gpu: usize) -> Result<Box<dyn StepMath>, NoCuda> {
    Ok(Box::new(wgraph_kernels::CudaMath::new(gpu)?))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_: usize) -> Result<Box<dyn StepMath>, NoCuda> {
    Err(NoCuda::NotBuilt)
}
