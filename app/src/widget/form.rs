//! The piece the window's forms share: a labelled field row, so every form lines up (problems
//! are coloured by `theme::danger`).

use iced::widget::{row, text};
use iced::{Alignment, Element, Length};

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
