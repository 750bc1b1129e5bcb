//! The VM view: a running VM's display filling the window, the sidebar and the details given
//! way to a toolbar of the VM's actions, as VirtualBox's VM window and GNOME Boxes' display
//! show a guest. The display is shown pixel for pixel when it fits and scaled down when it
//! does not, or at actual size and scrolled; the window goes full screen on F11 or a button;
//! the guest's display follows the view's size unless that is turned off; who has the keyboard
//! is always in sight. Its `update` returns an optional [`Event`] for the application.

use berth_api::Request;
use berth_api::vm::{VmInfo, VmState};
use iced::widget::{button, checkbox, column, container, row, space, text};
use iced::{Alignment, Element, Length, Theme};

use crate::data::console::{Pointer, Sizing};
use crate::screen::console::ConsoleView;
use crate::widget::surface_clip::surface_unscrolled;

/// The keys Ctrl+Alt+Del is, as `vm key` names them.
const CTRL_ALT_DEL: &str = "ctrl+alt+delete";

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Back to the sidebar and the details.
    Back,
    Stop,
    Pause,
    Resume,
    CtrlAltDel,
    Screenshot,
    Detach,
    /// The display at its own size (scrolled), or fitted to the view.
    ActualSize(bool),
    /// The guest's display follows the view's size, or keeps its own.
    Follows(bool),
    /// The window full screen, or back in its frame.
    FullScreen(bool),
    /// The mouse did something over the display.
    Console(Pointer),
    /// The display's area has this size (logical pixels).
    Resized(iced::Size),
}

/// What the VM view asks of the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Close the VM view (and leave full screen).
    Back,
    /// Send this request; the string says what it does, for messages.
    Request(Request, String),
    /// Save a screenshot of VM `.0`'s display.
    Screenshot(String),
    /// Open VM `.0`'s display in a window of its own.
    Detach(String),
    /// The console is to size the display so, the guest following its area or not.
    Sizing(Sizing, bool),
    /// Make the window full screen, or not.
    FullScreen(bool),
    Console(Pointer),
    Resized(iced::Size),
}

#[derive(Debug, Clone, PartialEq)]
pub struct VmView {
    /// The VM shown.
    pub vm: String,
    pub actual_size: bool,
    pub follows: bool,
    pub full_screen: bool,
}

impl VmView {
    /// The view of VM `vm`: fitted, the guest following the view, in the window's frame.
    pub fn new(vm: String) -> VmView {
        VmView {
            vm,
            actual_size: false,
            follows: true,
            full_screen: false,
        }
    }

    /// How the console sizes the display here.
    pub fn sizing(&self) -> Sizing {
        if self.actual_size {
            Sizing::Actual
        } else {
            Sizing::Fit
        }
    }

    pub fn update(&mut self, message: Message) -> Option<Event> {
        let name = self.vm.clone();
        let request = |r: Request, what: &str| Some(Event::Request(r, format!("{what} VM {name}")));
        match message {
            Message::Back => Some(Event::Back),
            Message::Stop => request(
                Request::VmStop {
                    name: name.clone(),
                    force: false,
                    timeout_secs: None,
                },
                "stop",
            ),
            Message::Pause => request(Request::VmPause { name: name.clone() }, "pause"),
            Message::Resume => request(Request::VmResume { name: name.clone() }, "resume"),
            Message::CtrlAltDel => request(
                Request::VmKey {
                    name: name.clone(),
                    keys: CTRL_ALT_DEL.into(),
                },
                "send Ctrl+Alt+Del to",
            ),
            Message::Screenshot => Some(Event::Screenshot(name)),
            Message::Detach => Some(Event::Detach(name)),
            Message::ActualSize(on) => {
                self.actual_size = on;
                Some(Event::Sizing(self.sizing(), self.follows))
            }
            Message::Follows(on) => {
                self.follows = on;
                Some(Event::Sizing(self.sizing(), self.follows))
            }
            Message::FullScreen(on) => {
                self.full_screen = on;
                Some(Event::FullScreen(on))
            }
            Message::Console(pointer) => Some(Event::Console(pointer)),
            Message::Resized(size) => Some(Event::Resized(size)),
        }
    }

    /// The toolbar and the display; `vm` as last fetched (its state decides the actions);
    /// `said`: what the last action failed with or said, shown in the toolbar (a banner above
    /// it would take the display's room, and the guest would be resized for it).
    pub fn view<'a>(
        &'a self,
        vm: Option<&'a VmInfo>,
        shown: &'a ConsoleView,
        said: Option<Said<'a>>,
    ) -> Element<'a, Message> {
        let state = vm.map(|v| v.state.clone());
        let running = matches!(state, Some(VmState::Running));
        let paused = matches!(state, Some(VmState::Paused));
        let action = |label: &'static str, message: Option<Message>| {
            button(text(label).size(14))
                .style(button::secondary)
                .on_press_maybe(message)
        };
        let focused = matches!(shown, ConsoleView::Shown { focused: true, .. });
        let actions = row![
            button(text("← All machines").size(14))
                .style(button::primary)
                .on_press(Message::Back),
            text(match &state {
                Some(state) => format!("{} · {state}", self.vm),
                None => self.vm.clone(),
            })
            .size(16),
            space::horizontal(),
            action("Stop", (running || paused).then_some(Message::Stop)),
            if paused {
                action("Resume", Some(Message::Resume))
            } else {
                action("Pause", running.then_some(Message::Pause))
            },
            action("Ctrl+Alt+Del", running.then_some(Message::CtrlAltDel)),
            action("Screenshot", Some(Message::Screenshot)),
            action("Detach", Some(Message::Detach)),
            action(
                if self.full_screen {
                    "Leave full screen (F11)"
                } else {
                    "Full screen (F11)"
                },
                Some(Message::FullScreen(!self.full_screen)),
            ),
        ]
        .spacing(8)
        .align_y(Alignment::Center);
        // On one line, cut where the settings begin: the toolbar keeps its height, so the
        // display (and the guest's size) does not change with what is said.
        let said: Element<'a, Message> = match said {
            Some(said) => {
                let line = match said {
                    Said::Failed(why) => text(why).style(crate::theme::danger),
                    Said::Done(what) => text(what),
                };
                container(line.size(13).wrapping(text::Wrapping::None))
                    .width(Length::Fill)
                    .clip(true)
                    .into()
            }
            None => space::horizontal().into(),
        };
        let settings = row![
            keyboard_owner(focused),
            said,
            checkbox(self.actual_size)
                .label("Actual size")
                .text_size(14)
                .on_toggle(Message::ActualSize),
            checkbox(self.follows)
                .label("Guest follows the window")
                .text_size(14)
                .on_toggle(Message::Follows),
        ]
        .spacing(16)
        .align_y(Alignment::Center);
        let toolbar = container(column![actions, settings].spacing(6))
            .padding([6, 10])
            .width(Length::Fill)
            .style(container::bordered_box);
        let display: Element<'a, Message> = match shown {
            ConsoleView::Shown { .. } => surface_unscrolled(
                shown.widget(Message::Console, Message::Resized),
                shown.surface(),
            ),
            ConsoleView::Unavailable(why) => container(text(format!("No screen: {why}")))
                .center(Length::Fill)
                .into(),
            ConsoleView::None => container(text("Opening the screen…"))
                .center(Length::Fill)
                .into(),
        };
        column![toolbar, display].into()
    }
}

/// What the toolbar says of the last action.
#[derive(Debug, Clone, Copy)]
pub enum Said<'a> {
    Failed(&'a str),
    Done(&'a str),
}

/// Who has the keyboard, as VirtualBox's host-key indicator says it: in the accent colour
/// while the guest has it.
fn keyboard_owner<'a>(guest: bool) -> Element<'a, Message> {
    let label = if guest {
        "Keyboard: in the guest (Right Ctrl releases it)"
    } else {
        "Keyboard: Berth (click the screen to type into the guest)"
    };
    container(text(label).size(13))
        .padding([2, 8])
        .style(move |theme: &Theme| {
            let palette = theme.extended_palette();
            let pair = if guest {
                palette.primary.strong
            } else {
                palette.background.weak
            };
            container::Style::default()
                .background(pair.color)
                .color(pair.text)
                .border(iced::Border::default().rounded(4))
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actions_go_to_the_vm_shown() {
        let mut view = VmView::new("desk".into());
        assert_eq!(
            view.update(Message::CtrlAltDel),
            Some(Event::Request(
                Request::VmKey {
                    name: "desk".into(),
                    keys: "ctrl+alt+delete".into()
                },
                "send Ctrl+Alt+Del to VM desk".into()
            ))
        );
        assert!(matches!(
            view.update(Message::Stop),
            Some(Event::Request(Request::VmStop { force: false, .. }, _))
        ));
        assert_eq!(
            view.update(Message::Screenshot),
            Some(Event::Screenshot("desk".into()))
        );
    }

    #[test]
    fn sizing_and_following_are_the_views_settings() {
        let mut view = VmView::new("desk".into());
        assert_eq!(view.sizing(), Sizing::Fit);
        assert_eq!(
            view.update(Message::ActualSize(true)),
            Some(Event::Sizing(Sizing::Actual, true))
        );
        assert_eq!(
            view.update(Message::Follows(false)),
            Some(Event::Sizing(Sizing::Actual, false))
        );
        assert_eq!(
            view.update(Message::FullScreen(true)),
            Some(Event::FullScreen(true))
        );
        assert!(view.full_screen);
    }
}
