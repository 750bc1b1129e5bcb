//! The container runtime: one container = one process tree in its own namespaces, on an
//! overlay of the image's root filesystem, limited by a cgroup.
//!
//! - [`spawn`]: clone into namespaces, mount, pivot_root, exec.
//! - [`capabilities`]: what root in a container may do (Docker's set, less MKNOD).
//! - [`exec`]: another process in a running container's namespaces and cgroup (`exec`).
//! - [`cgroup`]: limits and usage, cgroup v2 or v1.
//! - [`user`]: the image's USER resolved in its own /etc/passwd.
//! - [`ids`]: which ids exist in the daemon's user namespace (a rootless daemon has few).
//! - [`network`]: the container's network through pasta, its published ports and /etc files.
//! - [`bridge`]: the Berth network, where containers reach each other by name.
//! - [`proxy`]: the published ports of a container on the Berth network.
//! - [`dhcp`]: the Berth network's DHCP server, for its VMs.

pub mod bridge;
pub mod capabilities;
pub mod cgroup;
pub mod dhcp;
pub mod exec;
pub mod ids;
pub mod network;
pub mod proxy;
pub mod spawn;
pub mod tap;
pub mod user;

use std::fs::{self, OpenOptions};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_api::network::PortForward;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

pub use bridge::BridgeNetwork;
pub use cgroup::{Cgroup, Layout, Limits, Usage};
pub use network::{HostsEntry, NetworkError, Pasta};
pub use proxy::Published;
pub use spawn::{BindMount, ProcessSpec, SpawnError, TmpfsMount};

/// The `PATH` a container gets when its image sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a container is connected.
#[derive(Debug, Clone)]
pub enum Connection {
    /// Through a pasta of its own, which publishes these ports.
    Pasta(Vec<PortForward>),
    /// On the Berth network at `address`; the daemon publishes `ports`.
    Bridge {
        network: BridgeNetwork,
        address: Ipv4Addr,
        ports: Vec<PortForward>,
    },
}

/// What keeps a started container connected, ended with it.
#[derive(Debug)]
pub enum Attachment {
    Pasta(Pasta),
    /// Its published ports on the Berth network (its veth goes with its namespace).
    Bridge(Published),
}

impl Attachment {
    fn detach(&self) {
        match self {
            Attachment::Pasta(pasta) => pasta.detach(),
            Attachment::Bridge(published) => published.close(),
        }
    }
}

/// Everything needed to start a container.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// A short id, used for the hostname and the cgroup name.
    pub id: String,
    /// The container's own directory: its writable layer, overlay work dir and mount point.
    pub dir: PathBuf,
    /// The image's root filesystem layers, topmost first.
    pub lower: Vec<PathBuf>,
    pub args: Vec<String>,
    /// `NAME=value` pairs from the image and the request.
    pub env: Vec<String>,
    /// Working directory inside the container; `/` when empty.
    pub cwd: String,
    /// The image's USER; root when empty.
    pub user: String,
    pub limits: Limits,
    /// stdout and stderr go here (appended).
    pub log: PathBuf,
    /// How it is connected; `None`: loopback only.
    pub network: Option<Connection>,
    /// Its /etc/hosts names beyond localhost and its own (the other containers on its
    /// network).
    pub hosts: Vec<HostsEntry>,
    /// The hostname asked for; the short id when `None`.
    pub hostname: Option<String>,
    /// Host files and directories mounted into it (volumes).
    pub mounts: Vec<BindMount>,
    /// Memory filesystems mounted into it (a build step's scratch space).
    pub tmpfs: Vec<TmpfsMount>,
    /// On a terminal (`run -t`): its output goes there, not to the log.
    pub terminal: bool,
    /// Without a terminal, its stdin is a pipe whose write end is handed out (`run -i`).
    pub stdin: bool,
}

/// Why a container could not be started or handled.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container's user cannot be found in its image.
    #[error("{0}")]
    User(String),
    /// Preparing the container's directories failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The cgroup could not be set up.
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
    /// The process could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn { command: String, source: SpawnError },
    /// The network could not be set up.
    #[error(transparent)]
    Network(#[from] NetworkError),
}

/// How a container's first process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128 + the signal number when a signal ended it (as shells report).
    pub code: i32,
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

/// A started container.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    pub pid: i32,
    pub cgroup: Cgroup,
    /// What keeps it connected, when it is networked.
    pub network: Option<Attachment>,
    /// Its hostname, which its first process also has as `HOSTNAME` (how it is recognised
    /// without a cgroup).
    pub hostname: String,
    /// The master of its terminal, for whoever takes it (`run -t`).
    pub terminal: Option<OwnedFd>,
    /// The write end of its stdin's pipe, for whoever feeds it (`run -i`).
    pub stdin: Option<OwnedFd>,
}

impl ContainerConfig {
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

/// Removes from a finished container's upper directory what was made only to mount on: the
/// empty files and directories at its mount targets (and the empty directories made on the
/// way) that the image did not have, as BuildKit removes its mount stubs, so a build step's
/// layer holds only what the step wrote.
pub fn remove_mount_stubs(config: &ContainerConfig) {
    let upper = config.upper();
    let in_image = |path: &Path| {
        config
            .lower
            .iter()
            .any(|l| l.join(path).symlink_metadata().is_ok())
    };
    let mut targets: Vec<PathBuf> = config
        .mounts
        .iter()
        .map(|m| m.target.as_str())
        .chain(config.tmpfs.iter().map(|m| m.target.as_str()))
        .map(|t| PathBuf::from(t.trim_start_matches('/')))
        .collect();
    if config.network.is_some() {
        targets.extend(network::ETC_FILES.iter().map(|(_, t)| PathBuf::from(t)));
    }
    for target in targets {
        let mut path = target.as_path();
        while !path.as_os_str().is_empty() && !in_image(path) {
            let stub = upper.join(path);
            let removed = match stub.symlink_metadata() {
                Ok(m) if m.is_file() && m.len() == 0 => fs::remove_file(&stub).is_ok(),
                // Only when empty: what the step wrote there stays.
                Ok(m) if m.is_dir() => fs::remove_dir(&stub).is_ok(),
                _ => false,
            };
            if !removed {
                break;
            }
            path = path.parent().unwrap_or(Path::new(""));
        }
    }
}

/// A process's environment with what every container process gets unless it is set: the
/// default `PATH`, and `HOME` from its user's entry.
pub(crate) fn complete_env(mut env: Vec<String>, home: &str) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(DEFAULT_PATH.into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

/// A container's hostname: the one asked for, else its id's first 12 characters.
pub fn hostname_of(id: &str, asked: Option<&str>) -> String {
    if let Some(name) = asked {
        return name.to_owned();
    }
    id.chars().take(12).collect()
}

fn mkdirs(path: &Path) -> Result<(), RuntimeError> {
    fs::create_dir_all(path).map_err(|source| RuntimeError::Io {
        what: "create",
        path: path.to_owned(),
        source,
    })
}

/// Start a container.
pub fn start(config: &ContainerConfig, layout: &Layout) -> Result<Container, RuntimeError> {
    let (upper, work, rootfs) = (config.upper(), config.dir.join("work"), config.rootfs());
    for dir in [&upper, &work, &rootfs] {
        mkdirs(dir)?;
    }
    // The user is looked up in the topmost layer that has the files (the image's own).
    let etc_root = config
        .lower
        .iter()
        .find(|l| l.join("etc/passwd").exists())
        .cloned()
        .unwrap_or_default();
    let user = user::resolve(&config.user, &etc_root).map_err(RuntimeError::User)?;
    if !ids::uid_mapped(user.uid) || !ids::gid_mapped(user.gid) {
        return Err(RuntimeError::User(format!(
            "the container's user {}:{} has no id here: this rootless daemon has only the ids of your own user, so containers run as root (give your user subordinate ids in /etc/subuid and /etc/subgid and install uidmap, then restart berthd)",
            user.uid, user.gid
        )));
    }
    // Where supplementary groups cannot be set (a rootless daemon with one id), the process
    // keeps the ones it has.
    let groups = user.settable_groups();
    let mut env = complete_env(config.env.clone(), &user.home);
    let hostname = hostname_of(&config.id, config.hostname.as_deref());
    env.push(format!("HOSTNAME={hostname}"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.log)
        .map_err(|source| RuntimeError::Io {
            what: "open the log",
            path: config.log.clone(),
            source,
        })?;
    let stdout: OwnedFd = log.into();
    let stderr = stdout.try_clone().map_err(|source| RuntimeError::Io {
        what: "duplicate the log",
        path: config.log.clone(),
        source,
    })?;
    // Offline (no default route), pasta cannot start: a container of its own without
    // published ports runs on loopback, as with `--network none`; one with ports is refused.
    // The bridge works offline: its containers still reach each other.
    let network = match &config.network {
        Some(Connection::Pasta(ports)) if !network::host_has_route() => {
            if !ports.is_empty() {
                return Err(NetworkError::NoRoute.into());
            }
            None
        }
        other => other.as_ref(),
    };
    let mut mounts = match network {
        // An image that cannot hold a file there (a dangling link) keeps what it has.
        Some(_) => {
            network::etc_files(
                &config.dir,
                &hostname,
                &network::hosts_text(&hostname, &config.hosts, network::host_gateway()),
            )?
            .into_iter()
            .map(|(file, target)| BindMount {
                // The daemon's own file; its directory may lie behind a symlink.
                source: fs::canonicalize(&file).unwrap_or(file),
                target: target.to_owned(),
                read_only: false,
                optional: true,
            })
            .collect()
        }
        None => Vec::new(),
    };
    // Ports on the bridge are bound before the process starts, so one in use stops the start.
    let published = match network {
        Some(Connection::Bridge {
            network,
            address,
            ports,
        }) => Some(Published::open(network, *address, ports)?),
        _ => None,
    };
    mounts.extend(config.mounts.iter().cloned());
    // A terminal's master comes back from the child over a socket pair.
    let (our_terminal, child_terminal) = if config.terminal {
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| RuntimeError::Io {
            what: "make a socket for the terminal",
            path: config.dir.clone(),
            source: e.into(),
        })?;
        (Some(ours), Some(theirs))
    } else {
        (None, None)
    };
    // `run -i` without a terminal: the process reads a pipe; its write end is handed out.
    let (stdin_read, stdin_write) = if config.stdin && !config.terminal {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| RuntimeError::Io {
                what: "make a pipe for stdin",
                path: config.dir.clone(),
                source: e.into(),
            })?;
        (Some(read), Some(write))
    } else {
        (None, None)
    };
    let spec = ProcessSpec {
        rootfs,
        lower: config.lower.clone(),
        upper,
        work,
        args: config.args.clone(),
        env,
        cwd: if config.cwd.is_empty() {
            "/".into()
        } else {
            config.cwd.clone()
        },
        uid: user.uid,
        gid: user.gid,
        groups,
        hostname: hostname.clone(),
        mounts,
        tmpfs: config.tmpfs.clone(),
        stdout,
        stderr,
        stdin: stdin_read,
        terminal: child_terminal,
    };
    let cgroup = Cgroup::create(layout, &config.id, &config.limits)?;
    let command = config.args.first().cloned().unwrap_or_default();
    // Set while the process waits to go on: the cgroup, then the network.
    let mut attachment = published.map(Attachment::Bridge);
    let mut network_error = None;
    let spawned = spawn::spawn(&spec, |pid| {
        cgroup.add(pid).map_err(|e| SpawnError::Parent {
            what: "put the process into its cgroup",
            source: std::io::Error::other(e.to_string()),
        })?;
        let connected = match network {
            Some(Connection::Pasta(ports)) => Pasta::attach(pid, &config.dir, ports)
                .map(|p| attachment = Some(Attachment::Pasta(p))),
            Some(Connection::Bridge {
                network, address, ..
            }) => network.attach(pid, &config.id, *address),
            None => Ok(()),
        };
        if let Err(e) = connected {
            network_error = Some(e);
            return Err(SpawnError::Parent {
                what: "connect the network",
                source: std::io::Error::other("the network failed"),
            });
        }
        Ok(())
    });
    match spawned {
        Ok(pid) => {
            // The child sent the master before it exec'd: it is waiting in the socket.
            let terminal = match &our_terminal {
                Some(socket) => {
                    let mut byte = [0u8; 1];
                    let (_, mut fds) =
                        berth_api::fdpass::recv_with_fds(socket.as_raw_fd(), &mut byte).map_err(
                            |source| RuntimeError::Io {
                                what: "receive the container's terminal",
                                path: config.dir.clone(),
                                source,
                            },
                        )?;
                    Some(fds.pop().ok_or_else(|| RuntimeError::Io {
                        what: "receive the container's terminal",
                        path: config.dir.clone(),
                        source: std::io::Error::other("no terminal came"),
                    })?)
                }
                None => None,
            };
            Ok(Container {
                id: config.id.clone(),
                pid,
                cgroup,
                network: attachment,
                hostname,
                terminal,
                stdin: stdin_write,
            })
        }
        Err(source) => {
            if let Some(attachment) = attachment {
                attachment.detach();
            }
            let _ = cgroup.remove();
            match network_error {
                Some(e) => Err(RuntimeError::Network(e)),
                None => Err(RuntimeError::Spawn { command, source }),
            }
        }
    }
}

impl Container {
    /// A container started earlier whose first process is `pid`: it can be watched and
    /// signalled, but not waited for with waitpid (it is not this process's child any more).
    /// `dir` is its directory, where its pasta's namespace file is; `published`, the ports
    /// carried for it again when it is on the bridge.
    pub fn adopt(
        id: &str,
        hostname: Option<&str>,
        pid: i32,
        layout: &Layout,
        dir: &Path,
        published: Option<Published>,
    ) -> Container {
        Container {
            id: id.to_owned(),
            pid,
            cgroup: Cgroup::existing(layout, id),
            network: published
                .map(Attachment::Bridge)
                .or_else(|| Pasta::existing(dir).map(Attachment::Pasta)),
            hostname: hostname_of(id, hostname),
            terminal: None,
            stdin: None,
        }
    }

    /// Wait for the first process to end (blocking), then clean up: kill whatever is left in
    /// the cgroup and remove it. The overlay and /proc mounts lived only in the container's
    /// mount namespace and went with it.
    pub fn wait(&self) -> Exit {
        let status = loop {
            match waitpid(Pid::from_raw(self.pid), None) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other,
            }
        };
        let usage = self.cgroup.usage();
        let (code, signal) = match status {
            Ok(WaitStatus::Exited(_, code)) => (code, None),
            Ok(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
            _ => (255, None),
        };
        self.reap_leftovers();
        Exit {
            code,
            signal,
            oom_killed: usage.oom_kills > 0,
        }
    }

    /// Kill every process left in the cgroup (PID 1 ending kills its namespace, but be sure),
    /// then remove the cgroup and end its pasta.
    pub fn reap_leftovers(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.cgroup.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.cgroup.remove();
        if let Some(attachment) = &self.network {
            attachment.detach();
        }
    }

    /// Whether the container's first process still runs: it is in the container's cgroup, or,
    /// without one, the process of that pid still has the container's hostname in its
    /// environment (a pid is reused by others; the container's process is the one started
    /// with `HOSTNAME=<its hostname>`).
    pub fn is_running(&self) -> bool {
        if !self.cgroup.dirs().is_empty() {
            return self.cgroup.pids().contains(&self.pid);
        }
        let hostname = format!("HOSTNAME={}", self.hostname);
        fs::read(format!("/proc/{}/environ", self.pid)).is_ok_and(|environ| {
            environ
                .split(|b| *b == 0)
                .any(|entry| entry == hostname.as_bytes())
        })
    }

    /// Send `signal` to the container's first process.
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        kill(Pid::from_raw(self.pid), signal)
    }

    /// What the container uses now.
    pub fn usage(&self) -> Usage {
        self.cgroup.usage()
    }
}
