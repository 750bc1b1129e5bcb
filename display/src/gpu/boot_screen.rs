//! The screen before the driver's: a linear framebuffer in guest RAM that firmware draws into
//! (QEMU's ramfb, which SeaBIOS's VGA BIOS for it sets up, and which the boot loaders after it
//! draw into through the BIOS), shown on the VM's one screen until the guest's virtio-gpu
//! driver shows a scanout of its own. So the firmware's messages and a boot loader's menu reach
//! the window as pixels, as a PC's VGA shows them.
//!
//! Nothing tells the device when the guest wrote there: the framebuffer is read again at the
//! refresher's pace, and only the rows that changed are published.

use vm_memory::{Bytes, GuestAddress};

use super::{DisplayEvent, Format, check_mode};
use crate::GuestMemory;
use crate::framebuffer::Rect;

/// A framebuffer in guest RAM: `width` x `height` pixels of 4 bytes in B8G8R8X8 order (DRM's
/// XRGB8888, the only format SeaBIOS's ramfb VGA BIOS uses), `stride` bytes a row, the first
/// at `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestFramebuffer {
    pub address: u64,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
}

/// Why a guest framebuffer cannot be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, displaydoc::Display)]
pub enum GuestFramebufferError {
    /// the firmware's framebuffer is {width}x{height}: each side must be 1..=4095
    BadMode { width: u32, height: u32 },
    /// the firmware's framebuffer rows are {stride} bytes, fewer than its {width} pixels need
    ShortStride { stride: u32, width: u32 },
    /// the firmware's framebuffer at {address:#x} does not fit in the address space
    OutOfRange { address: u64 },
}

impl GuestFramebuffer {
    /// Checks the geometry a guest gave (the bytes' place in RAM is checked at each read).
    pub fn check(&self) -> Result<(), GuestFramebufferError> {
        check_mode(self.width, self.height).map_err(|_| GuestFramebufferError::BadMode {
            width: self.width,
            height: self.height,
        })?;
        if u64::from(self.stride) < u64::from(self.width) * 4 {
            return Err(GuestFramebufferError::ShortStride {
                stride: self.stride,
                width: self.width,
            });
        }
        self.address
            .checked_add(self.bytes() as u64)
            .ok_or(GuestFramebufferError::OutOfRange {
                address: self.address,
            })?;
        Ok(())
    }

    /// The bytes it spans (rows of `stride`, the last one only as long as its pixels).
    fn bytes(&self) -> usize {
        (self.height as usize - 1) * self.stride as usize + self.width as usize * 4
    }
}

/// What the screen shows before the driver's scanout.
#[derive(Debug, Default)]
pub(super) enum BootScreen {
    /// Nothing yet: no firmware framebuffer, no scanout.
    #[default]
    Waiting,
    /// The firmware's framebuffer; `seen` is what was published last (empty before the first),
    /// `fresh` the buffer the next look reads into (kept, so a look allocates nothing).
    Showing {
        framebuffer: GuestFramebuffer,
        seen: Vec<u8>,
        fresh: Vec<u8>,
    },
    /// The driver shows its own scanout, or the framebuffer left guest RAM: the firmware's is
    /// not shown again by this device.
    Over,
}

/// What [`super::Gpu::refresh_boot_screen`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootScreenState {
    /// No firmware framebuffer yet: look again later.
    Waiting,
    /// The firmware's framebuffer is on the screen; `changed`: something in it changed since
    /// the last look.
    Showing { changed: bool },
    /// It never will be again: the refresher can stop.
    Over,
}

/// The rows from the first to the last that differ between `fresh` and `seen`, as the
/// rectangle to publish; `None` when none does.
pub(super) fn changed_rows(
    framebuffer: &GuestFramebuffer,
    fresh: &[u8],
    seen: &[u8],
) -> Option<Rect> {
    let stride = framebuffer.stride as usize;
    let row_bytes = framebuffer.width as usize * 4;
    fn row(bytes: &[u8], y: usize, stride: usize, len: usize) -> Option<&[u8]> {
        bytes.get(y * stride..y * stride + len)
    }
    let differs = |y: usize| row(fresh, y, stride, row_bytes) != row(seen, y, stride, row_bytes);
    let height = framebuffer.height as usize;
    let first = (0..height).find(|&y| differs(y))?;
    // Found from the bottom: at least `first` differs.
    let last = (first..height).rev().find(|&y| differs(y)).unwrap_or(first);
    Some(Rect::new(
        0,
        first as u32,
        framebuffer.width,
        (last - first + 1) as u32,
    ))
}

/// Reads `framebuffer` from `mem` into `into` (sized to it); false when it is not in guest RAM.
pub(super) fn read(mem: &GuestMemory, framebuffer: &GuestFramebuffer, into: &mut Vec<u8>) -> bool {
    into.resize(framebuffer.bytes(), 0);
    mem.read_slice(into, GuestAddress(framebuffer.address))
        .is_ok()
}

/// The event that tells the window the screen now has the firmware framebuffer's mode.
pub(super) fn mode_event(framebuffer: &GuestFramebuffer, generation: u32) -> DisplayEvent {
    DisplayEvent::Mode {
        width: framebuffer.width,
        height: framebuffer.height,
        format: Format::B8G8R8X8 as u32,
        generation,
    }
}
