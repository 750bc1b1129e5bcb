//! The runtime on the real kernel: namespaces, overlay, pivot_root, users, cgroup limits, exit
//! codes and cleanup, with Debian's static busybox as the image.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use container_backend::runtime::{self, ContainerConfig, Layout, Limits, RuntimeError};

#[path = "../../tests/src/net.rs"]
mod net;
use net::{free_port, http_get};

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "true", "false", "sleep", "hostname", "id", "ls", "dd", "head", "tr",
    "seq", "wc", "grep",
];

/// A root filesystem with busybox and an /etc/passwd that has a user `app` (1000).
fn busybox_rootfs(dir: &Path) -> Option<PathBuf> {
    if !Path::new(BUSYBOX).exists() {
        eprintln!("skipped: {BUSYBOX} is missing (apt-get install busybox-static)");
        return None;
    }
    let root = dir.join("image");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    Some(root)
}

struct Fixture {
    _dir: tempfile::TempDir,
    image: PathBuf,
    base: PathBuf,
    layout: Layout,
}

fn fixture() -> Option<Fixture> {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: containers need root here");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_rootfs(dir.path())?;
    let base = dir.path().join("containers");
    Some(Fixture {
        image,
        base,
        layout: Layout::detect().unwrap(),
        _dir: dir,
    })
}

fn unique_id(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

impl Fixture {
    fn config(&self, name: &str, args: &[&str]) -> ContainerConfig {
        let dir = self.base.join(name);
        fs::create_dir_all(&dir).unwrap();
        ContainerConfig {
            id: unique_id(name),
            hostname: None,
            mounts: Vec::new(),
            tmpfs: Vec::new(),
            terminal: false,
            stdin: false,
            log: dir.join("log"),
            dir,
            lower: vec![self.image.clone()],
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["GREETING=hello".into()],
            cwd: String::new(),
            user: String::new(),
            limits: Limits::default(),
            network: None,
            hosts: Vec::new(),
        }
    }

    /// Run to completion; the log and the exit.
    fn run(&self, config: &ContainerConfig) -> (String, runtime::Exit) {
        let container = runtime::start(config, &self.layout).unwrap();
        let exit = container.wait();
        (fs::read_to_string(&config.log).unwrap(), exit)
    }
}

#[test]
fn a_container_is_pid_1_in_its_own_namespaces() {
    let Some(f) = fixture() else { return };
    let script = "echo $GREETING from $(hostname); echo pid $$; id -u; ls /proc | grep -c '^[0-9]'; \
                  cat /proc/net/dev | grep -c ':'; echo written > /newfile; ls /dev/null /dev/zero";
    let config = f.config("ns", &["sh", "-c", script]);
    let (log, exit) = f.run(&config);
    assert_eq!(exit.code, 0, "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[0],
        format!("hello from {}", &config.id[..12.min(config.id.len())])
    );
    assert_eq!(
        lines[1], "pid 1",
        "the command is PID 1 of a new pid namespace"
    );
    assert_eq!(lines[2], "0");
    assert!(
        lines[3].parse::<u32>().unwrap() <= 3,
        "only the container's processes are visible: {log}"
    );
    assert_eq!(
        lines[4], "1",
        "only loopback in a new network namespace: {log}"
    );
    assert_eq!(lines[5..], ["/dev/null", "/dev/zero"]);
    // The write went to the container's own layer, not the image.
    assert_eq!(
        fs::read_to_string(config.upper().join("newfile")).unwrap(),
        "written\n"
    );
    assert!(!f.image.join("newfile").exists());
    // Nothing is left mounted on the host, and the cgroup is gone.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(config.dir.to_str().unwrap()),
        "a mount leaked"
    );
    assert!(
        !Path::new("/sys/fs/cgroup/pids/berth")
            .join(&config.id)
            .exists()
    );
    assert!(!Path::new("/sys/fs/cgroup/berth").join(&config.id).exists());
}

#[test]
fn exit_codes_users_and_working_directories() {
    let Some(f) = fixture() else { return };
    let (_, exit) = f.run(&f.config("code", &["sh", "-c", "exit 7"]));
    assert_eq!((exit.code, exit.signal, exit.oom_killed), (7, None, false));

    let mut config = f.config("user", &["sh", "-c", "id -u; id -g; echo $HOME; pwd"]);
    config.user = "app".into();
    config.cwd = "/tmp".into();
    let (log, exit) = f.run(&config);
    assert_eq!(exit.code, 0, "{log}");
    assert_eq!(log, "1000\n1000\n/home/app\n/tmp\n");

    let mut config = f.config("ghost", &["true"]);
    config.user = "ghost".into();
    let err = runtime::start(&config, &f.layout).unwrap_err();
    assert!(
        matches!(err, RuntimeError::User(_)) && err.to_string().contains("ghost"),
        "{err}"
    );
}

#[test]
fn a_missing_command_is_a_clear_error_and_leaves_nothing() {
    let Some(f) = fixture() else { return };
    let config = f.config("missing", &["no-such-program", "--flag"]);
    let err = runtime::start(&config, &f.layout).unwrap_err().to_string();
    assert!(
        err.contains("cannot start `no-such-program`") && err.contains("No such file or directory"),
        "{err}"
    );
    assert!(
        !Path::new("/sys/fs/cgroup/memory/berth")
            .join(&config.id)
            .exists()
    );
    // A working directory that is a file cannot be entered; a missing one is made.
    let config = f.config("badcwd", &["true"]);
    let config = ContainerConfig {
        cwd: "/bin/busybox/x".into(),
        ..config
    };
    let err = runtime::start(&config, &f.layout).unwrap_err().to_string();
    assert!(err.contains("enter the working directory"), "{err}");
    let config = f.config("newcwd", &["sh", "-c", "pwd"]);
    let config = ContainerConfig {
        cwd: "/does/not/exist".into(),
        ..config
    };
    let (log, exit) = f.run(&config);
    assert_eq!((log.as_str(), exit.code), ("/does/not/exist\n", 0));
}

#[test]
fn a_memory_hog_is_oom_killed_and_reported() {
    let Some(f) = fixture() else { return };
    let mut config = f.config(
        "hog",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=4"],
    );
    config.limits = Limits {
        memory: Some(32 << 20),
        ..Limits::default()
    };
    let (log, exit) = f.run(&config);
    assert!(
        exit.oom_killed,
        "not reported as OOM-killed: {exit:?} {log}"
    );
    assert_eq!((exit.code, exit.signal), (137, Some(9)), "{log}");
}

#[test]
fn a_fork_bomb_is_contained_by_the_pids_limit() {
    let Some(f) = fixture() else { return };
    // The inner shell forks until the limit stops it (busybox sh then gives up); the sleeps it
    // started stay, and the outer shell becomes one of them without forking.
    let script = "sh -c 'for i in $(seq 200); do sleep 30 & done'; exec sleep 30";
    let mut config = f.config("bomb", &["sh", "-c", script]);
    config.limits = Limits {
        pids: Some(16),
        ..Limits::default()
    };
    let container = runtime::start(&config, &f.layout).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut peak = 0;
    while Instant::now() < deadline {
        peak = peak.max(container.usage().pids);
        if fs::read_to_string(&config.log)
            .unwrap()
            .contains("can't fork")
            && peak >= 14
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = fs::read_to_string(&config.log).unwrap();
    assert!(
        log.contains("can't fork"),
        "the bomb was not stopped: {log}"
    );
    assert!(
        (14..=16).contains(&peak),
        "{peak} processes; the limit is 16: {log}"
    );
    container.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    container.wait();
    assert!(
        container.cgroup.pids().is_empty(),
        "every process of the bomb is gone"
    );
}

#[test]
fn a_cpu_burner_gets_its_share() {
    let Some(f) = fixture() else { return };
    let mut config = f.config("burn", &["sh", "-c", "while :; do :; done"]);
    config.limits = Limits {
        cpus: Some(0.2),
        ..Limits::default()
    };
    let container = runtime::start(&config, &f.layout).unwrap();
    let before = container.usage().cpu_seconds;
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = container.usage().cpu_seconds - before;
    let share = used / wall.elapsed().as_secs_f64();
    container.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    let exit = container.wait();
    assert_eq!(exit.signal, Some(9));
    assert!(
        (0.12..=0.28).contains(&share),
        "used {share:.3} of a core under --cpus 0.2"
    );
}

/// Whether pasta (the `passt` package) is installed; otherwise says why the test does nothing.
fn pasta_installed() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("pasta").exists()));
    if !found {
        eprintln!("skipped: pasta is missing (apt-get install passt)");
    }
    let online = runtime::network::host_has_route();
    if !online {
        eprintln!("skipped: this machine has no default route, which pasta needs");
    }
    found && online
}

#[test]
fn a_networked_container_serves_its_published_port_and_has_its_etc_files() {
    let Some(f) = fixture() else { return };
    if !pasta_installed() {
        return;
    }
    let port = free_port();
    let mut config = f.config(
        "web",
        &["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/etc"],
    );
    config.network = Some(runtime::Connection::Pasta(vec![
        format!("127.0.0.1:{port}:80").parse().unwrap(),
    ]));
    let container = runtime::start(&config, &f.layout).unwrap();
    let hostname: String = config.id.chars().take(12).collect();
    let answer = http_get(port, "/hostname");
    assert!(answer.contains(" 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with(&format!("\n{hostname}\n")), "{answer}");
    assert!(
        http_get(port, "/resolv.conf").contains("nameserver 169.254.0.1"),
        "DNS goes to pasta's forwarder"
    );
    container.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    container.wait();
    // pasta ended with the container: the port is free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "pasta still holds port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_published_port_in_use_fails_the_start_with_pastas_reason() {
    let Some(f) = fixture() else { return };
    if !pasta_installed() {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut config = f.config("clash", &["true"]);
    config.network = Some(runtime::Connection::Pasta(vec![
        format!("127.0.0.1:{port}:80").parse().unwrap(),
    ]));
    let err = runtime::start(&config, &f.layout).unwrap_err();
    assert!(matches!(err, RuntimeError::Network(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("pasta could not connect the container"),
        "{err}"
    );
    assert!(
        !config.dir.join("netns").exists(),
        "nothing is left of the network"
    );
}

#[test]
fn without_a_network_a_container_has_loopback_only() {
    let Some(f) = fixture() else { return };
    let (log, exit) = f.run(&f.config("alone", &["cat", "/proc/net/dev"]));
    assert_eq!(exit.code, 0, "{log}");
    let interfaces: Vec<&str> = log
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{log}");
}
