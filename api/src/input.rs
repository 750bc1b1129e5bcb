//! The input contract: what a key, a pointer or a wheel turn is on its way from a window (or
//! `berthctl vm type`/`vm key`) through berthd and berth-vmm to the guest's virtio-input
//! keyboard and tablet. One place for the evdev codes, the tablet's range, the pointer's
//! mapping onto a letterboxed picture and the events each action becomes.
//!
//! - [`keys`]: physical keys by W3C `code` name → evdev key codes (the one key table);
//! - [`typing`]: text and key names (`vm type`, `vm key`) on a US layout, through that table.

pub mod keys;
pub mod typing;

/// evdev event types and codes (linux/input-event-codes.h) that Berth's devices report.
pub mod ev {
    pub const EV_SYN: u16 = 0x00;
    pub const EV_KEY: u16 = 0x01;
    pub const EV_REL: u16 = 0x02;
    pub const EV_ABS: u16 = 0x03;
    pub const EV_LED: u16 = 0x11;
    pub const EV_REP: u16 = 0x14;
    pub const SYN_REPORT: u16 = 0;
    pub const ABS_X: u16 = 0x00;
    pub const ABS_Y: u16 = 0x01;
    pub const REL_WHEEL: u16 = 0x08;
    pub const BTN_LEFT: u16 = 0x110;
    pub const BTN_RIGHT: u16 = 0x111;
    pub const BTN_MIDDLE: u16 = 0x112;
    pub const LED_NUML: u16 = 0;
    pub const LED_CAPSL: u16 = 1;
    pub const LED_SCROLLL: u16 = 2;
    /// The highest key code there is (KEY_MAX); 0 is KEY_RESERVED.
    pub const KEY_MAX: u16 = 0x2ff;
    /// The highest key code Berth's keyboard reports (KEY_MICMUTE).
    pub const KEY_MAX_USED: u16 = 248;
}

/// The tablet's axes run 0..=TABLET_MAX across the guest's display, whatever its size (the
/// guest scales): virtio-input's absolute range as Berth's tablet reports it.
pub const TABLET_MAX: u32 = 32767;

/// Tablet buttons as bits of a button state (`Request::VmPointer`'s `buttons`).
pub mod button {
    pub const LEFT: u8 = 1;
    pub const RIGHT: u8 = 2;
    pub const MIDDLE: u8 = 4;
    /// Every bit a button state may have.
    pub const ALL: u8 = LEFT | RIGHT | MIDDLE;
}

/// One evdev event as virtio-input carries it (type, code, value; the value's bits go to the
/// guest as its little-endian u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

impl InputEvent {
    pub const fn new(kind: u16, code: u16, value: i32) -> Self {
        InputEvent { kind, code, value }
    }

    /// SYN_REPORT: the events before it are one report.
    pub const fn report() -> Self {
        InputEvent::new(ev::EV_SYN, ev::SYN_REPORT, 0)
    }
}

/// Which of a VM's input devices events go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputDevice {
    /// Every key code, auto-repeat, the three lock LEDs.
    Keyboard,
    /// Absolute X/Y (0..=[`TABLET_MAX`]), left/right/middle buttons, the wheel.
    Tablet,
}

impl InputDevice {
    /// The device's name on berth-vmm's control channel.
    pub fn name(self) -> &'static str {
        match self {
            InputDevice::Keyboard => "keyboard",
            InputDevice::Tablet => "tablet",
        }
    }

    pub fn from_name(name: &str) -> Option<InputDevice> {
        match name {
            "keyboard" => Some(InputDevice::Keyboard),
            "tablet" => Some(InputDevice::Tablet),
            _ => None,
        }
    }

    /// Whether the device reports `event` (a guest is told which events each device has).
    pub fn reports(self, event: &InputEvent) -> bool {
        match (self, event.kind) {
            (_, ev::EV_SYN) => true,
            (InputDevice::Keyboard, ev::EV_KEY) => (1..=ev::KEY_MAX_USED).contains(&event.code),
            (InputDevice::Tablet, ev::EV_KEY) => {
                matches!(event.code, ev::BTN_LEFT | ev::BTN_RIGHT | ev::BTN_MIDDLE)
            }
            (InputDevice::Tablet, ev::EV_ABS) => matches!(event.code, ev::ABS_X | ev::ABS_Y),
            (InputDevice::Tablet, ev::EV_REL) => event.code == ev::REL_WHEEL,
            _ => false,
        }
    }
}

/// Why an input action cannot become events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{0} is not a key code (evdev key codes run 1..=767)")]
    NotAKey(u16),
    #[error(
        "the pointer runs 0..={TABLET_MAX} on each axis with buttons 0..=7 (got {x},{y} buttons {buttons})"
    )]
    OffTablet { x: u32, y: u32, buttons: u8 },
}

/// A key going down (`pressed`) or up, as one report.
pub fn key_events(code: u16, pressed: bool) -> Result<Vec<InputEvent>, InputError> {
    if code == 0 || code > ev::KEY_MAX {
        return Err(InputError::NotAKey(code));
    }
    Ok(vec![
        InputEvent::new(ev::EV_KEY, code, i32::from(pressed)),
        InputEvent::report(),
    ])
}

/// The tablet at `x`,`y` with `buttons` held, as one report: the position, then every button's
/// state (the guest's evdev drops the ones that did not change, so none is lost or repeated).
pub fn pointer_events(x: u32, y: u32, buttons: u8) -> Result<Vec<InputEvent>, InputError> {
    if x > TABLET_MAX || y > TABLET_MAX || buttons & !button::ALL != 0 {
        return Err(InputError::OffTablet { x, y, buttons });
    }
    // In range, so they fit an i32.
    let mut events = vec![
        InputEvent::new(ev::EV_ABS, ev::ABS_X, x as i32),
        InputEvent::new(ev::EV_ABS, ev::ABS_Y, y as i32),
    ];
    for (bit, code) in [
        (button::LEFT, ev::BTN_LEFT),
        (button::RIGHT, ev::BTN_RIGHT),
        (button::MIDDLE, ev::BTN_MIDDLE),
    ] {
        events.push(InputEvent::new(
            ev::EV_KEY,
            code,
            i32::from(buttons & bit != 0),
        ));
    }
    events.push(InputEvent::report());
    Ok(events)
}

/// A wheel turn of `clicks` (positive: away from the user), as one report.
pub fn wheel_events(clicks: i32) -> Vec<InputEvent> {
    vec![
        InputEvent::new(ev::EV_REL, ev::REL_WHEEL, clicks),
        InputEvent::report(),
    ]
}

/// Where `at` falls on the guest's tablet when a `picture`-sized display is shown in an
/// `area` scaled to fit with its aspect kept and centred (bars on two sides when the shapes
/// differ); `None` over a bar or outside. `at` and `area` in the same units (logical or
/// physical pixels), `at` from the area's top-left corner.
pub fn tablet_position(
    at: (f64, f64),
    area: (f64, f64),
    picture: (u32, u32),
) -> Option<(u32, u32)> {
    let (aw, ah) = area;
    let (pw, ph) = (f64::from(picture.0), f64::from(picture.1));
    if aw <= 0.0 || ah <= 0.0 || pw <= 0.0 || ph <= 0.0 {
        return None;
    }
    let scale = (aw / pw).min(ah / ph);
    tablet_position_shown(at, area, (pw * scale, ph * scale))
}

/// Where `at` falls on the guest's tablet when the display is drawn `shown` large, centred in
/// an `area` (all in the same units); `None` over the bars around it or outside.
pub fn tablet_position_shown(
    at: (f64, f64),
    area: (f64, f64),
    shown: (f64, f64),
) -> Option<(u32, u32)> {
    let (aw, ah) = area;
    let (w, h) = shown;
    if w <= 0.0 || h <= 0.0 {
        return None;
    }
    let (left, top) = ((aw - w) / 2.0, (ah - h) / 2.0);
    let (fx, fy) = ((at.0 - left) / w, (at.1 - top) / h);
    if !(0.0..=1.0).contains(&fx) || !(0.0..=1.0).contains(&fy) {
        return None;
    }
    let max = f64::from(TABLET_MAX);
    Some(((fx * max).round() as u32, (fy * max).round() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_become_one_report_each() {
        assert_eq!(
            key_events(30, true).unwrap(),
            [InputEvent::new(ev::EV_KEY, 30, 1), InputEvent::report()]
        );
        assert_eq!(key_events(0, true), Err(InputError::NotAKey(0)));
        assert_eq!(key_events(0x300, false), Err(InputError::NotAKey(0x300)));
        assert_eq!(
            pointer_events(100, TABLET_MAX, button::LEFT | button::MIDDLE).unwrap(),
            [
                InputEvent::new(ev::EV_ABS, ev::ABS_X, 100),
                InputEvent::new(ev::EV_ABS, ev::ABS_Y, 32767),
                InputEvent::new(ev::EV_KEY, ev::BTN_LEFT, 1),
                InputEvent::new(ev::EV_KEY, ev::BTN_RIGHT, 0),
                InputEvent::new(ev::EV_KEY, ev::BTN_MIDDLE, 1),
                InputEvent::report(),
            ]
        );
        assert!(pointer_events(TABLET_MAX + 1, 0, 0).is_err());
        assert!(pointer_events(0, 0, 8).is_err());
        assert_eq!(
            wheel_events(-1),
            [
                InputEvent::new(ev::EV_REL, ev::REL_WHEEL, -1),
                InputEvent::report()
            ]
        );
    }

    #[test]
    fn devices_report_only_their_own_events() {
        let kb = InputDevice::Keyboard;
        let tablet = InputDevice::Tablet;
        assert!(kb.reports(&InputEvent::new(ev::EV_KEY, 30, 1)));
        assert!(!kb.reports(&InputEvent::new(ev::EV_KEY, 0, 1)));
        assert!(!kb.reports(&InputEvent::new(ev::EV_ABS, ev::ABS_X, 1)));
        assert!(tablet.reports(&InputEvent::new(ev::EV_KEY, ev::BTN_LEFT, 1)));
        assert!(!tablet.reports(&InputEvent::new(ev::EV_KEY, 30, 1)));
        assert!(tablet.reports(&InputEvent::new(ev::EV_REL, ev::REL_WHEEL, -1)));
        assert!(tablet.reports(&InputEvent::report()));
        assert_eq!(InputDevice::from_name(kb.name()), Some(kb));
        assert_eq!(InputDevice::from_name(tablet.name()), Some(tablet));
        assert_eq!(InputDevice::from_name("mouse"), None);
    }

    #[test]
    fn the_pointer_maps_onto_the_letterboxed_picture() {
        // A square picture in a 2:1 area: bars left and right, 200 wide each.
        let (area, picture) = ((800.0, 400.0), (400, 400));
        assert_eq!(
            tablet_position((400.0, 200.0), area, picture),
            Some((16384, 16384))
        );
        assert_eq!(tablet_position((200.0, 0.0), area, picture), Some((0, 0)));
        assert_eq!(
            tablet_position((600.0, 400.0), area, picture),
            Some((32767, 32767))
        );
        assert_eq!(
            tablet_position((100.0, 200.0), area, picture),
            None,
            "over a bar"
        );
        assert_eq!(
            tablet_position((400.0, 401.0), area, picture),
            None,
            "below"
        );
        assert_eq!(
            tablet_position((1.0, 1.0), area, (0, 0)),
            None,
            "no picture"
        );
        assert_eq!(
            tablet_position((1.0, 1.0), (0.0, 10.0), picture),
            None,
            "no area"
        );
    }

    #[test]
    fn the_pointer_maps_onto_a_picture_shown_at_its_own_size() {
        // 640x480 at 1:1 in 1000x700: bars of 180 left and right, 110 above and below.
        let area = (1000.0, 700.0);
        let shown = (640.0, 480.0);
        assert_eq!(
            tablet_position_shown((180.0, 110.0), area, shown),
            Some((0, 0))
        );
        assert_eq!(
            tablet_position_shown((820.0, 590.0), area, shown),
            Some((32767, 32767))
        );
        assert_eq!(tablet_position_shown((179.0, 300.0), area, shown), None);
        assert_eq!(tablet_position_shown((5.0, 5.0), area, (0.0, 0.0)), None);
    }
}
