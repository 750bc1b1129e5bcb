//! Events the daemon pushes to subscribed clients, interleaved with responses.

use serde::{Deserialize, Serialize};

use crate::container::{BlobProgress, BuildProgress, ContainerState};
use crate::host::HostSample;
use crate::vm::{VmInfo, VmState};

/// Something that changed in the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum Event {
    /// A VM was created or its definition changed.
    VmDefined(Box<VmInfo>),
    /// A VM was deleted.
    VmRemoved { name: String },
    /// A VM changed state (started, stopped, paused, crashed).
    VmState { name: String, state: VmState },
    /// A container changed state.
    ContainerState { id: String, state: ContainerState },
    /// The host's measured use.
    HostSample(HostSample),
    /// A build moved on to a step.
    BuildProgress(BuildProgress),
    /// Bytes of an image's layer arrived from a registry.
    PullProgress(BlobProgress),
    /// Bytes of an image's layer went to a registry.
    PushProgress(BlobProgress),
    /// Bytes a VM wrote to its serial console, as they came (not split into lines).
    VmSerial { name: String, data: Vec<u8> },
    /// A VM's display changed: the frame now published (the framebuffer header's frame number)
    /// and the rectangle that changed in it.
    DisplayUpdate {
        name: String,
        sequence: u64,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
    /// A VM's display changed mode (0x0: the guest turned its display off). Announced before the
    /// first frame in the new mode, so a client remaps before it reads one.
    DisplayMode {
        name: String,
        width: u32,
        height: u32,
    },
    /// This subscriber fell behind and `missed` events were dropped for it.
    Lagged { missed: u64 },
}
