//! Opening an address in the desktop's browser.
//!
//! **Decision: `xdg-open`** (freedesktop's xdg-utils, on every Linux desktop): it asks the
//! desktop which browser is the user's, as GNOME Boxes and Docker Desktop's links do; the
//! window does not pick one itself.

use std::io::ErrorKind;
use std::process::{Command, Stdio};

/// The program that opens an address with the user's own application.
const OPENER: &str = "xdg-open";

/// Opens `url` with the user's browser; the opener is reaped by a thread of its own (it may
/// wait for the browser).
pub fn open(url: &str) -> Result<(), String> {
    let mut child = Command::new(OPENER)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => {
                format!("cannot open {url}: {OPENER} is missing (install xdg-utils)")
            }
            _ => format!("cannot open {url}: {OPENER}: {e}"),
        })?;
    std::thread::spawn(move || child.wait());
    Ok(())
}
