//! Device-resident storage: [`Device`] (where data lives), the
//! [`DeviceBuffer`] trait a backend implements for its accelerator memory,
//! and [`DeviceData`], the shared handle a tensor holds.

use super::{DType, HostData, TensorError};
use std::fmt;
use std::sync::Arc;

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
/// copy, made by [`Tensor::to_host`](super::Tensor::to_host) and counted in [`crate::transfers`].
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
