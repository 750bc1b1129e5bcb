//! Where the console surface shows: a space of the console's picture area that draws nothing
//! itself and, each time the window is drawn, tells the surface where it is
//! ([`SurfaceHandle::place`]). When it leaves the window's tree (another screen of the window, another VM)
//! the surface is hidden with it.

use berth_display::resample::Scaling;
use iced::advanced::layout::{self, Layout};
use iced::advanced::renderer;
use iced::advanced::widget::{self, Tree, Widget, tree};
use iced::advanced::{Clipboard, Shell};
use iced::{Element, Event, Length, Rectangle, Size, mouse, window};

use crate::surface::SurfaceHandle;

/// The area the surface behind `handle` shows the picture in, filling the space it is given;
/// the picture is scaled into it by `scaling`.
pub fn surface_area<'a, Message: 'a>(
    handle: SurfaceHandle,
    scaling: Scaling,
) -> Element<'a, Message> {
    Element::new(SurfaceArea { handle, scaling })
}

struct SurfaceArea {
    handle: SurfaceHandle,
    scaling: Scaling,
}

/// The surface the area placed last; hidden when the state goes (the area left the tree).
struct Placed(SurfaceHandle);

impl Drop for Placed {
    fn drop(&mut self) {
        self.0.hide();
    }
}

impl<Message, Theme, Renderer: renderer::Renderer> Widget<Message, Theme, Renderer>
    for SurfaceArea
{
    fn tag(&self) -> tree::Tag {
        tree::Tag::of::<Placed>()
    }

    fn state(&self) -> tree::State {
        tree::State::new(Placed(self.handle.clone()))
    }

    fn diff(&self, tree: &mut Tree) {
        let placed = tree.state.downcast_mut::<Placed>();
        if placed.0 != self.handle {
            // Another VM's surface: the old one is hidden as the state is replaced.
            *placed = Placed(self.handle.clone());
        }
    }

    fn size(&self) -> Size<Length> {
        Size::new(Length::Fill, Length::Fill)
    }

    fn layout(
        &mut self,
        _tree: &mut Tree,
        _renderer: &Renderer,
        limits: &layout::Limits,
    ) -> layout::Node {
        layout::Node::new(limits.max())
    }

    fn update(
        &mut self,
        _tree: &mut Tree,
        event: &Event,
        layout: Layout<'_>,
        _cursor: mouse::Cursor,
        _renderer: &Renderer,
        _clipboard: &mut dyn Clipboard,
        _shell: &mut Shell<'_, Message>,
        viewport: &Rectangle,
    ) {
        if let Event::Window(window::Event::RedrawRequested(_)) = event {
            self.handle.place(layout.bounds(), *viewport, self.scaling);
        }
    }

    fn draw(
        &self,
        _tree: &Tree,
        _renderer: &mut Renderer,
        _theme: &Theme,
        _style: &renderer::Style,
        _layout: Layout<'_>,
        _cursor: mouse::Cursor,
        _viewport: &Rectangle,
    ) {
        // The surface's window covers the picture; the console's black background shows in
        // the bars beside it.
    }

    fn operate(
        &mut self,
        _tree: &mut Tree,
        _layout: Layout<'_>,
        _renderer: &Renderer,
        _operation: &mut dyn widget::Operation,
    ) {
    }
}
