//! A driver-side helper for tests: drives a device through its virtio-mmio registers, its
//! descriptor chains built by berth-display's ring writer (`berth_display::testing::Ring`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use vm_memory::GuestAddress;

use super::mmio::MmioTransport;
use super::{GuestMemory, InterruptSink, VIRTIO_F_VERSION_1, VirtioDevice};
use crate::bus::BusDevice;

pub use berth_display::testing::{
    AVAIL_RING, Buf, DESC_TABLE, QUEUE_SIZE, USED_RING, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use berth_display::testing::{Ring, read_bytes, write_bytes};

pub const MEM_SIZE: usize = 1 << 20;

#[derive(Default)]
pub struct CountingSink {
    pub used: AtomicUsize,
    pub config: AtomicUsize,
}

impl InterruptSink for CountingSink {
    fn signal_used_queue(&self) {
        self.used.fetch_add(1, Ordering::SeqCst);
    }
    fn signal_config(&self) {
        self.config.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn guest_memory() -> Arc<GuestMemory> {
    Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).expect("guest memory"))
}

/// A virtio-mmio driver of one device, its queue 0 on one [`Ring`].
pub struct Driver {
    pub transport: MmioTransport,
    pub mem: Arc<GuestMemory>,
    pub irq: Arc<CountingSink>,
    ring: Ring,
}

impl Driver {
    pub fn new(device: Box<dyn VirtioDevice>) -> Self {
        let mem = guest_memory();
        let irq = Arc::new(CountingSink::default());
        let transport = MmioTransport::new(device, mem.clone(), irq.clone());
        Driver {
            transport,
            mem,
            irq,
            ring: Ring::new(0),
        }
    }

    pub fn read(&mut self, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        self.transport.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    pub fn write(&mut self, offset: u64, value: u32) {
        self.transport.write(offset, &value.to_le_bytes());
    }

    pub fn status(&mut self) -> u32 {
        self.read(0x70)
    }

    /// ACKNOWLEDGE, DRIVER, write `features`, FEATURES_OK; returns the status read back.
    pub fn negotiate(&mut self, features: u64) -> u32 {
        self.write(0x70, 1);
        self.write(0x70, 1 | 2);
        self.write(0x24, 0);
        self.write(0x20, features as u32);
        self.write(0x24, 1);
        self.write(0x20, (features >> 32) as u32);
        self.write(0x70, 1 | 2 | 8);
        self.status()
    }

    pub fn setup_queue(&mut self, index: u32, size: u16) {
        self.write(0x30, index);
        self.write(0x38, u32::from(size));
        self.write(0x80, DESC_TABLE as u32);
        self.write(0x84, 0);
        self.write(0x90, AVAIL_RING as u32);
        self.write(0x94, 0);
        self.write(0xa0, USED_RING as u32);
        self.write(0xa4, 0);
        self.write(0x44, 1);
    }

    /// Full bring-up of a one-queue device with VERSION_1 only plus `extra` features.
    pub fn bring_up(device: Box<dyn VirtioDevice>, extra: u64) -> Self {
        let mut driver = Driver::new(device);
        assert_eq!(driver.negotiate(VIRTIO_F_VERSION_1 | extra), 1 | 2 | 8);
        driver.setup_queue(0, QUEUE_SIZE);
        driver.write(0x70, 1 | 2 | 8 | 4);
        assert_eq!(driver.status(), 1 | 2 | 8 | 4);
        driver
    }

    pub fn write_desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.ring
            .write_desc(&self.mem, index, addr, len, flags, next);
    }

    /// Puts `head` in the available ring and bumps its index.
    pub fn publish(&mut self, head: u16) {
        self.ring.publish(&self.mem, head);
    }

    /// Writes `bufs` as one chain, publishes it; returns its head.
    pub fn submit(&mut self, bufs: &[Buf]) -> u16 {
        self.ring.submit(&self.mem, bufs)
    }

    pub fn notify(&mut self, queue: u32) {
        self.write(0x50, queue);
    }

    pub fn used_idx(&self) -> u16 {
        self.ring.used_idx(&self.mem)
    }

    /// The used ring element `slot`: (descriptor id, length).
    pub fn used(&self, slot: u16) -> (u32, u32) {
        self.ring.used(&self.mem, slot)
    }

    pub fn read_bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        read_bytes(&self.mem, addr, len)
    }

    pub fn write_bytes(&self, addr: u64, bytes: &[u8]) {
        write_bytes(&self.mem, addr, bytes)
    }
}
