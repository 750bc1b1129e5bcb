//! Admission by SO_PEERCRED: a peer that is not allowed gets one refusal frame that says why,
//! while the daemon goes on serving allowed clients at the same time.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_e2e::{Daemon, binary, open_tempdir, text};

const NOBODY: u32 = 65534;

/// berthctl copied where user nobody can execute it (the build tree may be private).
fn berthctl_for_nobody(dir: &Path) -> PathBuf {
    let copy = dir.join("berthctl");
    std::fs::copy(binary("berthctl"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// These tests act as another user, which only root can do; elsewhere they say so and pass.
fn need_root() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        eprintln!("skipped: acting as uid 65534 needs root");
    }
    root
}

/// Fork, drop to uid/gid 65534, and run `berthctl host` against the daemon.
fn as_nobody(berthctl: &Path, socket: &Path) -> Output {
    let mut tries = 0;
    loop {
        let run = Command::new(berthctl)
            .arg("--socket")
            .arg(socket)
            .arg("host")
            .uid(NOBODY)
            .gid(NOBODY)
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .output();
        match run {
            // The copy was just written, and a test on another thread may have forked while
            // its descriptor was open: until that child execs, the file is "busy".
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_mode_refuses_outsiders_and_keeps_serving_members() {
    if !need_root() {
        return;
    }
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &["--group", "berth-test-no-such-group"]);
    let berthctl = berthctl_for_nobody(dir.path());

    // An allowed client connects first and stays connected throughout.
    let (client, _events) = daemon.client().await;
    client.host().await.unwrap();

    let refused = as_nobody(&berthctl, &daemon.socket);
    let (_, stderr) = text(&refused);
    assert_eq!(
        refused.status.code(),
        Some(3),
        "unreachable exit code; stderr: {stderr}"
    );
    assert!(stderr.contains("refused the connection"), "{stderr}");
    assert!(
        stderr.contains("uid 65534") && stderr.contains("may not use this berthd"),
        "{stderr}"
    );
    assert!(
        stderr.contains("berth-test-no-such-group"),
        "names the group: {stderr}"
    );

    // The allowed client is unaffected, and so is a new one.
    client.host().await.unwrap();
    let (late, _) = daemon.client().await;
    late.vm_list().await.unwrap();
    assert!(
        daemon.log().contains("refused uid 65534"),
        "{}",
        daemon.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_mode_admits_members_of_its_group() {
    if !need_root() {
        return;
    }
    let dir = open_tempdir();
    // Debian's `nogroup` is gid 65534, nobody's own group: nobody is a member.
    let daemon = Daemon::start(dir.path(), &["--group", "nogroup"]);
    let admitted = as_nobody(&berthctl_for_nobody(dir.path()), &daemon.socket);
    let (stdout, stderr) = text(&admitted);
    assert!(
        admitted.status.success(),
        "member of the group refused: {stderr}"
    );
    assert!(stdout.contains("CPUs (N)"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_mode_admits_only_its_own_uid() {
    if !need_root() {
        return;
    }
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &["--user"]);
    let refused = as_nobody(&berthctl_for_nobody(dir.path()), &daemon.socket);
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("private daemon of uid"), "{stderr}");
    let (client, _) = daemon.client().await;
    assert_eq!(client.mode(), berth_api::host::DaemonMode::User);
}
