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
    /// Whether VMs can run here, and if not, what to do.
    pub vms: Availability,
    /// How containers run here.
    pub containers: ContainerSupport,
}

/// Whether something works here, and if not, why and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "available")]
pub enum Availability {
    #[serde(rename = "yes")]
    Yes,
    #[serde(rename = "no")]
    No { why: String },
}

/// How the ids inside containers are the host's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum IdMap {
    /// The daemon is root on the host: an id inside is the same id outside.
    Host,
    /// Rootless: 0 inside is the user, 1.. the user's subordinate ids (start, count).
    Subordinate { uids: (u32, u32), gids: (u32, u32) },
    /// Rootless with the user's own id only (0 inside): every file in an image is the user's,
    /// and only root can run; `why` says what is missing for more.
    Single { why: String },
}

/// How this daemon runs containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSupport {
    pub ids: IdMap,
    /// Whether CPU, memory and process limits can be set.
    pub limits: Availability,
}

impl ContainerSupport {
    /// One line for people: `rootless (subordinate ids 100000-165535); no limits (…)`.
    pub fn describe(&self) -> String {
        let ids = match &self.ids {
            IdMap::Host => "as root".to_owned(),
            IdMap::Subordinate { uids, .. } => format!(
                "rootless (subordinate ids {}-{})",
                uids.0,
                u64::from(uids.0) + u64::from(uids.1) - 1
            ),
            IdMap::Single { why } => format!("rootless, root only inside ({why})"),
        };
        let limits = match &self.limits {
            Availability::Yes => "limits: CPU, memory, processes".to_owned(),
            Availability::No { why } => format!("no limits ({why})"),
        };
        format!("{ids}; {limits}")
    }
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
