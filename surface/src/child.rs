//! The child window on the X server: its graphics context and the shared memory frames are
//! put from.

use std::os::fd::{AsFd, OwnedFd};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::Event;
use x11rb::protocol::shape::{self, ConnectionExt as _};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    self, ChangeWindowAttributesAux, ClipOrdering, ConfigureWindowAux, ConnectionExt as _,
    CreateGCAux, CreateWindowAux, EventMask, ImageFormat, ImageOrder, VisualClass, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use crate::layout::{Layout, Rect};

/// What can go wrong talking to the X server.
#[derive(Debug, thiserror::Error)]
pub enum X11Error {
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
pub struct ChildWindow {
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
    pub fn create(parent: u32) -> Result<ChildWindow, X11Error> {
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
            .ok_or(X11Error::Missing("visual of the host window"))?;
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
                "32-bit little-endian TrueColor pixels in the host window",
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

    /// Makes window `parent` black where nothing covers it (the server paints its background
    /// on every exposure and resize).
    pub fn black_parent(&self, parent: u32) -> Result<(), X11Error> {
        let black = self.conn.setup().roots.first().map_or(0, |s| s.black_pixel);
        self.conn.change_window_attributes(
            parent,
            &ChangeWindowAttributesAux::new().background_pixel(black),
        )?;
        self.conn.clear_area(false, parent, 0, 0, 0, 0)?;
        self.conn.flush()?;
        Ok(())
    }

    /// Whether the window was exposed (its pixels are to be put again) since the last look.
    pub fn exposed(&mut self) -> Result<bool, X11Error> {
        let mut exposed = false;
        while let Some(event) = self.conn.poll_for_event()? {
            if let Event::Expose(_) = event {
                exposed = true;
            }
        }
        Ok(exposed)
    }

    pub fn hide(&mut self) -> Result<(), X11Error> {
        if self.mapped {
            self.conn.unmap_window(self.window)?;
            self.conn.flush()?;
            self.mapped = false;
        }
        Ok(())
    }

    /// Shared memory of at least `len` bytes for the next picture.
    pub fn reserve(&mut self, len: usize) -> Result<(), X11Error> {
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
    pub fn pixels(&mut self) -> &mut [u8] {
        self.segment
            .as_mut()
            .map_or(&mut [][..], |s| s.memory.bytes())
    }

    /// Moves the window to the layout's place, maps it, and has the X server copy the visible
    /// part of the picture in shared memory into it; returns once the copy is done (so the
    /// memory can be written again).
    pub fn show(&mut self, layout: &Layout) -> Result<(), X11Error> {
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
