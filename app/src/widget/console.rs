//! The VM console: the guest's display scaled to fit the space it is given with its aspect kept,
//! framed in the accent colour while it has the keyboard. The pointer over the picture is
//! reported in the guest tablet's coordinates; a press takes the keyboard.
//!
//! The picture is an image handle the application allocated explicitly (`image::allocate`)
//! before showing it: a handle drawn without that may be uploaded a frame late, and a new
//! `Handle::from_rgba` every frame above ~2 MiB flickers or stays blank in iced 0.14 (iced#3381,
//! #3173). The image widget draws on both renderers (wgpu and tiny-skia), where a shader widget
//! draws nothing on tiny-skia.
//!
//! The console reports the size of its picture area (`on_resize`, logical pixels): the
//! application scales frames to it, and a picture already `fitted` is drawn pixel for pixel
//! (nearest) rather than filtered again.
//!
//! On X11 the picture is not the renderer's at all: a console surface (`crate::surface`)
//! draws it over the area this widget keeps for it (`surface_area`).

use iced::widget::{container, image, mouse_area, responsive, sensor, text};
use iced::{Border, ContentFit, Element, Length, Point, Size, Theme, mouse};
use iced_runtime::image::Allocation;

use berth_api::input::tablet_position;

use crate::data::console::Pointer;
use crate::surface::SurfaceHandle;
use crate::widget::surface_area::surface_area;

/// The border drawn around the picture, in pixels.
const FRAME: f32 = 2.0;

/// What the console shows of a `display`-sized guest display.
#[derive(Debug, Clone)]
pub enum Shown<'a> {
    /// The picture the renderer allocated, and whether it was scaled to the area it is drawn in.
    Picture {
        picture: &'a Allocation,
        display: (u32, u32),
        fitted: bool,
    },
    /// A console surface draws it.
    Surface {
        handle: SurfaceHandle,
        display: (u32, u32),
    },
}

impl Shown<'_> {
    fn display(&self) -> (u32, u32) {
        match self {
            Shown::Picture { display, .. } | Shown::Surface { display, .. } => *display,
        }
    }
}

/// The console of a VM showing `shown` (none yet: the guest has not drawn); `focused` when it
/// has the keyboard; `on_pointer` for what the mouse does over it, `on_resize` for the size
/// of the picture's area.
pub fn console<'a, Message: Clone + 'a>(
    shown: Option<Shown<'a>>,
    focused: bool,
    on_pointer: impl Fn(Pointer) -> Message + Clone + 'a,
    on_resize: impl Fn(Size) -> Message + 'a,
) -> Element<'a, Message> {
    let area = responsive(move |area| {
        let on_pointer = on_pointer.clone();
        let display = shown
            .as_ref()
            .map(Shown::display)
            .filter(|&(w, h)| w > 0 && h > 0);
        let content: Element<'a, Message> = match shown.clone() {
            Some(Shown::Picture {
                picture, fitted, ..
            }) => image(picture.handle().clone())
                .content_fit(ContentFit::ScaleDown)
                .filter_method(if fitted {
                    image::FilterMethod::Nearest
                } else {
                    image::FilterMethod::Linear
                })
                .width(Length::Fill)
                .height(Length::Fill)
                .into(),
            Some(Shown::Surface { handle, .. }) if display.is_some() => surface_area(handle),
            _ => text("The guest has not drawn anything yet.")
                .size(14)
                .into(),
        };
        let inner = (
            f64::from(area.width - 2.0 * FRAME),
            f64::from(area.height - 2.0 * FRAME),
        );
        let moved = on_pointer.clone();
        mouse_area(
            container(content)
                .center(Length::Fill)
                .padding(FRAME)
                .style(move |theme: &Theme| frame_style(theme, focused)),
        )
        .on_move(move |at: Point| {
            let at = (f64::from(at.x - FRAME), f64::from(at.y - FRAME));
            moved(match display.and_then(|s| tablet_position(at, inner, s)) {
                Some((x, y)) => Pointer::Move { x, y },
                None => Pointer::Outside,
            })
        })
        .on_press(on_pointer(Pointer::Button {
            button: mouse::Button::Left,
            pressed: true,
        }))
        .on_release(on_pointer(Pointer::Button {
            button: mouse::Button::Left,
            pressed: false,
        }))
        .on_right_press(on_pointer(Pointer::Button {
            button: mouse::Button::Right,
            pressed: true,
        }))
        .on_right_release(on_pointer(Pointer::Button {
            button: mouse::Button::Right,
            pressed: false,
        }))
        .on_scroll(move |delta| {
            on_pointer(Pointer::Wheel(match delta {
                mouse::ScrollDelta::Lines { y, .. } => y.round() as i32,
                mouse::ScrollDelta::Pixels { y, .. } => (y / 40.0).round() as i32,
            }))
        })
        .into()
    });
    sensor(area)
        .on_resize(move |size| {
            on_resize(Size::new(
                (size.width - 2.0 * FRAME).max(0.0),
                (size.height - 2.0 * FRAME).max(0.0),
            ))
        })
        .into()
}

fn frame_style(theme: &Theme, focused: bool) -> container::Style {
    let palette = theme.extended_palette();
    container::Style::default()
        .background(iced::Color::BLACK)
        .color(palette.background.base.text)
        .border(Border {
            color: if focused {
                palette.primary.strong.color
            } else {
                palette.background.strong.color
            },
            width: FRAME,
            radius: 0.0.into(),
        })
}
