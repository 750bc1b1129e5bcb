//! The virtio-mmio transport, modern layout only (virtio 1.2 §4.2.2, register Version 2): Debian's
//! virtio-gpu and virtio-input drivers do not bind to a legacy (version 1) device.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_queue::{Queue, QueueT};

use super::{
    Activation, DeviceError, GuestMemory, InterruptSink, VIRTIO_F_VERSION_1, VirtioDevice,
};
use crate::bus::{BusAction, BusDevice};

/// The size of one device's MMIO window.
pub const MMIO_WINDOW_SIZE: u64 = 0x200;
/// Offset of QueueNotify in the window: register an ioeventfd at `base + NOTIFY_OFFSET` with the
/// queue index as datamatch and call [`MmioTransport::process_queue`] when it fires.
pub const NOTIFY_OFFSET: u64 = 0x50;

const MAGIC_VALUE: u32 = 0x7472_6976;
const MMIO_VERSION: u32 = 2;
/// "BRTH": Berth's vendor ID.
pub const VENDOR_ID: u32 = 0x4854_5242;
const CONFIG_OFFSET: u64 = 0x100;

/// Interrupt status bit: the device used buffers in a queue.
pub const INT_USED_RING: u32 = 1;
/// Interrupt status bit: the device configuration (or status) changed.
pub const INT_CONFIG: u32 = 2;

const ACKNOWLEDGE: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
const DRIVER: u32 = VIRTIO_CONFIG_S_DRIVER;
const FEATURES_OK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
const DRIVER_OK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;
const NEEDS_RESET: u32 = VIRTIO_CONFIG_S_NEEDS_RESET;
const FAILED: u32 = VIRTIO_CONFIG_S_FAILED;

/// The transport's view of the interrupt: it latches InterruptStatus bits, then forwards to the
/// VMM's sink (irqfd).
struct MmioInterrupt {
    status: AtomicU32,
    sink: Arc<dyn InterruptSink>,
}

impl InterruptSink for MmioInterrupt {
    fn signal_used_queue(&self) {
        self.status.fetch_or(INT_USED_RING, Ordering::SeqCst);
        self.sink.signal_used_queue();
    }
    fn signal_config(&self) {
        self.status.fetch_or(INT_CONFIG, Ordering::SeqCst);
        self.sink.signal_config();
    }
}

/// The driver-written registers of one queue, kept by the transport until DRIVER_OK turns them
/// into [`Queue`]s for the device.
#[derive(Debug, Default, Clone, Copy)]
struct QueueRegisters {
    max_size: u16,
    size: u16,
    ready: bool,
    desc: u64,
    driver: u64,
    device: u64,
}

fn set_low(value: &mut u64, low: u32) {
    *value = (*value & !0xffff_ffff) | u64::from(low);
}

fn set_high(value: &mut u64, high: u32) {
    *value = (*value & 0xffff_ffff) | (u64::from(high) << 32);
}

/// A virtio device on the MMIO bus.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: Arc<GuestMemory>,
    interrupt: Arc<MmioInterrupt>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<QueueRegisters>,
    shm_sel: u32,
    config_generation: u32,
}

impl MmioTransport {
    /// Puts `device` behind a virtio-mmio window. `mem` is guest RAM; `interrupt` is the VMM's
    /// interrupt line for this device (its GSI's irqfd).
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: Arc<GuestMemory>,
        interrupt: Arc<dyn InterruptSink>,
    ) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max_size| QueueRegisters {
                max_size,
                ..QueueRegisters::default()
            })
            .collect();
        MmioTransport {
            device,
            mem,
            interrupt: Arc::new(MmioInterrupt {
                status: AtomicU32::new(0),
                sink: interrupt,
            }),
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues,
            shm_sel: 0,
            config_generation: 0,
        }
    }

    /// The device status register (for tests and diagnostics).
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The interrupt status register: the VMM can use it to decide whether a level-triggered line
    /// is still asserted.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt.status.load(Ordering::SeqCst)
    }

    /// The driver notified queue `index` (through QueueNotify or its ioeventfd). Ignored unless
    /// the device is live; a device error puts it in DEVICE_NEEDS_RESET.
    pub fn process_queue(&mut self, index: u32) {
        if self.status & DRIVER_OK == 0 || self.status & NEEDS_RESET != 0 {
            return;
        }
        let Ok(index) = usize::try_from(index) else {
            return;
        };
        if index >= self.queues.len() {
            return;
        }
        if self.device.process_queue(index).is_err() {
            self.set_needs_reset();
        }
    }

    /// The device's peer socket is ready ([`VirtioDevice::process_peer`]). Ignored unless the
    /// device is live; a device error puts it in DEVICE_NEEDS_RESET.
    pub fn process_peer(&mut self) {
        if self.status & DRIVER_OK == 0 || self.status & NEEDS_RESET != 0 {
            return;
        }
        if self.device.process_peer().is_err() {
            self.set_needs_reset();
        }
    }

    /// Whether the device waits for its peer socket to take more ([`VirtioDevice::wants_writable`]).
    pub fn wants_writable(&self) -> bool {
        self.device.wants_writable()
    }

    /// Puts the device in DEVICE_NEEDS_RESET from outside (the VMM caught a device failure the
    /// device could not report itself); it stays stopped until the driver resets it.
    pub fn fail(&mut self) {
        self.set_needs_reset();
    }

    fn set_needs_reset(&mut self) {
        self.status |= NEEDS_RESET;
        self.interrupt.signal_config();
    }

    fn selected_queue(&mut self) -> Option<&mut QueueRegisters> {
        // Queue registers are writable only before DRIVER_OK and while the queue is not ready.
        if self.status & DRIVER_OK != 0 {
            return None;
        }
        let queue = self.queues.get_mut(usize::try_from(self.queue_sel).ok()?)?;
        (!queue.ready).then_some(queue)
    }

    fn reset(&mut self) {
        self.device.reset();
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.shm_sel = 0;
        self.interrupt.status.store(0, Ordering::SeqCst);
        for queue in &mut self.queues {
            *queue = QueueRegisters {
                max_size: queue.max_size,
                ..QueueRegisters::default()
            };
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        if value & FAILED != 0 {
            self.status |= FAILED;
            return;
        }
        // A write adds its bits to the status (only a reset clears them, §3.1.1), and each bit
        // needs the one before it: DRIVER needs ACKNOWLEDGE, FEATURES_OK needs DRIVER,
        // DRIVER_OK needs FEATURES_OK. Several may come in one write, as QEMU allows: SeaBIOS
        // writes its features first and then ACKNOWLEDGE | DRIVER | FEATURES_OK at once, and
        // its virtio-scsi driver writes FEATURES_OK alone and later its status without it
        // (QEMU stores what it is given). A write out of order is ignored and the driver reads
        // back the status it did not get.
        let old = self.status & !NEEDS_RESET;
        let mut new =
            (old | value) & !NEEDS_RESET & (ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        let ordered = [
            (DRIVER, ACKNOWLEDGE),
            (FEATURES_OK, DRIVER),
            (DRIVER_OK, FEATURES_OK),
        ]
        .iter()
        .all(|&(bit, needs)| new & bit == 0 || new & needs != 0);
        if new == old || !ordered {
            return;
        }
        // FEATURES_OK is refused (left clear, and DRIVER_OK with it) unless the accepted
        // features are a subset of the offered ones and include VIRTIO_F_VERSION_1.
        if new & FEATURES_OK != 0 && old & FEATURES_OK == 0 && !self.features_acceptable() {
            new &= !(FEATURES_OK | DRIVER_OK);
        }
        self.status = (self.status & NEEDS_RESET) | new;
        if new & DRIVER_OK != 0 && old & DRIVER_OK == 0 && self.activate().is_err() {
            self.set_needs_reset();
        }
    }

    fn features_acceptable(&self) -> bool {
        let offered = self.device.features();
        self.driver_features & !offered == 0 && self.driver_features & VIRTIO_F_VERSION_1 != 0
    }

    fn activate(&mut self) -> Result<(), DeviceError> {
        let mut queues = Vec::with_capacity(self.queues.len());
        for (index, regs) in self.queues.iter().enumerate() {
            let invalid = |reason: &str| DeviceError::Protocol {
                queue: index,
                reason: reason.to_owned(),
            };
            let mut queue = Queue::new(regs.max_size).map_err(|_| invalid("bad maximum size"))?;
            if regs.ready {
                queue
                    .try_set_size(regs.size)
                    .map_err(|_| invalid("bad size"))?;
                queue
                    .try_set_desc_table_address(vm_memory::GuestAddress(regs.desc))
                    .map_err(|_| invalid("misaligned descriptor table"))?;
                queue
                    .try_set_avail_ring_address(vm_memory::GuestAddress(regs.driver))
                    .map_err(|_| invalid("misaligned driver area"))?;
                queue
                    .try_set_used_ring_address(vm_memory::GuestAddress(regs.device))
                    .map_err(|_| invalid("misaligned device area"))?;
                queue.set_ready(true);
                if !queue.is_valid(self.mem.as_ref()) {
                    return Err(invalid("rings outside guest memory"));
                }
            }
            queues.push(queue);
        }
        let interrupt: Arc<dyn InterruptSink> = self.interrupt.clone();
        self.device.activate(Activation {
            mem: self.mem.clone(),
            interrupt,
            queues,
            acked_features: self.driver_features,
        })
    }

    fn read_register(&self, offset: u64) -> u32 {
        let queue = usize::try_from(self.queue_sel)
            .ok()
            .and_then(|sel| self.queues.get(sel));
        match offset {
            0x000 => MAGIC_VALUE,
            0x004 => MMIO_VERSION,
            0x008 => self.device.device_type(),
            0x00c => VENDOR_ID,
            0x010 => {
                let features = self.device.features();
                match self.device_features_sel {
                    0 => features as u32,
                    1 => (features >> 32) as u32,
                    _ => 0,
                }
            }
            0x034 => queue.map_or(0, |q| u32::from(q.max_size)),
            0x044 => queue.map_or(0, |q| u32::from(q.ready)),
            0x060 => self.interrupt.status.load(Ordering::SeqCst),
            0x070 => self.status,
            // No shared memory regions: length all ones (§4.2.2).
            0x0b0 | 0x0b4 => u32::MAX,
            0x0fc => self.config_generation,
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        match offset {
            0x014 => self.device_features_sel = value,
            // Features are negotiable until FEATURES_OK (QEMU takes them before DRIVER too,
            // which SeaBIOS relies on).
            0x020 if self.status & FEATURES_OK == 0 => match self.driver_features_sel {
                0 => set_low(&mut self.driver_features, value),
                1 => set_high(&mut self.driver_features, value),
                _ => {}
            },
            0x024 => self.driver_features_sel = value,
            0x030 => self.queue_sel = value,
            0x038 => {
                if let Some(queue) = self.selected_queue() {
                    let max = queue.max_size;
                    // A bad size is refused; the queue keeps size 0 and cannot become ready.
                    queue.size = match u16::try_from(value) {
                        Ok(size) if size != 0 && size.is_power_of_two() && size <= max => size,
                        _ => 0,
                    };
                }
            }
            0x044 => {
                if self.status & DRIVER_OK != 0 {
                    return;
                }
                if let Some(queue) = usize::try_from(self.queue_sel)
                    .ok()
                    .and_then(|sel| self.queues.get_mut(sel))
                {
                    if value == 0 {
                        queue.ready = false;
                    } else if queue.size != 0 {
                        queue.ready = true;
                    }
                }
            }
            NOTIFY_OFFSET => self.process_queue(value),
            0x064 => {
                self.interrupt.status.fetch_and(!value, Ordering::SeqCst);
            }
            0x070 => self.write_status(value),
            0x080 => self
                .selected_queue()
                .map_or((), |q| set_low(&mut q.desc, value)),
            0x084 => self
                .selected_queue()
                .map_or((), |q| set_high(&mut q.desc, value)),
            0x090 => self
                .selected_queue()
                .map_or((), |q| set_low(&mut q.driver, value)),
            0x094 => self
                .selected_queue()
                .map_or((), |q| set_high(&mut q.driver, value)),
            0x0a0 => self
                .selected_queue()
                .map_or((), |q| set_low(&mut q.device, value)),
            0x0a4 => self
                .selected_queue()
                .map_or((), |q| set_high(&mut q.device, value)),
            0x0ac => self.shm_sel = value,
            _ => {}
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_OFFSET {
            self.device.read_config(offset - CONFIG_OFFSET, data);
            return;
        }
        // Registers are 32 bits wide and read whole (§4.2.2.2); other accesses read zeroes.
        if data.len() != 4 || offset & 3 != 0 {
            data.fill(0);
            return;
        }
        data.copy_from_slice(&self.read_register(offset).to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        if offset >= CONFIG_OFFSET {
            self.device.write_config(offset - CONFIG_OFFSET, data);
            return BusAction::None;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return BusAction::None;
        };
        if offset & 3 == 0 {
            self.write_register(offset, u32::from_le_bytes(bytes));
        }
        BusAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::rng::Rng;
    use crate::virtio::testing::{Buf, Driver, QUEUE_SIZE};

    const S_ACK: u32 = 1;
    const S_DRIVER: u32 = 2;
    const S_FEATURES_OK: u32 = 8;
    const S_DRIVER_OK: u32 = 4;

    fn rng_driver() -> Driver {
        Driver::new(Box::new(Rng::new()))
    }

    #[test]
    fn identification_registers() {
        let mut d = rng_driver();
        assert_eq!(d.read(0x000), 0x7472_6976);
        assert_eq!(d.read(0x004), 2, "modern transport only");
        assert_eq!(d.read(0x008), 4, "entropy device id");
        assert_eq!(d.read(0x00c), VENDOR_ID);
        // Odd-width reads of registers read zero rather than garbage.
        let mut two = [0xffu8; 2];
        d.transport.read(0, &mut two);
        assert_eq!(two, [0, 0]);
    }

    #[test]
    fn device_features_by_selector() {
        let mut d = rng_driver();
        d.write(0x14, 0);
        assert_eq!(d.read(0x10), 0);
        d.write(0x14, 1);
        assert_eq!(d.read(0x10), 1, "VERSION_1 is bit 32");
        d.write(0x14, 7);
        assert_eq!(d.read(0x10), 0);
    }

    #[test]
    fn features_ok_needs_version_1() {
        let mut d = rng_driver();
        assert_eq!(d.negotiate(0), S_ACK | S_DRIVER, "FEATURES_OK refused");
    }

    #[test]
    fn features_ok_refused_for_unoffered_feature() {
        let mut d = rng_driver();
        let status = d.negotiate(VIRTIO_F_VERSION_1 | 1 << 28);
        assert_eq!(status, S_ACK | S_DRIVER, "FEATURES_OK refused");
        let mut d = rng_driver();
        assert_eq!(
            d.negotiate(VIRTIO_F_VERSION_1),
            S_ACK | S_DRIVER | S_FEATURES_OK
        );
    }

    #[test]
    fn status_steps_must_come_in_order() {
        let mut d = rng_driver();
        d.write(0x70, S_DRIVER);
        assert_eq!(d.status(), 0, "DRIVER before ACKNOWLEDGE is ignored");
        d.write(0x70, S_ACK);
        d.write(0x70, S_ACK | S_DRIVER | S_DRIVER_OK);
        assert_eq!(d.status(), S_ACK, "DRIVER_OK needs FEATURES_OK");
        d.write(0x70, S_ACK | S_DRIVER);
        d.write(0x70, S_DRIVER);
        assert_eq!(d.status(), S_ACK | S_DRIVER, "a bit is never cleared");
        d.write(0x70, S_ACK | S_DRIVER | S_FEATURES_OK);
        assert_eq!(
            d.status(),
            S_ACK | S_DRIVER,
            "FEATURES_OK without VERSION_1 is refused"
        );
        d.write(0x70, 0x80);
        assert_eq!(d.status() & 0x80, 0x80, "FAILED can always be set");
    }

    #[test]
    fn features_first_then_several_status_bits_at_once_as_seabios_does() {
        let mut d = rng_driver();
        d.write(0x70, 0);
        d.write(0x24, 1);
        d.write(0x20, (VIRTIO_F_VERSION_1 >> 32) as u32);
        d.write(0x70, S_ACK | S_DRIVER | S_FEATURES_OK);
        assert_eq!(d.status(), S_ACK | S_DRIVER | S_FEATURES_OK);
        d.setup_queue(0, QUEUE_SIZE);
        d.write(0x70, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        assert_eq!(d.status(), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    }

    #[test]
    fn status_writes_add_bits_as_seabios_virtio_scsi_needs() {
        let mut d = rng_driver();
        d.write(0x70, S_ACK);
        d.write(0x70, S_ACK | S_DRIVER);
        d.write(0x24, 1);
        d.write(0x20, (VIRTIO_F_VERSION_1 >> 32) as u32);
        d.write(0x70, S_FEATURES_OK);
        assert_eq!(d.status(), S_ACK | S_DRIVER | S_FEATURES_OK);
        d.setup_queue(0, QUEUE_SIZE);
        d.write(0x70, S_ACK | S_DRIVER | S_DRIVER_OK);
        assert_eq!(d.status(), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    }

    #[test]
    fn features_frozen_after_features_ok() {
        let mut d = rng_driver();
        assert_eq!(
            d.negotiate(VIRTIO_F_VERSION_1),
            S_ACK | S_DRIVER | S_FEATURES_OK
        );
        // A late write of an unoffered feature must not reach the device.
        d.write(0x24, 0);
        d.write(0x20, 0xffff_ffff);
        d.setup_queue(0, QUEUE_SIZE);
        d.write(0x70, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        assert_eq!(d.status(), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        assert_eq!(d.transport.driver_features, VIRTIO_F_VERSION_1);
    }

    #[test]
    fn queue_size_rules() {
        let mut d = rng_driver();
        d.negotiate(VIRTIO_F_VERSION_1);
        d.write(0x30, 0);
        assert_eq!(d.read(0x34), 256, "QueueNumMax");
        for bad in [0u32, 3, 100, 512, 0x1_0000] {
            d.write(0x38, bad);
            d.write(0x44, 1);
            assert_eq!(d.read(0x44), 0, "size {bad} refused: queue cannot be ready");
        }
        d.write(0x38, 64);
        d.write(0x44, 1);
        assert_eq!(d.read(0x44), 1);
        // A queue that does not exist has max 0 and never becomes ready.
        d.write(0x30, 5);
        assert_eq!(d.read(0x34), 0);
        d.write(0x38, 16);
        d.write(0x44, 1);
        assert_eq!(d.read(0x44), 0);
    }

    #[test]
    fn queue_registers_locked_while_ready_and_after_driver_ok() {
        let mut d = rng_driver();
        d.negotiate(VIRTIO_F_VERSION_1);
        d.setup_queue(0, QUEUE_SIZE);
        d.write(0x80, 0xdead_0000);
        assert_eq!(
            d.transport.queues[0].desc,
            crate::virtio::testing::DESC_TABLE
        );
        d.write(0x70, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        d.write(0x44, 0);
        assert_eq!(
            d.read(0x44),
            1,
            "QueueReady cannot be cleared after DRIVER_OK"
        );
        d.write(0x38, 8);
        assert_eq!(d.transport.queues[0].size, QUEUE_SIZE);
    }

    #[test]
    fn reset_clears_status_queues_and_device() {
        let mut d = Driver::bring_up(Box::new(Rng::new()), 0);
        d.write(0x70, 0);
        assert_eq!(d.status(), 0);
        d.write(0x30, 0);
        assert_eq!(d.read(0x44), 0, "queue not ready after reset");
        // The reset device ignores notifications: nothing is used.
        d.submit(&[Buf(0x10000, 16, true)]);
        d.notify(0);
        assert_eq!(d.used_idx(), 0);
        // And it can be brought up again.
        assert_eq!(
            d.negotiate(VIRTIO_F_VERSION_1),
            S_ACK | S_DRIVER | S_FEATURES_OK
        );
    }

    #[test]
    fn rings_outside_memory_set_needs_reset() {
        let mut d = rng_driver();
        d.negotiate(VIRTIO_F_VERSION_1);
        d.write(0x30, 0);
        d.write(0x38, 16);
        d.write(0x80, 0);
        d.write(0x84, 0x10); // far beyond guest RAM
        d.write(0x90, 0x2000);
        d.write(0xa0, 0x3000);
        d.write(0x44, 1);
        d.write(0x70, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        assert_eq!(d.status() & 0x40, 0x40, "DEVICE_NEEDS_RESET");
        assert_eq!(d.read(0x60) & INT_CONFIG, INT_CONFIG);
        assert_eq!(d.irq.config.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn interrupt_status_and_ack() {
        let mut d = Driver::bring_up(Box::new(Rng::new()), 0);
        d.submit(&[Buf(0x10000, 8, true)]);
        d.notify(0);
        assert_eq!(d.read(0x60), INT_USED_RING);
        assert_eq!(d.irq.used.load(Ordering::SeqCst), 1);
        d.write(0x64, INT_USED_RING);
        assert_eq!(d.read(0x60), 0);
    }

    #[test]
    fn process_queue_entry_point_matches_notify_register() {
        let mut d = Driver::bring_up(Box::new(Rng::new()), 0);
        d.submit(&[Buf(0x10000, 8, true)]);
        // The ioeventfd path: the VMM calls process_queue directly.
        d.transport.process_queue(0);
        assert_eq!(d.used_idx(), 1);
        // Out-of-range queue indexes are ignored.
        d.transport.process_queue(9);
        d.transport.process_queue(u32::MAX);
        assert_eq!(d.status() & 0x40, 0);
    }

    #[test]
    fn no_shared_memory_regions() {
        let mut d = rng_driver();
        assert_eq!(d.read(0xb0), u32::MAX);
        assert_eq!(d.read(0xb4), u32::MAX);
    }
}
