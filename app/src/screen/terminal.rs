//! A running container's terminal in its details pane: a shell in the container through
//! `berthctl exec -it`, run on a pseudo-terminal of the window's and drawn by `iced_term`
//! (alacritty's terminal emulator on an iced canvas). Colours, the cursor keys, Ctrl+C and the
//! pane's size reach the container's process as they would from a desktop terminal: berthctl
//! passes its terminal's raw bytes and size (again on SIGWINCH) to the container's own.
//! Its `update` returns an optional [`Event`] for the application, as every screen's does.
//!
//! **Decision: iced_term rather than a terminal of our own**: it is maintained for iced 0.14, its
//! emulation is alacritty's (the well-kept parser and grid users trust), and it runs a program
//! on a pty it makes itself, which is exactly berthctl's `exec -it`; writing an emulator would
//! be weeks for a worse one.

use std::path::Path;

use iced::widget::container;
use iced::{Element, Length, Subscription, Task};

use crate::data::programs::program;

/// The shell a terminal starts: the container's bash where it has one, as Docker Desktop's
/// Exec tab picks, else its sh.
const SHELL: &str = "command -v bash >/dev/null 2>&1 && exec bash || exec sh";

/// How tall the terminal is in the details pane (logical pixels), about 24 lines.
pub const HEIGHT: f32 = 420.0;

#[derive(Debug, Clone)]
pub enum Message {
    Widget(iced_term::Event),
}

/// What the terminal asks of the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The shell ended (exit, or the container stopped): the terminal closes.
    Ended,
}

/// The terminal of one container.
pub struct Terminal {
    /// The container's id.
    container: String,
    widget: iced_term::Terminal,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// A shell in container `id`, through the daemon at `socket`; the task gives it the
    /// keyboard.
    pub fn open(id: &str, socket: &Path) -> Result<(Terminal, Task<Message>), String> {
        let settings = iced_term::settings::Settings {
            backend: iced_term::settings::BackendSettings {
                program: program("berthctl", None).to_string_lossy().into_owned(),
                args: vec![
                    "--socket".into(),
                    socket.to_string_lossy().into_owned(),
                    "exec".into(),
                    "-it".into(),
                    id.into(),
                    "sh".into(),
                    "-c".into(),
                    SHELL.into(),
                ],
                ..Default::default()
            },
            ..Default::default()
        };
        let widget = iced_term::Terminal::new(0, settings)
            .map_err(|e| format!("cannot open a terminal for the container: {e}"))?;
        let focus = iced_term::TerminalView::focus(widget.widget_id().clone());
        Ok((
            Terminal {
                container: id.to_owned(),
                widget,
            },
            focus,
        ))
    }

    /// The id of the container it is a shell in.
    pub fn container(&self) -> &str {
        &self.container
    }

    pub fn update(&mut self, message: Message) -> Option<Event> {
        let Message::Widget(iced_term::Event::BackendCall(_, command)) = message;
        match self
            .widget
            .handle(iced_term::Command::ProxyToBackend(command))
        {
            iced_term::actions::Action::Shutdown => Some(Event::Ended),
            _ => None,
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        container(iced_term::TerminalView::show(&self.widget).map(Message::Widget))
            .width(Length::Fill)
            .height(HEIGHT)
            .into()
    }

    /// What the shell writes, and its end.
    pub fn subscription(&self) -> Subscription<Message> {
        self.widget.subscription().map(Message::Widget)
    }
}
