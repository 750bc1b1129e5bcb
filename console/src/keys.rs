//! The host's physical keys (winit's [`KeyCode`], the key's place on a US keyboard whatever the
//! host layout) as the Linux evdev codes (input-event-codes.h) the guest's virtio-input keyboard
//! reports: the guest's own layout then decides which character a key is, as on real hardware.

use winit::keyboard::KeyCode;

/// The evdev code of `key`, or `None` for keys a PC keyboard lacks (media keys winit knows by
/// other names, Fn, and the like).
pub fn evdev_code(key: KeyCode) -> Option<u16> {
    // winit names its variants after the W3C `code` names the shared table uses.
    berth_api::input::keys::evdev_code(&format!("{key:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_and_modifiers_have_their_pc_codes() {
        // input-event-codes.h: KEY_A 30, KEY_1 2, KEY_ENTER 28, KEY_LEFTSHIFT 42,
        // KEY_RIGHTCTRL 97, KEY_LEFTMETA 125, KEY_F12 88, KEY_KPENTER 96, KEY_102ND 86.
        assert_eq!(evdev_code(KeyCode::KeyA), Some(30));
        assert_eq!(evdev_code(KeyCode::KeyZ), Some(44));
        assert_eq!(evdev_code(KeyCode::Digit1), Some(2));
        assert_eq!(evdev_code(KeyCode::Digit0), Some(11));
        assert_eq!(evdev_code(KeyCode::Enter), Some(28));
        assert_eq!(evdev_code(KeyCode::ShiftLeft), Some(42));
        assert_eq!(evdev_code(KeyCode::ControlRight), Some(97));
        assert_eq!(evdev_code(KeyCode::SuperLeft), Some(125));
        assert_eq!(evdev_code(KeyCode::F12), Some(88));
        assert_eq!(evdev_code(KeyCode::NumpadEnter), Some(96));
        assert_eq!(evdev_code(KeyCode::IntlBackslash), Some(86));
        assert_eq!(evdev_code(KeyCode::ArrowUp), Some(103));
        assert_eq!(evdev_code(KeyCode::Delete), Some(111));
    }

    #[test]
    fn keys_a_pc_lacks_have_none() {
        assert_eq!(evdev_code(KeyCode::Fn), None);
        assert_eq!(evdev_code(KeyCode::BrowserBack), None);
    }

    #[test]
    fn no_two_keys_share_a_code() {
        use std::collections::HashMap;
        let all = [
            KeyCode::Escape,
            KeyCode::Backquote,
            KeyCode::Digit1,
            KeyCode::Digit2,
            KeyCode::Digit3,
            KeyCode::Digit4,
            KeyCode::Digit5,
            KeyCode::Digit6,
            KeyCode::Digit7,
            KeyCode::Digit8,
            KeyCode::Digit9,
            KeyCode::Digit0,
            KeyCode::Minus,
            KeyCode::Equal,
            KeyCode::Backspace,
            KeyCode::Tab,
            KeyCode::KeyQ,
            KeyCode::KeyW,
            KeyCode::KeyE,
            KeyCode::KeyR,
            KeyCode::KeyT,
            KeyCode::KeyY,
            KeyCode::KeyU,
            KeyCode::KeyI,
            KeyCode::KeyO,
            KeyCode::KeyP,
            KeyCode::BracketLeft,
            KeyCode::BracketRight,
            KeyCode::Backslash,
            KeyCode::CapsLock,
            KeyCode::KeyA,
            KeyCode::KeyS,
            KeyCode::KeyD,
            KeyCode::KeyF,
            KeyCode::KeyG,
            KeyCode::KeyH,
            KeyCode::KeyJ,
            KeyCode::KeyK,
            KeyCode::KeyL,
            KeyCode::Semicolon,
            KeyCode::Quote,
            KeyCode::Enter,
            KeyCode::ShiftLeft,
            KeyCode::IntlBackslash,
            KeyCode::KeyZ,
            KeyCode::KeyX,
            KeyCode::KeyC,
            KeyCode::KeyV,
            KeyCode::KeyB,
            KeyCode::KeyN,
            KeyCode::KeyM,
            KeyCode::Comma,
            KeyCode::Period,
            KeyCode::Slash,
            KeyCode::ShiftRight,
            KeyCode::ControlLeft,
            KeyCode::SuperLeft,
            KeyCode::AltLeft,
            KeyCode::Space,
            KeyCode::AltRight,
            KeyCode::SuperRight,
            KeyCode::ContextMenu,
            KeyCode::ControlRight,
            KeyCode::F1,
            KeyCode::F2,
            KeyCode::F3,
            KeyCode::F4,
            KeyCode::F5,
            KeyCode::F6,
            KeyCode::F7,
            KeyCode::F8,
            KeyCode::F9,
            KeyCode::F10,
            KeyCode::F11,
            KeyCode::F12,
            KeyCode::PrintScreen,
            KeyCode::ScrollLock,
            KeyCode::Pause,
            KeyCode::Insert,
            KeyCode::Home,
            KeyCode::PageUp,
            KeyCode::Delete,
            KeyCode::End,
            KeyCode::PageDown,
            KeyCode::ArrowUp,
            KeyCode::ArrowLeft,
            KeyCode::ArrowDown,
            KeyCode::ArrowRight,
            KeyCode::NumLock,
            KeyCode::NumpadDivide,
            KeyCode::NumpadMultiply,
            KeyCode::NumpadSubtract,
            KeyCode::NumpadAdd,
            KeyCode::NumpadEnter,
            KeyCode::NumpadDecimal,
            KeyCode::Numpad0,
            KeyCode::Numpad1,
            KeyCode::Numpad2,
            KeyCode::Numpad3,
            KeyCode::Numpad4,
            KeyCode::Numpad5,
            KeyCode::Numpad6,
            KeyCode::Numpad7,
            KeyCode::Numpad8,
            KeyCode::Numpad9,
        ];
        let mut seen = HashMap::new();
        for key in all {
            let code = evdev_code(key).unwrap_or_else(|| panic!("{key:?} has no code"));
            if let Some(other) = seen.insert(code, key) {
                panic!("{key:?} and {other:?} both map to {code}");
            }
        }
        assert_eq!(seen.len(), 105, "a full 105-key PC keyboard");
    }
}
