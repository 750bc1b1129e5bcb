//! The anchor of the window benchmarks (`scripts/bench-window`): the smallest iced 0.14
//! application with the same renderers and features as Berth's window, one line of text.
//! Berth's own memory, CPU and start to first frame are reported against it; like Berth, it
//! prints when it draws its first frame if `BERTH_FIRST_FRAME` is set.

#[derive(Default)]
struct Anchor {
    reported: bool,
}

#[derive(Debug, Clone)]
struct Frame;

fn update(anchor: &mut Anchor, _: Frame) {
    if !std::mem::replace(&mut anchor.reported, true) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!(
            "anchor: first frame at {}.{:09}",
            now.as_secs(),
            now.subsec_nanos()
        );
    }
}

fn view(_: &Anchor) -> iced::Element<'_, Frame> {
    iced::widget::text("Berth anchor").into()
}

fn subscription(anchor: &Anchor) -> iced::Subscription<Frame> {
    if anchor.reported || std::env::var_os("BERTH_FIRST_FRAME").is_none() {
        iced::Subscription::none()
    } else {
        iced::window::frames().map(|_| Frame)
    }
}

fn main() -> iced::Result {
    iced::application(Anchor::default, update, view)
        .title(|_: &Anchor| "Berth anchor".to_owned())
        .subscription(subscription)
        .window_size((1100.0, 720.0))
        .run()
}
