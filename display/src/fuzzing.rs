//! Fuzz entry point over the virtio-gpu queues, shared by the cargo-fuzz target `gpu_queue` in
//! `fuzz/` and by unit tests that replay fixed inputs so it cannot rot; the fuzz inputs' ring
//! layout, which vmm-backend's fuzz entry points use too.

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use crate::GuestMemory;
use crate::gpu::{Gpu, GpuConfig};

/// How much guest RAM a fuzz input fills (its first bytes; the rest stays zero).
pub const FUZZ_MEM_SIZE: usize = 64 * 1024;
/// Where a fuzz input's descriptor table lies; its rings follow ([`ring_layout`]).
pub const DESC_TABLE: u64 = 0;

/// Feeds `data` to the GPU as guest memory holding a split virtqueue: byte 0 picks the queue
/// (even: control, odd: cursor), byte 1 the queue size; the rest is the first 64 KiB of guest
/// RAM, with the descriptor table at 0 and the available and used rings packed after it, so that
/// short inputs reach the device. The queue is processed twice (the second pass sees the state
/// the first left). Must never panic or hang, whatever `data` holds. Returns the used ring's
/// index afterwards, or `None` when `data` is too short to start.
pub fn gpu_queue(data: &[u8]) -> Option<u16> {
    let (&selector, &size_byte) = (data.first()?, data.get(1)?);
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), FUZZ_MEM_SIZE)]).ok()?;
    let ram = &data[2..];
    mem.write_slice(&ram[..ram.len().min(FUZZ_MEM_SIZE)], GuestAddress(0))
        .ok()?;
    // Small limits keep each run fast; the code paths are the same as at full size.
    let mut gpu = Gpu::new(GpuConfig {
        width: 64,
        height: 48,
        max_resource_bytes: 4 << 20,
    })
    .ok()?;
    let (size, avail_ring, used_ring) = ring_layout(size_byte);
    let mut queue = Queue::new(256).ok()?;
    queue.set_size(size);
    queue.set_desc_table_address(Some(DESC_TABLE as u32), Some(0));
    queue.set_avail_ring_address(Some(avail_ring as u32), Some(0));
    queue.set_used_ring_address(Some(used_ring as u32), Some(0));
    queue.set_ready(true);
    let index = usize::from(selector % 2);
    for _ in 0..2 {
        // A broken ring is the driver's fault; the transport would flag the device for reset.
        if gpu.process_queue(index, &mem, &mut queue).is_err() {
            break;
        }
    }
    mem.read_obj(GuestAddress(used_ring + 2)).ok()
}

/// Queue size, available ring and used ring addresses for the size byte of a fuzz input.
pub fn ring_layout(size_byte: u8) -> (u16, u64, u64) {
    let size: u16 = 1 << (size_byte % 9);
    let avail_ring = DESC_TABLE + 16 * u64::from(size);
    // flags, idx, ring, used_event; the used ring wants 4-byte alignment.
    let used_ring = (avail_ring + 6 + 2 * u64::from(size) + 3) & !3;
    (size, avail_ring, used_ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::cmd;
    use crate::testing::descriptor;

    const SIZE_BYTE: u8 = 4;

    /// Fuzz memory with chain `i` = (request at 0x4000 + i * 0x800, response after it) for each
    /// request, all published.
    fn input(selector: u8, requests: &[Vec<u8>]) -> Vec<u8> {
        let mut ram = vec![0u8; 0x9000];
        let (_, avail_ring, _) = ring_layout(SIZE_BYTE);
        for (i, req) in requests.iter().enumerate() {
            let at = 0x4000 + i * 0x800;
            ram[at..at + req.len()].copy_from_slice(req);
            let mut desc = |d: usize, addr: u64, len: u32, flags: u16, next: u16| {
                ram[d * 16..d * 16 + 16].copy_from_slice(&descriptor(addr, len, flags, next));
            };
            desc(2 * i, at as u64, req.len() as u32, 1, (2 * i + 1) as u16);
            desc(2 * i + 1, at as u64 + 0x400, 0x400, 2, 0);
            let slot = avail_ring as usize + 4 + 2 * i;
            ram[slot..slot + 2].copy_from_slice(&((2 * i) as u16).to_le_bytes());
        }
        let idx = avail_ring as usize + 2;
        ram[idx..idx + 2].copy_from_slice(&(requests.len() as u16).to_le_bytes());
        let mut data = vec![selector, SIZE_BYTE];
        data.extend_from_slice(&ram);
        data
    }

    fn req(kind: u32, fields: &[u32]) -> Vec<u8> {
        let mut r = vec![0u8; 24];
        r[0..4].copy_from_slice(&kind.to_le_bytes());
        for f in fields {
            r.extend_from_slice(&f.to_le_bytes());
        }
        r
    }

    fn draw_sequence() -> Vec<Vec<u8>> {
        let mut attach = req(cmd::RESOURCE_ATTACH_BACKING, &[1, 1]);
        attach.extend_from_slice(&0x8000u64.to_le_bytes());
        attach.extend_from_slice(&[0x00, 0x10, 0, 0, 0, 0, 0, 0]);
        let mut transfer = req(cmd::TRANSFER_TO_HOST_2D, &[0, 0, 32, 32]);
        transfer.extend_from_slice(&[0; 16]);
        transfer[48..52].copy_from_slice(&1u32.to_le_bytes());
        vec![
            req(cmd::GET_DISPLAY_INFO, &[]),
            req(cmd::RESOURCE_CREATE_2D, &[1, 2, 32, 32]),
            attach,
            transfer,
            req(cmd::SET_SCANOUT, &[0, 0, 32, 32, 0, 1]),
            req(cmd::RESOURCE_FLUSH, &[0, 0, 32, 32, 1, 0]),
            req(cmd::GET_EDID, &[0, 0]),
        ]
    }

    #[test]
    fn fixed_inputs_run_without_panic() {
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![0, 8, 0xff, 0xff, 0xff],
            vec![0xff; 0x3000],
            vec![0; 0x3000],
            input(1, &draw_sequence()),
        ];
        let mut looping = input(0, &draw_sequence());
        looping[2 + 12] = 1; // descriptor 0 chains...
        looping[2 + 14] = 0; // ...to itself
        inputs.push(looping);
        let mut huge = input(0, &[req(cmd::RESOURCE_CREATE_2D, &[1, 2, 4095, 4095])]);
        huge[2 + 8..2 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        inputs.push(huge);
        for input in &inputs {
            gpu_queue(input);
        }
    }

    #[test]
    fn a_driver_like_sequence_is_served_through_the_entry_point() {
        assert_eq!(gpu_queue(&input(0, &draw_sequence())), Some(7));
    }

    /// cargo-fuzz is not installed on every machine: a few thousand deterministic mutations of
    /// a good sequence (bytes flipped in the requests, descriptors and rings) keep the entry
    /// point honest in the ordinary test run.
    #[test]
    fn mutated_sequences_never_panic() {
        let base = input(0, &draw_sequence());
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..1500 {
            let mut data = base.clone();
            data[0] = (round % 2) as u8;
            for _ in 0..(next() % 8 + 1) {
                // Mostly the descriptors, rings and requests at the start of memory.
                let limit = if next() % 4 == 0 { data.len() } else { 0x4400 };
                let at = 2 + (next() as usize % (limit - 2));
                data[at] = next() as u8;
            }
            gpu_queue(&data);
        }
    }
}
