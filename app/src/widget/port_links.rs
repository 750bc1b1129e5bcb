//! Published ports as links: each TCP port opens `http://HOST:PORT/` in the desktop's browser,
//! as Docker Desktop's port column does; UDP ports are listed as text.

use berth_api::network::PortForward;
use iced::widget::{button, row, text};
use iced::{Alignment, Element, Theme};

/// `label` followed by one link per port (`http://127.0.0.1:8080/ → 80`); `open` makes the
/// message that opens a link's address.
pub fn port_links<'a, Message: Clone + 'a>(
    label: String,
    ports: &[PortForward],
    open: impl Fn(String) -> Message,
) -> Element<'a, Message> {
    ports
        .iter()
        .fold(
            row![text(label).size(14)]
                .spacing(6)
                .align_y(Alignment::Center),
            |line, port| match port.url() {
                Some(url) => line.push(
                    button(
                        text(format!("{url} → {}", port.target_port))
                            .size(14)
                            .style(|theme: &Theme| text::Style {
                                color: Some(theme.palette().primary),
                            }),
                    )
                    .style(button::text)
                    .padding([2, 4])
                    .on_press(open(url)),
                ),
                None => line.push(text(port.published()).size(14)),
            },
        )
        .into()
}
