//! `aam`: Yume's Anti-Artifact Mechanism (arXiv 2507.17744, Alg. 2 and
//! Appendix D) — a two-pass rectified-flow sampler.
//!
//! 1. A standard Euler pass of `denoiser` from `noise` gives `z_orig`.
//! 2. A refinement pass of `refiner` (default: the same denoiser; Yume uses
//!    the model with the motion text removed) starts again from the same
//!    `noise`. Before each of its first `refine` steps (K), at level σᵢ:
//!    `z_orig,σ = (1−σᵢ)·z_orig + σᵢ·noise` (the first pass re-noised),
//!    `z ← B(z_orig,σ) + (z − B(z))`: low frequencies from the first pass,
//!    high frequencies from the refinement; then the Euler step.
//!
//! `B`, over the latent's last two axes, is chosen by `filter`:
//! - `pinv_blur` — the published operator `B = A⁺A`, `A = A_W ⊗ A_H` the
//!   separable blur with `kernel_h` ([0.1, 0.8, 0.1]) and `kernel_w`
//!   ([0.2, 0.6, 0.2]) as banded matrices, `A⁺` by SVD with singular values
//!   ≤ 1e-6 dropped. **As published it keeps everything**: those blur
//!   matrices are full rank, so `A⁺A = I` and the first `refine` steps simply
//!   replace the latent with the re-noised first pass (the paper says "A is
//!   not full-rank"; with these kernels it is). A rank-deficient kernel
//!   (e.g. `kernel_w = [0.5, 0.5]` on an even width… any kernel with a zero
//!   of its symbol) makes it a real projection.
//! - `gaussian` — a real low-pass: separable Gaussian blur of standard
//!   deviation `blur_sigma` (in latent cells), zero-padded like the published
//!   matrices, normalised per output cell.

use super::step::latent_output;
use super::{DENOISER, DenoiserCall, FlowCall, Schedule, flow_sampler_params};
use crate::common::*;
use nalgebra::DMatrix;
use wgraph_kernels::host;

/// The `aam` kind.
pub struct Aam;

const FILTERS: &[&str] = &["pinv_blur", "gaussian"];

impl NodeKind for Aam {
    fn name(&self) -> &'static str {
        "aam"
    }
    fn summary(&self) -> &'static str {
        "Yume's Anti-Artifact Mechanism: a flow Euler pass, then a refinement pass taking low frequencies from the re-noised first pass for `refine` steps"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = flow_sampler_params![
            ParamSpec::optional(
                "refine",
                ParamType::Int,
                ParamDefault::Int(5),
                "K: refinement steps that take the first pass's low frequencies (Yume: 5); capped at `steps`",
            ),
            ParamSpec::optional(
                "filter",
                ParamType::Choice(FILTERS),
                ParamDefault::Choice("pinv_blur"),
                "low-pass B: pinv_blur = the published A⁺A (identity for the published kernels), gaussian = a real blur",
            ),
            ParamSpec::optional(
                "kernel_h",
                ParamType::FloatList,
                ParamDefault::Absent,
                "pinv_blur: the height blur kernel, odd length (default [0.1, 0.8, 0.1])",
            ),
            ParamSpec::optional(
                "kernel_w",
                ParamType::FloatList,
                ParamDefault::Absent,
                "pinv_blur: the width blur kernel, odd length (default [0.2, 0.6, 0.2])",
            ),
            ParamSpec::optional(
                "blur_sigma",
                ParamType::Float,
                ParamDefault::Float(1.0),
                "gaussian: standard deviation in latent cells (> 0)",
            ),
            DENOISER,
            ParamSpec::optional(
                "refiner",
                ParamType::NodeRef,
                ParamDefault::Absent,
                "the refinement pass's denoiser (Yume: motion text removed); default: `denoiser`",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let schedule = Schedule::from_params(cx)?;
        let refine = cx.params.int("refine")?;
        let refine = usize::try_from(refine)
            .map_err(|_| {
                BuildError::param("refine", format!("`refine` must be >= 0, found {refine}"))
            })?
            .min(schedule.steps());
        let filter = match cx.params.choice("filter")?.as_str() {
            "gaussian" => {
                let sigma = finite_param(cx, "blur_sigma")?;
                if sigma <= 0.0 {
                    return Err(BuildError::param(
                        "blur_sigma",
                        format!("`blur_sigma` must be positive, found {sigma}"),
                    ));
                }
                Filter::Gaussian(sigma)
            }
            _ => Filter::PinvBlur {
                kernel_h: kernel_param(cx, "kernel_h", &[0.1, 0.8, 0.1])?,
                kernel_w: kernel_param(cx, "kernel_w", &[0.2, 0.6, 0.2])?,
            },
        };
        Ok(Box::new(AamNode {
            schedule,
            refine,
            filter,
            denoiser: cx.params.node_ref("denoiser")?,
            refiner: cx.params.node_ref("refiner").ok(),
            first: DenoiserCall::default(),
            second: DenoiserCall::default(),
            operator: std::sync::OnceLock::new(),
        }))
    }
}

/// A blur kernel parameter: odd length.
fn kernel_param(
    cx: &BuildContext<'_>,
    name: &str,
    default: &[f64],
) -> Result<Vec<f64>, BuildError> {
    let Ok(kernel) = cx.params.float_list(name) else {
        return Ok(default.to_vec());
    };
    if kernel.len() % 2 == 0 || kernel.len() > 63 {
        return Err(BuildError::param(
            name,
            format!(
                "`{name}` must have an odd length up to 63, found {}",
                kernel.len()
            ),
        ));
    }
    Ok(kernel)
}

/// The low-pass operator's recipe; its matrices depend on the latent size.
#[derive(Debug, Clone, PartialEq)]
enum Filter {
    PinvBlur {
        kernel_h: Vec<f64>,
        kernel_w: Vec<f64>,
    },
    Gaussian(f64),
}

/// The banded n×n matrix of a centred kernel, zero outside (Appendix D's
/// `A_H`, `A_W`).
pub fn blur_matrix(kernel: &[f64], n: usize) -> DMatrix<f64> {
    let half = kernel.len() / 2;
    DMatrix::from_fn(n, n, |i, j| {
        let k = j as isize - i as isize + half as isize;
        if (0..kernel.len() as isize).contains(&k) {
            kernel[k as usize]
        } else {
            0.0
        }
    })
}

/// `A⁺A` of a matrix, by SVD with singular values ≤ 1e-6 dropped: the
/// projection onto its row space (the identity when it has full rank).
pub fn pinv_projection(a: &DMatrix<f64>) -> DMatrix<f64> {
    let svd = a.clone().svd(false, true);
    let (Some(vt), s) = (svd.v_t, svd.singular_values) else {
        return DMatrix::identity(a.ncols(), a.ncols());
    };
    let mut p = DMatrix::zeros(a.ncols(), a.ncols());
    for (k, &sv) in s.iter().enumerate() {
        if sv > 1e-6 {
            let row = vt.row(k);
            p += row.transpose() * row;
        }
    }
    p
}

/// A normalised Gaussian blur as an n×n matrix (zero padding; each row sums
/// to 1).
pub fn gaussian_matrix(sigma: f64, n: usize) -> DMatrix<f64> {
    let reach = (3.0 * sigma).ceil() as isize;
    let mut m = DMatrix::from_fn(n, n, |i, j| {
        let d = j as isize - i as isize;
        if d.abs() <= reach {
            (-(d * d) as f64 / (2.0 * sigma * sigma)).exp()
        } else {
            0.0
        }
    });
    for mut row in m.row_iter_mut() {
        let sum: f64 = row.iter().sum();
        row /= sum;
    }
    m
}

impl Filter {
    /// The height and width operators of `B` for an H×W plane.
    fn matrices(&self, h: usize, w: usize) -> (DMatrix<f64>, DMatrix<f64>) {
        match self {
            Filter::PinvBlur { kernel_h, kernel_w } => (
                pinv_projection(&blur_matrix(kernel_h, h)),
                pinv_projection(&blur_matrix(kernel_w, w)),
            ),
            Filter::Gaussian(sigma) => (gaussian_matrix(*sigma, h), gaussian_matrix(*sigma, w)),
        }
    }
}

/// The H×W planes of a latent `[…, H, W]` (a vector is one 1×N plane).
fn plane(shape: &[usize]) -> (usize, usize) {
    match shape {
        [.., h, w] if shape.len() >= 2 => (*h, *w),
        _ => (1, shape.iter().product()),
    }
}

/// `B(x)` on every H×W plane of `x` (shape `[…, H, W]`): `B_H · X · B_Wᵀ`.
fn apply(bh: &DMatrix<f64>, bw: &DMatrix<f64>, x: &[f32], h: usize, w: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for plane in x.chunks(h * w) {
        let m = DMatrix::from_fn(h, w, |i, j| f64::from(plane[i * w + j]));
        let y = bh * m * bw.transpose();
        for i in 0..h {
            for j in 0..w {
                out.push(y[(i, j)]);
            }
        }
    }
    out
}

struct AamNode {
    schedule: Schedule,
    refine: usize,
    filter: Filter,
    denoiser: String,
    refiner: Option<String>,
    /// How the denoiser and the refiner are called, set at build time.
    first: DenoiserCall,
    second: DenoiserCall,
    /// `B` as (height, width) operators for the latent's H×W, computed once
    /// (an SVD each) when the graph is built, not per tick.
    operator: std::sync::OnceLock<Operator>,
}

/// The filter's operators for one latent shape.
struct Operator {
    shape: Vec<usize>,
    bh: DMatrix<f64>,
    bw: DMatrix<f64>,
}

impl AamNode {
    fn operator_for(&self, shape: &[usize]) -> Operator {
        let (h, w) = plane(shape);
        let (bh, bw) = self.filter.matrices(h, w);
        Operator {
            shape: shape.to_vec(),
            bh,
            bw,
        }
    }

    /// One Euler pass; before step i < `refine`, the AAM recombination with
    /// the first pass `orig` (`None`: the first pass itself).
    #[allow(clippy::too_many_arguments)]
    fn pass(
        &self,
        cx: &mut TickContext<'_>,
        call: &FlowCall,
        name: &str,
        shape: &[usize],
        noise: &[f32],
        (sigmas, entry): (&[f64], f32),
        orig: Option<(&[f32], &DMatrix<f64>, &DMatrix<f64>)>,
    ) -> Result<Vec<f32>, NodeError> {
        let (h, w) = plane(shape);
        let mut x: Vec<f32> = noise.iter().map(|v| v * entry).collect();
        for (i, pair) in sigmas.windows(2).enumerate() {
            let s = pair[0];
            if let Some((orig, bh, bw)) = orig
                && i < self.refine
            {
                let mut renoised = vec![0.0; orig.len().min(noise.len())];
                host::renoise(&mut renoised, orig, noise, s);
                let low = apply(bh, bw, &renoised, h, w);
                let own_low = apply(bh, bw, &x, h, w);
                host::highpass_mix(&mut x, &low, &own_low);
            }
            let (x0, eps) = call.denoise(cx, name, shape, &x, s)?;
            let dt = pair[1] - s;
            host::axpy_diff_wide(&mut x, &eps, &x0, dt);
        }
        Ok(x)
    }
}

impl Node for AamNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("noise")]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        latent_output()
    }
    fn calls(&self) -> Vec<CallSpec> {
        let mut calls = vec![CallSpec {
            param: "denoiser".into(),
            args: vec!["x".into(), "t".into()],
        }];
        if self.refiner.is_some() {
            calls.push(CallSpec {
                param: "refiner".into(),
                args: vec!["x".into(), "t".into()],
            });
        }
        calls
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        calls: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let types = self.first.infer(inputs, calls, 0, &self.denoiser, "aam")?;
        match &self.refiner {
            Some(r) => self.second.infer(inputs, calls, 1, r, "aam")?,
            None => self.second.infer(inputs, calls, 0, &self.denoiser, "aam")?,
        };
        if let Some(Some(ValueType::Tensor(t))) = inputs.first()
            && let Some(shape) = t.known_shape()
        {
            let _ = self.operator.set(self.operator_for(&shape));
        }
        Ok(types)
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let noise = tensor_arg(inputs, 0)?;
        let shape = noise.shape().to_vec();
        let z = noise.host_f32()?;
        let (sigmas, entry) = self.schedule.enter_flow(self.first.get().model(), &shape);
        let orig = self.pass(
            cx,
            self.first.get(),
            &self.denoiser,
            &shape,
            z,
            (&sigmas, entry),
            None,
        )?;
        let computed;
        let op = match self.operator.get() {
            Some(op) if op.shape == shape => op,
            _ => {
                computed = self.operator_for(&shape);
                &computed
            }
        };
        let refiner = self.refiner.as_deref().unwrap_or(&self.denoiser);
        let out = self.pass(
            cx,
            self.second.get(),
            refiner,
            &shape,
            z,
            (&sigmas, entry),
            Some((&orig, &op.bh, &op.bw)),
        )?;
        f32_out(&shape, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BRIEF §3: the published blur matrices are full rank, so A⁺A = I and
    /// "low frequencies" are everything; a Gaussian is a real low-pass.
    #[test]
    fn the_published_operator_keeps_everything_and_a_gaussian_does_not() {
        for n in [4, 16, 64] {
            for kernel in [[0.1, 0.8, 0.1], [0.2, 0.6, 0.2]] {
                let p = pinv_projection(&blur_matrix(&kernel, n));
                let err = (p - DMatrix::<f64>::identity(n, n)).abs().max();
                assert!(err < 1e-9, "n {n} kernel {kernel:?}: |A⁺A − I| = {err}");
            }
            // A checkerboard row is the highest frequency: a Gaussian removes
            // most of it; A⁺A returns it unchanged.
            let g = gaussian_matrix(1.0, n);
            let alt = DMatrix::from_fn(n, 1, |i, _| if i % 2 == 0 { 1.0 } else { -1.0 });
            let blurred = &g * &alt;
            let kept = blurred.rows(1, n - 2).abs().max();
            assert!(kept < 0.05, "gaussian keeps {kept} of the checkerboard");
        }
        // A rank-deficient kernel makes a real projection (idempotent, not I).
        let p = pinv_projection(&blur_matrix(&[0.5, 0.0, 0.5], 7));
        assert!((&p * &p - &p).abs().max() < 1e-9);
        assert!((p - DMatrix::<f64>::identity(7, 7)).abs().max() > 0.1);
    }
}
