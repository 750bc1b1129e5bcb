//! The ISO 9660 reader: volume descriptors, directories (Rock Ridge, Joliet or plain names),
//! files by path, and the El Torito boot catalog.
//!
//! Every number read from the image is checked before it is used: extents must lie inside the
//! image, directory records inside their directory, SUSP entries inside their area. Paths are
//! resolved component by component (never by walking the whole tree), and a directory that
//! leads back to one already on the path is reported as a loop.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use berth_api::iso::{BootImage, NameScheme};

use crate::IsoError;

/// ISO 9660 sectors ("logical blocks"); images with other block sizes are refused.
pub const SECTOR: u64 = 2048;
/// Volume descriptors start at sector 16.
const FIRST_DESCRIPTOR: u64 = 16;
/// More descriptors than this means the set has no terminator.
const MAX_DESCRIPTORS: u64 = 64;
/// A directory larger than this is not something a bootable ISO has.
const MAX_DIRECTORY: u64 = 16 << 20;
/// Path components resolved at most (the tree itself is at most 8 levels in plain ISO 9660).
const MAX_DEPTH: usize = 64;
/// SUSP continuation areas followed per record at most (a CE may point at itself).
const MAX_CONTINUATIONS: usize = 16;

/// Where the image's bytes come from: a file, or memory (tests, fuzzing).
pub trait Source {
    fn size(&self) -> u64;
    /// Fill `buf` from `offset`; the caller has checked the range lies inside `size()`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl Source for File {
    fn size(&self) -> u64 {
        self.metadata().map_or(0, |m| m.len())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.read_exact_at(buf, offset)
    }
}

impl Source for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A contiguous run of a file's bytes, as a byte range of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    offset: u64,
    len: u64,
}

/// A file or directory found on the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub dir: bool,
    /// Bytes in total.
    pub size: u64,
    extents: Vec<Extent>,
}

/// An open ISO image.
pub struct Iso<S: Source> {
    source: S,
    size: u64,
    volume_id: String,
    names: NameScheme,
    root: Entry,
    /// Bytes to skip at the start of each System Use area (from the SUSP `SP` entry).
    susp_skip: usize,
    boot_catalog: Option<u32>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

impl Iso<File> {
    /// Open the image at `path`.
    pub fn open(path: &Path) -> Result<Iso<File>, IsoError> {
        let file = File::open(path).map_err(|source| IsoError::Io {
            what: format!("open {}", path.display()),
            source,
        })?;
        Iso::new(file)
    }
}

impl<S: Source> Iso<S> {
    /// Read the volume descriptors and pick the tree whose names to use.
    pub fn new(source: S) -> Result<Iso<S>, IsoError> {
        let size = source.size();
        if size < (FIRST_DESCRIPTOR + 1) * SECTOR {
            return Err(IsoError::NotIso(format!(
                "it is {size} bytes long, shorter than the 34 KiB where an ISO 9660 image's first volume descriptor ends"
            )));
        }
        let mut primary = None;
        let mut joliet = None;
        let mut boot_catalog = None;
        let mut terminated = false;
        for n in 0..MAX_DESCRIPTORS {
            let at = (FIRST_DESCRIPTOR + n) * SECTOR;
            if at + SECTOR > size {
                break;
            }
            let mut d = vec![0u8; SECTOR as usize];
            source
                .read_at(at, &mut d)
                .map_err(|e| IsoError::io("read a volume descriptor", e))?;
            if &d[1..6] != b"CD001" {
                // UDF's volume recognition sequence sits where ISO 9660's descriptors would.
                if n == 0 && matches!(&d[1..6], b"BEA01" | b"NSR02" | b"NSR03") {
                    return Err(IsoError::NotIso(
                        "it is a UDF-only image with no ISO 9660 file system (Windows installation media are made this way); berth boots Linux images".into(),
                    ));
                }
                if n == 0 {
                    return Err(IsoError::NotIso(
                        "there is no ISO 9660 volume descriptor (`CD001`) at sector 16".into(),
                    ));
                }
                return Err(IsoError::Corrupt(format!(
                    "volume descriptor {n} (sector {}) lacks the `CD001` identifier before the set's terminator",
                    FIRST_DESCRIPTOR + n
                )));
            }
            match d[0] {
                0 if d[7..30].starts_with(b"EL TORITO SPECIFICATION") => {
                    boot_catalog = Some(le32(&d, 71));
                }
                1 if primary.is_none() => primary = Some(d),
                // Joliet is a supplementary descriptor whose escape sequences name UCS-2.
                2 if d[88] == b'%' && d[89] == b'/' && matches!(d[90], b'@' | b'C' | b'E') => {
                    joliet.get_or_insert(d);
                }
                255 => {
                    terminated = true;
                    break;
                }
                _ => {}
            }
        }
        let Some(pvd) = primary else {
            return Err(IsoError::Corrupt(if terminated {
                "the volume descriptor set has no primary volume descriptor".into()
            } else {
                "no primary volume descriptor and no terminator in the first 64 descriptors".into()
            }));
        };
        let block = le16(&pvd, 128);
        if u64::from(block) != SECTOR {
            return Err(IsoError::Unsupported(format!(
                "logical blocks of {block} bytes (only 2048 is supported)"
            )));
        }
        let declared = u64::from(le32(&pvd, 80)) * SECTOR;
        if declared > size {
            return Err(IsoError::Truncated {
                declared,
                actual: size,
            });
        }
        let volume_id = String::from_utf8_lossy(&pvd[40..72]).trim().to_owned();
        let mut iso = Iso {
            source,
            size,
            volume_id,
            names: NameScheme::Iso9660,
            root: Entry {
                name: String::new(),
                dir: true,
                size: 0,
                extents: Vec::new(),
            },
            susp_skip: 0,
            boot_catalog,
        };
        let pvd_root = iso.root_record(&pvd[156..190])?;
        iso.root = pvd_root.clone();
        // Rock Ridge announces itself with a SUSP `SP` entry in the root's "." record.
        let root_data = iso.read_extents(&pvd_root, MAX_DIRECTORY, "the root directory")?;
        if let Some(skip) = sp_entry(&root_data) {
            iso.susp_skip = skip;
            iso.names = NameScheme::RockRidge;
        } else if let Some(svd) = joliet {
            iso.root = iso.root_record(&svd[156..190])?;
            iso.names = NameScheme::Joliet;
        }
        Ok(iso)
    }

    fn root_record(&self, record: &[u8]) -> Result<Entry, IsoError> {
        if record.first().copied().unwrap_or(0) < 34 {
            return Err(IsoError::Corrupt(
                "the root directory record is shorter than 34 bytes".into(),
            ));
        }
        let extent = self.extent(record, "the root directory")?;
        Ok(Entry {
            name: String::new(),
            dir: true,
            size: extent.len,
            extents: vec![extent],
        })
    }

    fn extent(&self, record: &[u8], what: &str) -> Result<Extent, IsoError> {
        let lba = u64::from(le32(record, 2)) + u64::from(record.get(1).copied().unwrap_or(0));
        let len = u64::from(le32(record, 10));
        let offset = lba * SECTOR;
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(IsoError::Corrupt(format!(
                "{what} lies at bytes {offset}..{} beyond the image's {} bytes",
                offset.saturating_add(len),
                self.size
            )));
        }
        Ok(Extent { offset, len })
    }

    pub fn volume_id(&self) -> &str {
        &self.volume_id
    }

    pub fn names(&self) -> NameScheme {
        self.names
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Every byte of `entry`, refusing files over `limit` bytes.
    fn read_extents(&self, entry: &Entry, limit: u64, what: &str) -> Result<Vec<u8>, IsoError> {
        if entry.size > limit {
            return Err(IsoError::TooLarge {
                what: what.to_owned(),
                size: entry.size,
                limit,
            });
        }
        let mut out = Vec::with_capacity(entry.size as usize);
        for extent in &entry.extents {
            let start = out.len();
            out.resize(start + extent.len as usize, 0);
            self.source
                .read_at(extent.offset, &mut out[start..])
                .map_err(|e| IsoError::io(&format!("read {what}"), e))?;
        }
        Ok(out)
    }

    /// The entries of a directory ("." and ".." left out).
    pub fn read_dir(&self, dir: &Entry) -> Result<Vec<Entry>, IsoError> {
        let data = self.read_extents(dir, MAX_DIRECTORY, "a directory")?;
        let mut entries: Vec<Entry> = Vec::new();
        // A multi-extent file is several records with the same name, all but the last flagged.
        let mut pending: Option<Entry> = None;
        let mut pos = 0usize;
        while pos < data.len() {
            let len = usize::from(data[pos]);
            if len == 0 {
                // Records never cross a sector: a zero length pads to the next one.
                pos = (pos / SECTOR as usize + 1) * SECTOR as usize;
                continue;
            }
            let Some(record) = data.get(pos..pos + len).filter(|_| len >= 34) else {
                return Err(IsoError::Corrupt(format!(
                    "a directory record at byte {pos} of a directory claims {len} bytes, outside 34..={}",
                    data.len() - pos
                )));
            };
            pos += len;
            let name_len = usize::from(record[32]);
            let Some(raw_name) = record.get(33..33 + name_len) else {
                return Err(IsoError::Corrupt(format!(
                    "a directory record's name ({name_len} bytes) runs past its record ({len} bytes)"
                )));
            };
            if name_len == 1 && (raw_name[0] == 0 || raw_name[0] == 1) {
                continue;
            }
            let flags = record[25];
            let mut name = match self.names {
                NameScheme::Joliet => joliet_name(raw_name),
                _ => plain_name(raw_name),
            };
            if self.names == NameScheme::RockRidge {
                let su_start = 33 + name_len + usize::from(name_len % 2 == 0);
                let su = record.get(su_start..).unwrap_or(&[]);
                let su = su.get(self.susp_skip..).unwrap_or(&[]);
                let rr = self.rock_ridge(su)?;
                if rr.relocated {
                    // A relocated directory shows up again through its child link.
                    continue;
                }
                if let Some(rr_name) = rr.name {
                    name = rr_name;
                }
                if let Some(lba) = rr.child {
                    entries.push(self.child_link(name, lba)?);
                    continue;
                }
            }
            let what = format!("`{name}`");
            let extent = self.extent(record, &what)?;
            let entry = pending.take().filter(|p| p.name == name);
            let mut entry = entry.unwrap_or(Entry {
                name,
                dir: flags & 0x02 != 0,
                size: 0,
                extents: Vec::new(),
            });
            entry.size += extent.len;
            entry.extents.push(extent);
            if flags & 0x80 != 0 {
                pending = Some(entry);
            } else {
                entries.push(entry);
            }
        }
        if let Some(entry) = pending {
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The directory a Rock Ridge `CL` record at sector `lba` links to, named `name`: its
    /// extent comes from its own "." record, checked like any other.
    fn child_link(&self, name: String, lba: u32) -> Result<Entry, IsoError> {
        let offset = u64::from(lba) * SECTOR;
        if offset + 34 > self.size {
            return Err(IsoError::Corrupt(format!(
                "the Rock Ridge child link of `{name}` points at sector {lba}, beyond the image"
            )));
        }
        let mut dot = [0u8; 34];
        self.source
            .read_at(offset, &mut dot)
            .map_err(|e| IsoError::io(&format!("read the relocated directory `{name}`"), e))?;
        if dot[0] < 34 || dot[25] & 0x02 == 0 {
            return Err(IsoError::Corrupt(format!(
                "the Rock Ridge child link of `{name}` points at sector {lba}, which holds no directory"
            )));
        }
        let extent = self.extent(&dot, &format!("the relocated directory `{name}`"))?;
        Ok(Entry {
            name,
            dir: true,
            size: extent.len,
            extents: vec![extent],
        })
    }

    /// Rock Ridge facts from a System Use area, following continuation areas.
    fn rock_ridge(&self, area: &[u8]) -> Result<RockRidge, IsoError> {
        let mut rr = RockRidge::default();
        let mut name: Option<Vec<u8>> = None;
        let mut area = area.to_vec();
        for _ in 0..MAX_CONTINUATIONS {
            let mut next = None;
            let mut i = 0usize;
            while i + 4 <= area.len() {
                let len = usize::from(area[i + 2]);
                let Some(e) = area.get(i..i + len).filter(|_| len >= 4) else {
                    break;
                };
                match &e[0..2] {
                    // Flags: 1 = continues in the next NM, 2 = ".", 4 = "..".
                    b"NM" if e.len() >= 5 && e[4] & 0x06 == 0 => {
                        name.get_or_insert_with(Vec::new).extend_from_slice(&e[5..]);
                    }
                    b"RE" => rr.relocated = true,
                    b"CL" if e.len() >= 12 => rr.child = Some(le32(e, 4)),
                    b"CE" if e.len() >= 28 => {
                        let offset = u64::from(le32(e, 4)) * SECTOR + u64::from(le32(e, 12));
                        let len = u64::from(le32(e, 20));
                        if len > SECTOR || offset + len > self.size {
                            return Err(IsoError::Corrupt(format!(
                                "a Rock Ridge continuation area ({len} bytes at {offset}) lies outside the image or is over 2 KiB"
                            )));
                        }
                        next = Some((offset, len));
                    }
                    b"ST" => break,
                    _ => {}
                }
                i += len;
            }
            let Some((offset, len)) = next else {
                rr.name = name.map(|n| String::from_utf8_lossy(&n).into_owned());
                return Ok(rr);
            };
            area = vec![0u8; len as usize];
            self.source
                .read_at(offset, &mut area)
                .map_err(|e| IsoError::io("read a Rock Ridge continuation area", e))?;
        }
        Err(IsoError::Corrupt(format!(
            "Rock Ridge continuation areas chain more than {MAX_CONTINUATIONS} times (a loop?)"
        )))
    }

    /// Find `path` (`/`-separated, from the root). Names match exactly, or else ignoring case
    /// (plain ISO 9660 names are upper case while configs name them in lower case).
    pub fn lookup(&self, path: &str) -> Result<Option<Entry>, IsoError> {
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.len() > MAX_DEPTH {
            return Err(IsoError::BadPath(format!(
                "{path} has more than {MAX_DEPTH} components"
            )));
        }
        let mut current = self.root.clone();
        let mut on_path = vec![current.extents.first().map(|e| e.offset)];
        for (i, part) in parts.iter().enumerate() {
            if *part == ".." {
                return Err(IsoError::BadPath(format!("{path} uses `..`")));
            }
            if !current.dir {
                return Ok(None);
            }
            let entries = self.read_dir(&current)?;
            let found = entries
                .iter()
                .find(|e| e.name == *part)
                .or_else(|| entries.iter().find(|e| e.name.eq_ignore_ascii_case(part)));
            let Some(found) = found else {
                return Ok(None);
            };
            if found.dir {
                let start = found.extents.first().map(|e| e.offset);
                if on_path.contains(&start) {
                    return Err(IsoError::Corrupt(format!(
                        "directory /{} leads back to a directory above it (a loop)",
                        parts[..=i].join("/")
                    )));
                }
                on_path.push(start);
            }
            current = found.clone();
        }
        Ok(Some(current))
    }

    /// The file at `path`, or `None` when there is none (a directory is not a file).
    pub fn file(&self, path: &str) -> Result<Option<Entry>, IsoError> {
        Ok(self.lookup(path)?.filter(|e| !e.dir))
    }

    /// All bytes of the file at `path`, refusing files over `limit` bytes; `None` if absent.
    pub fn read_file(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, IsoError> {
        match self.file(path)? {
            Some(entry) => self.read_extents(&entry, limit, path).map(Some),
            None => Ok(None),
        }
    }

    /// The first `len` bytes of `entry` (fewer if it is shorter).
    pub fn read_head(&self, entry: &Entry, len: usize) -> Result<Vec<u8>, IsoError> {
        let mut out = Vec::new();
        for extent in &entry.extents {
            let want = (len - out.len()).min(extent.len as usize);
            let start = out.len();
            out.resize(start + want, 0);
            self.source
                .read_at(extent.offset, &mut out[start..])
                .map_err(|e| IsoError::io(&format!("read `{}`", entry.name), e))?;
            if out.len() == len {
                break;
            }
        }
        Ok(out)
    }

    /// Copy every byte of `entry` to `out`, a MiB at a time.
    pub fn copy(&self, entry: &Entry, out: &mut dyn Write) -> Result<u64, IsoError> {
        let mut buf = vec![0u8; 1 << 20];
        for extent in &entry.extents {
            let mut done = 0u64;
            while done < extent.len {
                let n = (extent.len - done).min(buf.len() as u64) as usize;
                self.source
                    .read_at(extent.offset + done, &mut buf[..n])
                    .map_err(|e| IsoError::io(&format!("read `{}`", entry.name), e))?;
                out.write_all(&buf[..n])
                    .map_err(|e| IsoError::io("write an extracted file", e))?;
                done += n as u64;
            }
        }
        Ok(entry.size)
    }

    /// The El Torito boot images, from the boot catalog. A catalog that does not validate
    /// gives an error the caller may report as a warning: the files are still readable.
    pub fn boot_images(&self) -> Result<Vec<BootImage>, IsoError> {
        let Some(lba) = self.boot_catalog else {
            return Ok(Vec::new());
        };
        let offset = u64::from(lba) * SECTOR;
        if offset + SECTOR > self.size {
            return Err(IsoError::Corrupt(format!(
                "the El Torito boot catalog (sector {lba}) lies beyond the image"
            )));
        }
        let mut c = vec![0u8; SECTOR as usize];
        self.source
            .read_at(offset, &mut c)
            .map_err(|e| IsoError::io("read the El Torito boot catalog", e))?;
        let sum = (0..16).fold(0u16, |s, i| s.wrapping_add(le16(&c, i * 2)));
        if c[0] != 1 || c[30] != 0x55 || c[31] != 0xAA || sum != 0 {
            return Err(IsoError::Corrupt(
                "the El Torito boot catalog's validation entry is invalid".into(),
            ));
        }
        let mut images = vec![boot_image(c[1], &c[32..64])];
        let mut at = 64;
        // Section headers (0x90, the last 0x91) each precede `count` section entries.
        while at + 32 <= c.len() {
            let header = &c[at..at + 32];
            if header[0] != 0x90 && header[0] != 0x91 {
                break;
            }
            let platform = header[1];
            let count = usize::from(le16(header, 2));
            at += 32;
            for _ in 0..count {
                let Some(entry) = c.get(at..at + 32) else {
                    break;
                };
                if entry[0] == 0x88 || entry[0] == 0x00 {
                    images.push(boot_image(platform, entry));
                }
                at += 32;
            }
            if header[0] == 0x91 {
                break;
            }
        }
        Ok(images)
    }
}

fn boot_image(platform: u8, e: &[u8]) -> BootImage {
    BootImage {
        platform: match platform {
            0 => BootImage::BIOS.into(),
            0xEF => BootImage::UEFI.into(),
            other => format!("{other:#04x}"),
        },
        bootable: e[0] == 0x88,
        emulation: match e[1] & 0x0F {
            0 => "none".into(),
            1..=3 => "floppy".into(),
            4 => "hard_disk".into(),
            other => format!("{other}"),
        },
        sectors: le16(e, 6),
        lba: le32(e, 8),
    }
}

#[derive(Default)]
struct RockRidge {
    name: Option<String>,
    relocated: bool,
    /// `CL`: this record stands for a directory relocated elsewhere (deep trees are moved
    /// under `rr_moved` to keep ISO 9660's 8 levels); the sector where that directory is.
    child: Option<u32>,
}

/// The SUSP skip length if the root directory's "." record starts its System Use area with `SP`.
fn sp_entry(root: &[u8]) -> Option<usize> {
    let len = usize::from(*root.first()?);
    let record = root.get(..len)?;
    let name_len = usize::from(*record.get(32)?);
    let su = record.get(33 + name_len + usize::from(name_len % 2 == 0)..)?;
    (su.len() >= 7 && &su[0..2] == b"SP" && su[4] == 0xBE && su[5] == 0xEF)
        .then(|| usize::from(su[6]))
}

/// A plain ISO 9660 name without its `;1` version and the dot of a name with no extension.
fn plain_name(raw: &[u8]) -> String {
    let name = String::from_utf8_lossy(raw);
    let name = name.split(';').next().unwrap_or("");
    name.strip_suffix('.').unwrap_or(name).to_owned()
}

fn joliet_name(raw: &[u8]) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let name = String::from_utf16_lossy(&units);
    name.split(';').next().unwrap_or("").to_owned()
}
