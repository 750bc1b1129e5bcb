//! Frames shown a second, as the windows report them for the benchmarks (only when
//! `BERTH_CONSOLE_FPS` is set): the window's console, its surface and berth-console alike.

use std::time::Instant;

/// Frames shown a second, reported once a second.
#[derive(Debug)]
pub struct FrameRate {
    since: Instant,
    frames: u32,
}

impl FrameRate {
    pub fn new(now: Instant) -> FrameRate {
        FrameRate {
            since: now,
            frames: 0,
        }
    }

    /// Counts a frame shown at `now`; the rate over the last second or more, once it has passed.
    pub fn shown(&mut self, now: Instant) -> Option<f64> {
        self.frames += 1;
        let elapsed = now.saturating_duration_since(self.since).as_secs_f64();
        if elapsed < 1.0 {
            return None;
        }
        let fps = f64::from(self.frames) / elapsed;
        *self = FrameRate::new(now);
        Some(fps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_frame_rate_is_reported_once_a_second() {
        let start = Instant::now();
        let mut rate = FrameRate::new(start);
        let at = |ms| start + Duration::from_millis(ms);
        for i in 1..60 {
            assert_eq!(rate.shown(at(i * 16)), None);
        }
        // The 60th frame, 1.2 s in: 50 frames a second.
        assert_eq!(rate.shown(at(1200)), Some(50.0));
        assert_eq!(rate.shown(at(1300)), None, "counting starts again");
    }
}
