//! The virtio-gpu 2D command processor (virtio 1.2 §5.7), independent of the transport.
//!
//! The transport (virtio-mmio in `vmm-backend`) hands it descriptor chains from the control
//! queue (0) and the cursor queue (1). Every request is answered; a request the guest gets
//! wrong gets the matching `VIRTIO_GPU_RESP_ERR_*`, never a panic. Host memory spent on behalf
//! of the guest is bounded by [`GpuConfig::max_resource_bytes`] and [`MAX_RESOURCES`].
//!
//! Commands are carried out synchronously, so a fenced request is complete when its response is
//! written: the response simply echoes the fence.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use virtio_queue::{DescriptorChain, Queue, QueueT, Reader, Writer};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend as _};

use crate::GuestMemory;
use crate::framebuffer::{self, FramebufferWriter, MAX_DIMENSION, Rect};

mod boot_screen;

pub use boot_screen::{BootScreenState, GuestFramebuffer, GuestFramebufferError};

/// Virtio device ID of a GPU.
pub const DEVICE_TYPE_GPU: u32 = 16;
/// `VIRTIO_GPU_F_EDID`: the device answers GET_EDID.
pub const VIRTIO_GPU_F_EDID: u64 = 1 << 1;
/// `VIRTIO_GPU_EVENT_DISPLAY`: the display configuration changed; the driver should ask again.
pub const VIRTIO_GPU_EVENT_DISPLAY: u32 = 1;
/// Scanouts this device has.
pub const NUM_SCANOUTS: u32 = 1;
/// The most scanouts the protocol describes (the display info answer always has this many).
const MAX_SCANOUTS: usize = 16;
/// Resources a guest may hold at once (bounds the map and the per-resource bookkeeping).
pub const MAX_RESOURCES: usize = 4096;
/// Backing entries one ATTACH_BACKING may carry (Linux uses one per page run; QEMU's limit).
pub const MAX_BACKING_ENTRIES: u32 = 16384;
/// The cursor image is always 64x64.
pub const CURSOR_SIZE: u32 = 64;

/// The control header every request and response starts with.
pub const HEADER_LEN: usize = 24;
/// The largest request read: ATTACH_BACKING with the most entries. Anything longer is refused
/// before it is copied out of guest memory.
pub const MAX_REQUEST_LEN: usize = HEADER_LEN + 8 + MAX_BACKING_ENTRIES as usize * 16;

/// Command and response types (virtio 1.2 §5.7.6.7).
pub mod cmd {
    pub const GET_DISPLAY_INFO: u32 = 0x0100;
    pub const RESOURCE_CREATE_2D: u32 = 0x0101;
    pub const RESOURCE_UNREF: u32 = 0x0102;
    pub const SET_SCANOUT: u32 = 0x0103;
    pub const RESOURCE_FLUSH: u32 = 0x0104;
    pub const TRANSFER_TO_HOST_2D: u32 = 0x0105;
    pub const RESOURCE_ATTACH_BACKING: u32 = 0x0106;
    pub const RESOURCE_DETACH_BACKING: u32 = 0x0107;
    pub const GET_CAPSET_INFO: u32 = 0x0108;
    pub const GET_CAPSET: u32 = 0x0109;
    pub const GET_EDID: u32 = 0x010a;
    pub const UPDATE_CURSOR: u32 = 0x0300;
    pub const MOVE_CURSOR: u32 = 0x0301;

    pub const RESP_OK_NODATA: u32 = 0x1100;
    pub const RESP_OK_DISPLAY_INFO: u32 = 0x1101;
    pub const RESP_OK_EDID: u32 = 0x1104;
    pub const RESP_ERR_UNSPEC: u32 = 0x1200;
    pub const RESP_ERR_OUT_OF_MEMORY: u32 = 0x1201;
    pub const RESP_ERR_INVALID_SCANOUT_ID: u32 = 0x1202;
    pub const RESP_ERR_INVALID_RESOURCE_ID: u32 = 0x1203;
    pub const RESP_ERR_INVALID_CONTEXT_ID: u32 = 0x1204;
    pub const RESP_ERR_INVALID_PARAMETER: u32 = 0x1205;

    /// `VIRTIO_GPU_FLAG_FENCE` in the header's flags.
    pub const FLAG_FENCE: u32 = 1;
}

/// The 2D pixel formats (virtio 1.2 §5.7.6.8), all 4 bytes a pixel; the name gives the byte
/// order in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Format {
    B8G8R8A8 = 1,
    B8G8R8X8 = 2,
    A8R8G8B8 = 3,
    X8R8G8B8 = 4,
    R8G8B8A8 = 67,
    X8B8G8R8 = 68,
    A8B8G8R8 = 121,
    R8G8B8X8 = 134,
}

impl Format {
    /// The format for a virtio-gpu format code, if it is one of the 2D formats.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => Format::B8G8R8A8,
            2 => Format::B8G8R8X8,
            3 => Format::A8R8G8B8,
            4 => Format::X8R8G8B8,
            67 => Format::R8G8B8A8,
            68 => Format::X8B8G8R8,
            121 => Format::A8B8G8R8,
            134 => Format::R8G8B8X8,
            _ => return None,
        })
    }

    /// Byte positions of red, green, blue and (if any) alpha within a pixel.
    pub(crate) fn layout(self) -> ([usize; 3], Option<usize>) {
        match self {
            Format::B8G8R8A8 => ([2, 1, 0], Some(3)),
            Format::B8G8R8X8 => ([2, 1, 0], None),
            Format::A8R8G8B8 => ([1, 2, 3], Some(0)),
            Format::X8R8G8B8 => ([1, 2, 3], None),
            Format::R8G8B8A8 => ([0, 1, 2], Some(3)),
            Format::X8B8G8R8 => ([3, 2, 1], None),
            Format::A8B8G8R8 => ([3, 2, 1], Some(0)),
            Format::R8G8B8X8 => ([0, 1, 2], None),
        }
    }

    /// Converts `pixels` of this format to RGBA in place (opaque where the format has no
    /// alpha): what a window uploads into an `Rgba8Unorm` texture.
    pub fn to_rgba_in_place(self, pixels: &mut [u8]) {
        let ([r, g, b], a) = self.layout();
        for px in pixels.chunks_exact_mut(4) {
            let out = [px[r], px[g], px[b], a.map_or(0xff, |a| px[a])];
            px.copy_from_slice(&out);
        }
    }
}

/// What the device tells the host side (the window) about the display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplayEvent {
    /// The scanout changed mode: the framebuffer now has this geometry (generation `generation`).
    Mode {
        width: u32,
        height: u32,
        format: u32,
        generation: u32,
    },
    /// The guest disabled the scanout (the display is blank).
    Disabled,
    /// Pixels in `rect` changed; `frame` is the framebuffer frame that holds them.
    Damage { rect: Rect, frame: u64 },
    /// The cursor image changed: 64x64 RGBA pixels and the hot spot, or `None` to hide it.
    Cursor {
        image: Option<Vec<u8>>,
        hot_x: u32,
        hot_y: u32,
        x: u32,
        y: u32,
    },
    /// The cursor moved.
    CursorMove { x: u32, y: u32 },
}

/// Where display events go.
pub type EventSink = Box<dyn FnMut(DisplayEvent) + Send>;

/// Errors creating the device.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum Error {
    /// The display mode {width}x{height} is not possible (each side 1..=4095)
    BadMode { width: u32, height: u32 },
    /// Cannot create the framebuffer: {0}
    Framebuffer(#[from] framebuffer::Error),
}

/// How the device is set up.
#[derive(Debug, Clone, Copy)]
pub struct GpuConfig {
    /// The mode the display reports (GET_DISPLAY_INFO, the EDID's preferred timing).
    pub width: u32,
    pub height: u32,
    /// Cap on the host memory all resources together may take.
    pub max_resource_bytes: u64,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            width: 1280,
            height: 800,
            max_resource_bytes: 256 << 20,
        }
    }
}

/// A request's answer: the response type and its body after the header.
struct Response {
    kind: u32,
    body: Vec<u8>,
}

impl Response {
    fn ok() -> Self {
        Response::err(cmd::RESP_OK_NODATA)
    }
    fn err(kind: u32) -> Self {
        Response {
            kind,
            body: Vec::new(),
        }
    }
}

type CmdResult = Result<Response, u32>;

struct Resource {
    width: u32,
    height: u32,
    format: Format,
    /// The host copy, `width * 4` bytes a row.
    pixels: Vec<u8>,
    /// Guest memory the guest attached: (address, length) runs, validated in guest RAM.
    backing: Vec<(u64, u32)>,
    /// `starts[i]` is the byte offset of `backing[i]` within the backing.
    starts: Vec<u64>,
    backing_len: u64,
}

impl Resource {
    fn stride(&self) -> usize {
        self.width as usize * 4
    }

    /// Host bytes this resource costs, for the memory cap.
    fn cost(&self) -> u64 {
        self.pixels.len() as u64 + self.backing.len() as u64 * 16
    }

    /// Copies `out.len()` bytes of the backing at `offset`; false if that runs past its end or
    /// guest memory refused.
    fn read_backing(&self, mem: &GuestMemory, mut offset: u64, out: &mut [u8]) -> bool {
        let mut done = 0usize;
        // The run holding `offset`: the last whose start is <= offset.
        let mut i = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        while done < out.len() {
            let (Some(&(addr, len)), Some(&start)) = (self.backing.get(i), self.starts.get(i))
            else {
                return false;
            };
            let within = offset - start;
            if within >= u64::from(len) {
                i += 1;
                continue;
            }
            // Both fit in usize: `len` is a u32.
            let n = ((u64::from(len) - within) as usize).min(out.len() - done);
            if mem
                .read_slice(&mut out[done..done + n], GuestAddress(addr + within))
                .is_err()
            {
                return false;
            }
            done += n;
            offset += n as u64;
            i += 1;
        }
        true
    }
}

#[derive(Debug, Clone, Copy)]
struct Scanout {
    resource_id: u32,
    rect: Rect,
}

/// The virtio-gpu 2D device model.
pub struct Gpu {
    config: GpuConfig,
    resources: BTreeMap<u32, Resource>,
    resource_bytes: u64,
    scanout: Option<Scanout>,
    framebuffer: FramebufferWriter,
    events: Option<EventSink>,
    events_read: u32,
    /// What the screen shows before the driver's scanout.
    boot_screen: boot_screen::BootScreen,
}

/// Little-endian field readers over a request already known to be long enough; a short slice
/// reads as zero rather than panicking.
fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn rect_at(b: &[u8], at: usize) -> Rect {
    Rect::new(
        le32(b, at),
        le32(b, at + 4),
        le32(b, at + 8),
        le32(b, at + 12),
    )
}

fn need(body: &[u8], len: usize) -> Result<(), u32> {
    if body.len() < len {
        Err(cmd::RESP_ERR_UNSPEC)
    } else {
        Ok(())
    }
}

impl Gpu {
    /// A GPU whose display reports `config`'s mode. The framebuffer starts in that mode, black.
    pub fn new(config: GpuConfig) -> Result<Self, Error> {
        check_mode(config.width, config.height)?;
        let framebuffer =
            FramebufferWriter::new(config.width, config.height, Format::B8G8R8X8 as u32)?;
        Ok(Gpu {
            config,
            resources: BTreeMap::new(),
            resource_bytes: 0,
            scanout: None,
            framebuffer,
            events: None,
            events_read: 0,
            boot_screen: boot_screen::BootScreen::Waiting,
        })
    }

    /// The feature bits the device offers besides VERSION_1.
    pub fn features(&self) -> u64 {
        VIRTIO_GPU_F_EDID
    }

    /// The shared framebuffer (its fd goes to the window).
    pub fn framebuffer(&self) -> &FramebufferWriter {
        &self.framebuffer
    }

    /// The firmware set up `framebuffer` in guest RAM: the screen shows it (at each
    /// [`Gpu::refresh_boot_screen`]) until the driver shows a scanout. Ignored while the driver
    /// shows one.
    pub fn show_boot_framebuffer(
        &mut self,
        framebuffer: GuestFramebuffer,
    ) -> Result<(), GuestFramebufferError> {
        framebuffer.check()?;
        if self.scanout.is_none() {
            self.boot_screen = boot_screen::BootScreen::Showing {
                framebuffer,
                seen: Vec::new(),
                fresh: Vec::new(),
            };
        }
        Ok(())
    }

    /// Whether the screen shows the firmware's framebuffer now.
    pub fn boot_screen_shown(&self) -> bool {
        matches!(self.boot_screen, boot_screen::BootScreen::Showing { .. })
    }

    /// Publishes what changed in the firmware's framebuffer since the last look.
    pub fn refresh_boot_screen(&mut self, mem: &GuestMemory) -> BootScreenState {
        let (framebuffer, mut seen, mut fresh) = match &mut self.boot_screen {
            boot_screen::BootScreen::Waiting => return BootScreenState::Waiting,
            boot_screen::BootScreen::Over => return BootScreenState::Over,
            boot_screen::BootScreen::Showing {
                framebuffer,
                seen,
                fresh,
            } => (*framebuffer, std::mem::take(seen), std::mem::take(fresh)),
        };
        let format = Format::B8G8R8X8 as u32;
        if self.framebuffer.mode() != (framebuffer.width, framebuffer.height, format) {
            if self
                .framebuffer
                .resize(framebuffer.width, framebuffer.height, format)
                .is_err()
            {
                self.boot_screen = boot_screen::BootScreen::Over;
                return BootScreenState::Over;
            }
            // A new mode starts black: every row is news.
            seen.clear();
            let event = boot_screen::mode_event(&framebuffer, self.framebuffer.generation());
            self.emit(event);
        }
        if !boot_screen::read(mem, &framebuffer, &mut fresh) {
            // Not (or no longer) in guest RAM.
            self.boot_screen = boot_screen::BootScreen::Over;
            return BootScreenState::Over;
        }
        let changed = boot_screen::changed_rows(&framebuffer, &fresh, &seen);
        if let Some(rect) = changed {
            if self
                .framebuffer
                .update(rect, &fresh, framebuffer.stride as usize)
                .is_ok()
            {
                let frame = self.framebuffer.frame();
                self.emit(DisplayEvent::Damage { rect, frame });
            }
            std::mem::swap(&mut seen, &mut fresh);
        }
        self.boot_screen = boot_screen::BootScreen::Showing {
            framebuffer,
            seen,
            fresh,
        };
        BootScreenState::Showing {
            changed: changed.is_some(),
        }
    }

    /// Sends display events to `sink` from now on.
    pub fn set_event_sink(&mut self, sink: EventSink) {
        self.events = Some(sink);
    }

    /// The configuration space: events_read, events_clear, num_scanouts, num_capsets.
    pub fn config_space(&self) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0..4].copy_from_slice(&self.events_read.to_le_bytes());
        c[8..12].copy_from_slice(&NUM_SCANOUTS.to_le_bytes());
        c
    }

    /// A driver write to the configuration space: only events_clear (offset 4) is writable;
    /// writing it clears those bits of events_read.
    pub fn write_config(&mut self, offset: u64, data: &[u8]) {
        if offset == 4 && data.len() == 4 {
            self.events_read &= !le32(data, 0);
        }
    }

    /// The host changed the display's preferred mode (e.g. the window was resized). Returns
    /// true when the driver must be told with a configuration change interrupt.
    pub fn set_mode(&mut self, width: u32, height: u32) -> Result<bool, Error> {
        check_mode(width, height)?;
        if (width, height) == (self.config.width, self.config.height) {
            return Ok(false);
        }
        self.config.width = width;
        self.config.height = height;
        self.events_read |= VIRTIO_GPU_EVENT_DISPLAY;
        Ok(true)
    }

    /// The driver reset the device: every resource and the scanout go; the framebuffer stays
    /// (readers keep their mapping) and keeps its last picture until the guest draws again.
    pub fn reset(&mut self) {
        self.resources.clear();
        self.resource_bytes = 0;
        self.scanout = None;
        self.events_read = 0;
    }

    /// Processes every chain available on `queue` (0 control, 1 cursor); returns whether any
    /// was put in the used ring (the caller then interrupts the driver).
    pub fn process_queue(
        &mut self,
        index: usize,
        mem: &GuestMemory,
        queue: &mut Queue,
    ) -> Result<bool, virtio_queue::Error> {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let len = if index == 0 {
                self.handle_control(mem, chain)
            } else {
                self.handle_cursor(mem, chain);
                0
            };
            queue.add_used(mem, head, len)?;
            used = true;
        }
        Ok(used)
    }

    /// Reads a request's readable bytes, refusing chains that are broken or longer than any
    /// request.
    fn read_request(
        mem: &GuestMemory,
        chain: &DescriptorChain<&GuestMemory>,
    ) -> Result<Vec<u8>, u32> {
        let mut reader = Reader::new(mem, chain.clone()).map_err(|_| cmd::RESP_ERR_UNSPEC)?;
        if reader.available_bytes() > MAX_REQUEST_LEN {
            return Err(cmd::RESP_ERR_UNSPEC);
        }
        let mut request = Vec::with_capacity(reader.available_bytes());
        reader
            .read_to_end(&mut request)
            .map_err(|_| cmd::RESP_ERR_UNSPEC)?;
        Ok(request)
    }

    /// Answers one control queue request; returns the bytes written (the used length).
    pub fn handle_control(
        &mut self,
        mem: &GuestMemory,
        chain: DescriptorChain<&GuestMemory>,
    ) -> u32 {
        let (header, response) = match Self::read_request(mem, &chain) {
            Ok(request) if request.len() >= HEADER_LEN => {
                let response = self.dispatch(mem, &request).unwrap_or_else(Response::err);
                (request[..HEADER_LEN].to_vec(), response)
            }
            Ok(_) | Err(_) => (vec![0; HEADER_LEN], Response::err(cmd::RESP_ERR_UNSPEC)),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + response.body.len());
        out.extend_from_slice(&response.kind.to_le_bytes());
        // The fence flag, fence id and context echo the request: every command is complete
        // when answered.
        out.extend_from_slice(&(le32(&header, 4) & cmd::FLAG_FENCE).to_le_bytes());
        out.extend_from_slice(&le64(&header, 8).to_le_bytes());
        out.extend_from_slice(&le32(&header, 16).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&response.body);
        let Ok(mut writer) = Writer::new(mem, chain) else {
            return 0;
        };
        // A response buffer too small for the answer gets nothing: a half answer would be
        // misread.
        if writer.available_bytes() < out.len() || writer.write_all(&out).is_err() {
            return 0;
        }
        // At most HEADER_LEN + 1032 bytes.
        out.len() as u32
    }

    fn dispatch(&mut self, mem: &GuestMemory, request: &[u8]) -> CmdResult {
        let kind = le32(request, 0);
        let body = &request[HEADER_LEN..];
        match kind {
            cmd::GET_DISPLAY_INFO => Ok(self.display_info()),
            cmd::GET_EDID => self.get_edid(body),
            cmd::RESOURCE_CREATE_2D => self.create_2d(body),
            cmd::RESOURCE_UNREF => self.unref(body),
            cmd::SET_SCANOUT => self.set_scanout(body),
            cmd::RESOURCE_FLUSH => self.flush(body),
            cmd::TRANSFER_TO_HOST_2D => self.transfer(mem, body),
            cmd::RESOURCE_ATTACH_BACKING => self.attach_backing(mem, body),
            cmd::RESOURCE_DETACH_BACKING => self.detach_backing(body),
            // No capability sets (no 3D): there is no valid capset index to ask about.
            cmd::GET_CAPSET_INFO | cmd::GET_CAPSET => Err(cmd::RESP_ERR_INVALID_PARAMETER),
            _ => Err(cmd::RESP_ERR_UNSPEC),
        }
    }

    fn display_info(&self) -> Response {
        let mut body = vec![0u8; MAX_SCANOUTS * 24];
        // Scanout 0: rect (0, 0, width, height), enabled, no flags.
        body[8..12].copy_from_slice(&self.config.width.to_le_bytes());
        body[12..16].copy_from_slice(&self.config.height.to_le_bytes());
        body[16..20].copy_from_slice(&1u32.to_le_bytes());
        Response {
            kind: cmd::RESP_OK_DISPLAY_INFO,
            body,
        }
    }

    fn get_edid(&self, body: &[u8]) -> CmdResult {
        need(body, 8)?;
        if le32(body, 0) >= NUM_SCANOUTS {
            return Err(cmd::RESP_ERR_INVALID_SCANOUT_ID);
        }
        let edid = edid(self.config.width, self.config.height);
        let mut out = vec![0u8; 8 + 1024];
        out[0..4].copy_from_slice(&(edid.len() as u32).to_le_bytes());
        out[8..8 + edid.len()].copy_from_slice(&edid);
        Ok(Response {
            kind: cmd::RESP_OK_EDID,
            body: out,
        })
    }

    fn create_2d(&mut self, body: &[u8]) -> CmdResult {
        need(body, 16)?;
        let (id, format, width, height) =
            (le32(body, 0), le32(body, 4), le32(body, 8), le32(body, 12));
        if id == 0 || self.resources.contains_key(&id) {
            return Err(cmd::RESP_ERR_INVALID_RESOURCE_ID);
        }
        let format = Format::from_code(format).ok_or(cmd::RESP_ERR_INVALID_PARAMETER)?;
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(cmd::RESP_ERR_INVALID_PARAMETER);
        }
        let bytes = u64::from(width) * u64::from(height) * 4;
        if self.resources.len() >= MAX_RESOURCES
            || self.resource_bytes + bytes > self.config.max_resource_bytes
        {
            return Err(cmd::RESP_ERR_OUT_OF_MEMORY);
        }
        let mut pixels = Vec::new();
        // Fits: at most 4095 * 4095 * 4.
        pixels
            .try_reserve_exact(bytes as usize)
            .map_err(|_| cmd::RESP_ERR_OUT_OF_MEMORY)?;
        pixels.resize(bytes as usize, 0);
        self.resource_bytes += bytes;
        self.resources.insert(
            id,
            Resource {
                width,
                height,
                format,
                pixels,
                backing: Vec::new(),
                starts: Vec::new(),
                backing_len: 0,
            },
        );
        Ok(Response::ok())
    }

    fn unref(&mut self, body: &[u8]) -> CmdResult {
        need(body, 4)?;
        let id = le32(body, 0);
        let resource = self
            .resources
            .remove(&id)
            .ok_or(cmd::RESP_ERR_INVALID_RESOURCE_ID)?;
        self.resource_bytes -= resource.cost();
        if self.scanout.is_some_and(|s| s.resource_id == id) {
            self.disable_scanout();
        }
        Ok(Response::ok())
    }

    fn disable_scanout(&mut self) {
        self.scanout = None;
        self.emit(DisplayEvent::Disabled);
    }

    fn emit(&mut self, event: DisplayEvent) {
        if let Some(sink) = self.events.as_mut() {
            sink(event);
        }
    }

    fn set_scanout(&mut self, body: &[u8]) -> CmdResult {
        need(body, 24)?;
        let (rect, scanout_id, id) = (rect_at(body, 0), le32(body, 16), le32(body, 20));
        if scanout_id >= NUM_SCANOUTS {
            return Err(cmd::RESP_ERR_INVALID_SCANOUT_ID);
        }
        if id == 0 {
            self.disable_scanout();
            return Ok(Response::ok());
        }
        let resource = self
            .resources
            .get(&id)
            .ok_or(cmd::RESP_ERR_INVALID_RESOURCE_ID)?;
        if rect.is_empty() || !rect.fits_in(resource.width, resource.height) {
            return Err(cmd::RESP_ERR_INVALID_PARAMETER);
        }
        let format = resource.format as u32;
        let was_enabled = self.scanout.is_some();
        let generation = self.framebuffer.generation();
        self.framebuffer
            .resize(rect.width, rect.height, format)
            .map_err(|_| cmd::RESP_ERR_OUT_OF_MEMORY)?;
        self.scanout = Some(Scanout {
            resource_id: id,
            rect,
        });
        // The driver has the screen: the firmware's framebuffer is not shown again.
        self.boot_screen = boot_screen::BootScreen::Over;
        // Page flips point the scanout at another resource of the same mode on every frame:
        // only a real mode change (or a display coming back) is news to the window.
        if !was_enabled || generation != self.framebuffer.generation() {
            let event = DisplayEvent::Mode {
                width: rect.width,
                height: rect.height,
                format,
                generation: self.framebuffer.generation(),
            };
            self.emit(event);
        }
        Ok(Response::ok())
    }

    fn flush(&mut self, body: &[u8]) -> CmdResult {
        need(body, 24)?;
        let (rect, id) = (rect_at(body, 0), le32(body, 16));
        let resource = self
            .resources
            .get(&id)
            .ok_or(cmd::RESP_ERR_INVALID_RESOURCE_ID)?;
        if !rect.fits_in(resource.width, resource.height) {
            return Err(cmd::RESP_ERR_INVALID_PARAMETER);
        }
        let Some(scanout) = self.scanout.filter(|s| s.resource_id == id) else {
            // Flushing a resource nobody shows is allowed and does nothing.
            return Ok(Response::ok());
        };
        // The part of the flushed rectangle the scanout shows, in framebuffer coordinates.
        let s = scanout.rect;
        let x0 = rect.x.max(s.x);
        let y0 = rect.y.max(s.y);
        let x1 = (rect.x + rect.width).min(s.x + s.width);
        let y1 = (rect.y + rect.height).min(s.y + s.height);
        if x0 >= x1 || y0 >= y1 {
            return Ok(Response::ok());
        }
        let damage = Rect::new(x0 - s.x, y0 - s.y, x1 - x0, y1 - y0);
        let stride = resource.stride();
        let origin = s.y as usize * stride + s.x as usize * 4;
        self.framebuffer
            .update(damage, &resource.pixels[origin..], stride)
            .map_err(|_| cmd::RESP_ERR_UNSPEC)?;
        let frame = self.framebuffer.frame();
        self.emit(DisplayEvent::Damage {
            rect: damage,
            frame,
        });
        Ok(Response::ok())
    }

    fn transfer(&mut self, mem: &GuestMemory, body: &[u8]) -> CmdResult {
        need(body, 32)?;
        let (rect, offset, id) = (rect_at(body, 0), le64(body, 16), le32(body, 24));
        let resource = self
            .resources
            .get_mut(&id)
            .ok_or(cmd::RESP_ERR_INVALID_RESOURCE_ID)?;
        if !rect.fits_in(resource.width, resource.height) {
            return Err(cmd::RESP_ERR_INVALID_PARAMETER);
        }
        if resource.backing.is_empty() {
            return Err(cmd::RESP_ERR_UNSPEC);
        }
        if rect.is_empty() {
            return Ok(Response::ok());
        }
        // The backing has the resource's layout; row h of the rectangle starts `offset + h *
        // stride` into it (what Linux and QEMU agree on).
        let stride = resource.stride();
        let row_bytes = rect.width as usize * 4;
        let last = offset
            .checked_add(u64::from(rect.height - 1) * stride as u64 + row_bytes as u64)
            .ok_or(cmd::RESP_ERR_INVALID_PARAMETER)?;
        if last > resource.backing_len {
            return Err(cmd::RESP_ERR_INVALID_PARAMETER);
        }
        let mut row = vec![0u8; row_bytes];
        for h in 0..rect.height as usize {
            let src = offset + (h * stride) as u64;
            if !resource.read_backing(mem, src, &mut row) {
                return Err(cmd::RESP_ERR_UNSPEC);
            }
            let dst = (rect.y as usize + h) * stride + rect.x as usize * 4;
            resource.pixels[dst..dst + row_bytes].copy_from_slice(&row);
        }
        Ok(Response::ok())
    }

    fn attach_backing(&mut self, mem: &GuestMemory, body: &[u8]) -> CmdResult {
        need(body, 8)?;
        let (id, count) = (le32(body, 0), le32(body, 4));
        let cost = u64::from(count) * 16;
        let resource = self
            .resources
            .get(&id)
            .ok_or(cmd::RESP_ERR_INVALID_RESOURCE_ID)?;
        if !resource.backing.is_empty() {
            return Err(cmd::RESP_ERR_UNSPEC);
        }
        if count == 0 || count > MAX_BACKING_ENTRIES {
            return Err(cmd::RESP_ERR_INVALID_PARAMETER);
        }
        need(body, 8 + count as usize * 16)?;
        if self.resource_bytes + cost > self.config.max_resource_bytes {
            return Err(cmd::RESP_ERR_OUT_OF_MEMORY);
        }
        let mut backing = Vec::with_capacity(count as usize);
        let mut starts = Vec::with_capacity(count as usize);
        let mut total = 0u64;
        for i in 0..count as usize {
            let at = 8 + i * 16;
            let (addr, len) = (le64(body, at), le32(body, at + 8));
            // Every run must lie in guest RAM now; RAM does not move later.
            if !mem.check_range(GuestAddress(addr), len as usize) {
                return Err(cmd::RESP_ERR_UNSPEC);
            }
            backing.push((addr, len));
            starts.push(total);
            total += u64::from(len);
        }
        let resource = self
            .resources
            .get_mut(&id)
            .ok_or(cmd::RESP_ERR_INVALID_RESOURCE_ID)?;
        resource.backing = backing;
        resource.starts = starts;
        resource.backing_len = total;
        self.resource_bytes += cost;
        Ok(Response::ok())
    }

    fn detach_backing(&mut self, body: &[u8]) -> CmdResult {
        need(body, 4)?;
        let resource = self
            .resources
            .get_mut(&le32(body, 0))
            .ok_or(cmd::RESP_ERR_INVALID_RESOURCE_ID)?;
        if resource.backing.is_empty() {
            return Err(cmd::RESP_ERR_UNSPEC);
        }
        let cost = resource.backing.len() as u64 * 16;
        resource.backing = Vec::new();
        resource.starts = Vec::new();
        resource.backing_len = 0;
        self.resource_bytes -= cost;
        Ok(Response::ok())
    }

    /// Handles one cursor queue request. The cursor queue has no responses; a bad request is
    /// ignored.
    pub fn handle_cursor(&mut self, mem: &GuestMemory, chain: DescriptorChain<&GuestMemory>) {
        let Ok(request) = Self::read_request(mem, &chain) else {
            return;
        };
        // header, cursor_pos { scanout_id, x, y, padding }, resource_id, hot_x, hot_y, padding
        if request.len() < HEADER_LEN + 32 {
            return;
        }
        let body = &request[HEADER_LEN..];
        if le32(body, 0) >= NUM_SCANOUTS {
            return;
        }
        let (x, y) = (le32(body, 4), le32(body, 8));
        match le32(&request, 0) {
            cmd::MOVE_CURSOR => self.emit(DisplayEvent::CursorMove { x, y }),
            cmd::UPDATE_CURSOR => {
                let (id, hot_x, hot_y) = (le32(body, 16), le32(body, 20), le32(body, 24));
                let image = if id == 0 {
                    None
                } else {
                    let Some(resource) = self.resources.get(&id) else {
                        return;
                    };
                    if resource.width != CURSOR_SIZE || resource.height != CURSOR_SIZE {
                        return;
                    }
                    let mut pixels = resource.pixels.clone();
                    resource.format.to_rgba_in_place(&mut pixels);
                    Some(pixels)
                };
                self.emit(DisplayEvent::Cursor {
                    image,
                    hot_x,
                    hot_y,
                    x,
                    y,
                });
            }
            _ => {}
        }
    }
}

/// Whether a display can have this mode (neither side 0 nor above [`MAX_DIMENSION`]).
pub fn check_mode(width: u32, height: u32) -> Result<(), Error> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(Error::BadMode { width, height });
    }
    Ok(())
}

/// An EDID 1.4 base block describing a 60 Hz digital display whose preferred (and only
/// detailed) timing is `width`x`height`, at about 96 dpi, named "Berth".
pub fn edid(width: u32, height: u32) -> [u8; 128] {
    let mut e = [0u8; 128];
    e[0..8].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    // Manufacturer "BRT": three 5-bit letters (A = 1), big-endian.
    let letter = |c: u8| u16::from(c - b'A' + 1);
    let maker = (letter(b'B') << 10) | (letter(b'R') << 5) | letter(b'T');
    e[8..10].copy_from_slice(&maker.to_be_bytes());
    e[10..12].copy_from_slice(&1u16.to_le_bytes()); // product code
    e[12..16].copy_from_slice(&1u32.to_le_bytes()); // serial
    e[16] = 1; // week
    e[17] = (2026 - 1990) as u8; // year
    e[18] = 1; // EDID 1.4
    e[19] = 4;
    e[20] = 0xa0; // digital input, 8 bits per colour
    // Physical size at ~96 dpi (0.2646 mm a pixel).
    let width_mm = width * 254 / 960;
    let height_mm = height * 254 / 960;
    e[21] = (width_mm / 10).clamp(1, 255) as u8;
    e[22] = (height_mm / 10).clamp(1, 255) as u8;
    e[23] = 120; // gamma 2.2
    e[24] = 0x06; // sRGB default colour space, preferred timing is native; RGB 4:4:4
    // sRGB primaries and D65 white point, 10-bit fixed point as EDID packs them.
    e[25..35].copy_from_slice(&[0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54]);
    // No established timings; standard timings unused (0x0101).
    for slot in e[38..54].chunks_exact_mut(2) {
        slot.copy_from_slice(&[0x01, 0x01]);
    }
    // Detailed timing with reduced-blanking-like porches.
    let (hblank, hfront, hsync) = (160u32, 48u32, 32u32);
    let (vblank, vfront, vsync) = (23u32, 3u32, 6u32);
    let clock_10khz = (u64::from(width + hblank) * u64::from(height + vblank) * 60)
        .div_ceil(10_000)
        .min(u64::from(u16::MAX)) as u16;
    let d = &mut e[54..72];
    d[0..2].copy_from_slice(&clock_10khz.to_le_bytes());
    d[2] = width as u8;
    d[3] = hblank as u8;
    d[4] = (((width >> 8) & 0xf) << 4 | ((hblank >> 8) & 0xf)) as u8;
    d[5] = height as u8;
    d[6] = vblank as u8;
    d[7] = (((height >> 8) & 0xf) << 4 | ((vblank >> 8) & 0xf)) as u8;
    d[8] = hfront as u8;
    d[9] = hsync as u8;
    d[10] = ((vfront & 0xf) << 4 | (vsync & 0xf)) as u8;
    d[11] = 0; // the high bits of the porches, all zero here
    d[12] = width_mm as u8;
    d[13] = height_mm as u8;
    d[14] = (((width_mm >> 8) & 0xf) << 4 | ((height_mm >> 8) & 0xf)) as u8;
    d[17] = 0x1e; // digital separate sync, +hsync +vsync
    // Range limits: 50-75 Hz vertical, 30-160 kHz horizontal, pixel clock up to 660 MHz.
    e[72..90].copy_from_slice(&[
        0, 0, 0, 0xfd, 0, 50, 75, 30, 160, 66, 0x01, 0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    ]);
    // Monitor name.
    e[90..95].copy_from_slice(&[0, 0, 0, 0xfc, 0]);
    let mut name = [0x20u8; 13];
    name[..6].copy_from_slice(b"Berth\n");
    e[95..108].copy_from_slice(&name);
    // Dummy descriptor.
    e[108..113].copy_from_slice(&[0, 0, 0, 0x10, 0]);
    e[126] = 0; // no extension blocks
    let sum = e[..127].iter().fold(0u8, |s, &b| s.wrapping_add(b));
    e[127] = 0u8.wrapping_sub(sum);
    e
}

#[cfg(test)]
mod tests;
