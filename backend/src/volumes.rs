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
    /// for `peer` (readable, and writable unless read-only).
    pub fn resolve(
        &self,
        mounts: &[VolumeMount],
        peer: &Peer,
    ) -> Result<Vec<MountRecord>, ApiError> {
        let mut resolved: Vec<MountRecord> = Vec::new();
        for mount in mounts {
            if resolved.iter().any(|r| r.target == mount.target) {
                return Err(ApiError::invalid(format!(
                    "-v {mount}: {} is mounted twice",
                    mount.target
                )));
            }
            let source = match &mount.source {
                VolumeSource::Host(path) => mountable(path, peer, mount.read_only)
                    .map_err(|e| ApiError::invalid(format!("-v {mount}: {e}")))?,
                VolumeSource::Named(name) => self.ensure(name)?,
            };
            resolved.push(MountRecord {
                source,
                target: mount.target.clone(),
                read_only: mount.read_only,
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
