//! A frame of the guest's screen scaled to the size a window shows it at, as RGBA.
//!
//! Why here and not in the renderer: a software renderer (tiny-skia, what iced uses without a
//! GPU) converts every pixel of an image it is given and then samples it in floating point, so
//! a 1920x1080 screen shown in a 739x416 pane cost the window 87 % of a core at 44 frames a
//! second. Scaling once, in integers, to exactly the pane's pixels leaves the renderer a copy.
//! The filter is bilinear, as the renderer's was: the same picture, at a fraction of the work.

use crate::framebuffer::FrameView;
use crate::gpu::Format;

/// The size, in pixels, a `screen` is drawn at to fit in `area` with its aspect kept: as large
/// as fits, at least 1x1; `screen` itself when either is empty.
pub fn fit(screen: (u32, u32), area: (u32, u32)) -> (u32, u32) {
    let ((sw, sh), (aw, ah)) = (screen, area);
    if sw == 0 || sh == 0 || aw == 0 || ah == 0 {
        return screen;
    }
    // Compare aw/sw with ah/sh in integers: the limiting side fills the area exactly.
    let (w, h) = if u64::from(aw) * u64::from(sh) <= u64::from(ah) * u64::from(sw) {
        (aw, (u64::from(sh) * u64::from(aw) / u64::from(sw)) as u32)
    } else {
        ((u64::from(sw) * u64::from(ah) / u64::from(sh)) as u32, ah)
    };
    (w.max(1), h.max(1))
}

/// Where destination pixels sample the source along one axis: for each, the two neighbours
/// and the weight of the second, out of 256.
fn taps(from: u32, to: u32) -> Vec<(usize, usize, u32)> {
    let last = from.saturating_sub(1) as usize;
    (0..to)
        .map(|d| {
            // Pixel centres line up: source coordinate of the destination pixel's centre.
            let at = ((f64::from(d) + 0.5) * f64::from(from) / f64::from(to) - 0.5).max(0.0);
            let first = (at.floor() as usize).min(last);
            let second = (first + 1).min(last);
            let weight = ((at - first as f64) * 256.0) as u32;
            (first, second, weight.min(255))
        })
        .collect()
}

/// Blends two pixels of four 8-bit channels, `b` weighted `w` out of 256: two channels at a
/// time, each in 16 bits of a `u32` so the products cannot carry into the next.
fn blend(a: u32, b: u32, w: u32) -> u32 {
    let keep = 256 - w;
    let even = ((a & 0x00ff_00ff) * keep + (b & 0x00ff_00ff) * w) >> 8;
    let odd = (((a >> 8) & 0x00ff_00ff) * keep + ((b >> 8) & 0x00ff_00ff) * w) >> 8;
    (even & 0x00ff_00ff) | ((odd & 0x00ff_00ff) << 8)
}

/// Moves a pixel's channels into RGBA order (as a little-endian word), opaque where the
/// format has no alpha: shifts worked out once per frame instead of byte indexing per pixel.
#[derive(Clone, Copy)]
struct Swizzle {
    shifts: [u32; 3],
    alpha: Option<u32>,
}

impl Swizzle {
    fn new(format: Format) -> Swizzle {
        let ([r, g, b], alpha) = format.layout();
        let shift = |byte: usize| byte as u32 * 8;
        Swizzle {
            shifts: [shift(r), shift(g), shift(b)],
            alpha: alpha.map(shift),
        }
    }

    #[inline]
    fn rgba(self, px: u32) -> u32 {
        let [r, g, b] = self.shifts;
        let alpha = self.alpha.map_or(0xff, |a| (px >> a) & 0xff);
        ((px >> r) & 0xff) | ((px >> g) & 0xff) << 8 | ((px >> b) & 0xff) << 16 | alpha << 24
    }
}

/// The frame `view` (pixels in `format`) scaled to `to` as RGBA, opaque where the format has
/// no alpha.
pub fn to_rgba(view: &FrameView<'_>, format: Format, to: (u32, u32)) -> Vec<u8> {
    let swizzle = Swizzle::new(format);
    let (width, height) = (view.width(), view.height());
    let (tw, th) = to;
    let mut out = vec![0; tw as usize * th as usize * 4];
    let rows = out.chunks_exact_mut(tw as usize * 4);
    if (tw, th) == (width, height) {
        // Shown at its own size: only the channels move.
        for (y, out) in rows.enumerate() {
            let row = view.row(y);
            for (x, dst) in out.chunks_exact_mut(4).enumerate() {
                dst.copy_from_slice(&swizzle.rgba(row.pixel(x)).to_le_bytes());
            }
        }
        return out;
    }
    let columns = taps(width, tw);
    for ((y0, y1, wy), out) in taps(height, th).into_iter().zip(rows) {
        let (top, bottom) = (view.row(y0), view.row(y1));
        for (&(x0, x1, wx), dst) in columns.iter().zip(out.chunks_exact_mut(4)) {
            let above = blend(top.pixel(x0), top.pixel(x1), wx);
            let below = blend(bottom.pixel(x0), bottom.pixel(x1), wx);
            dst.copy_from_slice(&swizzle.rgba(blend(above, below, wy)).to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framebuffer::{FramebufferReader, FramebufferWriter, Rect};

    /// `pixels` published in a real framebuffer, scaled through a view of it.
    fn scaled(
        pixels: &[u8],
        (width, height): (u32, u32),
        format: Format,
        to: (u32, u32),
    ) -> Vec<u8> {
        let mut writer = FramebufferWriter::new(width, height, format as u32).unwrap();
        writer
            .update(Rect::new(0, 0, width, height), pixels, width as usize * 4)
            .unwrap();
        let mut reader =
            FramebufferReader::open(writer.fd().try_clone_to_owned().unwrap()).unwrap();
        reader
            .view_frame(|view| to_rgba(view, format, to))
            .unwrap()
            .value
    }
    #[test]
    fn the_limiting_side_fills_the_area() {
        assert_eq!(fit((1280, 800), (900, 416)), (665, 416), "height limits");
        assert_eq!(fit((1280, 800), (640, 1000)), (640, 400), "width limits");
        assert_eq!(fit((64, 48), (640, 480)), (640, 480), "scaled up");
        assert_eq!(fit((1000, 1), (10, 10)), (10, 1), "never below one pixel");
        assert_eq!(fit((1920, 1080), (0, 416)), (1920, 1080), "no area yet");
    }

    /// A BGRX frame whose pixel (x, y) has red x, green y and blue 7.
    fn gradient(width: u32, height: u32) -> Vec<u8> {
        let mut pixels = Vec::new();
        for y in 0..height {
            for x in 0..width {
                pixels.extend_from_slice(&[7, y as u8, x as u8, 0]);
            }
        }
        pixels
    }

    #[test]
    fn at_its_own_size_only_the_channels_move() {
        let frame = gradient(3, 2);
        let out = scaled(&frame, (3, 2), Format::B8G8R8X8, (3, 2));
        assert_eq!(&out[..8], &[0, 0, 7, 0xff, 1, 0, 7, 0xff]);
        assert_eq!(&out[20..], &[2, 1, 7, 0xff], "the last pixel");
    }

    #[test]
    fn halving_averages_neighbours() {
        // Each destination pixel's centre falls between two source columns and two rows.
        let frame = gradient(4, 4);
        let out = scaled(&frame, (4, 4), Format::B8G8R8X8, (2, 2));
        assert_eq!(out.len(), 2 * 2 * 4);
        let px = |x: usize, y: usize| &out[(y * 2 + x) * 4..][..4];
        // Source columns 0 and 1 blended half and half: red 0.5, rounded down.
        assert_eq!(px(0, 0), &[0, 0, 7, 0xff]);
        assert_eq!(px(1, 1), &[2, 2, 7, 0xff], "columns and rows 2 and 3");
    }

    #[test]
    fn a_flat_colour_stays_exact_at_any_scale() {
        let frame: Vec<u8> = [0x20, 0x40, 0x80, 0x00].repeat(1280 * 800);
        for to in [(665, 416), (1920, 1200), (1, 1)] {
            let out = scaled(&frame, (1280, 800), Format::B8G8R8X8, to);
            assert_eq!(out.len(), to.0 as usize * to.1 as usize * 4);
            assert!(
                out.chunks_exact(4).all(|px| px == [0x80, 0x40, 0x20, 0xff]),
                "{to:?}"
            );
        }
    }

    #[test]
    fn alpha_comes_from_the_format() {
        let frame = [1, 2, 3, 4];
        assert_eq!(
            scaled(&frame, (1, 1), Format::R8G8B8A8, (2, 2)),
            [1, 2, 3, 4].repeat(4)
        );
        // A8R8G8B8: bytes A, R, G, B.
        assert_eq!(
            scaled(&frame, (1, 1), Format::A8R8G8B8, (1, 1)),
            [2, 3, 4, 1]
        );
    }
}
