//! `CudaMath`: the step-math primitives as CUDA kernels (`step_math.cu`),
//! compiled at run time with NVRTC through cudarc.
//!
//! [`CudaMath::new`] probes first ([`probe_cuda`]) and only then touches
//! cudarc, inside `catch_unwind`, so a machine without CUDA gets a
//! [`NoCuda`], never a panic. The `*_dev` methods work on device buffers
//! ([`CudaSlice`]); [`CudaMath::upload`]/[`CudaMath::download`] move data and
//! count the copies ([`CudaMath::copies`]). The [`StepMath`] implementation
//! copies its host slices over and back around each kernel (empty work
//! stays on the host: CUDA cannot allocate zero bytes).

use crate::cases::{Case, Inputs, Op};
use crate::probe::{DRIVER_LIBRARY, probe_cuda};
use crate::{Copies, CudaInfo, DdimCoef, Dims, Host, MathError, NoCuda, SdeCoef, StepMath, host};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};
use std::panic::catch_unwind;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The kernels' CUDA C source.
pub const SOURCE: &str = include_str!("step_math.cu");

/// Threads per block.
const BLOCK: u32 = 256;

/// The compiled kernels.
struct Kernels {
    axpy_diff: CudaFunction,
    axpy_diff_wide: CudaFunction,
    axpy_wide: CudaFunction,
    renoise: CudaFunction,
    ddim_step: CudaFunction,
    sde_step: CudaFunction,
    highpass_mix: CudaFunction,
    avg_pool2d: CudaFunction,
    patchify: CudaFunction,
}

/// The step math on one CUDA device.
pub struct CudaMath {
    // Kept for the context's lifetime (the stream holds it too).
    _ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: Kernels,
    info: CudaInfo,
    copies: Copies,
}

fn driver<E: std::fmt::Debug>(what: &str) -> impl Fn(E) -> MathError + '_ {
    move |e| MathError::Device(format!("{what}: {e:?}"))
}

fn no_cuda<E: std::fmt::Debug>(what: &str) -> impl Fn(E) -> NoCuda + '_ {
    move |e| NoCuda::Driver(format!("{what}: {e:?}"))
}

/// One thread per value of an `n`-value output.
fn config(n: usize) -> Result<LaunchConfig, MathError> {
    let blocks = u32::try_from(n.div_ceil(BLOCK as usize))
        .map_err(|_| MathError::Device(format!("{n} values are too many for one launch")))?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    })
}

impl CudaMath {
    /// Probes for CUDA (driver, device `device`, NVRTC), then creates a
    /// context and compiles the kernels. Never panics: every failure is a
    /// [`NoCuda`] (`no CUDA device: …`).
    pub fn new(device: usize) -> Result<CudaMath, NoCuda> {
        let nvrtc = cudarc::get_lib_name_candidates("nvrtc");
        probe_cuda(DRIVER_LIBRARY, &nvrtc, device)?;
        catch_unwind(|| Self::init(device))
            .unwrap_or_else(|_| Err(NoCuda::Driver("the CUDA driver panicked".into())))
    }

    fn init(device: usize) -> Result<CudaMath, NoCuda> {
        let ctx = CudaContext::new(device).map_err(no_cuda("creating a context"))?;
        let name = ctx.name().map_err(no_cuda("reading the device name"))?;
        let cc = ctx
            .compute_capability()
            .map_err(no_cuda("reading the compute capability"))?;
        let (mut major, mut minor) = (0, 0);
        // SAFETY: NVRTC is loaded (probed); the pointers are valid.
        let code = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        if code != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(NoCuda::Driver(format!("nvrtcVersion failed: {code:?}")));
        }
        let opts = CompileOptions {
            fmad: Some(false),
            options: vec![format!("--gpu-architecture=compute_{}{}", cc.0, cc.1)],
            ..Default::default()
        };
        let ptx = compile_ptx_with_opts(SOURCE, opts).map_err(no_cuda("compiling the kernels"))?;
        let module = ctx
            .load_module(ptx)
            .map_err(no_cuda("loading the kernels"))?;
        let f = |name: &str| {
            module
                .load_function(name)
                .map_err(no_cuda("loading a kernel"))
        };
        let kernels = Kernels {
            axpy_diff: f("axpy_diff")?,
            axpy_diff_wide: f("axpy_diff_wide")?,
            axpy_wide: f("axpy_wide")?,
            renoise: f("renoise")?,
            ddim_step: f("ddim_step")?,
            sde_step: f("sde_step")?,
            highpass_mix: f("highpass_mix")?,
            avg_pool2d: f("avg_pool2d")?,
            patchify: f("patchify")?,
        };
        let stream = ctx.default_stream();
        Ok(CudaMath {
            _ctx: ctx,
            stream,
            kernels,
            info: CudaInfo {
                device,
                name,
                compute_capability: cc,
                nvrtc_version: (major, minor),
            },
            copies: Copies::default(),
        })
    }

    /// The device's name, compute capability and NVRTC version.
    pub fn info(&self) -> &CudaInfo {
        &self.info
    }

    /// The host↔device copies made so far.
    pub fn copies(&self) -> Copies {
        self.copies
    }

    /// Sets the copy counters back to zero (e.g. at a tick's start).
    pub fn reset_copies(&mut self) {
        self.copies = Copies::default();
    }

    /// Copies `host` to a new device buffer (counted). `host` must not be
    /// empty (CUDA allocates no zero-byte buffers: an error).
    pub fn upload<T: DeviceRepr>(&mut self, host: &[T]) -> Result<CudaSlice<T>, MathError> {
        let dev = self.stream.clone_htod(host).map_err(driver("upload"))?;
        self.copies.to_device += 1;
        self.copies.bytes_to_device += std::mem::size_of_val(host) as u64;
        Ok(dev)
    }

    /// Copies a device buffer back into `host` (same length; counted).
    pub fn download<T: DeviceRepr>(
        &mut self,
        dev: &CudaSlice<T>,
        host: &mut [T],
    ) -> Result<(), MathError> {
        crate::check_len("download", "host", dev.len(), host.len())?;
        self.stream
            .memcpy_dtoh(dev, host)
            .map_err(driver("download"))?;
        self.stream.synchronize().map_err(driver("synchronize"))?;
        self.copies.to_host += 1;
        self.copies.bytes_to_host += std::mem::size_of_val(host) as u64;
        Ok(())
    }

    /// Waits for the launched kernels to finish.
    pub fn synchronize(&self) -> Result<(), MathError> {
        self.stream.synchronize().map_err(driver("synchronize"))
    }

    /// [`host::axpy_diff`] on device buffers.
    pub fn axpy_diff_dev(
        &self,
        x: &mut CudaSlice<f32>,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        s: f32,
    ) -> Result<(), MathError> {
        let n = x.len();
        crate::check_len("axpy_diff", "a", n, a.len())?;
        crate::check_len("axpy_diff", "b", n, b.len())?;
        if n == 0 {
            return Ok(());
        }
        let n64 = n as u64;
        let mut l = self.stream.launch_builder(&self.kernels.axpy_diff);
        l.arg(x).arg(a).arg(b).arg(&s).arg(&n64);
        // SAFETY: the kernel's signature matches the arguments; every
        // buffer holds `n` values.
        unsafe { l.launch(config(n)?) }.map_err(driver("axpy_diff"))?;
        Ok(())
    }

    /// [`host::axpy_diff_wide`] on device buffers.
    pub fn axpy_diff_wide_dev(
        &self,
        x: &mut CudaSlice<f32>,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        s: f64,
    ) -> Result<(), MathError> {
        let n = x.len();
        crate::check_len("axpy_diff_wide", "a", n, a.len())?;
        crate::check_len("axpy_diff_wide", "b", n, b.len())?;
        if n == 0 {
            return Ok(());
        }
        let n64 = n as u64;
        let mut l = self.stream.launch_builder(&self.kernels.axpy_diff_wide);
        l.arg(x).arg(a).arg(b).arg(&s).arg(&n64);
        // SAFETY: as in `axpy_diff_dev`.
        unsafe { l.launch(config(n)?) }.map_err(driver("axpy_diff_wide"))?;
        Ok(())
    }

    /// [`host::axpy_wide`] on device buffers.
    pub fn axpy_wide_dev(
        &self,
        x: &mut CudaSlice<f32>,
        v: &CudaSlice<f64>,
        s: f64,
    ) -> Result<(), MathError> {
        let n = x.len();
        crate::check_len("axpy_wide", "v", n, v.len())?;
        if n == 0 {
            return Ok(());
        }
        let n64 = n as u64;
        let mut l = self.stream.launch_builder(&self.kernels.axpy_wide);
        l.arg(x).arg(v).arg(&s).arg(&n64);
        // SAFETY: as in `axpy_diff_dev`.
        unsafe { l.launch(config(n)?) }.map_err(driver("axpy_wide"))?;
        Ok(())
    }

    /// [`host::renoise`] on device buffers.
    pub fn renoise_dev(
        &self,
        out: &mut CudaSlice<f32>,
        x0: &CudaSlice<f32>,
        noise: &CudaSlice<f32>,
        s: f64,
    ) -> Result<(), MathError> {
        let n = out.len();
        crate::check_len("renoise", "x0", n, x0.len())?;
        crate::check_len("renoise", "noise", n, noise.len())?;
        if n == 0 {
            return Ok(());
        }
        let n64 = n as u64;
        let mut l = self.stream.launch_builder(&self.kernels.renoise);
        l.arg(out).arg(x0).arg(noise).arg(&s).arg(&n64);
        // SAFETY: as in `axpy_diff_dev`.
        unsafe { l.launch(config(n)?) }.map_err(driver("renoise"))?;
        Ok(())
    }

    /// [`host::ddim_step`] on device buffers.
    pub fn ddim_step_dev(
        &self,
        x: &mut CudaSlice<f32>,
        eps: &CudaSlice<f32>,
        z: Option<&CudaSlice<f32>>,
        c: &DdimCoef,
    ) -> Result<(), MathError> {
        let n = x.len();
        crate::check_len("ddim_step", "eps", n, eps.len())?;
        if let Some(z) = z {
            crate::check_len("ddim_step", "z", n, z.len())?;
        }
        if n == 0 {
            return Ok(());
        }
        let (n64, has_z) = (n as u64, i32::from(z.is_some()));
        let mut l = self.stream.launch_builder(&self.kernels.ddim_step);
        // Without z the kernel never reads its z argument: pass eps.
        l.arg(x).arg(eps).arg(z.unwrap_or(eps));
        l.arg(&c.sa_t)
            .arg(&c.sb_t)
            .arg(&c.sa_p)
            .arg(&c.dir)
            .arg(&c.std);
        l.arg(&has_z).arg(&n64);
        // SAFETY: as in `axpy_diff_dev`.
        unsafe { l.launch(config(n)?) }.map_err(driver("ddim_step"))?;
        Ok(())
    }

    /// [`host::sde_step`] on device buffers.
    pub fn sde_step_dev(
        &self,
        x: &mut CudaSlice<f32>,
        x0: &CudaSlice<f32>,
        eps: &CudaSlice<f32>,
        z: &CudaSlice<f32>,
        c: &SdeCoef,
    ) -> Result<(), MathError> {
        let n = x.len();
        crate::check_len("sde_step", "x0", n, x0.len())?;
        crate::check_len("sde_step", "eps", n, eps.len())?;
        crate::check_len("sde_step", "z", n, z.len())?;
        if n == 0 {
            return Ok(());
        }
        let n64 = n as u64;
        let mut l = self.stream.launch_builder(&self.kernels.sde_step);
        l.arg(x).arg(x0).arg(eps).arg(z);
        l.arg(&c.s).arg(&c.ds).arg(&c.eta).arg(&c.amp).arg(&n64);
        // SAFETY: as in `axpy_diff_dev`.
        unsafe { l.launch(config(n)?) }.map_err(driver("sde_step"))?;
        Ok(())
    }

    /// [`host::highpass_mix`] on device buffers.
    pub fn highpass_mix_dev(
        &self,
        x: &mut CudaSlice<f32>,
        low: &CudaSlice<f64>,
        own_low: &CudaSlice<f64>,
    ) -> Result<(), MathError> {
        let n = x.len();
        crate::check_len("highpass_mix", "low", n, low.len())?;
        crate::check_len("highpass_mix", "own_low", n, own_low.len())?;
        if n == 0 {
            return Ok(());
        }
        let n64 = n as u64;
        let mut l = self.stream.launch_builder(&self.kernels.highpass_mix);
        l.arg(x).arg(low).arg(own_low).arg(&n64);
        // SAFETY: as in `axpy_diff_dev`.
        unsafe { l.launch(config(n)?) }.map_err(driver("highpass_mix"))?;
        Ok(())
    }

    /// [`host::avg_pool2d`] on device buffers.
    pub fn avg_pool2d_dev(
        &self,
        out: &mut CudaSlice<f32>,
        l: &CudaSlice<f32>,
        dims: Dims,
        k: usize,
    ) -> Result<(), MathError> {
        let n = host::avg_pool2d_len(dims, k);
        crate::check_pool("avg_pool2d", out.len(), l.len(), dims, k, n)?;
        self.pool(&self.kernels.avg_pool2d, "avg_pool2d", out, l, dims, k)
    }

    /// [`host::patchify`] on device buffers.
    pub fn patchify_dev(
        &self,
        out: &mut CudaSlice<f32>,
        l: &CudaSlice<f32>,
        dims: Dims,
        p: usize,
    ) -> Result<(), MathError> {
        let n = host::patchify_len(dims, p);
        crate::check_pool("patchify", out.len(), l.len(), dims, p, n)?;
        self.pool(&self.kernels.patchify, "patchify", out, l, dims, p)
    }

    /// Launches a pooling kernel `(out, l, c, h, w, k, n)` (lengths checked).
    fn pool(
        &self,
        f: &CudaFunction,
        what: &str,
        out: &mut CudaSlice<f32>,
        l: &CudaSlice<f32>,
        (c, h, w): Dims,
        k: usize,
    ) -> Result<(), MathError> {
        let n = out.len();
        if n == 0 {
            return Ok(());
        }
        let d = [c as u64, h as u64, w as u64, k as u64, n as u64];
        let mut b = self.stream.launch_builder(f);
        b.arg(out).arg(l);
        for v in &d {
            b.arg(v);
        }
        // SAFETY: as in `axpy_diff_dev`; `l` holds C·H·W values and `out`
        // the pooled length.
        unsafe { b.launch(config(n)?) }.map_err(driver(what))?;
        Ok(())
    }
}

impl StepMath for CudaMath {
    fn device(&self) -> String {
        format!("{} (cuda:{})", self.info.name, self.info.device)
    }
    fn kernel_time(
        &mut self,
        case: &Case,
        inp: &Inputs,
        reps: usize,
    ) -> Result<Option<Duration>, MathError> {
        if case.len == 0 || case.out_len() == 0 || reps == 0 {
            return Ok(None);
        }
        let mut x = self.upload(&inp.x)?;
        let (a, b, z) = (
            self.upload(&inp.a)?,
            self.upload(&inp.b)?,
            self.upload(&inp.z)?,
        );
        let (low, own_low) = (self.upload(&inp.low)?, self.upload(&inp.own_low)?);
        let mut out = self
            .stream
            .alloc_zeros::<f32>(case.out_len())
            .map_err(driver("alloc"))?;
        self.synchronize()?;
        let start = Instant::now();
        for _ in 0..reps {
            match case.op {
                Op::AxpyDiff { s } => self.axpy_diff_dev(&mut x, &a, &b, s)?,
                Op::AxpyDiffWide { s } => self.axpy_diff_wide_dev(&mut x, &a, &b, s)?,
                Op::AxpyWide { s } => self.axpy_wide_dev(&mut x, &low, s)?,
                Op::Renoise { s } => self.renoise_dev(&mut x, &a, &b, s)?,
                Op::Ddim { coef, noise } => {
                    self.ddim_step_dev(&mut x, &b, noise.then_some(&z), &coef)?
                }
                Op::Sde(c) => self.sde_step_dev(&mut x, &a, &b, &z, &c)?,
                Op::HighpassMix => self.highpass_mix_dev(&mut x, &low, &own_low)?,
                Op::AvgPool2d { dims, k } => self.avg_pool2d_dev(&mut out, &x, dims, k)?,
                Op::Patchify { dims, p } => self.patchify_dev(&mut out, &x, dims, p)?,
            }
        }
        self.synchronize()?;
        Ok(Some(
            start.elapsed() / u32::try_from(reps).unwrap_or(u32::MAX),
        ))
    }
    fn axpy_diff(&mut self, x: &mut [f32], a: &[f32], b: &[f32], s: f32) -> Result<(), MathError> {
        if x.is_empty() {
            return Host.axpy_diff(x, a, b, s);
        }
        let (mut dx, da, db) = (self.upload(x)?, self.upload(a)?, self.upload(b)?);
        self.axpy_diff_dev(&mut dx, &da, &db, s)?;
        self.download(&dx, x)
    }
    fn axpy_diff_wide(
        &mut self,
        x: &mut [f32],
        a: &[f32],
        b: &[f32],
        s: f64,
    ) -> Result<(), MathError> {
        if x.is_empty() {
            return Host.axpy_diff_wide(x, a, b, s);
        }
        let (mut dx, da, db) = (self.upload(x)?, self.upload(a)?, self.upload(b)?);
        self.axpy_diff_wide_dev(&mut dx, &da, &db, s)?;
        self.download(&dx, x)
    }
    fn axpy_wide(&mut self, x: &mut [f32], v: &[f64], s: f64) -> Result<(), MathError> {
        if x.is_empty() {
            return Host.axpy_wide(x, v, s);
        }
        let (mut dx, dv) = (self.upload(x)?, self.upload(v)?);
        self.axpy_wide_dev(&mut dx, &dv, s)?;
        self.download(&dx, x)
    }
    fn renoise(
        &mut self,
        out: &mut [f32],
        x0: &[f32],
        noise: &[f32],
        s: f64,
    ) -> Result<(), MathError> {
        if out.is_empty() {
            return Host.renoise(out, x0, noise, s);
        }
        let (mut d, da, db) = (self.upload(out)?, self.upload(x0)?, self.upload(noise)?);
        self.renoise_dev(&mut d, &da, &db, s)?;
        self.download(&d, out)
    }
    fn ddim_step(
        &mut self,
        x: &mut [f32],
        eps: &[f32],
        z: Option<&[f32]>,
        c: &DdimCoef,
    ) -> Result<(), MathError> {
        if x.is_empty() {
            return Host.ddim_step(x, eps, z, c);
        }
        let (mut dx, de) = (self.upload(x)?, self.upload(eps)?);
        let dz = z.map(|z| self.upload(z)).transpose()?;
        self.ddim_step_dev(&mut dx, &de, dz.as_ref(), c)?;
        self.download(&dx, x)
    }
    fn sde_step(
        &mut self,
        x: &mut [f32],
        x0: &[f32],
        eps: &[f32],
        z: &[f32],
        c: &SdeCoef,
    ) -> Result<(), MathError> {
        if x.is_empty() {
            return Host.sde_step(x, x0, eps, z, c);
        }
        let (mut dx, da, de, dz) = (
            self.upload(x)?,
            self.upload(x0)?,
            self.upload(eps)?,
            self.upload(z)?,
        );
        self.sde_step_dev(&mut dx, &da, &de, &dz, c)?;
        self.download(&dx, x)
    }
    fn highpass_mix(
        &mut self,
        x: &mut [f32],
        low: &[f64],
        own_low: &[f64],
    ) -> Result<(), MathError> {
        if x.is_empty() {
            return Host.highpass_mix(x, low, own_low);
        }
        let (mut dx, dl, dol) = (self.upload(x)?, self.upload(low)?, self.upload(own_low)?);
        self.highpass_mix_dev(&mut dx, &dl, &dol)?;
        self.download(&dx, x)
    }
    fn avg_pool2d(
        &mut self,
        out: &mut [f32],
        l: &[f32],
        dims: Dims,
        k: usize,
    ) -> Result<(), MathError> {
        if out.is_empty() {
            return Host.avg_pool2d(out, l, dims, k);
        }
        let (mut d, dl) = (self.upload(out)?, self.upload(l)?);
        self.avg_pool2d_dev(&mut d, &dl, dims, k)?;
        self.download(&d, out)
    }
    fn patchify(
        &mut self,
        out: &mut [f32],
        l: &[f32],
        dims: Dims,
        p: usize,
    ) -> Result<(), MathError> {
        if out.is_empty() {
            return Host.patchify(out, l, dims, p);
        }
        let (mut d, dl) = (self.upload(out)?, self.upload(l)?);
        self.patchify_dev(&mut d, &dl, dims, p)?;
        self.download(&d, out)
    }
}
