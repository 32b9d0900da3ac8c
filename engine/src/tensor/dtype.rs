//! Element types: [`DType`] and [`Element`], the Rust type of each dtype's
//! elements (generic access to [`HostData`] and the little-endian byte form).

use super::{HostData, f16};
use std::fmt;
use std::sync::Arc;

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
