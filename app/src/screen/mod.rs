//! One module per screen; each `update` returns an optional event for its parent.

pub mod about;
pub mod console;
pub mod dashboard;
pub mod launch;
pub mod terminal;
pub mod vm_view;
pub mod wizard;
