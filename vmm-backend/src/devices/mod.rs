//! Device models that the VMM core owns. (virtio devices live in `crate::virtio`.)

pub mod cdrom;
pub mod debug_port;
pub mod fw_cfg;
pub mod legacy;
pub mod power_button;
pub mod ramfb;
