//! The scanout, published in a memfd that other processes (the window, `berth-console`, a
//! screenshot command) map read-only.
//!
//! # Layout
//!
//! The file starts with a [`HEADER_LEN`]-byte header of little-endian 32- and 64-bit fields at
//! fixed offsets, then the pixels at [`PIXELS_OFFSET`] (page-aligned, so a reader could also map
//! the pixels alone):
//!
//! | offset | field | meaning |
//! | --- | --- | --- |
//! | 0 | `magic` u32 | [`MAGIC`] |
//! | 4 | `version` u32 | [`VERSION`] |
//! | 8 | `seq` u64 | sequence counter, see below; `seq / 2` is the frame number |
//! | 16 | `generation` u32 | bumped by every change of width, height, stride or format |
//! | 20 | `width` u32 | pixels |
//! | 24 | `height` u32 | pixels |
//! | 28 | `stride` u32 | bytes from one row to the next |
//! | 32 | `format` u32 | a [`crate::gpu::Format`] code (virtio-gpu's; all are 4 bytes a pixel) |
//! | 36 | `pixels_offset` u32 | [`PIXELS_OFFSET`] |
//! | 40 | `capacity` u64 | bytes of the file usable for pixels from `pixels_offset` |
//!
//! # Memory-ordering protocol (a seqlock)
//!
//! The writer makes `seq` odd before it touches anything (geometry or pixels) and even again
//! when it is done, so `seq` changes by 2 for each published update (each flush):
//!
//! - writer: `seq.store(s + 1, Relaxed)`; `fence(Release)`; write fields and pixels;
//!   `seq.store(s + 2, Release)`.
//! - reader: `s1 = seq.load(Acquire)`; retry while odd; read fields and pixels;
//!   `fence(Acquire)`; `s2 = seq.load(Relaxed)`; the copy is a consistent frame if `s1 == s2`,
//!   otherwise it retries.
//!
//! A resolution change is announced before the new frame: the writer bumps `generation` and
//! writes the new geometry in the same update as (and before) the first pixels of the new mode.
//! The file only ever grows (shrinking it would make readers' mappings fault with SIGBUS), so a
//! reader whose mapping is shorter than `pixels_offset + capacity` remaps the same fd. The writer
//! seals the memfd against shrinking (`F_SEAL_SHRINK`) and the reader refuses an fd without that
//! seal: a reader (the window) never dies of SIGBUS whatever the process that sent the fd does.
//!
//! The reader copies (or views in place) pixel bytes that the writer may be changing at the same
//! time: such a copy can be torn, and the sequence check is what throws it away. The shared
//! bytes are only ever accessed through raw pointers or as atomics (the header always, the
//! pixels of a view), never through plain Rust references.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use crate::shm;

/// "BRFB" read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"BRFB");
/// The layout described in this module.
pub const VERSION: u32 = 1;
/// Bytes of header the layout defines.
pub const HEADER_LEN: usize = 48;
/// Where the pixels start: one page, so the header and pixels never share a page.
pub const PIXELS_OFFSET: usize = 4096;
/// Bytes per pixel of every format the framebuffer carries.
pub const BYTES_PER_PIXEL: u32 = 4;
/// Largest width or height (the API's limit on a VM's display, whose reasons it gives).
pub const MAX_DIMENSION: u32 = berth_api::vm::MAX_DISPLAY_SIDE;
/// How many times a reader retries a copy that raced with the writer before giving up.
const READ_ATTEMPTS: usize = 10_000;
/// How many views of a frame that raced with the writer [`FramebufferReader::view_frame`] makes
/// before it hands out the last one as torn.
pub const TORN_ATTEMPTS: usize = 3;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_SEQ: usize = 8;
const OFF_GENERATION: usize = 16;
const OFF_WIDTH: usize = 20;
const OFF_HEIGHT: usize = 24;
const OFF_STRIDE: usize = 28;
const OFF_FORMAT: usize = 32;
const OFF_PIXELS_OFFSET: usize = 36;
const OFF_CAPACITY: usize = 40;

/// Errors of the shared framebuffer.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum Error {
    /// memfd_create for the framebuffer failed: {0}
    Create(std::io::Error),
    /// Cannot size the framebuffer file: {0}
    Resize(std::io::Error),
    /// Cannot map the framebuffer: {0}
    Map(std::io::Error),
    /// Cannot read the framebuffer file's size: {0}
    Stat(std::io::Error),
    /// A {width}x{height} framebuffer is not possible (each side 1..=4095)
    BadGeometry { width: u32, height: u32 },
    /// The file is not a Berth framebuffer (bad magic or version)
    NotAFramebuffer,
    /// The framebuffer file is not sealed against shrinking; mapping it could crash the reader
    NotSealed,
    /// The framebuffer header is inconsistent: {0}
    Corrupt(&'static str),
    /// The writer kept changing the frame; no consistent copy was possible
    Busy,
    /// The rectangle {x},{y} {width}x{height} does not lie inside the {fb_width}x{fb_height} frame
    RectOutOfBounds {
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        fb_width: u32,
        fb_height: u32,
    },
}

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// A rectangle at `x`,`y` of `width`x`height`.
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    /// Whether the rectangle lies wholly inside a `width`x`height` area (computed without
    /// overflow, since the numbers come from the guest).
    pub fn fits_in(&self, width: u32, height: u32) -> bool {
        u64::from(self.x) + u64::from(self.width) <= u64::from(width)
            && u64::from(self.y) + u64::from(self.height) <= u64::from(height)
    }

    /// Whether the rectangle covers no pixel.
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }
}

/// A shared mapping of the framebuffer file. Never turned into a plain Rust reference (only
/// into atomics): the other process writes (or reads) it concurrently.
struct Mapping(shm::Mapping);

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, writable: bool) -> Result<Self, Error> {
        shm::Mapping::new(fd, len, writable)
            .map(Mapping)
            .map_err(Error::Map)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= HEADER_LEN);
        // SAFETY: `offset` is one of the aligned header offsets, inside the first page of a
        // page-aligned mapping at least PIXELS_OFFSET long; AtomicU32 has u32's layout and the
        // bytes are only accessed atomically by both sides.
        unsafe { &*self.0.ptr().as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// `len` 32-bit words from `offset`, clamped to the mapping.
    fn words(&self, offset: usize, len: usize) -> &[AtomicU32] {
        debug_assert!(offset.is_multiple_of(4));
        let len = len.min(self.len().saturating_sub(offset) / 4);
        // SAFETY: `offset` is 4-byte aligned (callers check it) in a page-aligned mapping, and
        // the `len` words end within it; AtomicU32 has u32's layout and these words are only
        // read here, atomically, while the writer may change them.
        unsafe {
            std::slice::from_raw_parts(self.0.ptr().as_ptr().add(offset).cast::<AtomicU32>(), len)
        }
    }

    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= HEADER_LEN);
        // SAFETY: as for `u32_at`, with 8-byte alignment.
        unsafe { &*self.0.ptr().as_ptr().add(offset).cast::<AtomicU64>() }
    }
}

fn frame_bytes(width: u32, height: u32) -> usize {
    // At most 4095 * 4095 * 4, well inside usize.
    width as usize * height as usize * BYTES_PER_PIXEL as usize
}

fn check_geometry(width: u32, height: u32) -> Result<(), Error> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(Error::BadGeometry { width, height });
    }
    Ok(())
}

/// The VMM's side: owns the memfd and publishes frames into it.
pub struct FramebufferWriter {
    fd: OwnedFd,
    map: Mapping,
    width: u32,
    height: u32,
    format: u32,
    seq: u64,
    generation: u32,
}

impl FramebufferWriter {
    /// A new framebuffer of `width`x`height` pixels in `format`, all black, published as frame 0.
    pub fn new(width: u32, height: u32, format: u32) -> Result<Self, Error> {
        check_geometry(width, height)?;
        let len = PIXELS_OFFSET + frame_bytes(width, height);
        let fd = shm::memfd(c"berth-framebuffer", len, true).map_err(Error::Create)?;
        // SAFETY: fcntl on a descriptor we own; adding seals changes only what may be done to
        // the file later.
        let sealed = unsafe {
            libc::fcntl(
                fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL,
            )
        };
        if sealed < 0 {
            return Err(Error::Resize(std::io::Error::last_os_error()));
        }
        let map = Mapping::new(fd.as_fd(), len, true)?;
        let mut writer = FramebufferWriter {
            fd,
            map,
            width,
            height,
            format,
            seq: 0,
            generation: 0,
        };
        writer.map.u32_at(OFF_MAGIC).store(MAGIC, Ordering::Relaxed);
        writer
            .map
            .u32_at(OFF_VERSION)
            .store(VERSION, Ordering::Relaxed);
        writer.publish(|_| {});
        Ok(writer)
    }

    /// The memfd, to hand to readers (they should map it read-only).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Width, height and format of the current mode.
    pub fn mode(&self) -> (u32, u32, u32) {
        (self.width, self.height, self.format)
    }

    /// Frames published so far (the header's `seq / 2`).
    pub fn frame(&self) -> u64 {
        self.seq / 2
    }

    /// The current geometry generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Changes the mode; the new geometry is published (with a new generation) before any pixel
    /// of the new mode, and the frame is cleared to black. Does nothing if the mode is the same.
    pub fn resize(&mut self, width: u32, height: u32, format: u32) -> Result<(), Error> {
        check_geometry(width, height)?;
        if (width, height, format) == (self.width, self.height, self.format) {
            return Ok(());
        }
        let needed = PIXELS_OFFSET + frame_bytes(width, height);
        if needed > self.map.len() {
            // Grow only: readers may still map the old length.
            set_len(self.fd.as_fd(), needed)?;
            self.map = Mapping::new(self.fd.as_fd(), needed, true)?;
        }
        self.width = width;
        self.height = height;
        self.format = format;
        self.generation = self.generation.wrapping_add(1);
        let bytes = frame_bytes(width, height);
        self.publish(|pixels| {
            // SAFETY: `pixels` points at PIXELS_OFFSET in the writable mapping, which is at
            // least `bytes` long past it (grown above).
            unsafe { std::ptr::write_bytes(pixels, 0, bytes) }
        });
        Ok(())
    }

    /// Copies `rect` of a source image (`src`, `src_stride` bytes a row, 4 bytes a pixel,
    /// its origin at the frame's origin) into the frame and publishes one new frame.
    pub fn update(&mut self, rect: Rect, src: &[u8], src_stride: usize) -> Result<(), Error> {
        if !rect.fits_in(self.width, self.height) {
            return Err(self.out_of_bounds(rect));
        }
        let bpp = BYTES_PER_PIXEL as usize;
        let row_bytes = rect.width as usize * bpp;
        let last_needed = if rect.is_empty() {
            0
        } else {
            (rect.y as usize + rect.height as usize - 1) * src_stride
                + rect.x as usize * bpp
                + row_bytes
        };
        if src.len() < last_needed || src_stride < row_bytes {
            return Err(Error::Corrupt("source image smaller than the rectangle"));
        }
        let stride = self.width as usize * bpp;
        self.publish(|pixels| {
            for row in 0..rect.height as usize {
                let y = rect.y as usize + row;
                let from = &src[y * src_stride + rect.x as usize * bpp..][..row_bytes];
                // SAFETY: the rectangle fits the frame (checked above), so the destination row
                // lies within the frame's bytes of the mapping; source and destination are
                // different memory.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        from.as_ptr(),
                        pixels.add(y * stride + rect.x as usize * bpp),
                        row_bytes,
                    );
                }
            }
        });
        Ok(())
    }

    fn out_of_bounds(&self, rect: Rect) -> Error {
        Error::RectOutOfBounds {
            x: rect.x,
            y: rect.y,
            width: rect.width,
            height: rect.height,
            fb_width: self.width,
            fb_height: self.height,
        }
    }

    /// One writer-side critical section of the seqlock: `write` gets the pixels' base pointer.
    fn publish(&mut self, write: impl FnOnce(*mut u8)) {
        let seq = self.map.u64_at(OFF_SEQ);
        seq.store(self.seq + 1, Ordering::Relaxed);
        // Orders the odd `seq` before every write below, for a reader that fences after its
        // copy.
        fence(Ordering::Release);
        let m = &self.map;
        m.u32_at(OFF_GENERATION)
            .store(self.generation, Ordering::Relaxed);
        m.u32_at(OFF_WIDTH).store(self.width, Ordering::Relaxed);
        m.u32_at(OFF_HEIGHT).store(self.height, Ordering::Relaxed);
        m.u32_at(OFF_STRIDE)
            .store(self.width * BYTES_PER_PIXEL, Ordering::Relaxed);
        m.u32_at(OFF_FORMAT).store(self.format, Ordering::Relaxed);
        m.u32_at(OFF_PIXELS_OFFSET)
            .store(PIXELS_OFFSET as u32, Ordering::Relaxed);
        m.u64_at(OFF_CAPACITY)
            .store((m.len() - PIXELS_OFFSET) as u64, Ordering::Relaxed);
        // SAFETY: the mapping is at least PIXELS_OFFSET long (every mapping holds a frame).
        write(unsafe { self.map.0.ptr().as_ptr().add(PIXELS_OFFSET) });
        self.seq += 2;
        self.map.u64_at(OFF_SEQ).store(self.seq, Ordering::Release);
    }
}

fn set_len(fd: BorrowedFd<'_>, len: usize) -> Result<(), Error> {
    shm::set_len(fd, len).map_err(Error::Resize)
}

/// A consistent copy of (part of) a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame number (`seq / 2`) the copy belongs to.
    pub frame: u64,
    /// The geometry generation.
    pub generation: u32,
    /// Size of the whole frame.
    pub width: u32,
    pub height: u32,
    /// The pixel format code.
    pub format: u32,
    /// The part copied.
    pub rect: Rect,
    /// `rect.width * 4` bytes a row, `rect.height` rows.
    pub pixels: Vec<u8>,
}

/// The frame's geometry as one reading of the header saw it, checked against the mapping.
struct Layout {
    generation: u32,
    width: u32,
    height: u32,
    stride: usize,
    format: u32,
    offset: usize,
}

/// What a run inside the seqlock made, and whether the frame stayed the same meanwhile.
struct Seen<T> {
    frame: u64,
    layout: Layout,
    value: T,
    consistent: bool,
}

/// A frame's pixels in place, for [`FramebufferReader::view_frame`]: read one at a time while
/// the writer may be changing them.
pub struct FrameView<'a> {
    words: &'a [AtomicU32],
    width: u32,
    height: u32,
    stride_words: usize,
    format: u32,
}

impl FrameView<'_> {
    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixel format code.
    pub fn format(&self) -> u32 {
        self.format
    }

    /// Row `y`: up to `width` pixels (fewer, or none, if the file ends first).
    #[inline]
    pub fn row(&self, y: usize) -> PixelRow<'_> {
        let start = (y * self.stride_words).min(self.words.len());
        let end = (start + self.width as usize).min(self.words.len());
        PixelRow(&self.words[start..end])
    }

    /// Pixel (`x`, `y`) as a little-endian word of the format's four bytes; 0 outside the frame.
    pub fn pixel(&self, x: usize, y: usize) -> u32 {
        self.row(y).pixel(x)
    }
}

/// One row of a [`FrameView`].
#[derive(Clone, Copy)]
pub struct PixelRow<'a>(&'a [AtomicU32]);

impl PixelRow<'_> {
    /// Pixel `x` as a little-endian word of the format's four bytes; 0 past the row's end.
    #[inline]
    pub fn pixel(&self, x: usize) -> u32 {
        self.0
            .get(x)
            .map_or(0, |word| u32::from_le(word.load(Ordering::Relaxed)))
    }

    /// Copies the row's pixels into `bytes` as they lie in memory, four bytes each, as many as
    /// both hold; zeros where the row ends first.
    pub fn copy_to(&self, bytes: &mut [u8]) {
        let mut out = bytes.chunks_exact_mut(4);
        for (word, dst) in self.0.iter().zip(&mut out) {
            dst.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        for dst in out {
            dst.fill(0);
        }
    }
}

/// What [`FramebufferReader::view_frame`]'s view made of a frame, and which frame it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewed<T> {
    pub frame: u64,
    pub width: u32,
    pub height: u32,
    pub format: u32,
    pub value: T,
    /// The writer changed the frame while it was viewed: a newer frame is published.
    pub torn: bool,
}

/// A reader's side: maps a framebuffer fd read-only and copies frames out of it.
pub struct FramebufferReader {
    fd: OwnedFd,
    map: Mapping,
}

impl FramebufferReader {
    /// Maps `fd` (a framebuffer memfd, possibly received from another process) read-only.
    pub fn open(fd: OwnedFd) -> Result<Self, Error> {
        // SAFETY: fcntl F_GET_SEALS on a descriptor we own only reads the seals.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
            return Err(Error::NotSealed);
        }
        let len = file_len(fd.as_fd())?;
        if len < PIXELS_OFFSET {
            return Err(Error::NotAFramebuffer);
        }
        let map = Mapping::new(fd.as_fd(), len, false)?;
        if map.u32_at(OFF_MAGIC).load(Ordering::Relaxed) != MAGIC
            || map.u32_at(OFF_VERSION).load(Ordering::Relaxed) != VERSION
        {
            return Err(Error::NotAFramebuffer);
        }
        Ok(FramebufferReader { fd, map })
    }

    /// The frame number last published (may change at any moment).
    pub fn frame(&self) -> u64 {
        self.map.u64_at(OFF_SEQ).load(Ordering::Acquire) / 2
    }

    /// The framebuffer's file, for another reader of it (the window's console surface).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The current width, height, stride and format, read consistently (no pixels copied):
    /// what a screenshot command or the window reports before it copies a frame.
    pub fn geometry(&self) -> Result<(u32, u32, u32, u32), Error> {
        for _ in 0..READ_ATTEMPTS {
            let s1 = self.map.u64_at(OFF_SEQ).load(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::hint::spin_loop();
                std::thread::yield_now();
                continue;
            }
            let m = &self.map;
            let geometry = (
                m.u32_at(OFF_WIDTH).load(Ordering::Relaxed),
                m.u32_at(OFF_HEIGHT).load(Ordering::Relaxed),
                m.u32_at(OFF_STRIDE).load(Ordering::Relaxed),
                m.u32_at(OFF_FORMAT).load(Ordering::Relaxed),
            );
            if self.unchanged_since(s1) {
                return Ok(geometry);
            }
        }
        Err(Error::Busy)
    }

    /// A consistent copy of the whole frame.
    pub fn read_frame(&mut self) -> Result<Frame, Error> {
        self.read(None)
    }

    /// A consistent copy of `rect` of the frame.
    pub fn read_rect(&mut self, rect: Rect) -> Result<Frame, Error> {
        self.read(Some(rect))
    }

    fn read(&mut self, rect: Option<Rect>) -> Result<Frame, Error> {
        let mut pixels = Vec::new();
        let seen = self.seqlocked(false, |map, layout| {
            let rect = rect.unwrap_or(Rect::new(0, 0, layout.width, layout.height));
            if !rect.fits_in(layout.width, layout.height) {
                return Err(Error::RectOutOfBounds {
                    x: rect.x,
                    y: rect.y,
                    width: rect.width,
                    height: rect.height,
                    fb_width: layout.width,
                    fb_height: layout.height,
                });
            }
            let bpp = BYTES_PER_PIXEL as usize;
            let row_bytes = rect.width as usize * bpp;
            pixels.clear();
            pixels.resize(row_bytes * rect.height as usize, 0);
            for row in 0..rect.height as usize {
                let src =
                    layout.offset + (rect.y as usize + row) * layout.stride + rect.x as usize * bpp;
                // SAFETY: `src + row_bytes` is within the frame's bytes, which `seqlocked`
                // checked lie within the mapping; the destination is our own vector. The
                // source may be changing under us; a torn copy is discarded by the sequence
                // check.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        map.0.ptr().as_ptr().add(src),
                        pixels.as_mut_ptr().add(row * row_bytes),
                        row_bytes,
                    );
                }
            }
            Ok(rect)
        })?;
        Ok(Frame {
            frame: seen.frame,
            generation: seen.layout.generation,
            width: seen.layout.width,
            height: seen.layout.height,
            format: seen.layout.format,
            rect: seen.value,
            pixels,
        })
    }

    /// The current frame seen in place, without a copy: `view` gets the frame's geometry and
    /// pixels and returns what it makes of them (a picture scaled to a window, say). It may be
    /// called again when the writer changed the frame meanwhile; after [`TORN_ATTEMPTS`] such
    /// calls the last one's result is returned marked `torn` rather than retried (a window
    /// shows it and reads the newer frame next: it never waits on a busy guest).
    pub fn view_frame<T>(
        &mut self,
        mut view: impl FnMut(&FrameView<'_>) -> T,
    ) -> Result<Viewed<T>, Error> {
        let seen = self.seqlocked(true, |map, layout| {
            if !layout.offset.is_multiple_of(4) || !layout.stride.is_multiple_of(4) {
                return Err(Error::Corrupt("pixels not aligned to 4 bytes"));
            }
            let words = map.words(layout.offset, layout.height as usize * layout.stride / 4);
            Ok(view(&FrameView {
                words,
                width: layout.width,
                height: layout.height,
                stride_words: layout.stride / 4,
                format: layout.format,
            }))
        })?;
        Ok(Viewed {
            frame: seen.frame,
            width: seen.layout.width,
            height: seen.layout.height,
            format: seen.layout.format,
            value: seen.value,
            torn: !seen.consistent,
        })
    }

    /// Runs `body` on the frame's layout inside the read side of the seqlock, again until one
    /// run saw one frame (or, with `tolerate_torn`, until [`TORN_ATTEMPTS`] runs did not). The
    /// layout handed to `body` always lies within the mapping, whatever the writer does.
    fn seqlocked<T>(
        &mut self,
        tolerate_torn: bool,
        mut body: impl FnMut(&Mapping, &Layout) -> Result<T, Error>,
    ) -> Result<Seen<T>, Error> {
        let mut torn = 0;
        for _ in 0..READ_ATTEMPTS {
            let s1 = self.map.u64_at(OFF_SEQ).load(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::hint::spin_loop();
                std::thread::yield_now();
                continue;
            }
            let m = &self.map;
            let generation = m.u32_at(OFF_GENERATION).load(Ordering::Relaxed);
            let width = m.u32_at(OFF_WIDTH).load(Ordering::Relaxed);
            let height = m.u32_at(OFF_HEIGHT).load(Ordering::Relaxed);
            let stride = m.u32_at(OFF_STRIDE).load(Ordering::Relaxed) as usize;
            let format = m.u32_at(OFF_FORMAT).load(Ordering::Relaxed);
            let offset = m.u32_at(OFF_PIXELS_OFFSET).load(Ordering::Relaxed) as usize;
            let capacity = m.u64_at(OFF_CAPACITY).load(Ordering::Relaxed);
            let needed = (height as usize)
                .checked_mul(stride)
                .and_then(|b| b.checked_add(offset));
            let consistent = needed.is_some_and(|n| {
                u64::try_from(n - offset).is_ok_and(|b| b <= capacity)
                    && stride >= width as usize * BYTES_PER_PIXEL as usize
                    && offset >= HEADER_LEN
            });
            if !consistent {
                if self.unchanged_since(s1) {
                    return Err(Error::Corrupt("geometry larger than the file"));
                }
                continue;
            }
            let needed = needed.unwrap_or(usize::MAX);
            if needed > self.map.len() {
                // The writer grew the file for a new mode: map it again, then retry.
                if !self.unchanged_since(s1) {
                    continue;
                }
                let len = file_len(self.fd.as_fd())?;
                if len < needed {
                    return Err(Error::Corrupt("geometry larger than the file"));
                }
                self.map = Mapping::new(self.fd.as_fd(), len, false)?;
                continue;
            }
            let layout = Layout {
                generation,
                width,
                height,
                stride,
                format,
                offset,
            };
            match body(&self.map, &layout) {
                Err(e) if self.unchanged_since(s1) => return Err(e),
                Err(_) => continue,
                Ok(value) => {
                    let consistent = self.unchanged_since(s1);
                    torn += usize::from(!consistent);
                    if consistent || (tolerate_torn && torn >= TORN_ATTEMPTS) {
                        return Ok(Seen {
                            frame: s1 / 2,
                            layout,
                            value,
                            consistent,
                        });
                    }
                }
            }
        }
        Err(Error::Busy)
    }

    /// The read side's closing check: every read before it happened while `seq` was `s1`.
    fn unchanged_since(&self, s1: u64) -> bool {
        fence(Ordering::Acquire);
        self.map.u64_at(OFF_SEQ).load(Ordering::Relaxed) == s1
    }
}

fn file_len(fd: BorrowedFd<'_>) -> Result<usize, Error> {
    let file = std::fs::File::from(fd.try_clone_to_owned().map_err(Error::Stat)?);
    let len = file.metadata().map_err(Error::Stat)?.len();
    usize::try_from(len).map_err(|_| Error::Corrupt("file larger than the address space"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_of(writer: &FramebufferWriter) -> FramebufferReader {
        FramebufferReader::open(writer.fd().try_clone_to_owned().expect("dup")).expect("open")
    }

    fn pattern(width: u32, height: u32, seed: u8) -> Vec<u8> {
        (0..width * height * 4)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn new_framebuffer_is_black_frame_zero() {
        let w = FramebufferWriter::new(16, 8, 2).expect("writer");
        let mut r = reader_of(&w);
        let f = r.read_frame().expect("frame");
        assert_eq!((f.width, f.height, f.format, f.frame), (16, 8, 2, 1));
        assert_eq!(f.pixels, vec![0; 16 * 8 * 4]);
    }

    #[test]
    fn update_publishes_pixels_and_bumps_the_frame() {
        let mut w = FramebufferWriter::new(16, 8, 1).expect("writer");
        let mut r = reader_of(&w);
        let before = r.frame();
        let src = pattern(16, 8, 3);
        w.update(Rect::new(0, 0, 16, 8), &src, 64).expect("update");
        assert_eq!(r.frame(), before + 1);
        assert_eq!(r.read_frame().expect("frame").pixels, src);
        // A rectangle only changes those pixels.
        let other = pattern(16, 8, 99);
        w.update(Rect::new(2, 3, 4, 2), &other, 64).expect("update");
        let f = r.read_frame().expect("frame");
        for y in 0..8usize {
            for x in 0..16usize {
                let i = (y * 16 + x) * 4;
                let want = if (2..6).contains(&x) && (3..5).contains(&y) {
                    &other[i..i + 4]
                } else {
                    &src[i..i + 4]
                };
                assert_eq!(&f.pixels[i..i + 4], want, "pixel {x},{y}");
            }
        }
        let part = r.read_rect(Rect::new(2, 3, 4, 2)).expect("rect");
        assert_eq!(part.pixels.len(), 4 * 2 * 4);
        assert_eq!(&part.pixels[..16], &other[(3 * 16 + 2) * 4..][..16]);
    }

    #[test]
    fn a_view_sees_the_frame_in_place_and_a_busy_writer_gets_it_torn() {
        let mut w = FramebufferWriter::new(4, 2, 2).expect("writer");
        let mut r = reader_of(&w);
        let src = pattern(4, 2, 1);
        w.update(Rect::new(0, 0, 4, 2), &src, 16).expect("update");
        let viewed = r
            .view_frame(|view| (view.pixel(3, 1), view.pixel(4, 0), view.pixel(0, 2)))
            .expect("view");
        let last = u32::from_le_bytes(src[28..32].try_into().unwrap());
        assert_eq!(viewed.value, (last, 0, 0), "in place; black outside");
        assert_eq!((viewed.width, viewed.height, viewed.format), (4, 2, 2));
        assert!(!viewed.torn);
        // A writer that publishes during every view: no waiting, the last view comes back torn.
        let mut views = 0;
        let torn = r
            .view_frame(|_| {
                views += 1;
                w.update(Rect::new(0, 0, 1, 1), &src, 16).expect("update");
            })
            .expect("a torn view, not an error");
        assert!(torn.torn);
        assert_eq!(views, TORN_ATTEMPTS);
        assert!(r.frame() > torn.frame, "a newer frame is there to read");
    }

    #[test]
    fn out_of_bounds_rectangles_are_refused() {
        let mut w = FramebufferWriter::new(16, 8, 1).expect("writer");
        let src = pattern(16, 8, 0);
        assert!(matches!(
            w.update(Rect::new(10, 0, 7, 1), &src, 64),
            Err(Error::RectOutOfBounds { .. })
        ));
        assert!(matches!(
            w.update(Rect::new(u32::MAX, 0, 2, 1), &src, 64),
            Err(Error::RectOutOfBounds { .. })
        ));
        let mut r = reader_of(&w);
        assert!(matches!(
            r.read_rect(Rect::new(0, 7, 1, 2)),
            Err(Error::RectOutOfBounds { .. })
        ));
        assert!(matches!(
            FramebufferWriter::new(0, 8, 1),
            Err(Error::BadGeometry { .. })
        ));
        assert!(matches!(
            FramebufferWriter::new(4096, 8, 1),
            Err(Error::BadGeometry { .. })
        ));
    }

    #[test]
    fn resize_announces_a_new_generation_and_readers_remap() {
        let mut w = FramebufferWriter::new(8, 8, 1).expect("writer");
        let mut r = reader_of(&w);
        assert_eq!(r.read_frame().expect("frame").generation, 0);
        w.resize(640, 480, 2).expect("resize");
        let src = pattern(640, 480, 5);
        w.update(Rect::new(0, 0, 640, 480), &src, 640 * 4)
            .expect("update");
        let f = r.read_frame().expect("frame");
        assert_eq!(
            (f.width, f.height, f.format, f.generation),
            (640, 480, 2, 1)
        );
        assert_eq!(f.pixels, src);
        // Shrinking keeps the file (old mappings stay valid) and still announces the mode.
        w.resize(4, 4, 2).expect("resize");
        let f = r.read_frame().expect("frame");
        assert_eq!((f.width, f.height, f.generation), (4, 4, 2));
        assert_eq!(f.pixels, vec![0; 64]);
    }

    #[test]
    fn not_a_framebuffer_or_unsealed_is_refused() {
        assert!(matches!(
            FramebufferReader::open(memfd(8192, false)),
            Err(Error::NotSealed)
        ));
        assert!(matches!(
            FramebufferReader::open(memfd(8192, true)),
            Err(Error::NotAFramebuffer)
        ));
        assert!(matches!(
            FramebufferReader::open(memfd(10, true)),
            Err(Error::NotAFramebuffer)
        ));
        // A writer's fd cannot be shrunk under a reader.
        let w = FramebufferWriter::new(8, 8, 1).expect("writer");
        let file = std::fs::File::from(w.fd().try_clone_to_owned().expect("dup"));
        assert!(file.set_len(100).is_err());
    }

    fn memfd(len: usize, sealed: bool) -> OwnedFd {
        let fd = shm::memfd(c"t", len, true).expect("memfd");
        if sealed {
            // SAFETY: fcntl on our own descriptor.
            let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) };
            assert_eq!(r, 0);
        }
        fd
    }

    #[test]
    fn concurrent_reader_never_sees_a_torn_frame() {
        // Every published frame is one uniform value; a torn copy would mix two.
        let mut w = FramebufferWriter::new(256, 64, 1).expect("writer");
        let mut r = reader_of(&w);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let reader = std::thread::spawn(move || {
            let mut seen = 0;
            loop {
                // The last read comes after the writer stopped, so one at least has no rival.
                let stopped = stop.load(Ordering::Relaxed);
                // A reader the writer outran every time (a loaded machine) gives up, busy:
                // what it must never do is hand out a mix of two frames.
                let f = match r.read_frame() {
                    Ok(f) => f,
                    Err(Error::Busy) if !stopped => continue,
                    Err(e) => panic!("frame: {e}"),
                };
                let first = f.pixels[0];
                assert!(f.pixels.iter().all(|&b| b == first), "torn frame");
                seen += 1;
                if stopped {
                    return seen;
                }
            }
        });
        for i in 0..2000u32 {
            let src = vec![(i % 251) as u8; 256 * 64 * 4];
            w.update(Rect::new(0, 0, 256, 64), &src, 256 * 4)
                .expect("update");
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().expect("reader") > 0);
    }
}
