//! The ACPI power button of a hardware-reduced machine: a Generic Event Device (`ACPI0013`) whose
//! interrupt makes the guest run its `_EVT` method, which notifies a control-method power button
//! (`PNP0C0C`). HW-reduced ACPI has no fixed power button (no PM1 event block), so this is how
//! the host asks a guest to shut down gracefully, as QEMU's microvm and Cloud Hypervisor do.
//!
//! The device has no registers: its only event is the power button, so `_EVT` needs no selector
//! to read. The ACPI side is in [`crate::acpi`] (`AcpiConfig::power_button_gsi`).

use std::sync::Arc;

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::vm::{Vm, VmError};

/// The GED's interrupt line: ISA IRQ 5, which no device of a Berth VM uses.
pub const POWER_BUTTON_GSI: u32 = 5;

/// The host side of the power button; clones press the same button.
#[derive(Debug, Clone)]
pub struct PowerButton {
    irq: Arc<EventFd>,
}

impl PowerButton {
    /// Connects the GED's interrupt line ([`POWER_BUTTON_GSI`]) to an irqfd on `vm`.
    pub fn attach(vm: &mut Vm) -> Result<Self, VmError> {
        let irq = EventFd::new(EFD_NONBLOCK).map_err(VmError::EventFd)?;
        vm.register_irqfd(&irq, POWER_BUTTON_GSI)?;
        Ok(Self { irq: Arc::new(irq) })
    }

    /// Presses the button: the guest's ACPI interpreter then reports a power-button event
    /// (Linux: the `button` driver's KEY_POWER input event). What the guest does with it is
    /// its own business.
    pub fn press(&self) -> std::io::Result<()> {
        self.irq.write(1)
    }
}
