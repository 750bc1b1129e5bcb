//! virtio-blk (virtio 1.2 §5.2) on a host file: a sparse raw disk read-write, or read-only media
//! such as an ISO.
//!
//! Every request the driver gets wrong is answered with a status byte when the chain has a
//! usable status byte, and puts the device in DEVICE_NEEDS_RESET when it does not: the device
//! never panics and never loops on guest data.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX,
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, Queue, Reader, Writer};
use vm_memory::{Address, Bytes, GuestMemoryBackend as _};

use super::{
    Activation, DeviceError, GuestMemory, InterruptSink, VIRTIO_F_VERSION_1, VirtioDevice,
    answer_chains,
};

/// Virtio device ID of a block device.
pub const DEVICE_TYPE_BLOCK: u32 = 2;
/// Bytes in a virtio-blk sector, whatever the host's block size.
pub const SECTOR_SIZE: u64 = 512;
/// The request queue's maximum size.
pub const QUEUE_SIZE: u16 = 256;
const QUEUE_SIZES: [u16; 1] = [QUEUE_SIZE];
/// Data segments in one request: the queue size less the header and status descriptors.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Largest data segment the driver may use.
pub const SIZE_MAX: u32 = 1 << 20;
/// The request header: type, reserved/ioprio, sector.
const HEADER_LEN: usize = 16;
/// Host I/O is done through a bounce buffer of this size.
const CHUNK: usize = 64 * 1024;

/// Errors of the block device.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Cannot open the disk image {path}: {source}
    #[error("cannot open the disk image {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    /// Cannot read the size of the disk image: {0}
    #[error("cannot read the size of the disk image: {0}")]
    Metadata(std::io::Error),
    /// The serial {0:?} is longer than 20 bytes
    #[error("the serial {0:?} is longer than 20 bytes")]
    SerialTooLong(String),
}

/// Why a request could not be answered with a status byte (the device then needs a reset).
#[derive(Debug, thiserror::Error)]
enum Unanswerable {
    /// The descriptor chain is empty, loops, is too long or has a bad next index
    #[error("the descriptor chain is empty, loops, is too long or has a bad next index")]
    BrokenChain,
    /// The chain has no device-writable status byte at its end
    #[error("the chain has no device-writable status byte at its end")]
    NoStatus,
    /// The status byte lies outside guest memory
    #[error("the status byte lies outside guest memory")]
    StatusOutOfRange,
}

struct Active {
    mem: Arc<GuestMemory>,
    interrupt: Arc<dyn InterruptSink>,
    queue: Queue,
}

/// A virtio-blk device backed by a host file.
pub struct Block {
    file: File,
    read_only: bool,
    capacity_sectors: u64,
    serial: [u8; VIRTIO_BLK_ID_BYTES as usize],
    config: Vec<u8>,
    active: Option<Active>,
}

impl Block {
    /// Opens the image at `path` (read-write unless `read_only`) as a block device whose GET_ID
    /// answers `serial` (at most 20 bytes).
    pub fn open(path: &Path, read_only: bool, serial: &str) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.display().to_string(),
                source,
            })?;
        Self::new(file, read_only, serial)
    }

    /// A block device on an already open `file`.
    pub fn new(file: File, read_only: bool, serial: &str) -> Result<Self, Error> {
        let len = file.metadata().map_err(Error::Metadata)?.len();
        let mut serial_bytes = [0u8; VIRTIO_BLK_ID_BYTES as usize];
        if serial.len() > serial_bytes.len() {
            return Err(Error::SerialTooLong(serial.to_owned()));
        }
        serial_bytes[..serial.len()].copy_from_slice(serial.as_bytes());
        // A trailing partial sector cannot be addressed and is not counted.
        let capacity_sectors = len / SECTOR_SIZE;
        let mut config = Vec::with_capacity(16);
        config.extend_from_slice(&capacity_sectors.to_le_bytes());
        config.extend_from_slice(&SIZE_MAX.to_le_bytes());
        config.extend_from_slice(&SEG_MAX.to_le_bytes());
        Ok(Block {
            file,
            read_only,
            capacity_sectors,
            serial: serial_bytes,
            config,
            active: None,
        })
    }

    /// The disk's size in 512-byte sectors, as the config space says.
    pub fn capacity_sectors(&self) -> u64 {
        self.capacity_sectors
    }

    /// Answers one request; returns the used length, or why it cannot be answered.
    fn handle_request(
        &mut self,
        mem: &GuestMemory,
        chain: DescriptorChain<&GuestMemory>,
    ) -> Result<u32, Unanswerable> {
        // The chain iterator stops after queue-size descriptors and at a bad index: a last
        // descriptor that still says "next" means the chain was cut short.
        let descriptors: Vec<Descriptor> = chain.clone().collect();
        let last = descriptors.last().ok_or(Unanswerable::BrokenChain)?;
        if last.has_next() {
            return Err(Unanswerable::BrokenChain);
        }
        if !last.is_write_only() || last.len() == 0 {
            return Err(Unanswerable::NoStatus);
        }
        let status_addr = last
            .addr()
            .checked_add(u64::from(last.len()) - 1)
            .filter(|addr| mem.address_in_range(*addr))
            .ok_or(Unanswerable::StatusOutOfRange)?;

        let (status, data_written) = self.execute(mem, chain);
        mem.write_obj(status as u8, status_addr)
            .map_err(|_| Unanswerable::StatusOutOfRange)?;
        // data_written never exceeds the writable bytes, which fit in u32 (the iterator stops
        // before 2^32 bytes).
        Ok(u32::try_from(data_written).unwrap_or(u32::MAX - 1) + 1)
    }

    /// Carries out a request whose status byte is known good: returns the status and the data
    /// bytes written to the driver.
    fn execute(&mut self, mem: &GuestMemory, chain: DescriptorChain<&GuestMemory>) -> (u32, usize) {
        let (Ok(mut reader), Ok(mut writer)) =
            (Reader::new(mem, chain.clone()), Writer::new(mem, chain))
        else {
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        // The last writable byte is the status; everything before it is data.
        let data_len = writer.available_bytes().saturating_sub(1);
        if writer.split_at(data_len).is_err() {
            return (VIRTIO_BLK_S_IOERR, 0);
        }
        let mut header = [0u8; HEADER_LEN];
        if reader.read_exact(&mut header).is_err() {
            return (VIRTIO_BLK_S_IOERR, 0);
        }
        let request_type = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let mut sector_bytes = [0u8; 8];
        sector_bytes.copy_from_slice(&header[8..16]);
        let sector = u64::from_le_bytes(sector_bytes);

        match request_type {
            VIRTIO_BLK_T_IN => self.read_sectors(sector, &mut writer),
            VIRTIO_BLK_T_OUT if self.read_only => (VIRTIO_BLK_S_IOERR, 0),

            VIRTIO_BLK_T_OUT => (self.write_sectors(sector, &mut reader), 0),
            VIRTIO_BLK_T_FLUSH if self.read_only => (VIRTIO_BLK_S_UNSUPP, 0),
            VIRTIO_BLK_T_FLUSH => match self.file.sync_data() {
                Ok(()) => (VIRTIO_BLK_S_OK, 0),
                Err(_) => (VIRTIO_BLK_S_IOERR, 0),
            },
            VIRTIO_BLK_T_GET_ID => {
                let len = self.serial.len().min(data_len);
                match writer.write_all(&self.serial[..len]) {
                    Ok(()) => (VIRTIO_BLK_S_OK, len),
                    Err(_) => (VIRTIO_BLK_S_IOERR, writer.bytes_written()),
                }
            }
            _ => (VIRTIO_BLK_S_UNSUPP, 0),
        }
    }

    /// The byte offset of `sector` if `len` bytes from there lie within the disk.
    fn disk_range(&self, sector: u64, len: usize) -> Option<u64> {
        let len = u64::try_from(len).ok()?;
        if len % SECTOR_SIZE != 0 {
            return None;
        }
        let start = sector.checked_mul(SECTOR_SIZE)?;
        let end = start.checked_add(len)?;
        (end <= self.capacity_sectors * SECTOR_SIZE).then_some(start)
    }

    fn read_sectors(&self, sector: u64, writer: &mut Writer<'_>) -> (u32, usize) {
        let len = writer.available_bytes();
        let Some(mut offset) = self.disk_range(sector, len) else {
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        let mut buf = vec![0u8; CHUNK.min(len)];
        let mut left = len;
        while left > 0 {
            let chunk = &mut buf[..CHUNK.min(left)];
            if self.file.read_exact_at(chunk, offset).is_err() || writer.write_all(chunk).is_err() {
                return (VIRTIO_BLK_S_IOERR, writer.bytes_written());
            }
            offset += chunk.len() as u64;
            left -= chunk.len();
        }
        (VIRTIO_BLK_S_OK, len)
    }

    fn write_sectors(&self, sector: u64, reader: &mut Reader<'_>) -> u32 {
        let len = reader.available_bytes();
        let Some(mut offset) = self.disk_range(sector, len) else {
            return VIRTIO_BLK_S_IOERR;
        };
        let mut buf = vec![0u8; CHUNK.min(len)];
        let mut left = len;
        while left > 0 {
            let chunk = &mut buf[..CHUNK.min(left)];
            if reader.read_exact(chunk).is_err() || self.file.write_all_at(chunk, offset).is_err() {
                return VIRTIO_BLK_S_IOERR;
            }
            offset += chunk.len() as u64;
            left -= chunk.len();
        }
        VIRTIO_BLK_S_OK
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE_BLOCK
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }
    fn features(&self) -> u64 {
        let mut features =
            VIRTIO_F_VERSION_1 | 1 << VIRTIO_BLK_F_SEG_MAX | 1 << VIRTIO_BLK_F_SIZE_MAX;
        if self.read_only {
            features |= 1 << VIRTIO_BLK_F_RO;
        } else {
            features |= 1 << VIRTIO_BLK_F_FLUSH;
        }
        features
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data);
    }
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // Nothing the device offers (writeback toggling) is writable.
    }

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
        let Some(mut active) = self.active.take().filter(|_| index == 0) else {
            return Err(DeviceError::NoSuchQueue(index));
        };
        let result = self.drain(&mut active);
        self.active = Some(active);
        result
    }
}

impl Block {
    fn drain(&mut self, active: &mut Active) -> Result<(), DeviceError> {
        let mem = active.mem.clone();
        answer_chains(
            &mut active.queue,
            &mem,
            active.interrupt.as_ref(),
            0,
            |chain| {
                self.handle_request(&mem, chain)
                    .map_err(|reason| reason.to_string())
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Seek, SeekFrom};

    use super::*;
    use crate::virtio::testing::{Buf, Driver, QUEUE_SIZE, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

    const HDR: u64 = 0x10000;
    const DATA: u64 = 0x20000;
    const STATUS: u64 = 0x30000;
    const DISK_SECTORS: u64 = 64;
    const NEEDS_RESET: u32 = 0x40;

    fn disk_file(sectors: u64) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        // Each sector starts with its number so reads can be told apart.
        for sector in 0..sectors {
            let mut block = [0u8; SECTOR_SIZE as usize];
            block[..8].copy_from_slice(&sector.to_le_bytes());
            block[8] = 0xab;
            file.as_file()
                .write_all_at(&block, sector * SECTOR_SIZE)
                .expect("write disk");
        }
        file
    }

    fn device(read_only: bool) -> (Driver, tempfile::NamedTempFile) {
        let file = disk_file(DISK_SECTORS);
        let block = Block::open(file.path(), read_only, "berth-disk-0").expect("open");
        (Driver::bring_up(Box::new(block), 0), file)
    }

    fn header(d: &Driver, request_type: u32, sector: u64) {
        let mut raw = [0u8; 16];
        raw[0..4].copy_from_slice(&request_type.to_le_bytes());
        raw[8..16].copy_from_slice(&sector.to_le_bytes());
        d.write_bytes(HDR, &raw);
        d.write_bytes(STATUS, &[0xff]);
    }

    fn status(d: &Driver) -> u32 {
        u32::from(d.read_bytes(STATUS, 1)[0])
    }

    #[test]
    fn config_space_capacity_and_limits() {
        let (mut d, _file) = device(false);
        assert_eq!(d.read(0x008), DEVICE_TYPE_BLOCK);
        let capacity = u64::from(d.read(0x100)) | u64::from(d.read(0x104)) << 32;
        assert_eq!(capacity, DISK_SECTORS);
        assert_eq!(d.read(0x108), SIZE_MAX);
        assert_eq!(d.read(0x10c), SEG_MAX);
        d.write(0x14, 0);
        let features = d.read(0x10);
        assert_ne!(features & 1 << VIRTIO_BLK_F_FLUSH, 0);
        assert_eq!(features & 1 << VIRTIO_BLK_F_RO, 0);
    }

    #[test]
    fn read_sectors() {
        let (mut d, _file) = device(false);
        header(&d, VIRTIO_BLK_T_IN, 5);
        let head = d.submit(&[
            Buf(HDR, 16, false),
            Buf(DATA, 1024, true),
            Buf(STATUS, 1, true),
        ]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_OK);
        assert_eq!(d.used(0), (u32::from(head), 1025));
        let data = d.read_bytes(DATA, 1024);
        assert_eq!(data[..8], 5u64.to_le_bytes());
        assert_eq!(data[512..520], 6u64.to_le_bytes());
        assert_eq!(d.irq.used.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn write_sectors_reach_the_file() {
        let (mut d, file) = device(false);
        header(&d, VIRTIO_BLK_T_OUT, 10);
        d.write_bytes(DATA, &[0x5a; 512]);
        d.write_bytes(DATA + 512, &[0xa5; 512]);
        d.submit(&[
            Buf(HDR, 16, false),
            Buf(DATA, 512, false),
            Buf(DATA + 512, 512, false),
            Buf(STATUS, 1, true),
        ]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_OK);
        assert_eq!(d.used(0).1, 1);
        let mut on_disk = vec![0u8; 1536];
        let mut f = file.reopen().expect("reopen");
        f.seek(SeekFrom::Start(10 * SECTOR_SIZE)).expect("seek");
        f.read_exact(&mut on_disk).expect("read back");
        assert_eq!(on_disk[..512], [0x5a; 512]);
        assert_eq!(on_disk[512..1024], [0xa5; 512]);
        assert_eq!(
            on_disk[1024..1032],
            12u64.to_le_bytes(),
            "next sector untouched"
        );
    }

    #[test]
    fn flush_answers_ok() {
        let (mut d, _file) = device(false);
        header(&d, VIRTIO_BLK_T_FLUSH, 0);
        d.submit(&[Buf(HDR, 16, false), Buf(STATUS, 1, true)]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_OK);
        assert_eq!(d.used(0).1, 1);
    }

    #[test]
    fn get_id_returns_serial() {
        let (mut d, _file) = device(false);
        header(&d, VIRTIO_BLK_T_GET_ID, 0);
        d.write_bytes(DATA, &[0xff; 20]);
        d.submit(&[
            Buf(HDR, 16, false),
            Buf(DATA, 20, true),
            Buf(STATUS, 1, true),
        ]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_OK);
        assert_eq!(d.used(0).1, 21);
        let mut expected = b"berth-disk-0".to_vec();
        expected.resize(20, 0);
        assert_eq!(d.read_bytes(DATA, 20), expected);
    }

    #[test]
    fn serial_longer_than_20_bytes_is_refused() {
        let file = disk_file(1);
        assert!(matches!(
            Block::open(file.path(), false, "a-serial-of-21-bytes!"),
            Err(Error::SerialTooLong(_))
        ));
    }

    #[test]
    fn read_only_media() {
        let (mut d, file) = device(true);
        d.write(0x14, 0);
        let features = d.read(0x10);
        assert_ne!(features & 1 << VIRTIO_BLK_F_RO, 0);
        assert_eq!(features & 1 << VIRTIO_BLK_F_FLUSH, 0);

        header(&d, VIRTIO_BLK_T_OUT, 0);
        d.write_bytes(DATA, &[0x77; 512]);
        d.submit(&[
            Buf(HDR, 16, false),
            Buf(DATA, 512, false),
            Buf(STATUS, 1, true),
        ]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_IOERR);
        let mut first = [0u8; 9];
        file.as_file().read_exact_at(&mut first, 0).expect("read");
        assert_eq!(first[8], 0xab, "file untouched");

        header(&d, VIRTIO_BLK_T_FLUSH, 0);
        d.submit(&[Buf(HDR, 16, false), Buf(STATUS, 1, true)]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_UNSUPP);

        // Reads still work.
        header(&d, VIRTIO_BLK_T_IN, 3);
        d.submit(&[
            Buf(HDR, 16, false),
            Buf(DATA, 512, true),
            Buf(STATUS, 1, true),
        ]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_OK);
        assert_eq!(d.read_bytes(DATA, 8), 3u64.to_le_bytes());
    }

    #[test]
    fn read_only_flag_refuses_writes_even_on_a_writable_file() {
        let file = disk_file(DISK_SECTORS);
        let writable = file.reopen().expect("reopen read-write");
        let block = Block::new(writable, true, "ro").expect("device");
        let mut d = Driver::bring_up(Box::new(block), 0);
        header(&d, VIRTIO_BLK_T_OUT, 0);
        d.write_bytes(DATA, &[0x77; 512]);
        d.submit(&[
            Buf(HDR, 16, false),
            Buf(DATA, 512, false),
            Buf(STATUS, 1, true),
        ]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_IOERR);
        let mut first = [0u8; 9];
        file.as_file().read_exact_at(&mut first, 0).expect("read");
        assert_eq!(first[8], 0xab, "file untouched");
    }

    #[test]
    fn unknown_request_type_is_unsupported() {
        let (mut d, _file) = device(false);
        header(&d, 0x1234, 0);
        d.submit(&[Buf(HDR, 16, false), Buf(STATUS, 1, true)]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_UNSUPP);
        assert_eq!(d.status() & NEEDS_RESET, 0);
    }

    #[test]
    fn sectors_past_the_end() {
        let (mut d, _file) = device(false);
        for (sector, len) in [
            (DISK_SECTORS, 512u32),
            (DISK_SECTORS - 1, 1024),
            (u64::MAX, 512),
        ] {
            header(&d, VIRTIO_BLK_T_IN, sector);
            d.submit(&[
                Buf(HDR, 16, false),
                Buf(DATA, len, true),
                Buf(STATUS, 1, true),
            ]);
            d.notify(0);
            assert_eq!(status(&d), VIRTIO_BLK_S_IOERR, "sector {sector}");
        }
        header(&d, VIRTIO_BLK_T_OUT, DISK_SECTORS);
        d.submit(&[
            Buf(HDR, 16, false),
            Buf(DATA, 512, false),
            Buf(STATUS, 1, true),
        ]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_IOERR);
    }

    #[test]
    fn data_not_a_multiple_of_sectors() {
        let (mut d, _file) = device(false);
        header(&d, VIRTIO_BLK_T_IN, 0);
        d.submit(&[
            Buf(HDR, 16, false),
            Buf(DATA, 100, true),
            Buf(STATUS, 1, true),
        ]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_IOERR);
    }

    #[test]
    fn short_header() {
        let (mut d, _file) = device(false);
        header(&d, VIRTIO_BLK_T_IN, 0);
        d.submit(&[
            Buf(HDR, 8, false),
            Buf(DATA, 512, true),
            Buf(STATUS, 1, true),
        ]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_IOERR);
    }

    #[test]
    fn out_of_range_and_huge_data_buffers() {
        let (mut d, _file) = device(false);
        for (addr, len) in [(0xffff_0000_0000u64, 512u32), (DATA, 0xffff_fe00)] {
            header(&d, VIRTIO_BLK_T_IN, 0);
            d.submit(&[
                Buf(HDR, 16, false),
                Buf(addr, len, true),
                Buf(STATUS, 1, true),
            ]);
            d.notify(0);
            assert_eq!(status(&d), VIRTIO_BLK_S_IOERR, "buffer {addr:#x}+{len:#x}");
        }
        // A header outside guest memory: still answered through the good status byte.
        header(&d, VIRTIO_BLK_T_IN, 0);
        d.submit(&[
            Buf(0xffff_0000_0000, 16, false),
            Buf(DATA, 512, true),
            Buf(STATUS, 1, true),
        ]);
        d.notify(0);
        assert_eq!(status(&d), VIRTIO_BLK_S_IOERR);
        assert_eq!(d.status() & NEEDS_RESET, 0);
    }

    #[test]
    fn missing_status_descriptor_needs_reset() {
        let (mut d, _file) = device(false);
        header(&d, VIRTIO_BLK_T_FLUSH, 0);
        let head = d.submit(&[Buf(HDR, 16, false)]);
        d.notify(0);
        assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
        assert_eq!(d.used(0), (u32::from(head), 0), "buffer handed back");
        assert_eq!(d.irq.config.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn read_only_status_descriptor_needs_reset() {
        let (mut d, _file) = device(false);
        header(&d, VIRTIO_BLK_T_FLUSH, 0);
        d.submit(&[Buf(HDR, 16, false), Buf(STATUS, 1, false)]);
        d.notify(0);
        assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
        assert_eq!(status(&d), 0xff, "read-only status byte not written");
    }

    #[test]
    fn status_outside_memory_needs_reset() {
        let (mut d, _file) = device(false);
        header(&d, VIRTIO_BLK_T_FLUSH, 0);
        d.submit(&[Buf(HDR, 16, false), Buf(0xffff_0000_0000, 1, true)]);
        d.notify(0);
        assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
    }

    #[test]
    fn descriptor_loop_needs_reset_without_hanging() {
        let (mut d, _file) = device(false);
        header(&d, VIRTIO_BLK_T_IN, 0);
        d.write_desc(0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
        d.write_desc(1, DATA, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
        d.publish(0);
        d.notify(0);
        assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
        assert_eq!(d.used_idx(), 1);
    }

    #[test]
    fn chain_longer_than_queue_needs_reset() {
        let (mut d, _file) = device(false);
        header(&d, VIRTIO_BLK_T_IN, 0);
        for i in 0..QUEUE_SIZE {
            d.write_desc(i, DATA, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, i + 1);
        }
        d.publish(0);
        d.notify(0);
        assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
    }

    #[test]
    fn next_index_out_of_table_needs_reset() {
        let (mut d, _file) = device(false);
        d.write_desc(0, HDR, 16, VIRTQ_DESC_F_NEXT, 999);
        d.publish(0);
        d.notify(0);
        assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
    }

    #[test]
    fn needs_reset_stops_processing_until_reset() {
        let (mut d, _file) = device(false);
        d.submit(&[Buf(HDR, 16, false)]);
        d.notify(0);
        assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
        header(&d, VIRTIO_BLK_T_FLUSH, 0);
        d.submit(&[Buf(HDR, 16, false), Buf(STATUS, 1, true)]);
        d.notify(0);
        assert_eq!(d.used_idx(), 1, "no processing while NEEDS_RESET");
        d.write(0x70, 0);
        assert_eq!(d.status(), 0);
    }
}
