//! The VM console: the guest's display in the space it is given, with its aspect kept: scaled to
//! it (the details pane's preview), pixel for pixel when it fits and scaled down when not (the
//! VM view), or pixel for pixel and scrolled (actual size); framed in the accent colour while
//! it has the keyboard. The pointer over the picture is reported in the guest tablet's
//! coordinates; a press takes the keyboard.
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

use berth_display::resample::Scaling;
use iced::widget::{container, image, mouse_area, responsive, scrollable, sensor, space, text};
use iced::{Border, ContentFit, Element, Length, Point, Size, Theme, mouse};
use iced_runtime::image::Allocation;

use berth_api::input::tablet_position_shown;

use crate::data::console::{Pointer, Sizing};
use crate::surface::SurfaceHandle;
use crate::widget::surface_area::surface_area;
use crate::widget::surface_clip::surface_clip_with_bars;

/// The border drawn around the picture, in pixels.
const FRAME: f32 = 2.0;

/// The width of the scrollbars at actual size, in pixels.
const SCROLLBAR: f32 = 10.0;

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

/// The console of a VM showing `shown` (none yet: the guest has not drawn), sized by `sizing`
/// at the window's `scale` (physical pixels per logical one: a picture shown pixel for pixel is
/// drawn at device pixels); `focused` when it has the keyboard; `on_pointer` for what the mouse
/// does over it, `on_resize` for the size of the picture's area.
pub fn console<'a, Message: Clone + 'a>(
    shown: Option<Shown<'a>>,
    focused: bool,
    sizing: Sizing,
    scale: f32,
    on_pointer: impl Fn(Pointer) -> Message + Clone + 'a,
    on_resize: impl Fn(Size) -> Message + 'a,
) -> Element<'a, Message> {
    let area = responsive(move |area| {
        let display = shown
            .as_ref()
            .map(Shown::display)
            .filter(|&(w, h)| w > 0 && h > 0);
        let inner = Size::new(
            (area.width - 2.0 * FRAME).max(0.0),
            (area.height - 2.0 * FRAME).max(0.0),
        );
        let framed = |content: Element<'a, Message>| {
            container(content)
                .center(Length::Fill)
                .padding(FRAME)
                .style(move |theme: &Theme| frame_style(theme, focused))
        };
        let Some(display) = display else {
            return framed(
                text("The guest has not drawn anything yet.")
                    .size(14)
                    .into(),
            )
            .into();
        };
        match sizing {
            Sizing::Actual => {
                // The picture at its own size in device pixels, scrolled: never smaller than
                // the display once rounded to the window's pixels (so never scaled).
                let size = Size::new(
                    (display.0 as f32 / scale).ceil(),
                    (display.1 as f32 / scale).ceil(),
                );
                let picture = pointed(
                    picture(shown.clone(), size, Scaling::Shrink, true),
                    size,
                    size,
                    on_pointer.clone(),
                );
                let bar = scrollable::Scrollbar::default()
                    .width(SCROLLBAR)
                    .scroller_width(SCROLLBAR);
                let scrolled = scrollable(picture).direction(scrollable::Direction::Both {
                    vertical: bar,
                    horizontal: bar,
                });
                let surface = match &shown {
                    Some(Shown::Surface { handle, .. }) => Some(handle.clone()),
                    _ => None,
                };
                // Scrollbars on both sides float over the picture: the surface leaves them
                // clear where the picture overflows.
                let bars = Size::new(
                    if size.height > inner.height {
                        SCROLLBAR
                    } else {
                        0.0
                    },
                    if size.width > inner.width {
                        SCROLLBAR
                    } else {
                        0.0
                    },
                );
                framed(surface_clip_with_bars(scrolled, surface, bars)).into()
            }
            Sizing::Preview | Sizing::Fit => {
                let pixels = |logical: f32| (logical * scale).floor().max(0.0) as u32;
                let drawn = sizing
                    .scaling()
                    .size(display, (pixels(inner.width), pixels(inner.height)));
                let drawn = Size::new(drawn.0 as f32 / scale, drawn.1 as f32 / scale);
                pointed(
                    framed(picture(shown.clone(), drawn, sizing.scaling(), false)).into(),
                    area,
                    drawn,
                    on_pointer.clone(),
                )
            }
        }
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

/// What draws the picture: the renderer's image, `drawn` large (logical pixels), or the
/// surface's area (which centres the picture itself, scaled by `scaling`), `drawn` large when
/// `scrolled`.
fn picture<'a, Message: 'a>(
    shown: Option<Shown<'a>>,
    drawn: Size,
    scaling: Scaling,
    scrolled: bool,
) -> Element<'a, Message> {
    match shown {
        Some(Shown::Picture {
            picture, fitted, ..
        }) => image(picture.handle().clone())
            .content_fit(ContentFit::Fill)
            .filter_method(if fitted {
                image::FilterMethod::Nearest
            } else {
                image::FilterMethod::Linear
            })
            .width(Length::Fixed(drawn.width))
            .height(Length::Fixed(drawn.height))
            .into(),
        // In a scrolled pane (actual size) the area is the picture's size; else it is the
        // whole space, where the surface centres the picture itself.
        Some(Shown::Surface { handle, .. }) if scrolled => container(surface_area(handle, scaling))
            .width(Length::Fixed(drawn.width))
            .height(Length::Fixed(drawn.height))
            .into(),
        Some(Shown::Surface { handle, .. }) => surface_area(handle, scaling),
        None => space::horizontal().into(),
    }
}

/// `content` (`area` large, the picture `drawn` large and centred in it) reporting what the
/// mouse does over it in the guest tablet's terms.
fn pointed<'a, Message: Clone + 'a>(
    content: Element<'a, Message>,
    area: Size,
    drawn: Size,
    on_pointer: impl Fn(Pointer) -> Message + Clone + 'a,
) -> Element<'a, Message> {
    let moved = on_pointer.clone();
    let area = (f64::from(area.width), f64::from(area.height));
    let drawn = (f64::from(drawn.width), f64::from(drawn.height));
    mouse_area(content)
        .on_move(move |at: Point| {
            let at = (f64::from(at.x), f64::from(at.y));
            moved(match tablet_position_shown(at, area, drawn) {
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
