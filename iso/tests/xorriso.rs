//! Real images built by the test with xorriso (Debian package `xorriso`; isolinux.bin from
//! `isolinux`): inspected, extracted byte for byte, and broken on purpose.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_api::iso::{IsoKind, NameScheme};
use berth_iso::{IsoError, extract_boot, inspect};

/// Bytes that pass for a bzImage: the boot protocol's `HdrS` at 0x202, then a pattern.
fn fake_kernel(seed: u8) -> Vec<u8> {
    let mut k: Vec<u8> = (0..70_001u32)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k
}

fn blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 7) as u8) ^ seed).collect()
}

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn xorriso(tree: &Path, out: &Path, args: &[&str]) {
    let status = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(out)
        .args(args)
        .arg(tree)
        .status()
        .expect("xorriso runs (Debian package xorriso; scripts/test installs it)");
    assert!(status.success(), "xorriso failed");
}

/// An El Torito image of `tree` booted by ISOLINUX (its isolinux.bin put in `tree/isolinux`),
/// as a PC BIOS starts it from a CD; `args` go before the boot options (names, label).
fn isolinux_image(tree: &Path, out: &Path, args: &[&str]) {
    write(
        tree,
        "isolinux/isolinux.bin",
        &std::fs::read("/usr/lib/ISOLINUX/isolinux.bin").unwrap(),
    );
    let boot = [
        "-b",
        "isolinux/isolinux.bin",
        "-c",
        "isolinux/boot.cat",
        "-no-emul-boot",
        "-boot-load-size",
        "4",
        "-boot-info-table",
    ];
    let args: Vec<&str> = args.iter().copied().chain(boot).collect();
    xorriso(tree, out, &args);
}

/// Debian-installer-shaped image booted by isolinux, Rock Ridge + Joliet names.
fn debian_isolinux(dir: &Path) -> PathBuf {
    let tree = dir.join("debian");
    write(
        &tree,
        "isolinux/isolinux.cfg",
        b"path \ninclude menu.cfg\ndefault vesamenu.c32\nprompt 0\ntimeout 0\n",
    );
    write(
        &tree,
        "isolinux/menu.cfg",
        b"menu title Debian GNU/Linux installer menu (BIOS mode)\ninclude gtk.cfg\ninclude txt.cfg\n",
    );
    write(
        &tree,
        "isolinux/gtk.cfg",
        b"default installgui\nlabel installgui\n\tmenu label ^Graphical install\n\tmenu default\n\tkernel /install.amd/vmlinuz\n\tappend vga=788 initrd=/install.amd/gtk/initrd.gz --- quiet\n",
    );
    write(
        &tree,
        "isolinux/txt.cfg",
        b"label install\n\tmenu label ^Install\n\tkernel /install.amd/vmlinuz\n\tappend vga=788 initrd=/install.amd/initrd.gz --- quiet\nlabel broken\n\tkernel /install.amd/missing\n",
    );
    write(&tree, "install.amd/vmlinuz", &fake_kernel(1));
    write(&tree, "install.amd/initrd.gz", &blob(30_000, 2));
    write(&tree, "install.amd/gtk/initrd.gz", &blob(50_003, 3));
    write(
        &tree,
        ".disk/info",
        b"Debian GNU/Linux 12.5.0 \"Bookworm\" - Official amd64 NETINST with firmware 20240210-11:27",
    );
    let iso = dir.join("debian.iso");
    isolinux_image(&tree, &iso, &["-V", "Debian 12.5.0 amd64 n", "-R", "-J"]);
    iso
}

/// Ubuntu-shaped image with a GRUB config only, Joliet names only (no Rock Ridge).
fn ubuntu_grub(dir: &Path) -> PathBuf {
    let tree = dir.join("ubuntu");
    write(
        &tree,
        "boot/grub/grub.cfg",
        b"set timeout=30\nset live=/casper\nmenuentry \"Try or Install Ubuntu\" {\n\tset gfxpayload=keep\n\tlinux\t$live/vmlinuz  --- quiet splash\n\tinitrd\t${live}/initrd ${live}/extra-initrd.img\n}\nmenuentry \"Ubuntu (safe graphics)\" {\n\tlinux\t/casper/vmlinuz  nomodeset  --- quiet splash\n\tinitrd\t/casper/initrd\n}\nmenuentry 'Test memory' {\n\tlinux16 /boot/memtest86+.bin\n}\n",
    );
    write(&tree, "casper/vmlinuz", &fake_kernel(4));
    write(&tree, "casper/initrd", &blob(40_001, 5));
    write(&tree, "casper/extra-initrd.img", &blob(1_001, 6));
    write(
        &tree,
        ".disk/info",
        b"Ubuntu 22.04.3 LTS \"Jammy Jellyfish\" - Release amd64 (20230807.2)\n",
    );
    let iso = dir.join("ubuntu.iso");
    xorriso(
        &tree,
        &iso,
        &[
            "-V",
            "Ubuntu 22.04.3 LTS amd64",
            "--norock",
            "-J",
            "-joliet-long",
        ],
    );
    iso
}

#[test]
fn isolinux_image_is_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let iso = debian_isolinux(dir.path());
    let info = inspect(&iso).unwrap();
    assert_eq!(info.volume_id, "Debian 12.5.0 amd64 n");
    assert_eq!(info.names, NameScheme::RockRidge);
    assert_eq!(info.distro.as_deref(), Some("Debian"));
    assert_eq!(info.version.as_deref(), Some("12.5.0"));
    assert_eq!(info.kind, IsoKind::Installer);
    assert_eq!(info.suggested.cpus, 2);
    assert!(
        info.boot_images
            .iter()
            .any(|b| b.platform == "bios" && b.bootable && b.emulation == "none")
    );
    let titles: Vec<&str> = info.entries.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(titles, ["Graphical install", "Install"]);
    assert!(info.entries[0].default);
    assert_eq!(info.entries[0].kernel, "/install.amd/vmlinuz");
    assert_eq!(info.entries[0].initrds, ["/install.amd/gtk/initrd.gz"]);
    assert_eq!(info.entries[0].cmdline, "vga=788 --- quiet");
    assert_eq!(info.entries[1].index, 1);
    assert!(
        info.warnings
            .iter()
            .any(|w| w.contains("/install.amd/missing is not on the image")),
        "{:?}",
        info.warnings
    );
    assert!(info.unbootable.is_none());
}

#[test]
fn isolinux_extraction_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let iso = debian_isolinux(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let boot = extract_boot(&iso, Some(1), &out).unwrap();
    assert!(std::fs::read(&boot.kernel).unwrap() == fake_kernel(1));
    assert_eq!(
        std::fs::read(boot.initrd.unwrap()).unwrap(),
        blob(30_000, 2)
    );
    assert_eq!(boot.cmdline, "vga=788 --- quiet");
    let err = extract_boot(&iso, Some(7), &out).unwrap_err().to_string();
    assert!(err.contains("no boot entry 7"), "{err}");
}

#[test]
fn grub_image_with_joliet_names() {
    let dir = tempfile::tempdir().unwrap();
    let iso = ubuntu_grub(dir.path());
    let info = inspect(&iso).unwrap();
    assert_eq!(info.names, NameScheme::Joliet);
    assert_eq!(info.volume_id, "Ubuntu 22.04.3 LTS amd64");
    assert_eq!(info.distro.as_deref(), Some("Ubuntu"));
    assert_eq!(info.kind, IsoKind::Live);
    assert_eq!(info.entries.len(), 2, "{:?}", info.entries);
    assert_eq!(info.entries[0].title, "Try or Install Ubuntu");
    assert_eq!(info.entries[0].cmdline, "--- quiet splash");
    assert_eq!(
        info.entries[0].initrds,
        ["/casper/initrd", "/casper/extra-initrd.img"]
    );
    assert_eq!(info.entries[0].source, "/boot/grub/grub.cfg");

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let boot = extract_boot(&iso, None, &out).unwrap();
    assert!(std::fs::read(&boot.kernel).unwrap() == fake_kernel(4));
    // Two initramfs files concatenated, the first padded to 4 bytes.
    let mut want = blob(40_001, 5);
    want.extend([0, 0, 0]);
    want.extend(blob(1_001, 6));
    assert!(std::fs::read(boot.initrd.unwrap()).unwrap() == want);
}

#[test]
fn fedora_layout_found_without_a_config_and_plain_names() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("fedora");
    write(&tree, "images/pxeboot/vmlinuz", &fake_kernel(7));
    write(&tree, "images/pxeboot/initrd.img", &blob(9_000, 8));
    let iso = dir.path().join("fedora.iso");
    // No -R, no -J: upper-case 8.3 names the lookup matches regardless of case.
    xorriso(&tree, &iso, &["-V", "Fedora-S-dvd-x86_64-39", "--norock"]);
    let info = inspect(&iso).unwrap();
    assert_eq!(info.names, NameScheme::Iso9660);
    assert_eq!(info.distro.as_deref(), Some("Fedora"));
    assert_eq!(info.kind, IsoKind::Installer);
    assert_eq!(info.entries.len(), 1, "{:?}", info.warnings);
    assert_eq!(info.entries[0].source, "layout");
    assert_eq!(
        info.entries[0].cmdline,
        "inst.stage2=hd:LABEL=Fedora-S-dvd-x86_64-39 quiet"
    );
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let boot = extract_boot(&iso, None, &out).unwrap();
    assert!(std::fs::read(&boot.kernel).unwrap() == fake_kernel(7));
}

/// Debian's netboot image (`mini.iso`): the installer's kernel and initramfs at the top, no
/// `.disk/info`, a menu that says "Install".
#[test]
fn netboot_installer_is_an_installer() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("netboot");
    write(
        &tree,
        "isolinux.bin",
        &std::fs::read("/usr/lib/ISOLINUX/isolinux.bin").unwrap(),
    );
    write(
        &tree,
        "isolinux.cfg",
        b"default install\nlabel install\n\tmenu label ^Install\n\tkernel linux\n\tappend vga=788 initrd=initrd.gz --- quiet\nlabel expert\n\tmenu label E^xpert install\n\tkernel linux\n\tappend priority=low vga=788 initrd=initrd.gz ---\n",
    );
    write(&tree, "linux", &fake_kernel(9));
    write(&tree, "initrd.gz", &blob(20_000, 4));
    let iso = dir.path().join("mini.iso");
    xorriso(
        &tree,
        &iso,
        &[
            "-V",
            "ISOIMAGE",
            "-R",
            "-b",
            "isolinux.bin",
            "-c",
            "boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
        ],
    );
    let info = inspect(&iso).unwrap();
    assert_eq!(info.entries.len(), 2, "{:?}", info.warnings);
    assert_eq!(info.entries[0].kernel, "/linux");
    assert_eq!(info.kind, IsoKind::Installer);
}

#[test]
fn images_without_linux_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("windows");
    write(&tree, "sources/install.wim", b"not really");
    write(&tree, "bootmgr", b"x");
    let iso = dir.path().join("windows.iso");
    // A BIOS boot image as Windows images have one (etfsboot): a PC BIOS would start it, but
    // Windows would find no disk it has drivers for.
    isolinux_image(&tree, &iso, &["-V", "CCCOMA_X64FRE_EN-US_DV9", "--norock"]);
    let info = inspect(&iso).unwrap();
    assert!(info.entries.is_empty());
    assert_eq!(info.boot_images[0].platform, "bios");
    assert!(!info.firmware_bootable());
    let why = info.unbootable.clone().unwrap();
    assert!(why.contains("Windows") && why.contains("drivers"), "{why}");
    let err = berth_iso::bootable(&info, None).unwrap_err().to_string();
    assert!(err.contains("Windows"), "{err}");

    // A kernel that is not a bzImage is not booted either.
    let tree = dir.path().join("bsd");
    write(&tree, "boot/kernel/kernel", b"\x7fELF not linux");
    let iso = dir.path().join("bsd.iso");
    xorriso(&tree, &iso, &["-V", "14_0_RELEASE_AMD64_CD", "-R"]);
    let why = inspect(&iso).unwrap().unbootable.unwrap();
    assert!(why.contains("BSD"), "{why}");

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    assert!(matches!(
        extract_boot(&iso, None, &out),
        Err(IsoError::NotBootable(_))
    ));
    assert!(!out.join("kernel").exists());
}

#[test]
fn an_image_without_linux_but_with_a_bios_boot_image_starts_through_the_firmware() {
    let dir = tempfile::tempdir().unwrap();
    // ISOLINUX whose menu names no kernel Berth reads (as a rescue or BSD CD's boot loader):
    // a PC BIOS starts it from the CD drive.
    let tree = dir.path().join("bios");
    write(&tree, "isolinux/isolinux.cfg", b"prompt 1\n");
    let iso = dir.path().join("bios.iso");
    isolinux_image(&tree, &iso, &["-R"]);
    let info = inspect(&iso).unwrap();
    assert!(info.entries.is_empty());
    assert!(info.firmware_bootable());
    assert!(info.firmware_only());
    assert_eq!(info.unbootable, None);
    let err = berth_iso::bootable(&info, None).unwrap_err().to_string();
    assert!(err.contains("--boot iso"), "{err}");
    // A Linux image the firmware could start too: Berth starts its kernel directly.
    let linux = inspect(&debian_isolinux(dir.path())).unwrap();
    assert!(linux.firmware_bootable() && !linux.firmware_only());

    // Only a UEFI boot image (an EFI system partition image): nothing Berth starts.
    let tree = dir.path().join("uefi");
    write(&tree, "efi.img", &blob(64 << 10, 9));
    let iso = dir.path().join("uefi.iso");
    xorriso(
        &tree,
        &iso,
        &["-R", "-e", "efi.img", "-c", "boot.cat", "-no-emul-boot"],
    );
    let info = inspect(&iso).unwrap();
    assert_eq!(info.boot_images.len(), 1, "{:?}", info.boot_images);
    assert_eq!(info.boot_images[0].platform, "uefi");
    assert!(!info.firmware_bootable());
    assert!(!info.firmware_only());
    let why = info.unbootable.clone().unwrap();
    assert!(why.contains("only with UEFI firmware"), "{why}");
    let err = berth_iso::bootable(&info, None).unwrap_err().to_string();
    assert!(err.contains("UEFI"), "{err}");
}

#[test]
fn truncated_and_random_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let iso = debian_isolinux(dir.path());
    let bytes = std::fs::read(&iso).unwrap();
    let cut = dir.path().join("cut.iso");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = inspect(&cut).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");

    let random = dir.path().join("random.iso");
    let mut state = 0x1234_5678u32;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    std::fs::write(&random, &noise).unwrap();
    let err = inspect(&random).unwrap_err().to_string();
    assert!(err.contains("not an ISO 9660 image"), "{err}");

    // Every prefix and a byte flipped every few hundred bytes: errors or entries, no panic.
    for len in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
        berth_iso::fuzz_inspect(&bytes[..len]);
    }
    for at in (16 * 2048..bytes.len()).step_by(313) {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x5A;
        berth_iso::fuzz_inspect(&flipped);
    }
}

/// An image made the way GRUB makes boot media (`grub-mkrescue`, which runs xorriso): a BIOS
/// El Torito image from grub-pc-bin and our grub.cfg, with a Debian-live layout.
#[test]
fn grub_mkrescue_image() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("live");
    write(
        &tree,
        "boot/grub/grub.cfg",
        b"set default=\"live-toram\"\nmenuentry \"Debian Live\" --id live {\n  linux /live/vmlinuz boot=live components quiet\n  initrd /live/initrd.img\n}\nmenuentry \"Debian Live (to RAM)\" --id live-toram {\n  linux /live/vmlinuz boot=live components toram\n  initrd /live/initrd.img\n}\n",
    );
    write(&tree, "live/vmlinuz", &fake_kernel(9));
    write(&tree, "live/initrd.img", &blob(12_345, 10));
    let iso = dir.path().join("live.iso");
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&tree)
        .output()
        .expect("grub-mkrescue runs (Debian packages grub-common, grub-pc-bin)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = inspect(&iso).unwrap();
    assert!(
        info.boot_images
            .iter()
            .any(|b| b.platform == "bios" && b.bootable),
        "{:?}",
        info.boot_images
    );
    assert_eq!(info.kind, IsoKind::Live);
    assert_eq!(info.entries.len(), 2, "{:?}", info.warnings);
    assert_eq!(info.entries[0].title, "Debian Live (to RAM)");
    assert_eq!(info.entries[0].cmdline, "boot=live components toram");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let boot = extract_boot(&iso, Some(1), &out).unwrap();
    assert!(std::fs::read(&boot.kernel).unwrap() == fake_kernel(9));
    assert!(std::fs::read(boot.initrd.unwrap()).unwrap() == blob(12_345, 10));
    assert_eq!(boot.cmdline, "boot=live components quiet");
}

/// Rock Ridge names too long for a directory record continue in a SUSP continuation area (CE).
#[test]
fn long_rock_ridge_names_through_continuation_areas() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("long");
    let long = format!("{}-vmlinuz", "k".repeat(230));
    write(&tree, &format!("boot/{long}"), &fake_kernel(11));
    write(
        &tree,
        "isolinux/isolinux.cfg",
        format!("default x\nlabel x\n  linux /boot/{long}\n  append quiet\n").as_bytes(),
    );
    let iso = dir.path().join("long.iso");
    xorriso(&tree, &iso, &["-V", "LONG", "-R"]);
    let info = inspect(&iso).unwrap();
    assert_eq!(info.names, NameScheme::RockRidge);
    assert_eq!(info.entries.len(), 1, "{:?}", info.warnings);
    assert_eq!(info.entries[0].kernel, format!("/boot/{long}"));
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let boot = extract_boot(&iso, None, &out).unwrap();
    assert!(std::fs::read(&boot.kernel).unwrap() == fake_kernel(11));
    assert!(boot.initrd.is_none());
}

/// A tree deeper than ISO 9660's 8 levels, written with deep-directory relocation on: the deep
/// directory moves under RR_MOVED (flagged `RE`) and its parent keeps a `CL` child link to it,
/// which the reader follows so the Rock Ridge paths stay the original ones.
#[test]
fn relocated_deep_directories_through_child_links() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("deep");
    let deep = "live/a/b/c/d/e/f/g/h";
    write(&tree, &format!("{deep}/vmlinuz"), &fake_kernel(12));
    write(
        &tree,
        "isolinux/isolinux.cfg",
        format!("default x\nlabel x\n  linux /{deep}/vmlinuz\n  append quiet\n").as_bytes(),
    );
    let iso = dir.path().join("deep.iso");
    // Native xorriso commands: the mkisofs emulation keeps deep paths as they are.
    let status = Command::new("xorriso")
        .args(["-report_about", "SORRY", "-outdev"])
        .arg(&iso)
        .args(["-rockridge", "on", "-compliance", "deep_paths_off"])
        .args(["-rr_reloc_dir", "RR_MOVED", "-volid", "DEEP", "-map"])
        .arg(&tree)
        .args(["/", "-commit"])
        .status()
        .unwrap();
    assert!(status.success());
    let image = berth_iso::Iso::open(&iso).unwrap();
    // xorriso hides its relocation directory from the Rock Ridge tree; its name is still
    // in the image's plain ISO 9660 names.
    let bytes = std::fs::read(&iso).unwrap();
    assert!(
        bytes.windows(8).any(|w| w == b"RR_MOVED"),
        "xorriso relocated nothing"
    );
    let relocated = image.lookup(&format!("/{deep}")).unwrap().unwrap();
    assert!(relocated.dir);
    let kernel = image
        .read_file(&format!("/{deep}/vmlinuz"), 1 << 20)
        .unwrap()
        .unwrap();
    assert!(kernel == fake_kernel(12));
    let info = inspect(&iso).unwrap();
    assert_eq!(info.entries.len(), 1, "{:?}", info.warnings);
    assert_eq!(info.entries[0].kernel, format!("/{deep}/vmlinuz"));
}

/// A real Debian kernel (the tier-3 fixture, `scripts/guest-fixtures`, cached in
/// ~/.cache/berth-guest) passes the bzImage check and comes out byte for byte. Runs when the
/// fixture has been built; `BERTH_GUEST_KERNEL` names another kernel.
#[test]
fn real_debian_kernel_when_the_fixture_is_there() {
    // Where scripts/test-lab keeps the fixtures.
    let fixtures = std::env::var_os("BERTH_FIXTURES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                .map(|c| c.join("berth-guest"))
        });
    let kernel = std::env::var_os("BERTH_GUEST_KERNEL")
        .map(PathBuf::from)
        .or_else(|| fixtures.map(|f| f.join("bzImage")))
        .filter(|p| p.is_file());
    let Some(kernel) = kernel else {
        eprintln!("no guest kernel fixture (scripts/guest-fixtures); skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("real");
    let bytes = std::fs::read(&kernel).unwrap();
    write(&tree, "install.amd/vmlinuz", &bytes);
    write(&tree, "install.amd/initrd.gz", &blob(4_096, 12));
    let iso = dir.path().join("real.iso");
    xorriso(&tree, &iso, &["-V", "Debian 12 amd64 n", "-R", "-J"]);
    let info = inspect(&iso).unwrap();
    assert_eq!(info.entries.len(), 1, "{:?}", info.warnings);
    assert_eq!(info.entries[0].source, "layout");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let boot = extract_boot(&iso, None, &out).unwrap();
    assert!(std::fs::read(&boot.kernel).unwrap() == bytes);
}

/// `.treeinfo` names the distribution and version; a `LiveOS/squashfs.img` makes it live.
#[test]
fn treeinfo_and_live_os() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("fedora-live");
    write(
        &tree,
        ".treeinfo",
        b"[header]\ntype = productmd.treeinfo\nversion = 1.2\n\n[release]\nname = Fedora\nshort = Fedora\nversion = 39\n\n[general]\nfamily = Fedora\nversion = 39\n",
    );
    write(&tree, "LiveOS/squashfs.img", b"hsqs");
    write(
        &tree,
        "boot/grub2/grub.cfg",
        b"menuentry 'Start Fedora-Workstation-Live 39' --class fedora {\n\tlinux /images/pxeboot/vmlinuz root=live:CDLABEL=Fedora-WS-Live-39-1-5 rd.live.image quiet rhgb\n\tinitrd /images/pxeboot/initrd.img\n}\n",
    );
    write(&tree, "images/pxeboot/vmlinuz", &fake_kernel(13));
    write(&tree, "images/pxeboot/initrd.img", &blob(2_000, 14));
    let iso = dir.path().join("fedora-live.iso");
    xorriso(&tree, &iso, &["-V", "Fedora-WS-Live-39-1-5", "-R", "-J"]);
    let info = inspect(&iso).unwrap();
    assert_eq!(info.distro.as_deref(), Some("Fedora"));
    assert_eq!(info.version.as_deref(), Some("39"));
    assert_eq!(info.description.as_deref(), Some("Fedora 39"));
    assert_eq!(info.kind, IsoKind::Live);
    assert_eq!(info.suggested.memory, 4 << 30);
    assert_eq!(info.entries.len(), 1, "{:?}", info.warnings);
    assert_eq!(info.entries[0].source, "/boot/grub2/grub.cfg");
}
