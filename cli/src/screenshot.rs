//! `vm screenshot`: the VM's display as a PNG, made here from the framebuffer berthd hands
//! out (berthd never encodes images).

use std::path::Path;

use berth_api::client::Client;

use crate::Failure;

/// `vm screenshot`: maps the VM's framebuffer (read-only, from `vm display`), copies one
/// consistent frame and writes it to `file` as an RGBA PNG. Returns the size.
pub async fn screenshot(client: &Client, name: &str, file: &Path) -> Result<(u32, u32), Failure> {
    use berth_display::framebuffer::FramebufferReader;
    use berth_display::gpu::Format;
    let (_, fd) = client.vm_display(name).await?;
    let mut reader = FramebufferReader::open(fd)
        .map_err(|e| Failure::Failed(format!("cannot read the screen of {name}: {e}")))?;
    let mut frame = reader
        .read_frame()
        .map_err(|e| Failure::Failed(format!("cannot read the screen of {name}: {e}")))?;
    let format = Format::from_code(frame.format).ok_or_else(|| {
        Failure::Failed(format!(
            "the screen of {name} has pixel format {}, which berthctl does not know",
            frame.format
        ))
    })?;
    format.to_rgba_in_place(&mut frame.pixels);
    let out = std::fs::File::create(file)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", file.display())))?;
    let failed =
        |e: png::EncodingError| Failure::Failed(format!("writing {}: {e}", file.display()));
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(out), frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&frame.pixels).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok((frame.width, frame.height))
}
