//! `save` and `load`: images as one tar file.
//!
//! Decision: `save` writes what Docker 25's `docker save` writes, an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) with Docker's `manifest.json` beside it
//! naming the same blobs, so one archive loads as an `oci-archive` and as a `docker-archive`
//! (podman, skopeo, docker). Layers go as the store holds them (compressed); both readers
//! decompress. `load` takes that, any OCI archive (through the store's import) and the classic
//! docker-archive of older `docker save` and `podman save` (config and layer files named in
//! `manifest.json`, layers plain tars), every layer checked against the config's diff ids.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ImageError;
use super::oci::{
    Descriptor, ImageConfig, Index, MEDIA_CONFIG, MEDIA_MANIFEST, Manifest, REF_NAME,
};
use super::reference::Reference;
use super::store::{Image, ImageStore};

/// One image of Docker's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The most bytes a file of a docker-archive other than a layer may have (configs, the
/// manifest): they are read into memory.
const MAX_SMALL_FILE: u64 = 16 << 20;

fn add_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ImageError> {
    serde_json::to_vec(value).map_err(|e| ImageError::Corrupt(e.to_string()))
}

/// Writes `images` to `out` as one archive (see the module's decision).
pub fn save<W: Write>(store: &ImageStore, images: &[Image], out: W) -> Result<(), ImageError> {
    let io = |e: std::io::Error| ImageError::Io {
        op: "write the archive",
        path: PathBuf::from("-"),
        source: e,
    };
    let mut tar = tar::Builder::new(out);
    add_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io)?;
    let mut index = Index::default();
    let mut docker = Vec::new();
    let mut written: Vec<String> = Vec::new();
    for image in images {
        let manifest_bytes = store.manifest_bytes(image)?;
        let mut blobs: Vec<(&str, u64)> = vec![(
            image.manifest.config.digest.as_str(),
            image.manifest.config.size,
        )];
        blobs.extend(
            image
                .manifest
                .layers
                .iter()
                .map(|l| (l.digest.as_str(), l.size)),
        );
        for (digest, _) in &blobs {
            if written.iter().any(|w| w == digest) {
                continue;
            }
            let mut file = store.open_blob_file(digest)?;
            let name = blob_name(digest);
            tar.append_file(&name, &mut file).map_err(io)?;
            written.push((*digest).to_owned());
        }
        let manifest_digest = image.manifest_digest.clone();
        if !written.contains(&manifest_digest) {
            add_bytes(&mut tar, &blob_name(&manifest_digest), &manifest_bytes).map_err(io)?;
            written.push(manifest_digest.clone());
        }
        let name = image.reference.to_string();
        index.manifests.push(Descriptor {
            media_type: image
                .manifest
                .media_type
                .clone()
                .unwrap_or_else(|| MEDIA_MANIFEST.to_owned()),
            digest: manifest_digest,
            size: manifest_bytes.len() as u64,
            annotations: BTreeMap::from([
                (REF_NAME.to_owned(), name.clone()),
                ("io.containerd.image.name".to_owned(), name.clone()),
            ]),
        });
        docker.push(DockerEntry {
            config: blob_name(&image.manifest.config.digest),
            repo_tags: Some(vec![name]),
            layers: image
                .manifest
                .layers
                .iter()
                .map(|l| blob_name(&l.digest))
                .collect(),
        });
    }
    add_bytes(&mut tar, "index.json", &to_json(&index)?).map_err(io)?;
    add_bytes(&mut tar, "manifest.json", &to_json(&docker)?).map_err(io)?;
    tar.into_inner().map_err(io)?.flush().map_err(io)
}

fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Loads a classic docker-archive (`manifest.json`, no `index.json`) at `path`: each image
/// under the names its `RepoTags` give.
pub fn load_docker_archive(store: &ImageStore, path: &Path) -> Result<Vec<Image>, ImageError> {
    let bad = |message: String| ImageError::BadImport {
        path: path.to_owned(),
        message,
    };
    // The files the manifest names, by their path in the archive: put into the store as they
    // come (layers compressed and hashed, configs and the manifest kept as bytes).
    let mut layers: HashMap<String, (Descriptor, String)> = HashMap::new();
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let file = File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut archive =
        tar::Archive::new(super::layer::decompressed(file).map_err(|e| bad(e.to_string()))?);
    for entry in archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive ({e})")))?
    {
        let mut entry = entry.map_err(|e| bad(format!("not a valid tar archive ({e})")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let name = name.trim_start_matches("./").to_owned();
        if !name.ends_with(".tar") && !name.ends_with(".tar.gz") {
            if entry.size() > MAX_SMALL_FILE {
                return Err(bad(format!("{name} is too big for what it is")));
            }
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| bad(e.to_string()))?;
            small.insert(name, bytes);
        } else {
            let stored = store
                .put_layer(&mut entry)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            layers.insert(name, stored);
        }
    }
    let manifest = small
        .get("manifest.json")
        .ok_or_else(|| bad("no manifest.json: not a docker-archive".into()))?;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(manifest).map_err(|e| bad(format!("manifest.json: {e}")))?;
    if entries.is_empty() {
        return Err(bad("its manifest.json holds no image".into()));
    }
    let mut loaded = Vec::new();
    for entry in entries {
        let config_bytes = small
            .get(&entry.config)
            .ok_or_else(|| bad(format!("its config {} is missing", entry.config)))?;
        let config: ImageConfig = serde_json::from_slice(config_bytes)
            .map_err(|e| bad(format!("{}: {e}", entry.config)))?;
        let mut descriptors = Vec::new();
        for (i, layer) in entry.layers.iter().enumerate() {
            let (descriptor, diff_id) = layers
                .get(layer)
                .ok_or_else(|| bad(format!("its layer {layer} is missing")))?;
            if config.rootfs.diff_ids.get(i) != Some(diff_id) {
                return Err(bad(format!(
                    "layer {layer} is {diff_id}, not the {} its config names",
                    config
                        .rootfs
                        .diff_ids
                        .get(i)
                        .map_or("nothing", String::as_str)
                )));
            }
            descriptors.push(descriptor.clone());
        }
        if descriptors.len() != config.rootfs.diff_ids.len() {
            return Err(bad(format!(
                "{} names {} layers, its config {}",
                entry.config,
                descriptors.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        // The config is kept byte for byte: the image id stays the one it had.
        let config_desc = store.put_bytes(MEDIA_CONFIG, config_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            config: config_desc,
            layers: descriptors,
        };
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| ImageError::Corrupt(e.to_string()))?;
        let manifest_desc = store.put_bytes(MEDIA_MANIFEST, &manifest_bytes)?;
        let tags = entry.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            return Err(bad(format!("the image of {} has no name", entry.config)));
        }
        for tag in tags {
            // Docker's familiar name, as a pull names it (`docker.io/library/x` is `x`).
            let reference = match super::remote::RemoteImage::parse(&tag) {
                Ok(remote) => remote.local_name(),
                Err(_) => Reference::parse(&tag).map_err(ImageError::BadReference)?,
            };
            store.tag(&reference, &manifest_desc)?;
            loaded.push(store.resolve(&reference.to_string())?);
        }
    }
    Ok(loaded)
}
