//! The image store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) under the
//! daemon's state dir. Blobs are content-addressed and verified when read; `index.json` names
//! images by the `org.opencontainers.image.ref.name` annotation and is replaced atomically.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::layer::{HashingReader, HashingWriter, apply_layer, decompressed, digest_of};
use super::oci::{
    self, Descriptor, History, ImageConfig, Index, MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_MANIFEST,
    Manifest, REF_NAME, RootFs,
};
use super::reference::Reference;

/// Why an image operation failed. Each message says what to do where it can.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The name the user gave is not an image reference.
    #[error("{0}")]
    BadReference(String),
    /// No image has that name.
    #[error("no image named `{0}` (see `berthctl images`)")]
    NotFound(String),
    /// A blob is missing or its content does not match its digest.
    #[error("the image store is damaged: {0}")]
    Corrupt(String),
    /// The file to import is not what it should be.
    #[error("cannot import {path}: {message}")]
    BadImport { path: PathBuf, message: String },
    /// A layer could not be applied.
    #[error(transparent)]
    Apply(#[from] super::layer::ApplyError),
    /// The filesystem failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ImageError + use<> {
    let path = path.to_owned();
    move |source| ImageError::Io { op, path, source }
}

/// An image as resolved from the store.
#[derive(Debug, Clone)]
pub struct Image {
    pub reference: Reference,
    pub manifest_digest: String,
    pub manifest: Manifest,
    pub config: ImageConfig,
}

impl Image {
    /// The image id: its config's digest, as Docker shows it.
    pub fn id(&self) -> &str {
        &self.manifest.config.digest
    }
    /// Compressed size of all layers.
    pub fn size(&self) -> u64 {
        self.manifest.layers.iter().map(|l| l.size).sum()
    }
}

/// Where blobs being received are, under the store's root: not part of the OCI layout, which
/// other tools read.
const INGEST_DIR: &str = "ingest";

/// A blob being received ([`ImageStore::open_ingest`]): its file, where that is, and how many
/// bytes of it are there already.
pub struct Ingest {
    pub file: File,
    pub path: PathBuf,
    pub len: u64,
}

/// The store.
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Open (and create, if missing) a store at `root`.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
        let store = ImageStore {
            root: root.to_owned(),
        };
        let layout = root.join("oci-layout");
        if !layout.exists() {
            store.write_file(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !root.join("index.json").exists() {
            store.save_index(&Index::default())?;
        }
        store.remove_stale_temps();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn temp_path(&self) -> PathBuf {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.root.join(format!(".tmp-{}-{n}", std::process::id()))
    }

    fn remove_stale_temps(&self) {
        if let Ok(entries) = fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// Replace `path` atomically: temp file, fsync, rename, fsync the directory.
    fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
        let temp = self.temp_path();
        let mut file = File::create_new(&temp).map_err(io_err("create", &temp))?;
        let done = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&temp, path))
            .and_then(|()| File::open(path.parent().unwrap_or(&self.root))?.sync_all());
        if done.is_err() {
            let _ = fs::remove_file(&temp);
        }
        done.map_err(io_err("write", path))
    }

    /// The path of a blob, after checking the digest's form (it comes from files that may have
    /// been made elsewhere and must not name a path outside the store).
    fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .ok_or_else(|| ImageError::Corrupt(format!("`{digest}` is not a sha256 digest")))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Store bytes as a blob.
    pub fn put_bytes(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, ImageError> {
        let digest = digest_of(bytes);
        let path = self.blob_path(&digest)?;
        if !path.exists() {
            self.write_file(&path, bytes)?;
        }
        Ok(Descriptor {
            media_type: media_type.into(),
            digest,
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        })
    }

    /// Store a stream as a blob, hashing as it is written; if `expect` names a digest, the
    /// content must match it.
    pub fn put_stream(
        &self,
        media_type: &str,
        reader: impl Read,
        expect: Option<&str>,
    ) -> Result<Descriptor, ImageError> {
        let temp = self.temp_path();
        let file = File::create_new(&temp).map_err(io_err("create", &temp))?;
        let mut writer = HashingWriter::new(file);
        let mut reader = reader;
        let copied = io::copy(&mut reader, &mut writer);
        let (file, digest, size) = writer.finish();
        let result = copied.map_err(io_err("write", &temp)).and_then(|_| {
            if let Some(expected) = expect
                && expected != digest
            {
                return Err(ImageError::Corrupt(format!(
                    "content has digest {digest}, expected {expected}"
                )));
            }
            file.sync_all().map_err(io_err("fsync", &temp))?;
            let path = self.blob_path(&digest)?;
            fs::rename(&temp, &path).map_err(io_err("store", &path))?;
            Ok(Descriptor {
                media_type: media_type.into(),
                digest,
                size,
                annotations: BTreeMap::new(),
            })
        });
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Whether the store has the blob `digest`.
    pub fn has_blob(&self, digest: &str) -> Result<bool, ImageError> {
        Ok(self.blob_path(digest)?.exists())
    }

    /// The file of blob `digest` while a pull receives it (`ingest/HEX`, containerd's word),
    /// opened for appending with what an earlier, interrupted pull left in it. It stays when
    /// a transfer breaks off, so that the next pull asks only for the rest; a pull holds the
    /// store while it writes, so no two write one ingest at once.
    pub fn open_ingest(&self, digest: &str) -> Result<Ingest, ImageError> {
        let blob = self.blob_path(digest)?;
        let dir = self.root.join(INGEST_DIR);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let path = dir.join(blob.file_name().unwrap_or_default());
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let len = file.metadata().map_err(io_err("stat", &path))?.len();
        Ok(Ingest { file, path, len })
    }

    /// Removes what interrupted pulls left (`system prune`).
    pub fn remove_ingests(&self) -> Result<(), ImageError> {
        let dir = self.root.join(INGEST_DIR);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", &dir)(e)),
            _ => Ok(()),
        }
    }

    /// Moves a complete, synced temporary file into place as the blob `digest` (the caller
    /// has checked that its content has that digest).
    pub fn adopt_blob(&self, temp: &Path, digest: &str) -> Result<(), ImageError> {
        let path = self.blob_path(digest)?;
        fs::rename(temp, &path)
            .and_then(|()| File::open(path.parent().unwrap_or(&self.root))?.sync_all())
            .map_err(io_err("store", &path))
    }

    /// A blob's file, for sending it elsewhere (the receiver checks its digest).
    pub fn open_blob_file(&self, digest: &str) -> Result<File, ImageError> {
        self.open_blob(digest)
    }

    /// An image's manifest as stored, byte for byte (its digest is the image's).
    pub fn manifest_bytes(&self, image: &Image) -> Result<Vec<u8>, ImageError> {
        self.read_verified(&image.manifest_digest)
    }

    /// Gives the image named `existing` the name `new` too (`tag`), replacing what `new`
    /// named before.
    pub fn add_name(&self, existing: &str, new: &Reference) -> Result<Image, ImageError> {
        let image = self.resolve(existing)?;
        let name = image.reference.to_string();
        let entry = self
            .index()?
            .manifests
            .into_iter()
            .find(|m| m.annotations.get(REF_NAME) == Some(&name))
            .ok_or_else(|| ImageError::NotFound(name.clone()))?;
        let mut descriptor = entry;
        descriptor.annotations.remove(REF_NAME);
        self.tag(new, &descriptor)?;
        self.resolve(&new.to_string())
    }

    /// Open a blob for reading; the caller checks content where it matters.
    fn open_blob(&self, digest: &str) -> Result<File, ImageError> {
        let path = self.blob_path(digest)?;
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::Corrupt(format!("blob {digest} is missing")),
            _ => ImageError::Io {
                op: "open",
                path,
                source: e,
            },
        })
    }

    /// Read a small blob (a manifest or config) whole and verify its digest.
    fn read_verified(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let mut bytes = Vec::new();
        let path = self.blob_path(digest)?;
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        if digest_of(&bytes) != digest {
            return Err(ImageError::Corrupt(format!(
                "blob {digest} does not match its digest"
            )));
        }
        Ok(bytes)
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, digest: &str) -> Result<T, ImageError> {
        serde_json::from_slice(&self.read_verified(digest)?).map_err(|e| {
            ImageError::Corrupt(format!("blob {digest} is not the JSON expected: {e}"))
        })
    }

    fn index(&self) -> Result<Index, ImageError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::Corrupt(format!("{}: {e}", path.display())))
    }

    fn save_index(&self, index: &Index) -> Result<(), ImageError> {
        let bytes =
            serde_json::to_vec_pretty(index).map_err(|e| ImageError::Corrupt(e.to_string()))?;
        self.write_file(&self.root.join("index.json"), &bytes)
    }

    /// Point `reference` at a manifest, replacing what it named before.
    pub fn tag(&self, reference: &Reference, manifest: &Descriptor) -> Result<(), ImageError> {
        let mut index = self.index()?;
        let name = reference.to_string();
        index
            .manifests
            .retain(|m| m.annotations.get(REF_NAME) != Some(&name));
        let mut entry = manifest.clone();
        entry.annotations.insert(REF_NAME.into(), name);
        index.manifests.push(entry);
        self.save_index(&index)
    }

    /// Find an image by name (`name[:tag]`).
    pub fn resolve(&self, text: &str) -> Result<Image, ImageError> {
        let reference = Reference::parse(text).map_err(ImageError::BadReference)?;
        let name = reference.to_string();
        let index = self.index()?;
        let entry = index
            .manifests
            .iter()
            .find(|m| m.annotations.get(REF_NAME) == Some(&name))
            .ok_or_else(|| ImageError::NotFound(name.clone()))?;
        let manifest: Manifest = self.read_json(&entry.digest)?;
        let config: ImageConfig = self.read_json(&manifest.config.digest)?;
        Ok(Image {
            reference,
            manifest_digest: entry.digest.clone(),
            manifest,
            config,
        })
    }

    /// Every named image.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let mut images = Vec::new();
        for entry in self.index()?.manifests {
            if let Some(name) = entry.annotations.get(REF_NAME) {
                images.push(self.resolve(name)?);
            }
        }
        images.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(images)
    }

    /// Remove a name; blobs no other image uses are deleted.
    pub fn remove(&self, text: &str) -> Result<(), ImageError> {
        let image = self.resolve(text)?;
        let mut index = self.index()?;
        let name = image.reference.to_string();
        index
            .manifests
            .retain(|m| m.annotations.get(REF_NAME) != Some(&name));
        self.save_index(&index)?;
        self.collect_garbage()
    }

    /// Delete blobs that no manifest in the index reaches.
    pub fn collect_garbage(&self) -> Result<(), ImageError> {
        let mut live = HashSet::new();
        for entry in self.index()?.manifests {
            live.insert(entry.digest.clone());
            if let Ok(manifest) = self.read_json::<Manifest>(&entry.digest) {
                live.insert(manifest.config.digest);
                live.extend(manifest.layers.into_iter().map(|l| l.digest));
            }
        }
        let dir = self.root.join("blobs/sha256");
        for blob in fs::read_dir(&dir).map_err(io_err("read", &dir))?.flatten() {
            let digest = format!("sha256:{}", blob.file_name().to_string_lossy());
            if !live.contains(&digest) {
                fs::remove_file(blob.path()).map_err(io_err("remove", &blob.path()))?;
            }
        }
        Ok(())
    }

    /// Store a layer from a tar stream (plain or gzip): the blob is gzip, and the diff id (the
    /// digest of the uncompressed tar) is returned beside its descriptor.
    pub fn put_layer(&self, tar_stream: impl Read) -> Result<(Descriptor, String), ImageError> {
        let mut plain =
            HashingReader::new(decompressed(tar_stream).map_err(io_err("read", &self.root))?);
        let temp = self.temp_path();
        let file = File::create_new(&temp).map_err(io_err("create", &temp))?;
        let mut hashing = HashingWriter::new(file);
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let copied = super::gzip::compress(
            &mut plain,
            &mut hashing,
            flate2::Compression::fast(),
            threads,
        )
        .map(|()| hashing);
        let result = copied
            .map_err(io_err("compress into", &temp))
            .and_then(|hashing| {
                let (file, digest, size) = hashing.finish();
                file.sync_all().map_err(io_err("fsync", &temp))?;
                let path = self.blob_path(&digest)?;
                fs::rename(&temp, &path).map_err(io_err("store", &path))?;
                Ok(Descriptor {
                    media_type: MEDIA_LAYER_GZIP.into(),
                    digest,
                    size,
                    annotations: BTreeMap::new(),
                })
            });
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        let (diff_id, _) = plain.finish();
        Ok((result?, diff_id))
    }

    /// Write config and manifest for `layers` and name the result.
    pub fn commit(
        &self,
        reference: &Reference,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
    ) -> Result<Image, ImageError> {
        let config_bytes =
            serde_json::to_vec(config).map_err(|e| ImageError::Corrupt(e.to_string()))?;
        let config_desc = self.put_bytes(MEDIA_CONFIG, &config_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            config: config_desc,
            layers,
        };
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| ImageError::Corrupt(e.to_string()))?;
        let manifest_desc = self.put_bytes(MEDIA_MANIFEST, &manifest_bytes)?;
        self.tag(reference, &manifest_desc)?;
        self.resolve(&reference.to_string())
    }

    /// Import a file as an image: an OCI archive (recognised by its `oci-layout` and
    /// `index.json`) keeps its layers and config; any other tar is taken as a root filesystem.
    pub fn import(&self, path: &Path, name: &str) -> Result<Vec<Image>, ImageError> {
        if archive_kind(path)?.layout {
            self.import_oci_archive(path, Some(name))
        } else {
            Ok(vec![self.import_rootfs(path, name)?])
        }
    }

    /// Load an image archive (`berthctl load`): an OCI archive or a docker-archive, its images
    /// under the names it gives them.
    pub fn load(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        let kind = archive_kind(path)?;
        if kind.layout {
            self.import_oci_archive(path, None)
        } else if kind.docker {
            super::archive::load_docker_archive(self, path)
        } else {
            Err(ImageError::BadImport {
                path: path.to_owned(),
                message: "not an image archive (an OCI archive or a docker-archive); a root filesystem is imported with `berthctl import`".into(),
            })
        }
    }

    /// Import a root filesystem tarball (plain or gzip) as a one-layer image named `name`.
    pub fn import_rootfs(&self, path: &Path, name: &str) -> Result<Image, ImageError> {
        let reference = Reference::parse(name).map_err(ImageError::BadReference)?;
        let bad = |message: String| ImageError::BadImport {
            path: path.to_owned(),
            message,
        };
        let file = File::open(path).map_err(|e| bad(e.to_string()))?;
        // Check it is a tar before storing anything: walk the entries once.
        let mut entries = 0usize;
        let mut archive = tar::Archive::new(decompressed(&file).map_err(|e| bad(e.to_string()))?);
        for entry in archive
            .entries()
            .map_err(|e| bad(format!("not a tar archive ({e})")))?
        {
            entry.map_err(|e| bad(format!("not a valid tar archive ({e})")))?;
            entries += 1;
        }
        if entries == 0 {
            return Err(bad("the archive is empty".into()));
        }
        let file = File::open(path).map_err(|e| bad(e.to_string()))?;
        let (layer, diff_id) = self.put_layer(file)?;
        let config = ImageConfig {
            created: Some(berth_api::time::now_rfc3339()),
            architecture: "amd64".into(),
            os: "linux".into(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff_id],
            },
            history: vec![History {
                created: Some(berth_api::time::now_rfc3339()),
                created_by: Some(format!("berthctl import {}", path.display())),
                empty_layer: false,
            }],
            ..ImageConfig::default()
        };
        self.commit(&reference, &config, vec![layer])
    }

    /// Import an OCI archive (a tar of an OCI image layout, as `podman save --format
    /// oci-archive` or `skopeo copy oci-archive:` make). Its images keep their names; an
    /// archive with one image may be renamed with `name`. Every blob is verified.
    pub fn import_oci_archive(
        &self,
        path: &Path,
        name: Option<&str>,
    ) -> Result<Vec<Image>, ImageError> {
        let bad = |message: String| ImageError::BadImport {
            path: path.to_owned(),
            message,
        };
        let file = File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut archive = tar::Archive::new(decompressed(file).map_err(|e| bad(e.to_string()))?);
        let mut index: Option<Index> = None;
        let mut docker_manifest = false;
        for entry in archive
            .entries()
            .map_err(|e| bad(format!("not a tar archive ({e})")))?
        {
            let mut entry = entry.map_err(|e| bad(format!("not a valid tar archive ({e})")))?;
            let entry_path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
            let entry_path = entry_path
                .strip_prefix("./")
                .unwrap_or(&entry_path)
                .to_path_buf();
            if entry_path == Path::new("index.json") {
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| bad(e.to_string()))?;
                index = Some(
                    serde_json::from_slice(&bytes).map_err(|e| bad(format!("index.json: {e}")))?,
                );
            } else if entry_path == Path::new("manifest.json") {
                docker_manifest = true;
            } else if let Ok(hex) = entry_path.strip_prefix("blobs/sha256")
                && entry.header().entry_type().is_file()
            {
                let digest = format!("sha256:{}", hex.display());
                self.blob_path(&digest)?;
                self.put_stream("", &mut entry, Some(&digest))
                    .map_err(|e| bad(format!("{}: {e}", entry_path.display())))?;
            }
        }
        let Some(index) = index else {
            if docker_manifest && name.is_none() {
                return super::archive::load_docker_archive(self, path);
            }
            return Err(bad(if docker_manifest {
                "a docker-archive keeps its images' names: load it (berthctl load) rather than import it".into()
            } else {
                "no index.json: not an OCI archive".into()
            }));
        };
        let manifests: Vec<&Descriptor> = index
            .manifests
            .iter()
            .filter(|m| m.media_type == oci::MEDIA_MANIFEST || m.media_type == oci::DOCKER_MANIFEST)
            .collect();
        if manifests.is_empty() {
            return Err(bad("its index names no image manifest".into()));
        }
        if name.is_some() && manifests.len() > 1 {
            return Err(bad(format!(
                "it holds {} images; import it without a name to keep theirs",
                manifests.len()
            )));
        }
        let mut imported = Vec::new();
        for manifest_desc in manifests {
            let manifest: Manifest = self.read_json(&manifest_desc.digest)?;
            self.read_json::<ImageConfig>(&manifest.config.digest)?;
            for layer in &manifest.layers {
                self.open_blob(&layer.digest)?;
            }
            let given = manifest_desc.annotations.get(REF_NAME).cloned();
            let text = match (name, given) {
                (Some(n), _) => n.to_owned(),
                // skopeo writes just a tag ("latest") as the ref name; that is not an image name.
                (None, Some(g))
                    if g.contains(|c: char| c == '/' || c.is_ascii_lowercase())
                        && !g.starts_with(':') =>
                {
                    g
                }
                _ => return Err(bad("an image in it has no name; give one".into())),
            };
            let reference = Reference::parse(&text).map_err(ImageError::BadReference)?;
            self.tag(&reference, manifest_desc)?;
            imported.push(self.resolve(&reference.to_string())?);
        }
        Ok(imported)
    }

    /// Unpack every layer of `image` onto `dest`, bottom first, honouring whiteouts. Each
    /// layer's content is checked against its diff id as it is applied.
    pub fn unpack(&self, image: &Image, dest: &Path) -> Result<(), ImageError> {
        self.apply_layers(&image.manifest.layers, &image.config.rootfs.diff_ids, dest)
    }

    /// Applies `layers` in order onto `dest` (made if missing), each checked against its
    /// entry in `diff_ids`: an image's layers, or the ones a build has yet to apply.
    pub fn apply_layers(
        &self,
        layers: &[Descriptor],
        diff_ids: &[String],
        dest: &Path,
    ) -> Result<(), ImageError> {
        fs::create_dir_all(dest).map_err(io_err("create", dest))?;
        for (i, layer) in layers.iter().enumerate() {
            let blob = self.open_blob(&layer.digest)?;
            let mut plain = HashingReader::new(decompressed(blob).map_err(io_err("read", dest))?);
            apply_layer(&mut plain, dest)?;
            // Read the tar's end padding too, so the digest covers the whole stream.
            io::copy(&mut plain, &mut io::sink()).map_err(io_err("read", dest))?;
            let (diff_id, _) = plain.finish();
            if let Some(expected) = diff_ids.get(i)
                && *expected != diff_id
            {
                return Err(ImageError::Corrupt(format!(
                    "layer {} has diff id {diff_id}, expected {expected}",
                    layer.digest
                )));
            }
        }
        Ok(())
    }
}

/// The current time as RFC 3339 in UTC, e.g. `2026-11-22T12:00:00Z`.
/// What an archive holds at its top: an OCI layout's `oci-layout`, Docker's `manifest.json`.
struct ArchiveKind {
    layout: bool,
    docker: bool,
}

/// Reads the archive at `path` once for the files that say what it is.
fn archive_kind(path: &Path) -> Result<ArchiveKind, ImageError> {
    let bad = |message: String| ImageError::BadImport {
        path: path.to_owned(),
        message,
    };
    let file = File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut archive = tar::Archive::new(decompressed(file).map_err(|e| bad(e.to_string()))?);
    let mut kind = ArchiveKind {
        layout: false,
        docker: false,
    };
    for entry in archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive ({e})")))?
    {
        let entry = entry.map_err(|e| bad(format!("not a valid tar archive ({e})")))?;
        let entry_path = entry.path().map_err(|e| bad(e.to_string()))?;
        let entry_path = entry_path.strip_prefix("./").unwrap_or(&entry_path);
        kind.layout |= entry_path == Path::new("oci-layout");
        kind.docker |= entry_path == Path::new("manifest.json");
    }
    Ok(kind)
}
