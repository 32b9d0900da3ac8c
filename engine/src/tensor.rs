//! The tensor that travels on graph edges.
//!
//! A [`Tensor`] is a dtype, a shape and a [`Storage`]. Storage is reference
//! counted, so fanning one output out to several consumers never copies.
//! Today every tensor lives in host memory ([`Storage::Host`]); the enum is
//! `#[non_exhaustive]` because device-resident storage (CUDA buffers bound to
//! ONNX Runtime, see ROADMAP §4) will be added without changing the edge type.
//! Node math therefore asks for host data explicitly ([`Tensor::host_f32`]) and
//! gets an error — not a panic — when the data is elsewhere.
//!
//! The type and its constructors and accessors live here; the rest is split
//! by concern:
//!
//! - `dtype` — [`DType`] and [`Element`] (the Rust type of each dtype);
//! - `host` — [`HostData`], the [`with_host_data!`](crate::with_host_data)
//!   and [`map_host_data!`](crate::map_host_data) macros, byte conversion,
//!   [`NonFinite`];
//! - `device` — [`Device`], [`DeviceBuffer`], [`DeviceData`];
//! - `limits` — [`TensorError`], [`MAX_ELEMENTS`], [`checked_elements`],
//!   [`element_count`], [`try_filled`].

mod device;
mod dtype;
mod host;
mod limits;

pub use device::{Device, DeviceBuffer, DeviceData};
pub use dtype::{DType, Element};
pub use host::{HostData, NonFinite};
pub use limits::{MAX_ELEMENTS, TensorError, checked_elements, element_count, try_filled};

use std::sync::Arc;

/// Half-precision float (IEEE 754 binary16), the element of [`DType::F16`].
pub use half::f16;

/// The memory behind a tensor.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Storage {
    /// Elements in host memory.
    Host(HostData),
    /// Elements in an accelerator's memory, owned by a backend.
    Device(DeviceData),
}

/// A dense, row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Arc<[usize]>,
    storage: Storage,
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
}
