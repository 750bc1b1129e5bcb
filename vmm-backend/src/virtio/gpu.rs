//! virtio-gpu (virtio 1.2 §5.7) on the [`VirtioDevice`] contract: a thin adaptor over
//! [`berth_display::gpu::Gpu`], which owns the 2D command processor and the shared framebuffer.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use berth_display::gpu::{
    BootScreenState, EventSink, Gpu, GpuConfig, GuestFramebuffer, GuestFramebufferError, check_mode,
};
use virtio_queue::QueueT;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::{
    Activation, DeviceError, GuestMemory, VIRTIO_F_VERSION_1, VirtioDevice, read_config_bytes,
};

pub use berth_display::gpu::{DEVICE_TYPE_GPU, Error};

/// The control queue carries every command; the cursor queue only cursor updates, so it is
/// small.
const QUEUE_SIZES: [u16; 2] = [256, 16];

/// The device model, whichever thread drew last: a panic while drawing (caught on the device
/// thread, which stops the device) leaves nothing half-done that matters to the next look.
fn lock(gpu: &Mutex<Gpu>) -> MutexGuard<'_, Gpu> {
    gpu.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The screen before the driver's: the firmware's framebuffer in guest RAM, shown on the
/// display until the driver shows a scanout ([`Gpu::show_boot_framebuffer`]). Its refresher
/// looks at guest RAM from a thread of its own.
#[derive(Clone)]
pub struct BootScreen {
    gpu: Arc<Mutex<Gpu>>,
}

impl BootScreen {
    /// The firmware set up `framebuffer`.
    pub fn show(&self, framebuffer: GuestFramebuffer) -> Result<(), GuestFramebufferError> {
        lock(&self.gpu).show_boot_framebuffer(framebuffer)
    }

    /// Whether the screen shows it now (the driver has not shown its own yet).
    pub fn is_shown(&self) -> bool {
        lock(&self.gpu).boot_screen_shown()
    }

    /// Publishes what changed on it since the last look.
    pub fn refresh(&self, mem: &GuestMemory) -> BootScreenState {
        lock(&self.gpu).refresh_boot_screen(mem)
    }
}

/// The virtio-gpu device.
pub struct VirtioGpu {
    /// Shared with the firmware's screen ([`BootScreen`]), which draws on it before the driver.
    gpu: Arc<Mutex<Gpu>>,
    active: Option<Activation>,
    /// The preferred size the host asked for last, not yet told to the driver.
    preferred: Arc<PendingSize>,
}

/// A size waiting for the device thread: width in the high half, height in the low; 0 when
/// none waits (no display has a side of 0). Atomic, because the device thread looks at it on
/// every notification of the control queue.
#[derive(Default)]
struct PendingSize(AtomicU64);

impl PendingSize {
    fn put(&self, width: u32, height: u32) {
        self.0.store(
            (u64::from(width) << 32) | u64::from(height),
            AtomicOrdering::Release,
        );
    }

    fn take(&self) -> Option<(u32, u32)> {
        match self.0.swap(0, AtomicOrdering::Acquire) {
            0 => None,
            both => Some(((both >> 32) as u32, both as u32)),
        }
    }
}

/// The host's side of the display's preferred size (the window's size, for a guest that
/// follows it): set from any thread, told to the driver by the device's thread, which the
/// wake-up eventfd brings to the control queue (as virtio-input's events are delivered).
#[derive(Clone)]
pub struct PreferredSize {
    preferred: Arc<PendingSize>,
    wake: Arc<EventFd>,
}

impl PreferredSize {
    /// Asks for `width`x`height`; the driver is told with a configuration change interrupt
    /// and reads the new size with GET_DISPLAY_INFO (and EDID).
    pub fn set(&self, width: u32, height: u32) -> Result<(), Error> {
        check_mode(width, height)?;
        self.preferred.put(width, height);
        // A failed wake-up only delays the change to the guest's next command.
        let _ = self.wake.write(1);
        Ok(())
    }

    /// The eventfd the device thread must watch (queue 0).
    pub fn wake_fd(&self) -> &EventFd {
        &self.wake
    }
}

impl VirtioGpu {
    /// A GPU whose display reports `config`'s mode.
    pub fn new(config: GpuConfig) -> Result<Self, Error> {
        Ok(VirtioGpu {
            gpu: Arc::new(Mutex::new(Gpu::new(config)?)),
            active: None,
            preferred: Arc::default(),
        })
    }

    /// The host's side of the display's preferred size, with a wake-up eventfd of its own.
    pub fn preferred_size(&self) -> std::io::Result<PreferredSize> {
        Ok(PreferredSize {
            preferred: Arc::clone(&self.preferred),
            wake: Arc::new(EventFd::new(EFD_NONBLOCK)?),
        })
    }

    /// The device model (its framebuffer fd goes to the window).
    pub fn gpu(&self) -> MutexGuard<'_, Gpu> {
        lock(&self.gpu)
    }

    /// The firmware's screen on this display.
    pub fn boot_screen(&self) -> BootScreen {
        BootScreen {
            gpu: Arc::clone(&self.gpu),
        }
    }

    /// Sends display events (mode changes, damage, cursor) to `sink`.
    pub fn set_event_sink(&mut self, sink: EventSink) {
        self.gpu().set_event_sink(sink);
    }

    /// The host changed the display's preferred mode; the driver is told with a configuration
    /// change interrupt and asks for the display info again.
    pub fn set_mode(&mut self, width: u32, height: u32) -> Result<(), Error> {
        if self.gpu().set_mode(width, height)?
            && let Some(active) = &self.active
        {
            active.interrupt.signal_config();
        }
        Ok(())
    }
}

impl VirtioDevice for VirtioGpu {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE_GPU
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | self.gpu().features()
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.gpu().config_space(), offset, data);
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        self.gpu().write_config(offset, data);
    }

    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError> {
        self.active = Some(activation.with_queue_count(QUEUE_SIZES.len())?);
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.gpu().reset();
    }

    fn process_queue(&mut self, index: usize) -> Result<(), DeviceError> {
        if let Some((width, height)) = self.preferred.take() {
            // Checked when asked for, so it cannot fail here.
            let _ = self.set_mode(width, height);
        }
        let active = self
            .active
            .as_mut()
            .ok_or(DeviceError::NoSuchQueue(index))?;
        let queue = active
            .queues
            .get_mut(index)
            .ok_or(DeviceError::NoSuchQueue(index))?;
        if !queue.ready() {
            return Ok(());
        }
        let used = lock(&self.gpu)
            .process_queue(index, active.mem.as_ref(), queue)
            .map_err(|e| DeviceError::Protocol {
                queue: index,
                reason: e.to_string(),
            })?;
        if used {
            active.interrupt.signal_used_queue();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use berth_display::framebuffer::FramebufferReader;
    use berth_display::gpu::cmd;

    use super::*;
    use crate::virtio::testing::{Buf, CountingSink, Driver, QUEUE_SIZE, guest_memory};
    use virtio_queue::Queue;

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    fn small() -> Box<VirtioGpu> {
        Box::new(
            VirtioGpu::new(GpuConfig {
                width: 64,
                height: 48,
                ..GpuConfig::default()
            })
            .expect("gpu"),
        )
    }

    fn req(kind: u32, fields: &[u32]) -> Vec<u8> {
        let mut r = vec![0u8; 24];
        r[0..4].copy_from_slice(&kind.to_le_bytes());
        for f in fields {
            r.extend_from_slice(&f.to_le_bytes());
        }
        r
    }

    /// Sends `r` on the control queue; returns the response type.
    fn command(d: &mut Driver, r: &[u8]) -> u32 {
        d.write_bytes(0x10000, r);
        let before = d.used_idx();
        d.submit(&[Buf(0x10000, r.len() as u32, false), Buf(0x11000, 24, true)]);
        d.notify(0);
        assert_eq!(d.used_idx(), before.wrapping_add(1));
        le32(&d.read_bytes(0x11000, 4), 0)
    }

    #[test]
    fn identity_features_and_config_through_mmio() {
        let mut d = Driver::new(small());
        assert_eq!(d.read(0x08), 16, "device id");
        d.write(0x24, 0);
        assert_eq!(d.read(0x10) & 2, 2, "VIRTIO_GPU_F_EDID offered");
        assert_eq!(d.read(0x100 + 8), 1, "num_scanouts");
        assert_eq!(d.read(0x100), 0, "events_read");
    }

    #[test]
    fn draws_through_the_control_queue_into_the_framebuffer() {
        let gpu = small();
        let fd = gpu
            .gpu()
            .framebuffer()
            .fd()
            .try_clone_to_owned()
            .expect("dup");
        let mut reader = FramebufferReader::open(fd).expect("reader");
        let mut d = Driver::bring_up(gpu, berth_display::gpu::VIRTIO_GPU_F_EDID);
        let len = 24 + 384u32;
        d.write_bytes(0x10000, &req(cmd::GET_DISPLAY_INFO, &[]));
        d.submit(&[Buf(0x10000, 24, false), Buf(0x11000, len, true)]);
        d.notify(0);
        assert_eq!(d.used(0).1, len);
        let info = d.read_bytes(0x11000, len as usize);
        assert_eq!(le32(&info, 0), cmd::RESP_OK_DISPLAY_INFO);
        assert_eq!((le32(&info, 32), le32(&info, 36)), (64, 48));
        assert!(d.irq.used.load(Ordering::SeqCst) >= 1);

        let pixels: Vec<u8> = (0..64 * 48 * 4).map(|i| (i % 253) as u8).collect();
        d.write_bytes(0x40000, &pixels);
        assert_eq!(
            command(&mut d, &req(cmd::RESOURCE_CREATE_2D, &[1, 2, 64, 48])),
            cmd::RESP_OK_NODATA
        );
        let mut attach = req(cmd::RESOURCE_ATTACH_BACKING, &[1, 1]);
        attach.extend_from_slice(&0x40000u64.to_le_bytes());
        attach.extend_from_slice(&(pixels.len() as u32).to_le_bytes());
        attach.extend_from_slice(&[0; 4]);
        assert_eq!(command(&mut d, &attach), cmd::RESP_OK_NODATA);
        let mut transfer = req(cmd::TRANSFER_TO_HOST_2D, &[0, 0, 64, 48, 0, 0, 1, 0]);
        transfer.truncate(24 + 32);
        assert_eq!(command(&mut d, &transfer), cmd::RESP_OK_NODATA);
        assert_eq!(
            command(&mut d, &req(cmd::SET_SCANOUT, &[0, 0, 64, 48, 0, 1])),
            cmd::RESP_OK_NODATA
        );
        assert_eq!(
            command(&mut d, &req(cmd::RESOURCE_FLUSH, &[0, 0, 64, 48, 1, 0])),
            cmd::RESP_OK_NODATA
        );
        assert_eq!(reader.read_frame().expect("frame").pixels, pixels);
        assert_eq!(d.status() & 0x40, 0, "healthy");
    }

    #[test]
    fn cursor_queue_is_served() {
        let mut d = Driver::new(small());
        assert_eq!(d.negotiate(VIRTIO_F_VERSION_1), 1 | 2 | 8);
        d.setup_queue(0, QUEUE_SIZE);
        // Queue 1 on its own rings.
        let (desc, avail, used) = (0x5000u64, 0x6000u64, 0x7000u64);
        d.write(0x30, 1);
        d.write(0x38, 4);
        d.write(0x80, desc as u32);
        d.write(0x90, avail as u32);
        d.write(0xa0, used as u32);
        d.write(0x44, 1);
        d.write(0x70, 1 | 2 | 8 | 4);
        assert_eq!(d.status(), 1 | 2 | 8 | 4);
        let r = req(cmd::MOVE_CURSOR, &[0, 5, 6, 0, 0, 0, 0, 0]);
        d.write_bytes(0x8000, &r);
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&0x8000u64.to_le_bytes());
        raw[8..12].copy_from_slice(&(r.len() as u32).to_le_bytes());
        d.write_bytes(desc, &raw);
        d.write_bytes(avail + 2, &1u16.to_le_bytes());
        d.notify(1);
        let used_idx = u16::from_le_bytes(d.read_bytes(used + 2, 2).try_into().expect("2"));
        assert_eq!(used_idx, 1);
        assert_eq!(d.status() & 0x40, 0, "healthy");
    }

    #[test]
    fn mode_change_raises_a_config_interrupt_and_queue_count_is_checked() {
        let irq = Arc::new(CountingSink::default());
        let activation = |queues: usize| Activation {
            mem: guest_memory(),
            interrupt: irq.clone(),
            queues: (0..queues)
                .map(|_| Queue::new(16).expect("queue"))
                .collect(),
            acked_features: VIRTIO_F_VERSION_1,
        };
        let mut gpu = small();
        assert!(matches!(
            gpu.activate(activation(1)),
            Err(DeviceError::QueueCount { .. })
        ));
        gpu.activate(activation(2)).expect("activate");
        gpu.set_mode(640, 480).expect("mode");
        assert_eq!(irq.config.load(Ordering::SeqCst), 1);
        let mut c = [0u8; 4];
        gpu.read_config(0, &mut c);
        assert_eq!(u32::from_le_bytes(c), 1, "VIRTIO_GPU_EVENT_DISPLAY");
        gpu.write_config(4, &1u32.to_le_bytes());
        gpu.read_config(0, &mut c);
        assert_eq!(u32::from_le_bytes(c), 0);
        assert!(gpu.set_mode(0, 1).is_err());
        // Queues that are not ready are left alone; a queue that does not exist is an error.
        gpu.process_queue(0).expect("not ready is fine");
        assert!(gpu.process_queue(2).is_err());
        gpu.reset();
        assert!(gpu.process_queue(0).is_err(), "no queues after reset");
    }

    #[test]
    fn a_preferred_size_from_another_thread_reaches_the_driver_on_the_next_processing() {
        let irq = Arc::new(CountingSink::default());
        let mut gpu = small();
        gpu.activate(Activation {
            mem: guest_memory(),
            interrupt: irq.clone(),
            queues: (0..2).map(|_| Queue::new(16).expect("queue")).collect(),
            acked_features: VIRTIO_F_VERSION_1,
        })
        .expect("activate");
        let preferred = gpu.preferred_size().expect("eventfd");
        assert!(preferred.set(0, 600).is_err(), "a size no display has");
        let from = preferred.clone();
        std::thread::spawn(move || from.set(800, 600))
            .join()
            .expect("thread")
            .expect("a size");
        assert_eq!(preferred.wake_fd().read().expect("woken"), 1);
        assert_eq!(
            irq.config.load(Ordering::SeqCst),
            0,
            "not before the device runs"
        );
        gpu.process_queue(0).expect("not ready is fine");
        assert_eq!(irq.config.load(Ordering::SeqCst), 1);
        let mut c = [0u8; 4];
        gpu.read_config(0, &mut c);
        assert_eq!(u32::from_le_bytes(c), 1, "VIRTIO_GPU_EVENT_DISPLAY");
        // Asked once, told once.
        gpu.process_queue(0).expect("again");
        assert_eq!(irq.config.load(Ordering::SeqCst), 1);
    }
}
