//! Named volumes: directories the daemon keeps under `volumes/<name>/data`, mounted into
//! containers by `run -v NAME:/path`, kept when the containers go (`volume rm` removes one no
//! container mounts).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use berth_api::error::{ApiError, ErrorKind};
use berth_api::volume::{VolumeInfo, VolumeMount, VolumeSource, volume_name};

use crate::access::mountable;
use crate::auth::Peer;
use crate::containers::{Engine, MountRecord};

/// A name for an anonymous volume: 64 hexadecimal digits, as Docker names them.
fn anonymous_name() -> Result<String, ApiError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| ApiError::internal(format!("no random bytes for a volume name: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Docker's copy-up: an empty named volume mounted where the image has a directory gets that
/// directory's files (owners, modes and links kept) and its owner and mode, before the
/// container first starts; a volume with anything in it is left as it is. Whether it was
/// filled.
pub fn fill_from_image(data: &Path, image_root: &Path, target: &str) -> Result<bool, String> {
    use container_backend::build::context::Context;
    use container_backend::build::copy::{Placement, stage_copy};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let empty = std::fs::read_dir(data)
        .map_err(|e| format!("{}: {e}", data.display()))?
        .next()
        .is_none();
    if !empty {
        return Ok(false);
    }
    let tree = Context::of_tree(image_root);
    // Nothing there in the image (or not a directory): the volume stays empty.
    let Ok(sources) = tree.resolve(target) else {
        return Ok(false);
    };
    let Some(dir) = sources.first().map(|s| image_root.join(&s.path)) else {
        return Ok(false);
    };
    let Some(meta) = std::fs::metadata(&dir).ok().filter(|m| m.is_dir()) else {
        return Ok(false);
    };
    let place = Placement {
        target: "/",
        into_dir: true,
        image_root: data,
        owner: None,
        mode: None,
        unpack_archives: false,
        keep_owners: true,
        exclude: None,
    };
    stage_copy(&tree, &sources, &place, data)?;
    std::os::unix::fs::chown(data, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| format!("{}: {e}", data.display()))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| format!("{}: {e}", data.display()))?;
    Ok(true)
}

pub struct Volumes {
    root: PathBuf,
}

impl Volumes {
    pub fn open(state_dir: &Path) -> Volumes {
        Volumes {
            root: state_dir.join("volumes"),
        }
    }

    /// The directory containers see of volume `name`.
    fn data(&self, name: &str) -> PathBuf {
        self.root.join(name).join("data")
    }

    /// The files of volume `name`, made empty if it does not exist yet.
    pub fn ensure(&self, name: &str) -> Result<PathBuf, ApiError> {
        volume_name(name).map_err(ApiError::invalid)?;
        let data = self.data(name);
        std::fs::create_dir_all(&data).map_err(|e| {
            ApiError::internal(format!(
                "cannot make volume `{name}` ({}): {e}",
                data.display()
            ))
        })?;
        Ok(data)
    }

    /// `run -v`: each mount's host path, a named volume's made if needed, a host path checked
    /// for `peer` (readable, and writable unless read-only); an anonymous volume is named
    /// here (the mount then names it, for `volume ls` and `rm -v`).
    pub fn resolve(
        &self,
        mounts: &mut [VolumeMount],
        peer: &Peer,
    ) -> Result<Vec<MountRecord>, ApiError> {
        let mut resolved: Vec<MountRecord> = Vec::new();
        for mount in mounts.iter_mut() {
            let anonymous = mount.source == VolumeSource::Anonymous;
            if anonymous {
                mount.source = VolumeSource::Named(anonymous_name()?);
            }
            let mount = &*mount;
            if resolved.iter().any(|r| r.target == mount.target) {
                return Err(ApiError::invalid(format!(
                    "-v {mount}: {} is mounted twice",
                    mount.target
                )));
            }
            let (source, named) = match &mount.source {
                VolumeSource::Host(path) => (
                    mountable(path, peer, mount.read_only)
                        .map_err(|e| ApiError::invalid(format!("-v {mount}: {e}")))?,
                    false,
                ),
                VolumeSource::Named(name) => (self.ensure(name)?, true),
                VolumeSource::Anonymous => {
                    return Err(ApiError::internal("an anonymous volume left unnamed"));
                }
            };
            resolved.push(MountRecord {
                source,
                target: mount.target.clone(),
                read_only: mount.read_only,
                fill_from_image: named && !mount.no_copy,
                anonymous,
            });
        }
        Ok(resolved)
    }

    pub fn create(&self, name: &str, engine: &Engine) -> Result<VolumeInfo, ApiError> {
        self.ensure(name)?;
        self.info(name, engine)
    }

    pub fn list(&self, engine: &Engine) -> Result<Vec<VolumeInfo>, ApiError> {
        let mut names: Vec<String> = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| e.path().join("data").is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(ApiError::internal(format!("{}: {e}", self.root.display()))),
        };
        names.sort();
        names.iter().map(|n| self.info(n, engine)).collect()
    }

    /// Removes volume `name` and its files; refused while a container's definition mounts it.
    pub fn remove(&self, name: &str, engine: &Engine) -> Result<(), ApiError> {
        volume_name(name).map_err(ApiError::invalid)?;
        if !self.data(name).is_dir() {
            return Err(ApiError::not_found(format!(
                "there is no volume `{name}` (see `berthctl volume ls`)"
            )));
        }
        let users = engine.volume_users(name);
        if !users.is_empty() {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!(
                    "volume `{name}` is mounted by container {}; remove {} first",
                    users.join(", "),
                    if users.len() == 1 { "it" } else { "them" }
                ),
            ));
        }
        std::fs::remove_dir_all(self.root.join(name))
            .map_err(|e| ApiError::internal(format!("cannot remove volume `{name}`: {e}")))
    }

    fn info(&self, name: &str, engine: &Engine) -> Result<VolumeInfo, ApiError> {
        let data = self.data(name);
        let meta = std::fs::metadata(&data)
            .map_err(|e| ApiError::not_found(format!("volume `{name}`: {e}")))?;
        Ok(VolumeInfo {
            name: name.to_owned(),
            created: meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
            path: data,
            used_by: engine.volume_users(name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_volume_is_filled_from_the_image_once() {
        let image = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(image.path().join("srv/sub")).unwrap();
        std::fs::write(image.path().join("srv/sub/f"), "in the image").unwrap();
        std::os::unix::fs::symlink("sub/f", image.path().join("srv/link")).unwrap();
        std::fs::write(image.path().join("file"), "x").unwrap();
        let volume = tempfile::tempdir().unwrap();
        let data = volume.path();
        assert!(fill_from_image(data, image.path(), "/srv").unwrap());
        assert_eq!(
            std::fs::read_to_string(data.join("sub/f")).unwrap(),
            "in the image"
        );
        assert_eq!(
            std::fs::read_link(data.join("link")).unwrap(),
            Path::new("sub/f")
        );
        // Not empty any more: left as it is.
        std::fs::write(data.join("sub/f"), "written").unwrap();
        assert!(!fill_from_image(data, image.path(), "/srv").unwrap());
        assert_eq!(
            std::fs::read_to_string(data.join("sub/f")).unwrap(),
            "written"
        );
        // Nothing, or no directory, in the image there: nothing to fill from.
        let other = tempfile::tempdir().unwrap();
        assert!(!fill_from_image(other.path(), image.path(), "/missing").unwrap());
        assert!(!fill_from_image(other.path(), image.path(), "/file").unwrap());
    }
}
