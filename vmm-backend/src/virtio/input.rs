//! virtio-input (virtio 1.2 §5.8): a keyboard and an absolute pointer (tablet), fed with evdev
//! events by the host through an [`InputHandle`].
//!
//! The host pushes events from any thread (berthd's `vm type`/`vm key`, the window); they wait
//! in a bounded queue until the guest has posted event buffers. The handle signals an eventfd
//! after each push so the VMM's loop can call [`VirtioDevice::process_queue`] on the event queue
//! (index 0), which delivers whatever fits; a guest notification of new buffers does the same.
//! The status queue (LEDs from the guest) is consumed and its last LED state kept.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use berth_api::input::{InputDevice, InputEvent, TABLET_MAX, ev};
use virtio_queue::{QueueT, Reader, Writer};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::{Activation, DeviceError, VIRTIO_F_VERSION_1, VirtioDevice, read_config_bytes};

/// Virtio device ID of an input device.
pub const DEVICE_TYPE_INPUT: u32 = 18;
const QUEUE_SIZES: [u16; 2] = [64, 64];
/// Events that may wait for guest buffers; a push that does not fit is refused whole.
pub const MAX_PENDING: usize = 1024;

/// Config space selectors (virtio 1.2 §5.8.2).
mod cfg {
    pub const ID_NAME: u8 = 0x01;
    pub const ID_SERIAL: u8 = 0x02;
    pub const ID_DEVIDS: u8 = 0x03;
    pub const PROP_BITS: u8 = 0x10;
    pub const EV_BITS: u8 = 0x11;
    pub const ABS_INFO: u8 = 0x12;
}

/// An event as the guest reads it: type, code and value, little-endian.
fn event_bytes(e: InputEvent) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0..2].copy_from_slice(&e.kind.to_le_bytes());
    b[2..4].copy_from_slice(&e.code.to_le_bytes());
    b[4..8].copy_from_slice(&e.value.to_le_bytes());
    b
}

fn event_from_bytes(b: [u8; 8]) -> InputEvent {
    InputEvent::new(
        u16::from_le_bytes([b[0], b[1]]),
        u16::from_le_bytes([b[2], b[3]]),
        i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}

/// Errors of the input device's host side.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum Error {
    /// The guest is not taking input events: {pending} are already waiting
    Full { pending: usize },
    /// The {device:?} does not report events of type {kind:#x} code {code:#x}
    Unsupported {
        device: InputDevice,
        kind: u16,
        code: u16,
    },
    /// Cannot create the input wake-up eventfd: {0}
    EventFd(std::io::Error),
}

struct Shared {
    pending: VecDeque<InputEvent>,
    leds: u32,
}

/// The host's side of an input device: cloneable, usable from any thread.
#[derive(Clone)]
pub struct InputHandle {
    device: InputDevice,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<EventFd>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // The queue stays consistent whatever a panicking holder was doing (pushes are whole).
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl InputHandle {
    /// Queues `events` (normally ending in a SYN_REPORT) for the guest, all or nothing, and
    /// signals the wake-up eventfd.
    pub fn push(&self, events: &[InputEvent]) -> Result<(), Error> {
        if let Some(bad) = events.iter().find(|e| !self.device.reports(e)) {
            return Err(Error::Unsupported {
                device: self.device,
                kind: bad.kind,
                code: bad.code,
            });
        }
        {
            let mut shared = lock(&self.shared);
            if shared.pending.len() + events.len() > MAX_PENDING {
                return Err(Error::Full {
                    pending: shared.pending.len(),
                });
            }
            shared.pending.extend(events.iter().copied());
        }
        // A failed wake-up only delays delivery to the next guest notification.
        let _ = self.wake.write(1);
        Ok(())
    }

    /// Events waiting for guest buffers.
    pub fn pending(&self) -> usize {
        lock(&self.shared).pending.len()
    }

    /// The LEDs the guest last set (bit n = LED code n), keyboard only.
    pub fn leds(&self) -> u32 {
        lock(&self.shared).leds
    }

    /// Becomes readable after each push: the VMM then processes the device's event queue.
    pub fn wake_fd(&self) -> &EventFd {
        &self.wake
    }
}

/// A virtio-input device.
pub struct Input {
    device: InputDevice,
    name: &'static str,
    serial: String,
    product: u16,
    select: u8,
    subsel: u8,
    handle: InputHandle,
    active: Option<Activation>,
}

/// A bitmap of `codes`, trimmed after its last non-zero byte (the config `size`).
fn bitmap(codes: impl IntoIterator<Item = u16>) -> Vec<u8> {
    let mut bits = [0u8; 128];
    for code in codes {
        if let Some(byte) = bits.get_mut(usize::from(code / 8)) {
            *byte |= 1 << (code % 8);
        }
    }
    let len = bits.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bits[..len].to_vec()
}

impl Input {
    /// A keyboard or tablet; `serial` tells several devices apart (at most 128 bytes kept).
    pub fn new(device: InputDevice, serial: &str) -> Result<Self, Error> {
        let wake = EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?;
        let (name, product) = match device {
            InputDevice::Keyboard => ("Berth Keyboard", 1),
            InputDevice::Tablet => ("Berth Tablet", 2),
        };
        Ok(Input {
            device,
            name,
            serial: serial.to_owned(),
            product,
            select: 0,
            subsel: 0,
            handle: InputHandle {
                device,
                shared: Arc::new(Mutex::new(Shared {
                    pending: VecDeque::new(),
                    leds: 0,
                })),
                wake: Arc::new(wake),
            },
            active: None,
        })
    }

    /// The host side, to hand to whoever produces the events.
    pub fn handle(&self) -> InputHandle {
        self.handle.clone()
    }

    /// The payload for the current select/subsel; empty means "not supported" (size 0).
    fn payload(&self) -> Vec<u8> {
        let keyboard = self.device == InputDevice::Keyboard;
        let mut out = match (self.select, self.subsel) {
            (cfg::ID_NAME, 0) => self.name.as_bytes().to_vec(),
            (cfg::ID_SERIAL, 0) => self.serial.as_bytes().to_vec(),
            (cfg::ID_DEVIDS, 0) => {
                // BUS_VIRTUAL, no vendor, product per kind, version 1.
                [0x06u16, 0, self.product, 1]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect()
            }
            (cfg::PROP_BITS, 0) => Vec::new(),
            (cfg::EV_BITS, t) => match (u16::from(t), keyboard) {
                (ev::EV_KEY, true) => bitmap(1..=ev::KEY_MAX_USED),
                // Presence of EV_REP (a non-empty answer) turns on the guest's auto-repeat.
                (ev::EV_REP, true) => vec![0],
                (ev::EV_LED, true) => bitmap([ev::LED_NUML, ev::LED_CAPSL, ev::LED_SCROLLL]),
                (ev::EV_KEY, false) => bitmap([ev::BTN_LEFT, ev::BTN_RIGHT, ev::BTN_MIDDLE]),
                (ev::EV_ABS, false) => bitmap([ev::ABS_X, ev::ABS_Y]),
                (ev::EV_REL, false) => bitmap([ev::REL_WHEEL]),
                _ => Vec::new(),
            },
            (cfg::ABS_INFO, axis) if !keyboard && u16::from(axis) <= ev::ABS_Y => {
                // min, max, fuzz, flat, res
                [0u32, TABLET_MAX, 0, 0, 0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect()
            }
            _ => Vec::new(),
        };
        out.truncate(128);
        out
    }

    /// The whole config space: select, subsel, size, 5 reserved bytes, the 128-byte union.
    fn config_space(&self) -> [u8; 136] {
        let payload = self.payload();
        let mut c = [0u8; 136];
        c[0] = self.select;
        c[1] = self.subsel;
        // At most 128 (truncated above).
        c[2] = payload.len() as u8;
        c[8..8 + payload.len()].copy_from_slice(&payload);
        c
    }

    /// Puts pending events into the guest's event buffers, one event a buffer.
    fn deliver(active: &mut Activation, shared: &Mutex<Shared>) -> Result<bool, DeviceError> {
        let Some(queue) = active.queues.first_mut().filter(|q| q.ready()) else {
            return Ok(false);
        };
        let mem = active.mem.as_ref();
        let protocol = |e: virtio_queue::Error| DeviceError::Protocol {
            queue: 0,
            reason: e.to_string(),
        };
        let mut shared = lock(shared);
        let mut used = false;
        while let Some(&event) = shared.pending.front() {
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                break;
            };
            let head = chain.head_index();
            let written = match Writer::new(mem, chain) {
                Ok(mut w) if w.available_bytes() >= 8 => w.write_all(&event_bytes(event)).is_ok(),
                _ => false,
            };
            // A buffer that cannot hold an event is returned empty; the event waits for the
            // next one.
            if written {
                shared.pending.pop_front();
            }
            queue
                .add_used(mem, head, if written { 8 } else { 0 })
                .map_err(protocol)?;
            used = true;
        }
        Ok(used)
    }

    /// Consumes the status queue, remembering LED changes.
    fn consume_status(
        active: &mut Activation,
        shared: &Mutex<Shared>,
    ) -> Result<bool, DeviceError> {
        let Some(queue) = active.queues.get_mut(1).filter(|q| q.ready()) else {
            return Ok(false);
        };
        let mem = active.mem.as_ref();
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            if let Ok(mut reader) = Reader::new(mem, chain) {
                let mut raw = [0u8; 8];
                while reader.read_exact(&mut raw).is_ok() {
                    let e = event_from_bytes(raw);
                    if e.kind == ev::EV_LED && e.code < 32 {
                        let mut shared = lock(shared);
                        if e.value != 0 {
                            shared.leds |= 1 << e.code;
                        } else {
                            shared.leds &= !(1 << e.code);
                        }
                    }
                }
            }
            queue
                .add_used(mem, head, 0)
                .map_err(|e| DeviceError::Protocol {
                    queue: 1,
                    reason: e.to_string(),
                })?;
            used = true;
        }
        Ok(used)
    }
}

impl VirtioDevice for Input {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE_INPUT
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config_space(), offset, data);
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only select (0) and subsel (1) are writable; a wider write may cover both.
        for (i, &byte) in data.iter().enumerate() {
            match offset.checked_add(i as u64) {
                Some(0) => self.select = byte,
                Some(1) => self.subsel = byte,
                _ => {}
            }
        }
    }

    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError> {
        self.active = Some(activation.with_queue_count(QUEUE_SIZES.len())?);
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.select = 0;
        self.subsel = 0;
        // Keys pressed for a driver that went away must not reach the next one.
        lock(&self.handle.shared).pending.clear();
    }

    fn process_queue(&mut self, index: usize) -> Result<(), DeviceError> {
        let active = self
            .active
            .as_mut()
            .filter(|_| index < QUEUE_SIZES.len())
            .ok_or(DeviceError::NoSuchQueue(index))?;
        let used = if index == 0 {
            Self::deliver(active, &self.handle.shared)?
        } else {
            Self::consume_status(active, &self.handle.shared)?
        };
        if used {
            active.interrupt.signal_used_queue();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::virtio::testing::{Buf, CountingSink, Driver, guest_memory};
    use berth_api::input::{key_events, wheel_events};
    use virtio_queue::Queue;

    fn select(d: &mut Driver, sel: u8, sub: u8) -> Vec<u8> {
        d.transport_write_config(0, &[sel, sub]);
        let size = d.config_byte(2);
        (0..size).map(|i| d.config_byte(8 + u64::from(i))).collect()
    }

    impl Driver {
        fn transport_write_config(&mut self, offset: u64, data: &[u8]) {
            use crate::bus::BusDevice;
            for (i, b) in data.iter().enumerate() {
                self.transport.write(0x100 + offset + i as u64, &[*b]);
            }
        }
        fn config_byte(&mut self, offset: u64) -> u8 {
            use crate::bus::BusDevice;
            let mut b = [0u8];
            self.transport.read(0x100 + offset, &mut b);
            b[0]
        }
    }

    fn has(bits: &[u8], code: u16) -> bool {
        bits.get(usize::from(code / 8))
            .is_some_and(|b| b & (1 << (code % 8)) != 0)
    }

    #[test]
    fn keyboard_config_space() {
        let mut d = Driver::new(Box::new(
            Input::new(InputDevice::Keyboard, "kbd0").expect("input"),
        ));
        assert_eq!(d.read(0x08), 18);
        assert_eq!(select(&mut d, cfg::ID_NAME, 0), b"Berth Keyboard");
        assert_eq!(select(&mut d, cfg::ID_SERIAL, 0), b"kbd0");
        assert_eq!(select(&mut d, cfg::ID_DEVIDS, 0), [6, 0, 0, 0, 1, 0, 1, 0]);
        assert!(select(&mut d, cfg::PROP_BITS, 0).is_empty());
        let keys = select(&mut d, cfg::EV_BITS, ev::EV_KEY as u8);
        assert!(has(&keys, 1) && has(&keys, 30) && has(&keys, ev::KEY_MAX_USED));
        assert!(!has(&keys, 0) && !has(&keys, ev::BTN_LEFT));
        assert_eq!(select(&mut d, cfg::EV_BITS, ev::EV_REP as u8).len(), 1);
        assert_eq!(select(&mut d, cfg::EV_BITS, ev::EV_LED as u8), [0b111]);
        assert!(select(&mut d, cfg::EV_BITS, ev::EV_ABS as u8).is_empty());
        assert!(select(&mut d, cfg::ABS_INFO, 0).is_empty());
        assert!(select(&mut d, 0, 0).is_empty(), "unset");
        assert!(select(&mut d, 0x7f, 0).is_empty(), "unknown select");
        assert!(select(&mut d, cfg::ID_NAME, 1).is_empty(), "bad subsel");
        assert_eq!(d.config_byte(0), cfg::ID_NAME, "select reads back");
        assert_eq!(d.config_byte(200), 0, "past the end");
    }

    #[test]
    fn tablet_config_space() {
        let mut d = Driver::new(Box::new(
            Input::new(InputDevice::Tablet, "tab0").expect("input"),
        ));
        assert_eq!(select(&mut d, cfg::ID_NAME, 0), b"Berth Tablet");
        let abs = select(&mut d, cfg::EV_BITS, ev::EV_ABS as u8);
        assert_eq!(abs, [0b11]);
        let buttons = select(&mut d, cfg::EV_BITS, ev::EV_KEY as u8);
        for b in [ev::BTN_LEFT, ev::BTN_RIGHT, ev::BTN_MIDDLE] {
            assert!(has(&buttons, b));
        }
        assert!(!has(&buttons, 30));
        assert_eq!(
            select(&mut d, cfg::EV_BITS, ev::EV_REL as u8),
            [0, 1],
            "REL_WHEEL is code 8"
        );
        let info = select(&mut d, cfg::ABS_INFO, ev::ABS_Y as u8);
        assert_eq!(info.len(), 20);
        assert_eq!(
            u32::from_le_bytes([info[4], info[5], info[6], info[7]]),
            TABLET_MAX
        );
        assert!(select(&mut d, cfg::ABS_INFO, 2).is_empty(), "no ABS_Z");
        assert!(select(&mut d, cfg::EV_BITS, ev::EV_REP as u8).is_empty());
    }

    fn event_at(d: &Driver, addr: u64) -> InputEvent {
        event_from_bytes(d.read_bytes(addr, 8).try_into().expect("8 bytes"))
    }

    #[test]
    fn events_wait_for_guest_buffers_then_arrive_in_order() {
        let input = Input::new(InputDevice::Keyboard, "k").expect("input");
        let handle = input.handle();
        let mut d = Driver::bring_up(Box::new(input), 0);
        // From another thread, before the guest posted anything.
        std::thread::spawn(move || {
            handle.push(&key_events(30, true).unwrap()).expect("press");
            handle
                .push(&key_events(30, false).unwrap())
                .expect("release");
        })
        .join()
        .expect("thread");
        d.notify(0);
        assert_eq!(d.used_idx(), 0, "no buffers yet");
        for i in 0..3u64 {
            d.submit(&[Buf(0x10000 + i * 8, 8, true)]);
        }
        d.notify(0);
        assert_eq!(d.used_idx(), 3);
        assert_eq!(d.used(0).1, 8);
        assert_eq!(event_at(&d, 0x10000), InputEvent::new(ev::EV_KEY, 30, 1));
        assert_eq!(event_at(&d, 0x10008), InputEvent::report());
        assert_eq!(event_at(&d, 0x10010), InputEvent::new(ev::EV_KEY, 30, 0));
        assert!(d.irq.used.load(Ordering::SeqCst) >= 1);
        // The fourth event waits for the next buffer.
        d.submit(&[Buf(0x10018, 8, true)]);
        d.notify(0);
        assert_eq!(event_at(&d, 0x10018), InputEvent::report());
    }

    #[test]
    fn tablet_moves_buttons_and_wheel() {
        let input = Input::new(InputDevice::Tablet, "t").expect("input");
        let handle = input.handle();
        let mut d = Driver::bring_up(Box::new(input), 0);
        handle
            .push(&[
                InputEvent::new(ev::EV_ABS, ev::ABS_X, 100),
                InputEvent::new(ev::EV_ABS, ev::ABS_Y, TABLET_MAX as i32),
                InputEvent::report(),
            ])
            .expect("move");
        handle
            .push(&[
                InputEvent::new(ev::EV_KEY, ev::BTN_LEFT, 1),
                InputEvent::report(),
            ])
            .expect("click");
        handle.push(&wheel_events(-1)).expect("wheel");
        assert!(handle.wake_fd().read().expect("woken") >= 1);
        for i in 0..7u64 {
            d.submit(&[Buf(0x10000 + i * 8, 8, true)]);
        }
        d.notify(0);
        assert_eq!(d.used_idx(), 7);
        assert_eq!(event_at(&d, 0x10000), InputEvent::new(ev::EV_ABS, 0, 100));
        assert_eq!(
            event_at(&d, 0x10008),
            InputEvent::new(ev::EV_ABS, 1, TABLET_MAX as i32)
        );
        assert_eq!(event_at(&d, 0x10018).code, ev::BTN_LEFT);
        assert_eq!(
            event_at(&d, 0x10028),
            InputEvent::new(ev::EV_REL, ev::REL_WHEEL, -1)
        );
        assert!(matches!(
            handle.push(&key_events(30, true).unwrap()),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn pending_events_are_bounded() {
        let input = Input::new(InputDevice::Keyboard, "k").expect("input");
        let handle = input.handle();
        for _ in 0..MAX_PENDING / 2 {
            handle.push(&key_events(2, true).unwrap()).expect("fits");
        }
        assert!(matches!(
            handle.push(&key_events(2, false).unwrap()),
            Err(Error::Full { .. })
        ));
        assert_eq!(handle.pending(), MAX_PENDING);
        assert!(matches!(
            handle.push(&[InputEvent::new(ev::EV_ABS, 0, 0)]),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn bad_buffers_do_not_lose_events_or_break_the_device() {
        let input = Input::new(InputDevice::Keyboard, "k").expect("input");
        let handle = input.handle();
        let mut d = Driver::bring_up(Box::new(input), 0);
        handle.push(&key_events(5, true).unwrap()).expect("press");
        d.submit(&[Buf(0x10000, 4, true)]);
        d.submit(&[Buf(0x10000, 8, false)]);
        d.submit(&[Buf(0xffff_0000_0000, 8, true)]);
        d.submit(&[Buf(0x10000, 8, true)]);
        d.notify(0);
        assert_eq!(d.used_idx(), 4);
        assert_eq!((d.used(0).1, d.used(1).1, d.used(2).1), (0, 0, 0));
        assert_eq!(d.used(3).1, 8);
        assert_eq!(event_at(&d, 0x10000), InputEvent::new(ev::EV_KEY, 5, 1));
        assert_eq!(d.status() & 0x40, 0, "healthy");
        assert_eq!(handle.pending(), 1, "the SYN waits");
        // A reset drops what the old driver never took.
        d.write(0x70, 0);
        assert_eq!(handle.pending(), 0);
    }

    #[test]
    fn status_queue_is_consumed_and_leds_remembered() {
        let input = Input::new(InputDevice::Keyboard, "k").expect("input");
        let handle = input.handle();
        let irq = Arc::new(CountingSink::default());
        let mem = guest_memory();
        let mut dev = input;
        // Drive the status queue directly: queue 1 with one readable chain of two LED events.
        let mut status = Queue::new(64).expect("queue");
        status.set_size(16);
        status.set_desc_table_address(Some(0x5000), Some(0));
        status.set_avail_ring_address(Some(0x6000), Some(0));
        status.set_used_ring_address(Some(0x7000), Some(0));
        status.set_ready(true);
        let mut events = Vec::new();
        events.extend_from_slice(&event_bytes(InputEvent::new(ev::EV_LED, ev::LED_CAPSL, 1)));
        events.extend_from_slice(&event_bytes(InputEvent::new(ev::EV_LED, ev::LED_NUML, 1)));
        events.extend_from_slice(&event_bytes(InputEvent::new(ev::EV_LED, ev::LED_NUML, 0)));
        use vm_memory::{Bytes, GuestAddress};
        mem.write_slice(&events, GuestAddress(0x8000))
            .expect("events");
        let mut desc = [0u8; 16];
        desc[0..8].copy_from_slice(&0x8000u64.to_le_bytes());
        desc[8..12].copy_from_slice(&(events.len() as u32).to_le_bytes());
        mem.write_slice(&desc, GuestAddress(0x5000)).expect("desc");
        mem.write_obj(1u16, GuestAddress(0x6002)).expect("avail");
        dev.activate(Activation {
            mem: mem.clone(),
            interrupt: irq.clone(),
            queues: vec![Queue::new(64).expect("queue"), status],
            acked_features: VIRTIO_F_VERSION_1,
        })
        .expect("activate");
        dev.process_queue(1).expect("status");
        assert_eq!(handle.leds(), 1 << ev::LED_CAPSL);
        assert_eq!(mem.read_obj::<u16>(GuestAddress(0x7002)).expect("used"), 1);
        assert_eq!(irq.used.load(Ordering::SeqCst), 1);
        assert!(dev.process_queue(2).is_err());
        dev.process_queue(0).expect("event queue not ready is fine");
    }
}
