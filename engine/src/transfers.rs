//! Host↔device copies, counted for the whole process.
//!
//! A tick on a GPU should copy only at its edges: input frames up, shown
//! frames down. Every copy between host and device memory that wgraph makes
//! or asks a backend to make is recorded here with [`record`]: backends
//! record uploads of host inputs and downloads of outputs, and
//! [`Tensor::to_host`](crate::tensor::Tensor::to_host) records the copies the
//! scheduler makes for nodes that read elements. The runner reads
//! [`totals`] around each tick and keeps the per-tick counts in
//! [`Metrics::copies`](crate::metrics::Metrics::copies), so `--metrics`
//! shows copies per tick.
//!
//! The counters are process-wide atomics (copies are a property of the
//! process's devices, not of one graph); two worlds running at once in one
//! process see each other's copies in their per-tick counts. On the CPU
//! provider nothing is ever recorded: host memory is the device.

use std::sync::atomic::{AtomicU64, Ordering};

/// Which way a copy went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Host memory to an accelerator.
    HostToDevice,
    /// An accelerator to host memory.
    DeviceToHost,
}

static UPLOADS: AtomicU64 = AtomicU64::new(0);
static UPLOAD_BYTES: AtomicU64 = AtomicU64::new(0);
static DOWNLOADS: AtomicU64 = AtomicU64::new(0);
static DOWNLOAD_BYTES: AtomicU64 = AtomicU64::new(0);

/// Records one copy of `bytes` bytes.
pub fn record(direction: Direction, bytes: usize) {
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    let (count, total) = match direction {
        Direction::HostToDevice => (&UPLOADS, &UPLOAD_BYTES),
        Direction::DeviceToHost => (&DOWNLOADS, &DOWNLOAD_BYTES),
    };
    count.fetch_add(1, Ordering::Relaxed);
    total.fetch_add(bytes, Ordering::Relaxed);
}

/// Copies made so far by this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Host→device copies.
    pub host_to_device: u64,
    /// Bytes copied host→device.
    pub host_to_device_bytes: u64,
    /// Device→host copies.
    pub device_to_host: u64,
    /// Bytes copied device→host.
    pub device_to_host_bytes: u64,
}

impl Totals {
    /// Copies in both directions.
    pub fn copies(&self) -> u64 {
        self.host_to_device.saturating_add(self.device_to_host)
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            host_to_device: self.host_to_device.saturating_sub(earlier.host_to_device),
            host_to_device_bytes: self
                .host_to_device_bytes
                .saturating_sub(earlier.host_to_device_bytes),
            device_to_host: self.device_to_host.saturating_sub(earlier.device_to_host),
            device_to_host_bytes: self
                .device_to_host_bytes
                .saturating_sub(earlier.device_to_host_bytes),
        }
    }
}

/// The process's counts now.
pub fn totals() -> Totals {
    Totals {
        host_to_device: UPLOADS.load(Ordering::Relaxed),
        host_to_device_bytes: UPLOAD_BYTES.load(Ordering::Relaxed),
        device_to_host: DOWNLOADS.load(Ordering::Relaxed),
        device_to_host_bytes: DOWNLOAD_BYTES.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_counted_by_direction_and_bytes() {
        let before = totals();
        record(Direction::HostToDevice, 64);
        record(Direction::DeviceToHost, 16);
        record(Direction::DeviceToHost, 16);
        let d = totals().since(&before);
        // Other tests in this process may copy too (none do on the CPU).
        assert!(
            d.host_to_device >= 1 && d.host_to_device_bytes >= 64,
            "{d:?}"
        );
        assert!(
            d.device_to_host >= 2 && d.device_to_host_bytes >= 32,
            "{d:?}"
        );
        assert!(d.copies() >= 3);
    }
}
