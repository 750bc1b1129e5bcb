//! What `iso inspect` reports about an ISO image: what it is, how it boots, what a VM booting it
//! should be given.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the file names on the image were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameScheme {
    /// Rock Ridge (POSIX names in the primary tree).
    RockRidge,
    /// Joliet (UCS-2 names in a supplementary tree).
    Joliet,
    /// Plain ISO 9660 names (upper case, `;1` version suffixes removed).
    Iso9660,
}

/// What kind of image it is, as far as its files say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsoKind {
    /// Boots an installer that writes a system to a disk.
    Installer,
    /// Boots a whole system from the image (it may offer to install itself too).
    Live,
    Unknown,
}

/// One El Torito boot image: what firmware would start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootImage {
    /// `bios`, `uefi`, or the platform id in hex.
    pub platform: String,
    pub bootable: bool,
    /// `none`, `floppy`, `hard_disk`.
    pub emulation: String,
    /// Start of the image, in 2 KiB sectors.
    pub lba: u32,
    /// Length in 512-byte sectors as the catalog records it.
    pub sectors: u16,
}

impl BootImage {
    /// The platform of a boot image for a PC BIOS (El Torito platform id 0).
    pub const BIOS: &'static str = "bios";
    /// The platform of a boot image for UEFI (El Torito platform id 0xEF).
    pub const UEFI: &'static str = "uefi";

    /// Whether a PC BIOS, the VM's firmware, starts this image.
    pub fn starts_on_bios(&self) -> bool {
        self.bootable && self.platform == Self::BIOS
    }
}

/// A Linux boot entry found on the image: what `vm create --iso FILE --entry N` boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsoBootEntry {
    /// The `N` of `--entry N`: entries are numbered from 0, the default first.
    pub index: u32,
    pub title: String,
    /// Path of the kernel inside the image.
    pub kernel: String,
    /// Initramfs paths inside the image, in load order (they are concatenated).
    pub initrds: Vec<String>,
    pub cmdline: String,
    /// The configuration file the entry comes from, or `layout` for a known distro layout.
    pub source: String,
    /// Whether the image's configuration makes it the default.
    pub default: bool,
}

/// What a VM booting the image should be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggested {
    pub cpus: u32,
    /// Bytes.
    pub memory: u64,
    /// Bytes; 0 when the image runs without a disk.
    pub disk: u64,
}

/// The answer to `iso inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsoInfo {
    pub path: PathBuf,
    /// File size in bytes.
    pub size: u64,
    pub volume_id: String,
    pub names: NameScheme,
    /// Distribution name when known (`Debian`, `Ubuntu`, `Fedora`, `Arch Linux`).
    pub distro: Option<String>,
    pub version: Option<String>,
    /// The image's own description (`.disk/info`, `.treeinfo`).
    pub description: Option<String>,
    pub kind: IsoKind,
    pub boot_images: Vec<BootImage>,
    /// Linux boot entries Berth starts directly, default first. Empty when Berth reads no
    /// kernel on the image (it may still start through the firmware:
    /// [`IsoInfo::firmware_bootable`]).
    pub entries: Vec<IsoBootEntry>,
    pub suggested: Suggested,
    /// Why Berth cannot boot the image at all: no entry it starts directly, and no default boot
    /// image its firmware starts or a system that cannot run on Berth's machine (Windows).
    pub unbootable: Option<String>,
    /// Things that looked wrong but did not stop the inspection (an entry whose kernel is
    /// missing, a config that includes itself, …).
    pub warnings: Vec<String>,
}

impl IsoInfo {
    /// Whether the VM's firmware (a PC BIOS) can start the image from the CD drive
    /// (`vm create --boot iso`): its default El Torito entry, the only one a BIOS boots (SeaBIOS's
    /// `cdrom_boot` reads no sections), is for a BIOS, and nothing on the image says it cannot
    /// run on Berth's machine (`unbootable`).
    pub fn firmware_bootable(&self) -> bool {
        self.unbootable.is_none()
            && self
                .boot_images
                .first()
                .is_some_and(BootImage::starts_on_bios)
    }

    /// Whether the image starts only through the VM's firmware: Berth reads no Linux kernel on
    /// it to start directly, and the firmware starts it. Such an image is what a VM given it
    /// starts from through the firmware unless told otherwise.
    pub fn firmware_only(&self) -> bool {
        self.entries.is_empty() && self.firmware_bootable()
    }
}
