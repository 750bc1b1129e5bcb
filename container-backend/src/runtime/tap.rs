//! TAP devices for VMs' cards: on the Berth network's bridge (in its namespace, `bridge.rs`)
//! or on a bridge of the host's own (`--network bridge:NAME`, the system daemon's).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::network::NetworkError;

/// Opens a TAP device named `name` in the calling thread's network namespace: its descriptor,
/// one frame per read and write, each after a virtio-net header of `header_len` bytes
/// (`IFF_VNET_HDR`, `TUNSETVNETHDRSZ`); the device goes when the descriptor is closed.
pub fn open(name: &str, header_len: usize) -> io::Result<OwnedFd> {
    const TUN: &str = "/dev/net/tun";
    // TUNSETIFF, and the flags of a TAP without the packet information header, with the
    // virtio-net header; TUNSETVNETHDRSZ, that header's length (linux/if_tun.h).
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
    const IFF_TAP: i16 = 0x0002;
    const IFF_NO_PI: i16 = 0x1000;
    const IFF_VNET_HDR: i16 = 0x4000;
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is no interface name (1 to 15 bytes)"),
        ));
    }
    let header_len = libc::c_int::try_from(header_len)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tap = File::options().read(true).write(true).open(TUN)?;
    // struct ifreq: the name, then the flags (a short) in its union.
    let mut request = [0u8; 40];
    request[..name.len()].copy_from_slice(name.as_bytes());
    request[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `request` is the size of; the
    // descriptor is open for the call.
    let done = unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETIFF, request.as_mut_ptr()) };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TUNSETVNETHDRSZ reads an int, which `header_len` is; the descriptor is open for
    // the call.
    let done = unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETVNETHDRSZ, &header_len) };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from(tap))
}

/// A TAP named `name` on the host's bridge `bridge` (one the user made, e.g. on their LAN):
/// the VM is a machine on that network, as a libvirt `<interface type='bridge'>` guest is.
/// Needs the host's CAP_NET_ADMIN: the system daemon's.
pub fn on_host_bridge(
    name: &str,
    bridge: &str,
    header_len: usize,
) -> Result<OwnedFd, NetworkError> {
    let failed = |why: String| NetworkError::HostBridge {
        bridge: bridge.to_owned(),
        why,
    };
    // Asked of the daemon's own network namespace (sysfs shows its mounter's).
    let shown = std::process::Command::new("ip")
        .args(["-o", "link", "show", "dev", bridge, "type", "bridge"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| failed(format!("cannot run ip (iproute2): {e}")))?;
    if !shown.status.success() || shown.stdout.is_empty() {
        return Err(failed(format!(
            "there is no bridge `{bridge}` on this host (`ip link show type bridge` lists them)"
        )));
    }
    let tap = open(name, header_len).map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) => failed(
            "making a TAP on the host's network needs the system daemon (root); a user's daemon has the Berth network (`--network bridge`)".to_owned(),
        ),
        _ => failed(format!("cannot make the TAP {name}: {e}")),
    })?;
    let ip = |args: &[&str]| -> Result<(), NetworkError> {
        let out = std::process::Command::new("ip")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| failed(format!("cannot run ip (iproute2): {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    ip(&["link", "set", name, "master", bridge])?;
    ip(&["link", "set", name, "up"])?;
    Ok(tap)
}
