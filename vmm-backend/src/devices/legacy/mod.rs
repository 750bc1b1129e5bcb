//! The PC devices every Berth VM has at fixed I/O ports: COM1, the i8042 (for reset), the ACPI
//! sleep/reset registers (for power-off) and a CMOS RTC. [`LegacyDevices::attach`] puts them all
//! on a VM.

pub mod acpi_pm;
pub mod i8042;
pub mod rtc;
pub mod serial;

use std::io::Write;
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::vm::{Vm, VmError};
pub use acpi_pm::AcpiPmRegisters;
pub use i8042::I8042;
pub use rtc::CmosRtc;
pub use serial::{IrqLine, SerialPort};

/// The serial console's output sink as the daemon supplies it.
pub type ConsoleSink = Box<dyn Write + Send>;

/// Handles to the legacy devices of a VM, for the host side of them.
pub struct LegacyDevices {
    /// COM1: feed it input, reach its output sink.
    pub serial: Arc<Mutex<SerialPort<ConsoleSink>>>,
}

impl LegacyDevices {
    /// Puts COM1 (output to `console`, interrupt on IRQ 4), the i8042, the CMOS RTC and the ACPI PM registers
    /// on `vm`'s port-I/O bus.
    pub fn attach(vm: &mut Vm, console: ConsoleSink) -> Result<Self, VmError> {
        let irq = EventFd::new(EFD_NONBLOCK).map_err(VmError::EventFd)?;
        vm.register_irqfd(&irq, serial::COM1_IRQ)?;
        let serial = Arc::new(Mutex::new(SerialPort::new(IrqLine::new(irq), console)));
        vm.add_pio_device(serial::COM1_PORT, serial::SERIAL_PORT_LEN, serial.clone())?;
        vm.add_pio_device(
            i8042::I8042_PORT,
            i8042::I8042_PORT_LEN,
            Arc::new(Mutex::new(I8042::new())),
        )?;
        vm.add_pio_device(
            rtc::RTC_PORT,
            rtc::RTC_PORT_LEN,
            Arc::new(Mutex::new(CmosRtc::new())),
        )?;
        vm.add_pio_device(
            acpi_pm::ACPI_PM_PORT,
            acpi_pm::ACPI_PM_PORT_LEN,
            Arc::new(Mutex::new(AcpiPmRegisters::new())),
        )?;
        Ok(Self { serial })
    }
}
