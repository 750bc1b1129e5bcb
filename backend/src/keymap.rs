//! Text and key names to evdev key events, for `vm type` and `vm key`: a US keyboard layout.
//!
//! The guest's own layout turns key codes back into characters; Berth assumes it is US (what
//! a fresh Debian install and every installer start with). A character the layout cannot type
//! is refused before anything is sent, so the guest never gets half a word.

/// evdev: EV_SYN/SYN_REPORT and EV_KEY (linux/input-event-codes.h).
const EV_SYN: u16 = 0;
const EV_KEY: u16 = 1;
const KEY_LEFTSHIFT: u16 = 42;

/// One evdev event: type, code, value.
pub type KeyEvent = (u16, u16, i32);

/// Why text or a key combination cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeymapError {
    /// Characters outside the US layout.
    #[error("cannot type {}: the US keyboard layout has no key for {}", list(.0), if .0.len() == 1 { "it" } else { "them" })]
    Untypable(Vec<char>),
    /// A key name that is not known.
    #[error(
        "unknown key {0:?} (names: ctrl, alt, shift, super, enter, esc, tab, space, backspace, delete, insert, home, end, pageup, pagedown, up, down, left, right, f1..f12, a letter, digit or symbol)"
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

/// The key and whether shift is held for `c`, on a US layout.
fn char_key(c: char) -> Option<(u16, bool)> {
    const ROWS: [(&str, &str, u16); 4] = [
        ("1234567890-=", "!@#$%^&*()_+", 2),
        ("qwertyuiop[]", "QWERTYUIOP{}", 16),
        ("asdfghjkl;'`", "ASDFGHJKL:\"~", 30),
        ("\\zxcvbnm,./", "|ZXCVBNM<>?", 43),
    ];
    for (plain, shifted, first) in ROWS {
        if let Some(i) = plain.chars().position(|p| p == c) {
            return Some((first + i as u16, false));
        }
        if let Some(i) = shifted.chars().position(|p| p == c) {
            return Some((first + i as u16, true));
        }
    }
    match c {
        ' ' => Some((57, false)),
        '\n' => Some((28, false)),
        '\t' => Some((15, false)),
        _ => None,
    }
}

fn press(code: u16, down: bool, out: &mut Vec<KeyEvent>) {
    out.push((EV_KEY, code, i32::from(down)));
    out.push((EV_SYN, 0, 0));
}

/// The events that type `text`: for each character its key pressed and released, inside a
/// shift press when it needs one. Refuses the whole text if any character has no key.
pub fn type_text(text: &str) -> Result<Vec<Vec<KeyEvent>>, KeymapError> {
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
        return Err(KeymapError::Untypable(bad));
    }
    Ok(keys
        .into_iter()
        .map(|(code, shift)| {
            let mut events = Vec::new();
            if shift {
                press(KEY_LEFTSHIFT, true, &mut events);
            }
            press(code, true, &mut events);
            press(code, false, &mut events);
            if shift {
                press(KEY_LEFTSHIFT, false, &mut events);
            }
            events
        })
        .collect())
}

/// The code of one key name (case-insensitive).
fn key_code(name: &str) -> Result<u16, KeymapError> {
    let lower = name.to_ascii_lowercase();
    let code = match lower.as_str() {
        "ctrl" | "control" | "lctrl" | "leftctrl" => 29,
        "rctrl" | "rightctrl" => 97,
        "alt" | "lalt" | "leftalt" => 56,
        "altgr" | "ralt" | "rightalt" => 100,
        "shift" | "lshift" | "leftshift" => 42,
        "rshift" | "rightshift" => 54,
        "super" | "meta" | "win" | "windows" | "cmd" => 125,
        "menu" | "compose" => 127,
        "enter" | "return" => 28,
        "esc" | "escape" => 1,
        "tab" => 15,
        "space" => 57,
        "backspace" => 14,
        "delete" | "del" => 111,
        "insert" | "ins" => 110,
        "home" => 102,
        "end" => 107,
        "pageup" | "pgup" => 104,
        "pagedown" | "pgdn" => 109,
        "up" => 103,
        "down" => 108,
        "left" => 105,
        "right" => 106,
        "capslock" => 58,
        "numlock" => 69,
        "scrolllock" => 70,
        "sysrq" | "printscreen" | "print" => 99,
        "pause" => 119,
        "plus" => 13,
        "minus" => 12,
        f if f.len() >= 2 && f.starts_with('f') && f[1..].bytes().all(|b| b.is_ascii_digit()) => {
            match f[1..].parse::<u16>() {
                Ok(n @ 1..=10) => 58 + n,
                Ok(11) => 87,
                Ok(12) => 88,
                _ => return Err(KeymapError::UnknownKey(name.to_owned())),
            }
        }
        _ => {
            let mut chars = lower.chars();
            match (chars.next(), chars.next()) {
                // The key itself: `shift+a` and `a` name the same key; `!` names the 1 key.
                (Some(c), None) => match char_key(c) {
                    Some((code, _)) if c != ' ' => code,
                    _ => return Err(KeymapError::UnknownKey(name.to_owned())),
                },
                _ => return Err(KeymapError::UnknownKey(name.to_owned())),
            }
        }
    };
    Ok(code)
}

/// The events of key combinations such as `ctrl+alt+f2`, `enter`, `shift+a`: each
/// combination's keys pressed in order and released in reverse; several combinations,
/// separated by spaces, one after the other.
pub fn key_combos(keys: &str) -> Result<Vec<KeyEvent>, KeymapError> {
    let mut events = Vec::new();
    for combo in keys.split_whitespace() {
        let codes = combo
            .split('+')
            .map(|name| match name {
                "" => Err(KeymapError::UnknownKey(combo.to_owned())),
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
        return Err(KeymapError::Empty);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_only(events: &[KeyEvent]) -> Vec<(u16, i32)> {
        events
            .iter()
            .filter(|e| e.0 == EV_KEY)
            .map(|e| (e.1, e.2))
            .collect()
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
        assert_eq!(typed[1][1], (EV_SYN, 0, 0));
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
    fn untypable_characters_are_named_and_nothing_is_typed() {
        let err = type_text("héllo €€").unwrap_err();
        assert_eq!(err, KeymapError::Untypable(vec!['é', '€']));
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
    }

    #[test]
    fn bad_combinations_are_refused() {
        assert_eq!(
            key_combos("ctrl+banana"),
            Err(KeymapError::UnknownKey("banana".into()))
        );
        assert!(matches!(
            key_combos("ctrl+"),
            Err(KeymapError::UnknownKey(_))
        ));
        assert!(matches!(key_combos("f13"), Err(KeymapError::UnknownKey(_))));
        assert_eq!(key_combos("  "), Err(KeymapError::Empty));
    }
}
