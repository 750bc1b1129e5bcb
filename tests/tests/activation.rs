//! Socket activation, as the packaged units start berthd (`berthd.socket`, and the user unit
//! the window connects to): a launcher listens, berthd is started by the first client and
//! serves the socket it is handed, and the socket outlives the daemon. The launcher here is
//! `systemd-socket-activate` (systemd's own tool, the same protocol as `systemd`'s sockets).

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::user::TestUser;
use berth_e2e::{binary, on_path, open_tempdir, text};

const LAUNCHER: &str = "systemd-socket-activate";

/// The launcher listening on `socket` (and on `more` sockets), set to start berthd with `args`,
/// as `user` when given; its stderr (and berthd's) goes to `log`.
fn launch(user: Option<&TestUser>, sockets: &[&Path], args: &[&str], log: &Path) -> Option<Child> {
    if !on_path(LAUNCHER) {
        eprintln!("skipped: no {LAUNCHER} (package systemd)");
        return None;
    }
    let mut command = match user {
        Some(user) => user.command(LAUNCHER),
        None => Command::new(LAUNCHER),
    };
    for socket in sockets {
        command.arg("--listen").arg(socket);
    }
    let child = command
        .arg(binary("berthd"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sockets.iter().all(|s| s.exists()) {
        assert!(Instant::now() < deadline, "{LAUNCHER} did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child)
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait().unwrap()
}

#[test]
fn a_desk_users_berthd_starts_on_its_first_client_and_serves_the_handed_socket() {
    let Some(user) = TestUser::desk() else { return };
    let dir = open_tempdir();
    let home = dir.path().join(user.name);
    std::fs::create_dir_all(&home).unwrap();
    user.own(&home);
    let (socket, state, log) = (
        home.join("berthd.sock"),
        home.join("state"),
        dir.path().join("launcher.log"),
    );
    let Some(mut launcher) = launch(
        Some(&user),
        &[&socket],
        &["--user", "--state-dir", state.to_str().unwrap()],
        &log,
    ) else {
        return;
    };
    // Nothing has connected: the socket listens, and no berthd has run yet.
    assert!(!state.exists(), "berthd ran before any client came");

    let out = user
        .command(binary("berthctl"))
        .arg("--socket")
        .arg(&socket)
        .args(["--json", "host"])
        .output()
        .unwrap();
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon_log());
    let host: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(host["mode"], "user", "{host}");
    assert_eq!(host["state_dir"], state.to_str().unwrap(), "{host}");
    assert!(
        daemon_log().contains(&format!("listening on {}", socket.display())),
        "{}",
        daemon_log()
    );

    // Stopped, berthd leaves the socket to its launcher (systemd keeps listening on it).
    let status = terminate(&mut launcher);
    assert!(
        status.success(),
        "berthd ended with {status}: {}",
        daemon_log()
    );
    assert!(socket.exists(), "berthd removed its launcher's socket");
}

#[test]
fn the_system_daemon_serves_a_handed_socket_and_admits_as_before() {
    if !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let dir = open_tempdir();
    let (socket, state, log) = (
        dir.path().join("berthd.sock"),
        dir.path().join("state"),
        dir.path().join("launcher.log"),
    );
    let Some(mut launcher) = launch(
        None,
        &[&socket],
        &["--state-dir", state.to_str().unwrap()],
        &log,
    ) else {
        return;
    };
    let out = berth_e2e::berthctl(&socket, &["--json", "host"]);
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon_log());
    let host: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(host["mode"], "system", "{host}");

    // Admission is still by the peer's credentials: a user outside the group is told why.
    if let Some(plain) = TestUser::plain() {
        let out = plain
            .command(binary("berthctl"))
            .arg("--socket")
            .arg(&socket)
            .arg("host")
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert!(!out.status.success());
        assert!(stderr.contains("berth"), "{stderr}");
    }
    assert!(terminate(&mut launcher).success(), "{}", daemon_log());
}

#[test]
fn berthd_handed_two_sockets_says_it_takes_one() {
    let dir = open_tempdir();
    let (first, second, log) = (
        dir.path().join("a.sock"),
        dir.path().join("b.sock"),
        dir.path().join("launcher.log"),
    );
    let state = dir.path().join("state");
    let Some(mut launcher) = launch(
        None,
        &[&first, &second],
        &["--user", "--state-dir", state.to_str().unwrap()],
        &log,
    ) else {
        return;
    };
    // The first client starts berthd, which refuses the pair and ends.
    let _ = std::os::unix::net::UnixStream::connect(&first);
    let status = launcher.wait().unwrap();
    let why = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{why}");
    assert!(
        why.contains("LISTEN_FDS=\"2\": berthd takes exactly one socket"),
        "{why}"
    );
    assert!(!state.exists(), "berthd went on with the wrong sockets");
}
