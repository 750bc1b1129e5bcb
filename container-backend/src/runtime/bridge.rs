//! The Berth network: one bridge (`berth0`) where containers reach each other by address and,
//! through the /etc/hosts the daemon keeps, by name, as on a network made with `docker network
//! create`.
//!
//! **Decision: the bridge lives in a network namespace of the daemon's, connected out by pasta**,
//! as rootless Podman connects its networks (its "rootless netns"), under the root daemon and a
//! user's alike: nothing of the host's own network changes (no bridge, firewall rule or
//! `ip_forward` on the host), it works without privilege, and the way out is the same user-mode
//! NAT every other container has. Inside the namespace: `berth0` with the gateway address, a
//! masquerade of the containers' addresses (nftables) onto pasta's interface, and forwarding on.
//! Each container gets a veth pair, `eth0` in its namespace and the other end on the bridge. The
//! namespace is kept as a bind mount in the daemon's state while containers are on it (so it
//! outlives a daemon restart) and taken down after the last; the veth ends go with the
//! containers' namespaces. Published ports are carried by the daemon (`proxy.rs`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use super::network::{NetworkError, host_has_route, run_pasta};

/// The bridge's name in the network's namespace.
pub const BRIDGE: &str = "berth0";
/// The network's first address, the bridge's: every container's gateway.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 1);
/// The length of the network's prefix: 10.89.0.0/16.
pub const PREFIX: u8 = 16;

/// The numbers of the network's addresses containers get: its lower half (10.89.0.2 to
/// 10.89.127.255; 1 is the gateway).
pub const CONTAINER_NUMBERS: std::ops::Range<u32> = 2..(1 << (31 - PREFIX));
/// The numbers VMs get, by DHCP: its upper half, but the broadcast address (10.89.128.0 to
/// 10.89.255.254).
pub const VM_NUMBERS: std::ops::Range<u32> = (1 << (31 - PREFIX))..((1 << (32 - PREFIX)) - 1);

/// The network's address numbered `n` (its place in the /16), if it is one a container or a
/// VM may have.
pub fn address(n: u32) -> Option<Ipv4Addr> {
    (CONTAINER_NUMBERS.contains(&n) || VM_NUMBERS.contains(&n))
        .then(|| Ipv4Addr::from(u32::from(GATEWAY) - 1 + n))
}

/// The network, by the file its namespace is bound to.
#[derive(Debug, Clone)]
pub struct BridgeNetwork {
    netns: PathBuf,
}

fn bridge_error(what: impl Into<String>, why: impl ToString) -> NetworkError {
    NetworkError::Bridge {
        what: what.into(),
        why: why.to_string(),
    }
}

/// Whether `path` is a bound network namespace (nsfs), not the empty file under it.
fn is_namespace(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Runs `program args` in the network namespace bound at `netns`, feeding it `input`.
fn run_in(
    netns: &Path,
    program: &'static str,
    package: &'static str,
    args: &[&str],
    input: &str,
) -> Result<(), NetworkError> {
    let namespace = File::open(netns).map_err(|source| NetworkError::Io {
        what: "open",
        path: netns.to_owned(),
        source,
    })?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let fd = namespace
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| NetworkError::Io {
            what: "duplicate",
            path: netns.to_owned(),
            source,
        })?;
    // SAFETY: between fork and exec the child only calls setns(2), a single system call on a
    // descriptor it inherited; nothing allocates or takes a lock.
    unsafe {
        command.pre_exec(move || {
            nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
        });
    }
    let mut child = command.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => NetworkError::BridgeTool { program, package },
        _ => bridge_error(format!("run {program}"), e),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| bridge_error(format!("feed {program}"), e))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| bridge_error(format!("run {program}"), e))?;
    if output.status.success() {
        return Ok(());
    }
    Err(bridge_error(
        format!("run `{program} {}`", args.join(" ")),
        String::from_utf8_lossy(&output.stderr).trim(),
    ))
}

/// Runs `f` on a thread of its own inside the network namespace open as `namespace`: sockets
/// it makes belong to that namespace for their whole life.
fn in_namespace<T: Send>(
    namespace: &File,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(namespace, CloneFlags::CLONE_NEWNET)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the namespace's thread panicked")))
    })
}

impl BridgeNetwork {
    /// The network whose namespace is bound at `dir/netns`, set up first when it is not there
    /// (the first container on it since the machine started).
    pub fn open(dir: &Path) -> Result<BridgeNetwork, NetworkError> {
        let network = BridgeNetwork {
            netns: dir.join("netns"),
        };
        if is_namespace(&network.netns) {
            return Ok(network);
        }
        fs::create_dir_all(dir).map_err(|source| NetworkError::Io {
            what: "create",
            path: dir.to_owned(),
            source,
        })?;
        network.create()?;
        if let Err(e) = network.configure(dir) {
            let _ = nix::mount::umount2(&network.netns, nix::mount::MntFlags::MNT_DETACH);
            return Err(e);
        }
        Ok(network)
    }

    /// Makes the namespace and binds it to the file, on a thread of its own (a thread's
    /// namespace is its own to change); forwarding is switched on there, where /proc/sys/net
    /// is the new namespace's.
    fn create(&self) -> Result<(), NetworkError> {
        File::create(&self.netns).map_err(|source| NetworkError::Io {
            what: "create",
            path: self.netns.clone(),
            source,
        })?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<(), NetworkError> {
                    nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                        .map_err(|e| bridge_error("make its namespace", e))?;
                    nix::mount::mount(
                        Some("/proc/thread-self/ns/net"),
                        &self.netns,
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    )
                    .map_err(|e| bridge_error("keep its namespace", e))?;
                    fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                        .map_err(|e| bridge_error("switch forwarding on", e))
                })
                .join()
                .unwrap_or_else(|_| Err(bridge_error("make its namespace", "the thread panicked")))
        })
    }

    /// The bridge, the masquerade and the way out.
    fn configure(&self, dir: &Path) -> Result<(), NetworkError> {
        let bridge = format!(
            "link set lo up\nlink add {BRIDGE} type bridge\naddr add {GATEWAY}/{PREFIX} dev {BRIDGE}\nlink set {BRIDGE} up\n"
        );
        run_in(&self.netns, "ip", "iproute2", &["-batch", "-"], &bridge)?;
        let subnet = format!("{}/{PREFIX}", Ipv4Addr::from(u32::from(GATEWAY) - 1));
        // The gateway's address reaches the host's loopback, as pasta's gateway does (VMs
        // and containers reach a server on the host there): sent on to pasta's gateway, which
        // pasta maps to the host's loopback. DHCP stays the gateway's own.
        let to_host = match super::network::host_gateway() {
            Some(host) => format!(
                " chain prerouting {{\n  type nat hook prerouting priority dstnat\n  iifname \"{BRIDGE}\" ip daddr {GATEWAY} udp dport != 67 dnat to {host}\n  iifname \"{BRIDGE}\" ip daddr {GATEWAY} meta l4proto tcp dnat to {host}\n }}\n"
            ),
            None => String::new(),
        };
        let rules = format!(
            "table ip berth {{\n chain postrouting {{\n  type nat hook postrouting priority srcnat\n  ip saddr {subnet} oifname != \"{BRIDGE}\" masquerade\n }}\n{to_host}}}\n"
        );
        run_in(&self.netns, "nft", "nftables", &["-f", "-"], &rules)?;
        // Offline, pasta cannot start: the containers still reach each other.
        if host_has_route() {
            run_pasta(&self.netns, &[], &dir.join("pasta.log"))?;
        }
        Ok(())
    }

    /// Puts the network namespace of process `pid` (a container's first, waiting to start) on
    /// the bridge at `address`: a veth pair named after container `id`, its `eth0` end given
    /// the address and the route out through the gateway.
    pub fn attach(&self, pid: i32, id: &str, address: Ipv4Addr) -> Result<(), NetworkError> {
        let veth: String = format!("vb{}", id.chars().take(12).collect::<String>());
        let ours = format!(
            "link add {veth} type veth peer name eth0 netns {pid}\nlink set {veth} master {BRIDGE}\nlink set {veth} up\n"
        );
        run_in(&self.netns, "ip", "iproute2", &["-batch", "-"], &ours)?;
        let theirs = format!(
            "addr add {address}/{PREFIX} dev eth0\nlink set eth0 up\nroute add default via {GATEWAY}\n"
        );
        let container = PathBuf::from(format!("/proc/{pid}/ns/net"));
        run_in(&container, "ip", "iproute2", &["-batch", "-"], &theirs)
    }

    /// A TAP device named `name` on the bridge, for a VM's card: its descriptor (one frame
    /// per read and write, each after a virtio-net header of `header_len` bytes; the device
    /// goes when the descriptor is closed).
    pub fn tap(&self, name: &str, header_len: usize) -> Result<OwnedFd, NetworkError> {
        let tap = self
            .socket(|| super::tap::open(name, header_len))
            .map_err(|e| bridge_error(format!("make the TAP {name}"), e))?;
        let up = format!("link set {name} master {BRIDGE}\nlink set {name} up\n");
        run_in(&self.netns, "ip", "iproute2", &["-batch", "-"], &up)?;
        Ok(tap)
    }

    /// Takes the network down: its namespace goes once nothing is in it, and its pasta quits
    /// when the file is unmounted.
    pub fn close(&self) {
        let _ = nix::mount::umount2(&self.netns, nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&self.netns);
    }

    /// Makes a socket (or anything else) inside the network's namespace with `f`.
    pub fn socket<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        in_namespace(&File::open(&self.netns)?, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_numbered_within_the_network() {
        assert_eq!(address(1), None, "the gateway's");
        assert_eq!(address(2), Some(Ipv4Addr::new(10, 89, 0, 2)));
        assert_eq!(address(257), Some(Ipv4Addr::new(10, 89, 1, 1)));
        assert_eq!(
            CONTAINER_NUMBERS.map_while(address).last(),
            Some(Ipv4Addr::new(10, 89, 127, 255))
        );
        assert_eq!(
            VM_NUMBERS.map_while(address).next(),
            Some(Ipv4Addr::new(10, 89, 128, 0))
        );
        assert_eq!(address(65534), Some(Ipv4Addr::new(10, 89, 255, 254)));
        assert_eq!(address(65535), None, "the broadcast address");
    }
}
