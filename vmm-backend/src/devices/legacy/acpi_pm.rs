//! The ACPI hardware-reduced power-management registers: the sleep control and sleep status
//! registers (ACPI 6.5, 4.8.3.7) and a reset register (4.8.3.6), one byte each at consecutive
//! I/O ports. A FADT written later points SLEEP_CONTROL_REG, SLEEP_STATUS_REG and RESET_REG at
//! these ports, and the DSDT's `\_S5` package gives SLP_TYP [`SLP_TYP_S5`]; then `poweroff` in
//! the guest ends the VM.

use crate::bus::{BusAction, BusDevice};

/// I/O port of the sleep control register (FADT SLEEP_CONTROL_REG, 8 bits wide).
pub const ACPI_SLEEP_CONTROL_PORT: u16 = 0x600;
/// I/O port of the sleep status register (FADT SLEEP_STATUS_REG, 8 bits wide).
pub const ACPI_SLEEP_STATUS_PORT: u16 = 0x601;
/// I/O port of the reset register (FADT RESET_REG, 8 bits wide).
pub const ACPI_RESET_PORT: u16 = 0x602;
/// The value the guest writes to the reset register (FADT RESET_VALUE).
pub const ACPI_RESET_VALUE: u8 = 0x0f;
/// First port of the device and how many it decodes.
pub const ACPI_PM_PORT: u16 = ACPI_SLEEP_CONTROL_PORT;
/// Number of ports the device decodes.
pub const ACPI_PM_PORT_LEN: u16 = 3;

/// The sleep type the DSDT's `\_S5` object must name for soft-off.
pub const SLP_TYP_S5: u8 = 5;

/// Sleep control register: SLP_EN, "enter the sleep state in SLP_TYP now".
const SLP_EN: u8 = 1 << 5;
/// Sleep control register: SLP_TYP occupies bits 2-4.
const SLP_TYP_SHIFT: u8 = 2;
const SLP_TYP_MASK: u8 = 0b111;

const SLEEP_CONTROL_OFFSET: u64 = 0;
const SLEEP_STATUS_OFFSET: u64 = 1;
const RESET_OFFSET: u64 = 2;

/// The sleep control/status and reset registers.
#[derive(Debug, Default)]
pub struct AcpiPmRegisters {
    _private: (),
}

impl AcpiPmRegisters {
    /// The registers after power-on.
    pub fn new() -> Self {
        Self::default()
    }
}

impl BusDevice for AcpiPmRegisters {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Sleep status: WAK_STS clear (the VM never wakes from a sleep state; S5 ends it).
        // Sleep control and reset registers are write-only and read as zero.
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        let Some(&value) = data.first() else {
            return BusAction::None;
        };
        match offset {
            SLEEP_CONTROL_OFFSET if value & SLP_EN != 0 => {
                let slp_typ = (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
                if slp_typ == SLP_TYP_S5 {
                    return BusAction::PowerOff;
                }
                // S1-S4 would need the VMM to suspend and wake the guest; not offered (the
                // DSDT names no such states), so the write is ignored like on a board that
                // lacks them.
                log::debug!("ACPI: ignored request for sleep type {slp_typ}");
            }
            // Write-1-to-clear of WAK_STS: nothing is ever set.
            SLEEP_STATUS_OFFSET => {}
            RESET_OFFSET if value == ACPI_RESET_VALUE => return BusAction::Reset,
            _ => {}
        }
        BusAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_with_slp_en_powers_off() {
        let mut dev = AcpiPmRegisters::new();
        // What Linux writes for S5: SLP_TYP from \_S5 in bits 2-4, SLP_EN in bit 5.
        assert_eq!(
            dev.write(SLEEP_CONTROL_OFFSET, &[0x34]),
            BusAction::PowerOff
        );
    }

    #[test]
    fn other_sleep_writes_do_nothing() {
        let mut dev = AcpiPmRegisters::new();
        // SLP_TYP 5 without SLP_EN: only latches the type on real hardware.
        assert_eq!(dev.write(SLEEP_CONTROL_OFFSET, &[0x14]), BusAction::None);
        // SLP_EN with S3.
        assert_eq!(dev.write(SLEEP_CONTROL_OFFSET, &[0x2c]), BusAction::None);
        // The same S5 value on the status register.
        assert_eq!(dev.write(SLEEP_STATUS_OFFSET, &[0x34]), BusAction::None);
        assert_eq!(dev.write(SLEEP_CONTROL_OFFSET, &[]), BusAction::None);
    }

    #[test]
    fn reset_register_resets_only_with_its_value() {
        let mut dev = AcpiPmRegisters::new();
        assert_eq!(dev.write(RESET_OFFSET, &[0x01]), BusAction::None);
        assert_eq!(
            dev.write(RESET_OFFSET, &[ACPI_RESET_VALUE]),
            BusAction::Reset
        );
    }

    #[test]
    fn ports_are_consecutive_from_the_device_base() {
        assert_eq!(
            u64::from(ACPI_SLEEP_STATUS_PORT - ACPI_PM_PORT),
            SLEEP_STATUS_OFFSET
        );
        assert_eq!(u64::from(ACPI_RESET_PORT - ACPI_PM_PORT), RESET_OFFSET);
    }

    #[test]
    fn status_reads_zero() {
        let mut dev = AcpiPmRegisters::new();
        let mut data = [0xff; 2];
        dev.read(SLEEP_STATUS_OFFSET, &mut data);
        assert_eq!(data, [0, 0]);
    }
}
