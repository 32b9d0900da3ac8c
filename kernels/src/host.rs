//! The host (CPU) step math: the reference every other device is tested
//! against, and what the sampler, guidance and memory nodes call.
//!
//! Each function is one loop, written exactly as the node it came from wrote
//! it inline (same precision, same order of float operations), so moving a
//! node onto it changes no bit of its output. Slices are walked in lockstep
//! and the shortest one bounds the loop, as `zip` does; [`Host`] (the
//! [`StepMath`](crate::StepMath) implementation) checks lengths first.

use crate::{DdimCoef, Dims, SdeCoef};

/// `x ← x + s·(a − b)` in f32: a rectified-flow Euler step
/// (`x += dt·(ε − x₀)`, `euler`) and one level of classifier-free guidance
/// (`r += scale·(c − p)`, `denoiser`).
pub fn axpy_diff(x: &mut [f32], a: &[f32], b: &[f32], s: f32) {
    for ((x, a), b) in x.iter_mut().zip(a).zip(b) {
        *x += s * (a - b);
    }
}

/// Classifier-free guidance, one level: `r ← r + scale·(cond − prev)`
/// (the same loop as [`axpy_diff`], named for the denoiser).
pub fn guidance(result: &mut [f32], cond: &[f32], prev: &[f32], scale: f32) {
    axpy_diff(result, cond, prev, scale);
}

/// `x ← x + s·(a − b)` with the sum in f64 (`a − b` in f32): the Euler step
/// of `aam`'s passes.
pub fn axpy_diff_wide(x: &mut [f32], a: &[f32], b: &[f32], s: f64) {
    for ((x, a), b) in x.iter_mut().zip(a).zip(b) {
        *x = (f64::from(*x) + s * f64::from(a - b)) as f32;
    }
}

/// `x ← x + s·v` in f64 with an f64 velocity `v`: `tts`'s look-ahead and its
/// deterministic (η = 0) step.
pub fn axpy_wide(x: &mut [f32], v: &[f64], s: f64) {
    for (x, v) in x.iter_mut().zip(v) {
        *x = (f64::from(*x) + s * v) as f32;
    }
}

/// Re-noising to level σ = `s`: `out ← (1 − s)·x₀ + s·noise` in f64 (the flow
/// point of `x₀` with noise `noise`; `self_forcing`, `df_window`, `aam`).
pub fn renoise(out: &mut [f32], x0: &[f32], noise: &[f32], s: f64) {
    for ((o, &a), &n) in out.iter_mut().zip(x0).zip(noise) {
        *o = ((1.0 - s) * f64::from(a) + s * f64::from(n)) as f32;
    }
}

/// One DDIM step in f64 from ε: `x₀ = (x − √(1−ᾱₜ)·ε)/√ᾱₜ`,
/// `x ← √ᾱₚ·x₀ + dir·ε (+ std·z when std > 0 and `z` is given)`.
pub fn ddim_step(x: &mut [f32], eps: &[f32], z: Option<&[f32]>, c: &DdimCoef) {
    let step = |xv: f32, e: f32| {
        let e = f64::from(e);
        let x0 = (f64::from(xv) - c.sb_t * e) / c.sa_t;
        c.sa_p * x0 + c.dir * e
    };
    match z {
        Some(z) if c.std > 0.0 => {
            for ((xv, &e), &zv) in x.iter_mut().zip(eps).zip(z) {
                let mut next = step(*xv, e);
                next += c.std * f64::from(zv);
                *xv = next as f32;
            }
        }
        _ => {
            for (xv, &e) in x.iter_mut().zip(eps) {
                *xv = step(*xv, e) as f32;
            }
        }
    }
}

/// One Euler–Maruyama step of the flow SDE in f64 (`sde`): with
/// `v = ε − x₀` and `score = −(x − (1−σ)·x₀)/σ²`,
/// `x ← x + dσ·v − ½·η²·score·dσ + amp·z`.
pub fn sde_step(x: &mut [f32], x0: &[f32], eps: &[f32], z: &[f32], c: &SdeCoef) {
    for (((xv, &a), &e), &zv) in x.iter_mut().zip(x0).zip(eps).zip(z) {
        let (xf, x0f, ef) = (f64::from(*xv), f64::from(a), f64::from(e));
        let v = ef - x0f;
        let score = -(xf - (1.0 - c.s) * x0f) / (c.s * c.s);
        let next = xf + c.ds * v - 0.5 * c.eta * c.eta * score * c.ds + c.amp * f64::from(zv);
        *xv = next as f32;
    }
}

/// AAM's frequency split: keep `x`'s high frequencies (`x − B(x)`) and take
/// the low ones from elsewhere: `x ← low + (x − own_low)`, in f64 (`low` is
/// `B` of the re-noised first pass, `own_low` is `B(x)`).
pub fn highpass_mix(x: &mut [f32], low: &[f64], own_low: &[f64]) {
    for ((xv, l), ol) in x.iter_mut().zip(low).zip(own_low) {
        *xv = (l + (f64::from(*xv) - ol)) as f32;
    }
}

/// The number of values [`avg_pool2d`] writes for a `[C, H, W]` latent.
pub fn avg_pool2d_len((c, h, w): Dims, k: usize) -> usize {
    (h / k.max(1)) * (w / k.max(1)) * c
}

/// Average pooling over k×k blocks of a `[C, H, W]` latent into tokens:
/// `out` is `[H/k · W/k, C]` (row-major blocks, a token the channel vector
/// of one block), each value `(Σ rows of the block) · 1/k²` in f32
/// (`framepack`'s memory tiers). Writes [`avg_pool2d_len`] values.
pub fn avg_pool2d(out: &mut [f32], l: &[f32], (c, h, w): Dims, k: usize) {
    if k == 0 {
        return;
    }
    let (ph, pw) = (h / k, w / k);
    let scale = 1.0 / (k * k) as f32;
    let mut o = out.iter_mut();
    for i in 0..ph {
        for j in 0..pw {
            for ch in 0..c {
                let plane = &l[ch * h * w..(ch + 1) * h * w];
                let mut sum = 0.0;
                for dy in 0..k {
                    let row = &plane[(i * k + dy) * w + j * k..][..k];
                    sum += row.iter().sum::<f32>();
                }
                match o.next() {
                    Some(v) => *v = sum * scale,
                    None => return,
                }
            }
        }
    }
}

/// The number of values [`patchify`] writes for a `[C, H, W]` latent.
pub fn patchify_len((c, h, w): Dims, p: usize) -> usize {
    (h / p.max(1)) * (w / p.max(1)) * c * p * p
}

/// The p×p patch tokens of a `[C, H, W]` latent: `out` is
/// `[H/p · W/p, C·p·p]`, a token holding each channel's patch row by row
/// (`tscm`'s memory). Writes [`patchify_len`] values.
pub fn patchify(out: &mut [f32], l: &[f32], (c, h, w): Dims, p: usize) {
    if p == 0 {
        return;
    }
    let mut at = 0;
    for i in 0..h / p {
        for j in 0..w / p {
            for ch in 0..c {
                for dy in 0..p {
                    let row = ch * h * w + (i * p + dy) * w + j * p;
                    let Some(dst) = out.get_mut(at..at + p) else {
                        return;
                    };
                    dst.copy_from_slice(&l[row..row + p]);
                    at += p;
                }
            }
        }
    }
}
