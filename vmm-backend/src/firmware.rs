//! Booting through firmware: SeaBIOS's microvm build (Debian's `seabios` package,
//! `/usr/share/seabios/bios-microvm.bin`) starts the VM as a PC's BIOS would and boots what is
//! on its disks (GRUB, ISOLINUX, any MBR boot loader), which is how an installed system starts.
//!
//! What the firmware needs from the VMM, as QEMU's microvm gives it:
//! - its image at the top of the 32-bit address space (read-only, where the vCPU's reset state
//!   fetches its first instruction, 16 bytes below 4 GiB) and its last 128 KiB copied below
//!   1 MiB, where its far jump lands and where it runs from (writable RAM, as microvm's
//!   `isapc_ram_fw`);
//! - the vCPUs left in their reset state (real mode, CS base 0xFFFF0000, IP 0xFFF0);
//! - fw_cfg ([`crate::devices::fw_cfg`]) with the RAM map (`etc/e820`), the vCPU count, the
//!   ACPI tables to place and link ([`crate::acpi::build_firmware_tables`]; the firmware finds
//!   the virtio-mmio disks in their DSDT), the serial console it talks through when there is no
//!   VGA (`etc/sercon-port`), and which disk to boot first (`bootorder`);
//! - for a VM with a screen, SeaBIOS's VGA BIOS for QEMU's ramfb as an option ROM, and the
//!   writable `etc/ramfb` it tells where its framebuffer is ([`crate::devices::ramfb`]): the
//!   firmware's and the boot loaders' text then reaches the screen as pixels, and the serial
//!   console still has it (SeaBIOS's console then writes to both).
//!
//! The image's bytes are checked only for size: it is the user's chosen firmware.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_display::gpu::GuestFramebuffer;

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::acpi::{self, AcpiConfig, AcpiError, VirtioMmioDevice};
use crate::devices::fw_cfg::{self, FwCfg, FwCfgError};
use crate::devices::legacy::serial::COM1_PORT;
use crate::devices::ramfb;

/// Where the firmware image ends: the 4 GiB boundary, so the reset vector (16 bytes below)
/// is in it.
pub const FIRMWARE_TOP: u64 = 1 << 32;
/// How much of the image's end is also copied below 1 MiB (0xE0000-0xFFFFF).
pub const LOW_COPY_LEN: u64 = 128 << 10;
/// Where a firmware may be at most this large: it must stay clear of the IOAPIC and LAPIC
/// windows (0xFEC00000-0xFEEFFFFF) below its top.
pub const FIRMWARE_MAX_LEN: u64 = 16 << 20;
/// The granule firmware images come in (QEMU refuses other sizes too).
const FIRMWARE_GRANULE: u64 = 64 << 10;

/// The pages KVM takes for itself below the firmware, which the RAM map must mark reserved:
/// the identity-mapped page table KVM keeps for real mode on Intel (`0xFFFBC000`) and its
/// three TSS pages ([`crate::vm::KVM_TSS_ADDR`]).
const KVM_RESERVED: (u64, u64) = (0xfffb_c000, 4 << 12);

/// e820 entry types.
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;

/// What [`crate::BootSource::Firmware`] boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareBoot {
    /// The firmware image (SeaBIOS's `bios-microvm.bin`).
    pub firmware: PathBuf,
    /// The virtio-mmio devices, for the DSDT; filled in once the devices are placed.
    pub virtio_devices: Vec<VirtioMmioDevice>,
    /// The power button's GSI, for the DSDT.
    pub power_button_gsi: Option<u32>,
    /// What to boot first; `None` leaves the firmware's own order (the disks in the order
    /// they were found, then CD drives).
    pub boot_first: Option<BootDevice>,
    /// The VM's screen, for a VM that has one.
    pub screen: Option<FirmwareScreen>,
}

/// A device the firmware can boot from, by its virtio-mmio transport's base address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDevice {
    /// A virtio-blk disk.
    Disk { base: u32 },
    /// The CD drive: target 0, LUN 0 of a virtio-scsi controller.
    Cdrom { base: u32 },
}

/// What the firmware draws its screen with, and who hears where.
#[derive(Clone)]
pub struct FirmwareScreen {
    /// SeaBIOS's VGA BIOS for ramfb (Debian's `vgabios-ramfb.bin`).
    pub vga_bios: PathBuf,
    /// Told each framebuffer the firmware sets up (the display shows it).
    pub shown: Arc<dyn Fn(GuestFramebuffer) + Send + Sync>,
}

impl std::fmt::Debug for FirmwareScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirmwareScreen")
            .field("vga_bios", &self.vga_bios)
            .finish_non_exhaustive()
    }
}

impl PartialEq for FirmwareScreen {
    fn eq(&self, other: &Self) -> bool {
        self.vga_bios == other.vga_bios && Arc::ptr_eq(&self.shown, &other.shown)
    }
}

impl Eq for FirmwareScreen {}

/// Errors while preparing a firmware boot.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum FirmwareError {
    /// cannot read the firmware {path}: {source}
    Read {
        /// The image's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// the firmware {path} is {len} bytes: a firmware image is a multiple of 64 KiB, at most 16 MiB
    BadSize {
        /// The image's path.
        path: PathBuf,
        /// Its size.
        len: u64,
    },
    /// cannot read the VGA BIOS {path}: {source}
    ReadVgaBios {
        /// The VGA BIOS's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// the firmware's ACPI tables: {0}
    Acpi(#[from] AcpiError),
    /// the firmware configuration: {0}
    FwCfg(#[from] FwCfgError),
    /// writing the firmware into guest RAM failed: {0}
    WriteMemory(#[from] vm_memory::GuestMemoryError),
}

/// A firmware boot ready to start: the image for the read-only slot below 4 GiB, and the fw_cfg
/// device describing the machine.
#[derive(Debug)]
pub struct PreparedFirmware {
    /// Where the image's read-only mapping starts (`FIRMWARE_TOP - image.len()`).
    pub rom_base: u64,
    /// The image.
    pub image: Vec<u8>,
    /// The machine's description, for the port-I/O bus at [`fw_cfg::FW_CFG_PORT`].
    pub fw_cfg: FwCfg,
}

/// Reads the image, copies its end below 1 MiB, and describes the machine for it.
pub fn prepare(
    memory: &GuestMemoryMmap,
    boot: &FirmwareBoot,
    vcpus: u32,
) -> Result<PreparedFirmware, FirmwareError> {
    let image = read_image(&boot.firmware)?;
    let len = image.len() as u64;
    let low = LOW_COPY_LEN.min(len);
    let tail = &image[(len - low) as usize..];
    memory.write_slice(tail, GuestAddress(0x10_0000 - low))?;

    let mut device = FwCfg::new(memory.clone());
    let cpus = u16::try_from(vcpus)
        .unwrap_or(u16::MAX)
        .to_le_bytes()
        .to_vec();
    device.set_item(fw_cfg::key::NB_CPUS, cpus.clone())?;
    device.set_item(fw_cfg::key::MAX_CPUS, cpus)?;
    device.set_item(fw_cfg::key::NOGRAPHIC, 0u16.to_le_bytes().to_vec())?;
    device.set_item(fw_cfg::key::BOOT_MENU, 0u16.to_le_bytes().to_vec())?;
    device.add_file("etc/e820", e820(memory))?;
    let tables = acpi::build_firmware_tables(&AcpiConfig {
        vcpus,
        virtio_devices: boot.virtio_devices.clone(),
        power_button_gsi: boot.power_button_gsi,
    })?;
    device.add_file(acpi::FW_CFG_RSDP_FILE, tables.rsdp)?;
    device.add_file(acpi::FW_CFG_TABLES_FILE, tables.tables)?;
    device.add_file(acpi::FW_CFG_LOADER_FILE, tables.loader)?;
    // The firmware's console, and the boot loaders' menus, go to COM1, Berth's serial console;
    // with a VGA BIOS too (SeaBIOS's "split mode"), to the screen as well.
    device.add_file("etc/sercon-port", COM1_PORT.to_le_bytes().to_vec())?;
    if let Some(screen) = &boot.screen {
        let vga_bios =
            std::fs::read(&screen.vga_bios).map_err(|source| FirmwareError::ReadVgaBios {
                path: screen.vga_bios.clone(),
                source,
            })?;
        device.add_file(ramfb::VGA_BIOS_FILE, vga_bios)?;
        let shown = Arc::clone(&screen.shown);
        device.add_writable_file(
            ramfb::RAMFB_FILE,
            vec![0; ramfb::CONFIG_LEN],
            Box::new(move |config| match ramfb::parse(config) {
                Ok(framebuffer) => shown(framebuffer),
                Err(e) => log::warn!("{e}"),
            }),
        )?;
    }
    // With nothing bootable the firmware says so and waits, rather than resetting every
    // minute (a reset would start the VM again and again).
    device.add_file("etc/boot-fail-wait", u32::MAX.to_le_bytes().to_vec())?;
    if let Some(first) = boot.boot_first {
        device.add_file("bootorder", boot_order(first).into_bytes())?;
    }
    Ok(PreparedFirmware {
        rom_base: FIRMWARE_TOP - len,
        image,
        fw_cfg: device,
    })
}

fn read_image(path: &Path) -> Result<Vec<u8>, FirmwareError> {
    let read = |source| FirmwareError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len == 0 || len % FIRMWARE_GRANULE != 0 || len > FIRMWARE_MAX_LEN {
        return Err(FirmwareError::BadSize {
            path: path.to_owned(),
            len,
        });
    }
    std::fs::read(path).map_err(read)
}

/// The RAM map: every RAM region, and the pages KVM keeps below the firmware. (The firmware
/// reserves its own areas, low and high, itself.)
fn e820(memory: &GuestMemoryMmap) -> Vec<u8> {
    let mut entries: Vec<(u64, u64, u32)> = memory
        .iter()
        .map(|region| (region.start_addr().0, region.len(), E820_RAM))
        .collect();
    entries.push((KVM_RESERVED.0, KVM_RESERVED.1, E820_RESERVED));
    let mut bytes = Vec::with_capacity(entries.len() * 20);
    for (addr, len, kind) in entries {
        bytes.extend_from_slice(&addr.to_le_bytes());
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&kind.to_le_bytes());
    }
    bytes
}

/// SeaBIOS's boot order line for `device`, in QEMU's device path form. SeaBIOS matches a
/// virtio-blk disk by `/virtio-mmio@<16 hex digits>/*` (`bootprio_find_mmio_device`) and a
/// virtio-scsi LUN by `/virtio-mmio@<16 hex digits>/*@0/*@<target>,<lun>`
/// (`bootprio_find_scsi_mmio_device`); devices the list does not name come after it.
fn boot_order(device: BootDevice) -> String {
    match device {
        BootDevice::Disk { base } => format!("/virtio-mmio@{base:016x}/disk@0\n"),
        BootDevice::Cdrom { base } => format!("/virtio-mmio@{base:016x}/channel@0/disk@0,0\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusDevice;
    use crate::memory::create_guest_memory;

    fn firmware_file(dir: &Path, len: usize) -> PathBuf {
        let path = dir.join("bios.bin");
        let mut image = vec![0u8; len];
        // Marks the first and last bytes so the copies can be told apart.
        image[0] = 0xaa;
        image[len - 1] = 0x55;
        std::fs::write(&path, image).unwrap();
        path
    }

    fn boot(firmware: PathBuf, boot_first: Option<BootDevice>) -> FirmwareBoot {
        FirmwareBoot {
            firmware,
            virtio_devices: vec![VirtioMmioDevice {
                base: 0xd000_0000,
                len: 0x1000,
                irq: 16,
            }],
            power_button_gsi: None,
            boot_first,
            screen: None,
        }
    }

    /// Reads fw_cfg file `name` through the ports, as firmware without DMA would.
    fn read_file(device: &mut FwCfg, name: &str) -> Option<Vec<u8>> {
        let read = |device: &mut FwCfg, key: u16, len: usize| {
            device.write(0, &key.to_le_bytes());
            let mut out = vec![0u8; len];
            device.read(1, &mut out);
            out
        };
        let count = u32::from_be_bytes(read(device, fw_cfg::key::FILE_DIR, 4).try_into().ok()?);
        let dir = read(device, fw_cfg::key::FILE_DIR, 4 + 64 * count as usize);
        dir[4..].chunks(64).find_map(|entry| {
            let end = entry[8..].iter().position(|b| *b == 0)?;
            (&entry[8..8 + end] == name.as_bytes()).then(|| {
                let size = u32::from_be_bytes(entry[..4].try_into().unwrap()) as usize;
                let key = u16::from_be_bytes(entry[4..6].try_into().unwrap());
                read(device, key, size)
            })
        })
    }

    #[test]
    fn image_goes_below_4_gib_and_its_end_below_1_mib() {
        let dir = tempfile::tempdir().unwrap();
        let memory = create_guest_memory(16 << 20).unwrap();
        let prepared = prepare(
            &memory,
            &boot(firmware_file(dir.path(), 256 << 10), None),
            1,
        )
        .unwrap();
        assert_eq!(prepared.rom_base, 0xfffc_0000);
        assert_eq!(prepared.image.len(), 256 << 10);
        let mut last = [0u8; 1];
        memory
            .read_slice(&mut last, GuestAddress(0xf_ffff))
            .unwrap();
        assert_eq!(last, [0x55]);
    }

    #[test]
    fn firmware_sizes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let memory = create_guest_memory(16 << 20).unwrap();
        let odd = firmware_file(dir.path(), 1000);
        let err = prepare(&memory, &boot(odd, None), 1).unwrap_err();
        assert!(
            matches!(err, FirmwareError::BadSize { len: 1000, .. }),
            "{err}"
        );
        let missing = dir.path().join("nothing");
        assert!(matches!(
            prepare(&memory, &boot(missing, None), 1),
            Err(FirmwareError::Read { .. })
        ));
    }

    #[test]
    fn fw_cfg_describes_ram_console_and_boot_order() {
        let dir = tempfile::tempdir().unwrap();
        let memory = create_guest_memory(16 << 20).unwrap();
        let firmware = firmware_file(dir.path(), 128 << 10);
        let disk = BootDevice::Disk { base: 0xd000_0000 };
        let mut prepared = prepare(&memory, &boot(firmware.clone(), Some(disk)), 2).unwrap();
        let device = &mut prepared.fw_cfg;
        let e820 = read_file(device, "etc/e820").unwrap();
        assert_eq!(e820.len(), 40);
        assert_eq!(&e820[..8], &0u64.to_le_bytes());
        assert_eq!(&e820[8..16], &(16u64 << 20).to_le_bytes());
        assert_eq!(&e820[16..20], &E820_RAM.to_le_bytes());
        assert_eq!(&e820[36..40], &E820_RESERVED.to_le_bytes());
        assert_eq!(read_file(device, "etc/sercon-port").unwrap(), [0xf8, 0x03]);
        assert_eq!(
            read_file(device, "bootorder").unwrap(),
            b"/virtio-mmio@00000000d0000000/disk@0\n"
        );
        for name in ["etc/acpi/rsdp", "etc/acpi/tables", "etc/table-loader"] {
            assert!(read_file(device, name).is_some(), "{name}");
        }
        // The CD drive: the path QEMU gives a virtio-scsi CD, which SeaBIOS's glob
        // `/virtio-mmio@%016x/*@0/*@%x,%x` matches for target 0, LUN 0.
        let cdrom = BootDevice::Cdrom { base: 0xd000_1000 };
        let mut prepared = prepare(&memory, &boot(firmware, Some(cdrom)), 2).unwrap();
        assert_eq!(
            read_file(&mut prepared.fw_cfg, "bootorder").unwrap(),
            b"/virtio-mmio@00000000d0001000/channel@0/disk@0,0\n"
        );
    }

    #[test]
    fn a_screen_gets_the_vga_bios_and_hears_of_the_framebuffer() {
        use std::sync::Mutex;
        let dir = tempfile::tempdir().unwrap();
        let memory = create_guest_memory(16 << 20).unwrap();
        let vga_bios = dir.path().join("vgabios-ramfb.bin");
        std::fs::write(&vga_bios, b"\x55\xaaVGA").unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        let mut firmware = boot(firmware_file(dir.path(), 128 << 10), None);
        firmware.screen = Some(FirmwareScreen {
            vga_bios,
            shown: Arc::new(move |framebuffer| sink.lock().unwrap().push(framebuffer)),
        });
        let mut prepared = prepare(&memory, &firmware, 1).unwrap();
        let device = &mut prepared.fw_cfg;
        assert_eq!(
            read_file(device, "vgaroms/vgabios-ramfb.bin").unwrap(),
            b"\x55\xaaVGA"
        );
        assert_eq!(read_file(device, "etc/ramfb").unwrap(), [0; 28]);
        // SeaBIOS's VGA BIOS writes its framebuffer's place with one DMA write.
        let key = 0x20
            + (0..)
                .find(|i| {
                    device.write(0, &fw_cfg::key::FILE_DIR.to_le_bytes());
                    let mut dir = vec![0u8; 4 + 64 * (i + 1)];
                    device.read(1, &mut dir);
                    dir[4 + 64 * i + 8..].starts_with(b"etc/ramfb\0")
                })
                .unwrap() as u32;
        let mut config = Vec::new();
        config.extend_from_slice(&0x00e0_0000u64.to_be_bytes());
        config.extend_from_slice(&u32::from_le_bytes(*b"XR24").to_be_bytes());
        for field in [0u32, 1024, 768, 4096] {
            config.extend_from_slice(&field.to_be_bytes());
        }
        memory.write_slice(&config, GuestAddress(0x2000)).unwrap();
        let mut descriptor = Vec::new();
        descriptor.extend_from_slice(&((key << 16) | 0x08 | 0x10).to_be_bytes());
        descriptor.extend_from_slice(&28u32.to_be_bytes());
        descriptor.extend_from_slice(&0x2000u64.to_be_bytes());
        memory
            .write_slice(&descriptor, GuestAddress(0x1000))
            .unwrap();
        device.write(8, &0x1000u32.to_be_bytes());
        assert_eq!(
            heard.lock().unwrap().as_slice(),
            [GuestFramebuffer {
                address: 0x00e0_0000,
                width: 1024,
                height: 768,
                stride: 4096,
            }]
        );
        // A VGA BIOS that is not there: the VM does not start, saying which file.
        firmware.screen = Some(FirmwareScreen {
            vga_bios: dir.path().join("missing.bin"),
            shown: Arc::new(|_| {}),
        });
        assert!(matches!(
            prepare(&memory, &firmware, 1),
            Err(FirmwareError::ReadVgaBios { .. })
        ));
    }
}
