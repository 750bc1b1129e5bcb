//! What a VM boots and how it is placed in guest RAM before the first instruction.
//!
//! Guest-physical layout of the first MiB (all boot sources share it):
//! - `0x500`: GDT, `0x9000..0xF000`: identity page tables ([`crate::long_mode`]);
//! - `0x1_0000..0x8_0000`: boot stacks, one [`BOOT_STACK_SIZE`] stack per vCPU growing down from
//!   [`BOOT_STACKS_TOP`];
//! - from [`FLAT_IMAGE_MIN_ADDR`] (1 MiB): the image.

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::firmware::{self, FirmwareBoot, FirmwareError, PreparedFirmware};
use crate::linux::{self, LinuxBoot, LinuxBootError};
use crate::long_mode::IDENTITY_MAP_GIB;

/// Top (exclusive) of the boot stacks; vCPU `i`'s stack pointer starts at
/// `BOOT_STACKS_TOP - i * BOOT_STACK_SIZE`.
pub const BOOT_STACKS_TOP: u64 = 0x8_0000;
/// Size of each vCPU's boot stack.
pub const BOOT_STACK_SIZE: u64 = 0x4000;
/// Lowest address a flat image may be loaded at: below it live the VMM's boot structures.
pub const FLAT_IMAGE_MIN_ADDR: u64 = 0x10_0000;
/// How many vCPUs a flat boot can start (how many boot stacks fit above the page tables).
pub const FLAT_MAX_VCPUS: u32 = ((BOOT_STACKS_TOP - 0x1_0000) / BOOT_STACK_SIZE) as u32;

/// What the VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// A flat binary copied to `load_addr` and entered at `entry` in 64-bit mode on every vCPU at
    /// once, with `rdi` = the vCPU index, `rsi` = the number of vCPUs and `rsp` = that vCPU's
    /// boot stack. Paging identity-maps the first 4 GiB; interrupts are off and there is no IDT.
    Flat {
        /// The bytes of the image.
        image: Vec<u8>,
        /// Guest-physical address the first byte goes to.
        load_addr: u64,
        /// Guest-physical (= virtual) address of the first instruction.
        entry: u64,
    },
    /// A Linux bzImage entered through the 64-bit boot protocol on vCPU 0 only; the other vCPUs
    /// wait for INIT/SIPI from the guest. See [`crate::linux`].
    Linux(LinuxBoot),
    /// Firmware (SeaBIOS) started from the vCPUs' reset state, which boots from the disks. See
    /// [`crate::firmware`].
    Firmware(FirmwareBoot),
}

/// Errors while placing a boot source in guest RAM.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum BootError {
    /// the boot image is empty
    EmptyImage,
    /// load address {load_addr:#x} is below {min:#x}, where the VMM's boot structures live
    OverlapsBootStructures {
        /// Requested load address.
        load_addr: u64,
        /// Lowest allowed load address.
        min: u64,
    },
    /// load address {load_addr:#x} is outside guest RAM (RAM ends at {ram_end:#x})
    LoadAddressOutsideRam {
        /// Requested load address.
        load_addr: u64,
        /// First address past the RAM region holding low memory.
        ram_end: u64,
    },
    /// the boot image of {len} bytes does not fit in guest RAM at {load_addr:#x}: {available} bytes are available there
    ImageTooLarge {
        /// Image size.
        len: u64,
        /// Requested load address.
        load_addr: u64,
        /// Bytes of RAM from the load address to the end of its region.
        available: u64,
    },
    /// the image must lie below 4 GiB, the part of memory the boot page tables map
    ImageNotMapped,
    /// entry point {entry:#x} is not inside the image loaded at {load_addr:#x}..{end:#x}
    EntryOutsideImage {
        /// Requested entry point.
        entry: u64,
        /// Requested load address.
        load_addr: u64,
        /// End (exclusive) of the image.
        end: u64,
    },
    /// a flat boot starts at most {max} vCPUs, {requested} were asked for
    TooManyVcpus {
        /// Requested vCPU count.
        requested: u32,
        /// Maximum.
        max: u32,
    },
    /// writing the boot image or boot tables into guest RAM failed: {0}
    WriteMemory(#[from] vm_memory::GuestMemoryError),
    /// {0}
    Linux(#[from] LinuxBootError),
    /// {0}
    Firmware(#[from] FirmwareError),
}

/// The first bytes of a Berth flat image file: what `berth-vmm --kernel` takes besides a bzImage.
///
/// A flat image file is a 24-byte header (this magic, the load address and the entry point as
/// little-endian u64) followed by the image. It exists for test guests (the probe guest built by
/// the test suite), which run on KVMs that cannot run a stock kernel.
pub const FLAT_IMAGE_MAGIC: &[u8; 8] = b"BERTHFLT";
const FLAT_HEADER_LEN: usize = 24;

/// Wraps `image` in the flat image file format (see [`FLAT_IMAGE_MAGIC`]).
pub fn flat_image_file(image: &[u8], load_addr: u64, entry: u64) -> Vec<u8> {
    let mut file = Vec::with_capacity(FLAT_HEADER_LEN + image.len());
    file.extend_from_slice(FLAT_IMAGE_MAGIC);
    file.extend_from_slice(&load_addr.to_le_bytes());
    file.extend_from_slice(&entry.to_le_bytes());
    file.extend_from_slice(image);
    file
}

/// Reads a flat image file: `None` when `file` does not start with [`FLAT_IMAGE_MAGIC`] (it is
/// then some other format, such as a bzImage). Load address and entry are checked by [`load`].
pub fn parse_flat_image_file(file: &[u8]) -> Option<BootSource> {
    let header = file.get(..FLAT_HEADER_LEN)?;
    if &header[..8] != FLAT_IMAGE_MAGIC {
        return None;
    }
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    Some(BootSource::Flat {
        image: file[FLAT_HEADER_LEN..].to_vec(),
        load_addr: word(8),
        entry: word(16),
    })
}

/// How the vCPUs start once the boot source is in memory.
#[derive(Debug)]
pub enum Entry {
    /// Every vCPU enters 64-bit mode at `rip`.
    Flat {
        /// First instruction.
        rip: u64,
    },
    /// The boot vCPU enters 64-bit mode at `rip` with RSI = the zero page; the others wait for
    /// INIT/SIPI.
    Linux {
        /// First instruction.
        rip: u64,
        /// The zero page's address.
        zero_page: u64,
    },
    /// The vCPUs stay in their reset state; the firmware's image and its fw_cfg device are to
    /// be put on the VM.
    Firmware(PreparedFirmware),
}

/// The initial stack pointer of vCPU `index`.
pub fn boot_stack_pointer(index: u32) -> u64 {
    BOOT_STACKS_TOP - u64::from(index) * BOOT_STACK_SIZE
}

/// Checks `source` against guest RAM and copies it in. Nothing is written if a check fails.
pub fn load(mem: &GuestMemoryMmap, source: &BootSource, vcpus: u32) -> Result<Entry, BootError> {
    match source {
        BootSource::Flat {
            image,
            load_addr,
            entry,
        } => {
            check_flat(mem, image, *load_addr, *entry, vcpus)?;
            mem.write_slice(image, GuestAddress(*load_addr))?;
            Ok(Entry::Flat { rip: *entry })
        }
        BootSource::Linux(boot) => {
            let entry = linux::load(mem, boot, vcpus)?;
            Ok(Entry::Linux {
                rip: entry.rip,
                zero_page: entry.zero_page,
            })
        }
        BootSource::Firmware(boot) => Ok(Entry::Firmware(firmware::prepare(mem, boot, vcpus)?)),
    }
}

fn check_flat(
    mem: &GuestMemoryMmap,
    image: &[u8],
    load_addr: u64,
    entry: u64,
    vcpus: u32,
) -> Result<(), BootError> {
    if vcpus > FLAT_MAX_VCPUS {
        return Err(BootError::TooManyVcpus {
            requested: vcpus,
            max: FLAT_MAX_VCPUS,
        });
    }
    if image.is_empty() {
        return Err(BootError::EmptyImage);
    }
    if load_addr < FLAT_IMAGE_MIN_ADDR {
        return Err(BootError::OverlapsBootStructures {
            load_addr,
            min: FLAT_IMAGE_MIN_ADDR,
        });
    }
    let len = image.len() as u64;
    let region_end = |r: &vm_memory::GuestRegionMmap| {
        use vm_memory::GuestMemoryRegion;
        r.start_addr().0 + r.len()
    };
    let Some(region) = mem.find_region(GuestAddress(load_addr)) else {
        let ram_end = mem.iter().next().map(region_end).unwrap_or(0);
        return Err(BootError::LoadAddressOutsideRam { load_addr, ram_end });
    };
    // The image must sit in one region: a flat image cannot straddle the MMIO hole.
    let available = region_end(region) - load_addr;
    if len > available {
        return Err(BootError::ImageTooLarge {
            len,
            load_addr,
            available,
        });
    }
    let end = load_addr + len;
    if end > IDENTITY_MAP_GIB << 30 {
        return Err(BootError::ImageNotMapped);
    }
    if !(load_addr..end).contains(&entry) {
        return Err(BootError::EntryOutsideImage {
            entry,
            load_addr,
            end,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::create_guest_memory;

    fn flat(image: Vec<u8>, load_addr: u64, entry: u64) -> BootSource {
        BootSource::Flat {
            image,
            load_addr,
            entry,
        }
    }

    #[test]
    fn flat_image_lands_at_its_load_address() {
        let mem = create_guest_memory(4 << 20).unwrap();
        let entry = load(&mem, &flat(vec![0xf4, 0x90], 0x20_0000, 0x20_0001), 1).unwrap();
        assert!(matches!(entry, Entry::Flat { rip: 0x20_0001 }));
        let mut buf = [0u8; 2];
        mem.read_slice(&mut buf, GuestAddress(0x20_0000)).unwrap();
        assert_eq!(buf, [0xf4, 0x90]);
    }

    #[test]
    fn image_larger_than_ram_is_refused() {
        let mem = create_guest_memory(4 << 20).unwrap();
        let err = load(&mem, &flat(vec![0; 8 << 20], 0x10_0000, 0x10_0000), 1).unwrap_err();
        assert!(
            matches!(
                err,
                BootError::ImageTooLarge {
                    len: 0x80_0000,
                    load_addr: 0x10_0000,
                    available: 0x30_0000
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("does not fit in guest RAM"));
    }

    #[test]
    fn load_address_outside_ram_is_refused() {
        let mem = create_guest_memory(4 << 20).unwrap();
        let err = load(&mem, &flat(vec![0x90], 0x80_0000, 0x80_0000), 1).unwrap_err();
        assert!(
            matches!(
                err,
                BootError::LoadAddressOutsideRam {
                    load_addr: 0x80_0000,
                    ram_end: 0x40_0000
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "load address 0x800000 is outside guest RAM (RAM ends at 0x400000)"
        );
    }

    #[test]
    fn images_over_boot_structures_or_with_stray_entry_are_refused() {
        let mem = create_guest_memory(4 << 20).unwrap();
        assert!(matches!(
            load(&mem, &flat(vec![0x90], 0x9000, 0x9000), 1),
            Err(BootError::OverlapsBootStructures { .. })
        ));
        assert!(matches!(
            load(&mem, &flat(vec![0x90; 16], 0x10_0000, 0x10_0010), 1),
            Err(BootError::EntryOutsideImage { .. })
        ));
        assert!(matches!(
            load(&mem, &flat(vec![], 0x10_0000, 0x10_0000), 1),
            Err(BootError::EmptyImage)
        ));
        assert!(matches!(
            load(&mem, &flat(vec![0x90], 0x10_0000, 0x10_0000), 64),
            Err(BootError::TooManyVcpus { .. })
        ));
    }

    #[test]
    fn flat_image_files_round_trip_and_other_files_are_not_flat() {
        let file = flat_image_file(&[0xf4, 0x90], 0x10_0000, 0x10_0001);
        assert_eq!(
            parse_flat_image_file(&file),
            Some(flat(vec![0xf4, 0x90], 0x10_0000, 0x10_0001))
        );
        assert_eq!(parse_flat_image_file(b"BERTHFLT short"), None);
        assert_eq!(parse_flat_image_file(&[0u8; 64]), None);
    }

    #[test]
    fn boot_stacks_stay_above_the_page_tables() {
        assert!(
            boot_stack_pointer(FLAT_MAX_VCPUS - 1) - BOOT_STACK_SIZE
                >= crate::long_mode::BOOT_TABLES_END
        );
    }
}
