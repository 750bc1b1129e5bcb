//! A running VM's network: passt (Debian's `passt`, the user-mode NAT of GNOME Boxes and
//! libvirt's `type='user'`) on the other end of the network card's socket. berthd makes a
//! socket pair per VM, hands one end to berth-vmm (its virtio-net card) and the other to passt
//! (`-F`), which gives the guest DHCP, DNS and the host's connections, and listens on the VM's
//! forwarded host ports. passt ends by itself when the VM's end closes (`-F` implies
//! `--one-off`); berthd reaps it.
//!
//! **Decision: passt over a socket pair, not a socket path**: nothing appears in the file
//! system for another local user to connect to first, and the sandboxed berth-vmm needs no path
//! in its mount namespace.
//!
//! On the Berth network (`--network bridge`) the card is a TAP on the daemon's bridge instead,
//! handed to berth-vmm the same way: the guest gets its address from the network's DHCP server
//! and berthd carries its forwarded ports, as it carries containers' (`runtime/proxy.rs`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::sync::Arc;

use berth_api::error::{ApiError, ErrorKind};
use berth_api::network::{MacAddress, VmNetwork, passt_port_args};
use berth_api::vm::VmConfig;
use berth_vmm_api::launch::{NET_FD, NET_MTU, NetworkCard, TAP_HEADER_LEN};
use container_backend::runtime::Published;
use container_backend::runtime::network::host_has_route;

use crate::bridge::Bridge;

/// The program that gives a VM its network.
const PASST: &str = "passt";

/// passt's messages, in the VM's directory.
const PASST_LOG: &str = "passt.log";

/// A VM's passt process.
pub struct Passt {
    child: Child,
    log: PathBuf,
}

/// How a VM's network starts.
pub enum Start {
    /// The VM has no network (`--network none`).
    None,
    /// passt cannot work on this host (no default route): the VM starts without a card, and
    /// this says why.
    Offline(String),
    /// Its helper runs; berth-vmm gets `card` on [`NET_FD`] from `socket`.
    Running {
        helper: Helper,
        card: NetworkCard,
        socket: OwnedFd,
    },
}

/// What keeps a running VM's card connected.
pub enum Helper {
    Passt(Passt),
    /// Its place on the Berth network: its address and forwarded ports, given up when this
    /// goes.
    Bridge(BridgeLease),
    /// On a bridge of the host's: nothing to keep (the TAP goes with berth-vmm's descriptor).
    HostBridge,
}

/// A VM's place on the Berth network.
pub struct BridgeLease {
    bridge: Arc<Bridge>,
    mac: MacAddress,
    /// Its forwarded ports, carried by berthd.
    _forwards: Published,
}

impl Drop for BridgeLease {
    fn drop(&mut self) {
        self.bridge.leave_vm(self.mac);
    }
}

impl Helper {
    /// If the helper has already ended (passt: a forwarded port in use), why.
    pub fn failed(&mut self) -> Option<String> {
        match self {
            Helper::Passt(passt) => passt.failed(),
            Helper::Bridge(_) | Helper::HostBridge => None,
        }
    }

    /// Ends it once the VM has.
    pub fn reap(self) {
        match self {
            Helper::Passt(passt) => passt.reap(),
            Helper::Bridge(lease) => drop(lease),
            Helper::HostBridge => {}
        }
    }
}

/// Why `forward`'s host port cannot be had, if it is in use now (tried and let go at once).
fn port_in_use(forward: &berth_api::network::PortForward) -> Option<String> {
    use berth_api::network::Protocol;
    let address = (
        forward
            .host_ip
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        forward.host_port,
    );
    let taken = match forward.protocol {
        Protocol::Tcp => std::net::TcpListener::bind(address).err(),
        Protocol::Udp => std::net::UdpSocket::bind(address).err(),
    }?;
    (taken.kind() == std::io::ErrorKind::AddrInUse)
        .then(|| format!("the host port {} is in use", forward.vm_forward()))
}

/// The TAP of the VM whose card has `mac`: `tb` and the address's hex (14 characters, within
/// an interface name's 15).
fn tap_name(mac: MacAddress) -> String {
    let hex: String = mac.0.iter().map(|b| format!("{b:02x}")).collect();
    format!("tb{hex}")
}

/// Puts the VM on the Berth network: a TAP on its bridge for the card, an address from its
/// DHCP server, its forwards carried by berthd.
fn start_on_bridge(config: &VmConfig, bridge: &Arc<Bridge>) -> Result<Start, ApiError> {
    let name = &config.name;
    let mac = config.network.mac_of(name);
    let (network, address) = bridge.join_vm(mac, name)?;
    let joined = || -> Result<(OwnedFd, Published), ApiError> {
        let tap = network.tap(&tap_name(mac), TAP_HEADER_LEN).map_err(|e| {
            ApiError::new(
                ErrorKind::Unsupported,
                format!("cannot start VM `{name}`: {e}"),
            )
        })?;
        let forwards =
            Published::open(&network, address, &config.network.forwards).map_err(|e| {
                ApiError::invalid(format!(
                    "cannot start VM `{name}`: its network did not start: {e}"
                ))
            })?;
        Ok((tap, forwards))
    };
    let (tap, forwards) = match joined() {
        Ok(joined) => joined,
        Err(e) => {
            bridge.leave_vm(mac);
            return Err(e);
        }
    };
    crate::server::log(format!("VM `{name}` is on the bridge network at {address}"));
    Ok(Start::Running {
        helper: Helper::Bridge(BridgeLease {
            bridge: Arc::clone(bridge),
            mac,
            _forwards: forwards,
        }),
        card: NetworkCard {
            fd: NET_FD,
            mac,
            tap: true,
        },
        socket: tap,
    })
}

/// Puts the VM on a bridge of the host's: a TAP on it for the card; the network's own DHCP
/// gives the address, and nothing is forwarded.
fn start_on_host_bridge(config: &VmConfig, host_bridge: &str) -> Result<Start, ApiError> {
    let name = &config.name;
    let mac = config.network.mac_of(name);
    let tap = container_backend::runtime::tap::on_host_bridge(
        &tap_name(mac),
        host_bridge,
        TAP_HEADER_LEN,
    )
    .map_err(|e| {
        ApiError::new(
            ErrorKind::Unsupported,
            format!("cannot start VM `{name}`: {e}"),
        )
    })?;
    crate::server::log(format!("VM `{name}` is on the host's bridge {host_bridge}"));
    Ok(Start::Running {
        helper: Helper::HostBridge,
        card: NetworkCard {
            fd: NET_FD,
            mac,
            tap: true,
        },
        socket: tap,
    })
}

/// Starts the network of `config`: passt running as `ids` (uid, gid): the VM's own sandbox ids
/// under a root daemon (`Some`), so no two VMs' helpers share an id; 0:0 in a user's daemon's
/// namespace (`None`), which is the user; or its place on the Berth network, or on a bridge of
/// the host's (the root daemon's only).
pub fn start(
    config: &VmConfig,
    dir: &Path,
    ids: Option<(u32, u32)>,
    bridge: &Arc<Bridge>,
) -> Result<Start, ApiError> {
    let name = &config.name;
    match &config.network.mode {
        VmNetwork::None => return Ok(Start::None),
        VmNetwork::Bridge => return start_on_bridge(config, bridge),
        VmNetwork::HostBridge(host_bridge) if ids.is_none() => {
            return Err(ApiError::new(
                ErrorKind::Unsupported,
                format!(
                    "cannot start VM `{name}` on the host's bridge `{host_bridge}`: a TAP on the host's network needs the system daemon (root); a user's daemon has the Berth network (`vm edit {name} --network bridge`)"
                ),
            ));
        }
        VmNetwork::HostBridge(host_bridge) => return start_on_host_bridge(config, host_bridge),
        VmNetwork::Nat => {}
    }
    let ids = ids.unwrap_or((0, 0));
    if !host_has_route() {
        return Ok(Start::Offline(
            "this host has no default route, which passt needs: the VM starts without a network"
                .into(),
        ));
    }
    // A forwarded port already taken stops the start here, with its name: passt would fail
    // too, but berth-vmm may be ready before passt has tried (a loaded host).
    for forward in &config.network.forwards {
        if let Some(why) = port_in_use(forward) {
            return Err(ApiError::invalid(format!(
                "cannot start VM `{name}`: its network did not start: {why}"
            )));
        }
    }
    let (ours, theirs) = UnixStream::pair()
        .map_err(|e| ApiError::internal(format!("cannot make a network socket: {e}")))?;
    let theirs_fd = theirs.as_raw_fd();
    // A file, not a pipe: nobody has to keep reading it for passt to go on.
    let log = dir.join(PASST_LOG);
    let log_file = std::fs::File::create(&log)
        .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", log.display())))?;
    let mut command = Command::new(PASST);
    command
        .args(["--foreground", "--quiet", "--fd", "3"])
        .args(["--mtu", &NET_MTU.to_string()])
        .args(["--runas", &format!("{}:{}", ids.0, ids.1)])
        .args(passt_port_args(&config.network.forwards))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    // SAFETY: the closure runs in the child between fork and exec and calls only dup2, which is
    // async-signal-safe; the socket stays open in the parent until spawn returns.
    unsafe {
        command.pre_exec(move || {
            // dup2 clears close-on-exec on the copy: passt's `--fd 3`.
            if libc::dup2(theirs_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ApiError::new(
            ErrorKind::Unsupported,
            format!(
                "cannot start VM `{name}`: its network needs passt, which is not installed (Debian: `sudo apt install passt`), or give it none: `berthctl vm edit {name} --network none`"
            ),
        ),
        _ => ApiError::internal(format!("cannot run passt for VM `{name}`: {e}")),
    })?;
    drop(theirs);
    Ok(Start::Running {
        helper: Helper::Passt(Passt { child, log }),
        card: NetworkCard {
            fd: NET_FD,
            mac: config.network.mac_of(name),
            tap: false,
        },
        socket: ours.into(),
    })
}

impl Passt {
    /// If passt has already ended (a forwarded port in use, a bad option), why.
    pub fn failed(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                let said = std::fs::read_to_string(&self.log).unwrap_or_default();
                // passt tries the system log first; where there is none it says so on every
                // line it logs, which says nothing about the failure.
                let said: Vec<&str> = said
                    .lines()
                    .filter(|line| !line.ends_with("to syslog"))
                    .collect();
                let said = said.join("\n");
                let said = said.trim();
                Some(if said.is_empty() {
                    format!("passt ended ({status})")
                } else {
                    format!("passt: {said}")
                })
            }
            Ok(None) | Err(_) => None,
        }
    }

    /// Waits for passt to end (it does when the VM's end of the socket closes); if it has not
    /// within a second, dropping it kills it.
    pub fn reap(mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Passt {
    /// A passt whose VM did not start, or that outlived its VM, is ended and reaped, never left
    /// behind (a kill of an ended child does nothing).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
