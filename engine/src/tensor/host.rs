//! Host-memory elements: [`HostData`] (one `Arc<[T]>` per dtype), the
//! [`with_host_data!`](crate::with_host_data) and
//! [`map_host_data!`](crate::map_host_data) macros that write one generic
//! expression over every dtype, byte conversion, concatenation and the
//! [`NonFinite`] scan.

use super::{DType, Element, TensorError, f16, try_filled};
use std::sync::Arc;

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
    /// they share one allocation (see [`Tensor::shares_data`](super::Tensor::shares_data)).
    pub(super) fn data_ptr(&self) -> *const () {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

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
