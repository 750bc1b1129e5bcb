//! Display notices: what the VMM tells its supervisor about the display, one short datagram
//! each, so the supervisor can push them to clients as events without reading the pixels.
//!
//! `damage FRAME X Y WIDTH HEIGHT` (frame FRAME is published and holds the changed rectangle)
//! and `mode WIDTH HEIGHT` (the framebuffer changed geometry; `mode 0 0` when the guest turned
//! its display off). Text, so a trace of the channel reads as what it says.

use crate::framebuffer::Rect;
use crate::gpu::DisplayEvent;

/// The longest notice, in bytes (a datagram this large is always enough).
pub const MAX_LEN: usize = 96;

/// One display notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Frame `frame` is published; `rect` changed in it.
    Damage { frame: u64, rect: Rect },
    /// The display's geometry changed (0x0: turned off), before the first frame in it.
    Mode { width: u32, height: u32 },
}

impl Notice {
    /// The notice for a device event, if the supervisor cares about it (cursor changes are
    /// drawn into the guest's frames by its own driver when no cursor plane is used).
    pub fn from_event(event: &DisplayEvent) -> Option<Notice> {
        match *event {
            DisplayEvent::Damage { rect, frame } => Some(Notice::Damage { frame, rect }),
            DisplayEvent::Mode { width, height, .. } => Some(Notice::Mode { width, height }),
            DisplayEvent::Disabled => Some(Notice::Mode {
                width: 0,
                height: 0,
            }),
            DisplayEvent::Cursor { .. } | DisplayEvent::CursorMove { .. } => None,
        }
    }

    /// The notice as sent.
    pub fn encode(&self) -> String {
        match self {
            Notice::Damage { frame, rect } => format!(
                "damage {frame} {} {} {} {}",
                rect.x, rect.y, rect.width, rect.height
            ),
            Notice::Mode { width, height } => format!("mode {width} {height}"),
        }
    }

    /// Reads a notice; `None` for anything that is not one (the supervisor ignores it).
    pub fn decode(bytes: &[u8]) -> Option<Notice> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut words = text.split_ascii_whitespace();
        let kind = words.next()?;
        let numbers: Vec<u64> = words.map(|w| w.parse().ok()).collect::<Option<_>>()?;
        let u32_at = |i: usize| numbers.get(i).and_then(|&n| u32::try_from(n).ok());
        match (kind, numbers.len()) {
            ("damage", 5) => Some(Notice::Damage {
                frame: numbers[0],
                rect: Rect::new(u32_at(1)?, u32_at(2)?, u32_at(3)?, u32_at(4)?),
            }),
            ("mode", 2) => Some(Notice::Mode {
                width: u32_at(0)?,
                height: u32_at(1)?,
            }),
            _ => None,
        }
    }
}

/// Notices waiting to be sent, merged: the latest mode, and the damage since it (one rectangle
/// covering every flush, with the newest frame number). A flood of flushes (a console redrawing
/// glyph by glyph) then costs the supervisor one notice an interval, and the last state is never
/// lost the way a dropped datagram would lose it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    mode: Option<Notice>,
    damage: Option<(u64, Rect)>,
}

impl Pending {
    /// Merges `notice` into what waits.
    pub fn record(&mut self, notice: Notice) {
        match notice {
            Notice::Mode { .. } => {
                // Damage in the old mode says nothing about the new one.
                self.mode = Some(notice);
                self.damage = None;
            }
            Notice::Damage { frame, rect } => {
                let merged = match self.damage {
                    None => rect,
                    Some((_, was)) => {
                        let (x0, y0) = (was.x.min(rect.x), was.y.min(rect.y));
                        let x1 = (was.x + was.width).max(rect.x + rect.width);
                        let y1 = (was.y + was.height).max(rect.y + rect.height);
                        Rect::new(x0, y0, x1 - x0, y1 - y0)
                    }
                };
                self.damage = Some((frame, merged));
            }
        }
    }

    /// What to send now, in order (a mode before the damage drawn in it), leaving nothing.
    pub fn take(&mut self) -> Vec<Notice> {
        let taken = std::mem::take(self);
        taken
            .mode
            .into_iter()
            .chain(
                taken
                    .damage
                    .map(|(frame, rect)| Notice::Damage { frame, rect }),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_notices_merge_and_keep_the_mode_first() {
        let mut pending = Pending::default();
        assert!(pending.take().is_empty());
        let damage = |frame, x, y, w, h| Notice::Damage {
            frame,
            rect: Rect::new(x, y, w, h),
        };
        pending.record(damage(3, 0, 0, 8, 8));
        pending.record(Notice::Mode {
            width: 640,
            height: 480,
        });
        pending.record(damage(5, 10, 20, 8, 16));
        pending.record(damage(6, 100, 4, 10, 10));
        assert_eq!(
            pending.take(),
            [
                Notice::Mode {
                    width: 640,
                    height: 480
                },
                // One rectangle over both flushes, the newest frame.
                damage(6, 10, 4, 100, 32),
            ]
        );
        assert!(pending.take().is_empty(), "nothing is sent twice");
    }

    #[test]
    fn notices_round_trip_and_fit() {
        for notice in [
            Notice::Damage {
                frame: u64::MAX,
                rect: Rect::new(u32::MAX, u32::MAX, u32::MAX, u32::MAX),
            },
            Notice::Damage {
                frame: 7,
                rect: Rect::new(0, 0, 1920, 1080),
            },
            Notice::Mode {
                width: 1280,
                height: 800,
            },
            Notice::Mode {
                width: 0,
                height: 0,
            },
        ] {
            let text = notice.encode();
            assert!(text.len() <= MAX_LEN, "{text}");
            assert_eq!(Notice::decode(text.as_bytes()), Some(notice));
        }
    }

    #[test]
    fn events_become_notices() {
        let damage = DisplayEvent::Damage {
            rect: Rect::new(1, 2, 3, 4),
            frame: 9,
        };
        assert_eq!(
            Notice::from_event(&damage).map(|n| n.encode()).as_deref(),
            Some("damage 9 1 2 3 4")
        );
        assert_eq!(
            Notice::from_event(&DisplayEvent::Disabled)
                .map(|n| n.encode())
                .as_deref(),
            Some("mode 0 0")
        );
        assert_eq!(
            Notice::from_event(&DisplayEvent::CursorMove { x: 1, y: 1 }),
            None
        );
    }

    #[test]
    fn anything_else_is_not_a_notice() {
        for bad in [
            &b""[..],
            b"damage",
            b"damage 1 2 3 4",
            b"damage 1 2 3 4 5 6",
            b"damage 1 2 3 4 99999999999",
            b"mode -1 2",
            b"mode 1 x",
            b"resize 1 2",
            b"\xff\xfe",
        ] {
            assert_eq!(Notice::decode(bad), None, "{bad:?}");
        }
    }
}
