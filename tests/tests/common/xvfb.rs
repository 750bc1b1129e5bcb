//! What the Xvfb tests share: a virtual display of their own, screenshots read back with
//! ImageMagick's `import`, xdotool, and the colours of the probe guest's pattern.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when dropped.
pub struct Killed(pub Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A screenshot of the whole display as 8-bit RGB.
pub fn screenshot(display: &str) -> (usize, usize, Vec<u8>) {
    let out = Command::new("import")
        .args([
            "-display", display, "-window", "root", "-depth", "8", "ppm:-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // P6 header: "P6\n<w> <h>\n<max>\n", then the pixels.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while out.stdout[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !out.stdout[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&out.stdout[start..at]).into_owned());
    }
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, out.stdout[at + 1..].to_vec())
}

/// Polls `done` every 250 ms until it holds; panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A virtual display of its own, or None (with a note) when the tools are missing.
pub fn virtual_display(offset: u32) -> Option<(String, Killed)> {
    display_server(offset, false, "1280x800")
}

/// The same with a screen of `size` (WIDTHxHEIGHT), e.g. one that holds a 1920x1080 window.
pub fn virtual_display_of_size(offset: u32, size: &str) -> Option<(String, Killed)> {
    display_server(offset, false, size)
}

/// The same, also listening on TCP: `127.0.0.1:N` reaches it as a remote display would be
/// reached (no shared memory, no file descriptors passed).
pub fn virtual_display_on_tcp(offset: u32) -> Option<(String, Killed)> {
    display_server(offset, true, "1280x800")
}

fn display_server(offset: u32, tcp: bool, size: &str) -> Option<(String, Killed)> {
    let have = |tool: &str, arg: &str| {
        Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if !have("Xvfb", "-help") || !have("import", "-version") || !have("xdotool", "version") {
        eprintln!(
            "skipped: needs Xvfb, ImageMagick's import and xdotool (apt-get install xvfb imagemagick xdotool)"
        );
        return None;
    }
    let number = 100 + (std::process::id() % 400) * 2 + offset;
    let display = format!(":{number}");
    let xvfb = Killed(
        Command::new("Xvfb")
            .args([
                display.as_str(),
                "-screen",
                "0",
                &format!("{size}x24"),
                if tcp { "-listen" } else { "-nolisten" },
                "tcp",
                // No server reset when the last client leaves (a probe or screenshot), which
                // would refuse the next client connecting meanwhile.
                "-noreset",
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The socket file may be a stale one of an Xvfb killed earlier on the same number: wait
    // until a client can actually talk to this server.
    wait_for("Xvfb", Duration::from_secs(10), || {
        Path::new(&format!("/tmp/.X11-unix/X{number}")).exists()
            && Command::new("xdotool")
                .env("DISPLAY", &display)
                .arg("getdisplaygeometry")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    });
    Some((display, xvfb))
}

/// Run xdotool on the display.
pub fn xdotool(display: &str, args: &[&str]) -> String {
    let out = Command::new("xdotool")
        .env("DISPLAY", display)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pixels of the screen within 24 of `rgb` on every channel.
pub fn pixels_near(shot: &[u8], rgb: [u8; 3]) -> usize {
    shot.chunks_exact(3)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 24))
        .count()
}

/// The probe's pattern (probe/gpu.h) at the middle of its left edge and at its top-right
/// corner: an olive and a violet no part of the window uses, each covering a patch of the
/// scaled-up console (all of it on screen, right under the VM's name).
pub const OLIVE: [u8; 3] = [72, 120, 0];
pub const VIOLET: [u8; 3] = [189, 0, 252];
/// The same places once the guest inverted its colours.
pub const INVERTED_OLIVE: [u8; 3] = [183, 135, 255];
pub const INVERTED_VIOLET: [u8; 3] = [66, 255, 3];
