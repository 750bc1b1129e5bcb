//! Where a daemon listens and keeps its state, by mode.

use std::path::PathBuf;

use berth_api::host::{DaemonMode, IdMap};
use berth_api::paths::{SYSTEM_SOCKET, user_socket};

/// The system daemon's state directory.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/berth";

/// Everything a daemon needs to know before it starts.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub mode: DaemonMode,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// The group whose members the system daemon admits besides root.
    pub group: String,
    /// Connections served at once; more are refused with a message.
    pub max_connections: usize,
    /// Make the socket's directory private to this user (0700, owned by it). True for the
    /// user daemon's usual place; an explicit `--socket` keeps its directory as it is.
    pub private_socket_dir: bool,
    /// How ids inside containers are the host's: the host's own for a daemon run as root, a
    /// user namespace's for a rootless one (`rootless::enter`).
    pub ids: IdMap,
}

impl DaemonConfig {
    /// The system daemon: `/run/berth/berthd.sock`, state in `/var/lib/berth`.
    pub fn system() -> Self {
        DaemonConfig {
            mode: DaemonMode::System,
            socket: SYSTEM_SOCKET.into(),
            state_dir: SYSTEM_STATE_DIR.into(),
            group: "berth".into(),
            max_connections: 256,
            private_socket_dir: false,
            ids: IdMap::Host,
        }
    }

    /// A user's daemon: `$XDG_RUNTIME_DIR/berth/berthd.sock`, state in the XDG data dir
    /// (`~/.local/share/berth`).
    pub fn user() -> Self {
        let state_dir = directories::ProjectDirs::from("", "", "berth")
            .map(|dirs| dirs.data_dir().to_owned())
            .unwrap_or_else(|| PathBuf::from(".berth"));
        DaemonConfig {
            mode: DaemonMode::User,
            socket: user_socket(),
            state_dir,
            private_socket_dir: true,
            ..Self::system()
        }
    }
}
