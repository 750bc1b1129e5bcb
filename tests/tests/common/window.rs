//! The Berth window in the Xvfb tests: started as the user its daemon runs as, found once it
//! has drawn, its title and child windows read back.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_e2e::{Daemon, binary};

use super::xvfb::{Killed, wait_for, xdotool};

pub fn start_window(display: &str, daemon: &Daemon) -> Killed {
    start_window_with(display, daemon, &[])
}

pub fn start_window_with(display: &str, daemon: &Daemon, env: &[(&str, &str)]) -> Killed {
    start_window_with_args(display, daemon, env, &[])
}

pub fn start_window_with_args(
    display: &str,
    daemon: &Daemon,
    env: &[(&str, &str)],
    args: &[&str],
) -> Killed {
    // The window runs as the user its daemon runs as (a desk user's window and berthd --user).
    let mut command = match &daemon.user {
        Some(user) => user.command(binary("berth")),
        None => Command::new(binary("berth")),
    };
    Killed(
        command
            .args(args)
            .env("DISPLAY", display)
            .env("BERTH_SOCKET", &daemon.socket)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits for Berth's window on `display` to be mapped and drawn; its X11 id.
pub fn berth_window(display: &str) -> String {
    let mut window = String::new();
    wait_for("the window", Duration::from_secs(180), || {
        window = xdotool(display, &["search", "--name", "^Berth$"])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        !window.is_empty()
    });
    // Its first frames.
    std::thread::sleep(Duration::from_secs(2));
    window
}

/// The child windows of X11 window `id` as `xwininfo` lists them ("WxH+X+Y" each).
pub fn child_windows(display: &str, id: &str) -> Vec<String> {
    let out = Command::new("xwininfo")
        .args(["-display", display, "-children", "-id", id])
        .output()
        .expect("xwininfo (x11-utils)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("0x"))
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.contains('x') && w.contains('+'))
        })
        .map(str::to_owned)
        .collect()
}

/// A daemon of the desk user's own (`berthd --user`), when the machine has that user (the
/// window then runs as that user too); else root's.
pub fn desk_daemon(dir: &Path) -> Daemon {
    match berth_e2e::user::TestUser::desk() {
        Some(user) => Daemon::start_as(&user, dir, &[]),
        None => Daemon::start(dir, &[]),
    }
}

/// The window's title, as the desktop shows it (`_NET_WM_NAME`).
pub fn window_title(display: &str, window: &str) -> String {
    let out = Command::new("xprop")
        .args(["-display", display, "-id", window, "_NET_WM_NAME"])
        .output()
        .expect("xprop (x11-utils)");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split_once(" = ")
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .unwrap_or(line)
}
