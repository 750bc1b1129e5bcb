//! What an image is: distribution, version, installer or live, and what a VM booting it should
//! be given; and, when it has no Linux, why berth cannot boot it.

use berth_api::iso::{BootImage, IsoBootEntry, IsoKind, Suggested};

use crate::image::{Iso, Source};

const GIB: u64 = 1 << 30;
/// `.disk/info` and `.treeinfo` are one line and a few hundred bytes.
const INFO_LIMIT: u64 = 64 << 10;

pub struct Identity {
    pub distro: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub kind: IsoKind,
    pub suggested: Suggested,
}

fn text<S: Source>(iso: &Iso<S>, path: &str, warnings: &mut Vec<String>) -> Option<String> {
    match iso.read_file(path, INFO_LIMIT) {
        Ok(bytes) => bytes.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(e) => {
            warnings.push(format!("{path}: {e}"));
            None
        }
    }
}

fn exists<S: Source>(iso: &Iso<S>, path: &str) -> bool {
    matches!(iso.lookup(path), Ok(Some(_)))
}

/// `key = value` of `[section]` in an INI file such as `.treeinfo`.
fn ini<'t>(text: &'t str, section: &str, key: &str) -> Option<&'t str> {
    let mut current = "";
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim();
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim());
        }
    }
    None
}

const DISTROS: &[(&str, &str)] = &[
    ("ubuntu", "Ubuntu"),
    ("debian", "Debian"),
    ("fedora", "Fedora"),
    ("arch", "Arch Linux"),
];

/// The resources to suggest, by distribution and kind.
pub fn suggest(distro: Option<&str>, kind: IsoKind) -> Suggested {
    let (cpus, memory, disk) = match (distro, kind) {
        (Some("Debian"), IsoKind::Installer) => (2, 2, 20),
        (Some("Debian"), _) => (2, 4, 20),
        (Some("Ubuntu"), _) => (2, 4, 25),
        (Some("Fedora"), _) => (2, 4, 20),
        (Some("Arch Linux"), _) => (2, 2, 20),
        (_, IsoKind::Installer) => (2, 2, 20),
        (_, IsoKind::Live) => (2, 2, 0),
        (_, IsoKind::Unknown) => (1, 1, 8),
    };
    Suggested {
        cpus,
        memory: memory * GIB,
        disk: disk * GIB,
    }
}

pub fn identify<S: Source>(
    iso: &Iso<S>,
    entries: &[IsoBootEntry],
    warnings: &mut Vec<String>,
) -> Identity {
    let disk_info = text(iso, "/.disk/info", warnings)
        .and_then(|t| t.lines().next().map(|l| l.trim().to_owned()))
        .filter(|l| !l.is_empty());
    let treeinfo = text(iso, "/.treeinfo", warnings);
    let tree_name = treeinfo
        .as_deref()
        .and_then(|t| ini(t, "release", "name").or_else(|| ini(t, "general", "family")));
    let tree_version = treeinfo
        .as_deref()
        .and_then(|t| ini(t, "release", "version").or_else(|| ini(t, "general", "version")));
    let description = disk_info.clone().or_else(|| {
        tree_name.map(|n| match tree_version {
            Some(v) => format!("{n} {v}"),
            None => n.to_owned(),
        })
    });

    let volume = iso.volume_id().to_ascii_lowercase();
    let said = format!(
        "{} {} {volume}",
        description.as_deref().unwrap_or("").to_ascii_lowercase(),
        tree_name.unwrap_or("").to_ascii_lowercase()
    );
    let kernels: Vec<String> = entries
        .iter()
        .map(|e| e.kernel.to_ascii_lowercase())
        .collect();
    let under = |dir: &str| kernels.iter().any(|k| k.starts_with(dir));
    let distro = DISTROS
        .iter()
        .find(|(word, _)| said.contains(word))
        .map(|(_, name)| *name)
        .or_else(|| {
            if under("/install.amd/") {
                Some("Debian")
            } else if under("/casper/") {
                Some("Ubuntu")
            } else if under("/images/pxeboot/") {
                Some("Fedora")
            } else if under("/arch/") {
                Some("Arch Linux")
            } else {
                None
            }
        });
    let version = tree_version.map(str::to_owned).or_else(|| {
        description
            .as_deref()?
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
            .map(str::to_owned)
    });

    let cmdlines: String = entries
        .iter()
        .map(|e| e.cmdline.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let live_cmdline = [
        "boot=casper",
        "boot=live",
        "rd.live.image",
        "archisobasedir",
    ]
    .iter()
    .any(|w| cmdlines.contains(w));
    let server = said.contains("server");
    let kind = if server && under("/casper/") {
        IsoKind::Installer
    } else if live_cmdline
        || under("/casper/")
        || under("/live/")
        || under("/arch/")
        || exists(iso, "/LiveOS/squashfs.img")
    {
        IsoKind::Live
    } else if under("/install.amd/")
        || under("/install/")
        || under("/images/pxeboot/")
        || cmdlines.contains("inst.stage2")
        // Debian's netboot image keeps its installer at /linux and /initrd.gz; its menu (and
        // most installers') says "Install", "Graphical install", "Expert install".
        || entries
            .iter()
            .any(|e| e.title.to_ascii_lowercase().contains("install"))
    {
        IsoKind::Installer
    } else {
        IsoKind::Unknown
    };
    Identity {
        distro: distro.map(str::to_owned),
        version,
        description,
        kind,
        suggested: suggest(distro, kind),
    }
}

/// Why an image with no Linux boot entry cannot be booted, in words a user can act on; `None`
/// when the VM's firmware can start it: its default El Torito entry is for a PC BIOS (the only
/// one a BIOS boots) and it is not a system that cannot run on Berth's machine.
pub fn why_unbootable<S: Source>(iso: &Iso<S>, boot_images: &[BootImage]) -> Option<String> {
    const BERTH: &str = "Berth starts Linux kernels directly, and other images through its firmware (a PC BIOS) from their default El Torito boot image";
    let any = |paths: &[&str]| paths.iter().any(|p| exists(iso, p));
    if any(&[
        "/sources/install.wim",
        "/sources/install.esd",
        "/sources/boot.wim",
        "/bootmgr",
    ]) {
        // Its boot manager would start, then find no disk: Windows has no drivers for virtio
        // devices, and Berth's machine has no PCI bus for the ones it has.
        return Some("it is a Windows image: Windows has no drivers for the disks of Berth's VMs (virtio devices without PCI), and its UEFI boot needs UEFI firmware, which Berth does not have yet".to_owned());
    }
    let default = boot_images.first();
    if default.is_some_and(BootImage::starts_on_bios) {
        return None;
    }
    if default.is_some_and(|b| b.platform == BootImage::UEFI) {
        return Some("it boots only with UEFI firmware (its default El Torito boot image is for UEFI), which Berth does not have yet".to_owned());
    }
    let system = if any(&["/boot/kernel/kernel", "/boot/loader", "/bsd", "/bsd.rd"]) {
        "it is a BSD image, whose kernel starts through the BSD loader, and has "
    } else {
        "it has no Linux kernel (no isolinux/syslinux or GRUB config names one, and none of the known layouts, install.amd, live, casper, images/pxeboot, arch/boot, is on it) and "
    };
    Some(match default {
        None => format!("{system}no El Torito boot image for firmware to start; {BERTH}"),
        Some(image) => format!(
            "{system}a default El Torito boot image no PC BIOS starts (platform {}{}); {BERTH}",
            image.platform,
            if image.bootable { "" } else { ", not bootable" }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn treeinfo_sections() {
        let t = "[header]\nversion = 1.2\n[release]\nname = Fedora\nshort = Fedora\nversion = 39\n[general]\nfamily = Fedora\n";
        assert_eq!(ini(t, "release", "name"), Some("Fedora"));
        assert_eq!(ini(t, "release", "version"), Some("39"));
        assert_eq!(ini(t, "header", "name"), None);
    }

    #[test]
    fn suggestions_by_kind() {
        assert_eq!(suggest(Some("Debian"), IsoKind::Installer).memory, 2 * GIB);
        assert_eq!(suggest(None, IsoKind::Live).disk, 0);
        assert_eq!(suggest(Some("Ubuntu"), IsoKind::Live).disk, 25 * GIB);
    }
}
