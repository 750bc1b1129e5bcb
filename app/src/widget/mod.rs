//! The window's own widgets, one file each.

pub mod console;
pub mod form;
pub mod gauge;
pub mod port_links;
pub mod sparkline;
pub mod surface_area;
pub mod surface_clip;
