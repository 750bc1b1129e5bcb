//! `berthctl exec`: a process in a running container, its standard streams joined to ours.
//!
//! berthd answers with the process's terminal (`-t`) or pipes as descriptors, so the bytes
//! never pass through the daemon: berthctl copies between them and its own streams, sizes the
//! terminal as its own (and again on SIGWINCH), and with `-t` on a terminal puts its own into
//! raw mode, so Ctrl+C, colours and line editing belong to the container's terminal.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::thread::JoinHandle;

use berth_api::client::Client;
use berth_api::container::ExecSpec;
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::Failure;
use crate::args::ExecArgs;

pub async fn exec(client: &Client, args: ExecArgs) -> Result<(), Failure> {
    let env = args
        .env
        .iter()
        .filter_map(|v| crate::container::env_var(v, |name| std::env::var(name).ok()))
        .collect();
    let spec = ExecSpec {
        container: args.container,
        command: args.command,
        env,
        workdir: args.workdir,
        user: args.user,
        tty: args.tty,
    };
    let (info, fds) = client.exec(spec).await?;
    let copies = if args.tty {
        let master = fds
            .into_iter()
            .next()
            .ok_or_else(|| Failure::Failed("berthd sent no terminal for the process".into()))?;
        let _raw = RawMode::enter(args.interactive);
        resize(&master);
        let copies = on_terminal(master.try_clone().map_err(io_failure)?, args.interactive)?;
        // The terminal follows ours while the process runs.
        let mut changes =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                .map_err(io_failure)?;
        let done = tokio::task::spawn_blocking(move || join(copies));
        tokio::pin!(done);
        loop {
            tokio::select! {
                _ = changes.recv() => resize(&master),
                joined = &mut done => break joined,
            }
        }
    } else {
        let copies = on_pipes(fds, args.interactive)?;
        tokio::task::spawn_blocking(move || join(copies)).await
    };
    let failed = |e: String| Failure::Failed(format!("copying the process's output failed: {e}"));
    copies.map_err(|e| failed(e.to_string()))?.map_err(failed)?;
    match client.exec_wait(info.id).await? {
        0 => Ok(()),
        code => Err(Failure::Exit(code)),
    }
}

fn io_failure(e: impl std::fmt::Display) -> Failure {
    Failure::Failed(e.to_string())
}

/// Copies the terminal's output to our stdout until the process and everything holding the
/// terminal has ended (a read then fails with EIO), and with `interactive` our stdin to it.
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

/// Copies the process's stdout and stderr to ours until both end, and with `interactive` our
/// stdin to its stdin (closed at our end of file, or at once without it).
fn on_pipes(fds: Vec<OwnedFd>, interactive: bool) -> Result<Vec<JoinHandle<()>>, Failure> {
    let [stdin, stdout, stderr]: [OwnedFd; 3] = fds
        .try_into()
        .map_err(|_| Failure::Failed("berthd sent the wrong pipes for the process".into()))?;
    if interactive {
        let input = File::from(stdin);
        std::thread::spawn(move || copy(std::io::stdin(), input));
    } else {
        drop(stdin);
    }
    let (out, err) = (File::from(stdout), File::from(stderr));
    Ok(vec![
        std::thread::spawn(move || copy(out, std::io::stdout())),
        std::thread::spawn(move || copy(err, std::io::stderr())),
    ])
}

fn join(copies: Vec<JoinHandle<()>>) -> Result<(), String> {
    for copy in copies {
        copy.join()
            .map_err(|_| "a copying thread panicked".to_owned())?;
    }
    Ok(())
}

/// Copies until either side ends or fails (a terminal whose process has ended answers EIO:
/// that is its end), writing each piece as it comes.
fn copy(mut from: impl Read, mut to: impl Write) {
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

/// Gives the process's terminal our terminal's size, when we have one.
fn resize(master: &OwnedFd) {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return;
    }
    // SAFETY: an all-zero winsize is valid; TIOCGWINSZ fills it from our terminal and
    // TIOCSWINSZ reads it for the process's; both descriptors stay open for the calls.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(stdout.as_fd().as_raw_fd(), libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size);
        }
    }
}

/// Our terminal in raw mode while this lives (keys go to the process's terminal unchanged),
/// as it was again when it is dropped. Nothing when stdin is not a terminal or not forwarded.
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
