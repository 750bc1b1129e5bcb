//! The Berth window under Xvfb, as a user sees it: it connects to berthd, shows an
//! overcommitted host with a red ΣU_vm gauge, and follows the daemon live when the VM that
//! overcommits it is deleted.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, binary, open_tempdir, text};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A screenshot of the whole display as 8-bit RGB.
fn screenshot(display: &str) -> (usize, usize, Vec<u8>) {
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

/// Pixels of the danger red the gauges use beyond 100 %.
fn red_pixels(display: &str) -> usize {
    let (_, _, rgb) = screenshot(display);
    rgb.chunks_exact(3)
        .filter(|p| p[0] > 150 && p[1] < 90 && p[2] < 90)
        .count()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_window_shows_overcommitment_and_follows_the_daemon() {
    if Command::new("Xvfb")
        .arg("-help")
        .stderr(Stdio::null())
        .status()
        .is_err()
        || Command::new("import")
            .arg("-version")
            .stdout(Stdio::null())
            .status()
            .is_err()
    {
        eprintln!(
            "skipped: needs Xvfb and ImageMagick's import (apt-get install xvfb imagemagick)"
        );
        return;
    }
    let dir = open_tempdir();
    let number = 90 + std::process::id() % 100;
    let display = format!(":{number}");
    let _xvfb = Killed(
        Command::new("Xvfb")
            .args([
                display.as_str(),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("Xvfb", Duration::from_secs(10), || {
        Path::new(&format!("/tmp/.X11-unix/X{number}")).exists()
    });

    let daemon = Daemon::start(dir.path(), &[]);
    let cpus = (std::thread::available_parallelism().unwrap().get() + 1).to_string();
    let out = daemon.berthctl(&["vm", "create", "greedy", "--cpus", &cpus, "--overcommit"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(red_pixels(&display), 0, "an empty screen has no red");

    let _window = Killed(
        Command::new(binary("berth"))
            .env("DISPLAY", &display)
            .env("BERTH_SOCKET", &daemon.socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The ΣU_vm bar alone is 160 × 12 pixels of red.
    wait_for(
        "the red overcommitted gauge",
        Duration::from_secs(60),
        || red_pixels(&display) > 1500,
    );

    let out = daemon.berthctl(&["vm", "delete", "greedy"]);
    assert!(out.status.success(), "{}", text(&out).1);
    wait_for(
        "the gauge to follow the deletion",
        Duration::from_secs(15),
        || red_pixels(&display) < 50,
    );
}
