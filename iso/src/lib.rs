//! berth-iso reads ISO 9660 images — Rock Ridge and Joliet names, El Torito boot records —
//! without mounting them and without external tools, and finds how the Linux on them boots.
//!
//! Berth boots an ISO fastest by loading the kernel and initramfs named by the image's own boot
//! menus (isolinux/syslinux, GRUB, or a known distro layout), with the image in the VM's CD
//! drive; what it cannot read that way may still start through the VM's firmware from the CD
//! drive, when the image has an El Torito boot image for a PC BIOS (`BootFrom::Iso`).
//!
//! - [`inspect`]: what an image is and its boot entries, as the API's [`IsoInfo`].
//! - [`bootable`]: the check `vm create --iso` makes: the entry exists and boots Linux.
//! - [`extract_boot`]: what the VM supervisor calls at start: the entry's kernel and initramfs
//!   copied out to a directory, with its command line.
//! - [`image`]: the ISO 9660 reader itself; [`syslinux`], [`grub`]: the config parsers.
//!
//! Every byte of the image is untrusted: a truncated or random file, extents beyond the image,
//! directory loops and malformed configs give an [`IsoError`] or a warning, never a panic.

pub mod entries;
pub mod grub;
pub mod identity;
pub mod image;
pub mod menu;
pub mod syslinux;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_api::iso::{IsoBootEntry, IsoInfo};

pub use image::{Iso, Source};

/// Why an image could not be read or booted. Messages say what is wrong with the file.
#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("not an ISO 9660 image: {0}")]
    NotIso(String),
    #[error(
        "the image is truncated: its volume descriptor says {declared} bytes but the file has {actual} (an interrupted download or copy?)"
    )]
    Truncated { declared: u64, actual: u64 },
    #[error("the image is damaged: {0}")]
    Corrupt(String),
    #[error("the image uses {0}, which berth cannot read")]
    Unsupported(String),
    #[error("{what} is {size} bytes, more than the {limit} bytes berth reads for it")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("bad path inside the image: {0}")]
    BadPath(String),
    #[error("{0}")]
    NotBootable(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl IsoError {
    fn io(what: &str, source: std::io::Error) -> IsoError {
        IsoError::Io {
            what: what.to_owned(),
            source,
        }
    }
}

/// Inspect the image at `path`: identity, boot images, Linux boot entries (default first).
pub fn inspect(path: &Path) -> Result<IsoInfo, IsoError> {
    let iso = Iso::open(path)?;
    Ok(inspect_image(&iso, path))
}

/// [`inspect`] on an image already open (any [`Source`]); `path` is only reported.
pub fn inspect_image<S: Source>(iso: &Iso<S>, path: &Path) -> IsoInfo {
    let mut warnings = Vec::new();
    let boot_images = iso.boot_images().unwrap_or_else(|e| {
        warnings.push(e.to_string());
        Vec::new()
    });
    let found = entries::find(iso, &mut warnings);
    let id = identity::identify(iso, &found, &mut warnings);
    let unbootable = if found.is_empty() {
        identity::why_unbootable(iso, &boot_images)
    } else {
        None
    };
    IsoInfo {
        path: path.to_owned(),
        size: iso.size(),
        volume_id: iso.volume_id().to_owned(),
        names: iso.names(),
        distro: id.distro,
        version: id.version,
        description: id.description,
        kind: id.kind,
        boot_images,
        entries: found,
        suggested: id.suggested,
        unbootable,
        warnings,
    }
}

/// The entry `vm create --iso FILE --entry N` would boot directly (the default when `entry` is
/// `None`), or why there is none: no Linux on the image that Berth reads, or no entry N.
pub fn bootable(info: &IsoInfo, entry: Option<u32>) -> Result<&IsoBootEntry, IsoError> {
    if info.entries.is_empty() {
        return Err(IsoError::NotBootable(match &info.unbootable {
            Some(why) => why.clone(),
            None => "Berth reads no Linux kernel on it to start directly (no boot menu or known layout names one); its firmware can start it from the CD drive instead: `--boot iso`".into(),
        }));
    }
    let n = entry.unwrap_or(0);
    info.entries.get(n as usize).ok_or_else(|| {
        IsoError::NotBootable(format!(
            "it has no boot entry {n}: its entries are 0..={} (see `berthctl iso inspect`)",
            info.entries.len() - 1
        ))
    })
}

/// What [`extract_boot`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedBoot {
    /// `dest/kernel`.
    pub kernel: PathBuf,
    /// `dest/initrd`: the entry's initramfs files concatenated (each but the last padded to 4
    /// bytes, as GRUB loads several), or `None` when the entry has none.
    pub initrd: Option<PathBuf>,
    /// The entry's command line as the image's config gives it; the supervisor adds its own
    /// (`console=ttyS0`, …).
    pub cmdline: String,
    pub entry: IsoBootEntry,
}

/// Extract boot entry `entry` (the default when `None`) of the image at `iso` into `dest` (an
/// existing directory): its kernel as `dest/kernel` and its initramfs as `dest/initrd`.
/// Files are written under temporary names and renamed, so a failure leaves no partial
/// `kernel` or `initrd`. Called by the VM supervisor when a VM with `BootSource::Iso` starts;
/// the image itself is then attached to the guest read-only (installers and live systems find
/// their files on it).
///
/// ```no_run
/// # fn main() -> Result<(), berth_iso::IsoError> {
/// use std::path::Path;
/// let dir = Path::new("/var/lib/berth/vms/web/boot");
/// let boot = berth_iso::extract_boot(Path::new("/isos/debian-12.iso"), None, dir)?;
/// let cmdline = format!("console=ttyS0 {}", boot.cmdline);
/// // berth-vmm --kernel boot.kernel [--initrd boot.initrd] --cmdline cmdline, ISO read-only.
/// # let _ = (cmdline, boot.initrd);
/// # Ok(())
/// # }
/// ```
pub fn extract_boot(
    iso: &Path,
    entry: Option<u32>,
    dest: &Path,
) -> Result<ExtractedBoot, IsoError> {
    let image = Iso::open(iso)?;
    let info = inspect_image(&image, iso);
    let chosen = bootable(&info, entry)?.clone();
    let kernel = dest.join("kernel");
    write_out(&image, std::slice::from_ref(&chosen.kernel), &kernel)?;
    let initrd = if chosen.initrds.is_empty() {
        None
    } else {
        let path = dest.join("initrd");
        write_out(&image, &chosen.initrds, &path)?;
        Some(path)
    };
    Ok(ExtractedBoot {
        kernel,
        initrd,
        cmdline: chosen.cmdline.clone(),
        entry: chosen,
    })
}

fn write_out<S: Source>(iso: &Iso<S>, files: &[String], to: &Path) -> Result<(), IsoError> {
    let temp = to.with_extension("part");
    let result = (|| {
        let mut out = File::create(&temp)
            .map_err(|e| IsoError::io(&format!("create {}", temp.display()), e))?;
        for (i, name) in files.iter().enumerate() {
            let entry = iso.file(name)?.ok_or_else(|| {
                IsoError::Corrupt(format!(
                    "{name} disappeared from the image while it was read"
                ))
            })?;
            let n = iso.copy(&entry, &mut out)?;
            // Each archive but the last is padded so the next one starts 4-byte aligned.
            if i + 1 < files.len() && n % 4 != 0 {
                out.write_all(&[0u8; 3][..(4 - n % 4) as usize])
                    .map_err(|e| IsoError::io(&format!("write {}", temp.display()), e))?;
            }
        }
        out.sync_all()
            .map_err(|e| IsoError::io(&format!("sync {}", temp.display()), e))?;
        std::fs::rename(&temp, to)
            .map_err(|e| IsoError::io(&format!("rename to {}", to.display()), e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The fuzz targets' entry point (and its replay test): open arbitrary bytes as an image,
/// inspect it, and read every entry's files. Must never panic.
pub fn fuzz_inspect(data: &[u8]) {
    let Ok(iso) = Iso::new(data) else {
        return;
    };
    let info = inspect_image(&iso, Path::new("fuzz.iso"));
    for entry in &info.entries {
        for path in std::iter::once(&entry.kernel).chain(&entry.initrds) {
            let _ = iso.read_file(path, 1 << 24);
        }
    }
    let _ = iso.lookup("/a/b/c/d/e/f/g/h/i");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_and_short_inputs_are_clear_errors() {
        let err = Iso::new(&b"hello"[..])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not an ISO 9660 image"), "{err}");
        let mut udf = vec![0u8; 64 * 1024];
        udf[16 * 2048 + 1..16 * 2048 + 6].copy_from_slice(b"BEA01");
        let err = Iso::new(&udf[..])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("UDF"), "{err}");
        let zeros = vec![0u8; 64 * 1024];
        let err = Iso::new(&zeros[..])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("CD001"), "{err}");
    }

    #[test]
    fn fuzz_inputs_replay_without_panics() {
        let mut pvd = vec![0u8; 40 * 2048];
        pvd[16 * 2048] = 1;
        pvd[16 * 2048 + 1..16 * 2048 + 6].copy_from_slice(b"CD001");
        pvd[16 * 2048 + 128..16 * 2048 + 130].copy_from_slice(&2048u16.to_le_bytes());
        pvd[16 * 2048 + 80..16 * 2048 + 84].copy_from_slice(&40u32.to_le_bytes());
        // Root record pointing at sector 20 with a directory whose record points at itself.
        let root = 16 * 2048 + 156;
        pvd[root] = 34;
        pvd[root + 2..root + 6].copy_from_slice(&20u32.to_le_bytes());
        pvd[root + 10..root + 14].copy_from_slice(&2048u32.to_le_bytes());
        pvd[root + 25] = 2;
        pvd[17 * 2048] = 255;
        pvd[17 * 2048 + 1..17 * 2048 + 6].copy_from_slice(b"CD001");
        let d = 20 * 2048;
        pvd[d] = 34;
        pvd[d + 2..d + 6].copy_from_slice(&20u32.to_le_bytes());
        pvd[d + 10..d + 14].copy_from_slice(&2048u32.to_le_bytes());
        pvd[d + 25] = 2;
        pvd[d + 32] = 1;
        pvd[d + 33] = b'A';
        fuzz_inspect(&pvd);
        let iso = Iso::new(&pvd[..]).unwrap();
        let err = iso.lookup("/A/A").unwrap_err().to_string();
        assert!(err.contains("loop"), "{err}");

        // A multi-extent file: two records named K, the first flagged "more extents follow".
        let mut multi = pvd.clone();
        let rec = |at: usize, img: &mut Vec<u8>, lba: u32, len: u32, flags: u8| {
            img[at] = 34;
            img[at + 2..at + 6].copy_from_slice(&lba.to_le_bytes());
            img[at + 10..at + 14].copy_from_slice(&len.to_le_bytes());
            img[at + 25] = flags;
            img[at + 32] = 1;
            img[at + 33] = b'K';
        };
        multi[d..d + 34].fill(0);
        rec(d, &mut multi, 30, 2048, 0x80);
        rec(d + 34, &mut multi, 32, 5, 0);
        multi[30 * 2048..31 * 2048].fill(b'a');
        multi[32 * 2048..32 * 2048 + 5].copy_from_slice(b"bbbbb");
        let iso = Iso::new(&multi[..]).unwrap();
        let k = iso.read_file("/k", 1 << 20).unwrap().unwrap();
        assert_eq!(k.len(), 2053);
        assert!(k[..2048].iter().all(|&b| b == b'a') && &k[2048..] == b"bbbbb");
        fuzz_inspect(&multi);

        // An extent past the end.
        let mut bad = pvd.clone();
        bad[d + 2..d + 6].copy_from_slice(&9999u32.to_le_bytes());
        fuzz_inspect(&bad);
        let err = Iso::new(&bad[..])
            .unwrap()
            .lookup("/A")
            .unwrap_err()
            .to_string();
        assert!(err.contains("beyond the image"), "{err}");

        // Truncated.
        let err = Iso::new(&pvd[..30 * 2048])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("truncated"), "{err}");

        for cut in [0, 100, 16 * 2048, 16 * 2048 + 200, 17 * 2048 + 3] {
            fuzz_inspect(&pvd[..cut]);
        }
        // Bytes flipped everywhere in the descriptors and the directory.
        for at in (16 * 2048..16 * 2048 + 200).chain(d..d + 40) {
            let mut flipped = pvd.clone();
            flipped[at] ^= 0xFF;
            fuzz_inspect(&flipped);
        }
    }
}
