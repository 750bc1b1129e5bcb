//! zstd-compressed layers (`application/vnd.oci.image.layer.v1.tar+zstd`), decoded as they are
//! read. Decision: `ruzstd`, a pure-Rust decoder, rather than the C library's bindings: only
//! decoding is needed, and it adds no C build to the daemon.

use std::io::{self, BufRead, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// The magic number every zstd frame starts with (little-endian 0xFD2FB528).
pub const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A zstd stream of one or more frames (skippable frames, which carry no data, are skipped),
/// decoded as it is read.
pub struct ZstdReader<R: BufRead> {
    source: R,
    decoder: FrameDecoder,
    /// A data frame is being decoded.
    open: bool,
}

impl<R: BufRead> ZstdReader<R> {
    pub fn new(source: R) -> ZstdReader<R> {
        ZstdReader {
            source,
            decoder: FrameDecoder::new(),
            open: false,
        }
    }

    /// Opens the next data frame; false at the end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.init(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let length = u64::from(length);
                    let skipped = io::copy(&mut (&mut self.source).take(length), &mut io::sink())?;
                    if skipped != length {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "a skippable zstd frame is cut short",
                        ));
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }
}

impl<R: BufRead> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.open {
                if self.decoder.can_collect() > 0 {
                    return self.decoder.read(buf);
                }
                if self.decoder.is_finished() {
                    // This frame is done: the next one, if any, follows.
                    self.open = false;
                    continue;
                }
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                continue;
            }
            if !self.next_frame()? {
                return Ok(0);
            }
            self.open = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_one_after_another_and_skippable_ones_read_as_one_stream() {
        // Two raw-block frames ("abc", "de") with a skippable frame between, as a zstd
        // writer emits them: magic, frame header (single segment, 1-byte size), block header.
        let frame = |data: &[u8]| {
            let mut f = MAGIC.to_vec();
            f.push(0x20); // single segment, no checksum, 1-byte content size
            f.push(data.len() as u8);
            let header = ((data.len() as u32) << 3) | 1; // raw block, last
            f.extend_from_slice(&header.to_le_bytes()[..3]);
            f.extend_from_slice(data);
            f
        };
        let mut stream = frame(b"abc");
        stream.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
        stream.extend(frame(b"de"));
        let mut out = String::new();
        ZstdReader::new(&stream[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "abcde");
        // Cut short: an error, not a silently short layer.
        let mut out = Vec::new();
        assert!(
            ZstdReader::new(&stream[..stream.len() - 1])
                .read_to_end(&mut out)
                .is_err()
        );
    }
}
