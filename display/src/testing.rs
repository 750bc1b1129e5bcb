//! A driver-side helper for tests and benchmarks: a split virtqueue in vm-memory guest RAM, with descriptor
//! chains laid out the way the Linux virtio-gpu driver lays them out (request readable, then
//! response writable).

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

/// CPU time the calling thread has used: what the screen benchmarks count (the goals are
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

/// One buffer of a chain: guest address, length, device-writable.
#[derive(Clone, Copy)]
pub struct Buf(pub u64, pub u32, pub bool);

pub struct Driver {
    pub mem: GuestMemory,
    pub queues: [Queue; 2],
    next_desc: [u16; 2],
    avail_idx: [u16; 2],
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
        let queue = |base: u64| {
            let mut q = Queue::new(QUEUE_SIZE).expect("queue");
            q.set_size(QUEUE_SIZE);
            q.set_desc_table_address(Some((DESC_TABLE + base) as u32), Some(0));
            q.set_avail_ring_address(Some((AVAIL_RING + base) as u32), Some(0));
            q.set_used_ring_address(Some((USED_RING + base) as u32), Some(0));
            q.set_ready(true);
            q
        };
        Driver {
            mem: guest_memory_of(size),
            queues: [queue(0), queue(0x4000)],
            next_desc: [0; 2],
            avail_idx: [0; 2],
        }
    }

    fn base(queue: usize) -> u64 {
        queue as u64 * 0x4000
    }

    /// Writes `bufs` as one chain on `queue` and publishes it; returns its head.
    pub fn submit(&mut self, queue: usize, bufs: &[Buf]) -> u16 {
        let base = Self::base(queue);
        let head = self.next_desc[queue];
        for (i, Buf(addr, len, writable)) in bufs.iter().enumerate() {
            let index = self.next_desc[queue];
            self.next_desc[queue] = (index + 1) % QUEUE_SIZE;
            let mut flags: u16 = if *writable { 2 } else { 0 };
            if i + 1 < bufs.len() {
                flags |= 1;
            }
            let mut raw = [0u8; 16];
            raw[0..8].copy_from_slice(&addr.to_le_bytes());
            raw[8..12].copy_from_slice(&len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..16].copy_from_slice(&self.next_desc[queue].to_le_bytes());
            self.mem
                .write_slice(
                    &raw,
                    GuestAddress(base + DESC_TABLE + 16 * u64::from(index)),
                )
                .expect("descriptor");
        }
        let slot = self.avail_idx[queue] % QUEUE_SIZE;
        self.mem
            .write_obj(
                head,
                GuestAddress(base + AVAIL_RING + 4 + 2 * u64::from(slot)),
            )
            .expect("avail ring");
        self.avail_idx[queue] = self.avail_idx[queue].wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx[queue], GuestAddress(base + AVAIL_RING + 2))
            .expect("avail idx");
        head
    }

    pub fn process(&mut self, gpu: &mut Gpu, queue: usize) -> bool {
        gpu.process_queue(queue, &self.mem, &mut self.queues[queue])
            .expect("queue")
    }

    pub fn used_idx(&self, queue: usize) -> u16 {
        self.mem
            .read_obj(GuestAddress(Self::base(queue) + USED_RING + 2))
            .expect("used idx")
    }

    /// Used ring element `slot` of `queue`: (descriptor id, length).
    pub fn used(&self, queue: usize, slot: u16) -> (u32, u32) {
        let at = Self::base(queue) + USED_RING + 4 + 8 * u64::from(slot % QUEUE_SIZE);
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
