//! What `attach` joins, for a container started with `-d` and `-t` or `-i`: its terminal,
//! kept by berthd, or its stdin pipe's write end.
//!
//! **Decision: a kept terminal is relayed by berthd**, as containerd's shim relays Docker's:
//! a thread reads the master as long as the container runs (a terminal nobody reads stops its
//! writer), appends what it reads to the container's log (`logs` shows a detached terminal's
//! output, as Docker's does) and copies it to every attached client's socket; what a client
//! writes goes to the master. A client also gets a copy of the master for its size only
//! (TIOCSWINSZ); nothing is read from that copy.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// How long a client's socket may refuse output before that client is let go (a stopped
/// `berthctl attach` must not stop the container's terminal).
const CLIENT_STALL: Duration = Duration::from_secs(2);

/// What a detached container keeps for `attach`.
pub enum Kept {
    Terminal(Arc<KeptTerminal>),
    /// The write end of its stdin pipe.
    Stdin(OwnedFd),
}

/// A detached container's terminal: its master, read by a thread of its own until the
/// container's side is closed.
pub struct KeptTerminal {
    master: OwnedFd,
    /// Sockets of attached clients, added by [`KeptTerminal::join`]; the thread takes them.
    joining: Mutex<Vec<UnixStream>>,
    /// Written to wake the thread when a client joins.
    wake: UnixStream,
}

impl KeptTerminal {
    /// Keeps `master`, its output appended to the file `log`.
    pub fn keep(master: OwnedFd, log: &Path) -> std::io::Result<Arc<KeptTerminal>> {
        let log = File::options().create(true).append(true).open(log)?;
        let (wake, woken) = UnixStream::pair()?;
        let kept = Arc::new(KeptTerminal {
            master,
            joining: Mutex::new(Vec::new()),
            wake,
        });
        let relay = Arc::clone(&kept);
        std::thread::spawn(move || relay.relay(log, woken));
        Ok(kept)
    }

    /// A new client: its end of a socket carrying the terminal's bytes, and a copy of the
    /// master for its size.
    pub fn join(&self) -> std::io::Result<(OwnedFd, OwnedFd)> {
        let (ours, theirs) = UnixStream::pair()?;
        ours.set_write_timeout(Some(CLIENT_STALL))?;
        self.joining
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ours);
        (&self.wake).write_all(&[1])?;
        Ok((theirs.into(), self.master.try_clone()?))
    }

    /// Until the terminal's other side is closed (the container's processes are gone): its
    /// output to the log and the clients, the clients' input to it.
    fn relay(&self, mut log: File, mut woken: UnixStream) {
        let mut master = File::from(match self.master.try_clone() {
            Ok(fd) => fd,
            Err(_) => return,
        });
        let mut clients: Vec<UnixStream> = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let (master_ready, woken_ready, ready): (bool, bool, Vec<bool>) = {
                let mut fds = vec![
                    PollFd::new(master.as_fd(), PollFlags::POLLIN),
                    PollFd::new(woken.as_fd(), PollFlags::POLLIN),
                ];
                fds.extend(
                    clients
                        .iter()
                        .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)),
                );
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return,
                }
                let any = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                (
                    any(&fds[0]),
                    any(&fds[1]),
                    fds[2..].iter().map(any).collect(),
                )
            };
            if woken_ready {
                let _ = woken.read(&mut buf);
                clients.extend(
                    self.joining
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .drain(..),
                );
            }
            // What clients typed goes to the terminal; a client that has gone is let go.
            let mut gone = Vec::new();
            for (i, client) in clients.iter_mut().enumerate() {
                if !ready.get(i).copied().unwrap_or(false) {
                    continue;
                }
                match client.read(&mut buf) {
                    Ok(0) => gone.push(i),
                    Ok(n) => {
                        let _ = master.write_all(&buf[..n]);
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => gone.push(i),
                }
            }
            for i in gone.into_iter().rev() {
                clients.remove(i);
            }
            if master_ready {
                match master.read(&mut buf) {
                    // EIO: no process holds the terminal any more; the clients see the end.
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let _ = log.write_all(&buf[..n]);
                        clients.retain_mut(|client| client.write_all(&buf[..n]).is_ok());
                    }
                }
            }
        }
    }
}

impl Kept {
    /// The descriptors a client attaching gets (see `AttachInfo`).
    pub fn join(&self) -> std::io::Result<Vec<OwnedFd>> {
        match self {
            Kept::Terminal(terminal) => {
                let (socket, master) = terminal.join()?;
                Ok(vec![socket, master])
            }
            Kept::Stdin(pipe) => Ok(vec![pipe.try_clone()?]),
        }
    }
}
