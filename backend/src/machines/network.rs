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

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use berth_api::error::{ApiError, ErrorKind};
use berth_api::network::{VmNetwork, passt_port_args};
use berth_api::vm::VmConfig;
use berth_vmm_api::launch::{NET_FD, NET_MTU, NetworkCard};
use container_backend::runtime::network::host_has_route;

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
    /// passt runs; berth-vmm gets `card` on [`NET_FD`] from `socket`.
    Running {
        passt: Passt,
        card: NetworkCard,
        socket: OwnedFd,
    },
}

/// Starts passt for `config`, running as `ids` (uid, gid): the VM's own sandbox ids under a
/// root daemon, so no two VMs' helpers share an id; 0:0 in a user's daemon's namespace, which
/// is the user.
pub fn start(config: &VmConfig, dir: &Path, ids: (u32, u32)) -> Result<Start, ApiError> {
    let name = &config.name;
    if config.network.mode == VmNetwork::None {
        return Ok(Start::None);
    }
    if !host_has_route() {
        return Ok(Start::Offline(
            "this host has no default route, which passt needs: the VM starts without a network"
                .into(),
        ));
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
        passt: Passt { child, log },
        card: NetworkCard {
            fd: NET_FD,
            mac: config.network.mac_of(name),
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
