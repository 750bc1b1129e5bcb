//! Framing: each message is a u32 big-endian length followed by that many bytes of JSON.
//!
//! The length is checked against [`MAX_FRAME_LEN`] before a single body byte is read or any
//! memory is reserved, so a peer cannot make either side allocate more than 1 MiB per frame.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame body either side sends or accepts: 1 MiB.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Why a frame could not be read, written or understood.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a frame larger than the limit; the stream cannot be resynchronised.
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLong(u64),
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection part-way through a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The frame body is not the JSON message expected here.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

impl FrameError {
    /// Whether the stream is still aligned on a frame boundary after this error, so that the
    /// connection can answer with an error and go on.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, FrameError::Json(_))
    }
}

/// Serialise `msg` into one frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; 4];
    serde_json::to_writer(&mut out, msg)?;
    let len = out.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong(len as u64));
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Parse a frame body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    Ok(serde_json::from_slice(body)?)
}

/// Split the first complete frame off `buf`: `Ok(None)` when more bytes are needed, otherwise the
/// body and the number of bytes consumed. The same checks as [`read_frame`], without a socket.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong(len as u64));
    }
    Ok(buf.get(4..4 + len).map(|body| (body, 4 + len)))
}

/// Read one frame body from `r`.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        match r.read(&mut prefix[got..]).await? {
            0 if got == 0 => return Err(FrameError::Closed),
            0 => return Err(FrameError::Truncated),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong(len as u64));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    Ok(body)
}

/// Write `msg` as one frame to `w` and flush it.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), FrameError> {
    let bytes = encode(msg)?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_split_round_trips() {
        let frame = encode(&vec!["a", "b"]).unwrap();
        let (body, used) = split_frame(&frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(decode::<Vec<String>>(body).unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn split_waits_for_a_whole_frame() {
        let frame = encode(&"hello").unwrap();
        for cut in 0..frame.len() {
            assert!(
                split_frame(&frame[..cut]).unwrap().is_none(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_length_is_refused_before_the_body_arrives() {
        let two_gib = (2u32 << 30).to_be_bytes();
        let err = split_frame(&two_gib).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLong(n) if n == 2 << 30),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("exceeds the limit of 1048576 bytes")
        );
    }

    #[test]
    fn encoding_a_message_over_the_limit_fails() {
        let big = "x".repeat(MAX_FRAME_LEN);
        assert!(matches!(encode(&big), Err(FrameError::TooLong(_))));
    }

    #[tokio::test]
    async fn read_frame_tells_closed_from_truncated() {
        let mut empty: &[u8] = &[];
        assert!(matches!(
            read_frame(&mut empty).await,
            Err(FrameError::Closed)
        ));
        let mut half_prefix: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut half_prefix).await,
            Err(FrameError::Truncated)
        ));
        let mut half_body: &[u8] = &[0, 0, 0, 9, b'{'];
        assert!(matches!(
            read_frame(&mut half_body).await,
            Err(FrameError::Truncated)
        ));
    }
}
