//! Finding CUDA before cudarc is touched.
//!
//! cudarc (built with dynamic loading) panics on its first call when
//! `libcuda` or `libnvrtc` cannot be loaded. [`probe_cuda`] therefore loads
//! them itself with `libloading`, calls `cuInit` and `cuDeviceGetCount`
//! through the plain C ABI, and turns every failure into a [`NoCuda`] whose
//! message starts `no CUDA device:`. Nothing here needs the `cuda` feature,
//! so the probe runs (and is tested) on every machine.

use std::ffi::c_int;

/// The driver library the probe loads first.
pub const DRIVER_LIBRARY: &str = "libcuda.so.1";

/// Why there is no CUDA device to run kernels on. Every message starts
/// `no CUDA device:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoCuda {
    /// wgraph was built without the `cuda` feature.
    #[error("no CUDA device: built without the `cuda` feature")]
    NotBuilt,
    /// The driver library could not be loaded.
    #[error("no CUDA device: {library} not found")]
    NoDriver {
        /// The library name tried first.
        library: String,
    },
    /// The driver library lacks an entry point.
    #[error("no CUDA device: {library} found but has no {symbol}")]
    NoSymbol {
        /// The library.
        library: String,
        /// The missing function.
        symbol: &'static str,
    },
    /// `cuInit` failed (no driver loaded, no device visible, …).
    #[error("no CUDA device: {library} found but cuInit failed: CUresult {code}")]
    InitFailed {
        /// The library.
        library: String,
        /// The CUresult code.
        code: i32,
    },
    /// There is no device with that ordinal.
    #[error("no CUDA device: no device {device} ({count} found)")]
    NoDevice {
        /// The ordinal asked for.
        device: usize,
        /// The number of devices.
        count: usize,
    },
    /// NVRTC (which compiles the kernels) could not be loaded.
    #[error("no CUDA device: NVRTC not found (tried {tried})")]
    NoNvrtc {
        /// The library names tried.
        tried: String,
    },
    /// A cudarc call failed or panicked after the probe succeeded.
    #[error("no CUDA device: {0}")]
    Driver(String),
}

/// A usable CUDA device, as `wgraph doctor` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaInfo {
    /// The device ordinal.
    pub device: usize,
    /// The device's name.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// NVRTC's version (major, minor).
    pub nvrtc_version: (i32, i32),
}

/// What [`probe_cuda`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The number of CUDA devices.
    pub devices: usize,
    /// The NVRTC library name that loaded.
    pub nvrtc: String,
}

type CuInit = unsafe extern "C" fn(u32) -> c_int;
type CuDeviceGetCount = unsafe extern "C" fn(*mut c_int) -> c_int;

/// Loads `driver` and one of `nvrtc` (names for `dlopen`), initialises the
/// driver and checks that device `device` exists. Never panics.
pub fn probe_cuda(driver: &str, nvrtc: &[String], device: usize) -> Result<Probe, NoCuda> {
    // SAFETY: loading the CUDA driver runs its initialisers, which is what
    // using CUDA at all requires; the library stays loaded (cudarc loads
    // it again by name).
    let lib = unsafe { libloading::Library::new(driver) }.map_err(|_| NoCuda::NoDriver {
        library: driver.into(),
    })?;
    let symbol = |name: &'static str| NoCuda::NoSymbol {
        library: driver.into(),
        symbol: name,
    };
    // SAFETY: the signatures are the CUDA driver API's (cuda.h).
    let (init, count) = unsafe {
        let init: libloading::Symbol<CuInit> =
            lib.get(b"cuInit\0").map_err(|_| symbol("cuInit"))?;
        let count: libloading::Symbol<CuDeviceGetCount> = lib
            .get(b"cuDeviceGetCount\0")
            .map_err(|_| symbol("cuDeviceGetCount"))?;
        (*init, *count)
    };
    // SAFETY: cuInit(0) is the documented first call; the pointer is valid.
    let code = unsafe { init(0) };
    if code != 0 {
        return Err(NoCuda::InitFailed {
            library: driver.into(),
            code,
        });
    }
    let mut n: c_int = 0;
    // SAFETY: as above.
    let code = unsafe { count(&mut n) };
    if code != 0 {
        return Err(NoCuda::InitFailed {
            library: driver.into(),
            code,
        });
    }
    let devices = usize::try_from(n).unwrap_or(0);
    if device >= devices {
        return Err(NoCuda::NoDevice {
            device,
            count: devices,
        });
    }
    // Keep the driver loaded for the process's life (cudarc uses it next).
    std::mem::forget(lib);
    let found = nvrtc.iter().find(|name| {
        // SAFETY: as for the driver.
        match unsafe { libloading::Library::new(name.as_str()) } {
            Ok(l) => {
                std::mem::forget(l);
                true
            }
            Err(_) => false,
        }
    });
    match found {
        Some(name) => Ok(Probe {
            devices,
            nvrtc: name.clone(),
        }),
        None => Err(NoCuda::NoNvrtc {
            tried: nvrtc.join(", "),
        }),
    }
}

/// The CUDA kernels' status on device `device`: its [`CudaInfo`] when the
/// kernels can run there, else why not ([`NoCuda::NotBuilt`] without the
/// `cuda` feature). Compiles the kernels (NVRTC) to be sure. Never panics.
pub fn cuda_status(device: usize) -> Result<CudaInfo, NoCuda> {
    #[cfg(feature = "cuda")]
    {
        crate::cuda::CudaMath::new(device).map(|m| m.info().clone())
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        Err(NoCuda::NotBuilt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_driver_is_the_plain_error() {
        let e = probe_cuda("libcuda-wgraph-bogus.so.1", &[], 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no CUDA device: libcuda-wgraph-bogus.so.1 not found"
        );
        assert!(matches!(e, NoCuda::NoDriver { .. }));
    }

    #[test]
    fn the_real_probe_never_panics() {
        let nvrtc = ["libnvrtc.so".to_string()];
        match probe_cuda(DRIVER_LIBRARY, &nvrtc, 0) {
            Ok(p) => assert!(p.devices >= 1),
            Err(e) => assert!(e.to_string().starts_with("no CUDA device: "), "{e}"),
        }
    }
}
