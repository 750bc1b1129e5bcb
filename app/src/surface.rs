//! The console surface: the guest's display drawn straight onto the Berth window on X11, past
//! the renderer. A child window of the Berth window, as large as the picture's visible part,
//! takes frames through MIT-SHM from a thread of its own, which reads the guest's framebuffer,
//! scales it once into shared memory and has the X server copy it: no image handle, no
//! renderer pass, no message through the application per frame.
//!
//! Why: iced's software renderer (tiny-skia, what it uses without a GPU) converts every pixel
//! of every new image and draws it through its floating-point pipeline; with the scaling on top
//! that cost the window 70 % of a core at 60 frames a second (README, performance). VirtualBox
//! and virt-viewer also draw a guest's display on a native surface of their own.
//!
//! The child window has an empty input shape: the pointer and the keyboard never see it, so
//! every event still reaches the Berth window (and the console widget under it) as before. The
//! console widget tells the surface where the picture's area is each time the window is drawn
//! ([`SurfaceHandle::place`]) and hides it when it leaves the window's tree (the wizard opens,
//! another VM is selected). The VM's `DisplayUpdate` events wake the thread
//! ([`SurfaceHandle::wake`], from the connection, past the application); a still display costs
//! nothing but a look every quarter second. Without X11 (Wayland), or when the X server lacks
//! MIT-SHM with file descriptors or SHAPE, or cannot map the window's memory (a remote
//! display), the window draws the display through the renderer instead.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_display::framebuffer::FramebufferReader;
use berth_display::gpu::Format;
use berth_display::resample::{self, Order, Scaling};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::Event;
use x11rb::protocol::shape::{self, ConnectionExt as _};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    self, ClipOrdering, ConfigureWindowAux, ConnectionExt as _, CreateGCAux, CreateWindowAux,
    EventMask, ImageFormat, ImageOrder, VisualClass, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use crate::data::console::FrameRate;

/// How long the surface waits for word of a new frame before it looks by itself (an update
/// event missed, the window exposed): a wait this long costs a still display nothing (a 4 ms
/// poll cost 2 % of a core here, in timer wake-ups alone).
const IDLE_LOOK: Duration = Duration::from_millis(250);

/// The least time between the starts of two frames drawn (at most ~83 a second): a guest
/// flushing faster than a display can show costs nothing more. Well below a 60 Hz frame
/// (16.7 ms), so each of a 60 Hz guest's frames, told a little late or early, is drawn.
const MIN_GAP: Duration = Duration::from_millis(12);

/// A rectangle in the window's physical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    fn intersection(&self, other: &Rect) -> Option<Rect> {
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

/// Where the console's picture area is in the window, and the part of the window it can be
/// seen through (the scrolled pane it is in), in physical pixels; how the picture is scaled into
/// the area.
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

/// What the surface's thread is told.
#[derive(Debug)]
enum Command {
    /// Show the picture here (`None`: hide it).
    Place(Option<Placement>),
    /// The guest published a frame (its `DisplayUpdate` event came).
    Wake,
    /// The surface is being dropped.
    Stop,
}

/// The console widget's side of a surface: cheap to clone, compared by identity.
#[derive(Debug, Clone)]
pub struct SurfaceHandle {
    commands: Sender<Command>,
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
            // A surface whose thread ended has nothing to show: the send may fail.
            let _ = self.commands.send(Command::Place(Some(placement)));
        }
    }

    /// The guest published a new frame: draw it (when its turn comes).
    pub fn wake(&self) {
        let _ = self.commands.send(Command::Wake);
    }

    /// The console left the window: the picture goes with it.
    pub fn hide(&self) {
        if let Some(mut shared) = self.shared()
            && shared.last.take().is_some()
        {
            let _ = self.commands.send(Command::Place(None));
        }
    }
}

/// A running console surface; dropping it ends its thread and removes its window.
pub struct Surface {
    handle: SurfaceHandle,
    failure: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Surface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Surface").finish_non_exhaustive()
    }
}

impl Surface {
    /// A surface in X11 window `parent` showing the framebuffer `fd`; why not, when the X
    /// server cannot take frames this way.
    pub fn open(parent: u32, fd: OwnedFd) -> Result<Surface, String> {
        let reader = FramebufferReader::open(fd).map_err(|e| e.to_string())?;
        let child = ChildWindow::create(parent).map_err(|e| format!("console surface: {e}"))?;
        let (commands, receiver) = mpsc::channel();
        let failure: Arc<Mutex<Option<String>>> = Arc::default();
        let report = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name("console-surface".into())
            .spawn(move || {
                if let Err(why) = present(child, reader, &receiver) {
                    eprintln!("berth: the console surface stopped: {why}");
                    if let Ok(mut failure) = report.lock() {
                        *failure = Some(why);
                    }
                }
            })
            .map_err(|e| format!("console surface: cannot start its thread: {e}"))?;
        Ok(Surface {
            handle: SurfaceHandle {
                commands,
                shared: Arc::default(),
            },
            failure,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> SurfaceHandle {
        self.handle.clone()
    }

    /// Why the surface stopped drawing, once it has.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

impl Drop for Surface {
    fn drop(&mut self) {
        // The widget tree may hold clones of the handle (so of the channel) a little longer:
        // the thread is told to stop rather than left to find the channel closed.
        let _ = self.handle.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            // At most one frame being drawn; its window goes with its X connection.
            let _ = thread.join();
        }
    }
}

/// The thread: waits for placements and frames, and draws each new frame once.
fn present(
    mut child: ChildWindow,
    mut reader: FramebufferReader,
    commands: &Receiver<Command>,
) -> Result<(), String> {
    let mut placement: Option<Placement> = None;
    // The frame and layout last drawn, and when.
    let mut drawn: Option<(u64, Layout)> = None;
    let mut last_draw: Option<Instant> = None;
    let mut rate = std::env::var_os("BERTH_CONSOLE_FPS").map(|_| FrameRate::new(Instant::now()));
    // Views of the framebuffer made (a view the guest raced is made again), for the report.
    let (mut views, mut frames) = (0u32, 0u32);
    // How long to wait for the next command: until a frame that came too soon is due.
    let mut wait = IDLE_LOOK;
    loop {
        let mut command = match commands.recv_timeout(wait) {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        while let Some(c) = command.take().or_else(|| commands.try_recv().ok()) {
            match c {
                Command::Place(p) => placement = p,
                Command::Wake => {}
                Command::Stop => return Ok(()),
            }
        }
        wait = IDLE_LOOK;
        let exposed = child.exposed().map_err(|e| e.to_string())?;
        let Some(placement) = placement else {
            child.hide().map_err(|e| e.to_string())?;
            drawn = None;
            continue;
        };
        let frame = reader.frame();
        let Ok((width, height, _, _)) = reader.geometry() else {
            // The writer is publishing for longer than the reader waits: look again soon.
            wait = MIN_GAP;
            continue;
        };
        let Some(layout) = Layout::of((width, height), &placement) else {
            child.hide().map_err(|e| e.to_string())?;
            drawn = None;
            continue;
        };
        let stale = drawn != Some((frame, layout));
        let since = last_draw.map(|at| at.elapsed());
        if stale && let Some(since) = since.filter(|&since| since < MIN_GAP) {
            // Too soon after the last: drawn when its turn comes (the newest frame by then).
            wait = MIN_GAP - since;
            continue;
        }
        if stale {
            // The gap is kept between starts: a frame that takes long to draw must not push
            // the next one out of its turn.
            let started = Instant::now();
            child
                .reserve(placement.area.width as usize * placement.area.height as usize * 4)
                .map_err(|e| e.to_string())?;
            let pixels = child.pixels();
            let viewed = reader
                .view_frame(|view| {
                    views += 1;
                    let Some(format) = Format::from_code(view.format()) else {
                        return Err(format!(
                            "the guest's display has an unknown format {}",
                            view.format()
                        ));
                    };
                    // The mode may have changed since the geometry was read: lay it out again.
                    let layout = Layout::of((view.width(), view.height()), &placement);
                    if let Some(layout) = layout {
                        resample::scale_into(view, format, layout.picture, Order::Bgrx, pixels);
                    }
                    Ok(layout)
                })
                .map_err(|e| e.to_string())?;
            let Some(layout) = viewed.value? else {
                continue;
            };
            child.show(&layout).map_err(|e| e.to_string())?;
            drawn = Some((viewed.frame, layout));
            last_draw = Some(started);
            frames += 1;
            if let Some(rate) = rate.as_mut()
                && let Some(fps) = rate.shown(Instant::now())
            {
                // For scripts/bench-display, as the renderer's path reports it.
                eprintln!(
                    "berth: console {fps:.1} frames/s at {}x{} (surface, {:.2} views a frame)",
                    viewed.width,
                    viewed.height,
                    f64::from(views) / f64::from(frames.max(1))
                );
                (views, frames) = (0, 0);
            }
        } else if exposed && let Some((_, layout)) = drawn {
            child.show(&layout).map_err(|e| e.to_string())?;
        }
    }
}

/// What can go wrong talking to the X server.
#[derive(Debug, thiserror::Error)]
enum X11Error {
    /// cannot connect to the X server: {0}
    #[error("cannot connect to the X server: {0}")]
    Connect(#[from] x11rb::errors::ConnectError),
    /// the X connection failed: {0}
    #[error("the X connection failed: {0}")]
    Connection(#[from] x11rb::errors::ConnectionError),
    /// the X server refused a request: {0}
    #[error("the X server refused a request: {0}")]
    Reply(#[from] x11rb::errors::ReplyError),
    /// the X server ran out of ids: {0}
    #[error("the X server ran out of ids: {0}")]
    Ids(#[from] x11rb::errors::ReplyOrIdError),
    /// the X server lacks what the surface needs
    #[error("the X server has no {0}")]
    Missing(&'static str),
    /// shared memory for the frames could not be made
    #[error("cannot make shared memory for the frames: {0}")]
    Memory(std::io::Error),
}

/// The child window, its graphics context and the shared memory frames are put from.
struct ChildWindow {
    conn: RustConnection,
    window: xproto::Window,
    gc: xproto::Gcontext,
    depth: u8,
    mapped: bool,
    /// Where the window is (not moved again when it stays).
    at: Option<Rect>,
    segment: Option<Segment>,
}

impl ChildWindow {
    fn create(parent: u32) -> Result<ChildWindow, X11Error> {
        let (conn, _) = RustConnection::connect(None)?;
        if conn
            .extension_information(shm::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Err(X11Error::Missing("MIT-SHM"));
        }
        let version = conn.shm_query_version()?.reply()?;
        if (version.major_version, version.minor_version) < (1, 2) {
            // 1.2 takes a file descriptor instead of a System V segment.
            return Err(X11Error::Missing("MIT-SHM 1.2 (file descriptors)"));
        }
        if conn
            .extension_information(shape::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Err(X11Error::Missing("SHAPE"));
        }
        let geometry = conn.get_geometry(parent)?.reply()?;
        let attributes = conn.get_window_attributes(parent)?.reply()?;
        let setup = conn.setup();
        let visual = setup
            .roots
            .iter()
            .flat_map(|screen| &screen.allowed_depths)
            .filter(|depth| depth.depth == geometry.depth)
            .flat_map(|depth| &depth.visuals)
            .find(|visual| visual.visual_id == attributes.visual)
            .ok_or(X11Error::Missing("visual of the Berth window"))?;
        let four_bytes = setup
            .pixmap_formats
            .iter()
            .any(|f| f.depth == geometry.depth && f.bits_per_pixel == 32);
        if visual.class != VisualClass::TRUE_COLOR
            || (visual.red_mask, visual.green_mask, visual.blue_mask) != (0xff_0000, 0xff00, 0xff)
            || setup.image_byte_order != ImageOrder::LSB_FIRST
            || !four_bytes
        {
            return Err(X11Error::Missing(
                "32-bit little-endian TrueColor pixels in the Berth window",
            ));
        }
        let window = conn.generate_id()?;
        // No background: the X server leaves what was drawn on an exposure (then redrawn)
        // rather than clearing it first, which would flash.
        conn.create_window(
            x11rb::COPY_FROM_PARENT as u8,
            window,
            parent,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new().event_mask(EventMask::EXPOSURE),
        )?;
        // An empty input shape: the pointer goes through to the Berth window.
        conn.shape_rectangles(
            shape::SO::SET,
            shape::SK::INPUT,
            ClipOrdering::UNSORTED,
            window,
            0,
            0,
            &[],
        )?;
        let gc = conn.generate_id()?;
        conn.create_gc(gc, window, &CreateGCAux::new().graphics_exposures(0))?;
        conn.flush()?;
        let mut child = ChildWindow {
            conn,
            window,
            gc,
            depth: geometry.depth,
            mapped: false,
            at: None,
            segment: None,
        };
        // A server that cannot map our memory (a remote display) refuses it here, while the
        // window can still fall back to the renderer at once.
        child.reserve(4096)?;
        Ok(child)
    }

    /// Whether the window was exposed (its pixels are to be put again) since the last look.
    fn exposed(&mut self) -> Result<bool, X11Error> {
        let mut exposed = false;
        while let Some(event) = self.conn.poll_for_event()? {
            if let Event::Expose(_) = event {
                exposed = true;
            }
        }
        Ok(exposed)
    }

    fn hide(&mut self) -> Result<(), X11Error> {
        if self.mapped {
            self.conn.unmap_window(self.window)?;
            self.conn.flush()?;
            self.mapped = false;
        }
        Ok(())
    }

    /// Shared memory of at least `len` bytes for the next picture.
    fn reserve(&mut self, len: usize) -> Result<(), X11Error> {
        if self.segment.as_ref().is_some_and(|s| s.len >= len) {
            return Ok(());
        }
        if let Some(old) = self.segment.take() {
            self.conn.shm_detach(old.id)?;
        }
        let memory = SharedMemory::new(len.max(1)).map_err(X11Error::Memory)?;
        let id = self.conn.generate_id()?;
        let fd = memory
            .fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(X11Error::Memory)?;
        self.conn.shm_attach_fd(id, fd, true)?.check()?;
        self.segment = Some(Segment {
            id,
            len: memory.map.len(),
            memory,
        });
        Ok(())
    }

    /// The shared memory to scale the next picture into (empty before [`Self::reserve`]).
    fn pixels(&mut self) -> &mut [u8] {
        self.segment
            .as_mut()
            .map_or(&mut [][..], |s| s.memory.bytes())
    }

    /// Moves the window to the layout's place, maps it, and has the X server copy the visible
    /// part of the picture in shared memory into it; returns once the copy is done (so the
    /// memory can be written again).
    fn show(&mut self, layout: &Layout) -> Result<(), X11Error> {
        let Some(segment) = &self.segment else {
            return Ok(());
        };
        let window = layout.window;
        if self.at != Some(window) {
            self.conn.configure_window(
                self.window,
                &ConfigureWindowAux::new()
                    .x(window.x)
                    .y(window.y)
                    .width(window.width)
                    .height(window.height),
            )?;
            self.at = Some(window);
        }
        if !self.mapped {
            self.conn.map_window(self.window)?;
            self.mapped = true;
        }
        let clamp = |v: u32| v.min(u32::from(u16::MAX)) as u16;
        self.conn
            .shm_put_image(
                self.window,
                self.gc,
                clamp(layout.picture.0),
                clamp(layout.picture.1),
                clamp(layout.offset.0),
                clamp(layout.offset.1),
                clamp(window.width),
                clamp(window.height),
                0,
                0,
                self.depth,
                ImageFormat::Z_PIXMAP.into(),
                false,
                segment.id,
                0,
            )?
            // A round trip: the server has copied the picture when it answers.
            .check()?;
        Ok(())
    }
}

/// A shared memory segment the X server has attached.
struct Segment {
    id: shm::Seg,
    len: usize,
    memory: SharedMemory,
}

/// A memfd mapped read-write, for frames the X server reads.
struct SharedMemory {
    fd: OwnedFd,
    map: berth_display::shm::Mapping,
}

impl SharedMemory {
    fn new(len: usize) -> std::io::Result<SharedMemory> {
        let fd = berth_display::shm::memfd(c"berth-console-surface", len, false)?;
        let map = berth_display::shm::Mapping::new(std::os::fd::AsFd::as_fd(&fd), len, true)?;
        Ok(SharedMemory { fd, map })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping holds `len` bytes for as long as `self` lives, and `&mut self`
        // makes this the only slice of it in the process. The X server reads the memory only
        // while a put is being processed, and every put waits for its answer before the memory
        // is handed out again.
        unsafe { std::slice::from_raw_parts_mut(self.map.ptr().as_ptr(), self.map.len()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: i32, y: i32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

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
                area: rect(269, 120, 813, 416),
                clip: rect(251, 100, 849, 600),
                scaling: Scaling::Fill,
            }
        );
        assert_eq!(
            placement(area, viewport, Some(pane), 2.0, Scaling::Fill).area,
            rect(538, 240, 1626, 832)
        );
        assert_eq!(
            placement(area, pane, None, 1.0, Scaling::Fill).area,
            rect(269, 180, 813, 416),
            "not scrolled"
        );
    }

    #[test]
    fn the_picture_is_centred_in_its_area() {
        // A 16:10 display in a wide area: bars left and right.
        let placement = Placement {
            area: rect(300, 100, 813, 416),
            clip: rect(250, 50, 900, 700),
            scaling: Scaling::Fill,
        };
        let layout = Layout::of((1280, 800), &placement).unwrap();
        assert_eq!(layout.picture, (665, 416));
        assert_eq!(layout.window, rect(300 + 74, 100, 665, 416));
        assert_eq!(layout.offset, (0, 0));
    }

    #[test]
    fn the_vm_view_shows_a_display_that_fits_at_its_own_size() {
        let placement = Placement {
            area: rect(0, 40, 1100, 680),
            clip: rect(0, 40, 1100, 680),
            scaling: Scaling::Shrink,
        };
        let layout = Layout::of((640, 480), &placement).unwrap();
        assert_eq!(layout.picture, (640, 480));
        assert_eq!(layout.window, rect(230, 40 + 100, 640, 480));
        let layout = Layout::of((1280, 800), &placement).unwrap();
        assert_eq!(layout.picture, (1088, 680), "too large: scaled down");
    }

    #[test]
    fn only_the_visible_part_is_shown() {
        // Scrolled up by 150 pixels: the top of the picture is under the toolbar.
        let placement = Placement {
            area: rect(0, -50, 640, 400),
            clip: rect(0, 100, 1000, 600),
            scaling: Scaling::Fill,
        };
        let layout = Layout::of((640, 400), &placement).unwrap();
        assert_eq!(layout.window, rect(0, 100, 640, 250));
        assert_eq!(layout.offset, (0, 150));
    }

    #[test]
    fn nothing_shows_out_of_view_or_without_a_display() {
        let placement = Placement {
            area: rect(0, 800, 640, 400),
            clip: rect(0, 0, 1000, 700),
            scaling: Scaling::Fill,
        };
        assert_eq!(Layout::of((640, 400), &placement), None, "scrolled away");
        let visible = Placement {
            area: rect(0, 0, 640, 400),
            ..placement
        };
        assert_eq!(Layout::of((0, 0), &visible), None, "no mode set yet");
        let empty = Placement {
            area: rect(0, 0, 0, 400),
            ..placement
        };
        assert_eq!(Layout::of((640, 400), &empty), None);
    }
}
