//! Berth's icon, as `assets/render-icons` renders it: the window's icon (X11 `_NET_WM_ICON`;
//! a Wayland compositor takes the desktop entry's instead) and the About dialog's picture.

use iced::widget::image;

const PNG_64: &[u8] = include_bytes!("../../assets/icons/hicolor/64x64/apps/dev.berth.Berth.png");
const PNG_128: &[u8] =
    include_bytes!("../../assets/icons/hicolor/128x128/apps/dev.berth.Berth.png");

/// A decoded picture: width, height, RGBA pixels.
struct Rgba {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

/// Decodes one of the embedded PNGs to 8-bit RGBA (`None` should it not be one: the window
/// then goes without an icon rather than failing).
fn decode(png: &[u8]) -> Option<Rgba> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().ok()?;
    let mut buffer = vec![0; reader.output_buffer_size()?];
    let frame = reader.next_frame(&mut buffer).ok()?;
    buffer.truncate(frame.buffer_size());
    let pixels = match frame.color_type {
        png::ColorType::Rgba => buffer,
        png::ColorType::Rgb => buffer
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 0xff])
            .collect(),
        _ => return None,
    };
    Some(Rgba {
        width: frame.width,
        height: frame.height,
        pixels,
    })
}

/// The window's icon.
pub fn window_icon() -> Option<iced::window::Icon> {
    let icon = decode(PNG_64)?;
    iced::window::icon::from_rgba(icon.pixels, icon.width, icon.height).ok()
}

/// The About dialog's picture, decoded once: the view asks for it at every redraw, and one
/// handle (one id) is uploaded to the renderer once.
pub fn about_picture() -> Option<image::Handle> {
    static PICTURE: std::sync::OnceLock<Option<image::Handle>> = std::sync::OnceLock::new();
    PICTURE
        .get_or_init(|| {
            let icon = decode(PNG_128)?;
            Some(image::Handle::from_rgba(
                icon.width,
                icon.height,
                icon.pixels,
            ))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_icons_decode_to_opaque_pictures_of_their_size() {
        for (png, size) in [(PNG_64, 64), (PNG_128, 128)] {
            let icon = decode(png).expect("an RGBA PNG");
            assert_eq!((icon.width, icon.height), (size, size));
            assert_eq!(icon.pixels.len(), (size * size * 4) as usize);
            // The middle of the icon is drawn, not transparent.
            let middle = ((size / 2) * size + size / 2) as usize * 4;
            assert!(icon.pixels[middle + 3] > 0, "transparent middle");
        }
        assert!(window_icon().is_some());
    }
}
