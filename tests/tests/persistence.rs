//! Definitions survive restarts; an unreadable one is reported and left exactly as it was; a
//! daemon killed in the middle of writing leaves the old file or the new one, never a torn one.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::time::Duration;

use berth_api::ClientError;
use berth_api::error::ErrorKind;
use berth_api::vm::{BootSource, VmConfig, VmEdit, VmSpec};
use berth_e2e::{Daemon, open_tempdir, text};
use nix::sys::signal::Signal;

fn spec(name: &str) -> VmSpec {
    VmSpec {
        name: name.into(),
        cpus: 1,
        memory: 128 << 20,
        disk: 32 << 20,
        boot: None,
        overcommit: false,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_survive_a_restart() {
    let dir = open_tempdir();
    let mut daemon = Daemon::start(dir.path(), &[]);
    let (client, _) = daemon.client().await;
    for name in ["one", "two", "three"] {
        client.vm_create(spec(name)).await.unwrap();
    }
    client
        .vm_edit(
            "two",
            VmEdit {
                cpus: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let before = client.vm_list().await.unwrap();
    drop(client);
    assert!(
        daemon.signal_and_wait(Signal::SIGTERM).success(),
        "clean exit on SIGTERM"
    );
    assert!(!daemon.socket.exists(), "the socket is removed on exit");

    let daemon = Daemon::start(dir.path(), &[]);
    let (client, _) = daemon.client().await;
    let after = client.vm_list().await.unwrap();
    assert_eq!(after, before);
    assert_eq!(client.vm_show("two").await.unwrap().config.cpus, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_definition_is_reported_and_left_in_place() {
    let dir = open_tempdir();
    let mut daemon = Daemon::start(dir.path(), &[]);
    let (client, _) = daemon.client().await;
    client.vm_create(spec("good")).await.unwrap();
    client.vm_create(spec("bad")).await.unwrap();
    drop(client);
    daemon.signal_and_wait(Signal::SIGTERM);

    let bad = daemon.state_dir.join("vms/bad/vm.ron");
    let corrupt = "(\n    name: \"bad\",\n    cpus: lots,\n)\n";
    std::fs::write(&bad, corrupt).unwrap();

    let daemon = Daemon::start(dir.path(), &[]);
    assert!(
        daemon.log().contains("vms/bad/vm.ron: line 3, column"),
        "{}",
        daemon.log()
    );
    let (client, _) = daemon.client().await;
    let listing = client.vm_list().await.unwrap();
    assert_eq!(
        listing
            .vms
            .iter()
            .map(|v| v.config.name.as_str())
            .collect::<Vec<_>>(),
        ["good"]
    );
    assert_eq!(listing.problems.len(), 1);
    assert_eq!(listing.problems[0].path, bad);
    assert!(
        listing.problems[0].message.starts_with("line 3, column"),
        "{:?}",
        listing.problems
    );

    // berthctl shows it to the user, with file and line.
    let out = daemon.berthctl(&["vm", "list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.contains("good") && !stdout.contains("bad "),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning") && stderr.contains("bad/vm.ron: line 3"),
        "{stderr}"
    );

    // Nothing may overwrite or delete it: not a create with its name, not a delete, not an edit.
    fn e<T: std::fmt::Debug>(r: Result<T, ClientError>) -> berth_api::ApiError {
        match r {
            Err(ClientError::Api(e)) => e,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        e(client.vm_create(spec("bad")).await).kind,
        ErrorKind::AlreadyExists
    );
    let deleted = e(client.vm_delete("bad").await);
    assert_eq!(deleted.kind, ErrorKind::Conflict);
    assert!(deleted.message.contains("cannot read"), "{deleted}");
    assert_eq!(
        e(client.vm_edit("bad", VmEdit::default()).await).kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        corrupt,
        "left exactly as it was"
    );
    assert!(
        bad.with_file_name("disk.raw").exists(),
        "its disk is untouched"
    );
}

/// Edits rewrite vm.ron over and over while the daemon is SIGKILLed at varying moments. After
/// each kill the file must parse and be one of the versions written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_leaves_old_or_new_never_torn() {
    let dir = open_tempdir();
    let kernel = dir.path().join("bzImage");
    std::fs::write(&kernel, b"k").unwrap();
    // Two versions that differ over the whole length of a large file.
    let versions = [("a".repeat(2000), 1u32), ("b".repeat(2000), 2u32)];
    let definition = dir.path().join("state/vms/victim/vm.ron");

    for round in 0..8u64 {
        let mut daemon = Daemon::start(dir.path(), &[]);
        let (client, _) = daemon.client().await;
        if round == 0 {
            let boot = BootSource::Kernel {
                kernel: kernel.clone(),
                initrd: None,
                cmdline: String::new(),
            };
            client
                .vm_create(VmSpec {
                    boot: Some(boot),
                    ..spec("victim")
                })
                .await
                .unwrap();
        }
        let versions = versions.clone();
        let writer = tokio::spawn(async move {
            for i in 0.. {
                let (cmdline, cpus) = &versions[i % 2];
                let edit = VmEdit {
                    cmdline: Some(cmdline.clone()),
                    cpus: Some(*cpus),
                    ..Default::default()
                };
                if client.vm_edit("victim", edit).await.is_err() {
                    return i;
                }
            }
            unreachable!()
        });
        tokio::time::sleep(Duration::from_millis(30 + round * 17)).await;
        daemon.signal_and_wait(Signal::SIGKILL);
        let edits = writer.await.unwrap();
        assert!(
            round == 0 || edits > 0,
            "round {round}: the daemon was killed before any edit"
        );

        let config: VmConfig = ron::from_str(&std::fs::read_to_string(&definition).unwrap())
            .unwrap_or_else(|e| panic!("round {round}: torn vm.ron after SIGKILL: {e}"));
        match config.boot {
            Some(BootSource::Kernel { cmdline, .. }) => {
                let consistent = cmdline.is_empty()
                    || (cmdline == "a".repeat(2000) && config.cpus == 1)
                    || (cmdline == "b".repeat(2000) && config.cpus == 2);
                assert!(
                    consistent,
                    "round {round}: a mixed definition: cpus {} cmdline {}…",
                    config.cpus,
                    &cmdline[..10]
                );
            }
            other => panic!("round {round}: boot lost: {other:?}"),
        }
    }
    // Leftover temp files from killed writes are cleared at the next start, never loaded.
    let daemon = Daemon::start(dir.path(), &[]);
    let (client, _) = daemon.client().await;
    assert_eq!(client.vm_list().await.unwrap().vms.len(), 1);
    let names: Vec<String> = std::fs::read_dir(definition.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".tmp-")), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_state_dir_one_daemon() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    // Same socket: refused because one answers there.
    let same_socket = std::process::Command::new(berth_e2e::binary("berthd"))
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("--state-dir")
        .arg(dir.path().join("other-state"))
        .output()
        .unwrap();
    assert!(!same_socket.status.success());
    assert!(String::from_utf8_lossy(&same_socket.stderr).contains("already answers"));
    // Same state dir on another socket: refused by the lock.
    let same_state = std::process::Command::new(berth_e2e::binary("berthd"))
        .arg("--socket")
        .arg(dir.path().join("other.sock"))
        .arg("--state-dir")
        .arg(&daemon.state_dir)
        .output()
        .unwrap();
    assert!(!same_state.status.success());
    assert!(
        String::from_utf8_lossy(&same_state.stderr)
            .contains("another berthd is using the state directory")
    );
    let (client, _) = daemon.client().await;
    client.host().await.unwrap();
}
