//! COPY and ADD: the files a step puts into its layer, placed as BuildKit places them.
//!
//! - A directory source copies what it holds (as the context shows it: ignored paths left out)
//!   into the destination; a file or symlink source lands at the destination, or inside it when
//!   the destination is a directory (it ends in `/`, several sources match, or the image has a
//!   directory there).
//! - A named source that is a symlink is followed (its target's content under the link's
//!   name); symlinks inside a copied directory stay symlinks.
//! - The destination is resolved in the image as the image sees it: a symlink on the way (or
//!   at the end) is followed, so `COPY a /link/` writes into the directory the link names.
//! - Owners: `--chown` if given; else root for the context's files, and the files' own owners
//!   for `--from` copies. `--chmod` gives files and directories that mode.
//! - Directories the image already has keep their owner and mode, the destination too (even
//!   under `--chown`, as buildah keeps it); missing ones on the way are made 0755, owned as the
//!   copied files are.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::context::{Context, Source, clean_relative, resolve_in_root};
use super::ignore::IgnoreRules;
use crate::image::layer::{apply_layer, decompressed};

/// Where and how copied files land.
#[derive(Clone, Copy)]
pub struct Placement<'a> {
    /// The destination, absolute in the image.
    pub target: &'a str,
    /// The destination is a directory whatever the image has there (it ends in `/`, or
    /// several sources match).
    pub into_dir: bool,
    /// The image's root as the step starts.
    pub image_root: &'a Path,
    /// `--chown`.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`.
    pub mode: Option<u32>,
    /// ADD: local tar archives are unpacked.
    pub unpack_archives: bool,
    /// A `--from` copy keeps the files' owners.
    pub keep_owners: bool,
    /// `--exclude`: what is left out below each copied directory (paths relative to it).
    pub exclude: Option<&'a IgnoreRules>,
}

/// `COPY --parents`: each source at its place below the target (from
/// [`Context::resolve_parents`]), the directories on the way made as `from` has them below
/// `base` (mode, and owner as the copy keeps owners), a directory source itself too.
pub fn stage_copy_parents(
    from: &Context,
    base: &Path,
    sources: &[(Source, PathBuf)],
    place: &Placement<'_>,
    layer_dir: &Path,
) -> Result<(), String> {
    let written = clean_relative(place.target.trim_start_matches('/')).unwrap_or_default();
    let target = resolve_in_root(place.image_root, &written, true)?;
    let writer = Writer { place, layer_dir };
    writer.dirs(&target, place.owner.unwrap_or((0, 0)))?;
    for (source, at) in sources {
        let is_dir = fs::metadata(from.root().join(&source.path)).is_ok_and(|m| m.is_dir());
        // The directories from the pivot down (and a directory source itself).
        let mut on_the_way: Vec<&Path> = at.ancestors().skip(1).collect();
        on_the_way.reverse();
        if is_dir {
            on_the_way.push(at);
        }
        for dir in on_the_way.into_iter().filter(|d| !d.as_os_str().is_empty()) {
            let dest = target.join(dir);
            if layer_dir.join(&dest).exists() {
                continue;
            }
            let original = from
                .root()
                .join(resolve_in_root(from.root(), &base.join(dir), true)?);
            let meta = fs::metadata(&original).map_err(|e| format!("{}: {e}", dir.display()))?;
            writer
                .place(&original, &meta, &dest)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let into = if is_dir {
            at.as_path()
        } else {
            at.parent().unwrap_or(Path::new(""))
        };
        let inner = Placement {
            target: &format!("/{}", target.join(into).display()),
            into_dir: true,
            ..*place
        };
        stage_copy(from, std::slice::from_ref(source), &inner, layer_dir)?;
    }
    Ok(())
}

/// Puts `sources` (in `from`) into `layer_dir` as the step's layer holds them.
pub fn stage_copy(
    from: &Context,
    sources: &[Source],
    place: &Placement<'_>,
    layer_dir: &Path,
) -> Result<(), String> {
    let written = clean_relative(place.target.trim_start_matches('/')).unwrap_or_default();
    let target = resolve_in_root(place.image_root, &written, true)?;
    let target_is_dir = place.into_dir
        || fs::symlink_metadata(place.image_root.join(&target)).is_ok_and(|m| m.is_dir());
    let new_owner = place.owner.unwrap_or((0, 0));
    let writer = Writer { place, layer_dir };
    for source in sources {
        let full = from.root().join(&source.path);
        let meta =
            fs::symlink_metadata(&full).map_err(|e| format!("{}: {e}", source.path.display()))?;
        if place.unpack_archives && meta.is_file() && is_archive(&full) {
            writer.dirs(&target, new_owner)?;
            let dest = layer_dir.join(&target);
            let file = fs::File::open(&full).map_err(|e| e.to_string())?;
            apply_layer(decompressed(file).map_err(|e| e.to_string())?, &dest)
                .map_err(|e| format!("{}: {e}", source.path.display()))?;
            continue;
        }
        if meta.is_dir() {
            // The directory itself is not copied, only what it holds: one the image has stays
            // as it is, even under `--chown`/`--chmod` (as buildah leaves it); a new one is made
            // as the missing directories on the way are.
            writer.dirs(&target, new_owner)?;
            let mut dirs = Vec::new();
            for entry in from.entries(&source.path) {
                let inside = entry.strip_prefix(&source.path).unwrap_or(&entry);
                let dest = target.join(inside);
                if let Some(rules) = place.exclude {
                    if rules.ignored(&inside.to_string_lossy()) {
                        continue;
                    }
                    // Below a directory left out (an exception brought this back): its
                    // directories on the way are made as missing ones are.
                    if let Some(parent) = dest.parent()
                        && !layer_dir.join(parent).exists()
                    {
                        writer.dirs(parent, new_owner)?;
                    }
                }
                let entry_meta = fs::symlink_metadata(from.root().join(&entry))
                    .map_err(|e| format!("{}: {e}", entry.display()))?;
                writer
                    .place(&from.root().join(&entry), &entry_meta, &dest)
                    .map_err(|e| format!("{}: {e}", entry.display()))?;
                if entry_meta.is_dir() {
                    dirs.push((dest, entry_meta));
                }
            }
            // Directory times last: filling a directory changes its own.
            for (dir, meta) in dirs.iter().rev() {
                set_modified(&layer_dir.join(dir), meta);
            }
            continue;
        }
        let dest = if target_is_dir {
            target.join(&source.name)
        } else {
            target.clone()
        };
        let parent = dest.parent().map(Path::to_path_buf).unwrap_or_default();
        writer.dirs(&parent, new_owner)?;
        writer
            .place(&full, &meta, &dest)
            .map_err(|e| format!("{}: {e}", source.path.display()))?;
    }
    Ok(())
}

/// The directories down to `dir` (relative) in `layer_dir`: as the image at `image_root` has
/// them (same owner, mode and time, so applying the layer leaves them as they were), or new
/// ones 0755 owned by `owner`. WORKDIR makes its directory so.
pub fn make_dirs(
    layer_dir: &Path,
    image_root: &Path,
    dir: &Path,
    owner: (u32, u32),
) -> Result<(), String> {
    let mut at = PathBuf::new();
    for part in dir.components() {
        at.push(part);
        let made = layer_dir.join(&at);
        if fs::symlink_metadata(&made).is_ok() {
            continue;
        }
        let failed = |e: io::Error| format!("{}: {e}", at.display());
        fs::create_dir(&made).map_err(failed)?;
        match fs::symlink_metadata(image_root.join(&at)) {
            Ok(meta) if meta.is_dir() => {
                set_owner(&made, (meta.uid(), meta.gid())).map_err(failed)?;
                set_mode(&made, meta.mode() & 0o7777).map_err(failed)?;
                set_modified(&made, &meta);
            }
            _ => {
                set_owner(&made, owner).map_err(failed)?;
                set_mode(&made, 0o755).map_err(failed)?;
            }
        }
    }
    Ok(())
}

struct Writer<'a> {
    place: &'a Placement<'a>,
    layer_dir: &'a Path,
}

impl Writer<'_> {
    /// The owner a copied entry gets.
    fn owner_of(&self, meta: &fs::Metadata) -> (u32, u32) {
        match self.place.owner {
            Some(owner) => owner,
            None if self.place.keep_owners => (meta.uid(), meta.gid()),
            None => (0, 0),
        }
    }

    fn mode_of(&self, meta: &fs::Metadata) -> u32 {
        self.place.mode.unwrap_or(meta.mode() & 0o7777)
    }

    /// The directories down to `dir` in the layer, as [`make_dirs`] makes them.
    fn dirs(&self, dir: &Path, owner: (u32, u32)) -> Result<(), String> {
        make_dirs(self.layer_dir, self.place.image_root, dir, owner)
    }

    /// One entry (file, directory or symlink) at `dest` in the layer; other kinds (sockets,
    /// devices) are left out as BuildKit leaves them out of a context.
    fn place(&self, source: &Path, meta: &fs::Metadata, dest: &Path) -> io::Result<()> {
        let made = self.layer_dir.join(dest);
        let kind = meta.file_type();
        if kind.is_dir() {
            if !fs::symlink_metadata(&made).is_ok_and(|m| m.is_dir()) {
                fs::create_dir(&made)?;
            }
        } else if kind.is_symlink() {
            remove_file_if_there(&made)?;
            std::os::unix::fs::symlink(fs::read_link(source)?, &made)?;
            return set_owner(&made, self.owner_of(meta));
        } else if kind.is_file() {
            remove_file_if_there(&made)?;
            fs::copy(source, &made)?;
            set_modified(&made, meta);
        } else {
            return Ok(());
        }
        set_owner(&made, self.owner_of(meta))?;
        // After the owner: a change of owner clears set-id bits.
        set_mode(&made, self.mode_of(meta))
    }
}

fn remove_file_if_there(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if !m.is_dir() => fs::remove_file(path),
        _ => Ok(()),
    }
}

/// lchown, where an id this process's user namespace does not have (a rootless daemon with one
/// id: `EINVAL`) leaves the entry the daemon's, as applying a layer does.
fn set_owner(path: &Path, (uid, gid): (u32, u32)) -> io::Result<()> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// The source's modification time, as COPY keeps it; best effort (a time is not content).
fn set_modified(path: &Path, meta: &fs::Metadata) {
    if let (Ok(modified), Ok(file)) = (meta.modified(), fs::File::open(path)) {
        let _ = file.set_modified(modified);
    }
}

/// Whether a file is a tar archive (plain or gzip), which ADD unpacks.
fn is_archive(path: &Path) -> bool {
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    let Ok(mut reader) = decompressed(file) else {
        return false;
    };
    let mut header = [0u8; 512];
    let mut got = 0;
    while got < header.len() {
        match io::Read::read(&mut reader, &mut header[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got == 512 && &header[257..262] == b"ustar"
}
