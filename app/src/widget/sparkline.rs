//! A sparkline: the last minute of one ratio as a strip of thin columns, one per sample,
//! newest on the right, scaled to 100 % (or to the largest value when above).
//!
//! Drawn with plain quads rather than a canvas: under Xvfb here, wgpu drew only one of several
//! canvases in a window (tiny-skia drew them all); quads draw the same on both renderers.

use iced::widget::{Space, container, row};
use iced::{Alignment, Element, Length, Theme};

/// A sparkline `width` pixels wide and 22 high.
pub fn sparkline<'a, Message: 'a>(
    values: impl Iterator<Item = f32>,
    width: f32,
) -> Element<'a, Message> {
    const HEIGHT: f32 = 22.0;
    let values: Vec<f32> = values.collect();
    let top = values.iter().copied().fold(1.0f32, f32::max);
    let column_width = width / crate::data::HISTORY as f32;
    let mut strip = row![]
        .align_y(Alignment::End)
        .height(Length::Fixed(HEIGHT))
        .width(Length::Fixed(width));
    // Empty slots on the left until a minute of samples has arrived.
    let missing = crate::data::HISTORY.saturating_sub(values.len());
    strip = strip.push(Space::new().width(Length::Fixed(column_width * missing as f32)));
    for value in values {
        let height = ((value / top).clamp(0.0, 1.0) * HEIGHT).max(1.0);
        strip = strip.push(
            container(Space::new())
                .width(Length::Fixed(column_width))
                .height(Length::Fixed(height))
                .style(|theme: &Theme| {
                    container::Style::default()
                        .background(theme.extended_palette().primary.base.color)
                }),
        );
    }
    container(strip)
        .style(|theme: &Theme| {
            container::Style::default().background(theme.extended_palette().background.weak.color)
        })
        .into()
}
