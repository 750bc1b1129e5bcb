//! The contract between the vCPU exit loop and device models: a device claims a range of
//! port-I/O or MMIO addresses and is handed each access as an offset into its range.
//!
//! Accesses a guest makes are guest-controlled: widths may be odd, offsets may be anywhere in the
//! range. A device answers what it can and ignores the rest (reads of unknown registers return
//! zeroes); it never panics on an access.

/// What a device asks of the VMM after a write (most writes ask nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusAction {
    /// Nothing beyond the write itself.
    None,
    /// The guest asked to power off (ACPI sleep state S5).
    PowerOff,
    /// The guest asked to reset the machine (i8042 pulse, ACPI reset register).
    Reset,
}

/// A device model on the port-I/O or MMIO bus.
pub trait BusDevice: Send {
    /// The guest reads `data.len()` bytes at `offset` into the device's range.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset` into the device's range.
    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction;
}
