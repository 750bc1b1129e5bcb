//! berth: the Berth window. It connects to berthd (the system daemon, else the user's, else it
//! starts `berthd --user`) and shows VMs and containers side by side with live gauges.

mod app;
mod connection;
mod console;
mod data;
mod screen;
mod widget;

fn main() -> iced::Result {
    iced::application(app::Berth::new, app::Berth::update, app::Berth::view)
        .title(app::Berth::title)
        .subscription(app::Berth::subscription)
        .window_size((1100.0, 720.0))
        .run()
}
