//! Socket activation: a listening socket handed over by systemd (`berthd.socket`) or any
//! launcher that follows its protocol (`systemd-socket-activate`). The launcher puts the socket
//! on fd 3 and sets `LISTEN_PID` to berthd's pid and `LISTEN_FDS` to 1 (sd_listen_fds(3)).
//!
//! berthd takes the socket first thing in `main`, before any thread or child exists: the fd is
//! marked close-on-exec (berth-vmm's control socket is its fd 3 too, and no child may keep the
//! daemon's listener) and the variables are removed so that no child takes them as its own.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{
    AddressFamily, SockType, SockaddrLike, SockaddrStorage, UnixAddr, getsockname, getsockopt,
    sockopt,
};

/// The first fd a launcher passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;
const LISTEN_PID: &str = "LISTEN_PID";
const LISTEN_FDS: &str = "LISTEN_FDS";
const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";

/// Why an inherited socket cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(
        "{LISTEN_FDS}={0:?}: berthd takes exactly one socket (one ListenStream= in berthd.socket)"
    )]
    Count(String),
    #[error("the socket handed over on fd 3 is {0}, not a listening Unix stream socket")]
    NotAUnixListener(&'static str),
    #[error("cannot inspect the socket handed over on fd 3: {0}")]
    Inspect(nix::Error),
}

/// A listening socket berthd was handed, and the path it is bound to.
#[derive(Debug)]
pub struct Activated {
    pub listener: UnixListener,
    /// Where clients connect; `None` for an abstract or unnamed socket.
    pub path: Option<PathBuf>,
}

/// Takes the socket a launcher passed, if berthd was socket-activated (`LISTEN_PID` is this
/// process), and clears the launcher's variables either way.
///
/// # Safety
/// Must be called while the process has one thread: it changes the environment.
pub unsafe fn take_inherited() -> Result<Option<Activated>, ActivationError> {
    let pid = std::env::var(LISTEN_PID).ok();
    let count = std::env::var(LISTEN_FDS).ok();
    for name in [LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES] {
        // SAFETY: the caller guarantees there is no other thread to read the environment.
        unsafe { std::env::remove_var(name) };
    }
    let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let Some(count) = count.filter(|_| ours) else {
        return Ok(None);
    };
    if count.trim() != "1" {
        return Err(ActivationError::Count(count));
    }
    // SAFETY: the launcher handed fd 3 to this process (LISTEN_PID is ours) and nothing else in
    // berthd has taken it: `main` calls this before it opens anything.
    let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    check_listener(&fd)?;
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(ActivationError::Inspect)?;
    let path = getsockname::<UnixAddr>(LISTEN_FDS_START)
        .ok()
        .and_then(|addr| addr.path().map(PathBuf::from));
    Ok(Some(Activated {
        listener: UnixListener::from(fd),
        path,
    }))
}

fn check_listener(fd: &OwnedFd) -> Result<(), ActivationError> {
    let family = getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .map_err(|e| match e {
            nix::Error::ENOTSOCK => ActivationError::NotAUnixListener("not a socket"),
            other => ActivationError::Inspect(other),
        })?
        .family();
    if family != Some(AddressFamily::Unix) {
        return Err(ActivationError::NotAUnixListener("not a Unix socket"));
    }
    if getsockopt(fd, sockopt::SockType).map_err(ActivationError::Inspect)? != SockType::Stream {
        return Err(ActivationError::NotAUnixListener("not a stream socket"));
    }
    if !getsockopt(fd, sockopt::AcceptConn).map_err(ActivationError::Inspect)? {
        return Err(ActivationError::NotAUnixListener("not listening"));
    }
    Ok(())
}
