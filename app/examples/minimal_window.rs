//! The anchor of the window benchmarks (`scripts/bench-window`): the smallest iced 0.14
//! application with the same renderers and features as Berth's window, one line of text.
//! Berth's own memory and CPU are reported against it.

fn view(_: &()) -> iced::Element<'_, ()> {
    iced::widget::text("Berth anchor").into()
}

fn main() -> iced::Result {
    iced::application(|| (), |_: &mut (), _: ()| {}, view)
        .title(|_: &()| "Berth anchor".to_owned())
        .window_size((1100.0, 720.0))
        .run()
}
