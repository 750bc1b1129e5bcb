//! A frame scaled to the window's console area: how long [`resample::to_rgba`] takes for the
//! guest's 1280x800 and 1920x1080 screens shown in the window's 665x416 / 739x416 picture,
//! straight out of a mapped framebuffer (what the window does for every frame it shows), and
//! at the screen's own size (no scaling, the channels moved). The window's console goal
//! (issue 6) is 60 frames a second within 25 % of a core: 4.2 ms a frame for everything.
//!
//! `cargo bench -p berth-display --bench resample` (run by scripts/bench-screen).
#![allow(clippy::unwrap_used)] // a benchmark that cannot set up has nothing to report

use std::time::Duration;

use berth_display::framebuffer::{FramebufferReader, FramebufferWriter, Rect};
use berth_display::gpu::Format;
use berth_display::resample;
use berth_display::testing::thread_cpu;

const ROUNDS: u32 = 60;

fn main() {
    // The window's console area as it reports it in a 1100x720 window: the pane's width less
    // the frame, 416 pixels high.
    let area = (813, 416);
    for (width, height) in [(1280u32, 800u32), (1920, 1080)] {
        let mut writer = FramebufferWriter::new(width, height, Format::B8G8R8X8 as u32).unwrap();
        let pixels: Vec<u8> = (0..width * height * 4).map(|i| (i * 7) as u8).collect();
        writer
            .update(Rect::new(0, 0, width, height), &pixels, width as usize * 4)
            .unwrap();
        let mut reader =
            FramebufferReader::open(writer.fd().try_clone_to_owned().unwrap()).unwrap();
        let fitted = resample::fit((width, height), area);
        for (label, to) in [("scaled to", fitted), ("own size", (width, height))] {
            let mut times: Vec<Duration> = (0..ROUNDS)
                .map(|_| {
                    let start = thread_cpu();
                    let viewed = reader
                        .view_frame(|view| resample::to_rgba(view, Format::B8G8R8X8, to))
                        .unwrap();
                    let elapsed = thread_cpu() - start;
                    assert_eq!(viewed.value.len(), to.0 as usize * to.1 as usize * 4);
                    elapsed
                })
                .collect();
            times.sort();
            let median = times[times.len() / 2];
            let pixels = f64::from(to.0) * f64::from(to.1);
            println!(
                "{width}x{height} {label} {}x{}: median {:.2} ms of CPU ({:.1} ns a pixel shown), {:.0} % of a core at 60 frames/s",
                to.0,
                to.1,
                median.as_secs_f64() * 1e3,
                median.as_secs_f64() * 1e9 / pixels,
                median.as_secs_f64() * 60.0 * 100.0
            );
        }
    }
}
