//! The pieces the window's forms share: a labelled field row and the style of a problem
//! message, so every form lines up and warns the same way.

use iced::widget::{row, text};
use iced::{Alignment, Element, Length, Theme};

/// `Label      [input…]`, labels in one 120-pixel column.
pub fn field<'a, Message: 'a>(
    label: &'static str,
    input: impl Into<Element<'a, Message>>,
) -> Element<'a, Message> {
    row![text(label).width(Length::Fixed(120.0)), input.into()]
        .spacing(10)
        .align_y(Alignment::Center)
        .into()
}

/// Text in the theme's danger colour: validation problems, refusals, overcommitment.
pub fn danger(theme: &Theme) -> text::Style {
    text::Style {
        color: Some(theme.palette().danger),
    }
}
