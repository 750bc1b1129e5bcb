//! A VM's display and keyboard as the window's console handles them, without a window: the VM's
//! framebuffer memfd (handed over by berthd) mapped read-only and polled for new frames, scaled
//! to the console's area, and the host's physical keys as the evdev codes the guest's
//! virtio-input keyboard reports.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use berth_display::framebuffer::FramebufferReader;
use berth_display::gpu::Format;
use berth_display::rate::FrameRate;
use berth_display::resample::{self, Scaling};
use iced::keyboard::key::Code;

use crate::connection::RoutedUpdates;
use crate::surface::{Surface, SurfaceHandle};

/// The least time between two frames read: the window shows at most ~66 a second however fast
/// the guest flushes (a frame it could not show would cost a scale and an upload). Less than a
/// 60 Hz frame (16.7 ms) on purpose: the wait for a frame that came early overshoots by up to a
/// millisecond, and at 16.6 ms that made every tenth frame of a 60 Hz guest miss its turn
/// (54-55 shown a second).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(15);

/// How the console sizes the guest's display in its area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sizing {
    /// Scaled to the area, up or down: the preview in the details pane.
    #[default]
    Preview,
    /// Pixel for pixel when it fits the area, scaled down when it does not: the VM view.
    Fit,
    /// Pixel for pixel always, the area scrolled: the VM view at "actual size".
    Actual,
}

impl Sizing {
    /// How the picture is scaled to the area it is given (at actual size, the area is the
    /// display's own size or larger).
    pub fn scaling(self) -> Scaling {
        match self {
            Sizing::Preview => Scaling::Fill,
            Sizing::Fit | Sizing::Actual => Scaling::Shrink,
        }
    }
}

/// What a poll of the console found.
#[derive(Debug)]
pub enum Polled {
    /// A new frame, to allocate and show.
    Picture(Picture),
    /// Nothing new, or a picture is being allocated.
    Nothing,
    /// A new frame came too soon after the last: poll again after this long.
    Later(Duration),
}

/// One whole frame of the guest's display, as RGBA bytes ready for an image handle: scaled to
/// the area it is shown in (the renderer then only copies it), or at the display's own size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub frame: u64,
    /// The picture's size.
    pub width: u32,
    pub height: u32,
    /// The guest's display size.
    pub display: (u32, u32),
    pub rgba: Vec<u8>,
}

/// A VM's display: the mapping of its framebuffer and the last frame handed out.
pub struct Feed {
    reader: FramebufferReader,
    last: Option<u64>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").field("last", &self.last).finish()
    }
}

impl Feed {
    /// Maps a framebuffer memfd read-only.
    pub fn open(fd: OwnedFd) -> Result<Feed, String> {
        let reader = FramebufferReader::open(fd).map_err(|e| e.to_string())?;
        Ok(Feed { reader, last: None })
    }

    /// Whether a frame was published since the last one handed out.
    pub fn changed(&self) -> bool {
        self.last != Some(self.reader.frame())
    }

    /// The frame published since the last call, if any, scaled into `area` (pixels) by
    /// `scaling` with its aspect kept, or at its own size without one; `Ok(None)` while nothing changed (a static
    /// display costs one atomic load a poll). Scaled straight out of the shared memory: no copy
    /// of the whole frame. A picture the guest redrew while it was scaled is still handed out,
    /// and the newer frame comes at the next poll.
    pub fn poll(
        &mut self,
        area: Option<(u32, u32)>,
        scaling: Scaling,
    ) -> Result<Option<Picture>, String> {
        if self.last == Some(self.reader.frame()) {
            return Ok(None);
        }
        let viewed = self
            .reader
            .view_frame(|view| -> Result<Option<Picture>, String> {
                let display = (view.width(), view.height());
                if display.0 == 0 || display.1 == 0 {
                    // The guest has not set a mode yet: nothing to show.
                    return Ok(None);
                }
                let format = Format::from_code(view.format()).ok_or_else(|| {
                    format!(
                        "the guest's display has an unknown format {}",
                        view.format()
                    )
                })?;
                let (width, height) = area.map_or(display, |area| scaling.size(display, area));
                Ok(Some(Picture {
                    frame: 0,
                    width,
                    height,
                    display,
                    rgba: resample::to_rgba(view, format, (width, height)),
                }))
            })
            .map_err(|e| e.to_string())?;
        self.last = Some(viewed.frame);
        Ok(viewed.value?.map(|picture| Picture {
            frame: viewed.frame,
            ..picture
        }))
    }

    /// Hands the current frame out again at the next poll (the area it is shown in changed).
    pub fn again(&mut self) {
        self.last = None;
    }

    /// The guest's display size now ((0, 0) before it set a mode).
    pub fn display_size(&self) -> Result<(u32, u32), String> {
        let (width, height, _, _) = self.reader.geometry().map_err(|e| e.to_string())?;
        Ok((width, height))
    }

    /// A surface in X11 window `parent` showing this framebuffer.
    pub fn surface(&self, parent: u32) -> Result<Surface, String> {
        let fd = self
            .reader
            .fd()
            .try_clone_to_owned()
            .map_err(|e| format!("console surface: {e}"))?;
        Surface::open(parent, fd)
    }
}

/// The console of the VM shown in the details pane: its feed, the picture on screen, and
/// whether it has the keyboard.
#[derive(Debug)]
pub struct Session {
    pub vm: String,
    feed: Feed,
    /// The picture on screen, allocated by the renderer before it is shown.
    pub shown: Option<iced_runtime::image::Allocation>,
    /// A newer picture is being allocated: polls wait for it rather than pile up.
    allocating: bool,
    /// When the last picture was read, and whether a later poll is already scheduled.
    last_read: Option<Instant>,
    waiting: bool,
    /// The console has the keyboard (clicked; Right Ctrl releases it).
    pub focused: bool,
    /// Size of the guest's display, for mapping the pointer.
    pub size: (u32, u32),
    /// The console's area in pixels (known once it has been laid out), pictures are scaled to.
    area: Option<(u32, u32)>,
    /// How pictures are sized into the area.
    sizing: Sizing,
    /// The shown picture was sized for the current area and sizing (the renderer need not
    /// scale it).
    pub fitted: bool,
    /// The area and sizing the picture being allocated was made for.
    allocating_for: Option<(Option<(u32, u32)>, Sizing)>,
    /// The tablet position and buttons last sent.
    position: (u32, u32),
    buttons: u8,
    /// Counts frames shown, when asked to report them.
    rate: Option<FrameRate>,
    /// The surface that draws the display over the console instead of the renderer, if any,
    /// and the routing of the VM's frame events to it.
    surface: Option<(Surface, RoutedUpdates)>,
}

impl Session {
    pub fn new(vm: String, fd: OwnedFd) -> Result<Session, String> {
        Ok(Session {
            vm,
            feed: Feed::open(fd)?,
            shown: None,
            allocating: false,
            last_read: None,
            waiting: false,
            focused: false,
            size: (0, 0),
            area: None,
            sizing: Sizing::default(),
            fitted: false,
            allocating_for: None,
            position: (0, 0),
            buttons: 0,
            rate: std::env::var_os("BERTH_CONSOLE_FPS").map(|_| FrameRate::new(Instant::now())),
            surface: None,
        })
    }

    /// Draws the display on a surface in X11 window `parent` from now on; why not, if it cannot
    /// (the renderer goes on drawing it).
    pub fn use_surface(&mut self, parent: u32) -> Result<(), String> {
        let surface = self.feed.surface(parent)?;
        let routed = RoutedUpdates::new(&self.vm, surface.handle());
        self.surface = Some((surface, routed));
        self.shown = None;
        Ok(())
    }

    /// The surface drawing the display, if one does.
    pub fn surface(&self) -> Option<SurfaceHandle> {
        self.surface.as_ref().map(|(surface, _)| surface.handle())
    }

    /// A new picture to allocate, unless one is being allocated, the display did not change, or
    /// the last one was read less than [`FRAME_INTERVAL`] before `now` (then: when to ask again).
    pub fn poll(&mut self, now: Instant) -> Result<Polled, String> {
        if let Some((surface, _)) = &self.surface {
            match surface.failure() {
                None => {
                    // The surface draws the frames; the window only maps the pointer (a mode
                    // being published right now is read at the next poll).
                    if let Ok(size) = self.feed.display_size() {
                        self.size = size;
                    }
                    return Ok(Polled::Nothing);
                }
                Some(why) => {
                    eprintln!("berth: the renderer draws the console from now on ({why})");
                    self.surface = None;
                    self.feed.again();
                }
            }
        }
        if self.allocating || self.waiting {
            return Ok(Polled::Nothing);
        }
        if let Some(due) = self.last_read.map(|at| at + FRAME_INTERVAL)
            && now < due
        {
            if !self.feed.changed() {
                return Ok(Polled::Nothing);
            }
            self.waiting = true;
            return Ok(Polled::Later(due - now));
        }
        match self.feed.poll(self.picture_area(), self.sizing.scaling())? {
            Some(picture) => {
                self.allocating = true;
                self.allocating_for = Some((self.area, self.sizing));
                self.last_read = Some(now);
                self.size = picture.display;
                Ok(Polled::Picture(picture))
            }
            None => Ok(Polled::Nothing),
        }
    }

    /// The area pictures are sized into: none at actual size (the display's own size).
    fn picture_area(&self) -> Option<(u32, u32)> {
        match self.sizing {
            Sizing::Actual => None,
            Sizing::Preview | Sizing::Fit => self.area,
        }
    }

    /// Pictures are sized by `sizing` from now on (the current frame again, if it changed).
    pub fn set_sizing(&mut self, sizing: Sizing) {
        if self.sizing != sizing {
            self.sizing = sizing;
            self.feed.again();
        }
    }

    /// The wait [`Polled::Later`] asked for is over.
    pub fn due(&mut self) {
        self.waiting = false;
    }

    /// The console is now `area` pixels: the next poll reads the display again, scaled to it.
    pub fn resized(&mut self, area: (u32, u32)) {
        if self.area != Some(area) {
            self.area = Some(area);
            self.feed.again();
        }
    }

    /// What the guest's tablet is told of `pointer`, if anything.
    pub fn tablet(&mut self, pointer: Pointer) -> Option<Tablet> {
        use berth_api::input::button;
        let bit = |pressed| match pressed {
            iced::mouse::Button::Left => button::LEFT,
            iced::mouse::Button::Right => button::RIGHT,
            iced::mouse::Button::Middle => button::MIDDLE,
            _ => 0,
        };
        match pointer {
            Pointer::Move { x, y } => self.position = (x, y),
            Pointer::Outside | Pointer::Wheel(0) => return None,
            Pointer::Button { button, pressed } => {
                if pressed {
                    self.buttons |= bit(button);
                } else {
                    self.buttons &= !bit(button);
                }
            }
            Pointer::Wheel(clicks) => return Some(Tablet::Wheel(clicks)),
        }
        Some(Tablet::At {
            x: self.position.0,
            y: self.position.1,
            buttons: self.buttons,
        })
    }

    /// The renderer has the picture (or failed to take it): show it, and poll again.
    pub fn allocated(&mut self, allocation: Option<iced_runtime::image::Allocation>) {
        self.allocating = false;
        if let Some(allocation) = allocation {
            self.shown = Some(allocation);
            self.fitted = self.allocating_for == Some((self.area, self.sizing));
            if let Some(rate) = self.rate.as_mut()
                && let Some(fps) = rate.shown(Instant::now())
            {
                // For scripts/bench-display: how many of the guest's frames the window shows.
                eprintln!(
                    "berth: console {fps:.1} frames/s at {}x{}",
                    self.size.0, self.size.1
                );
            }
        }
    }
}

/// What the guest's tablet is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tablet {
    /// The pointer is at `x`,`y` (0..=`TABLET_MAX`) with `buttons` held.
    At { x: u32, y: u32, buttons: u8 },
    /// The wheel turned.
    Wheel(i32),
}

/// What the mouse does over the console.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pointer {
    /// Moved to this tablet position (0..=`berth_api::input::TABLET_MAX` on each axis across the
    /// guest's screen).
    Move { x: u32, y: u32 },
    /// Moved over the console but off the picture (the bars beside a letterboxed screen).
    Outside,
    Button {
        button: iced::mouse::Button,
        pressed: bool,
    },
    /// Wheel clicks, positive away from the user.
    Wheel(i32),
}

/// The Linux evdev key code (input-event-codes.h) of a physical key: the guest's keyboard layout
/// then decides what character it is, as on real hardware. `None` for keys a PC keyboard lacks.
pub fn evdev_code(code: Code) -> Option<u16> {
    // iced names its variants after the W3C `code` names the shared table uses.
    berth_api::input::keys::evdev_code(&format!("{code:?}"))
}

/// The host key (VirtualBox's): while the console has the keyboard, Right Ctrl releases it and
/// is not sent to the guest.
pub const HOST_KEY: Code = Code::ControlRight;

#[cfg(test)]
mod tests {
    use super::*;
    use berth_display::framebuffer::{FramebufferWriter, Rect};

    #[test]
    fn frames_are_read_at_most_once_an_interval_and_a_late_one_is_not_lost() {
        let mut writer = FramebufferWriter::new(2, 1, Format::B8G8R8X8 as u32).unwrap();
        let fd = writer.fd().try_clone_to_owned().unwrap();
        let mut session = Session::new("vm".into(), fd).unwrap();
        let mut draw = |value: u8| {
            writer
                .update(Rect::new(0, 0, 2, 1), &[value; 8], 8)
                .unwrap();
        };
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        draw(1);
        assert!(matches!(session.poll(at(0)), Ok(Polled::Picture(_))));
        assert!(
            matches!(session.poll(at(1)), Ok(Polled::Nothing)),
            "one picture allocated at a time"
        );
        session.allocated(None);
        assert!(
            matches!(session.poll(at(2)), Ok(Polled::Nothing)),
            "unchanged"
        );
        draw(2);
        let Ok(Polled::Later(wait)) = session.poll(at(5)) else {
            panic!("a frame 5 ms after the last waits");
        };
        assert!(
            wait <= FRAME_INTERVAL - Duration::from_millis(5),
            "{wait:?}"
        );
        draw(3);
        assert!(
            matches!(session.poll(at(6)), Ok(Polled::Nothing)),
            "a later poll is already scheduled"
        );
        session.due();
        let Ok(Polled::Picture(picture)) = session.poll(at(17)) else {
            panic!("the frame is read once the interval is over");
        };
        assert_eq!(
            picture.rgba[0], 3,
            "the newest frame, not the one that came early"
        );
    }

    #[test]
    fn a_new_frame_comes_once_as_rgba() {
        // B8G8R8X8 (what Linux's virtio-gpu driver uses): bytes B, G, R, X.
        let mut writer = FramebufferWriter::new(2, 1, Format::B8G8R8X8 as u32).unwrap();
        let fd = writer.fd().try_clone_to_owned().unwrap();
        let mut feed = Feed::open(fd).unwrap();
        writer
            .update(
                Rect {
                    x: 0,
                    y: 0,
                    width: 2,
                    height: 1,
                },
                &[0x10, 0x20, 0x30, 0x00, 0xff, 0x00, 0x00, 0x00],
                8,
            )
            .unwrap();
        let picture = feed
            .poll(None, Scaling::Fill)
            .unwrap()
            .expect("a new frame");
        assert_eq!((picture.width, picture.height), (2, 1));
        assert_eq!(
            picture.rgba,
            [0x30, 0x20, 0x10, 0xff, 0x00, 0x00, 0xff, 0xff],
            "red and blue swapped into place, opaque"
        );
        assert_eq!(
            feed.poll(None, Scaling::Fill).unwrap(),
            None,
            "an unchanged display is not sent again"
        );
        writer
            .update(
                Rect {
                    x: 1,
                    y: 0,
                    width: 1,
                    height: 1,
                },
                // The source shares the frame's origin: the pixel at x = 1 is its second.
                &[0, 0, 0, 0, 0x00, 0xff, 0x00, 0x00],
                8,
            )
            .unwrap();
        let next = feed.poll(None, Scaling::Fill).unwrap().expect("the update");
        assert_eq!(&next.rgba[4..], [0x00, 0xff, 0x00, 0xff]);
        assert!(next.frame > picture.frame);
    }

    /// A session of a 64x40 display the guest has drawn once (the writer keeps it alive).
    fn session_with_a_frame() -> (FramebufferWriter, Session) {
        let mut writer = FramebufferWriter::new(64, 40, Format::B8G8R8X8 as u32).unwrap();
        let fd = writer.fd().try_clone_to_owned().unwrap();
        let session = Session::new("vm".into(), fd).unwrap();
        writer
            .update(Rect::new(0, 0, 64, 40), &[0x40; 64 * 40 * 4], 64 * 4)
            .unwrap();
        (writer, session)
    }

    #[test]
    fn pictures_fit_the_area_and_a_new_area_shows_the_frame_again() {
        let (_writer, mut session) = session_with_a_frame();
        let start = Instant::now();
        let Ok(Polled::Picture(first)) = session.poll(start) else {
            panic!("the first frame");
        };
        assert_eq!(
            (first.width, first.height, first.display),
            (64, 40, (64, 40)),
            "no area known yet: the display's own size"
        );
        session.allocated(None);
        session.resized((100, 30));
        let later = start + FRAME_INTERVAL;
        let Ok(Polled::Picture(fitted)) = session.poll(later) else {
            panic!("the same frame again, for the new area");
        };
        assert_eq!((fitted.width, fitted.height), (48, 30), "aspect 1.6 kept");
        assert_eq!(fitted.frame, first.frame);
        assert_eq!(fitted.rgba.len(), 48 * 30 * 4);
        assert_eq!(
            session.size,
            (64, 40),
            "the pointer maps onto the guest's display"
        );
        session.allocated(None);
        session.resized((100, 30));
        assert!(
            matches!(session.poll(later + FRAME_INTERVAL), Ok(Polled::Nothing)),
            "the same area again changes nothing"
        );
    }

    #[test]
    fn the_vm_view_shows_a_display_that_fits_pixel_for_pixel() {
        let (_writer, mut session) = session_with_a_frame();
        let mut at = Instant::now();
        let mut next = |session: &mut Session| {
            at += FRAME_INTERVAL;
            let Ok(Polled::Picture(picture)) = session.poll(at) else {
                panic!("a picture");
            };
            session.allocated(None);
            (picture.width, picture.height)
        };
        session.resized((200, 100));
        assert_eq!(next(&mut session), (160, 100), "the preview fills the area");
        session.set_sizing(Sizing::Fit);
        assert_eq!(next(&mut session), (64, 40), "fits: its own size");
        session.resized((32, 40));
        assert_eq!(next(&mut session), (32, 20), "too large: scaled down");
        session.set_sizing(Sizing::Actual);
        assert_eq!(
            next(&mut session),
            (64, 40),
            "actual size, whatever the area"
        );
    }

    #[test]
    fn the_mouse_becomes_the_tablet_position_buttons_and_wheel() {
        let writer = FramebufferWriter::new(2, 1, Format::B8G8R8X8 as u32).unwrap();
        let fd = writer.fd().try_clone_to_owned().unwrap();
        let mut session = Session::new("vm".into(), fd).unwrap();
        assert_eq!(
            session.tablet(Pointer::Move { x: 10, y: 20 }),
            Some(Tablet::At {
                x: 10,
                y: 20,
                buttons: 0
            })
        );
        let press = |button, pressed| Pointer::Button { button, pressed };
        assert_eq!(
            session.tablet(press(iced::mouse::Button::Left, true)),
            Some(Tablet::At {
                x: 10,
                y: 20,
                buttons: 1
            })
        );
        assert_eq!(
            session.tablet(press(iced::mouse::Button::Right, true)),
            Some(Tablet::At {
                x: 10,
                y: 20,
                buttons: 3
            }),
            "every button's state each time"
        );
        assert_eq!(
            session.tablet(press(iced::mouse::Button::Left, false)),
            Some(Tablet::At {
                x: 10,
                y: 20,
                buttons: 2
            })
        );
        assert_eq!(session.tablet(Pointer::Outside), None, "off the picture");
        assert_eq!(session.tablet(Pointer::Wheel(0)), None);
        assert_eq!(session.tablet(Pointer::Wheel(-2)), Some(Tablet::Wheel(-2)));
    }

    #[test]
    fn keys_map_to_evdev_codes() {
        assert_eq!(evdev_code(Code::KeyA), Some(30));
        assert_eq!(evdev_code(Code::Enter), Some(28));
        assert_eq!(evdev_code(Code::F2), Some(60));
        assert_eq!(evdev_code(Code::ControlLeft), Some(29));
        assert_eq!(evdev_code(Code::ArrowDown), Some(108));
        assert_eq!(evdev_code(Code::Fn), None);
    }
}
