//! What a VM's berth-vmm is started with: its definition as [`LaunchOptions`], after checking
//! that it has something to boot (an ISO's boot entry extracted into the VM's directory).

use std::path::Path;

use berth_api::error::ApiError;
use berth_api::vm::{BootSource, VmConfig};
use berth_vmm_api::launch::{
    BootImage, CONTROL_FD, DEFAULT_CMDLINE, Disk, EVENTS_FD, LaunchOptions,
};

/// The serial log's file name in the VM's directory.
pub const SERIAL_LOG: &str = "serial.log";

/// Where the kernel and initramfs of an ISO's boot entry are extracted, in the VM's directory.
const ISO_BOOT_DIR: &str = "iso-boot";

/// Checks, cheaply, that `config` has something to boot and that its files are still there:
/// what `vm start` refuses before the VM's state changes.
pub fn check_boot(config: &VmConfig) -> Result<(), ApiError> {
    let name = &config.name;
    let files: Vec<(&str, &Path)> = match &config.boot {
        None => return Err(nothing_to_boot(name)),
        Some(BootSource::Kernel { kernel, initrd, .. }) => {
            std::iter::once(("kernel", kernel.as_path()))
                .chain(initrd.as_deref().map(|i| ("initramfs", i)))
                .collect()
        }
        Some(BootSource::Iso { iso, .. }) => vec![("ISO image", iso.as_path())],
    };
    for (what, file) in files {
        if !file.is_file() {
            return Err(ApiError::invalid(format!(
                "cannot start VM `{name}`: its {what} {} does not exist any more",
                file.display()
            )));
        }
    }
    Ok(())
}

fn nothing_to_boot(name: &str) -> ApiError {
    ApiError::invalid(format!(
        "VM `{name}` has nothing to boot: give it a kernel (`berthctl vm edit {name} --kernel FILE`) or an ISO"
    ))
}

/// berth-vmm's options for `config`, whose directory is `dir`. For an ISO, extracts the boot
/// entry's kernel and initramfs first.
pub fn launch_options(config: &VmConfig, dir: &Path) -> Result<LaunchOptions, ApiError> {
    check_boot(config)?;
    let name = &config.name;
    let mut read_only = None;
    let (kernel, initrd, cmdline) = match &config.boot {
        Some(BootSource::Kernel {
            kernel,
            initrd,
            cmdline,
        }) => (kernel.clone(), initrd.clone(), cmdline.clone()),
        Some(BootSource::Iso { iso, entry }) => {
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
            read_only = Some(iso.clone());
            // Berth's console is the serial port: the guest is told so before the entry's own
            // words (a later console= of the entry's would win, as the user asked for it).
            (
                boot.kernel,
                boot.initrd,
                format!("console=ttyS0 panic=-1 {}", boot.cmdline)
                    .trim()
                    .to_owned(),
            )
        }
        // `check_boot` refused it already.
        None => return Err(nothing_to_boot(name)),
    };
    let mut options = LaunchOptions::booting(BootImage::Kernel {
        kernel,
        initrd,
        // An empty command line leaves berth-vmm's default (the serial console).
        cmdline: if cmdline.is_empty() {
            DEFAULT_CMDLINE.into()
        } else {
            cmdline
        },
    });
    options.memory = config.memory;
    options.cpus = config.cpus;
    options.serial_log = Some(dir.join(SERIAL_LOG));
    options.control_fd = Some(CONTROL_FD);
    options.events_fd = Some(EVENTS_FD);
    options.display = Some(config.display);
    // The VM's own disk first (the guest's /dev/vda, where an installer puts the system), then
    // the ISO, read-only.
    if let Some(disk) = &config.disk {
        let path = if disk.file.is_absolute() {
            disk.file.clone()
        } else {
            dir.join(&disk.file)
        };
        options.disks.push(Disk {
            path,
            read_only: false,
        });
    }
    if let Some(iso) = read_only {
        options.disks.push(Disk {
            path: iso,
            read_only: true,
        });
    }
    Ok(options)
}
