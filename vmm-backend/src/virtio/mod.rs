//! Virtio devices: a transport-agnostic device contract ([`VirtioDevice`]), the virtio-mmio
//! version 2 transport that puts such a device on the MMIO bus, its wiring into a KVM VM
//! ([`mmio_device`]: windows, irqfds, ioeventfds, the device thread), and the device models.

pub mod block;
/// The fuzz target's entry points (`fuzz/`), with the `fuzzing` feature.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod gpu;
pub mod input;
pub mod mmio;
pub mod mmio_device;
pub mod net;
pub mod rng;
pub mod scsi;
#[cfg(test)]
mod testing;

use std::sync::Arc;

pub use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

/// Guest RAM as the device models see it.
pub type GuestMemory = GuestMemoryMmap<()>;

/// `VIRTIO_F_VERSION_1`: every device here is a modern (virtio 1.x) device.
pub const VIRTIO_F_VERSION_1: u64 = 1 << virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;

/// How a device tells the driver that something happened. The VMM backs it with a KVM irqfd;
/// tests back it with counters. The transport wraps it to keep its interrupt status register.
pub trait InterruptSink: Send + Sync {
    /// The device put buffers in a used ring.
    fn signal_used_queue(&self);
    /// The device changed its configuration space or its status (e.g. DEVICE_NEEDS_RESET).
    fn signal_config(&self);
}

/// What a device gets when the driver sets DRIVER_OK.
pub struct Activation {
    /// Guest RAM, where the rings and buffers live.
    pub mem: Arc<GuestMemory>,
    /// Where to signal used buffers and configuration changes.
    pub interrupt: Arc<dyn InterruptSink>,
    /// One queue per entry of [`VirtioDevice::queue_max_sizes`], configured and ready.
    pub queues: Vec<Queue>,
    /// The features the driver accepted (a subset of [`VirtioDevice::features`]).
    pub acked_features: u64,
}

impl Activation {
    /// The activation, if it brings the `count` queues the device has.
    pub fn with_queue_count(self, count: usize) -> Result<Activation, DeviceError> {
        if self.queues.len() == count {
            Ok(self)
        } else {
            Err(DeviceError::QueueCount {
                expected: count,
                got: self.queues.len(),
            })
        }
    }
}

/// Answers every chain the driver made available on `queue` (the device's queue `index`) with
/// `answer`, which returns the used length, or why the chain cannot be answered: that chain is
/// handed back with length 0 so the driver does not wait on it, and the device stops there with
/// a protocol error. The interrupt is signalled once if any chain was used.
pub(crate) fn answer_chains<'m>(
    queue: &mut Queue,
    mem: &'m GuestMemory,
    interrupt: &dyn InterruptSink,
    index: usize,
    mut answer: impl FnMut(virtio_queue::DescriptorChain<&'m GuestMemory>) -> Result<u32, String>,
) -> Result<(), DeviceError> {
    use virtio_queue::QueueT;
    if !queue.ready() {
        return Ok(());
    }
    let protocol = |reason: String| DeviceError::Protocol {
        queue: index,
        reason,
    };
    let mut used_any = false;
    let mut failure = None;
    while let Some(chain) = queue.pop_descriptor_chain(mem) {
        let head = chain.head_index();
        let used_len = answer(chain).unwrap_or_else(|reason| {
            failure = Some(protocol(reason));
            0
        });
        queue
            .add_used(mem, head, used_len)
            .map_err(|e| protocol(e.to_string()))?;
        used_any = true;
        if failure.is_some() {
            break;
        }
    }
    if used_any {
        interrupt.signal_used_queue();
    }
    failure.map_or(Ok(()), Err)
}

/// Errors a device reports to its transport. Each puts the device in DEVICE_NEEDS_RESET.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device was activated with {got} queues, it has {expected}
    #[error("the device was activated with {got} queues, it has {expected}")]
    QueueCount { expected: usize, got: usize },
    /// Queue {0} was notified but the device is not activated or has no such queue
    #[error("queue {0} was notified but the device is not activated or has no such queue")]
    NoSuchQueue(usize),
    /// The driver broke the virtio protocol on queue {queue}: {reason}
    #[error("the driver broke the virtio protocol on queue {queue}: {reason}")]
    Protocol { queue: usize, reason: String },
}

/// A virtio device model, independent of the transport (virtio-mmio here, virtio-pci or
/// vhost-user later) that carries it.
pub trait VirtioDevice: Send {
    /// The virtio device ID (1 network, 2 block, 4 entropy, 16 GPU, ...).
    fn device_type(&self) -> u32;
    /// The maximum size of each of the device's queues; its length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// The feature bits the device offers (must include [`VIRTIO_F_VERSION_1`]).
    fn features(&self) -> u64;
    /// Reads `data.len()` bytes of the device configuration space at `offset`; bytes past its end
    /// read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// The driver writes the device configuration space; read-only fields ignore it.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// The driver set DRIVER_OK: the device takes its queues and may start processing.
    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError>;
    /// The driver reset the device: drop queues, memory and interrupt, back to the initial state.
    fn reset(&mut self);
    /// The driver notified queue `index` (QueueNotify write or ioeventfd): process what it made
    /// available. An error means the device can no longer go on until reset.
    fn process_queue(&mut self, index: usize) -> Result<(), DeviceError>;
    /// The device's peer socket ([`mmio_device::VirtioMmioDevices::wake_on_socket`]) became
    /// readable, or writable while [`VirtioDevice::wants_writable`]. Devices without a peer
    /// have nothing to do.
    fn process_peer(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
    /// Whether the device has bytes its peer socket did not take yet, and so wants to hear
    /// when it can write again.
    fn wants_writable(&self) -> bool {
        false
    }
}

/// Copies the part of `config` at `offset` into `data`; what lies outside reads as zero.
pub(crate) fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if start >= config.len() {
        return;
    }
    let end = config.len().min(start.saturating_add(data.len()));
    data[..end - start].copy_from_slice(&config[start..end]);
}
