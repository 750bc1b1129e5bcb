//! The 8250/16550A UART at COM1, modelled by vm-superio: what the guest transmits goes to a
//! `Write` sink (the daemon's per-VM console log and its subscribers); bytes the host feeds in
//! are received by the guest, with an interrupt through an irqfd.

use std::io::Write;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::{BusAction, BusDevice};

/// First I/O port of COM1.
pub const COM1_PORT: u16 = 0x3f8;
/// Number of ports a UART decodes.
pub const SERIAL_PORT_LEN: u16 = 8;
/// The ISA interrupt line of COM1.
pub const COM1_IRQ: u32 = 4;

/// Errors of the serial port.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum SerialError {
    /// the serial receive FIFO is full; the guest has not read what it was sent
    InputFull,
    /// raising the serial interrupt failed: {0}
    Interrupt(#[source] std::io::Error),
}

/// The interrupt line of the UART: an eventfd that KVM turns into IRQ 4 (see
/// `Vm::register_irqfd`).
#[derive(Debug)]
pub struct IrqLine(EventFd);

impl IrqLine {
    /// A line that raises the interrupt wired to `event`.
    pub fn new(event: EventFd) -> Self {
        Self(event)
    }

    /// The eventfd, to register with KVM.
    pub fn event(&self) -> &EventFd {
        &self.0
    }
}

impl Trigger for IrqLine {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// COM1 on the port-I/O bus.
pub struct SerialPort<W: Write + Send> {
    uart: Serial<IrqLine, NoEvents, W>,
}

impl<W: Write + Send> SerialPort<W> {
    /// A UART whose output goes to `out` and whose interrupts go to `irq`.
    pub fn new(irq: IrqLine, out: W) -> Self {
        Self {
            uart: Serial::new(irq, out),
        }
    }

    /// The interrupt eventfd, to register with KVM on [`COM1_IRQ`].
    pub fn irq_event(&self) -> &EventFd {
        self.uart.interrupt_evt().event()
    }

    /// Queues `input` for the guest to receive; returns how many bytes fit in the FIFO (the
    /// caller retries the rest once the guest has read).
    pub fn feed_input(&mut self, input: &[u8]) -> Result<usize, SerialError> {
        self.uart.enqueue_raw_bytes(input).map_err(|e| match e {
            vm_superio::serial::Error::Trigger(e) | vm_superio::serial::Error::IOError(e) => {
                SerialError::Interrupt(e)
            }
            vm_superio::serial::Error::FullFifo => SerialError::InputFull,
        })
    }

    /// The output sink.
    pub fn output(&self) -> &W {
        self.uart.writer()
    }

    /// The output sink, to swap or flush it.
    pub fn output_mut(&mut self) -> &mut W {
        self.uart.writer_mut()
    }
}

impl<W: Write + Send> BusDevice for SerialPort<W> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // UART registers are one byte wide; wider or out-of-range reads see nothing.
        match (u8::try_from(offset), data) {
            (Ok(offset @ 0..8), [byte]) => *byte = self.uart.read(offset),
            (_, data) => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        if let (Ok(offset @ 0..8), [byte]) = (u8::try_from(offset), data) {
            // A failing sink (a full disk under the console log) must not stop the guest: the
            // byte is lost, the UART still reports it sent.
            if let Err(e) = self.uart.write(offset, *byte) {
                log::debug!("serial output lost: {e:?}");
            }
        }
        BusAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    // Register offsets and bits from the 16550 data sheet.
    const DATA: u64 = 0;
    const IER: u64 = 1;
    const IIR: u64 = 2;
    const LSR: u64 = 5;
    const LSR_DATA_READY: u8 = 0x01;
    const LSR_THR_EMPTY: u8 = 0x20;
    const IER_RX: u8 = 0x01;
    const IIR_RX_DATA: u8 = 0x04;

    fn port() -> SerialPort<Vec<u8>> {
        SerialPort::new(
            IrqLine::new(EventFd::new(EFD_NONBLOCK).unwrap()),
            Vec::new(),
        )
    }

    fn read(port: &mut SerialPort<Vec<u8>>, offset: u64) -> u8 {
        let mut data = [0xff];
        port.read(offset, &mut data);
        data[0]
    }

    #[test]
    fn guest_output_reaches_the_sink() {
        let mut port = port();
        assert_ne!(read(&mut port, LSR) & LSR_THR_EMPTY, 0, "ready to send");
        for byte in b"hello\n" {
            assert_eq!(port.write(DATA, &[*byte]), BusAction::None);
        }
        assert_eq!(port.output(), b"hello\n");
    }

    #[test]
    fn fed_input_is_received_with_an_interrupt() {
        let mut port = port();
        port.write(IER, &[IER_RX]);
        // Enabling interrupts may itself signal "transmitter empty"; start from a quiet line.
        let _ = port.irq_event().read();

        assert_eq!(port.feed_input(b"ok").unwrap(), 2);
        assert_eq!(port.irq_event().read().unwrap(), 1, "IRQ raised");
        assert_eq!(read(&mut port, IIR) & 0x0f, IIR_RX_DATA);
        assert_ne!(read(&mut port, LSR) & LSR_DATA_READY, 0);
        assert_eq!(read(&mut port, DATA), b'o');
        assert_eq!(read(&mut port, DATA), b'k');
        assert_eq!(read(&mut port, LSR) & LSR_DATA_READY, 0, "FIFO drained");
    }

    #[test]
    fn a_full_fifo_says_so() {
        let mut port = port();
        let fitted = port.feed_input(&[b'x'; 1000]).unwrap();
        assert!(fitted < 1000);
        assert!(matches!(port.feed_input(b"y"), Err(SerialError::InputFull)));
    }

    #[test]
    fn odd_accesses_are_harmless() {
        let mut port = port();
        let mut wide = [0xffu8; 4];
        port.read(DATA, &mut wide);
        assert_eq!(wide, [0; 4]);
        assert_eq!(port.write(DATA, b"ab"), BusAction::None);
        assert_eq!(port.write(0x100, b"a"), BusAction::None);
        assert!(port.output().is_empty());
    }
}
