//! Frames that carry file descriptors (the framebuffer memfd, an `exec`'s terminal or pipes)
//! as SCM_RIGHTS ancillary data.
//!
//! The frame itself is unchanged (u32 BE length + JSON, [`MAX_FRAME_LEN`] cap): the fds ride on
//! the `sendmsg` that writes the frame's first bytes. On the reading side a Unix stream socket
//! hands out ancillary data with the `recvmsg` that reads the first byte of the message that
//! carried it, and Linux ends that read at the end of that message, so the last byte of the
//! read that brought an fd lies inside the frame it belongs to. [`FdFrameReader`] keeps each
//! received fd with that byte's stream offset and gives it to the frame that contains it.
//! An fd that arrives with any other frame is closed when the caller drops it: never leaked.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use serde::Serialize;
use tokio::io::Interest;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::frame::{FrameError, MAX_FRAME_LEN, encode};

/// The most fds one `recvmsg` accepts (more are closed by the kernel, MSG_CTRUNC), and so the
/// most one frame may carry.
pub const MAX_FDS_PER_READ: usize = 4;
/// Bytes asked of each `recvmsg`.
const READ_CHUNK: usize = 64 * 1024;

/// Writes `msg` as one frame to `w`, with `fds` (at most [`MAX_FDS_PER_READ`]) attached to
/// its first bytes, and flushes it.
pub async fn write_frame_with_fds<T: Serialize>(
    w: &mut OwnedWriteHalf,
    msg: &T,
    fds: &[OwnedFd],
) -> Result<(), FrameError> {
    let bytes = encode(msg)?;
    let stream = w.as_ref();
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let sent = loop {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            send_with_fds(stream.as_raw_fd(), &bytes, &raw)
        }) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // The fd went with the first part; the rest of a long frame follows as plain bytes.
    tokio::io::AsyncWriteExt::write_all(w, &bytes[sent..]).await?;
    Ok(())
}

/// One `sendmsg` of `bytes` with `fds` (1 to [`MAX_FDS_PER_READ`]) as SCM_RIGHTS; how many
/// bytes went (the rest, if any, is the caller's to write, without the fds).
pub fn send_with_fds(socket: RawFd, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    if fds.is_empty() || fds.len() > MAX_FDS_PER_READ {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a frame carries 1 to {MAX_FDS_PER_READ} descriptors, not {}",
                fds.len()
            ),
        ));
    }
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut space = [0u64; 8];
    let data_len = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space_len = unsafe { libc::CMSG_SPACE(data_len as u32) } as usize;
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = space_len as _;
    // SAFETY: msg_control points at `space` (64 bytes, more than CMSG_SPACE of four fds), so
    // the first header and its data lie inside it; `iov` points at `bytes`, alive for the call.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), data_len);
        libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL)
    };
    usize::try_from(sent).map_err(|_| std::io::Error::last_os_error())
}

/// One `recvmsg` into `buf`: the bytes read and the fds that came with them (owned at once, so
/// none leaks whatever happens next).
pub fn recv_with_fds(socket: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut space = [0u64; 8];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size; it fits in `space` (64 bytes).
    msg.msg_controllen =
        unsafe { libc::CMSG_SPACE((MAX_FDS_PER_READ * size_of::<RawFd>()) as u32) } as _;
    // SAFETY: `iov` points at `buf` and `msg_control` at `space`, both alive for the call;
    // MSG_CMSG_CLOEXEC so a received fd never leaks into a child process.
    let n = unsafe { libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg_controllen` bytes of `space` with well-formed headers;
    // CMSG_FIRSTHDR/NXTHDR stay inside them, and each SCM_RIGHTS payload holds
    // (cmsg_len - CMSG_LEN(0)) / 4 descriptors that are now ours to close.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data_len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg);
                for i in 0..data_len / size_of::<RawFd>() {
                    let mut raw: RawFd = -1;
                    std::ptr::copy_nonoverlapping(
                        data.add(i * size_of::<RawFd>()),
                        (&raw mut raw).cast::<u8>(),
                        size_of::<RawFd>(),
                    );
                    if raw >= 0 {
                        fds.push(OwnedFd::from_raw_fd(raw));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, fds))
}

/// Reads frames with `recvmsg`, keeping the fds that come with them.
pub struct FdFrameReader {
    reader: OwnedReadHalf,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    start: u64,
    /// Received fds and the stream offset of the last byte of the read that brought each.
    fds: VecDeque<(u64, OwnedFd)>,
}

impl FdFrameReader {
    pub fn new(reader: OwnedReadHalf) -> Self {
        FdFrameReader {
            reader,
            buf: Vec::new(),
            start: 0,
            fds: VecDeque::new(),
        }
    }

    /// The next frame body and the fds that came with it (usually none).
    pub async fn read_frame(&mut self) -> Result<(Vec<u8>, Vec<OwnedFd>), FrameError> {
        loop {
            if let Some((body, used)) = crate::frame::split_frame(&self.buf)? {
                let body = body.to_vec();
                let end = self.start + used as u64;
                let mut fds = Vec::new();
                while self.fds.front().is_some_and(|(at, _)| *at < end) {
                    if let Some((_, fd)) = self.fds.pop_front() {
                        fds.push(fd);
                    }
                }
                self.buf.drain(..used);
                self.start = end;
                return Ok((body, fds));
            }
            let mut chunk = vec![0u8; READ_CHUNK.min(MAX_FRAME_LEN + 4)];
            let stream = self.reader.as_ref();
            let (n, fds) = loop {
                stream.readable().await?;
                match stream.try_io(Interest::READABLE, || {
                    recv_with_fds(stream.as_raw_fd(), &mut chunk)
                }) {
                    Ok(got) => break got,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    FrameError::Closed
                } else {
                    FrameError::Truncated
                });
            }
            let last = self.start + (self.buf.len() + n) as u64 - 1;
            self.fds.extend(fds.into_iter().map(|fd| (last, fd)));
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, Write};

    use super::*;
    use crate::frame::write_frame;

    fn memfd_with(text: &[u8]) -> OwnedFd {
        // SAFETY: memfd_create with a NUL-terminated name; the result is checked below.
        let raw = unsafe { libc::memfd_create(c"fdpass-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: memfd_create just returned this new descriptor.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        file.write_all(text).unwrap();
        file.rewind().unwrap();
        file.into()
    }

    fn contents(fd: OwnedFd) -> Vec<u8> {
        let mut file = std::fs::File::from(fd);
        file.rewind().unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn frames_with_and_without_an_fd_keep_their_order_and_fds() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (_, mut w) = a.into_split();
        let (r, _keep) = b.into_split();
        let mut reader = FdFrameReader::new(r);
        // A writer task: the big frame does not fit in the socket buffer until read.
        let writer = tokio::spawn(async move {
            write_frame(&mut w, &"plain").await.unwrap();
            write_frame_with_fds(&mut w, &"with", &[memfd_with(b"pixels")])
                .await
                .unwrap();
            write_frame(&mut w, &"after").await.unwrap();
            let three = [memfd_with(b"in"), memfd_with(b"out"), memfd_with(b"err")];
            write_frame_with_fds(&mut w, &"three", &three)
                .await
                .unwrap();
            // A frame larger than one socket buffer, with its fd on the first part.
            let big = "x".repeat(600_000);
            write_frame_with_fds(&mut w, &big, &[memfd_with(b"big")])
                .await
                .unwrap();
        });

        let (body, fds) = reader.read_frame().await.unwrap();
        assert_eq!((body.as_slice(), fds.len()), (&b"\"plain\""[..], 0));
        let (body, mut fds) = reader.read_frame().await.unwrap();
        assert_eq!(body, b"\"with\"");
        assert_eq!(fds.len(), 1);
        assert_eq!(contents(fds.remove(0)), b"pixels");
        let (body, fds) = reader.read_frame().await.unwrap();
        assert_eq!((body.as_slice(), fds.len()), (&b"\"after\""[..], 0));
        let (body, fds) = reader.read_frame().await.unwrap();
        assert_eq!(body, b"\"three\"");
        let texts: Vec<Vec<u8>> = fds.into_iter().map(contents).collect();
        assert_eq!(texts, [&b"in"[..], b"out", b"err"], "in the order sent");
        let (body, mut fds) = reader.read_frame().await.unwrap();
        assert_eq!(body.len(), 600_002);
        assert_eq!(contents(fds.remove(0)), b"big");
        writer.await.unwrap();
        assert!(matches!(reader.read_frame().await, Err(FrameError::Closed)));
    }

    /// A pipe whose write end is sent: once every copy of it is closed, the read end sees EOF.
    fn pipe() -> (std::fs::File, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two-element array; the result is checked.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: pipe2 just returned these two new descriptors.
        unsafe {
            (
                std::fs::File::from(OwnedFd::from_raw_fd(fds[0])),
                OwnedFd::from_raw_fd(fds[1]),
            )
        }
    }

    fn closed_everywhere(mut read_end: std::fs::File) -> bool {
        let mut byte = [0u8; 1];
        // Blocks while any copy of the write end is open; 0 bytes = EOF = all closed.
        std::io::Read::read(&mut read_end, &mut byte).unwrap() == 0
    }

    #[tokio::test]
    async fn stray_fds_are_closed_on_both_sides() {
        // A plain reader (the daemon's): the kernel closes fds a read() leaves behind.
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (_, mut w) = a.into_split();
        let (mut r, _keep) = b.into_split();
        let (read_end, write_end) = pipe();
        write_frame_with_fds(&mut w, &"stray", std::slice::from_ref(&write_end))
            .await
            .unwrap();
        drop(write_end);
        let body = crate::frame::read_frame(&mut r).await.unwrap();
        assert_eq!(body, b"\"stray\"");
        drop(w);
        assert!(matches!(
            crate::frame::read_frame(&mut r).await,
            Err(FrameError::Closed)
        ));
        drop(r);
        assert!(
            tokio::task::spawn_blocking(move || closed_everywhere(read_end))
                .await
                .unwrap()
        );

        // The client's reader hands fds out as owned values: dropping them closes them.
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (_, mut w) = a.into_split();
        let (r, _keep) = b.into_split();
        let mut reader = FdFrameReader::new(r);
        let (read_end, write_end) = pipe();
        write_frame_with_fds(&mut w, &"event", std::slice::from_ref(&write_end))
            .await
            .unwrap();
        drop(write_end);
        let (_, fds) = reader.read_frame().await.unwrap();
        assert_eq!(fds.len(), 1);
        drop(fds);
        assert!(
            tokio::task::spawn_blocking(move || closed_everywhere(read_end))
                .await
                .unwrap()
        );
    }
}
