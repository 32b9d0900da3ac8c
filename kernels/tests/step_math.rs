//! One test suite for every device: each case of [`cases::all`] runs on the
//! host against the naive f64 reference (always), and on CUDA against the
//! host where a GPU exists (`--features cuda`). Where CUDA is absent (or not
//! built), the CUDA half checks that asking for it gives the plain
//! `no CUDA device: …` error — the probe never panics.
//!
//! Tolerances: host vs reference ≤ [`cases::HOST_TOLERANCE`] (2e-6) relative
//! to `max(1, |reference|)`; CUDA vs host ≤ [`cases::DEVICE_TOLERANCE`]
//! (1e-6) relative to `max(1, |host|)`.

use wgraph_kernels::{DdimCoef, Host, MathError, StepMath, cases, host};

#[test]
fn host_matches_the_f64_reference() {
    for case in cases::all(1) {
        let got = case.run(&mut Host).unwrap();
        let want = case.reference();
        assert_eq!(got.len(), want.len(), "{}", case.name);
        assert_eq!(got.len(), case.out_len(), "{}", case.name);
        let d = cases::max_rel_diff(&got, &want);
        assert!(d <= cases::HOST_TOLERANCE, "{}: {d:e}", case.name);
    }
}

#[test]
fn known_values() {
    let mut x = [1.0f32, 2.0];
    host::axpy_diff(&mut x, &[3.0, 4.0], &[1.0, 1.0], 0.5);
    assert_eq!(x, [2.0, 3.5]);
    let mut r = [0.0f32, 1.0];
    host::guidance(&mut r, &[1.0, 3.0], &[0.0, 1.0], 2.0);
    assert_eq!(r, [2.0, 5.0]);
    let mut o = [0.0f32; 2];
    host::renoise(&mut o, &[1.0, -1.0], &[3.0, 3.0], 0.25);
    assert_eq!(o, [1.5, 0.0]);
    let mut x = [3.0f32];
    host::highpass_mix(&mut x, &[1.0], &[2.0]);
    assert_eq!(x, [2.0]);
    // DDIM with ᾱₜ = ᾱₚ = 1/4 and std 0 leaves x as it is.
    let c = DdimCoef {
        sa_t: 0.5,
        sb_t: 0.75f64.sqrt(),
        sa_p: 0.5,
        dir: 0.75f64.sqrt(),
        std: 0.0,
    };
    let mut x = [0.75f32];
    host::ddim_step(&mut x, &[0.5], None, &c);
    assert!((x[0] - 0.75).abs() < 1e-7);
    // [C=2, H=2, W=2] pooled 2×2: one token of two channel means.
    let l = [1.0f32, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
    let mut out = [0.0f32; 2];
    host::avg_pool2d(&mut out, &l, (2, 2, 2), 2);
    assert_eq!(out, [2.5, 25.0]);
    // Patches: channel 0's 2×2 patch row by row, then channel 1's.
    let mut out = [0.0f32; 8];
    host::patchify(&mut out, &l, (2, 2, 2), 2);
    assert_eq!(out, l);
}

#[test]
fn length_mismatches_are_errors() {
    let mut x = [0.0f32; 3];
    let e = Host
        .axpy_diff(&mut x, &[1.0; 2], &[1.0; 3], 1.0)
        .unwrap_err();
    assert_eq!(e.to_string(), "axpy_diff: `a` has 2 values, expected 3");
    let mut out = [0.0f32; 1];
    let e = Host
        .avg_pool2d(&mut out, &[0.0; 4], (1, 2, 2), 0)
        .unwrap_err();
    assert!(matches!(e, MathError::Length { input: "k", .. }));
    assert!(Host.avg_pool2d(&mut out, &[0.0; 3], (1, 2, 2), 2).is_err());
}

/// The CUDA half: every case against the host, or the plain error.
#[test]
fn cuda_matches_the_host_or_says_no_cuda_device() {
    #[cfg(feature = "cuda")]
    let math = wgraph_kernels::CudaMath::new(0);
    #[cfg(not(feature = "cuda"))]
    let math: Result<Host, _> = wgraph_kernels::probe::cuda_status(0).map(|_| Host);
    match math {
        Ok(mut math) => {
            for case in cases::all(1) {
                let want = case.run(&mut Host).unwrap();
                let got = case.run(&mut math).unwrap();
                assert_eq!(got.len(), want.len(), "{}", case.name);
                let want64: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
                let d = cases::max_rel_diff(&got, &want64);
                assert!(d <= cases::DEVICE_TOLERANCE, "{}: {d:e}", case.name);
            }
            #[cfg(feature = "cuda")]
            {
                let c = math.copies();
                assert!(c.to_device > 0 && c.to_host > 0, "{c:?}");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("no CUDA device: "), "{msg}");
            #[cfg(not(feature = "cuda"))]
            assert_eq!(msg, "no CUDA device: built without the `cuda` feature");
        }
    }
}

#[test]
fn a_bogus_driver_library_is_the_plain_error() {
    let e = wgraph_kernels::probe::probe_cuda("libcuda-does-not-exist.so.1", &[], 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no CUDA device: libcuda-does-not-exist.so.1 not found"
    );
}
