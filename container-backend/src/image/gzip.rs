//! Gzip of layers on every core: the stream cut into pieces of [`MEMBER_SIZE`], each compressed
//! on a thread of its own into a complete gzip member, the members written in order. A gzip
//! file may hold several members one after another (RFC 1952, 2.2; `pigz --independent` writes
//! such files): Go's gzip reader (Docker, containerd, skopeo, podman) and flate2's
//! `MultiGzDecoder` read them as one stream.
//!
//! Decision: members rather than one deflate stream primed with the previous piece's window
//! (pigz's default): no own deflate code, and the loss is the 32 KiB window at each 8 MiB
//! boundary. The cut depends only on [`MEMBER_SIZE`], never on the number of cores, so the
//! same tar always gives the same blob and digest.

use std::io::{self, Read, Write};

/// The uncompressed size of one member.
pub const MEMBER_SIZE: usize = 8 << 20;

/// Compresses everything `input` holds into `output` as gzip members at `level`, using up to
/// `threads` threads at once.
pub fn compress(
    input: &mut impl Read,
    output: &mut impl Write,
    level: flate2::Compression,
    threads: usize,
) -> io::Result<()> {
    let threads = threads.max(1);
    let mut first = true;
    loop {
        let mut pieces = Vec::with_capacity(threads);
        for _ in 0..threads {
            let piece = read_piece(input)?;
            if piece.is_empty() {
                break;
            }
            pieces.push(piece);
        }
        if pieces.is_empty() {
            // An empty input is still a gzip file: one empty member.
            if first {
                output.write_all(&member(&[], level)?)?;
            }
            return Ok(());
        }
        first = false;
        let last = pieces.len() < threads || pieces.last().is_some_and(|p| p.len() < MEMBER_SIZE);
        let members: Vec<io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let running: Vec<_> = pieces
                .iter()
                .map(|piece| scope.spawn(move || member(piece, level)))
                .collect();
            running
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(io::Error::other("a gzip thread panicked")))
                })
                .collect()
        });
        for member in members {
            output.write_all(&member?)?;
        }
        if last {
            return Ok(());
        }
    }
}

/// Up to [`MEMBER_SIZE`] bytes of `input` (fewer only at its end).
fn read_piece(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut piece = Vec::with_capacity(MEMBER_SIZE);
    input
        .by_ref()
        .take(MEMBER_SIZE as u64)
        .read_to_end(&mut piece)?;
    Ok(piece)
}

/// One complete gzip member of `piece`.
fn member(piece: &[u8], level: flate2::Compression) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(piece.len() / 3), level);
    encoder.write_all(piece)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivially: text-like bytes with a varying period.
        (0..len)
            .map(|i| b"layer data "[(i * 7 + i / 1000) % 11])
            .collect()
    }

    fn round_trip(len: usize, threads: usize) -> Vec<u8> {
        let input = sample(len);
        let mut out = Vec::new();
        compress(
            &mut &input[..],
            &mut out,
            flate2::Compression::fast(),
            threads,
        )
        .unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, input, "{len} bytes on {threads} threads");
        out
    }

    #[test]
    fn members_decode_to_the_input_whatever_its_size() {
        for len in [
            0,
            1,
            MEMBER_SIZE - 1,
            MEMBER_SIZE,
            MEMBER_SIZE + 1,
            3 * MEMBER_SIZE + 17,
        ] {
            round_trip(len, 2);
        }
    }

    #[test]
    fn the_blob_is_the_same_on_any_number_of_threads() {
        let len = 5 * MEMBER_SIZE / 2;
        assert_eq!(round_trip(len, 1), round_trip(len, 3));
    }

    #[test]
    fn gzip_itself_reads_the_members_as_one_file() {
        let input = sample(2 * MEMBER_SIZE + 5);
        let mut out = Vec::new();
        compress(&mut &input[..], &mut out, flate2::Compression::fast(), 2).unwrap();
        let Ok(mut gunzip) = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("skipped: no gzip here");
            return;
        };
        let mut stdin = gunzip.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&out));
        let output = gunzip.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(output.status.success());
        assert_eq!(output.stdout, input);
    }
}
