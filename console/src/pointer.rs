//! Where the picture sits in the window and what the mouse does to the guest's tablet.
//!
//! The picture is scaled to fit the window with its aspect kept and centred (pixels'
//! `ScalingMode::Fill`), so a window resized to another shape gets bars on two sides; the
//! pointer over a bar is off the picture (`berth_api::input::tablet_position`) and moves
//! nothing in the guest.

use berth_api::input::button;

/// A guest mode smaller than this is shown scaled up by a whole factor so the window is usable.
const MIN_WINDOW: (u32, u32) = (640, 400);
/// The window size for a guest that has not set a mode yet.
const NO_MODE_WINDOW: (u32, u32) = (640, 480);
/// The monitor assumed when winit cannot tell (a typical laptop panel).
pub const TYPICAL_MONITOR: (u32, u32) = (1920, 1080);

/// The window's first (inner) size for a `guest` mode on a `monitor`: the guest's own size
/// when it fits in nine tenths of the monitor, scaled down with its aspect kept when it does not, and
/// scaled up by a whole factor when it is smaller than 640x400.
pub fn window_size(guest: (u32, u32), monitor: (u32, u32)) -> (u32, u32) {
    let (w, h) = guest;
    if w == 0 || h == 0 {
        return NO_MODE_WINDOW;
    }
    let max = (
        (monitor.0 as u64 * 9 / 10).max(1),
        (monitor.1 as u64 * 9 / 10).max(1),
    );
    let (w64, h64) = (w as u64, h as u64);
    if w64 > max.0 || h64 > max.1 {
        // Scale down: the largest size with the guest's aspect inside `max`.
        let scaled = if w64 * max.1 > h64 * max.0 {
            (max.0, (h64 * max.0 / w64).max(1))
        } else {
            ((w64 * max.1 / h64).max(1), max.1)
        };
        return (scaled.0 as u32, scaled.1 as u32);
    }
    // The smallest whole factor that makes the window at least 640x400, if the monitor has room.
    let wanted = MIN_WINDOW
        .0
        .div_ceil(w)
        .max(MIN_WINDOW.1.div_ceil(h))
        .max(1) as u64;
    let room = (max.0 / w64).min(max.1 / h64).max(1);
    let factor = wanted.min(room) as u32;
    (w * factor, h * factor)
}

/// A mouse button as the tablet's button bits ([`berth_api::input::button`]); 0 for buttons
/// the tablet lacks.
pub fn button_bit(button: winit::event::MouseButton) -> u8 {
    use winit::event::MouseButton;
    match button {
        MouseButton::Left => button::LEFT,
        MouseButton::Right => button::RIGHT,
        MouseButton::Middle => button::MIDDLE,
        _ => 0,
    }
}

/// How many pixels of a touchpad's smooth scrolling make one wheel click.
const PIXELS_PER_CLICK: f64 = 40.0;

/// Turns winit's wheel deltas into whole clicks (positive: away from the user), keeping the
/// remainder of smooth (touchpad) scrolling for the next delta.
#[derive(Debug, Default)]
pub struct Wheel {
    rest: f64,
}

impl Wheel {
    /// The clicks a delta adds up to, 0 while they stay below one.
    pub fn clicks(&mut self, delta: winit::event::MouseScrollDelta) -> i32 {
        use winit::event::MouseScrollDelta;
        self.rest += match delta {
            MouseScrollDelta::LineDelta(_, lines) => lines as f64,
            MouseScrollDelta::PixelDelta(p) => p.y / PIXELS_PER_CLICK,
        };
        let whole = self.rest.trunc();
        self.rest -= whole;
        whole.clamp(i32::MIN as f64, i32::MAX as f64) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use winit::dpi::PhysicalPosition;
    use winit::event::{MouseButton, MouseScrollDelta};

    #[test]
    fn a_mode_that_fits_is_shown_at_its_own_size() {
        assert_eq!(window_size((1280, 800), (1920, 1080)), (1280, 800));
        assert_eq!(window_size((640, 480), (1280, 800)), (640, 480));
    }

    #[test]
    fn a_mode_larger_than_the_screen_is_scaled_down_with_its_aspect() {
        // 90 % of 1280x800 is 1152x720; 1920x1080 (16:9) becomes 1152x648.
        assert_eq!(window_size((1920, 1080), (1280, 800)), (1152, 648));
        // Taller than wide: the height decides.
        assert_eq!(window_size((800, 1600), (1920, 1080)), (486, 972));
    }

    #[test]
    fn a_tiny_mode_is_scaled_up_by_a_whole_factor() {
        assert_eq!(window_size((64, 48), (1280, 800)), (640, 480));
        assert_eq!(window_size((320, 200), (1920, 1080)), (640, 400));
        // Not beyond the monitor.
        assert_eq!(window_size((64, 48), (300, 300)), (256, 192));
    }

    #[test]
    fn no_mode_yet_gets_a_plain_window() {
        assert_eq!(window_size((0, 0), (1920, 1080)), (640, 480));
    }

    #[test]
    fn buttons_are_the_tablet_bits() {
        assert_eq!(button_bit(MouseButton::Left), 1);
        assert_eq!(button_bit(MouseButton::Right), 2);
        assert_eq!(button_bit(MouseButton::Middle), 4);
        assert_eq!(button_bit(MouseButton::Back), 0);
    }

    #[test]
    fn wheel_lines_are_clicks_and_smooth_scrolling_adds_up() {
        let mut wheel = Wheel::default();
        assert_eq!(wheel.clicks(MouseScrollDelta::LineDelta(0.0, 1.0)), 1);
        assert_eq!(wheel.clicks(MouseScrollDelta::LineDelta(0.0, -2.0)), -2);
        let smooth = |y| MouseScrollDelta::PixelDelta(PhysicalPosition::new(0.0, y));
        assert_eq!(wheel.clicks(smooth(30.0)), 0);
        assert_eq!(wheel.clicks(smooth(30.0)), 1, "60 px: one click, 20 left");
        assert_eq!(wheel.clicks(smooth(20.0)), 1);
    }
}
