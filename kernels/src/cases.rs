//! The step-math test cases: one list of (op, size, parameters), each with
//! deterministic inputs and a naive f64 reference. `tests/step_math.rs`
//! checks the host against the reference and every other device against
//! the host; the bench and `wgraph kernels` time them.

use crate::{DdimCoef, Dims, MathError, SdeCoef, StepMath, host};

/// One primitive with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// [`host::axpy_diff`] with factor `s`.
    AxpyDiff {
        /// The factor.
        s: f32,
    },
    /// [`host::axpy_diff_wide`] with factor `s`.
    AxpyDiffWide {
        /// The factor.
        s: f64,
    },
    /// [`host::axpy_wide`] with factor `s` (velocity: the `low` input).
    AxpyWide {
        /// The factor.
        s: f64,
    },
    /// [`host::renoise`] to level `s`.
    Renoise {
        /// The level σ.
        s: f64,
    },
    /// [`host::ddim_step`]; `noise`: with a `z` input.
    Ddim {
        /// The coefficients.
        coef: DdimCoef,
        /// Whether `z` is passed.
        noise: bool,
    },
    /// [`host::sde_step`].
    Sde(SdeCoef),
    /// [`host::highpass_mix`].
    HighpassMix,
    /// [`host::avg_pool2d`] of a `dims` latent over k×k blocks.
    AvgPool2d {
        /// The latent's (C, H, W).
        dims: Dims,
        /// The block size.
        k: usize,
    },
    /// [`host::patchify`] of a `dims` latent into p×p patches.
    Patchify {
        /// The latent's (C, H, W).
        dims: Dims,
        /// The patch size.
        p: usize,
    },
}

/// One test case: an op on inputs of `len` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// A short name (`op/variant`).
    pub name: String,
    /// The op and its parameters.
    pub op: Op,
    /// The inputs' length (the latent's C·H·W for the pooling ops).
    pub len: usize,
}

/// A case's inputs (deterministic in its length).
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// The state `x` (or the latent of a pooling op).
    pub x: Vec<f32>,
    /// First operand (`a`, x₀, cond).
    pub a: Vec<f32>,
    /// Second operand (`b`, ε, noise).
    pub b: Vec<f32>,
    /// Step noise.
    pub z: Vec<f32>,
    /// `low` for the frequency split.
    pub low: Vec<f64>,
    /// `own_low` for the frequency split.
    pub own_low: Vec<f64>,
}

/// The tolerance of the host against the f64 reference, relative to
/// `max(1, |reference|)`: f32 rounding of the result and of the f32
/// intermediates (sums of k² values for pooling).
pub const HOST_TOLERANCE: f64 = 2e-6;
/// The tolerance of a device against the host, relative to `max(1, |host|)`.
/// (The kernels are compiled without FMA contraction, so in practice they
/// agree exactly.)
pub const DEVICE_TOLERANCE: f64 = 1e-6;

impl Case {
    /// The inputs: smooth deterministic patterns of magnitude ≤ 2.
    pub fn inputs(&self) -> Inputs {
        let n = self.len;
        let f = |k: f64, p: f64, m: f64| -> Vec<f32> {
            (0..n)
                .map(|i| ((i as f64 * k + p).sin() * m) as f32)
                .collect()
        };
        let x = f(0.37, 0.1, 1.5);
        let low: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos() * 0.8).collect();
        let own_low: Vec<f64> = (0..n)
            .map(|i| (i as f64 * 0.23 + 1.0).sin() * 0.7)
            .collect();
        Inputs {
            x,
            a: f(1.3, 0.5, 1.0),
            b: f(0.71, 2.0, 1.2),
            z: f(0.29, 0.3, 2.0),
            low,
            own_low,
        }
    }

    /// The output's length.
    pub fn out_len(&self) -> usize {
        match self.op {
            Op::AvgPool2d { dims, k } => host::avg_pool2d_len(dims, k),
            Op::Patchify { dims, p } => host::patchify_len(dims, p),
            _ => self.len,
        }
    }

    /// Runs the case on `math` with its inputs.
    pub fn run(&self, math: &mut dyn StepMath) -> Result<Vec<f32>, MathError> {
        self.run_with(math, &self.inputs())
    }

    /// Runs the case on `math` with `inp` (from [`Case::inputs`]).
    pub fn run_with(&self, math: &mut dyn StepMath, inp: &Inputs) -> Result<Vec<f32>, MathError> {
        let mut x = inp.x.clone();
        match self.op {
            Op::AxpyDiff { s } => math.axpy_diff(&mut x, &inp.a, &inp.b, s)?,
            Op::AxpyDiffWide { s } => math.axpy_diff_wide(&mut x, &inp.a, &inp.b, s)?,
            Op::AxpyWide { s } => math.axpy_wide(&mut x, &inp.low, s)?,
            Op::Renoise { s } => math.renoise(&mut x, &inp.a, &inp.b, s)?,
            Op::Ddim { coef, noise } => {
                let z = noise.then_some(inp.z.as_slice());
                math.ddim_step(&mut x, &inp.b, z, &coef)?
            }
            Op::Sde(c) => math.sde_step(&mut x, &inp.a, &inp.b, &inp.z, &c)?,
            Op::HighpassMix => math.highpass_mix(&mut x, &inp.low, &inp.own_low)?,
            Op::AvgPool2d { dims, k } => {
                let mut out = vec![0.0; self.out_len()];
                math.avg_pool2d(&mut out, &inp.x, dims, k)?;
                return Ok(out);
            }
            Op::Patchify { dims, p } => {
                let mut out = vec![0.0; self.out_len()];
                math.patchify(&mut out, &inp.x, dims, p)?;
                return Ok(out);
            }
        }
        Ok(x)
    }

    /// The naive f64 reference: the op's formula with every input widened
    /// to f64 and no intermediate rounding.
    pub fn reference(&self) -> Vec<f64> {
        let inp = self.inputs();
        let w = |v: &[f32]| -> Vec<f64> { v.iter().map(|&v| f64::from(v)).collect() };
        let (x, a, b, z) = (w(&inp.x), w(&inp.a), w(&inp.b), w(&inp.z));
        let n = self.len;
        match self.op {
            Op::AxpyDiff { s } => (0..n)
                .map(|i| x[i] + f64::from(s) * (a[i] - b[i]))
                .collect(),
            Op::AxpyDiffWide { s } => (0..n).map(|i| x[i] + s * (a[i] - b[i])).collect(),
            Op::AxpyWide { s } => (0..n).map(|i| x[i] + s * inp.low[i]).collect(),
            Op::Renoise { s } => (0..n).map(|i| (1.0 - s) * a[i] + s * b[i]).collect(),
            Op::Ddim { coef: c, noise } => (0..n)
                .map(|i| {
                    let x0 = (x[i] - c.sb_t * b[i]) / c.sa_t;
                    let zn = if noise && c.std > 0.0 {
                        c.std * z[i]
                    } else {
                        0.0
                    };
                    c.sa_p * x0 + c.dir * b[i] + zn
                })
                .collect(),
            Op::Sde(c) => (0..n)
                .map(|i| {
                    let score = -(x[i] - (1.0 - c.s) * a[i]) / (c.s * c.s);
                    x[i] + c.ds * (b[i] - a[i]) - 0.5 * c.eta * c.eta * score * c.ds + c.amp * z[i]
                })
                .collect(),
            Op::HighpassMix => (0..n).map(|i| inp.low[i] + x[i] - inp.own_low[i]).collect(),
            Op::AvgPool2d {
                dims: (c, h, wd),
                k,
            } => {
                let mut out = Vec::new();
                for bi in 0..h / k {
                    for bj in 0..wd / k {
                        for ch in 0..c {
                            let mut sum = 0.0;
                            for dy in 0..k {
                                for dx in 0..k {
                                    sum += x[ch * h * wd + (bi * k + dy) * wd + bj * k + dx];
                                }
                            }
                            out.push(sum / (k * k) as f64);
                        }
                    }
                }
                out
            }
            Op::Patchify {
                dims: (c, h, wd),
                p,
            } => {
                let mut out = Vec::new();
                for bi in 0..h / p {
                    for bj in 0..wd / p {
                        for ch in 0..c {
                            for dy in 0..p {
                                for dx in 0..p {
                                    out.push(x[ch * h * wd + (bi * p + dy) * wd + bj * p + dx]);
                                }
                            }
                        }
                    }
                }
                out
            }
        }
    }
}

/// The cases, their vectors `scale` times the base sizes (1 for tests; a
/// larger scale for timing). Sizes are odd on purpose (partial blocks).
pub fn all(scale: usize) -> Vec<Case> {
    let scale = scale.max(1);
    let n = 4099 * scale;
    let ddim = DdimCoef {
        sa_t: 0.3,
        sb_t: (1.0f64 - 0.09).sqrt(),
        sa_p: 0.6,
        dir: (1.0f64 - 0.36 - 0.04).sqrt(),
        std: 0.2,
    };
    let ds: f64 = -0.125;
    let sde = SdeCoef {
        s: 0.625,
        ds,
        eta: 0.8,
        amp: 0.8 * (-ds).sqrt(),
    };
    // A latent of 16 channels, 8·scale × 8·scale (h, w divisible by 4).
    let side = 8 * scale;
    let dims = (16, side, side);
    let latent = 16 * side * side;
    let case = |name: &str, op: Op, len: usize| Case {
        name: name.into(),
        op,
        len,
    };
    vec![
        case("axpy_diff/euler", Op::AxpyDiff { s: -0.25 }, n),
        case("axpy_diff/guidance", Op::AxpyDiff { s: 4.5 }, n),
        case("axpy_diff/one", Op::AxpyDiff { s: 0.5 }, 1),
        case("axpy_diff_wide/aam", Op::AxpyDiffWide { s: -0.3 }, n),
        case("axpy_wide/tts", Op::AxpyWide { s: -0.2 }, n),
        case("renoise/mid", Op::Renoise { s: 0.4 }, n),
        case("renoise/clean", Op::Renoise { s: 0.0 }, n),
        case("renoise/empty", Op::Renoise { s: 0.5 }, 0),
        case(
            "ddim_step/eta0",
            Op::Ddim {
                coef: DdimCoef { std: 0.0, ..ddim },
                noise: false,
            },
            n,
        ),
        case(
            "ddim_step/eta",
            Op::Ddim {
                coef: ddim,
                noise: true,
            },
            n,
        ),
        case("sde_step", Op::Sde(sde), n),
        case("highpass_mix/aam", Op::HighpassMix, n),
        case("avg_pool2d/k1", Op::AvgPool2d { dims, k: 1 }, latent),
        case("avg_pool2d/k2", Op::AvgPool2d { dims, k: 2 }, latent),
        case("avg_pool2d/k4", Op::AvgPool2d { dims, k: 4 }, latent),
        case(
            "avg_pool2d/odd",
            Op::AvgPool2d {
                dims: (3, 5, 7),
                k: 2,
            },
            105,
        ),
        case("patchify/p2", Op::Patchify { dims, p: 2 }, latent),
        case(
            "patchify/odd",
            Op::Patchify {
                dims: (2, 6, 5),
                p: 3,
            },
            60,
        ),
    ]
}

/// The largest `|got − want| / max(1, |want|)`.
pub fn max_rel_diff(got: &[f32], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).abs() / w.abs().max(1.0))
        .fold(0.0, f64::max)
}

/// The largest `|got − want|`.
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - f64::from(w)).abs())
        .fold(0.0, f64::max)
}
