//! What the VM end-to-end tests share: the probe guest (vmm-backend/probe, built here with
//! gcc) as a file in Berth's flat image format, VMs defined to boot it, and waits on what its
//! console prints.
#![allow(dead_code)] // each test binary uses a different part

pub mod window;
pub mod xvfb;

#[path = "../../../vmm-backend/tests/common/probe.rs"]
pub mod probe;

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_api::vm::{BootSource, VmSpec};
use berth_api::{Client, Event, Events};
use probe::{PROBE_LOAD_ADDR, ProbeFinish, probe_image};

/// True when /dev/kvm exists; otherwise prints why the calling test does nothing.
pub fn kvm_available(test: &str) -> bool {
    let present = Path::new("/dev/kvm").exists();
    if !present {
        eprintln!("skipping {test}: /dev/kvm is absent on this machine");
    }
    present
}

/// The probe variant `finish` as a file `berth-vmm --kernel` boots.
pub fn probe_file(dir: &Path, finish: ProbeFinish) -> PathBuf {
    let path = dir.join(format!("probe-{finish:?}.flat"));
    let image = probe_image(finish);
    let file = vmm_backend::boot::flat_image_file(&image, PROBE_LOAD_ADDR, PROBE_LOAD_ADDR);
    std::fs::write(&path, file).unwrap();
    path
}

pub async fn create(client: &Client, name: &str, kernel: &Path) {
    client
        .vm_create(VmSpec {
            name: name.into(),
            cpus: 1,
            memory: 64 << 20,
            disk: 0,
            boot: Some(BootSource::Kernel {
                kernel: kernel.to_owned(),
                initrd: None,
                cmdline: String::new(),
            }),
            overcommit: false,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Waits for VM `name`'s console to have printed `needle` (collecting from `seen`).
pub async fn serial_shows(events: &mut Events, seen: &mut String, name: &str, needle: &str) {
    let wait = async {
        while !seen.contains(needle) {
            match events.next().await.expect("the connection stays open") {
                Event::VmSerial { name: vm, data } if vm == name => {
                    seen.push_str(&String::from_utf8_lossy(&data));
                }
                _ => {}
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .is_err()
    {
        panic!("VM {name} never printed {needle:?}; its console so far:\n{seen}");
    }
}

/// Defines VM `name` (1 vCPU, 64 MiB, no disk) booting the probe variant `finish` with
/// berthctl, as a user would; the probe file is given to `owner` when the daemon runs as a
/// user. Returns what `vm create` answered.
pub fn create_probe_vm(
    daemon: &berth_e2e::Daemon,
    dir: &Path,
    name: &str,
    finish: ProbeFinish,
    owner: Option<&berth_e2e::user::TestUser>,
) -> std::process::Output {
    let kernel = probe_file(dir, finish);
    if let Some(owner) = owner {
        owner.own(&kernel);
    }
    let kernel = kernel.to_str().expect("a UTF-8 temporary path");
    let create = daemon.berthctl(&[
        "vm", "create", name, "--cpus", "1", "--memory", "64M", "--disk", "0", "--kernel", kernel,
    ]);
    assert!(create.status.success(), "{}", berth_e2e::text(&create).1);
    create
}

/// [`create_probe_vm`] for a root daemon, then `vm start`.
pub fn start_probe_vm(daemon: &berth_e2e::Daemon, dir: &Path, name: &str, finish: ProbeFinish) {
    create_probe_vm(daemon, dir, name, finish, None);
    let out = daemon.berthctl(&["vm", "start", name]);
    assert!(
        out.status.success(),
        "{}\n{}",
        berth_e2e::text(&out).1,
        daemon.log()
    );
}

/// Waits (30 s at most) for `berthctl vm log NAME` to show `needle`.
pub fn serial_log_shows(daemon: &berth_e2e::Daemon, name: &str, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = berth_e2e::text(&daemon.berthctl(&["vm", "log", name])).0;
        if log.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "VM {name} never printed {needle:?}:\n{log}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pid of the berth-vmm running the VM whose serial log is `log`.
pub fn vmm_pid(log: &Path) -> i32 {
    let log = log.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("berth-vmm")) && args.contains(&log) {
            return pid;
        }
    }
    panic!("no berth-vmm runs with {log}");
}
