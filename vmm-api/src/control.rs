//! The control channel's language: berthd sends one [`Command`] a line, berth-vmm answers each
//! with one line, a [`Reply`] or a [`ControlError`]. Text, so a trace of the channel (and
//! `scripts/vmm-control` in the lab) reads as what it says.
//!
//! ```text
//! ready                               berth-vmm, once: the guest is loaded and about to run
//! kill | stop | pause | resume        ok
//! display                             ok WIDTH HEIGHT   (+ the framebuffer memfd, SCM_RIGHTS)
//! display-size WIDTH HEIGHT           ok                (the guest is told its new preferred size)
//! input keyboard|tablet T C V[;T C V] ok                (all events queued, or none)
//! (any)                               error KIND [DETAILS]
//! ```
//!
//! Error kinds: `no-display`, `queue-full PENDING`, `unsupported-event DEVICE TYPE CODE`,
//! `bad-command MESSAGE`, `failed MESSAGE`. berthd decides by the kind, never by the words.

use berth_api::input::{InputDevice, InputEvent, ev};

/// The line berth-vmm writes first, once the guest is loaded and about to run.
pub const READY: &str = "ready";

/// The longest line either side writes (an `input` of 256 events is about 3 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// What berthd asks of berth-vmm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// End the VM now (exit [`crate::VmmExit::Stopped`]).
    Kill,
    /// Press the ACPI power button; the guest shuts down in its own time (berthd keeps its own
    /// timeout before `Kill`).
    Stop,
    /// Park every vCPU outside KVM_RUN; answered once all are parked.
    Pause,
    /// Let the vCPUs run again.
    Resume,
    /// The display's mode, with the framebuffer memfd attached to the reply.
    Display,
    /// Tell the guest its display's preferred size changed (a desktop guest then resizes its
    /// screen to it, as under SPICE or GNOME Boxes).
    DisplaySize { width: u32, height: u32 },
    /// Queue these events for the guest's `device`, all or none (a SYN_REPORT is added after
    /// the last unless it is one).
    Input {
        device: InputDevice,
        events: Vec<InputEvent>,
    },
}

/// What berth-vmm answers when a command worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Done,
    /// The mode the display reports; the framebuffer memfd rides on this reply.
    Display {
        width: u32,
        height: u32,
    },
}

/// Why berth-vmm did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("this VM has no display (start it with --display)")]
    NoDisplay,
    /// The device's queue is full: the guest has not taken the events already waiting.
    #[error("the guest is not taking input events: {pending} are already waiting")]
    InputQueueFull { pending: usize },
    #[error("the {} does not report events of type {kind:#x} code {code:#x}", .device.name())]
    UnsupportedEvent {
        device: InputDevice,
        kind: u16,
        code: u16,
    },
    /// A line that is not a command.
    #[error("{0}")]
    BadCommand(String),
    /// A command that could not be carried out.
    #[error("{0}")]
    Failed(String),
}

impl Command {
    /// The command as sent, without its newline.
    pub fn encode(&self) -> String {
        match self {
            Command::Kill => "kill".into(),
            Command::Stop => "stop".into(),
            Command::Pause => "pause".into(),
            Command::Resume => "resume".into(),
            Command::Display => "display".into(),
            Command::DisplaySize { width, height } => format!("display-size {width} {height}"),
            Command::Input { device, events } => {
                let events: Vec<String> = events
                    .iter()
                    .map(|e| format!("{} {} {}", e.kind, e.code, e.value))
                    .collect();
                format!("input {} {}", device.name(), events.join(";"))
            }
        }
    }

    /// Reads a command line (trailing newline and spaces ignored).
    pub fn decode(line: &str) -> Result<Command, ControlError> {
        let line = line.trim();
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        Ok(match (word, rest.trim()) {
            ("kill", "") => Command::Kill,
            ("stop", "") => Command::Stop,
            ("pause", "") => Command::Pause,
            ("resume", "") => Command::Resume,
            ("display", "") => Command::Display,
            ("display-size", args) => {
                let numbers: Vec<u32> = args
                    .split_whitespace()
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        ControlError::BadCommand("usage: display-size WIDTH HEIGHT".into())
                    })?;
                let [width, height] = numbers[..] else {
                    return Err(ControlError::BadCommand(
                        "usage: display-size WIDTH HEIGHT".into(),
                    ));
                };
                Command::DisplaySize { width, height }
            }
            ("input", args) => decode_input(args)?,
            _ => {
                return Err(ControlError::BadCommand(format!(
                    "unknown command {line:?}"
                )));
            }
        })
    }
}

fn decode_input(args: &str) -> Result<Command, ControlError> {
    let usage = || {
        ControlError::BadCommand(
            "usage: input keyboard|tablet TYPE CODE VALUE[;TYPE CODE VALUE...]".into(),
        )
    };
    let (device, list) = args.split_once(' ').ok_or_else(usage)?;
    let device = InputDevice::from_name(device).ok_or_else(|| {
        ControlError::BadCommand(format!("no input device {device:?}: keyboard or tablet"))
    })?;
    let mut events = Vec::new();
    for event in list.split(';') {
        let bad =
            |why: &str| ControlError::BadCommand(format!("bad event {:?}: {why}", event.trim()));
        let fields: Vec<&str> = event.split_whitespace().collect();
        let [kind, code, value] = fields[..] else {
            return Err(bad("give TYPE CODE VALUE"));
        };
        let number = || bad("numbers only");
        events.push(InputEvent::new(
            kind.parse().map_err(|_| number())?,
            code.parse().map_err(|_| number())?,
            value.parse().map_err(|_| number())?,
        ));
    }
    if events.last().is_none_or(|e| e.kind != ev::EV_SYN) {
        events.push(InputEvent::report());
    }
    Ok(Command::Input { device, events })
}

/// An answer as sent, without its newline.
pub fn encode_reply(answer: &Result<Reply, ControlError>) -> String {
    match answer {
        Ok(Reply::Done) => "ok".into(),
        Ok(Reply::Display { width, height }) => format!("ok {width} {height}"),
        Err(error) => {
            let details = match error {
                ControlError::NoDisplay => "no-display".to_owned(),
                ControlError::InputQueueFull { pending } => format!("queue-full {pending}"),
                ControlError::UnsupportedEvent { device, kind, code } => {
                    format!("unsupported-event {} {kind} {code}", device.name())
                }
                ControlError::BadCommand(message) => format!("bad-command {message}"),
                ControlError::Failed(message) => format!("failed {message}"),
            };
            // One line whatever the message holds.
            format!("error {}", details.replace(['\n', '\r'], " "))
        }
    }
}

/// A line that is no answer to the command it follows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("berth-vmm answered {0:?}")]
pub struct Garbled(pub String);

/// Reads the answer to `command`: `ok` (with a mode for `display`) or a typed error. An error
/// of a kind this build does not know is kept as [`ControlError::Failed`] with its words.
pub fn decode_reply(command: &Command, line: &str) -> Result<Result<Reply, ControlError>, Garbled> {
    let line = line.trim();
    let garbled = || Garbled(line.to_owned());
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "ok" => {
            let numbers: Vec<u32> = rest
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| garbled())?;
            match (command, &numbers[..]) {
                (Command::Display, &[width, height]) => Ok(Ok(Reply::Display { width, height })),
                (Command::Display, _) => Err(garbled()),
                (_, []) => Ok(Ok(Reply::Done)),
                _ => Err(garbled()),
            }
        }
        "error" => Ok(Err(decode_error(rest.trim()))),
        _ => Err(garbled()),
    }
}

fn decode_error(details: &str) -> ControlError {
    let (kind, rest) = details.split_once(' ').unwrap_or((details, ""));
    let words: Vec<&str> = rest.split_whitespace().collect();
    let typed = match (kind, &words[..]) {
        ("no-display", []) => Some(ControlError::NoDisplay),
        ("queue-full", [pending]) => pending
            .parse()
            .ok()
            .map(|pending| ControlError::InputQueueFull { pending }),
        ("unsupported-event", [device, kind, code]) => {
            match (InputDevice::from_name(device), kind.parse(), code.parse()) {
                (Some(device), Ok(kind), Ok(code)) => {
                    Some(ControlError::UnsupportedEvent { device, kind, code })
                }
                _ => None,
            }
        }
        ("bad-command", _) => Some(ControlError::BadCommand(rest.to_owned())),
        ("failed", _) => Some(ControlError::Failed(rest.to_owned())),
        _ => None,
    };
    typed.unwrap_or_else(|| ControlError::Failed(details.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_go_there_and_back() {
        let commands = [
            Command::Kill,
            Command::Stop,
            Command::Pause,
            Command::Resume,
            Command::Display,
            Command::DisplaySize {
                width: 1920,
                height: 1080,
            },
            Command::Input {
                device: InputDevice::Tablet,
                events: vec![
                    InputEvent::new(ev::EV_REL, ev::REL_WHEEL, -1),
                    InputEvent::report(),
                ],
            },
        ];
        for command in commands {
            assert_eq!(Command::decode(&command.encode()), Ok(command));
        }
    }

    #[test]
    fn input_lines_become_events_with_a_final_report() {
        assert_eq!(
            Command::decode("input keyboard 1 30 1;0 0 0;1 30 0\n"),
            Ok(Command::Input {
                device: InputDevice::Keyboard,
                events: vec![
                    InputEvent::new(1, 30, 1),
                    InputEvent::report(),
                    InputEvent::new(1, 30, 0),
                    InputEvent::report(),
                ]
            })
        );
        for bad in [
            "input keyboard",
            "input keyboard 1 30",
            "input keyboard 1 x 1",
            "input tablet 1 2 3 4",
            "input keyboard 70000 1 1",
            "input mouse 1 30 1",
            "kill now",
            "reboot",
            "",
        ] {
            assert!(
                matches!(Command::decode(bad), Err(ControlError::BadCommand(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn answers_go_there_and_back_with_their_kind() {
        let answers = [
            (Command::Pause, Ok(Reply::Done)),
            (
                Command::Display,
                Ok(Reply::Display {
                    width: 1280,
                    height: 800,
                }),
            ),
            (Command::Display, Err(ControlError::NoDisplay)),
            (
                Command::Stop,
                Err(ControlError::InputQueueFull { pending: 1024 }),
            ),
            (
                Command::Stop,
                Err(ControlError::UnsupportedEvent {
                    device: InputDevice::Keyboard,
                    kind: 3,
                    code: 0,
                }),
            ),
            (
                Command::Stop,
                Err(ControlError::BadCommand("unknown command \"x\"".into())),
            ),
            (
                Command::Pause,
                Err(ControlError::Failed("vCPU 1 did not park".into())),
            ),
        ];
        for (command, answer) in answers {
            let line = encode_reply(&answer);
            assert_eq!(decode_reply(&command, &line), Ok(answer), "{line}");
        }
        // A message over several lines still goes as one.
        let line = encode_reply(&Err(ControlError::Failed("a\nb".into())));
        assert!(!line.contains('\n'));
        // Unknown kinds are kept with their words; garbage is no answer.
        assert_eq!(
            decode_reply(&Command::Stop, "error frobnicated the widget"),
            Ok(Err(ControlError::Failed("frobnicated the widget".into())))
        );
        for garbage in ["", "okay", "ok 1", "ok x y", "ready"] {
            assert!(
                decode_reply(&Command::Stop, garbage).is_err(),
                "{garbage:?}"
            );
        }
        assert!(decode_reply(&Command::Display, "ok").is_err());
    }
}
