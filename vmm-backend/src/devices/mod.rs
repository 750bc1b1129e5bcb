//! Device models that the VMM core owns. (virtio devices live in `crate::virtio`.)

pub mod legacy;
pub mod power_button;
