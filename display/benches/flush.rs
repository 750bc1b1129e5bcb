//! Flush → frame published: how long after the guest notifies a TRANSFER_TO_HOST_2D and a
//! RESOURCE_FLUSH a client that has the framebuffer mapped sees the new frame number, for a
//! small damaged rectangle and a whole 1920x1080 frame, and how many whole frames a second the
//! device can publish and at what CPU cost.
//!
//! The real device model ([`Gpu::process_queue`]) on a real split virtqueue in guest memory, as
//! berth-vmm's device thread runs it when the guest's notify wakes it; the client is a second
//! thread with its own read-only mapping of the memfd (what the window gets over SCM_RIGHTS),
//! spinning on the header's frame number. Goal (issue 4): one frame (16 ms) of latency and
//! 60 frames a second at 1920x1080 within 25 % of a core.
//!
//! `cargo bench -p berth-display --bench flush` (run by scripts/bench-display).
#![allow(clippy::unwrap_used)] // a benchmark that cannot set up has nothing to report

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use berth_display::framebuffer::FramebufferReader;
use berth_display::gpu::{Format, Gpu, GpuConfig, cmd};
use berth_display::testing::{BACKING, Buf, Driver, REQUEST, RESPONSE, request, thread_cpu};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const ROUNDS: usize = 300;

/// The guest's side: a 1920x1080 resource with backing in guest RAM, shown on the scanout.
fn set_up() -> (Driver, Gpu) {
    let mut gpu = Gpu::new(GpuConfig {
        width: WIDTH,
        height: HEIGHT,
        ..GpuConfig::default()
    })
    .unwrap();
    let bytes = WIDTH * HEIGHT * 4;
    let mut driver = Driver::with_memory(BACKING as usize + bytes as usize);
    let format = Format::B8G8R8X8 as u32;
    let ok = |code: u32, what: &str| assert_eq!(code, cmd::RESP_OK_NODATA, "{what}");
    ok(
        driver.command(
            &mut gpu,
            &request(cmd::RESOURCE_CREATE_2D, &[1, format, WIDTH, HEIGHT]),
        ),
        "create",
    );
    ok(
        driver.command(
            &mut gpu,
            &request(
                cmd::RESOURCE_ATTACH_BACKING,
                &[1, 1, BACKING as u32, 0, bytes, 0],
            ),
        ),
        "attach",
    );
    ok(
        driver.command(
            &mut gpu,
            &request(cmd::SET_SCANOUT, &[0, 0, WIDTH, HEIGHT, 0, 1]),
        ),
        "scanout",
    );
    (driver, gpu)
}

/// Posts TRANSFER and FLUSH of `rect` the way the Linux driver does (two chains, one notify)
/// and has the device process them, as its thread does when the notify wakes it.
fn transfer_and_flush(driver: &mut Driver, gpu: &mut Gpu, rect: [u32; 4]) {
    let [x, y, w, h] = rect;
    let offset = (y * WIDTH + x) * 4;
    let transfer = request(cmd::TRANSFER_TO_HOST_2D, &[x, y, w, h, offset, 0, 1, 0]);
    let flush = request(cmd::RESOURCE_FLUSH, &[x, y, w, h, 1, 0]);
    let second = REQUEST + 0x100;
    driver.write_bytes(REQUEST, &transfer);
    driver.write_bytes(second, &flush);
    driver.submit(
        0,
        &[
            Buf(REQUEST, transfer.len() as u32, false),
            Buf(RESPONSE, 24, true),
        ],
    );
    driver.submit(
        0,
        &[
            Buf(second, flush.len() as u32, false),
            Buf(RESPONSE + 0x100, 24, true),
        ],
    );
    driver.process(gpu, 0);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Latency from the notify to the client seeing the frame, and the device's CPU per frame.
fn measure(rect: [u32; 4], label: &str) {
    let (mut driver, mut gpu) = set_up();
    let fd = gpu.framebuffer().fd().try_clone_to_owned().unwrap();
    let reader = FramebufferReader::open(fd).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (seen_tx, seen_rx) = mpsc::channel::<(u64, Instant)>();
    let client = {
        let stop = Arc::clone(&stop);
        // Read before the first flush, so that flush is seen as a change.
        let mut last = reader.frame();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = reader.frame();
                if now != last {
                    last = now;
                    let _ = seen_tx.send((now, Instant::now()));
                }
                std::hint::spin_loop();
            }
        })
    };
    // The guest changes the pixels between frames (the copy is the same size either way).
    let mut latencies = Vec::with_capacity(ROUNDS);
    let mut cpu = Duration::ZERO;
    for round in 0..ROUNDS {
        driver.write_bytes(BACKING, &[round as u8; 4096]);
        let expected = gpu.framebuffer().frame() + 1;
        let (start, cpu0) = (Instant::now(), thread_cpu());
        transfer_and_flush(&mut driver, &mut gpu, rect);
        cpu += thread_cpu() - cpu0;
        loop {
            let (frame, at) = seen_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the client sees every published frame");
            if frame >= expected {
                latencies.push(at - start);
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    latencies.sort();
    println!(
        "flush->published {label}: median {:.3} ms, p99 {:.3} ms, max {:.3} ms; device CPU {:.3} ms a frame",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3 / ROUNDS as f64,
    );
}

/// Whole frames back to back: frames a second, and the device's share of a core at 60 a second.
fn sustained() {
    let (mut driver, mut gpu) = set_up();
    let full = [0, 0, WIDTH, HEIGHT];
    let (start, cpu0) = (Instant::now(), thread_cpu());
    let mut frames = 0u32;
    while start.elapsed() < Duration::from_secs(3) {
        transfer_and_flush(&mut driver, &mut gpu, full);
        frames += 1;
    }
    let (wall, cpu) = (start.elapsed(), thread_cpu() - cpu0);
    let per_frame = cpu.as_secs_f64() / f64::from(frames);
    println!(
        "sustained 1920x1080 whole frames: {:.0} frames/s on one core; at 60 frames/s the device uses {:.1} % of a core",
        f64::from(frames) / wall.as_secs_f64(),
        per_frame * 60.0 * 100.0,
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too: either way, run once.
    measure([0, 0, 64, 64], "64x64 rectangle");
    measure([0, 0, WIDTH, HEIGHT], "1920x1080 frame");
    sustained();
}
