//! A VM's screen and keyboard through a real berthd: the probe guest (vmm-backend/probe, in
//! Berth's flat image format, on this machine's /dev/kvm) draws its virtio-gpu pattern and
//! `berthctl vm screenshot` saves it as a PNG, pixel for pixel; `vm key` and `vm type` reach
//! the probe's virtio-input driver, which reports each event on serial.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use berth_e2e::{Daemon, open_tempdir, text};
use common::probe::{KEYS_EVENTS, ProbeFinish};
use common::{console_shows, create, kvm_available, probe_file};

/// `gpu_pattern` in probe/gpu.h as RGBA: the guest's B8G8R8X8 words are
/// `x*4 | y*5 << 8 | ((x+y)*3 & 0xff) << 16`.
fn pattern_rgba(x: u32, y: u32) -> [u8; 4] {
    [
        (((x + y) * 3) & 0xff) as u8,
        (y * 5) as u8,
        (x * 4) as u8,
        0xff,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_of_the_probe_matches_its_pattern_pixel_for_pixel() {
    if !kvm_available("screenshot_of_the_probe_matches_its_pattern_pixel_for_pixel") {
        return;
    }
    let dir = open_tempdir();
    let screen = probe_file(dir.path(), ProbeFinish::Screen);
    let daemon = Daemon::start(dir.path(), &[]);
    let (client, mut events) = daemon.client().await;
    client.subscribe().await.unwrap();
    create(&client, "screen", &screen).await;
    let edit = daemon.berthctl(&["vm", "edit", "screen", "--display", "64x48"]);
    let (out, err) = text(&edit);
    assert!(edit.status.success(), "{out}{err}");
    assert!(out.contains("64x48"), "vm edit shows the display:\n{out}");
    let bad = daemon.berthctl(&["vm", "edit", "screen", "--display", "0x48"]);
    assert!(!bad.status.success());

    // No screen before the VM runs.
    let early = client.vm_display("screen").await.unwrap_err();
    assert!(early.to_string().contains("not running"), "{early}");

    let started = daemon.berthctl(&["vm", "start", "screen"]);
    assert!(started.status.success(), "{}", text(&started).1);
    let mut seen = String::new();
    console_shows(
        &mut events,
        &mut seen,
        "screen",
        "BERTH-PROBE: ready for input",
    )
    .await;
    assert!(
        seen.contains("BERTH-PROBE: gpu flush used 24 type 0x1100"),
        "{seen}"
    );

    // The fd itself, through the API.
    let (info, _fd) = client.vm_display("screen").await.unwrap();
    assert_eq!(
        (info.width, info.height, info.stride, info.format),
        (64, 48, 256, 2)
    );

    let png_path = dir.path().join("shot.png");
    let shot = daemon.berthctl(&["vm", "screenshot", "screen", png_path.to_str().unwrap()]);
    let (out, err) = text(&shot);
    assert!(shot.status.success(), "{out}{err}");
    assert!(out.contains("64x48"), "{out}");

    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0u8; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (64, 48));
    assert_eq!(frame.color_type, png::ColorType::Rgba);
    for y in 0..48u32 {
        for x in 0..64u32 {
            let i = ((y * 64 + x) * 4) as usize;
            assert_eq!(pixels[i..i + 4], pattern_rgba(x, y), "pixel {x},{y}");
        }
    }

    // Keyboard input reaches a VM whose guest does not read it without error (the events
    // wait in the device's queue).
    let typed = daemon.berthctl(&["vm", "type", "screen", "ok"]);
    assert!(typed.status.success(), "{}", text(&typed).1);

    let stop = daemon.berthctl(&["vm", "stop", "screen", "--force"]);
    assert!(stop.status.success(), "{}", text(&stop).1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_key_and_vm_type_reach_the_guest_keyboard() {
    if !kvm_available("vm_key_and_vm_type_reach_the_guest_keyboard") {
        return;
    }
    let dir = open_tempdir();
    let keys = probe_file(dir.path(), ProbeFinish::Keys);
    let daemon = Daemon::start(dir.path(), &[]);
    let (client, mut events) = daemon.client().await;
    client.subscribe().await.unwrap();
    create(&client, "keys", &keys).await;
    let started = daemon.berthctl(&["vm", "start", "keys"]);
    assert!(started.status.success(), "{}", text(&started).1);
    let mut seen = String::new();
    // Once the name is read, the driver is up: events sent now are not dropped by a reset.
    console_shows(
        &mut events,
        &mut seen,
        "keys",
        "BERTH-PROBE: input name Berth Keyboard",
    )
    .await;

    // Refused before anything is sent: the guest would otherwise get half of it.
    let refused = daemon.berthctl(&["vm", "type", "keys", "naïve"]);
    assert!(!refused.status.success());
    assert!(text(&refused).1.contains("'ï'"), "{}", text(&refused).1);
    let refused = daemon.berthctl(&["vm", "key", "keys", "ctrl+nokey"]);
    assert!(!refused.status.success());

    let key = daemon.berthctl(&["vm", "key", "keys", "shift+a"]);
    assert!(key.status.success(), "{}", text(&key).1);
    let typed = daemon.berthctl(&["vm", "type", "keys", "Hi"]);
    assert!(typed.status.success(), "{}", text(&typed).1);
    console_shows(
        &mut events,
        &mut seen,
        "keys",
        "BERTH-PROBE: all vcpus reported",
    )
    .await;

    let reported: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("BERTH-PROBE: input event used 8 "))
        .collect();
    assert_eq!(reported.len(), KEYS_EVENTS, "{seen}");
    let keys: Vec<&str> = reported
        .iter()
        .copied()
        .filter(|e| e.starts_with("0001 "))
        .collect();
    assert_eq!(
        keys,
        [
            // shift+a: pressed in order, released in reverse.
            "0001 002a 00000001",
            "0001 001e 00000001",
            "0001 001e 00000000",
            "0001 002a 00000000",
            // "Hi": H with shift, then i.
            "0001 002a 00000001",
            "0001 0023 00000001",
            "0001 0023 00000000",
            "0001 002a 00000000",
            "0001 0017 00000001",
            "0001 0017 00000000",
        ],
        "{seen}"
    );
    // A SYN_REPORT after each key change.
    assert!(
        reported
            .iter()
            .skip(1)
            .step_by(2)
            .all(|e| *e == "0000 0000 00000000"),
        "{seen}"
    );
}
