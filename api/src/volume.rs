//! Volumes: what `run -v` mounts into a container (a host path, or a named volume the daemon
//! keeps across containers), and the named volumes `volume ls` lists. The one place `-v` is
//! parsed and written.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a mount brings into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "from")]
pub enum VolumeSource {
    /// A file or directory of the host (an absolute path).
    Host(PathBuf),
    /// A named volume, made on first use.
    Named(String),
    /// A volume of this container's own (`-v /path`, and each VOLUME of the image), named by
    /// the daemon, removed with the container by `run --rm` and `rm -v`.
    Anonymous,
}

/// One `-v SOURCE:TARGET[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    pub source: VolumeSource,
    /// An absolute path inside the container.
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    /// `nocopy`: a new named volume is not filled with what the image has at the target.
    #[serde(default)]
    pub no_copy: bool,
}

/// A named volume, as `volume ls` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub name: String,
    /// Where its files are, on the daemon's host.
    pub path: PathBuf,
    /// Seconds since the epoch.
    pub created: u64,
    /// The containers (names) whose definitions mount it.
    pub used_by: Vec<String>,
}

/// A volume's name: a letter or digit, then letters, digits, `_`, `.` or `-` (Docker's rule).
pub fn volume_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok
        || name.len() > 128
        || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(format!(
            "volume name `{name}`: letters, digits, `_`, `.` and `-`, starting with a letter or digit"
        ));
    }
    Ok(())
}

impl FromStr for VolumeMount {
    type Err = String;

    /// `SOURCE:TARGET[:OPTIONS]`, OPTIONS `ro` or `rw` and, for a volume, `nocopy`
    /// (comma-separated): a SOURCE starting with `/` is a host path, any other a volume name.
    fn from_str(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (source, target, options) = match parts.as_slice() {
            // `-v /path`: an anonymous volume there.
            [target] => ("", *target, None),
            [source, target] => (*source, *target, None),
            [source, target, options] => (*source, *target, Some(*options)),
            _ => {
                return Err(format!(
                    "-v {spec}: the form is [SOURCE:]TARGET[:OPTIONS], SOURCE a host path or a volume name"
                ));
            }
        };
        let (mut read_only, mut no_copy) = (false, false);
        for option in options.into_iter().flat_map(|o| o.split(',')) {
            match option {
                "rw" => read_only = false,
                "ro" => read_only = true,
                "nocopy" => no_copy = true,
                other => {
                    return Err(format!(
                        "-v {spec}: unknown option `{other}` (ro, rw or nocopy)"
                    ));
                }
            }
        }
        if no_copy && source.starts_with('/') {
            return Err(format!(
                "-v {spec}: nocopy is for a named volume (a host path is never filled)"
            ));
        }
        if !target.starts_with('/') || target.contains('\0') {
            return Err(format!(
                "-v {spec}: the target `{target}` must be an absolute path in the container"
            ));
        }
        if target.split('/').any(|part| part == "..") {
            return Err(format!("-v {spec}: the target may not contain `..`"));
        }
        let source = if source.is_empty() {
            VolumeSource::Anonymous
        } else if source.starts_with('/') {
            VolumeSource::Host(PathBuf::from(source))
        } else {
            volume_name(source).map_err(|e| format!("-v {spec}: {e}"))?;
            VolumeSource::Named(source.to_owned())
        };
        Ok(VolumeMount {
            source,
            target: target.to_owned(),
            read_only,
            no_copy,
        })
    }
}

impl fmt::Display for VolumeMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            VolumeSource::Host(path) => write!(f, "{}:", path.display())?,
            VolumeSource::Named(name) => write!(f, "{name}:")?,
            VolumeSource::Anonymous => {}
        }
        write!(f, "{}", self.target)?;
        match (self.read_only, self.no_copy) {
            (true, true) => write!(f, ":ro,nocopy"),
            (true, false) => write!(f, ":ro"),
            (false, true) => write!(f, ":nocopy"),
            (false, false) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_read_as_docker_writes_them() {
        let m: VolumeMount = "/home/me/src:/src:ro".parse().unwrap();
        assert_eq!(m.source, VolumeSource::Host("/home/me/src".into()));
        assert_eq!((m.target.as_str(), m.read_only), ("/src", true));
        let m: VolumeMount = "pgdata:/var/lib/postgresql/data".parse().unwrap();
        assert_eq!(m.source, VolumeSource::Named("pgdata".into()));
        assert!(!m.read_only);
        assert_eq!(m.to_string(), "pgdata:/var/lib/postgresql/data");
        let m: VolumeMount = "cache:/c:ro,nocopy".parse().unwrap();
        assert!(m.read_only && m.no_copy);
        assert_eq!(m.to_string(), "cache:/c:ro,nocopy");
        let e = "/host:/c:nocopy".parse::<VolumeMount>().unwrap_err();
        assert!(e.contains("nocopy is for a named volume"), "{e}");
        assert!("v:/c:z".parse::<VolumeMount>().is_err());
        let m: VolumeMount = "/var/lib/data".parse().unwrap();
        assert_eq!(m.source, VolumeSource::Anonymous);
        assert_eq!(m.to_string(), "/var/lib/data");
        assert!("relative".parse::<VolumeMount>().is_err());
        assert!("/a:relative".parse::<VolumeMount>().is_err());
        assert!("/a:/b:z".parse::<VolumeMount>().is_err());
        assert!("-bad:/b".parse::<VolumeMount>().is_err());
        assert!("/a:/b/../c".parse::<VolumeMount>().is_err());
        assert!("a:b:c:d".parse::<VolumeMount>().is_err());
    }
}
