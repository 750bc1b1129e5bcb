//! The networks the window's forms offer, in words for people, and where a published port
//! opens in a browser.

use std::fmt;

use berth_api::network::{ContainerNetwork, VmNetwork};

/// A network as a form's pick list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<T>(pub T);

/// What the New VM wizard offers: NAT first, as every peer puts a new VM.
pub const VM_CHOICES: [Choice<VmNetwork>; 3] = [
    Choice(VmNetwork::Nat),
    Choice(VmNetwork::Bridge),
    Choice(VmNetwork::None),
];

/// What Launch Dockerfile offers.
pub const CONTAINER_CHOICES: [Choice<ContainerNetwork>; 3] = [
    Choice(ContainerNetwork::Bridge),
    Choice(ContainerNetwork::Pasta),
    Choice(ContainerNetwork::None),
];

impl fmt::Display for Choice<VmNetwork> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            VmNetwork::Nat => "NAT (the host's network, through passt)",
            VmNetwork::Bridge => "Berth network (with containers and VMs)",
            VmNetwork::None => "None (no network card)",
        })
    }
}

impl fmt::Display for Choice<ContainerNetwork> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            ContainerNetwork::Bridge => "Berth network (reaches other containers and VMs by name)",
            ContainerNetwork::Pasta => "The host's network (through pasta)",
            ContainerNetwork::None => "None (loopback only)",
        })
    }
}
