//! A gauge: a label, a bar filled to a ratio, the percentage, and a note. Beyond 100 %
//! (overcommitment) the bar turns to the danger colour, above 85 % to the warning colour.
//! Plain quads, like the sparkline, so it draws alike on wgpu and tiny-skia.

use iced::widget::{Space, container, row, text};
use iced::{Alignment, Element, Length, Theme};

const BAR_WIDTH: f32 = 160.0;

/// `label  [██████░░░░]  50%  note`.
pub fn gauge<'a, Message: 'a>(
    label: impl Into<String>,
    ratio: f64,
    note: impl Into<String>,
) -> Element<'a, Message> {
    let filled = (ratio.clamp(0.0, 1.0) as f32 * BAR_WIDTH).round();
    let bar = container(
        container(Space::new())
            .width(Length::Fixed(filled))
            .height(Length::Fixed(12.0))
            .style(move |theme: &Theme| {
                let palette = theme.extended_palette();
                let color = if ratio > 1.0 {
                    palette.danger.base.color
                } else if ratio > 0.85 {
                    palette.warning.base.color
                } else {
                    palette.primary.base.color
                };
                container::Style::default().background(color)
            }),
    )
    .width(Length::Fixed(BAR_WIDTH))
    .style(|theme: &Theme| {
        container::Style::default().background(theme.extended_palette().background.strong.color)
    });
    row![
        text(label.into()).width(Length::Fixed(70.0)),
        bar,
        text(crate::data::percent(ratio)).width(Length::Fixed(48.0)),
        text(note.into()).size(13),
    ]
    .spacing(10)
    .align_y(Alignment::Center)
    .into()
}
