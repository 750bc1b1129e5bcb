//! The console surface in the window: a [`berth_surface::Surface`] (the guest's display drawn
//! on X11 past the renderer, through MIT-SHM) placed from iced's layout. The console widget
//! tells it where the picture's area is each time the window is drawn
//! ([`SurfaceHandle::place`], logical pixels in a scrolled pane, turned here into the window's
//! physical pixels) and hides it when it leaves the window's tree (the wizard opens, another
//! VM is selected). The VM's `DisplayUpdate` events wake its thread ([`SurfaceHandle::wake`],
//! from the connection, past the application).

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use berth_display::resample::Scaling;
use berth_surface::{Options, Placement, Rect};

/// The console widget's side of a surface: cheap to clone, compared by identity.
#[derive(Debug, Clone)]
pub struct SurfaceHandle {
    surface: berth_surface::SurfaceHandle,
    shared: Arc<Mutex<Shared>>,
}

/// What the widgets tell a surface, in the window's logical pixels.
#[derive(Debug, Default)]
struct Shared {
    /// The scrolled pane the console is in, where it is in the window.
    clip: Option<iced::Rectangle>,
    /// Physical pixels per logical one.
    scale: Option<f32>,
    /// The last placement sent (the widgets tell every redraw; only changes go on).
    last: Option<Placement>,
}

impl PartialEq for SurfaceHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// Where an `area` laid out in a scrolled pane (`viewport`: the pane's bounds moved by its
/// scroll offset, as a scrollable hands them to its content) is in the window, given where the
/// pane is (`clip`; none: the area is not scrolled), in physical pixels at `scale`.
pub fn placement(
    area: iced::Rectangle,
    viewport: iced::Rectangle,
    clip: Option<iced::Rectangle>,
    scale: f32,
    scaling: Scaling,
) -> Placement {
    let clip = clip.unwrap_or(viewport);
    let (dx, dy) = (viewport.x - clip.x, viewport.y - clip.y);
    let physical = |r: iced::Rectangle| {
        let (x, y) = ((r.x * scale).round(), (r.y * scale).round());
        Rect {
            x: x as i32,
            y: y as i32,
            // Edges rounded, not sizes: neighbouring areas meet without a gap.
            width: (((r.x + r.width) * scale).round() - x).max(0.0) as u32,
            height: (((r.y + r.height) * scale).round() - y).max(0.0) as u32,
        }
    };
    Placement {
        area: physical(iced::Rectangle {
            x: area.x - dx,
            y: area.y - dy,
            ..area
        }),
        clip: physical(clip),
        scaling,
    }
}

impl SurfaceHandle {
    fn shared(&self) -> Option<std::sync::MutexGuard<'_, Shared>> {
        self.shared.lock().ok()
    }

    /// The window's scale factor (physical pixels per logical one).
    pub fn set_scale(&self, scale: f32) {
        if let Some(mut shared) = self.shared() {
            shared.scale = Some(scale);
        }
    }

    /// The scrolled pane the console is in is at `bounds` in the window (none: the console is
    /// not in one).
    pub fn set_clip(&self, bounds: Option<iced::Rectangle>) {
        if let Some(mut shared) = self.shared() {
            shared.clip = bounds;
        }
    }

    /// The console's picture area was drawn at `area` within `viewport` (both as the widget
    /// got them): the picture goes there, scaled into it by `scaling`.
    pub fn place(&self, area: iced::Rectangle, viewport: iced::Rectangle, scaling: Scaling) {
        let Some(mut shared) = self.shared() else {
            return;
        };
        // Until the scale factor is known nothing is placed: a wrong guess would show the
        // picture at the wrong size for a frame.
        let Some(scale) = shared.scale else {
            return;
        };
        let placement = placement(area, viewport, shared.clip, scale, scaling);
        if shared.last != Some(placement) {
            shared.last = Some(placement);
            self.surface.place(Some(placement));
        }
    }

    /// The guest published a new frame: draw it (when its turn comes).
    pub fn wake(&self) {
        self.surface.wake();
    }

    /// The console left the window: the picture goes with it.
    pub fn hide(&self) {
        if let Some(mut shared) = self.shared()
            && shared.last.take().is_some()
        {
            self.surface.place(None);
        }
    }
}

/// A running console surface; dropping it ends its thread and removes its window.
#[derive(Debug)]
pub struct Surface {
    surface: berth_surface::Surface,
    shared: Arc<Mutex<Shared>>,
}

impl Surface {
    /// A surface in X11 window `parent` showing the framebuffer `fd`; why not, when the X
    /// server cannot take frames this way.
    pub fn open(parent: u32, fd: OwnedFd) -> Result<Surface, String> {
        let options = Options {
            label: "berth: console",
            started: None,
            // The console widget's own background is black.
            black_host: false,
        };
        Ok(Surface {
            surface: berth_surface::Surface::open(parent, fd, options)?,
            shared: Arc::default(),
        })
    }

    pub fn handle(&self) -> SurfaceHandle {
        SurfaceHandle {
            surface: self.surface.handle(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Why the surface stopped drawing, once it has.
    pub fn failure(&self) -> Option<String> {
        self.surface.failure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrolled_area_is_placed_where_it_is_seen() {
        use iced::Rectangle;
        // The pane at (251, 100) scrolled down by 60: its content's area at y 180 is seen at
        // y 120; at scale 2 everything doubles.
        let pane = Rectangle::new(
            iced::Point::new(251.0, 100.0),
            iced::Size::new(849.0, 600.0),
        );
        let viewport = Rectangle { y: 160.0, ..pane };
        let area = Rectangle::new(
            iced::Point::new(269.0, 180.0),
            iced::Size::new(813.0, 416.0),
        );
        assert_eq!(
            placement(area, viewport, Some(pane), 1.0, Scaling::Fill),
            Placement {
                area: Rect::new(269, 120, 813, 416),
                clip: Rect::new(251, 100, 849, 600),
                scaling: Scaling::Fill,
            }
        );
        assert_eq!(
            placement(area, viewport, Some(pane), 2.0, Scaling::Fill).area,
            Rect::new(538, 240, 1626, 832)
        );
        assert_eq!(
            placement(area, pane, None, 1.0, Scaling::Fill).area,
            Rect::new(269, 180, 813, 416),
            "not scrolled"
        );
    }
}
