//! Builds the probe guest (`vmm-backend/probe/`) with the host's gcc into a flat image.
//!
//! Built here, by the tests, and not by a build.rs: only the tests need it, so building the
//! library (for the daemon, on a machine without a C toolchain) never needs gcc. Each test
//! process builds each variant once, in a scratch directory under CARGO_TARGET_TMPDIR that it then removes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Where the probe is linked and loaded; above the VMM's boot structures (1 MiB).
pub const PROBE_LOAD_ADDR: u64 = 0x10_0000;
/// The scratch MMIO device address the probe reads and writes (`PROBE_MMIO_SCRATCH`).
pub const PROBE_MMIO_SCRATCH: u64 = 0xd000_0000;
/// The word the probe writes to the scratch device.
pub const PROBE_MMIO_MAGIC: u32 = 0x600d_cafe;

/// How the probe ends the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeFinish {
    PowerOff,
    Reset,
    AcpiReset,
    Crash,
    /// Drive the virtio-blk and virtio-rng devices the test placed, then power off.
    Virtio,
    /// Stay up echoing the lines typed on COM1; power off on `poweroff`.
    Interactive,
    /// Draw a known pattern through the virtio-gpu device the test placed, then power off.
    Gpu,
    /// Read the name and four queued events of the virtio-input keyboard the test placed.
    Input,
    /// Draw the GPU pattern, then stay up as [`ProbeFinish::Interactive`] (for screenshots).
    Display,
    /// Read the keyboard's name, then [`KEYS_EVENTS`] events, waiting as long as it takes.
    Keys,
    /// Draw the GPU pattern, then halt: a running VM whose display never changes and whose
    /// vCPU is idle (the window's idle benchmark).
    Still,
    /// Draw the GPU pattern, then show the display's whole mode and redraw it 60 times a
    /// second forever, each frame transferred and flushed whole (the display benchmarks).
    Animate,
    /// Draw the GPU pattern, read [`DISPLAY_KEYS_EVENTS`] keyboard events (one key pressed and
    /// released, each change followed by a SYN_REPORT) waiting as long as it takes, then stay
    /// up as [`ProbeFinish::Interactive`] (for a console window's keyboard and display at once).
    DisplayKeys,
    /// Draw the GPU pattern, read [`DISPLAY_POINTER_EVENTS`] events of berth-vmm's tablet (the
    /// input device after the keyboard: one pointer move, then one wheel click), waiting as
    /// long as it takes, then stay up as [`ProbeFinish::Interactive`].
    DisplayPointer,
    /// On the network through the virtio-net card berth-vmm puts after the display devices of
    /// a flat image (berthd always gives a display): print its MAC and link, DHCP (print the offer), greet the host at UDP port
    /// [`NET_HOST_PORT`] through the gateway's address (print the answer), then echo
    /// [`NET_ECHOES`] datagrams sent to its UDP port 7, then power off.
    Net,
}

/// The host's loopback UDP port the [`ProbeFinish::Net`] variant greets (`PROBE_NET_HOST_PORT`).
pub const NET_HOST_PORT: u16 = 47001;
/// The guest UDP port the [`ProbeFinish::Net`] variant echoes on (`PROBE_NET_ECHO_PORT`).
pub const NET_ECHO_PORT: u16 = 7;
/// How many datagrams the [`ProbeFinish::Net`] variant echoes before it powers off.
pub const NET_ECHOES: usize = 1;

/// How many keyboard events the [`ProbeFinish::Keys`] variant reads before it powers off.
pub const KEYS_EVENTS: usize = 20;
/// How many keyboard events the [`ProbeFinish::DisplayKeys`] variant reads.
pub const DISPLAY_KEYS_EVENTS: usize = 4;
/// How many tablet events the [`ProbeFinish::DisplayPointer`] variant reads: a move is X, Y,
/// the three buttons and a SYN_REPORT; a wheel click is REL_WHEEL and a SYN_REPORT.
pub const DISPLAY_POINTER_EVENTS: usize = 8;

impl ProbeFinish {
    /// The variant called `name` (its `-D` scenario's name, as `probe-NAME.flat` files are).
    pub fn named(name: &str) -> Option<Self> {
        use ProbeFinish::*;
        [
            PowerOff,
            Reset,
            AcpiReset,
            Crash,
            Virtio,
            Interactive,
            Gpu,
            Input,
            Display,
            Keys,
            Animate,
            Still,
            DisplayKeys,
            DisplayPointer,
            Net,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Self::PowerOff => "poweroff",
            Self::Reset => "reset",
            Self::AcpiReset => "acpi-reset",
            Self::Crash => "crash",
            Self::Virtio => "virtio",
            Self::Interactive => "interactive",
            Self::Gpu => "gpu",
            Self::Input => "input",
            Self::Display => "display",
            Self::Keys => "keys",
            Self::Animate => "animate",
            Self::Still => "still",
            Self::DisplayKeys => "display-keys",
            Self::DisplayPointer => "display-pointer",
            Self::Net => "net",
        }
    }

    fn define(self) -> &'static [&'static str] {
        match self {
            Self::PowerOff => &[],
            Self::Reset => &["-DPROBE_FINISH_RESET"],
            Self::AcpiReset => &["-DPROBE_FINISH_ACPI_RESET"],
            Self::Crash => &["-DPROBE_FINISH_CRASH"],
            Self::Virtio => &["-DPROBE_VIRTIO"],
            Self::Interactive => &["-DPROBE_INTERACTIVE"],
            Self::Gpu => &["-DPROBE_GPU"],
            Self::Input => &["-DPROBE_INPUT"],
            Self::Net => &["-DPROBE_NET"],
            Self::Display => &["-DPROBE_GPU", "-DPROBE_INTERACTIVE"],
            Self::Animate => &["-DPROBE_GPU", "-DPROBE_GPU_ANIMATE"],
            Self::Still => &["-DPROBE_GPU", "-DPROBE_HALT"],
            Self::Keys => &[
                "-DPROBE_INPUT",
                "-DPROBE_INPUT_EVENTS=20",
                "-DPROBE_INPUT_WAIT_FOREVER",
            ],
            Self::DisplayKeys => &[
                "-DPROBE_GPU",
                "-DPROBE_INPUT",
                "-DPROBE_INPUT_EVENTS=4",
                "-DPROBE_INPUT_WAIT_FOREVER",
                "-DPROBE_INTERACTIVE",
            ],
            Self::DisplayPointer => &[
                "-DPROBE_GPU",
                "-DPROBE_INPUT",
                "-DPROBE_VIRTIO_INPUT=0xd0005000UL",
                "-DPROBE_INPUT_EVENTS=8",
                "-DPROBE_INPUT_WAIT_FOREVER",
                "-DPROBE_INTERACTIVE",
            ],
        }
    }
}

const SOURCES: &[&str] = &[
    "start.S", "probe.c", "serial.c", "power.c", "virtio.c", "gpu.c", "input.c", "timer.c", "net.c",
];

/// The flat image of the probe variant `finish`, built on first use.
pub fn probe_image(finish: ProbeFinish) -> Vec<u8> {
    type Images = Vec<(ProbeFinish, Vec<u8>)>;
    static BUILT: OnceLock<Mutex<Images>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, image)) = built.iter().find(|(f, _)| *f == finish) {
        return image.clone();
    }
    let image = build(finish);
    built.push((finish, image.clone()));
    image
}

fn build(finish: ProbeFinish) -> Vec<u8> {
    // Through the workspace root, so the end-to-end tests (a sibling crate that includes this
    // file) find the sources too.
    let source_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vmm-backend/probe");
    // Examples (scripts' probe images) have no CARGO_TARGET_TMPDIR: the system's temp dir.
    let scratch = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let out_dir = scratch.join(format!("probe-{}-{}", std::process::id(), finish.name()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let elf = out_dir.join("probe.elf");
    let bin = out_dir.join("probe.bin");

    let mut gcc = Command::new("gcc");
    gcc.current_dir(&source_dir)
        .args([
            "-std=gnu11",
            "-Os",
            "-Wall",
            "-Wextra",
            "-Werror",
            // Freestanding: no libc, no startup files, our own _start.
            "-ffreestanding",
            "-nostdlib",
            "-nostartfiles",
            "-static",
            // Absolute addresses, linked at PROBE_LOAD_ADDR (below 2 GiB: the small model).
            "-fno-pic",
            "-fno-pie",
            "-no-pie",
            "-mcmodel=small",
            // Baseline x86-64 integer code only: the emulated CPU has no SSE state set up for
            // the probe and lacks some newer instructions; no CET endbr64 either.
            "-march=x86-64",
            "-mgeneral-regs-only",
            "-mno-red-zone",
            "-fcf-protection=none",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            // No libc: loops stay loops, not calls to memset or memcpy.
            "-fno-tree-loop-distribute-patterns",
            "-Wl,--build-id=none",
            "-Wl,-Tprobe.ld",
        ])
        .arg(format!("-Wl,--defsym=PROBE_LOAD_ADDR={PROBE_LOAD_ADDR:#x}"))
        .args(finish.define())
        .arg("-o")
        .arg(&elf)
        .args(SOURCES);
    run(gcc, "gcc (the probe tests need the host's gcc)");

    let mut objcopy = Command::new("objcopy");
    objcopy.args(["-O", "binary"]).arg(&elf).arg(&bin);
    run(objcopy, "objcopy (binutils)");

    let image = std::fs::read(&bin).unwrap();
    // The image lives on in memory; the directory (unique to this process) is not needed.
    let _ = std::fs::remove_dir_all(&out_dir);
    image
}

fn run(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
