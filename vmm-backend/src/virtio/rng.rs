//! virtio-rng (entropy device, virtio 1.2 §5.4): fills every device-writable buffer the driver
//! offers with bytes from the host's getrandom(2).

use std::io::Write;
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};

use super::{
    Activation, DeviceError, GuestMemory, InterruptSink, VIRTIO_F_VERSION_1, VirtioDevice,
};

/// Virtio device ID of an entropy source.
pub const DEVICE_TYPE_RNG: u32 = 4;
const QUEUE_SIZES: [u16; 1] = [256];
/// The most entropy handed out for one request: bounds the host work a single chain can ask for.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Errors of the entropy device.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// getrandom failed: {0}
    #[error("getrandom failed: {0}")]
    GetRandom(std::io::Error),
}

struct Active {
    mem: Arc<GuestMemory>,
    interrupt: Arc<dyn InterruptSink>,
    queue: Queue,
}

/// The entropy device.
#[derive(Default)]
pub struct Rng {
    active: Option<Active>,
}

impl Rng {
    /// A new, unactivated entropy device.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Fills `buf` from the kernel's entropy pool.
fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable, exclusively borrowed
        // buffer; getrandom writes at most `rest.len()` bytes into it.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if got < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::GetRandom(err));
        }
        filled += got.unsigned_abs();
    }
    Ok(())
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE_RNG
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError> {
        let got = activation.queues.len();
        let queue = activation
            .queues
            .into_iter()
            .next()
            .filter(|_| got == QUEUE_SIZES.len())
            .ok_or(DeviceError::QueueCount {
                expected: QUEUE_SIZES.len(),
                got,
            })?;
        self.active = Some(Active {
            mem: activation.mem,
            interrupt: activation.interrupt,
            queue,
        });
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
    }

    fn process_queue(&mut self, index: usize) -> Result<(), DeviceError> {
        let active = self
            .active
            .as_mut()
            .filter(|_| index == 0)
            .ok_or(DeviceError::NoSuchQueue(index))?;
        if !active.queue.ready() {
            return Ok(());
        }
        let protocol = |reason: String| DeviceError::Protocol { queue: 0, reason };
        let mem = active.mem.as_ref();
        let mut used_any = false;
        let mut random = vec![0u8; MAX_REQUEST_BYTES];
        while let Some(chain) = active.queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            // A chain whose buffers are not all in guest RAM gets nothing (used length 0).
            let written = match chain.writer(mem) {
                Ok(mut writer) => {
                    let len = writer.available_bytes().min(MAX_REQUEST_BYTES);
                    fill_random(&mut random[..len]).map_err(|e| protocol(e.to_string()))?;
                    writer
                        .write_all(&random[..len])
                        .map_err(|e| protocol(e.to_string()))?;
                    len
                }
                Err(_) => 0,
            };
            let written = u32::try_from(written).map_err(|e| protocol(e.to_string()))?;
            active
                .queue
                .add_used(mem, head, written)
                .map_err(|e| protocol(e.to_string()))?;
            used_any = true;
        }
        if used_any {
            active.interrupt.signal_used_queue();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testing::{Buf, Driver};

    #[test]
    fn fills_writable_buffers_with_used_length() {
        let mut d = Driver::bring_up(Box::new(Rng::new()), 0);
        let head = d.submit(&[Buf(0x10000, 4096, true), Buf(0x20000, 100, true)]);
        d.notify(0);
        assert_eq!(d.used_idx(), 1);
        assert_eq!(d.used(0), (u32::from(head), 4196));
        // 4096 random bytes are all zero with probability 2^-32768.
        assert!(d.read_bytes(0x10000, 4096).iter().any(|&b| b != 0));
        assert!(d.read_bytes(0x20000, 100).iter().any(|&b| b != 0));
        assert_eq!(d.read_bytes(0x20000 + 100, 16), vec![0; 16], "no overrun");
    }

    #[test]
    fn device_readable_buffers_are_not_written() {
        let mut d = Driver::bring_up(Box::new(Rng::new()), 0);
        d.submit(&[Buf(0x10000, 64, false)]);
        d.notify(0);
        assert_eq!(d.used(0).1, 0);
        assert_eq!(d.read_bytes(0x10000, 64), vec![0; 64]);
    }

    #[test]
    fn buffer_outside_memory_gets_nothing() {
        let mut d = Driver::bring_up(Box::new(Rng::new()), 0);
        d.submit(&[Buf(0xffff_0000_0000, 64, true)]);
        d.notify(0);
        assert_eq!(d.used_idx(), 1);
        assert_eq!(d.used(0).1, 0);
        assert_eq!(d.status() & 0x40, 0, "device still healthy");
    }

    #[test]
    fn several_chains_in_one_notification() {
        let mut d = Driver::bring_up(Box::new(Rng::new()), 0);
        for i in 0..3u64 {
            d.submit(&[Buf(0x10000 + i * 0x1000, 32 + i as u32, true)]);
        }
        d.notify(0);
        assert_eq!(d.used_idx(), 3);
        for i in 0..3u16 {
            assert_eq!(d.used(i).1, 32 + u32::from(i));
        }
    }
}
