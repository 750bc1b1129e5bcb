//! The VM view under Xvfb with a window manager (openbox, so full screen is a real state
//! change), as a user sees it: Show screen gives a running VM's display the whole window, pixel
//! for pixel (compared with the guest's own framebuffer, `vm screenshot`); the guest follows
//! the window's size (the probe switches its mode to each size it is told); F11 and Escape
//! enter and leave full screen; the keyboard indicator follows a click and Right Ctrl; the
//! Screenshot button saves the guest's screen in the user's pictures folder; actual size
//! scrolls; All machines goes back. Through a root berthd with the console surface, and as a
//! desk user with the renderer drawing the display.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_e2e::{Daemon, open_tempdir, text};
use common::probe::ProbeFinish;
use common::window::{berth_window, child_windows, desk_daemon, start_window_with, window_title};
use common::xvfb::{Killed, screenshot, virtual_display_of_size, wait_for, xdotool};

mod common;

/// Where X11 window `id` is on the screen, and its size: (x, y, width, height).
fn geometry(display: &str, id: &str) -> (usize, usize, usize, usize) {
    let out = Command::new("xwininfo")
        .args(["-display", display, "-id", id])
        .output()
        .expect("xwininfo (x11-utils)");
    let info = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> usize {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {info}"))
    };
    (
        field("Absolute upper-left X:"),
        field("Absolute upper-left Y:"),
        field("Width:"),
        field("Height:"),
    )
}

/// The guest's display as `vm screenshot` saves it: (width, height, RGBA).
fn guest_screen(daemon: &Daemon, dir: &Path, name: &str) -> (usize, usize, Vec<u8>) {
    // berthctl runs as the daemon's user: a folder of its own.
    let dir = dir.join("guest-screen");
    if !dir.exists() {
        std::fs::create_dir(&dir).unwrap();
        if let Some(user) = &daemon.user {
            user.own(&dir);
        }
    }
    let file = dir.join("guest.png");
    let _ = std::fs::remove_file(&file);
    let shot = daemon.berthctl(&["vm", "screenshot", name, file.to_str().unwrap()]);
    assert!(shot.status.success(), "{}", text(&shot).1);
    read_png(&file)
}

fn read_png(file: &Path) -> (usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(file).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0u8; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    (frame.width as usize, frame.height as usize, pixels)
}

/// How many of the guest's pixels differ from the screen's at `at` (its top-left corner there).
fn differing(
    screen: &(usize, usize, Vec<u8>),
    at: (usize, usize),
    guest: &(usize, usize, Vec<u8>),
) -> usize {
    let (sw, sh, rgb) = screen;
    let (gw, gh, rgba) = guest;
    if at.0 + gw > *sw || at.1 + gh > *sh {
        return gw * gh;
    }
    let mut differ = 0;
    for y in 0..*gh {
        for x in 0..*gw {
            let s = ((at.1 + y) * sw + at.0 + x) * 3;
            let g = (y * gw + x) * 4;
            if rgb[s..s + 3] != rgba[g..g + 3] {
                differ += 1;
            }
        }
    }
    differ
}

/// The size the probe last switched its screen to (`gpu display changed to WxH`), if any.
fn guest_mode(daemon: &Daemon, name: &str) -> Option<(usize, usize)> {
    let log = text(&daemon.berthctl(&["vm", "log", name])).0;
    let last = log
        .lines()
        .filter_map(|l| l.split("gpu display changed to ").nth(1))
        .next_back()?;
    let (w, h) = last.trim().split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// Waits until the guest has taken the VM view's size (all of the window under the toolbar,
/// less the `frame` on each side) and the window shows its screen pixel for pixel at the
/// bottom of the window; the guest's mode then.
fn shown_pixel_for_pixel(
    display: &str,
    window: &str,
    (daemon, dir, name): (&Daemon, &Path, &str),
    frame: usize,
    what: &str,
) -> (usize, usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (x, y, width, height) = geometry(display, window);
        let told = guest_mode(daemon, name);
        let guest = guest_screen(daemon, dir, name);
        let mut last = format!(
            "window {width}x{height}+{x}+{y}, guest told {told:?}, guest screen {}x{}",
            guest.0, guest.1
        );
        // The guest takes the area's width whole (the frame aside).
        if let Some(told) = told.filter(|t| t.0 == width - 2 * frame && *t == (guest.0, guest.1)) {
            // At the bottom of the window, give or take the pixel a fractional toolbar height
            // leaves above or below it.
            let bottom = y + height - frame - told.1;
            let screen = screenshot(display);
            let differ = (bottom - 2..=bottom + 2)
                .map(|top| differing(&screen, (x + frame, top), &guest))
                .min()
                .unwrap_or(usize::MAX);
            if differ == 0 {
                return told;
            }
            last.push_str(&format!(
                ", {differ} pixels differ near ({}, {bottom})",
                x + frame
            ));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {last}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Counts the screen's pixels in the VM view's keyboard indicator painted in the accent colour
/// (the indicator's background while the guest has the keyboard).
fn accent_in_indicator(display: &str, window: &str) -> usize {
    let (x, y, _, _) = geometry(display, window);
    let (w, _, rgb) = screenshot(display);
    let mut accent = 0;
    for row in y + 40..y + 60 {
        for col in x + 10..x + 300 {
            let p = &rgb[(row * w + col) * 3..(row * w + col) * 3 + 3];
            // iced's light palette's primary: a saturated blue-violet.
            if p[2] > 200 && p[0] < 140 && p[1] < 140 {
                accent += 1;
            }
        }
    }
    accent
}

/// The whole VM view journey on a display of its own (`offset`); `desk`: the daemon and the
/// window run as the desk user, else as root; `surface`: a console surface draws the display,
/// else the renderer. At a `scale` factor above 1 (a HiDPI monitor), only as far as the first
/// picture: drawn at device pixels, and the guest told the view's size in them.
fn vm_view_journey(offset: u32, desk: bool, surface: bool, scale: u32) {
    if !common::kvm_available("vm_view_journey") {
        return;
    }
    let screen = if scale == 1 { "1920x1080" } else { "2600x1600" };
    let Some((display, _xvfb)) = virtual_display_of_size(offset, screen) else {
        return;
    };
    let wm = Killed(
        Command::new("openbox")
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openbox (apt-get install openbox): the window manager full screen needs"),
    );
    let _wm = wm;
    let dir = open_tempdir();
    let daemon = if desk {
        desk_daemon(dir.path())
    } else {
        Daemon::start(dir.path(), &[])
    };
    if desk && daemon.user.is_none() {
        return;
    }
    common::create_probe_vm(
        &daemon,
        dir.path(),
        "desk",
        ProbeFinish::Display,
        daemon.user.as_ref(),
    );
    let out = daemon.berthctl(&["vm", "start", "desk"]);
    assert!(out.status.success(), "{}", text(&out).1);
    common::serial_log_shows(&daemon, "desk", "BERTH-PROBE: ready for input");

    // Screenshots go to the pictures folder xdg-user-dirs names.
    let config = dir.path().join("config");
    let pictures = dir.path().join("Bilder");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&pictures).unwrap();
    std::fs::write(
        config.join("user-dirs.dirs"),
        format!("XDG_PICTURES_DIR=\"{}\"\n", pictures.display()),
    )
    .unwrap();
    if let Some(user) = &daemon.user {
        user.own(&pictures);
    }
    let config = config.to_str().unwrap().to_owned();
    let scale_factor = scale.to_string();
    let mut env = vec![
        ("XDG_CONFIG_HOME", config.as_str()),
        // winit's scale factor on X11 (a HiDPI monitor's, as Xft.dpi would give it).
        ("WINIT_X11_SCALE_FACTOR", scale_factor.as_str()),
    ];
    if !surface {
        env.push(("BERTH_CONSOLE_SURFACE", "0"));
    }
    let _window = start_window_with(&display, &daemon, &env);
    let berth = berth_window(&display);
    // Where the window's widgets are, in its logical pixels.
    let click = |x: u32, y: u32| {
        let (x, y) = ((x * scale).to_string(), (y * scale).to_string());
        xdotool(
            &display,
            &["mousemove", "--window", &berth, &x, &y, "click", "1"],
        );
    };
    let frame = 2 * scale as usize;
    // The VM in the sidebar, then Show screen (the toolbar's last button).
    click(65, 188);
    std::thread::sleep(Duration::from_secs(1));
    click(853, 75);
    wait_for("the VM view", Duration::from_secs(20), || {
        window_title(&display, &berth) == "desk - Berth"
    });

    // The guest takes the view's size and is shown pixel for pixel.
    let (_, _, width, _) = geometry(&display, &berth);
    let first = shown_pixel_for_pixel(
        &display,
        &berth,
        (&daemon, dir.path(), "desk"),
        frame,
        "the guest at the view's size, pixel for pixel",
    );
    assert_eq!(first.0, width - 2 * frame);
    // Drawn by a console surface (a child window the picture's size), or by the renderer.
    let children = child_windows(&display, &berth);
    if surface {
        assert_eq!(children.len(), 1, "{children:?}");
        let at = format!("{}x{}+{frame}+", first.0, first.1);
        assert!(children[0].starts_with(&at), "{children:?}");
    } else {
        assert!(children.is_empty(), "{children:?}");
    }
    if scale != 1 {
        return;
    }

    // The window made smaller: the guest follows.
    xdotool(&display, &["windowsize", "--sync", &berth, "900", "600"]);
    let smaller = shown_pixel_for_pixel(
        &display,
        &berth,
        (&daemon, dir.path(), "desk"),
        frame,
        "the guest following the smaller window",
    );
    assert_eq!(
        smaller,
        (896, first.1 - 120),
        "the area lost 200x120 pixels"
    );

    // F11: full screen, the guest takes the whole screen's width; Escape: back.
    xdotool(&display, &["windowfocus", "--sync", &berth]);
    xdotool(&display, &["key", "F11"]);
    wait_for("full screen", Duration::from_secs(20), || {
        geometry(&display, &berth).2 == 1920
    });
    let full = shown_pixel_for_pixel(
        &display,
        &berth,
        (&daemon, dir.path(), "desk"),
        frame,
        "the guest full screen",
    );
    assert_eq!(full.0, 1916);
    xdotool(&display, &["key", "Escape"]);
    wait_for(
        "the window back in its frame",
        Duration::from_secs(20),
        || geometry(&display, &berth).2 == 900,
    );
    shown_pixel_for_pixel(
        &display,
        &berth,
        (&daemon, dir.path(), "desk"),
        frame,
        "the guest back at the window's size",
    );

    // A click on the display gives the guest the keyboard (the indicator turns to the accent
    // colour, the title says so); Right Ctrl takes it back.
    let before = accent_in_indicator(&display, &berth);
    click(450, 350);
    wait_for("the keyboard in the guest", Duration::from_secs(10), || {
        window_title(&display, &berth)
            == "desk - Berth (keyboard in the guest: Right Ctrl releases it)"
    });
    wait_for(
        "the indicator in the accent colour",
        Duration::from_secs(10),
        || accent_in_indicator(&display, &berth) > before + 1000,
    );
    xdotool(&display, &["key", "Control_R"]);
    wait_for("the keyboard back", Duration::from_secs(10), || {
        window_title(&display, &berth) == "desk - Berth"
    });
    wait_for(
        "the indicator back to plain",
        Duration::from_secs(10),
        || accent_in_indicator(&display, &berth) < before + 100,
    );

    // Screenshot: the guest's screen in the pictures folder, as the guest has it. (The
    // toolbar's Screenshot button, right-aligned: fourth from the right at 900 pixels.)
    assert_eq!(geometry(&display, &berth).2, 900);
    click(617, 20);
    let mut saved = None;
    wait_for("the screenshot file", Duration::from_secs(20), || {
        saved = std::fs::read_dir(&pictures)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "png"));
        saved.is_some()
    });
    let saved = saved.unwrap();
    let name = saved.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("desk 20") && name.ends_with(".png"),
        "{name}"
    );
    // Written whole before the banner says so.
    wait_for(
        "the screenshot written whole",
        Duration::from_secs(10),
        || read_png_if_whole(&saved).is_some(),
    );
    let shot = read_png(&saved);
    let guest = guest_screen(&daemon, dir.path(), "desk");
    assert_eq!((shot.0, shot.1), (guest.0, guest.1));
    assert!(shot.2 == guest.2, "the screenshot is the guest's screen");
    if let Some(user) = &daemon.user {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&saved).unwrap().uid(),
            user.uid,
            "the user's file"
        );
    }

    // All machines: back to the sidebar and the details.
    click(70, 20);
    wait_for("the dashboard", Duration::from_secs(10), || {
        window_title(&display, &berth) == "Berth"
    });
}

/// The PNG at `file` if it decodes whole.
fn read_png_if_whole(file: &Path) -> Option<(usize, usize)> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(file).ok()?));
    let mut reader = decoder.read_info().ok()?;
    let mut pixels = vec![0u8; reader.output_buffer_size()?];
    let frame = reader.next_frame(&mut pixels).ok()?;
    Some((frame.width as usize, frame.height as usize))
}

#[test]
fn the_vm_view_shows_the_guest_pixel_for_pixel_and_the_guest_follows_it() {
    vm_view_journey(11, false, true, 1);
}

#[test]
fn a_desk_users_vm_view_drawn_by_the_renderer() {
    vm_view_journey(12, true, false, 1);
}

/// On a HiDPI monitor (scale factor 2) the display is drawn at device pixels, not blurred up
/// from logical ones, and the guest is told the view's size in device pixels.
#[test]
fn on_a_hidpi_monitor_the_vm_view_draws_device_pixels() {
    vm_view_journey(13, false, true, 2);
}

#[test]
fn on_a_hidpi_monitor_the_renderer_draws_device_pixels() {
    vm_view_journey(14, false, false, 2);
}
