//! berth-vmm: one process = one VM. berthd starts it per running VM and reads its exit status:
//! 0 the guest powered off, 2 the guest reset (the supervisor restarts it), 3 the VM crashed,
//! 4 the host stopped it (`kill` on the control channel), 1 an error before the guest ran.
//!
//! Kept small on purpose (a few MiB resident besides guest RAM): std threads, no async runtime,
//! no argument-parsing crate, no buffers beyond a page.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use berth_display::gpu::GpuConfig;
use berth_display::notice::{Notice, Pending};
use vmm_backend::devices::legacy::LegacyDevices;
use vmm_backend::devices::power_button::{POWER_BUTTON_GSI, PowerButton};
use vmm_backend::linux::LinuxBoot;
use vmm_backend::virtio::block::Block;
use vmm_backend::virtio::gpu::VirtioGpu;
use vmm_backend::virtio::input::{Input, InputEvent, InputHandle, InputKind, ev};
use vmm_backend::virtio::mmio_device::VirtioMmioDevices;
use vmm_backend::virtio::rng::Rng;
use vmm_backend::{BootSource, GuestRam, Vm, VmConfig, VmExitReason, VmHandle};

const USAGE: &str = "usage: berth-vmm --kernel BZIMAGE [--initrd FILE] [--cmdline TEXT] \
[--memory SIZE (e.g. 512M, 2G)] [--cpus N] [--serial-log FILE] [--disk FILE [--read-only]]... \
[--display WIDTHxHEIGHT] [--control-fd N] [--events-fd N]";

/// Where a flat test image (no ACPI) finds the display devices: the GPU, the keyboard and the
/// tablet in consecutive windows from here (GSIs 16, 17, 18), the fixed addresses the probe's
/// GPU and input variants drive (`PROBE_VIRTIO_GPU`, `PROBE_VIRTIO_INPUT`).
const FLAT_DISPLAY_BASE: u64 = 0xd000_3000;

const EXIT_POWER_OFF: u8 = 0;
const EXIT_ERROR: u8 = 1;
const EXIT_RESET: u8 = 2;
const EXIT_CRASH: u8 = 3;
const EXIT_STOPPED: u8 = 4;

const DEFAULT_CMDLINE: &str = "console=ttyS0 panic=-1";

/// A disk to attach as virtio-blk (`/dev/vda`, `/dev/vdb`, ... in the order given).
#[derive(Debug)]
struct Disk {
    path: PathBuf,
    read_only: bool,
}

#[derive(Debug)]
struct Options {
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    cmdline: String,
    memory: u64,
    cpus: u32,
    serial_log: Option<PathBuf>,
    disks: Vec<Disk>,
    control_fd: Option<i32>,
    /// A SOCK_SEQPACKET socket the screen's notices go to (`berth_display::notice`).
    events_fd: Option<i32>,
    /// The display's mode: attaches virtio-gpu and the virtio-input keyboard and tablet.
    display: Option<(u32, u32)>,
}

/// `WIDTHxHEIGHT`, each side 1..=4095 (what the framebuffer can carry).
fn parse_display(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("bad --display {text:?}: use WIDTHxHEIGHT, e.g. 1280x800");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    let max = berth_display::framebuffer::MAX_DIMENSION;
    if !(1..=max).contains(&w) || !(1..=max).contains(&h) {
        return Err(format!("--display {text}: each side must be 1..={max}"));
    }
    Ok((w, h))
}

fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 10),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 20),
        Some(b'G' | b'g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("bad size {text:?}: use a number with K, M or G"))?;
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut args = args.peekable();
    let mut kernel = None;
    let mut initrd = None;
    let mut cmdline = DEFAULT_CMDLINE.to_string();
    let mut memory = 512 << 20;
    let mut cpus = 1;
    let mut serial_log = None;
    let mut disks: Vec<Disk> = Vec::new();
    let mut control_fd = None;
    let mut events_fd = None;
    let mut display = None;
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--kernel" => kernel = Some(PathBuf::from(value()?)),
            "--initrd" => initrd = Some(PathBuf::from(value()?)),
            "--cmdline" => cmdline = value()?,
            "--memory" => memory = parse_size(&value()?)?,
            "--cpus" => {
                let v = value()?;
                cpus = v.parse().map_err(|_| format!("bad --cpus {v:?}"))?;
            }
            "--serial-log" => serial_log = Some(PathBuf::from(value()?)),
            "--disk" => disks.push(Disk {
                path: PathBuf::from(value()?),
                read_only: false,
            }),
            "--read-only" => match disks.last_mut() {
                Some(disk) => disk.read_only = true,
                None => return Err("--read-only must follow a --disk".into()),
            },
            "--control-fd" => {
                let v = value()?;
                control_fd = Some(v.parse().map_err(|_| format!("bad --control-fd {v:?}"))?);
            }
            "--events-fd" => {
                let v = value()?;
                events_fd = Some(v.parse().map_err(|_| format!("bad --events-fd {v:?}"))?);
            }
            "--display" => display = Some(parse_display(&value()?)?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let kernel = kernel.ok_or_else(|| format!("--kernel is required\n{USAGE}"))?;
    Ok(Options {
        kernel,
        initrd,
        cmdline,
        memory,
        cpus,
        serial_log,
        disks,
        control_fd,
        events_fd,
        display,
    })
}

/// Serial output to stdout and, if asked, a log file too.
struct Console {
    stdout: std::io::Stdout,
    log: Option<std::fs::File>,
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A closed stdout (the supervisor went away) must not stop the guest or the log.
        let _ = self.stdout.write_all(buf);
        let _ = self.stdout.flush();
        if let Some(log) = &mut self.log {
            log.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.stdout.flush();
        match &mut self.log {
            Some(log) => log.flush(),
            None => Ok(()),
        }
    }
}

/// A Berth flat image (test guests) or else a bzImage, by the file's first bytes.
fn boot_source(options: &Options) -> Result<BootSource, String> {
    let mut head = [0u8; 8];
    let mut file = std::fs::File::open(&options.kernel)
        .map_err(|e| format!("cannot open {}: {e}", options.kernel.display()))?;
    let flat = file.read_exact(&mut head).is_ok() && &head == vmm_backend::boot::FLAT_IMAGE_MAGIC;
    if flat {
        let bytes = std::fs::read(&options.kernel)
            .map_err(|e| format!("cannot read {}: {e}", options.kernel.display()))?;
        return vmm_backend::boot::parse_flat_image_file(&bytes)
            .ok_or_else(|| format!("{} is a truncated flat image", options.kernel.display()));
    }
    Ok(BootSource::Linux(LinuxBoot {
        kernel: options.kernel.clone(),
        initrd: options.initrd.clone(),
        cmdline: options.cmdline.clone(),
        // Filled in by `run` once the devices are placed.
        virtio_devices: Vec::new(),
        power_button_gsi: None,
    }))
}

fn run(options: Options) -> Result<VmExitReason, String> {
    let log = match &options.serial_log {
        Some(path) => Some(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        ),
        None => None,
    };
    // Huge pages halve a Linux boot in the nested lab (34-48 s -> 17-25 s under load): no
    // device process shares guest RAM yet, so the memfd's only use would be future sharing.
    let ram = GuestRam::AnonymousHugePages;
    let mut vm = Vm::with_ram(
        &VmConfig {
            vcpus: options.cpus,
            memory_size: options.memory,
        },
        ram,
    )
    .map_err(|e| e.to_string())?;
    let console = Console {
        stdout: std::io::stdout(),
        log,
    };
    let legacy = LegacyDevices::attach(&mut vm, Box::new(console)).map_err(|e| e.to_string())?;
    let power_button = PowerButton::attach(&mut vm).map_err(|e| e.to_string())?;
    let mut virtio = VirtioMmioDevices::new();
    let mut screen = None;
    // SAFETY: the parent handed us this descriptor for the screen's notices; nothing else in
    // this process owns it.
    let notices = options
        .events_fd
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    let source = match boot_source(&options)? {
        BootSource::Linux(mut linux) => {
            for (index, disk) in options.disks.iter().enumerate() {
                let block = Block::open(&disk.path, disk.read_only, &format!("berth-disk{index}"))
                    .map_err(|e| format!("cannot attach {}: {e}", disk.path.display()))?;
                virtio
                    .attach(&mut vm, Box::new(block))
                    .map_err(|e| e.to_string())?;
            }
            virtio
                .attach(&mut vm, Box::new(Rng::new()))
                .map_err(|e| e.to_string())?;
            if let Some(mode) = options.display {
                screen = Some(attach_display(&mut vm, &mut virtio, mode, notices)?);
            }
            linux.virtio_devices = virtio.acpi_devices();
            linux.power_button_gsi = Some(POWER_BUTTON_GSI);
            BootSource::Linux(linux)
        }
        // A flat test guest has no ACPI to find virtio devices in (and its own use of the MMIO
        // hole): it gets only the display devices, when asked, at the fixed addresses it knows.
        other if options.disks.is_empty() => {
            if let Some(mode) = options.display {
                virtio = VirtioMmioDevices::with_base(FLAT_DISPLAY_BASE);
                screen = Some(attach_display(&mut vm, &mut virtio, mode, notices)?);
            }
            other
        }
        _ => return Err("--disk needs a Linux kernel: a flat image has no ACPI to find it".into()),
    };
    vm.load(&source).map_err(|e| e.to_string())?;
    // Lives until the VM has ended; dropping it stops the device thread.
    let _devices = virtio.start().map_err(|e| e.to_string())?;

    // Serial input: bytes from stdin as they come. Detached: it blocks in read() and the
    // process exits under it.
    let serial = legacy.serial.clone();
    let _ = std::thread::Builder::new()
        .name("serial-in".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                let mut pending = &buf[..n];
                while !pending.is_empty() {
                    let fed = match serial.lock() {
                        Ok(mut port) => port.feed_input(pending).unwrap_or(0),
                        Err(_) => return,
                    };
                    pending = &pending[fed..];
                    if fed == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
            }
        });

    if let Some(fd) = options.control_fd {
        let handle = vm.handle();
        // SAFETY: the parent handed us this descriptor for the control channel; nothing else
        // in this process owns it.
        let control = unsafe { std::fs::File::from_raw_fd(fd) };
        let _ = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || control_loop(control, &handle, &power_button, screen.as_ref()));
    }

    vm.run().map_err(|e| e.to_string())
}

/// The display devices' host side: what the control channel hands out and feeds.
struct Screen {
    /// A duplicate of the framebuffer memfd, passed to berthd on `display`.
    framebuffer: OwnedFd,
    mode: (u32, u32),
    keyboard: InputHandle,
    tablet: InputHandle,
}

/// Attaches virtio-gpu (its display reporting `mode`), then the keyboard and the tablet, each
/// input device's queue 0 also processed when the host pushes events.
fn attach_display(
    vm: &mut Vm,
    virtio: &mut VirtioMmioDevices,
    mode: (u32, u32),
    notices: Option<OwnedFd>,
) -> Result<Screen, String> {
    let mut gpu = VirtioGpu::new(GpuConfig {
        width: mode.0,
        height: mode.1,
        ..GpuConfig::default()
    })
    .map_err(|e| format!("cannot create the display: {e}"))?;
    if let Some(socket) = notices {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let notifier = {
            let pending = Arc::clone(&pending);
            std::thread::Builder::new()
                .name("screen-notices".into())
                .spawn(move || send_notices(&socket, &pending))
                .map_err(|e| format!("cannot start the screen notifier: {e}"))?
        };
        let notifier = notifier.thread().clone();
        gpu.set_event_sink(Box::new(move |event| {
            if let Some(notice) = Notice::from_event(&event) {
                pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(notice);
                // No system call unless the notifier is parked.
                notifier.unpark();
            }
        }));
    }
    let framebuffer = gpu
        .gpu()
        .framebuffer()
        .fd()
        .try_clone_to_owned()
        .map_err(|e| format!("cannot share the framebuffer: {e}"))?;
    virtio
        .attach(vm, Box::new(gpu))
        .map_err(|e| e.to_string())?;
    let mut handles = Vec::new();
    for (kind, serial) in [
        (InputKind::Keyboard, "berth-keyboard"),
        (InputKind::Tablet, "berth-tablet"),
    ] {
        let input = Input::new(kind, serial).map_err(|e| e.to_string())?;
        let handle = input.handle();
        let wake = handle
            .wake_fd()
            .try_clone()
            .map_err(|e| format!("cannot watch the input device: {e}"))?;
        virtio
            .attach(vm, Box::new(input))
            .map_err(|e| e.to_string())?;
        virtio.wake_on(wake, 0).map_err(|e| e.to_string())?;
        handles.push(handle);
    }
    let (Some(tablet), Some(keyboard)) = (handles.pop(), handles.pop()) else {
        return Err("the input devices were not created".into());
    };
    Ok(Screen {
        framebuffer,
        mode,
        keyboard,
        tablet,
    })
}

/// The least time between two notices: at most 250 a second reach berthd however often the
/// guest flushes (Linux's console flushes glyph by glyph; in the nested lab a notice a flush
/// starved berthd), and a window reads at most 60 frames a second anyway.
const NOTICE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(4);

/// The screen notifier: sends what the device thread recorded, merged, then waits out the
/// interval. The device thread only records and unparks, so it never waits on berthd; this
/// thread may (a send blocks while berthd's socket is full), and ends when berthd is gone.
fn send_notices(socket: &OwnedFd, pending: &Mutex<Pending>) {
    loop {
        std::thread::park();
        let notices = pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        for notice in notices {
            let text = notice.encode();
            // SAFETY: `text` is a live buffer of `text.len()` bytes for the duration of the call
            // and `socket` an open descriptor we own; send() does not keep the pointer.
            let sent = unsafe {
                libc::send(
                    socket.as_raw_fd(),
                    text.as_ptr().cast(),
                    text.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if sent < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                return;
            }
        }
        std::thread::sleep(NOTICE_INTERVAL);
    }
}

/// Parses `DEV TYPE CODE VALUE[;TYPE CODE VALUE...]` into the device and its events, a
/// SYN_REPORT added at the end when the list does not end in one (values may be negative:
/// wheel clicks).
fn parse_input(args: &str) -> Result<(&str, Vec<InputEvent>), String> {
    let (device, rest) = args
        .trim()
        .split_once(' ')
        .ok_or("usage: input keyboard|tablet TYPE CODE VALUE[;TYPE CODE VALUE...]")?;
    let mut events = Vec::new();
    for event in rest.split(';') {
        let fields: Vec<&str> = event.split_whitespace().collect();
        let [kind, code, value] = fields[..] else {
            return Err(format!(
                "bad event {:?}: give TYPE CODE VALUE",
                event.trim()
            ));
        };
        let bad = || format!("bad event {:?}: numbers only", event.trim());
        let value: i64 = value.parse().map_err(|_| bad())?;
        let value = i32::try_from(value)
            .map(|v| v as u32)
            .or_else(|_| u32::try_from(value))
            .map_err(|_| bad())?;
        events.push(InputEvent::new(
            kind.parse().map_err(|_| bad())?,
            code.parse().map_err(|_| bad())?,
            value,
        ));
    }
    if events.last().is_none_or(|e| e.kind != ev::EV_SYN) {
        events.push(InputEvent::new(ev::EV_SYN, ev::SYN_REPORT, 0));
    }
    Ok((device, events))
}

/// Writes `reply` on the control socket with `fd` attached (SCM_RIGHTS) to its first byte.
fn send_with_fd(socket: &std::fs::File, reply: &[u8], fd: &OwnedFd) -> std::io::Result<()> {
    let raw = fd.as_raw_fd();
    let mut iov = libc::iovec {
        iov_base: reply.as_ptr() as *mut libc::c_void,
        iov_len: reply.len(),
    };
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut space = [0u64; 4];
    // SAFETY: CMSG_SPACE only computes a size.
    let space_len = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = space_len;
    // SAFETY: msg_control points at `space` (32 bytes, more than CMSG_SPACE(4)), so the first
    // header and its data lie inside it; the fd is ours and stays open during the call.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as usize;
        std::ptr::copy_nonoverlapping(
            (&raw const raw).cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            std::mem::size_of::<i32>(),
        );
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    let sent = usize::try_from(sent).map_err(|_| std::io::Error::last_os_error())?;
    // The rest of a reply the socket took only part of goes without the fd (sent already).
    let mut rest = socket;
    rest.write_all(&reply[sent..])
}

/// Line commands from berthd, one reply line each (`ok` or `error MESSAGE`):
/// - `kill`: end the VM now (exit status 4);
/// - `stop`: press the ACPI power button; the guest shuts down in its own time (berthd keeps
///   its own timeout before `kill`);
/// - `pause`: park every vCPU outside KVM_RUN; the reply comes once all are parked;
/// - `resume`: let them run again;
/// - `display`: `ok WIDTH HEIGHT` (the mode the display reports) with the framebuffer memfd
///   attached as SCM_RIGHTS ancillary data (berthd hands it to clients, who map it read-only);
/// - `input keyboard|tablet TYPE CODE VALUE[;TYPE CODE VALUE...]`: queues those evdev events
///   (and a SYN_REPORT after the last unless it is one) for the guest, all or none.
///
/// The first line berth-vmm writes is `ready` (the guest is loaded and about to run). When the
/// channel closes, the supervisor is gone and nobody could reach this VM again: it is ended.
fn control_loop(
    control: std::fs::File,
    vm: &VmHandle,
    power_button: &PowerButton,
    screen: Option<&Screen>,
) {
    use std::io::BufRead;
    let mut replies = match control.try_clone() {
        Ok(f) => f,
        Err(_) => return,
    };
    if replies.write_all(b"ready\n").is_err() {
        vm.stop();
        return;
    }
    for line in std::io::BufReader::new(control).lines() {
        let Ok(line) = line else {
            vm.stop();
            return;
        };
        let line = line.trim();
        if line == "display" {
            let sent = match screen {
                Some(screen) => {
                    let (width, height) = screen.mode;
                    let reply = format!("ok {width} {height}\n");
                    send_with_fd(&replies, reply.as_bytes(), &screen.framebuffer)
                }
                None => {
                    replies.write_all(b"error this VM has no display (start it with --display)\n")
                }
            };
            if sent.is_err() {
                vm.stop();
                return;
            }
            continue;
        }
        let outcome = match line {
            "kill" => {
                vm.stop();
                Ok(())
            }
            input if input.starts_with("input ") => match (screen, parse_input(&input[6..])) {
                (None, _) => Err("this VM has no display (start it with --display)".into()),
                (_, Err(why)) => Err(why),
                (Some(screen), Ok((device, events))) => match device {
                    "keyboard" => screen.keyboard.push(&events).map_err(|e| e.to_string()),
                    "tablet" => screen.tablet.push(&events).map_err(|e| e.to_string()),
                    other => Err(format!("no input device {other:?}: keyboard or tablet")),
                },
            },
            "stop" => power_button
                .press()
                .map_err(|e| format!("cannot press the power button: {e}")),
            "pause" => vm.pause().map_err(|e| e.to_string()),
            "resume" => vm.resume().map_err(|e| e.to_string()),
            other => Err(format!("unknown command {other:?}")),
        };
        let reply = match outcome {
            Ok(()) => "ok\n".to_string(),
            Err(message) => format!("error {message}\n"),
        };
        if replies.write_all(reply.as_bytes()).is_err() {
            vm.stop();
            return;
        }
    }
    vm.stop();
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("berth-vmm: {message}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match run(options) {
        Ok(reason) => {
            let code = match reason {
                VmExitReason::PowerOff => EXIT_POWER_OFF,
                VmExitReason::Reset => EXIT_RESET,
                VmExitReason::Stopped => EXIT_STOPPED,
                VmExitReason::Crash(_) => EXIT_CRASH,
            };
            if code != EXIT_POWER_OFF {
                eprintln!("berth-vmm: {reason}");
            }
            ExitCode::from(code)
        }
        Err(message) => {
            eprintln!("berth-vmm: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_sizes_are_parsed_and_bounded() {
        assert_eq!(parse_display("1280x800"), Ok((1280, 800)));
        assert_eq!(parse_display("64X48"), Ok((64, 48)));
        for bad in ["", "1280", "x800", "0x10", "4096x10", "ax b", "-1x5"] {
            assert!(parse_display(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn input_lines_become_events_with_a_final_report() {
        let (device, events) = parse_input("keyboard 1 30 1;0 0 0;1 30 0").unwrap();
        assert_eq!(device, "keyboard");
        assert_eq!(
            events,
            [
                InputEvent::new(1, 30, 1),
                InputEvent::new(0, 0, 0),
                InputEvent::new(1, 30, 0),
                InputEvent::new(0, 0, 0),
            ]
        );
        // A wheel turn towards the user is a negative value, carried as its two's complement.
        let (_, events) = parse_input("tablet 2 8 -1;0 0 0").unwrap();
        assert_eq!(
            events,
            [InputEvent::new(2, 8, u32::MAX), InputEvent::new(0, 0, 0)]
        );
        for bad in [
            "keyboard",
            "keyboard 1 30",
            "keyboard 1 x 1",
            "tablet 1 2 3 4",
            "keyboard 70000 1 1",
        ] {
            assert!(parse_input(bad).is_err(), "{bad:?}");
        }
    }
}
