//! Virtual machines as the API describes them: the definition a user creates and edits, its
//! run state, and what `vm list` / `vm show` return.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Boot an entry found on an ISO image, which is attached to the guest read-only.
    Iso {
        iso: PathBuf,
        /// Which boot entry of the ISO; the ISO's default when absent.
        #[serde(default)]
        entry: Option<u32>,
    },
}

/// What `vm create` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    pub name: String,
    pub cpus: u32,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// Size of the VM's own sparse disk in bytes; 0 for none.
    pub disk: u64,
    #[serde(default)]
    pub boot: Option<BootSource>,
    /// Allow CPUs, memory or disk beyond the host's totals.
    #[serde(default)]
    pub overcommit: bool,
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
    /// Seconds since the Unix epoch when the VM was created.
    #[serde(default)]
    pub created: u64,
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
