//! Putting virtio devices on a KVM VM over virtio-mmio: each device gets a register window in the
//! 32-bit MMIO hole, an interrupt line (a GSI driven by an irqfd), and one ioeventfd per queue on
//! its QueueNotify register; one device thread waits on every ioeventfd (epoll) and runs the
//! device's queue processing.
//!
//! Why ioeventfds: a QueueNotify write then never leaves the kernel on the vCPU's side (no exit
//! to userspace, about 120 µs each in the nested lab), and the vCPU goes on while the device
//! thread does the I/O. Why irqfds: the device thread raises the interrupt without a vCPU.
//!
//! Guest-controlled input never panics the VMM: the transport and devices turn malformed
//! requests into statuses or DEVICE_NEEDS_RESET, and a device that panics anyway is caught here
//! and put in DEVICE_NEEDS_RESET too; the VM goes on.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};

use crate::sandbox::seccomp::ThreadRole;
use std::thread::JoinHandle;

use kvm_ioctls::IoEventAddress;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::mmio::{MMIO_WINDOW_SIZE, MmioTransport, NOTIFY_OFFSET};
use super::{InterruptSink, VirtioDevice};
use crate::acpi::VirtioMmioDevice;
use crate::vm::{Vm, VmError};

/// Guest-physical address of the first device window (inside the 32-bit MMIO hole, which starts
/// at 0xC000_0000; nothing else lives at 0xD000_0000).
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
/// Distance between two device windows: one page each, so a window never shares a page.
pub const VIRTIO_MMIO_STRIDE: u64 = 0x1000;
/// The first device's GSI. IOAPIC pins 16-23 are no ISA line, so no legacy driver claims them.
pub const VIRTIO_FIRST_GSI: u32 = 16;
/// How many devices fit: one GSI each on pins 16-23 of KVM's 24-pin IOAPIC.
pub const VIRTIO_MAX_DEVICES: usize = 8;

/// Errors while attaching virtio devices or starting their thread.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum VirtioAttachError {
    /// at most 8 virtio devices fit on this machine
    TooManyDevices,
    /// the virtio-mmio window at {0:#x} is not below 4 GiB, where the DSDT can describe it
    WindowAbove4G(u64),
    /// creating an eventfd for a virtio device failed: {0}
    EventFd(#[source] std::io::Error),
    /// {0}
    Vm(#[from] VmError),
    /// registering the queue-notify ioeventfd at {addr:#x} (queue {queue}) failed: {source}
    Ioeventfd {
        /// The QueueNotify register.
        addr: u64,
        /// The queue index (the datamatch).
        queue: u32,
        /// Why KVM refused it.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// setting up the virtio device thread failed: {0}
    Epoll(#[source] std::io::Error),
    /// a wake-up eventfd needs a device attached before it
    NoDevice,
    /// spawning the virtio device thread failed: {0}
    Spawn(#[source] std::io::Error),
}

/// An interrupt line backed by a KVM irqfd: a write to the eventfd pulses the GSI.
struct IrqfdInterrupt {
    event: EventFd,
}

impl IrqfdInterrupt {
    fn pulse(&self) {
        // Fails only if the counter would overflow (the guest never takes its interrupts):
        // the line is pending anyway.
        if let Err(e) = self.event.write(1) {
            log::debug!("raising a virtio interrupt failed: {e}");
        }
    }
}

impl InterruptSink for IrqfdInterrupt {
    fn signal_used_queue(&self) {
        self.pulse();
    }
    fn signal_config(&self) {
        self.pulse();
    }
}

/// What wakes the device thread for a device.
enum Wake {
    /// A counter (ioeventfd, a host-side wake-up) for one of its queues: read to reset it.
    Queue { event: EventFd, queue: u32 },
    /// The device's own socket to its peer, watched edge-triggered for reading, and for writing
    /// while the device has bytes it did not take (`writable_watched`); the device drains it,
    /// the thread never reads it.
    Peer {
        fd: std::os::fd::OwnedFd,
        writable_watched: std::cell::Cell<bool>,
    },
}

/// One wake-up and whose device it is for.
struct Notifier {
    wake: Wake,
    device: usize,
}

impl Notifier {
    fn fd(&self) -> std::os::fd::RawFd {
        match &self.wake {
            Wake::Queue { event, .. } => event.as_raw_fd(),
            Wake::Peer { fd, .. } => fd.as_raw_fd(),
        }
    }

    fn events(&self) -> EventSet {
        match &self.wake {
            Wake::Queue { .. } => EventSet::IN,
            Wake::Peer {
                writable_watched, ..
            } if writable_watched.get() => EventSet::IN | EventSet::OUT | EventSet::EDGE_TRIGGERED,
            Wake::Peer { .. } => EventSet::IN | EventSet::EDGE_TRIGGERED,
        }
    }
}

/// The virtio-mmio devices of one VM, being attached; [`VirtioMmioDevices::start`] then serves
/// their queues.
pub struct VirtioMmioDevices {
    base: u64,
    transports: Vec<Arc<Mutex<MmioTransport>>>,
    notifiers: Vec<Notifier>,
    described: Vec<VirtioMmioDevice>,
}

impl Default for VirtioMmioDevices {
    fn default() -> Self {
        Self::with_base(VIRTIO_MMIO_BASE)
    }
}

impl std::fmt::Debug for VirtioMmioDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioMmioDevices")
            .field("devices", &self.described)
            .finish_non_exhaustive()
    }
}

impl VirtioMmioDevices {
    /// No devices yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// No devices yet; the first window will be at `base` (page-aligned, below 4 GiB, in the
    /// MMIO hole) instead of [`VIRTIO_MMIO_BASE`]. For guests with their own fixed layout.
    pub fn with_base(base: u64) -> Self {
        Self {
            base,
            transports: Vec::new(),
            notifiers: Vec::new(),
            described: Vec::new(),
        }
    }

    /// Puts `device` on `vm`'s MMIO bus at the next free window with the next free GSI, and
    /// wires its interrupt (irqfd) and queue notifications (ioeventfds). Returns where it is.
    pub fn attach(
        &mut self,
        vm: &mut Vm,
        device: Box<dyn VirtioDevice>,
    ) -> Result<VirtioMmioDevice, VirtioAttachError> {
        let index = self.transports.len();
        if index >= VIRTIO_MAX_DEVICES {
            return Err(VirtioAttachError::TooManyDevices);
        }
        let base = self.base + index as u64 * VIRTIO_MMIO_STRIDE;
        let Ok(base32) = u32::try_from(base) else {
            return Err(VirtioAttachError::WindowAbove4G(base));
        };
        let gsi = VIRTIO_FIRST_GSI + index as u32;

        let irq = EventFd::new(EFD_NONBLOCK).map_err(VirtioAttachError::EventFd)?;
        vm.register_irqfd(&irq, gsi)?;
        let queues = device.queue_max_sizes().len();
        let transport = Arc::new(Mutex::new(MmioTransport::new(
            device,
            Arc::new(vm.memory().clone()),
            Arc::new(IrqfdInterrupt { event: irq }),
        )));
        vm.add_mmio_device(base, MMIO_WINDOW_SIZE, transport.clone())?;

        for queue in 0..queues as u32 {
            let event = EventFd::new(EFD_NONBLOCK).map_err(VirtioAttachError::EventFd)?;
            let addr = base + NOTIFY_OFFSET;
            // Datamatch on the queue index: the driver writes the index it notifies, so each
            // queue has its own eventfd; other values still reach the bus (and are ignored).
            vm.fd()
                .register_ioevent(&event, &IoEventAddress::Mmio(addr), queue)
                .map_err(|source| VirtioAttachError::Ioeventfd {
                    addr,
                    queue,
                    source,
                })?;
            self.notifiers.push(Notifier {
                wake: Wake::Queue { event, queue },
                device: index,
            });
        }

        let described = VirtioMmioDevice {
            base: base32,
            len: VIRTIO_MMIO_STRIDE as u32,
            irq: gsi,
        };
        self.transports.push(transport);
        self.described.push(described);
        Ok(described)
    }

    /// Also processes queue `queue` of the device attached last whenever `event` becomes
    /// readable: for devices the host feeds (virtio-input's wake-up eventfd), whose queue has
    /// work to do without a guest notification.
    pub fn wake_on(&mut self, event: EventFd, queue: u32) -> Result<(), VirtioAttachError> {
        let Some(device) = self.transports.len().checked_sub(1) else {
            return Err(VirtioAttachError::NoDevice);
        };
        self.notifiers.push(Notifier {
            wake: Wake::Queue { event, queue },
            device,
        });
        Ok(())
    }

    /// Runs [`VirtioDevice::process_peer`] of the device attached last whenever `socket` (a
    /// copy of the device's own) becomes readable, or writable while the device wants it: for
    /// devices with a peer (virtio-net's passt), which drain the socket themselves.
    pub fn wake_on_socket(
        &mut self,
        socket: std::os::fd::OwnedFd,
    ) -> Result<(), VirtioAttachError> {
        let Some(device) = self.transports.len().checked_sub(1) else {
            return Err(VirtioAttachError::NoDevice);
        };
        self.notifiers.push(Notifier {
            wake: Wake::Peer {
                fd: socket,
                writable_watched: std::cell::Cell::new(false),
            },
            device,
        });
        Ok(())
    }

    /// The devices as the DSDT must describe them ([`crate::linux::LinuxBoot::virtio_devices`]).
    pub fn acpi_devices(&self) -> Vec<VirtioMmioDevice> {
        self.described.clone()
    }

    /// Starts the device thread, which serves queue notifications until the returned
    /// [`DeviceThread`] is dropped.
    pub fn start(self) -> Result<DeviceThread, VirtioAttachError> {
        self.start_with(None)
    }

    /// [`VirtioMmioDevices::start`], `hook` called first thing on the device thread.
    pub fn start_with(
        self,
        hook: Option<crate::vm::ThreadStart>,
    ) -> Result<DeviceThread, VirtioAttachError> {
        let epoll = Epoll::new().map_err(VirtioAttachError::Epoll)?;
        let exit = EventFd::new(EFD_NONBLOCK).map_err(VirtioAttachError::EventFd)?;
        let exit_token = self.notifiers.len() as u64;
        for (token, notifier) in self.notifiers.iter().enumerate() {
            epoll
                .ctl(
                    ControlOperation::Add,
                    notifier.fd(),
                    EpollEvent::new(notifier.events(), token as u64),
                )
                .map_err(VirtioAttachError::Epoll)?;
        }
        epoll
            .ctl(
                ControlOperation::Add,
                exit.as_raw_fd(),
                EpollEvent::new(EventSet::IN, exit_token),
            )
            .map_err(VirtioAttachError::Epoll)?;
        let exit_for_thread = exit.try_clone().map_err(VirtioAttachError::EventFd)?;
        let handle = std::thread::Builder::new()
            .name("virtio".into())
            .spawn(move || {
                if let Some(hook) = hook {
                    hook(ThreadRole::Device);
                }
                serve(&epoll, &self, &exit_for_thread, exit_token)
            })
            .map_err(VirtioAttachError::Spawn)?;
        Ok(DeviceThread {
            exit,
            handle: Some(handle),
        })
    }
}

/// The running device thread; dropping it stops the thread and waits for it.
#[derive(Debug)]
pub struct DeviceThread {
    exit: EventFd,
    handle: Option<JoinHandle<()>>,
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        // If the exit event cannot be written the thread is left alone rather than waited for
        // forever; it dies with the process.
        if self.exit.write(1).is_ok()
            && let Some(handle) = self.handle.take()
        {
            // A panic in the thread was already reported by the panic hook.
            let _ = handle.join();
        }
    }
}

/// The device thread: wait for notifications, run the notified queues.
fn serve(epoll: &Epoll, devices: &VirtioMmioDevices, exit: &EventFd, exit_token: u64) {
    // Each device's peer socket, by its token, for the devices that have one.
    let peers: Vec<Option<usize>> = (0..devices.transports.len())
        .map(|device| {
            devices
                .notifiers
                .iter()
                .position(|n| n.device == device && matches!(n.wake, Wake::Peer { .. }))
        })
        .collect();
    let mut events = vec![EpollEvent::default(); devices.notifiers.len() + 1];
    loop {
        let ready = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("the virtio device thread stops: epoll_wait failed: {e}");
                return;
            }
        };
        for event in &events[..ready] {
            let token = event.data();
            if token == exit_token {
                let _ = exit.read();
                return;
            }
            let Some(notifier) = usize::try_from(token)
                .ok()
                .and_then(|t| devices.notifiers.get(t))
            else {
                continue;
            };
            // Reading resets the counter: several notifications since the last look are one
            // pass over the queue. EAGAIN (already read) is harmless.
            if let Wake::Queue { event, .. } = &notifier.wake {
                let _ = event.read();
            }
            let Some(transport) = devices.transports.get(notifier.device) else {
                continue;
            };
            let mut transport = transport.lock().unwrap_or_else(PoisonError::into_inner);
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &notifier.wake {
                    Wake::Queue { queue, .. } => transport.process_queue(*queue),
                    Wake::Peer { .. } => transport.process_peer(),
                }));
            if let Some(&Some(peer)) = peers.get(notifier.device) {
                watch_writable(epoll, devices, peer, transport.wants_writable());
            }
            if outcome.is_err() {
                // A bug in a device model, reached by what the guest put in a queue: the device
                // stops (the driver sees DEVICE_NEEDS_RESET), the VM and other devices go on.
                log::error!("virtio device {} panicked", notifier.device);
                transport.fail();
            }
        }
    }
}

/// Watches the peer socket of notifier `token` for room to write when its device `wanted` it,
/// and stops when it no longer does: otherwise every read by the peer would wake the thread.
fn watch_writable(epoll: &Epoll, devices: &VirtioMmioDevices, token: usize, wanted: bool) {
    let Some(peer) = devices.notifiers.get(token) else {
        return;
    };
    let Wake::Peer {
        writable_watched, ..
    } = &peer.wake
    else {
        return;
    };
    if wanted == writable_watched.get() {
        return;
    }
    writable_watched.set(wanted);
    if let Err(e) = epoll.ctl(
        ControlOperation::Modify,
        peer.fd(),
        EpollEvent::new(peer.events(), token as u64),
    ) {
        log::error!("cannot change what the virtio thread waits for: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusDevice;
    use crate::virtio::{Activation, DeviceError, VIRTIO_F_VERSION_1};
    use crate::vm::VmConfig;

    /// A device model with a bug the guest can reach: processing its queue panics.
    struct PanicsOnNotify;

    impl VirtioDevice for PanicsOnNotify {
        fn device_type(&self) -> u32 {
            4
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16]
        }
        fn features(&self) -> u64 {
            VIRTIO_F_VERSION_1
        }
        fn read_config(&self, _offset: u64, data: &mut [u8]) {
            data.fill(0);
        }
        fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
        fn activate(&mut self, _activation: Activation) -> Result<(), DeviceError> {
            Ok(())
        }
        fn reset(&mut self) {}
        fn process_queue(&mut self, _index: usize) -> Result<(), DeviceError> {
            panic!("a device bug reached by a guest's queue");
        }
    }

    fn write(transport: &Mutex<MmioTransport>, offset: u64, value: u32) {
        transport
            .lock()
            .unwrap()
            .write(offset, &value.to_le_bytes());
    }

    #[test]
    fn a_panicking_device_needs_a_reset_and_the_device_thread_goes_on() {
        if !std::path::Path::new("/dev/kvm").exists() {
            eprintln!("skipped: no /dev/kvm");
            return;
        }
        let mut vm = Vm::new(&VmConfig {
            vcpus: 1,
            memory_size: 4 << 20,
        })
        .unwrap();
        let mut devices = VirtioMmioDevices::new();
        let first = devices.attach(&mut vm, Box::new(PanicsOnNotify)).unwrap();
        let second = devices.attach(&mut vm, Box::new(PanicsOnNotify)).unwrap();
        assert_eq!((first.base, first.irq), (0xd000_0000, VIRTIO_FIRST_GSI));
        assert_eq!(
            (second.base, second.irq),
            (0xd000_1000, VIRTIO_FIRST_GSI + 1)
        );

        // The driver's side of bring-up, through the registers: ACKNOWLEDGE, DRIVER,
        // VIRTIO_F_VERSION_1 (feature bit 32), FEATURES_OK, queue 0 of size 16, DRIVER_OK.
        let transport = devices.transports[0].clone();
        write(&transport, 0x70, 1);
        write(&transport, 0x70, 3);
        write(&transport, 0x24, 1);
        write(&transport, 0x20, 1);
        write(&transport, 0x70, 0xb);
        write(&transport, 0x30, 0);
        write(&transport, 0x38, 16);
        write(&transport, 0x44, 1);
        write(&transport, 0x70, 0xf);
        assert_eq!(transport.lock().unwrap().status(), 0xf);

        let Wake::Queue { event, .. } = &devices.notifiers[0].wake else {
            panic!("a queue's notifier is an eventfd");
        };
        let kick = event.try_clone().unwrap();
        let thread = devices.start().unwrap();
        // What KVM does when the guest writes 0 to QueueNotify.
        kick.write(1).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while transport.lock().unwrap().status() & 0x40 == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no DEVICE_NEEDS_RESET"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The thread survived: a second notification is served (and ignored: needs reset).
        kick.write(1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(thread);
        assert_ne!(transport.lock().unwrap().status() & 0x40, 0);
    }
}
