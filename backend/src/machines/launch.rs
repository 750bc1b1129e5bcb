//! What a VM's berth-vmm is started with: its definition as [`LaunchOptions`], after checking
//! that it has something to boot (an ISO's boot entry extracted into the VM's directory).

use std::path::Path;

use berth_api::error::ApiError;
use berth_api::vm::{BootFrom, BootSource, VmConfig};
use berth_vmm_api::launch::{
    BootDevice, BootImage, CONTROL_FD, DEFAULT_CMDLINE, Disk, EVENTS_FD, LaunchOptions,
    SEABIOS_MICROVM,
};

/// The serial log's file name in the VM's directory.
pub const SERIAL_LOG: &str = "serial.log";

/// Where the kernel and initramfs of an ISO's boot entry are extracted, in the VM's directory.
const ISO_BOOT_DIR: &str = "iso-boot";

/// Checks, cheaply, that `config` has something to boot and that its files are still there:
/// what `vm start` refuses before the VM's state changes.
pub fn check_boot(config: &VmConfig, dir: &Path) -> Result<(), ApiError> {
    let name = &config.name;
    let files: Vec<(&str, &Path)> = match (config.boot_from, &config.boot) {
        (BootFrom::Kernel, None) => return Err(nothing_to_boot(name)),
        (BootFrom::Kernel, Some(BootSource::Kernel { kernel, initrd, .. })) => {
            std::iter::once(("kernel", kernel.as_path()))
                .chain(initrd.as_deref().map(|i| ("initramfs", i)))
                .collect()
        }
        (BootFrom::Kernel | BootFrom::Iso, Some(BootSource::Iso { iso, .. })) => {
            vec![("ISO image", iso.as_path())]
        }
        (BootFrom::Iso, _) => {
            return Err(ApiError::invalid(format!(
                "VM `{name}` starts from its ISO but has none: attach one (`berthctl vm edit {name} --iso FILE`) or start it from its disk (`--boot disk`)"
            )));
        }
        (BootFrom::Disk, _) if config.disk.is_none() => {
            return Err(ApiError::invalid(format!(
                "VM `{name}` starts from its disk but has none"
            )));
        }
        (BootFrom::Disk, _) => {
            if let Some(disk) = disk_path(config, dir) {
                check_disk_boots(name, &disk)?;
            }
            Vec::new()
        }
    };
    for (what, file) in files {
        if !file.is_file() {
            return Err(ApiError::invalid(format!(
                "cannot start VM `{name}`: its {what} {} does not exist any more",
                file.display()
            )));
        }
    }
    if config.boot_from != BootFrom::Kernel && !Path::new(SEABIOS_MICROVM).is_file() {
        return Err(ApiError::new(
            berth_api::error::ErrorKind::Unsupported,
            format!(
                "cannot start VM `{name}` from its {}: that needs the firmware {SEABIOS_MICROVM} (Debian's `seabios` package)",
                config.boot_from
            ),
        ));
    }
    Ok(())
}

/// Refuses, with what to do, a disk the firmware would find nothing on: no boot sector (nothing
/// installed yet), or only a UEFI system's (a GPT's protective MBR, whose boot code is empty).
fn check_disk_boots(name: &str, disk: &Path) -> Result<(), ApiError> {
    let sector = first_sector(disk)
        .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", disk.display())))?
        // A disk shorter than a sector has nothing on it either.
        .unwrap_or([0; 512]);
    if sector[510..] != [0x55, 0xaa] {
        return Err(ApiError::invalid(format!(
            "VM `{name}` has nothing on its disk to boot: install an OS on it from an ISO (`berthctl vm edit {name} --iso FILE`), or boot a kernel (`--kernel FILE`)"
        )));
    }
    // The first partition entry's type at byte 450: 0xEE marks a GPT disk's protective MBR.
    let boot_code_empty = sector[..440].iter().all(|b| *b == 0);
    if sector[450] == 0xee && boot_code_empty {
        return Err(ApiError::new(
            berth_api::error::ErrorKind::Unsupported,
            format!(
                "VM `{name}`'s disk holds a system that boots only with UEFI firmware, which Berth does not have yet (its firmware is a PC BIOS)"
            ),
        ));
    }
    Ok(())
}

/// The VM's own disk file, when it has one (`dir` is the VM's directory).
pub fn disk_path(config: &VmConfig, dir: &Path) -> Option<std::path::PathBuf> {
    config.disk.as_ref().map(|disk| {
        if disk.file.is_absolute() {
            disk.file.clone()
        } else {
            dir.join(&disk.file)
        }
    })
}

/// Whether the file at `path` starts with a boot sector (the MBR signature 0x55 0xAA at bytes
/// 510-511): a disk with a system installed.
pub fn has_boot_signature(path: &Path) -> std::io::Result<bool> {
    Ok(first_sector(path)?.is_some_and(|sector| sector[510..] == [0x55, 0xaa]))
}

/// The first 512 bytes of the file at `path`; `None` when it is shorter.
fn first_sector(path: &Path) -> std::io::Result<Option<[u8; 512]>> {
    use std::io::Read;
    let mut sector = [0u8; 512];
    match std::fs::File::open(path)?.read_exact(&mut sector) {
        Ok(()) => Ok(Some(sector)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

fn nothing_to_boot(name: &str) -> ApiError {
    ApiError::invalid(format!(
        "VM `{name}` has nothing to boot: give it a kernel (`berthctl vm edit {name} --kernel FILE`) or an ISO"
    ))
}

/// berth-vmm's options for `config`, whose directory is `dir`. For an ISO, extracts the boot
/// entry's kernel and initramfs first.
pub fn launch_options(config: &VmConfig, dir: &Path) -> Result<LaunchOptions, ApiError> {
    check_boot(config, dir)?;
    let name = &config.name;
    let iso = match &config.boot {
        Some(BootSource::Iso { iso, .. }) => Some(iso.clone()),
        _ => None,
    };
    let boot = match (config.boot_from, &config.boot) {
        (
            BootFrom::Kernel,
            Some(BootSource::Kernel {
                kernel,
                initrd,
                cmdline,
            }),
        ) => BootImage::Kernel {
            kernel: kernel.clone(),
            initrd: initrd.clone(),
            // An empty command line leaves berth-vmm's default (the serial console).
            cmdline: if cmdline.is_empty() {
                DEFAULT_CMDLINE.into()
            } else {
                cmdline.clone()
            },
        },
        (BootFrom::Kernel, Some(BootSource::Iso { iso, entry })) => {
            let dest = dir.join(ISO_BOOT_DIR);
            std::fs::create_dir_all(&dest).map_err(|e| {
                ApiError::internal(format!("cannot create {}: {e}", dest.display()))
            })?;
            let boot = berth_iso::extract_boot(iso, *entry, &dest).map_err(|e| {
                ApiError::invalid(format!(
                    "cannot start VM `{name}` from {}: {e}",
                    iso.display()
                ))
            })?;
            // Berth's console is the serial port: the guest is told so before the entry's own
            // words (a later console= of the entry's would win, as the user asked for it).
            BootImage::Kernel {
                kernel: boot.kernel,
                initrd: boot.initrd,
                cmdline: format!("console=ttyS0 panic=-1 {}", boot.cmdline)
                    .trim()
                    .to_owned(),
            }
        }
        // The VM's own disk is the only disk (below).
        (BootFrom::Disk, _) => BootImage::Firmware {
            firmware: SEABIOS_MICROVM.into(),
            boot_first: Some(BootDevice::Disk(0)),
        },
        (BootFrom::Iso, _) => BootImage::Firmware {
            firmware: SEABIOS_MICROVM.into(),
            boot_first: Some(BootDevice::Cdrom),
        },
        // `check_boot` refused it already.
        (BootFrom::Kernel, None) => return Err(nothing_to_boot(name)),
    };
    let mut options = LaunchOptions::booting(boot);
    options.memory = config.memory;
    options.cpus = config.cpus;
    options.serial_log = Some(dir.join(SERIAL_LOG));
    options.control_fd = Some(CONTROL_FD);
    options.events_fd = Some(EVENTS_FD);
    options.display = Some(config.display);
    // The VM's own disk (the guest's /dev/vda, where an installer puts the system), and the
    // ISO in the CD drive (/dev/sr0), as a PC's installer DVD: installers look for their
    // packages on a CD, and the firmware boots any El Torito image from it.
    if let Some(path) = disk_path(config, dir) {
        options.disks.push(Disk {
            path,
            read_only: false,
        });
    }
    options.cdrom = iso;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::network::VmNetworkConfig;
    use berth_api::vm::DiskConfig;

    fn config(boot: Option<BootSource>, boot_from: BootFrom, disk: bool) -> VmConfig {
        VmConfig {
            name: "vm".into(),
            cpus: 1,
            memory: 256 << 20,
            disk: disk.then(|| DiskConfig {
                file: "disk.raw".into(),
                size: 1 << 20,
            }),
            boot,
            boot_from,
            created: 0,
            display: Default::default(),
            network: VmNetworkConfig::default(),
        }
    }

    /// The firmware boots need Debian's seabios package; without it the test says it skipped.
    fn no_seabios() -> bool {
        let missing = !Path::new(SEABIOS_MICROVM).is_file();
        if missing {
            eprintln!("skipped: no {SEABIOS_MICROVM} (Debian's seabios package)");
        }
        missing
    }

    /// A disk file whose first sector is `sector`.
    fn disk(dir: &Path, sector: &[u8; 512]) {
        let mut bytes = sector.to_vec();
        bytes.resize(1 << 20, 0);
        std::fs::write(dir.join("disk.raw"), bytes).unwrap();
    }

    fn mbr(boot_code: u8, first_type: u8) -> [u8; 512] {
        let mut sector = [0u8; 512];
        sector[..440].fill(boot_code);
        sector[450] = first_type;
        sector[510] = 0x55;
        sector[511] = 0xaa;
        sector
    }

    #[test]
    fn a_disk_boot_needs_a_boot_loader_on_the_disk() {
        if no_seabios() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let vm = config(None, BootFrom::Disk, true);
        disk(dir.path(), &[0; 512]);
        let err = check_boot(&vm, dir.path()).unwrap_err();
        assert!(
            err.message.contains("nothing on its disk to boot"),
            "{err:?}"
        );
        // A GPT disk with only a UEFI system: a protective MBR with no boot code.
        disk(dir.path(), &mbr(0, 0xee));
        let err = check_boot(&vm, dir.path()).unwrap_err();
        assert!(err.message.contains("UEFI"), "{err:?}");
        // GRUB for BIOS in the MBR (of an MBR disk, or of a GPT disk with a BIOS boot partition).
        disk(dir.path(), &mbr(0xeb, 0x83));
        check_boot(&vm, dir.path()).unwrap();
        disk(dir.path(), &mbr(0xeb, 0xee));
        check_boot(&vm, dir.path()).unwrap();
        assert!(has_boot_signature(&dir.path().join("disk.raw")).unwrap());
    }

    #[test]
    fn firmware_boots_order_the_disks_and_name_the_one_to_boot() {
        if no_seabios() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        disk(dir.path(), &mbr(0xeb, 0x83));
        let iso = dir.path().join("os.iso");
        std::fs::write(&iso, [0u8; 4096]).unwrap();
        let media = Some(BootSource::Iso {
            iso: iso.clone(),
            entry: None,
        });
        let from_disk =
            launch_options(&config(media.clone(), BootFrom::Disk, true), dir.path()).unwrap();
        assert_eq!(
            from_disk.boot,
            BootImage::Firmware {
                firmware: SEABIOS_MICROVM.into(),
                boot_first: Some(BootDevice::Disk(0))
            }
        );
        // The VM's disk (the guest's /dev/vda), the ISO in the CD drive.
        assert_eq!(
            from_disk.disks,
            [Disk {
                path: dir.path().join("disk.raw"),
                read_only: false
            }]
        );
        assert_eq!(from_disk.cdrom.as_deref(), Some(iso.as_path()));
        for disk in [true, false] {
            let from_iso =
                launch_options(&config(media.clone(), BootFrom::Iso, disk), dir.path()).unwrap();
            assert_eq!(
                from_iso.boot,
                BootImage::Firmware {
                    firmware: SEABIOS_MICROVM.into(),
                    boot_first: Some(BootDevice::Cdrom)
                }
            );
            assert_eq!(from_iso.disks.len(), usize::from(disk));
            assert_eq!(from_iso.cdrom.as_deref(), Some(iso.as_path()));
        }
        let err = check_boot(&config(None, BootFrom::Iso, true), dir.path()).unwrap_err();
        assert!(err.message.contains("has none"), "{err:?}");
    }
}
