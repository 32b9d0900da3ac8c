//! `wgraph-kernels`: the per-step math between model calls — sampler
//! updates, guidance mixing, re-noising, AAM's low/high-frequency mixing and
//! memory downsampling — on the host, and (feature `cuda`) as CUDA kernels
//! compiled at run time with NVRTC.
//!
//! # Overview
//!
//! - [`host`] — the primitives as plain functions over `&[f32]`/`&mut [f32]`
//!   ([`host::axpy_diff`], [`host::guidance`], [`host::axpy_diff_wide`],
//!   [`host::axpy_wide`],
//!   [`host::renoise`], [`host::ddim_step`], [`host::sde_step`],
//!   [`host::highpass_mix`], [`host::avg_pool2d`], [`host::patchify`]). They
//!   are the reference: bit for bit the loops the nodes had inline, and what
//!   the nodes call.
//! - [`StepMath`] — the same primitives behind a trait, one implementation per
//!   device: [`Host`] always, `CudaMath` with the `cuda` feature.
//! - [`probe`] — [`probe::probe_cuda`] finds libcuda, a device and libnvrtc
//!   with `libloading` *before* cudarc is touched (cudarc panics when they
//!   are absent), so a CPU machine gets [`NoCuda`] (`no CUDA device: …`),
//!   never a panic. Always built, so the probe is tested everywhere.
//! - `cuda` (feature `cuda`) — `CudaMath`: the kernels (`src/step_math.cu`),
//!   device buffers (`cudarc::driver::CudaSlice<f32>`), upload/download
//!   helpers that count host↔device copies ([`Copies`]).
//! - [`cases`] — the data-driven test cases (op, sizes, parameters) with a
//!   naive f64 reference, shared by `tests/step_math.rs`, the bench and
//!   `wgraph kernels`.
//!
//! **Invariant:** the host path is the reference; CUDA code exists only behind
//! the `cuda` feature and runs only after the probe succeeded.

pub mod cases;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod host;
pub mod probe;

#[cfg(feature = "cuda")]
pub use cuda::CudaMath;
pub use probe::{CudaInfo, NoCuda};

/// The dimensions `(C, H, W)` of one latent frame.
pub type Dims = (usize, usize, usize);

/// DDIM's per-step coefficients (see [`host::ddim_step`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdimCoef {
    /// √ᾱₜ at the current timestep.
    pub sa_t: f64,
    /// √(1 − ᾱₜ).
    pub sb_t: f64,
    /// √ᾱₚ at the previous (next lower) timestep.
    pub sa_p: f64,
    /// The direction's weight `√(max(0, 1 − ᾱₚ − std²))`.
    pub dir: f64,
    /// The step noise's standard deviation (0: deterministic).
    pub std: f64,
}

/// The flow SDE's per-step coefficients (see [`host::sde_step`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SdeCoef {
    /// The current level σ.
    pub s: f64,
    /// `σ_next − σ`.
    pub ds: f64,
    /// The noise scale η.
    pub eta: f64,
    /// The noise amplitude `η·√(max(0, −dσ))`.
    pub amp: f64,
}

/// Host↔device copies made by a device, for the engine's per-tick report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copies {
    /// Host → device copies.
    pub to_device: u64,
    /// Device → host copies.
    pub to_host: u64,
    /// Bytes copied host → device.
    pub bytes_to_device: u64,
    /// Bytes copied device → host.
    pub bytes_to_host: u64,
}

/// Why a step-math operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MathError {
    /// An input's length does not match the output's.
    #[error("{op}: `{input}` has {found} values, expected {expected}")]
    Length {
        /// The operation.
        op: &'static str,
        /// The input's name.
        input: &'static str,
        /// The length it needs.
        expected: usize,
        /// The length it has.
        found: usize,
    },
    /// A device call failed (driver, compilation, launch or copy).
    #[error("{0}")]
    Device(String),
}

/// The step-math primitives on one device. Inputs and outputs are host
/// slices; a device implementation copies them over and back (and counts
/// the copies). Every method checks that its inputs have the output's
/// length (the pooling ops: the latent's `C·H·W` and the output's
/// `avg_pool2d_len`/`patchify_len`).
pub trait StepMath {
    /// The device in words (`host`, or the GPU's name).
    fn device(&self) -> String;
    /// The mean time of `reps` runs of `case`'s kernel with its inputs
    /// already on the device (no copies); `None` for the host (and for
    /// empty cases), where [`cases::Case::run_with`] is the time.
    fn kernel_time(
        &mut self,
        case: &cases::Case,
        inp: &cases::Inputs,
        reps: usize,
    ) -> Result<Option<std::time::Duration>, MathError> {
        let _ = (case, inp, reps);
        Ok(None)
    }
    /// [`host::axpy_diff`].
    fn axpy_diff(&mut self, x: &mut [f32], a: &[f32], b: &[f32], s: f32) -> Result<(), MathError>;
    /// [`host::axpy_diff_wide`].
    fn axpy_diff_wide(
        &mut self,
        x: &mut [f32],
        a: &[f32],
        b: &[f32],
        s: f64,
    ) -> Result<(), MathError>;
    /// [`host::axpy_wide`].
    fn axpy_wide(&mut self, x: &mut [f32], v: &[f64], s: f64) -> Result<(), MathError>;
    /// [`host::renoise`].
    fn renoise(
        &mut self,
        out: &mut [f32],
        x0: &[f32],
        noise: &[f32],
        s: f64,
    ) -> Result<(), MathError>;
    /// [`host::ddim_step`].
    fn ddim_step(
        &mut self,
        x: &mut [f32],
        eps: &[f32],
        z: Option<&[f32]>,
        c: &DdimCoef,
    ) -> Result<(), MathError>;
    /// [`host::sde_step`].
    fn sde_step(
        &mut self,
        x: &mut [f32],
        x0: &[f32],
        eps: &[f32],
        z: &[f32],
        c: &SdeCoef,
    ) -> Result<(), MathError>;
    /// [`host::highpass_mix`].
    fn highpass_mix(
        &mut self,
        x: &mut [f32],
        low: &[f64],
        own_low: &[f64],
    ) -> Result<(), MathError>;
    /// [`host::avg_pool2d`].
    fn avg_pool2d(
        &mut self,
        out: &mut [f32],
        l: &[f32],
        dims: Dims,
        k: usize,
    ) -> Result<(), MathError>;
    /// [`host::patchify`].
    fn patchify(
        &mut self,
        out: &mut [f32],
        l: &[f32],
        dims: Dims,
        p: usize,
    ) -> Result<(), MathError>;
}

/// Checks that input `input` of `op` has `expected` values.
pub(crate) fn check_len(
    op: &'static str,
    input: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), MathError> {
    if expected == found {
        Ok(())
    } else {
        Err(MathError::Length {
            op,
            input,
            expected,
            found,
        })
    }
}

/// Checks the latent and output lengths of a pooling op (`k ≥ 1`).
pub(crate) fn check_pool(
    op: &'static str,
    out: usize,
    l: usize,
    (c, h, w): Dims,
    k: usize,
    out_len: usize,
) -> Result<(), MathError> {
    if k == 0 {
        return Err(MathError::Length {
            op,
            input: "k",
            expected: 1,
            found: 0,
        });
    }
    check_len(op, "latent", c * h * w, l)?;
    check_len(op, "out", out_len, out)
}

/// The host device: [`host`]'s functions, after length checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

impl StepMath for Host {
    fn device(&self) -> String {
        "host".into()
    }
    fn axpy_diff(&mut self, x: &mut [f32], a: &[f32], b: &[f32], s: f32) -> Result<(), MathError> {
        check_len("axpy_diff", "a", x.len(), a.len())?;
        check_len("axpy_diff", "b", x.len(), b.len())?;
        host::axpy_diff(x, a, b, s);
        Ok(())
    }
    fn axpy_diff_wide(
        &mut self,
        x: &mut [f32],
        a: &[f32],
        b: &[f32],
        s: f64,
    ) -> Result<(), MathError> {
        check_len("axpy_diff_wide", "a", x.len(), a.len())?;
        check_len("axpy_diff_wide", "b", x.len(), b.len())?;
        host::axpy_diff_wide(x, a, b, s);
        Ok(())
    }
    fn axpy_wide(&mut self, x: &mut [f32], v: &[f64], s: f64) -> Result<(), MathError> {
        check_len("axpy_wide", "v", x.len(), v.len())?;
        host::axpy_wide(x, v, s);
        Ok(())
    }
    fn renoise(
        &mut self,
        out: &mut [f32],
        x0: &[f32],
        noise: &[f32],
        s: f64,
    ) -> Result<(), MathError> {
        check_len("renoise", "x0", out.len(), x0.len())?;
        check_len("renoise", "noise", out.len(), noise.len())?;
        host::renoise(out, x0, noise, s);
        Ok(())
    }
    fn ddim_step(
        &mut self,
        x: &mut [f32],
        eps: &[f32],
        z: Option<&[f32]>,
        c: &DdimCoef,
    ) -> Result<(), MathError> {
        check_len("ddim_step", "eps", x.len(), eps.len())?;
        if let Some(z) = z {
            check_len("ddim_step", "z", x.len(), z.len())?;
        }
        host::ddim_step(x, eps, z, c);
        Ok(())
    }
    fn sde_step(
        &mut self,
        x: &mut [f32],
        x0: &[f32],
        eps: &[f32],
        z: &[f32],
        c: &SdeCoef,
    ) -> Result<(), MathError> {
        check_len("sde_step", "x0", x.len(), x0.len())?;
        check_len("sde_step", "eps", x.len(), eps.len())?;
        check_len("sde_step", "z", x.len(), z.len())?;
        host::sde_step(x, x0, eps, z, c);
        Ok(())
    }
    fn highpass_mix(
        &mut self,
        x: &mut [f32],
        low: &[f64],
        own_low: &[f64],
    ) -> Result<(), MathError> {
        check_len("highpass_mix", "low", x.len(), low.len())?;
        check_len("highpass_mix", "own_low", x.len(), own_low.len())?;
        host::highpass_mix(x, low, own_low);
        Ok(())
    }
    fn avg_pool2d(
        &mut self,
        out: &mut [f32],
        l: &[f32],
        dims: Dims,
        k: usize,
    ) -> Result<(), MathError> {
        let n = host::avg_pool2d_len(dims, k);
        check_pool("avg_pool2d", out.len(), l.len(), dims, k, n)?;
        host::avg_pool2d(out, l, dims, k);
        Ok(())
    }
    fn patchify(
        &mut self,
        out: &mut [f32],
        l: &[f32],
        dims: Dims,
        p: usize,
    ) -> Result<(), MathError> {
        let n = host::patchify_len(dims, p);
        check_pool("patchify", out.len(), l.len(), dims, p, n)?;
        host::patchify(out, l, dims, p);
        Ok(())
    }
}
