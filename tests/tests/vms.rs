//! VMs run by berthd: one berth-vmm per VM, on this machine's /dev/kvm. The guest is the probe
//! (vmm-backend/probe, built here with gcc) in Berth's flat image format: this machine's KVM
//! cannot run a stock kernel (that is tier 3, scripts/test-lab).
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use std::time::Duration;

use berth_api::error::ErrorKind;
use berth_api::vm::VmState;
use berth_api::{Client, ClientError, Event, Events, Reply, Request};
use berth_e2e::{Daemon, open_tempdir, text};
use common::probe::ProbeFinish;
use common::{create, kvm_available, probe_file, serial_shows, vmm_pid};

async fn call(client: &Client, request: Request) -> Result<Reply, berth_api::ApiError> {
    match client.call(request).await {
        Ok(reply) => Ok(reply),
        Err(ClientError::Api(e)) => Err(e),
        Err(other) => panic!("the daemon went away: {other}"),
    }
}

async fn state_becomes(
    events: &mut Events,
    name: &str,
    want: impl Fn(&VmState) -> bool,
) -> VmState {
    let wait = async {
        loop {
            if let Event::VmState { name: vm, state } =
                events.next().await.expect("the connection stays open")
                && vm == name
                && want(&state)
            {
                return state;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("VM {name} never reached the state"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_start_take_serial_input_crash_alone_and_stop() {
    if !kvm_available("vms_start_take_serial_input_crash_alone_and_stop") {
        return;
    }
    let dir = open_tempdir();
    let interactive = probe_file(dir.path(), ProbeFinish::Interactive);
    let daemon = Daemon::start(dir.path(), &[]);
    let (client, mut events) = daemon.client().await;
    client.subscribe().await.unwrap();
    create(&client, "first", &interactive).await;
    create(&client, "second", &interactive).await;

    // berthctl starts it; the guest's serial output arrives as events and lands in the log.
    let started = daemon.berthctl(&["vm", "start", "first"]);
    let (out, err) = text(&started);
    assert!(started.status.success(), "{out}{err}");
    assert!(
        out.contains("running"),
        "vm start shows the VM running:\n{out}"
    );
    let mut first = String::new();
    serial_shows(
        &mut events,
        &mut first,
        "first",
        "BERTH-PROBE: ready for input",
    )
    .await;
    assert!(
        first.contains("BERTH-PROBE: hello from vcpu 0 of 1"),
        "{first}"
    );

    // Typing on the console reaches the guest, and its answer comes back.
    call(
        &client,
        Request::VmSerialInput {
            name: "first".into(),
            data: b"hello berth\n".to_vec(),
        },
    )
    .await
    .unwrap();
    serial_shows(
        &mut events,
        &mut first,
        "first",
        "BERTH-PROBE: echo hello berth",
    )
    .await;
    let log = daemon.berthctl(&["vm", "log", "first", "-n", "3"]);
    let (out, err) = text(&log);
    assert!(log.status.success(), "{err}");
    assert!(
        out.contains("BERTH-PROBE: echo hello berth"),
        "vm log:\n{out}"
    );

    // A running VM is neither started twice nor deleted.
    let again = call(
        &client,
        Request::VmStart {
            name: "first".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(again.kind, ErrorKind::Conflict, "{again}");
    let delete = daemon.berthctl(&["vm", "delete", "first"]);
    assert_eq!(delete.status.code(), Some(1));
    assert!(
        text(&delete).1.contains("is running; stop it first"),
        "{}",
        text(&delete).1
    );

    // A second VM; then the first one's VMM is killed: only that VM is gone, and it says how.
    call(
        &client,
        Request::VmStart {
            name: "second".into(),
        },
    )
    .await
    .unwrap();
    let mut second = String::new();
    serial_shows(
        &mut events,
        &mut second,
        "second",
        "BERTH-PROBE: ready for input",
    )
    .await;
    let first_dir = client.vm_show("first").await.unwrap().dir;
    let pid = vmm_pid(&first_dir.join("serial.log"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let crashed = state_becomes(&mut events, "first", |s| !s.is_active()).await;
    assert_eq!(
        crashed,
        VmState::Crashed {
            reason: "berth-vmm was killed by signal 9 (SIGKILL)".into()
        }
    );
    let listed = daemon.berthctl(&["vm", "list"]);
    assert!(text(&listed).0.contains("crashed"), "{}", text(&listed).0);
    call(
        &client,
        Request::VmSerialInput {
            name: "second".into(),
            data: b"still here\n".to_vec(),
        },
    )
    .await
    .unwrap();
    serial_shows(
        &mut events,
        &mut second,
        "second",
        "BERTH-PROBE: echo still here",
    )
    .await;

    // Paused, the guest does not run: what is typed waits, and is answered after resume.
    let pause = daemon.berthctl(&["vm", "pause", "second"]);
    assert!(pause.status.success(), "{}", text(&pause).1);
    assert_eq!(
        client.vm_show("second").await.unwrap().state,
        VmState::Paused
    );
    call(
        &client,
        Request::VmSerialInput {
            name: "second".into(),
            data: b"while paused\n".to_vec(),
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(10), events.next()).await
    {
        if let Event::VmSerial { name, data } = event
            && name == "second"
        {
            second.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(
        !second.contains("echo while paused"),
        "a paused guest answered:\n{second}"
    );
    let resume = daemon.berthctl(&["vm", "resume", "second"]);
    assert!(resume.status.success(), "{}", text(&resume).1);
    serial_shows(
        &mut events,
        &mut second,
        "second",
        "BERTH-PROBE: echo while paused",
    )
    .await;
    assert_eq!(
        client.vm_show("second").await.unwrap().state,
        VmState::Running
    );

    // The probe ignores the power button: a graceful stop ends it after its timeout.
    let started = std::time::Instant::now();
    let stop = daemon.berthctl(&["vm", "stop", "second", "--timeout", "1"]);
    assert!(stop.status.success(), "{}", text(&stop).1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the guest had its second"
    );
    assert_eq!(
        client.vm_show("second").await.unwrap().state,
        VmState::Stopped
    );
    call(
        &client,
        Request::VmStart {
            name: "second".into(),
        },
    )
    .await
    .unwrap();
    serial_shows(
        &mut events,
        &mut second,
        "second",
        "BERTH-PROBE: ready for input",
    )
    .await;

    // Forced stop: at once, and the VM is stopped, not crashed.
    let stop = daemon.berthctl(&["vm", "stop", "second", "--force"]);
    assert!(stop.status.success(), "{}", text(&stop).1);
    assert_eq!(
        client.vm_show("second").await.unwrap().state,
        VmState::Stopped
    );

    // `vm console` from a pipe: what is typed goes in, the guest powers off, the console ends.
    call(
        &client,
        Request::VmStart {
            name: "first".into(),
        },
    )
    .await
    .unwrap();
    serial_shows(
        &mut events,
        &mut first,
        "first",
        "BERTH-PROBE: ready for input",
    )
    .await;
    let mut console = std::process::Command::new(berth_e2e::binary("berthctl"))
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["vm", "serial", "first"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Give it a moment to subscribe before the guest answers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        use std::io::Write;
        let mut stdin = console.stdin.take().unwrap();
        stdin.write_all(b"from the console\npoweroff\n").unwrap();
    }
    let output = tokio::task::spawn_blocking(move || console.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let (out, err) = text(&output);
    assert!(output.status.success(), "{out}{err}");
    assert!(
        out.contains("BERTH-PROBE: echo from the console"),
        "console output:\n{out}"
    );
    assert!(err.contains("VM `first` is stopped"), "{err}");
    assert_eq!(
        client.vm_show("first").await.unwrap().state,
        VmState::Stopped
    );
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_crash_and_a_bad_boot_are_reported_with_their_reasons() {
    if !kvm_available("a_guest_crash_and_a_bad_boot_are_reported_with_their_reasons") {
        return;
    }
    let dir = open_tempdir();
    let crash = probe_file(dir.path(), ProbeFinish::Crash);
    let daemon = Daemon::start(dir.path(), &[]);
    let (client, mut events) = daemon.client().await;
    client.subscribe().await.unwrap();

    // The guest triple-faults: the VM is crashed and says why.
    create(&client, "crasher", &crash).await;
    call(
        &client,
        Request::VmStart {
            name: "crasher".into(),
        },
    )
    .await
    .unwrap();
    match state_becomes(&mut events, "crasher", |s| !s.is_active()).await {
        VmState::Crashed { reason } => assert!(reason.contains("triple-fault"), "{reason}"),
        other => panic!("a triple fault ended as {other}"),
    }

    // The kernel file went away after the VM was defined: a clear error, still stopped.
    let gone = dir.path().join("gone.flat");
    std::fs::copy(&crash, &gone).unwrap();
    create(&client, "orphan", &gone).await;
    std::fs::remove_file(&gone).unwrap();
    let err = call(
        &client,
        Request::VmStart {
            name: "orphan".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    assert!(err.message.contains("does not exist any more"), "{err}");
    assert_eq!(
        client.vm_show("orphan").await.unwrap().state,
        VmState::Stopped
    );

    // A crashed VM can be started again and deleted.
    let delete = daemon.berthctl(&["vm", "delete", "crasher"]);
    assert!(delete.status.success(), "{}", text(&delete).1);
}
