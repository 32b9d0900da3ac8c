//! The step-math cases (`wgraph_kernels::cases`) run on a device
//! (`wgraph kernels`): per op, the largest relative difference from the
//! reference (the naive f64 formula for the host; the host for a device)
//! and the time per call on the host and on the device.

use serde::Serialize;
use std::time::{Duration, Instant};
use wgraph_kernels::{Host, StepMath, cases};

use crate::LabError;

/// What to run: the cases' size and how many calls each timing averages.
#[derive(Debug, Clone, Copy)]
pub struct KernelsOptions {
    /// Multiplies the cases' sizes (1: the test sizes).
    pub scale: usize,
    /// Calls per op for the timings.
    pub reps: usize,
}

/// One op's figures.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// The case's name.
    pub op: String,
    /// Values it computes.
    pub values: usize,
    /// The largest relative difference from the reference.
    pub max_rel_diff: f64,
    /// Microseconds per call on the host.
    pub host_us: f64,
    /// Microseconds per call on the device, its host↔device copies
    /// included (`None` on the host).
    pub device_us: Option<f64>,
    /// Microseconds per call of the kernel alone, inputs resident (where
    /// the device can time it).
    pub kernel_us: Option<f64>,
}

/// The cases' figures on one device.
#[derive(Debug, Clone, Serialize)]
pub struct KernelsReport {
    /// The device, as it names itself.
    pub device: String,
    /// What the differences are measured against: `f64 reference` or `host`.
    pub against: String,
    /// The largest difference allowed.
    pub tolerance: f64,
    /// One row per op.
    pub ops: Vec<OpReport>,
}

impl KernelsReport {
    /// Whether an op differs from its reference by more than the tolerance.
    pub fn failed(&self) -> bool {
        self.ops.iter().any(|o| o.max_rel_diff > self.tolerance)
    }

    /// The table `wgraph kernels` prints.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let (against, tolerance) = (&self.against, self.tolerance);
        let _ = writeln!(
            s,
            "device: {} (max relative diff vs {against}; tolerance {tolerance:e})",
            self.device
        );
        let _ = writeln!(
            s,
            "{:<22} {:>9} {:>12} {:>10} {:>10} {:>10}",
            "op", "values", "max diff", "host µs", "device µs", "kernel µs"
        );
        let us = |d: Option<f64>| d.map_or("-".into(), |d| format!("{d:.1}"));
        for o in &self.ops {
            let _ = writeln!(
                s,
                "{:<22} {:>9} {:>12.3e} {:>10.1} {:>10} {:>10}",
                o.op,
                o.values,
                o.max_rel_diff,
                o.host_us,
                us(o.device_us),
                us(o.kernel_us)
            );
        }
        s.push_str(
            "(device µs: a call with its host↔device copies; kernel µs: the kernel alone, inputs resident)\n",
        );
        s
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

/// Runs every case on `device` — checked against the f64 reference when
/// `device` is `None` (the host), else against the host — and times it.
/// An op that fails to run is a [`LabError::Runtime`] naming it.
pub fn kernels(
    options: &KernelsOptions,
    device: Option<Box<dyn StepMath>>,
) -> Result<KernelsReport, LabError> {
    let on_host = device.is_none();
    let mut device = device.unwrap_or_else(|| Box::new(Host));
    let tolerance = if on_host {
        cases::HOST_TOLERANCE
    } else {
        cases::DEVICE_TOLERANCE
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mut ops = Vec::new();
    for case in cases::all(options.scale) {
        let inp = case.inputs();
        let row = (|| {
            let host = case.run_with(&mut Host, &inp)?;
            let diff = if on_host {
                cases::max_rel_diff(&host, &case.reference())
            } else {
                let got = case.run_with(&mut *device, &inp)?;
                let want: Vec<f64> = host.iter().map(|&v| f64::from(v)).collect();
                cases::max_rel_diff(&got, &want)
            };
            let host_t = time(&mut Host, &case, &inp, options.reps)?;
            let (device_us, kernel_us) = if on_host {
                (None, None)
            } else {
                let copies = time(&mut *device, &case, &inp, options.reps)?;
                let kernel = device.kernel_time(&case, &inp, options.reps)?;
                (Some(us(copies)), kernel.map(us))
            };
            Ok::<_, wgraph_kernels::MathError>(OpReport {
                op: case.name.clone(),
                values: case.len,
                max_rel_diff: diff,
                host_us: us(host_t),
                device_us,
                kernel_us,
            })
        })();
        ops.push(row.map_err(|e| LabError::Runtime(format!("{}: {e}", case.name)))?);
    }
    Ok(KernelsReport {
        device: device.device(),
        against: if on_host { "f64 reference" } else { "host" }.into(),
        tolerance,
        ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cases_match_the_reference() {
        let report = kernels(&KernelsOptions { scale: 1, reps: 1 }, None).unwrap();
        assert_eq!(report.against, "f64 reference");
        assert!(!report.ops.is_empty());
        assert!(!report.failed(), "{}", report.text());
        assert!(report.ops.iter().all(|o| o.device_us.is_none()));
        let text = report.text();
        assert!(text.starts_with("device: "), "{text}");
        assert_eq!(text.lines().count(), report.ops.len() + 3);
    }
}
