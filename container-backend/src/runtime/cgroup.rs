//! Resource limits and accounting for one container with cgroups, v2 or v1.
//!
//! v2 (a unified hierarchy with controllers, as on most workstations): one directory
//! `<mount>/berth/<id>` with `cpu.max`, `memory.max`, `pids.max`. v1 (legacy or hybrid, as on
//! these build machines): a directory `berth/<id>` under each controller's own mount (`cpu`,
//! `cpuacct`, `memory`, `pids`). Detection: a `cgroup.controllers` file at the top of
//! /sys/fs/cgroup means v2; otherwise v1 controllers are looked up in /proc/self/mountinfo.

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

    /// The directories of this cgroup, one per hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
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

    /// What the container's processes use now.
    pub fn usage(&self) -> Usage {
        match &self.layout {
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

    /// Processes still in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let dir = &self.dirs()[0];
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
