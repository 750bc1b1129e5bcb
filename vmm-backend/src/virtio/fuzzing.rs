//! Fuzz entry points, shared by the cargo-fuzz targets in `fuzz/` and by unit tests that replay
//! fixed inputs so the entry points cannot rot.

use std::fs::File;
use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress};

use super::block::Block;
use super::mmio::{MmioTransport, NOTIFY_OFFSET};
use super::net::{Net, Peer};
use super::rng::Rng;
use super::{GuestMemory, InterruptSink, VIRTIO_F_VERSION_1, VirtioDevice};
use crate::bus::BusDevice;

use berth_display::fuzzing::{DESC_TABLE, FUZZ_MEM_SIZE, ring_layout};

struct NoInterrupt;

impl InterruptSink for NoInterrupt {
    fn signal_used_queue(&self) {}
    fn signal_config(&self) {}
}

fn write_reg(transport: &mut MmioTransport, offset: u64, value: u32) {
    transport.write(offset, &value.to_le_bytes());
}

/// Feeds `data` to a device as guest memory holding a split virtqueue: byte 0 picks the device
/// (virtio-blk read-write on `disk`, virtio-blk read-only, virtio-rng), byte 1 the queue size;
/// the rest is the first 64 KiB of guest RAM, where the descriptor table (at 0), the available
/// ring and the used ring lie packed one after the other, so that short inputs reach the device. The device is brought up through its MMIO registers and
/// notified twice. Must never panic or hang, whatever `data` holds. Returns the used ring's
/// index afterwards (what a driver would see), or `None` when `data` is too short to start.
pub fn virtio_queue(data: &[u8], disk: &File) -> Option<u16> {
    let (&selector, &size_byte) = (data.first()?, data.get(1)?);
    let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), FUZZ_MEM_SIZE)]).ok()?);
    let ram = &data[2..];
    let ram = &ram[..ram.len().min(FUZZ_MEM_SIZE)];
    mem.write_slice(ram, GuestAddress(0)).ok()?;
    let device: Box<dyn VirtioDevice> = match selector % 3 {
        0 | 1 => {
            let file = disk.try_clone().ok()?;
            Box::new(Block::new(file, selector % 3 == 1, "fuzz").ok()?)
        }
        _ => Box::new(Rng::new()),
    };
    let mut transport = MmioTransport::new(device, mem.clone(), Arc::new(NoInterrupt));
    let used_ring = bring_up(&mut transport, size_byte, 1);
    write_reg(&mut transport, NOTIFY_OFFSET, 0);
    write_reg(&mut transport, NOTIFY_OFFSET, 0);
    mem.read_obj(GuestAddress(used_ring + 2)).ok()
}

/// Brings the transport's device up through its MMIO registers with every feature it offers
/// and its first `queues` queues all on the one ring layout `size_byte` picks; returns where
/// the used ring is.
fn bring_up(transport: &mut MmioTransport, size_byte: u8, queues: u32) -> u64 {
    let mut features_of = [0u8; 4];
    let mut features = VIRTIO_F_VERSION_1;
    for word in 0..2u32 {
        write_reg(transport, 0x14, word);
        transport.read(0x10, &mut features_of);
        features |= u64::from(u32::from_le_bytes(features_of)) << (32 * word);
    }
    write_reg(transport, 0x70, 1);
    write_reg(transport, 0x70, 3);
    write_reg(transport, 0x24, 0);
    write_reg(transport, 0x20, features as u32);
    write_reg(transport, 0x24, 1);
    write_reg(transport, 0x20, (features >> 32) as u32);
    write_reg(transport, 0x70, 11);
    let (size, avail_ring, used_ring) = ring_layout(size_byte);
    for queue in 0..queues {
        write_reg(transport, 0x30, queue);
        write_reg(transport, 0x38, u32::from(size));
        write_reg(transport, 0x80, DESC_TABLE as u32);
        write_reg(transport, 0x90, avail_ring as u32);
        write_reg(transport, 0xa0, used_ring as u32);
        write_reg(transport, 0x44, 1);
    }
    write_reg(transport, 0x70, 15);
    used_ring
}

/// Feeds `data` to the network card: byte 0 times 64 is how many of the bytes after byte 1 its
/// peer (passt's end of the socket) sends, whatever framing they have; byte 1 picks the queue
/// size; the rest is guest RAM as for [`virtio_queue`], the receive and transmit queues both on
/// its one ring layout. Both queues are notified, the receive queue twice, each time after the
/// socket's wake-up. Must never panic or
/// hang. Returns the used ring's index afterwards, or `None` when `data` is too short.
pub fn virtio_net(data: &[u8]) -> Option<u16> {
    let (&peer_len, &size_byte) = (data.first()?, data.get(1)?);
    let rest = &data[2..];
    let (sent, ram) = rest.split_at((usize::from(peer_len) * 64).min(rest.len()));
    let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), FUZZ_MEM_SIZE)]).ok()?);
    mem.write_slice(&ram[..ram.len().min(FUZZ_MEM_SIZE)], GuestAddress(0))
        .ok()?;
    // The size byte's top bit picks the peer: a TAP (a datagram pair standing in, what was
    // sent cut into frames of up to 64 bytes) or passt's stream. At most 16 KiB: well within
    // a socket's buffer, so the writes cannot block.
    let (peer, _keep) = if size_byte & 0x80 != 0 {
        let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().ok()?;
        for frame in sent.chunks(64) {
            theirs.send(frame).ok()?;
        }
        let tap = std::fs::File::from(std::os::fd::OwnedFd::from(ours));
        (
            Peer::Tap(tap),
            Peer::Tap(std::fs::File::from(std::os::fd::OwnedFd::from(theirs))),
        )
    } else {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().ok()?;
        std::io::Write::write_all(&mut theirs, sent).ok()?;
        (Peer::Stream(ours), Peer::Stream(theirs))
    };
    let size_byte = size_byte & 0x7f;
    let net = Net::new([0x52, 0x54, 0, 0, 0, 1], peer).ok()?;
    let mut transport = MmioTransport::new(Box::new(net), mem.clone(), Arc::new(NoInterrupt));
    let used_ring = bring_up(&mut transport, size_byte, 2);
    write_reg(&mut transport, NOTIFY_OFFSET, 1);
    // The socket's wake-up, as the device thread gives it; then new receive buffers.
    transport.process_peer();
    write_reg(&mut transport, NOTIFY_OFFSET, 0);
    transport.process_peer();
    write_reg(&mut transport, NOTIFY_OFFSET, 0);
    mem.read_obj(GuestAddress(used_ring + 2)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_display::testing::descriptor;

    fn disk() -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        file.as_file().set_len(64 * 1024).expect("size");
        file
    }

    const SIZE_BYTE: u8 = 4;

    /// A block request (IN, sector 1, 512 bytes) at descriptor 0, laid out in fuzz memory.
    fn good_block_request(selector: u8) -> Vec<u8> {
        let mut ram = vec![0u8; 0x8000];
        let desc = |ram: &mut Vec<u8>, i: usize, addr: u64, len: u32, flags: u16, next: u16| {
            ram[i * 16..i * 16 + 16].copy_from_slice(&descriptor(addr, len, flags, next));
        };
        desc(&mut ram, 0, 0x4000, 16, 1, 1);
        desc(&mut ram, 1, 0x5000, 512, 3, 2);
        desc(&mut ram, 2, 0x6000, 1, 2, 0);
        let (_, avail_ring, _) = ring_layout(SIZE_BYTE);
        ram[avail_ring as usize + 2] = 1; // avail idx 1, ring[0] = 0
        ram[0x4008] = 1; // sector 1
        let mut data = vec![selector, SIZE_BYTE];
        data.extend_from_slice(&ram);
        data
    }

    #[test]
    fn fixed_inputs_run_without_panic() {
        let disk = disk();
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![2, 8, 0xff, 0xff, 0xff],
            vec![0xff; 0x3000],
            good_block_request(0),
            good_block_request(1),
            good_block_request(2),
        ];
        // A looping chain and a huge avail index.
        let mut looping = good_block_request(0);
        looping[2 + 2 * 16 + 12] = 1; // descriptor 2 chains back to 0
        inputs.push(looping);
        let mut many = good_block_request(0);
        let (_, avail_ring, _) = ring_layout(SIZE_BYTE);
        many[2 + avail_ring as usize + 2] = 0xff;
        many[2 + avail_ring as usize + 3] = 0xff;
        inputs.push(many);
        for input in &inputs {
            virtio_queue(input, disk.as_file());
        }
    }

    #[test]
    fn network_inputs_run_without_panic() {
        let mut frame_for_peer = vec![0u8, 0, 0, 60];
        frame_for_peer.extend_from_slice(&[0xaa; 60]);
        let mut transmit = good_block_request(1);
        transmit[0] = 0;
        let inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![1],
            vec![1, SIZE_BYTE, 0xff, 0xff, 0xff, 0xff],
            [vec![2, SIZE_BYTE], frame_for_peer, vec![0; 0x3000]].concat(),
            vec![0xff; 0x5000],
            transmit,
        ];
        for input in &inputs {
            virtio_net(input);
        }
    }

    #[test]
    fn good_requests_are_served_through_the_entry_point() {
        let disk = disk();
        for selector in 0..3 {
            assert_eq!(
                virtio_queue(&good_block_request(selector), disk.as_file()),
                Some(1),
                "selector {selector}"
            );
        }
    }
}
