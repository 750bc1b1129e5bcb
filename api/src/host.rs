//! The host as the API describes it: its totals and what the VMs were given of them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::utilisation::{Resources, Shares};

/// Which kind of daemon answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DaemonMode {
    /// The privileged daemon for the whole machine (root and group `berth`).
    System,
    /// A daemon of one user, started by that user (only that uid).
    User,
}

impl std::fmt::Display for DaemonMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DaemonMode::System => "system",
            DaemonMode::User => "user",
        })
    }
}

/// The answer to `host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// N CPUs, M bytes of memory, P bytes of disk (the filesystem holding the state dir).
    pub total: Resources,
    /// Bytes free on that filesystem.
    pub disk_free: u64,
    /// What all defined VMs were given, summed.
    pub allocated: Resources,
    /// ΣU_vm, ΣM_vm, ΣP_vm: above 1.0 is overcommitment.
    pub allocation: Shares,
    pub vm_count: u32,
    pub state_dir: PathBuf,
    pub mode: DaemonMode,
    pub server_version: String,
}

/// A live sample of the host's measured use, pushed about once a second to subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// CPU busy time over CPU time available since the previous sample (0..=1).
    pub cpu: f64,
    /// Memory in use (total less available) over total.
    pub memory: f64,
    /// Disk blocks in use over the filesystem's size.
    pub disk: f64,
}
