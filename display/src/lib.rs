//! The guest's display, independent of any transport: the virtio-gpu 2D device model
//! ([`gpu`]) and the shared framebuffer it publishes for the window to map ([`framebuffer`]).
//!
//! `vmm-backend` puts [`gpu::Gpu`] on a virtio transport; the window and `berth-console` map the
//! framebuffer's memfd with [`framebuffer::FramebufferReader`]; the window scales frames to its
//! pane with [`resample`]; [`screenshot`] writes a frame as a PNG. [`shm`] makes and maps the shared memory all of these use.

pub mod framebuffer;
/// The fuzz target's entry point (`fuzz/`), with the `fuzzing` feature.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod gpu;
pub mod notice;
pub mod rate;
pub mod resample;
pub mod screenshot;
pub mod shm;
/// A virtqueue driver for tests and benchmarks (the guest side, in process), with the
/// `testing` feature; not for the VMM.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// Guest RAM as the device model sees it: the same type as `vmm-backend`'s.
pub type GuestMemory = vm_memory::GuestMemoryMmap<()>;
