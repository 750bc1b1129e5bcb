//! Linux boot entries of an image: from its isolinux/syslinux config, then its GRUB config,
//! then the layouts distributions use when neither names a kernel. Every entry's kernel must
//! be on the image and carry the bzImage header berth-vmm loads; every initramfs must exist.

use std::collections::HashMap;

use berth_api::iso::IsoBootEntry;

use crate::image::{Iso, Source};
use crate::menu::{Menu, MenuEntry};
use crate::{IsoError, grub, syslinux};

/// Where isolinux and syslinux look for their config, in their order.
const SYSLINUX: &[&str] = &[
    "/isolinux/isolinux.cfg",
    "/boot/isolinux/isolinux.cfg",
    "/isolinux.cfg",
    "/syslinux/syslinux.cfg",
    "/boot/syslinux/syslinux.cfg",
    "/syslinux.cfg",
];
const GRUB: &[&str] = &[
    "/boot/grub/grub.cfg",
    "/boot/grub2/grub.cfg",
    "/EFI/BOOT/grub.cfg",
];
/// Boot configs are text files of a few KiB.
const CONFIG_LIMIT: u64 = 1 << 20;
const MAX_CANDIDATES: usize = 256;

fn read_config<S: Source>(iso: &Iso<S>, path: &str) -> Result<Option<String>, IsoError> {
    Ok(iso
        .read_file(path, CONFIG_LIMIT)?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// The first of `paths` that exists, parsed with `parse`; errors become warnings.
fn menu<S: Source>(
    iso: &Iso<S>,
    paths: &[&str],
    parse: fn(&str, &mut crate::menu::Reader<'_>) -> Result<Menu, IsoError>,
    warnings: &mut Vec<String>,
) -> Menu {
    for path in paths {
        match iso.file(path) {
            Ok(Some(_)) => {
                let mut read = |p: &str| read_config(iso, p);
                return match parse(path, &mut read) {
                    Ok(menu) => menu,
                    Err(e) => {
                        warnings.push(format!("{path}: {e}"));
                        Menu::default()
                    }
                };
            }
            Ok(None) => {}
            Err(e) => warnings.push(format!("{path}: {e}")),
        }
    }
    Menu::default()
}

/// Entries in the order a user should see them: the configured default first.
fn ordered(menu: Menu) -> Vec<MenuEntry> {
    let mut entries = menu.entries;
    if let Some(d) = menu.default.filter(|&d| d < entries.len()) {
        let default = entries.remove(d);
        entries.insert(0, default);
    }
    entries
}

/// The distro layouts tried when no config names a kernel.
fn layouts(volume_id: &str) -> Vec<MenuEntry> {
    let label = volume_id.replace(' ', "\\x20");
    let entry = |title: &str, kernel: &str, initrd: &str, cmdline: String| MenuEntry {
        title: title.to_owned(),
        kernel: kernel.to_owned(),
        initrds: vec![initrd.to_owned()],
        cmdline,
        source: "layout".to_owned(),
    };
    vec![
        entry(
            "Install (Debian installer)",
            "/install.amd/vmlinuz",
            "/install.amd/initrd.gz",
            "--- quiet".into(),
        ),
        entry(
            "Graphical install (Debian installer)",
            "/install.amd/vmlinuz",
            "/install.amd/gtk/initrd.gz",
            "--- quiet".into(),
        ),
        entry(
            "Live system (Debian live)",
            "/live/vmlinuz",
            "/live/initrd.img",
            "boot=live components quiet".into(),
        ),
        entry(
            "Try or install (Ubuntu casper)",
            "/casper/vmlinuz",
            "/casper/initrd",
            "--- quiet splash".into(),
        ),
        entry(
            "Try or install (Ubuntu casper)",
            "/casper/vmlinuz",
            "/casper/initrd.lz",
            "boot=casper --- quiet splash".into(),
        ),
        entry(
            "Install (Fedora/RHEL pxeboot)",
            "/images/pxeboot/vmlinuz",
            "/images/pxeboot/initrd.img",
            format!("inst.stage2=hd:LABEL={label} quiet"),
        ),
        entry(
            "Arch Linux install medium",
            "/arch/boot/x86_64/vmlinuz-linux",
            "/arch/boot/x86_64/initramfs-linux.img",
            format!("archisobasedir=arch archisolabel={label}"),
        ),
    ]
}

/// Whether `path` is a file on the image, and a bzImage when `kernel`.
fn check<S: Source>(
    iso: &Iso<S>,
    path: &str,
    kernel: bool,
    cache: &mut HashMap<(String, bool), Result<(), String>>,
) -> Result<(), String> {
    cache
        .entry((path.to_owned(), kernel))
        .or_insert_with(|| {
            let entry = iso
                .file(path)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{path} is not on the image"))?;
            if kernel {
                // The Linux boot protocol's header magic, at 0x202 of every bzImage.
                let head = iso.read_head(&entry, 0x206).map_err(|e| e.to_string())?;
                if head.get(0x202..0x206) != Some(b"HdrS") {
                    return Err(format!("{path} is not a Linux kernel (no bzImage header)"));
                }
            }
            Ok(())
        })
        .clone()
}

/// The image's Linux boot entries, default first, numbered from 0.
pub fn find<S: Source>(iso: &Iso<S>, warnings: &mut Vec<String>) -> Vec<IsoBootEntry> {
    let isolinux = menu(iso, SYSLINUX, syslinux::parse, warnings);
    let grub = menu(iso, GRUB, grub::parse, warnings);
    warnings.extend(isolinux.warnings.iter().cloned());
    warnings.extend(grub.warnings.iter().cloned());
    let mut candidates = ordered(isolinux);
    candidates.extend(ordered(grub));
    let from_configs = !candidates.is_empty();
    if !from_configs {
        candidates = layouts(iso.volume_id());
    }
    // Real menus have a few dozen entries; each one costs lookups on the image.
    if candidates.len() > MAX_CANDIDATES {
        warnings.push(format!(
            "the boot menus name {} entries; only the first {MAX_CANDIDATES} are checked",
            candidates.len()
        ));
        candidates.truncate(MAX_CANDIDATES);
    }
    let mut cache = HashMap::new();
    let mut seen: Vec<(String, Vec<String>, String)> = Vec::new();
    let mut out: Vec<IsoBootEntry> = Vec::new();
    for c in candidates {
        let key = (
            c.kernel.to_ascii_lowercase(),
            c.initrds.iter().map(|i| i.to_ascii_lowercase()).collect(),
            c.cmdline.clone(),
        );
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let problem = std::iter::once((c.kernel.as_str(), true))
            .chain(c.initrds.iter().map(|i| (i.as_str(), false)))
            .find_map(|(p, k)| check(iso, p, k, &mut cache).err());
        if let Some(problem) = problem {
            // A layout that does not match is no news; a config naming a missing file is.
            if from_configs {
                warnings.push(format!(
                    "entry `{}` ({}) skipped: {problem}",
                    c.title, c.source
                ));
            }
            continue;
        }
        out.push(IsoBootEntry {
            index: out.len() as u32,
            default: out.is_empty(),
            title: c.title,
            kernel: c.kernel,
            initrds: c.initrds,
            cmdline: c.cmdline,
            source: c.source,
        });
    }
    out
}
