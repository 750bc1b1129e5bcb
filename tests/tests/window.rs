//! The Berth window under Xvfb, as a user sees it: it connects to berthd, shows an
//! overcommitted host with a red ΣU_vm gauge, and follows the daemon live when the VM that
//! overcommits it is deleted; it launches a Dockerfile; it shows a running VM's screen and
//! follows it when the guest draws something else, and detaches it into berth-console; it
//! ejects an installed VM's ISO; it tells the desktop its application id and icon, opens on a
//! desktop entry's action, and shows About.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_e2e::net::http_get;
use berth_e2e::{Daemon, binary, open_tempdir, text};
use common::xvfb::{
    INVERTED_OLIVE, INVERTED_VIOLET, Killed, OLIVE, VIOLET, pixels_near, screenshot,
    virtual_display, virtual_display_on_tcp, wait_for, xdotool,
};

mod common;

use common::window::{
    berth_window, child_windows, desk_daemon, start_window, start_window_with,
    start_window_with_args, window_title,
};

/// Pixels of the danger red the gauges use beyond 100 %.
fn red_pixels(display: &str) -> usize {
    let (_, _, rgb) = screenshot(display);
    rgb.chunks_exact(3)
        .filter(|p| p[0] > 150 && p[1] < 90 && p[2] < 90)
        .count()
}

#[test]
fn the_window_shows_overcommitment_and_follows_the_daemon() {
    let Some((display, _xvfb)) = virtual_display(0) else {
        return;
    };
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let cpus = (std::thread::available_parallelism().unwrap().get() + 1).to_string();
    let out = daemon.berthctl(&["vm", "create", "greedy", "--cpus", &cpus, "--overcommit"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(red_pixels(&display), 0, "an empty screen has no red");

    let _window = start_window(&display, &daemon);
    // The ΣU_vm bar alone is 160 × 12 pixels of red.
    wait_for(
        "the red overcommitted gauge",
        Duration::from_secs(180),
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

/// Pick a folder with a Dockerfile in the window and press Launch, as a user would: the image
/// is built and the container runs, as berthd (asked separately with berthctl) confirms, and
/// its published port, a link in its details, opens the page it serves in the browser.
#[test]
fn launching_a_dockerfile_from_the_window_builds_and_runs_it() {
    launch_a_dockerfile(None, 1);
}

/// The same as a developer at the desk: a normal user's window and rootless `berthd --user`.
#[test]
fn a_desk_user_launches_a_dockerfile_from_the_window() {
    let Some(user) = berth_e2e::user::TestUser::desk() else {
        return;
    };
    launch_a_dockerfile(Some(user), 5);
}

fn launch_a_dockerfile(user: Option<berth_e2e::user::TestUser>, display: u32) {
    if !nix::unistd::Uid::effective().is_root() || !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: containers need root (or a user it makes) and /bin/busybox");
        return;
    }
    let Some((display, _xvfb)) = virtual_display(display) else {
        return;
    };
    let dir = open_tempdir();
    let daemon = match &user {
        Some(user) => Daemon::start_as(user, dir.path(), &[]),
        None => Daemon::start(dir.path(), &[]),
    };
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let tarball = dir.path().join("busybox.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    if let Some(user) = &user {
        user.own(&tarball);
    }
    assert!(
        daemon
            .berthctl(&["import", tarball.to_str().unwrap(), "busybox"])
            .status
            .success()
    );
    let app = dir.path().join("webapp");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("hello.txt"), "hello from the window\n").unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        "FROM busybox\nCOPY hello.txt /\nCOPY hello.txt /www/index.html\nCMD [\"sh\", \"-c\", \"cat /hello.txt; echo $GREETING; exec busybox httpd -f -p 80 -h /www\"]\n",
    )
    .unwrap();
    if let Some(user) = &user {
        user.own(&app);
    }
    // The desktop's opener, as the window finds it on its PATH: it notes what it was asked to
    // open.
    let opener = dir.path().join("opener");
    std::fs::create_dir_all(&opener).unwrap();
    let opened = opener.join("opened");
    std::fs::write(&opened, "").unwrap();
    std::fs::write(
        opener.join("xdg-open"),
        format!("#!/bin/sh\necho \"$1\" >> {}\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        opener.join("xdg-open"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    if let Some(user) = &user {
        user.own(&opened);
    }
    let path = format!(
        "{}:{}",
        opener.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let _window = start_window_with(&display, &daemon, &[("PATH", &path)]);
    let window = berth_window(&display);
    // With no window manager, keyboard focus must be given explicitly.
    xdotool(&display, &["windowfocus", &window]);
    xdotool(&display, &["mousemove", "376", "25", "click", "1"]); // Launch Dockerfile
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&display, &["mousemove", "500", "120", "click", "1"]); // the Folder field
    xdotool(&display, &["type", "--delay", "10", app.to_str().unwrap()]);
    let port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port()
    };
    xdotool(&display, &["mousemove", "500", "447", "click", "1"]); // the Ports field
    xdotool(
        &display,
        &["type", "--delay", "10", &format!("127.0.0.1:{port}:80")],
    );
    xdotool(&display, &["mousemove", "500", "515", "click", "1"]); // the Environment field
    xdotool(
        &display,
        &["type", "--delay", "10", "GREETING=from-the-form"],
    );
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&display, &["key", "Return"]); // Enter in the form launches

    wait_for("the launched container", Duration::from_secs(60), || {
        let (table, _) = text(&daemon.berthctl(&["ps"]));
        table
            .lines()
            .any(|l| l.contains("webapp:latest") && l.contains("running"))
    });
    let (table, _) = text(&daemon.berthctl(&["ps"]));
    let id = table
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    wait_for("its output", Duration::from_secs(10), || {
        text(&daemon.berthctl(&["logs", &id])).0 == "hello from the window\nfrom-the-form\n"
    });
    // The port typed in the form is published, on the daemon's default network.
    assert_eq!(
        text(&daemon.berthctl(&["port", &id])).0,
        format!("80/tcp -> 127.0.0.1:{port}\n")
    );
    let inspected: serde_json::Value =
        serde_json::from_slice(&daemon.berthctl(&["inspect", &id]).stdout).unwrap();
    let default = if user.is_some() { "pasta" } else { "bridge" };
    assert_eq!(inspected["network"], default, "{inspected}");
    // Its link in the container's details (selected after the launch) opens the page. The
    // details may not be drawn yet on a busy machine, so the click is repeated until the
    // browser is asked (once missed with a single click while the whole suite ran).
    let url = format!("http://127.0.0.1:{port}/");
    let asked = || std::fs::read_to_string(&opened).unwrap_or_default();
    wait_for("the browser to be asked", Duration::from_secs(30), || {
        if asked().is_empty() {
            xdotool(&display, &["mousemove", "560", "220", "click", "1"]); // the port's link
            std::thread::sleep(Duration::from_millis(750));
        }
        !asked().is_empty()
    });
    let asked = asked();
    assert!(asked.lines().all(|line| line == url), "{asked}");
    let page = http_get(port, "/");
    assert!(page.ends_with("\r\n\r\nhello from the window\n"), "{page}");
    assert!(daemon.berthctl(&["rm", "-f", &id]).status.success());
}

/// Select a running VM whose guest draws a known pattern: its screen shows in the window (on
/// the console surface, a child window of Berth's), a click on it and a key typed reach the
/// guest, and when the guest inverts the colours, the window follows.
#[test]
fn the_console_shows_the_guest_screen_and_follows_it() {
    console_follows_the_guest(Drawn::Surface, 2);
}

/// The same with the renderer drawing the screen (what Berth does without X11).
#[test]
fn the_renderer_draws_the_console_without_a_surface() {
    console_follows_the_guest(Drawn::Renderer, 3);
}

/// The same with the window on a display reached over TCP, as a remote one (`ssh -X`) is: the X
/// server cannot map the window's memory, so the surface is refused at once and the renderer
/// draws the screen.
#[test]
fn on_a_remote_display_the_renderer_draws_the_console() {
    console_follows_the_guest(Drawn::RemoteDisplay, 4);
}

/// Who draws the guest's screen in [`console_follows_the_guest`].
#[derive(Clone, Copy, PartialEq)]
enum Drawn {
    Surface,
    Renderer,
    RemoteDisplay,
}

/// (On a virtual display of its own, `display`: these run at once.)
fn console_follows_the_guest(drawn: Drawn, display: u32) {
    let surface = drawn == Drawn::Surface;
    if !Path::new("/dev/kvm").exists() {
        eprintln!("skipped: needs /dev/kvm");
        return;
    }
    let server = if drawn == Drawn::RemoteDisplay {
        virtual_display_on_tcp(display)
    } else {
        virtual_display(display)
    };
    let Some((display, _xvfb)) = server else {
        return;
    };
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    common::start_probe_vm(
        &daemon,
        dir.path(),
        "screen",
        common::probe::ProbeFinish::DisplayKeys,
    );
    let out = daemon.berthctl(&["vm", "create", "installer", "--disk", "1G"]);
    assert!(out.status.success(), "{}", text(&out).1);
    // Drawn, and the keyboard's driver is up (keys sent now are not lost to its reset).
    wait_for("the guest to draw", Duration::from_secs(30), || {
        text(&daemon.berthctl(&["vm", "log", "screen"]))
            .0
            .contains("BERTH-PROBE: input name Berth Keyboard")
    });
    let (_, _, before) = screenshot(&display);
    assert_eq!(
        pixels_near(&before, OLIVE),
        0,
        "nothing olive before the window"
    );

    let tcp = format!("127.0.0.1{display}");
    let _window = match drawn {
        Drawn::Surface => start_window_with(&display, &daemon, &[]),
        Drawn::Renderer => start_window_with(&display, &daemon, &[("BERTH_CONSOLE_SURFACE", "0")]),
        Drawn::RemoteDisplay => start_window_with(&display, &daemon, &[("DISPLAY", &tcp)]),
    };
    let berth = berth_window(&display);
    // A stopped VM first (listed above it), then the running one, as a user looks around:
    // the details pane's layout changes under the console as it opens.
    xdotool(&display, &["mousemove", "65", "188", "click", "1"]);
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&display, &["mousemove", "65", "223", "click", "1"]); // the running VM
    let mut shot = Vec::new();
    // Scaled by the window to the console's area: more olive than the guest's whole 64x48
    // screen has pixels (the picture is drawn at its own size until it is scaled).
    wait_for(
        "the guest's pattern scaled to the console",
        Duration::from_secs(60),
        || {
            shot = screenshot(&display).2;
            pixels_near(&shot, OLIVE) > 64 * 48 && pixels_near(&shot, VIOLET) > 200
        },
    );
    // Drawn on a surface, or by the renderer: the picture is (or is not) a child window of
    // its own, scaled (the probe's 64x48 screen fits the console at 554x416).
    if surface {
        // (The renderer may draw the first picture, before the surface is made.)
        wait_for("the console surface", Duration::from_secs(10), || {
            let children = child_windows(&display, &berth);
            children.len() == 1 && children[0].starts_with("554x416+")
        });
        // Nothing of the picture above the surface: a first picture the renderer drew where
        // the layout later moved once stayed there, over the console's frame.
        let child = child_windows(&display, &berth).remove(0);
        let top: usize = child.rsplit('+').next().unwrap().parse().unwrap();
        let (width, _, shot) = screenshot(&display);
        let above = &shot[(top - 12) * width * 3..top * width * 3];
        assert_eq!(
            pixels_near(above, VIOLET) + pixels_near(above, OLIVE),
            0,
            "the picture shows above the console"
        );
    } else {
        let children = child_windows(&display, &berth);
        assert!(children.is_empty(), "{children:?}");
    }

    // A click on the picture (through the surface, which the pointer passes) gives the console
    // the keyboard; a key typed then reaches the guest as KEY_A (30) pressed and released.
    // With no window manager, the window's focus must be given explicitly.
    xdotool(&display, &["windowfocus", "--sync", &berth]);
    xdotool(&display, &["mousemove", "675", "464", "click", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&display, &["key", "a"]);
    wait_for("the key in the guest", Duration::from_secs(30), || {
        let log = text(&daemon.berthctl(&["vm", "log", "screen"])).0;
        log.contains("BERTH-PROBE: input event used 8 0001 001e 00000001")
            && log.contains("BERTH-PROBE: input event used 8 0001 001e 00000000")
            && log.contains("BERTH-PROBE: ready for input")
    });
    // The title says the guest has the keyboard, and Right Ctrl gives it back.
    assert_eq!(
        window_title(&display, &berth),
        "screen - Berth (keyboard in the guest: Right Ctrl releases it)"
    );
    xdotool(&display, &["key", "Control_R"]);
    wait_for("the keyboard back", Duration::from_secs(10), || {
        window_title(&display, &berth) == "Berth"
    });

    // The guest inverts its screen: the window shows the new colours and not the old.
    let mut console = Command::new(binary("berthctl"))
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["vm", "serial", "screen"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        console
            .stdin
            .take()
            .unwrap()
            .write_all(b"invert\n")
            .unwrap();
    }
    let _console = Killed(console);
    wait_for(
        "the guest to invert its screen",
        Duration::from_secs(30),
        || {
            text(&daemon.berthctl(&["vm", "log", "screen"]))
                .0
                .contains("BERTH-PROBE: inverted")
        },
    );
    wait_for(
        "the inverted screen in the console",
        Duration::from_secs(30),
        || {
            shot = screenshot(&display).2;
            pixels_near(&shot, INVERTED_OLIVE) > 200
                && pixels_near(&shot, INVERTED_VIOLET) > 200
                && pixels_near(&shot, VIOLET) < 20
        },
    );

    // Detach console: berth-console opens the same screen in a window of its own (the probe's
    // 64x48 at 640x480, so many more of its pixels are on the display than in the pane).
    let in_pane = pixels_near(&shot, INVERTED_OLIVE);
    xdotool(&display, &["mousemove", "632", "75", "click", "1"]);
    wait_for(
        "the detached console window",
        Duration::from_secs(60),
        || !xdotool(&display, &["search", "--name", "^screen .* Berth console$"]).is_empty(),
    );
    wait_for(
        "the screen in the detached console",
        Duration::from_secs(30),
        || {
            shot = screenshot(&display).2;
            pixels_near(&shot, INVERTED_OLIVE) > in_pane + 1000
        },
    );
    // The VM stops: the detached console closes with it.
    let out = daemon.berthctl(&["vm", "stop", "screen", "--force"]);
    assert!(out.status.success(), "{}", text(&out).1);
    wait_for(
        "the detached console to close",
        Duration::from_secs(30),
        || xdotool(&display, &["search", "--name", "^screen .* Berth console$"]).is_empty(),
    );
}

/// After an install (a stopped VM with its ISO and a disk), the window offers "Eject the ISO
/// and boot from disk", and pressing it detaches the ISO and makes the VM start from its disk.
#[test]
fn the_window_ejects_the_iso_after_an_install() {
    let Some((display, _xvfb)) = virtual_display(6) else {
        return;
    };
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let iso = dir.path().join("installer.iso");
    std::fs::write(&iso, [0u8; 4096]).unwrap();
    // What the VM looks like after its installer ran: its ISO still attached, starting from
    // its disk (the ISO is any file here: the VM is not started).
    let out = daemon.berthctl(&[
        "vm",
        "create",
        "installed",
        "--cpus",
        "1",
        "--memory",
        "256M",
        "--disk",
        "64M",
        "--iso",
        iso.to_str().unwrap(),
        "--boot",
        "disk",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);

    let _window = start_window(&display, &daemon);
    let window = berth_window(&display);
    xdotool(&display, &["windowfocus", &window]);
    xdotool(&display, &["mousemove", "60", "188", "click", "1"]); // the VM in the sidebar
    std::thread::sleep(Duration::from_millis(500));
    // The toolbar's last button, after Start, Stop, Pause, Resume, Detach console and Delete.
    xdotool(&display, &["mousemove", "932", "75", "click", "1"]);
    wait_for("the ISO to be ejected", Duration::from_secs(15), || {
        !text(&daemon.berthctl(&["vm", "show", "installed"]))
            .0
            .contains(iso.to_str().unwrap())
    });
    let (shown, _) = text(&daemon.berthctl(&["vm", "show", "installed"]));
    assert!(
        shown.contains("Starts from  its disk (firmware)"),
        "{shown}"
    );
}

#[test]
fn the_window_gives_the_desktop_its_id_and_icon_and_opens_on_a_desktop_action() {
    let Some((display, _xvfb)) = virtual_display(7) else {
        return;
    };
    let dir = open_tempdir();
    let daemon = desk_daemon(dir.path());
    // The desktop entry's "New Virtual Machine" action.
    let desktop = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/dev.berth.Berth.desktop"),
    )
    .unwrap();
    assert!(desktop.contains("Exec=berth --new-vm\n"), "{desktop}");
    let _window = start_window_with_args(&display, &daemon, &[], &["--new-vm"]);
    let mut window = String::new();
    wait_for("the window", Duration::from_secs(180), || {
        window = xdotool(&display, &["search", "--class", "dev.berth.Berth"])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        !window.is_empty()
    });
    wait_for("the New VM wizard", Duration::from_secs(30), || {
        window_title(&display, &window) == "New VM - Berth"
    });

    // The desktop matches the window to its entry by WM_CLASS, and shows its icon.
    let wm_class = desktop
        .lines()
        .find_map(|l| l.strip_prefix("StartupWMClass="))
        .unwrap();
    let out = Command::new("xprop")
        .args([
            "-display",
            &display,
            "-id",
            &window,
            "WM_CLASS",
            "_NET_WM_ICON",
        ])
        .output()
        .unwrap();
    let props = String::from_utf8_lossy(&out.stdout);
    assert!(
        props.contains(&format!(
            "WM_CLASS(STRING) = \"{wm_class}\", \"{wm_class}\""
        )),
        "{props}"
    );
    assert!(props.contains("Icon (64 x 64)"), "{props}");

    // Escape closes the wizard; About shows the icon and the daemon.
    xdotool(&display, &["windowfocus", &window]);
    xdotool(&display, &["key", "Escape"]);
    wait_for("the dashboard", Duration::from_secs(10), || {
        window_title(&display, &window) == "Berth"
    });
    // The monitor's screen of the icon, a green the window uses nowhere else.
    const ICON_SCREEN: [u8; 3] = [0x8f, 0xf0, 0xa4];
    assert_eq!(pixels_near(&screenshot(&display).2, ICON_SCREEN), 0);
    xdotool(&display, &["mousemove", "546", "25", "click", "1"]); // About, in the header
    wait_for("About", Duration::from_secs(10), || {
        window_title(&display, &window) == "About Berth"
    });
    wait_for("the icon in About", Duration::from_secs(10), || {
        pixels_near(&screenshot(&display).2, ICON_SCREEN) > 50
    });
}

/// The processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

#[test]
fn a_desk_users_window_uses_the_socket_activated_user_daemon() {
    let Some(user) = berth_e2e::user::TestUser::desk() else {
        return;
    };
    if !berth_e2e::on_path("systemd-socket-activate") {
        eprintln!("skipped: no systemd-socket-activate (package systemd)");
        return;
    }
    let Some((display, _xvfb)) = virtual_display(8) else {
        return;
    };
    // The user's runtime dir, with the socket where the packaged user unit puts it
    // (%t/berth/berthd.sock), a launcher listening there as systemd's socket does.
    let dir = open_tempdir();
    let home = dir.path().join(user.name);
    let runtime = home.join("run");
    let socket = runtime.join(berth_api::paths::USER_SOCKET_IN_RUNTIME_DIR);
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    for owned in [&home, &runtime, &socket.parent().unwrap().to_owned()] {
        user.own(owned);
        std::fs::set_permissions(owned, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
    }
    let state = home.join("state");
    let _launcher = Killed(
        user.command("systemd-socket-activate")
            .arg("--listen")
            .arg(&socket)
            .arg(binary("berthd"))
            .args(["--user", "--state-dir", state.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the launcher", Duration::from_secs(10), || socket.exists());

    // The window as the user logs in: a runtime dir, no BERTH_SOCKET.
    let _window = Killed(
        user.command(binary("berth"))
            .env("DISPLAY", &display)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("BERTH_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Its connection starts the activated daemon (which makes its state dir)...
    wait_for(
        "the socket-activated daemon",
        Duration::from_secs(60),
        || state.join("berthd.lock").exists(),
    );
    berth_window(&display);
    // ... and it starts none of its own (that one would be `berthd --user --socket <this>`).
    let own = processes_mentioning(&format!("--socket {}", socket.display()));
    assert!(own.is_empty(), "the window started its own daemon: {own:?}");
}

#[test]
fn the_sidebar_lists_in_natural_order_and_filters_on_ctrl_f() {
    let Some((display, _xvfb)) = virtual_display(9) else {
        return;
    };
    let dir = open_tempdir();
    let daemon = desk_daemon(dir.path());
    for name in ["vm10", "db1", "vm2"] {
        let out = daemon.berthctl(&["vm", "create", name, "--cpus", "1", "--memory", "128M"]);
        assert!(out.status.success(), "{}", text(&out).1);
    }
    let _window = start_window(&display, &daemon);
    let window = berth_window(&display);
    xdotool(&display, &["windowfocus", &window]);
    // Filtered to "vm", the first VM listed is vm2: natural order puts it before vm10 (by
    // bytes it would come after), and db1, first by either order, is hidden.
    xdotool(&display, &["key", "ctrl+f"]);
    xdotool(&display, &["type", "vm"]);
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&display, &["mousemove", "65", "188", "click", "1"]); // the first VM listed
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&display, &["mousemove", "748", "75", "click", "1"]); // Delete
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&display, &["mousemove", "535", "75", "click", "1"]); // Delete, confirmed
    wait_for("a VM to be deleted", Duration::from_secs(15), || {
        text(&daemon.berthctl(&["vm", "list"])).0.lines().count() < 4
    });
    let (listed, _) = text(&daemon.berthctl(&["vm", "list"]));
    assert!(
        !listed.contains("vm2 "),
        "vm2 should be the one deleted:\n{listed}"
    );
    assert!(
        listed.contains("vm10") && listed.contains("db1"),
        "{listed}"
    );
}

#[test]
fn a_stopped_vms_port_forwards_are_edited_in_its_details() {
    let Some((display, _xvfb)) = virtual_display(10) else {
        return;
    };
    let dir = open_tempdir();
    let daemon = desk_daemon(dir.path());
    let out = daemon.berthctl(&["vm", "create", "web", "--cpus", "1", "--memory", "128M"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let _window = start_window(&display, &daemon);
    let window = berth_window(&display);
    xdotool(&display, &["windowfocus", &window]);
    xdotool(&display, &["mousemove", "65", "188", "click", "1"]); // the VM
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&display, &["mousemove", "700", "222", "click", "1"]); // the forwards field
    // A bad forward is not applied, Enter or not.
    xdotool(&display, &["type", "tcp:2222:22 bad"]);
    xdotool(&display, &["key", "Return"]);
    std::thread::sleep(Duration::from_secs(1));
    let forwards = || {
        let out = daemon.berthctl(&["--json", "vm", "show", "web"]);
        let vm: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        vm["config"]["network"]["forwards"].clone()
    };
    assert_eq!(forwards(), serde_json::json!([]));
    // Corrected, Apply gives them to the VM.
    for _ in 0.." bad".len() {
        xdotool(&display, &["key", "BackSpace"]);
    }
    xdotool(&display, &["mousemove", "1053", "222", "click", "1"]); // Apply
    wait_for("the forward to be kept", Duration::from_secs(15), || {
        forwards().as_array().is_some_and(|f| f.len() == 1)
    });
    let shown = text(&daemon.berthctl(&["vm", "show", "web"])).0;
    assert!(shown.contains("2222"), "{shown}");
}

/// The New VM wizard puts the VM on the network picked in it, with the forwards typed there
/// (a desk user's window and daemon).
#[test]
fn the_wizard_puts_a_vm_on_the_network_picked_with_its_forwards() {
    let Some((display, _xvfb)) = virtual_display(12) else {
        return;
    };
    let dir = open_tempdir();
    let daemon = desk_daemon(dir.path());
    let _window = start_window(&display, &daemon);
    let window = berth_window(&display);
    xdotool(&display, &["windowfocus", &window]);
    xdotool(&display, &["mousemove", "160", "25", "click", "1"]); // New VM
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&display, &["mousemove", "600", "118", "click", "1"]); // Name
    xdotool(&display, &["type", "--delay", "10", "webvm"]);
    xdotool(&display, &["mousemove", "292", "204", "click", "1"]); // Boot: Nothing yet
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&display, &["mousemove", "345", "581", "click", "1"]); // the Network list
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&display, &["mousemove", "345", "520", "click", "1"]); // Berth network
    xdotool(&display, &["mousemove", "770", "581", "click", "1"]); // Forwards
    xdotool(&display, &["type", "--delay", "10", "tcp:18124:80"]);
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&display, &["mousemove", "52", "620", "click", "1"]); // Create
    let mut shown = serde_json::Value::Null;
    wait_for("the VM to be made", Duration::from_secs(15), || {
        let out = daemon.berthctl(&["--json", "vm", "show", "webvm"]);
        shown = serde_json::from_slice(&out.stdout).unwrap_or_default();
        out.status.success()
    });
    let network = &shown["config"]["network"];
    assert_eq!(network["mode"], "bridge", "{shown}");
    assert_eq!(network["forwards"][0]["host_port"], 18124, "{shown}");
    assert_eq!(network["forwards"][0]["target_port"], 80, "{shown}");
    assert_eq!(network["forwards"][0]["host_ip"], "127.0.0.1", "{shown}");
    // Read back from the window: the new VM is selected, and its forwards field, copied as
    // a user copies it, holds the forward.
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&display, &["mousemove", "700", "222", "click", "1"]); // the forwards field
    xdotool(&display, &["key", "ctrl+a", "ctrl+c"]);
    let mut copied = String::new();
    wait_for("the forwards copied", Duration::from_secs(10), || {
        let out = Command::new("xclip")
            .args(["-o", "-selection", "clipboard", "-display", &display])
            .output()
            .expect("xclip");
        copied = String::from_utf8_lossy(&out.stdout).into_owned();
        !copied.is_empty()
    });
    assert_eq!(copied, "tcp:127.0.0.1:18124:80");
}

/// A desk user opens a terminal in a running container from its details, as in Docker
/// Desktop's Exec tab: what is typed runs in the container, its colours reach the screen,
/// Ctrl+C interrupts the foreground process, the terminal's size follows the window, and
/// `exit` closes it (its `berthctl exec` ends).
#[test]
fn a_desk_user_opens_a_terminal_in_a_container() {
    let Some(user) = berth_e2e::user::TestUser::desk() else {
        return;
    };
    let Some((display, _xvfb)) = virtual_display(11) else {
        return;
    };
    let dir = open_tempdir();
    let Some(tarball) = berth_e2e::busybox_tarball(dir.path(), Some(&user)) else {
        return;
    };
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    let ctl = |args: &[&str]| {
        let out = daemon.berthctl(args);
        assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
        text(&out).0
    };
    ctl(&["import", tarball.to_str().unwrap(), "busybox"]);
    ctl(&["run", "-d", "--name", "shelly", "busybox", "sleep", "1000"]);
    let shown = |path: &str| text(&daemon.berthctl(&["exec", "shelly", "cat", path])).0;

    let _window = start_window(&display, &daemon);
    let window = berth_window(&display);
    xdotool(&display, &["windowfocus", &window]);
    xdotool(&display, &["mousemove", "60", "247", "click", "1"]); // the container
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&display, &["mousemove", "523", "75", "click", "1"]); // Terminal
    wait_for("the terminal's exec", Duration::from_secs(10), || {
        !processes_mentioning(&format!("{} exec -it", daemon.socket.display())).is_empty()
    });
    // The terminal has the keyboard once open.
    let typed = |line: &str| {
        xdotool(&display, &["type", "--delay", "15", line]);
        xdotool(&display, &["key", "Return"]);
    };
    assert!(red_pixels(&display) < 50);
    typed("printf '\\033[41m%s\\033[0m\\n' 'ON RED ON RED ON RED'; sleep 100");
    wait_for("red cells drawn", Duration::from_secs(10), || {
        red_pixels(&display) > 1000
    });
    xdotool(&display, &["key", "ctrl+c"]);
    typed("echo code=$? > /code; busybox stty size > /size");
    wait_for("the shell's answer", Duration::from_secs(10), || {
        shown("/code") == "code=130\n"
    });
    let columns = |size: String| -> u32 {
        size.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("stty size: {size:?}"))
    };
    let wide = columns(shown("/size"));
    xdotool(&display, &["windowsize", &window, "900", "700"]);
    std::thread::sleep(Duration::from_millis(500));
    typed("busybox stty size > /size");
    wait_for("a narrower terminal", Duration::from_secs(10), || {
        let narrow = columns(shown("/size"));
        narrow < wide && narrow > 20
    });

    typed("exit");
    wait_for("the terminal to close", Duration::from_secs(10), || {
        processes_mentioning(&format!("{} exec -it", daemon.socket.display())).is_empty()
    });
    ctl(&["rm", "-f", "shelly"]);
}
