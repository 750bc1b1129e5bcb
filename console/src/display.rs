//! The VM's display as the console window draws it: the framebuffer memfd berthd handed over,
//! mapped read-only, and what changed since the last picture, copied out as RGBA.
//!
//! Nothing here polls: the window calls [`GuestDisplay::damage`] / [`GuestDisplay::mode`] when berthd says a
//! frame was published, and [`GuestDisplay::refresh`] when it draws.

use std::os::fd::OwnedFd;

use berth_display::framebuffer::{self, FramebufferReader, Rect};
use berth_display::gpu::Format;

/// Why the guest's display cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error("cannot read the VM's display: {0}")]
    Framebuffer(#[from] framebuffer::Error),
    #[error(
        "the VM's display has a pixel format this console does not know (virtio-gpu format {0})"
    )]
    UnknownFormat(u32),
}

/// What the window must do to its picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing changed.
    Nothing,
    /// The guest turned its display off (or has not set a mode yet): show black.
    Off,
    /// A whole new picture, possibly of another size: `width * height * 4` RGBA bytes.
    Whole {
        width: u32,
        height: u32,
        rgba: Vec<u8>,
    },
    /// Part of the picture: `rect.width * rect.height * 4` RGBA bytes to put at `rect`.
    Part { rect: Rect, rgba: Vec<u8> },
}

/// What changed since the last refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Nothing,
    Rect(Rect),
    Whole,
}

/// A VM's display: the mapping of its framebuffer and what is to be copied out next.
pub struct GuestDisplay {
    reader: FramebufferReader,
    /// The size of the picture last handed out (0x0 before the first).
    size: (u32, u32),
    pending: Pending,
}

impl std::fmt::Debug for GuestDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestDisplay")
            .field("size", &self.size)
            .field("pending", &self.pending)
            .finish()
    }
}

impl GuestDisplay {
    /// Maps a framebuffer memfd read-only; the first refresh copies the whole frame.
    pub fn open(fd: OwnedFd) -> Result<GuestDisplay, DisplayError> {
        Ok(GuestDisplay {
            reader: FramebufferReader::open(fd)?,
            size: (0, 0),
            pending: Pending::Whole,
        })
    }

    /// The framebuffer's memfd (for a console surface, which maps it for itself).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.reader.fd()
    }

    /// The guest's current mode (0x0: none), read without copying pixels.
    pub fn geometry(&self) -> Result<(u32, u32), DisplayError> {
        let (width, height, _, _) = self.reader.geometry()?;
        Ok((width, height))
    }

    /// A frame was published with `rect` changed.
    pub fn damage(&mut self, rect: Rect) {
        self.pending = match self.pending {
            Pending::Nothing => Pending::Rect(rect),
            Pending::Rect(old) => Pending::Rect(union(old, rect)),
            Pending::Whole => Pending::Whole,
        };
    }

    /// Everything may have changed (a new mode, missed events, a new framebuffer).
    pub fn invalidate(&mut self) {
        self.pending = Pending::Whole;
    }

    /// Whether a refresh would copy anything.
    pub fn is_pending(&self) -> bool {
        self.pending != Pending::Nothing
    }

    /// Copies out what changed since the last refresh.
    pub fn refresh(&mut self) -> Result<Refresh, DisplayError> {
        let pending = std::mem::replace(&mut self.pending, Pending::Nothing);
        match pending {
            Pending::Nothing => Ok(Refresh::Nothing),
            Pending::Rect(rect)
                if self.size != (0, 0) && rect.fits_in(self.size.0, self.size.1) =>
            {
                match self.reader.read_rect(rect) {
                    Ok(mut frame) if (frame.width, frame.height) == self.size => {
                        to_rgba(frame.format, &mut frame.pixels)?;
                        Ok(Refresh::Part {
                            rect: frame.rect,
                            rgba: frame.pixels,
                        })
                    }
                    // The mode changed under the damage: the whole new frame is what to show.
                    Ok(_) | Err(framebuffer::Error::RectOutOfBounds { .. }) => self.whole(),
                    Err(e) => Err(e.into()),
                }
            }
            Pending::Rect(_) | Pending::Whole => self.whole(),
        }
    }

    fn whole(&mut self) -> Result<Refresh, DisplayError> {
        let mut frame = self.reader.read_frame()?;
        if frame.width == 0 || frame.height == 0 {
            self.size = (0, 0);
            return Ok(Refresh::Off);
        }
        to_rgba(frame.format, &mut frame.pixels)?;
        self.size = (frame.width, frame.height);
        Ok(Refresh::Whole {
            width: frame.width,
            height: frame.height,
            rgba: frame.pixels,
        })
    }
}

fn to_rgba(format: u32, pixels: &mut [u8]) -> Result<(), DisplayError> {
    Format::from_code(format)
        .ok_or(DisplayError::UnknownFormat(format))?
        .to_rgba_in_place(pixels);
    Ok(())
}

/// The smallest rectangle holding both.
fn union(a: Rect, b: Rect) -> Rect {
    if a.is_empty() {
        return b;
    }
    if b.is_empty() {
        return a;
    }
    let (x0, y0) = (a.x.min(b.x), a.y.min(b.y));
    let x1 = a.x.saturating_add(a.width).max(b.x.saturating_add(b.width));
    let y1 =
        a.y.saturating_add(a.height)
            .max(b.y.saturating_add(b.height));
    Rect::new(x0, y0, x1 - x0, y1 - y0)
}

/// Puts `rgba` (`rect.width * 4` bytes a row) at `rect` of `picture`, an RGBA picture
/// `picture_width` pixels wide. Rows or columns outside the picture are left out.
pub fn blit(picture: &mut [u8], picture_width: u32, rect: Rect, rgba: &[u8]) {
    let width = picture_width as usize;
    if width == 0 {
        return;
    }
    let height = picture.len() / (width * 4);
    let (x, y) = (rect.x as usize, rect.y as usize);
    if x >= width {
        return;
    }
    let columns = (rect.width as usize).min(width - x);
    let src_row = rect.width as usize * 4;
    for row in 0..rect.height as usize {
        if y + row >= height {
            break;
        }
        let Some(src) = rgba.get(row * src_row..row * src_row + columns * 4) else {
            break;
        };
        let at = ((y + row) * width + x) * 4;
        picture[at..at + columns * 4].copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_display::framebuffer::FramebufferWriter;

    /// A B8G8R8X8 framebuffer (what the probe and Linux's driver use) and a display reading it.
    fn pair(width: u32, height: u32) -> (FramebufferWriter, GuestDisplay) {
        let writer = FramebufferWriter::new(width, height, Format::B8G8R8X8 as u32).unwrap();
        let fd = writer.fd().try_clone_to_owned().unwrap();
        (writer, GuestDisplay::open(fd).unwrap())
    }

    /// `n` BGRX pixels of one colour.
    fn bgrx(n: usize, [r, g, b]: [u8; 3]) -> Vec<u8> {
        [b, g, r, 0].repeat(n)
    }

    #[test]
    fn the_first_refresh_is_the_whole_frame_as_rgba() {
        let (mut writer, mut display) = pair(2, 1);
        writer
            .update(
                Rect::new(0, 0, 2, 1),
                &[0x10, 0x20, 0x30, 0x00, 0xff, 0x00, 0x00, 0x00],
                8,
            )
            .unwrap();
        assert_eq!(display.geometry().unwrap(), (2, 1));
        assert_eq!(
            display.refresh().unwrap(),
            Refresh::Whole {
                width: 2,
                height: 1,
                rgba: vec![0x30, 0x20, 0x10, 0xff, 0x00, 0x00, 0xff, 0xff],
            }
        );
        assert_eq!(display.refresh().unwrap(), Refresh::Nothing, "nothing new");
        assert!(!display.is_pending());
    }

    #[test]
    fn damage_copies_only_the_damaged_rectangles() {
        let (mut writer, mut display) = pair(4, 4);
        assert!(matches!(display.refresh().unwrap(), Refresh::Whole { .. }));
        // The writer's source image has the frame's origin: a 4x4 image, red at 1,1 and green
        // at 2,2, published one pixel at a time.
        let mut image = bgrx(16, [0, 0, 0]);
        image[(4 + 1) * 4..][..4].copy_from_slice(&bgrx(1, [255, 0, 0]));
        image[(2 * 4 + 2) * 4..][..4].copy_from_slice(&bgrx(1, [0, 255, 0]));
        writer.update(Rect::new(1, 1, 1, 1), &image, 16).unwrap();
        writer.update(Rect::new(2, 2, 1, 1), &image, 16).unwrap();
        display.damage(Rect::new(1, 1, 1, 1));
        display.damage(Rect::new(2, 2, 1, 1));
        let Refresh::Part { rect, rgba } = display.refresh().unwrap() else {
            panic!("a part");
        };
        assert_eq!(rect, Rect::new(1, 1, 2, 2), "the union of both");
        assert_eq!(
            rgba,
            [
                [255, 0, 0, 255],
                [0, 0, 0, 255],
                [0, 0, 0, 255],
                [0, 255, 0, 255]
            ]
            .concat()
        );
    }

    #[test]
    fn a_new_mode_gives_a_whole_frame_of_the_new_size() {
        let (mut writer, mut display) = pair(4, 4);
        assert!(matches!(display.refresh().unwrap(), Refresh::Whole { .. }));
        writer.resize(8, 2, Format::B8G8R8X8 as u32).unwrap();
        // Damage in the new mode, outside the old one: the whole new frame.
        display.damage(Rect::new(6, 0, 2, 2));
        let Refresh::Whole {
            width,
            height,
            rgba,
        } = display.refresh().unwrap()
        else {
            panic!("a whole frame");
        };
        assert_eq!((width, height, rgba.len()), (8, 2, 64));
        // Damage inside both sizes, after another mode change: whole again.
        writer.resize(2, 2, Format::B8G8R8X8 as u32).unwrap();
        display.damage(Rect::new(0, 0, 1, 1));
        assert!(matches!(
            display.refresh().unwrap(),
            Refresh::Whole {
                width: 2,
                height: 2,
                ..
            }
        ));
    }

    #[test]
    fn blit_puts_a_rectangle_in_place_and_clips_it() {
        let mut picture = vec![0u8; 3 * 2 * 4];
        blit(
            &mut picture,
            3,
            Rect::new(1, 0, 1, 2),
            &[1, 1, 1, 1, 2, 2, 2, 2],
        );
        assert_eq!(&picture[4..8], &[1, 1, 1, 1]);
        assert_eq!(&picture[16..20], &[2, 2, 2, 2]);
        assert_eq!(picture.iter().filter(|b| **b != 0).count(), 8);
        // Partly outside: only the inside is written, nothing panics.
        blit(&mut picture, 3, Rect::new(2, 1, 2, 2), &[9; 16]);
        assert_eq!(&picture[20..24], &[9, 9, 9, 9]);
        blit(&mut picture, 3, Rect::new(5, 5, 1, 1), &[7; 4]);
        assert!(!picture.contains(&7));
    }

    #[test]
    fn union_covers_both_rectangles() {
        assert_eq!(
            union(Rect::new(0, 0, 2, 2), Rect::new(5, 1, 1, 4)),
            Rect::new(0, 0, 6, 5)
        );
        assert_eq!(
            union(Rect::new(0, 0, 0, 0), Rect::new(3, 3, 1, 1)),
            Rect::new(3, 3, 1, 1)
        );
    }
}
