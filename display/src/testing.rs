//! The driver's side of virtqueues, for tests and benchmarks of this crate's and vmm-backend's
//! device models: split rings in vm-memory guest RAM ([`Ring`]), and the GPU's driver
//! ([`Driver`]) with descriptor chains laid out the way the Linux virtio-gpu driver lays them
//! out (request readable, then response writable).

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use crate::GuestMemory;
use crate::gpu::{Gpu, HEADER_LEN};

pub const MEM_SIZE: usize = 4 << 20;
pub const DESC_TABLE: u64 = 0x1000;
pub const AVAIL_RING: u64 = 0x2000;
pub const USED_RING: u64 = 0x3000;
pub const QUEUE_SIZE: u16 = 16;
pub const REQUEST: u64 = 0x10000;
pub const RESPONSE: u64 = 0x60000;
/// Where tests put resource backing pages.
pub const BACKING: u64 = 0x100000;

/// CPU time the calling thread has used: what the display benchmarks count (the goals are
/// shares of a core), and steadier than the clock on a machine that runs other things.
pub fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

pub fn guest_memory() -> GuestMemory {
    guest_memory_of(MEM_SIZE)
}

/// `size` bytes of guest RAM from address 0.
pub fn guest_memory_of(size: usize) -> GuestMemory {
    GuestMemory::from_ranges(&[(GuestAddress(0), size)]).expect("guest memory")
}

/// A request header of `kind` (no fence).
pub fn header(kind: u32) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h
}

/// `kind`'s header followed by `fields` as little-endian u32s.
pub fn request(kind: u32, fields: &[u32]) -> Vec<u8> {
    let mut r = header(kind);
    for f in fields {
        r.extend_from_slice(&f.to_le_bytes());
    }
    r
}

/// Descriptor flags of a split virtqueue (virtio 1.2 §2.7.5).
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
pub const VIRTQ_DESC_F_WRITE: u16 = 2;

/// One buffer of a chain: guest address, length, device-writable.
#[derive(Clone, Copy)]
pub struct Buf(pub u64, pub u32, pub bool);

/// A descriptor's 16 bytes as a driver writes them: address, length, flags, next.
pub fn descriptor(addr: u64, len: u32, flags: u16, next: u16) -> [u8; 16] {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..16].copy_from_slice(&next.to_le_bytes());
    raw
}

/// The driver's side of one split virtqueue in guest memory: its descriptor table, available
/// ring and used ring at [`DESC_TABLE`], [`AVAIL_RING`] and [`USED_RING`] past `base`, filled
/// the way a Linux driver fills them. The one ring writer of every device test.
pub struct Ring {
    base: u64,
    next_desc: u16,
    avail_idx: u16,
}

impl Ring {
    /// A ring of [`QUEUE_SIZE`] entries whose tables lie past `base`.
    pub fn new(base: u64) -> Ring {
        Ring {
            base,
            next_desc: 0,
            avail_idx: 0,
        }
    }

    pub fn desc_table(&self) -> u64 {
        self.base + DESC_TABLE
    }

    pub fn avail_ring(&self) -> u64 {
        self.base + AVAIL_RING
    }

    pub fn used_ring(&self) -> u64 {
        self.base + USED_RING
    }

    /// The device's view of this ring, ready, for a device model driven without a transport.
    pub fn queue(&self) -> Queue {
        let mut q = Queue::new(QUEUE_SIZE).expect("queue");
        q.set_size(QUEUE_SIZE);
        q.set_desc_table_address(Some(self.desc_table() as u32), Some(0));
        q.set_avail_ring_address(Some(self.avail_ring() as u32), Some(0));
        q.set_used_ring_address(Some(self.used_ring() as u32), Some(0));
        q.set_ready(true);
        q
    }

    /// Writes descriptor `index`.
    pub fn write_desc(
        &self,
        mem: &GuestMemory,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let at = GuestAddress(self.desc_table() + 16 * u64::from(index));
        mem.write_slice(&descriptor(addr, len, flags, next), at)
            .expect("descriptor");
    }

    /// Puts `head` in the available ring and bumps its index.
    pub fn publish(&mut self, mem: &GuestMemory, head: u16) {
        let slot = self.avail_idx % QUEUE_SIZE;
        mem.write_obj(
            head,
            GuestAddress(self.avail_ring() + 4 + 2 * u64::from(slot)),
        )
        .expect("avail ring");
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_obj(self.avail_idx, GuestAddress(self.avail_ring() + 2))
            .expect("avail idx");
    }

    /// Writes `bufs` as one chain and publishes it; returns its head.
    pub fn submit(&mut self, mem: &GuestMemory, bufs: &[Buf]) -> u16 {
        let head = self.next_desc;
        for (i, Buf(addr, len, writable)) in bufs.iter().enumerate() {
            let index = self.next_desc;
            self.next_desc = (self.next_desc + 1) % QUEUE_SIZE;
            let mut flags = if *writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if i + 1 < bufs.len() {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            self.write_desc(mem, index, *addr, *len, flags, self.next_desc);
        }
        self.publish(mem, head);
        head
    }

    pub fn used_idx(&self, mem: &GuestMemory) -> u16 {
        mem.read_obj(GuestAddress(self.used_ring() + 2))
            .expect("used idx")
    }

    /// Used ring element `slot`: (descriptor id, length).
    pub fn used(&self, mem: &GuestMemory, slot: u16) -> (u32, u32) {
        let at = self.used_ring() + 4 + 8 * u64::from(slot % QUEUE_SIZE);
        let id = mem.read_obj(GuestAddress(at)).expect("used id");
        let len = mem.read_obj(GuestAddress(at + 4)).expect("used len");
        (id, len)
    }
}

/// `len` bytes of guest memory at `addr`.
pub fn read_bytes(mem: &GuestMemory, addr: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    mem.read_slice(&mut out, GuestAddress(addr))
        .expect("read guest memory");
    out
}

pub fn write_bytes(mem: &GuestMemory, addr: u64, bytes: &[u8]) {
    mem.write_slice(bytes, GuestAddress(addr))
        .expect("write guest memory");
}

/// The GPU's driver: its control (0) and cursor (1) queues, 0x4000 apart.
pub struct Driver {
    pub mem: GuestMemory,
    pub queues: [Queue; 2],
    rings: [Ring; 2],
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver {
    pub fn new() -> Self {
        Self::with_memory(MEM_SIZE)
    }

    /// A driver with `size` bytes of guest RAM (backing for large frames starts at [`BACKING`]).
    pub fn with_memory(size: usize) -> Self {
        let rings = [Ring::new(0), Ring::new(0x4000)];
        Driver {
            mem: guest_memory_of(size),
            queues: [rings[0].queue(), rings[1].queue()],
            rings,
        }
    }

    /// Writes `bufs` as one chain on `queue` and publishes it; returns its head.
    pub fn submit(&mut self, queue: usize, bufs: &[Buf]) -> u16 {
        self.rings[queue].submit(&self.mem, bufs)
    }

    pub fn process(&mut self, gpu: &mut Gpu, queue: usize) -> bool {
        gpu.process_queue(queue, &self.mem, &mut self.queues[queue])
            .expect("queue")
    }

    pub fn used_idx(&self, queue: usize) -> u16 {
        self.rings[queue].used_idx(&self.mem)
    }

    /// Used ring element `slot` of `queue`: (descriptor id, length).
    pub fn used(&self, queue: usize, slot: u16) -> (u32, u32) {
        self.rings[queue].used(&self.mem, slot)
    }

    pub fn read_bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        read_bytes(&self.mem, addr, len)
    }

    pub fn write_bytes(&self, addr: u64, bytes: &[u8]) {
        write_bytes(&self.mem, addr, bytes)
    }

    /// Sends `req` on the control queue with a `resp_len`-byte response buffer, the way the
    /// Linux driver does; returns the used length and the response buffer's bytes.
    pub fn control(&mut self, gpu: &mut Gpu, req: &[u8], resp_len: u32) -> (u32, Vec<u8>) {
        self.write_bytes(REQUEST, req);
        self.write_bytes(RESPONSE, &vec![0xaa; resp_len as usize]);
        let head = self.submit(
            0,
            &[
                Buf(REQUEST, req.len() as u32, false),
                Buf(RESPONSE, resp_len, true),
            ],
        );
        let before = self.used_idx(0);
        assert!(self.process(gpu, 0));
        assert_eq!(self.used_idx(0), before.wrapping_add(1));
        let (id, len) = self.used(0, before);
        assert_eq!(id, u32::from(head));
        (len, self.read_bytes(RESPONSE, resp_len as usize))
    }

    /// Sends `req` and returns only the response type.
    pub fn command(&mut self, gpu: &mut Gpu, req: &[u8]) -> u32 {
        let (len, resp) = self.control(gpu, req, HEADER_LEN as u32);
        assert_eq!(len, HEADER_LEN as u32);
        u32::from_le_bytes([resp[0], resp[1], resp[2], resp[3]])
    }
}
