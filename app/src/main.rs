//! berth: the Berth window. It connects to berthd (the system daemon, else the user's, else it
//! starts `berthd --user`) and shows VMs and containers side by side with live gauges.

mod app;
mod browser;
mod connection;
mod data;
mod icon;
mod screen;
mod surface;
mod theme;
mod widget;

use berth::args::Args;
use berth::identity::APP_ID;
use clap::Parser;

/// Without a GPU (no DRM render node), iced's wgpu renderer runs on Mesa's software
/// rasteriser, which here costs 3.5 % of a core to idle and shows a tenth of the console's
/// frames; tiny-skia, the other renderer iced has, idles at 0.1 % and shows four times as many
/// (README, performance). `ICED_BACKEND` set by the user still wins.
fn prefer_tiny_skia_without_a_gpu() {
    let has_render_node = std::fs::read_dir("/dev/dri").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    });
    if !has_render_node && std::env::var_os("ICED_BACKEND").is_none() {
        // SAFETY: called first thing in main, before any other thread exists that could read
        // or write the environment.
        unsafe { std::env::set_var("ICED_BACKEND", "tiny-skia") };
    }
}

fn main() -> iced::Result {
    let args = Args::parse();
    prefer_tiny_skia_without_a_gpu();
    let opening = app::Opening::from(&args);
    iced::application(
        move || app::Berth::new(opening),
        app::Berth::update,
        app::Berth::view,
    )
    .title(app::Berth::title)
    .subscription(app::Berth::subscription)
    .window(iced::window::Settings {
        size: iced::Size::new(1100.0, 720.0),
        icon: icon::window_icon(),
        // The desktop matches the window to `assets/dev.berth.Berth.desktop` by this (X11
        // WM_CLASS, Wayland app_id): its name and icon in the dock and the task switcher.
        platform_specific: iced::window::settings::PlatformSpecific {
            application_id: APP_ID.into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .run()
}
