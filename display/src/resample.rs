//! A frame of the guest's display scaled to the size a window shows it at, as RGBA (for the
//! renderer's image) or BGRX (for the window's console surface on X11).
//!
//! Why here and not in the renderer: a software renderer (tiny-skia, what iced uses without a
//! GPU) converts every pixel of an image it is given and then samples it in floating point, so
//! a 1920x1080 display shown in a 739x416 pane cost the window 87 % of a core at 44 frames a
//! second. Scaling once, in integers, to exactly the pane's pixels leaves the renderer a copy.
//! The filter is bilinear, as the renderer's was: the same picture, at a fraction of the work.

use crate::framebuffer::FrameView;
use crate::gpu::Format;

/// The size, in pixels, a `display` is drawn at to fit in `area` with its aspect kept: as large
/// as fits, at least 1x1; `display` itself when either is empty.
pub fn fit(display: (u32, u32), area: (u32, u32)) -> (u32, u32) {
    let ((sw, sh), (aw, ah)) = (display, area);
    if sw == 0 || sh == 0 || aw == 0 || ah == 0 {
        return display;
    }
    // Compare aw/sw with ah/sh in integers: the limiting side fills the area exactly.
    let (w, h) = if u64::from(aw) * u64::from(sh) <= u64::from(ah) * u64::from(sw) {
        (aw, (u64::from(sh) * u64::from(aw) / u64::from(sw)) as u32)
    } else {
        ((u64::from(sw) * u64::from(ah) / u64::from(sh)) as u32, ah)
    };
    (w.max(1), h.max(1))
}

/// How a display is sized into the area it is shown in (aspect always kept, centred).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scaling {
    /// Scaled to fill the area, up or down ([`fit`]): a preview, whatever the display's size.
    #[default]
    Fill,
    /// At its own size, pixel for pixel, when it fits; scaled down to fit when it does not
    /// (the screen view, as VirtualBox and virt-viewer show a guest).
    Shrink,
}

impl Scaling {
    /// The size, in pixels, a `display` is drawn at in `area` (`display` itself when either is
    /// empty).
    pub fn size(self, display: (u32, u32), area: (u32, u32)) -> (u32, u32) {
        match self {
            Scaling::Shrink if display.0 <= area.0 && display.1 <= area.1 => display,
            Scaling::Fill | Scaling::Shrink => fit(display, area),
        }
    }
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

/// How a scaled picture's pixels lie in memory, four bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Bytes R, G, B, A: what an image handle takes.
    Rgba,
    /// Bytes B, G, R and one unused (written 0xff): an X server's 24-bit TrueColor pixels on a
    /// little-endian machine (masks 0xff0000, 0xff00, 0xff), what the console surface puts.
    Bgrx,
}

impl Order {
    /// Byte positions of red, green, blue and alpha (or the unused byte).
    fn layout(self) -> [usize; 4] {
        match self {
            Order::Rgba => [0, 1, 2, 3],
            Order::Bgrx => [2, 1, 0, 3],
        }
    }
}

/// Moves a pixel's channels from the guest's format into the picture's order, opaque where the
/// format has no alpha: shifts worked out once per frame instead of byte indexing per pixel.
#[derive(Clone, Copy)]
struct Swizzle {
    /// Source and destination shifts of red, green and blue.
    channels: [(u32, u32); 3],
    /// Source and destination shifts of alpha (none in the source: opaque).
    alpha: (Option<u32>, u32),
    /// The channels already lie where they go: only this is ORed in (alpha made opaque).
    in_place: Option<u32>,
}

impl Swizzle {
    fn new(format: Format, order: Order) -> Swizzle {
        let ([r, g, b], alpha) = format.layout();
        let [dr, dg, db, da] = order.layout();
        let shift = |byte: usize| byte as u32 * 8;
        let channels = [
            (shift(r), shift(dr)),
            (shift(g), shift(dg)),
            (shift(b), shift(db)),
        ];
        // The X server ignores the unused byte; opaque all the same, never the guest's.
        let alpha = (alpha.filter(|_| order == Order::Rgba).map(shift), shift(da));
        let in_place = channels
            .iter()
            .all(|(from, to)| from == to)
            .then_some(match alpha {
                (None, to) => Some(0xff << to),
                (Some(from), to) if from == to => Some(0),
                _ => None,
            })
            .flatten();
        Swizzle {
            channels,
            alpha,
            in_place,
        }
    }

    /// Moves the channels of `px` (the general case; see `in_place`).
    #[inline]
    fn apply(self, px: u32) -> u32 {
        let [(r, dr), (g, dg), (b, db)] = self.channels;
        let (a, da) = self.alpha;
        let alpha = a.map_or(0xff, |a| (px >> a) & 0xff);
        ((px >> r) & 0xff) << dr | ((px >> g) & 0xff) << dg | ((px >> b) & 0xff) << db | alpha << da
    }
}

/// The frame `view` (pixels in `format`) scaled to `to` as RGBA, opaque where the format has
/// no alpha.
pub fn to_rgba(view: &FrameView<'_>, format: Format, to: (u32, u32)) -> Vec<u8> {
    let mut out = vec![0; to.0 as usize * to.1 as usize * 4];
    scale_into(view, format, to, Order::Rgba, &mut out);
    out
}

/// The frame `view` (pixels in `format`) scaled to `to`, written into `out` in `order`, rows
/// `to.0 * 4` bytes apart; rows past the end of `out` are left out.
pub fn scale_into(
    view: &FrameView<'_>,
    format: Format,
    to: (u32, u32),
    order: Order,
    out: &mut [u8],
) {
    if to.0 == 0 || to.1 == 0 {
        return;
    }
    // The conversion is picked once: the loops below are built for each.
    let swizzle = Swizzle::new(format, order);
    match swizzle.in_place {
        Some(opaque) => scale_rows(view, to, out, |px| px | opaque),
        None => scale_rows(view, to, out, |px| swizzle.apply(px)),
    }
}

/// [`scale_into`] with each pixel converted by `convert`.
#[inline(always)]
fn scale_rows(view: &FrameView<'_>, to: (u32, u32), out: &mut [u8], convert: impl Fn(u32) -> u32) {
    let (width, height) = (view.width(), view.height());
    let (tw, th) = to;
    let rows = out.chunks_exact_mut(tw as usize * 4).take(th as usize);
    if (tw, th) == (width, height) {
        // Shown at its own size: only the channels move.
        for (y, out) in rows.enumerate() {
            let row = view.row(y);
            for (x, dst) in out.chunks_exact_mut(4).enumerate() {
                dst.copy_from_slice(&convert(row.pixel(x)).to_le_bytes());
            }
        }
        return;
    }
    // Rows first: each output row blends two source rows copied out of the shared memory
    // (plain bytes, so the blend runs 16 bytes at a time), then its columns are sampled, each
    // output pixel from a pair of neighbours read at once.
    let columns: Vec<(usize, u32)> = taps(width, tw)
        .into_iter()
        .map(|(first, _, weight)| (first * 4, weight))
        .collect();
    // One pixel more than the row: the last pixel again, the neighbour of the last column.
    let row_bytes = width as usize * 4 + 4;
    let mut rows_copied = RowPair::new(row_bytes);
    let mut mixed = vec![0u8; row_bytes];
    for ((y0, y1, wy), out) in taps(height, th).into_iter().zip(rows) {
        let (top, bottom) = rows_copied.get(view, y0, y1);
        let source: &[u8] = if wy == 0 {
            top
        } else {
            mix_rows(top, bottom, wy, &mut mixed);
            &mixed
        };
        sample_row(source, &columns, out, &convert);
    }
}

/// One output row: each pixel blended from the pair of source pixels at its column's byte
/// offset in `source` (a row of pixels, four bytes each), converted, and written into `out`.
#[inline(always)]
fn sample_row(
    source: &[u8],
    columns: &[(usize, u32)],
    out: &mut [u8],
    convert: impl Fn(u32) -> u32,
) {
    for (&(at, wx), dst) in columns.iter().zip(out.chunks_exact_mut(4)) {
        let pair = source
            .get(at..at + 8)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map_or(0, u64::from_le_bytes);
        let (left, right) = (pair as u32, (pair >> 32) as u32);
        dst.copy_from_slice(&convert(blend(left, right, wx)).to_le_bytes());
    }
}

/// Two source rows copied out of the frame, kept while the next output row needs them again
/// (scaling up, neighbouring output rows sample the same pair).
struct RowPair {
    rows: [(Option<usize>, Vec<u8>); 2],
}

impl RowPair {
    fn new(row_bytes: usize) -> RowPair {
        RowPair {
            rows: [(None, vec![0; row_bytes]), (None, vec![0; row_bytes])],
        }
    }

    /// Rows `y0` and `y1` (copied unless already held), each followed by its last pixel again.
    fn get(&mut self, view: &FrameView<'_>, y0: usize, y1: usize) -> (&[u8], &[u8]) {
        // Keep whichever held row is wanted in its slot; the first slot holds `y0`.
        if self.rows[1].0 == Some(y0) || self.rows[0].0 == Some(y1) {
            self.rows.swap(0, 1);
        }
        for (slot, y) in [(0, y0), (1, y1)] {
            let (held, bytes) = &mut self.rows[slot];
            if *held != Some(y) {
                let len = bytes.len();
                view.row(y).copy_to(&mut bytes[..len - 4]);
                bytes.copy_within(len.saturating_sub(8)..len - 4, len - 4);
                *held = Some(y);
            }
        }
        (&self.rows[0].1, &self.rows[1].1)
    }
}

/// `out = top * (256 - w) / 256 + bottom * w / 256`, byte by byte (each product fits 16 bits:
/// the compiler runs this on whole vector registers).
fn mix_rows(top: &[u8], bottom: &[u8], w: u32, out: &mut [u8]) {
    let (w, keep) = (w as u16, 256 - w as u16);
    for ((o, &a), &b) in out.iter_mut().zip(top).zip(bottom) {
        *o = ((u16::from(a) * keep + u16::from(b) * w) >> 8) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::Scaling;

    #[test]
    fn shrink_keeps_a_display_that_fits_at_its_own_size_and_fill_scales_it_up() {
        assert_eq!(Scaling::Shrink.size((640, 480), (1000, 700)), (640, 480));
        assert_eq!(Scaling::Fill.size((640, 480), (1000, 700)), (933, 700));
        assert_eq!(Scaling::Shrink.size((640, 480), (640, 480)), (640, 480));
        // Too large on one side: scaled down, aspect kept.
        assert_eq!(Scaling::Shrink.size((1280, 800), (1000, 800)), (1000, 625));
        assert_eq!(Scaling::Shrink.size((0, 0), (100, 100)), (0, 0));
    }

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
    fn bgrx_is_what_an_x_server_takes() {
        // R8G8B8A8 bytes 1, 2, 3, 4 become B, G, R, 0xff: the unused byte is never the guest's.
        let mut writer = FramebufferWriter::new(1, 1, Format::R8G8B8A8 as u32).unwrap();
        writer
            .update(Rect::new(0, 0, 1, 1), &[1, 2, 3, 4], 4)
            .unwrap();
        let mut reader =
            FramebufferReader::open(writer.fd().try_clone_to_owned().unwrap()).unwrap();
        let mut out = [0u8; 2 * 2 * 4 + 3];
        reader
            .view_frame(|view| scale_into(view, Format::R8G8B8A8, (2, 2), Order::Bgrx, &mut out))
            .unwrap();
        assert_eq!(&out[..16], [3, 2, 1, 0xff].repeat(4).as_slice());
        assert_eq!(&out[16..], &[0, 0, 0], "nothing past the picture written");
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
