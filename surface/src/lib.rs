//! The guest's display drawn straight onto an X11 window, past any renderer: a child window of
//! the host window, as large as the picture's visible part, takes frames through MIT-SHM from a
//! thread of its own, which reads the guest's framebuffer, scales it once into shared memory
//! and has the X server copy it: no image handle, no renderer pass, no message through the
//! application per frame.
//!
//! Why: without a GPU, iced's software renderer (tiny-skia) converts every pixel of every new
//! image and draws it through its floating-point pipeline, and `pixels` draws through wgpu on
//! llvmpipe; neither keeps up with a guest drawing 60 frames a second (README, performance).
//! VirtualBox and virt-viewer also draw a guest's display on a native surface of their own.
//!
//! The child window has an empty input shape: the pointer and the keyboard never see it, so
//! every event still reaches the host window. The host says where the picture goes
//! ([`SurfaceHandle::place`], a [`Placement`]) and wakes the thread when the guest published a
//! frame ([`SurfaceHandle::wake`]); a still display costs nothing but a look every quarter
//! second. Without X11 (Wayland), or when the X server lacks MIT-SHM with file descriptors or
//! SHAPE, or cannot map our memory (a remote display), [`Surface::open`] says why and the host
//! draws the display itself.
//!
//! Used by the window's console (`app/src/surface.rs` places it from iced's layout) and by
//! `berth-console` (the whole window).

mod child;
mod layout;
mod surface;

pub use layout::{Layout, Placement, Rect};
pub use surface::{Options, Surface, SurfaceHandle};

/// The X11 window a window handle names, when it is on X11 (a surface's parent).
pub fn x11_window(handle: raw_window_handle::RawWindowHandle) -> Option<u32> {
    use raw_window_handle::RawWindowHandle;
    match handle {
        RawWindowHandle::Xlib(handle) => u32::try_from(handle.window).ok(),
        RawWindowHandle::Xcb(handle) => Some(handle.window.get()),
        _ => None,
    }
}

/// Whether surfaces are wanted: `BERTH_CONSOLE_SURFACE=0` has the host draw the display itself
/// even on X11 (to compare the two, and to test the other path).
pub fn wanted() -> bool {
    std::env::var_os("BERTH_CONSOLE_SURFACE").is_none_or(|v| v != "0")
}
