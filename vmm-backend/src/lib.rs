//! The Berth virtual machine monitor: KVM set-up, guest memory, boot, and the device models of
//! one VM. The `berth-vmm` binary (one process per VM, supervised by berthd) is built on it.
//!
//! Building and running a VM:
//! ```no_run
//! # fn main() -> Result<(), vmm_backend::VmError> {
//! use vmm_backend::devices::legacy::LegacyDevices;
//! use vmm_backend::{BootSource, Vm, VmConfig};
//!
//! let mut vm = Vm::new(&VmConfig { vcpus: 2, memory_size: 256 << 20 })?;
//! let legacy = LegacyDevices::attach(&mut vm, Box::new(std::io::stdout()))?;
//! vm.load(&BootSource::Flat { image: vec![0xf4], load_addr: 0x10_0000, entry: 0x10_0000 })?;
//! let stop = vm.stop_handle(); // for a host-side "power off now"
//! let reason = vm.run()?; // PowerOff, Reset, Stopped or Crash(reason)
//! # let _ = (legacy, stop, reason);
//! # Ok(())
//! # }
//! ```
//!
//! Modules, one job each:
//! - [`kvm`]: opening /dev/kvm and checking its capabilities;
//! - [`memory`]: guest RAM on one memfd, split around the 32-bit MMIO hole;
//! - [`vm`]: the KVM VM (irqchip, PIT, memory slots, vCPUs, buses) and `Vm::run`;
//! - [`vcpu`]: per-vCPU set-up (CPUID, registers) and the exit loop; why a VM ended;
//! - [`long_mode`]: GDT and identity page tables for entering guests in 64-bit mode;
//! - [`boot`]: boot sources and the low-memory layout they share;
//! - [`linux`]: bzImage boot (64-bit boot protocol, zero page, e820, initramfs);
//! - [`acpi`]: RSDP, XSDT, FADT (hardware-reduced), MADT and DSDT for Linux guests, placed
//!   by the VMM or (for firmware) by the firmware through loader commands;
//! - [`firmware`]: booting through SeaBIOS: its image below 4 GiB, the fw_cfg it reads;
//! - [`bus`]: the `BusDevice` contract and the port-I/O / MMIO address maps;
//! - [`devices::legacy`]: COM1, the i8042 (reset), the CMOS RTC and the ACPI sleep/reset registers;
//! - [`devices::fw_cfg`], [`devices::debug_port`]: what firmware reads the machine from and logs to;
//! - [`devices::cdrom`]: a CD drive's SCSI commands over an ISO, for a transport to carry;
//! - [`virtio`]: the transport-agnostic device contract, the virtio-mmio v2 transport,
//!   virtio-blk, virtio-rng and virtio-scsi (a CD drive).
//! - [`sandbox`]: the mount namespace, privileges and per-thread seccomp filters berth-vmm
//!   runs a VM under.
//!
//! Threads: `Vm::run` starts one thread per vCPU and waits. Each vCPU thread takes the device's
//! own mutex for each access, so devices see accesses from any vCPU, one at a time. The first
//! vCPU that ends the VM (or a `StopHandle`) decides the result; the others are stopped with a
//! shared flag and the [`vcpu::kick_signal`] real-time signal.

pub mod acpi;
pub mod boot;
pub mod bus;
pub mod devices;
pub mod firmware;
pub mod kvm;
pub mod linux;
pub mod long_mode;
pub mod memory;
pub mod sandbox;
pub mod terminal_keys;
pub mod vcpu;
pub mod virtio;
pub mod vm;

pub use boot::BootSource;
pub use vcpu::{CrashReason, VmExitReason};
pub use vm::{GuestRam, StopHandle, Vm, VmConfig, VmEnded, VmError, VmHandle};
