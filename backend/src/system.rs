//! `system df` and `system prune`: what images, containers, volumes and the build cache take
//! on disk, and removing what nothing uses, as Docker's commands of those names do.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use berth_api::container::{Pruned, UsageLine};
use berth_api::error::ApiError;

use crate::containers::disk_usage;
use crate::images::image_error;
use crate::server::Daemon;

impl Daemon {
    /// `system df`.
    pub fn system_df(&self) -> Result<Vec<UsageLine>, ApiError> {
        let store = self.images.store();
        let images = store.list().map_err(image_error)?;
        // Blobs are counted once, however many images share them.
        let blobs: HashMap<String, u64> = blob_sizes(&store.root().join("blobs/sha256"));
        let mut active_images = 0;
        let mut active_blobs: HashSet<&str> = HashSet::new();
        for image in &images {
            if self.engine.image_in_use(&image.manifest_digest).is_some() {
                active_images += 1;
                active_blobs.insert(&image.manifest_digest);
                active_blobs.insert(&image.manifest.config.digest);
                active_blobs.extend(image.manifest.layers.iter().map(|l| l.digest.as_str()));
            }
        }
        let image_bytes: u64 = blobs.values().sum();
        let active_bytes: u64 = blobs
            .iter()
            .filter(|(digest, _)| active_blobs.contains(digest.as_str()))
            .map(|(_, size)| size)
            .sum();
        drop(store);
        let containers = self.engine.disk_usage();
        let volumes = self.volumes.list(&self.engine)?;
        let volume_size = |v: &berth_api::volume::VolumeInfo| disk_usage(&v.path);
        let build = self.images.build_dir();
        let build_size = disk_usage(build);
        Ok(vec![
            UsageLine {
                kind: "images".into(),
                total: images.len() as u32,
                active: active_images,
                size: image_bytes,
                reclaimable: image_bytes - active_bytes,
            },
            UsageLine {
                kind: "containers".into(),
                total: containers.len() as u32,
                active: containers.iter().filter(|(running, _)| *running).count() as u32,
                size: containers.iter().map(|(_, size)| size).sum(),
                reclaimable: containers
                    .iter()
                    .filter(|(running, _)| !running)
                    .map(|(_, size)| size)
                    .sum(),
            },
            UsageLine {
                kind: "volumes".into(),
                total: volumes.len() as u32,
                active: volumes.iter().filter(|v| !v.used_by.is_empty()).count() as u32,
                size: volumes.iter().map(volume_size).sum(),
                reclaimable: volumes
                    .iter()
                    .filter(|v| v.used_by.is_empty())
                    .map(volume_size)
                    .sum(),
            },
            UsageLine {
                kind: "build cache".into(),
                total: u32::from(build.exists()),
                active: 0,
                size: build_size,
                reclaimable: build_size,
            },
        ])
    }

    /// `system prune`: stopped containers, the build cache, blobs no image uses, the unpacked
    /// roots of images that are gone; with `all` the images no container uses; with `volumes`
    /// the volumes no container mounts.
    pub fn system_prune(&self, all: bool, volumes: bool) -> Result<Pruned, ApiError> {
        let before: u64 = self.system_df()?.iter().map(|l| l.size).sum();
        let mut pruned = Pruned {
            containers: self.engine.remove_stopped(),
            ..Pruned::default()
        };
        if all {
            let names: Vec<String> = {
                let store = self.images.store();
                let images = store.list().map_err(image_error)?;
                images
                    .iter()
                    .filter(|i| self.engine.image_in_use(&i.manifest_digest).is_none())
                    .map(|i| i.reference.to_string())
                    .collect()
            };
            for name in names {
                self.images.remove(&name, &self.engine)?;
                pruned.images.push(name);
            }
        }
        if volumes {
            for volume in self.volumes.list(&self.engine)? {
                if volume.used_by.is_empty() {
                    self.volumes.remove(&volume.name, &self.engine)?;
                    pruned.volumes.push(volume.name);
                }
            }
        }
        {
            // Builds hold the store while they run: none is running now.
            let store = self.images.store();
            let build = self.images.build_dir();
            if build.exists() {
                std::fs::remove_dir_all(build).map_err(|e| {
                    ApiError::internal(format!("cannot remove the build cache: {e}"))
                })?;
            }
            store.collect_garbage().map_err(image_error)?;
            store.remove_ingests().map_err(image_error)?;
            let live: HashSet<String> = store
                .list()
                .map_err(image_error)?
                .into_iter()
                .map(|i| i.manifest_digest)
                .collect();
            self.engine.forget_images_except(&live);
        }
        let after: u64 = self.system_df()?.iter().map(|l| l.size).sum();
        pruned.reclaimed = before.saturating_sub(after);
        Ok(pruned)
    }
}

/// The size of each blob under `dir` by digest.
fn blob_sizes(dir: &Path) -> HashMap<String, u64> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let size = e.metadata().ok()?.len();
            Some((format!("sha256:{}", e.file_name().to_string_lossy()), size))
        })
        .collect()
}
