//! `berth-console`, the detached console window, under Xvfb: it refuses VMs it cannot show
//! before opening anything; it shows a running VM's screen, follows it when the guest draws
//! something else, sends the keys typed in it to the guest's keyboard, uses no CPU while the
//! screen is still, and ends when the VM stops; drawn by a console surface (X11, MIT-SHM) and
//! by `pixels` alike.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, binary, open_tempdir, text};
use common::probe::ProbeFinish;
use common::xvfb::{
    INVERTED_OLIVE, INVERTED_VIOLET, Killed, OLIVE, VIOLET, pixels_near, screenshot,
    virtual_display, wait_for, xdotool,
};

mod common;

/// The berth-console under test: `$BERTH_CONSOLE` (e.g. a release build, for its figures), else
/// the workspace's own.
fn console_binary() -> std::path::PathBuf {
    std::env::var_os("BERTH_CONSOLE")
        .map(Into::into)
        .unwrap_or_else(|| binary("berth-console"))
}

/// Waits for the visible console window of VM `name` and returns its id.
fn console_window(
    display: &str,
    name: &str,
    console: &mut Killed,
    stderr: impl Fn() -> String,
) -> String {
    let started = Instant::now();
    // The title is "NAME — Berth console"; xdotool's regex is matched in the C locale, so the
    // em dash is left out of the pattern.
    let pattern = format!("^{name} .* Berth console$");
    // Polled every 20 ms (not wait_for's 250) so the time to the mapped window is a figure.
    let window = loop {
        if let Ok(Some(status)) = console.0.try_wait() {
            panic!("berth-console ended with {status}:\n{}", stderr());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no console window; berth-console said:\n{}\nwindows named: {}",
            stderr(),
            xdotool(display, &["search", "--name", "."])
        );
        let found = xdotool(display, &["search", "--onlyvisible", "--name", &pattern]);
        if let Some(window) = found.lines().next() {
            break window.to_owned();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let title = xdotool(display, &["getwindowname", &window]);
    assert_eq!(title.trim_end(), format!("{name} — Berth console"));
    window
}

/// Runs berth-console to its end without a display, as a user would from a terminal.
fn console_without_display(socket: &Path, name: &str) -> std::process::Output {
    Command::new(console_binary())
        .arg(name)
        .env("BERTH_SOCKET", socket)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_vm_it_cannot_show_is_refused_clearly_before_any_window() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);

    let out = console_without_display(&daemon.socket, "nosuch");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("berth-console: "), "{stderr}");
    assert!(stderr.contains("`nosuch`"), "{stderr}");
    assert!(
        !stderr.contains("window"),
        "refused before any window: {stderr}"
    );

    let created = daemon.berthctl(&["vm", "create", "idle", "--cpus", "1", "--memory", "64M"]);
    assert!(created.status.success(), "{}", text(&created).1);
    let out = console_without_display(&daemon.socket, "idle");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("VM `idle` is stopped, not running")
            && stderr.contains("berthctl vm start idle"),
        "{stderr}"
    );

    let gone = dir.path().join("nobody-here.sock");
    let out = console_without_display(&gone, "idle");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "no daemon: {stderr}");
    assert!(stderr.contains("no berthd answers"), "{stderr}");
}

/// User and system CPU time of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (which may hold spaces) end with ')'; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn the_console_window_shows_the_guest_follows_it_and_types_into_it() {
    console_journey(true, 3);
}

/// The same drawn by `pixels` (wgpu), as on Wayland or a remote X display.
#[test]
fn drawn_by_pixels_the_console_window_shows_the_guest_the_same() {
    console_journey(false, 6);
}

/// The console window's whole journey on a display of its own (`display`): drawn by a console
/// surface (`surface`) or by `pixels`.
fn console_journey(surface: bool, display: u32) {
    if !common::kvm_available("console_journey") {
        return;
    }
    let Some((display, _xvfb)) = virtual_display(display) else {
        return;
    };
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    common::start_probe_vm(&daemon, dir.path(), "screen", ProbeFinish::DisplayKeys);
    let log = || text(&daemon.berthctl(&["vm", "log", "screen"])).0;
    // Drawn, and the keyboard's driver is up (keys sent now are not lost to its reset).
    wait_for("the guest to draw", Duration::from_secs(30), || {
        log().contains("BERTH-PROBE: input name Berth Keyboard")
    });

    let stderr_path = dir.path().join("console.stderr");
    let started = Instant::now();
    let console = Command::new(console_binary())
        .arg("screen")
        .env("DISPLAY", &display)
        .env("BERTH_SOCKET", &daemon.socket)
        .env("BERTH_CONSOLE_SURFACE", if surface { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let pid = console.id();
    let mut console = Killed(console);
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    let window = console_window(&display, "screen", &mut console, stderr);
    let mapped = started.elapsed();
    let mut shot = Vec::new();
    wait_for(
        "the guest's pattern in the console window",
        Duration::from_secs(30),
        || {
            shot = screenshot(&display).2;
            // 64x48 shown at 640x480: each guest pixel is 100 on screen.
            pixels_near(&shot, OLIVE) > 1000 && pixels_near(&shot, VIOLET) > 1000
        },
    );
    if let Some(path) = std::env::var_os("BERTH_CONSOLE_SCREENSHOT") {
        let saved = Command::new("import")
            .args(["-display", &display, "-window", "root"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(saved.success());
    }

    // Made wider, the window keeps the picture's aspect: 640x480 in the middle of 1000x480,
    // black bars of 180 pixels left and right (the screenshot is 1280 wide, 3 bytes a pixel).
    xdotool(&display, &["windowsize", "--sync", &window, "1000", "480"]);
    let bar_is_black = |shot: &[u8]| {
        (0..480).all(|y| (0..170).all(|x| shot[(y * 1280 + x) * 3..][..3] == [0, 0, 0]))
    };
    wait_for("the letterboxed picture", Duration::from_secs(10), || {
        shot = screenshot(&display).2;
        bar_is_black(&shot)
            && pixels_near(&shot, OLIVE) > 1000
            && pixels_near(&shot, VIOLET) > 1000
            && shot[(240 * 1280 + 185) * 3..][..3] != [0, 0, 0]
    });

    // A still screen costs nothing: no timer, no polling.
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle = (cpu_ticks(pid) - before) as f64 / 10.0; // ticks are 1/100 s: % of a core
    eprintln!(
        "berth-console: window mapped {} ms after start; idle CPU over 10 s {idle:.1} % of a core; it said:\n{}",
        mapped.as_millis(),
        stderr()
    );
    assert!(idle < 5.0, "{idle} % of a core with a still screen");
    assert_eq!(
        stderr().contains("berth-console: drawing with a console surface"),
        surface,
        "{}",
        stderr()
    );
    assert!(
        stderr().contains("berth-console: drawing with "),
        "{}",
        stderr()
    );

    // With no window manager, keyboard focus must be given explicitly; then a key typed in
    // the window reaches the guest as KEY_A (30) pressed and released.
    xdotool(&display, &["windowfocus", "--sync", &window]);
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&display, &["key", "a"]);
    wait_for("the key in the guest", Duration::from_secs(30), || {
        let log = log();
        log.contains("BERTH-PROBE: input event used 8 0001 001e 00000001")
            && log.contains("BERTH-PROBE: input event used 8 0001 001e 00000000")
            && log.contains("BERTH-PROBE: ready for input")
    });

    // The guest inverts its screen: the window follows and shows the new colours only.
    let mut serial = Command::new(binary("berthctl"))
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["vm", "serial", "screen"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut typing = serial.stdin.take().unwrap();
    let _serial = Killed(serial);
    typing.write_all(b"invert\n").unwrap();
    wait_for(
        "the guest to invert its screen",
        Duration::from_secs(30),
        || log().contains("BERTH-PROBE: inverted"),
    );
    wait_for(
        "the inverted screen in the console window",
        Duration::from_secs(30),
        || {
            shot = screenshot(&display).2;
            pixels_near(&shot, INVERTED_OLIVE) > 1000
                && pixels_near(&shot, INVERTED_VIOLET) > 1000
                && pixels_near(&shot, VIOLET) < 20
        },
    );

    // The guest switches to its display's whole mode (1280x800, the pattern in the corner):
    // the window follows, resized for the new mode with its aspect (1.6), pattern on black.
    let geometry = || {
        let out = xdotool(&display, &["getwindowgeometry", &window]);
        let size = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Geometry: "))
            .unwrap_or("")
            .to_owned();
        let (w, h) = size.split_once('x').unwrap_or(("0", "0"));
        (w.parse::<u32>().unwrap_or(0), h.parse::<u32>().unwrap_or(0))
    };
    assert_eq!(geometry(), (1000, 480), "as the test sized it");
    typing.write_all(b"big\n").unwrap();
    wait_for("the guest's new mode", Duration::from_secs(30), || {
        log().contains("BERTH-PROBE: mode shown")
    });
    wait_for(
        "the console window to follow the new mode",
        Duration::from_secs(30),
        || {
            let (w, h) = geometry();
            shot = screenshot(&display).2;
            // The 64x48 pattern at the window's scale; everything else black.
            let scale = f64::from(h) / 800.0;
            let expected = 64.0 * 48.0 * scale * scale;
            let lit = shot
                .chunks_exact(3)
                .filter(|p| p.iter().any(|&c| c > 16))
                .count() as f64;
            h > 0
                && (f64::from(w) / f64::from(h) - 1.6).abs() < 0.02
                && (0.7 * expected..1.3 * expected).contains(&lit)
        },
    );

    // The guest powers off: the window closes and berth-console says why, exit 0.
    typing.write_all(b"poweroff\n").unwrap();
    let mut status = None;
    wait_for("berth-console to end", Duration::from_secs(30), || {
        status = console.0.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(0), "{}", stderr());
    assert!(stderr().contains("VM `screen` is stopped"), "{}", stderr());
    assert!(
        xdotool(&display, &["search", "--name", "Berth console"]).is_empty(),
        "the window is gone"
    );
}

#[test]
fn the_console_ends_when_berthd_goes_away() {
    if !common::kvm_available("the_console_ends_when_berthd_goes_away") {
        return;
    }
    let Some((display, _xvfb)) = virtual_display(4) else {
        return;
    };
    let dir = open_tempdir();
    let mut daemon = Daemon::start(dir.path(), &[]);
    common::start_probe_vm(&daemon, dir.path(), "gone", ProbeFinish::Display);

    let stderr_path = dir.path().join("console.stderr");
    let console = Command::new(console_binary())
        .args(["gone", "--socket"])
        .arg(&daemon.socket)
        .env("DISPLAY", &display)
        .env_remove("BERTH_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut console = Killed(console);
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    console_window(&display, "gone", &mut console, stderr);

    // SIGKILL: no goodbye, no VM state events; the connection just ends.
    daemon.signal_and_wait(nix::sys::signal::Signal::SIGKILL);
    let mut status = None;
    wait_for("berth-console to end", Duration::from_secs(30), || {
        status = console.0.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(3), "{}", stderr());
    assert!(stderr().contains("berthd went away"), "{}", stderr());
}

#[test]
fn the_pointer_and_wheel_over_the_console_reach_the_guest_tablet() {
    if !common::kvm_available("the_pointer_and_wheel_over_the_console_reach_the_guest_tablet") {
        return;
    }
    let Some((display, _xvfb)) = virtual_display(5) else {
        return;
    };
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    common::start_probe_vm(&daemon, dir.path(), "mouse", ProbeFinish::DisplayPointer);
    let log = || text(&daemon.berthctl(&["vm", "log", "mouse"])).0;
    wait_for("the guest's tablet driver", Duration::from_secs(30), || {
        log().contains("BERTH-PROBE: input name Berth Tablet")
    });

    // The pointer starts off the window, so the only move the guest sees is the test's.
    xdotool(&display, &["mousemove", "1200", "700"]);
    let stderr_path = dir.path().join("console.stderr");
    let console = Command::new(console_binary())
        .arg("mouse")
        .env("DISPLAY", &display)
        .env("BERTH_SOCKET", &daemon.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut console = Killed(console);
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let window = console_window(&display, "mouse", &mut console, stderr);
    wait_for("the guest's pattern", Duration::from_secs(30), || {
        pixels_near(&screenshot(&display).2, OLIVE) > 1000
    });

    // The middle of the 640x480 picture is the middle of the tablet (16384 = 0x4000), no
    // button held; then one click of the wheel away from the user.
    xdotool(&display, &["mousemove", "--window", &window, "320", "240"]);
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&display, &["click", "4"]);
    wait_for(
        "the tablet events in the guest",
        Duration::from_secs(30),
        || log().contains("BERTH-PROBE: ready for input"),
    );
    let seen = log();
    let reported: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("BERTH-PROBE: input event used 8 "))
        .collect();
    assert_eq!(
        reported,
        [
            "0003 0000 00004000", // ABS_X
            "0003 0001 00004000", // ABS_Y
            "0001 0110 00000000", // BTN_LEFT up
            "0001 0111 00000000", // BTN_RIGHT up
            "0001 0112 00000000", // BTN_MIDDLE up
            "0000 0000 00000000", // SYN_REPORT
            "0002 0008 00000001", // REL_WHEEL +1
            "0000 0000 00000000",
        ],
        "{seen}\nberth-console said:\n{}",
        stderr()
    );
}
