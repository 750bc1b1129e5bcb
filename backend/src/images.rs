//! The image store as berthd serves it: list, remove, import, and Dockerfile builds.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use berth_api::container::{BlobProgress, BuildProgress, BuildSpec, ImageDetail, ImageInfo};
use berth_api::error::{ApiError, ErrorKind};
use berth_api::registry_login::{RegistryLogin, normalise_scope};
use container_backend::build::builder::{BuildOptions, Builder};
use container_backend::image::archive;
use container_backend::image::remote::{self, BlobEvent, RemoteError, RemoteImage, WantedPlatform};
use container_backend::image::{Image, ImageError, ImageStore, Reference};
use container_backend::runtime::Layout;

use crate::access::{connectable_socket, readable_dir, readable_file};
use crate::auth::Peer;
use crate::containers::Engine;

/// The daemon's images.
pub struct Images {
    /// Shared with the threads writing `save`'s archives.
    store: Arc<Mutex<ImageStore>>,
    /// Where builds keep their step containers.
    build_dir: PathBuf,
}

impl Images {
    /// The store under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Images, ImageError> {
        Ok(Images {
            store: Arc::new(Mutex::new(ImageStore::open(&state_dir.join("images"))?)),
            build_dir: state_dir.join("build"),
        })
    }

    /// Where builds keep their step containers, cache index and cache mounts.
    pub fn build_dir(&self) -> &Path {
        &self.build_dir
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

    /// Pulls `image` from its registry into the store, telling `progress` as layers arrive.
    /// Runs on a blocking thread of the daemon's runtime.
    pub fn pull(
        &self,
        image: &str,
        platform: Option<&str>,
        logins: &[RegistryLogin],
        progress: &(dyn Fn(BlobProgress) + Send + Sync),
    ) -> Result<ImageInfo, ApiError> {
        let platform = platform
            .map(WantedPlatform::parse)
            .transpose()
            .map_err(ApiError::invalid)?
            .unwrap_or_default();
        let store = self.store();
        pull_platform(&store, image, &platform, logins, progress).map(|i| image_info(&i))
    }

    /// Pushes `image` to `destination`, or to the registry its name starts with, telling
    /// `progress` as layers go. The answer is the image as the registry holds it: its
    /// reference there, and its manifest digest.
    pub fn push(
        &self,
        image: &str,
        destination: Option<&str>,
        logins: &[RegistryLogin],
        progress: &(dyn Fn(BlobProgress) + Send + Sync),
    ) -> Result<ImageInfo, ApiError> {
        let store = self.store();
        let local = local_image(&store, image).map_err(image_error)?;
        let target = RemoteImage::parse(destination.unwrap_or(image)).map_err(ApiError::invalid)?;
        let report = |event| progress(blob_progress(image, event));
        let digest = runtime()?
            .block_on(remote::push(&store, &local, &target, logins, &report))
            .map_err(remote_error)?;
        let mut info = image_info(&local);
        info.reference = target.to_string();
        info.id = digest;
        Ok(info)
    }

    /// `save`: the named images as one archive, written by a thread of its own into a pipe
    /// whose read end is the answer. The store stays locked while it is written (it is read
    /// as fast as the client takes it); a failure ends the archive early, which its reader
    /// sees as a cut tar, and is logged.
    pub fn save(&self, names: &[String]) -> Result<OwnedFd, ApiError> {
        if names.is_empty() {
            return Err(ApiError::invalid("save needs at least one image"));
        }
        let images = {
            let store = self.store();
            names
                .iter()
                .map(|n| local_image(&store, n).map_err(image_error))
                .collect::<Result<Vec<_>, _>>()?
        };
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| ApiError::internal(format!("cannot make a pipe: {e}")))?;
        let store = Arc::clone(&self.store);
        std::thread::spawn(move || {
            let store = store.lock().unwrap_or_else(PoisonError::into_inner);
            let out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::from(write));
            if let Err(e) = archive::save(&store, &images, out) {
                eprintln!("berthd: save stopped: {e}");
            }
        });
        Ok(read)
    }

    /// `commit`: a new image `name` of the container's image with the container's own layer on
    /// top (its changes, overlay's whiteouts as OCI's), the image's config kept.
    pub fn commit(
        &self,
        engine: &Engine,
        container: &str,
        name: &str,
    ) -> Result<ImageInfo, ApiError> {
        let (image_digest, _, upper) = engine.layers_of(container)?;
        let reference = Reference::parse(name).map_err(ApiError::invalid)?;
        let store = self.store();
        let base = store
            .list()
            .map_err(image_error)?
            .into_iter()
            .find(|i| i.manifest_digest == image_digest)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Conflict,
                    format!("the image of container `{container}` is no longer in the store"),
                )
            })?;
        let mut bytes = Vec::new();
        container_backend::image::layer::tar_overlay_upper(&upper, &mut bytes)
            .map_err(|e| ApiError::internal(format!("cannot read container `{container}`: {e}")))?;
        let (layer, diff_id) = store.put_layer(&bytes[..]).map_err(image_error)?;
        let mut config = base.config.clone();
        config.rootfs.diff_ids.push(diff_id);
        let now = berth_api::time::now_rfc3339();
        config.history.push(container_backend::image::oci::History {
            created: Some(now.clone()),
            created_by: Some(format!("berthctl commit {container}")),
            empty_layer: false,
        });
        config.created = Some(now);
        let mut layers = base.manifest.layers.clone();
        layers.push(layer);
        let image = store
            .commit(&reference, &config, layers)
            .map_err(image_error)?;
        Ok(image_info(&image))
    }

    /// `load`: the archive at `path` (readable by `peer`).
    pub fn load(&self, path: &Path, peer: &Peer) -> Result<Vec<ImageInfo>, ApiError> {
        let path = readable_file(path, peer, "image archive").map_err(ApiError::invalid)?;
        let images = self.store().load(&path).map_err(image_error)?;
        Ok(images.iter().map(image_info).collect())
    }

    /// `image` in full, found as `run` finds it.
    pub fn inspect(&self, image: &str) -> Result<ImageDetail, ApiError> {
        let store = self.store();
        let found = local_image(&store, image).map_err(image_error)?;
        let json = |value: serde_json::Result<serde_json::Value>| {
            value.map_err(|e| ApiError::internal(format!("image `{image}`: {e}")))
        };
        Ok(ImageDetail {
            reference: found.reference.to_string(),
            id: found.id().to_owned(),
            manifest_digest: found.manifest_digest.clone(),
            manifest: json(serde_json::to_value(&found.manifest))?,
            config: json(serde_json::to_value(&found.config))?,
        })
    }

    /// Names `image` `name` too, as `docker tag` does.
    pub fn tag(&self, image: &str, name: &str) -> Result<ImageInfo, ApiError> {
        let store = self.store();
        let existing = local_image(&store, image).map_err(image_error)?;
        let new = Reference::parse(name).map_err(ApiError::invalid)?;
        let tagged = store
            .add_name(&existing.reference.to_string(), &new)
            .map_err(image_error)?;
        Ok(image_info(&tagged))
    }

    /// Makes sure `image` is in the store: as named, by Docker's familiar name of it, or
    /// pulled. Returns the name it has in the store.
    pub fn ensure(
        &self,
        image: &str,
        logins: &[RegistryLogin],
        progress: &(dyn Fn(BlobProgress) + Send + Sync),
    ) -> Result<String, ApiError> {
        let store = self.store();
        match local_image(&store, image) {
            Ok(found) => Ok(found.reference.to_string()),
            Err(ImageError::NotFound(_)) => pull_into(&store, image, logins, progress)
                .map(|pulled| pulled.reference.to_string())
                .map_err(|e| {
                    ApiError::new(
                        e.kind,
                        format!(
                            "no image `{image}` here, and pulling it failed: {}",
                            e.message
                        ),
                    )
                }),
            Err(e) => Err(image_error(e)),
        }
    }

    /// Builds `spec` (its context and Dockerfile readable by `peer`), telling `progress` of
    /// each step, and `pulled` of layers a FROM pulls.
    pub fn build(
        &self,
        spec: &BuildSpec,
        peer: &Peer,
        layout: &Layout,
        progress: &mut dyn FnMut(BuildProgress),
        pulled: &(dyn Fn(BlobProgress) + Send + Sync),
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
        let pull =
            |image: &str| pull_into(&store, image, &spec.logins, pulled).map_err(|e| e.message);
        let builder = Builder {
            store: &store,
            layout,
            work: &self.build_dir,
            network: spec.network,
            pull: Some(&pull),
        };
        let secrets = spec
            .secrets
            .iter()
            .map(|s| {
                readable_file(&s.path, peer, &format!("secret `{}`", s.id))
                    .map(|path| (s.id.clone(), path))
            })
            .collect::<Result<_, _>>()
            .map_err(ApiError::invalid)?;
        let ssh = spec
            .ssh
            .iter()
            .map(|a| {
                connectable_socket(&a.socket, peer, &format!("ssh agent `{}`", a.id))
                    .map(|socket| (a.id.clone(), socket))
            })
            .collect::<Result<_, _>>()
            .map_err(ApiError::invalid)?;
        let options = BuildOptions {
            context,
            dockerfile,
            tag: spec.tag.clone(),
            build_args: spec.build_args.clone(),
            target: spec.target.clone(),
            no_cache: spec.no_cache,
            pull: spec.pull,
            secrets,
            ssh,
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

/// An image of the store by the name given, or by Docker's familiar name for it
/// (`docker.io/library/busybox` is `busybox:latest`).
fn local_image(store: &ImageStore, image: &str) -> Result<Image, ImageError> {
    match store.resolve(image) {
        Err(ImageError::NotFound(_) | ImageError::BadReference(_)) => {
            let remote = RemoteImage::parse(image).map_err(ImageError::BadReference)?;
            store.resolve(&remote.local_name().to_string())
        }
        found => found,
    }
}

/// Checks `login` with its registry (`berthctl login`).
pub fn check_login(login: &RegistryLogin) -> Result<(), ApiError> {
    normalise_scope(&login.scope)
        .ok()
        .filter(|n| *n == login.scope)
        .ok_or_else(|| ApiError::invalid(format!("`{}` is not a registry", login.scope)))?;
    runtime()?
        .block_on(remote::check_login(login))
        .map_err(remote_error)
}

/// The daemon's runtime, from one of its blocking threads (registry requests are async).
fn runtime() -> Result<tokio::runtime::Handle, ApiError> {
    tokio::runtime::Handle::try_current()
        .map_err(|e| ApiError::internal(format!("no runtime to reach a registry on: {e}")))
}

/// Pulls `image` (linux/amd64) into `store` on the calling (blocking) thread of the daemon's
/// runtime.
fn pull_into(
    store: &ImageStore,
    image: &str,
    logins: &[RegistryLogin],
    progress: &(dyn Fn(BlobProgress) + Send + Sync),
) -> Result<Image, ApiError> {
    pull_platform(store, image, &WantedPlatform::default(), logins, progress)
}

/// [`pull_into`] for `platform`.
fn pull_platform(
    store: &ImageStore,
    image: &str,
    platform: &WantedPlatform,
    logins: &[RegistryLogin],
    progress: &(dyn Fn(BlobProgress) + Send + Sync),
) -> Result<Image, ApiError> {
    let remote = RemoteImage::parse(image).map_err(ApiError::invalid)?;
    let report = |event| progress(blob_progress(image, event));
    runtime()?
        .block_on(remote::pull(store, &remote, platform, logins, &report))
        .map_err(remote_error)
}

/// A blob's progress in a pull or a push of `image` (as the user named it), as the API says it.
fn blob_progress(image: &str, event: BlobEvent) -> BlobProgress {
    match event {
        BlobEvent::Bytes { digest, done, size } => BlobProgress {
            image: image.to_owned(),
            layer: digest,
            done,
            size,
            finished: false,
            present: false,
        },
        BlobEvent::Done { digest, present } => BlobProgress {
            image: image.to_owned(),
            layer: digest,
            done: 0,
            size: 0,
            finished: true,
            present,
        },
    }
}

/// A registry error as the API reports it.
fn remote_error(e: RemoteError) -> ApiError {
    match e {
        RemoteError::BadReference(m) => ApiError::invalid(m),
        RemoteError::Store(e) => image_error(e),
        e @ RemoteError::LoginRefused { .. } => {
            ApiError::new(ErrorKind::PermissionDenied, e.to_string())
        }
        e @ RemoteError::Unsupported { .. } => ApiError::invalid(e.to_string()),
        e @ RemoteError::Registry { .. } => ApiError::internal(e.to_string()),
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
