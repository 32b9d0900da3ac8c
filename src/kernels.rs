//! `wgraph kernels`: runs the step-math cases (`wgraph_kernels::cases`) on a
//! device and prints, per op, the largest difference from the reference (the
//! naive f64 formula for the host; the host for CUDA) and the time per call
//! on the host and on the device. And the CUDA kernels' status for
//! `wgraph doctor`.

use crate::Outcome;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wgraph_kernels::{Host, NoCuda, StepMath, cases};

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

/// The mean time of `reps` calls of `case` on `math`.
fn time(
    math: &mut dyn StepMath,
    case: &cases::Case,
    inp: &cases::Inputs,
    reps: usize,
) -> Result<Duration, wgraph_kernels::MathError> {
    let start = Instant::now();
    for _ in 0..reps {
        case.run_with(math, inp)?;
    }
    Ok(start.elapsed() / u32::try_from(reps.max(1)).unwrap_or(u32::MAX))
}

/// `wgraph kernels`: exit 3 when the device is not usable, 1 when an op
/// differs from its reference by more than the suite's tolerance.
pub fn kernels(args: &KernelsArgs) -> Outcome {
    let mut device: Box<dyn StepMath> = match args.device {
        Device::Host => Box::new(Host),
        Device::Cuda => match cuda(args.gpu) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        },
    };
    let on_host = args.device == Device::Host;
    let tolerance = if on_host {
        cases::HOST_TOLERANCE
    } else {
        cases::DEVICE_TOLERANCE
    };
    let mut rows = Vec::new();
    let mut failed = false;
    for case in cases::all(usize::from(args.scale)) {
        let inp = case.inputs();
        let result = (|| {
            let host = case.run_with(&mut Host, &inp)?;
            let diff = if on_host {
                cases::max_rel_diff(&host, &case.reference())
            } else {
                let got = case.run_with(&mut *device, &inp)?;
                let want: Vec<f64> = host.iter().map(|&v| f64::from(v)).collect();
                cases::max_rel_diff(&got, &want)
            };
            let host_t = time(&mut Host, &case, &inp, usize::from(args.reps))?;
            let dev_t = if on_host {
                None
            } else {
                let copies = time(&mut *device, &case, &inp, usize::from(args.reps))?;
                Some((
                    copies,
                    device.kernel_time(&case, &inp, usize::from(args.reps))?,
                ))
            };
            Ok::<_, wgraph_kernels::MathError>((diff, host_t, dev_t))
        })();
        match result {
            Ok((diff, host_t, dev_t)) => {
                failed |= diff > tolerance;
                rows.push((case, diff, host_t, dev_t));
            }
            Err(e) => {
                eprintln!("error: {}: {e}", case.name);
                return Outcome::RuntimeFailure;
            }
        }
    }
    let against = if on_host { "f64 reference" } else { "host" };
    if args.json {
        let ops: Vec<Value> = rows
            .iter()
            .map(|(c, d, h, t)| {
                json!({
                    "op": c.name,
                    "values": c.len,
                    "max_rel_diff": d,
                    "host_us": h.as_secs_f64() * 1e6,
                    "device_us": t.map(|t| t.0.as_secs_f64() * 1e6),
                    "kernel_us": t.and_then(|t| t.1).map(|k| k.as_secs_f64() * 1e6),
                })
            })
            .collect();
        let doc = json!({
            "device": device.device(),
            "against": against,
            "tolerance": tolerance,
            "ops": ops,
        });
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        }
    } else {
        println!(
            "device: {} (max relative diff vs {against}; tolerance {tolerance:e})",
            device.device()
        );
        println!(
            "{:<22} {:>9} {:>12} {:>10} {:>10} {:>10}",
            "op", "values", "max diff", "host µs", "device µs", "kernel µs"
        );
        let us =
            |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e6));
        for (c, d, h, t) in &rows {
            println!(
                "{:<22} {:>9} {:>12.3e} {:>10.1} {:>10} {:>10}",
                c.name,
                c.len,
                d,
                h.as_secs_f64() * 1e6,
                us(t.map(|t| t.0)),
                us(t.and_then(|t| t.1))
            );
        }
        println!(
            "(device µs: a call with its host↔device copies; kernel µs: the kernel alone, inputs resident)"
        );
    }
    if failed {
        eprintln!("error: an op differs from the {against} by more than {tolerance:e}");
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
