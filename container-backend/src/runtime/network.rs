//! A container's network: pasta (Debian's `passt` package), as rootless Podman runs it, joins
//! the container's network namespace, gives it an interface with the host's address, routes and
//! DNS, carries its traffic through the host's own sockets, and listens on the host for the
//! published ports. It works the same under a root daemon and a rootless one, and it confines
//! itself (its own namespaces, a seccomp filter, `no_new_privs`, capabilities dropped).
//!
//! pasta is given the namespace as a file (a bind mount of `/proc/PID/ns/net` in the container's
//! directory): it opens it after dropping privileges, which `/proc/PID` of a root process would
//! refuse, and it quits by itself once the file is unmounted. It is started while the container's
//! first process waits to go on, so the command starts with its network up.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_api::network::{PortForward, passt_port_args};
use nix::mount::{MntFlags, MsFlags};

/// The address the container's /etc/resolv.conf names: pasta forwards DNS sent there to the
/// host's resolver (Podman uses the same).
pub const DNS_FORWARD: &str = "169.254.0.1";

/// The device pasta makes the container's interface with.
const TUN: &str = "/dev/net/tun";

/// Why a container's network could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(
        "containers get their network from pasta, which is not installed: install it (sudo apt install passt) or run with --network none"
    )]
    Missing,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// pasta ended with an error; what it said (a published port in use, for one).
    #[error("pasta could not connect the container: {0}")]
    Pasta(String),
    /// Ports were asked for on a host pasta cannot work on.
    #[error(
        "cannot publish ports: this host has no default route, which pasta needs (connect to a network, or run without -p)"
    )]
    NoRoute,
}

/// Whether the host has a default route (IPv4 or IPv6, not the kernel's `lo` reject route),
/// read from `/proc/net/route` and `/proc/net/ipv6_route` of the caller's network namespace.
/// pasta (this version) refuses to start without one ("External interface not usable"): an
/// offline machine's containers then run on loopback only, and publishing ports is refused.
pub fn host_has_route() -> bool {
    let v4 = fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v4 = v4.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(3).and_then(|f| u32::from_str_radix(f, 16).ok());
        fields.get(1) == Some(&"00000000")
            && fields.get(7) == Some(&"00000000")
            && flags.is_some_and(|f| f & 0x1 != 0) // RTF_UP
    });
    let v6 = fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    let v6 = v6.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(8).and_then(|f| u32::from_str_radix(f, 16).ok());
        fields.first().is_some_and(|d| d.bytes().all(|b| b == b'0'))
            && fields.get(1) == Some(&"00")
            && fields.get(9) != Some(&"lo")
            && flags.is_some_and(|f| f & 0x1 != 0 && f & 0x200 == 0) // RTF_UP, not RTF_REJECT
    });
    v4 || v6
}

/// The files a networked container gets at /etc: (name in its directory, path in the
/// container).
pub const ETC_FILES: [(&str, &str); 3] = [
    ("resolv.conf", "etc/resolv.conf"),
    ("hosts", "etc/hosts"),
    ("hostname", "etc/hostname"),
];

/// The files a networked container gets at /etc, written in its directory and bind-mounted
/// over the image's: (file, path in the container).
pub fn etc_files(dir: &Path, hostname: &str) -> Result<Vec<(PathBuf, &'static str)>, NetworkError> {
    let texts = [
        format!("nameserver {DNS_FORWARD}\n"),
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        ),
        format!("{hostname}\n"),
    ];
    let files = ETC_FILES
        .into_iter()
        .zip(texts)
        .map(|((name, target), text)| (name, target, text));
    let etc = dir.join("etc");
    fs::create_dir_all(&etc).map_err(|source| NetworkError::Io {
        what: "create",
        path: etc.clone(),
        source,
    })?;
    files
        .into_iter()
        .map(|(name, target, text)| {
            let path = etc.join(name);
            fs::write(&path, text).map_err(|source| NetworkError::Io {
                what: "write",
                path: path.clone(),
                source,
            })?;
            Ok((path, target))
        })
        .collect()
}

/// pasta serving one container, stopped by [`Pasta::detach`].
#[derive(Debug)]
pub struct Pasta {
    /// The bind mount of the container's network namespace that pasta watches.
    netns: PathBuf,
}

impl Pasta {
    fn netns_of(dir: &Path) -> PathBuf {
        dir.join("netns")
    }

    /// Connects the network namespace of process `pid` (the container's first, waiting to
    /// start), publishing `ports`. `dir` is the container's own directory.
    pub fn attach(pid: i32, dir: &Path, ports: &[PortForward]) -> Result<Pasta, NetworkError> {
        let netns = Self::netns_of(dir);
        let io = |what, source| NetworkError::Io {
            what,
            path: netns.clone(),
            source,
        };
        File::create(&netns).map_err(|e| io("create", e))?;
        nix::mount::mount(
            Some(Path::new(&format!("/proc/{pid}/ns/net"))),
            &netns,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| io("bind the network namespace onto", e.into()))?;
        let pasta = Pasta { netns };
        let log = dir.join("pasta.log");
        let stderr = File::create(&log).map_err(|source| NetworkError::Io {
            what: "create",
            path: log.clone(),
            source,
        })?;
        let status = Command::new("pasta")
            // --runas 0: a root daemon's pasta would otherwise become `nobody` before opening
            // the namespace file; it drops its capabilities either way.
            .args(["--config-net", "--quiet", "--runas", "0"])
            .args(["--dns-forward", DNS_FORWARD])
            // Nothing of the container's own listening ports reaches the host but `-p`'s.
            .args(["-T", "none", "-U", "none"])
            .args(passt_port_args(ports))
            .arg("--netns")
            .arg(&pasta.netns)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .status();
        // pasta goes to the background once the interface is up; an exit status is its
        // setup's, and the container is connected when it is zero.
        match status {
            Ok(status) if status.success() => Ok(pasta),
            Ok(_) => {
                let said = fs::read_to_string(&log).unwrap_or_default();
                let said: Vec<&str> = said
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("Failed to send"))
                    .collect();
                pasta.detach();
                let mut said = said.join("; ");
                if let Err(e) = File::options().read(true).write(true).open(TUN)
                    && e.kind() == io::ErrorKind::PermissionDenied
                {
                    said.push_str(&format!(
                        " ({TUN} is closed to this user; Debian's udev rule opens it to all, mode 0666)"
                    ));
                }
                Err(NetworkError::Pasta(said))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                pasta.detach();
                Err(NetworkError::Missing)
            }
            Err(source) => {
                pasta.detach();
                Err(NetworkError::Io {
                    what: "run pasta for",
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    }

    /// The pasta of a container started by an earlier daemon, if it has one.
    pub fn existing(dir: &Path) -> Option<Pasta> {
        let netns = Self::netns_of(dir);
        netns.exists().then_some(Pasta { netns })
    }

    /// Ends pasta (it quits when its namespace file goes) and frees the namespace.
    pub fn detach(&self) {
        let _ = nix::mount::umount2(&self.netns, MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&self.netns);
    }
}
