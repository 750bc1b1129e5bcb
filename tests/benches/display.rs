//! The guest's display end to end, on this machine's /dev/kvm: the probe guest's animate variant
//! redraws its display and transfers and flushes every frame whole, through berth-vmm's
//! virtio-gpu, the framebuffer memfd and berthd's pushed updates, into the Berth window (and
//! `berth-console` when it is built), at 1280x800 and 1920x1080. Reported per mode:
//! - frames berth-vmm publishes a second, its device thread's and its vCPU's CPU;
//! - how long after a frame is published its `DisplayUpdate` event reaches a client;
//! - for each window: the frames it shows a second (against the frames published: the share
//!   of the guest's frames a user sees), its CPU and the X server's (Xvfb copies what a window
//!   puts), with what draws the console named: the Berth window's console surface (X11
//!   MIT-SHM, its default on X11), or iced's renderers (tiny-skia, wgpu) drawing the picture
//!   as they do without X11.
//!
//! Release binaries: `cargo build --release --workspace` first (scripts/bench-display does).
#![allow(clippy::unwrap_used)] // a benchmark that cannot set up has nothing to report

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_api::vm::{BootSource, VmSpec};
use berth_api::{Event, Events};
use berth_display::framebuffer::FramebufferReader;
use berth_e2e::{Daemon, binary, open_tempdir, text};
use common::probe::ProbeFinish;
use common::probe_file;
use common::xvfb::{Killed, virtual_display_of_size, xdotool};

const MODES: [(u32, u32); 2] = [(1280, 800), (1920, 1080)];
const WINDOW: Duration = Duration::from_secs(10);

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime from a /proc stat line (the fields after the command's closing parenthesis).
fn stat_ticks(stat: &str) -> u64 {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    field(11) + field(12)
}

fn process_ticks(pid: u32) -> u64 {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// CPU ticks of each thread of `pid`, by thread name (threads of one name summed).
fn thread_ticks(pid: u32) -> Vec<(String, u64)> {
    let mut threads: Vec<(String, u64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ticks = stat_ticks(&std::fs::read_to_string(path.join("stat")).unwrap_or_default());
        let name = name.trim().to_owned();
        match threads.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += ticks,
            None => threads.push((name, ticks)),
        }
    }
    threads
}

fn share(ticks: u64, over: Duration) -> f64 {
    100.0 * ticks as f64 / clock_ticks() / over.as_secs_f64()
}

/// The berth-vmm process running VM `name` (its command line names the VM's directory).
fn vmm_pid(name: &str) -> u32 {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if comm.trim() == "berth-vmm" && String::from_utf8_lossy(&cmdline).contains(name) {
            return pid;
        }
    }
    panic!("no berth-vmm runs VM {name}");
}

async fn wait_console(events: &mut Events, name: &str, needle: &str) {
    let mut seen = String::new();
    let wait = async {
        while !seen.contains(needle) {
            if let Event::VmSerial { name: vm, data } = events.next().await.unwrap()
                && vm == name
            {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .is_err()
    {
        panic!("VM {name} never printed {needle:?}:\n{seen}");
    }
}

/// The VMM's side over `WINDOW`: frames published a second and the CPU of its threads.
fn measure_vmm(pid: u32, reader: &FramebufferReader) -> f64 {
    let (frame0, threads0, t0) = (reader.frame(), thread_ticks(pid), Instant::now());
    std::thread::sleep(WINDOW);
    let (frame1, threads1, elapsed) = (reader.frame(), thread_ticks(pid), t0.elapsed());
    let fps = (frame1 - frame0) as f64 / elapsed.as_secs_f64();
    let used = |name: &str| {
        let before = threads0.iter().find(|(n, _)| n == name).map_or(0, |t| t.1);
        let after = threads1.iter().find(|(n, _)| n == name).map_or(0, |t| t.1);
        share(after.saturating_sub(before), elapsed)
    };
    println!(
        "  berth-vmm publishes {fps:.0} frames/s; device thread {:.1} % of a core ({:.2} ms a frame), guest vCPU {:.1} %",
        used("virtio"),
        used("virtio") * 10.0 / fps.max(1.0),
        used("vcpu0"),
    );
    fps
}

/// How long after a frame is published its DisplayUpdate reaches a subscribed client: a thread
/// watches the header's frame number (spinning, for 3 s) while the events are timed as they come.
async fn measure_event_delay(events: &mut Events, name: &str, reader: FramebufferReader) {
    let published: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let watch = {
        let published = Arc::clone(&published);
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut last = reader.frame();
            while start.elapsed() < Duration::from_secs(3) {
                let now = reader.frame();
                if now != last {
                    last = now;
                    published.lock().unwrap().push((now, Instant::now()));
                }
                std::hint::spin_loop();
            }
        })
    };
    let mut arrived = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let next = tokio::time::timeout_at(deadline.into(), events.next()).await;
        match next {
            Ok(Some(Event::DisplayUpdate {
                name: vm, sequence, ..
            })) if vm == name => arrived.push((sequence, Instant::now())),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    watch.join().unwrap();
    let published = published.lock().unwrap();
    let mut delays: Vec<Duration> = arrived
        .iter()
        .filter_map(|(seq, at)| {
            let (_, seen) = published.iter().find(|(frame, _)| frame == seq)?;
            Some(at.saturating_duration_since(*seen))
        })
        .collect();
    delays.sort();
    if delays.is_empty() {
        println!("  no DisplayUpdate event was matched to a published frame");
        return;
    }
    let at = |p: f64| delays[((delays.len() - 1) as f64 * p).round() as usize];
    println!(
        "  published -> DisplayUpdate at a client: median {:.2} ms, p99 {:.2} ms ({} events)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        delays.len()
    );
}

/// What a window is asked to show before it is measured.
#[derive(Clone, Copy, PartialEq)]
enum Shows {
    /// As it opens (berth-console).
    AsOpened,
    /// The running VM selected in the sidebar: its display in the details pane's console.
    Details,
    /// The VM view, the window grown so a `display`-sized guest is shown pixel for pixel.
    VmView((u32, u32)),
}

/// Runs a window (`command`, which prints `... N frames/s ...` lines on stderr once a second)
/// for `WINDOW` once it shows frames; its mean frames a second and CPU.
fn measure_window(
    label: &str,
    mut command: Command,
    (display, xvfb): (&str, u32),
    title: &str,
    shows: Shows,
    published: f64,
) {
    let mut child = Killed(
        command
            .env("DISPLAY", display)
            .env("BERTH_CONSOLE_FPS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let rates: Arc<Mutex<Vec<(Instant, f64)>>> = Arc::default();
    // Everything else the window said, for a failure's message.
    let said: Arc<Mutex<Vec<String>>> = Arc::default();
    let stderr = child.0.stderr.take().unwrap();
    {
        let rates = Arc::clone(&rates);
        let said = Arc::clone(&said);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !line.contains("frames/s") {
                    said.lock().unwrap().push(line.clone());
                }
                let fps = line
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .windows(2)
                    .find(|w| w[1] == "frames/s")
                    .and_then(|w| w[0].parse::<f64>().ok());
                if let Some(fps) = fps {
                    rates.lock().unwrap().push((Instant::now(), fps));
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while xdotool(display, &["search", "--onlyvisible", "--name", title])
        .trim()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "{label}: no window {title:?} (exit: {:?}); it said: {:?}",
            child.0.try_wait(),
            said.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    if shows != Shows::AsOpened {
        // The first VM in the sidebar (the one running), as a user selects it.
        std::thread::sleep(Duration::from_secs(2));
        xdotool(display, &["mousemove", "65", "188", "click", "1"]);
    }
    if let Shows::VmView((width, height)) = shows {
        // Show screen (the toolbar's last button), then room for the guest's whole display
        // under the VM view's toolbar, so it is drawn pixel for pixel.
        std::thread::sleep(Duration::from_secs(1));
        xdotool(display, &["mousemove", "853", "75", "click", "1"]);
        std::thread::sleep(Duration::from_secs(1));
        let window = xdotool(display, &["search", "--name", title]);
        let window = window.lines().next().unwrap_or_default().to_owned();
        let (w, h) = ((width + 4).to_string(), (height + 80).to_string());
        xdotool(display, &["windowsize", &window, &w, &h]);
    }
    while rates.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "{label}: the window shows no frames; it said: {:?}",
            said.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (start, ticks0, x0) = (Instant::now(), process_ticks(pid), process_ticks(xvfb));
    std::thread::sleep(WINDOW);
    let (elapsed, ticks1, x1) = (start.elapsed(), process_ticks(pid), process_ticks(xvfb));
    let rates = rates.lock().unwrap();
    let during: Vec<f64> = rates
        .iter()
        .filter(|(at, _)| *at > start)
        .map(|(_, fps)| *fps)
        .collect();
    let fps = during.iter().sum::<f64>() / during.len().max(1) as f64;
    println!(
        "  {label}: shows {fps:.1} frames/s ({:.2} of the published), {:.1} % of a core (Xvfb {:.1} %)",
        fps / published.max(1.0),
        share(ticks1 - ticks0, elapsed),
        share(x1 - x0, elapsed)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !Path::new("/dev/kvm").exists() {
        println!("display benchmark skipped: /dev/kvm is absent");
        return;
    }
    let dir = open_tempdir();
    let image = probe_file(dir.path(), ProbeFinish::Animate);
    let daemon = Daemon::start(dir.path(), &[]);
    let (client, mut events) = daemon.client().await;
    client.subscribe().await.unwrap();
    // Room for the 1920x1080 windows.
    let display = virtual_display_of_size(0, "2200x1300");
    if display.is_none() {
        println!("(Xvfb or xdotool missing: the windows are not measured)");
    }
    let console = binary_if_built("berth-console");
    for (width, height) in MODES {
        let name = format!("animate-{width}x{height}");
        client
            .vm_create(VmSpec {
                name: name.clone(),
                cpus: 1,
                memory: 128 << 20,
                disk: 0,
                boot: Some(BootSource::Kernel {
                    kernel: image.clone(),
                    initrd: None,
                    cmdline: String::new(),
                }),
                overcommit: false,
                ..Default::default()
            })
            .await
            .unwrap();
        let size = format!("{width}x{height}");
        let edit = daemon.berthctl(&["vm", "edit", &name, "--display", &size]);
        assert!(edit.status.success(), "{}", text(&edit).1);
        let start = daemon.berthctl(&["vm", "start", &name]);
        assert!(start.status.success(), "{}", text(&start).1);
        wait_console(&mut events, &name, "BERTH-PROBE: animating").await;
        println!("{width}x{height}, whole frames transferred and flushed by the guest:");
        let pid = vmm_pid(&name);
        let (_, fd) = client.vm_display(&name).await.unwrap();
        let reader = FramebufferReader::open(fd).unwrap();
        std::thread::sleep(Duration::from_secs(1));
        let published = measure_vmm(pid, &reader);
        measure_event_delay(&mut events, &name, reader).await;
        if let Some((display, xvfb)) = &display {
            let x = (display.as_str(), xvfb.0.id());
            for (what, backend, surface) in [
                (
                    "console surface (X11 MIT-SHM; iced's tiny-skia for the rest)",
                    "tiny-skia",
                    "1",
                ),
                ("tiny-skia renderer, no surface", "tiny-skia", "0"),
                (
                    "wgpu renderer (OpenGL on Mesa llvmpipe here), no surface",
                    "wgpu",
                    "0",
                ),
            ] {
                let mut berth = Command::new(binary("berth"));
                berth.env("BERTH_SOCKET", &daemon.socket);
                berth.env("ICED_BACKEND", backend);
                berth.env("BERTH_CONSOLE_SURFACE", surface);
                measure_window(
                    &format!("Berth window, {what}"),
                    berth,
                    x,
                    "^Berth$",
                    Shows::Details,
                    published,
                );
            }
            // The VM view at 1:1, on the surface and on tiny-skia.
            for (what, surface) in [
                ("console surface", "1"),
                ("tiny-skia renderer, no surface", "0"),
            ] {
                let mut berth = Command::new(binary("berth"));
                berth.env("BERTH_SOCKET", &daemon.socket);
                berth.env("ICED_BACKEND", "tiny-skia");
                berth.env("BERTH_CONSOLE_SURFACE", surface);
                measure_window(
                    &format!("Berth VM view at 1:1, {what}"),
                    berth,
                    x,
                    "Berth",
                    Shows::VmView((width, height)),
                    published,
                );
            }
            for (what, surface) in [
                ("console surface (X11 MIT-SHM)", "1"),
                ("pixels (wgpu; GL on llvmpipe here)", "0"),
            ] {
                let Some(console) = &console else { break };
                let mut command = Command::new(console);
                command
                    .arg(&name)
                    .env("BERTH_SOCKET", &daemon.socket)
                    .env("BERTH_CONSOLE_SURFACE", surface);
                measure_window(
                    &format!("berth-console, {what}"),
                    command,
                    x,
                    &format!("^{name} "),
                    Shows::AsOpened,
                    published,
                );
            }
        }
        let stop = daemon.berthctl(&["vm", "stop", &name, "--force"]);
        assert!(stop.status.success(), "{}", text(&stop).1);
        let delete = daemon.berthctl(&["vm", "delete", &name]);
        assert!(delete.status.success(), "{}", text(&delete).1);
    }
}

/// A workspace binary, when it has been built.
fn binary_if_built(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join(name);
    path.exists().then_some(path)
}
