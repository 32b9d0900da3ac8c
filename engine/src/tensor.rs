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

/// Half-precision float (IEEE 754 binary16), the element of [`DType::F16`].
pub use half::f16;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F64,
    F16,
    I64,
    I32,
    I16,
    I8,
    U8,
    U16,
    U32,
    Bool,
}

impl DType {
    /// Every dtype, floats first.
    pub const ALL: [DType; 11] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::Bool,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I16 => "i16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::Bool => "bool",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// True for the floating-point dtypes (f32, f64, f16).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16)
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
    /// Host (CPU) memory.
    Host,
    /// Memory of an accelerator: `api` names who owns it (`cuda` for
    /// ONNX Runtime's CUDA allocator), `index` the device ordinal.
    Gpu { api: &'static str, index: u32 },
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Host => f.write_str("host"),
            Device::Gpu { api, index } => write!(f, "{api}:{index}"),
        }
    }
}

/// Tensor memory owned by a backend on an accelerator (ROADMAP §4).
///
/// The engine never reads it: a node that needs the elements gets a host
/// copy, made by [`Tensor::to_host`] and counted in [`crate::transfers`].
/// Backends recognise their own buffers through [`DeviceBuffer::as_any`]
/// and feed them to the next model without a copy.
pub trait DeviceBuffer: fmt::Debug + Send + Sync + 'static {
    /// Where the memory is.
    fn device(&self) -> Device;
    /// Element type.
    fn dtype(&self) -> DType;
    /// Number of elements.
    fn len(&self) -> usize;
    /// True when there are no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies the elements into host memory (one device→host copy; the
    /// caller counts it).
    fn download(&self) -> Result<HostData, TensorError>;
    /// For the owning backend to downcast.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A shared handle to a [`DeviceBuffer`]; equal when it is the same buffer.
#[derive(Debug, Clone)]
pub struct DeviceData(pub Arc<dyn DeviceBuffer>);

impl PartialEq for DeviceData {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Host-memory elements of one dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    F32(Arc<[f32]>),
    F64(Arc<[f64]>),
    F16(Arc<[f16]>),
    I64(Arc<[i64]>),
    I32(Arc<[i32]>),
    I16(Arc<[i16]>),
    I8(Arc<[i8]>),
    U8(Arc<[u8]>),
    U16(Arc<[u16]>),
    U32(Arc<[u32]>),
    Bool(Arc<[bool]>),
}

/// Evaluates `$body` with `$d` bound to the `&Arc<[T]>` (or `Arc<[T]>`, by
/// the binding mode of `$data`) of whichever variant a [`HostData`] holds:
/// one generic expression over every dtype.
///
/// ```
/// use wgraph_engine::tensor::Tensor;
/// let t = Tensor::from_i32(&[2], vec![1, 2]).unwrap();
/// let bytes = wgraph_engine::with_host_data!(t.host().unwrap(), d => std::mem::size_of_val(&d[..]));
/// assert_eq!(bytes, 8);
/// ```
#[macro_export]
macro_rules! with_host_data {
    ($data:expr, $d:ident => $body:expr) => {
        match $data {
            $crate::tensor::HostData::F32($d) => $body,
            $crate::tensor::HostData::F64($d) => $body,
            $crate::tensor::HostData::F16($d) => $body,
            $crate::tensor::HostData::I64($d) => $body,
            $crate::tensor::HostData::I32($d) => $body,
            $crate::tensor::HostData::I16($d) => $body,
            $crate::tensor::HostData::I8($d) => $body,
            $crate::tensor::HostData::U8($d) => $body,
            $crate::tensor::HostData::U16($d) => $body,
            $crate::tensor::HostData::U32($d) => $body,
            $crate::tensor::HostData::Bool($d) => $body,
        }
    };
}

/// Like [`with_host_data!`], but `$body` gives new data (anything that
/// converts into `Arc<[T]>`) and the result is a [`HostData`] of the same
/// dtype.
#[macro_export]
macro_rules! map_host_data {
    ($data:expr, $d:ident => $body:expr) => {
        match $data {
            $crate::tensor::HostData::F32($d) => $crate::tensor::HostData::F32($body.into()),
            $crate::tensor::HostData::F64($d) => $crate::tensor::HostData::F64($body.into()),
            $crate::tensor::HostData::F16($d) => $crate::tensor::HostData::F16($body.into()),
            $crate::tensor::HostData::I64($d) => $crate::tensor::HostData::I64($body.into()),
            $crate::tensor::HostData::I32($d) => $crate::tensor::HostData::I32($body.into()),
            $crate::tensor::HostData::I16($d) => $crate::tensor::HostData::I16($body.into()),
            $crate::tensor::HostData::I8($d) => $crate::tensor::HostData::I8($body.into()),
            $crate::tensor::HostData::U8($d) => $crate::tensor::HostData::U8($body.into()),
            $crate::tensor::HostData::U16($d) => $crate::tensor::HostData::U16($body.into()),
            $crate::tensor::HostData::U32($d) => $crate::tensor::HostData::U32($body.into()),
            $crate::tensor::HostData::Bool($d) => $crate::tensor::HostData::Bool($body.into()),
        }
    };
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that is the element of one [`DType`]: generic access to
/// [`HostData`] (`Tensor::from_vec::<T>`, `Tensor::host_as::<T>`) and the
/// little-endian byte form used by `.npy` files and snapshots.
pub trait Element: Copy + PartialEq + fmt::Debug + Send + Sync + sealed::Sealed + 'static {
    /// The dtype whose element this is.
    const DTYPE: DType;
    /// Zero (`false` for bool).
    const ZERO: Self;
    /// Wraps elements as host data.
    fn wrap(data: Arc<[Self]>) -> HostData;
    /// The elements, when `data` holds this type.
    fn unwrap(data: &HostData) -> Option<&[Self]>;
    /// Appends the little-endian bytes of `self` (bool: one byte, 0 or 1).
    fn put_le(self, out: &mut Vec<u8>);
    /// The element from exactly `DTYPE.size()` little-endian bytes (bool:
    /// any non-zero byte is true).
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! element {
    ($t:ty, $variant:ident, $zero:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            const ZERO: Self = $zero;
            fn wrap(data: Arc<[Self]>) -> HostData {
                HostData::$variant(data)
            }
            fn unwrap(data: &HostData) -> Option<&[Self]> {
                match data {
                    HostData::$variant(d) => Some(d),
                    _ => None,
                }
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn from_le(bytes: &[u8]) -> Self {
                let mut b = [0; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_le_bytes(b)
            }
        }
    };
}

element!(f32, F32, 0.0);
element!(f64, F64, 0.0);
element!(f16, F16, f16::ZERO);
element!(i64, I64, 0);
element!(i32, I32, 0);
element!(i16, I16, 0);
element!(i8, I8, 0);
element!(u8, U8, 0);
element!(u16, U16, 0);
element!(u32, U32, 0);

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: DType = DType::Bool;
    const ZERO: Self = false;
    fn wrap(data: Arc<[Self]>) -> HostData {
        HostData::Bool(data)
    }
    fn unwrap(data: &HostData) -> Option<&[Self]> {
        match data {
            HostData::Bool(d) => Some(d),
            _ => None,
        }
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn from_le(bytes: &[u8]) -> Self {
        bytes.iter().any(|&b| b != 0)
    }
}

/// Where a float tensor first holds a NaN or an infinity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFinite {
    /// Index of the first non-finite element.
    pub first: usize,
    /// That element, widened to f64 (NaN, inf or -inf).
    pub value: f64,
    /// How many elements are non-finite.
    pub count: usize,
}

fn non_finite_in<T: Copy>(
    d: &[T],
    finite: impl Fn(T) -> bool,
    wide: impl Fn(T) -> f64,
) -> Option<NonFinite> {
    let first = d.iter().position(|&x| !finite(x))?;
    Some(NonFinite {
        first,
        value: wide(d[first]),
        count: d[first..].iter().filter(|&&x| !finite(x)).count(),
    })
}

impl HostData {
    pub fn len(&self) -> usize {
        with_host_data!(self, d => d.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::F64(_) => DType::F64,
            HostData::F16(_) => DType::F16,
            HostData::I64(_) => DType::I64,
            HostData::I32(_) => DType::I32,
            HostData::I16(_) => DType::I16,
            HostData::I8(_) => DType::I8,
            HostData::U8(_) => DType::U8,
            HostData::U16(_) => DType::U16,
            HostData::U32(_) => DType::U32,
            HostData::Bool(_) => DType::Bool,
        }
    }

    /// The elements of `range` (which must be within bounds), copied.
    pub fn slice(&self, range: std::ops::Range<usize>) -> HostData {
        map_host_data!(self, d => &d[range])
    }

    /// Address of the first element: equal for two values exactly when
    /// they share one allocation (see [`Tensor::shares_data`]).
    fn data_ptr(&self) -> *const () {
        with_host_data!(self, d => d.as_ptr().cast())
    }

    /// `n` zeros (`false` for bool) of `dtype`, or an error instead of an
    /// abort when the memory is not there.
    pub fn zeros(dtype: DType, n: usize, shape: &[usize]) -> Result<HostData, TensorError> {
        fn z<T: Element>(n: usize, shape: &[usize]) -> Result<HostData, TensorError> {
            Ok(T::wrap(try_filled(n, T::ZERO, shape)?.into()))
        }
        match dtype {
            DType::F32 => z::<f32>(n, shape),
            DType::F64 => z::<f64>(n, shape),
            DType::F16 => z::<f16>(n, shape),
            DType::I64 => z::<i64>(n, shape),
            DType::I32 => z::<i32>(n, shape),
            DType::I16 => z::<i16>(n, shape),
            DType::I8 => z::<i8>(n, shape),
            DType::U8 => z::<u8>(n, shape),
            DType::U16 => z::<u16>(n, shape),
            DType::U32 => z::<u32>(n, shape),
            DType::Bool => z::<bool>(n, shape),
        }
    }

    /// The elements as little-endian bytes, [`DType::size`] per element
    /// (bool: 0 or 1), as `.npy` files and snapshots store them.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        fn le<T: Element>(d: &[T]) -> Vec<u8> {
            let mut out = Vec::with_capacity(d.len() * T::DTYPE.size());
            for &x in d {
                x.put_le(&mut out);
            }
            out
        }
        with_host_data!(self, d => le(d))
    }

    /// The inverse of [`HostData::to_le_bytes`]; `None` when the byte count
    /// is not a whole number of elements.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<HostData> {
        fn from<T: Element>(bytes: &[u8]) -> Option<HostData> {
            let size = T::DTYPE.size();
            if !bytes.len().is_multiple_of(size) {
                return None;
            }
            let v: Vec<T> = bytes.chunks_exact(size).map(T::from_le).collect();
            Some(T::wrap(v.into()))
        }
        match dtype {
            DType::F32 => from::<f32>(bytes),
            DType::F64 => from::<f64>(bytes),
            DType::F16 => from::<f16>(bytes),
            DType::I64 => from::<i64>(bytes),
            DType::I32 => from::<i32>(bytes),
            DType::I16 => from::<i16>(bytes),
            DType::I8 => from::<i8>(bytes),
            DType::U8 => Some(HostData::U8(bytes.into())),
            DType::U16 => from::<u16>(bytes),
            DType::U32 => from::<u32>(bytes),
            DType::Bool => from::<bool>(bytes),
        }
    }

    /// The elements of `parts` (all of one dtype) one after another.
    pub fn concat(parts: &[&HostData]) -> Result<HostData, TensorError> {
        fn cat<T: Element>(parts: &[&HostData]) -> Result<HostData, TensorError> {
            let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
            for p in parts {
                out.extend_from_slice(T::unwrap(p).ok_or(TensorError::WrongDType {
                    expected: T::DTYPE,
                    found: p.dtype(),
                })?);
            }
            Ok(T::wrap(out.into()))
        }
        match parts.first().map_or(DType::F32, |p| p.dtype()) {
            DType::F32 => cat::<f32>(parts),
            DType::F64 => cat::<f64>(parts),
            DType::F16 => cat::<f16>(parts),
            DType::I64 => cat::<i64>(parts),
            DType::I32 => cat::<i32>(parts),
            DType::I16 => cat::<i16>(parts),
            DType::I8 => cat::<i8>(parts),
            DType::U8 => cat::<u8>(parts),
            DType::U16 => cat::<u16>(parts),
            DType::U32 => cat::<u32>(parts),
            DType::Bool => cat::<bool>(parts),
        }
    }

    /// The first NaN or infinity of float data (f32, f64, f16) and how
    /// many there are; `None` when every element is finite or the dtype
    /// is not a float. One pass when all is well.
    pub fn non_finite(&self) -> Option<NonFinite> {
        match self {
            HostData::F32(d) => non_finite_in(d, f32::is_finite, f64::from),
            HostData::F64(d) => non_finite_in(d, f64::is_finite, |x| x),
            HostData::F16(d) => non_finite_in(d, f16::is_finite, f64::from),
            _ => None,
        }
    }
}

/// The memory behind a tensor.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Storage {
    /// Elements in host memory.
    Host(HostData),
    /// Elements in an accelerator's memory, owned by a backend.
    Device(DeviceData),
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
    /// A tensor of `shape` over `storage` of `len` elements; checks that
    /// the length matches the shape.
    fn with_storage(shape: &[usize], len: usize, storage: Storage) -> Result<Tensor, TensorError> {
        let expected = element_count(shape).ok_or_else(|| TensorError::TooLarge(shape.to_vec()))?;
        if expected != len {
            return Err(TensorError::LengthMismatch {
                shape: shape.to_vec(),
                expected,
                found: len,
            });
        }
        Ok(Tensor {
            shape: shape.into(),
            storage,
        })
    }

    /// A host tensor from data; checks that the length matches the shape.
    pub fn from_host(shape: &[usize], data: HostData) -> Result<Tensor, TensorError> {
        Tensor::with_storage(shape, data.len(), Storage::Host(data))
    }

    /// A host tensor of any element type.
    pub fn from_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Tensor, TensorError> {
        Tensor::from_host(shape, T::wrap(data.into()))
    }

    /// A tensor of zeros (`false` for bool) of any dtype.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Tensor, TensorError> {
        let n = checked_elements(shape)?;
        Tensor::from_host(shape, HostData::zeros(dtype, n, shape)?)
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
            Storage::Device(d) => d.0.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the elements take (what a copy of them moves).
    pub fn byte_len(&self) -> usize {
        self.len() * self.dtype().size()
    }

    pub fn dtype(&self) -> DType {
        match &self.storage {
            Storage::Host(d) => d.dtype(),
            Storage::Device(d) => d.0.dtype(),
        }
    }

    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Host(_) => Device::Host,
            Storage::Device(d) => d.0.device(),
        }
    }

    /// True when the elements are in host memory.
    pub fn is_host(&self) -> bool {
        matches!(self.storage, Storage::Host(_))
    }

    /// A tensor whose elements a backend keeps on a device; checks that
    /// the buffer's length matches the shape.
    pub fn from_device(
        shape: &[usize],
        data: Arc<dyn DeviceBuffer>,
    ) -> Result<Tensor, TensorError> {
        Tensor::with_storage(shape, data.len(), Storage::Device(DeviceData(data)))
    }

    /// This tensor with its elements in host memory: itself (no copy) when
    /// they already are, else one device→host copy, counted in
    /// [`crate::transfers`].
    pub fn to_host(&self) -> Result<Tensor, TensorError> {
        match &self.storage {
            Storage::Host(_) => Ok(self.clone()),
            Storage::Device(d) => {
                let host = Tensor::from_host(&self.shape, d.0.download()?)?;
                crate::transfers::record(
                    crate::transfers::Direction::DeviceToHost,
                    host.byte_len(),
                );
                Ok(host)
            }
        }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The host data, or an error when the tensor lives on a device.
    pub fn host(&self) -> Result<&HostData, TensorError> {
        match &self.storage {
            Storage::Host(d) => Ok(d),
            Storage::Device(d) => Err(TensorError::NotOnHost(d.0.device())),
        }
    }

    /// The elements in host memory, when they are of type `T`.
    pub fn host_as<T: Element>(&self) -> Result<&[T], TensorError> {
        let host = self.host()?;
        T::unwrap(host).ok_or(TensorError::WrongDType {
            expected: T::DTYPE,
            found: host.dtype(),
        })
    }

    /// True when both tensors share the same memory and shape (a cheap
    /// identity test: a source that emits one `Arc` every tick is detected).
    pub fn shares_data(&self, other: &Tensor) -> bool {
        let same = match (&self.storage, &other.storage) {
            (Storage::Host(a), Storage::Host(b)) => {
                a.dtype() == b.dtype() && a.len() == b.len() && a.data_ptr() == b.data_ptr()
            }
            (Storage::Device(a), Storage::Device(b)) => a == b,
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

macro_rules! named {
    ($($t:ty, $from:ident, $host:ident);* $(;)?) => {
        impl Tensor {
            $(
                #[doc = concat!("A host tensor of `", stringify!($t), "` elements.")]
                pub fn $from(shape: &[usize], data: Vec<$t>) -> Result<Tensor, TensorError> {
                    Tensor::from_vec(shape, data)
                }

                #[doc = concat!("The `", stringify!($t), "` elements in host memory.")]
                pub fn $host(&self) -> Result<&[$t], TensorError> {
                    self.host_as()
                }
            )*
        }
    };
}

named! {
    f32, from_f32, host_f32;
    f64, from_f64, host_f64;
    f16, from_f16, host_f16;
    i64, from_i64, host_i64;
    i32, from_i32, host_i32;
    i16, from_i16, host_i16;
    i8, from_i8, host_i8;
    u8, from_u8, host_u8;
    u16, from_u16, host_u16;
    u32, from_u32, host_u32;
    bool, from_bool, host_bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_has_a_name_a_size_and_zeros() {
        let names: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
        assert_eq!(
            names,
            [
                "f32", "f64", "f16", "i64", "i32", "i16", "i8", "u8", "u16", "u32", "bool"
            ]
        );
        for d in DType::ALL {
            let t = Tensor::zeros(d, &[2, 3]).unwrap();
            assert_eq!((t.dtype(), t.len()), (d, 6));
            let bytes = t.host().unwrap().to_le_bytes();
            assert_eq!(bytes, vec![0; 6 * d.size()], "{d}");
            assert_eq!(
                HostData::from_le_bytes(d, &bytes).unwrap(),
                *t.host().unwrap()
            );
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
        }
        assert!(HostData::from_le_bytes(DType::I32, &[1, 2, 3]).is_none());
    }

    #[test]
    fn typed_access_names_both_dtypes() {
        let t = Tensor::from_bool(&[1, 2], vec![true, false]).unwrap();
        assert_eq!(t.host_bool().unwrap(), &[true, false]);
        assert_eq!(
            t.host_f32().unwrap_err().to_string(),
            "expected a f32 tensor, found bool"
        );
        assert_eq!(t.tensor_type().to_string(), "bool[1, 2]");
        let x = Tensor::from_f64(&[2], vec![0.5, 1.5]).unwrap();
        assert_eq!(x.host_as::<f64>().unwrap(), &[0.5, 1.5]);
        assert!(x.host_i32().is_err());
    }

    #[test]
    fn slice_concat_and_shared_data() {
        let a = Tensor::from_i32(&[4], vec![1, 2, 3, 4]).unwrap();
        let h = a.host().unwrap();
        assert_eq!(h.slice(1..3), HostData::I32(vec![2, 3].into()));
        let b = HostData::I32(vec![5].into());
        assert_eq!(
            HostData::concat(&[h, &b]).unwrap(),
            HostData::I32(vec![1, 2, 3, 4, 5].into())
        );
        let c = HostData::Bool(vec![true].into());
        assert!(HostData::concat(&[h, &c]).is_err());
        assert!(a.shares_data(&a.clone()));
        assert!(!a.shares_data(&Tensor::from_i32(&[4], vec![1, 2, 3, 4]).unwrap()));
        assert!(!a.shares_data(&a.reshape(&[2, 2]).unwrap()));
    }

    #[test]
    fn non_finite_covers_every_float_dtype() {
        let f = |t: Tensor| t.host().unwrap().non_finite();
        let r =
            f(Tensor::from_f64(&[4], vec![1.0, f64::INFINITY, f64::NAN, 2.0]).unwrap()).unwrap();
        assert_eq!((r.first, r.value, r.count), (1, f64::INFINITY, 2));
        let r = f(Tensor::from_f32(&[2], vec![0.0, f32::NEG_INFINITY]).unwrap()).unwrap();
        assert_eq!((r.first, r.value, r.count), (1, f64::NEG_INFINITY, 1));
        let r = f(Tensor::from_f16(&[2], vec![f16::NAN, f16::ONE]).unwrap()).unwrap();
        assert!(r.value.is_nan() && r.first == 0 && r.count == 1);
        assert_eq!(f(Tensor::from_f64(&[2], vec![1e308, -0.0]).unwrap()), None);
        assert_eq!(f(Tensor::from_i32(&[1], vec![i32::MAX]).unwrap()), None);
        assert_eq!(f(Tensor::from_bool(&[1], vec![true]).unwrap()), None);
    }
}
