//! Virtual machines as the API describes them: the definition a user creates and edits, its
//! run state, and what `vm list` / `vm show` return.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::network::{PortForward, VmNetwork, VmNetworkConfig};
use crate::utilisation::{Resources, Shares};

/// How a VM boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootSource {
    /// Direct kernel boot: a bzImage, an optional initramfs and the kernel command line.
    Kernel {
        kernel: PathBuf,
        #[serde(default)]
        initrd: Option<PathBuf>,
        #[serde(default)]
        cmdline: String,
    },
    /// Boot an entry found on an ISO image, which is in the guest's CD drive (read-only).
    Iso {
        iso: PathBuf,
        /// Which boot entry of the ISO; the ISO's default when absent.
        #[serde(default)]
        entry: Option<u32>,
    },
}

/// Where a VM starts from (`vm edit --boot`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootFrom {
    /// Its kernel, entered directly: the kernel files, or the boot entry Berth reads from its
    /// ISO (an installer starts in seconds this way).
    #[default]
    Kernel,
    /// Its ISO through the firmware, from the CD drive, as a PC boots an installer DVD: for
    /// images whose boot menu Berth cannot read (the image needs an El Torito boot image for
    /// a PC BIOS).
    Iso,
    /// Its disk through the firmware: the system installed on it.
    Disk,
}

impl BootFrom {
    /// The word `vm edit --boot` takes and `vm show` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            BootFrom::Kernel => "kernel",
            BootFrom::Iso => "iso",
            BootFrom::Disk => "disk",
        }
    }
}

impl BootFrom {
    /// What a VM starting from here starts, for people (`vm show`, the window).
    pub fn describe(self) -> &'static str {
        match self {
            BootFrom::Kernel => "its kernel (direct boot)",
            BootFrom::Iso => "its ISO (firmware)",
            BootFrom::Disk => "its disk (firmware)",
        }
    }
}

impl std::fmt::Display for BootFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BootFrom {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        [BootFrom::Kernel, BootFrom::Iso, BootFrom::Disk]
            .into_iter()
            .find(|b| b.as_str() == text)
            .ok_or_else(|| format!("boot from {text:?}? Use kernel, iso or disk"))
    }
}

/// What `vm create` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    pub name: String,
    pub cpus: u32,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// Size of the VM's own sparse disk in bytes; 0 for none.
    pub disk: u64,
    #[serde(default)]
    pub boot: Option<BootSource>,
    /// Where it starts from; by default its kernel or ISO when it has one, else its disk.
    #[serde(default)]
    pub boot_from: Option<BootFrom>,
    /// Allow CPUs, memory or disk beyond the host's totals.
    #[serde(default)]
    pub overcommit: bool,
    #[serde(default)]
    pub network: VmNetwork,
    /// Host ports forwarded to the guest (NAT only).
    #[serde(default)]
    pub forwards: Vec<PortForward>,
}

/// The VM's own disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskConfig {
    /// The image file, relative to the VM's directory unless absolute.
    pub file: PathBuf,
    /// Size in bytes (a sparse raw file of this length).
    pub size: u64,
}

/// A VM's persistent definition: what `vms/<name>/vm.ron` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmConfig {
    pub name: String,
    pub cpus: u32,
    pub memory: u64,
    #[serde(default)]
    pub disk: Option<DiskConfig>,
    #[serde(default)]
    pub boot: Option<BootSource>,
    /// Where it starts from (definitions from before firmware boots start from their kernel).
    #[serde(default)]
    pub boot_from: BootFrom,
    /// Seconds since the Unix epoch when the VM was created.
    #[serde(default)]
    pub created: u64,
    /// The display's resolution (definitions from before displays existed get the default).
    #[serde(default)]
    pub display: DisplayMode,
    /// Its network card (definitions from before networks existed get NAT).
    #[serde(default)]
    pub network: VmNetworkConfig,
}

/// A display resolution in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayMode {
    pub width: u32,
    pub height: u32,
}

impl Default for DisplayMode {
    fn default() -> Self {
        DisplayMode {
            width: 1280,
            height: 800,
        }
    }
}

impl std::fmt::Display for DisplayMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// The largest side a display may have: what an EDID detailed timing can describe, and it
/// keeps a frame of the shared framebuffer under 64 MiB.
pub const MAX_DISPLAY_SIDE: u32 = 4095;

impl std::str::FromStr for DisplayMode {
    type Err = String;

    /// `WIDTHxHEIGHT`, each side 1..=4095.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("bad display size {text:?}: use WIDTHxHEIGHT, e.g. 1280x800");
        let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
        let mode = DisplayMode {
            width: w.trim().parse().map_err(|_| bad())?,
            height: h.trim().parse().map_err(|_| bad())?,
        };
        mode.check()?;
        Ok(mode)
    }
}

impl DisplayMode {
    /// Each side in 1..=[`MAX_DISPLAY_SIDE`].
    pub fn check(&self) -> Result<(), String> {
        let side = 1..=MAX_DISPLAY_SIDE;
        if side.contains(&self.width) && side.contains(&self.height) {
            Ok(())
        } else {
            Err(format!(
                "a {self} display is not possible: each side must be 1..={MAX_DISPLAY_SIDE}"
            ))
        }
    }
}

/// The display of a running VM as `vm display` hands it out, with the framebuffer memfd (whose
/// header has the live geometry; these are the values when it was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayInfo {
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next.
    pub stride: u32,
    /// virtio-gpu's format code (all are 4 bytes a pixel).
    pub format: u32,
}

impl VmConfig {
    /// What the VM was given, for the allocation formulas.
    pub fn resources(&self) -> Resources {
        Resources {
            cpus: f64::from(self.cpus),
            memory: self.memory,
            disk: self.disk.as_ref().map_or(0, |d| d.size),
        }
    }
}

/// What `vm edit` changes; fields left `None` stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmEdit {
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub memory: Option<u64>,
    /// A new disk size: disks only grow (shrinking would cut off the guest's data).
    #[serde(default)]
    pub disk: Option<u64>,
    #[serde(default)]
    pub kernel: Option<PathBuf>,
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    #[serde(default)]
    pub cmdline: Option<String>,
    #[serde(default)]
    pub iso: Option<PathBuf>,
    /// Which boot entry of `iso`; its default when absent.
    #[serde(default)]
    pub entry: Option<u32>,
    /// Where it starts from next.
    #[serde(default)]
    pub boot_from: Option<BootFrom>,
    /// Detach the ISO (`vm eject`); a VM that started from it starts from its disk next.
    #[serde(default)]
    pub eject: bool,
    /// A new display resolution, used from the next start.
    #[serde(default)]
    pub display: Option<DisplayMode>,
    #[serde(default)]
    pub network: Option<VmNetwork>,
    /// The port forwards, all replaced (an empty list removes them).
    #[serde(default)]
    pub forwards: Option<Vec<PortForward>>,
    #[serde(default)]
    pub overcommit: bool,
}

/// Where a VM is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    Stopped,
    Starting,
    Running,
    Paused,
    Stopping,
    /// The VMM ended without the guest asking it to; the reason says how.
    Crashed {
        reason: String,
    },
}

impl VmState {
    /// Whether a berth-vmm process is (or is being) run for the VM: such a VM cannot be edited,
    /// deleted or started again.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            VmState::Starting | VmState::Running | VmState::Paused | VmState::Stopping
        )
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmState::Stopped => f.write_str("stopped"),
            VmState::Starting => f.write_str("starting"),
            VmState::Running => f.write_str("running"),
            VmState::Paused => f.write_str("paused"),
            VmState::Stopping => f.write_str("stopping"),
            VmState::Crashed { reason } => write!(f, "crashed: {reason}"),
        }
    }
}

/// A VM as `vm list` and `vm show` report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmInfo {
    pub config: VmConfig,
    pub state: VmState,
    /// The VM's directory in the daemon's state dir.
    pub dir: PathBuf,
    /// U_vm, M_vm, P_vm: its allocation over the host's totals.
    pub allocation: Shares,
    /// Its address on the Berth network while it is there (the one the network's DHCP server
    /// gives its card).
    #[serde(default)]
    pub address: Option<std::net::Ipv4Addr>,
}

/// A definition on disk that could not be read; it is left in place untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionProblem {
    pub path: PathBuf,
    /// What is wrong, with the line and column where the parser knows them.
    pub message: String,
}

impl std::fmt::Display for DefinitionProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// The answer to `vm list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmListing {
    pub vms: Vec<VmInfo>,
    /// Definitions that were skipped because they could not be read.
    pub problems: Vec<DefinitionProblem>,
}
