//! Tensor errors and size limits: [`TensorError`], [`MAX_ELEMENTS`] and the
//! checked element counts and allocations that enforce it.

use super::{DType, Device};

/// Errors from building or reading tensors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    #[error("shape {shape:?} holds {expected} elements but {found} were given")]
    LengthMismatch {
        shape: Vec<usize>,
        expected: usize,
        found: usize,
    },
    #[error("expected a {expected} tensor, found {found}")]
    WrongDType { expected: DType, found: DType },
    #[error(
        "tensor data is on {0}, not in host memory (a node that reads elements gets a host copy from the scheduler; this one was not given it)"
    )]
    NotOnHost(Device),
    #[error("copying a tensor from {device} to the host failed: {message}")]
    Download { device: Device, message: String },
    #[error("{}", too_large(.0))]
    TooLarge(Vec<usize>),
    #[error("no memory for a tensor of shape {0:?}")]
    OutOfMemory(Vec<usize>),
}

/// The most elements one tensor may hold: 2²⁸ = 268435456 (1 GiB of f32).
/// Shapes written in graphs (parameters, feedback inits, the resolution)
/// and shapes inferred at build time are checked against it, so a typo
/// such as `[1, 3, 99999999, 99999999]` is an error at `check`, not an
/// allocation that aborts the process while running.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Element count of `shape` when it is within [`MAX_ELEMENTS`].
pub fn checked_elements(shape: &[usize]) -> Result<usize, TensorError> {
    element_count(shape)
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| TensorError::TooLarge(shape.to_vec()))
}

/// Why a shape is too large, with its element count (as a float: it may
/// not fit any integer type).
fn too_large(shape: &[usize]) -> String {
    let count: f64 = shape.iter().map(|&d| d as f64).product();
    let count = if count < 1e15 {
        format!("{count:.0}")
    } else {
        format!("{count:.3e}")
    };
    format!("shape {shape:?} holds {count} values; a tensor may hold at most {MAX_ELEMENTS} (2^28)")
}

/// A vector of `n` copies of `value`, or an error instead of an abort when
/// the memory is not there (sizes that come from data at run time).
pub fn try_filled<T: Clone>(n: usize, value: T, shape: &[usize]) -> Result<Vec<T>, TensorError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| TensorError::OutOfMemory(shape.to_vec()))?;
    v.resize(n, value);
    Ok(v)
}

/// Number of elements of a shape, or None on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}
