//! The image store as berthd serves it: list, remove, import, and Dockerfile builds.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use berth_api::container::{BuildProgress, BuildSpec, ImageInfo};
use berth_api::error::{ApiError, ErrorKind};
use container_backend::build::builder::{BuildOptions, Builder};
use container_backend::image::{Image, ImageError, ImageStore};
use container_backend::runtime::Layout;

use crate::access::{readable_dir, readable_file};
use crate::auth::Peer;
use crate::containers::Engine;

/// The daemon's images.
pub struct Images {
    store: Mutex<ImageStore>,
    /// Where builds keep their step containers.
    build_dir: PathBuf,
}

impl Images {
    /// The store under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Images, ImageError> {
        Ok(Images {
            store: Mutex::new(ImageStore::open(&state_dir.join("images"))?),
            build_dir: state_dir.join("build"),
        })
    }

    /// The store, for whoever reads images (a container being started).
    pub fn store(&self) -> MutexGuard<'_, ImageStore> {
        // Every write to the store is atomic on disk; a panicked holder left nothing half-done.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn list(&self) -> Result<Vec<ImageInfo>, ApiError> {
        let images = self.store().list().map_err(image_error)?;
        Ok(images.iter().map(image_info).collect())
    }

    /// Untags `image` and deletes what only it used; refused while a container uses it.
    pub fn remove(&self, image: &str, engine: &Engine) -> Result<(), ApiError> {
        let store = self.store();
        let digest = store.resolve(image).map_err(image_error)?.manifest_digest;
        if let Some(user) = engine.image_in_use(&digest) {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!(
                    "image `{image}` is used by container `{user}`; remove the container first"
                ),
            ));
        }
        store.remove(image).map_err(image_error)?;
        engine.forget_image(&digest);
        Ok(())
    }

    /// Imports the archive at `path` (readable by `peer`) as `name`.
    pub fn import(&self, path: &Path, name: &str, peer: &Peer) -> Result<Vec<ImageInfo>, ApiError> {
        let path = readable_file(path, peer, "image archive").map_err(ApiError::invalid)?;
        let images = self.store().import(&path, name).map_err(image_error)?;
        Ok(images.iter().map(image_info).collect())
    }

    /// Builds `spec` (its context and Dockerfile readable by `peer`), telling `progress` of
    /// each step.
    pub fn build(
        &self,
        spec: &BuildSpec,
        peer: &Peer,
        layout: &Layout,
        progress: &mut dyn FnMut(BuildProgress),
    ) -> Result<ImageInfo, ApiError> {
        let context =
            readable_dir(&spec.context, peer, "build context").map_err(ApiError::invalid)?;
        let dockerfile = spec
            .dockerfile
            .as_ref()
            .map(|d| readable_file(d, peer, "Dockerfile"))
            .transpose()
            .map_err(ApiError::invalid)?;
        std::fs::create_dir_all(&self.build_dir).map_err(|e| {
            ApiError::internal(format!("cannot create {}: {e}", self.build_dir.display()))
        })?;
        let store = self.store();
        let builder = Builder {
            store: &store,
            layout,
            work: &self.build_dir,
            network: spec.network,
        };
        let options = BuildOptions {
            context,
            dockerfile,
            tag: spec.tag.clone(),
            build_args: spec.build_args.clone(),
        };
        let image = builder
            .build(&options, &mut |step| {
                progress(BuildProgress {
                    tag: spec.tag.clone(),
                    step: step.number,
                    steps: step.of,
                    instruction: step.text,
                    cached: step.cached,
                })
            })
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(image_info(&image))
    }
}

fn image_info(image: &Image) -> ImageInfo {
    ImageInfo {
        reference: image.reference.to_string(),
        id: image.id().to_owned(),
        size: image.size(),
        layers: image.manifest.layers.len() as u32,
        created: image.config.created.clone(),
    }
}

/// An image store error as the API reports it.
pub fn image_error(e: ImageError) -> ApiError {
    let kind = match e {
        ImageError::NotFound(_) => ErrorKind::NotFound,
        ImageError::BadReference(_) | ImageError::BadImport { .. } => ErrorKind::InvalidRequest,
        ImageError::Corrupt(_) | ImageError::Apply(_) | ImageError::Io { .. } => {
            ErrorKind::Internal
        }
    };
    ApiError::new(kind, e.to_string())
}
