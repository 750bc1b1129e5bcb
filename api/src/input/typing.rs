//! Text and key names as key events, for `vm type` and `vm key`: a US keyboard layout over the
//! one key table ([`super::keys`]).
//!
//! The guest's own layout turns key codes back into characters; Berth assumes it is US (what
//! a fresh Debian install and every installer start with). A character the layout cannot type
//! is refused before anything is sent, so the guest never gets half a word.

use super::keys::evdev_code;
use super::{InputEvent, ev};

/// Why text or a key combination cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypingError {
    /// Characters outside the US layout.
    #[error("cannot type {}: the US keyboard layout has no key for {}", list(.0), if .0.len() == 1 { "it" } else { "them" })]
    Untypable(Vec<char>),
    /// A key name that is not known.
    #[error(
        "unknown key {0:?} (names: ctrl, alt, shift, super, enter, esc, tab, space, backspace, delete, insert, home, end, pageup, pagedown, up, down, left, right, f1..f24, a letter, digit or symbol, or a key's W3C code name such as KeyA)"
    )]
    UnknownKey(String),
    /// Nothing to press.
    #[error("no keys given (e.g. ctrl+alt+f2, enter, shift+a)")]
    Empty,
}

fn list(chars: &[char]) -> String {
    chars
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The US layout: (character, character with shift, the key's code name).
const US_LAYOUT: &[(char, char, &str)] = &[
    ('`', '~', "Backquote"),
    ('1', '!', "Digit1"),
    ('2', '@', "Digit2"),
    ('3', '#', "Digit3"),
    ('4', '$', "Digit4"),
    ('5', '%', "Digit5"),
    ('6', '^', "Digit6"),
    ('7', '&', "Digit7"),
    ('8', '*', "Digit8"),
    ('9', '(', "Digit9"),
    ('0', ')', "Digit0"),
    ('-', '_', "Minus"),
    ('=', '+', "Equal"),
    ('q', 'Q', "KeyQ"),
    ('w', 'W', "KeyW"),
    ('e', 'E', "KeyE"),
    ('r', 'R', "KeyR"),
    ('t', 'T', "KeyT"),
    ('y', 'Y', "KeyY"),
    ('u', 'U', "KeyU"),
    ('i', 'I', "KeyI"),
    ('o', 'O', "KeyO"),
    ('p', 'P', "KeyP"),
    ('[', '{', "BracketLeft"),
    (']', '}', "BracketRight"),
    ('\\', '|', "Backslash"),
    ('a', 'A', "KeyA"),
    ('s', 'S', "KeyS"),
    ('d', 'D', "KeyD"),
    ('f', 'F', "KeyF"),
    ('g', 'G', "KeyG"),
    ('h', 'H', "KeyH"),
    ('j', 'J', "KeyJ"),
    ('k', 'K', "KeyK"),
    ('l', 'L', "KeyL"),
    (';', ':', "Semicolon"),
    ('\'', '"', "Quote"),
    ('z', 'Z', "KeyZ"),
    ('x', 'X', "KeyX"),
    ('c', 'C', "KeyC"),
    ('v', 'V', "KeyV"),
    ('b', 'B', "KeyB"),
    ('n', 'N', "KeyN"),
    ('m', 'M', "KeyM"),
    (',', '<', "Comma"),
    ('.', '>', "Period"),
    ('/', '?', "Slash"),
    (' ', ' ', "Space"),
    ('\t', '\t', "Tab"),
    ('\n', '\n', "Enter"),
];

/// Key names for `vm key` (lower case) and the keys they name.
const KEY_NAMES: &[(&str, &str)] = &[
    ("ctrl", "ControlLeft"),
    ("control", "ControlLeft"),
    ("lctrl", "ControlLeft"),
    ("leftctrl", "ControlLeft"),
    ("rctrl", "ControlRight"),
    ("rightctrl", "ControlRight"),
    ("alt", "AltLeft"),
    ("lalt", "AltLeft"),
    ("leftalt", "AltLeft"),
    ("altgr", "AltRight"),
    ("ralt", "AltRight"),
    ("rightalt", "AltRight"),
    ("shift", "ShiftLeft"),
    ("lshift", "ShiftLeft"),
    ("leftshift", "ShiftLeft"),
    ("rshift", "ShiftRight"),
    ("rightshift", "ShiftRight"),
    ("super", "SuperLeft"),
    ("meta", "SuperLeft"),
    ("win", "SuperLeft"),
    ("windows", "SuperLeft"),
    ("cmd", "SuperLeft"),
    ("menu", "ContextMenu"),
    ("compose", "ContextMenu"),
    ("enter", "Enter"),
    ("return", "Enter"),
    ("esc", "Escape"),
    ("escape", "Escape"),
    ("tab", "Tab"),
    ("space", "Space"),
    ("backspace", "Backspace"),
    ("delete", "Delete"),
    ("del", "Delete"),
    ("insert", "Insert"),
    ("ins", "Insert"),
    ("home", "Home"),
    ("end", "End"),
    ("pageup", "PageUp"),
    ("pgup", "PageUp"),
    ("pagedown", "PageDown"),
    ("pgdn", "PageDown"),
    ("up", "ArrowUp"),
    ("down", "ArrowDown"),
    ("left", "ArrowLeft"),
    ("right", "ArrowRight"),
    ("capslock", "CapsLock"),
    ("numlock", "NumLock"),
    ("scrolllock", "ScrollLock"),
    ("sysrq", "PrintScreen"),
    ("printscreen", "PrintScreen"),
    ("print", "PrintScreen"),
    ("pause", "Pause"),
    ("plus", "Equal"),
    ("minus", "Minus"),
];

/// The key of a code name in the one table; every name in this file's tables is in it (tested).
fn code_of(name: &str) -> u16 {
    evdev_code(name).unwrap_or(0)
}

/// The key and whether shift is held for `c`, on a US layout.
fn char_key(c: char) -> Option<(u16, bool)> {
    US_LAYOUT.iter().find_map(|&(plain, shifted, key)| {
        if c == plain {
            Some((code_of(key), false))
        } else if c == shifted {
            Some((code_of(key), true))
        } else {
            None
        }
    })
}

/// The character key `code` types on a US layout, with shift held or not; `None` for a key
/// that types none (modifiers, arrows, function keys).
pub fn key_char(code: u16, shift: bool) -> Option<char> {
    US_LAYOUT.iter().find_map(|&(plain, shifted, key)| {
        (code_of(key) == code).then_some(if shift { shifted } else { plain })
    })
}

fn press(code: u16, down: bool, out: &mut Vec<InputEvent>) {
    out.push(InputEvent::new(ev::EV_KEY, code, i32::from(down)));
    out.push(InputEvent::report());
}

/// The events that type `text`: for each character its key pressed and released, inside a
/// shift press when it needs one, one group per character. Refuses the whole text if any
/// character has no key.
pub fn type_text(text: &str) -> Result<Vec<Vec<InputEvent>>, TypingError> {
    let mut bad: Vec<char> = Vec::new();
    let keys: Vec<(u16, bool)> = text
        .chars()
        .filter_map(|c| {
            let key = char_key(c);
            if key.is_none() && !bad.contains(&c) {
                bad.push(c);
            }
            key
        })
        .collect();
    if !bad.is_empty() {
        return Err(TypingError::Untypable(bad));
    }
    let shift = code_of("ShiftLeft");
    Ok(keys
        .into_iter()
        .map(|(code, shifted)| {
            let mut events = Vec::new();
            if shifted {
                press(shift, true, &mut events);
            }
            press(code, true, &mut events);
            press(code, false, &mut events);
            if shifted {
                press(shift, false, &mut events);
            }
            events
        })
        .collect())
}

/// The code of one key name (case-insensitive): a name of [`KEY_NAMES`], `f1`..`f24`, a key's
/// W3C code name, or a character whose key it is (`a` and `A` name the same key, `!` the 1).
fn key_code(name: &str) -> Result<u16, TypingError> {
    let unknown = || TypingError::UnknownKey(name.to_owned());
    let lower = name.to_ascii_lowercase();
    if let Some(&(_, key)) = KEY_NAMES.iter().find(|(n, _)| *n == lower) {
        return Ok(code_of(key));
    }
    if let Some(code) = super::keys::by_name_ignoring_case(name) {
        return Ok(code);
    }
    let mut chars = lower.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c != ' ' => char_key(c).map(|(code, _)| code).ok_or_else(unknown),
        _ => Err(unknown()),
    }
}

/// The events of key combinations such as `ctrl+alt+f2`, `enter`, `shift+a`: each
/// combination's keys pressed in order and released in reverse; several combinations,
/// separated by spaces, one after the other.
pub fn key_combos(keys: &str) -> Result<Vec<InputEvent>, TypingError> {
    let mut events = Vec::new();
    for combo in keys.split_whitespace() {
        let codes = combo
            .split('+')
            .map(|name| match name {
                "" => Err(TypingError::UnknownKey(combo.to_owned())),
                name => key_code(name),
            })
            .collect::<Result<Vec<u16>, _>>()?;
        for &code in &codes {
            press(code, true, &mut events);
        }
        for &code in codes.iter().rev() {
            press(code, false, &mut events);
        }
    }
    if events.is_empty() {
        return Err(TypingError::Empty);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_only(events: &[InputEvent]) -> Vec<(u16, i32)> {
        events
            .iter()
            .filter(|e| e.kind == ev::EV_KEY)
            .map(|e| (e.code, e.value))
            .collect()
    }

    #[test]
    fn every_name_in_the_tables_is_a_key() {
        for (_, _, key) in US_LAYOUT {
            assert!(evdev_code(key).is_some(), "{key}");
        }
        for (name, key) in KEY_NAMES {
            assert!(evdev_code(key).is_some(), "{name} → {key}");
        }
    }

    #[test]
    fn typing_presses_shift_for_capitals_and_symbols() {
        let typed = type_text("Hi!\n").unwrap();
        assert_eq!(typed.len(), 4);
        assert_eq!(
            keys_only(&typed[0]),
            [(42, 1), (35, 1), (35, 0), (42, 0)],
            "H"
        );
        assert_eq!(keys_only(&typed[1]), [(23, 1), (23, 0)], "i");
        assert_eq!(
            keys_only(&typed[2]),
            [(42, 1), (2, 1), (2, 0), (42, 0)],
            "!"
        );
        assert_eq!(keys_only(&typed[3]), [(28, 1), (28, 0)], "newline");
        // Every key change is its own report.
        assert_eq!(typed[1][1], InputEvent::report());
    }

    #[test]
    fn the_whole_us_layout_types() {
        let all = "`1234567890-=qwertyuiop[]\\asdfghjkl;'zxcvbnm,./ \t\n\
                   ~!@#$%^&*()_+QWERTYUIOP{}|ASDFGHJKL:\"ZXCVBNM<>?";
        let typed = type_text(all).unwrap();
        assert_eq!(typed.len(), all.chars().count());
        assert_eq!(keys_only(&type_text("/").unwrap()[0]), [(53, 1), (53, 0)]);
        assert_eq!(keys_only(&type_text("`").unwrap()[0]), [(41, 1), (41, 0)]);
        assert_eq!(keys_only(&type_text("\\").unwrap()[0]), [(43, 1), (43, 0)]);
        assert_eq!(keys_only(&type_text("0").unwrap()[0]), [(11, 1), (11, 0)]);
    }

    #[test]
    fn keys_give_back_the_characters_they_type() {
        let all = "`1234567890-=qwertyuiop[]\\asdfghjkl;'zxcvbnm,./ \t\n\
                   ~!@#$%^&*()_+QWERTYUIOP{}|ASDFGHJKL:\"ZXCVBNM<>?";
        for c in all.chars() {
            let (code, shift) = char_key(c).unwrap();
            assert_eq!(key_char(code, shift), Some(c), "{c:?}");
        }
        // Shift (42) and the up arrow (103) type nothing.
        assert_eq!(key_char(42, false), None);
        assert_eq!(key_char(103, true), None);
    }

    #[test]
    fn untypable_characters_are_named_and_nothing_is_typed() {
        let err = type_text("héllo €€").unwrap_err();
        assert_eq!(err, TypingError::Untypable(vec!['é', '€']));
        assert_eq!(
            err.to_string(),
            "cannot type 'é', '€': the US keyboard layout has no key for them"
        );
        assert!(type_text("\u{7}").is_err());
    }

    #[test]
    fn combinations_press_in_order_and_release_in_reverse() {
        let events = key_combos("ctrl+alt+f2").unwrap();
        assert_eq!(
            keys_only(&events),
            [(29, 1), (56, 1), (60, 1), (60, 0), (56, 0), (29, 0)]
        );
        assert_eq!(events.len(), 12, "a SYN_REPORT after each change");
        assert_eq!(keys_only(&key_combos("Enter").unwrap()), [(28, 1), (28, 0)]);
        assert_eq!(
            keys_only(&key_combos("shift+a").unwrap()),
            [(42, 1), (30, 1), (30, 0), (42, 0)]
        );
        assert_eq!(
            keys_only(&key_combos("ctrl+c enter").unwrap()),
            [(29, 1), (46, 1), (46, 0), (29, 0), (28, 1), (28, 0)]
        );
        assert_eq!(keys_only(&key_combos("f12").unwrap()), [(88, 1), (88, 0)]);
        assert_eq!(keys_only(&key_combos("F10").unwrap()), [(68, 1), (68, 0)]);
        assert_eq!(keys_only(&key_combos("f13").unwrap()), [(183, 1), (183, 0)]);
        assert_eq!(keys_only(&key_combos("KeyQ").unwrap()), [(16, 1), (16, 0)]);
        assert_eq!(keys_only(&key_combos("!").unwrap()), [(2, 1), (2, 0)]);
    }

    #[test]
    fn bad_combinations_are_refused() {
        assert_eq!(
            key_combos("ctrl+banana"),
            Err(TypingError::UnknownKey("banana".into()))
        );
        assert!(matches!(
            key_combos("ctrl+"),
            Err(TypingError::UnknownKey(_))
        ));
        assert!(matches!(key_combos("f25"), Err(TypingError::UnknownKey(_))));
        assert_eq!(key_combos("  "), Err(TypingError::Empty));
    }
}
