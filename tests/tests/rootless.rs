//! Berth as a developer at the desk runs it: `berthd --user` started by a normal user, no root
//! anywhere. Containers run rootless (the daemon in a user namespace of its own, over the
//! user's subordinate ids), images keep their files' owners, builds RUN and `COPY --chown`, and
//! VMs start for a user in the kvm group; a user without those is told what to do.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::user::{DESK_SUBORDINATE, TestUser};
use berth_e2e::{Daemon, busybox_tarball, open_tempdir, text};
use common::probe::ProbeFinish;

fn host(daemon: &Daemon) -> serde_json::Value {
    let out = daemon.berthctl(&["--json", "host"]);
    assert!(out.status.success(), "{}", text(&out).1);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The output of a foreground `run`, which must succeed.
fn run(daemon: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let out = daemon.berthctl(&all);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "run {args:?}: {stderr}\n{}",
        daemon.log()
    );
    stdout
}

#[test]
fn a_desk_user_imports_builds_and_runs_containers_rootless_with_their_owners() {
    let Some(user) = TestUser::desk() else { return };
    let dir = open_tempdir();
    let Some(tarball) = busybox_tarball(dir.path(), Some(&user)) else {
        return;
    };
    let daemon = Daemon::start_as(&user, dir.path(), &[]);

    // The daemon says how it runs containers: rootless over the user's subordinate ids; this
    // machine's cgroups are v1, so no limits (and it says why).
    let info = host(&daemon);
    let ids = &info["containers"]["ids"];
    assert_eq!(ids["kind"], "subordinate", "{info}");
    assert_eq!(ids["uids"][0], DESK_SUBORDINATE.0, "{info}");
    let table = text(&daemon.berthctl(&["host"])).0;
    assert!(
        table.contains("Containers  rootless (subordinate ids 200000-265535)"),
        "{table}"
    );

    let out = daemon.berthctl(&["import", tarball.to_str().unwrap(), "busybox"]);
    assert!(out.status.success(), "{}", text(&out).1);

    // Inside, ids are the image's: root is 0 and the notes are dev's.
    assert_eq!(run(&daemon, &["busybox", "id", "-u"]), "0\n");
    assert_eq!(
        run(
            &daemon,
            &[
                "busybox",
                "stat",
                "-c",
                "%u:%g %n",
                "/home/dev/notes",
                "/bin/busybox"
            ]
        ),
        "1000:1000 /home/dev/notes\n0:0 /bin/busybox\n"
    );
    // Outside, they are the user's: 0 is the user, 1000 the 1000th of its subordinate ids.
    let unpacked = std::fs::read_dir(daemon.state_dir.join("rootfs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let notes = std::fs::metadata(unpacked.join("home/dev/notes")).unwrap();
    assert_eq!(
        (notes.uid(), notes.gid()),
        (DESK_SUBORDINATE.0 + 999, DESK_SUBORDINATE.0 + 999),
        "the image's 1000 is the user's subordinate id 200999"
    );
    let busybox = std::fs::metadata(unpacked.join("bin/busybox")).unwrap();
    assert_eq!(busybox.uid(), user.uid, "the image's root is the user");

    // A build with RUN and COPY --chown, run as its USER.
    let ctx = dir.path().join("app");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("config.txt"), "for dev\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN touch /made-by-run\n\
         COPY --chown=1000:1000 config.txt /home/dev/config.txt\n\
         USER dev\n\
         CMD [\"sh\", \"-c\", \"id -u; stat -c '%u:%g %n' /made-by-run /home/dev/config.txt; cat /home/dev/config.txt\"]\n",
    )
    .unwrap();
    user.own(&ctx);
    let out = daemon.berthctl(&["build", "-t", "app", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    assert_eq!(
        run(&daemon, &["app"]),
        "1000\n0:0 /made-by-run\n1000:1000 /home/dev/config.txt\nfor dev\n"
    );

    // Detached: logs, stop, rm.
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "--name",
        "svc",
        "busybox",
        "sh",
        "-c",
        "echo up; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text(&daemon.berthctl(&["logs", "svc"])).0.contains("up") {
        assert!(Instant::now() < deadline, "no output:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon.berthctl(&["stop", "svc"]).status.success());
    assert_eq!(text(&daemon.berthctl(&["logs", "svc"])).0, "up\nbye\n");
    assert!(daemon.berthctl(&["rm", "svc"]).status.success());

    // A limit is refused where none can be set, saying why, rather than silently dropped.
    if info["containers"]["limits"]["available"] == "no" {
        let out = daemon.berthctl(&["run", "--memory", "32M", "busybox", "true"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out).1.contains("memory limits cannot be set here"),
            "{}",
            text(&out).1
        );
    }
}

#[test]
fn a_user_without_subordinate_ids_runs_containers_as_root_only_and_is_told_why() {
    let Some(user) = TestUser::plain() else {
        return;
    };
    let dir = open_tempdir();
    let Some(tarball) = busybox_tarball(dir.path(), Some(&user)) else {
        return;
    };
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    let info = host(&daemon);
    let ids = &info["containers"]["ids"];
    assert_eq!(ids["kind"], "single", "{info}");
    assert!(
        ids["why"].as_str().unwrap().contains("/etc/subuid"),
        "{info}"
    );

    let out = daemon.berthctl(&["import", tarball.to_str().unwrap(), "busybox"]);
    assert!(out.status.success(), "{}", text(&out).1);
    // Every file is the user's, root's inside; root can run.
    assert_eq!(
        run(
            &daemon,
            &["busybox", "stat", "-c", "%u %n", "/home/dev/notes"]
        ),
        "0 /home/dev/notes\n"
    );
    let ctx = dir.path().join("app");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nUSER dev\nCMD [\"id\"]\n",
    )
    .unwrap();
    user.own(&ctx);
    assert!(
        daemon
            .berthctl(&["build", "-t", "as-dev", ctx.to_str().unwrap()])
            .status
            .success()
    );
    let out = daemon.berthctl(&["run", "as-dev"]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out).1;
    assert!(
        said.contains("has no id here") && said.contains("/etc/subuid"),
        "{said}"
    );
}

#[test]
fn a_desk_user_in_the_kvm_group_runs_a_vm() {
    if !common::kvm_available("a_desk_user_in_the_kvm_group_runs_a_vm") {
        return;
    }
    let Some(user) = TestUser::desk() else { return };
    let dir = open_tempdir();
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    assert_eq!(host(&daemon)["vms"]["available"], "yes");
    common::create_probe_vm(
        &daemon,
        dir.path(),
        "desk",
        ProbeFinish::Interactive,
        Some(&user),
    );
    let start = daemon.berthctl(&["vm", "start", "desk"]);
    assert!(
        start.status.success(),
        "{}\n{}",
        text(&start).1,
        daemon.log()
    );
    common::serial_log_shows(&daemon, "desk", "BERTH-PROBE: ready for input");
    let stop = daemon.berthctl(&["vm", "stop", "--force", "desk"]);
    assert!(stop.status.success(), "{}", text(&stop).1);
    assert!(text(&stop).0.contains("stopped"), "{}", text(&stop).0);
}

#[test]
fn vm_start_without_kvm_access_names_the_group_and_the_command() {
    if !Path::new("/dev/kvm").exists() {
        return;
    }
    // The desk user's setup gives /dev/kvm to the kvm group, which this user is not in.
    let (Some(_), Some(user)) = (TestUser::desk(), TestUser::plain()) else {
        return;
    };
    let dir = open_tempdir();
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    let info = host(&daemon);
    let why = info["vms"]["why"].as_str().unwrap_or_default().to_owned();
    assert!(
        why.contains("kvm group") && why.contains("usermod -aG kvm"),
        "{info}"
    );
    assert!(
        text(&daemon.berthctl(&["host"]))
            .0
            .contains("VM support  no: cannot open /dev/kvm"),
        "berthctl host says it"
    );

    common::create_probe_vm(
        &daemon,
        dir.path(),
        "nokvm",
        ProbeFinish::Interactive,
        Some(&user),
    );
    let start = daemon.berthctl(&["vm", "start", "nokvm"]);
    assert_eq!(start.status.code(), Some(1));
    let said = text(&start).1;
    assert!(
        said.contains("cannot open /dev/kvm")
            && said.contains("kvm group")
            && said.contains("sudo usermod -aG kvm $USER"),
        "{said}"
    );
}

/// On cgroup v2 with a subtree delegated to the user (the lab; a systemd user service with
/// `Delegate=yes` on a workstation), a rootless daemon's containers get their limits.
#[test]
fn a_delegated_cgroup_limits_a_users_containers() {
    let Some(user) = TestUser::desk() else { return };
    let Some(cgroup) = user.delegated_cgroup() else {
        eprintln!("skipped: no cgroup v2 with cpu, memory and pids here (the lab has them)");
        return;
    };
    let dir = open_tempdir();
    let Some(tarball) = busybox_tarball(dir.path(), Some(&user)) else {
        return;
    };
    let daemon = Daemon::start_as_in(&user, dir.path(), &[], Some(&cgroup));
    let info = host(&daemon);
    assert_eq!(
        info["containers"]["limits"]["available"],
        "yes",
        "{info}\n{}",
        daemon.log()
    );
    assert!(
        std::fs::read_to_string(cgroup.join("berthd/cgroup.procs"))
            .unwrap()
            .contains(&daemon.child.id().to_string()),
        "the daemon moved into a leaf of its own"
    );
    let out = daemon.berthctl(&["import", tarball.to_str().unwrap(), "busybox"]);
    assert!(out.status.success(), "{}", text(&out).1);

    // Memory: a process over the limit is killed by the kernel, and the daemon says so.
    let out = daemon.berthctl(berth_e2e::OVER_MEMORY_LIMIT);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out).1);
    assert!(text(&out).1.contains("out of memory"), "{}", text(&out).1);
    // Processes: with four at most, the shell cannot fork a fifth.
    let out = daemon.berthctl(&[
        "run",
        "--pids",
        "4",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do sleep 2 & done; wait; echo done",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("can't fork"), "{stdout}{stderr}");
    // The limits sit in the user's subtree.
    let out = daemon.berthctl(&[
        "run", "-d", "--name", "capped", "--memory", "64M", "busybox", "sleep", "30",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let id = text(&out).0.trim().to_owned();
    let max = std::fs::read_to_string(cgroup.join("berth").join(&id).join("memory.max")).unwrap();
    assert_eq!(max.trim(), (64u64 << 20).to_string());
    assert!(daemon.berthctl(&["rm", "-f", "capped"]).status.success());
}

#[test]
fn a_desk_user_runs_with_the_flags_docker_users_type() {
    let Some((user, dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };

    // -e over the image's environment, --env-file's lines (comments, values verbatim), -w made
    // when missing, -u by name, --hostname.
    let env_file = dir.path().join(user.name).join("app.env");
    std::fs::write(&env_file, "# the app\nMODE=file\nQUOTED=\"as is\"\n\n").unwrap();
    user.own(&env_file);
    let script = "echo $GREETING $MODE $QUOTED; pwd; id -un; hostname; echo $HOSTNAME";
    assert_eq!(
        run(
            &daemon,
            &[
                "--network",
                "none",
                "--env-file",
                env_file.to_str().unwrap(),
                "-e",
                "GREETING=hi",
                "-e",
                "MODE=flag",
                "-w",
                "/srv/new",
                "-u",
                "dev",
                "--hostname",
                "web-1",
                "busybox",
                "sh",
                "-c",
                script,
            ]
        ),
        "hi flag \"as is\"\n/srv/new\ndev\nweb-1\nweb-1\n"
    );

    // Only its three streams reach the program (ls's own directory is the 3).
    assert_eq!(
        run(
            &daemon,
            &["--network", "none", "busybox", "ls", "/proc/self/fd"]
        ),
        "0\n1\n2\n3\n"
    );

    // --entrypoint replaces the program and drops the image's CMD; "" keeps the CMD.
    let ctx = dir.path().join(user.name).join("entry");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nENTRYPOINT [\"echo\", \"entry\"]\nCMD [\"echo\", \"cmd\"]\n",
    )
    .unwrap();
    user.own(&ctx);
    user.own(&ctx.join("Dockerfile"));
    let out = daemon.berthctl(&[
        "build",
        "--network",
        "none",
        "-t",
        "entry",
        ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        run(&daemon, &["--network", "none", "entry"]),
        "entry echo cmd\n"
    );
    assert_eq!(
        run(
            &daemon,
            &["--network", "none", "--entrypoint", "echo", "entry"]
        ),
        "\n"
    );
    assert_eq!(
        run(&daemon, &["--network", "none", "--entrypoint", "", "entry"]),
        "cmd\n"
    );

    // --rm: in the foreground, gone once its exit code is passed on; detached, once it ends.
    let before = text(&daemon.berthctl(&["ps", "-a", "--json"])).0;
    let out = daemon.berthctl(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        "once",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "--rm",
        "--network",
        "none",
        "--name",
        "bg",
        "busybox",
        "sleep",
        "0.2",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = text(&daemon.berthctl(&["ps", "-a"])).0;
        if !listed.contains("bg") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a --rm container stayed:\n{listed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(text(&daemon.berthctl(&["ps", "-a", "--json"])).0, before);
    let left: Vec<_> = std::fs::read_dir(daemon.state_dir.join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let listed = text(&daemon.berthctl(&["ps", "-a", "--json"])).0;
    for id in &left {
        assert!(
            listed.contains(id.to_str().unwrap()),
            "files of a removed container are left: {id:?}"
        );
    }

    // `inspect` finds images as well as containers.
    let image: serde_json::Value =
        serde_json::from_str(&text(&daemon.berthctl(&["inspect", "entry"])).0).unwrap();
    assert_eq!(image["config"]["config"]["Entrypoint"][1], "entry");
    assert!(
        image["manifest_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let out = daemon.berthctl(&["inspect", "nothing-of-that-name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("no container or image"),
        "{}",
        text(&out).1
    );

    // Bad values are refused before anything starts.
    for (flag, value, says) in [
        ("-w", "relative", "absolute path"),
        ("--hostname", "bad_name", "hostname"),
        ("-u", "nobody-here", "nobody-here"),
    ] {
        let out = daemon.berthctl(&["run", "--network", "none", flag, value, "busybox", "true"]);
        assert_eq!(out.status.code(), Some(1), "{flag} {value}");
        assert!(
            text(&out).1.contains(says),
            "{flag} {value}: {}",
            text(&out).1
        );
    }
}

/// Reads the terminal's master into `seen` until `wanted` shows or `within` passes.
fn read_until(master: &std::fs::File, seen: &mut Vec<u8>, wanted: &str, within: Duration) -> bool {
    use std::io::Read;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if String::from_utf8_lossy(seen).contains(wanted) {
            return true;
        }
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            match (&*master).read(&mut buf) {
                Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => return String::from_utf8_lossy(seen).contains(wanted),
            }
        }
    }
    String::from_utf8_lossy(seen).contains(wanted)
}

#[test]
fn a_desk_user_execs_into_a_running_container_with_pipes_and_a_terminal() {
    let Some((user, _dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "svc",
        "--hostname",
        "box",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);

    // Its own streams and exit code; the container's pid and uts namespaces.
    let out = daemon.berthctl(&[
        "exec",
        "svc",
        "sh",
        "-c",
        "echo out; echo err >&2; cat /proc/1/comm; hostname; echo $HOSTNAME; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
    assert_eq!(
        text(&out),
        ("out\nsleep\nbox\nbox\n".into(), "err\n".into())
    );
    // Only its three streams: nothing the daemon holds leaks in.
    assert_eq!(
        run_ok(&daemon, &["exec", "svc", "ls", "/proc/self/fd"]),
        "0\n1\n2\n3\n"
    );
    // -i passes stdin; -u, -w and -e as for run.
    let out = daemon.berthctl_with(&["exec", "-i", "svc", "cat"], &[], b"piped\n");
    assert_eq!(text(&out).0, "piped\n");
    assert_eq!(
        run_ok(
            &daemon,
            &[
                "exec",
                "-u",
                "dev",
                "-w",
                "/home/dev",
                "-e",
                "X=1",
                "svc",
                "sh",
                "-c",
                "id -un; pwd; echo $X"
            ]
        ),
        "dev\n/home/dev\n1\n"
    );
    // Clear errors: no such program, a container that is not running.
    let out = daemon.berthctl(&["exec", "svc", "no-such-program"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("run the command: No such file"),
        "{}",
        text(&out).1
    );

    // -it: a terminal of the container's own (/dev/pts/N inside), our size, keys as typed:
    // Ctrl+C interrupts the foreground program, not berthctl; the shell's exit code is ours.
    let status = shell_on_a_terminal(&daemon, &user, &["exec", "-it", "svc", "sh"], (33, 101), 5);
    assert_eq!(status.code(), Some(5));

    assert!(
        daemon
            .berthctl(&["stop", "-t", "0", "svc"])
            .status
            .success()
    );
    let out = daemon.berthctl(&["exec", "svc", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("is not running"), "{}", text(&out).1);
}

/// Runs `berthctl ARGS` (a shell in a container) on a terminal of `rows`x`cols` as a person
/// would: waits for the prompt, has the shell print `$((6*7))`, the terminal's size and name
/// (one of the container's own devpts), interrupts a `sleep` with Ctrl+C and gets the prompt
/// back, then `exit CODE`; returns berthctl's exit status.
fn shell_on_a_terminal(
    daemon: &Daemon,
    user: &TestUser,
    args: &[&str],
    (rows, cols): (u16, u16),
    code: i32,
) -> std::process::ExitStatus {
    use std::io::Write;
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = user
        .command(berth_e2e::binary("berthctl"))
        .arg("--socket")
        .arg(&daemon.socket)
        .args(args)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    let wait = Duration::from_secs(10);
    assert!(
        read_until(&master, &mut seen, "# ", wait),
        "no prompt: {}",
        String::from_utf8_lossy(&seen)
    );
    master
        .write_all(b"echo $((6*7)); busybox stty size; busybox tty\r")
        .unwrap();
    assert!(
        read_until(&master, &mut seen, "/dev/pts/", wait),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let shown = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        shown.contains("42\r\n") && shown.contains(&format!("{rows} {cols}\r\n")),
        "{shown}"
    );
    master.write_all(b"sleep 100; echo after\r").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    seen.clear();
    master.write_all(b"\x03").unwrap();
    assert!(
        read_until(&master, &mut seen, "# ", Duration::from_secs(5)),
        "Ctrl+C did not interrupt sleep: {}",
        String::from_utf8_lossy(&seen)
    );
    master
        .write_all(format!("exit {code}\r").as_bytes())
        .unwrap();
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "berthctl {args:?} did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The desk user's own berthd in a directory of its own, with busybox imported; None (with a
/// note) where this machine cannot run containers as that user.
fn desk_daemon_with_busybox() -> Option<(TestUser, tempfile::TempDir, Daemon)> {
    let user = TestUser::desk()?;
    let dir = open_tempdir();
    let tarball = busybox_tarball(dir.path(), Some(&user))?;
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    let out = daemon.berthctl(&["import", tarball.to_str().unwrap(), "busybox"]);
    assert!(out.status.success(), "{}", text(&out).1);
    Some((user, dir, daemon))
}

/// A desk user's containers' output reaches berthctl byte for byte, as root's does.
#[test]
fn a_desk_users_container_output_arrives_byte_for_byte() {
    let Some((_user, _dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    berth_e2e::container_output_is_byte_exact(&daemon);
}

/// stdout of a berthctl command that must succeed.
fn run_ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.berthctl(args);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        text(&out).1,
        daemon.log()
    );
    text(&out).0
}

#[test]
fn a_desk_user_mounts_host_paths_and_named_volumes() {
    let Some((user, dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    let src = dir.path().join(user.name).join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("main.c"), "int main;\n").unwrap();
    user.own(&src);
    user.own(&src.join("main.c"));
    let bind = format!("{}:/work", src.display());

    // A host directory, read and written; what root in the container writes is the user's.
    assert_eq!(
        run(
            &daemon,
            &[
                "--rm",
                "--network",
                "none",
                "-v",
                &bind,
                "-w",
                "/work",
                "busybox",
                "sh",
                "-c",
                "cat main.c; echo built > out.txt"
            ]
        ),
        "int main;\n"
    );
    let out = src.join("out.txt");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "built\n");
    assert_eq!(std::fs::metadata(&out).unwrap().uid(), user.uid);
    // Read-only, and a single file at a path the image lacks.
    let ro = format!("{bind}:ro");
    assert_eq!(
        run(
            &daemon,
            &[
                "--rm",
                "--network",
                "none",
                "-v",
                &ro,
                "busybox",
                "sh",
                "-c",
                "touch /work/new 2>/dev/null || echo refused"
            ]
        ),
        "refused\n"
    );
    let file = format!("{}:/opt/conf/main.c:ro", src.join("main.c").display());
    assert_eq!(
        run(
            &daemon,
            &[
                "--rm",
                "--network",
                "none",
                "-v",
                &file,
                "busybox",
                "cat",
                "/opt/conf/main.c"
            ]
        ),
        "int main;\n"
    );

    // A named volume outlives its container and is seen by the next; `volume rm` waits until
    // no container mounts it.
    run(
        &daemon,
        &[
            "--network",
            "none",
            "--name",
            "writer",
            "-v",
            "data:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/k",
        ],
    );
    let listed = text(&daemon.berthctl(&["volume", "ls"])).0;
    assert!(
        listed.contains("data") && listed.contains("writer"),
        "{listed}"
    );
    let refused = daemon.berthctl(&["volume", "rm", "data"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).1.contains("mounted by container writer"),
        "{}",
        text(&refused).1
    );
    assert!(daemon.berthctl(&["rm", "writer"]).status.success());
    assert_eq!(
        run(
            &daemon,
            &[
                "--rm",
                "--network",
                "none",
                "-v",
                "data:/again:ro",
                "busybox",
                "cat",
                "/again/k"
            ]
        ),
        "kept\n"
    );
    assert!(daemon.berthctl(&["volume", "rm", "data"]).status.success());
    assert_eq!(
        text(&daemon.berthctl(&["volume", "ls"])).0.lines().count(),
        1
    );

    // An image whose directory is a symlink out of it: the mount cannot follow it out.
    let escaped = dir.path().join(user.name).join("escaped");
    let ctx = dir.path().join(user.name).join("evil");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nRUN ln -s {} /data\n", escaped.display()),
    )
    .unwrap();
    user.own(&ctx);
    user.own(&ctx.join("Dockerfile"));
    let built = daemon.berthctl(&[
        "build",
        "--network",
        "none",
        "-t",
        "evil",
        ctx.to_str().unwrap(),
    ]);
    assert!(built.status.success(), "{}", text(&built).1);
    let out = daemon.berthctl(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{}:/data/inner", src.display()),
        "evil",
        "true",
    ]);
    assert!(
        !escaped.exists(),
        "a mount point was made outside the container"
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
}

#[test]
fn a_desk_user_builds_with_a_secret_a_cache_bind_and_tmpfs_mounts_and_a_target() {
    let Some((user, dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    let home = dir.path().join(user.name);
    let ctx = home.join("app");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS build\n\
         RUN --mount=type=cache,target=/cache --mount=type=secret,id=token,required=true \
         sh -c 'cat /run/secrets/token > /cache/copy; wc -c < /run/secrets/token > /size'\n\
         RUN --mount=type=bind,source=req.txt,target=/req --mount=type=bind,target=/ctx,rw \
         --mount=type=tmpfs,target=/scratch,size=1m \
         sh -c 'cp /req /got-req; echo scribble > /ctx/req.txt; grep \" /scratch \" /proc/mounts | cut -d\" \" -f3 > /got-tmpfs'\n\
         FROM build AS test\n\
         RUN false\n",
    )
    .unwrap();
    std::fs::write(ctx.join("req.txt"), "requests==2\n").unwrap();
    let secret = home.join("token");
    std::fs::write(&secret, "abc\n").unwrap();
    for path in [&ctx, &ctx.join("Dockerfile"), &ctx.join("req.txt"), &secret] {
        user.own(path);
    }
    let secret_arg = format!("id=token,src={}", secret.display());
    let out = daemon.berthctl(&[
        "build",
        "--network",
        "none",
        "--target",
        "build",
        "--secret",
        &secret_arg,
        "-t",
        "app",
        ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    assert_eq!(
        run(
            &daemon,
            &["--rm", "--network", "none", "app", "cat", "/size"]
        ),
        "4\n"
    );
    // The context's file was mounted, and the writable mount's write stayed in the build.
    assert_eq!(
        run(
            &daemon,
            &["--rm", "--network", "none", "app", "cat", "/got-req"]
        ),
        "requests==2\n"
    );
    assert_eq!(
        std::fs::read_to_string(ctx.join("req.txt")).unwrap(),
        "requests==2\n"
    );
    assert_eq!(
        run(
            &daemon,
            &["--rm", "--network", "none", "app", "cat", "/got-tmpfs"]
        ),
        "tmpfs\n",
        "a tmpfs in the desk user's build"
    );
    let out = daemon.berthctl(&[
        "run",
        "--rm",
        "--network",
        "none",
        "app",
        "ls",
        "/run/secrets",
        "/cache",
    ]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "the secret or the cache is in the image"
    );
    // Without the secret the build says what to give.
    let out = daemon.berthctl(&[
        "build",
        "--network",
        "none",
        "--no-cache",
        "--target",
        "build",
        "-t",
        "app2",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("--secret id=token"),
        "{}",
        text(&out).1
    );
}

/// `inspect` of a container as JSON.
fn inspect(daemon: &Daemon, name: &str) -> serde_json::Value {
    let out = daemon.berthctl(&["inspect", name]);
    assert!(out.status.success(), "{}", text(&out).1);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until `ready` holds for container `name`'s inspect JSON.
fn wait_for(daemon: &Daemon, name: &str, what: &str, ready: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = inspect(daemon, name);
        if ready(&info) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {what}: {info}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_desk_user_s_containers_restart_by_their_policy_and_when_the_daemon_starts() {
    let Some((user, dir, mut daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    let running = |i: &serde_json::Value| i["state"].get("running").is_some();

    // on-failure:2 runs it three times, then it stays ended with its code.
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "--name",
        "flaky",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    wait_for(&daemon, "flaky", "restarted twice", |i| {
        i["restart_count"] == 2 && i["state"]["stopped"]["exit_code"] == 3
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        inspect(&daemon, "flaky")["restart_count"],
        2,
        "a third restart"
    );
    assert_eq!(
        text(&daemon.berthctl(&["logs", "flaky"])).0,
        "run\nrun\nrun\n"
    );

    // always: restarted when it ends by itself, not after `stop`.
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "always",
        "--name",
        "svc",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    wait_for(&daemon, "svc", "restarted", |i| {
        i["restart_count"].as_u64() >= Some(1)
    });
    assert!(
        daemon
            .berthctl(&["stop", "-t", "0", "svc"])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_millis(800));
    assert!(!running(&inspect(&daemon, "svc")), "restarted after stop");

    // unless-stopped, stopped by the user; and --rm cannot go with a policy.
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "unless-stopped",
        "--name",
        "keep",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        daemon
            .berthctl(&["stop", "-t", "0", "keep"])
            .status
            .success()
    );
    let out = daemon.berthctl(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("--rm and --restart conflict"),
        "{}",
        text(&out).1
    );

    // The daemon starts again: `always` runs again though it was stopped, as Docker's;
    // `unless-stopped` stays stopped.
    daemon.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    wait_for(&daemon, "svc", "started with the daemon", |i| {
        running(i) || i["restart_count"].as_u64() >= Some(2)
    });
    assert!(
        !running(&inspect(&daemon, "keep")),
        "unless-stopped was started"
    );
    assert!(
        daemon
            .berthctl(&["stop", "-t", "0", "svc"])
            .status
            .success()
    );
}

#[test]
fn a_desk_user_runs_a_shell_in_a_new_container_on_a_terminal() {
    let Some((user, _dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };

    // `run -it --rm … sh` as a terminal would: the prompt, our size, Ctrl+C for the program
    // in the foreground, the shell's exit code ours, and the container gone after.
    let args = [
        "run",
        "-it",
        "--rm",
        "--network",
        "none",
        "--name",
        "tty",
        "busybox",
        "sh",
    ];
    let status = shell_on_a_terminal(&daemon, &user, &args, (40, 120), 7);
    assert_eq!(status.code(), Some(7));
    assert!(
        !text(&daemon.berthctl(&["ps", "-a"])).0.contains("tty"),
        "--rm left it"
    );
    // An image without a command is refused with the reason, -i or not.
    let out = daemon.berthctl(&["run", "-i", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
}

/// `run -dit` then `attach`, as Docker users do: the terminal berthd kept answers with a
/// prompt and our size, Ctrl-P Ctrl-Q leaves it running (what it printed is in its log), a
/// second attach ends it with its exit code; `run -di` then `attach` feeds it our stdin.
#[test]
fn a_desk_user_attaches_to_a_detached_containers_terminal_and_stdin() {
    use std::io::Write;
    let Some((user, _dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    run_ok(
        &daemon,
        &[
            "run",
            "-dit",
            "--network",
            "none",
            "--name",
            "kept",
            "busybox",
            "sh",
        ],
    );
    let attach = || {
        let pty = nix::pty::openpty(
            Some(&nix::pty::Winsize {
                ws_row: 33,
                ws_col: 101,
                ws_xpixel: 0,
                ws_ypixel: 0,
            }),
            None,
        )
        .unwrap();
        let slave = std::fs::File::from(pty.slave);
        let child = user
            .command(berth_e2e::binary("berthctl"))
            .arg("--socket")
            .arg(&daemon.socket)
            .args(["attach", "kept"])
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave)
            .spawn()
            .unwrap();
        (child, std::fs::File::from(pty.master))
    };
    let ended = |child: &mut std::process::Child| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "berthctl attach did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let wait = Duration::from_secs(10);

    let (mut child, mut master) = attach();
    let mut seen = Vec::new();
    // Attached, nothing is printed until the shell is asked for something.
    std::thread::sleep(Duration::from_millis(500));
    master
        .write_all(b"echo $((6*7)); busybox stty size\r")
        .unwrap();
    assert!(
        read_until(&master, &mut seen, "33 101", wait),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    assert!(String::from_utf8_lossy(&seen).contains("42\r\n"));
    master.write_all(b"\x10\x11").unwrap();
    assert_eq!(ended(&mut child).code(), Some(0), "detached");
    assert!(
        inspect(&daemon, "kept")["state"].get("running").is_some(),
        "still running"
    );
    assert!(
        text(&daemon.berthctl(&["logs", "kept"])).0.contains("42"),
        "the kept terminal's output is in the log"
    );

    let (mut child, mut master) = attach();
    std::thread::sleep(Duration::from_millis(500));
    master.write_all(b"exit 5\r").unwrap();
    assert_eq!(ended(&mut child).code(), Some(5));

    run_ok(
        &daemon,
        &[
            "run",
            "-di",
            "--network",
            "none",
            "--name",
            "reader",
            "busybox",
            "sh",
            "-c",
            "read line; echo got $line",
        ],
    );
    let out = daemon.berthctl_with(&["attach", "reader"], &[], b"hello\n");
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(text(&out).0, "got hello\n");
    let out = daemon.berthctl(&["attach", "reader"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("is not running"), "{}", text(&out).1);
}

#[test]
fn a_desk_user_sees_what_berth_takes_on_disk_and_prunes_what_is_unused() {
    let Some((user, dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    let ctx = dir.path().join(user.name).join("cached");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=cache,target=/c dd if=/dev/zero of=/c/blob bs=1k count=64 2>/dev/null; echo built > /b\n",
    )
    .unwrap();
    user.own(&ctx);
    user.own(&ctx.join("Dockerfile"));
    let ok = |args: &[&str]| run_ok(&daemon, args);
    ok(&[
        "build",
        "--network",
        "none",
        "-t",
        "spare",
        ctx.to_str().unwrap(),
    ]);
    ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "up",
        "-v",
        "kept:/k",
        "busybox",
        "sleep",
        "100",
    ]);
    ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "done",
        "busybox",
        "sh",
        "-c",
        "echo x > /file",
    ]);
    ok(&["volume", "create", "loose"]);

    let df = |daemon: &Daemon| -> serde_json::Value {
        serde_json::from_str(&run_ok(daemon, &["--json", "system", "df"])).unwrap()
    };
    let line = |df: &serde_json::Value, kind: &str| {
        df.as_array()
            .unwrap()
            .iter()
            .find(|l| l["kind"] == kind)
            .unwrap()
            .clone()
    };
    let before = df(&daemon);
    let images = line(&before, "images");
    assert_eq!(
        (images["total"].as_u64(), images["active"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(images["reclaimable"].as_u64() > Some(0), "{before}");
    let containers = line(&before, "containers");
    assert_eq!(
        (containers["total"].as_u64(), containers["active"].as_u64()),
        (Some(2), Some(1))
    );
    let volumes = line(&before, "volumes");
    assert_eq!(
        (volumes["total"].as_u64(), volumes["active"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(
        line(&before, "build cache")["size"].as_u64() >= Some(64 * 1024),
        "{before}"
    );
    let table = ok(&["system", "df"]);
    assert!(table.starts_with("TYPE"), "{table}");

    // Without a terminal, prune wants -f.
    assert_eq!(daemon.berthctl(&["system", "prune"]).status.code(), Some(1));
    let pruned: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "system", "prune", "-a", "--volumes", "-f"])).unwrap();
    assert_eq!(pruned["containers"], serde_json::json!(["done"]));
    assert_eq!(pruned["images"], serde_json::json!(["spare:latest"]));
    assert_eq!(pruned["volumes"], serde_json::json!(["loose"]));
    assert!(pruned["reclaimed"].as_u64() > Some(64 * 1024), "{pruned}");
    let after = df(&daemon);
    for kind in ["images", "containers", "volumes", "build cache"] {
        assert_eq!(line(&after, kind)["reclaimable"], 0, "{kind}: {after}");
    }
    // What is in use is untouched: the running container, its image and its volume.
    assert!(ok(&["ps"]).contains("up"));
    assert_eq!(
        ok(&["exec", "up", "sh", "-c", "echo still > /k/f; cat /k/f"]),
        "still\n"
    );
}

#[test]
fn a_desk_user_exports_a_container_and_commits_it_as_an_image() {
    let Some((user, dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    let ok = |args: &[&str]| run_ok(&daemon, args);
    ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "changed",
        "busybox",
        "sh",
        "-c",
        "echo made > /made; rm /home/dev/notes",
    ]);

    // export: the image's files with the container's changes, the removed one gone.
    let tar = dir.path().join(user.name).join("changed.tar");
    ok(&["export", "-o", tar.to_str().unwrap(), "changed"]);
    let mut names = Vec::new();
    let mut made = String::new();
    let file = std::fs::File::open(&tar).unwrap();
    for entry in tar::Archive::new(file).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if name == "made" {
            std::io::Read::read_to_string(&mut entry, &mut made).unwrap();
        }
        names.push(name);
    }
    assert!(names.contains(&"bin/busybox".to_owned()), "{names:?}");
    assert!(names.contains(&"home/dev".to_owned()), "{names:?}");
    assert!(
        !names.contains(&"home/dev/notes".to_owned()),
        "a removed file was exported"
    );
    assert_eq!(made, "made\n");

    // commit: the changes as a layer on the image; the new image runs with them.
    let committed = ok(&["commit", "changed", "snap:1"]);
    assert!(
        committed.starts_with("committed snap:1 sha256:"),
        "{committed}"
    );
    assert_eq!(
        ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "snap:1",
            "sh",
            "-c",
            "cat /made; ls /home/dev/notes 2>/dev/null || echo gone"
        ]),
        "made\ngone\n"
    );
    let history: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--image", "snap:1"])).unwrap();
    let last = history["config"]["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["created_by"], "berthctl commit changed");
}

/// A client of the SSH agent protocol, built static for the busybox image: asks the agent
/// `SSH_AUTH_SOCK` names for its identities (SSH_AGENTC_REQUEST_IDENTITIES) and prints how
/// many it has.
const AGENT_CLIENT: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(void) {
    const char *path = getenv("SSH_AUTH_SOCK");
    if (!path) { puts("no SSH_AUTH_SOCK"); return 1; }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
    unsigned char request[5] = { 0, 0, 0, 1, 11 };
    if (write(s, request, 5) != 5) { perror("write"); return 1; }
    unsigned char h[9];
    size_t got = 0;
    while (got < 9) {
        ssize_t n = read(s, h + got, 9 - got);
        if (n <= 0) { puts("short answer"); return 1; }
        got += (size_t)n;
    }
    if (h[4] != 12) { printf("answer type %d\n", h[4]); return 1; }
    printf("%u identities\n", (unsigned)h[5] << 24 | h[6] << 16 | h[7] << 8 | h[8]);
    return 0;
}
"#;

/// Builds image `tag` from `dockerfile` in a context of the user's holding a file `seed`
/// ("seed\n").
fn build_with_a_seed(
    user: &TestUser,
    dir: &tempfile::TempDir,
    daemon: &Daemon,
    tag: &str,
    dockerfile: &str,
) {
    let ctx = dir.path().join(user.name).join(tag);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(ctx.join("seed"), "seed\n").unwrap();
    for path in [&ctx, &ctx.join("Dockerfile"), &ctx.join("seed")] {
        user.own(path);
    }
    run_ok(
        daemon,
        &[
            "build",
            "--network",
            "none",
            "-t",
            tag,
            ctx.to_str().unwrap(),
        ],
    );
}

#[test]
fn a_desk_users_new_named_volume_starts_with_the_image_s_files() {
    let Some((user, dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    build_with_a_seed(
        &user,
        &dir,
        &daemon,
        "seeded",
        "FROM busybox\nCOPY --chown=1000:1000 seed /data/seed\n",
    );
    let in_volume = |script: &str| {
        run(
            &daemon,
            &[
                "--rm",
                "--network",
                "none",
                "-v",
                "appdata:/data",
                "seeded",
                "sh",
                "-c",
                script,
            ],
        )
    };
    // Empty, it gets the image's /data (the file's owner kept); written, it keeps what was
    // written (filled once, as Docker fills it).
    assert_eq!(
        in_volume("cat /data/seed; stat -c %u:%g /data/seed"),
        "seed\n1000:1000\n"
    );
    in_volume("echo changed > /data/seed");
    assert_eq!(in_volume("cat /data/seed"), "changed\n");
    // `nocopy`: a new volume stays empty.
    assert_eq!(
        run(
            &daemon,
            &[
                "--rm",
                "--network",
                "none",
                "-v",
                "bare:/data:nocopy",
                "seeded",
                "ls",
                "-A",
                "/data",
            ],
        ),
        ""
    );
    // A host directory is never filled.
    let host = dir.path().join(user.name).join("empty");
    std::fs::create_dir_all(&host).unwrap();
    user.own(&host);
    let bind = format!("{}:/data", host.display());
    assert_eq!(
        run(
            &daemon,
            &[
                "--rm",
                "--network",
                "none",
                "-v",
                &bind,
                "seeded",
                "ls",
                "-A",
                "/data"
            ],
        ),
        ""
    );
}

#[test]
fn a_desk_users_image_volumes_and_dash_v_paths_are_anonymous_volumes() {
    let Some((user, dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    build_with_a_seed(
        &user,
        &dir,
        &daemon,
        "with-volume",
        "FROM busybox\nCOPY seed /data/seed\nVOLUME /data\n",
    );
    // The anonymous volumes `volume ls` lists (64 hexadecimal digits, as Docker names them).
    let anonymous = || -> Vec<String> {
        run_ok(&daemon, &["volume", "ls"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()))
            .map(str::to_owned)
            .collect()
    };
    // The image's VOLUME gets one, filled from the image; `rm` keeps it, as Docker's does.
    assert_eq!(
        run(
            &daemon,
            &[
                "--name",
                "keep",
                "--network",
                "none",
                "with-volume",
                "cat",
                "/data/seed"
            ]
        ),
        "seed\n"
    );
    assert_eq!(anonymous().len(), 1);
    run_ok(&daemon, &["rm", "keep"]);
    assert_eq!(anonymous().len(), 1, "rm without -v keeps it");
    // `run --rm` removes its own.
    run(
        &daemon,
        &[
            "--rm",
            "--network",
            "none",
            "with-volume",
            "cat",
            "/data/seed",
        ],
    );
    assert_eq!(anonymous().len(), 1, "--rm took its volume with it");
    // `-v /path` is one too; `rm -v` removes it.
    run(
        &daemon,
        &[
            "--name",
            "scratch",
            "--network",
            "none",
            "-v",
            "/scratch",
            "busybox",
            "sh",
            "-c",
            "echo y > /scratch/y",
        ],
    );
    assert_eq!(anonymous().len(), 2);
    run_ok(&daemon, &["rm", "-v", "scratch"]);
    assert_eq!(anonymous().len(), 1);
}

#[test]
fn a_desk_user_pipes_into_a_container() {
    let Some((_user, _dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    let out = daemon.berthctl_with(
        &[
            "run",
            "-i",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "n=0; while read line; do n=$((n + 1)); done; echo $n",
        ],
        &[],
        b"one\ntwo\nthree\n",
    );
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    assert_eq!(text(&out).0.trim(), "3");
}

#[test]
fn a_desk_users_build_reaches_their_ssh_agent_and_keeps_no_key() {
    let Some((user, dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    let home = dir.path().join(user.name);
    let ctx = home.join("ssh-app");
    std::fs::create_dir_all(&ctx).unwrap();
    // The agent client, static (the image has no libc).
    std::fs::write(home.join("agent-ids.c"), AGENT_CLIENT).unwrap();
    let cc = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(ctx.join("agent-ids"))
        .arg(home.join("agent-ids.c"))
        .output()
        .expect("gcc");
    assert!(cc.status.success(), "{}", text(&cc).1);
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         COPY agent-ids /agent-ids\n\
         RUN --mount=type=ssh /agent-ids > /identities\n\
         RUN /agent-ids > /without 2>&1 || echo none > /without\n\
         USER dev\n\
         RUN --mount=type=ssh,uid=1000,gid=1000,mode=0600 /agent-ids > /home/dev/identities\n\
         RUN --mount=type=ssh /agent-ids > /home/dev/refused 2>&1 || echo refused > /home/dev/refused\n",
    )
    .unwrap();
    for path in [&ctx, &ctx.join("Dockerfile"), &ctx.join("agent-ids")] {
        user.own(path);
    }
    // The user's own agent, holding one key.
    let agent_dir = home.join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    user.own(&agent_dir);
    let socket = agent_dir.join("agent.sock");
    let _agent = common::xvfb::Killed(
        user.command("ssh-agent")
            .args(["-D", "-a"])
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client)"),
    );
    let key = agent_dir.join("key");
    let keygen = user
        .command("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", text(&keygen).1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "no agent socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    let added = user
        .command("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", text(&added).1);

    let agent = format!("default={}", socket.display());
    let out = daemon.berthctl(&[
        "build",
        "--network",
        "none",
        "--ssh",
        &agent,
        "-t",
        "ssh-app",
        ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    let shown = |file: &str| {
        run(
            &daemon,
            &["--rm", "--network", "none", "ssh-app", "cat", file],
        )
    };
    assert_eq!(shown("/identities"), "1 identities\n", "the agent, reached");
    assert_eq!(shown("/without"), "none\n", "no agent without the mount");
    // Another user's step: through a socket of its own (uid=, mode=), not through root's.
    assert_eq!(shown("/home/dev/identities"), "1 identities\n");
    assert_eq!(shown("/home/dev/refused"), "refused\n");
    // Neither the socket nor the variable is in the image.
    let config = run_ok(&daemon, &["inspect", "ssh-app"]);
    assert!(!config.contains("SSH_AUTH_SOCK"), "{config}");
    let out = daemon.berthctl(&[
        "run",
        "--rm",
        "--network",
        "none",
        "ssh-app",
        "ls",
        "/run/buildkit",
    ]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "the socket's mount point is in the image"
    );

    // What is not an agent's socket is refused, naming it (whose sockets a peer may reach is
    // access.rs's unit test: this daemon is the user's own).
    let out = daemon.berthctl(&[
        "build",
        "--network",
        "none",
        "--ssh",
        "default=/etc/hostname",
        "-t",
        "ssh-app2",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    let said = text(&out).1;
    assert!(
        said.contains("ssh agent `default`") && said.contains("not a socket"),
        "{said}"
    );
}

/// A desk user's build ADDs a git repository (served by `git daemon` on loopback): a tag's
/// checkout, its files' modes kept, no `.git`; the rootless daemon's git fetches it.
#[test]
fn a_desk_users_build_adds_a_git_repository() {
    let Some((user, dir, daemon)) = desk_daemon_with_busybox() else {
        return;
    };
    let git = |cwd: &Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(cwd)
            .args(["-c", "user.name=Berth", "-c", "user.email=berth@localhost"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", text(&out).1);
    };
    let work = dir.path().join("git-work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README"), "one\n").unwrap();
    std::fs::write(work.join("run.sh"), "echo run\n").unwrap();
    std::fs::set_permissions(
        work.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "v1"]);
    std::fs::write(work.join("README"), "two\n").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    let repos = dir.path().join("git-repos");
    std::fs::create_dir_all(&repos).unwrap();
    git(
        &repos,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "app.git"],
    );
    let port = berth_e2e::net::free_port();
    let _server = common::xvfb::Killed(
        std::process::Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", repos.display()))
            .arg(&repos)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "no git daemon");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ctx = dir.path().join(user.name).join("git-app");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nADD git://127.0.0.1:{port}/app.git#v1 /app\n"),
    )
    .unwrap();
    user.own(&ctx);
    run_ok(&daemon, &["build", "-t", "gitapp", ctx.to_str().unwrap()]);
    let shown = run_ok(
        &daemon,
        &[
            "run",
            "--rm",
            "gitapp",
            "sh",
            "-c",
            "cat /app/README; busybox stat -c '%a %u' /app/run.sh; busybox ls -a /app",
        ],
    );
    assert_eq!(shown, "one\n755 0\n.\n..\nREADME\nrun.sh\n");
}
