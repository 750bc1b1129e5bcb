//! The host's physical keys (winit's [`KeyCode`], the key's place on a US keyboard whatever the
//! host layout) as the Linux evdev codes (input-event-codes.h) the guest's virtio-input keyboard
//! reports: the guest's own layout then decides which character a key is, as on real hardware.

use winit::keyboard::KeyCode;

/// The evdev code of `key`, or `None` for keys a PC keyboard lacks (media keys winit knows by
/// other names, Fn, and the like).
pub fn evdev_code(key: KeyCode) -> Option<u16> {
    use KeyCode::*;
    Some(match key {
        Escape => 1,
        Digit1 => 2,
        Digit2 => 3,
        Digit3 => 4,
        Digit4 => 5,
        Digit5 => 6,
        Digit6 => 7,
        Digit7 => 8,
        Digit8 => 9,
        Digit9 => 10,
        Digit0 => 11,
        Minus => 12,
        Equal => 13,
        Backspace => 14,
        Tab => 15,
        KeyQ => 16,
        KeyW => 17,
        KeyE => 18,
        KeyR => 19,
        KeyT => 20,
        KeyY => 21,
        KeyU => 22,
        KeyI => 23,
        KeyO => 24,
        KeyP => 25,
        BracketLeft => 26,
        BracketRight => 27,
        Enter => 28,
        ControlLeft => 29,
        KeyA => 30,
        KeyS => 31,
        KeyD => 32,
        KeyF => 33,
        KeyG => 34,
        KeyH => 35,
        KeyJ => 36,
        KeyK => 37,
        KeyL => 38,
        Semicolon => 39,
        Quote => 40,
        Backquote => 41,
        ShiftLeft => 42,
        Backslash => 43,
        KeyZ => 44,
        KeyX => 45,
        KeyC => 46,
        KeyV => 47,
        KeyB => 48,
        KeyN => 49,
        KeyM => 50,
        Comma => 51,
        Period => 52,
        Slash => 53,
        ShiftRight => 54,
        NumpadMultiply => 55,
        AltLeft => 56,
        Space => 57,
        CapsLock => 58,
        F1 => 59,
        F2 => 60,
        F3 => 61,
        F4 => 62,
        F5 => 63,
        F6 => 64,
        F7 => 65,
        F8 => 66,
        F9 => 67,
        F10 => 68,
        NumLock => 69,
        ScrollLock => 70,
        Numpad7 => 71,
        Numpad8 => 72,
        Numpad9 => 73,
        NumpadSubtract => 74,
        Numpad4 => 75,
        Numpad5 => 76,
        Numpad6 => 77,
        NumpadAdd => 78,
        Numpad1 => 79,
        Numpad2 => 80,
        Numpad3 => 81,
        Numpad0 => 82,
        NumpadDecimal => 83,
        IntlBackslash => 86,
        F11 => 87,
        F12 => 88,
        IntlRo => 89,
        NumpadEnter => 96,
        ControlRight => 97,
        NumpadDivide => 98,
        PrintScreen => 99,
        AltRight => 100,
        Home => 102,
        ArrowUp => 103,
        PageUp => 104,
        ArrowLeft => 105,
        ArrowRight => 106,
        End => 107,
        ArrowDown => 108,
        PageDown => 109,
        Insert => 110,
        Delete => 111,
        AudioVolumeMute => 113,
        AudioVolumeDown => 114,
        AudioVolumeUp => 115,
        Power => 116,
        NumpadEqual => 117,
        Pause => 119,
        NumpadComma => 121,
        IntlYen => 124,
        SuperLeft => 125,
        SuperRight => 126,
        ContextMenu => 127,
        F13 => 183,
        F14 => 184,
        F15 => 185,
        F16 => 186,
        F17 => 187,
        F18 => 188,
        F19 => 189,
        F20 => 190,
        F21 => 191,
        F22 => 192,
        F23 => 193,
        F24 => 194,
        _ => return None,
    })
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
