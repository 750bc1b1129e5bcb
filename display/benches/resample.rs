//! A frame scaled to the window's console area: how long [`resample::scale_into`] takes for
//! the guest's 1280x800 and 1920x1080 displays shown in the window's 665x416 / 739x416 picture,
//! straight out of a mapped framebuffer (what the window does for every frame it shows): as
//! BGRX (what the console surface puts to the X server), as RGBA (the renderer's image), and
//! at the display's own size (no scaling, the channels moved). The window's console goal
//! (issue 6) is 60 frames a second within 25 % of a core: 4.2 ms a frame for everything.
//!
//! `cargo bench -p berth-display --bench resample` (run by scripts/bench-display).
#![allow(clippy::unwrap_used)] // a benchmark that cannot set up has nothing to report

use std::time::Duration;

use berth_display::framebuffer::{FramebufferReader, FramebufferWriter, Rect};
use berth_display::gpu::Format;
use berth_display::resample::{self, Order};
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
        for (label, to, order) in [
            ("scaled to", fitted, Order::Bgrx),
            ("scaled to", fitted, Order::Rgba),
            ("own size", (width, height), Order::Rgba),
        ] {
            // Into one buffer, as the surface scales into its shared memory.
            let mut out = vec![0u8; to.0 as usize * to.1 as usize * 4];
            let mut times: Vec<Duration> = (0..ROUNDS)
                .map(|_| {
                    let start = thread_cpu();
                    reader
                        .view_frame(|view| {
                            resample::scale_into(view, Format::B8G8R8X8, to, order, &mut out)
                        })
                        .unwrap();
                    thread_cpu() - start
                })
                .collect();
            assert!(out.chunks_exact(4).all(|px| px[3] == 0xff), "opaque");
            times.sort();
            let median = times[times.len() / 2];
            let pixels = f64::from(to.0) * f64::from(to.1);
            println!(
                "{width}x{height} {label} {}x{} ({order:?}): median {:.2} ms of CPU ({:.1} ns a pixel shown), {:.0} % of a core at 60 frames/s",
                to.0,
                to.1,
                median.as_secs_f64() * 1e3,
                median.as_secs_f64() * 1e9 / pixels,
                median.as_secs_f64() * 60.0 * 100.0
            );
        }
    }
}
