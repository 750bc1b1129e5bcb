//! The Berth virtual machine monitor: KVM set-up, guest memory, boot, and the device models of
//! one VM. The `berth-vmm` binary (one process per VM, supervised by berthd) is built on it.

pub mod boot;
pub mod bus;
pub mod devices;
pub mod kvm;
pub mod long_mode;
pub mod memory;
pub mod vcpu;
pub mod vm;

pub use boot::BootSource;
pub use vcpu::{CrashReason, VmExitReason};
pub use vm::{StopHandle, Vm, VmConfig, VmError};
