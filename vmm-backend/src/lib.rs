//! The Berth virtual machine monitor: KVM set-up, guest memory, boot, and the device models of
//! one VM. The `berth-vmm` binary (one process per VM, supervised by berthd) is built on it.

pub mod bus;
pub mod virtio;
