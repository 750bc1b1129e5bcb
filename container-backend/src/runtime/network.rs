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
use std::net::{IpAddr, Ipv4Addr};
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
    /// A program that sets up the bridge network is not there.
    #[error(
        "the bridge network needs `{program}`, which is not installed: install it (sudo apt install {package}) or use --network pasta"
    )]
    BridgeTool {
        program: &'static str,
        package: &'static str,
    },
    /// Setting up the bridge network, or a container on it, failed: what and why.
    #[error("cannot {what} on the bridge network: {why}")]
    Bridge { what: String, why: String },
    /// A VM's card could not be put on a bridge of the host's.
    #[error("cannot put the card on the host's bridge `{bridge}`: {why}")]
    HostBridge { bridge: String, why: String },
    /// A published port could not be bound on the host.
    #[error("cannot publish {port}: {source}")]
    Publish { port: String, source: io::Error },
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

/// The names a container reaches the host's loopback by, as Podman (and Docker Desktop) name
/// it: the host's gateway, which pasta maps to the host's loopback.
const HOST_NAMES: &str = "host.containers.internal host.docker.internal";

/// A line of a container's /etc/hosts: an address and its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsEntry {
    pub address: IpAddr,
    pub names: Vec<String>,
}

/// The address of the host's default IPv4 route's gateway, from `/proc/net/route`.
pub fn host_gateway() -> Option<Ipv4Addr> {
    let routes = fs::read_to_string("/proc/net/route").ok()?;
    routes.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
        // RTF_UP and RTF_GATEWAY, to anywhere.
        if fields.get(1) != Some(&"00000000") || flags & 0x3 != 0x3 {
            return None;
        }
        // The kernel writes the address in the host's byte order, which is little-endian here.
        let gateway = u32::from_str_radix(fields.get(2)?, 16).ok()?;
        Some(Ipv4Addr::from(gateway.to_le_bytes()))
    })
}

/// A container's /etc/hosts: localhost, its own name (on `127.0.1.1` unless `entries` give it
/// an address), the other `entries`, and the host's names at `gateway` (the host's default
/// gateway, [`host_gateway`], read once by a caller writing several).
pub fn hosts_text(hostname: &str, entries: &[HostsEntry], gateway: Option<Ipv4Addr>) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if !entries
        .iter()
        .any(|e| e.names.iter().any(|n| n == hostname))
    {
        text.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    for entry in entries {
        text.push_str(&format!("{}\t{}\n", entry.address, entry.names.join(" ")));
    }
    if let Some(gateway) = gateway {
        text.push_str(&format!("{gateway}\t{HOST_NAMES}\n"));
    }
    text
}

/// Rewrites the /etc/hosts of a container made by [`etc_files`] in place (the same file, which
/// is what is mounted in the container, so a running container reads the new names).
///
/// Never truncated: a resolver in the container reading between a truncation and the write
/// would find no names at all ("bad address", seen in the network test). The new text goes
/// over the old in one write, padded with newlines (blank lines, which resolvers skip) to the
/// old length when it is shorter; an unchanged file is not written.
pub fn rewrite_hosts(dir: &Path, text: &str) -> Result<(), NetworkError> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;

    let path = dir.join("etc").join(ETC_FILES[1].0);
    let io_error = |what, source| NetworkError::Io {
        what,
        path: path.clone(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("open", e))?;
    let mut old = Vec::new();
    file.read_to_end(&mut old)
        .map_err(|e| io_error("read", e))?;
    let mut new = text.as_bytes().to_vec();
    if new.len() < old.len() {
        new.resize(old.len(), b'\n');
    }
    if new == old {
        return Ok(());
    }
    file.write_all_at(&new, 0).map_err(|e| io_error("write", e))
}

/// The files a networked container gets at /etc, written in its directory and bind-mounted
/// over the image's: (file, path in the container). `hosts` is its /etc/hosts.
pub fn etc_files(
    dir: &Path,
    hostname: &str,
    hosts: &str,
) -> Result<Vec<(PathBuf, &'static str)>, NetworkError> {
    let texts = [
        format!("nameserver {DNS_FORWARD}\n"),
        hosts.to_owned(),
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

/// Runs pasta on the network namespace bound at `netns`, publishing `ports`; it goes to the
/// background once the namespace's interface is up, and quits when the file is unmounted.
/// What it says goes to `log`.
pub(crate) fn run_pasta(
    netns: &Path,
    ports: &[PortForward],
    log: &Path,
) -> Result<(), NetworkError> {
    let stderr = File::create(log).map_err(|source| NetworkError::Io {
        what: "create",
        path: log.to_owned(),
        source,
    })?;
    let status = Command::new("pasta")
        // --runas 0: a root daemon's pasta would otherwise become `nobody` before opening
        // the namespace file; it drops its capabilities either way.
        .args(["--config-net", "--quiet", "--runas", "0"])
        .args(["--dns-forward", DNS_FORWARD])
        // Nothing of the namespace's own listening ports reaches the host but `-p`'s.
        .args(["-T", "none", "-U", "none"])
        .args(passt_port_args(ports))
        .arg("--netns")
        .arg(netns)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .status();
    // An exit status is its setup's: the namespace is connected when it is zero.
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(_) => {
            let said = fs::read_to_string(log).unwrap_or_default();
            let said: Vec<&str> = said
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("Failed to send"))
                .collect();
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
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(NetworkError::Missing),
        Err(source) => Err(NetworkError::Io {
            what: "run pasta for",
            path: netns.to_owned(),
            source,
        }),
    }
}

/// Binds the network namespace of process `pid` onto the file `netns`.
pub(crate) fn bind_namespace(pid: i32, netns: &Path) -> Result<(), NetworkError> {
    let io = |what, source| NetworkError::Io {
        what,
        path: netns.to_owned(),
        source,
    };
    File::create(netns).map_err(|e| io("create", e))?;
    nix::mount::mount(
        Some(Path::new(&format!("/proc/{pid}/ns/net"))),
        netns,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| io("bind the network namespace onto", e.into()))
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
        bind_namespace(pid, &netns)?;
        let pasta = Pasta { netns };
        match run_pasta(&pasta.netns, ports, &dir.join("pasta.log")) {
            Ok(()) => Ok(pasta),
            Err(e) => {
                pasta.detach();
                Err(e)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_rewritten_over_the_old_text_never_shorter() {
        let dir = tempfile::tempdir().unwrap();
        etc_files(dir.path(), "c1", "127.0.0.1\tlocalhost\n10.89.0.3\tdb\n").unwrap();
        let path = dir.path().join("etc").join(ETC_FILES[1].0);
        let inode = fs::metadata(&path).unwrap();
        rewrite_hosts(dir.path(), "127.0.0.1\tlocalhost\n").unwrap();
        // db's line gone, the length kept with blank lines; the same file (what is mounted).
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!(
                "127.0.0.1\tlocalhost\n{}",
                "\n".repeat("10.89.0.3\tdb\n".len())
            )
        );
        let after = fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&inode),
            std::os::unix::fs::MetadataExt::ino(&after)
        );
        rewrite_hosts(dir.path(), "127.0.0.1\tlocalhost\n10.89.0.4\tweb-server\n").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "127.0.0.1\tlocalhost\n10.89.0.4\tweb-server\n"
        );
    }
}
