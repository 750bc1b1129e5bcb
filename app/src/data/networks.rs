//! The networks the window's forms offer, in words for people.

use std::fmt;
use std::path::Path;

use berth_api::host::DaemonMode;
use berth_api::network::{ContainerNetwork, VmNetwork};

/// A network as a form's pick list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<T>(pub T);

/// The networks every VM can be on: NAT first, as every peer puts a new VM.
pub const VM_NETWORKS: [Choice<VmNetwork>; 3] = [
    Choice(VmNetwork::Nat),
    Choice(VmNetwork::Bridge),
    Choice(VmNetwork::None),
];

/// What the New VM wizard offers: [`VM_NETWORKS`]; with the system daemon, the bridges this
/// host has too (`sys_class_net`: where to look, /sys/class/net).
pub fn vm_choices(mode: DaemonMode, sys_class_net: &Path) -> Vec<Choice<VmNetwork>> {
    let mut choices = VM_NETWORKS.to_vec();
    if mode == DaemonMode::System {
        let mut bridges: Vec<String> = std::fs::read_dir(sys_class_net)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.path().join("bridge").is_dir())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        bridges.sort();
        choices.extend(
            bridges
                .into_iter()
                .map(|b| Choice(VmNetwork::HostBridge(b))),
        );
    }
    choices
}

/// What Launch Dockerfile offers.
pub const CONTAINER_CHOICES: [Choice<ContainerNetwork>; 3] = [
    Choice(ContainerNetwork::Bridge),
    Choice(ContainerNetwork::Pasta),
    Choice(ContainerNetwork::None),
];

impl fmt::Display for Choice<VmNetwork> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            VmNetwork::Nat => f.write_str("NAT (the host's network, through passt)"),
            VmNetwork::Bridge => f.write_str("Berth network (with containers and VMs)"),
            VmNetwork::HostBridge(name) => write!(f, "Host bridge {name} (on its network)"),
            VmNetwork::None => f.write_str("None (no network card)"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_daemons_wizard_offers_the_hosts_bridges() {
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sys.path().join("br1/bridge")).unwrap();
        std::fs::create_dir_all(sys.path().join("br0/bridge")).unwrap();
        std::fs::create_dir_all(sys.path().join("eth0")).unwrap();
        let user = vm_choices(DaemonMode::User, sys.path());
        assert_eq!(user.len(), 3);
        let system: Vec<String> = vm_choices(DaemonMode::System, sys.path())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            system[3..],
            [
                "Host bridge br0 (on its network)",
                "Host bridge br1 (on its network)"
            ]
        );
    }
}
