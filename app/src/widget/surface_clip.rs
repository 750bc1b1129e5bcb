//! The scrolled pane a console surface sits in: tells the surface where the pane is in the
//! window each time it is drawn ([`SurfaceHandle::set_clip`]), before its content is, so the
//! console's area inside (which a scrollable lays out unscrolled) can be placed where it is
//! seen, and cut where the pane ends.

use iced::advanced::layout::{self, Layout};
use iced::advanced::renderer;
use iced::advanced::widget::{self, Tree, Widget};
use iced::advanced::{Clipboard, Shell, overlay};
use iced::{Element, Event, Length, Rectangle, Size, Vector, mouse, window};

use crate::surface::SurfaceHandle;

/// `content` (a scrollable) telling the surface behind `handle`, if any, where it is.
pub fn surface_clip<'a, Message: 'a>(
    content: impl Into<Element<'a, Message>>,
    handle: Option<SurfaceHandle>,
) -> Element<'a, Message> {
    clipped(content.into(), handle, Some(Size::ZERO))
}

/// [`surface_clip`] for a pane whose scrollbars float over its content: the surface keeps
/// `bars` (the right and bottom strips, logical pixels) clear, so they can be seen and used.
pub fn surface_clip_with_bars<'a, Message: 'a>(
    content: impl Into<Element<'a, Message>>,
    handle: Option<SurfaceHandle>,
    bars: Size,
) -> Element<'a, Message> {
    clipped(content.into(), handle, Some(bars))
}

/// `content`, not scrolled, telling the surface behind `handle`, if any, that no pane clips
/// it (only the window does): where a scrolled pane held it before, that pane is gone.
pub fn surface_unscrolled<'a, Message: 'a>(
    content: impl Into<Element<'a, Message>>,
    handle: Option<SurfaceHandle>,
) -> Element<'a, Message> {
    clipped(content.into(), handle, None)
}

fn clipped<'a, Message: 'a>(
    content: Element<'a, Message>,
    handle: Option<SurfaceHandle>,
    bars: Option<Size>,
) -> Element<'a, Message> {
    match handle {
        Some(handle) => Element::new(SurfaceClip {
            content,
            handle,
            bars,
        }),
        None => content,
    }
}

struct SurfaceClip<'a, Message> {
    content: Element<'a, Message>,
    handle: SurfaceHandle,
    /// The content is a scrolled pane, with strips this wide (right) and high (bottom) kept
    /// for its scrollbars; none: it is not scrolled, it is where it is laid out.
    bars: Option<Size>,
}

impl<Message> Widget<Message, iced::Theme, iced::Renderer> for SurfaceClip<'_, Message> {
    fn children(&self) -> Vec<Tree> {
        vec![Tree::new(&self.content)]
    }

    fn diff(&self, tree: &mut Tree) {
        tree.diff_children(&[&self.content]);
    }

    fn size(&self) -> Size<Length> {
        self.content.as_widget().size()
    }

    fn size_hint(&self) -> Size<Length> {
        self.content.as_widget().size_hint()
    }

    fn layout(
        &mut self,
        tree: &mut Tree,
        renderer: &iced::Renderer,
        limits: &layout::Limits,
    ) -> layout::Node {
        self.content
            .as_widget_mut()
            .layout(&mut tree.children[0], renderer, limits)
    }

    fn update(
        &mut self,
        tree: &mut Tree,
        event: &Event,
        layout: Layout<'_>,
        cursor: mouse::Cursor,
        renderer: &iced::Renderer,
        clipboard: &mut dyn Clipboard,
        shell: &mut Shell<'_, Message>,
        viewport: &Rectangle,
    ) {
        if let Event::Window(window::Event::RedrawRequested(_)) = event {
            self.handle.set_clip(self.bars.map(|bars| {
                let pane = layout.bounds();
                Rectangle {
                    width: (pane.width - bars.width).max(0.0),
                    height: (pane.height - bars.height).max(0.0),
                    ..pane
                }
            }));
        }
        self.content.as_widget_mut().update(
            &mut tree.children[0],
            event,
            layout,
            cursor,
            renderer,
            clipboard,
            shell,
            viewport,
        );
    }

    fn draw(
        &self,
        tree: &Tree,
        renderer: &mut iced::Renderer,
        theme: &iced::Theme,
        style: &renderer::Style,
        layout: Layout<'_>,
        cursor: mouse::Cursor,
        viewport: &Rectangle,
    ) {
        self.content.as_widget().draw(
            &tree.children[0],
            renderer,
            theme,
            style,
            layout,
            cursor,
            viewport,
        );
    }

    fn operate(
        &mut self,
        tree: &mut Tree,
        layout: Layout<'_>,
        renderer: &iced::Renderer,
        operation: &mut dyn widget::Operation,
    ) {
        self.content
            .as_widget_mut()
            .operate(&mut tree.children[0], layout, renderer, operation);
    }

    fn mouse_interaction(
        &self,
        tree: &Tree,
        layout: Layout<'_>,
        cursor: mouse::Cursor,
        viewport: &Rectangle,
        renderer: &iced::Renderer,
    ) -> mouse::Interaction {
        self.content.as_widget().mouse_interaction(
            &tree.children[0],
            layout,
            cursor,
            viewport,
            renderer,
        )
    }

    fn overlay<'b>(
        &'b mut self,
        tree: &'b mut Tree,
        layout: Layout<'b>,
        renderer: &iced::Renderer,
        viewport: &Rectangle,
        translation: Vector,
    ) -> Option<overlay::Element<'b, Message, iced::Theme, iced::Renderer>> {
        self.content.as_widget_mut().overlay(
            &mut tree.children[0],
            layout,
            renderer,
            viewport,
            translation,
        )
    }
}
