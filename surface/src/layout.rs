//! Where the picture goes: the area it is shown in and the part of the window it can be seen
//! through, in the window's physical pixels, and the picture's size and visible part there.

use berth_display::resample::Scaling;

/// A rectangle in the window's physical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub const fn new(x: i32, y: i32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    pub fn intersection(&self, other: &Rect) -> Option<Rect> {
        let left = self.x.max(other.x);
        let top = self.y.max(other.y);
        let right = (i64::from(self.x) + i64::from(self.width))
            .min(i64::from(other.x) + i64::from(other.width));
        let bottom = (i64::from(self.y) + i64::from(self.height))
            .min(i64::from(other.y) + i64::from(other.height));
        (right > i64::from(left) && bottom > i64::from(top)).then(|| Rect {
            x: left,
            y: top,
            width: (right - i64::from(left)) as u32,
            height: (bottom - i64::from(top)) as u32,
        })
    }
}

/// Where the picture's area is in the window, and the part of the window it can be seen
/// through (the scrolled pane it is in, or the window), in physical pixels; how the picture is
/// scaled into the area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub area: Rect,
    pub clip: Rect,
    pub scaling: Scaling,
}

/// Where a `display`-sized picture goes for a placement: scaled into the area with its aspect
/// kept, centred, and the part of it that can be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The scaled picture's size.
    pub picture: (u32, u32),
    /// The child window: the visible part of the picture, in the window's pixels.
    pub window: Rect,
    /// Where that part starts within the picture.
    pub offset: (u32, u32),
}

impl Layout {
    /// `None` when nothing of the picture can be seen (or the guest has no display yet).
    pub fn of(display: (u32, u32), placement: &Placement) -> Option<Layout> {
        let area = placement.area;
        if display.0 == 0 || display.1 == 0 || area.width == 0 || area.height == 0 {
            return None;
        }
        let picture = placement.scaling.size(display, (area.width, area.height));
        let whole = Rect {
            x: area.x + ((area.width - picture.0) / 2) as i32,
            y: area.y + ((area.height - picture.1) / 2) as i32,
            width: picture.0,
            height: picture.1,
        };
        let window = whole.intersection(&placement.clip)?;
        Some(Layout {
            picture,
            window,
            offset: ((window.x - whole.x) as u32, (window.y - whole.y) as u32),
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_is_centred_in_its_area() {
        // A 16:10 display in a wide area: bars left and right.
        let placement = Placement {
            area: Rect::new(300, 100, 813, 416),
            clip: Rect::new(250, 50, 900, 700),
            scaling: Scaling::Fill,
        };
        let layout = Layout::of((1280, 800), &placement).unwrap();
        assert_eq!(layout.picture, (665, 416));
        assert_eq!(layout.window, Rect::new(300 + 74, 100, 665, 416));
        assert_eq!(layout.offset, (0, 0));
    }

    #[test]
    fn the_vm_view_shows_a_display_that_fits_at_its_own_size() {
        let placement = Placement {
            area: Rect::new(0, 40, 1100, 680),
            clip: Rect::new(0, 40, 1100, 680),
            scaling: Scaling::Shrink,
        };
        let layout = Layout::of((640, 480), &placement).unwrap();
        assert_eq!(layout.picture, (640, 480));
        assert_eq!(layout.window, Rect::new(230, 40 + 100, 640, 480));
        let layout = Layout::of((1280, 800), &placement).unwrap();
        assert_eq!(layout.picture, (1088, 680), "too large: scaled down");
    }

    #[test]
    fn only_the_visible_part_is_shown() {
        // Scrolled up by 150 pixels: the top of the picture is under the toolbar.
        let placement = Placement {
            area: Rect::new(0, -50, 640, 400),
            clip: Rect::new(0, 100, 1000, 600),
            scaling: Scaling::Fill,
        };
        let layout = Layout::of((640, 400), &placement).unwrap();
        assert_eq!(layout.window, Rect::new(0, 100, 640, 250));
        assert_eq!(layout.offset, (0, 150));
    }

    #[test]
    fn nothing_shows_out_of_view_or_without_a_display() {
        let placement = Placement {
            area: Rect::new(0, 800, 640, 400),
            clip: Rect::new(0, 0, 1000, 700),
            scaling: Scaling::Fill,
        };
        assert_eq!(Layout::of((640, 400), &placement), None, "scrolled away");
        let visible = Placement {
            area: Rect::new(0, 0, 640, 400),
            ..placement
        };
        assert_eq!(Layout::of((0, 0), &visible), None, "no mode set yet");
        let empty = Placement {
            area: Rect::new(0, 0, 0, 400),
            ..placement
        };
        assert_eq!(Layout::of((640, 400), &empty), None);
    }
}
