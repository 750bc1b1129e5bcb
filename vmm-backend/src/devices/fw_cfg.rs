//! QEMU's firmware configuration interface (fw_cfg) as x86 firmware reads it: the channel
//! through which SeaBIOS learns the machine (RAM map, vCPU count, ACPI tables, boot order,
//! console) from the VMM. Specification: QEMU's `docs/specs/fw_cfg.rst`.
//!
//! Items are byte strings under a 16-bit key. The guest writes a key to the selector port and
//! reads the item byte by byte from the data port, or hands the device a DMA descriptor (a
//! big-endian `{control, length, address}` in guest RAM) whose address it writes to the DMA
//! ports; the device copies, then clears `control` (or leaves only its error bit). Items added
//! by name are *files*, listed in the file directory item ([`key::FILE_DIR`]).
//!
//! A few files are writable by DMA (QEMU's `etc/ramfb`): the guest's bytes replace the file's
//! within its size, and the VMM hears of them.
//!
//! Everything here is guest-driven: a key nobody set reads as zeroes, a read past an item's end
//! reads zeroes, a DMA descriptor outside RAM is ignored, one pointing a copy outside RAM gets
//! the error bit, as does a write to an item that is not writable or past a writable one's end;
//! the device never panics on what the guest does.

use std::collections::BTreeMap;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::bus::{BusAction, BusDevice};

/// The first I/O port: the selector (16 bits), then the data port at +1, the DMA address's
/// high half at +4 and its low half at +8 (each 32 bits, big-endian; writing the low half
/// starts the transfer).
pub const FW_CFG_PORT: u16 = 0x510;
/// How many ports the device decodes.
pub const FW_CFG_PORT_LEN: u16 = 12;

const SELECTOR_OFFSET: u64 = 0;
const DATA_OFFSET: u64 = 1;
const DMA_HIGH_OFFSET: u64 = 4;
const DMA_LOW_OFFSET: u64 = 8;

/// The keys of the items with fixed numbers (QEMU's `FW_CFG_*`).
pub mod key {
    /// "QEMU": how firmware recognises the interface.
    pub const SIGNATURE: u16 = 0x00;
    /// Interface features: bit 0 the traditional ports, bit 1 DMA.
    pub const ID: u16 = 0x01;
    /// Non-zero: no graphics; SeaBIOS then talks through the serial port.
    pub const NOGRAPHIC: u16 = 0x04;
    /// The number of vCPUs present at boot (16 bits).
    pub const NB_CPUS: u16 = 0x05;
    /// Whether to show the boot menu (16 bits).
    pub const BOOT_MENU: u16 = 0x0e;
    /// The most vCPUs the machine can have (16 bits).
    pub const MAX_CPUS: u16 = 0x0f;
    /// The file directory: a big-endian count, then one 64-byte entry per file.
    pub const FILE_DIR: u16 = 0x19;
    /// The key of the first file; files take consecutive keys.
    pub const FILE_FIRST: u16 = 0x20;
}

/// The ID item's bits: the traditional selector/data ports, and DMA.
const FEATURE_TRADITIONAL: u32 = 1 << 0;
const FEATURE_DMA: u32 = 1 << 1;

/// A selector's bit 14 asks for write access through the data port (ignored: QEMU takes
/// writes by DMA only).
const SELECTOR_WRITE: u16 = 1 << 14;

/// What a read of the DMA ports returns (big-endian), so firmware can probe for DMA.
const DMA_SIGNATURE: [u8; 8] = *b"QEMU CFG";

/// The DMA descriptor's control bits.
mod control {
    pub const ERROR: u32 = 1 << 0;
    pub const READ: u32 = 1 << 1;
    pub const SKIP: u32 = 1 << 2;
    pub const SELECT: u32 = 1 << 3;
    pub const WRITE: u32 = 1 << 4;
}

/// How long a file's name may be (the directory's 56 bytes hold it with a terminating NUL).
pub const FILE_NAME_MAX: usize = 55;

/// Zeroes written to the guest per step when a read runs past an item's end.
const ZERO_CHUNK: usize = 4096;

/// Errors while adding items.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum FwCfgError {
    /// the fw_cfg file name {0:?} is empty or longer than 55 bytes
    BadFileName(String),
    /// the fw_cfg file {0:?} was added twice
    DuplicateFile(String),
    /// fw_cfg has no key left for another file
    TooManyFiles,
    /// the fw_cfg item {0:#x} is larger than 4 GiB
    TooLarge(u16),
}

/// Told a writable file's whole content after each DMA write to it.
pub type WriteHook = Box<dyn FnMut(&[u8]) + Send>;

/// The fw_cfg device: its items, and what the guest has selected.
pub struct FwCfg {
    items: BTreeMap<u16, Vec<u8>>,
    /// The writable items' hooks.
    writable: BTreeMap<u16, WriteHook>,
    /// (name, key) of each file, in the order added.
    files: Vec<(String, u16)>,
    memory: GuestMemoryMmap,
    selected: u16,
    offset: usize,
    dma_high: u32,
}

impl std::fmt::Debug for FwCfg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FwCfg")
            .field("items", &self.items.len())
            .field("files", &self.files)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

impl FwCfg {
    /// A device with only the signature, the feature bits and an empty file directory; DMA
    /// copies go to and from `memory`.
    pub fn new(memory: GuestMemoryMmap) -> Self {
        let mut device = FwCfg {
            items: BTreeMap::new(),
            writable: BTreeMap::new(),
            files: Vec::new(),
            memory,
            selected: 0,
            offset: 0,
            dma_high: 0,
        };
        device.items.insert(key::SIGNATURE, b"QEMU".to_vec());
        device.items.insert(
            key::ID,
            (FEATURE_TRADITIONAL | FEATURE_DMA).to_le_bytes().to_vec(),
        );
        device
            .items
            .insert(key::FILE_DIR, 0u32.to_be_bytes().to_vec());
        device
    }

    /// Sets the item under a fixed `key` (see [`key`]).
    pub fn set_item(&mut self, key: u16, data: Vec<u8>) -> Result<(), FwCfgError> {
        if u32::try_from(data.len()).is_err() {
            return Err(FwCfgError::TooLarge(key));
        }
        self.items.insert(key, data);
        Ok(())
    }

    /// Adds a file under the next free key and lists it in the directory.
    pub fn add_file(&mut self, name: &str, data: Vec<u8>) -> Result<u16, FwCfgError> {
        if name.is_empty() || name.len() > FILE_NAME_MAX || name.contains('\0') {
            return Err(FwCfgError::BadFileName(name.to_owned()));
        }
        if self.files.iter().any(|(other, _)| other == name) {
            return Err(FwCfgError::DuplicateFile(name.to_owned()));
        }
        let index = u16::try_from(self.files.len()).map_err(|_| FwCfgError::TooManyFiles)?;
        let key = key::FILE_FIRST
            .checked_add(index)
            .filter(|k| k & SELECTOR_WRITE == 0)
            .ok_or(FwCfgError::TooManyFiles)?;
        self.set_item(key, data)?;
        self.files.push((name.to_owned(), key));
        let directory = self.directory();
        self.items.insert(key::FILE_DIR, directory);
        Ok(key)
    }

    /// Adds a file the guest may write by DMA (`data` is its size and first content); `hook`
    /// is told its content after each write.
    pub fn add_writable_file(
        &mut self,
        name: &str,
        data: Vec<u8>,
        hook: WriteHook,
    ) -> Result<u16, FwCfgError> {
        let key = self.add_file(name, data)?;
        self.writable.insert(key, hook);
        Ok(key)
    }

    /// The file directory: a big-endian count, then per file its big-endian size and key, two
    /// reserved bytes and its NUL-padded name.
    fn directory(&self) -> Vec<u8> {
        let mut dir = Vec::with_capacity(4 + 64 * self.files.len());
        dir.extend_from_slice(&(self.files.len() as u32).to_be_bytes());
        for (name, key) in &self.files {
            let size = self.items.get(key).map_or(0, Vec::len) as u32;
            dir.extend_from_slice(&size.to_be_bytes());
            dir.extend_from_slice(&key.to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut padded = [0u8; FILE_NAME_MAX + 1];
            padded[..name.len()].copy_from_slice(name.as_bytes());
            dir.extend_from_slice(&padded);
        }
        dir
    }

    fn select(&mut self, key: u16) {
        self.selected = key & !SELECTOR_WRITE;
        self.offset = 0;
    }

    /// The selected item's bytes from the current offset on (empty past its end, or when no
    /// item has the key).
    fn remaining(&self) -> &[u8] {
        self.items
            .get(&self.selected)
            .and_then(|item| item.get(self.offset..))
            .unwrap_or(&[])
    }

    /// One DMA transfer, described at `descriptor` in guest RAM.
    fn dma(&mut self, descriptor: u64) {
        let mut raw = [0u8; 16];
        // A descriptor outside RAM has nowhere to report to: nothing happens.
        if self
            .memory
            .read_slice(&mut raw, GuestAddress(descriptor))
            .is_err()
        {
            return;
        }
        let word = |at: usize| u32::from_be_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        let ctl = word(0);
        let length = word(4);
        let address = (u64::from(word(8)) << 32) | u64::from(word(12));
        if ctl & control::SELECT != 0 {
            self.select((ctl >> 16) as u16);
        }
        let done = if ctl & control::READ != 0 {
            self.dma_read(address, length)
        } else if ctl & control::WRITE != 0 {
            self.dma_write(address, length)
        } else {
            if ctl & control::SKIP != 0 {
                self.offset = self.offset.saturating_add(length as usize);
            }
            true
        };
        let status = if done { 0 } else { control::ERROR };
        // Written last: the guest polls it to see the transfer is over.
        let _ = self
            .memory
            .write_slice(&status.to_be_bytes(), GuestAddress(descriptor));
    }

    /// Copies `length` bytes of the selected item to `address`, zeroes past its end.
    fn dma_read(&mut self, address: u64, length: u32) -> bool {
        let length = length as usize;
        let remaining = self.remaining();
        let copied = remaining.len().min(length);
        let mut ok = self
            .memory
            .write_slice(&remaining[..copied], GuestAddress(address))
            .is_ok();
        let zeroes = [0u8; ZERO_CHUNK];
        let mut done = copied;
        while ok && done < length {
            let step = (length - done).min(ZERO_CHUNK);
            ok = self
                .memory
                .write_slice(
                    &zeroes[..step],
                    GuestAddress(address.wrapping_add(done as u64)),
                )
                .is_ok();
            done += step;
        }
        self.offset = self.offset.saturating_add(length);
        ok
    }

    /// Copies `length` bytes at `address` into the selected item from the current offset, if
    /// it is writable and they fit in it (as QEMU, a write never grows an item), then tells
    /// its hook.
    fn dma_write(&mut self, address: u64, length: u32) -> bool {
        let (Some(item), Some(hook)) = (
            self.items.get_mut(&self.selected),
            self.writable.get_mut(&self.selected),
        ) else {
            return false;
        };
        let Some(target) = self
            .offset
            .checked_add(length as usize)
            .and_then(|end| item.get_mut(self.offset..end))
        else {
            return false;
        };
        if self
            .memory
            .read_slice(target, GuestAddress(address))
            .is_err()
        {
            return false;
        }
        self.offset += length as usize;
        hook(item);
        true
    }
}

impl BusDevice for FwCfg {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            // A `rep insb` arrives as one access of many bytes: each is the next of the item.
            DATA_OFFSET => {
                let remaining = self.remaining();
                let n = remaining.len().min(data.len());
                data[..n].copy_from_slice(&remaining[..n]);
                data[n..].fill(0);
                self.offset = self.offset.saturating_add(data.len());
            }
            DMA_HIGH_OFFSET..=11 => {
                let start = (offset - DMA_HIGH_OFFSET) as usize;
                for (i, byte) in data.iter_mut().enumerate() {
                    *byte = DMA_SIGNATURE.get(start + i).copied().unwrap_or(0);
                }
            }
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        match (offset, data) {
            (SELECTOR_OFFSET, [low, high, ..]) => self.select(u16::from_le_bytes([*low, *high])),
            (DMA_HIGH_OFFSET, [a, b, c, d]) => self.dma_high = u32::from_be_bytes([*a, *b, *c, *d]),
            (DMA_HIGH_OFFSET, bytes) if bytes.len() == 8 => {
                let mut word = [0u8; 8];
                word.copy_from_slice(bytes);
                self.dma_high = 0;
                self.dma(u64::from_be_bytes(word));
            }
            (DMA_LOW_OFFSET, [a, b, c, d]) => {
                let address = (u64::from(self.dma_high) << 32)
                    | u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
                self.dma_high = 0;
                self.dma(address);
            }
            // Writes through the data port are deprecated (QEMU ignores them too).
            _ => {}
        }
        BusAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::create_guest_memory;

    fn device() -> (FwCfg, GuestMemoryMmap) {
        let memory = create_guest_memory(4 << 20).unwrap();
        (FwCfg::new(memory.clone()), memory)
    }

    fn read_item(device: &mut FwCfg, key: u16, len: usize) -> Vec<u8> {
        device.write(SELECTOR_OFFSET, &key.to_le_bytes());
        let mut out = vec![0u8; len];
        device.read(DATA_OFFSET, &mut out);
        out
    }

    /// Writes a descriptor at `at` and starts it through the low DMA port, as SeaBIOS does.
    fn dma(device: &mut FwCfg, memory: &GuestMemoryMmap, at: u64, ctl: u32, len: u32, to: u64) {
        let mut raw = Vec::new();
        raw.extend_from_slice(&ctl.to_be_bytes());
        raw.extend_from_slice(&len.to_be_bytes());
        raw.extend_from_slice(&to.to_be_bytes());
        memory.write_slice(&raw, GuestAddress(at)).unwrap();
        device.write(DMA_LOW_OFFSET, &(at as u32).to_be_bytes());
    }

    fn control_word(memory: &GuestMemoryMmap, at: u64) -> u32 {
        let mut raw = [0u8; 4];
        memory.read_slice(&mut raw, GuestAddress(at)).unwrap();
        u32::from_be_bytes(raw)
    }

    #[test]
    fn signature_features_and_dma_probe() {
        let (mut device, _) = device();
        assert_eq!(read_item(&mut device, key::SIGNATURE, 4), b"QEMU");
        assert_eq!(read_item(&mut device, key::ID, 4), [3, 0, 0, 0]);
        let mut sig = [0u8; 4];
        device.read(DMA_HIGH_OFFSET, &mut sig);
        assert_eq!(&sig, b"QEMU");
        device.read(DMA_LOW_OFFSET, &mut sig);
        assert_eq!(&sig, b" CFG");
    }

    #[test]
    fn bytes_past_an_item_and_unknown_keys_read_as_zero() {
        let (mut device, _) = device();
        assert_eq!(read_item(&mut device, key::SIGNATURE, 6), b"QEMU\0\0");
        assert_eq!(read_item(&mut device, 0x1234, 3), [0, 0, 0]);
        // Byte by byte continues where the last read ended.
        device.write(SELECTOR_OFFSET, &key::SIGNATURE.to_le_bytes());
        let mut one = [0u8; 1];
        device.read(DATA_OFFSET, &mut one);
        device.read(DATA_OFFSET, &mut one);
        assert_eq!(one, [b'E']);
    }

    #[test]
    fn files_are_listed_in_the_directory() {
        let (mut device, _) = device();
        let e820 = device.add_file("etc/e820", vec![1; 20]).unwrap();
        let order = device.add_file("bootorder", b"/x\n".to_vec()).unwrap();
        assert_eq!((e820, order), (0x20, 0x21));
        let dir = read_item(&mut device, key::FILE_DIR, 4 + 2 * 64);
        assert_eq!(&dir[..4], &2u32.to_be_bytes());
        let entry = &dir[4..68];
        assert_eq!(&entry[..4], &20u32.to_be_bytes());
        assert_eq!(&entry[4..6], &0x20u16.to_be_bytes());
        assert_eq!(&entry[8..16], b"etc/e820");
        assert_eq!(entry[16], 0);
        assert_eq!(&dir[68 + 8..68 + 17], b"bootorder");
        assert_eq!(read_item(&mut device, 0x21, 3), b"/x\n");
    }

    #[test]
    fn bad_file_names_are_refused() {
        let (mut device, _) = device();
        assert!(matches!(
            device.add_file("", vec![]),
            Err(FwCfgError::BadFileName(_))
        ));
        assert!(matches!(
            device.add_file(&"x".repeat(56), vec![]),
            Err(FwCfgError::BadFileName(_))
        ));
        device.add_file("a", vec![]).unwrap();
        assert!(matches!(
            device.add_file("a", vec![]),
            Err(FwCfgError::DuplicateFile(_))
        ));
    }

    #[test]
    fn dma_selects_reads_skips_and_zero_fills() {
        let (mut device, memory) = device();
        device
            .add_file("etc/thing", b"0123456789".to_vec())
            .unwrap();
        let ctl = (0x20u32 << 16) | control::SELECT | control::SKIP;
        dma(&mut device, &memory, 0x1000, ctl, 2, 0);
        assert_eq!(control_word(&memory, 0x1000), 0);
        dma(&mut device, &memory, 0x1000, control::READ, 12, 0x2000);
        assert_eq!(control_word(&memory, 0x1000), 0);
        let mut out = [0xffu8; 12];
        memory.read_slice(&mut out, GuestAddress(0x2000)).unwrap();
        assert_eq!(&out, b"23456789\0\0\0\0");
    }

    #[test]
    fn dma_errors_are_reported_and_garbage_is_harmless() {
        let (mut device, memory) = device();
        // A copy that would leave RAM.
        let ctl = (u32::from(key::SIGNATURE) << 16) | control::SELECT | control::READ;
        dma(&mut device, &memory, 0x1000, ctl, 4, 0xffff_0000);
        assert_eq!(control_word(&memory, 0x1000), control::ERROR);
        // A write to an item that is not writable.
        dma(&mut device, &memory, 0x1000, control::WRITE, 4, 0x2000);
        assert_eq!(control_word(&memory, 0x1000), control::ERROR);
        // A huge zero fill ends at RAM's end with an error, not a panic.
        dma(
            &mut device,
            &memory,
            0x1000,
            control::READ,
            u32::MAX,
            0x3000,
        );
        assert_eq!(control_word(&memory, 0x1000), control::ERROR);
        // A descriptor outside RAM, odd widths and offsets: ignored.
        device.write(DMA_LOW_OFFSET, &0xffff_fff0u32.to_be_bytes());
        device.write(SELECTOR_OFFSET, &[1]);
        device.write(3, &[1, 2, 3]);
        let mut buf = [0u8; 7];
        device.read(11, &mut buf);
        device.read(2, &mut buf);
    }

    #[test]
    fn writable_files_take_dma_writes_within_their_size() {
        use std::sync::{Arc, Mutex};
        let (mut device, memory) = device();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let hook = Arc::clone(&heard);
        let key = device
            .add_writable_file(
                "etc/ramfb",
                vec![0; 8],
                Box::new(move |bytes| hook.lock().unwrap().push(bytes.to_vec())),
            )
            .unwrap();
        memory
            .write_slice(b"ABCDEFGHIJ", GuestAddress(0x2000))
            .unwrap();
        // Selected and written in one descriptor, as SeaBIOS's ramfb VGA BIOS does.
        let select = (u32::from(key) << 16) | control::SELECT;
        let write = |device: &mut FwCfg, len: u32, from: u64| {
            dma(device, &memory, 0x1000, select | control::WRITE, len, from);
            control_word(&memory, 0x1000)
        };
        assert_eq!(write(&mut device, 8, 0x2000), 0);
        assert_eq!(heard.lock().unwrap().as_slice(), [b"ABCDEFGH".to_vec()]);
        assert_eq!(read_item(&mut device, key, 8), b"ABCDEFGH");
        // After a skip, the rest of it; the directory still says 8 bytes.
        dma(&mut device, &memory, 0x1000, select | control::SKIP, 6, 0);
        dma(&mut device, &memory, 0x1000, control::WRITE, 2, 0x2008);
        assert_eq!(control_word(&memory, 0x1000), 0);
        assert_eq!(read_item(&mut device, key, 8), b"ABCDEFIJ");
        // Past its end, or from outside RAM: refused, the file and the hook untouched.
        assert_eq!(write(&mut device, 9, 0x2000), control::ERROR);
        assert_eq!(write(&mut device, 8, 0xffff_fffc), control::ERROR);
        assert_eq!(read_item(&mut device, key, 8), b"ABCDEFIJ");
        assert_eq!(heard.lock().unwrap().len(), 2);
        let dir = read_item(&mut device, key::FILE_DIR, 4 + 64);
        assert_eq!(&dir[4..8], &8u32.to_be_bytes());
    }
}
