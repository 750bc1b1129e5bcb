//! About Berth: the window's version, licence and application id, the icon, and the daemon it
//! is connected to (its socket, mode and version, and whether the window started it).

use berth_api::host::DaemonMode;
use iced::widget::{button, column, image, row, text};
use iced::{Alignment, Element};

use berth::identity::{APP_ID, LICENSE, VERSION};

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Close,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Close,
}

pub fn update(message: Message) -> Option<Event> {
    match message {
        Message::Close => Some(Event::Close),
    }
}

/// The daemon the window is connected to, as far as it knows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Daemon {
    /// Its socket, when connected.
    pub socket: Option<String>,
    /// The window started it (`berthd --user`).
    pub started: bool,
    /// Its mode and version, once it has answered `host`.
    pub mode: Option<DaemonMode>,
    pub version: Option<String>,
}

impl Daemon {
    /// One line: "berthd 0.1.0, user mode, at /run/user/1000/berth/berthd.sock (started by
    /// Berth)", or that there is none.
    pub fn describe(&self) -> String {
        let Some(socket) = &self.socket else {
            return "not connected".into();
        };
        let mut line = String::from("berthd");
        if let Some(version) = &self.version {
            line += &format!(" {version}");
        }
        if let Some(mode) = &self.mode {
            line += &format!(", {mode} mode");
        }
        line += &format!(", at {socket}");
        if self.started {
            line += " (started by Berth)";
        }
        line
    }
}

pub fn view<'a>(daemon: &Daemon, icon: Option<image::Handle>) -> Element<'a, Message> {
    let mut heading = row![].spacing(16).align_y(Alignment::Center);
    if let Some(icon) = icon {
        heading = heading.push(image(icon).width(96).height(96));
    }
    heading = heading.push(column![
        text(format!("Berth {VERSION}")).size(26),
        text("Virtual machines and containers side by side, with live gauges").size(14),
    ]);
    column![
        heading,
        text(format!("Licence: {LICENSE}")),
        text(format!("Application id: {APP_ID}")),
        text(format!("Daemon: {}", daemon.describe())),
        button(text("Close")).on_press(Message::Close),
    ]
    .spacing(12)
    .padding(20)
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_line_says_what_is_known() {
        assert_eq!(Daemon::default().describe(), "not connected");
        let daemon = Daemon {
            socket: Some("/run/berth/berthd.sock".into()),
            started: false,
            mode: Some(DaemonMode::System),
            version: Some("0.1.0".into()),
        };
        assert_eq!(
            daemon.describe(),
            "berthd 0.1.0, system mode, at /run/berth/berthd.sock"
        );
        let started = Daemon {
            socket: Some("/run/user/1000/berth/berthd.sock".into()),
            started: true,
            mode: None,
            version: None,
        };
        assert_eq!(
            started.describe(),
            "berthd, at /run/user/1000/berth/berthd.sock (started by Berth)"
        );
    }
}
