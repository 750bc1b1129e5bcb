//! A driver-side helper for tests: drives a device through its virtio-mmio registers and builds
//! split-ring descriptor chains in guest memory the way a Linux driver does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use vm_memory::{Bytes, GuestAddress};

use super::mmio::MmioTransport;
use super::{GuestMemory, InterruptSink, VIRTIO_F_VERSION_1, VirtioDevice};
use crate::bus::BusDevice;

pub const MEM_SIZE: usize = 1 << 20;
pub const DESC_TABLE: u64 = 0x1000;
pub const AVAIL_RING: u64 = 0x2000;
pub const USED_RING: u64 = 0x3000;
pub const QUEUE_SIZE: u16 = 16;
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
pub const VIRTQ_DESC_F_WRITE: u16 = 2;

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

/// One buffer of a chain: guest address, length, device-writable.
#[derive(Clone, Copy)]
pub struct Buf(pub u64, pub u32, pub bool);

pub struct Driver {
    pub transport: MmioTransport,
    pub mem: Arc<GuestMemory>,
    pub irq: Arc<CountingSink>,
    next_desc: u16,
    avail_idx: u16,
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
            next_desc: 0,
            avail_idx: 0,
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
        let at = GuestAddress(DESC_TABLE + 16 * u64::from(index));
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem.write_slice(&raw, at).expect("descriptor");
    }

    /// Puts `head` in the available ring and bumps its index.
    pub fn publish(&mut self, head: u16) {
        let slot = self.avail_idx % QUEUE_SIZE;
        self.mem
            .write_obj(head, GuestAddress(AVAIL_RING + 4 + 2 * u64::from(slot)))
            .expect("avail ring");
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx, GuestAddress(AVAIL_RING + 2))
            .expect("avail idx");
    }

    /// Writes `bufs` as one chain, publishes it; returns its head.
    pub fn submit(&mut self, bufs: &[Buf]) -> u16 {
        let head = self.next_desc;
        for (i, Buf(addr, len, writable)) in bufs.iter().enumerate() {
            let index = self.next_desc;
            self.next_desc = (self.next_desc + 1) % QUEUE_SIZE;
            let mut flags = if *writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if i + 1 < bufs.len() {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            self.write_desc(index, *addr, *len, flags, self.next_desc);
        }
        self.publish(head);
        head
    }

    pub fn notify(&mut self, queue: u32) {
        self.write(0x50, queue);
    }

    pub fn used_idx(&self) -> u16 {
        self.mem
            .read_obj(GuestAddress(USED_RING + 2))
            .expect("used idx")
    }

    /// The used ring element `slot`: (descriptor id, length).
    pub fn used(&self, slot: u16) -> (u32, u32) {
        let at = USED_RING + 4 + 8 * u64::from(slot % QUEUE_SIZE);
        let id = self.mem.read_obj(GuestAddress(at)).expect("used id");
        let len = self.mem.read_obj(GuestAddress(at + 4)).expect("used len");
        (id, len)
    }

    pub fn read_bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.mem
            .read_slice(&mut out, GuestAddress(addr))
            .expect("read guest memory");
        out
    }

    pub fn write_bytes(&self, addr: u64, bytes: &[u8]) {
        self.mem
            .write_slice(bytes, GuestAddress(addr))
            .expect("write guest memory");
    }
}
