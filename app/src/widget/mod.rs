//! The window's own widgets, one file each.

pub mod console;
pub mod form;
pub mod gauge;
pub mod sparkline;
