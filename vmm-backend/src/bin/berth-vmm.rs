//! berth-vmm: one process = one VM. berthd starts it per running VM with the options of
//! [`berth_vmm_api::launch`], drives it on the control channel of [`berth_vmm_api::control`]
//! and reads how the VM ended from its exit status ([`berth_vmm_api::VmmExit`]).
//!
//! Kept small on purpose (a few MiB resident besides guest RAM): std threads, no async runtime,
//! no argument-parsing crate, no buffers beyond a page.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use berth_api::input::{InputDevice, InputEvent};
use berth_display::gpu::{BootScreenState, GpuConfig};
use berth_display::notice::{Notice, Pending};
use berth_vmm_api::channel::ControlServer;
use berth_vmm_api::launch::{BootDevice, BootImage, NetworkCard, ParseError, USAGE};
use berth_vmm_api::{Command, ControlError, LaunchOptions, Reply, VmmExit};
use vmm_backend::devices::cdrom::Cdrom;
use vmm_backend::devices::debug_port::{DEBUG_PORT, DEBUG_PORT_LEN, DebugPort};
use vmm_backend::devices::legacy::serial::SerialPort;
use vmm_backend::devices::legacy::{ConsoleSink, LegacyDevices};
use vmm_backend::devices::power_button::{POWER_BUTTON_GSI, PowerButton};
use vmm_backend::devices::ramfb;
use vmm_backend::firmware::{self, FirmwareBoot, FirmwareScreen};
use vmm_backend::linux::LinuxBoot;
use vmm_backend::sandbox::seccomp::{self, Enforcement, ThreadRole};
use vmm_backend::sandbox::{self, Exposed};
use vmm_backend::terminal_keys::TerminalKeys;
use vmm_backend::virtio::block::Block;
use vmm_backend::virtio::gpu::{BootScreen, PreferredSize, VirtioGpu};
use vmm_backend::virtio::input::{self, Input, InputHandle};
use vmm_backend::virtio::mmio_device::VirtioMmioDevices;
use vmm_backend::virtio::net::{Net, Peer};
use vmm_backend::virtio::rng::Rng;
use vmm_backend::virtio::scsi::Scsi;
use vmm_backend::vm::ThreadStart;
use vmm_backend::{BootSource, GuestRam, Vm, VmConfig, VmExitReason, VmHandle};

/// Where a flat test image (no ACPI) finds its devices: the GPU, the keyboard and the tablet in
/// consecutive windows from here (GSIs 16, 17, 18) when it has a display, then the network
/// card: the fixed addresses the probe's variants drive (`PROBE_VIRTIO_GPU`,
/// `PROBE_VIRTIO_INPUT`, `PROBE_VIRTIO_NET`).
const FLAT_DEVICES_BASE: u64 = 0xd000_3000;

/// How often the firmware's screen is looked at: 20 times a second, enough for text and a
/// boot menu, a 3 MiB read of guest RAM each time; after 2 s without a change (a menu
/// waiting, a guest that never takes the display), twice a second.
const BOOT_SCREEN_PERIOD: std::time::Duration = std::time::Duration::from_millis(50);
const BOOT_SCREEN_STILL_LOOKS: u32 = 40;
const BOOT_SCREEN_STILL_PERIOD: std::time::Duration = std::time::Duration::from_millis(500);

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

/// For a kernel: a Berth flat image (test guests) or else a bzImage, by the file's first
/// bytes. For a firmware: what it boots is found later, once the devices are placed.
fn boot_source(options: &LaunchOptions) -> Result<BootSource, String> {
    let (kernel, initrd, cmdline) = match &options.boot {
        BootImage::Kernel {
            kernel,
            initrd,
            cmdline,
        } => (kernel, initrd, cmdline),
        BootImage::Firmware { firmware, .. } => {
            return Ok(BootSource::Firmware(FirmwareBoot {
                firmware: firmware.clone(),
                // Filled in by `run` once the devices are placed.
                virtio_devices: Vec::new(),
                power_button_gsi: None,
                boot_first: None,
                screen: None,
            }));
        }
    };
    let mut head = [0u8; 8];
    let mut file = std::fs::File::open(kernel)
        .map_err(|e| format!("cannot open {}: {e}", kernel.display()))?;
    let flat = file.read_exact(&mut head).is_ok() && &head == vmm_backend::boot::FLAT_IMAGE_MAGIC;
    if flat {
        let bytes =
            std::fs::read(kernel).map_err(|e| format!("cannot read {}: {e}", kernel.display()))?;
        return vmm_backend::boot::parse_flat_image_file(&bytes)
            .ok_or_else(|| format!("{} is a truncated flat image", kernel.display()));
    }
    Ok(BootSource::Linux(LinuxBoot {
        kernel: kernel.clone(),
        initrd: initrd.clone(),
        cmdline: cmdline.clone(),
        // Filled in by `run` once the devices are placed.
        virtio_devices: Vec::new(),
        power_button_gsi: None,
    }))
}

/// The VGA BIOS a firmware boot with a screen draws it with: SeaBIOS's for ramfb, next to the
/// firmware (Debian's `seabios` package ships both). Without one, the firmware's text reaches
/// only the serial console.
fn vga_bios(options: &LaunchOptions) -> Option<PathBuf> {
    let BootImage::Firmware { firmware, .. } = &options.boot else {
        return None;
    };
    options.display?;
    let path = firmware.parent()?.join(ramfb::VGA_BIOS_NAME);
    path.is_file().then_some(path)
}

/// What the sandbox's mount namespace holds: /dev/kvm, the kernel and initramfs or the
/// firmware (and its VGA BIOS), the disks (writable unless read-only), the CD. The serial log is
/// opened before it is entered.
fn exposed(options: &LaunchOptions) -> Vec<Exposed> {
    let read = |path: &std::path::Path| Exposed {
        path: path.to_owned(),
        writable: false,
    };
    let mut files = vec![Exposed {
        path: berth_vmm_api::kvm::KVM_DEVICE.into(),
        writable: true,
    }];
    match &options.boot {
        BootImage::Kernel { kernel, initrd, .. } => {
            files.push(read(kernel));
            files.extend(initrd.as_deref().map(read));
        }
        BootImage::Firmware { firmware, .. } => {
            files.push(read(firmware));
            files.extend(vga_bios(options).as_deref().map(read));
        }
    }
    files.extend(options.disks.iter().map(|disk| Exposed {
        path: disk.path.clone(),
        writable: !disk.read_only,
    }));
    files.extend(options.cdrom.as_deref().map(read));
    files
}

/// The firmware's debug console, when `BERTH_VMM_FIRMWARE_LOG` names a file for it (SeaBIOS's
/// log of what it found and tried: for understanding a firmware boot that goes wrong).
fn firmware_log() -> Result<Option<std::fs::File>, String> {
    match std::env::var_os("BERTH_VMM_FIRMWARE_LOG") {
        Some(path) => std::fs::File::create(&path)
            .map(Some)
            .map_err(|e| format!("cannot create {}: {e}", path.to_string_lossy())),
        None => Ok(None),
    }
}

/// Installs each thread's seccomp filter as it starts (and, in a test build asked to, makes
/// the call no role may, to show that it is stopped).
fn seccomp_hook() -> ThreadStart {
    let enforcement = Enforcement::from_env();
    Arc::new(move |role: ThreadRole| {
        if let Err(e) = seccomp::apply(role, enforcement) {
            eprintln!("berth-vmm: {e}");
            std::process::exit(i32::from(VmmExit::Error.code()));
        }
        #[cfg(debug_assertions)]
        if std::env::var("BERTH_VMM_FORBIDDEN_SYSCALL").is_ok_and(|r| r == role.name()) {
            // SAFETY: a plain system call with constant arguments; the filter stops it.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        }
    })
}

fn run(options: LaunchOptions) -> Result<VmExitReason, String> {
    let log = match &options.serial_log {
        Some(path) => Some(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let firmware_log = match options.boot {
        BootImage::Firmware { .. } => firmware_log()?,
        BootImage::Kernel { .. } => None,
    };
    // The sandbox's first part, while this is the only thread: from here on the VM's own
    // files are all the process can see.
    if options.sandbox.is_some() {
        sandbox::jail(&exposed(&options)).map_err(|e| e.to_string())?;
    }
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
    let mut display = None;
    let mut notifier = None;
    // The firmware's screen, for a firmware boot with a display and a VGA BIOS.
    let mut boot_screen = None;
    // SAFETY: the parent handed us this descriptor for the display's notices; nothing else in
    // this process owns it.
    let notices = options
        .events_fd
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    let source = match boot_source(&options)? {
        // A Linux kernel or the firmware finds the devices in the DSDT: the disks first, in
        // their order, then the CD drive, the rng, the network card and the display devices.
        source @ (BootSource::Linux(_) | BootSource::Firmware(_)) => {
            let storage = attach_devices(&mut vm, &mut virtio, &options)?;
            if let Some(mode) = options.display.map(|d| (d.width, d.height)) {
                let (devices, notify) = attach_display(&mut vm, &mut virtio, mode, notices)?;
                (display, notifier) = (Some(devices), notify);
            }
            let described = virtio.acpi_devices();
            match source {
                BootSource::Linux(mut linux) => {
                    linux.virtio_devices = described;
                    linux.power_button_gsi = Some(POWER_BUTTON_GSI);
                    BootSource::Linux(linux)
                }
                BootSource::Firmware(mut firmware) => {
                    if let BootImage::Firmware {
                        boot_first: Some(first),
                        ..
                    } = options.boot
                    {
                        firmware.boot_first = storage.boot_device(first);
                    }
                    firmware.virtio_devices = described;
                    firmware.power_button_gsi = Some(POWER_BUTTON_GSI);
                    if let (Some(vga_bios), Some(devices)) = (vga_bios(&options), &mut display) {
                        let screen = devices.boot_screen.clone();
                        firmware.screen = Some(FirmwareScreen {
                            vga_bios,
                            shown: Arc::new(move |framebuffer| {
                                if let Err(e) = screen.show(framebuffer) {
                                    log::warn!("{e}");
                                }
                            }),
                        });
                        boot_screen = Some(devices.boot_screen.clone());
                        devices.firmware_keys = Some(FirmwareKeys {
                            serial: legacy.serial.clone(),
                            keys: Mutex::default(),
                        });
                    }
                    if let Some(log) = firmware_log {
                        vm.add_pio_device(
                            DEBUG_PORT,
                            DEBUG_PORT_LEN,
                            Arc::new(Mutex::new(DebugPort::new(Box::new(log)))),
                        )
                        .map_err(|e| e.to_string())?;
                    }
                    BootSource::Firmware(firmware)
                }
                flat => flat,
            }
        }
        // A flat test guest has no ACPI to find virtio devices in (and its own use of the MMIO
        // hole): it gets only the display devices, when asked, then the network card, at the
        // fixed addresses it knows.
        other if options.disks.is_empty() && options.cdrom.is_none() => {
            virtio = VirtioMmioDevices::with_base(FLAT_DEVICES_BASE);
            if let Some(mode) = options.display.map(|d| (d.width, d.height)) {
                let (devices, notify) = attach_display(&mut vm, &mut virtio, mode, notices)?;
                (display, notifier) = (Some(devices), notify);
            }
            if let Some(card) = options.network {
                attach_network(&mut vm, &mut virtio, card)?;
            }
            other
        }
        _ => {
            return Err(
                "--disk and --cdrom need a Linux kernel: a flat image has no ACPI to find them"
                    .into(),
            );
        }
    };
    vm.load(&source).map_err(|e| e.to_string())?;

    // The sandbox's second part: everything is open and loaded, so the privileges go, before
    // any thread starts; each thread then installs its seccomp filter as it starts.
    let hook = match options.sandbox {
        Some(sandbox) => {
            if let Some((uid, gid)) = sandbox.ids {
                sandbox::drop_privileges(uid, gid).map_err(|e| e.to_string())?;
            }
            seccomp::install_reporter(VmmExit::Crash.code()).map_err(|e| e.to_string())?;
            let hook = seccomp_hook();
            vm.on_thread_start(Arc::clone(&hook));
            Some(hook)
        }
        None => None,
    };
    let started = |role: ThreadRole| {
        let hook = hook.clone();
        move || {
            if let Some(hook) = hook {
                hook(role);
            }
        }
    };
    if let Some(notifier) = notifier {
        notifier.start(started(ThreadRole::DisplayNotices))?;
    }
    // Lives until the VM has ended; dropping it stops the device thread.
    let _devices = virtio.start_with(hook.clone()).map_err(|e| e.to_string())?;

    // The firmware's screen: its framebuffer looked at again at a steady pace (nothing tells
    // when the guest draws), slower once it has been still a while, until the driver shows its
    // own. Detached: it ends by itself then, or with the process.
    if let Some(screen) = boot_screen {
        let memory = vm.memory().clone();
        let screen_started = started(ThreadRole::BootScreen);
        let _ = std::thread::Builder::new()
            .name("boot-screen".into())
            .spawn(move || {
                screen_started();
                let mut still = 0u32;
                loop {
                    match screen.refresh(&memory) {
                        BootScreenState::Over => break,
                        BootScreenState::Showing { changed: true } => still = 0,
                        _ => still = still.saturating_add(1),
                    }
                    std::thread::sleep(if still < BOOT_SCREEN_STILL_LOOKS {
                        BOOT_SCREEN_PERIOD
                    } else {
                        BOOT_SCREEN_STILL_PERIOD
                    });
                }
            });
    }

    // Serial input: bytes from stdin as they come. Detached: it blocks in read() and the
    // process exits under it.
    let serial = legacy.serial.clone();
    let serial_started = started(ThreadRole::SerialIn);
    let _ = std::thread::Builder::new()
        .name("serial-in".into())
        .spawn(move || {
            serial_started();
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                if !feed_serial(&serial, &buf[..n], None) {
                    return;
                }
            }
        });

    if let Some(fd) = options.control_fd {
        let handle = vm.handle();
        // SAFETY: the parent handed us this descriptor for the control channel; nothing else
        // in this process owns it.
        let control = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
        let control_started = started(ThreadRole::Control);
        let _ = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                control_started();
                control_loop(control, &handle, &power_button, display.as_ref())
            });
    }

    vm.run().map_err(|e| e.to_string())
}

/// Attaches the disks (`/dev/vda`... in their order, at the first device addresses), the rng
/// and the network card, for a guest that finds them in the DSDT.
fn attach_devices(
    vm: &mut Vm,
    virtio: &mut VirtioMmioDevices,
    options: &LaunchOptions,
) -> Result<Storage, String> {
    let mut storage = Storage::default();
    for (index, disk) in options.disks.iter().enumerate() {
        let block = Block::open(&disk.path, disk.read_only, &format!("berth-disk{index}"))
            .map_err(|e| format!("cannot attach {}: {e}", disk.path.display()))?;
        let placed = virtio
            .attach(vm, Box::new(block))
            .map_err(|e| e.to_string())?;
        storage.disks.push(placed.base);
    }
    if let Some(path) = &options.cdrom {
        let cdrom = std::fs::File::open(path)
            .and_then(Cdrom::new)
            .map_err(|e| format!("cannot put {} in the CD drive: {e}", path.display()))?;
        let placed = virtio
            .attach(vm, Box::new(Scsi::new(cdrom)))
            .map_err(|e| e.to_string())?;
        storage.cdrom = Some(placed.base);
    }
    virtio
        .attach(vm, Box::new(Rng::new()))
        .map_err(|e| e.to_string())?;
    if let Some(card) = options.network {
        attach_network(vm, virtio, card)?;
    }
    Ok(storage)
}

/// Where the disks and the CD drive were placed: their virtio-mmio bases.
#[derive(Default)]
struct Storage {
    /// In [`LaunchOptions::disks`]' order.
    disks: Vec<u32>,
    cdrom: Option<u32>,
}

impl Storage {
    /// `device` as the firmware names it. (`LaunchOptions::parse` refused one not attached.)
    fn boot_device(&self, device: BootDevice) -> Option<firmware::BootDevice> {
        match device {
            BootDevice::Disk(index) => self
                .disks
                .get(index)
                .map(|&base| firmware::BootDevice::Disk { base }),
            BootDevice::Cdrom => self.cdrom.map(|base| firmware::BootDevice::Cdrom { base }),
        }
    }
}

/// Attaches the virtio-net card whose peer is the inherited socket `card.fd`, woken when the
/// socket has frames or room.
fn attach_network(
    vm: &mut Vm,
    virtio: &mut VirtioMmioDevices,
    card: NetworkCard,
) -> Result<(), String> {
    // SAFETY: berthd handed us this descriptor for the network card; nothing else in this
    // process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(card.fd) };
    let wake = fd
        .try_clone()
        .map_err(|e| format!("cannot watch the network's descriptor: {e}"))?;
    let peer = if card.tap {
        Peer::Tap(std::fs::File::from(fd))
    } else {
        Peer::Stream(UnixStream::from(fd))
    };
    let net = Net::new(card.mac.0, peer).map_err(|e| e.to_string())?;
    virtio
        .attach(vm, Box::new(net))
        .map_err(|e| e.to_string())?;
    virtio.wake_on_socket(wake).map_err(|e| e.to_string())
}

/// The display devices' host side: what the control channel hands out and feeds.
struct DisplayDevices {
    /// A duplicate of the framebuffer memfd, passed to berthd on `display`.
    framebuffer: OwnedFd,
    /// The firmware's screen on the same display.
    boot_screen: BootScreen,
    /// Where keys go while the firmware has the screen (a firmware boot's).
    firmware_keys: Option<FirmwareKeys>,
    mode: (u32, u32),
    /// The preferred size the guest is told (`display-size`).
    preferred: PreferredSize,
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
) -> Result<(DisplayDevices, Option<Notifier>), String> {
    let mut gpu = VirtioGpu::new(GpuConfig {
        width: mode.0,
        height: mode.1,
        ..GpuConfig::default()
    })
    .map_err(|e| format!("cannot create the display: {e}"))?;
    let notifier = notices.map(|socket| {
        let notifier = Notifier {
            socket,
            pending: Arc::default(),
            thread: Arc::default(),
        };
        let (pending, thread) = (Arc::clone(&notifier.pending), Arc::clone(&notifier.thread));
        gpu.set_event_sink(Box::new(move |event| {
            if let Some(notice) = Notice::from_event(&event) {
                pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(notice);
                // No system call unless the notifier is parked.
                if let Some(thread) = thread.get() {
                    thread.unpark();
                }
            }
        }));
        notifier
    });
    let framebuffer = gpu
        .gpu()
        .framebuffer()
        .fd()
        .try_clone_to_owned()
        .map_err(|e| format!("cannot share the framebuffer: {e}"))?;
    let boot_screen = gpu.boot_screen();
    let preferred = gpu
        .preferred_size()
        .map_err(|e| format!("cannot watch the display's size: {e}"))?;
    let wake = preferred
        .wake_fd()
        .try_clone()
        .map_err(|e| format!("cannot watch the display's size: {e}"))?;
    virtio
        .attach(vm, Box::new(gpu))
        .map_err(|e| e.to_string())?;
    virtio.wake_on(wake, 0).map_err(|e| e.to_string())?;
    let mut handles = Vec::new();
    for (device, serial) in [
        (InputDevice::Keyboard, "berth-keyboard"),
        (InputDevice::Tablet, "berth-tablet"),
    ] {
        let input = Input::new(device, serial).map_err(|e| e.to_string())?;
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
    Ok((
        DisplayDevices {
            framebuffer,
            mode,
            preferred,
            keyboard,
            tablet,
            boot_screen,
            firmware_keys: None,
        },
        notifier,
    ))
}

/// The firmware's keyboard: the serial console, which SeaBIOS reads keys from.
struct FirmwareKeys {
    serial: Arc<Mutex<SerialPort<ConsoleSink>>>,
    keys: Mutex<TerminalKeys>,
}

impl FirmwareKeys {
    /// Types `events` into the serial console as a terminal would; what does not fit in its
    /// FIFO after a few tries (a firmware not reading) is dropped, as a full keyboard buffer
    /// drops keys.
    fn type_keys(&self, events: &[InputEvent]) {
        let bytes = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes(events);
        feed_serial(&self.serial, &bytes, Some(FIRMWARE_KEY_WAITS));
    }
}

/// How many times keys that do not fit in the serial FIFO wait for the firmware to read.
const FIRMWARE_KEY_WAITS: usize = 20;
/// How long each wait for room in the serial FIFO is.
const SERIAL_FULL_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// Feeds `bytes` to the serial console's input as its FIFO takes them, waiting while it is
/// full: for ever, or at most `waits` times (what is left is then dropped). False when the
/// port is gone (its lock poisoned).
fn feed_serial(
    serial: &Mutex<SerialPort<ConsoleSink>>,
    bytes: &[u8],
    waits: Option<usize>,
) -> bool {
    let mut pending = bytes;
    let mut waited = 0;
    while !pending.is_empty() && waits.is_none_or(|most| waited < most) {
        let fed = match serial.lock() {
            Ok(mut port) => port.feed_input(pending).unwrap_or(0),
            Err(_) => return false,
        };
        pending = &pending[fed..];
        if fed == 0 {
            waited += 1;
            std::thread::sleep(SERIAL_FULL_WAIT);
        }
    }
    true
}

/// The display notices' sender, started once the VM is built (in the sandbox, after the
/// privileges have gone): what the device records waits in `pending` until then.
struct Notifier {
    socket: OwnedFd,
    pending: Arc<Mutex<Pending>>,
    thread: Arc<OnceLock<std::thread::Thread>>,
}

impl Notifier {
    fn start(self, started: impl FnOnce() + Send + 'static) -> Result<(), String> {
        let Notifier {
            socket,
            pending,
            thread,
        } = self;
        let handle = std::thread::Builder::new()
            .name("display-notices".into())
            .spawn(move || {
                started();
                send_notices(&socket, &pending)
            })
            .map_err(|e| format!("cannot start the display notifier: {e}"))?;
        // Notices recorded before it existed are sent at once.
        handle.thread().unpark();
        let _ = thread.set(handle.thread().clone());
        Ok(())
    }
}

/// The least time between two notices: at most 250 a second reach berthd however often the
/// guest flushes (Linux's console flushes glyph by glyph; in the nested lab a notice a flush
/// starved berthd), and a window reads at most 60 frames a second anyway.
const NOTICE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(4);

/// The display notifier: sends what the device thread recorded, merged, then waits out the
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

/// Serves berthd's commands ([`berth_vmm_api::control`]) until the channel closes: then the
/// supervisor is gone and nobody could reach this VM again, so it is ended.
fn control_loop(
    control: std::os::unix::net::UnixStream,
    vm: &VmHandle,
    power_button: &PowerButton,
    display: Option<&DisplayDevices>,
) {
    let Ok(mut server) = ControlServer::ready(control) else {
        vm.stop();
        return;
    };
    while let Some(command) = server.next_command() {
        let answered = match command {
            Ok(Command::Display) => match display {
                Some(display) => {
                    let (width, height) = display.mode;
                    server.answer(
                        &Ok(Reply::Display { width, height }),
                        Some(display.framebuffer.as_fd()),
                    )
                }
                None => server.answer(&Err(ControlError::NoDisplay), None),
            },
            Ok(command) => server.answer(&carry_out(command, vm, power_button, display), None),
            Err(error) => server.answer(&Err(error), None),
        };
        if answered.is_err() {
            break;
        }
    }
    vm.stop();
}

/// Carries out a command that is answered by a line alone.
fn carry_out(
    command: Command,
    vm: &VmHandle,
    power_button: &PowerButton,
    display: Option<&DisplayDevices>,
) -> Result<Reply, ControlError> {
    match command {
        Command::Kill => vm.stop(),
        Command::Stop => power_button
            .press()
            .map_err(|e| ControlError::Failed(format!("cannot press the power button: {e}")))?,
        Command::Pause => vm
            .pause()
            .map_err(|e| ControlError::Failed(e.to_string()))?,
        Command::Resume => vm
            .resume()
            .map_err(|e| ControlError::Failed(e.to_string()))?,
        Command::Input { device, events } => {
            let display = display.ok_or(ControlError::NoDisplay)?;
            // While the firmware has the screen, the keyboard is its serial console and the
            // pointer has nothing to point at: nothing waits in virtio-input for the kernel.
            if let Some(firmware) = &display.firmware_keys
                && display.boot_screen.is_shown()
            {
                if device == InputDevice::Keyboard {
                    firmware.type_keys(&events);
                }
                return Ok(Reply::Done);
            }
            let handle = match device {
                InputDevice::Keyboard => &display.keyboard,
                InputDevice::Tablet => &display.tablet,
            };
            handle.push(&events).map_err(|e| match e {
                input::Error::Full { pending } => ControlError::InputQueueFull { pending },
                input::Error::Unsupported { device, kind, code } => {
                    ControlError::UnsupportedEvent { device, kind, code }
                }
                other => ControlError::Failed(other.to_string()),
            })?;
        }
        Command::DisplaySize { width, height } => display
            .ok_or(ControlError::NoDisplay)?
            .preferred
            .set(width, height)
            .map_err(|e| ControlError::Failed(e.to_string()))?,
        Command::Display => return Err(ControlError::BadCommand("display carries an fd".into())),
    }
    Ok(Reply::Done)
}

/// The library's warnings and errors (a device stopped by what its guest did, a network peer
/// gone) on stderr, which berthd copies into its log.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                log::Level::Error => "error",
                _ => "warning",
            };
            eprintln!("berth-vmm: {level}: {}", record.args());
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

fn main() -> ExitCode {
    // Only fails when a logger is set already, which nothing else here does.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let options = match LaunchOptions::parse(std::env::args_os().skip(1)) {
        Ok(options) => options,
        Err(ParseError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(ParseError::Invalid(message)) => {
            eprintln!("berth-vmm: {message}");
            return ExitCode::from(VmmExit::Error.code());
        }
    };
    let exit = match run(options) {
        Ok(reason) => {
            let exit = match reason {
                VmExitReason::PowerOff => VmmExit::PowerOff,
                VmExitReason::Reset => VmmExit::Reset,
                VmExitReason::Stopped => VmmExit::Stopped,
                VmExitReason::Crash(_) => VmmExit::Crash,
            };
            if exit != VmmExit::PowerOff {
                eprintln!("berth-vmm: {reason}");
            }
            exit
        }
        Err(message) => {
            eprintln!("berth-vmm: {message}");
            VmmExit::Error
        }
    };
    ExitCode::from(exit.code())
}
