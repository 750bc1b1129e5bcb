//! Both ends of the control channel, a Unix stream socket berthd hands berth-vmm as an fd.
//!
//! berth-vmm writes [`READY`] once, then answers every command with one line. A reply that
//! carries a file descriptor (the framebuffer memfd of `display`) has it attached as
//! SCM_RIGHTS to its first bytes, so berthd reads every reply with `recvmsg`, never through a
//! buffer that could hold bytes (and an fd) of the next one. Between a command and its reply
//! nothing else is written, so a read that brings more than one line is a broken peer.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::control::{
    Command, ControlError, Garbled, MAX_LINE, READY, Reply, decode_reply, encode_reply,
};

/// Why a command got no answer from berth-vmm.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("berth-vmm closed its control channel")]
    Closed,
    #[error("berth-vmm did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("berth-vmm does not listen any more ({0})")]
    Send(std::io::Error),
    #[error("reading berth-vmm's control channel: {0}")]
    Receive(std::io::Error),
    #[error(transparent)]
    Garbled(#[from] Garbled),
    #[error("berth-vmm said something unasked on its control channel")]
    Unasked,
    #[error("berth-vmm's answer came without its file descriptor")]
    MissingFd,
    /// berth-vmm answered with an error.
    #[error(transparent)]
    Refused(#[from] ControlError),
}

/// berthd's end: one command at a time, each waiting for its answer.
pub struct ControlClient {
    socket: UnixStream,
}

impl ControlClient {
    pub fn new(socket: UnixStream) -> ControlClient {
        ControlClient { socket }
    }

    /// Waits up to `timeout` for berth-vmm's first line, [`READY`].
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), ChannelError> {
        let (line, _) = self.read_line(timeout)?;
        if line.trim() == READY {
            Ok(())
        } else {
            Err(Garbled(line).into())
        }
    }

    /// Sends `command` and waits up to `timeout` for its answer; an fd that came with it is
    /// closed.
    pub fn call(&mut self, command: &Command, timeout: Duration) -> Result<Reply, ChannelError> {
        self.call_with_fd(command, timeout).map(|(reply, _)| reply)
    }

    /// `display`: the display's mode and the framebuffer memfd that rides on the answer.
    pub fn display(&mut self, timeout: Duration) -> Result<((u32, u32), OwnedFd), ChannelError> {
        match self.call_with_fd(&Command::Display, timeout)? {
            (Reply::Display { width, height }, Some(fd)) => Ok(((width, height), fd)),
            (Reply::Display { .. }, None) => Err(ChannelError::MissingFd),
            (Reply::Done, _) => Err(ChannelError::Garbled(Garbled("ok".into()))),
        }
    }

    fn call_with_fd(
        &mut self,
        command: &Command,
        timeout: Duration,
    ) -> Result<(Reply, Option<OwnedFd>), ChannelError> {
        let mut line = command.encode();
        line.push('\n');
        self.socket
            .write_all(line.as_bytes())
            .map_err(ChannelError::Send)?;
        let (answer, fd) = self.read_line(timeout)?;
        let reply = decode_reply(command, &answer)??;
        Ok((reply, fd))
    }

    /// One line and the first fd that came with it (any others are closed).
    fn read_line(&mut self, timeout: Duration) -> Result<(String, Option<OwnedFd>), ChannelError> {
        let _ = self.socket.set_read_timeout(Some(timeout));
        let mut line = Vec::new();
        let mut fds = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let (n, got) = match berth_api::fdpass::recv_with_fds(self.socket.as_raw_fd(), &mut buf)
            {
                Ok((0, _)) => return Err(ChannelError::Closed),
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Err(ChannelError::Timeout(timeout));
                }
                Err(e) => return Err(ChannelError::Receive(e)),
            };
            fds.extend(got);
            line.extend_from_slice(&buf[..n]);
            if let Some(end) = line.iter().position(|&b| b == b'\n') {
                if end + 1 != line.len() {
                    return Err(ChannelError::Unasked);
                }
                line.truncate(end);
                let text = String::from_utf8_lossy(&line).into_owned();
                return Ok((text, fds.into_iter().next()));
            }
            if line.len() > MAX_LINE {
                return Err(Garbled("a line too long".into()).into());
            }
        }
    }
}

/// berth-vmm's end: reads commands, writes answers.
pub struct ControlServer {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl ControlServer {
    /// Serves `socket`, first telling berthd that the guest is about to run.
    pub fn ready(socket: UnixStream) -> std::io::Result<ControlServer> {
        let mut writer = socket.try_clone()?;
        writer.write_all(format!("{READY}\n").as_bytes())?;
        Ok(ControlServer {
            reader: BufReader::new(socket),
            writer,
        })
    }

    /// The next command, or the reason a line is none; `None` once berthd has closed the
    /// channel (or it broke).
    pub fn next_command(&mut self) -> Option<Result<Command, ControlError>> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) if line.last() != Some(&b'\n') && line.len() >= MAX_LINE => Some(Err(
                ControlError::BadCommand(format!("a line longer than {MAX_LINE} bytes")),
            )),
            Ok(_) => Some(match std::str::from_utf8(&line) {
                Ok(text) => Command::decode(text),
                Err(_) => Err(ControlError::BadCommand("a line that is not UTF-8".into())),
            }),
        }
    }

    /// Writes `answer`, with `fd` attached to its first bytes when given.
    pub fn answer(
        &mut self,
        answer: &Result<Reply, ControlError>,
        fd: Option<BorrowedFd<'_>>,
    ) -> std::io::Result<()> {
        let mut line = encode_reply(answer);
        line.push('\n');
        let sent = match fd {
            Some(fd) => berth_api::fdpass::send_with_fds(
                self.writer.as_raw_fd(),
                line.as_bytes(),
                &[fd.as_raw_fd()],
            )?,
            None => 0,
        };
        // The rest of a line the socket took only part of goes without the fd (sent already).
        self.writer.write_all(&line.as_bytes()[sent..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::input::{InputDevice, InputEvent};
    use std::io::Seek;

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn commands_and_answers_cross_the_channel_with_an_fd() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let vmm = std::thread::spawn(move || {
            let mut server = ControlServer::ready(theirs).unwrap();
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(b"framebuffer").unwrap();
            while let Some(command) = server.next_command() {
                let (answer, fd) = match command {
                    Ok(Command::Display) => (
                        Ok(Reply::Display {
                            width: 64,
                            height: 48,
                        }),
                        Some(std::os::fd::AsFd::as_fd(&file)),
                    ),
                    Ok(Command::Input { .. }) => {
                        (Err(ControlError::InputQueueFull { pending: 3 }), None)
                    }
                    Ok(_) => (Ok(Reply::Done), None),
                    Err(e) => (Err(e), None),
                };
                server.answer(&answer, fd).unwrap();
            }
        });
        let mut client = ControlClient::new(ours);
        client.wait_ready(WAIT).unwrap();
        assert_eq!(client.call(&Command::Pause, WAIT).unwrap(), Reply::Done);
        let ((width, height), fd) = client.display(WAIT).unwrap();
        assert_eq!((width, height), (64, 48));
        let mut shared = std::fs::File::from(fd);
        let mut text = String::new();
        shared.rewind().unwrap();
        shared.read_to_string(&mut text).unwrap();
        assert_eq!(text, "framebuffer", "the fd is the VMM's file");
        let full = client.call(
            &Command::Input {
                device: InputDevice::Keyboard,
                events: vec![InputEvent::new(1, 30, 1)],
            },
            WAIT,
        );
        assert!(matches!(
            full,
            Err(ChannelError::Refused(ControlError::InputQueueFull {
                pending: 3
            }))
        ));
        drop(client);
        vmm.join().unwrap();
    }

    #[test]
    fn a_silent_or_chatty_vmm_is_an_error_not_a_hang() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut client = ControlClient::new(ours);
        let short = Duration::from_millis(50);
        assert!(matches!(
            client.wait_ready(short),
            Err(ChannelError::Timeout(_))
        ));
        theirs.write_all(b"ready\nok\n").unwrap();
        assert!(matches!(
            client.wait_ready(WAIT),
            Err(ChannelError::Unasked)
        ));
        theirs.write_all(b"hello\n").unwrap();
        assert!(matches!(
            client.call(&Command::Stop, WAIT),
            Err(ChannelError::Garbled(_))
        ));
        drop(theirs);
        assert!(matches!(
            client.call(&Command::Stop, WAIT),
            Err(ChannelError::Closed | ChannelError::Send(_))
        ));
    }
}
