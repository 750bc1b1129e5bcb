//! Layers: turning a tar stream into a stored gzip blob (with both digests), and applying a
//! layer onto a directory with OCI whiteouts.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// `sha256:<hex>` of everything read, and how many bytes.
    pub fn finish(self) -> (String, u64) {
        (
            format!("sha256:{}", hex(&self.hasher.finalize())),
            self.count,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// The inner writer, `sha256:<hex>` of everything written, and how many bytes.
    pub fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            format!("sha256:{}", hex(&self.hasher.finalize())),
            self.count,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of a byte slice.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// `reader` decompressed as its first bytes say (the gzip or zstd magic), so plain and
/// compressed tars are read alike.
pub fn decompressed<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::new(reader);
    let head = buffered.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        // Every member: a gzip file may be several (pigz's, Berth's own), as Go's reader
        // takes them; a single-member decoder would end the layer after the first.
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&super::zstd::MAGIC) {
        Box::new(super::zstd::ZstdReader::new(buffered))
    } else {
        Box::new(buffered)
    })
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The layer is not a readable tar stream.
    #[error("the layer is not a valid tar stream: {0}")]
    Tar(io::Error),
    /// An entry would land outside the root (an absolute or `..` path, or through a symlink).
    #[error("the layer entry `{0}` points outside the image")]
    Escape(String),
    /// Writing into the root failed.
    #[error("cannot write `{path}`: {source}")]
    Write { path: String, source: io::Error },
}

/// A path inside a layer made relative and free of `.`/`..`, or None if it would escape.
fn clean(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Remove a file, a symlink or a whole directory tree; nothing there is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `path` under `root` passes through a symlink on the way (so writing there would
/// land somewhere else).
fn through_symlink(root: &Path, rel: &Path) -> bool {
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        at.push(part);
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

/// Gives `path` the entry's owner, then its mode again (a change of owner may clear set-id
/// bits). An owner this process's user namespace does not have (a rootless daemon with one
/// id: `EINVAL`) is left as it is: the file stays the daemon's, root's inside.
fn own(path: &Path, uid: u64, gid: u64, mode: u32, symlink: bool) -> io::Result<()> {
    let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
        return Ok(());
    };
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(()),
        Err(e) => return Err(e),
    }
    if !symlink && mode & 0o6000 != 0 {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(())
}

/// Apply an uncompressed layer tar onto `root`: whiteouts delete what lower layers put there
/// (`.wh.NAME` removes NAME, `.wh..wh..opq` empties the directory of lower-layer entries), other
/// entries are written with their modes and owners.
pub fn apply_layer(tar_stream: impl Read, root: &Path) -> Result<(), ApplyError> {
    let mut archive = tar::Archive::new(tar_stream);
    archive.set_preserve_permissions(true);
    // Owners are set by `own`, which knows what a rootless daemon cannot give.
    archive.set_preserve_ownerships(false);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    // Paths this layer wrote: an opaque whiteout hides lower layers, not the layer itself.
    let mut written: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries().map_err(ApplyError::Tar)? {
        let mut entry = entry.map_err(ApplyError::Tar)?;
        let raw = entry.path().map_err(ApplyError::Tar)?.into_owned();
        let rel = clean(&raw).ok_or_else(|| ApplyError::Escape(raw.display().to_string()))?;
        if rel.as_os_str().is_empty() {
            continue; // the root itself ("./")
        }
        if through_symlink(root, &rel) {
            return Err(ApplyError::Escape(raw.display().to_string()));
        }
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        let write_err = |source| ApplyError::Write {
            path: rel.display().to_string(),
            source,
        };
        if name == OPAQUE {
            let dir = root.join(&parent);
            if let Ok(children) = fs::read_dir(&dir) {
                for child in children.flatten() {
                    let child_rel = parent.join(child.file_name());
                    if !written.contains(&child_rel) {
                        remove_any(&child.path()).map_err(write_err)?;
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            remove_any(&root.join(&parent).join(hidden)).map_err(write_err)?;
            continue;
        }
        // A directory replacing a file (or the other way round) replaces it whole.
        let target = root.join(&rel);
        if let Ok(meta) = fs::symlink_metadata(&target)
            && (meta.is_dir() != entry.header().entry_type().is_dir()
                || meta.file_type().is_symlink())
        {
            remove_any(&target).map_err(write_err)?;
        }
        let header = entry.header();
        let owner = (
            header.uid().map_err(ApplyError::Tar)?,
            header.gid().map_err(ApplyError::Tar)?,
            header.mode().map_err(ApplyError::Tar)?,
            header.entry_type().is_symlink(),
        );
        let hard_link = header.entry_type().is_hard_link();
        let unpacked = entry.unpack_in(root).map_err(write_err)?;
        if !unpacked {
            return Err(ApplyError::Escape(raw.display().to_string()));
        }
        // A hard link shares its target's owner, set with the target.
        if !hard_link {
            let (uid, gid, mode, symlink) = owner;
            own(&target, uid, gid, mode, symlink).map_err(write_err)?;
        }
        written.insert(rel);
    }
    Ok(())
}

/// Write a tar of the directory `dir` (its contents, with owners and modes) to `out`,
/// entries in sorted order so the same tree (same owners, modes and times) gives the same bytes.
pub fn tar_directory(dir: &Path, out: impl Write) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    // Complete: owners, modes and times as they are on disk (Deterministic would make every
    // file root-owned 644/755, losing --chown, --chmod and what RUN set).
    builder.mode(tar::HeaderMode::Complete);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut children: Vec<_> = fs::read_dir(dir.join(&rel))?.collect::<Result<_, _>>()?;
        children.sort_by_key(|c| c.file_name());
        for child in children.into_iter().rev() {
            let child_rel = rel.join(child.file_name());
            if child.file_type()?.is_dir() {
                stack.push(child_rel.clone());
            }
            builder.append_path_with_name(child.path(), &child_rel)?;
        }
    }
    builder.into_inner()?.flush()
}

/// Whether overlayfs marked this upper directory opaque (it replaces the lower one whole): in
/// `trusted.overlay.opaque` when mounted by root, in `user.overlay.opaque` when mounted in a
/// user namespace (a rootless daemon's containers).
fn overlay_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    [c"trusted.overlay.opaque", c"user.overlay.opaque"]
        .into_iter()
        .any(|name| {
            let mut value = [0u8; 4];
            // SAFETY: NUL-terminated path and name; the buffer and its length match.
            let n = unsafe {
                libc::lgetxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            n == 1 && value[0] == b'y'
        })
}

/// Write an overlayfs upper directory as an OCI layer: overlay's whiteouts (character devices
/// 0:0) become `.wh.NAME` entries and opaque directories get `.wh..wh..opq`, so the layer
/// means the same to anyone who applies it.
pub fn tar_overlay_upper(dir: &Path, out: impl Write) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    // Complete: owners, modes and times as they are on disk (Deterministic would make every
    // file root-owned 644/755, losing --chown, --chmod and what RUN set).
    builder.mode(tar::HeaderMode::Complete);
    let marker = |builder: &mut tar::Builder<_>, name: &Path| -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(0);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        builder.append_data(&mut header, name, io::empty())
    };
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut children: Vec<_> = fs::read_dir(dir.join(&rel))?.collect::<Result<_, _>>()?;
        children.sort_by_key(|c| c.file_name());
        for child in children.into_iter().rev() {
            let child_rel = rel.join(child.file_name());
            let meta = fs::symlink_metadata(child.path())?;
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                let name = format!("{WHITEOUT_PREFIX}{}", child.file_name().to_string_lossy());
                marker(&mut builder, &rel.join(name))?;
                continue;
            }
            builder.append_path_with_name(child.path(), &child_rel)?;
            if meta.is_dir() {
                if overlay_opaque(&child.path()) {
                    marker(&mut builder, &child_rel.join(OPAQUE))?;
                }
                stack.push(child_rel);
            }
        }
    }
    builder.into_inner()?.flush()
}

/// Write the filesystem a container sees as one tar (`export`): `lower`, the image's root,
/// with overlayfs' upper directory `upper` over it, merged as overlayfs merges them (a whiteout
/// hides what is below it, an opaque directory replaces the one below).
pub fn tar_merged(lower: &Path, upper: &Path, out: impl Write) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    let names = |dir: &Path| -> io::Result<Vec<std::ffi::OsString>> {
        match fs::read_dir(dir) {
            Ok(entries) => entries.map(|e| e.map(|e| e.file_name())).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    };
    // (a directory, relative; whether the lower side still shows through it)
    let mut stack = vec![(PathBuf::new(), true)];
    while let Some((rel, with_lower)) = stack.pop() {
        let mut all = names(&upper.join(&rel))?;
        if with_lower {
            all.extend(names(&lower.join(&rel))?);
        }
        all.sort();
        all.dedup();
        for name in all.into_iter().rev() {
            let child = rel.join(&name);
            let (up, low) = (upper.join(&child), lower.join(&child));
            let (path, meta, shows_lower) = match fs::symlink_metadata(&up) {
                Ok(meta) if meta.file_type().is_char_device() && meta.rdev() == 0 => continue,
                Ok(meta) => {
                    let below = with_lower
                        && meta.is_dir()
                        && !overlay_opaque(&up)
                        && fs::symlink_metadata(&low).is_ok_and(|m| m.is_dir());
                    (up, meta, below)
                }
                Err(_) if with_lower => match fs::symlink_metadata(&low) {
                    Ok(meta) => (low, meta, true),
                    Err(_) => continue,
                },
                Err(_) => continue,
            };
            builder.append_path_with_name(&path, &child)?;
            if meta.is_dir() {
                stack.push((child, shows_lower));
            }
        }
    }
    builder.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_merged_tree_is_what_overlayfs_shows() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
        for d in ["etc", "gone", "replaced/old", "kept"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        fs::write(lower.join("etc/os"), "image\n").unwrap();
        fs::write(lower.join("etc/changed"), "before\n").unwrap();
        fs::write(lower.join("kept/file"), "k\n").unwrap();
        fs::write(lower.join("replaced/old/file"), "o\n").unwrap();
        symlink("etc/os", lower.join("link")).unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::create_dir_all(upper.join("replaced/new")).unwrap();
        fs::write(upper.join("etc/changed"), "after\n").unwrap();
        fs::write(upper.join("added"), "new\n").unwrap();
        // overlayfs' whiteout: a character device 0:0 (made with mknod, as root).
        let whiteout = std::ffi::CString::new(upper.join("gone").to_str().unwrap()).unwrap();
        // SAFETY: mknod on a NUL-terminated path.
        if unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR | 0o600, 0) } != 0 {
            eprintln!("skipped: making a whiteout needs root");
            return;
        }
        let opaque = std::ffi::CString::new(upper.join("replaced").to_str().unwrap()).unwrap();
        // SAFETY: setxattr of a NUL-terminated name and a one-byte value.
        unsafe {
            libc::setxattr(
                opaque.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            );
        }
        let mut bytes = Vec::new();
        tar_merged(&lower, &upper, &mut bytes).unwrap();
        let mut seen = BTreeMap::new();
        for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            let _ = io::Read::read_to_string(&mut entry, &mut text);
            seen.insert(path, text);
        }
        let paths: Vec<&str> = seen.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "added",
                "etc",
                "etc/changed",
                "etc/os",
                "kept",
                "kept/file",
                "link",
                "replaced",
                "replaced/new"
            ]
        );
        assert_eq!(seen["etc/changed"], "after\n");
        assert_eq!(seen["etc/os"], "image\n");
    }

    /// A header with the owner and time fields set, as real tars have them.
    fn header() -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_mode(0o644);
        header
    }

    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = header();
            match data {
                Some(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    header.set_mode(0o644);
                    builder.append_data(&mut header, path, *bytes).unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    builder.append_data(&mut header, path, &[][..]).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_remove_lower_layer_files_and_opaque_dirs_empty_them() {
        let root = tempfile::tempdir().unwrap();
        let lower = tar_of(&[
            ("etc/", None),
            ("etc/keep", Some(b"k")),
            ("etc/gone", Some(b"g")),
            ("var/", None),
            ("var/cache/", None),
            ("var/cache/old", Some(b"o")),
        ]);
        apply_layer(&lower[..], root.path()).unwrap();
        let upper = tar_of(&[
            ("etc/.wh.gone", Some(b"")),
            ("var/cache/new", Some(b"n")),
            ("var/cache/.wh..wh..opq", Some(b"")),
        ]);
        apply_layer(&upper[..], root.path()).unwrap();
        assert_eq!(fs::read(root.path().join("etc/keep")).unwrap(), b"k");
        assert!(!root.path().join("etc/gone").exists());
        assert!(
            !root.path().join("etc/.wh.gone").exists(),
            "whiteouts are markers, not files"
        );
        assert!(
            !root.path().join("var/cache/old").exists(),
            "opaque dir hides the lower layer"
        );
        assert_eq!(
            fs::read(root.path().join("var/cache/new")).unwrap(),
            b"n",
            "but not its own layer"
        );
    }

    #[test]
    fn entries_cannot_escape_the_root() {
        let root = tempfile::tempdir().unwrap();
        let inside = root.path().join("rootfs");
        fs::create_dir(&inside).unwrap();
        // A symlink to the outside, then a file written through it.
        let mut builder = tar::Builder::new(Vec::new());
        let mut link = header();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder.append_link(&mut link, "evil", root.path()).unwrap();
        let mut file = header();
        file.set_size(1);
        builder
            .append_data(&mut file, "evil/planted", &b"x"[..])
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        let err = apply_layer(&bytes[..], &inside).unwrap_err();
        assert!(matches!(err, ApplyError::Escape(_)), "{err}");
        assert!(!root.path().join("planted").exists());
    }

    #[test]
    fn tar_directory_is_deterministic_and_round_trips() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("a/b")).unwrap();
        fs::write(src.path().join("a/b/file"), b"hello").unwrap();
        std::os::unix::fs::symlink("b/file", src.path().join("a/link")).unwrap();
        let (mut one, mut two) = (Vec::new(), Vec::new());
        tar_directory(src.path(), &mut one).unwrap();
        tar_directory(src.path(), &mut two).unwrap();
        assert_eq!(one, two);
        let dst = tempfile::tempdir().unwrap();
        apply_layer(&one[..], dst.path()).unwrap();
        assert_eq!(fs::read(dst.path().join("a/link")).unwrap(), b"hello");
        assert!(
            fs::symlink_metadata(dst.path().join("a/link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}
