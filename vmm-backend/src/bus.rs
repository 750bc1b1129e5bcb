//! The contract between the vCPU exit loop and device models: a device claims a range of
//! port-I/O or MMIO addresses and is handed each access as an offset into its range.
//!
//! Accesses a guest makes are guest-controlled: widths may be odd, offsets may be anywhere in the
//! range. A device answers what it can and ignores the rest (reads of unknown registers return
//! zeroes); it never panics on an access. An address no device claims reads as the bus floats:
//! all ones on port I/O, as on a PC and in QEMU (so a guest probing for PCI config ports, the A20
//! gate or a CMOS index finds nothing there and moves on), zeroes on MMIO (QEMU's unassigned
//! memory).

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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A device shared between the bus and whoever else drives it (an input feeder, the daemon).
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Errors while placing devices on a bus.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum BusError {
    /// the range {base:#x}+{len:#x} is empty or wraps around the address space
    BadRange {
        /// First address of the range.
        base: u64,
        /// Length of the range.
        len: u64,
    },
    /// the range {base:#x}+{len:#x} overlaps a device already on the bus
    Overlap {
        /// First address of the range.
        base: u64,
        /// Length of the range.
        len: u64,
    },
}

/// One address space (port I/O or MMIO): non-overlapping ranges, each owned by one device.
///
/// Built before the vCPUs start and then only read, so vCPU threads share it without a lock;
/// each device has its own mutex, so two vCPUs touching different devices never contend.
#[derive(Default, Clone)]
pub struct Bus {
    /// Keyed by the range's first address; the value is the range length and the device.
    ranges: BTreeMap<u64, (u64, SharedDevice)>,
    /// What each byte of a read at an unclaimed address returns.
    unclaimed: u8,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.ranges
                    .iter()
                    .map(|(base, (len, _))| format!("{base:#x}+{len:#x}")),
            )
            .finish()
    }
}

impl Bus {
    /// An empty MMIO bus: unclaimed addresses read as zeroes.
    pub fn mmio() -> Self {
        Self::default()
    }

    /// An empty port-I/O bus: unclaimed ports read as all ones, the floating bus of a PC.
    ///
    /// Why it matters beyond fidelity: Linux takes ports reading zero for PCI configuration
    /// mechanism 2 and scans all 256 buses through it, and SeaBIOS takes a zero at the A20 gate
    /// (0x92) for a gate to open on each of its mode switches; each access is a VM exit.
    pub fn port_io() -> Self {
        Self {
            unclaimed: 0xff,
            ..Self::default()
        }
    }

    /// Puts `device` at `[base, base + len)`.
    pub fn insert(&mut self, base: u64, len: u64, device: SharedDevice) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::BadRange { base, len })?;
        // The only candidates for overlap: the last range starting below `end`.
        let overlaps = self
            .ranges
            .range(..end)
            .next_back()
            .is_some_and(|(&other_base, &(other_len, _))| other_base + other_len > base);
        if overlaps {
            return Err(BusError::Overlap { base, len });
        }
        self.ranges.insert(base, (len, device));
        Ok(())
    }

    /// The device whose range holds `addr`, and `addr`'s offset into that range.
    fn resolve(&self, addr: u64) -> Option<(&SharedDevice, u64)> {
        let (&base, (len, device)) = self.ranges.range(..=addr).next_back()?;
        let offset = addr - base;
        (offset < *len).then_some((device, offset))
    }

    /// A guest read of `data.len()` bytes at `addr`. Nothing there reads as the bus's unclaimed
    /// value ([`Bus::port_io`], [`Bus::mmio`]).
    pub fn read(&self, addr: u64, data: &mut [u8]) {
        match self.resolve(addr) {
            Some((device, offset)) => lock(device).read(offset, data),
            None => {
                log::debug!("read of {} bytes at unclaimed {addr:#x}", data.len());
                data.fill(self.unclaimed);
            }
        }
    }

    /// A guest write of `data` at `addr`. Nothing there ignores it.
    pub fn write(&self, addr: u64, data: &[u8]) -> BusAction {
        match self.resolve(addr) {
            Some((device, offset)) => lock(device).write(offset, data),
            None => {
                log::debug!("write of {} bytes at unclaimed {addr:#x}", data.len());
                BusAction::None
            }
        }
    }
}

/// Locks a device even if another vCPU thread panicked while holding it: the device state may be
/// odd, but the guest keeps running (or the panic already ended the VM).
fn lock(device: &SharedDevice) -> std::sync::MutexGuard<'_, dyn BusDevice + 'static> {
    device.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Remembers the last access so the test can see the offset the bus computed.
    #[derive(Default)]
    struct Probe {
        last_offset: Option<u64>,
        written: Vec<u8>,
    }

    impl BusDevice for Probe {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            self.last_offset = Some(offset);
            data.fill(0xAB);
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
            self.last_offset = Some(offset);
            self.written.extend_from_slice(data);
            if data == [0xFE] {
                BusAction::Reset
            } else {
                BusAction::None
            }
        }
    }

    #[test]
    fn accesses_reach_the_device_at_their_offset() {
        let probe = Arc::new(Mutex::new(Probe::default()));
        let mut bus = Bus::port_io();
        bus.insert(0x3f8, 8, probe.clone()).unwrap();

        let mut data = [0u8; 1];
        bus.read(0x3fd, &mut data);
        assert_eq!(data, [0xAB]);
        assert_eq!(probe.lock().unwrap().last_offset, Some(5));

        assert_eq!(bus.write(0x3f8, b"x"), BusAction::None);
        assert_eq!(bus.write(0x3ff, &[0xFE]), BusAction::Reset);
        assert_eq!(probe.lock().unwrap().last_offset, Some(7));
        assert_eq!(probe.lock().unwrap().written, b"x\xFE");
    }

    #[test]
    fn unclaimed_ports_read_all_ones_and_ignore_writes() {
        let probe = Arc::new(Mutex::new(Probe::default()));
        let mut bus = Bus::port_io();
        bus.insert(0x3f8, 8, probe.clone()).unwrap();

        let mut data = [0u8; 4];
        bus.read(0x400, &mut data); // just past the end
        assert_eq!(data, [0xFF; 4]);
        data = [0; 4];
        bus.read(0x3f7, &mut data); // just before the start
        assert_eq!(data, [0xFF; 4]);
        assert_eq!(bus.write(0x0, &[0xFE]), BusAction::None);
        assert_eq!(probe.lock().unwrap().last_offset, None);
    }

    #[test]
    fn unclaimed_mmio_reads_zero() {
        let probe = Arc::new(Mutex::new(Probe::default()));
        let mut bus = Bus::mmio();
        bus.insert(0xd000_0000, 0x200, probe.clone()).unwrap();
        let mut data = [0xFFu8; 4];
        bus.read(0xd000_0200, &mut data);
        assert_eq!(data, [0; 4]);
        assert_eq!(probe.lock().unwrap().last_offset, None);
    }

    #[test]
    fn overlapping_or_empty_ranges_are_refused() {
        let mut bus = Bus::port_io();
        bus.insert(0x60, 1, Arc::new(Mutex::new(Probe::default())))
            .unwrap();
        bus.insert(0x64, 1, Arc::new(Mutex::new(Probe::default())))
            .unwrap();
        let dev = || -> SharedDevice { Arc::new(Mutex::new(Probe::default())) };
        assert!(matches!(
            bus.insert(0x5f, 2, dev()),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(0x64, 1, dev()),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(0x10, 0, dev()),
            Err(BusError::BadRange { .. })
        ));
        assert!(matches!(
            bus.insert(u64::MAX, 2, dev()),
            Err(BusError::BadRange { .. })
        ));
        // Adjacent ranges are fine.
        bus.insert(0x61, 3, dev()).unwrap();
    }
}
