//! virtio-net (virtio 1.2 §5.1): a network card whose frames go through a connected stream
//! socket, each frame preceded by its length as 4 big-endian bytes, or through a TAP device,
//! one frame per read and write. The stream's framing is what passt speaks (`-F FD`, QEMU's
//! `-netdev stream`), so berthd hands berth-vmm one end of a socket pair and passt the other;
//! a TAP is what berthd gives a VM on the Berth network (its bridge). Frames read from a TAP
//! are kept with the stream's framing too, so one read-ahead serves both.
//!
//! One receive and one transmit queue with EVENT_IDX notification suppression and an MTU of
//! [`MTU`] told to the guest (passt is started with the same one, so its DHCP and the card
//! agree). On passt's stream, no offloads: it does not carry the virtio header, so checksums
//! and segmentation stay in the guest. On a TAP, **checksum and segmentation offloads**
//! (`CSUM`, `GUEST_CSUM`, `HOST_TSO4/6`, `GUEST_TSO4/6` and their ECN), as QEMU's TAP
//! backend offers them: the TAP carries the virtio-net header before each frame
//! (`IFF_VNET_HDR`, [`HEADER_LEN`] bytes), the card passes the guest's header to it and its
//! header to the guest unchanged (but `num_buffers`), and tells it with `TUNSETOFFLOAD` which
//! of them the guest took, so up to 64 KiB go per frame and no one computes a checksum a
//! NIC-less path never needs. Without mergeable buffers, a Linux guest that takes
//! `GUEST_TSO` posts receive buffers of 64 KiB ("big packets").
//!
//! The socket is non-blocking and the device thread is woken edge-triggered when it becomes
//! readable or writable; any wake-up (a queue notification or the socket) runs one full pass:
//! send what the guest queued, then hand the guest what arrived while it has buffers. Frames
//! that arrive while the guest has no buffers wait in the socket (passt then slows down); the
//! guest's next notification of the receive queue picks them up.
//!
//! Whatever the guest or the peer writes, the VMM does not panic: a malformed transmit chain is
//! dropped and counted, a frame larger than a receive buffer is dropped, and a peer that
//! breaks the framing (a length no frame has) is cut off: the card reports its link down and
//! the VM goes on.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};

use super::{
    Activation, DeviceError, GuestMemory, InterruptSink, VIRTIO_F_VERSION_1, VirtioDevice,
};

/// Virtio device ID of a network card.
pub const DEVICE_TYPE_NET: u32 = 1;
/// The receive queue's index.
pub const RX_QUEUE: usize = 0;
/// The transmit queue's index.
pub const TX_QUEUE: usize = 1;
const QUEUE_SIZES: [u16; 2] = [256, 256];

/// The MTU the card reports (`VIRTIO_NET_F_MTU`), which berthd has passt hand out by DHCP.
pub const MTU: u16 = berth_vmm_api::launch::NET_MTU;
/// `VIRTIO_NET_F_MTU`: the `mtu` field of the configuration is valid.
const F_MTU: u64 = 1 << 3;
/// `VIRTIO_NET_F_MAC`: the `mac` field is valid.
const F_MAC: u64 = 1 << 5;
/// `VIRTIO_NET_F_STATUS`: the `status` field is valid.
const F_STATUS: u64 = 1 << 16;
/// `VIRTIO_NET_F_CSUM`: the guest may send frames with a partial checksum.
const F_CSUM: u64 = 1 << 0;
/// `VIRTIO_NET_F_GUEST_CSUM`: the guest takes frames with a partial checksum.
const F_GUEST_CSUM: u64 = 1 << 1;
/// `VIRTIO_NET_F_GUEST_TSO4`, `_TSO6`, `_ECN`: the guest takes TCP segments of up to 64 KiB.
const F_GUEST_TSO4: u64 = 1 << 7;
const F_GUEST_TSO6: u64 = 1 << 8;
const F_GUEST_ECN: u64 = 1 << 9;
/// `VIRTIO_NET_F_HOST_TSO4`, `_TSO6`, `_ECN`: the guest may send TCP segments of up to 64 KiB.
const F_HOST_TSO4: u64 = 1 << 11;
const F_HOST_TSO6: u64 = 1 << 12;
const F_HOST_ECN: u64 = 1 << 13;
/// What a TAP peer offers on top of the rest.
const TAP_OFFLOADS: u64 = F_CSUM
    | F_GUEST_CSUM
    | F_GUEST_TSO4
    | F_GUEST_TSO6
    | F_GUEST_ECN
    | F_HOST_TSO4
    | F_HOST_TSO6
    | F_HOST_ECN;
/// `VIRTIO_RING_F_EVENT_IDX`: the driver and the device say up to where they want to be
/// notified, so a busy queue is not notified (an exit, an interrupt) for every buffer.
const F_EVENT_IDX: u64 = 1 << 29;
/// `VIRTIO_NET_S_LINK_UP` in `status`.
const LINK_UP: u16 = 1;

/// `struct virtio_net_hdr_v1`: with VERSION_1 every buffer starts with it, `num_buffers`
/// included; a TAP's frames carry the same (berthd makes its TAPs so).
pub const HEADER_LEN: usize = berth_vmm_api::launch::TAP_HEADER_LEN;
/// The largest frame the card sends or takes: the MTU, an Ethernet header and a VLAN tag.
pub const MAX_FRAME: usize = MTU as usize + 14 + 4;
/// The largest frame a peer may send: passt's own maximum (65520 bytes of MTU and the
/// Ethernet header), a TAP's largest segment (an IP packet of 64 KiB and the Ethernet
/// header). Anything above is a broken stream, not a big frame.
const MAX_PEER_FRAME: usize = 65_535 + 14;
/// The largest length the read-ahead keeps for one frame: a TAP's comes with its header.
const MAX_STORED_FRAME: usize = HEADER_LEN + MAX_PEER_FRAME;
/// The length prefix of the stream framing.
const LENGTH_LEN: usize = 4;
/// Transmitted bytes held while the socket is full before the card stops taking more chains.
const MAX_PENDING_OUT: usize = 256 * 1024;

/// Counters of what the card dropped, for the log and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Transmit chains that were not a header and a frame of at most [`MAX_FRAME`] bytes (a
    /// segment of up to 64 KiB with `HOST_TSO` on a TAP).
    pub tx_malformed: u64,
    /// Frames from the peer the guest's receive buffer could not take (too small, or not in
    /// guest RAM).
    pub rx_too_big: u64,
}

struct Active {
    mem: Arc<GuestMemory>,
    interrupt: Arc<dyn InterruptSink>,
    rx: Queue,
    tx: Queue,
}

/// What the card's frames go through.
pub enum Peer {
    /// A connected stream socket, each frame after its length (passt).
    Stream(UnixStream),
    /// A TAP device made with a virtio-net header of [`HEADER_LEN`] bytes: one frame per
    /// read and per write, each after its header.
    Tap(File),
}

impl Peer {
    /// Writes the length-prefixed frames at the front of `outbound` as the peer takes them,
    /// removing what went; `Ok(false)` when the peer has no room now.
    fn write_from(&mut self, outbound: &mut Vec<u8>) -> std::io::Result<bool> {
        match self {
            Peer::Stream(socket) => {
                while !outbound.is_empty() {
                    match socket.write(outbound) {
                        Ok(0) => {
                            return Err(std::io::Error::new(
                                ErrorKind::WriteZero,
                                "the peer stopped taking frames",
                            ));
                        }
                        Ok(n) => {
                            outbound.drain(..n);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(true)
            }
            Peer::Tap(tap) => {
                let mut at = 0;
                let mut room = true;
                while let Some(Ok(len)) = frame_len(&outbound[at..]) {
                    let frame = &outbound[at + LENGTH_LEN..at + LENGTH_LEN + len];
                    match tap.write(frame) {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            room = false;
                            break;
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        // Written, or refused (the interface down): a TAP drops it either
                        // way, as a wire would.
                        _ => at += LENGTH_LEN + len,
                    }
                }
                outbound.drain(..at);
                Ok(room)
            }
        }
    }
}

/// The network card.
pub struct Net {
    mac: [u8; 6],
    /// The peer is a TAP: frames carry their virtio-net header both ways, and the offloads
    /// are offered.
    tap: bool,
    /// The features the driver took when it last started the card.
    acked: u64,
    /// The peer (passt, or a TAP); `None` once it closed or broke the framing.
    peer: Option<Peer>,
    /// What the peer sent, not yet handed to the guest. Kept across a device reset: the
    /// stream's framing must not lose its place.
    inbound: Inbound,
    /// The last read stopped because the read-ahead was full: the socket may hold more, and
    /// no wake-up will say so.
    inbound_full: bool,
    /// Framed bytes for the peer not yet written (the socket was full). Kept across a reset
    /// for the same reason.
    outbound: Vec<u8>,
    dropped: Dropped,
    active: Option<Active>,
}

/// Bytes read from the peer: whole frames and maybe the start of one, in `bytes[start..end]`.
/// Read ahead of the guest's buffers (up to [`MAX_INBOUND`]) so that passt's writes do not
/// fail while the guest refills its queue: passt drops what it cannot write, and TCP then
/// waits for retransmissions.
#[derive(Default)]
struct Inbound {
    /// Allocated at the first read, zeroed by the allocator: pages are only touched as far as
    /// the read-ahead ever went (the buffer starts over whenever the guest has taken all).
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

/// How far the card reads ahead of the guest: more than a Linux guest's largest TCP receive
/// window (tcp_rmem's 6 MiB), so passt never meets a full socket while the guest is slow to
/// refill.
const MAX_INBOUND: usize = 8 << 20;

impl Inbound {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.end - self.start
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// The next whole frame: `None` while it has not all arrived, `Err` with the announced
    /// length when that is no frame's.
    fn next_frame(&self) -> Option<Result<&[u8], usize>> {
        let pending = &self.bytes[self.start..self.end];
        Some(match frame_len(pending)? {
            Ok(len) => Ok(pending.get(LENGTH_LEN..LENGTH_LEN + len)?),
            Err(len) => Err(len),
        })
    }

    /// The frame [`Inbound::next_frame`] returned is done with.
    fn consume(&mut self, frame_len: usize) {
        self.start = (self.start + LENGTH_LEN + frame_len).min(self.end);
        if self.start == self.end {
            self.clear();
        }
    }

    /// Reads from `peer` without blocking until it has nothing more or this is full. Returns
    /// how the reading ended.
    fn fill_from(&mut self, peer: &mut Peer) -> Filled {
        match peer {
            Peer::Stream(socket) => self.fill_from_stream(socket),
            Peer::Tap(tap) => self.fill_from_tap(tap),
        }
    }

    /// Frames from a TAP, one per read, each stored with its header after its length as a
    /// stream has it.
    fn fill_from_tap(&mut self, tap: &mut File) -> Filled {
        if self.bytes.is_empty() {
            self.bytes = vec![0; MAX_INBOUND];
        }
        // Room for the largest frame a read can return: a smaller buffer would cut it.
        let slot = LENGTH_LEN + MAX_STORED_FRAME;
        loop {
            if self.bytes.len() - self.end < slot {
                if self.start == 0 {
                    return Filled::Full;
                }
                self.bytes.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.bytes.len() - self.end < slot {
                    return Filled::Full;
                }
            }
            let at = self.end;
            match tap.read(&mut self.bytes[at + LENGTH_LEN..at + slot]) {
                // An empty read is no frame (a TAP never gives one); nothing more for now.
                Ok(0) => return Filled::Drained,
                // Shorter than its header: no frame, skipped.
                Ok(n) if n <= HEADER_LEN => {}
                Ok(n) => {
                    self.bytes[at..at + LENGTH_LEN].copy_from_slice(&(n as u32).to_be_bytes());
                    self.end += LENGTH_LEN + n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Filled::Drained,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Filled::Failed(e),
            }
        }
    }

    fn fill_from_stream(&mut self, peer: &mut UnixStream) -> Filled {
        if self.bytes.is_empty() {
            self.bytes = vec![0; MAX_INBOUND];
        }
        loop {
            if self.end == self.bytes.len() {
                if self.start == 0 {
                    return Filled::Full;
                }
                // Room only at the front: the unread bytes move there (each byte moves at
                // most once per pass through the buffer).
                self.bytes.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match peer.read(&mut self.bytes[self.end..]) {
                Ok(0) => return Filled::Closed,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Filled::Drained,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Filled::Failed(e),
            }
        }
    }
}

/// How [`Inbound::fill_from`] ended.
enum Filled {
    /// The socket has nothing more for now.
    Drained,
    /// The read-ahead is full; the socket may hold more.
    Full,
    /// The peer closed its end.
    Closed,
    Failed(std::io::Error),
}

/// Errors setting the card up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer's socket or TAP could not be made non-blocking.
    #[error("the network peer cannot be made non-blocking: {0}")]
    NonBlocking(std::io::Error),
}

impl Net {
    /// A card with address `mac` whose frames go through `peer`.
    pub fn new(mac: [u8; 6], peer: Peer) -> Result<Self, Error> {
        match &peer {
            Peer::Stream(socket) => socket.set_nonblocking(true),
            Peer::Tap(tap) => {
                use std::os::fd::AsFd;
                let flags = nix::fcntl::fcntl(tap.as_fd(), nix::fcntl::FcntlArg::F_GETFL)
                    .map_err(std::io::Error::from)
                    .map_err(Error::NonBlocking)?;
                let flags =
                    nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
                nix::fcntl::fcntl(tap.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            }
        }
        .map_err(Error::NonBlocking)?;
        Ok(Net {
            mac,
            tap: matches!(peer, Peer::Tap(_)),
            acked: 0,
            peer: Some(peer),
            inbound: Inbound::default(),
            inbound_full: false,
            outbound: Vec::new(),
            dropped: Dropped::default(),
            active: None,
        })
    }

    /// What the card dropped so far.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    fn config_space(&self) -> [u8; 12] {
        let mut config = [0u8; 12];
        config[..6].copy_from_slice(&self.mac);
        let status = if self.peer.is_some() { LINK_UP } else { 0 };
        config[6..8].copy_from_slice(&status.to_le_bytes());
        // max_virtqueue_pairs: one (it is read only with VIRTIO_NET_F_MQ, not offered).
        config[8..10].copy_from_slice(&1u16.to_le_bytes());
        config[10..12].copy_from_slice(&MTU.to_le_bytes());
        config
    }

    /// The peer is gone or lied: stop using it and tell the guest the link is down.
    fn lose_peer(&mut self, why: &str) {
        if self.peer.take().is_some() {
            log::warn!("the network card's link is down: {why}");
            self.inbound.clear();
            self.outbound.clear();
            if let Some(active) = &self.active {
                active.interrupt.signal_config();
            }
        }
    }

    /// Writes as much of `outbound` to the peer as it takes; whether all of it went.
    fn flush(&mut self) -> bool {
        let Some(peer) = self.peer.as_mut() else {
            self.outbound.clear();
            return true;
        };
        match peer.write_from(&mut self.outbound) {
            Ok(all) => all,
            Err(e) => {
                self.lose_peer(&format!("writing to the peer failed: {e}"));
                self.outbound.clear();
                true
            }
        }
    }

    /// Takes the guest's transmit chains, frames them for the peer; whether any chain was used.
    fn transmit(&mut self) -> Result<bool, DeviceError> {
        let protocol = |reason: String| DeviceError::Protocol {
            queue: TX_QUEUE,
            reason,
        };
        let mut used_any = false;
        let mut rearmed = false;
        // The guest need not notify while the queue is being emptied here.
        if let Some(active) = self.active.as_mut() {
            active
                .tx
                .disable_notification(active.mem.as_ref())
                .map_err(|e| protocol(e.to_string()))?;
        }
        loop {
            // Frames are written in batches: a write when a batch is big, the rest after the
            // loop.
            if self.outbound.len() >= MAX_PENDING_OUT && !self.flush() {
                // The socket is full: the rest waits for it to drain (the wake-up is the
                // socket becoming writable).
                break;
            }
            let Some(active) = self.active.as_mut() else {
                break;
            };
            let mem = active.mem.as_ref();
            let Some(chain) = active.tx.pop_descriptor_chain(mem) else {
                // Empty: ask to be notified again, unless the guest added chains meanwhile
                // (looked at once: a ring whose index says there are chains that cannot be
                // taken is broken, and must not keep this thread spinning).
                match active.tx.enable_notification(mem) {
                    Ok(true) if !rearmed => {
                        rearmed = true;
                        continue;
                    }
                    Ok(_) => break,
                    Err(e) => return Err(protocol(e.to_string())),
                }
            };
            rearmed = false;
            let head = chain.head_index();
            // The frame goes straight from guest memory into the outbound buffer after its
            // length; a chain that is no frame leaves nothing there.
            let at = self.outbound.len();
            // A TAP takes the guest's header with the frame (its offloads); passt, the frame.
            let (max_frame, kept_header) = if self.tap {
                let segments = self.acked & (F_HOST_TSO4 | F_HOST_TSO6) != 0;
                (
                    if segments { MAX_PEER_FRAME } else { MAX_FRAME },
                    HEADER_LEN,
                )
            } else {
                (MAX_FRAME, 0)
            };
            let framed = chain.reader(mem).ok().and_then(|mut reader| {
                let len = reader.available_bytes().checked_sub(HEADER_LEN)?;
                if len > max_frame {
                    return None;
                }
                let mut header = [0u8; HEADER_LEN];
                reader.read_exact(&mut header).ok()?;
                let stored = kept_header + len;
                self.outbound
                    .extend_from_slice(&(stored as u32).to_be_bytes());
                self.outbound.extend_from_slice(&header[..kept_header]);
                self.outbound.resize(at + LENGTH_LEN + stored, 0);
                reader
                    .read_exact(&mut self.outbound[at + LENGTH_LEN + kept_header..])
                    .ok()
            });
            // Transmit buffers are only read: the used length is 0.
            active
                .tx
                .add_used(mem, head, 0)
                .map_err(|e| protocol(e.to_string()))?;
            used_any = true;
            match framed {
                // No link: the frame is lost, as on a card whose cable is out.
                Some(()) if self.peer.is_none() => self.outbound.truncate(at),
                Some(()) => {}
                None => {
                    self.outbound.truncate(at);
                    self.dropped.tx_malformed += 1;
                }
            }
        }
        self.flush();
        Ok(used_any)
    }

    /// Reads what the peer sent into the read-ahead; whether it stopped full (the socket may
    /// hold more).
    fn read_peer(&mut self) -> bool {
        let Some(peer) = self.peer.as_mut() else {
            return false;
        };
        let filled = self.inbound.fill_from(peer);
        self.inbound_full = matches!(filled, Filled::Full);
        match filled {
            Filled::Drained => false,
            Filled::Full => true,
            Filled::Closed => {
                self.lose_peer("the peer closed its socket");
                false
            }
            Filled::Failed(e) => {
                self.lose_peer(&format!("reading from the peer failed: {e}"));
                false
            }
        }
    }

    /// Hands whole frames to the guest while it has receive buffers. Returns whether any
    /// buffer was used, and whether the guest ran out of them.
    fn deliver(&mut self) -> Result<(bool, bool), DeviceError> {
        let protocol = |reason: String| DeviceError::Protocol {
            queue: RX_QUEUE,
            reason,
        };
        let mut used_any = false;
        let mut rearmed = false;
        loop {
            let frame = match self.inbound.next_frame() {
                None => return Ok((used_any, false)),
                Some(Ok(frame)) => frame,
                Some(Err(len)) => {
                    self.lose_peer(&format!(
                        "the peer announced a frame of {len} bytes (at most {MAX_STORED_FRAME})"
                    ));
                    return Ok((used_any, false));
                }
            };
            let Some(active) = self.active.as_mut() else {
                return Ok((used_any, false));
            };
            let mem = active.mem.as_ref();
            let Some(chain) = active.rx.pop_descriptor_chain(mem) else {
                // No buffer: the frame waits for the guest's next notification, which is asked
                // for here (with EVENT_IDX the guest notifies only when asked), unless buffers
                // came meanwhile.
                match active.rx.enable_notification(mem) {
                    // Looked at once, as for transmitting.
                    Ok(true) if !rearmed => {
                        rearmed = true;
                        continue;
                    }
                    Ok(_) => return Ok((used_any, true)),
                    Err(e) => return Err(protocol(e.to_string())),
                }
            };
            rearmed = false;
            let head = chain.head_index();
            let stored = frame.len();
            // A TAP's frame comes with its header (offloads), passt's without: no offload.
            let mut header = [0u8; HEADER_LEN];
            let frame = if self.tap {
                let (tap_header, frame) = frame.split_at(HEADER_LEN.min(frame.len()));
                // A driver that took no GUEST_CSUM gets a header of zeros (virtio 1.2
                // 5.1.6.4.1: the TAP still marks checksums it verified DATA_VALID).
                if self.acked & F_GUEST_CSUM != 0 {
                    header[..tap_header.len()].copy_from_slice(tap_header);
                }
                frame
            } else {
                frame
            };
            // num_buffers: the frame is in this one buffer.
            header[10..12].copy_from_slice(&1u16.to_le_bytes());
            let len = frame.len();
            let written = match chain.writer(mem) {
                Ok(mut writer) if writer.available_bytes() >= HEADER_LEN + len => {
                    writer
                        .write_all(&header)
                        .and_then(|()| writer.write_all(frame))
                        .map_err(|e| protocol(e.to_string()))?;
                    HEADER_LEN + len
                }
                // A buffer outside RAM or too small for the frame: the frame is dropped and the
                // buffer goes back empty (the driver refills it).
                _ => {
                    self.dropped.rx_too_big += 1;
                    0
                }
            };
            self.inbound.consume(stored);
            let written = u32::try_from(written).map_err(|e| protocol(e.to_string()))?;
            active
                .rx
                .add_used(mem, head, written)
                .map_err(|e| protocol(e.to_string()))?;
            used_any = true;
        }
    }

    /// Reads ahead from the peer and hands the guest what fits its buffers; whether any buffer
    /// was used.
    fn receive(&mut self) -> Result<bool, DeviceError> {
        let mut used_any = false;
        loop {
            let full = self.read_peer();
            let (used, out_of_buffers) = self.deliver()?;
            used_any |= used;
            // Read again only when the read-ahead was full and delivering made room.
            if !full || out_of_buffers || !used {
                return Ok(used_any);
            }
        }
    }
}

/// The length the next frame in `bytes` announces: `None` before its 4 bytes are there,
/// `Err` when it is no frame's length.
fn frame_len(bytes: &[u8]) -> Option<Result<usize, usize>> {
    let prefix: [u8; LENGTH_LEN] = bytes.get(..LENGTH_LEN)?.try_into().ok()?;
    let len = u32::from_be_bytes(prefix) as usize;
    Some(if len == 0 || len > MAX_STORED_FRAME {
        Err(len)
    } else {
        Ok(len)
    })
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE_NET
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }
    fn features(&self) -> u64 {
        let offloads = if self.tap { TAP_OFFLOADS } else { 0 };
        VIRTIO_F_VERSION_1 | F_MAC | F_STATUS | F_MTU | F_EVENT_IDX | offloads
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config_space(), offset, data);
    }
    // The MAC is writable only with VIRTIO_NET_F_CTRL_MAC_ADDR-less legacy drivers; a modern
    // driver's writes are ignored.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError> {
        let got = activation.queues.len();
        let mut queues = activation.queues.into_iter();
        let (Some(rx), Some(tx), None) = (queues.next(), queues.next(), queues.next()) else {
            return Err(DeviceError::QueueCount {
                expected: QUEUE_SIZES.len(),
                got,
            });
        };
        let (mut rx, mut tx) = (rx, tx);
        self.acked = activation.acked_features;
        self.offload_to_tap();
        let event_idx = activation.acked_features & F_EVENT_IDX != 0;
        rx.set_event_idx(event_idx);
        tx.set_event_idx(event_idx);
        self.active = Some(Active {
            mem: activation.mem,
            interrupt: activation.interrupt,
            rx,
            tx,
        });
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
    }

    /// The transmit queue's notification transmits; the receive queue's (new buffers) hands
    /// over what was read ahead, reading on only if the read-ahead had filled up (otherwise
    /// the socket's own wake-up comes for anything new).
    fn process_queue(&mut self, index: usize) -> Result<(), DeviceError> {
        match index {
            TX_QUEUE => {
                let sent = self.transmit()?;
                self.notify(sent, false)
            }
            RX_QUEUE => {
                let received = if self.inbound_full {
                    self.receive()?
                } else {
                    self.deliver()?.0
                };
                self.notify(false, received)
            }
            _ => Err(DeviceError::NoSuchQueue(index)),
        }
    }

    /// The socket has frames, or room for what waited: a whole pass, transmit then receive.
    fn process_peer(&mut self) -> Result<(), DeviceError> {
        if self.active.is_none() {
            // The socket woke a card the driver has not started: frames wait in the socket.
            return Ok(());
        }
        let sent = self.transmit()?;
        let received = self.receive()?;
        self.notify(sent, received)
    }

    fn wants_writable(&self) -> bool {
        !self.outbound.is_empty()
    }
}

impl Net {
    /// Tells the TAP which offloads the guest took (`TUNSETOFFLOAD`): it then hands over
    /// segments and partial checksums only as the guest takes them, and finishes the rest
    /// itself. A descriptor that is no TAP (the tests' stand-in) keeps it computing all.
    fn offload_to_tap(&self) {
        /// `TUNSETOFFLOAD` and its flags (`linux/if_tun.h`).
        const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
        const TUN_F_CSUM: libc::c_uint = 0x01;
        const TUN_F_TSO4: libc::c_uint = 0x02;
        const TUN_F_TSO6: libc::c_uint = 0x04;
        const TUN_F_TSO_ECN: libc::c_uint = 0x08;
        let Some(Peer::Tap(tap)) = &self.peer else {
            return;
        };
        let mut flags = 0;
        if self.acked & F_GUEST_CSUM != 0 {
            flags |= TUN_F_CSUM;
            for (feature, flag) in [
                (F_GUEST_TSO4, TUN_F_TSO4),
                (F_GUEST_TSO6, TUN_F_TSO6),
                (F_GUEST_ECN, TUN_F_TSO_ECN),
            ] {
                if self.acked & feature != 0 {
                    flags |= flag;
                }
            }
        }
        use std::os::fd::AsRawFd;
        // SAFETY: TUNSETOFFLOAD takes its flags as the argument itself (no memory is read);
        // the descriptor is open for the call.
        let done =
            unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETOFFLOAD, libc::c_ulong::from(flags)) };
        if done < 0 {
            log::debug!(
                "the TAP's offloads stay off: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// Interrupts the guest if a queue that used buffers needs it.
    fn notify(&mut self, sent: bool, received: bool) -> Result<(), DeviceError> {
        if let Some(active) = self.active.as_mut() {
            let mem = active.mem.as_ref();
            let protocol = |queue: usize| {
                move |e: virtio_queue::Error| DeviceError::Protocol {
                    queue,
                    reason: e.to_string(),
                }
            };
            // With EVENT_IDX the guest says up to where it wants interrupts (a Linux driver
            // polling under NAPI wants none); without it, every pass that used buffers raises
            // one.
            let notify_tx = sent
                && active
                    .tx
                    .needs_notification(mem)
                    .map_err(protocol(TX_QUEUE))?;
            let notify_rx = received
                && active
                    .rx
                    .needs_notification(mem)
                    .map_err(protocol(RX_QUEUE))?;
            if notify_tx || notify_rx {
                active.interrupt.signal_used_queue();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testing::{Buf, CountingSink, guest_memory};
    use berth_display::testing::{Ring, read_bytes, write_bytes};
    use std::sync::atomic::Ordering;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 1, 2, 3];
    const TX_BASE: u64 = 0x4000;

    struct Card {
        net: Net,
        peer: UnixStream,
        mem: Arc<GuestMemory>,
        irq: Arc<CountingSink>,
        rx: Ring,
        tx: Ring,
    }

    /// A card on `peer`, activated with every feature it offers: the card, guest memory, its
    /// interrupt counter and its receive and transmit rings.
    fn activated(peer: Peer) -> (Net, Arc<GuestMemory>, Arc<CountingSink>, Ring, Ring) {
        let mut net = Net::new(MAC, peer).unwrap();
        let mem = guest_memory();
        let irq = Arc::new(CountingSink::default());
        let (rx, tx) = (Ring::new(0), Ring::new(TX_BASE));
        net.activate(Activation {
            mem: mem.clone(),
            interrupt: irq.clone(),
            queues: vec![rx.queue(), tx.queue()],
            acked_features: net.features(),
        })
        .unwrap();
        (net, mem, irq, rx, tx)
    }

    fn card() -> Card {
        let (ours, peer) = UnixStream::pair().unwrap();
        let (net, mem, irq, rx, tx) = activated(Peer::Stream(ours));
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        Card {
            net,
            peer,
            mem,
            irq,
            rx,
            tx,
        }
    }

    impl Card {
        /// The guest queues `frame` (after a zero header) for sending.
        fn send(&mut self, at: u64, frame: &[u8]) {
            let mut bytes = vec![0u8; HEADER_LEN];
            bytes.extend_from_slice(frame);
            write_bytes(&self.mem, at, &bytes);
            self.tx
                .submit(&self.mem, &[Buf(at, bytes.len() as u32, false)]);
        }

        /// The peer sends `frame`, framed.
        fn peer_sends(&mut self, frame: &[u8]) {
            self.peer
                .write_all(&(frame.len() as u32).to_be_bytes())
                .unwrap();
            self.peer.write_all(frame).unwrap();
        }

        fn peer_reads(&mut self) -> Vec<u8> {
            let mut len = [0u8; 4];
            self.peer.read_exact(&mut len).unwrap();
            let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
            self.peer.read_exact(&mut frame).unwrap();
            frame
        }
    }

    fn ethernet(payload_len: usize, fill: u8) -> Vec<u8> {
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&MAC);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.resize(14 + payload_len, fill);
        frame
    }

    #[test]
    fn configuration_has_the_mac_the_link_and_the_mtu() {
        let card = card();
        let mut config = [0u8; 12];
        card.net.read_config(0, &mut config);
        assert_eq!(config[..6], MAC);
        assert_eq!(u16::from_le_bytes([config[6], config[7]]), LINK_UP);
        assert_eq!(u16::from_le_bytes([config[10], config[11]]), MTU);
        assert_eq!(card.net.device_type(), 1);
        assert_ne!(card.net.features() & F_MAC, 0);
    }

    #[test]
    fn transmitted_frames_reach_the_peer_framed_without_the_header() {
        let mut card = card();
        let (a, b) = (ethernet(46, 0xaa), ethernet(1500, 0xbb));
        card.send(0x10000, &a);
        card.send(0x20000, &b);
        card.net.process_queue(TX_QUEUE).unwrap();
        assert_eq!(card.peer_reads(), a);
        assert_eq!(card.peer_reads(), b);
        assert_eq!(card.tx.used_idx(&card.mem), 2);
        assert_eq!(card.tx.used(&card.mem, 0).1, 0);
        assert_eq!(card.irq.used.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn received_frames_fill_guest_buffers_one_each() {
        let mut card = card();
        let (a, b) = (ethernet(60, 1), ethernet(1000, 2));
        card.peer_sends(&a);
        card.peer_sends(&b);
        // No buffer yet: the frames wait.
        card.net.process_peer().unwrap();
        assert_eq!(card.rx.used_idx(&card.mem), 0);
        for at in [0x10000u64, 0x20000] {
            card.rx.submit(&card.mem, &[Buf(at, 1526, true)]);
        }
        card.net.process_queue(RX_QUEUE).unwrap();
        assert_eq!(card.rx.used_idx(&card.mem), 2);
        assert_eq!(card.rx.used(&card.mem, 0).1 as usize, HEADER_LEN + a.len());
        let header = read_bytes(&card.mem, 0x10000, HEADER_LEN);
        assert_eq!(header[10..12], [1, 0], "num_buffers");
        assert_eq!(
            read_bytes(&card.mem, 0x10000 + HEADER_LEN as u64, a.len()),
            a
        );
        assert_eq!(
            read_bytes(&card.mem, 0x20000 + HEADER_LEN as u64, b.len()),
            b
        );
    }

    #[test]
    fn frames_are_read_ahead_of_the_guests_buffers_and_arrive_in_order() {
        let mut card = card();
        // One write: a socket's buffer holds this much, not as many small writes.
        let mut stream = Vec::new();
        for i in 0..60u8 {
            stream.extend_from_slice(&1014u32.to_be_bytes());
            stream.extend_from_slice(&ethernet(1000, i));
        }
        card.peer.write_all(&stream).unwrap();
        // No buffer: the socket is emptied all the same, so the peer can go on writing.
        card.net.process_peer().unwrap();
        assert_eq!(card.net.inbound.len(), stream.len());
        for round in 0..6u8 {
            for slot in 0..10u64 {
                card.rx
                    .submit(&card.mem, &[Buf(0x10000 + slot * 0x800, 1526, true)]);
            }
            // The guest's notification of new buffers: what was read ahead goes to them.
            card.net.process_queue(RX_QUEUE).unwrap();
            for slot in 0..10u64 {
                let first = HEADER_LEN as u64 + 14;
                assert_eq!(
                    read_bytes(&card.mem, 0x10000 + slot * 0x800 + first, 1)[0],
                    round * 10 + slot as u8
                );
            }
        }
        assert_eq!(card.rx.used_idx(&card.mem), 60);
        assert_eq!(card.net.inbound.len(), 0);
    }

    #[test]
    fn a_full_socket_holds_frames_until_the_peer_reads() {
        let mut card = card();
        // Frames the peer does not read fill the socket; the rest wait in the card, which
        // then wants to hear when it can write.
        let frame = ethernet(1500, 9);
        let mut sent = 0;
        while !card.net.wants_writable() {
            assert!(sent < 10_000, "the socket never filled");
            card.send(0x10000 + (sent % 8) * 0x1000, &frame);
            card.net.process_queue(TX_QUEUE).unwrap();
            sent += 1;
        }
        let mut received = 0;
        while received < sent {
            assert_eq!(card.peer_reads(), frame);
            received += 1;
            if card.net.wants_writable() {
                card.net.process_peer().unwrap();
            }
        }
        assert!(!card.net.wants_writable());
        assert_eq!(card.tx.used_idx(&card.mem), sent as u16);
    }

    #[test]
    fn a_frame_split_across_reads_arrives_whole() {
        let mut card = card();
        let frame = ethernet(500, 7);
        card.rx.submit(&card.mem, &[Buf(0x10000, 1526, true)]);
        card.peer
            .write_all(&(frame.len() as u32).to_be_bytes())
            .unwrap();
        card.peer.write_all(&frame[..100]).unwrap();
        card.net.process_peer().unwrap();
        assert_eq!(card.rx.used_idx(&card.mem), 0);
        card.peer.write_all(&frame[100..]).unwrap();
        card.net.process_peer().unwrap();
        assert_eq!(card.rx.used_idx(&card.mem), 1);
        assert_eq!(
            read_bytes(&card.mem, 0x10000 + HEADER_LEN as u64, frame.len()),
            frame
        );
    }

    #[test]
    fn malformed_chains_and_oversized_frames_are_dropped_not_fatal() {
        let mut card = card();
        // Shorter than the header, larger than a frame, outside memory.
        card.tx.submit(&card.mem, &[Buf(0x10000, 4, false)]);
        card.tx.submit(
            &card.mem,
            &[Buf(0x10000, (HEADER_LEN + MAX_FRAME + 1) as u32, false)],
        );
        card.tx
            .submit(&card.mem, &[Buf(0xffff_0000_0000, 64, false)]);
        card.net.process_queue(TX_QUEUE).unwrap();
        assert_eq!(card.tx.used_idx(&card.mem), 3);
        assert_eq!(card.net.dropped().tx_malformed, 3);
        // A receive buffer too small for the frame gets it dropped, the next frame goes on.
        card.peer_sends(&ethernet(1000, 1));
        card.peer_sends(&ethernet(20, 2));
        card.rx.submit(&card.mem, &[Buf(0x10000, 100, true)]);
        card.rx.submit(&card.mem, &[Buf(0x20000, 1526, true)]);
        card.net.process_peer().unwrap();
        assert_eq!(card.net.dropped().rx_too_big, 1);
        assert_eq!(card.rx.used(&card.mem, 0).1, 0);
        assert_eq!(card.rx.used(&card.mem, 1).1 as usize, HEADER_LEN + 34);
        // Still sending.
        let frame = ethernet(46, 3);
        card.send(0x30000, &frame);
        card.net.process_queue(TX_QUEUE).unwrap();
        assert_eq!(card.peer_reads(), frame);
    }

    #[test]
    fn a_peer_that_breaks_the_framing_takes_the_link_down() {
        let mut card = card();
        card.peer.write_all(&u32::MAX.to_be_bytes()).unwrap();
        card.rx.submit(&card.mem, &[Buf(0x10000, 1526, true)]);
        card.net.process_peer().unwrap();
        let mut status = [0u8; 2];
        card.net.read_config(6, &mut status);
        assert_eq!(u16::from_le_bytes(status), 0, "link down");
        assert_eq!(card.irq.config.load(Ordering::SeqCst), 1);
        // The guest may go on sending: frames are lost, nothing fails.
        card.send(0x20000, &ethernet(46, 0));
        card.net.process_queue(TX_QUEUE).unwrap();
        assert_eq!(card.tx.used_idx(&card.mem), 1);
    }

    #[test]
    fn a_closed_peer_takes_the_link_down() {
        let mut card = card();
        let Card { net, peer, .. } = &mut card;
        peer.shutdown(std::net::Shutdown::Both).unwrap();
        net.process_peer().unwrap();
        let mut status = [0u8; 2];
        net.read_config(6, &mut status);
        assert_eq!(u16::from_le_bytes(status), 0);
    }

    #[test]
    fn wake_ups_before_activation_leave_frames_in_the_socket() {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let mut net = Net::new(MAC, Peer::Stream(ours)).unwrap();
        peer.write_all(&[0, 0, 0, 60]).unwrap();
        assert!(net.process_peer().is_ok());
        assert_eq!(net.inbound.len(), 0);
        assert!(matches!(
            net.process_queue(2),
            Err(DeviceError::NoSuchQueue(2))
        ));
    }

    /// A TAP's frames, one per read and write, each after its virtio-net header (a datagram
    /// socket pair stands in for it): the guest's header goes to the TAP, the TAP's to the
    /// guest, with the offloads a TAP offers.
    #[test]
    fn a_tap_takes_and_gives_one_frame_per_write_and_read_with_its_header() {
        use std::os::unix::net::UnixDatagram;
        let (ours, peer) = UnixDatagram::pair().unwrap();
        let tap = File::from(std::os::fd::OwnedFd::from(ours));
        let (mut net, mem, _irq, mut rx, mut tx) = activated(Peer::Tap(tap));
        assert_eq!(net.features() & TAP_OFFLOADS, TAP_OFFLOADS);
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // Out: each chain one write, its header first: a partial checksum (flags 1), and a
        // 30000-byte TCP segment (gso_type 1, gso_size 1448), which HOST_TSO lets through.
        let needs_csum = [1u8, 0, 0, 0, 0, 0, 34, 0, 16, 0, 0, 0];
        let segment = [1u8, 1, 54, 0, 0xa8, 5, 34, 0, 16, 0, 0, 0];
        let (a, b) = (ethernet(46, 0xaa), ethernet(30_000, 0xbb));
        for (at, header, frame) in [(0x10000u64, needs_csum, &a), (0x20000, segment, &b)] {
            let mut bytes = header.to_vec();
            bytes.extend_from_slice(frame);
            write_bytes(&mem, at, &bytes);
            tx.submit(&mem, &[Buf(at, bytes.len() as u32, false)]);
        }
        net.process_queue(TX_QUEUE).unwrap();
        let mut got = vec![0u8; 65536];
        for (header, frame) in [(needs_csum, &a), (segment, &b)] {
            let n = peer.recv(&mut got).unwrap();
            assert_eq!(got[..HEADER_LEN], header);
            assert_eq!(&got[HEADER_LEN..n], &frame[..]);
        }
        assert_eq!(net.dropped().tx_malformed, 0);
        // In: each read one frame after its header, each in a buffer of its own after the
        // same header (num_buffers 1).
        let data_valid = [2u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xee, 0xee];
        let (c, d) = (ethernet(60, 1), ethernet(20_000, 2));
        for (header, frame) in [(data_valid, &c), (segment, &d)] {
            let mut bytes = header.to_vec();
            bytes.extend_from_slice(frame);
            peer.send(&bytes).unwrap();
        }
        // Too short to be a header and a frame: skipped.
        peer.send(&[0u8; HEADER_LEN]).unwrap();
        net.process_peer().unwrap();
        for at in [0x30000u64, 0x40000] {
            rx.submit(&mem, &[Buf(at, 65_562, true)]);
        }
        net.process_queue(RX_QUEUE).unwrap();
        assert_eq!(rx.used_idx(&mem), 2);
        for (i, (at, header, frame)) in [(0x30000u64, data_valid, &c), (0x40000, segment, &d)]
            .into_iter()
            .enumerate()
        {
            assert_eq!(rx.used(&mem, i as u16).1 as usize, HEADER_LEN + frame.len());
            let mut expected = header;
            expected[10..12].copy_from_slice(&1u16.to_le_bytes());
            assert_eq!(read_bytes(&mem, at, HEADER_LEN), expected);
            assert_eq!(
                read_bytes(&mem, at + HEADER_LEN as u64, frame.len()),
                *frame
            );
        }
    }

    /// Without `HOST_TSO` (a driver that did not take it), a frame above the MTU is no frame;
    /// passt's stream is offered no offloads at all.
    #[test]
    fn segments_need_host_tso_and_passt_gets_no_offloads() {
        use std::os::unix::net::UnixDatagram;
        let (ours, _peer) = UnixDatagram::pair().unwrap();
        let mut net =
            Net::new(MAC, Peer::Tap(File::from(std::os::fd::OwnedFd::from(ours)))).unwrap();
        let mem = guest_memory();
        let (rx, mut tx) = (Ring::new(0), Ring::new(TX_BASE));
        net.activate(Activation {
            mem: mem.clone(),
            interrupt: Arc::new(CountingSink::default()),
            queues: vec![rx.queue(), tx.queue()],
            acked_features: VIRTIO_F_VERSION_1 | F_CSUM | F_GUEST_CSUM,
        })
        .unwrap();
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes.extend_from_slice(&ethernet(30_000, 0xbb));
        write_bytes(&mem, 0x10000, &bytes);
        tx.submit(&mem, &[Buf(0x10000, bytes.len() as u32, false)]);
        net.process_queue(TX_QUEUE).unwrap();
        assert_eq!(net.dropped().tx_malformed, 1);
        // Without GUEST_TSO but with GUEST_CSUM the TAP's header passes; a driver without
        // GUEST_CSUM gets zeros.
        drop(net);
        for (acked, expected_flags) in [(F_GUEST_CSUM, 2u8), (0, 0)] {
            let (ours, peer) = UnixDatagram::pair().unwrap();
            let mut net =
                Net::new(MAC, Peer::Tap(File::from(std::os::fd::OwnedFd::from(ours)))).unwrap();
            let mem = guest_memory();
            let (mut rx, tx) = (Ring::new(0), Ring::new(TX_BASE));
            net.activate(Activation {
                mem: mem.clone(),
                interrupt: Arc::new(CountingSink::default()),
                queues: vec![rx.queue(), tx.queue()],
                acked_features: VIRTIO_F_VERSION_1 | acked,
            })
            .unwrap();
            let mut bytes = vec![2u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            bytes.extend_from_slice(&ethernet(60, 3));
            peer.send(&bytes).unwrap();
            net.process_peer().unwrap();
            rx.submit(&mem, &[Buf(0x30000, 2048, true)]);
            net.process_queue(RX_QUEUE).unwrap();
            assert_eq!(rx.used_idx(&mem), 1);
            assert_eq!(read_bytes(&mem, 0x30000, 1), [expected_flags]);
        }
        let (stream, _) = UnixStream::pair().unwrap();
        let passt = Net::new(MAC, Peer::Stream(stream)).unwrap();
        assert_eq!(passt.features() & TAP_OFFLOADS, 0);
    }
}
