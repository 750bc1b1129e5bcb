//! `RUN --mount=type=ssh,uid=…,gid=…,mode=…`: a socket of the step's own with that owner and
//! mode, each connection to it relayed to the build's SSH agent, so a step running as another
//! user reaches the agent as BuildKit lets it (the agent's own socket is its owner's, 0600).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::runtime::proxy::{join, wake_blocked};

/// A relaying socket, listening until dropped.
pub struct SshRelay {
    listener: Arc<UnixListener>,
    closed: Arc<AtomicBool>,
}

impl SshRelay {
    /// Listens at `socket` (made with `uid`, `gid` and `mode`), relaying to `agent`.
    pub fn start(
        agent: &Path,
        socket: &Path,
        (uid, gid, mode): (u32, u32, u32),
    ) -> std::io::Result<SshRelay> {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        std::os::unix::fs::chown(socket, Some(uid), Some(gid))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))?;
        let relay = SshRelay {
            listener: Arc::new(listener),
            closed: Arc::new(AtomicBool::new(false)),
        };
        let (listener, closed, agent) = (
            Arc::clone(&relay.listener),
            Arc::clone(&relay.closed),
            PathBuf::from(agent),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let agent = agent.clone();
                std::thread::spawn(move || {
                    if let Ok(upstream) = UnixStream::connect(&agent) {
                        join(client, upstream);
                    }
                });
            }
        });
        Ok(relay)
    }
}

impl Drop for SshRelay {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        wake_blocked(self.listener.as_ref());
    }
}
