//! Keys, text, pointer and wheel for a running VM: the API's input requests as evdev events
//! ([`berth_api::input`]) sent to berth-vmm's keyboard and tablet.

use std::time::{Duration, Instant};

use berth_api::error::ApiError;
use berth_api::input::typing::{key_combos, type_text};
use berth_api::input::{InputDevice, InputEvent, key_events, pointer_events, wheel_events};
use berth_vmm_api::channel::ChannelError;
use berth_vmm_api::{Command, ControlError};

use super::{Machines, REPLY_TIMEOUT, conflict, lock};

/// Events per control command: under the device's 1024-event queue, so a long text goes as
/// several commands.
const EVENTS_PER_COMMAND: usize = 256;
/// How long a full queue is retried: the guest may be slower than the typist.
const FULL_QUEUE_PATIENCE: Duration = REPLY_TIMEOUT;

impl Machines {
    /// Types `text` on VM `name`'s keyboard (US layout); refused whole if any character has
    /// no key.
    pub fn type_text(&self, name: &str, text: &str) -> Result<(), ApiError> {
        let groups = type_text(text).map_err(|e| ApiError::invalid(e.to_string()))?;
        self.input(name, InputDevice::Keyboard, &groups)
    }

    /// Presses key combinations such as `ctrl+alt+f2`.
    pub fn press_keys(&self, name: &str, keys: &str) -> Result<(), ApiError> {
        let events = key_combos(keys).map_err(|e| ApiError::invalid(e.to_string()))?;
        self.input(name, InputDevice::Keyboard, &[events])
    }

    /// One key going down or up (the window's keys, as evdev codes).
    pub fn key_event(&self, name: &str, code: u16, pressed: bool) -> Result<(), ApiError> {
        let events = key_events(code, pressed).map_err(|e| ApiError::invalid(e.to_string()))?;
        self.input(name, InputDevice::Keyboard, &[events])
    }

    /// The tablet at `x`,`y` with `buttons` held.
    pub fn pointer(&self, name: &str, x: u32, y: u32, buttons: u8) -> Result<(), ApiError> {
        let events = pointer_events(x, y, buttons).map_err(|e| ApiError::invalid(e.to_string()))?;
        self.input(name, InputDevice::Tablet, &[events])
    }

    /// A wheel turn of `clicks`.
    pub fn wheel(&self, name: &str, clicks: i32) -> Result<(), ApiError> {
        self.input(name, InputDevice::Tablet, &[wheel_events(clicks)])
    }

    /// Sends events to VM `name`'s `device`, in groups that each go whole into the device's
    /// queue.
    fn input(
        &self,
        name: &str,
        device: InputDevice,
        groups: &[Vec<InputEvent>],
    ) -> Result<(), ApiError> {
        let machine = self.machine(name)?;
        let send = |events: Vec<InputEvent>| -> Result<(), ApiError> {
            let command = Command::Input { device, events };
            let deadline = Instant::now() + FULL_QUEUE_PATIENCE;
            loop {
                match lock(&machine.control).call(&command, REPLY_TIMEOUT) {
                    Ok(_) => return Ok(()),
                    Err(ChannelError::Refused(ControlError::InputQueueFull { .. }))
                        if Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(why) => {
                        return Err(conflict(format!("cannot send input to VM `{name}`: {why}")));
                    }
                }
            }
        };
        let mut batch: Vec<InputEvent> = Vec::new();
        for group in groups {
            if !batch.is_empty() && batch.len() + group.len() > EVENTS_PER_COMMAND {
                send(std::mem::take(&mut batch))?;
            }
            batch.extend_from_slice(group);
        }
        if batch.is_empty() {
            return Ok(());
        }
        send(batch)
    }
}
