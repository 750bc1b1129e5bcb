//! berth-vmm: one process = one VM. berthd starts it per running VM and reads its exit status:
//! 0 the guest powered off, 2 the guest reset (the supervisor restarts it), 3 the VM crashed,
//! 4 the host stopped it (`kill` on the control channel), 1 an error before the guest ran.
//!
//! Kept small on purpose (a few MiB resident besides guest RAM): std threads, no async runtime,
//! no argument-parsing crate, no buffers beyond a page.

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use vmm_backend::devices::legacy::LegacyDevices;
use vmm_backend::devices::power_button::{POWER_BUTTON_GSI, PowerButton};
use vmm_backend::linux::LinuxBoot;
use vmm_backend::virtio::block::Block;
use vmm_backend::virtio::mmio_device::VirtioMmioDevices;
use vmm_backend::virtio::rng::Rng;
use vmm_backend::{BootSource, GuestRam, Vm, VmConfig, VmExitReason, VmHandle};

const USAGE: &str = "usage: berth-vmm --kernel BZIMAGE [--initrd FILE] [--cmdline TEXT] \
[--memory SIZE (e.g. 512M, 2G)] [--cpus N] [--serial-log FILE] [--disk FILE [--read-only]]... \
[--control-fd N]";

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
            linux.virtio_devices = virtio.acpi_devices();
            linux.power_button_gsi = Some(POWER_BUTTON_GSI);
            BootSource::Linux(linux)
        }
        // A flat test guest has no ACPI to find virtio devices in (and its own use of the MMIO
        // hole): it gets none.
        other if options.disks.is_empty() => other,
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
            .spawn(move || control_loop(control, &handle, &power_button));
    }

    vm.run().map_err(|e| e.to_string())
}

/// Line commands from berthd, one reply line each (`ok` or `error MESSAGE`):
/// - `kill`: end the VM now (exit status 4);
/// - `stop`: press the ACPI power button; the guest shuts down in its own time (berthd keeps
///   its own timeout before `kill`);
/// - `pause`: park every vCPU outside KVM_RUN; the reply comes once all are parked;
/// - `resume`: let them run again.
///
/// The first line berth-vmm writes is `ready` (the guest is loaded and about to run). When the
/// channel closes, the supervisor is gone and nobody could reach this VM again: it is ended.
fn control_loop(control: std::fs::File, vm: &VmHandle, power_button: &PowerButton) {
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
        let outcome = match line.trim() {
            "kill" => {
                vm.stop();
                Ok(())
            }
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
