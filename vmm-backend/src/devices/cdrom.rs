//! A CD-ROM drive's SCSI command set (SPC-3 and MMC-6, the part firmware and Linux use) over a
//! read-only image of 2048-byte blocks: what a transport (virtio-scsi) hands its commands to.
//!
//! Why a CD drive at all: SeaBIOS boots a pure El Torito ISO (one without an MBR) only from a
//! CD drive, and its microvm build reaches CD drives through virtio-scsi over MMIO. The same
//! drive gives a Linux guest `/dev/sr0`.
//!
//! Every command the guest gets wrong (an unknown operation code, a CDB too short for its
//! operation code, a field the drive does not support, a block past the end) is answered with
//! CHECK CONDITION and sense data saying which; nothing a guest sends makes the drive panic or
//! read past its image.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes in a CD block.
pub const BLOCK_SIZE: u64 = 2048;
/// The most bytes one READ returns: more than a transport's largest request.
pub const MAX_READ: u64 = 8 << 20;
/// Images larger than this are reported as a DVD-ROM, smaller ones as a CD-ROM (a CD holds at
/// most about 900 MB).
const DVD_FROM: u64 = 900_000_000;

const TEST_UNIT_READY: u8 = 0x00;
const REQUEST_SENSE: u8 = 0x03;
const INQUIRY: u8 = 0x12;
const MODE_SENSE_6: u8 = 0x1a;
const START_STOP_UNIT: u8 = 0x1b;
const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1e;
const READ_CAPACITY_10: u8 = 0x25;
const READ_10: u8 = 0x28;
const READ_TOC: u8 = 0x43;
const GET_CONFIGURATION: u8 = 0x46;
const GET_EVENT_STATUS_NOTIFICATION: u8 = 0x4a;
const MODE_SENSE_10: u8 = 0x5a;
const REPORT_LUNS: u8 = 0xa0;
const READ_12: u8 = 0xa8;
const SET_CD_SPEED: u8 = 0xbb;

/// Peripheral device type 5: a CD/DVD device (SPC-3 table 83).
const PERIPHERAL_CD: u8 = 0x05;
/// MMC profiles (MMC-6 table 91).
const PROFILE_CD_ROM: u16 = 0x0008;
const PROFILE_DVD_ROM: u16 = 0x0010;
/// The mode page of a CD/DVD drive's capabilities (MMC-6 §7.8).
const PAGE_CAPABILITIES: u8 = 0x2a;
const PAGE_ALL: u8 = 0x3f;
/// MODE SENSE's page control (SPC-3 §6.9.1): the changeable values, the saved values.
const PAGE_CONTROL_CHANGEABLE: u8 = 1;
const PAGE_CONTROL_SAVED: u8 = 3;
/// The read speed the drive reports: 24x a CD's 176.4 kB/s, as drives of the DVD era did.
const READ_SPEED_KBPS: u16 = 4224;
/// The lead-out's track number in a TOC.
const LEAD_OUT: u8 = 0xaa;

/// SCSI sense: what went wrong with a command (SPC-3 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    /// The sense key.
    pub key: u8,
    /// The additional sense code.
    pub asc: u8,
    /// Its qualifier.
    pub ascq: u8,
}

impl Sense {
    /// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE.
    pub const INVALID_OPCODE: Sense = Sense::illegal(0x20);
    /// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const LBA_OUT_OF_RANGE: Sense = Sense::illegal(0x21);
    /// ILLEGAL REQUEST, INVALID FIELD IN CDB.
    pub const INVALID_FIELD: Sense = Sense::illegal(0x24);
    /// ILLEGAL REQUEST, SAVING PARAMETERS NOT SUPPORTED.
    pub const SAVING_NOT_SUPPORTED: Sense = Sense::illegal(0x39);
    /// MEDIUM ERROR, UNRECOVERED READ ERROR: the image could not be read.
    pub const READ_ERROR: Sense = Sense {
        key: 0x03,
        asc: 0x11,
        ascq: 0x00,
    };

    const fn illegal(asc: u8) -> Sense {
        Sense {
            key: 0x05,
            asc,
            ascq: 0x00,
        }
    }

    /// The sense in fixed format (response code 70h, 18 bytes).
    pub fn fixed_format(&self) -> [u8; 18] {
        let mut data = [0u8; 18];
        data[0] = 0x70;
        data[2] = self.key & 0x0f;
        data[7] = 10; // additional sense length: the bytes after this one
        data[12] = self.asc;
        data[13] = self.ascq;
        data
    }
}

/// How a command ended (SCSI status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// GOOD: the data, if any, is what the command returns.
    Good,
    /// CHECK CONDITION, with the sense saying why; no data.
    CheckCondition(Sense),
}

/// A CD-ROM drive with a disc in it: the image, read-only.
#[derive(Debug)]
pub struct Cdrom {
    image: File,
    /// Blocks on the disc; an image whose size is not a multiple of the block size ends in a
    /// block padded with zeroes.
    blocks: u64,
}

impl Cdrom {
    /// The drive with `image` as its disc.
    pub fn new(image: File) -> io::Result<Self> {
        let len = image.metadata()?.len();
        Ok(Self {
            image,
            blocks: len.div_ceil(BLOCK_SIZE),
        })
    }

    /// Blocks on the disc.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Carries out the command in `cdb`, putting what it returns in `data` (cleared first) but
    /// never more than `limit` bytes: the size of the guest's buffer, or a command's own
    /// allocation length when that is less.
    pub fn execute(&self, cdb: &[u8], limit: usize, data: &mut Vec<u8>) -> Status {
        data.clear();
        let Some(&opcode) = cdb.first() else {
            return Status::CheckCondition(Sense::INVALID_OPCODE);
        };
        if cdb.len() < cdb_len(opcode) {
            return Status::CheckCondition(Sense::INVALID_FIELD);
        }
        let result = match opcode {
            TEST_UNIT_READY | START_STOP_UNIT | PREVENT_ALLOW_MEDIUM_REMOVAL | SET_CD_SPEED => {
                Ok(())
            }
            REQUEST_SENSE => {
                // Errors are reported with the command that failed, so nothing is pending.
                let none = Sense {
                    key: 0,
                    asc: 0,
                    ascq: 0,
                };
                data.extend_from_slice(&none.fixed_format());
                limit_to(data, usize::from(cdb[4]));
                Ok(())
            }
            INQUIRY => self.inquiry(cdb, data),
            READ_CAPACITY_10 => {
                let last = u32::try_from(self.blocks.saturating_sub(1)).unwrap_or(u32::MAX);
                data.extend_from_slice(&last.to_be_bytes());
                data.extend_from_slice(&(BLOCK_SIZE as u32).to_be_bytes());
                Ok(())
            }
            READ_10 => {
                let lba = u64::from(be32(&cdb[2..6]));
                let count = u64::from(be16(&cdb[7..9]));
                self.read(lba, count, limit, data)
            }
            READ_12 => {
                let lba = u64::from(be32(&cdb[2..6]));
                let count = u64::from(be32(&cdb[6..10]));
                self.read(lba, count, limit, data)
            }
            READ_TOC => self.read_toc(cdb, data),
            GET_CONFIGURATION => {
                let profile = if self.blocks.saturating_mul(BLOCK_SIZE) > DVD_FROM {
                    PROFILE_DVD_ROM
                } else {
                    PROFILE_CD_ROM
                };
                // The feature header alone: the length of what follows its length field, and
                // the current profile.
                data.extend_from_slice(&4u32.to_be_bytes());
                data.extend_from_slice(&[0, 0]);
                data.extend_from_slice(&profile.to_be_bytes());
                limit_to(data, usize::from(be16(&cdb[7..9])));
                Ok(())
            }
            GET_EVENT_STATUS_NOTIFICATION => {
                // Only polling is supported (MMC-6 §6.7): no events, media class supported.
                if cdb[1] & 1 == 0 {
                    Err(Sense::INVALID_FIELD)
                } else {
                    data.extend_from_slice(&[0, 2, 0x80, 1 << 4]);
                    limit_to(data, usize::from(be16(&cdb[7..9])));
                    Ok(())
                }
            }
            // Linux's sr asks with MODE SENSE(6) unless told the drive takes only (10); without
            // an answer it takes the drive for SCSI-1 and masks its MMC features.
            MODE_SENSE_6 => mode_sense(cdb[2], cdb[3], usize::from(cdb[4]), ModeHeader::Six, data),
            MODE_SENSE_10 => {
                let allocation = usize::from(be16(&cdb[7..9]));
                mode_sense(cdb[2], cdb[3], allocation, ModeHeader::Ten, data)
            }
            REPORT_LUNS => {
                // One logical unit, LUN 0.
                data.extend_from_slice(&8u32.to_be_bytes());
                data.extend_from_slice(&[0; 12]);
                limit_to(data, be32(&cdb[6..10]) as usize);
                Ok(())
            }
            _ => Err(Sense::INVALID_OPCODE),
        };
        match result {
            Ok(()) => {
                data.truncate(limit);
                Status::Good
            }
            Err(sense) => {
                data.clear();
                Status::CheckCondition(sense)
            }
        }
    }

    fn inquiry(&self, cdb: &[u8], data: &mut Vec<u8>) -> Result<(), Sense> {
        let allocation = usize::from(be16(&cdb[3..5]));
        if cdb[1] & 1 == 1 {
            // Vital product data: only the list of supported pages, which is that page alone.
            if cdb[2] != 0x00 {
                return Err(Sense::INVALID_FIELD);
            }
            data.extend_from_slice(&[PERIPHERAL_CD, 0x00, 0x00, 1, 0x00]);
        } else {
            if cdb[2] != 0 {
                return Err(Sense::INVALID_FIELD);
            }
            // Standard data: removable, SPC-3, response format 2, 31 more bytes.
            data.extend_from_slice(&[PERIPHERAL_CD, 0x80, 0x05, 0x02, 31, 0, 0, 0]);
            data.extend_from_slice(b"BERTH   ");
            data.extend_from_slice(b"CD-ROM          ");
            data.extend_from_slice(b"1.0 ");
        }
        limit_to(data, allocation);
        Ok(())
    }

    fn read(&self, lba: u64, count: u64, limit: usize, data: &mut Vec<u8>) -> Result<(), Sense> {
        let end = lba.checked_add(count).ok_or(Sense::LBA_OUT_OF_RANGE)?;
        if end > self.blocks {
            return Err(Sense::LBA_OUT_OF_RANGE);
        }
        let len = (count * BLOCK_SIZE).min(limit as u64).min(MAX_READ) as usize;
        data.resize(len, 0);
        let mut done = 0;
        while done < len {
            match self
                .image
                .read_at(&mut data[done..], lba * BLOCK_SIZE + done as u64)
            {
                // The image's end: the rest of its last block reads as zeroes.
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Sense::READ_ERROR),
            }
        }
        Ok(())
    }

    fn read_toc(&self, cdb: &[u8], data: &mut Vec<u8>) -> Result<(), Sense> {
        let msf = cdb[1] & 0x02 != 0;
        let allocation = usize::from(be16(&cdb[7..9]));
        let address = |lba: u64| -> [u8; 4] {
            if msf {
                // Minutes, seconds, frames from the start of the disc: 75 frames a second,
                // and block 0 at 00:02:00.
                let frames = lba + 150;
                let minutes = u8::try_from(frames / (60 * 75)).unwrap_or(u8::MAX);
                [0, minutes, (frames / 75 % 60) as u8, (frames % 75) as u8]
            } else {
                u32::try_from(lba).unwrap_or(u32::MAX).to_be_bytes()
            }
        };
        match cdb[2] & 0x0f {
            // The TOC: one data track from block 0, then the lead-out.
            0 => {
                let first = cdb[6];
                data.extend_from_slice(&[0, 0, 1, 1]);
                if first <= 1 {
                    data.extend_from_slice(&[0, 0x14, 1, 0]);
                    data.extend_from_slice(&address(0));
                }
                data.extend_from_slice(&[0, 0x14, LEAD_OUT, 0]);
                data.extend_from_slice(&address(self.blocks));
            }
            // Session information: one session, its first track at block 0.
            1 => {
                data.extend_from_slice(&[0, 0, 1, 1, 0, 0x14, 1, 0]);
                data.extend_from_slice(&address(0));
            }
            _ => return Err(Sense::INVALID_FIELD),
        }
        let len = u16::try_from(data.len() - 2).unwrap_or(u16::MAX);
        data[..2].copy_from_slice(&len.to_be_bytes());
        limit_to(data, allocation);
        Ok(())
    }
}

/// The mode parameter header's form: MODE SENSE(6)'s or (10)'s (SPC-3 §7.4.3).
#[derive(Clone, Copy)]
enum ModeHeader {
    Six,
    Ten,
}

/// MODE SENSE's data for its CDB's page byte (page control, page code: the capabilities page,
/// or all pages, which is that one) and subpage: the header with no block descriptors, then
/// the page, cut to `allocation`. Nothing is changeable, and nothing can be saved.
fn mode_sense(
    page: u8,
    subpage: u8,
    allocation: usize,
    header: ModeHeader,
    data: &mut Vec<u8>,
) -> Result<(), Sense> {
    let (control, page) = (page >> 6, page & 0x3f);
    // Subpage 0xff of page 0x3f asks for every subpage: here, the one page.
    let subpage_ok = subpage == 0 || (page == PAGE_ALL && subpage == 0xff);
    if (page != PAGE_CAPABILITIES && page != PAGE_ALL) || !subpage_ok {
        return Err(Sense::INVALID_FIELD);
    }
    if control == PAGE_CONTROL_SAVED {
        return Err(Sense::SAVING_NOT_SUPPORTED);
    }
    let header_len = match header {
        ModeHeader::Six => 4,
        ModeHeader::Ten => 8,
    };
    data.resize(header_len, 0);
    // The capabilities page (MMC-6 §7.8): reads CD-R and DVD-ROM media, can lock and eject, a
    // tray, reads at 24x (4,224 kB/s: the maximum and current read speeds Linux reports).
    let mut capabilities = [0u8; 22];
    capabilities[0] = PAGE_CAPABILITIES;
    capabilities[1] = 20;
    capabilities[2] = 0x09;
    capabilities[6] = 0x20 | 0x08 | 0x01;
    capabilities[8..10].copy_from_slice(&READ_SPEED_KBPS.to_be_bytes());
    capabilities[14..16].copy_from_slice(&READ_SPEED_KBPS.to_be_bytes());
    if control == PAGE_CONTROL_CHANGEABLE {
        // A mask of the changeable fields: none.
        capabilities[2..].fill(0);
    }
    data.extend_from_slice(&capabilities);
    // The mode data length counts the bytes after itself.
    match header {
        ModeHeader::Six => data[0] = u8::try_from(data.len() - 1).unwrap_or(u8::MAX),
        ModeHeader::Ten => {
            let len = u16::try_from(data.len() - 2).unwrap_or(u16::MAX);
            data[..2].copy_from_slice(&len.to_be_bytes());
        }
    }
    limit_to(data, allocation);
    Ok(())
}

/// The length of a CDB by its operation code's group (SPC-3 §4.3.2).
fn cdb_len(opcode: u8) -> usize {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 1,
    }
}

/// Cuts `data` to a command's allocation length.
fn limit_to(data: &mut Vec<u8>, allocation: usize) {
    data.truncate(allocation);
}

fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A drive whose image holds `blocks` blocks, each filled with its own number, and `tail`
    /// bytes of one more.
    fn drive(blocks: u64, tail: usize) -> Cdrom {
        let mut file = tempfile::tempfile().unwrap();
        for block in 0..blocks {
            file.write_all(&[block as u8; BLOCK_SIZE as usize]).unwrap();
        }
        file.write_all(&vec![0xee; tail]).unwrap();
        Cdrom::new(file).unwrap()
    }

    fn run(cdrom: &Cdrom, cdb: &[u8], limit: usize) -> (Status, Vec<u8>) {
        let mut data = vec![0x55; 3];
        let status = cdrom.execute(cdb, limit, &mut data);
        (status, data)
    }

    #[test]
    fn inquiry_says_a_removable_cd_drive() {
        let cdrom = drive(4, 0);
        let (status, data) = run(&cdrom, &[INQUIRY, 0, 0, 0, 96, 0], 4096);
        assert_eq!(status, Status::Good);
        assert_eq!(data.len(), 36);
        assert_eq!(data[0], PERIPHERAL_CD);
        assert_eq!(data[1], 0x80, "removable");
        assert_eq!(&data[8..16], b"BERTH   ");
        // Cut to the allocation length, and to the guest's buffer.
        assert_eq!(run(&cdrom, &[INQUIRY, 0, 0, 0, 5, 0], 4096).1.len(), 5);
        assert_eq!(run(&cdrom, &[INQUIRY, 0, 0, 0, 96, 0], 10).1.len(), 10);
        // The supported pages, and no other page.
        let (status, data) = run(&cdrom, &[INQUIRY, 1, 0, 0, 96, 0], 4096);
        assert_eq!((status, data), (Status::Good, vec![5, 0, 0, 1, 0]));
        assert_eq!(
            run(&cdrom, &[INQUIRY, 1, 0x80, 0, 96, 0], 4096),
            (Status::CheckCondition(Sense::INVALID_FIELD), vec![])
        );
    }

    #[test]
    fn capacity_counts_a_partial_last_block() {
        let cdrom = drive(10, 100);
        let (status, data) = run(&cdrom, &[READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
        assert_eq!(status, Status::Good);
        assert_eq!(
            data,
            [0, 0, 0, 10, 0, 0, 0x08, 0x00],
            "last block 10, 2048 bytes"
        );
    }

    #[test]
    fn reads_return_the_blocks_asked_for() {
        let cdrom = drive(8, 0);
        let (status, data) = run(&cdrom, &[READ_10, 0, 0, 0, 0, 3, 0, 0, 2, 0], 1 << 20);
        assert_eq!(status, Status::Good);
        assert_eq!(data.len(), 2 * BLOCK_SIZE as usize);
        assert!(data[..2048].iter().all(|&b| b == 3));
        assert!(data[2048..].iter().all(|&b| b == 4));
        let (status, data) = run(&cdrom, &[READ_12, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0], 1 << 20);
        assert_eq!(status, Status::Good);
        assert!(data.len() == 2048 && data.iter().all(|&b| b == 7));
        // A zero-length read is fine; the guest's buffer bounds what comes back.
        assert_eq!(
            run(&cdrom, &[READ_10, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4096),
            (Status::Good, vec![])
        );
        assert_eq!(
            run(&cdrom, &[READ_10, 0, 0, 0, 0, 0, 0, 0, 4, 0], 100)
                .1
                .len(),
            100
        );
    }

    #[test]
    fn the_last_partial_block_reads_padded_with_zeroes() {
        let cdrom = drive(1, 10);
        let (status, data) = run(&cdrom, &[READ_10, 0, 0, 0, 0, 1, 0, 0, 1, 0], 4096);
        assert_eq!(status, Status::Good);
        assert_eq!(data.len(), 2048);
        assert!(data[..10].iter().all(|&b| b == 0xee));
        assert!(data[10..].iter().all(|&b| b == 0));
    }

    #[test]
    fn reads_past_the_disc_are_refused() {
        let cdrom = drive(8, 0);
        let past = |cdb: &[u8]| run(&cdrom, cdb, 1 << 20);
        let refused = (Status::CheckCondition(Sense::LBA_OUT_OF_RANGE), vec![]);
        assert_eq!(past(&[READ_10, 0, 0, 0, 0, 7, 0, 0, 2, 0]), refused);
        assert_eq!(past(&[READ_10, 0, 0, 0, 0, 9, 0, 0, 0, 0]), refused);
        assert_eq!(
            past(&[
                READ_12, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0
            ]),
            refused
        );
    }

    #[test]
    fn what_the_drive_cannot_do_is_refused_with_sense() {
        let cdrom = drive(8, 0);
        // Unknown operation codes, a CDB too short for its group, no CDB.
        assert_eq!(
            run(&cdrom, &[0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], 4096).0,
            Status::CheckCondition(Sense::INVALID_OPCODE),
            "WRITE(10) on a CD"
        );
        assert_eq!(
            run(&cdrom, &[READ_10, 0, 0], 4096).0,
            Status::CheckCondition(Sense::INVALID_FIELD)
        );
        assert_eq!(
            run(&cdrom, &[], 4096).0,
            Status::CheckCondition(Sense::INVALID_OPCODE)
        );
        // Asynchronous event notification, mode pages other than the capabilities.
        assert_eq!(
            run(
                &cdrom,
                &[GET_EVENT_STATUS_NOTIFICATION, 0, 0, 0, 0x10, 0, 0, 0, 8, 0],
                8
            )
            .0,
            Status::CheckCondition(Sense::INVALID_FIELD)
        );
        assert_eq!(
            run(
                &cdrom,
                &[MODE_SENSE_10, 0, 0x01, 0, 0, 0, 0, 0, 255, 0],
                4096
            )
            .0,
            Status::CheckCondition(Sense::INVALID_FIELD)
        );
        let sense = Sense::INVALID_OPCODE.fixed_format();
        assert_eq!(
            (sense[0], sense[2], sense[7], sense[12]),
            (0x70, 5, 10, 0x20)
        );
    }

    #[test]
    fn the_toc_has_one_data_track_and_the_lead_out() {
        let cdrom = drive(8, 0);
        let (status, data) = run(&cdrom, &[READ_TOC, 0, 0, 0, 0, 0, 0, 0, 100, 0], 4096);
        assert_eq!(status, Status::Good);
        assert_eq!(
            data,
            [
                0, 18, 1, 1, // length, first and last track
                0, 0x14, 1, 0, 0, 0, 0, 0, // track 1, data, block 0
                0, 0x14, 0xaa, 0, 0, 0, 0, 8, // lead-out at block 8
            ]
        );
        // In minutes, seconds and frames: block 0 is 00:02:00, block 8 00:02:08.
        let (_, data) = run(&cdrom, &[READ_TOC, 2, 0, 0, 0, 0, 0, 0, 100, 0], 4096);
        assert_eq!(&data[8..12], &[0, 0, 2, 0]);
        assert_eq!(&data[16..20], &[0, 0, 2, 8]);
        // Session information; formats beyond it are refused.
        let (status, data) = run(&cdrom, &[READ_TOC, 0, 1, 0, 0, 0, 0, 0, 100, 0], 4096);
        assert_eq!((status, &data[..4]), (Status::Good, &[0, 10, 1, 1][..]));
        assert_eq!(
            run(&cdrom, &[READ_TOC, 0, 2, 0, 0, 0, 0, 0, 100, 0], 4096).0,
            Status::CheckCondition(Sense::INVALID_FIELD)
        );
    }

    #[test]
    fn media_events_profile_and_capabilities_answer_polling_drivers() {
        let cdrom = drive(8, 0);
        let (status, data) = run(
            &cdrom,
            &[GET_EVENT_STATUS_NOTIFICATION, 1, 0, 0, 0x10, 0, 0, 0, 8, 0],
            4096,
        );
        assert_eq!((status, data), (Status::Good, vec![0, 2, 0x80, 0x10]));
        let (status, data) = run(
            &cdrom,
            &[GET_CONFIGURATION, 0, 0, 0, 0, 0, 0, 0, 8, 0],
            4096,
        );
        assert_eq!((status, &data[6..8]), (Status::Good, &[0, 8][..]), "CD-ROM");
        let (status, data) = run(&cdrom, &[MODE_SENSE_10, 0, 0x2a, 0, 0, 0, 0, 1, 0, 0], 4096);
        assert_eq!(status, Status::Good);
        assert_eq!(data.len(), 30);
        assert_eq!(&data[..2], &[0, 28], "mode data length");
        assert_eq!(&data[8..10], &[0x2a, 20], "the capabilities page");
        assert_eq!(&data[8 + 8..8 + 10], &[0x10, 0x80], "24x");
        // MODE SENSE(6), which Linux's sr sends: a 4-byte header, no block descriptors.
        let (status, data) = run(&cdrom, &[MODE_SENSE_6, 0, 0x2a, 0, 255, 0], 4096);
        assert_eq!(status, Status::Good);
        assert_eq!(data.len(), 26);
        assert_eq!(
            &data[..4],
            &[25, 0, 0, 0],
            "mode data length, no descriptors"
        );
        assert_eq!(&data[4..6], &[0x2a, 20], "the capabilities page");
        let (_, data) = run(&cdrom, &[MODE_SENSE_6, 0, 0x3f, 0xff, 8, 0], 4096);
        assert_eq!(data.len(), 8, "cut to the allocation length");
        // Nothing is changeable, nothing can be saved, the page has no subpages.
        let (status, data) = run(&cdrom, &[MODE_SENSE_6, 0, 0x40 | 0x2a, 0, 255, 0], 4096);
        assert_eq!(status, Status::Good);
        assert_eq!(&data[4..6], &[0x2a, 20]);
        assert!(data[6..].iter().all(|b| *b == 0), "{data:?}");
        for (cdb, sense) in [
            (
                [MODE_SENSE_6, 0, 0xc0 | 0x2a, 0, 255, 0],
                Sense::SAVING_NOT_SUPPORTED,
            ),
            ([MODE_SENSE_6, 0, 0x2a, 1, 255, 0], Sense::INVALID_FIELD),
        ] {
            assert_eq!(
                run(&cdrom, &cdb, 4096).0,
                Status::CheckCondition(sense),
                "{cdb:?}"
            );
        }
        let (status, data) = run(
            &cdrom,
            &[REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0],
            4096,
        );
        assert_eq!(
            (status, data.len(), &data[..4]),
            (Status::Good, 16, &[0, 0, 0, 8][..])
        );
        let (status, data) = run(&cdrom, &[REQUEST_SENSE, 0, 0, 0, 18, 0], 4096);
        assert_eq!(
            (status, data[0], data[2]),
            (Status::Good, 0x70, 0),
            "nothing pending"
        );
        for ok in [
            [TEST_UNIT_READY, 0, 0, 0, 0, 0],
            [START_STOP_UNIT, 0, 0, 0, 2, 0],
            [PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 1, 0],
        ] {
            assert_eq!(run(&cdrom, &ok, 4096), (Status::Good, vec![]));
        }
    }
}
