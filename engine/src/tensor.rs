//! The tensor that travels on graph edges.
//!
//! A [`Tensor`] is a dtype, a shape and a [`Storage`]. Storage is reference
//! counted, so fanning one output out to several consumers never copies.
//! Today every tensor lives in host memory ([`Storage::Host`]); the enum is
//! `#[non_exhaustive]` because device-resident storage (CUDA buffers bound to
//! ONNX Runtime, see ROADMAP §4) will be added without changing the edge type.
//! Node math therefore asks for host data explicitly ([`Tensor::host_f32`]) and
//! gets an error — not a panic — when the data is elsewhere.

use std::fmt;
use std::sync::Arc;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    I64,
    U8,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::U8 => "u8",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a tensor's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Device {
    Host,
}

/// Host-memory elements of one dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    F32(Arc<[f32]>),
    I64(Arc<[i64]>),
    U8(Arc<[u8]>),
}

impl HostData {
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(d) => d.len(),
            HostData::I64(d) => d.len(),
            HostData::U8(d) => d.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::I64(_) => DType::I64,
            HostData::U8(_) => DType::U8,
        }
    }
}

/// The memory behind a tensor.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Storage {
    Host(HostData),
}

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
    #[error("tensor data is on {0:?}, not in host memory")]
    NotOnHost(Device),
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

/// A dense, row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Arc<[usize]>,
    storage: Storage,
}

/// Number of elements of a shape, or None on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Tensor {
    /// A host tensor from data; checks that the length matches the shape.
    pub fn from_host(shape: &[usize], data: HostData) -> Result<Tensor, TensorError> {
        let expected = element_count(shape).ok_or_else(|| TensorError::TooLarge(shape.to_vec()))?;
        if expected != data.len() {
            return Err(TensorError::LengthMismatch {
                shape: shape.to_vec(),
                expected,
                found: data.len(),
            });
        }
        Ok(Tensor {
            shape: shape.into(),
            storage: Storage::Host(data),
        })
    }

    pub fn from_f32(shape: &[usize], data: Vec<f32>) -> Result<Tensor, TensorError> {
        Tensor::from_host(shape, HostData::F32(data.into()))
    }

    pub fn from_i64(shape: &[usize], data: Vec<i64>) -> Result<Tensor, TensorError> {
        Tensor::from_host(shape, HostData::I64(data.into()))
    }

    pub fn from_u8(shape: &[usize], data: Vec<u8>) -> Result<Tensor, TensorError> {
        Tensor::from_host(shape, HostData::U8(data.into()))
    }

    /// A tensor of `value` everywhere.
    pub fn full_f32(shape: &[usize], value: f32) -> Result<Tensor, TensorError> {
        let n = checked_elements(shape)?;
        Tensor::from_f32(shape, try_filled(n, value, shape)?)
    }

    /// A rank-0 f32 tensor.
    pub fn scalar_f32(value: f32) -> Tensor {
        Tensor {
            shape: Arc::from([]),
            storage: Storage::Host(HostData::F32(Arc::from([value]))),
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Host(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DType {
        match &self.storage {
            Storage::Host(d) => d.dtype(),
        }
    }

    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Host(_) => Device::Host,
        }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The host data, or an error when the tensor lives on a device.
    pub fn host(&self) -> Result<&HostData, TensorError> {
        match &self.storage {
            Storage::Host(d) => Ok(d),
        }
    }

    /// The f32 elements in host memory.
    pub fn host_f32(&self) -> Result<&[f32], TensorError> {
        match self.host()? {
            HostData::F32(d) => Ok(d),
            other => Err(TensorError::WrongDType {
                expected: DType::F32,
                found: other.dtype(),
            }),
        }
    }

    /// The i64 elements in host memory.
    pub fn host_i64(&self) -> Result<&[i64], TensorError> {
        match self.host()? {
            HostData::I64(d) => Ok(d),
            other => Err(TensorError::WrongDType {
                expected: DType::I64,
                found: other.dtype(),
            }),
        }
    }

    /// The u8 elements in host memory.
    pub fn host_u8(&self) -> Result<&[u8], TensorError> {
        match self.host()? {
            HostData::U8(d) => Ok(d),
            other => Err(TensorError::WrongDType {
                expected: DType::U8,
                found: other.dtype(),
            }),
        }
    }

    /// True when both tensors share the same memory and shape (a cheap
    /// identity test: a source that emits one `Arc` every tick is detected).
    pub fn shares_data(&self, other: &Tensor) -> bool {
        let same = match (&self.storage, &other.storage) {
            (Storage::Host(HostData::F32(a)), Storage::Host(HostData::F32(b))) => Arc::ptr_eq(a, b),
            (Storage::Host(HostData::I64(a)), Storage::Host(HostData::I64(b))) => Arc::ptr_eq(a, b),
            (Storage::Host(HostData::U8(a)), Storage::Host(HostData::U8(b))) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same && self.shape == other.shape
    }

    /// The same data viewed with another shape of equal element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor, TensorError> {
        let expected = element_count(shape).ok_or_else(|| TensorError::TooLarge(shape.to_vec()))?;
        if expected != self.len() {
            return Err(TensorError::LengthMismatch {
                shape: shape.to_vec(),
                expected,
                found: self.len(),
            });
        }
        Ok(Tensor {
            shape: shape.into(),
            storage: self.storage.clone(),
        })
    }

    /// This tensor's static type.
    pub fn tensor_type(&self) -> crate::types::TensorType {
        crate::types::TensorType::known(self.dtype(), self.shape())
    }
}
