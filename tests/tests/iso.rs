//! ISO images through a real berthd and berthctl: `iso inspect` in a table and in JSON, and
//! `vm create --iso` accepting a Linux image, making an image only a PC BIOS starts start
//! through the firmware, and refusing, with the reason and nothing created, images berth cannot
//! boot. The images are built here with xorriso.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_e2e::{Daemon, open_tempdir, text};

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Bytes that pass for a bzImage (the boot protocol's `HdrS` at 0x202).
fn fake_kernel() -> Vec<u8> {
    let mut k = vec![0x90u8; 20_000];
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k
}

fn xorriso(tree: &Path, out: &Path, args: &[&str]) {
    let status = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(out)
        .args(args)
        .arg(tree)
        .status()
        .expect("xorriso runs (Debian package xorriso; scripts/test installs it)");
    assert!(status.success());
}

/// A GRUB-layout Linux image with two entries, the second the default.
fn linux_iso(dir: &Path) -> PathBuf {
    let tree = dir.join("linux");
    write(
        &tree,
        "boot/grub/grub.cfg",
        b"set default=1\nmenuentry 'Rescue' {\n  linux /casper/vmlinuz single\n  initrd /casper/initrd\n}\nmenuentry 'Try Ubuntu' {\n  linux /casper/vmlinuz --- quiet splash\n  initrd /casper/initrd\n}\n",
    );
    write(&tree, "casper/vmlinuz", &fake_kernel());
    write(&tree, "casper/initrd", b"070701 not really cpio");
    let iso = dir.join("linux.iso");
    xorriso(&tree, &iso, &["-V", "Ubuntu 24.04 LTS amd64", "-R", "-J"]);
    iso
}

/// A Windows-shaped image with a BIOS boot image, as Windows images have (etfsboot; ISOLINUX
/// stands in for it).
fn windows_iso(dir: &Path) -> PathBuf {
    let tree = dir.join("windows");
    write(&tree, "sources/install.wim", b"MSWIM");
    write(&tree, "bootmgr", b"x");
    write(
        &tree,
        "boot/etfsboot.com",
        &std::fs::read("/usr/lib/ISOLINUX/isolinux.bin").unwrap(),
    );
    let iso = dir.join("windows.iso");
    xorriso(
        &tree,
        &iso,
        &[
            "-V",
            "CCCOMA_X64FRE_EN-US_DV9",
            "-J",
            "-b",
            "boot/etfsboot.com",
            "-no-emul-boot",
            "-boot-load-size",
            "8",
        ],
    );
    iso
}

/// A pure El Torito image (no MBR) whose ISOLINUX menu names no kernel: only a PC BIOS, from a
/// CD drive, starts it.
fn el_torito_iso(dir: &Path) -> PathBuf {
    let tree = dir.join("rescue");
    write(
        &tree,
        "isolinux/isolinux.bin",
        &std::fs::read("/usr/lib/ISOLINUX/isolinux.bin").unwrap(),
    );
    write(&tree, "isolinux/isolinux.cfg", b"prompt 1\n");
    let iso = dir.join("rescue.iso");
    xorriso(
        &tree,
        &iso,
        &[
            "-V",
            "RESCUE",
            "-R",
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
        ],
    );
    iso
}

/// An image with only a UEFI boot image.
fn uefi_iso(dir: &Path) -> PathBuf {
    let tree = dir.join("uefi");
    write(&tree, "efi.img", &[0xf6; 64 << 10]);
    let iso = dir.join("uefi.iso");
    xorriso(
        &tree,
        &iso,
        &["-R", "-e", "efi.img", "-c", "boot.cat", "-no-emul-boot"],
    );
    iso
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn inspect_in_a_table_and_in_json() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let iso = linux_iso(dir.path());

    let out = daemon.berthctl(&["iso", "inspect", s(&iso)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Ubuntu 24.04 LTS amd64"), "{stdout}");
    assert!(stdout.contains("live system"), "{stdout}");
    let first = stdout
        .lines()
        .find(|l| l.starts_with("0*"))
        .unwrap_or_default();
    assert!(
        first.contains("Try Ubuntu") && first.contains("--- quiet splash"),
        "{stdout}"
    );

    let out = daemon.berthctl(&["iso", "inspect", s(&iso), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["volume_id"], "Ubuntu 24.04 LTS amd64");
    assert_eq!(json["names"], "rock_ridge");
    assert_eq!(json["entries"][0]["title"], "Try Ubuntu");
    assert_eq!(json["entries"][1]["cmdline"], "single");
    assert_eq!(json["entries"][0]["kernel"], "/casper/vmlinuz");
    assert_eq!(json["suggested"]["cpus"], 2);

    let out = daemon.berthctl(&["iso", "inspect", s(&windows_iso(dir.path()))]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.contains("Berth cannot boot this image") && stdout.contains("Windows"),
        "{stdout}"
    );
}

#[test]
fn vm_create_boots_only_linux_isos_and_creates_nothing_otherwise() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let linux = linux_iso(dir.path());
    let windows = windows_iso(dir.path());
    let bytes = std::fs::read(&linux).unwrap();
    let truncated = dir.path().join("truncated.iso");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let random = dir.path().join("random.iso");
    std::fs::write(
        &random,
        (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();

    let out = daemon.berthctl(&[
        "vm",
        "create",
        "live",
        "--memory",
        "512M",
        "--iso",
        s(&linux),
        "--entry",
        "1",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("linux.iso"), "{stdout}");

    for (name, iso, entry, want) in [
        ("win", &windows, None, "Windows"),
        ("cut", &truncated, None, "truncated"),
        ("noise", &random, None, "not an ISO 9660 image"),
        ("nine", &linux, Some("9"), "no boot entry 9"),
    ] {
        let mut args = vec!["vm", "create", name, "--memory", "512M", "--iso", s(iso)];
        if let Some(n) = entry {
            args.extend(["--entry", n]);
        }
        let out = daemon.berthctl(&args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert!(
            !daemon.state_dir.join("vms").join(name).exists(),
            "{name} left a directory"
        );
    }
    // Resources left out come from the image's suggestion (Ubuntu live: 2 CPUs, 4 GiB,
    // 25 GiB), fitted to the host.
    let out = daemon.berthctl(&["--json", "vm", "create", "sized", "--iso", s(&linux)]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let vm: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let host: serde_json::Value =
        serde_json::from_slice(&daemon.berthctl(&["--json", "host"]).stdout).unwrap();
    let cores = host["total"]["cpus"].as_f64().unwrap() as u64;
    let memory = host["total"]["memory"].as_u64().unwrap();
    assert_eq!(vm["config"]["cpus"].as_u64(), Some(2.min(cores)));
    assert_eq!(
        vm["config"]["memory"].as_u64(),
        Some((4u64 << 30).min(memory / 2))
    );
    assert!(vm["config"]["disk"]["size"].as_u64().unwrap() > 0);
    assert_eq!(
        daemon.berthctl(&["vm", "delete", "sized"]).status.code(),
        Some(0)
    );

    let out = daemon.berthctl(&["--json", "vm", "list"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["config"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["live"]);
}

#[test]
fn an_image_only_a_bios_starts_is_created_to_start_through_the_firmware() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let rescue = el_torito_iso(dir.path());

    let out = daemon.berthctl(&["iso", "inspect", s(&rescue)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("through the VM's firmware"), "{stdout}");
    assert!(!stdout.contains("cannot boot"), "{stdout}");

    // No --boot: the firmware, from the CD drive.
    let out = daemon.berthctl(&[
        "vm",
        "create",
        "rescue",
        "--memory",
        "256M",
        "--disk",
        "0",
        "--iso",
        s(&rescue),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let show = text(&daemon.berthctl(&["vm", "show", "rescue"])).0;
    assert!(show.contains("its ISO (firmware)"), "{show}\n{stdout}");
    // Ejected, a VM without a disk has nothing left to start, and says so.
    let out = daemon.berthctl(&["vm", "eject", "rescue"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("nothing to boot yet"), "{stdout}");
    // Asked to start its kernel directly: there is none Berth reads, and berthd says how else.
    let out = daemon.berthctl(&[
        "vm",
        "create",
        "direct",
        "--memory",
        "256M",
        "--iso",
        s(&rescue),
        "--boot",
        "kernel",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--boot iso"), "{stderr}");

    // Through the firmware, images without a boot image for a PC BIOS are refused, named.
    let linux = linux_iso(dir.path());
    let uefi = uefi_iso(dir.path());
    let windows = windows_iso(dir.path());
    for (name, iso, want) in [
        ("uefi", &uefi, "UEFI firmware"),
        ("nobios", &linux, "cannot start through the firmware"),
        ("win", &windows, "no drivers for the disks"),
    ] {
        let out = daemon.berthctl(&[
            "vm",
            "create",
            name,
            "--memory",
            "256M",
            "--iso",
            s(iso),
            "--boot",
            "iso",
        ]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert!(!daemon.state_dir.join("vms").join(name).exists(), "{name}");
    }
    // An image with nothing to start at all says why without --boot too.
    let out = daemon.berthctl(&[
        "vm",
        "create",
        "uefi",
        "--memory",
        "256M",
        "--iso",
        s(&uefi),
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("UEFI firmware"), "{stderr}");

    // `vm edit --iso` with another such image: the VM starts from it through the firmware.
    let out = daemon.berthctl(&[
        "vm",
        "create",
        "later",
        "--memory",
        "256M",
        "--iso",
        s(&linux),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = daemon.berthctl(&["vm", "edit", "later", "--iso", s(&rescue)]);
    assert!(out.status.success(), "{}", text(&out).1);
    let show = text(&daemon.berthctl(&["vm", "show", "later"])).0;
    assert!(show.contains("its ISO (firmware)"), "{show}");
    // Back to the Linux image, at its first entry: its kernel, directly.
    let out = daemon.berthctl(&["vm", "edit", "later", "--iso", s(&linux), "--entry", "0"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("its kernel (direct boot)"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("Entry") && l.ends_with(" 0")),
        "{stdout}"
    );
}
