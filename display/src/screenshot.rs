//! A screenshot: one consistent frame of the guest's display written as an RGBA PNG, for
//! `berthctl vm screenshot` and the window's Screenshot button alike (berthd never encodes
//! images).

use std::path::{Path, PathBuf};

use crate::framebuffer::FramebufferReader;
use crate::gpu::Format;

/// Why a screenshot was not written.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum Error {
    /// cannot read the screen: {0}
    Read(crate::framebuffer::Error),
    /// the screen has pixel format {0}, which Berth does not know
    Format(u32),
    /// cannot create {0}: {1}
    Create(PathBuf, std::io::Error),
    /// writing {0}: {1}
    Encode(PathBuf, png::EncodingError),
}

/// Copies one frame out of `reader` and writes it to `file` as an RGBA PNG; its size.
pub fn write_png(reader: &mut FramebufferReader, file: &Path) -> Result<(u32, u32), Error> {
    let mut frame = reader.read_frame().map_err(Error::Read)?;
    let format = Format::from_code(frame.format).ok_or(Error::Format(frame.format))?;
    format.to_rgba_in_place(&mut frame.pixels);
    let out = std::fs::File::create(file).map_err(|e| Error::Create(file.to_owned(), e))?;
    let failed = |e| Error::Encode(file.to_owned(), e);
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(out), frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&frame.pixels).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok((frame.width, frame.height))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::framebuffer::{FramebufferWriter, Rect};

    #[test]
    fn the_frame_is_written_as_rgba() {
        let mut writer = FramebufferWriter::new(2, 1, Format::B8G8R8X8 as u32).unwrap();
        writer
            .update(
                Rect::new(0, 0, 2, 1),
                &[0x10, 0x20, 0x30, 0x00, 0xff, 0x00, 0x00, 0x00],
                8,
            )
            .unwrap();
        let mut reader =
            FramebufferReader::open(writer.fd().try_clone_to_owned().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shot.png");
        assert_eq!(write_png(&mut reader, &file).unwrap(), (2, 1));
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&file).unwrap()));
        let mut png = decoder.read_info().unwrap();
        let mut pixels = vec![0u8; png.output_buffer_size().unwrap()];
        png.next_frame(&mut pixels).unwrap();
        assert_eq!(pixels, [0x30, 0x20, 0x10, 0xff, 0x00, 0x00, 0xff, 0xff]);
        let missing = write_png(&mut reader, &dir.path().join("no/such/dir.png")).unwrap_err();
        assert!(matches!(missing, Error::Create(..)), "{missing}");
    }
}
