//! The Berth window follows the desktop's light/dark preference, live, as a user who flips it in
//! their desktop's settings sees: a session bus of its own with the real XDG desktop portal
//! (xdg-desktop-portal and its GTK backend, which read GNOME's `color-scheme` setting through
//! dconf), the preference set with `gsettings`, the window read back from the screen.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_e2e::{Daemon, binary, open_tempdir};
use common::xvfb::{Killed, screenshot, virtual_display, wait_for, xdotool};

mod common;

/// The share of the window's pixels (1100x720 at the display's top left: there is no window
/// manager to place it) that are dark (every channel below 64) and light (every channel above
/// 224); (0, 0) until the window has drawn its toolbar (its primary buttons are #5865F2 in
/// both themes: an undrawn window is black, which must not pass for dark).
fn shades(display: &str) -> (f64, f64) {
    let (width, _, rgb) = screenshot(display);
    let window: Vec<&[u8]> = rgb
        .chunks_exact(3)
        .enumerate()
        .filter(|(i, _)| i % width < 1100 && i / width < 720)
        .map(|(_, p)| p)
        .collect();
    let primary = window
        .iter()
        .filter(|p| p[0].abs_diff(0x58) < 8 && p[1].abs_diff(0x65) < 8 && p[2].abs_diff(0xf2) < 8)
        .count();
    if primary < 2000 {
        return (0.0, 0.0);
    }
    let pixels = window.len().max(1) as f64;
    let share = |keep: fn(&u8) -> bool| {
        window.iter().filter(|p| p.iter().all(keep)).count() as f64 / pixels
    };
    (share(|&c| c < 64), share(|&c| c > 224))
}

#[test]
fn the_window_follows_the_desktop_light_and_dark_preference() {
    let portal = Path::new("/usr/libexec/xdg-desktop-portal");
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if !portal.exists() || !have("dbus-daemon") || !have("gsettings") {
        eprintln!(
            "skipped: needs xdg-desktop-portal(-gtk), dbus-daemon and gsettings (scripts/test installs them)"
        );
        return;
    }
    let Some((display, _xvfb)) = virtual_display(0) else {
        return;
    };
    let dir = open_tempdir();
    let (home, runtime) = (dir.path().join("home"), dir.path().join("runtime"));
    for d in [&home, &runtime] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    // What the session bus hands the services it starts (the portal's GTK backend needs the
    // display; the portal picks its backend by the desktop's name).
    let session_env = [
        ("DISPLAY", display.as_str()),
        ("XDG_CURRENT_DESKTOP", "GNOME"),
        ("HOME", home.to_str().unwrap()),
        ("XDG_RUNTIME_DIR", runtime.to_str().unwrap()),
    ];
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .envs(session_env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut address = String::new();
    BufReader::new(bus.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let _bus = Killed(bus);
    let address = address.trim().to_owned();
    assert!(address.starts_with("unix:"), "{address:?}");
    let prefer = |scheme: &str| {
        let out = Command::new("gsettings")
            .args(["set", "org.gnome.desktop.interface", "color-scheme", scheme])
            .envs(session_env)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gsettings: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    prefer("prefer-dark");

    let daemon = Daemon::start(dir.path(), &[]);
    let _window = Killed(
        Command::new(binary("berth"))
            .envs(session_env)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("BERTH_SOCKET", &daemon.socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the window", Duration::from_secs(180), || {
        !xdotool(&display, &["search", "--name", "^Berth$"]).is_empty()
    });
    // Dark as started; then flipped in the desktop's settings while the window is open: light,
    // and dark again.
    let dark: fn((f64, f64)) -> bool = |(dark, _)| dark > 0.5;
    let light: fn((f64, f64)) -> bool = |(dark, light)| dark < 0.2 && light > 0.5;
    for (scheme, what, shown) in [
        (None, "dark colours", dark),
        (
            Some("prefer-light"),
            "light colours after the switch",
            light,
        ),
        (Some("prefer-dark"), "dark colours again", dark),
    ] {
        if let Some(scheme) = scheme {
            prefer(scheme);
        }
        wait_for(
            &format!("the window in {what}"),
            Duration::from_secs(30),
            || shown(shades(&display)),
        );
    }
}
