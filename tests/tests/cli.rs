//! berthctl as a user and a script see it: tables, JSON, messages and exit codes.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use berth_e2e::{Daemon, berthctl, open_tempdir, text};

#[test]
fn no_daemon_says_how_to_start_one() {
    let dir = open_tempdir();
    let out = berthctl(&dir.path().join("nobody-here.sock"), &["vm", "list"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no berthd answers at") && stderr.contains("nobody-here.sock"),
        "{stderr}"
    );
    assert!(stderr.contains("berthd --user"), "{stderr}");
}

#[test]
fn create_list_show_edit_delete_in_tables_and_json() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let cores = std::thread::available_parallelism().unwrap().get();

    let out = daemon.berthctl(&[
        "vm", "create", "web", "--cpus", "1", "--memory", "512M", "--disk", "1G",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("512 MiB") && stdout.contains("1 GiB sparse raw"),
        "{stdout}"
    );

    let out = daemon.berthctl(&["vm", "list"]);
    let (stdout, _) = text(&out);
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "STATE", "CPUS", "MEMORY", "DISK", "U_vm", "M_vm", "P_vm"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["web", "stopped"]);
    assert_eq!(
        row[7],
        format!("{:.0}%", 100.0 / cores as f64),
        "U_vm = n/N"
    );

    let out = daemon.berthctl(&["--json", "vm", "show", "web"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["config"]["memory"], 512u64 << 20);
    assert_eq!(json["allocation"]["cpu"], 1.0 / cores as f64);

    let out = daemon.berthctl(&["vm", "edit", "web", "--disk", "512M"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("can only grow"), "{stderr}");

    // Overcommit: more CPUs than the host needs the flag, and then shows in `host`.
    let many = (cores + 1).to_string();
    let out = daemon.berthctl(&["vm", "create", "big", "--cpus", &many]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("--overcommit"));
    let out = daemon.berthctl(&["vm", "create", "big", "--cpus", &many, "--overcommit"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let (stdout, _) = text(&daemon.berthctl(&["host"]));
    let sum_u = stdout.lines().find(|l| l.starts_with("ΣU_vm")).unwrap();
    assert!(sum_u.contains("OVERCOMMITTED"), "{stdout}");
    assert!(
        stdout.contains("ΣM_vm") && stdout.contains("CPUs (N)"),
        "{stdout}"
    );

    let out = daemon.berthctl(&["--json", "host"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["vm_count"], 2);
    assert!(json["allocation"]["cpu"].as_f64().unwrap() > 1.0);

    // A VM with nothing to boot (a disk, empty) is refused with what to do, exit code 1.
    let out = daemon.berthctl(&["vm", "start", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("VM `web` has nothing on its disk to boot: install an OS on it from an ISO"),
        "{}",
        text(&out).1
    );

    let out = daemon.berthctl(&["vm", "delete", "web"]);
    assert!(out.status.success());
    let out = daemon.berthctl(&["vm", "show", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("there is no VM named `web`"));

    // A usage error is clap's exit code 2.
    assert_eq!(daemon.berthctl(&["vm", "create"]).status.code(), Some(2));
    assert_eq!(
        daemon
            .berthctl(&["vm", "create", "x", "--memory", "lots"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn relative_paths_are_resolved_where_berthctl_runs() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    std::fs::write(dir.path().join("vmlinuz"), b"k").unwrap();
    let out = std::process::Command::new(berth_e2e::binary("berthctl"))
        .current_dir(dir.path())
        .args([
            "--socket",
            daemon.socket.to_str().unwrap(),
            "vm",
            "create",
            "rel",
            "--kernel",
            "vmlinuz",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "{}/vmlinuz",
            dir.path().canonicalize().unwrap().display()
        )),
        "{stdout}"
    );
}

#[test]
fn import_list_and_remove_images() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::write(rootfs.join("bin/tool"), b"x").unwrap();
    let tarball = dir.path().join("rootfs.tar.gz");
    let made = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-czf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(made.success());

    let out = daemon.berthctl(&["import", tarball.to_str().unwrap(), "tools"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.lines().nth(1).unwrap().starts_with("tools:latest"),
        "{stdout}"
    );

    let (stdout, _) = text(&daemon.berthctl(&["images"]));
    let header: Vec<&str> = stdout.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["IMAGE", "ID", "SIZE", "LAYERS", "CREATED"]);
    let row: Vec<&str> = stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!((row[0], row[1].len(), row[4]), ("tools:latest", 12, "1"));

    let garbage = dir.path().join("garbage.tar");
    std::fs::write(
        &garbage,
        b"this is not a tar archive at all, not even close.....",
    )
    .unwrap();
    let out = daemon.berthctl(&["import", garbage.to_str().unwrap(), "junk"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("cannot import"), "{}", text(&out).1);

    assert!(daemon.berthctl(&["rmi", "tools"]).status.success());
    let (stdout, _) = text(&daemon.berthctl(&["images"]));
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the header is left: {stdout}"
    );
    let out = daemon.berthctl(&["rmi", "tools"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("no image named `tools:latest`"),
        "{}",
        text(&out).1
    );
}
