//! Keys typed on the firmware's screen as the bytes a serial terminal sends for them.
//!
//! SeaBIOS's microvm build has no PS/2 controller: its keyboard, and so a BIOS boot loader's
//! (GRUB's menu, ISOLINUX's prompt), is the serial console, which turns a terminal's bytes
//! back into keys (its `sercon`). While the firmware has the screen, the window's keys go there
//! as xterm would send them: characters on a US layout (as `vm type` assumes), Ctrl with a
//! letter as its control character, and the escape sequences SeaBIOS knows for the arrows,
//! the editing keys and F1 to F12.

use berth_api::input::keys::evdev_code;
use berth_api::input::typing::key_char;
use berth_api::input::{InputEvent, ev};

/// Keys that type no character, by their code names, and what a terminal sends for them.
const SEQUENCES: &[(&str, &[u8])] = &[
    ("Escape", b"\x1b"),
    ("Backspace", b"\x08"),
    ("NumpadEnter", b"\r"),
    ("ArrowUp", b"\x1b[A"),
    ("ArrowDown", b"\x1b[B"),
    ("ArrowRight", b"\x1b[C"),
    ("ArrowLeft", b"\x1b[D"),
    ("Home", b"\x1b[H"),
    ("End", b"\x1b[F"),
    ("Insert", b"\x1b[2~"),
    ("Delete", b"\x1b[3~"),
    ("PageUp", b"\x1b[5~"),
    ("PageDown", b"\x1b[6~"),
    ("F1", b"\x1bOP"),
    ("F2", b"\x1bOQ"),
    ("F3", b"\x1bOR"),
    ("F4", b"\x1bOS"),
    ("F5", b"\x1b[15~"),
    ("F6", b"\x1b[17~"),
    ("F7", b"\x1b[18~"),
    ("F8", b"\x1b[19~"),
    ("F9", b"\x1b[20~"),
    ("F10", b"\x1b[21~"),
    ("F11", b"\x1b[23~"),
    ("F12", b"\x1b[24~"),
];

/// The modifier keys it follows, by their code names.
const SHIFT_KEYS: [&str; 2] = ["ShiftLeft", "ShiftRight"];
const CTRL_KEYS: [&str; 2] = ["ControlLeft", "ControlRight"];

/// The modifiers held, across batches of events (a key's press and release may come apart).
#[derive(Debug, Default)]
pub struct TerminalKeys {
    shift: [bool; 2],
    ctrl: [bool; 2],
}

fn is(code: u16, name: &str) -> bool {
    evdev_code(name) == Some(code)
}

impl TerminalKeys {
    /// What a terminal sends for `events` (presses and repeats; releases send nothing).
    pub fn bytes(&mut self, events: &[InputEvent]) -> Vec<u8> {
        let mut out = Vec::new();
        for event in events.iter().filter(|e| e.kind == ev::EV_KEY) {
            let down = event.value != 0;
            let code = event.code;
            if let Some(i) = SHIFT_KEYS.iter().position(|name| is(code, name)) {
                self.shift[i] = down;
                continue;
            }
            if let Some(i) = CTRL_KEYS.iter().position(|name| is(code, name)) {
                self.ctrl[i] = down;
                continue;
            }
            if !down {
                continue;
            }
            if let Some((_, bytes)) = SEQUENCES.iter().find(|(name, _)| is(code, name)) {
                out.extend_from_slice(bytes);
                continue;
            }
            let shift = self.shift.contains(&true);
            match key_char(code, shift) {
                // A terminal's Enter is a carriage return.
                Some('\n') => out.push(b'\r'),
                Some(c) if self.ctrl.contains(&true) && c.is_ascii_alphabetic() => {
                    out.push(c.to_ascii_uppercase() as u8 & 0x1f);
                }
                Some(c) if c.is_ascii() => out.push(c as u8),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, value: i32) -> InputEvent {
        InputEvent::new(ev::EV_KEY, evdev_code(name).unwrap(), value)
    }

    #[test]
    fn characters_enter_and_shift() {
        let mut keys = TerminalKeys::default();
        let events = [
            key("KeyE", 1),
            key("KeyE", 0),
            InputEvent::report(),
            key("ShiftLeft", 1),
            key("Digit1", 1),
            key("Digit1", 2),
            key("Digit1", 0),
            key("ShiftLeft", 0),
            key("Enter", 1),
        ];
        assert_eq!(keys.bytes(&events), b"e!!\r");
        // Shift released in another batch: a plain key after it.
        assert_eq!(keys.bytes(&[key("KeyA", 1)]), b"a");
    }

    #[test]
    fn arrows_function_keys_and_control() {
        let mut keys = TerminalKeys::default();
        assert_eq!(
            keys.bytes(&[key("ArrowDown", 1), key("ArrowDown", 0), key("F2", 1)]),
            b"\x1b[B\x1bOQ"
        );
        assert_eq!(
            keys.bytes(&[
                key("ControlRight", 1),
                key("KeyX", 1),
                key("ControlRight", 0)
            ]),
            [0x18]
        );
        // The tablet's buttons and keys a terminal has nothing for: nothing.
        let none = [
            InputEvent::new(ev::EV_KEY, ev::BTN_LEFT, 1),
            key("AltLeft", 1),
            InputEvent::new(ev::EV_ABS, ev::ABS_X, 5),
        ];
        assert_eq!(keys.bytes(&none), b"");
    }
}
