//! Booting a Linux bzImage directly through the kernel's 64-bit boot protocol
//! (Documentation/arch/x86/boot.rst): the protected-mode kernel is loaded at 1 MiB, the zero page
//! (`struct boot_params`) describes RAM, the command line and the initramfs, and the boot vCPU
//! starts at the 64-bit entry point (load address + 0x200) with RSI = the zero page, paging
//! identity-mapped, interrupts off. No firmware runs.
//!
//! Guest-physical layout used here, on top of [`crate::boot`]'s:
//! - [`ZERO_PAGE_ADDR`]: the zero page; [`CMDLINE_ADDR`]: the command line;
//! - `0x9_FC00..0x10_0000`: reserved in the e820 map (EBDA, VGA hole, BIOS area with the ACPI
//!   tables of [`crate::acpi`]);
//! - from 1 MiB: the kernel, then free RAM; the initramfs at the top of low RAM.

use std::fs::File;
use std::path::{Path, PathBuf};

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::{BzImage, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::acpi::{self, AcpiConfig, AcpiError};

/// Guest-physical address of the zero page.
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// Guest-physical address of the kernel command line.
pub const CMDLINE_ADDR: u64 = 0x2_0000;
/// Longest command line accepted (bytes, without the NUL): the limit kernels since 2.6.22
/// announce in `cmdline_size`. A kernel announcing less wins.
pub const CMDLINE_MAX: usize = 2047;
/// Where the protected-mode kernel is loaded (the boot protocol's default `code32_start`).
pub const KERNEL_LOAD_ADDR: u64 = 0x10_0000;
/// Start of the low-memory area reserved in the e820 map (EBDA up to 1 MiB).
pub const EBDA_START: u64 = 0x9_FC00;

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
/// `type_of_loader` 0xff: "undefined" boot loader, what a boot loader without an assigned id uses.
const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// setup_header magic values.
const BOOT_FLAG: u16 = 0xaa55;
const HDRS_MAGIC: u32 = 0x5372_6448; // "HdrS"
/// xloadflags bit 0: the kernel has the 64-bit entry point at load address + 0x200.
const XLF_KERNEL_64: u16 = 1;
/// loadflags bit 0: the protected-mode code is loaded at 1 MiB (a bzImage).
const LOADED_HIGH: u8 = 1;
/// The boot protocol version that introduced `xloadflags` (2.12).
const MIN_PROTOCOL: u16 = 0x020c;

/// A Linux kernel to boot, with its initramfs and command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxBoot {
    /// The bzImage.
    pub kernel: PathBuf,
    /// An initramfs (cpio, compressed or not).
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub cmdline: String,
    /// virtio-mmio devices to describe in the DSDT.
    pub virtio_devices: Vec<acpi::VirtioMmioDevice>,
    /// The GSI of the power button's Generic Event Device, if the VM has one
    /// ([`crate::devices::power_button`]).
    pub power_button_gsi: Option<u32>,
}

/// Errors while placing a Linux kernel in guest RAM.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum LinuxBootError {
    /// cannot open {path}: {source}
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// {path} is not a Linux bzImage ({reason})
    NotABzImage {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// {path} has no 64-bit entry point (boot protocol {version:#x}, xloadflags {xloadflags:#x}): Berth boots 64-bit kernels only
    Not64Bit {
        /// The file.
        path: PathBuf,
        /// Boot protocol version from its header.
        version: u16,
        /// Its xloadflags.
        xloadflags: u16,
    },
    /// loading the kernel {path} into guest RAM failed: {source}
    LoadKernel {
        /// The file.
        path: PathBuf,
        /// What the loader said.
        #[source]
        source: linux_loader::loader::Error,
    },
    /// the kernel command line is {len} bytes long; at most {max} are allowed
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// the kernel command line contains a NUL byte
    CmdlineNul,
    /// the initramfs {path} ({size} bytes) does not fit in guest RAM between the kernel (ends at {kernel_end:#x}) and {limit:#x}
    InitrdTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// First byte after the kernel's memory footprint.
        kernel_end: u64,
        /// Highest address the kernel accepts for the initramfs, or the end of low RAM.
        limit: u64,
    },
    /// reading the initramfs {path} failed: {source}
    ReadInitrd {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// guest RAM ({ram:#x} bytes) is too small for this kernel
    RamTooSmall {
        /// RAM below the MMIO hole.
        ram: u64,
    },
    /// {0}
    Acpi(#[from] AcpiError),
    /// writing boot data into guest RAM failed: {0}
    WriteMemory(#[from] vm_memory::GuestMemoryError),
}

/// Where the boot vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxEntry {
    /// The 64-bit entry point.
    pub rip: u64,
    /// The zero page, passed in RSI.
    pub zero_page: u64,
}

fn not_bzimage(path: &Path, reason: impl Into<String>) -> LinuxBootError {
    LinuxBootError::NotABzImage {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads the setup header of the bzImage at `path` and checks it is one Berth can boot.
fn check_header(path: &Path, file: &mut File) -> Result<(), LinuxBootError> {
    use std::io::{Read, Seek, SeekFrom};
    // The setup header starts at 0x1f1 in the file, as in the zero page.
    let mut header = [0u8; 0x80];
    file.seek(SeekFrom::Start(0x1f1))
        .and_then(|_| file.read_exact(&mut header))
        .map_err(|_| not_bzimage(path, "too short for a setup header"))?;
    let u16_at = |o: usize| u16::from_le_bytes([header[o], header[o + 1]]);
    let u32_at =
        |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
    // Offsets relative to 0x1f1: boot_flag 0x1fe, header 0x202, version 0x206, loadflags 0x211,
    // xloadflags 0x236.
    if u16_at(0x1fe - 0x1f1) != BOOT_FLAG || u32_at(0x202 - 0x1f1) != HDRS_MAGIC {
        return Err(not_bzimage(path, "no boot sector signature or HdrS magic"));
    }
    if header[0x211 - 0x1f1] & LOADED_HIGH == 0 {
        return Err(not_bzimage(path, "a zImage, not a bzImage"));
    }
    let version = u16_at(0x206 - 0x1f1);
    let xloadflags = if version >= MIN_PROTOCOL {
        u16_at(0x236 - 0x1f1)
    } else {
        0
    };
    if xloadflags & XLF_KERNEL_64 == 0 {
        return Err(LinuxBootError::Not64Bit {
            path: path.to_owned(),
            version,
            xloadflags,
        });
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| not_bzimage(path, e.to_string()))?;
    Ok(())
}

/// The e820 map for `mem`: low RAM up to the EBDA, the reserved BIOS area, RAM from 1 MiB to
/// the MMIO hole, and RAM above 4 GiB. The hole itself is simply absent.
pub fn e820_map(mem: &GuestMemoryMmap) -> Vec<boot_e820_entry> {
    let mut map = vec![
        boot_e820_entry {
            addr: 0,
            size: EBDA_START,
            r#type: E820_RAM,
        },
        boot_e820_entry {
            addr: EBDA_START,
            size: KERNEL_LOAD_ADDR - EBDA_START,
            r#type: E820_RESERVED,
        },
    ];
    for region in mem.iter() {
        let start = region.start_addr().0.max(KERNEL_LOAD_ADDR);
        let end = region.start_addr().0 + region.len();
        if end > start {
            map.push(boot_e820_entry {
                addr: start,
                size: end - start,
                r#type: E820_RAM,
            });
        }
    }
    map
}

/// End (exclusive) of the RAM region that starts at 0.
fn low_ram_end(mem: &GuestMemoryMmap) -> u64 {
    mem.iter()
        .next()
        .map(|r| r.start_addr().0 + r.len())
        .unwrap_or(0)
}

/// Where a PC's BIOS has its reset vector (F000:FFF0), which Linux jumps to in real mode when it
/// reboots "through the BIOS".
pub const RESET_VECTOR: u64 = 0xF_FFF0;

/// What a boot without firmware puts at [`RESET_VECTOR`]: `mov al, 0xfe; out 0x64, al; hlt`,
/// the i8042's reset pulse, which ends the VM with a reset as a BIOS's restart would.
///
/// Why: on a hardware-reduced ACPI machine without EFI, Linux's default reboot is `BOOT_EFI`
/// (`efi_reboot_required`), which falls back to `BOOT_BIOS` before anything else: a jump to
/// the reset vector. With nothing there the guest ran through zeroed memory for ever instead
/// of rebooting (`reboot=a` or `reboot=k` worked; the default did not).
const RESET_VECTOR_STUB: [u8; 5] = [0xb0, 0xfe, 0xe6, 0x64, 0xf4];

/// Checks the command line against `max` (the kernel's own limit or [`CMDLINE_MAX`]).
pub fn check_cmdline(cmdline: &str, max: usize) -> Result<(), LinuxBootError> {
    if cmdline.len() > max {
        return Err(LinuxBootError::CmdlineTooLong {
            len: cmdline.len(),
            max,
        });
    }
    if cmdline.contains('\0') {
        return Err(LinuxBootError::CmdlineNul);
    }
    Ok(())
}

/// Highest page-aligned address where `size` bytes fit below `limit` and above `floor`.
pub fn initrd_address(size: u64, floor: u64, limit: u64) -> Option<u64> {
    let start = limit.checked_sub(size)? & !0xfff;
    (start >= floor).then_some(start)
}

/// Loads the kernel, initramfs, command line, zero page and ACPI tables for `boot` on a VM with
/// `vcpus` vCPUs. The page tables and GDT come from [`crate::long_mode`].
pub fn load(
    mem: &GuestMemoryMmap,
    boot: &LinuxBoot,
    vcpus: u32,
) -> Result<LinuxEntry, LinuxBootError> {
    let low_end = low_ram_end(mem);
    if low_end < 16 << 20 {
        return Err(LinuxBootError::RamTooSmall { ram: low_end });
    }
    let mut kernel = File::open(&boot.kernel).map_err(|source| LinuxBootError::Open {
        path: boot.kernel.clone(),
        source,
    })?;
    check_header(&boot.kernel, &mut kernel)?;
    // The command line is checked before anything is written.
    check_cmdline(&boot.cmdline, CMDLINE_MAX)?;
    let initrd = match &boot.initrd {
        Some(path) => {
            let size = std::fs::metadata(path)
                .map_err(|source| LinuxBootError::Open {
                    path: path.clone(),
                    source,
                })?
                .len();
            Some((path, size))
        }
        None => None,
    };

    let loaded = BzImage::load(
        mem,
        Some(GuestAddress(KERNEL_LOAD_ADDR)),
        &mut kernel,
        Some(GuestAddress(KERNEL_LOAD_ADDR)),
    )
    .map_err(|source| match source {
        linux_loader::loader::Error::Bzimage(e) => not_bzimage(&boot.kernel, e.to_string()),
        source => LinuxBootError::LoadKernel {
            path: boot.kernel.clone(),
            source,
        },
    })?;
    let Some(mut hdr) = loaded.setup_header else {
        return Err(not_bzimage(&boot.kernel, "no setup header"));
    };
    let cmdline_max = match hdr.cmdline_size as usize {
        0 => 255,
        n => n.min(CMDLINE_MAX),
    };
    check_cmdline(&boot.cmdline, cmdline_max)?;

    // The kernel decompresses itself in place: its footprint is init_size from the load address.
    let kernel_end =
        KERNEL_LOAD_ADDR + u64::from(hdr.init_size).max(loaded.kernel_end - KERNEL_LOAD_ADDR);
    if kernel_end > low_end {
        return Err(LinuxBootError::RamTooSmall { ram: low_end });
    }

    let mut params = boot_params::default();
    if let Some((path, size)) = initrd {
        // initrd_addr_max is the highest address the last byte may have.
        let limit = low_end.min(u64::from(hdr.initrd_addr_max) + 1);
        let too_large = || LinuxBootError::InitrdTooLarge {
            path: path.clone(),
            size,
            kernel_end,
            limit,
        };
        let addr = initrd_address(size, kernel_end, limit).ok_or_else(too_large)?;
        let mut file = File::open(path).map_err(|source| LinuxBootError::Open {
            path: path.clone(),
            source,
        })?;
        mem.read_exact_volatile_from(GuestAddress(addr), &mut file, size as usize)
            .map_err(|e| LinuxBootError::ReadInitrd {
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        hdr.ramdisk_image = addr as u32;
        hdr.ramdisk_size = size as u32;
        params.ext_ramdisk_image = (addr >> 32) as u32;
        params.ext_ramdisk_size = (size >> 32) as u32;
    }

    let mut cmdline = boot.cmdline.clone().into_bytes();
    cmdline.push(0);
    mem.write_slice(&cmdline, GuestAddress(CMDLINE_ADDR))?;

    let tables = acpi::build_tables(&AcpiConfig {
        vcpus,
        virtio_devices: boot.virtio_devices.clone(),
        power_button_gsi: boot.power_button_gsi,
    })?;
    tables.write(mem)?;
    mem.write_slice(&RESET_VECTOR_STUB, GuestAddress(RESET_VECTOR))?;

    hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
    hdr.cmdline_size = cmdline_max as u32;
    // No video mode switch: "normal" text mode.
    hdr.vid_mode = 0xffff;
    params.hdr = hdr;
    params.acpi_rsdp_addr = tables.rsdp_addr();
    let e820 = e820_map(mem);
    for (slot, entry) in params.e820_table.iter_mut().zip(&e820) {
        *slot = *entry;
    }
    params.e820_entries = e820.len() as u8;
    mem.write_obj(params, GuestAddress(ZERO_PAGE_ADDR))?;

    Ok(LinuxEntry {
        rip: loaded.kernel_load.0 + 0x200,
        zero_page: ZERO_PAGE_ADDR,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MMIO_GAP_END, MMIO_GAP_START, create_guest_memory};
    use std::io::Write;

    /// A minimal file that passes as a 64-bit bzImage: one setup sector plus a payload.
    fn fake_bzimage(dir: &Path, payload: usize) -> PathBuf {
        let mut image = vec![0u8; 1024 + payload];
        image[0x1f1] = 1; // setup_sects
        image[0x1fe..0x200].copy_from_slice(&BOOT_FLAG.to_le_bytes());
        image[0x202..0x206].copy_from_slice(&HDRS_MAGIC.to_le_bytes());
        image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        image[0x211] = LOADED_HIGH;
        image[0x214..0x218].copy_from_slice(&(KERNEL_LOAD_ADDR as u32).to_le_bytes());
        image[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
        image[0x236..0x238].copy_from_slice(&XLF_KERNEL_64.to_le_bytes());
        image[0x238..0x23c].copy_from_slice(&2048u32.to_le_bytes()); // cmdline_size
        image[0x260..0x264].copy_from_slice(&(4u32 << 20).to_le_bytes()); // init_size
        for (i, b) in image[1024..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let path = dir.join("bzImage");
        std::fs::write(&path, image).unwrap();
        path
    }

    fn boot(kernel: PathBuf, initrd: Option<PathBuf>, cmdline: &str) -> LinuxBoot {
        LinuxBoot {
            kernel,
            initrd,
            cmdline: cmdline.into(),
            virtio_devices: vec![],
            power_button_gsi: None,
        }
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "berth-linux-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn zero_page_describes_kernel_initrd_cmdline_and_acpi() {
        let dir = tempdir();
        let kernel = fake_bzimage(&dir, 4096);
        let initrd = dir.join("initrd");
        std::fs::File::create(&initrd)
            .unwrap()
            .write_all(&[0xab; 10_000])
            .unwrap();
        let mem = create_guest_memory(64 << 20).unwrap();
        let entry = load(&mem, &boot(kernel, Some(initrd), "console=ttyS0 quiet"), 2).unwrap();
        assert_eq!(entry.rip, KERNEL_LOAD_ADDR + 0x200);
        assert_eq!(entry.zero_page, ZERO_PAGE_ADDR);
        // A reboot through the BIOS's reset vector reaches the i8042's reset pulse.
        let mut stub = [0u8; 5];
        mem.read_slice(&mut stub, GuestAddress(RESET_VECTOR))
            .unwrap();
        assert_eq!(stub, RESET_VECTOR_STUB);

        let params: boot_params = mem.read_obj(GuestAddress(ZERO_PAGE_ADDR)).unwrap();
        let hdr = params.hdr;
        assert_eq!(hdr.type_of_loader, 0xff);
        assert_eq!({ hdr.boot_flag }, BOOT_FLAG);
        assert_eq!({ hdr.cmd_line_ptr }, CMDLINE_ADDR as u32);
        let mut cmdline = [0u8; 20];
        mem.read_slice(&mut cmdline, GuestAddress(CMDLINE_ADDR))
            .unwrap();
        assert_eq!(&cmdline, b"console=ttyS0 quiet\0");
        // The initramfs ends at the top of RAM, page aligned, above the kernel.
        let (image, size) = (hdr.ramdisk_image as u64, hdr.ramdisk_size as u64);
        assert_eq!(size, 10_000);
        assert_eq!(image % 4096, 0);
        assert!(image + size <= 64 << 20 && image + size > (64 << 20) - 4096);
        assert!(image >= KERNEL_LOAD_ADDR + (4 << 20));
        let mut byte = [0u8; 1];
        mem.read_slice(&mut byte, GuestAddress(image + 9_999))
            .unwrap();
        assert_eq!(byte, [0xab]);
        assert_eq!({ params.acpi_rsdp_addr }, acpi::ACPI_TABLES_START);
        let mut sig = [0u8; 8];
        mem.read_slice(&mut sig, GuestAddress(acpi::ACPI_TABLES_START))
            .unwrap();
        assert_eq!(&sig, b"RSD PTR ");
        // The protected-mode kernel (after the setup sectors) is at 1 MiB.
        let mut first = [0u8; 4];
        mem.read_slice(&mut first, GuestAddress(KERNEL_LOAD_ADDR))
            .unwrap();
        assert_eq!(first, [0, 1, 2, 3]);
        assert_eq!(params.e820_entries, 3);
    }

    #[test]
    fn e820_reserves_the_bios_area_and_skips_the_mmio_hole() {
        let mem = create_guest_memory(MMIO_GAP_START + (64 << 20)).unwrap();
        let map = e820_map(&mem);
        let entries: Vec<(u64, u64, u32)> =
            map.iter().map(|e| (e.addr, e.size, e.r#type)).collect();
        assert_eq!(
            entries,
            vec![
                (0, EBDA_START, E820_RAM),
                (EBDA_START, 0x10_0000 - EBDA_START, E820_RESERVED),
                (0x10_0000, MMIO_GAP_START - 0x10_0000, E820_RAM),
                (MMIO_GAP_END, 64 << 20, E820_RAM),
            ]
        );
        // The ACPI tables lie in the reserved range.
        const { assert!(acpi::ACPI_TABLES_START >= EBDA_START && acpi::ACPI_TABLES_END <= 0x10_0000) };
    }

    #[test]
    fn a_file_that_is_not_a_bzimage_is_refused() {
        let dir = tempdir();
        let path = dir.join("not-a-kernel");
        std::fs::write(&path, vec![0x7fu8; 4096]).unwrap();
        let mem = create_guest_memory(64 << 20).unwrap();
        let err = load(&mem, &boot(path, None, ""), 1).unwrap_err();
        assert!(matches!(err, LinuxBootError::NotABzImage { .. }), "{err}");
        assert!(err.to_string().contains("is not a Linux bzImage"), "{err}");
        std::fs::write(dir.join("tiny"), b"MZ").unwrap();
        let err = load(&mem, &boot(dir.join("tiny"), None, ""), 1).unwrap_err();
        assert!(matches!(err, LinuxBootError::NotABzImage { .. }), "{err}");
    }

    #[test]
    fn an_initramfs_that_does_not_fit_is_refused() {
        let dir = tempdir();
        let kernel = fake_bzimage(&dir, 4096);
        let initrd = dir.join("big-initrd");
        // Sparse: 40 MiB in a 32 MiB guest whose kernel takes 1 + 4 MiB.
        std::fs::File::create(&initrd)
            .unwrap()
            .set_len(40 << 20)
            .unwrap();
        let mem = create_guest_memory(32 << 20).unwrap();
        let err = load(&mem, &boot(kernel, Some(initrd), ""), 1).unwrap_err();
        assert!(
            matches!(err, LinuxBootError::InitrdTooLarge { size, .. } if size == 40 << 20),
            "{err}"
        );
        assert!(err.to_string().contains("does not fit in guest RAM"));
    }

    #[test]
    fn a_command_line_that_is_too_long_is_refused() {
        let dir = tempdir();
        let kernel = fake_bzimage(&dir, 4096);
        let mem = create_guest_memory(32 << 20).unwrap();
        let long = "x".repeat(CMDLINE_MAX + 1);
        let err = load(&mem, &boot(kernel, None, &long), 1).unwrap_err();
        assert!(
            matches!(
                err,
                LinuxBootError::CmdlineTooLong {
                    len: 2048,
                    max: 2047
                }
            ),
            "{err}"
        );
        assert!(check_cmdline("a\0b", 100).is_err());
    }

    #[test]
    fn initrd_goes_as_high_as_allowed() {
        assert_eq!(
            initrd_address(0x1000, 0x10_0000, 0x200_0000),
            Some(0x1ff_f000)
        );
        assert_eq!(
            initrd_address(0x1001, 0x10_0000, 0x200_0000),
            Some(0x1ff_e000)
        );
        assert_eq!(initrd_address(0x200_0000, 0x10_0000, 0x200_0000), None);
    }
}
