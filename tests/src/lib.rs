//! The harness for end-to-end tests: start the real binaries built by this workspace on a
//! temporary socket and state directory, as root or as a normal user ([`user`]), and clean up
//! after them.

pub mod cutting_proxy;
pub mod net;
pub mod token_server;
pub mod user;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A binary of this workspace (berthd, berthctl, ...), found next to the test executable's
/// `deps` directory where cargo puts workspace binaries.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// The busybox applets the test images link (any other runs as `busybox APPLET`).
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "hostname", "id", "ls", "stat", "true", "touch", "dd", "seq",
    "grep", "mkdir", "mount", "mknod",
];

/// Whether `program` is in a directory of `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join(program).is_file())
}

/// A busybox root filesystem (Debian's static busybox) as a tarball in `dir`: `/etc/passwd`
/// with root and `dev` (1000:1000), and `/home/dev/notes` owned by 1000:1000, so owners can be
/// checked. Given to `owner` for a user's daemon (which then needs newuidmap). None, with a
/// note, when this machine lacks what it takes.
#[allow(clippy::unwrap_used)] // a fixture that cannot be made fails the calling test
pub fn busybox_tarball(dir: &Path, owner: Option<&user::TestUser>) -> Option<PathBuf> {
    if !Path::new("/bin/busybox").exists() || (owner.is_some() && !on_path("newuidmap")) {
        eprintln!(
            "skipped: needs /bin/busybox and, for a user, newuidmap (apt-get install busybox-static uidmap)"
        );
        return None;
    }
    let root = dir.join("busybox-rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("home/dev")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\ndev:x:1000:\n").unwrap();
    std::fs::write(root.join("home/dev/notes"), "mine\n").unwrap();
    for path in ["home/dev", "home/dev/notes"] {
        std::os::unix::fs::chown(root.join(path), Some(1000), Some(1000)).unwrap();
    }
    let tarball = dir.join("busybox.tar");
    let made = Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status();
    assert!(made.unwrap().success());
    if let Some(owner) = owner {
        owner.own(&tarball);
    }
    Some(tarball)
}

/// `berthctl` arguments that run a busybox container over its memory limit: `dd` asks for a
/// 96 MiB buffer under a 32 MiB limit, and the kernel's OOM killer ends it (exit 137).
pub const OVER_MEMORY_LIMIT: &[&str] = &[
    "run",
    "--memory",
    "32M",
    "busybox",
    "dd",
    "if=/dev/zero",
    "of=/dev/null",
    "bs=96M",
];

/// A temporary directory that any user may enter, so tests can act as other users in it.
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tempdir");
    dir
}

/// A berthd process on its own socket and state dir, killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    log: PathBuf,
    /// The user a `berthd --user` runs as (its clients run as that user too); `None`: root.
    pub user: Option<user::TestUser>,
}

impl Daemon {
    /// Start berthd in `dir` with extra arguments, and wait until it answers.
    pub fn start(dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_at(&dir.join("berthd.sock"), &dir.join("state"), extra)
    }

    /// Start `berthd --user` as `user` in a directory of its own under `dir`, and wait until it
    /// answers. Everything the daemon is given must be readable by that user.
    pub fn start_as(user: &user::TestUser, dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_as_in(user, dir, extra, None)
    }

    /// [`Daemon::start_as`], the daemon started in `cgroup` (a subtree delegated to the user).
    pub fn start_as_in(
        user: &user::TestUser,
        dir: &Path,
        extra: &[&str],
        cgroup: Option<&Path>,
    ) -> Daemon {
        let home = dir.join(user.name);
        std::fs::create_dir_all(&home).expect("the user's test directory");
        user.own(&home);
        let mut args = vec!["--user"];
        args.extend_from_slice(extra);
        let command = user.command_in(binary("berthd"), cgroup);
        Self::launch(
            command,
            &home.join("berthd.sock"),
            &home.join("state"),
            &args,
            Some(user.clone()),
        )
    }

    /// [`Daemon::start`] with variables in its environment (which its berth-vmm processes
    /// inherit).
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(binary("berthd"));
        command.envs(env.iter().copied());
        Self::launch_in(dir, command, extra)
    }

    /// [`Daemon::start`] in a network namespace of its own with only `lo` (root only): a
    /// machine offline, with no default route.
    pub fn start_offline(dir: &Path, extra: &[&str]) -> Daemon {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(binary("berthd"));
        // SAFETY: between fork and exec the child makes one system call, unshare(2), which
        // touches no memory shared with the parent.
        unsafe {
            command.pre_exec(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(Into::into)
            });
        }
        Self::launch_in(dir, command, extra)
    }

    /// [`Daemon::start`] in the network namespace bound at `netns` (root only): a host whose
    /// network the test made (a bridge of its own, say).
    pub fn start_in_netns(dir: &Path, netns: &Path, extra: &[&str]) -> Daemon {
        use std::os::fd::AsFd;
        use std::os::unix::process::CommandExt;
        let namespace = std::fs::File::open(netns).expect("the network namespace");
        let fd = namespace.as_fd().try_clone_to_owned().expect("dup");
        let mut command = Command::new(binary("berthd"));
        // SAFETY: between fork and exec the child makes one system call, setns(2), on a
        // descriptor it inherited; nothing allocates or takes a lock.
        unsafe {
            command.pre_exec(move || {
                nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(Into::into)
            });
        }
        Self::launch_in(dir, command, extra)
    }

    /// Launch berthd's `command` with its socket and state in `dir`.
    fn launch_in(dir: &Path, command: Command, extra: &[&str]) -> Daemon {
        Self::launch(
            command,
            &dir.join("berthd.sock"),
            &dir.join("state"),
            extra,
            None,
        )
    }

    /// Start berthd with this socket and state dir, and wait until it answers.
    pub fn start_at(socket: &Path, state_dir: &Path, extra: &[&str]) -> Daemon {
        Self::launch(
            Command::new(binary("berthd")),
            socket,
            state_dir,
            extra,
            None,
        )
    }

    fn launch(
        mut command: Command,
        socket: &Path,
        state_dir: &Path,
        extra: &[&str],
        user: Option<user::TestUser>,
    ) -> Daemon {
        let log = state_dir.with_extension(format!("log.{}", std::process::id()));
        let child = command
            .arg("--socket")
            .arg(socket)
            .arg("--state-dir")
            .arg(state_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create daemon log"))
            .spawn()
            .expect("spawn berthd");
        let mut daemon = Daemon {
            child,
            socket: socket.to_owned(),
            state_dir: state_dir.to_owned(),
            log,
            user,
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "berthd exited with {status} before answering:\n{}",
                    self.log()
                );
            }
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("berthd did not answer within 20 s:\n{}", self.log());
    }

    /// What berthd wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send a signal and wait for the process to end.
    pub fn signal_and_wait(
        &mut self,
        signal: nix::sys::signal::Signal,
    ) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        self.child.wait().expect("wait for berthd")
    }

    /// Run berthctl against this daemon, as the user it runs as.
    pub fn berthctl(&self, args: &[&str]) -> Output {
        match &self.user {
            Some(user) => user
                .command(binary("berthctl"))
                .arg("--socket")
                .arg(&self.socket)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run berthctl"),
            None => berthctl(&self.socket, args),
        }
    }

    /// [`Daemon::berthctl`] with variables added to its environment and `input` on its stdin.
    pub fn berthctl_with(&self, args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Output {
        use std::io::Write;
        let mut command = match &self.user {
            Some(user) => user.command(binary("berthctl")),
            None => Command::new(binary("berthctl")),
        };
        let mut child = command
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run berthctl");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).expect("write berthctl's stdin");
        }
        child.wait_with_output().expect("wait for berthctl")
    }

    /// Connect with the API client.
    pub async fn client(&self) -> (berth_api::Client, berth_api::Events) {
        berth_api::Client::connect(&self.socket, "berth-e2e")
            .await
            .expect("connect to berthd")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Stopped as systemd stops it, SIGTERM first: it ends its VMs and takes its idle
        // network down (killed, it would leave the network's pasta running).
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        // Given time as systemd gives it (90 s): with the whole suite running on two cores a
        // stop once took more than 5 s, and the kill then left the network up.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Run berthctl against `socket`.
pub fn berthctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(binary("berthctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run berthctl")
}

/// stdout and stderr of a finished command, for assertions and failure messages.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What a container writes reaches berthctl byte for byte, under whichever daemon (its busybox
/// image imported as `busybox`): `run` in the foreground and `logs` give bytes that are no
/// text (a NUL, an invalid UTF-8 byte) and no newline added at the end; 8 MiB arrive whole;
/// `logs -f` prints what comes until the container ends, then ends itself.
pub fn container_output_is_byte_exact(daemon: &Daemon) {
    let out = daemon.berthctl(&[
        "run",
        "--name",
        "bytes",
        "busybox",
        "busybox",
        "printf",
        "a\\000b\\377c",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(out.stdout, b"a\0b\xffc");
    assert_eq!(daemon.berthctl(&["logs", "bytes"]).stdout, b"a\0b\xffc");
    let out = daemon.berthctl(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "busybox dd if=/dev/zero bs=1048576 count=8 2>/dev/null",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(out.stdout.len(), 8 << 20);
    assert!(out.stdout.iter().all(|b| *b == 0));
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "--name",
        "slow",
        "busybox",
        "sh",
        "-c",
        "echo 1; sleep 1; printf 2",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = daemon.berthctl(&["logs", "-f", "slow"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(text(&out).0, "1\n2");
    for name in ["bytes", "slow"] {
        assert!(daemon.berthctl(&["rm", "-f", name]).status.success());
    }
}
