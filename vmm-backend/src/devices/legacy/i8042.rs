//! The i8042 keyboard controller, reduced to what a VM needs from it: the guest's reset (the
//! 0xFE "pulse output line 0" command, how Linux reboots with `reboot=k` and the fallback of
//! most reboot paths) and enough of the command set that a driver probing it sees a controller
//! with no keyboard attached. Keyboard input comes later through virtio-input.

use std::collections::VecDeque;

use crate::bus::{BusAction, BusDevice};

/// First I/O port of the controller. It decodes 0x60 (data) and 0x64 (status/command); the
/// range given to the bus is 0x60..0x65, and 0x61-0x63 read as zero (port 0x61, the speaker
/// gate, is answered inside KVM by the in-kernel PIT before it reaches this bus).
pub const I8042_PORT: u16 = 0x60;
/// Length of the range the controller occupies.
pub const I8042_PORT_LEN: u16 = 5;

const DATA_OFFSET: u64 = 0;
const COMMAND_OFFSET: u64 = 4;

// Status register bits.
const STATUS_OUTPUT_FULL: u8 = 0x01;
const STATUS_SYSTEM_FLAG: u8 = 0x04; // set after a passed self-test
const STATUS_LAST_WAS_COMMAND: u8 = 0x08;

// Controller commands.
const CMD_READ_CONFIG: u8 = 0x20;
const CMD_WRITE_CONFIG: u8 = 0x60;
const CMD_DISABLE_AUX: u8 = 0xa7;
const CMD_ENABLE_AUX: u8 = 0xa8;
const CMD_TEST_AUX: u8 = 0xa9;
const CMD_SELF_TEST: u8 = 0xaa;
const CMD_TEST_KEYBOARD: u8 = 0xab;
const CMD_DISABLE_KEYBOARD: u8 = 0xad;
const CMD_ENABLE_KEYBOARD: u8 = 0xae;
const CMD_READ_OUTPUT_PORT: u8 = 0xd0;
const CMD_WRITE_OUTPUT_PORT: u8 = 0xd1;
const CMD_PULSE_RESET: u8 = 0xfe;

const SELF_TEST_PASSED: u8 = 0x55;
const INTERFACE_TEST_PASSED: u8 = 0x00;
/// Output port bit 0 is the CPU reset line (active low): clearing it resets the machine.
const OUTPUT_PORT_RESET_LINE: u8 = 0x01;

/// The controller state.
#[derive(Debug)]
pub struct I8042 {
    status: u8,
    config: u8,
    output_port: u8,
    /// Bytes waiting for the guest to read at the data port.
    output: VecDeque<u8>,
    /// A command whose parameter byte is the next data-port write.
    pending: Option<u8>,
}

impl Default for I8042 {
    fn default() -> Self {
        Self {
            status: STATUS_SYSTEM_FLAG,
            // Translate set 2 to set 1, system flag; interrupts off until a driver enables them.
            config: 0x44,
            // Reset line high (not asserted), A20 enabled.
            output_port: 0x03,
            output: VecDeque::new(),
            pending: None,
        }
    }
}

impl I8042 {
    /// A controller after power-on.
    pub fn new() -> Self {
        Self::default()
    }

    fn respond(&mut self, byte: u8) {
        // The real controller has a one-byte buffer; a few bytes of slack costs nothing and a
        // guest that never reads cannot grow it past this.
        if self.output.len() < 16 {
            self.output.push_back(byte);
        }
    }

    fn status(&self) -> u8 {
        let full = if self.output.is_empty() {
            0
        } else {
            STATUS_OUTPUT_FULL
        };
        self.status | full
    }

    fn command(&mut self, command: u8) -> BusAction {
        self.status |= STATUS_LAST_WAS_COMMAND;
        match command {
            CMD_READ_CONFIG => self.respond(self.config),
            CMD_WRITE_CONFIG | CMD_WRITE_OUTPUT_PORT => self.pending = Some(command),
            CMD_SELF_TEST => self.respond(SELF_TEST_PASSED),
            CMD_TEST_KEYBOARD | CMD_TEST_AUX => self.respond(INTERFACE_TEST_PASSED),
            CMD_READ_OUTPUT_PORT => self.respond(self.output_port),
            CMD_DISABLE_KEYBOARD => self.config |= 0x10,
            CMD_ENABLE_KEYBOARD => self.config &= !0x10,
            CMD_DISABLE_AUX => self.config |= 0x20,
            CMD_ENABLE_AUX => self.config &= !0x20,
            CMD_PULSE_RESET => return BusAction::Reset,
            _ => log::debug!("i8042: ignored command {command:#x}"),
        }
        BusAction::None
    }

    fn data(&mut self, byte: u8) -> BusAction {
        self.status &= !STATUS_LAST_WAS_COMMAND;
        match self.pending.take() {
            Some(CMD_WRITE_CONFIG) => self.config = byte,
            Some(CMD_WRITE_OUTPUT_PORT) => {
                self.output_port = byte;
                if byte & OUTPUT_PORT_RESET_LINE == 0 {
                    return BusAction::Reset;
                }
            }
            // A byte for the keyboard itself: there is none, so nothing answers, which is what
            // a driver sees when no keyboard is plugged in.
            _ => {}
        }
        BusAction::None
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Some(first) = data.first_mut() else {
            return;
        };
        match offset {
            DATA_OFFSET => *first = self.output.pop_front().unwrap_or(0),
            COMMAND_OFFSET => *first = self.status(),
            _ => {}
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        match (offset, data.first()) {
            (DATA_OFFSET, Some(&byte)) => self.data(byte),
            (COMMAND_OFFSET, Some(&byte)) => self.command(byte),
            _ => BusAction::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dev: &mut I8042, offset: u64) -> u8 {
        let mut data = [0xff];
        dev.read(offset, &mut data);
        data[0]
    }

    #[test]
    fn pulse_reset_command_resets_the_machine() {
        let mut dev = I8042::new();
        assert_eq!(dev.write(COMMAND_OFFSET, &[0xfe]), BusAction::Reset);
    }

    #[test]
    fn clearing_the_reset_line_resets_the_machine() {
        let mut dev = I8042::new();
        assert_eq!(dev.write(COMMAND_OFFSET, &[0xd1]), BusAction::None);
        assert_eq!(dev.write(DATA_OFFSET, &[0x02]), BusAction::Reset);
    }

    #[test]
    fn other_commands_do_not_reset() {
        let mut dev = I8042::new();
        for command in [0x20, 0xaa, 0xab, 0xad, 0xae, 0xa7, 0xa8, 0xf0, 0xff, 0x00] {
            assert_eq!(dev.write(COMMAND_OFFSET, &[command]), BusAction::None);
        }
        assert_eq!(dev.write(DATA_OFFSET, &[0xfe]), BusAction::None);
    }

    #[test]
    fn self_test_and_config_round_trip_like_a_driver_expects() {
        let mut dev = I8042::new();
        assert_eq!(read(&mut dev, COMMAND_OFFSET) & STATUS_OUTPUT_FULL, 0);
        dev.write(COMMAND_OFFSET, &[CMD_SELF_TEST]);
        assert_ne!(read(&mut dev, COMMAND_OFFSET) & STATUS_OUTPUT_FULL, 0);
        assert_eq!(read(&mut dev, DATA_OFFSET), SELF_TEST_PASSED);
        assert_eq!(read(&mut dev, COMMAND_OFFSET) & STATUS_OUTPUT_FULL, 0);

        dev.write(COMMAND_OFFSET, &[CMD_WRITE_CONFIG]);
        dev.write(DATA_OFFSET, &[0x47]);
        dev.write(COMMAND_OFFSET, &[CMD_READ_CONFIG]);
        assert_eq!(read(&mut dev, DATA_OFFSET), 0x47);
    }

    #[test]
    fn empty_and_stray_accesses_are_harmless() {
        let mut dev = I8042::new();
        assert_eq!(dev.write(COMMAND_OFFSET, &[]), BusAction::None);
        assert_eq!(dev.write(2, &[0xfe]), BusAction::None);
        dev.read(DATA_OFFSET, &mut []);
        assert_eq!(read(&mut dev, 1), 0);
    }
}
