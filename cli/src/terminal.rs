//! A container's terminal joined to ours (`exec -t`, `run -t`, and `attach` through berthd's
//! relay): its output copied to our stdout until the process and everything holding the
//! terminal has ended, our stdin to it with `-i`, its size ours (again on SIGWINCH), and our
//! terminal in raw mode meanwhile, so Ctrl+C, colours and line editing belong to the
//! container's terminal.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::thread::JoinHandle;

use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::Failure;

fn io_failure(e: impl std::fmt::Display) -> Failure {
    Failure::Failed(e.to_string())
}

/// Joins `master` to our terminal until the other side has ended.
pub async fn attach(master: OwnedFd, interactive: bool) -> Result<(), Failure> {
    let _raw = RawMode::enter(interactive);
    resize(&master);
    let copies = on_terminal(master.try_clone().map_err(io_failure)?, interactive)?;
    until_copied(copies, &master).await
}

/// Waits for the `copies` to end, giving the terminal `master` our size whenever ours
/// changes meanwhile.
async fn until_copied(copies: Vec<JoinHandle<()>>, master: &OwnedFd) -> Result<(), Failure> {
    let mut changes = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(io_failure)?;
    let done = tokio::task::spawn_blocking(move || join(copies));
    tokio::pin!(done);
    let joined = loop {
        tokio::select! {
            _ = changes.recv() => resize(master),
            joined = &mut done => break joined,
        }
    };
    let failed = |e: String| Failure::Failed(format!("copying the terminal failed: {e}"));
    joined.map_err(|e| failed(e.to_string()))?.map_err(failed)
}

/// How a relayed terminal was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// The container's side ended (its processes are gone).
    Ended,
    /// Ctrl-P Ctrl-Q: the container goes on, as Docker's `attach` leaves it.
    Detached,
}

/// Docker's detach keys: Ctrl-P, then Ctrl-Q.
const DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// Joins a terminal berthd keeps (`attach`): its bytes through `socket`, its size set on
/// `master` (only that: nothing is read from it), until the container's side ends or our
/// Ctrl-P Ctrl-Q.
pub async fn join_relayed(socket: OwnedFd, master: OwnedFd) -> Result<Left, Failure> {
    let _raw = RawMode::enter(true);
    resize(&master);
    let socket = std::os::unix::net::UnixStream::from(socket);
    let detached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (input, flag) = (socket.try_clone().map_err(io_failure)?, detached.clone());
    // Not joined: it waits on our stdin, which may never end.
    std::thread::spawn(move || {
        if keys_until_detach(std::io::stdin(), &input) {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            // The output's copy ends with the socket.
            let _ = input.shutdown(std::net::Shutdown::Both);
        }
    });
    let output = socket.try_clone().map_err(io_failure)?;
    let copied = std::thread::spawn(move || copy(output, std::io::stdout()));
    until_copied(vec![copied], &master).await?;
    Ok(if detached.load(std::sync::atomic::Ordering::SeqCst) {
        Left::Detached
    } else {
        Left::Ended
    })
}

/// Copies our keys to `to` until our stdin ends (false) or the detach keys come (true); a
/// Ctrl-P not followed by Ctrl-Q is passed on with what follows it, as Docker passes it.
fn keys_until_detach(mut from: impl Read, mut to: impl Write) -> bool {
    let mut buf = [0u8; 4096];
    let mut held = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n + 1);
        let mut detach = false;
        for &byte in &buf[..n] {
            match (held, byte) {
                (true, b) if b == DETACH_KEYS[1] => {
                    detach = true;
                    break;
                }
                (true, b) => {
                    out.push(DETACH_KEYS[0]);
                    held = b == DETACH_KEYS[0];
                    if !held {
                        out.push(b);
                    }
                }
                (false, b) if b == DETACH_KEYS[0] => held = true,
                (false, b) => out.push(b),
            }
        }
        // What came before the keys still goes.
        if to.write_all(&out).and_then(|()| to.flush()).is_err() {
            return false;
        }
        if detach {
            return true;
        }
    }
}

/// Copies the terminal's output to our stdout until a read of it fails with EIO (no process
/// holds it any more), and with `interactive` our stdin to it.
fn on_terminal(master: OwnedFd, interactive: bool) -> Result<Vec<JoinHandle<()>>, Failure> {
    if interactive {
        let input = File::from(master.try_clone().map_err(io_failure)?);
        // Not joined: it waits on our stdin, which may never end.
        std::thread::spawn(move || copy(std::io::stdin(), input));
    }
    let output = File::from(master);
    Ok(vec![std::thread::spawn(move || {
        copy(output, std::io::stdout())
    })])
}

pub fn join(copies: Vec<JoinHandle<()>>) -> Result<(), String> {
    for copy in copies {
        copy.join()
            .map_err(|_| "a copying thread panicked".to_owned())?;
    }
    Ok(())
}

/// Copies until either side ends or fails (a terminal whose process has ended answers EIO:
/// that is its end), writing each piece as it comes.
pub fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Gives the container's terminal our terminal's size, when we have one.
fn resize(master: &OwnedFd) {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return;
    }
    // SAFETY: an all-zero winsize is valid; TIOCGWINSZ fills it from our terminal and
    // TIOCSWINSZ reads it for the container's; both descriptors stay open for the calls.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(stdout.as_fd().as_raw_fd(), libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size);
        }
    }
}

/// Our terminal in raw mode while this lives (keys go to the container's terminal
/// unchanged), as it was again when it is dropped. Nothing when stdin is not a terminal or
/// not forwarded.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enter(interactive: bool) -> RawMode {
        let stdin = std::io::stdin();
        if !interactive || !stdin.is_terminal() {
            return RawMode { saved: None };
        }
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        if tcsetattr(&stdin, SetArg::TCSANOW, &raw).is_err() {
            return RawMode { saved: None };
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_p_ctrl_q_detaches_and_a_lone_ctrl_p_is_passed_on() {
        let mut sent = Vec::new();
        assert!(keys_until_detach(
            &b"ls\x10a\x10\x10\x11rest"[..],
            &mut sent
        ));
        assert_eq!(sent, b"ls\x10a\x10");
        let mut sent = Vec::new();
        assert!(!keys_until_detach(&b"echo\n"[..], &mut sent));
        assert_eq!(sent, b"echo\n");
    }
}
