//! `vm screenshot`: the VM's display as a PNG, made here from the framebuffer berthd hands
//! out (berthd never encodes images).

use std::path::Path;

use berth_api::client::Client;
use berth_display::framebuffer::FramebufferReader;

use crate::Failure;

/// `vm screenshot`: maps the VM's framebuffer (read-only, from `vm display`), copies one
/// consistent frame and writes it to `file` as an RGBA PNG. Returns the size.
pub async fn screenshot(client: &Client, name: &str, file: &Path) -> Result<(u32, u32), Failure> {
    let (_, fd) = client.vm_display(name).await?;
    let failed = |e: String| Failure::Failed(format!("screenshot of {name}: {e}"));
    let mut reader = FramebufferReader::open(fd).map_err(|e| failed(e.to_string()))?;
    berth_display::screenshot::write_png(&mut reader, file).map_err(|e| failed(e.to_string()))
}
