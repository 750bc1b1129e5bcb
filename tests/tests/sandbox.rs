//! berth-vmm's sandbox as berthd runs it, on this machine's /dev/kvm with the probe guest:
//! under a root daemon each VM's berth-vmm has an unprivileged uid and gid of its own,
//! `no_new_privs`, a seccomp filter, and a mount namespace that holds only the VM's files;
//! the guest runs as before; a system call outside a thread's filter stops the VM with the
//! call named, and the daemon and other VMs go on.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::user::TestUser;
use berth_e2e::{Daemon, open_tempdir, text};
use common::probe::ProbeFinish;
use common::{kvm_available, serial_log_shows, start_probe_vm, vmm_pid};

/// The value of `field` in /proc/PID/status (`Uid:\t1 1 1 1` → `1 1 1 1`).
fn status(pid: i32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn a_root_daemons_vm_runs_unprivileged_filtered_and_sees_only_its_files() {
    if !kvm_available("sandbox") || !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    start_probe_vm(&daemon, dir.path(), "jailed", ProbeFinish::Interactive);
    start_probe_vm(&daemon, dir.path(), "neighbour", ProbeFinish::Interactive);
    serial_log_shows(&daemon, "jailed", "BERTH-PROBE: ready for input");
    let state = daemon.state_dir.join("vms");
    let (jailed, neighbour) = (
        vmm_pid(&state.join("jailed/serial.log")),
        vmm_pid(&state.join("neighbour/serial.log")),
    );

    let uids = status(jailed, "Uid");
    let uid: u32 = uids.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        uid >= berth_vmm_api::launch::SANDBOX_ID_BASE,
        "real, effective, saved: {uids}"
    );
    assert!(
        uids.split_whitespace().all(|u| u == uid.to_string()),
        "{uids}"
    );
    assert_ne!(status(neighbour, "Uid"), uids, "each VM has ids of its own");
    assert_eq!(status(jailed, "Groups"), "", "no supplementary groups");
    assert_eq!(status(jailed, "NoNewPrivs"), "1");
    assert_eq!(status(jailed, "Seccomp"), "2", "a filter is installed");
    assert_eq!(
        status(jailed, "CapEff"),
        "0000000000000000",
        "no capabilities"
    );

    // Its root holds /dev/kvm and its kernel, nothing of the host's.
    let root = Path::new("/proc").join(jailed.to_string()).join("root");
    assert!(root.join("dev/kvm").exists());
    assert!(!root.join("etc/shadow").exists() && !root.join("etc").exists());
    assert!(!root.join("home").exists() && !root.join("root").exists());
    assert!(!root.join("usr").exists() && !root.join("proc/1").exists());

    // The guest works as before: what is typed on its serial console comes back.
    let typed = std::process::Command::new(berth_e2e::binary("berthctl"))
        .args([
            "--socket",
            daemon.socket.to_str().unwrap(),
            "vm",
            "serial",
            "jailed",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"sandboxed\n")?;
            std::thread::sleep(Duration::from_millis(500));
            child.kill()?;
            child.wait()
        });
    assert!(typed.is_ok());
    serial_log_shows(&daemon, "jailed", "BERTH-PROBE: echo sandboxed");
    for vm in ["jailed", "neighbour"] {
        assert!(
            daemon
                .berthctl(&["vm", "stop", "--force", vm])
                .status
                .success()
        );
    }
}

#[test]
fn a_forbidden_system_call_stops_the_vm_with_the_call_named() {
    if !kvm_available("sandbox") || !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let dir = open_tempdir();
    // A test build of berth-vmm makes socket(2), which no thread may, on its device thread.
    let daemon = Daemon::start_with_env(
        dir.path(),
        &[],
        &[("BERTH_VMM_FORBIDDEN_SYSCALL", "virtio")],
    );
    common::create_probe_vm(
        &daemon,
        dir.path(),
        "caught",
        ProbeFinish::Interactive,
        None,
    );
    let start = daemon.berthctl(&["vm", "start", "caught"]);
    // Caught before berth-vmm said ready (the start fails) or after (the VM crashes).
    let deadline = Instant::now() + Duration::from_secs(30);
    let said = loop {
        let shown = text(&daemon.berthctl(&["vm", "show", "caught"])).0;
        if !start.status.success() {
            break text(&start).1;
        }
        if shown.contains("crashed") {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "the VM was not stopped:\n{shown}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        said.contains(
            "berth-vmm was stopped by its seccomp filter: system call 41 on its virtio thread"
        ),
        "{said}"
    );
    // The daemon goes on.
    assert!(daemon.berthctl(&["vm", "list"]).status.success());
}

#[test]
fn a_rootless_daemons_vm_is_sandboxed_with_the_users_own_ids() {
    if !kvm_available("sandbox") {
        return;
    }
    let Some(user) = TestUser::desk() else { return };
    let dir = open_tempdir();
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    common::create_probe_vm(
        &daemon,
        dir.path(),
        "mine",
        ProbeFinish::Interactive,
        Some(&user),
    );
    let start = daemon.berthctl(&["vm", "start", "mine"]);
    assert!(
        start.status.success(),
        "{}\n{}",
        text(&start).1,
        daemon.log()
    );
    serial_log_shows(&daemon, "mine", "BERTH-PROBE: ready for input");
    let pid = vmm_pid(&daemon.state_dir.join("vms/mine/serial.log"));
    assert_eq!(
        status(pid, "Uid").split_whitespace().next(),
        Some(user.uid.to_string().as_str())
    );
    assert_eq!(status(pid, "NoNewPrivs"), "1");
    assert_eq!(status(pid, "Seccomp"), "2");
    let root = Path::new("/proc").join(pid.to_string()).join("root");
    assert!(!root.join("home").exists());
    assert!(
        daemon
            .berthctl(&["vm", "stop", "--force", "mine"])
            .status
            .success()
    );
}
