//! QEMU's ISA debug console (`isa-debugcon`) at port 0x402: firmware writes its log there, one
//! byte at a time, once a read of the port has answered 0xE9. SeaBIOS logs what it finds (fw_cfg
//! files, virtio-mmio devices, boot order, boot attempts), which is how a firmware boot that
//! goes wrong is understood.

use std::io::Write;

use crate::bus::{BusAction, BusDevice};

/// The port SeaBIOS's QEMU build writes its log to.
pub const DEBUG_PORT: u16 = 0x402;
/// How many ports the device decodes.
pub const DEBUG_PORT_LEN: u16 = 1;
/// What a read answers: "a debug console is here".
const PRESENT: u8 = 0xe9;

/// The debug console: every byte written goes to its sink.
pub struct DebugPort {
    sink: Box<dyn Write + Send>,
}

impl DebugPort {
    /// A debug console writing to `sink`.
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        DebugPort { sink }
    }
}

impl BusDevice for DebugPort {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(PRESENT);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) -> BusAction {
        // A log that cannot be written is not the guest's problem.
        let _ = self.sink.write_all(data);
        BusAction::None
    }
}
