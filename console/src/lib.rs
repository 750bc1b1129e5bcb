//! `berth-console`: the detached, full-size console window of one running VM. The parts that need
//! no window live here and are unit-tested: the guest's framebuffer as RGBA frames and damaged
//! rectangles ([`display`]), the window's size for a guest mode and the pointer's place on the
//! guest's tablet ([`pointer`]), the physical keys as evdev codes ([`keys`]), and the command
//! line ([`args`]). `main.rs` puts
//! them on a winit window drawn with `pixels`.

pub mod args;
pub mod display;
pub mod keys;
pub mod pointer;
