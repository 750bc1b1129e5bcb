//! Resource limits and accounting for one container with cgroups, v2 or v1, or none.
//!
//! v2 (a unified hierarchy with controllers, as on most workstations): one directory
//! `<root>/berth/<id>` with `cpu.max`, `memory.max`, `pids.max`, where `<root>` is the
//! hierarchy's top for a daemon run as root and the subtree delegated to it for a user's
//! ([`Layout::delegated`], as systemd's `Delegate=` hands one to a user service). v1 (legacy or
//! hybrid, as on these build machines): a directory `berth/<id>` under each controller's own
//! mount (`cpu`, `cpuacct`, `memory`, `pids`). Detection: a `cgroup.controllers` file at the
//! top of /sys/fs/cgroup means v2; otherwise v1 controllers are looked up in
//! /proc/self/mountinfo. A user's daemon with nothing delegated ([`Layout::Unlimited`]) runs
//! containers without limits and says so: a limit asked for there is refused, not dropped.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The limits asked for a container.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// CPUs, fractional: 0.2 is a fifth of one CPU's time.
    pub cpus: Option<f64>,
    /// Memory in bytes (swap is not added on top).
    pub memory: Option<u64>,
    /// Most processes (and threads).
    pub pids: Option<u64>,
}

/// The CFS period quotas are expressed against, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// Why a cgroup could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No usable cgroup controllers are mounted.
    #[error("no cgroup hierarchy with the cpu, memory and pids controllers is mounted")]
    NoHierarchy,
    /// A limit was asked for where none can be set.
    #[error("{what} limits cannot be set here: {why}")]
    NoLimits { what: &'static str, why: String },
    /// A cgroup file could not be written or read.
    #[error("cgroup {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + use<> {
    let path = path.to_owned();
    move |source| CgroupError::Io { path, source }
}

/// Which cgroup layout this host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// A unified v2 hierarchy mounted here.
    V2(PathBuf),
    /// v1 controllers, each at its own mount point.
    V1 {
        cpu: PathBuf,
        cpuacct: PathBuf,
        memory: PathBuf,
        pids: PathBuf,
    },
    /// No cgroup this process may use: containers run without limits; `why` says so.
    Unlimited { why: String },
}

impl Layout {
    /// Find the host's layout.
    pub fn detect() -> Result<Layout, CgroupError> {
        let root = Path::new("/sys/fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            return Ok(Layout::V2(root.to_owned()));
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(io_at(Path::new("/proc/self/mountinfo")))?;
        let find = |controller: &str| -> Option<PathBuf> {
            mountinfo.lines().find_map(|line| {
                let (left, right) = line.split_once(" - ")?;
                let mut r = right.split_whitespace();
                if r.next()? != "cgroup" {
                    return None;
                }
                let options = r.nth(1)?;
                let mount_point = left.split_whitespace().nth(4)?;
                options
                    .split(',')
                    .any(|o| o == controller)
                    .then(|| PathBuf::from(mount_point))
            })
        };
        match (find("cpu"), find("cpuacct"), find("memory"), find("pids")) {
            (Some(cpu), Some(cpuacct), Some(memory), Some(pids)) => Ok(Layout::V1 {
                cpu,
                cpuacct,
                memory,
                pids,
            }),
            _ => Err(CgroupError::NoHierarchy),
        }
    }

    /// For a process without privilege: the cgroup v2 subtree it was delegated (its own
    /// cgroup, writable by it, with the cpu, memory and pids controllers available), made ready
    /// for containers. The process moves into a leaf of its own (`<cgroup>/berthd`) so that
    /// its cgroup, now without processes, may enable the controllers for its children.
    /// Otherwise [`Layout::Unlimited`] with the reason.
    pub fn delegated() -> Layout {
        Self::delegated_in(Path::new("/sys/fs/cgroup"), "/proc/self/cgroup")
            .unwrap_or_else(|why| Layout::Unlimited { why })
    }

    fn delegated_in(mount: &Path, own: &str) -> Result<Layout, String> {
        if !mount.join("cgroup.controllers").exists() {
            return Err(
                "the host's cgroups are v1, whose controllers are never delegated to users".into(),
            );
        }
        let own = fs::read_to_string(own).map_err(|e| format!("cannot read {own}: {e}"))?;
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("this process has no cgroup v2")?;
        let root = mount.join(path.trim().trim_start_matches('/'));
        let available = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let missing: Vec<&str> = ["cpu", "memory", "pids"]
            .into_iter()
            .filter(|c| !available.split_whitespace().any(|a| a == *c))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "no delegated cgroup controllers: {} lacks {} (a systemd user service gets them with Delegate=yes)",
                root.display(),
                missing.join(", ")
            ));
        }
        let leaf = root.join("berthd");
        let not_delegated = |e: io::Error| {
            format!(
                "the cgroup {} is not delegated to this user ({e})",
                root.display()
            )
        };
        fs::create_dir_all(&leaf).map_err(not_delegated)?;
        fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())
            .map_err(not_delegated)?;
        fs::write(root.join("cgroup.subtree_control"), "+cpu +memory +pids").map_err(|e| {
            format!(
                "other processes share this daemon's cgroup {} ({e}): start berthd in a cgroup of its own",
                root.display()
            )
        })?;
        Ok(Layout::V2(root))
    }

    /// Whether limits can be set, and if not why.
    pub fn limits(&self) -> Result<(), String> {
        match self {
            Layout::Unlimited { why } => Err(why.clone()),
            _ => Ok(()),
        }
    }
}

/// One container's cgroup(s).
#[derive(Debug, Clone)]
pub struct Cgroup {
    layout: Layout,
    id: String,
}

/// Live use read from a container's cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU time used so far, in seconds.
    pub cpu_seconds: f64,
    /// Memory in use now, in bytes.
    pub memory: u64,
    /// Processes now.
    pub pids: u64,
    /// Times the kernel's OOM killer killed a process of this cgroup.
    pub oom_kills: u64,
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(io_at(path))
}

fn read_u64(path: &Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A `key value` line of a flat-keyed cgroup file.
fn read_key(path: &Path, key: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        })
        .unwrap_or(0)
}

impl Cgroup {
    /// Create the container's cgroup(s) with `limits`; they are empty until [`Cgroup::add`].
    pub fn create(layout: &Layout, id: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let cgroup = Cgroup {
            layout: layout.clone(),
            id: id.to_owned(),
        };
        match layout {
            Layout::V2(root) => {
                // Controllers must be enabled on every level above the leaf.
                let parent = root.join("berth");
                fs::create_dir_all(&parent).map_err(io_at(&parent))?;
                for dir in [root.as_path(), parent.as_path()] {
                    let control = dir.join("cgroup.subtree_control");
                    let _ = fs::write(&control, "+cpu +memory +pids");
                }
                let leaf = parent.join(id);
                fs::create_dir_all(&leaf).map_err(io_at(&leaf))?;
                if let Some(cpus) = limits.cpus {
                    let quota = ((cpus * CPU_PERIOD_US as f64) as u64).max(1000);
                    write(&leaf.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                }
                if let Some(memory) = limits.memory {
                    write(&leaf.join("memory.max"), &memory.to_string())?;
                    let _ = fs::write(leaf.join("memory.swap.max"), "0");
                }
                if let Some(pids) = limits.pids {
                    write(&leaf.join("pids.max"), &pids.to_string())?;
                }
            }
            Layout::Unlimited { why } => {
                let asked = [
                    ("CPU", limits.cpus.is_some()),
                    ("memory", limits.memory.is_some()),
                    ("process", limits.pids.is_some()),
                ];
                if let Some((what, _)) = asked.into_iter().find(|(_, asked)| *asked) {
                    return Err(CgroupError::NoLimits {
                        what,
                        why: why.clone(),
                    });
                }
            }
            Layout::V1 { .. } => {
                for dir in cgroup.dirs() {
                    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
                }
                if let Layout::V1 {
                    cpu, memory, pids, ..
                } = layout
                {
                    if let Some(cpus) = limits.cpus {
                        let dir = cpu.join("berth").join(id);
                        let quota = ((cpus * CPU_PERIOD_US as f64) as u64).max(1000);
                        write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                        write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                    }
                    if let Some(limit) = limits.memory {
                        let dir = memory.join("berth").join(id);
                        write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
                        // Without swap accounting the file is absent; then there is no swap to limit.
                        let _ =
                            fs::write(dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
                    }
                    if let Some(max) = limits.pids {
                        write(
                            &pids.join("berth").join(id).join("pids.max"),
                            &max.to_string(),
                        )?;
                    }
                }
            }
        }
        Ok(cgroup)
    }

    /// The cgroup of a container created earlier (e.g. by a daemon that has since restarted).
    pub fn existing(layout: &Layout, id: &str) -> Cgroup {
        Cgroup {
            layout: layout.clone(),
            id: id.to_owned(),
        }
    }

    /// The directories of this cgroup, one per hierarchy (none without cgroups).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::Unlimited { .. } => Vec::new(),
            Layout::V2(root) => vec![root.join("berth").join(&self.id)],
            Layout::V1 {
                cpu,
                cpuacct,
                memory,
                pids,
            } => {
                let mut dirs: Vec<PathBuf> = [cpu, cpuacct, memory, pids]
                    .iter()
                    .map(|m| m.join("berth").join(&self.id))
                    .collect();
                // cpu and cpuacct are often one mount (cpu,cpuacct): one directory then.
                dirs.dedup();
                dirs
            }
        }
    }

    /// Move process `pid` into the cgroup(s).
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// What the container's processes use now (nothing is known without a cgroup).
    pub fn usage(&self) -> Usage {
        match &self.layout {
            Layout::Unlimited { .. } => Usage::default(),
            Layout::V2(root) => {
                let dir = root.join("berth").join(&self.id);
                Usage {
                    cpu_seconds: read_key(&dir.join("cpu.stat"), "usage_usec") as f64 / 1e6,
                    memory: read_u64(&dir.join("memory.current")),
                    pids: read_u64(&dir.join("pids.current")),
                    oom_kills: read_key(&dir.join("memory.events"), "oom_kill"),
                }
            }
            Layout::V1 {
                cpuacct,
                memory,
                pids,
                ..
            } => {
                let at = |m: &PathBuf| m.join("berth").join(&self.id);
                Usage {
                    cpu_seconds: read_u64(&at(cpuacct).join("cpuacct.usage")) as f64 / 1e9,
                    memory: read_u64(&at(memory).join("memory.usage_in_bytes")),
                    pids: read_u64(&at(pids).join("pids.current")),
                    oom_kills: read_key(&at(memory).join("memory.oom_control"), "oom_kill"),
                }
            }
        }
    }

    /// Processes still in the cgroup (none known without one: the container's processes end
    /// with its first, whose pid namespace they are in).
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.dirs().into_iter().next() else {
            return Vec::new();
        };
        fs::read_to_string(dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Remove the cgroup(s). They must be empty: kill what is left first.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CgroupError::Io {
                        path: dir,
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup v2 mount in a temporary directory, this process in `/user/u`, whose
    /// `cgroup.controllers` lists `controllers`.
    fn hierarchy(controllers: &str) -> (tempfile::TempDir, PathBuf) {
        let mount = tempfile::tempdir().unwrap();
        fs::write(
            mount.path().join("cgroup.controllers"),
            "cpu memory pids io",
        )
        .unwrap();
        let own = mount.path().join("user/u");
        fs::create_dir_all(&own).unwrap();
        fs::write(own.join("cgroup.controllers"), controllers).unwrap();
        let proc_cgroup = mount.path().join("self-cgroup");
        fs::write(&proc_cgroup, "0::/user/u\n").unwrap();
        (mount, proc_cgroup)
    }

    #[test]
    fn a_delegated_subtree_is_used_once_the_daemon_has_a_leaf_of_its_own() {
        let (mount, own) = hierarchy("cpu io memory pids");
        let layout = Layout::delegated_in(mount.path(), own.to_str().unwrap()).unwrap();
        let root = mount.path().join("user/u");
        assert_eq!(layout, Layout::V2(root.clone()));
        assert_eq!(
            fs::read_to_string(root.join("berthd/cgroup.procs")).unwrap(),
            std::process::id().to_string(),
            "the daemon moved out of the cgroup it delegates"
        );
        assert_eq!(
            fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
        );
        assert!(layout.limits().is_ok());
    }

    #[test]
    fn without_delegation_containers_run_unlimited_and_say_why() {
        let (mount, own) = hierarchy("io");
        let why = Layout::delegated_in(mount.path(), own.to_str().unwrap()).unwrap_err();
        assert!(why.contains("lacks cpu, memory, pids"), "{why}");
        let v1 = tempfile::tempdir().unwrap();
        let why = Layout::delegated_in(v1.path(), own.to_str().unwrap()).unwrap_err();
        assert!(why.contains("v1"), "{why}");

        let unlimited = Layout::Unlimited { why: why.clone() };
        assert_eq!(unlimited.limits(), Err(why));
        let none = Cgroup::create(&unlimited, "c1", &Limits::default()).unwrap();
        assert!(none.dirs().is_empty() && none.pids().is_empty());
        none.add(1).unwrap();
        none.remove().unwrap();
        let refused = Cgroup::create(
            &unlimited,
            "c2",
            &Limits {
                memory: Some(1 << 20),
                ..Limits::default()
            },
        )
        .unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("memory limits cannot be set here"),
            "{refused}"
        );
    }
}
