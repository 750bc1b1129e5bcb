//! Containers through berthd and berthctl, as a user runs them: Debian's static busybox
//! imported as an image, then run, ps, logs, stop, start, rm, stats, and a daemon restart.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, open_tempdir, text};
use nix::sys::signal::Signal;

/// Import a busybox root filesystem as image `busybox`; None (with a note) when this machine
/// cannot run containers.
fn busybox_image(daemon: &Daemon, dir: &Path) -> Option<()> {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let tarball = berth_e2e::busybox_tarball(dir, None)?;
    let out = daemon.berthctl(&["import", tarball.to_str().unwrap(), "busybox"]);
    assert!(out.status.success(), "{}", text(&out).1);
    Some(())
}

fn ps(daemon: &Daemon) -> serde_json::Value {
    let out = daemon.berthctl(&["--json", "ps", "-a"]);
    assert!(out.status.success(), "{}", text(&out).1);
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
}

#[test]
fn run_in_the_foreground_prints_output_and_passes_the_exit_code() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let Some(()) = busybox_image(&daemon, dir.path()) else {
        return;
    };

    let out = daemon.berthctl(&[
        "run",
        "--name",
        "hello",
        "busybox",
        "sh",
        "-c",
        "echo hello from $(hostname); echo pid $$",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("hello from "), "{stdout}");
    assert_eq!(lines[1], "pid 1");

    let out = daemon.berthctl(&["run", "busybox", "sh", "-c", "echo failing >&2; exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(
        text(&out).0,
        "failing\n",
        "stderr of the container goes to its log"
    );

    let out = daemon.berthctl(berth_e2e::OVER_MEMORY_LIMIT);
    assert_eq!(out.status.code(), Some(137));
    assert!(text(&out).1.contains("out of memory"), "{}", text(&out).1);
    let list = ps(&daemon);
    let hog = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["command"][0] == "dd")
        .unwrap();
    assert_eq!(hog["state"]["stopped"]["oom_killed"], true, "{hog}");

    // A command that does not exist: a clear error, and no container is left behind.
    let before = ps(&daemon).as_array().unwrap().len();
    let out = daemon.berthctl(&["run", "busybox", "no-such-command"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("cannot start `no-such-command`"),
        "{}",
        text(&out).1
    );
    assert_eq!(ps(&daemon).as_array().unwrap().len(), before);

    // `-i` without `-t`: our stdin through a pipe, to its end (`printf … | docker run -i`).
    let out = daemon.berthctl_with(
        &[
            "run",
            "-i",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "while read line; do echo \"got $line\"; done",
        ],
        &[],
        b"hello\nfrom a pipe\n",
    );
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(text(&out).0, "got hello\ngot from a pipe\n");
    let out = daemon.berthctl_with(
        &[
            "run",
            "-i",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "read line; exit ${#line}",
        ],
        &[],
        b"four",
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out).1);
    // `-d` with `-i`: berthd keeps its stdin; `attach` feeds it ours and follows its output.
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "-i",
        "--name",
        "fed",
        "busybox",
        "sh",
        "-c",
        "read line; echo fed $line",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = daemon.berthctl_with(&["attach", "fed"], &[], b"by root\n");
    assert_eq!(text(&out), ("fed by root\n".into(), String::new()));

    berth_e2e::container_output_is_byte_exact(&daemon);
}

#[test]
fn detached_containers_follow_stop_start_and_remove() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let Some(()) = busybox_image(&daemon, dir.path()) else {
        return;
    };

    let script = "echo started; trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done";
    let out = daemon.berthctl(&[
        "run", "-d", "--name", "svc", "--cpus", "0.5", "busybox", "sh", "-c", script,
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let id = stdout.trim().to_owned();
    assert_eq!(id.len(), 12, "{stdout}");

    let (table, _) = text(&daemon.berthctl(&["ps"]));
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.starts_with(&id) && row.contains("svc") && row.contains("running"),
        "{table}"
    );
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    assert!(
        row.contains(&format!("{:.0}%", 50.0 / cores)),
        "U_ct = n'/n: {table}"
    );

    let (stats, _) = text(&daemon.berthctl(&["stats", "svc"]));
    assert!(stats.lines().nth(1).unwrap().starts_with("svc"), "{stats}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while !text(&daemon.berthctl(&["logs", "svc"]))
        .0
        .contains("started")
    {
        assert!(Instant::now() < deadline, "no output");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The trap answers SIGTERM: a graceful stop, exit code 0.
    let out = daemon.berthctl(&["stop", "svc"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let (logs, _) = text(&daemon.berthctl(&["logs", "svc"]));
    assert_eq!(logs, "started\ngot TERM\n");
    let (table, _) = text(&daemon.berthctl(&["ps", "-a"]));
    assert!(table.contains("exited (0)"), "{table}");
    let cgroups_gone = ["/sys/fs/cgroup/pids/berth", "/sys/fs/cgroup/berth"]
        .iter()
        .all(|p| !Path::new(p).join(&id).exists());
    assert!(cgroups_gone);

    // Start again on the same writable layer; a stop that is ignored ends in SIGKILL.
    assert!(daemon.berthctl(&["start", "svc"]).status.success());
    let out = daemon.berthctl(&[
        "run", "-d", "--name", "stubborn", "busybox", "sleep", "1000",
    ]);
    assert!(out.status.success());
    let started = Instant::now();
    assert!(
        daemon
            .berthctl(&["stop", "-t", "1", "stubborn"])
            .status
            .success()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let (table, _) = text(&daemon.berthctl(&["ps", "-a"]));
    assert!(
        table
            .lines()
            .any(|l| l.contains("stubborn") && l.contains("exited (137)")),
        "{table}"
    );

    // Images in use cannot be removed; running containers need --force.
    let out = daemon.berthctl(&["rmi", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("is used by container"),
        "{}",
        text(&out).1
    );
    let out = daemon.berthctl(&["rm", "svc"]);
    assert!(text(&out).1.contains("--force"), "{}", text(&out).1);
    assert!(daemon.berthctl(&["rm", "-f", "svc"]).status.success());
    assert!(daemon.berthctl(&["rm", "stubborn"]).status.success());
    assert!(
        !daemon.state_dir.join("containers").join(&id).exists(),
        "the container's files are gone"
    );
    for pid in std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        assert!(
            !cgroup.contains(&id),
            "process {pid} of the removed container is still alive"
        );
    }
    let (table, _) = text(&daemon.berthctl(&["ps", "-a"]));
    assert_eq!(table.lines().count(), 1, "{table}");
    assert!(daemon.berthctl(&["rmi", "busybox"]).status.success());
    let rootfs_left = std::fs::read_dir(daemon.state_dir.join("rootfs"))
        .unwrap()
        .count();
    assert_eq!(
        rootfs_left, 0,
        "the image's unpacked root filesystem went with it"
    );
}

#[test]
fn a_restarted_daemon_finds_its_containers() {
    let dir = open_tempdir();
    let mut daemon = Daemon::start(dir.path(), &[]);
    let Some(()) = busybox_image(&daemon, dir.path()) else {
        return;
    };
    assert!(
        daemon
            .berthctl(&["run", "-d", "--name", "long", "busybox", "sleep", "1000"])
            .status
            .success()
    );
    assert!(
        daemon
            .berthctl(&["run", "--name", "done", "busybox", "true"])
            .status
            .success()
    );
    daemon.signal_and_wait(Signal::SIGKILL);

    let daemon = Daemon::start(dir.path(), &[]);
    let (table, _) = text(&daemon.berthctl(&["ps", "-a"]));
    assert!(
        table
            .lines()
            .any(|l| l.contains("long") && l.contains("running")),
        "re-adopted: {table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("done") && l.contains("exited (0)")),
        "{table}"
    );
    let out = daemon.berthctl(&["stop", "-t", "1", "long"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let (table, _) = text(&daemon.berthctl(&["ps", "-a"]));
    assert!(
        table
            .lines()
            .any(|l| l.contains("long") && l.contains("exited (code unknown)")),
        "{table}"
    );
    assert!(daemon.berthctl(&["rm", "long"]).status.success());
}

#[test]
fn build_a_dockerfile_and_run_it() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let Some(()) = busybox_image(&daemon, dir.path()) else {
        return;
    };
    let ctx = dir.path().join("app");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("greeting.txt"), "hello from a Dockerfile\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY greeting.txt /greeting.txt\nRUN echo built >> /greeting.txt\nCMD [\"cat\", \"/greeting.txt\"]\n",
    )
    .unwrap();
    let out = daemon.berthctl(&["build", "-t", "greeter", ctx.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("[1/4] FROM busybox") && stderr.contains("[4/4] CMD"),
        "progress per step: {stderr}"
    );
    assert!(
        stdout.starts_with("built greeter:latest sha256:"),
        "{stdout}"
    );
    let out = daemon.berthctl(&["build", "-t", "greeter", ctx.to_str().unwrap()]);
    assert!(
        text(&out)
            .1
            .contains("[3/4] RUN echo built >> /greeting.txt (cached)"),
        "{}",
        text(&out).1
    );

    let out = daemon.berthctl(&["run", "greeter"]);
    assert_eq!(
        text(&out).0,
        "hello from a Dockerfile\nbuilt\n",
        "{}",
        text(&out).1
    );

    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN exit 4\n").unwrap();
    let out = daemon.berthctl(&["build", "-t", "broken", ctx.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("Dockerfile line 2: RUN exited with code 4"),
        "{}",
        text(&out).1
    );
}

#[test]
fn root_in_a_container_holds_docker_s_capabilities_and_no_more() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let Some(()) = busybox_image(&daemon, dir.path()) else {
        return;
    };
    // Docker's bounding set (00000000a80425fb) without MKNOD: no mounting, no device nodes.
    let script = "grep -E 'Cap(Eff|Bnd)' /proc/self/status; mkdir /m; \
                  mount -t tmpfs x /m 2>/dev/null && echo mounted; \
                  mknod /disk b 8 0 2>/dev/null && echo made";
    let out = daemon.berthctl(&["run", "--network", "none", "busybox", "sh", "-c", script]);
    assert_eq!(
        text(&out).0,
        "CapEff:\t00000000a00425fb\nCapBnd:\t00000000a00425fb\n",
        "{}",
        text(&out).1
    );
    // The same for a process exec'd into it, and none for another user.
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "held",
        "busybox",
        "sleep",
        "100",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let caps = |user: &str| {
        let out = daemon.berthctl(&[
            "exec",
            "-u",
            user,
            "held",
            "sh",
            "-c",
            "grep CapEff /proc/self/status",
        ]);
        text(&out).0
    };
    assert_eq!(caps("0"), "CapEff:\t00000000a00425fb\n");
    assert_eq!(caps("dev"), "CapEff:\t0000000000000000\n");
}
