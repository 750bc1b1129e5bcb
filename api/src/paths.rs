//! Where daemons listen. A client tries, in order: an explicit socket (`--socket` or
//! `BERTH_SOCKET`), the system daemon, then the user's own daemon.

use std::path::PathBuf;

/// The system daemon's socket.
pub const SYSTEM_SOCKET: &str = "/run/berth/berthd.sock";
/// The environment variable naming a socket to use instead of the usual places.
pub const SOCKET_ENV: &str = "BERTH_SOCKET";

/// Where in the user's runtime dir the user daemon listens (the user unit's `%t/…`).
pub const USER_SOCKET_IN_RUNTIME_DIR: &str = "berth/berthd.sock";

/// The user daemon's socket: `$XDG_RUNTIME_DIR/berth/berthd.sock`, or under /tmp named after the
/// uid when no runtime dir is set (e.g. a root shell without a login session).
pub fn user_socket() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(USER_SOCKET_IN_RUNTIME_DIR),
        // SAFETY: getuid has no preconditions and cannot fail.
        _ => PathBuf::from(format!("/tmp/berth-{}/berthd.sock", unsafe {
            libc::getuid()
        })),
    }
}

/// The sockets to try, in order.
pub fn candidate_sockets() -> Vec<PathBuf> {
    if let Some(explicit) = std::env::var_os(SOCKET_ENV).filter(|s| !s.is_empty()) {
        return vec![PathBuf::from(explicit)];
    }
    vec![PathBuf::from(SYSTEM_SOCKET), user_socket()]
}
