//! A VM's screen and keyboard through a real berthd: the probe guest (vmm-backend/probe, in
//! Berth's flat image format, on this machine's /dev/kvm) draws its virtio-gpu pattern and
//! `berthctl vm screenshot` saves it as a PNG, pixel for pixel; `vm key` and `vm type` reach
//! the probe's virtio-input driver, which reports each event on serial; `vm display-size`
//! tells the guest a new preferred size, which it switches its screen to.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use std::time::Duration;

use berth_api::{Event, Events, Request};
use berth_e2e::{Daemon, open_tempdir, text};
use common::probe::{KEYS_EVENTS, ProbeFinish};
use common::{create, create_probe_vm, kvm_available, probe_file, serial_log_shows, serial_shows};

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

/// The same pixel as the guest stores it (B8G8R8X8 bytes).
fn pattern_bgrx(x: u32, y: u32) -> [u8; 3] {
    let [r, g, b, _] = pattern_rgba(x, y);
    [b, g, r]
}

/// The screen events pushed for VM `name` until its console has printed `needle`.
async fn screen_events_until(
    events: &mut Events,
    seen: &mut String,
    name: &str,
    needle: &str,
) -> Vec<Event> {
    let mut screen = Vec::new();
    let wait = async {
        while !seen.contains(needle) {
            match events.next().await.expect("the connection stays open") {
                Event::VmSerial { name: vm, data } if vm == name => {
                    seen.push_str(&String::from_utf8_lossy(&data));
                }
                event @ (Event::DisplayMode { .. } | Event::DisplayUpdate { .. }) => {
                    screen.push(event)
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
    // The display's notices travel apart from the serial line (a thread of their own, merged
    // over a short interval): what the guest drew before it printed may still be on its way.
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(300), events.next()).await
    {
        if matches!(
            event,
            Event::DisplayMode { .. } | Event::DisplayUpdate { .. }
        ) {
            screen.push(event);
        }
    }
    screen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_of_the_probe_matches_its_pattern_pixel_for_pixel() {
    if !kvm_available("screenshot_of_the_probe_matches_its_pattern_pixel_for_pixel") {
        return;
    }
    let dir = open_tempdir();
    let screen = probe_file(dir.path(), ProbeFinish::Display);
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
    let screen_events = screen_events_until(
        &mut events,
        &mut seen,
        "screen",
        "BERTH-PROBE: ready for input",
    )
    .await;
    // The mode is announced before the frame that has it; the flush is pushed with its frame
    // number and rectangle (the probe's bad flush of an unknown resource is not).
    assert_eq!(
        screen_events,
        [
            Event::DisplayMode {
                name: "screen".into(),
                width: 64,
                height: 48
            },
            Event::DisplayUpdate {
                name: "screen".into(),
                sequence: 2,
                x: 0,
                y: 0,
                width: 64,
                height: 48
            }
        ],
        "{seen}"
    );
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

    // A change on the screen is pushed too, with the next frame number, and the framebuffer
    // holds it by then.
    client
        .call(Request::VmSerialInput {
            name: "screen".into(),
            data: b"invert\n".to_vec(),
        })
        .await
        .unwrap();
    let (_, fd) = client.vm_display("screen").await.unwrap();
    let mut reader = berth_display::framebuffer::FramebufferReader::open(fd).unwrap();
    let changed =
        screen_events_until(&mut events, &mut seen, "screen", "BERTH-PROBE: inverted").await;
    let Some(Event::DisplayUpdate {
        sequence, width, ..
    }) = changed.last()
    else {
        panic!("no update pushed for the inverted screen: {changed:?}\n{seen}");
    };
    assert_eq!((*sequence, *width), (3, 64), "{changed:?}");
    assert!(reader.frame() >= 3);
    let frame = reader.read_frame().unwrap();
    let [b, g, r] = pattern_bgrx(0, 0);
    assert_eq!(
        frame.pixels[..3],
        [!b, !g, !r],
        "the inverted pattern's first pixel"
    );

    // Keyboard input reaches a VM whose guest does not read it without error (the events
    // wait in the device's queue).
    let typed = daemon.berthctl(&["vm", "type", "screen", "ok"]);
    assert!(typed.status.success(), "{}", text(&typed).1);

    let stop = daemon.berthctl(&["vm", "stop", "screen", "--force"]);
    assert!(stop.status.success(), "{}", text(&stop).1);
}

/// A root berthd in `dir` running the probe variant `finish` as VM `name`, its events
/// subscribed to.
async fn running_probe(
    dir: &std::path::Path,
    finish: ProbeFinish,
    name: &str,
) -> (Daemon, berth_api::Client, Events) {
    let image = probe_file(dir, finish);
    let daemon = Daemon::start(dir, &[]);
    let (client, events) = daemon.client().await;
    client.subscribe().await.unwrap();
    create(&client, name, &image).await;
    let started = daemon.berthctl(&["vm", "start", name]);
    assert!(started.status.success(), "{}", text(&started).1);
    (daemon, client, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_follows_a_new_preferred_display_size() {
    if !kvm_available("the_guest_follows_a_new_preferred_display_size") {
        return;
    }
    let dir = open_tempdir();
    let (daemon, _client, mut events) =
        running_probe(dir.path(), ProbeFinish::Display, "follow").await;
    let mut seen = String::new();
    screen_events_until(
        &mut events,
        &mut seen,
        "follow",
        "BERTH-PROBE: ready for input",
    )
    .await;

    // The window would send its size: the guest is told (a configuration change of its
    // virtio-gpu), reads the new size and shows a screen of it.
    let resized = daemon.berthctl(&["vm", "display-size", "follow", "800x600"]);
    assert!(resized.status.success(), "{}", text(&resized).1);
    let changed = screen_events_until(
        &mut events,
        &mut seen,
        "follow",
        "BERTH-PROBE: display size followed",
    )
    .await;
    assert!(
        seen.contains("BERTH-PROBE: gpu display changed to 800x600"),
        "{seen}"
    );
    assert!(
        changed.contains(&Event::DisplayMode {
            name: "follow".into(),
            width: 800,
            height: 600
        }),
        "{changed:?}\n{seen}"
    );
    let png_path = dir.path().join("follow.png");
    let shot = daemon.berthctl(&["vm", "screenshot", "follow", png_path.to_str().unwrap()]);
    assert!(shot.status.success(), "{}", text(&shot).1);
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0u8; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (800, 600));
    // The pattern in its corner.
    let at = |x: u32, y: u32| {
        let i = ((y * 800 + x) * 4) as usize;
        pixels[i..i + 4].to_vec()
    };
    assert_eq!(at(10, 20), pattern_rgba(10, 20));

    // A size no display has is refused, and the guest keeps its screen.
    let bad = daemon.berthctl(&["vm", "display-size", "follow", "9000x600"]);
    assert!(!bad.status.success());
    let why = text(&bad).1;
    assert!(why.contains("9000x600"), "{why}");
    let stop = daemon.berthctl(&["vm", "stop", "follow", "--force"]);
    assert!(stop.status.success(), "{}", text(&stop).1);
}

#[test]
fn a_desk_users_guest_follows_a_new_preferred_display_size() {
    let Some(user) = berth_e2e::user::TestUser::desk() else {
        return;
    };
    if !kvm_available("a_desk_users_guest_follows_a_new_preferred_display_size") {
        return;
    }
    let dir = open_tempdir();
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    let out = create_probe_vm(
        &daemon,
        dir.path(),
        "follow",
        ProbeFinish::Display,
        Some(&user),
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let out = daemon.berthctl(&["vm", "start", "follow"]);
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    serial_log_shows(&daemon, "follow", "BERTH-PROBE: ready for input");

    let resized = daemon.berthctl(&["vm", "display-size", "follow", "1024x768"]);
    assert!(resized.status.success(), "{}", text(&resized).1);
    serial_log_shows(
        &daemon,
        "follow",
        "BERTH-PROBE: gpu display changed to 1024x768",
    );
    serial_log_shows(&daemon, "follow", "BERTH-PROBE: display size followed");
    // The screenshot, as the user takes it into a file of their own, has the new size.
    let png_path = dir.path().join(user.name).join("follow.png");
    let shot = daemon.berthctl(&["vm", "screenshot", "follow", png_path.to_str().unwrap()]);
    let (out, err) = text(&shot);
    assert!(shot.status.success(), "{out}{err}");
    assert!(out.contains("1024x768"), "{out}");
    let stop = daemon.berthctl(&["vm", "stop", "follow", "--force"]);
    assert!(stop.status.success(), "{}", text(&stop).1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_key_and_vm_type_reach_the_guest_keyboard() {
    if !kvm_available("vm_key_and_vm_type_reach_the_guest_keyboard") {
        return;
    }
    let dir = open_tempdir();
    let (daemon, _client, mut events) = running_probe(dir.path(), ProbeFinish::Keys, "keys").await;
    let mut seen = String::new();
    // Once the name is read, the driver is up: events sent now are not dropped by a reset.
    serial_shows(
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
    serial_shows(
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
